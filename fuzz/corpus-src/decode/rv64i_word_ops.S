# RV64I 32-bit word operations.
    .option norvc
    addiw a0, a1, -1
    addiw zero, zero, 0
    slliw t0, t1, 31
    srliw t0, t1, 0
    sraiw t0, t1, 31
    addw a0, a1, a2
    subw a0, a1, a2
    sllw a0, a1, a2
    srlw a0, a1, a2
    sraw a0, a1, a2
