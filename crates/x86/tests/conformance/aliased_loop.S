# Maps the low 512 GiB a second time at 512 GiB (PML4 entry 1 = entry 0; the page tables are
# at physical 0), runs the loop body at the first mapping and again at the second (where
# `middle` is `alias_middle`), powers off.
.include "common.inc"
.globl _start, alias_middle
.set ALIAS, 0x8000000000
.set alias_middle, middle + ALIAS
_start:
    xor edi, edi
    mov rdx, qword ptr [rdi]
    mov qword ptr [rdi + 8], rdx
    xor ebx, ebx
    call body
    lea rdx, [rip + body]
    mov rsi, ALIAS
    add rdx, rsi
    call rdx
    POWER_OFF
body:
    xor eax, eax
loop:
    inc eax
middle:
    mov ebx, eax
    cmp eax, 10
    jne loop
    ret
