# Not a suite program: arms the timer 12 instructions ahead from the middle of a block of
# pre-decoded ops, then counts in ARG0 until the interrupt powers off. The count the
# handler sees must not depend on which loop ran the block.
.include "common.inc"
.globl _start
_start:
    SETUP_TABLES
    GATE 0x20, timer
    jmp 1f
1:
    mov edi, 0xfef00008
    mov esi, 12
    xor eax, eax
    add eax, 1
    add eax, 1
    mov ecx, 5
    mov edx, 6
    mov dword ptr [rdi], esi
    inc eax
    inc eax
    sti
spin:
    inc eax
    jmp spin
timer:
    POWER_OFF
    TABLES
