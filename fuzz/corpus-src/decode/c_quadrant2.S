# Compressed quadrant 2: shifts, stack loads and stores, jr/jalr/mv/add/ebreak.
    .option rvc
    c.slli a0, 1
    c.slli t6, 63
    c.fldsp fa0, 504(sp)
    c.lwsp a0, 252(sp)
    c.ldsp ra, 0(sp)
    c.jr ra
    c.mv a0, a1
    c.ebreak
    c.jalr t0
    c.add a0, a1
    c.fsdsp fa0, 504(sp)
    c.swsp a0, 0(sp)
    c.sdsp ra, 8(sp)
