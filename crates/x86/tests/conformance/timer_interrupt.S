# Installs a handler for the board's timer vector (0x20), arms the timer 40 instructions
# ahead, enables interrupts and spins at `wait`; the handler sets ARG0 to 1 and powers off.
.include "common.inc"
.globl _start, wait
_start:
    SETUP_TABLES
    GATE 0x20, timer
    mov edi, 0xfef00008
    mov esi, 40
    mov dword ptr [rdi], esi
    sti
wait:
    jmp wait
timer:
    mov eax, 1
    POWER_OFF
    TABLES
