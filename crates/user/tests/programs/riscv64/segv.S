# Stores to an unmapped address: SIGSEGV, exit status 139.
    .globl _start
_start:
    li t0, 0xdead000
    li t1, 1
    sd t1, 0(t0)
    li a0, 0
    li a7, 93
    ecall
