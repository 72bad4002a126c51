    .text
    .globl _start
_start:
    mov $0x3f0000, %rsp
    call kernel
    mov %rax, 0x3f0000
    hlt
