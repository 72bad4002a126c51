# F and D conversions: float to integer with saturation and NaN in every rounding mode
# (results sign-extended for the W forms), integer to float, single <-> double.
.include "common.inc"
.include "fp.inc"

.macro TO_INT_S rm
    .irp v, 0x3fc00000, 0xbfc00000, 0x40200000, 0xc0200000, 0x3f000000, 0xbf000000, 0x80000000, 0x4f000000, 0xcf000000, 0xcf000001, 0x4f32d05e, 0x5f000000, 0xdf000000, 0x5f800000, 0x7fc00000, 0x7f800001, 0x7f800000, 0xff800000, 0x00000001
    TOINT S, fcvt.w.s, \rm, \v
    TOINT S, fcvt.wu.s, \rm, \v
    TOINT S, fcvt.l.s, \rm, \v
    TOINT S, fcvt.lu.s, \rm, \v
    .endr
.endm

.macro TO_INT_D rm
    .irp v, 0x3ff8000000000000, 0xbff8000000000000, 0x4004000000000000, 0xc004000000000000, 0xbfe0000000000000, 0x8000000000000000, 0x41dfffffffe00000, 0x41dfffffffc00000, 0xc1e0000000100000, 0xc1e0000000000000, 0x41efffffffffffff, 0x41f0000000000000, 0x43e0000000000000, 0xc3e0000000000000, 0xc3e0000000000001, 0x43f0000000000000, 0x43efffffffffffff, 0x7ff8000000000000, 0xfff0000000000000, 0x7ff0000000000000
    TOINT D, fcvt.w.d, \rm, \v
    TOINT D, fcvt.wu.d, \rm, \v
    TOINT D, fcvt.l.d, \rm, \v
    TOINT D, fcvt.lu.d, \rm, \v
    .endr
.endm

.macro FROM_INT rm
    .irp v, 0, 1, -1, 0x7fffffff, 0x80000000, 0xffffffff, 0x1234567800000003, 0x7fffffffffffffff, 0x8000000000000000, 0x0020000000000001, 0xfffffffffffffffd, 0x00ffffff80000001
    FROMINT fcvt.s.w, \rm, \v
    FROMINT fcvt.s.wu, \rm, \v
    FROMINT fcvt.s.l, \rm, \v
    FROMINT fcvt.s.lu, \rm, \v
    FROMINT fcvt.d.l, \rm, \v
    FROMINT fcvt.d.lu, \rm, \v
    .endr
.endm

.macro S_D rm
    .irp v, 0x3fd5555555555555, 0xbfd5555555555555, 0x7fefffffffffffff, 0x47efffffefffffff, 0x47efffffe0000000, 0x3690000000000001, 0x3690000000000000, 0x380fffffffffffff, 0x0000000000000001, 0x8000000000000000, 0x7ff8000000012345, 0x7ff0000000000001, 0xfff0000000000000
    CVT D, fcvt.s.d, \rm, \v
    .endr
.endm

START
    FP_ON
    .irp rm, rne, rtz, rdn, rup, rmm
    PUTS "-- \rm\n"
    TO_INT_S \rm
    TO_INT_D \rm
    FROM_INT \rm
    S_D \rm
    .endr
    PUTS "-- dynamic rdn\n"
    fsrmi 2
    TO_INT_S dyn
    FROM_INT dyn
    S_D dyn
    PUTS "-- int32 to double (exact)\n"
    .irp v, 0, 1, -1, 0x7fffffff, 0x80000000, 0xffffffff, 0x1234567800000003, 0x00ffffff80000001
    li t4, \v
    fcvt.d.w ft3, t4
    PRINT_FRESULT "fcvt.d.w \v", ft3
    fcvt.d.wu ft3, t4
    PRINT_FRESULT "fcvt.d.wu \v", ft3
    .endr
    PUTS "-- single to double (exact)\n"
    .irp v, 0x3f800000, 0x00000001, 0x807fffff, 0x7f800001, 0xffc12345, 0xff800000, 0x80000000
    LOAD_S ft0, \v
    fcvt.d.s ft3, ft0
    PRINT_FRESULT "fcvt.d.s \v", ft3
    .endr
    EXIT
