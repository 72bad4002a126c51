# System and privileged instructions, fences with every field.
    .option norvc
    ecall
    ebreak
    mret
    sret
    wfi
    sfence.vma
    sfence.vma a0
    sfence.vma a0, a1
    fence
    fence rw, rw
    fence i, o
    fence.tso
    fence.i
    .word 0x0100000f    # fence w, 0 (pause)
    .word 0xfffff00f    # fence with every reserved bit set
    .word 0x0000900f    # fence.i with rd and reserved bits
