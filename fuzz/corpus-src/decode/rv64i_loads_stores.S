# RV64I loads and stores of every width, with the extreme offsets.
    .option norvc
    lb a0, 0(a1)
    lh a0, -2048(sp)
    lw zero, 2047(t0)
    ld s1, 8(s0)
    lbu t6, -1(zero)
    lhu a2, 3(a3)
    lwu a4, 0(a5)
    sb a0, 0(a1)
    sh zero, -2048(sp)
    sw t6, 2047(t5)
    sd ra, -8(sp)
