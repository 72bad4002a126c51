# The CLINT as seen by the hart: the time CSR shadows mtime (also after mtime is
# written), mtimecmp/msip read back, 32-bit halves, and the timer firing relative to a
# rewritten mtime. Only differences small against the elapsed time are printed.
.include "common.inc"

# CLOSE a, b: prints whether 0 <= a - b < 2^20 (about 0.1 s of mtime).
.macro CLOSE label, a, b
    SAVE_TEMPS
    sub a1, \a, \b
    srli a1, a1, 20
    seqz a1, a1
    PRINT_AS \label, a1
    RESTORE_TEMPS
.endm

START
    SET_MTVEC _trap_skip
    li s0, CLINT_MTIME
    li s1, CLINT_MTIMECMP
    li s2, CLINT_MSIP
    PUTS "-- time follows mtime\n"
    ld t3, 0(s0)
    rdtime t4
    CLOSE time_vs_mtime, t4, t3
    ld t5, 0(s0)
    CLOSE mtime_advances, t5, t3

    PUTS "-- mtime written\n"
    li t3, 0x0000010000000000
    sd t3, 0(s0)
    ld t4, 0(s0)
    CLOSE mtime_vs_written, t4, t3
    rdtime t4
    CLOSE time_vs_written, t4, t3
    li t3, 0x0000020000001000
    sw t3, 0(s0)
    srli t4, t3, 32
    sw t4, 4(s0)
    ld t4, 0(s0)
    CLOSE halves, t4, t3
    rdtime t4
    CLOSE time_vs_halves, t4, t3

    PUTS "-- the timer fires relative to the new mtime\n"
    li t3, 1 << 7
    csrw mie, t3
    ld t3, 0(s0)
    li t4, 500000           # 50 ms: QEMU must not get there first, even on a busy host
    add t3, t3, t4
    sd t3, 0(s1)
    PRINT_CSR_MASKED mip, 0x80
    wfi
    PRINT_CSR_MASKED mip, 0x80
    ld t4, 0(s0)
    CLOSE after_wfi, t4, t3
    li t4, -1
    sd t4, 0(s1)
    PUTS "-- mtime written backwards: the timer still waits\n"
    sd zero, 0(s0)
    rdtime t4
    CLOSE time_vs_zero, t4, zero
    ld t3, 0(s0)
    li t4, 500000           # 50 ms: QEMU must not get there first, even on a busy host
    add t3, t3, t4
    sd t3, 0(s1)
    PRINT_CSR_MASKED mip, 0x80
    wfi
    PRINT_CSR_MASKED mip, 0x80
    ld t4, 0(s0)
    CLOSE after_wfi, t4, t3
    li t4, -1
    sd t4, 0(s1)
    csrw mie, zero

    PUTS "-- registers read back\n"
    li t3, 0x123456789abcdef0
    sd t3, 0(s1)
    ld t4, 0(s1)
    PRINT t4
    lw t4, 4(s1)
    PRINT t4
    li t3, -1
    sd t3, 0(s1)
    li t3, 0xfffffffe
    sw t3, 0(s2)
    lw t4, 0(s2)
    PRINT t4
    li t3, 3
    sw t3, 0(s2)
    lw t4, 0(s2)
    PRINT t4
    PRINT_CSR_MASKED mip, 0x8
    sw zero, 0(s2)
    PRINT_CSR_MASKED mip, 0x8
    EXIT
