    .include "common.inc"
_start:
    li a0, 0
    call patched
    mv a1, a0
    la t0, patched
    la t1, replacement
    lw t2, 0(t1)
    sw t2, 0(t0)
    fence.i
    call patched
    POWER_OFF
patched:
    li a0, 1
    ret
replacement:
    li a0, 2
