# RV64M: multiplication high parts, division and remainder including division by zero
# and the signed overflow case (MIN / -1), and the W forms.
.include "common.inc"

.macro RR op, a, b
    li t3, \a
    li t4, \b
    \op t5, t3, t4
    PRINT_AS \op, t5
.endm

.macro ALL_OPS a, b
    RR mul, \a, \b
    RR mulh, \a, \b
    RR mulhsu, \a, \b
    RR mulhu, \a, \b
    RR div, \a, \b
    RR divu, \a, \b
    RR rem, \a, \b
    RR remu, \a, \b
    RR mulw, \a, \b
    RR divw, \a, \b
    RR divuw, \a, \b
    RR remw, \a, \b
    RR remuw, \a, \b
.endm

START
    PUTS "-- 7, 3\n"
    ALL_OPS 7, 3
    PUTS "-- -7, 3\n"
    ALL_OPS -7, 3
    PUTS "-- 7, -3\n"
    ALL_OPS 7, -3
    PUTS "-- -7, -3\n"
    ALL_OPS -7, -3
    PUTS "-- by zero\n"
    ALL_OPS 0x123456789abcdef0, 0
    ALL_OPS -5, 0
    PUTS "-- MIN / -1\n"
    ALL_OPS 0x8000000000000000, -1
    PUTS "-- 32-bit MIN / -1\n"
    ALL_OPS 0xffffffff80000000, -1
    ALL_OPS 0x0000000080000000, 0xffffffff
    PUTS "-- big values\n"
    ALL_OPS 0xffffffffffffffff, 0xffffffffffffffff
    ALL_OPS 0x8000000000000000, 0x8000000000000000
    ALL_OPS 0x7fffffffffffffff, 0x8000000000000001
    ALL_OPS 0x123456789abcdef0, 0x0fedcba987654321
    ALL_OPS 0x00000001ffffffff, 0x0000000300000007
    PUTS "-- rd == rs1 == rs2\n"
    li t3, -3
    mul t3, t3, t3
    PRINT t3
    li t3, 0x8000000000000000
    mulh t3, t3, t3
    PRINT t3
    EXIT
