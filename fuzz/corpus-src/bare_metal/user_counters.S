# U-mode without paging: cycle/time/instret gated by mcounteren and scounteren, an
# M-mode CSR from U (illegal), wfi from U (illegal), ecall from U to finish.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    li t0, 5                            # CY and IR, not TM
    csrw mcounteren, t0
    li t0, 1                            # CY only
    csrw scounteren, t0
    li t0, 3 << 11
    csrc mstatus, t0                    # MPP = U
    la t0, user
    csrw mepc, t0
    mret
user:
    rdcycle a0                          # allowed
    rdtime a1                           # illegal
    rdinstret a2                        # illegal (scounteren)
    csrr a3, mstatus                    # illegal
    wfi                                 # illegal in U-mode
    sret                                # illegal in U-mode
    ecall
    .align 2
handler:
    addi s0, s0, 1
    csrr t0, mcause
    li t1, 8
    beq t0, t1, 1f
    SKIP_AND_MRET
1:  li t0, 6
    bne s0, t0, fail
    # M-mode writes to the counters.
    csrw minstret, zero
    csrw mcycle, zero
    rdinstret a0
    EXIT_PASS
fail:
    EXIT_FAIL 8
