# Calls `patched` (ARG0 = 1), copies ARG0 into ARG1, overwrites `patched` with the 8 bytes
# at `replacement` (ARG0 = 2) by one store, calls it again, powers off. x86 needs nothing
# more for a store to code to reach instruction fetch on the same processor.
.include "common.inc"
.globl _start, patched, replacement
_start:
    call patched
    mov rbx, rax
    mov rdx, qword ptr [rip + replacement]
    mov qword ptr [rip + patched], rdx
    call patched
    POWER_OFF
patched:
    mov eax, 1
    ret
    .byte 0x90, 0x90
replacement:
    mov eax, 2
    ret
    .byte 0x90, 0x90
