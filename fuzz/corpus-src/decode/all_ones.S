# 64 bytes of 0xff: 32-bit words 0xffffffff (illegal).
    .fill 64, 1, 0xff
