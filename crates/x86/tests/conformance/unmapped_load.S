# Loads 4 bytes from physical `unmapped` (identity-mapped, no RAM or device) into ARG0.
.include "common.inc"
.globl _start, load, unmapped
.set unmapped, 0xc0000000
_start:
    mov edi, 0xc0000000
load:
    mov eax, dword ptr [rdi]
    POWER_OFF
