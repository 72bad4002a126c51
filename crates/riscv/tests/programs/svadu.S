# Hardware updating of the accessed and dirty bits (Svadu behaviour).
#
# pandare always sets A and D in hardware during page walks (the privileged spec allows
# this) and does not implement menvcfg.ADUE (it reads 0). QEMU does the same only with
# Svadu and menvcfg.ADUE = 1 (with svadu=false it raises page faults when A = 0 or, for
# stores, D = 0), so QEMU runs this program with svadu=true, which resets ADUE to 1; the
# program sets ADUE anyway and never prints menvcfg.
# qemu-cpu: svadu=true
.include "common.inc"
.include "paging.inc"

.equ LEAF_BITS, 0x3ff

# SHOW_PTE name, reg: prints the low 10 bits (flags) of the PTE at address reg.
.macro SHOW_PTE name, reg
    SAVE_TEMPS
    ld a1, 0(\reg)
    andi a1, a1, LEAF_BITS
    PRINT_AS \name, a1
    RESTORE_TEMPS
.endm

.macro LOAD_AT reg, address
    li t3, \address
    ld \reg, 0(t3)
.endm

.macro STORE_AT reg, address
    li t3, \address
    sd \reg, 0(t3)
.endm

START
    li t3, 1 << 61
    csrs menvcfg, t3
    SET_MTVEC _trap_skip
    SET_STVEC _strap_skip
    li t3, (1 << 12) | (1 << 13) | (1 << 15)
    csrw medeleg, t3
    la t4, page2            # a function to fetch
    la t5, xfunc
    ld t3, 0(t5)
    sd t3, 0(t4)
    fence.i

    PAGING_INIT 3
    MAP 0x00000000, 0x00000000, PTE_V | PTE_R | PTE_W | PTE_A | PTE_D, 2
    MAP 0x80000000, 0x80000000, PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D, 2
    MAP_SYM 0x40000000, page0, PTE_V | PTE_R | PTE_W, 0
    MAP_SYM 0x40001000, page1, PTE_V | PTE_R | PTE_W | PTE_A, 0
    MAP_SYM 0x40002000, page2, PTE_V | PTE_X, 0
    MAP_SYM 0x40003000, page3, PTE_V | PTE_R, 0
    MAP_SYM 0x40004000, page4, PTE_V | PTE_R | PTE_W, 0
    MAP_SYM 0x40005000, page5, PTE_V | PTE_R | PTE_W, 0
    MAP_SYM 0x40006000, page6, PTE_V | PTE_R | PTE_W | PTE_U, 0
    MAP 0x40200000, 0x80200000, PTE_V | PTE_R | PTE_W, 1
    PTE_ADDR s0, 0x40000000, 0
    PTE_ADDR s1, 0x40001000, 0
    PTE_ADDR s2, 0x40002000, 0
    PTE_ADDR s3, 0x40003000, 0
    PTE_ADDR s4, 0x40004000, 0
    PTE_ADDR s5, 0x40005000, 0
    PTE_ADDR s6, 0x40006000, 0
    PTE_ADDR s7, 0x40200000, 1
    PTE_ADDR s8, 0x40000000, 1       # non-leaf PTEs
    PTE_ADDR s9, 0x40000000, 2
    PAGING_ON 8

    TO_S
    PUTS "-- loads set A\n"
    LOAD_AT t5, 0x40000000
    SHOW_PTE rw, s0
    PUTS "-- stores set D (and A)\n"
    STORE_AT t5, 0x40000000
    SHOW_PTE rw, s0
    STORE_AT t5, 0x40001000
    SHOW_PTE rw_accessed, s1
    PUTS "-- fetches set A\n"
    li t3, 0x40002000
    jalr ra, t3
    PRINT a0
    SHOW_PTE x, s2
    PUTS "-- a faulting access sets nothing\n"
    STORE_AT t5, 0x40003000
    SHOW_PTE r, s3
    LOAD_AT t5, 0x40003000
    SHOW_PTE r, s3
    LOAD_AT t5, 0x40006000          # U page from S without SUM
    SHOW_PTE u, s6
    PUTS "-- AMOs set A and D; LR sets A, SC sets D\n"
    li t3, 0x40004000
    li t4, 5
    amoadd.d t5, t4, (t3)
    SHOW_PTE amo, s4
    li t3, 0x40005000
    lr.d t5, (t3)
    SHOW_PTE lr, s5
    sc.d t6, t4, (t3)
    PRINT t6
    SHOW_PTE sc, s5
    PUTS "-- superpage\n"
    LOAD_AT t5, 0x40201000
    SHOW_PTE super, s7
    STORE_AT t5, 0x40201008
    SHOW_PTE super, s7
    PUTS "-- non-leaf PTEs are not updated\n"
    SHOW_PTE level1, s8
    SHOW_PTE level2, s9
    PUTS "-- after clearing A and D and sfence.vma, they are set again\n"
    ld t3, 0(s0)
    andi t3, t3, ~(PTE_A | PTE_D)
    sd t3, 0(s0)
    li t3, 0x40000000
    sfence.vma t3
    SHOW_PTE rw, s0
    STORE_AT t5, 0x40000008
    SHOW_PTE rw, s0
    TO_M

    PUTS "-- M-mode with MPRV (MPP = S)\n"
    ld t3, 0(s4)
    andi t3, t3, ~(PTE_A | PTE_D)
    sd t3, 0(s4)
    sfence.vma
    li t4, MSTATUS_MPP
    li t5, MSTATUS_MPRV | MSTATUS_MPP_S
    csrc mstatus, t4
    csrs mstatus, t5
    LOAD_AT t6, 0x40004000
    csrc mstatus, t5
    PRINT t6
    SHOW_PTE mprv, s4
    EXIT

    .balign 8
    .option push
    .option norvc
xfunc:
    li a0, 0x77
    ret
    .option pop

    .bss
    .balign 4096
page0: .space 4096
page1: .space 4096
page2: .space 4096
page3: .space 4096
page4: .space 4096
page5: .space 4096
page6: .space 4096
