# 48-bit, 64-bit and longer instruction prefixes: not supported, 4 bytes, illegal.
    .half 0x001f, 0x0000, 0x0000        # 48-bit
    .half 0x003f, 0x1234, 0x5678, 0x9abc # 64-bit
    .half 0x007f, 0xffff                 # >= 80-bit
    .half 0xffff, 0xffff
    .half 0x707f, 0x0000
