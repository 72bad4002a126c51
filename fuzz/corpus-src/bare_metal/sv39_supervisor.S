# Sv39 paging in S-mode: identity gigapages for devices and RAM, a three-level mapping of
# one data page, a missing page (delegated page faults counted by an S-mode handler),
# sfence.vma, satp writes from S-mode, then ecall to M-mode to finish.
# expect: power-off
    .include "common.inc"
    .equ ROOT,  RAM_BASE + 0x10000
    .equ L1,    RAM_BASE + 0x11000
    .equ L0,    RAM_BASE + 0x12000
    .equ DATA,  RAM_BASE + 0x13000
    .equ VDATA, 0x40000000          # mapped through L1 and L0 to DATA
    .equ LEAF,  0xcf                # V R W X A D
    .equ TABLE, 0x01                # V only: next level

    SET_MTVEC mhandler
    la t0, shandler
    csrw stvec, t0
    li t0, (1 << 12) | (1 << 13) | (1 << 15)   # delegate fetch/load/store page faults
    csrw medeleg, t0

    li s2, ROOT
    li t0, LEAF                                 # 0x0000_0000: devices
    sd t0, 0(s2)
    li t0, (L1 >> 12 << 10) | TABLE             # 0x4000_0000: next level
    sd t0, 8(s2)
    li t0, (RAM_BASE >> 12 << 10) | LEAF        # 0x8000_0000: RAM
    sd t0, 16(s2)
    li s3, L1
    li t0, (L0 >> 12 << 10) | TABLE
    sd t0, 0(s3)
    li s4, L0
    li t0, (DATA >> 12 << 10) | 0x47            # V R W A, not dirty: the walk sets D
    sd t0, 0(s4)
    li t0, (DATA >> 12 << 10) | 0x43            # read-only alias at VDATA + 0x1000
    sd t0, 8(s4)

    li t0, (8 << 60) | (ROOT >> 12)
    csrw satp, t0
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, 1 << 11                              # MPP = S
    csrs mstatus, t0
    la t0, supervisor
    csrw mepc, t0
    li s0, 0                                    # page faults seen by S-mode
    mret

supervisor:
    li a0, VDATA
    li a1, 0x1234
    sd a1, 0(a0)
    ld a2, 0(a0)
    bne a1, a2, sfail
    li a4, VDATA + 0x1000
    ld a3, 0(a4)                                # read-only alias reads the same
    bne a1, a3, sfail
    sd a1, 0(a4)                                # store page fault
    li a4, VDATA + 0x2000
    ld a3, 0(a4)                                # not mapped: load page fault
    li t0, 0x7ffffff000                         # not canonical for Sv39
    ld a3, 0(t0)
    sfence.vma
    sfence.vma a0
    csrr t0, satp
    csrw satp, t0
    li t0, 3
    bne s0, t0, sfail
    li a0, 0
    ecall
sfail:
    li a0, 1
    ecall

    .align 2
shandler:
    addi s0, s0, 1
    SKIP_AND_SRET

    .align 2
mhandler:
    csrr t0, mcause
    li t1, 9                                    # ecall from S
    bne t0, t1, mfail
    bnez a0, mfail
    EXIT_PASS
mfail:
    EXIT_FAIL 3
