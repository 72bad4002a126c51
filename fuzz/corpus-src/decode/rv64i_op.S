# RV64I register-register operations.
    .option norvc
    add a0, a1, a2
    sub zero, t0, t1
    sll s0, s1, s2
    slt a3, a4, a5
    sltu t3, t4, t5
    xor a6, a7, s3
    srl s4, s5, s6
    sra s7, s8, s9
    or s10, s11, ra
    and sp, gp, tp
