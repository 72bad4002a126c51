# F: single-precision arithmetic in every static rounding mode and in every dynamic
# (frm) rounding mode, with the flags each operation raises.
.include "common.inc"
.include "fp.inc"

.equ ONE, 0x3f800000
.equ THREE, 0x40400000
.equ MINUS_ONE, 0xbf800000
.equ MAX, 0x7f7fffff
.equ MIN_NORMAL, 0x00800000

.macro ROUNDED rm
    BIN S, fadd.s, \rm, ONE, 0x33800001
    BIN S, fadd.s, \rm, MINUS_ONE, 0xb3800001
    BIN S, fadd.s, \rm, ONE, 0x33800000
    BIN S, fadd.s, \rm, 0x3f800001, 0x33800000
    BIN S, fsub.s, \rm, ONE, ONE
    BIN S, fsub.s, \rm, 0x4b000001, 0x3f000000
    BIN S, fmul.s, \rm, 0x3f800001, 0x3f800001
    BIN S, fmul.s, \rm, MAX, 0x40000000
    BIN S, fmul.s, \rm, 0xff7fffff, 0x40000000
    BIN S, fmul.s, \rm, MIN_NORMAL, 0x3f000001
    BIN S, fmul.s, \rm, 0x00000001, 0x3f000000
    BIN S, fmul.s, \rm, 0x80000003, 0x3f000000
    BIN S, fdiv.s, \rm, ONE, THREE
    BIN S, fdiv.s, \rm, MINUS_ONE, THREE
    BIN S, fdiv.s, \rm, 0x40e00000, 0x40000000
    UN S, fsqrt.s, \rm, 0x40000000
    UN S, fsqrt.s, \rm, 0x40800000
    UN S, fsqrt.s, \rm, 0x00000002
    TRI S, fmadd.s, \rm, 0x3f800001, 0x3f800001, 0xbf800002
    TRI S, fmadd.s, \rm, ONE, THREE, 0x33800000
    TRI S, fmsub.s, \rm, 0x3eaaaaab, THREE, ONE
    TRI S, fnmadd.s, \rm, 0x3eaaaaab, THREE, ONE
    TRI S, fnmsub.s, \rm, 0x3eaaaaab, THREE, ONE
    TRI S, fmadd.s, \rm, MAX, 0x40000000, 0xff7fffff
    TRI S, fnmsub.s, \rm, ONE, ONE, ONE
    TRI S, fmsub.s, \rm, ONE, ONE, ONE
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
    PRINT_CSR mstatus
    EXIT
