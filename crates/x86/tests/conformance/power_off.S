# Powers off at once.
.include "common.inc"
.globl _start
_start:
    POWER_OFF
