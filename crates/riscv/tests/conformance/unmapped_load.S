    .include "common.inc"
    .set unmapped, 0x20000000
_start:
    li t0, unmapped
load:
    lw a0, 0(t0)
    POWER_OFF
