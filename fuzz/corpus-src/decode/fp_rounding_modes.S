# fadd.d with every rounding-mode field 0..7: 5 and 6 are reserved (illegal).
    .option norvc
    .irp rm, 0, 1, 2, 3, 4, 5, 6, 7
    .word 0x02c58553 | (\rm << 12)
    .endr
    # fcvt.d.s / fcvt.d.w with a non-default rounding mode (legal, has no effect).
    .word 0x42058553 | (1 << 12)
    .word 0xd2050553 | (3 << 12)
