# Compressed quadrant 1: immediates, jumps, branches, ALU.
    .option rvc
1:  c.nop
    c.addi a0, -32
    c.addi sp, 31
    c.addiw a0, -1
    c.li a5, 31
    c.addi16sp sp, -512
    c.addi16sp sp, 496
    c.lui a0, 1
    c.lui s11, 0xfffff
    c.srli a0, 63
    c.srai s1, 1
    c.andi a5, -32
    c.sub a0, a1
    c.xor s0, s1
    c.or a2, a3
    c.and a4, a5
    c.subw a0, a1
    c.addw a0, a1
    c.j 1b
    c.j .+2046
    c.beqz a0, .-256
    c.bnez a5, .+254
