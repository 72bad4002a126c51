# Interrupts: supervisor software interrupts raised by M-mode (mip.SSIP) and delegated to
# an S-mode handler through a vectored stvec, the global enables per privilege, WFI
# waking on a pending-but-disabled interrupt, priority between pending interrupts,
# undelegated interrupts going to M, the CLINT's msip, and the CLINT timer (mtimecmp)
# reaching an M-mode handler after WFI, while spinning, and from WFI with MIE set.
#
# Interrupts are made pending while disabled and then enabled by a CSR write, so both
# emulators take them at the same instruction; only facts independent of timing are
# printed (causes, and whether epc is where it must be).
.include "common.inc"

.equ SSIP, 1 << 1
.equ MSIP, 1 << 3
.equ STIP, 1 << 5
.equ MTIP, 1 << 7

# Appends \cause_csr to the log (s4 = next slot). Uses t0 only.
.macro LOG_CAUSE cause_csr
    csrr t0, \cause_csr
    sd t0, 0(s4)
    addi s4, s4, 8
.endm

# CHECK_EPC reg, label: prints whether reg == label.
.macro CHECK_EPC reg, label
    SAVE_TEMPS
    la t0, \label
    sub a1, \reg, t0
    seqz a1, a1
    PRINT_AS "epc at \label", a1
    RESTORE_TEMPS
.endm

START
    SET_MTVEC m_handler
    la t0, s_vectors + 1
    csrw stvec, t0
    PRINT_CSR stvec
    la s4, log

    PUTS "-- SSIP delegated to S, taken on entering S\n"
    li t3, SSIP | STIP
    csrw mideleg, t3
    li t3, SSIP
    csrw mie, t3
    csrsi mstatus, MSTATUS_SIE
    csrsi mip, SSIP
    PRINT_CSR_MASKED mip, 0x222
    TO_S
s_first:
    nop
    TO_M
    CHECK_EPC s11, s_first
    PRINT_CSR_MASKED mip, 0x222

    PUTS "-- in U, S interrupts are taken even with SIE = 0\n"
    csrci mstatus, MSTATUS_SIE
    csrsi mip, SSIP
    TO_U
u_first:
    nop
    TO_M
    CHECK_EPC s11, u_first

    PUTS "-- in S with SIE = 0: not taken, but WFI wakes; taken once SIE is set\n"
    TO_S
    csrsi sip, SSIP
    wfi
    PUTS "woke\n"
    csrsi sstatus, MSTATUS_SIE
s_after_sie:
    nop
    csrci sstatus, MSTATUS_SIE
    TO_M
    CHECK_EPC s11, s_after_sie

    PUTS "-- priority: SSI before STI, both delegated\n"
    li t3, SSIP | STIP
    csrs mie, t3
    csrs mip, t3
    csrsi mstatus, MSTATUS_SIE
    TO_S
    nop
    TO_M
    csrci mstatus, MSTATUS_SIE
    li t3, STIP
    csrc mip, t3

    PUTS "-- not delegated: SSI goes to M when MIE is set\n"
    # (mret sets MPIE, so the TO_S/TO_M round trips above left MIE set.)
    PRINT_CSR_MASKED mstatus, MSTATUS_MIE
    csrci mstatus, MSTATUS_MIE
    csrw mideleg, zero
    li t3, SSIP
    csrw mie, t3
    csrsi mip, SSIP
    nop
    csrsi mstatus, MSTATUS_MIE
m_after_mie:
    nop
    csrci mstatus, MSTATUS_MIE
    CHECK_EPC s11, m_after_mie
    PUTS "   ... and from S even with MIE clear\n"
    csrsi mip, SSIP
    TO_S
s_to_m:
    nop
    TO_M
    CHECK_EPC s11, s_to_m

    PUTS "-- CLINT msip\n"
    csrci mstatus, MSTATUS_MIE
    li t3, CLINT_MSIP
    li t4, 1
    sw t4, 0(t3)
    PRINT_CSR_MASKED mip, MSIP
    li t3, MSIP
    csrw mie, t3
    csrsi mstatus, MSTATUS_MIE
m_after_msie:
    nop
    csrci mstatus, MSTATUS_MIE
    CHECK_EPC s11, m_after_msie
    PRINT_CSR_MASKED mip, MSIP

    PUTS "-- timer: mtimecmp in the past raises MTIP at once, far future clears it\n"
    li t3, CLINT_MTIMECMP
    sd zero, 0(t3)
    PRINT_CSR_MASKED mip, MTIP
    li t4, -1
    sd t4, 0(t3)
    PRINT_CSR_MASKED mip, MTIP
    # 32-bit halves
    sw zero, 0(t3)
    PRINT_CSR_MASKED mip, MTIP
    sw zero, 4(t3)
    PRINT_CSR_MASKED mip, MTIP
    sd t4, 0(t3)

    PUTS "-- timer: WFI with MIE clear wakes, the interrupt is taken once MIE is set\n"
    li t3, MTIP
    csrw mie, t3
    call arm_timer
    wfi
    PRINT_CSR_MASKED mip, MTIP
    csrsi mstatus, MSTATUS_MIE
m_after_timer:
    nop
    csrci mstatus, MSTATUS_MIE
    CHECK_EPC s11, m_after_timer
    PRINT_CSR_MASKED mip, MTIP

    PUTS "-- timer: interrupting a spin loop\n"
    li s5, 0
    call arm_timer
    csrsi mstatus, MSTATUS_MIE
spin:
    beqz s5, spin
    csrci mstatus, MSTATUS_MIE
    CHECK_EPC s11, spin

    PUTS "-- timer: WFI with MIE set\n"
    call arm_timer
    csrsi mstatus, MSTATUS_MIE
    wfi
after_wfi:
    csrci mstatus, MSTATUS_MIE
    CHECK_EPC s11, after_wfi

    PUTS "-- timer: WFI in S wakes on an M interrupt, which preempts S\n"
    call arm_timer
    TO_S
    wfi
s_after_wfi:
    nop
    TO_M
    CHECK_EPC s11, s_after_wfi

    PUTS "-- software-written SEIP survives device activity (mip.SEIP is the OR of the\n"
    PUTS "   written bit and the PLIC's line)\n"
    csrw mie, zero
    li t3, 1 << 9
    csrs mip, t3
    li t4, UART_BASE
    lbu t5, 5(t4)
    csrr t5, mip
    andi t5, t5, 0x222
    PRINT t5
    li t3, 1 << 9
    csrc mip, t3
    csrr t5, mip
    andi t5, t5, 0x222
    PRINT t5

    PUTS "-- cause log\n"
    la s3, log
1:  beq s3, s4, 2f
    ld t5, 0(s3)
    PRINT_AS cause, t5
    addi s3, s3, 8
    j 1b
2:  EXIT

# Sets mtimecmp 5 ms (50000 ticks of the 10 MHz mtime) after the current mtime: far
# enough that QEMU cannot reach it before the WFI that follows, even when it has to
# translate the code in between first.
arm_timer:
    li t0, CLINT_MTIME
    ld t1, 0(t0)
    li t0, 50000
    add t1, t1, t0
    li t0, CLINT_MTIMECMP
    sd t1, 0(t0)
    ret

# M-mode: interrupts are logged and acknowledged here; exceptions go to _trap_skip.
    .balign 4
m_handler:
    csrrw sp, mscratch, sp
    addi sp, sp, -32
    sd t0, 0(sp)
    sd t1, 8(sp)
    csrr t0, mcause
    bltz t0, 1f
    ld t0, 0(sp)
    ld t1, 8(sp)
    addi sp, sp, 32
    csrrw sp, mscratch, sp
    j _trap_skip
1:  LOG_CAUSE mcause
    # An interrupt that came just before a WFI (QEMU's timer runs on the host's clock,
    # and a loaded host may be slow to reach the WFI) resumes after it, as if it had
    # woken it: returning to the WFI would wait forever.
    csrr t0, mepc
    lwu t1, 0(t0)
    sd t2, 16(sp)
    li t2, 0x10500073       # wfi
    bne t1, t2, 4f
    addi t0, t0, 4
    csrw mepc, t0
4:  ld t2, 16(sp)
    csrr s11, mepc
    li s5, 1
    csrr t0, mcause
    andi t0, t0, 63
    li t1, 7
    bne t0, t1, 2f
    li t0, CLINT_MTIMECMP   # timer: disarm
    li t1, -1
    sd t1, 0(t0)
    j 3f
2:  li t1, 3
    bne t0, t1, 2f
    li t0, CLINT_MSIP       # software: clear msip
    sw zero, 0(t0)
    j 3f
2:  csrci mip, SSIP         # supervisor software (not delegated)
3:  ld t0, 0(sp)
    ld t1, 8(sp)
    addi sp, sp, 32
    csrrw sp, mscratch, sp
    mret

# S-mode vector table.
    .balign 64
    .option push
    .option norvc
s_vectors:
    j _strap_skip           # exceptions
    j s_ssi                 # 1: supervisor software
    j s_unexpected
    j s_unexpected
    j s_unexpected
    j s_sti                 # 5: supervisor timer
    j s_unexpected
    j s_unexpected
    j s_unexpected
    j s_unexpected          # 9: supervisor external
    .option pop

s_ssi:
    csrw sscratch, t0       # (the trap stack pointer is restored below)
    LOG_CAUSE scause
    csrr s11, sepc
    csrci sip, SSIP
    la t0, _strap_stack_top
    csrrw t0, sscratch, t0
    sret

s_sti:
    csrw sscratch, t0
    LOG_CAUSE scause
    csrr s11, sepc
    li t0, STIP             # S cannot clear STIP: mask it instead
    csrc sie, t0
    la t0, _strap_stack_top
    csrrw t0, sscratch, t0
    sret

s_unexpected:
    PUTS "unexpected S interrupt\n"
    j _exit

    .bss
    .balign 8
log:
    .space 8 * 64
