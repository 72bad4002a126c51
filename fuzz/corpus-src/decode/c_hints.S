# Compressed HINT encodings: legal, no effect.
    .half 0x0005        # c.nop with a nonzero immediate (c.addi zero, 1)
    .half 0x0001        # c.nop
    .half 0x0101        # c.addi sp, 0 (zero immediate)
    .half 0x0501        # c.addi a0, 0
    .half 0x4001        # c.li zero, 0
    .half 0x6005        # c.lui zero, 1
    .half 0x0006        # c.slli zero, 1
    .half 0x0502        # c.slli a0, 0 (shift by zero)
    .half 0x802a        # c.mv zero, a0
    .half 0x902a        # c.add zero, a0
    .half 0x8101        # c.srli s0, 0 (shift by zero)
    .half 0x8501        # c.srai s0, 0 (shift by zero)
