# Regression: S-mode stuck in a trap loop (stvec cannot be fetched, the faults are
# delegated) must still let virtual time pass, so the machine timer interrupt, which
# M-mode takes from S-mode whatever mstatus.MIE says, gets it out.
# expect: power-off
    .include "common.inc"
    SET_MTVEC mhandler
    li t0, 0x40000000                   # nothing there
    csrw stvec, t0
    li t0, (1 << 1) | (1 << 2)          # instruction access faults and illegal to S
    csrw medeleg, t0
    li t0, MTIME
    ld t1, 0(t0)
    addi t1, t1, 50
    li t0, MTIMECMP
    sd t1, 0(t0)
    li t0, 1 << 7                       # MTIE
    csrw mie, t0
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, 1 << 11                      # MPP = S
    csrs mstatus, t0
    la t0, supervisor
    csrw mepc, t0
    mret
supervisor:
    .word 0xffffffff                    # illegal, to the unfetchable stvec

    .align 2
mhandler:
    csrr t0, mcause
    li t1, (1 << 63) | 7                # machine timer interrupt
    bne t0, t1, fail
    csrr t0, mepc
    li t1, 0x40000000                   # taken while stuck at stvec
    bne t0, t1, fail
    EXIT_PASS
fail:
    EXIT_FAIL 12
