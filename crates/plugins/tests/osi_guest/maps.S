# A guest program for the osi plugin's tests (riscv64 Linux, no libc): it makes an
# address space of more than 100 mappings, so that its maple tree has inner nodes, then
# waits for a signal. 150 anonymous mappings of two pages with alternating protections
# (so that neighbours do not merge), 3 private read-only mappings of the file named by
# argv[1] at offsets 0, 2 and 4 pages, and it keeps that file open as fd 3 (argv[1]
# must be a readable file of at least 5 pages).
        .globl _start
        .text
_start:
        li      s0, 150
1:      li      a0, 0                   # addr
        li      a1, 8192                # length
        andi    t0, s0, 1
        slli    t0, t0, 1
        addi    a2, t0, 1               # PROT_READ, or PROT_READ|PROT_WRITE
        li      a3, 0x22                # MAP_PRIVATE|MAP_ANONYMOUS
        li      a4, -1
        li      a5, 0
        li      a7, 222                 # mmap
        ecall
        addi    s0, s0, -1
        bnez    s0, 1b
        ld      a1, 16(sp)              # argv[1]
        li      a0, -100                # AT_FDCWD
        li      a2, 0                   # O_RDONLY
        li      a7, 56                  # openat
        ecall
        mv      s1, a0
        li      s0, 0
2:      li      a0, 0
        li      a1, 4096
        li      a2, 1                   # PROT_READ
        li      a3, 2                   # MAP_PRIVATE
        mv      a4, s1
        mv      a5, s0                  # offset
        li      a7, 222
        ecall
        li      t0, 8192
        add     s0, s0, t0
        li      t1, 24576
        bne     s0, t1, 2b
3:      li      a0, 0
        li      a1, 0
        li      a2, 0
        li      a3, 0
        li      a7, 73                  # ppoll: wait for a signal
        ecall
        j       3b
