# Delegated interrupts and exceptions in S-mode without paging: a software interrupt
# raised by M-mode through mip.SSIP, an S-mode timer interrupt (STIP), TW making wfi
# illegal, TVM making satp illegal, and vectored stvec.
# expect: power-off
    .include "common.inc"
    SET_MTVEC mhandler
    la t0, svectors
    ori t0, t0, 1
    csrw stvec, t0
    li t0, (1 << 1) | (1 << 5)          # SSI, STI
    csrw mideleg, t0
    csrw mie, t0
    li t0, 1 << 2                       # illegal instruction delegated to S
    csrw medeleg, t0
    li s0, 0
    li t0, 3 << 11
    csrc mstatus, t0
    li t0, (1 << 11) | (1 << 1)         # MPP = S, SIE
    csrs mstatus, t0
    la t0, supervisor
    csrw mepc, t0
    mret
supervisor:
    ecall                               # to M: raises SSIP for us
    nop
    ecall                               # to M: raises STIP
    nop
    li t0, 2
    bne s0, t0, sfail
    ecall                               # to M: sets TW and TVM
    wfi                                 # illegal (delegated)
    csrr a0, satp                       # illegal
    li t0, 4
    bne s0, t0, sfail
    li a0, -1
    ecall                               # to M: finish
sfail:
    li a0, -2
    ecall

    .align 2
    .option push
    .option norvc
svectors:
    j sexception                        # 0: exceptions
    j ssoft                             # 1: SSI
    j sfail
    j sfail
    j sfail
    j stimer                            # 5: STI
    .option pop
ssoft:
    addi s0, s0, 1
    csrci sip, 2
    sret
stimer:
    addi s0, s0, 1
    li t0, 1 << 5                       # only M-mode can clear STIP: mask it
    csrc sie, t0
    sret
sexception:
    addi s0, s0, 1
    SKIP_AND_SRET

    .align 2
mhandler:
    csrr t6, mepc
    addi t6, t6, 4
    csrw mepc, t6
    addi s1, s1, 1
    li t0, 1
    beq s1, t0, raise_ssip
    li t0, 2
    beq s1, t0, raise_stip
    li t0, 3
    beq s1, t0, traps_on
    li t0, -1
    bne a0, t0, mfail
    EXIT_PASS
raise_ssip:
    csrsi mip, 2
    mret
raise_stip:
    li t0, 1 << 5
    csrs mip, t0
    mret
traps_on:
    li t0, 1 << 5
    csrc mip, t0
    li t0, (1 << 20) | (1 << 21)         # TVM, TW (TSR would trap our own sret)
    csrs mstatus, t0
    mret
mfail:
    EXIT_FAIL 9
