# INT3 with no IDT (delivery fails: a triple fault, not a power-off); after it, sets ARG0 to 1
# and powers off.
.include "common.inc"
.globl _start, breakpoint, after_breakpoint
_start:
breakpoint:
    int3
after_breakpoint:
    mov eax, 1
    POWER_OFF
