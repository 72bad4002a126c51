# F/D state: NaN-boxing of singles (fmv, loads, stores, ops on unboxed values), the
# fflags/frm/fcsr CSRs, reserved rounding modes (static and dynamic) trapping, and
# mstatus.FS: FP off traps, FP writes make it dirty.
.include "common.inc"
.include "fp.inc"

START
    FP_ON
    SET_MTVEC _trap_skip
    PUTS "-- boxing by moves and loads\n"
    li t3, 0x123456789abcdef0
    fmv.d.x ft0, t3
    PRINT_FREG ft0
    fmv.x.w t5, ft0
    PRINT_AS "fmv.x.w of unboxed", t5
    li t3, 0x3f800000
    fmv.w.x ft1, t3
    PRINT_FREG ft1
    fmv.x.w t5, ft1
    PRINT t5
    li t3, 0x00000000bf800000
    fmv.w.x ft1, t3
    fmv.x.w t5, ft1
    PRINT_AS "fmv.x.w sign-extends", t5
    la s0, data
    flw ft2, 0(s0)
    PRINT_FREG ft2
    fld ft2, 8(s0)
    PRINT_FREG ft2
    fsw ft0, 16(s0)
    ld t5, 16(s0)
    PRINT_AS "fsw of unboxed", t5
    fsd ft0, 24(s0)
    ld t5, 24(s0)
    PRINT t5
    flw ft3, 4(s0)
    fsw ft3, 32(s0)
    lwu t5, 32(s0)
    PRINT t5
    # Misaligned FP loads and stores.
    flw ft3, 3(s0)
    PRINT_FREG ft3
    fld ft3, 5(s0)
    PRINT_FREG ft3
    fsd ft3, 41(s0)
    ld t5, 40(s0)
    PRINT t5
    ld t5, 48(s0)
    PRINT t5

    PUTS "-- unboxed operands read as the canonical NaN\n"
    li t3, 0x000000003f800000
    fmv.d.x ft0, t3
    LOAD_S ft1, 0x3f800000
    fadd.s ft3, ft0, ft1
    PRINT_FRESULT "fadd.s unboxed 1", ft3
    fadd.s ft3, ft1, ft1
    PRINT_FRESULT "fadd.s 1 1", ft3
    fmul.s ft3, ft1, ft0
    PRINT_FRESULT "fmul.s 1 unboxed", ft3
    fmadd.s ft3, ft1, ft1, ft0
    PRINT_FRESULT "fmadd.s 1 1 unboxed", ft3
    fsgnj.s ft3, ft0, ft1
    PRINT_FRESULT "fsgnj.s unboxed 1", ft3
    fsgnjn.s ft3, ft0, ft1
    PRINT_FRESULT "fsgnjn.s unboxed 1", ft3
    fsgnj.s ft3, ft1, ft0
    PRINT_FRESULT "fsgnj.s 1 unboxed", ft3
    fmin.s ft3, ft0, ft1
    PRINT_FRESULT "fmin.s unboxed 1", ft3
    fclass.s t5, ft0
    PRINT_XRESULT "fclass.s unboxed", t5
    feq.s t5, ft0, ft0
    PRINT_XRESULT "feq.s unboxed", t5
    flt.s t5, ft0, ft1
    PRINT_XRESULT "flt.s unboxed", t5
    fcvt.d.s ft3, ft0
    PRINT_FRESULT "fcvt.d.s unboxed", ft3
    fcvt.w.s t5, ft0
    PRINT_XRESULT "fcvt.w.s unboxed", t5
    fsqrt.s ft3, ft0
    PRINT_FRESULT "fsqrt.s unboxed", ft3
    # Almost boxed: one zero bit in the upper half.
    li t3, 0xfffffffe3f800000
    fmv.d.x ft0, t3
    fadd.s ft3, ft0, ft1
    PRINT_FRESULT "fadd.s almost boxed", ft3
    # Double ops see all 64 bits.
    fmv.w.x ft0, zero
    fclass.d t5, ft0
    PRINT_XRESULT "fclass.d boxed zero", t5

    PUTS "-- fflags, frm, fcsr\n"
    li t3, -1
    csrw fcsr, t3
    PRINT_CSR fcsr
    PRINT_CSR fflags
    PRINT_CSR frm
    csrw fflags, zero
    PRINT_CSR fcsr
    csrwi frm, 3
    PRINT_CSR fcsr
    csrsi fflags, 0x15
    PRINT_CSR fcsr
    csrci fcsr, 0x4
    PRINT_CSR fcsr
    li t3, 0xffffffffffffff00
    csrw fcsr, t3
    PRINT_CSR fcsr
    fsflagsi 0x3
    fsrmi t5, 4
    PRINT t5
    frflags t5
    PRINT t5
    fscsr t6, zero
    PRINT t6
    PRINT_CSR fcsr

    PUTS "-- reserved rounding modes\n"
    LOAD_S ft0, 0x3f800000
    LOAD_S ft1, 0x40400000
    # Static rm 5 and 6 (fadd.s ft3, ft0, ft1 with rm = 101 / 110) and 7 with frm valid.
    .insn r 0x53, 5, 0, ft3, ft0, ft1
    .insn r 0x53, 6, 0, ft3, ft0, ft1
    fadd.s ft3, ft0, ft1, dyn
    PRINT_FRESULT "fadd.s dyn with frm=0", ft3
    .irp frm, 5, 6, 7
    csrwi frm, \frm
    PUTS "frm=\frm\n"
    fadd.s ft3, ft0, ft1, dyn
    fdiv.d ft3, ft0, ft1, dyn
    fcvt.w.s t5, ft0, dyn
    fcvt.s.w ft3, t5, dyn
    # fcvt.d.s and fcvt.d.w are exact but still carry rm = dyn.
    .insn r 0x53, 7, 0x21, ft3, ft0, f0
    .insn r 0x53, 7, 0x69, ft3, t5, x0
    # Operations without rounding do not care.
    fsgnj.s ft3, ft0, ft1
    fmin.d ft3, ft0, ft1
    fmv.x.w t5, ft0
    feq.s t5, ft0, ft1
    fadd.s ft3, ft0, ft1, rne
    .endr
    csrwi frm, 0

    PUTS "-- mstatus.FS\n"
    li t3, MSTATUS_FS
    csrc mstatus, t3
    csrr t5, mstatus
    PRINT t5
    fadd.s ft3, ft0, ft1
    fmv.x.w t5, ft0
    fmv.w.x ft0, t5
    fld ft0, 0(s0)
    c.fld fs0, 0(s0)
    fsd ft0, 0(s0)
    csrr t5, fcsr
    csrwi frm, 1
    fsflags zero
    PRINT t5
    li t3, 2 << 13
    csrs mstatus, t3
    csrr t5, mstatus
    PRINT_AS "clean", t5
    feq.s t5, ft0, ft0
    csrr t5, mstatus
    PRINT_AS "after feq", t5
    fsd ft0, 0(s0)
    csrr t5, mstatus
    PRINT_AS "after fsd", t5
    fadd.s ft3, ft0, ft1
    csrr t5, mstatus
    PRINT_AS "after fadd", t5
    csrc mstatus, t3
    csrr t5, mstatus
    PRINT_AS "initial", t5
    csrwi fflags, 0
    csrr t5, mstatus
    PRINT_AS "after fflags write", t5
    csrr t5, sstatus
    PRINT_AS "sstatus", t5
    EXIT

    .data
    .balign 8
data:
    .dword 0x40490fdb3fc00000
    .dword 0x400921fb54442d18
    .space 48
