    .include "common.inc"
_start:
    la t0, data
    li t1, 0x5555
store:
    sd t1, 0(t0)
load:
    ld a0, 0(t0)
    POWER_OFF
    .balign 4096
data:
    .dword 0
