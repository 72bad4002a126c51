    .include "common.inc"
_start:
    la t0, handler
    csrw mtvec, t0
breakpoint:
    ebreak
    POWER_OFF
handler:
    csrr a0, mcause
    csrr a1, mepc
handler_done:
    j handler_done
