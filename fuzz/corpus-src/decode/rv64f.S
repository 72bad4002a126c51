# RV64F arithmetic, compares, classification, moves and conversions.
    .option norvc
    flw fa0, -4(sp)
    fsw fa1, 2047(a0)
    fadd.s fa0, fa1, fa2
    fsub.s fa0, fa1, fa2, rtz
    fmul.s fa0, fa1, fa2, rdn
    fdiv.s fa0, fa1, fa2, rup
    fsqrt.s fa0, fa1, rmm
    fsgnj.s fa0, fa1, fa2
    fsgnjn.s fa0, fa1, fa2
    fsgnjx.s fa0, fa1, fa2
    fmin.s ft0, ft1, ft2
    fmax.s ft0, ft1, ft2
    feq.s a0, fa0, fa1
    flt.s zero, fa0, fa1
    fle.s a0, fa0, fa1
    fclass.s a0, fa0
    fmv.x.w a0, fa0
    fmv.w.x fa0, a0
    fcvt.w.s a0, fa0, rtz
    fcvt.wu.s a0, fa0
    fcvt.l.s a0, fa0
    fcvt.lu.s a0, fa0
    fcvt.s.w fa0, a0
    fcvt.s.wu fa0, a0
    fcvt.s.l fa0, a0
    fcvt.s.lu fa0, a0
