# Runs `function` in kernel mode; its SYSCALL enters `entry`, which runs it again in user
# mode (SYSRET); the user-mode SYSCALL makes `entry` power off.
.include "common.inc"
.globl _start, hooked, entry
_start:
    lea rax, [rip + entry]
    mov rdx, rax
    shr rdx, 32
    mov ecx, 0xc0000082         # LSTAR
    wrmsr
    xor eax, eax
    mov edx, 0x00180010         # STAR: SYSCALL CS 0x10, SYSRET base 0x18 (user CS 0x2b)
    mov ecx, 0xc0000081
    wrmsr
    xor r12d, r12d
function:
    nop
hooked:
    nop
    syscall
entry:
    test r12d, r12d
    jnz from_user
    inc r12d
    lea rcx, [rip + function]
    mov r11d, 2
    sysretq
from_user:
    POWER_OFF
