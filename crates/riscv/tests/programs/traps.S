# Privileged traps: illegal instructions (mtval = the instruction bits), ecall from M, S
# and U, ebreak, access faults, the mstatus trap stack through mret/sret, MPRV on mret,
# delegation of exceptions to S-mode through medeleg, and TSR/TW.
#
# Known QEMU deviations avoided here:
# - an mret below M-mode raises illegal-instruction with a stale mtval in QEMU (bits of
#   some earlier instruction); pandare gives the mret's bits. Its tval is not printed.
# - QEMU keeps mepc bit 0 and mret then jumps to the odd address; the spec makes mepc[0]
#   read as zero (pandare). Not tested here (see zicsr.S for the CSR read).
.include "common.inc"

# From S-mode, continue in U at the next instruction (sret).
.macro S_TO_U
    SAVE_TEMPS
    li t0, MSTATUS_SPP
    csrc sstatus, t0
    la t0, .Ls_to_u\@
    csrw sepc, t0
    RESTORE_TEMPS
    sret
.Ls_to_u\@:
.endm

START
    SET_MTVEC _trap_skip
    SET_STVEC _strap_skip
    PUTS "-- illegal instructions in M\n"
    .word 0x00000000       # two all-zero parcels
    .word 0xffffffff
    .word 0x0000007f       # longer-than-32-bit encoding prefix
    .word 0x0200103b       # OP-32 funct7 0000001 funct3 001 (reserved)
    .word 0x4000103b       # sllw with funct7 0100000
    .word 0x04005013       # srli with imm[11:6] = 000001
    .word 0x0200101b       # slliw with shamt[5] set
    .word 0x0400101b       # slliw with funct7 0000010
    .word 0x4200501b       # sraiw with shamt[5] set
    .word 0x10300073       # SYSTEM funct7 0001000 rs2 = 3
    .word 0x000000f3       # ecall with rd = ra
    .word 0x30200173       # mret with rd = sp
    .word 0x10508073       # wfi with rs1 = ra
    .word 0x120000f3       # sfence.vma with rd = ra
    .word 0x00004073       # SYSTEM funct3 100
    .word 0x0000300f       # MISC-MEM funct3 011
    .word 0x0000200f       # cbo.inval (no Zicbom)
    .word 0x1010202f       # lr.w with rs2 = 1
    .word 0x2800202f       # AMO funct5 00101
    .word 0x0000302f       # AMO width 011? (amo*.d is 011: this is amoadd.d x0, x0, (x0))
    .word 0x0000502f       # AMO funct3 101
    .word 0x00007053       # an FP op while FS is off
    .word 0x00001007       # flw while FS is off
    PUTS "-- ecall and ebreak in M\n"
    ecall
    ebreak
    c.ebreak

    PUTS "-- access faults\n"
    li s1, 0
    ld t5, 0(s1)
    sd t5, 8(s1)
    li s1, 0x88000000      # just past the end of 128 MiB of RAM
    lw t5, 0(s1)
    sb t5, 0(s1)
    amoadd.w t5, t5, (s1)
    lr.d t5, (s1)
    li s1, 0
    jalr ra, 0(s1)
    li s1, 0x88000000
    jalr ra, 0(s1)

    PUTS "-- the trap stack: MIE -> MPIE, privilege -> MPP\n"
    csrsi mstatus, MSTATUS_MIE
    ecall
    PRINT_CSR_MASKED mstatus, 0x19aa
    TO_S
    PUTS "in S\n"
    ecall
    .word 0
    HIDE_TVAL
    mret
    SHOW_TVAL
    TO_M
    PRINT_CSR_MASKED mstatus, 0x19aa
    TO_U
    PUTS "in U\n"
    ecall
    ebreak
    HIDE_TVAL
    mret
    SHOW_TVAL
    sret
    wfi
    sfence.vma
    TO_M
    PRINT_CSR_MASKED mstatus, 0x19aa

    PUTS "-- mret clears MPRV when leaving M, keeps it when staying\n"
    li t3, MSTATUS_MPRV | MSTATUS_MPP
    csrs mstatus, t3
    la t3, 1f
    csrw mepc, t3
    mret
1:  PRINT_CSR_MASKED mstatus, 0x21880
    TO_S
    TO_M
    PRINT_CSR_MASKED mstatus, 0x21880
    li t3, MSTATUS_MPRV
    csrs mstatus, t3
    TO_U
    TO_M
    PRINT_CSR_MASKED mstatus, 0x21880

    PUTS "-- TSR and TW\n"
    li t3, MSTATUS_TSR | MSTATUS_TW
    csrs mstatus, t3
    TO_S
    sret
    wfi
    TO_M
    li t3, MSTATUS_TSR | MSTATUS_TW
    csrc mstatus, t3

    PUTS "-- delegation to S (illegal, breakpoint, load access fault)\n"
    li t3, (1 << 2) | (1 << 3) | (1 << 5)
    csrw medeleg, t3
    PUTS "M: exceptions in M are never delegated\n"
    ebreak
    .word 0
    TO_S
    csrsi sstatus, MSTATUS_SIE
    PUTS "S:\n"
    ebreak
    csrsi sstatus, MSTATUS_SIE
    .word 0
    li s1, 0
    ld t5, 0(s1)
    sd t5, 0(s1)            # not delegated: M
    ecall                   # not delegated: M
    TO_M
    PRINT_CSR_MASKED mstatus, 0x19aa
    TO_U
    PUTS "U:\n"
    ebreak
    .word 0
    ld t5, 0(s1)
    sd t5, 0(s1)
    TO_M
    PRINT_CSR_MASKED mstatus, 0x19aa

    PUTS "-- delegated ecalls (then the program ends in U)\n"
    li t3, (1 << 8) | (1 << 9)
    csrs medeleg, t3
    TO_S
    ecall
    S_TO_U
    PUTS "U:\n"
    ecall
    sd t5, 0(s1)
    EXIT
