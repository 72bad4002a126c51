# Sv48 paging with a user page: U-mode code and data, a U-mode access to a supervisor
# page (page fault to M), ecall from U, then MPRV loads from M-mode through the user
# mapping and an S-mode read of a user page with SUM, and of an execute-only page with MXR.
# expect: power-off
    .include "common.inc"
    .equ ROOT, RAM_BASE + 0x10000      # level 3
    .equ L2,   RAM_BASE + 0x11000
    .equ L1,   RAM_BASE + 0x12000
    .equ L0,   RAM_BASE + 0x13000
    .equ DATA, RAM_BASE + 0x14000
    .equ VUSER, 0x200000               # user data page (L0 entry 0)
    .equ VEXEC, 0x201000               # execute-only user page (L0 entry 1)

    SET_MTVEC mhandler
    li s0, 0                           # M-mode traps seen
    li s2, ROOT
    li t0, (L2 >> 12 << 10) | 1
    sd t0, 0(s2)
    li s3, L2
    li t0, 0xdf                        # devices gigapage, user (for the test finisher)
    sd t0, 0(s3)
    li t0, (RAM_BASE >> 12 << 10) | 0xdf  # RAM gigapage: V R W X U A D
    sd t0, 16(s3)
    li t0, (L1 >> 12 << 10) | 1
    sd t0, 0(s3)                       # replaces the devices entry: 0-1 GiB via L1
    li s4, L1
    li t0, (L0 >> 12 << 10) | 1
    sd t0, 8(s4)                       # 2 MiB..4 MiB
    li s5, L0
    li t0, (DATA >> 12 << 10) | 0xd7   # V R W U A D
    sd t0, 0(s5)
    li t0, (DATA >> 12 << 10) | 0xd9   # V X U A D: execute only
    sd t0, 8(s5)
    li t0, (9 << 60) | (ROOT >> 12)
    csrw satp, t0

    li t0, 3 << 11
    csrc mstatus, t0                   # MPP = U
    la t0, user
    csrw mepc, t0
    mret

user:
    li a0, VUSER
    li a1, 77
    sd a1, 0(a0)
    ld a2, 0(a0)
    li a3, VEXEC
    ld a2, 0(a3)                       # execute-only: load page fault
    csrr a2, sstatus                   # illegal in U-mode
    li a0, 0
    ecall

    .align 2
mhandler:
    addi s0, s0, 1
    csrr t0, mcause
    li t1, 8                           # ecall from U
    beq t0, t1, from_user
    SKIP_AND_MRET                      # mepc is identity-mapped RAM
from_user:
    li t0, 3
    bne s0, t0, fail
    # MPRV with MPP = U: M-mode loads go through the user mapping.
    li t0, 1 << 17
    csrs mstatus, t0
    li a0, VUSER
    ld a2, 0(a0)
    csrc mstatus, t0
    li t1, 77
    bne a2, t1, fail
    # MPRV with MPP = S and SUM, then MXR for the execute-only page.
    li t0, 1 << 11
    csrs mstatus, t0
    li t0, (1 << 17) | (1 << 18) | (1 << 19)
    csrs mstatus, t0
    ld a2, 0(a0)
    li a3, VEXEC
    ld a2, 0(a3)
    csrc mstatus, t0
    EXIT_PASS
fail:
    EXIT_FAIL 4
