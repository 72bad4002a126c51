# Compressed and 32-bit instructions interleaved, so 32-bit words sit at both halfword
# alignments.
    .option rvc
    c.nop
    .option norvc
    addi a0, a0, 1
    .option rvc
    c.li a1, 5
    c.li a2, 6
    .option norvc
    add a0, a1, a2
    .option rvc
    c.mv a3, a0
    .option norvc
    ld a4, 0(a3)
    fadd.d fa0, fa1, fa2
    .option rvc
    c.ebreak
