# Illegal and reserved compressed encodings, and legal neighbours of them.
    .half 0x0000        # all zero: defined illegal
    .half 0x0010        # c.addi4spn a2, sp, 0 (nzuimm = 0)
    .half 0x6101        # c.addi16sp with immediate 0
    .half 0x6501        # c.lui a0, 0
    .half 0x8002        # c.jr zero
    .half 0x4002        # c.lwsp zero
    .half 0x6002        # c.ldsp zero
    .half 0x2001        # c.addiw zero
    .half 0x8000        # quadrant 0 slot 100 (reserved)
    .half 0x9c41        # C.SUBW/C.ADDW group, funct2 10 (reserved)
    .half 0x9c61        # C.SUBW/C.ADDW group, funct2 11 (reserved)
    .half 0x9401        # c.srai s0, 32 (shamt[5] set: legal on RV64 only)
    .half 0xe000        # c.sd s0, 0(s0) (legal)
    .half 0x9002        # c.ebreak (legal)
    .half 0x9082        # c.jalr ra (legal)
