# The harness itself: printing, register dumps, EXPECT, and the trap-skip handler.
.include "common.inc"
START
    PUTS "hello\n"
    li a0, 0x1234
    PRINT a0
    PRINT sp
    EXPECT a0, 0x1234
    DUMP_REGS
    FP_ON
    DUMP_FREGS
    SET_MTVEC _trap_skip
    ecall
    PUTS "after ecall\n"
    EXIT
