# RV64I register-immediate operations, shifts by 0 and 63.
    .option norvc
    addi a0, a1, -2048
    addi zero, zero, 0
    slti t0, t1, 2047
    sltiu t0, t1, -1
    xori a0, a0, -1
    ori s0, s1, 0x7ff
    andi a5, a6, 0
    slli a0, a0, 0
    slli a0, a0, 63
    srli t0, t0, 32
    srai t0, t0, 63
    srai zero, zero, 1
