# Compressed quadrant 0: c.addi4spn, loads and stores (integer and double).
    .option rvc
    c.addi4spn a0, sp, 4
    c.addi4spn s1, sp, 1020
    c.fld fa0, 0(a1)
    c.fld fs1, 248(a5)
    c.lw a0, 124(a1)
    c.ld a0, 248(s0)
    c.fsd fa0, 8(a1)
    c.sw a2, 0(a3)
    c.sd a4, 248(a5)
