# F and D with special values: NaN-boxing, signalling NaNs, infinities, overflow and
# saturating conversions, every rounding mode, fcsr flags.
# expect: power-off
    .include "common.inc"
    SET_MTVEC handler
    li t0, 1 << 13
    csrs mstatus, t0                    # FS initial
    la s1, values
    fld fa0, 0(s1)                      # 1.0
    fld fa1, 8(s1)                      # +inf
    fld fa2, 16(s1)                     # signalling NaN
    fld fa3, 24(s1)                     # largest finite
    fld fa4, 32(s1)                     # smallest subnormal
    flw fa5, 40(s1)                     # 1.0f (boxed)
    fmv.d.x fa6, zero                   # +0, and a single that is not NaN-boxed
    fadd.s ft0, fa5, fa6                # reads the canonical NaN
    fadd.d ft0, fa0, fa1
    fsub.d ft1, fa1, fa1                # inf - inf: invalid
    fmul.d ft2, fa3, fa3, rup           # overflow
    fmul.d ft2, fa3, fa3, rtz
    fdiv.d ft3, fa0, fa6                # divide by zero
    fdiv.d ft3, fa6, fa6                # 0/0
    fsqrt.d ft4, fa2                    # sNaN
    fsqrt.d ft4, fa4, rdn
    fmadd.d ft5, fa4, fa4, fa0, rmm     # underflowing product
    fnmsub.s ft6, fa5, fa5, fa5
    fmin.d ft7, fa2, fa0
    fmax.s ft7, fa6, fa5
    feq.d a0, fa2, fa2
    flt.d a0, fa2, fa0
    fle.s a0, fa5, fa5
    fclass.d a0, fa4
    fclass.s a0, fa6
    fcvt.w.d a0, fa1                    # saturates
    fcvt.wu.d a0, fa2
    fcvt.l.d a0, fa3
    fcvt.lu.s a0, fa5, rup
    li a1, -1
    fcvt.d.l ft8, a1
    fcvt.s.lu ft8, a1, rdn
    fcvt.s.d ft9, fa3                   # overflow to single
    fcvt.d.s ft9, fa5
    fsgnjn.d ft10, fa0, fa0
    fsgnjx.s ft10, fa5, fa6
    fmv.x.w a0, fa5
    fmv.w.x ft11, a1
    fsd ft0, 48(s1)
    fsw ft1, 56(s1)
    frflags a0
    fsflags zero
    fsrm t0, zero
    csrr a0, fcsr
    csrw fcsr, a1
    # FP off again: the next FP instruction is illegal.
    li t0, 3 << 13
    csrc mstatus, t0
    fadd.d ft0, fa0, fa0
    EXIT_PASS

    .align 2
handler:
    SKIP_AND_MRET

    .align 3
values:
    .dword 0x3ff0000000000000
    .dword 0x7ff0000000000000
    .dword 0x7ff4000000000000
    .dword 0x7fefffffffffffff
    .dword 0x0000000000000001
    .word 0x3f800000, 0
    .dword 0, 0
