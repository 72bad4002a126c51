# No trap handler: mtvec is 0, where nothing is mapped.
    .include "common.inc"
_start:
breakpoint:
    ebreak
after_breakpoint:
    li a0, 1
    POWER_OFF
