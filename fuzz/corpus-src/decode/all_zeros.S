# 64 zero bytes: 32 times the defined-illegal compressed halfword 0x0000.
    .fill 64, 1, 0
