# Two instructions, then ten turns of a four-instruction loop: ARG0 counts from 1, the
# instruction at `middle` copies it into ARG1.
.include "common.inc"
.globl _start, loop, middle, after_loop
_start:
    xor eax, eax
    xor ebx, ebx
loop:
    inc eax
middle:
    mov ebx, eax
    cmp eax, 10
    jne loop
after_loop:
    POWER_OFF
