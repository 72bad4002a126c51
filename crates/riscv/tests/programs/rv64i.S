# RV64I: ALU, shifts (incl. by 63/31 and masked amounts), compares, W ops, LUI/AUIPC,
# branches and jumps. Assembled without C so every encoding is 32-bit.
# march: rv64g_zicsr_zifencei
.include "common.inc"

# RR op, a, b: t5 = a op b, printed.
.macro RR op, a, b
    li t3, \a
    li t4, \b
    \op t5, t3, t4
    PRINT_AS \op, t5
.endm

# RI op, a, imm: t5 = a op imm, printed.
.macro RI op, a, imm
    li t3, \a
    \op t5, t3, \imm
    PRINT_AS \op, t5
.endm

# BR op, a, b: prints 1 when the branch is taken.
.macro BR op, a, b
    li t3, \a
    li t4, \b
    li t5, 1
    \op t3, t4, .Ltaken\@
    li t5, 0
.Ltaken\@:
    PRINT_AS \op, t5
.endm

START
    PUTS "-- add/sub\n"
    RR add, 0x7fffffffffffffff, 1
    RR add, -1, -1
    RR sub, 0, 1
    RR sub, 0x8000000000000000, 1
    RI addi, 5, -2048
    RI addi, -1, 2047
    RR addw, 0x7fffffff, 1
    RR addw, 0x123456789abcdef0, 0x1000
    RR subw, 0, 0x80000000
    RR subw, 0xffffffff00000000, 1
    RI addiw, 0x7fffffff, 1
    RI addiw, 0x1234567812345678, 0
    RI addiw, 0xffffffff, -1

    PUTS "-- logic\n"
    RR and, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0
    RR or, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0
    RR xor, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0
    RI andi, 0x123456789abcdef0, -16
    RI ori, 0x1230, -2048
    RI xori, 0x123456789abcdef0, -1

    PUTS "-- shifts\n"
    RR sll, 1, 63
    RR sll, 1, 64
    RR sll, 0x8000000000000001, 65
    RR srl, 0x8000000000000000, 63
    RR srl, 0x8000000000000000, 127
    RR sra, 0x8000000000000000, 63
    RR sra, 0x8000000000000000, 0xffffffffffffffc1
    RI slli, 0x8000000000000001, 63
    RI srli, 0xfedcba9876543210, 63
    RI srai, 0xfedcba9876543210, 63
    RI srai, 0x7edcba9876543210, 4
    RR sllw, 1, 31
    RR sllw, 1, 32
    RR sllw, 0xffffffff00000003, 30
    RR srlw, 0xffffffff80000000, 31
    RR srlw, 0x12345678ffffffff, 0
    RR srlw, 0x80000000, 33
    RR sraw, 0x80000000, 31
    RR sraw, 0x0000000180000000, 4
    RR sraw, 0x7fffffff, 63
    RI slliw, 1, 31
    RI slliw, 0x00000000ffffffff, 0
    RI srliw, 0xffffffff80000000, 31
    RI srliw, 0xfffffffffffffff0, 0
    RI sraiw, 0x80000000, 31
    RI sraiw, 0x0000000f7fffffff, 3

    PUTS "-- compares\n"
    RR slt, -1, 0
    RR slt, 0, -1
    RR slt, 0x8000000000000000, 0x7fffffffffffffff
    RR sltu, -1, 0
    RR sltu, 0, -1
    RR sltu, 5, 5
    RI slti, -5, -4
    RI slti, -4, -5
    RI sltiu, 0, -1
    RI sltiu, -1, -1
    RI sltiu, 0, 1
    RI sltiu, 1, 1

    PUTS "-- lui/auipc\n"
    lui t5, 0x80000
    PRINT t5
    lui t5, 0x7ffff
    PRINT t5
    lui t5, 0xfffff
    PRINT t5
1:  auipc t5, 0
    la t6, 1b
    sub t5, t5, t6
    PRINT t5
    auipc t5, 0x80000
    PRINT t5

    PUTS "-- writes to x0\n"
    li t3, 7
    add x0, t3, t3
    addi x0, x0, 5
    lui x0, 0x12345
    PRINT x0

    PUTS "-- branches\n"
    BR beq, 5, 5
    BR beq, 5, 6
    BR bne, 5, 5
    BR bne, 5, 6
    BR blt, -1, 0
    BR blt, 0, -1
    BR blt, 3, 3
    BR bge, -1, 0
    BR bge, 0, -1
    BR bge, 3, 3
    BR bltu, -1, 0
    BR bltu, 0, -1
    BR bltu, 3, 3
    BR bgeu, -1, 0
    BR bgeu, 0, -1
    BR bgeu, 3, 3
    # A backward branch loop.
    li t3, 0
    li t4, 10
2:  addi t3, t3, 3
    addi t4, t4, -1
    bnez t4, 2b
    PRINT t3

    PUTS "-- jumps\n"
    jal t5, 3f
3:  la t6, 3b
    sub t5, t5, t6
    PRINT t5
    # jalr clears bit 0 of the target.
    la t3, 4f
    addi t3, t3, 1
    jalr t4, 0(t3)
    li t5, 0xbad
4:  la t6, 4b
    sub t5, t4, t6
    PRINT t5
    # jalr with rd == rs1 uses the old rs1.
    la t3, 5f - 8
    jalr t3, 8(t3)
    li t5, 0xbad
5:  la t6, 5b
    sub t5, t3, t6
    PRINT t5
    # Call and return through a negative offset.
    la t3, leaf + 16
    jalr ra, -16(t3)
    PRINT a0
    j 6f
leaf:
    li a0, 0x1eaf
    ret
6:
    PUTS "-- fence and fence.i are no-ops here\n"
    fence
    fence rw, rw
    fence.i
    DUMP_REGS
    EXIT
