# C: every RVC instruction written explicitly, HINT encodings (which execute as no-ops),
# reserved encodings (illegal instruction, mtval = the 16-bit parcel), and a 32-bit
# instruction straddling a page boundary.
.include "common.inc"

START
    FP_ON
    SET_MTVEC _trap_skip
    la s0, data
    PUTS "-- C0\n"
    c.addi4spn a0, sp, 1020
    sub a0, a0, sp
    PRINT a0
    c.lw a1, 4(s0)
    PRINT a1
    c.ld a2, 8(s0)
    PRINT a2
    c.fld fs0, 8(s0)
    PRINT_FREG fs0
    li a3, 0x1122334455667788
    c.sw a3, 16(s0)
    c.sd a3, 24(s0)
    c.fsd fs0, 32(s0)
    ld a4, 16(s0)
    PRINT a4
    ld a4, 24(s0)
    PRINT a4
    ld a4, 32(s0)
    PRINT a4

    PUTS "-- C1\n"
    c.nop
    li a0, 5
    c.addi a0, -32
    PRINT a0
    li a0, 0x7fffffff
    c.addiw a0, 1
    PRINT a0
    c.li a1, -1
    PRINT a1
    mv a5, sp
    c.addi16sp sp, -512
    sub a4, a5, sp
    PRINT a4
    c.addi16sp sp, 496
    c.addi16sp sp, 16
    c.lui a2, 0xfffe1
    PRINT a2
    c.lui a2, 1
    PRINT a2
    li a3, -256
    c.srli a3, 63
    PRINT a3
    li a3, -256
    c.srai a3, 4
    PRINT a3
    li a3, 0x1234
    c.andi a3, -16
    PRINT a3
    li a4, 100
    li a5, 58
    c.sub a4, a5
    PRINT a4
    c.xor a4, a5
    PRINT a4
    c.or a4, a5
    PRINT a4
    c.and a4, a5
    PRINT a4
    li a4, 0x80000000
    li a5, 1
    c.subw a4, a5
    PRINT a4
    li a4, 0x7fffffff
    c.addw a4, a5
    PRINT a4
    li a0, 0
    c.j 1f
    li a0, 0xbad
1:  PRINT a0
    li a1, 0
    c.beqz a1, 2f
    li a1, 0xbad
2:  c.bnez a1, 3f
    li a1, 7
3:  PRINT a1
    c.bnez a1, 4f
    li a1, 0xbad
4:  PRINT a1

    PUTS "-- C2\n"
    li a0, 3
    c.slli a0, 62
    PRINT a0
    addi sp, sp, -64
    c.sdsp a3, 8(sp)
    c.swsp a5, 16(sp)
    c.fsdsp fs0, 24(sp)
    c.ldsp t3, 8(sp)
    PRINT t3
    c.lwsp t4, 16(sp)
    PRINT t4
    c.fldsp ft5, 24(sp)
    PRINT_FREG ft5
    addi sp, sp, 64
    la t0, 5f
    c.jr t0
    li a0, 0xbad
5:  la t0, leaf
    c.jalr t0
    PRINT a0
    c.mv t6, t0
    c.add t6, a0
    sub t6, t6, t0
    PRINT t6
    c.ebreak

    PUTS "-- HINTs execute as no-ops\n"
    li s1, 0x55
    .hword 0x0005          # c.nop 1
    .hword 0x0015          # c.addi x0, 5
    .hword 0x4015          # c.li x0, 5
    .hword 0x6005          # c.lui x0, 1
    .hword 0x0016          # c.slli x0, 5
    .hword 0x8026          # c.mv x0, s1
    .hword 0x9026          # c.add x0, s1
    .hword 0x0482          # c.slli s1, 0 (c.slli64)
    .hword 0x8081          # c.srli s1, 0 (c.srli64)
    .hword 0x8481          # c.srai s1, 0 (c.srai64)
    PRINT s1
    PRINT x0

    PUTS "-- reserved encodings trap\n"
    .hword 0x0000          # all zeros
    .hword 0x0004          # c.addi4spn a1, sp, 0
    .hword 0x6101          # c.addi16sp sp, 0
    .hword 0x6481          # c.lui s1, 0
    .hword 0x2001          # c.addiw x0, 0
    .hword 0x8002          # c.jr x0
    .hword 0x9c41          # reserved C1 (c.subw with funct 10)
    .hword 0x9c61          # reserved C1 (funct 11)
    PRINT s1

    PUTS "-- a 32-bit instruction across a page boundary\n"
    li t5, 0
    la t0, page_sled
    jalr ra, t0
    PRINT t5
    li t5, 100
    la t0, straddle
    jalr ra, t0
    PRINT t5
    EXIT

leaf:
    li a0, 0x1eaf
    c.jr ra

    .balign 4096
page_sled:
    .fill 2047, 2, 0x0001  # c.nop up to 2 bytes before the page end
straddle:
    .option push
    .option norvc
    addi t5, t5, 1
    addi t5, t5, 2
    .option pop
    ret

    .data
    .balign 16
data:
    .dword 0x89abcdef01234567
    .dword 0x400921fb54442d18
    .space 48
