# LR/SC success and failure, every AMO on words and doublewords, a misaligned AMO (store
# misaligned trap), an AMO on a device (access fault), and a reservation lost to a trap.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li s0, 0
    la a0, cell
    li a1, 5
    lr.d a2, (a0)
    sc.d a3, a1, (a0)                   # succeeds: a3 = 0
    bnez a3, fail
    sc.d a3, a1, (a0)                   # no reservation: fails
    beqz a3, fail
    lr.w a2, (a0)
    ecall                               # a trap drops the reservation
    sc.w a3, a1, (a0)
    beqz a3, fail
    li a1, -7
    amoadd.d a2, a1, (a0)
    amoswap.w a2, a1, (a0)
    amoxor.d a2, a1, (a0)
    amoand.w.aq a2, a1, (a0)
    amoor.d.rl a2, a1, (a0)
    amomin.w a2, a1, (a0)
    amomax.d a2, a1, (a0)
    amominu.w a2, a1, (a0)
    amomaxu.d.aqrl zero, a1, (a0)
    addi a4, a0, 4
    amoadd.d a2, a1, (a4)               # misaligned
    li a4, UART_BASE
    amoor.w a2, a1, (a4)                # not RAM
    lr.d a2, (a4)
    li t0, 4                            # ecall, misaligned, two device faults
    bne s0, t0, fail
    EXIT_PASS
fail:
    EXIT_FAIL 6

    .align 2
handler:
    addi s0, s0, 1
    SKIP_AND_MRET

    .align 3
cell:
    .dword 0
