# Regression: a trap whose handler cannot even be fetched (mtvec outside RAM) used to spin
# the host forever in zero virtual time. The hart must count as stuck and let the budget
# pass as idle time instead.
# expect: stuck
    .include "common.inc"
    li t0, 0x40000000                   # nothing there
    csrw mtvec, t0
    li t0, MTIMECMP                     # a timer that can never be taken (MIE is 0)
    li t1, 100
    sd t1, 0(t0)
    li t0, 1 << 7
    csrw mie, t0
    .word 0xffffffff                    # illegal: trap to the unfetchable handler
