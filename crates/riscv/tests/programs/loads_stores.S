# Loads and stores: every width, sign and zero extension, negative offsets, misaligned
# accesses (inside a page and across a page boundary), and x0 as a destination.
.include "common.inc"

.macro LOAD op, offset
    \op t5, \offset(s0)
    PRINT_AS \op, t5
.endm

START
    la s0, pattern
    PUTS "-- aligned loads\n"
    LOAD lb, 0
    LOAD lb, 7
    LOAD lbu, 7
    LOAD lh, 6
    LOAD lhu, 6
    LOAD lh, 2
    LOAD lw, 4
    LOAD lwu, 4
    LOAD lw, 0
    LOAD ld, 0
    LOAD ld, 8
    addi s0, s0, 16
    LOAD ld, -16
    LOAD lw, -4
    LOAD lbu, -1
    la s0, pattern

    PUTS "-- misaligned loads\n"
    LOAD lh, 1
    LOAD lhu, 7
    LOAD lw, 1
    LOAD lw, 2
    LOAD lwu, 3
    LOAD lw, 5
    LOAD ld, 1
    LOAD ld, 3
    LOAD ld, 7

    PUTS "-- load to x0\n"
    ld x0, 0(s0)
    lb x0, 7(s0)
    PRINT x0

    PUTS "-- stores\n"
    la s1, scratch
    li t3, 0x0123456789abcdef
    sd t3, 0(s1)
    li t3, 0xffffffffffffff80
    sb t3, 0(s1)
    li t3, 0x1234567890ab
    sh t3, 2(s1)
    li t3, 0xdeadbeefcafef00d
    sw t3, 4(s1)
    ld t5, 0(s1)
    PRINT t5
    # Misaligned stores.
    sd zero, 8(s1)
    sd zero, 16(s1)
    li t3, 0x1122334455667788
    sd t3, 9(s1)
    sw t3, 19(s1)
    sh t3, 23(s1)
    ld t5, 8(s1)
    PRINT t5
    ld t5, 16(s1)
    PRINT t5
    ld t5, 24(s1)
    PRINT t5
    # Store then reload narrower and wider.
    li t3, -2
    sw t3, 32(s1)
    sw zero, 36(s1)
    lwu t5, 32(s1)
    PRINT t5
    lw t5, 32(s1)
    PRINT t5
    ld t5, 32(s1)
    PRINT t5
    lh t5, 34(s1)
    PRINT t5

    PUTS "-- across a page boundary\n"
    la s2, _pages + 4096
    li t3, 0x8877665544332211
    sd t3, -8(s2)
    li t3, 0xffeeddccbbaa9988
    sd t3, 0(s2)
    ld t5, -3(s2)
    PRINT t5
    lw t5, -2(s2)
    PRINT t5
    lhu t5, -1(s2)
    PRINT t5
    li t3, 0x0102030405060708
    sd t3, -5(s2)
    ld t5, -8(s2)
    PRINT t5
    ld t5, 0(s2)
    PRINT t5
    sw t3, -1(s2)
    ld t5, -8(s2)
    PRINT t5
    ld t5, 0(s2)
    PRINT t5

    PUTS "-- stores into code (self-modifying, then fence.i)\n"
    la s3, patch_me
    lw t3, patch_with
    sw t3, 0(s3)
    fence.i
    .option push
    .option norvc
patch_me:
    li t5, 1
    .option pop
    PRINT t5
    j 1f
    .option push
    .option norvc
patch_with:
    li t5, 2
    .option pop
1:
    # Run a function, patch it (its block is cached by now), run it again.
    la s4, smc_func
    jalr ra, 0(s4)
    PRINT a0
    lw t3, smc_new
    sw t3, 0(s4)
    fence.i
    jalr ra, 0(s4)
    PRINT a0
    # Patch the instruction right after the store, in the same block.
    la s5, smc_next
    lw t3, smc_new
    sw t3, 0(s5)
    fence.i
    .option push
    .option norvc
smc_next:
    li a0, 0x111
    .option pop
    PRINT a0
    DUMP_REGS
    EXIT

    .option push
    .option norvc
smc_func:
    li a0, 0x111
    ret
smc_new:
    li a0, 0x222
    .option pop

    .data
    .balign 16
pattern:
    .dword 0x8001700260037f80
    .dword 0xfedcba9876543210
scratch:
    .space 64
