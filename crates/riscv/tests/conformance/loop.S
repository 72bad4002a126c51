    .include "common.inc"
_start:
    li t0, 10
    li a0, 0
loop:
    addi a0, a0, 1
middle:
    mv a1, a0
    addi t0, t0, -1
    bnez t0, loop
after_loop:
    POWER_OFF
