# f runs in M-mode, ends with an ecall (cause 11) into the handler, which returns to f in
# U-mode; f's ecall from U-mode (cause 8) makes the handler power off.
    .include "common.inc"
_start:
    la t0, handler
    csrw mtvec, t0
    la t1, f
    jr t1
handler:
    csrr t2, mcause
    li t3, 8
    beq t2, t3, done
    csrw mstatus, zero      # mret goes to U-mode
    csrw mepc, t1
    mret
f:
    addi a0, a0, 1
hooked:
    addi a1, a1, 2
    ecall
done:
    POWER_OFF
