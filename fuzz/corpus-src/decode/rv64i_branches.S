# RV64I: every branch, forward and backward, the largest offsets both ways.
    .option norvc
    .option norelax
1:  beq a0, a1, 1b
    bne zero, zero, .+8
    blt t0, t1, .+4094
    bge t0, t1, .-4096
    bltu s0, s1, .+2
    bgeu a7, t6, .-2
    beq zero, zero, .+0
    bne ra, sp, 1b
