# Timer interrupts from the CLINT: wfi until mtimecmp, with direct and vectored mtvec,
# then a software interrupt through msip, and mtime written by the guest.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    li s1, MTIMECMP
    li s2, MTIME
    li t0, 1 << 7                       # MTIE
    csrw mie, t0
    csrsi mstatus, 8                    # MIE
    ld t0, 0(s2)
    addi t0, t0, 200
    sd t0, 0(s1)
1:  wfi
    beqz s0, 1b
    # Vectored: the timer goes to base + 4 * 7.
    la t0, vectors
    ori t0, t0, 1
    csrw mtvec, t0
    ld t0, 0(s2)
    addi t0, t0, 50
    sw t0, 0(s1)                        # low half only
    sw zero, 4(s1)
2:  wfi
    li t1, 2
    blt s0, t1, 2b
    # Software interrupt.
    SET_MTVEC handler
    li t0, 1 << 3                       # MSIE
    csrw mie, t0
    li t0, MSIP
    li t1, 1
    sw t1, 0(t0)
    nop
    li t1, 3
    bne s0, t1, fail
    # mtime is writable; wfi with nothing enabled still idles.
    li t0, 1000
    sd t0, 0(s2)
    csrw mie, zero
    EXIT_PASS
fail:
    EXIT_FAIL 5

    .align 2
handler:
    addi s0, s0, 1
    csrr t0, mcause
    bgez t0, fail                       # must be an interrupt
    li t0, -1
    sd t0, 0(s1)                        # timer off
    li t0, MSIP
    sw zero, 0(t0)                      # software interrupt off
    mret

    .align 2
    .option push
    .option norvc                       # vector entries are 4 bytes apart
vectors:
    .rept 7
    j fail
    .endr
    j handler
    .option pop
