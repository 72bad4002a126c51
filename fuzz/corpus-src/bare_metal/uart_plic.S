# The UART and the PLIC: print a line, take the receive interrupt through the PLIC's
# M-mode context, claim it, echo the waiting input, complete it.
# expect: power-off
    .include "common.inc"
    .equ PRIORITY10, PLIC_BASE + 10 * 4
    .equ ENABLE0,    PLIC_BASE + 0x2000
    .equ CLAIM0,     PLIC_BASE + 0x200004
    SET_MTVEC handler
    PUTS hello
    li s0, 0
    li t0, PRIORITY10
    li t1, 7
    sw t1, 0(t0)
    li t0, ENABLE0
    li t1, 1 << 10
    sw t1, 0(t0)
    li t0, UART_BASE
    li t1, 1
    sb t1, 1(t0)                        # IER: receive data available
    li t0, 1 << 11                      # MEIE
    csrw mie, t0
    csrsi mstatus, 8                    # the input is already waiting: taken here
1:  bnez s0, 2f
    wfi
    j 1b
2:
    # Reading PLIC registers, including the pending bits and a missing context.
    li t0, PLIC_BASE + 0x1000
    lw t1, 0(t0)
    li t2, PLIC_BASE + 0x200000 + 0x5000
    lw t1, 0(t2)
    sw t1, 0(t2)
    EXIT_PASS

    .align 2
handler:
    addi s0, s0, 1
    li t0, CLAIM0
    lw t1, 0(t0)
    li t2, UART_BASE
2:  lbu t3, 5(t2)                       # LSR: data ready?
    andi t3, t3, 1
    beqz t3, 3f
    lbu t3, 0(t2)
    sb t3, 0(t2)                        # echo
    j 2b
3:  sw t1, 0(t0)                        # complete
    mret

hello:
    .asciz "hello from the corpus\n"
