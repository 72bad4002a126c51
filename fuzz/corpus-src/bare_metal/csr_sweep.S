# Reads, sets, clears and writes every implemented CSR with all ones (WARL fields must
# stay legal) and a few unimplemented ones; traps are counted and skipped.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    li a1, -1
    .irp csr, 0x001, 0x002, 0x003, 0xc00, 0xc01, 0xc02, 0xc03, 0xc1f, 0x100, 0x104, 0x105, 0x106, 0x10a, 0x140, 0x141, 0x142, 0x143, 0x144, 0x180, 0xf11, 0xf12, 0xf13, 0xf14, 0xf15, 0x301, 0x302, 0x303, 0x304, 0x306, 0x30a, 0x320, 0x340, 0x341, 0x342, 0x343, 0x344, 0x3a0, 0x3a1, 0x3a2, 0x3b0, 0x3b7, 0x3bf, 0xb00, 0xb02, 0xb03, 0xb1f, 0x323, 0x33f, 0x7b0, 0x5a8, 0x7a0
    csrr a0, \csr
    csrrs a2, \csr, a1
    csrrc a3, \csr, a1
    csrrw a4, \csr, a1
    csrrwi a5, \csr, 0
    csrrsi a6, \csr, 31
    csrrci a7, \csr, 1
    csrw \csr, a0
    .endr
    # mstatus with everything set: MPRV with MPP = M keeps data accesses untranslated.
    csrr s1, mstatus
    csrw mstatus, a1
    csrr a0, mstatus
    csrw mstatus, s1
    # satp: Sv39, Sv48 and an unsupported mode (ignored); M-mode does not translate.
    li t0, (8 << 60) | 0x80100
    csrw satp, t0
    li t0, (9 << 60) | 0x80100
    csrw satp, t0
    li t0, (10 << 60) | 0x1
    csrw satp, t0
    csrw satp, zero
    # Counters: writing minstret and mcycle, then reading them back.
    li t0, -2
    csrw minstret, t0
    csrw mcycle, t0
    csrr a0, minstret
    csrr a0, mcycle
    csrw mip, zero
    csrw mie, zero
    EXIT_PASS

    .align 2
handler:
    addi s0, s0, 1
    SKIP_AND_MRET
