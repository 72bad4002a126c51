# F and D special values: NaNs (canonical results, signaling inputs), infinities, signed
# zeros and subnormals through arithmetic, min/max, compares, fclass and sign injection.
.include "common.inc"
.include "fp.inc"

.equ S_QNAN, 0x7fc00000
.equ S_SNAN, 0x7f800001
.equ S_NAN_PAYLOAD, 0xffc12345
.equ S_INF, 0x7f800000
.equ S_NINF, 0xff800000
.equ S_ZERO, 0x00000000
.equ S_NZERO, 0x80000000
.equ S_ONE, 0x3f800000
.equ S_NONE, 0xbf800000
.equ S_SUB, 0x00000001
.equ S_NSUB, 0x807fffff

.equ D_QNAN, 0x7ff8000000000000
.equ D_SNAN, 0x7ff0000000000001
.equ D_NAN_PAYLOAD, 0xfff8000000012345
.equ D_INF, 0x7ff0000000000000
.equ D_NINF, 0xfff0000000000000
.equ D_ZERO, 0x0000000000000000
.equ D_NZERO, 0x8000000000000000
.equ D_ONE, 0x3ff0000000000000
.equ D_NONE, 0xbff0000000000000
.equ D_SUB, 0x0000000000000001
.equ D_NSUB, 0x800fffffffffffff

# The same checks for both precisions: \p is S or D, \x is s or d.
.macro SPECIALS p, x
    PUTS "-- arithmetic with NaN, infinity, zero\n"
    BIN \p, fadd.\x, rne, \p\()_QNAN, \p\()_ONE
    BIN \p, fadd.\x, rne, \p\()_SNAN, \p\()_ONE
    BIN \p, fadd.\x, rne, \p\()_NAN_PAYLOAD, \p\()_ONE
    BIN \p, fadd.\x, rne, \p\()_INF, \p\()_NINF
    BIN \p, fsub.\x, rne, \p\()_INF, \p\()_INF
    BIN \p, fadd.\x, rne, \p\()_INF, \p\()_ONE
    BIN \p, fadd.\x, rne, \p\()_ZERO, \p\()_NZERO
    BIN \p, fadd.\x, rdn, \p\()_ZERO, \p\()_NZERO
    BIN \p, fadd.\x, rne, \p\()_NZERO, \p\()_NZERO
    BIN \p, fsub.\x, rdn, \p\()_ONE, \p\()_ONE
    BIN \p, fmul.\x, rne, \p\()_ZERO, \p\()_INF
    BIN \p, fmul.\x, rne, \p\()_NZERO, \p\()_ONE
    BIN \p, fmul.\x, rne, \p\()_SUB, \p\()_SUB
    BIN \p, fdiv.\x, rne, \p\()_ONE, \p\()_ZERO
    BIN \p, fdiv.\x, rne, \p\()_NONE, \p\()_ZERO
    BIN \p, fdiv.\x, rne, \p\()_ONE, \p\()_NZERO
    BIN \p, fdiv.\x, rne, \p\()_ZERO, \p\()_ZERO
    BIN \p, fdiv.\x, rne, \p\()_INF, \p\()_INF
    BIN \p, fdiv.\x, rne, \p\()_QNAN, \p\()_ZERO
    BIN \p, fdiv.\x, rne, \p\()_ONE, \p\()_INF
    UN \p, fsqrt.\x, rne, \p\()_NONE
    UN \p, fsqrt.\x, rne, \p\()_NZERO
    UN \p, fsqrt.\x, rne, \p\()_INF
    UN \p, fsqrt.\x, rne, \p\()_NINF
    UN \p, fsqrt.\x, rne, \p\()_SNAN
    UN \p, fsqrt.\x, rne, \p\()_NAN_PAYLOAD
    UN \p, fsqrt.\x, rne, \p\()_NSUB
    TRI \p, fmadd.\x, rne, \p\()_INF, \p\()_ZERO, \p\()_QNAN
    TRI \p, fmadd.\x, rne, \p\()_ZERO, \p\()_INF, \p\()_ONE
    TRI \p, fmadd.\x, rne, \p\()_ONE, \p\()_ONE, \p\()_SNAN
    TRI \p, fmadd.\x, rne, \p\()_QNAN, \p\()_ONE, \p\()_ONE
    TRI \p, fmadd.\x, rne, \p\()_INF, \p\()_ONE, \p\()_NINF
    TRI \p, fmsub.\x, rne, \p\()_INF, \p\()_ONE, \p\()_INF
    TRI \p, fnmadd.\x, rne, \p\()_ZERO, \p\()_ONE, \p\()_ZERO
    TRI \p, fnmsub.\x, rne, \p\()_ZERO, \p\()_ONE, \p\()_ZERO
    TRI \p, fmadd.\x, rne, \p\()_NZERO, \p\()_ONE, \p\()_ZERO
    TRI \p, fmadd.\x, rdn, \p\()_ONE, \p\()_ONE, \p\()_NONE
    TRI \p, fmadd.\x, rne, \p\()_SUB, \p\()_SUB, \p\()_NZERO

    PUTS "-- min and max\n"
    .irp op, fmin.\x, fmax.\x
    BIN_NORM \p, \op, \p\()_QNAN, \p\()_ONE
    BIN_NORM \p, \op, \p\()_ONE, \p\()_QNAN
    BIN_NORM \p, \op, \p\()_SNAN, \p\()_ONE
    BIN_NORM \p, \op, \p\()_ONE, \p\()_SNAN
    BIN_NORM \p, \op, \p\()_QNAN, \p\()_QNAN
    BIN_NORM \p, \op, \p\()_SNAN, \p\()_NAN_PAYLOAD
    BIN_NORM \p, \op, \p\()_ZERO, \p\()_NZERO
    BIN_NORM \p, \op, \p\()_NZERO, \p\()_ZERO
    BIN_NORM \p, \op, \p\()_NINF, \p\()_INF
    BIN_NORM \p, \op, \p\()_NONE, \p\()_NSUB
    .endr

    PUTS "-- compares\n"
    .irp op, feq.\x, flt.\x, fle.\x
    CMP \p, \op, \p\()_ONE, \p\()_ONE
    CMP \p, \op, \p\()_NONE, \p\()_ONE
    CMP \p, \op, \p\()_ONE, \p\()_NONE
    CMP \p, \op, \p\()_ZERO, \p\()_NZERO
    CMP \p, \op, \p\()_QNAN, \p\()_ONE
    CMP \p, \op, \p\()_ONE, \p\()_QNAN
    CMP \p, \op, \p\()_SNAN, \p\()_ONE
    CMP \p, \op, \p\()_QNAN, \p\()_QNAN
    CMP \p, \op, \p\()_NINF, \p\()_INF
    CMP \p, \op, \p\()_NSUB, \p\()_NZERO
    .endr

    PUTS "-- fclass\n"
    .irp v, \p\()_NINF, \p\()_NONE, \p\()_NSUB, \p\()_NZERO, \p\()_ZERO, \p\()_SUB, \p\()_ONE, \p\()_INF, \p\()_SNAN, \p\()_QNAN, \p\()_NAN_PAYLOAD
    CLASS \p, fclass.\x, \v
    .endr

    PUTS "-- sign injection\n"
    .irp op, fsgnj.\x, fsgnjn.\x, fsgnjx.\x
    BIN_NORM \p, \op, \p\()_ONE, \p\()_NONE
    BIN_NORM \p, \op, \p\()_NONE, \p\()_NONE
    BIN_NORM \p, \op, \p\()_NONE, \p\()_ONE
    BIN_NORM \p, \op, \p\()_SNAN, \p\()_NZERO
    BIN_NORM \p, \op, \p\()_NAN_PAYLOAD, \p\()_ZERO
    .endr
.endm

START
    FP_ON
    PUTS "== single\n"
    SPECIALS S, s
    PUTS "== double\n"
    SPECIALS D, d
    PRINT_CSR fcsr
    EXIT
