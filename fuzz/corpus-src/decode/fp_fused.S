# Fused multiply-adds, both formats, every legal rounding mode.
    .option norvc
    fmadd.s fa0, fa1, fa2, fa3
    fmsub.s fa0, fa1, fa2, fa3, rtz
    fnmsub.s fa0, fa1, fa2, fa3, rdn
    fnmadd.s fa0, fa1, fa2, fa3, rup
    fmadd.d ft0, ft1, ft2, ft3, rmm
    fmsub.d ft0, ft1, ft2, ft3, dyn
    fnmsub.d fs0, fs1, fs2, fs3
    fnmadd.d ft11, ft10, ft9, ft8
