# brk, anonymous mmap, mprotect and munmap: prints "ok" lines, then touches a page it
# unmapped (SIGSEGV, 139).
    .globl _start
_start:
    li a0, 0
    li a7, 214          # brk(0): current break
    ecall
    mv s0, a0
    li t0, 0x10000
    add a0, s0, t0
    li a7, 214          # brk(+64 KiB)
    ecall
    sub t0, a0, s0
    li t1, 0x10000
    bne t0, t1, fail
    li t0, 0x5a
    li t2, 0x8000
    add t2, s0, t2
    sb t0, 0(t2)        # the new heap is writable
    lbu t1, 0(t2)
    bne t0, t1, fail
    call ok
    li a0, 0
    li a1, 0x3000
    li a2, 3            # PROT_READ | PROT_WRITE
    li a3, 0x22         # MAP_PRIVATE | MAP_ANONYMOUS
    li a4, -1
    li a5, 0
    li a7, 222          # mmap
    ecall
    mv s1, a0
    li t0, -4096
    bgeu a0, t0, fail
    li t2, 0x2ff8
    add t2, s1, t2
    ld t1, 0(t2)        # zero-filled
    bnez t1, fail
    li t2, 0x1000
    add s2, s1, t2
    sd s1, 0(s2)
    call ok
    mv a0, s1
    li a1, 0x1000
    li a2, 1            # PROT_READ
    li a7, 226          # mprotect
    ecall
    bnez a0, fail
    ld t1, 0(s1)        # still readable
    call ok
    mv a0, s1
    li a1, 0x3000
    li a7, 215          # munmap
    ecall
    bnez a0, fail
    call ok
    ld t1, 0(s2)        # gone: SIGSEGV
fail:
    li a0, 1
    li a7, 93
    ecall

ok:
    li a0, 1
    la a1, okline
    li a2, 3
    li a7, 64
    ecall
    ret

    .data
okline: .ascii "ok\n"
