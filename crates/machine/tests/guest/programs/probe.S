# probe MODE: small checks of user-mode behaviour for the guest tests, printed as hex so
# that QEMU and pandare can be compared line by line. Static, no libc; assembled with
# riscv64-linux-gnu-as and linked with `ld -static --no-relax` (gp is never set up).
#
#   c t i 3  read cycle, time, instret or hpmcounter3 twice around a loop of 20000
#            instructions: "FIRST SECOND same|increased|decreased"
#   d        integer division corner cases (by zero, overflow)
#   f        floating point: results and accrued flags of IEEE corner cases
#   m        misaligned loads and stores
#   a        atomics and LR/SC
#   s        load from address 0 (SIGSEGV)
#   w        store into its own code (SIGSEGV)
#   x        an illegal instruction (SIGILL)
#   b        ebreak (SIGTRAP)
    .option norelax
    .globl _start
    .text
_start:
    ld t0, 0(sp)
    li t1, 2
    blt t0, t1, usage
    ld t2, 16(sp)
    lbu s11, 0(t2)
    la s10, buffer              # output cursor
    li t4, 'c'
    beq s11, t4, read_cycle
    li t4, 't'
    beq s11, t4, read_time
    li t4, 'i'
    beq s11, t4, read_instret
    li t4, '3'
    beq s11, t4, read_hpm3
    li t4, 'd'
    beq s11, t4, division
    li t4, 'f'
    beq s11, t4, floating
    li t4, 'm'
    beq s11, t4, misaligned
    li t4, 'a'
    beq s11, t4, atomics
    li t4, 's'
    beq s11, t4, null_load
    li t4, 'w'
    beq s11, t4, code_store
    li t4, 'x'
    beq s11, t4, illegal
    li t4, 'b'
    beq s11, t4, breakpoint
    j usage

read_cycle:
    rdcycle s0
    call spin
    rdcycle s1
    j compare
read_time:
    rdtime s0
    call spin
    rdtime s1
    j compare
read_instret:
    rdinstret s0
    call spin
    rdinstret s1
    j compare
read_hpm3:
    csrr s0, hpmcounter3
    call spin
    csrr s1, hpmcounter3
    j compare

spin:
    li t0, 10000
1:  addi t0, t0, -1
    bnez t0, 1b
    ret

compare:
    mv a0, s0
    call put_hex
    mv a0, s1
    call put_hex
    la a1, same
    beq s0, s1, 2f
    la a1, increased
    bltu s0, s1, 2f
    la a1, decreased
2:  call put_string
    j finish

division:
    li s0, 7
    li s1, 0
    div a0, s0, s1
    call put_hex
    rem a0, s0, s1
    call put_hex
    divu a0, s0, s1
    call put_hex
    remu a0, s0, s1
    call put_hex
    li s0, -1
    slli s0, s0, 63             # INT64_MIN
    li s1, -1
    div a0, s0, s1
    call put_hex
    rem a0, s0, s1
    call put_hex
    li s0, -7
    li s1, 2
    divw a0, s0, s1
    call put_hex
    remw a0, s0, s1
    call put_hex
    mulh a0, s0, s0
    call put_hex
    mulhsu a0, s0, s1
    call put_hex
    j newline_finish

# Each case: clear fflags, compute, print the result bits and the flags.
    .macro FCASE op
    csrw fflags, zero
    \op
    fmv.x.d a0, fa0
    call put_hex
    frflags a0
    call put_hex
    call put_newline
    .endm
floating:
    li t0, 1
    fcvt.d.l ft1, t0            # 1.0
    fcvt.d.l ft0, zero          # 0.0
    li t0, 3
    fcvt.d.l ft3, t0            # 3.0
    li t0, -1
    fcvt.d.l ft2, t0            # -1.0
    FCASE "fdiv.d fa0, ft1, ft0"          # 1/0 = inf, DZ
    FCASE "fdiv.d fa0, ft0, ft0"          # 0/0 = NaN, NV
    FCASE "fsqrt.d fa0, ft2"              # sqrt(-1) = NaN, NV
    FCASE "fdiv.d fa0, ft1, ft3"          # 1/3, NX
    FCASE "fdiv.d fa0, ft1, ft3, rtz"
    FCASE "fdiv.d fa0, ft1, ft3, rup"
    FCASE "fdiv.d fa0, ft2, ft3, rdn"
    FCASE "fmadd.d fa0, ft3, ft3, ft2"    # 3*3-1
    FCASE "fmin.d fa0, ft0, ft2"
    FCASE "fdiv.s fa0, ft1, ft3"          # NaN-boxing of a single
    csrw fflags, zero
    li t0, 1
    slli t0, t0, 40
    fcvt.d.l ft4, t0
    fcvt.w.d a0, ft4                      # overflow: 0x7fffffff, NV
    call put_hex
    frflags a0
    call put_hex
    call put_newline
    fclass.d a0, ft2
    call put_hex
    call put_newline
    j finish

misaligned:
    la s0, data
    ld a0, 1(s0)
    call put_hex
    lw a0, 3(s0)
    call put_hex
    lhu a0, 5(s0)
    call put_hex
    li t0, 0x1122334455667788
    sd t0, 9(s0)
    ld a0, 8(s0)
    call put_hex
    ld a0, 16(s0)
    call put_hex
    j newline_finish

atomics:
    la s0, data
    li t0, 5
    amoadd.d a0, t0, (s0)
    call put_hex
    ld a0, 0(s0)
    call put_hex
    li t0, -1
    amomaxu.w a0, t0, (s0)
    call put_hex
    ld a0, 0(s0)
    call put_hex
    lr.d a0, (s0)
    addi t0, a0, 1
    sc.d a0, t0, (s0)
    call put_hex
    ld a0, 0(s0)
    call put_hex
    j newline_finish

null_load:
    ld a0, 0(zero)
    j finish
code_store:
    la t0, _start
    sw zero, 0(t0)
    j finish
illegal:
    .word 0
    j finish
breakpoint:
    ebreak
    j finish

# put_hex: a0 as 16 hex digits and a space at the cursor s10.
put_hex:
    li t0, 60
3:  srl t1, a0, t0
    andi t1, t1, 15
    li t2, 10
    blt t1, t2, 4f
    addi t1, t1, 'a' - '0' - 10
4:  addi t1, t1, '0'
    sb t1, 0(s10)
    addi s10, s10, 1
    addi t0, t0, -4
    bgez t0, 3b
    li t1, ' '
    sb t1, 0(s10)
    addi s10, s10, 1
    ret
# put_string: the NUL-terminated string at a1.
put_string:
5:  lbu t0, 0(a1)
    beqz t0, 6f
    sb t0, 0(s10)
    addi s10, s10, 1
    addi a1, a1, 1
    j 5b
6:  ret
put_newline:
    li t0, '\n'
    sb t0, 0(s10)
    addi s10, s10, 1
    ret

newline_finish:
    call put_newline
finish:
    li a0, 1
    la a1, buffer
    sub a2, s10, a1
    li a7, 64                   # write
    ecall
    li a0, 0
    li a7, 93                   # exit
    ecall
usage:
    li a0, 2
    la a1, usage_text
    li a2, 37
    li a7, 64
    ecall
    li a0, 2
    li a7, 93
    ecall

    .data
same: .asciz "same\n"
increased: .asciz "increased\n"
decreased: .asciz "decreased\n"
usage_text: .ascii "usage: probe c|t|i|3|d|f|m|a|s|w|x|b\n"
    .balign 8
data: .byte 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08
      .byte 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10
      .byte 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18
    .bss
buffer: .space 4096
