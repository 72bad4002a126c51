# The PLIC and the UART's interrupt: priorities, pending bits, per-context enables and
# thresholds, claim/complete, MEIP/SEIP in mip, the 16550's THRE interrupt (raised by
# enabling it in IER, cleared by reading IIR) and an external interrupt taken in M-mode.
#
# Printing goes through the same UART (and would raise THRE again), so the observations
# are logged to memory and printed at the end with the UART's interrupts off.
# IIR is printed with bits 7:6 masked: they say whether the FIFOs are enabled, which
# QEMU derives from FCR and vm-superio's 16550 always reports as enabled.
# Not tested, because the two differ:
# - completing a claim while the source's line is still high: the PLIC spec's gateway
#   then forwards a new request (pandare does); QEMU's PLIC waits for the device to
#   signal again;
# - a line that drops before its request is claimed: the PLIC spec (and QEMU) keep the
#   request pending until claimed; pandare's PLIC drops it.
.include "common.inc"

.equ PLIC, 0x0c000000
.equ PLIC_PENDING, PLIC + 0x1000
.equ PLIC_ENABLE0, PLIC + 0x2000
.equ PLIC_ENABLE1, PLIC + 0x2080
.equ PLIC_CONTEXT0, PLIC + 0x200000
.equ PLIC_CONTEXT1, PLIC + 0x201000
.equ UART_IRQ, 10
.equ MEIP, 1 << 11
.equ SEIP, 1 << 9

# LOG reg: appends a value to the log (s4 = next slot).
.macro LOG reg
    sd \reg, 0(s4)
    addi s4, s4, 8
.endm

.macro LOG_PENDING
    li t0, PLIC_PENDING
    lw t1, 0(t0)
    LOG t1
.endm

.macro LOG_MIP
    csrr t1, mip
    li t0, MEIP | SEIP
    and t1, t1, t0
    LOG t1
.endm

.macro LOG_IIR
    lbu t1, 2(s1)
    andi t1, t1, 0x3f
    LOG t1
.endm

START
    SET_MTVEC m_handler
    la s4, log
    li s0, PLIC
    li s1, UART_BASE
    li s2, PLIC_CONTEXT0
    li s3, PLIC_CONTEXT1
    # priorities
    li t3, 7
    sw t3, 4 * UART_IRQ(s0)
    lw t4, 4 * UART_IRQ(s0)
    LOG t4
    li t3, 1
    sw t3, 4 * UART_IRQ(s0)
    lw t4, 4 * UART_IRQ(s0)
    LOG t4
    lw t4, 4 * 3(s0)
    LOG t4
    LOG_PENDING
    # the UART's THRE interrupt
    LOG_IIR
    li t3, 0x02
    sb t3, 1(s1)            # IER: transmitter holding register empty
    LOG_PENDING
    LOG_IIR                 # reading it clears a THRE interrupt
    LOG_IIR
    sb zero, 1(s1)
    sb t3, 1(s1)            # raised again by enabling it
    LOG_PENDING
    LOG_MIP
    # enable for context 0 (M): MEIP
    li t3, 1 << UART_IRQ
    li t4, PLIC_ENABLE0
    sw t3, 0(t4)
    lw t5, 0(t4)
    LOG t5
    sw zero, 0(s2)          # threshold 0
    LOG_MIP
    li t3, 1
    sw t3, 0(s2)            # threshold 1 masks priority 1
    lw t5, 0(s2)
    LOG t5
    LOG_MIP
    sw zero, 0(s2)
    # claim and complete
    lw t5, 4(s2)            # claim
    LOG t5
    LOG_PENDING
    LOG_MIP
    lw t6, 4(s2)            # nothing left to claim
    LOG t6
    LOG_IIR                 # clears THRE: the line drops
    sw t5, 4(s2)            # complete
    LOG_PENDING
    LOG_MIP
    # context 1 (S): SEIP
    li t4, PLIC_ENABLE0
    sw zero, 0(t4)
    li t3, 1 << UART_IRQ
    li t4, PLIC_ENABLE1
    sw t3, 0(t4)
    sw zero, 0(s3)
    sb zero, 1(s1)
    li t3, 0x02
    sb t3, 1(s1)
    LOG_PENDING
    LOG_MIP
    lw t5, 4(s3)
    LOG t5
    LOG_IIR
    sw t5, 4(s3)
    LOG_MIP
    li t4, PLIC_ENABLE1
    sw zero, 0(t4)
    # an external interrupt taken in M
    li t3, 1 << UART_IRQ
    li t4, PLIC_ENABLE0
    sw t3, 0(t4)
    li t3, MEIP
    csrw mie, t3
    li s5, 0
    sb zero, 1(s1)
    li t3, 0x02
    sb t3, 1(s1)            # pending now, MIE still clear
    nop
    csrsi mstatus, MSTATUS_MIE
after_mie:
    csrci mstatus, MSTATUS_MIE
    LOG s5
    LOG s6
    LOG s7
    la t3, after_mie
    sub t3, s8, t3
    LOG t3
    csrw mie, zero
    LOG_PENDING
    LOG_MIP

    sb zero, 1(s1)
    li t4, PLIC_ENABLE0
    sw zero, 0(t4)
    la s3, log
1:  beq s3, s4, 2f
    ld t5, 0(s3)
    PRINT t5
    addi s3, s3, 8
    j 1b
2:  EXIT

    .balign 4
m_handler:
    csrr s6, mcause
    bgez s6, 1f
    csrr s8, mepc
    li s5, 1
    li t0, PLIC_CONTEXT0
    lw s7, 4(t0)            # claim
    li t1, UART_BASE
    sb zero, 1(t1)          # IER off
    sw s7, 4(t0)            # complete
    mret
1:  j _trap_skip

    .bss
    .balign 8
log:
    .space 8 * 128
