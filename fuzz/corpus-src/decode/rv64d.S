# RV64D arithmetic, compares, classification, moves and conversions.
    .option norvc
    fld fa0, -8(sp)
    fsd fa1, 8(a0)
    fadd.d fa0, fa1, fa2
    fsub.d fa0, fa1, fa2
    fmul.d fa0, fa1, fa2
    fdiv.d fa0, fa1, fa2
    fsqrt.d fa0, fa1
    fsgnj.d fa0, fa1, fa2
    fsgnjn.d fa0, fa1, fa2
    fsgnjx.d fa0, fa1, fa2
    fmin.d ft0, ft1, ft2
    fmax.d ft0, ft1, ft2
    feq.d a0, fa0, fa1
    flt.d a0, fa0, fa1
    fle.d a0, fa0, fa1
    fclass.d a0, fa0
    fmv.x.d a0, fa0
    fmv.d.x fa0, a0
    fcvt.s.d fa0, fa1
    fcvt.d.s fa0, fa1
    fcvt.w.d a0, fa0
    fcvt.wu.d a0, fa0
    fcvt.l.d a0, fa0
    fcvt.lu.d a0, fa0
    fcvt.d.w fa0, a0
    fcvt.d.wu fa0, a0
    fcvt.d.l fa0, a0
    fcvt.d.lu fa0, a0
