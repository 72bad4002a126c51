# ARG0 = 7, the hypercall (CPUID), ARG2 = ARG1, power off.
.include "common.inc"
.globl _start, hypercall
_start:
    mov eax, 7
hypercall:
    cpuid
    mov rcx, rbx
    POWER_OFF
