# Stores the 8-byte 0x5555 at `data` (at `store`), loads it back into ARG0 (at `load`).
.include "common.inc"
.globl _start, store, load, data
_start:
    mov edx, 0x5555
store:
    mov qword ptr [rip + data], rdx
load:
    mov rax, qword ptr [rip + data]
    POWER_OFF
    .balign 4096
data:
    .quad 0
