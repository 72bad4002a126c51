# D: double-precision arithmetic in every static rounding mode and in every dynamic
# (frm) rounding mode, with the flags each operation raises.
.include "common.inc"
.include "fp.inc"

.equ ONE, 0x3ff0000000000000
.equ THREE, 0x4008000000000000
.equ MINUS_ONE, 0xbff0000000000000
.equ TWO, 0x4000000000000000
.equ HALF, 0x3fe0000000000000
.equ MAX, 0x7fefffffffffffff
.equ MIN_NORMAL, 0x0010000000000000
.equ ONE_PLUS_ULP, 0x3ff0000000000001
.equ HALF_ULP, 0x3ca0000000000000

.macro ROUNDED rm
    BIN D, fadd.d, \rm, ONE, 0x3ca0000000000001
    BIN D, fadd.d, \rm, MINUS_ONE, 0xbca0000000000001
    BIN D, fadd.d, \rm, ONE, HALF_ULP
    BIN D, fadd.d, \rm, ONE_PLUS_ULP, HALF_ULP
    BIN D, fsub.d, \rm, ONE, ONE
    BIN D, fsub.d, \rm, 0x4330000000000001, HALF
    BIN D, fmul.d, \rm, ONE_PLUS_ULP, ONE_PLUS_ULP
    BIN D, fmul.d, \rm, MAX, TWO
    BIN D, fmul.d, \rm, 0xffefffffffffffff, TWO
    BIN D, fmul.d, \rm, MIN_NORMAL, 0x3fe0000000000001
    BIN D, fmul.d, \rm, 0x0000000000000001, HALF
    BIN D, fmul.d, \rm, 0x8000000000000003, HALF
    BIN D, fdiv.d, \rm, ONE, THREE
    BIN D, fdiv.d, \rm, MINUS_ONE, THREE
    BIN D, fdiv.d, \rm, 0x401c000000000000, TWO
    UN D, fsqrt.d, \rm, TWO
    UN D, fsqrt.d, \rm, 0x4010000000000000
    UN D, fsqrt.d, \rm, 0x0000000000000002
    TRI D, fmadd.d, \rm, ONE_PLUS_ULP, ONE_PLUS_ULP, 0xbff0000000000002
    TRI D, fmadd.d, \rm, ONE, THREE, HALF_ULP
    TRI D, fmsub.d, \rm, 0x3fd5555555555555, THREE, ONE
    TRI D, fnmadd.d, \rm, 0x3fd5555555555555, THREE, ONE
    TRI D, fnmsub.d, \rm, 0x3fd5555555555555, THREE, ONE
    TRI D, fmadd.d, \rm, MAX, TWO, 0xffefffffffffffff
    TRI D, fnmsub.d, \rm, ONE, ONE, ONE
    TRI D, fmsub.d, \rm, ONE, ONE, ONE
.endm

START
    FP_ON
    .irp rm, rne, rtz, rdn, rup, rmm
    PUTS "-- static \rm\n"
    ROUNDED \rm
    .endr
    .irp mode, 0, 1, 2, 3, 4
    PUTS "-- dynamic frm=\mode\n"
    fsrmi \mode
    ROUNDED dyn
    .endr
    PRINT_CSR fcsr
    EXIT
