# M-mode ecall and ebreak (32-bit and compressed) into a handler that checks mcause and
# skips the instruction.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    ecall
    ecall
    ebreak
    c.ebreak
    li t0, 4
    bne s0, t0, fail
    EXIT_PASS
fail:
    EXIT_FAIL 1

    .align 2
handler:
    addi s0, s0, 1
    csrr t0, mcause
    li t1, 11               # ecall from M
    beq t0, t1, 1f
    li t1, 3                # breakpoint
    bne t0, t1, fail
1:  SKIP_AND_MRET
