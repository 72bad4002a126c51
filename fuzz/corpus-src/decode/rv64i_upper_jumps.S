# RV64I: lui, auipc, jal, jalr, including x0 destinations and extreme immediates.
    .option norvc
    .option norelax
    lui a0, 0
    lui a0, 0xfffff
    lui zero, 0x12345
    auipc t0, 0
    auipc t0, 0x80000
    auipc zero, 1
    jal ra, .+8
    jal zero, .-4
    jal t1, .+0xffffe
    jal t1, .-0x100000
    jalr ra, 0(t0)
    jalr zero, -2048(a0)
    jalr t2, 2047(zero)
    jalr zero, 0(ra)
