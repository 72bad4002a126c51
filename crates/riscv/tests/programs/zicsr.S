# Zicsr: read/write/set/clear semantics (register and immediate forms, x0 rules), WARL
# fields of the machine and supervisor CSRs, and illegal accesses (nonexistent CSRs,
# writes to read-only CSRs, too little privilege, counters gated by [ms]counteren, TVM).
#
# Where the spec leaves WARL fields to the implementation, only the architectural bits
# are printed: QEMU also implements AIA local interrupts (mie bits 13 and up), H-extension
# delegation bits (even with h=false), medeleg[11] and 16 hpmcounters.
# Writes of a reserved xtvec mode are not tested: QEMU ignores the whole write, pandare
# keeps the old mode and takes the new base (both are legal WARL behaviour).
#
# Known QEMU deviations, corrected in its output:
# - mepc/sepc bit 0 is always zero with C (QEMU keeps it);
# - pmpaddr registers hold 54 bits on RV64 (QEMU keeps all 64).
# - (mstatus.UXL/SXL: QEMU lets UXL be written to 3, which is not legal on RV64; the
#   program does not write those bits.)
# qemu-fix: mepc=ffffffffffffffff => mepc=fffffffffffffffe
# qemu-fix: sepc=ffffffffffffffff => sepc=fffffffffffffffe
# qemu-fix: pmpaddr0=ffffffffffffffff => pmpaddr0=003fffffffffffff
.include "common.inc"

START
    SET_MTVEC _trap_skip
    PUTS "-- read/write/set/clear\n"
    csrr s2, mscratch       # the trap handler's stack
    li t3, 0x1234
    csrrw t5, mscratch, t3
    PRINT t5
    li t3, 0xff00
    csrrs t5, mscratch, t3
    PRINT t5
    li t3, 0x0ff0
    csrrc t5, mscratch, t3
    PRINT t5
    csrr t5, mscratch
    PRINT t5
    csrrwi t5, mscratch, 0x1f
    PRINT t5
    csrrsi t5, mscratch, 0x0
    csrrsi t5, mscratch, 0x60 & 0x1f
    PRINT t5
    csrrci t5, mscratch, 0x3
    PRINT t5
    csrr t5, mscratch
    PRINT t5
    # rd == rs1
    li t5, 0x77
    csrrw t5, mscratch, t5
    PRINT t5
    csrr t5, mscratch
    PRINT t5
    csrw mscratch, s2

    PUTS "-- read-only CSRs: reads and non-writing forms are fine\n"
    csrr t5, mhartid
    PRINT t5
    csrrs t5, mhartid, x0
    csrrc t5, mhartid, x0
    csrrsi t5, mhartid, 0
    csrrci t5, mhartid, 0
    csrr t5, mvendorid
    PRINT t5
    PUTS "-- ... but writes trap, even of zero or with rd = x0\n"
    li t3, 0
    csrrw t5, mhartid, t3
    csrrs t5, mhartid, t3
    csrw mhartid, zero
    csrrwi t5, mhartid, 0
    csrrsi t5, mhartid, 1
    csrw cycle, zero
    csrs instret, t3
    csrw time, zero

    PUTS "-- nonexistent CSRs\n"
    csrr t5, 0x7c0
    csrw 0x5c0, t3
    csrr t5, 0x3a4
    csrr t5, 0x015
    csrr t5, 0x6c0

    PUTS "-- WARL fields\n"
    li t3, -1
    csrw mie, t3
    PRINT_CSR_MASKED mie, 0xaaa
    csrw mie, zero
    csrw mideleg, t3
    PRINT_CSR_MASKED mideleg, 0x222
    csrw medeleg, t3
    PRINT_CSR_MASKED medeleg, 0xb3ff
    csrw mideleg, zero
    csrw medeleg, zero
    csrw mcounteren, t3
    PRINT_CSR_MASKED mcounteren, 0x7
    csrw scounteren, t3
    PRINT_CSR_MASKED scounteren, 0x7
    csrw mcounteren, zero
    csrw scounteren, zero
    csrw mepc, t3
    PRINT_CSR mepc
    csrw sepc, t3
    PRINT_CSR sepc
    csrw mcause, t3
    PRINT_CSR mcause
    csrw scause, t3
    PRINT_CSR scause
    csrw mtval, t3
    PRINT_CSR mtval
    csrw stval, t3
    PRINT_CSR stval
    csrw sscratch, t3
    PRINT_CSR sscratch
    csrr t5, misa
    PRINT t5
    csrw misa, zero
    csrr t5, misa
    PRINT t5
    csrr t4, mtvec
    li t3, 0x80000101
    csrw mtvec, t3
    PRINT_CSR mtvec
    li t3, 0x80000300
    csrw mtvec, t3
    PRINT_CSR mtvec
    csrw mtvec, t4
    li t3, 0x80000305
    csrw stvec, t3
    PRINT_CSR stvec
    li t3, 0x80000404
    csrw stvec, t3
    PRINT_CSR stvec
    PUTS "-- mstatus and sstatus\n"
    csrr s1, mstatus
    li t3, ~(0xf << 32)
    csrs mstatus, t3
    PRINT_CSR mstatus
    PRINT_CSR sstatus
    li t3, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPRV
    csrc mstatus, t3
    csrw sstatus, zero
    PRINT_CSR mstatus
    PRINT_CSR sstatus
    li t3, ~(0xf << 32)
    csrw sstatus, t3
    PRINT_CSR mstatus
    li t3, MSTATUS_MPP
    csrc mstatus, t3
    li t3, 2 << 11
    csrs mstatus, t3
    PRINT_CSR mstatus
    csrw mstatus, s1
    PRINT_CSR mstatus
    PUTS "-- sie and sip are views through mideleg\n"
    li t3, 0x222
    csrw mideleg, t3
    li t3, -1
    csrw sie, t3
    PRINT_CSR sie
    PRINT_CSR_MASKED mie, 0xaaa
    csrw mie, zero
    li t3, 0x20
    csrw mideleg, t3
    li t3, -1
    csrw sie, t3
    PRINT_CSR sie
    PRINT_CSR_MASKED mie, 0xaaa
    csrw mie, zero
    li t3, 0x222
    csrw mideleg, t3
    csrsi sip, 2
    csrr t5, sip
    andi t5, t5, 0x222
    PRINT t5
    csrr t5, mip
    andi t5, t5, 0x222
    PRINT t5
    csrci sip, 2
    li t3, 0x222
    csrs mip, t3
    csrr t5, mip
    andi t5, t5, 0x222
    PRINT t5
    csrc mip, t3
    csrr t5, mip
    andi t5, t5, 0x222
    PRINT t5
    csrw mideleg, zero
    PUTS "-- satp\n"
    li t3, (8 << 60) | (0xffff << 44) | 0x12345
    csrw satp, t3
    PRINT_CSR satp
    li t3, (9 << 60) | 0x6789
    csrw satp, t3
    PRINT_CSR satp
    .irp mode, 1, 7, 10, 11, 15
    li t3, (\mode << 60) | 0x1111
    csrw satp, t3
    PRINT_CSR satp
    .endr
    csrw satp, zero
    PRINT_CSR satp
    PUTS "-- pmp\n"
    PRINT_CSR pmpcfg0
    PRINT_CSR pmpaddr0

    PUTS "-- privilege checks from S\n"
    TO_S
    csrr t5, sstatus
    PUTS "sstatus ok\n"
    csrr t5, mstatus
    csrw mscratch, zero
    csrr t5, mhartid
    csrr t5, sscratch
    csrr t5, cycle
    csrr t5, time
    csrr t5, instret
    TO_M
    li t3, 5
    csrw mcounteren, t3
    TO_S
    csrr t5, cycle
    csrr t5, time
    csrr t5, instret
    csrr t5, hpmcounter3
    TO_M
    li t3, MSTATUS_TVM
    csrs mstatus, t3
    TO_S
    csrr t5, satp
    csrw satp, zero
    sfence.vma
    TO_M
    li t3, MSTATUS_TVM
    csrc mstatus, t3

    PUTS "-- privilege checks from U\n"
    li t3, 7
    csrw mcounteren, t3
    csrw scounteren, zero
    TO_U
    csrr t5, sstatus
    csrr t5, sscratch
    csrr t5, cycle
    csrr t5, time
    csrr t5, mstatus
    csrr t5, satp
    TO_M
    li t3, 2
    csrw scounteren, t3
    TO_U
    csrr t5, cycle
    csrr t5, time
    PUTS "time ok\n"
    csrr t5, instret
    TO_M
    EXIT
