//! IEEE 754 binary32 / binary64 arithmetic with the exact semantics of the
//! RISC-V F and D extensions (F/D version 2.2, unprivileged ISA 20191213).
//!
//! This module owns *only* the arithmetic: values go in and out as raw bit
//! patterns in a `u64` (binary32 in the low 32 bits, upper bits zero) and
//! every function ORs the IEEE exception flags it raises into a caller-owned
//! `u8` using the `fflags` bit layout (`NV DZ OF UF NX`). It never knows about
//! registers, NaN-boxing, `fcsr` or the dynamic rounding mode: the executor
//! un-boxes operands, resolves `rm = 7` to `frm`, and writes results back.
//!
//! Design choices:
//! * Pure software with no dependencies and no host FPU state, so results and
//!   flags are bit-exact on any host; host FPUs offer neither RMM nor
//!   RISC-V's canonical NaN, and reading their flags would need `unsafe`.
//! * Every finite operand is unpacked to `sign`, `exp`, `sig` with
//!   `value = sig * 2^exp`. Each operation computes its exact result in a
//!   `u128` (or the exact result truncated, with a "sticky" bit ORed into the
//!   lowest bit), and a single routine, `round_pack`, rounds that to either
//!   format in any rounding mode and raises OF/UF/NX. The float-to-integer
//!   conversions use the same rounding decision (`round_increment`).
//! * RISC-V specifics (each also noted where it is implemented):
//!   - no NaN payload propagation: every NaN result is the canonical NaN
//!     (section "NaN Generation and Propagation");
//!   - tininess is detected after rounding (section "Subnormal Arithmetic"),
//!     and UF is raised only when the result is also inexact (IEEE 754 7.5);
//!   - fmin/fmax follow the 2.2 text (IEEE 754-2019 minimumNumber /
//!     maximumNumber): -0 < +0, one NaN operand yields the other operand, two
//!     give the canonical NaN, and any signaling NaN raises NV;
//!   - FMA raises NV for `inf * 0` even when the addend is a quiet NaN
//!     (section "Single-Precision Floating-Point Computational
//!     Instructions"); QEMU and Spike (SoftFloat) behave the same way;
//!   - float-to-integer conversions saturate per the table in section
//!     "Single-Precision Floating-Point Conversion and Move Instructions"
//!     (NaN gives the largest positive value) and then raise NV only, never
//!     NX, as SoftFloat and QEMU do.

/// Invalid operation.
pub const NV: u8 = 0x10;
/// Divide by zero.
pub const DZ: u8 = 0x08;
/// Overflow.
pub const OF: u8 = 0x04;
/// Underflow.
pub const UF: u8 = 0x02;
/// Inexact.
pub const NX: u8 = 0x01;

/// The RISC-V canonical binary32 NaN (positive, quiet, zero payload).
pub const CANONICAL_NAN_SINGLE: u64 = 0x7fc0_0000;
/// The RISC-V canonical binary64 NaN (positive, quiet, zero payload).
pub const CANONICAL_NAN_DOUBLE: u64 = 0x7ff8_0000_0000_0000;

/// A static rounding mode (the `rm` field encodings 0..=4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// RNE: round to nearest, ties to even.
    NearestEven,
    /// RTZ: round towards zero.
    TowardZero,
    /// RDN: round down (towards -inf).
    Down,
    /// RUP: round up (towards +inf).
    Up,
    /// RMM: round to nearest, ties to max magnitude.
    NearestMaxMagnitude,
}

impl Rounding {
    /// Decodes an `rm`/`frm` value. 5 and 6 are reserved and 7 (dynamic) must
    /// be resolved by the caller, so all of those give `None`.
    pub fn from_bits(rm: u8) -> Option<Rounding> {
        match rm {
            0 => Some(Rounding::NearestEven),
            1 => Some(Rounding::TowardZero),
            2 => Some(Rounding::Down),
            3 => Some(Rounding::Up),
            4 => Some(Rounding::NearestMaxMagnitude),
            _ => None,
        }
    }
}

/// The floating-point format an operation works on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// IEEE 754 binary32 (F extension).
    Single,
    /// IEEE 754 binary64 (D extension).
    Double,
}

/// The integer side of an `fcvt` instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    /// `w`: signed 32-bit.
    I32,
    /// `wu`: unsigned 32-bit.
    U32,
    /// `l`: signed 64-bit.
    I64,
    /// `lu`: unsigned 64-bit.
    U64,
}

impl Format {
    #[inline]
    const fn frac_bits(self) -> u32 {
        match self {
            Format::Single => 23,
            Format::Double => 52,
        }
    }

    #[inline]
    const fn exp_bits(self) -> u32 {
        match self {
            Format::Single => 8,
            Format::Double => 11,
        }
    }

    /// Exponent bias, which is also the largest unbiased exponent (emax).
    #[inline]
    const fn bias(self) -> i32 {
        (1 << (self.exp_bits() - 1)) - 1
    }

    #[inline]
    const fn width_mask(self) -> u64 {
        match self {
            Format::Single => 0xffff_ffff,
            Format::Double => u64::MAX,
        }
    }

    #[inline]
    const fn sign_mask(self) -> u64 {
        1 << (self.frac_bits() + self.exp_bits())
    }

    #[inline]
    const fn zero(self, sign: bool) -> u64 {
        if sign {
            self.sign_mask()
        } else {
            0
        }
    }

    #[inline]
    const fn infinity(self, sign: bool) -> u64 {
        self.zero(sign) | (((1 << self.exp_bits()) - 1) << self.frac_bits())
    }

    #[inline]
    const fn max_finite(self, sign: bool) -> u64 {
        self.infinity(sign) - 1
    }

    #[inline]
    const fn canonical_nan(self) -> u64 {
        match self {
            Format::Single => CANONICAL_NAN_SINGLE,
            Format::Double => CANONICAL_NAN_DOUBLE,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Zero,
    Finite,
    Inf,
    QuietNan,
    SignalingNan,
}

/// An unpacked operand. For `Kind::Finite`, `value = sig * 2^exp` with `sig`
/// normalised to exactly `frac_bits + 1` significant bits (subnormals are
/// normalised too); `exp`/`sig` are zero for the other kinds.
#[derive(Clone, Copy, Debug)]
struct Unpacked {
    sign: bool,
    kind: Kind,
    exp: i32,
    sig: u64,
}

impl Unpacked {
    #[inline]
    fn is_nan(self) -> bool {
        matches!(self.kind, Kind::QuietNan | Kind::SignalingNan)
    }

    #[inline]
    fn is_snan(self) -> bool {
        self.kind == Kind::SignalingNan
    }
}

#[inline]
fn unpack(f: Format, bits: u64) -> Unpacked {
    let bits = bits & f.width_mask();
    let fb = f.frac_bits();
    let sign = bits & f.sign_mask() != 0;
    let field = (bits >> fb) & ((1 << f.exp_bits()) - 1);
    let frac = bits & ((1 << fb) - 1);
    let (kind, exp, sig) = if field == (1 << f.exp_bits()) - 1 {
        if frac == 0 {
            (Kind::Inf, 0, 0)
        } else if frac >> (fb - 1) != 0 {
            (Kind::QuietNan, 0, 0)
        } else {
            (Kind::SignalingNan, 0, 0)
        }
    } else if field == 0 {
        if frac == 0 {
            (Kind::Zero, 0, 0)
        } else {
            // Subnormal: value = frac * 2^(emin - fb); normalise the significand.
            let shift = frac.leading_zeros() - (63 - fb);
            (
                Kind::Finite,
                1 - f.bias() - fb as i32 - shift as i32,
                frac << shift,
            )
        }
    } else {
        (
            Kind::Finite,
            field as i32 - f.bias() - fb as i32,
            frac | (1 << fb),
        )
    };
    Unpacked {
        sign,
        kind,
        exp,
        sig,
    }
}

/// Whether a truncated magnitude must be incremented by one unit in the last
/// kept place. `odd` is the kept LSB, `round` the first dropped bit and
/// `sticky` the OR of all further dropped bits.
#[inline]
fn round_increment(rm: Rounding, sign: bool, odd: bool, round: bool, sticky: bool) -> bool {
    match rm {
        Rounding::NearestEven => round && (sticky || odd),
        Rounding::NearestMaxMagnitude => round,
        Rounding::TowardZero => false,
        Rounding::Down => sign && (round || sticky),
        Rounding::Up => !sign && (round || sticky),
    }
}

/// Splits `sig` at bit `shift`: the kept bits `sig >> shift`, the round bit
/// and the sticky bit. `shift` may be any value >= 1, including >= 128.
#[inline]
fn split(sig: u128, shift: u32) -> (u128, bool, bool) {
    debug_assert!(shift >= 1);
    if shift > 128 {
        (0, false, sig != 0)
    } else {
        let kept = if shift == 128 { 0 } else { sig >> shift };
        let round = (sig >> (shift - 1)) & 1 != 0;
        let sticky = sig & ((1u128 << (shift - 1)) - 1) != 0;
        (kept, round, sticky)
    }
}

/// Shifts right by `d`, ORing every bit shifted out into the result's LSB.
#[inline]
fn shift_right_jam(m: u128, d: u32) -> u128 {
    if d == 0 {
        m
    } else if d < 128 {
        (m >> d) | u128::from(m & ((1u128 << d) - 1) != 0)
    } else {
        u128::from(m != 0)
    }
}

/// The one rounding routine: rounds `(-1)^sign * sig * 2^exp` (with `sig`
/// nonzero) to format `f` in mode `rm`, raising OF, UF and NX as required.
///
/// `sig` may carry a sticky bit in bit 0 standing for "nonzero bits below
/// here" as long as bit 0 lies strictly below the result's round bit; every
/// caller keeps at least 8 spare bits below the round bit, so that holds.
fn round_pack(f: Format, sign: bool, exp: i32, sig: u128, rm: Rounding, flags: &mut u8) -> u64 {
    debug_assert!(sig != 0);
    let lz = sig.leading_zeros();
    let sig = sig << lz;
    // The value lies in [2^e, 2^(e+1)).
    let e = exp - lz as i32 + 127;
    let p = f.frac_bits() + 1;
    let emin = 1 - f.bias();
    let emax = f.bias();
    let sign_bits = f.zero(sign);

    if e >= emin {
        // Normal range (or overflow).
        let (mut kept, round, sticky) = split(sig, 128 - p);
        if round_increment(rm, sign, kept & 1 != 0, round, sticky) {
            kept += 1;
        }
        let mut e = e;
        if kept >> p != 0 {
            // Rounded up to the next power of two.
            kept >>= 1;
            e += 1;
        }
        if e > emax {
            *flags |= OF | NX;
            let to_infinity = match rm {
                Rounding::NearestEven | Rounding::NearestMaxMagnitude => true,
                Rounding::TowardZero => false,
                Rounding::Down => sign,
                Rounding::Up => !sign,
            };
            return if to_infinity {
                f.infinity(sign)
            } else {
                f.max_finite(sign)
            };
        }
        if round || sticky {
            *flags |= NX;
        }
        // kept includes the implicit bit, which adds one to the biased field.
        sign_bits | ((((e + f.bias() - 1) as u64) << (p - 1)) + kept as u64)
    } else {
        // Below the normal range: round to the subnormal grid (LSB 2^(emin-p+1)).
        let extra = (emin - e).min(200) as u32;
        let (mut kept, round, sticky) = split(sig, 128 - p + extra);
        let inexact = round || sticky;
        // Tininess after rounding ("Subnormal Arithmetic"): the result is tiny unless
        // rounding to p bits with an unbounded exponent reaches 2^emin, which
        // is only possible when e == emin - 1 and the p kept bits are all ones.
        let tiny = e < emin - 1 || {
            let (k, r, s) = split(sig, 128 - p);
            !(k == (1u128 << p) - 1 && round_increment(rm, sign, true, r, s))
        };
        if round_increment(rm, sign, kept & 1 != 0, round, sticky) {
            kept += 1;
        }
        if inexact {
            *flags |= NX;
            if tiny {
                *flags |= UF;
            }
        }
        // A carry into bit p-1 yields the smallest normal number by itself.
        sign_bits | kept as u64
    }
}

/// Re-encodes a finite nonzero unpacked value exactly (no flags can arise).
#[inline]
fn repack(f: Format, x: Unpacked, sign: bool) -> u64 {
    let mut unused = 0;
    round_pack(
        f,
        sign,
        x.exp,
        u128::from(x.sig),
        Rounding::NearestEven,
        &mut unused,
    )
}

/// Adds two finite nonzero values `(-1)^xs * xm * 2^xe` and `(-1)^ys * ym * 2^ye`
/// (each significand below 2^126) with one rounding. Shared by add/sub and FMA.
fn add_finite(
    f: Format,
    (xs, xe, xm): (bool, i32, u128),
    (ys, ye, ym): (bool, i32, u128),
    rm: Rounding,
    flags: &mut u8,
) -> u64 {
    // Put both leading bits at bit 125 (room for a carry, never overflows).
    // Significands of at most 106 bits then end in >= 20 zero bits, so an
    // alignment shift of 0 or 1 is exact, and any larger shift leaves the
    // difference >= 2^124, far above the jammed sticky bit: one rounding of the
    // jammed sum equals the rounding of the exact sum.
    let norm = |e: i32, m: u128| {
        let s = m.leading_zeros() - 2;
        (e - s as i32, m << s)
    };
    let (mut xe, mut xm) = norm(xe, xm);
    let (mut ye, mut ym) = norm(ye, ym);
    let (mut xs, mut ys) = (xs, ys);
    if ye > xe {
        core::mem::swap(&mut xe, &mut ye);
        core::mem::swap(&mut xm, &mut ym);
        core::mem::swap(&mut xs, &mut ys);
    }
    let ym = shift_right_jam(ym, (xe - ye) as u32);
    if xs == ys {
        round_pack(f, xs, xe, xm + ym, rm, flags)
    } else if xm > ym {
        round_pack(f, xs, xe, xm - ym, rm, flags)
    } else if ym > xm {
        round_pack(f, ys, xe, ym - xm, rm, flags)
    } else {
        // Exact cancellation: +0, except -0 when rounding down (IEEE 754 6.3).
        f.zero(rm == Rounding::Down)
    }
}

/// `-0 + -0 = -0`, `+0 + +0 = +0`, mixed signs give +0 (or -0 when rounding down).
#[inline]
fn zero_sum(f: Format, xs: bool, ys: bool, rm: Rounding) -> u64 {
    if xs == ys {
        f.zero(xs)
    } else {
        f.zero(rm == Rounding::Down)
    }
}

#[inline]
fn invalid(f: Format, flags: &mut u8) -> u64 {
    *flags |= NV;
    f.canonical_nan()
}

/// NaN operand handling for arithmetic: canonical NaN, NV if any was signaling.
#[inline]
fn nan_result(f: Format, any_snan: bool, flags: &mut u8) -> u64 {
    if any_snan {
        *flags |= NV;
    }
    f.canonical_nan()
}

fn add_unpacked(f: Format, x: Unpacked, y: Unpacked, rm: Rounding, flags: &mut u8) -> u64 {
    if x.is_nan() || y.is_nan() {
        return nan_result(f, x.is_snan() || y.is_snan(), flags);
    }
    match (x.kind, y.kind) {
        (Kind::Inf, Kind::Inf) => {
            if x.sign == y.sign {
                f.infinity(x.sign)
            } else {
                invalid(f, flags)
            }
        }
        (Kind::Inf, _) => f.infinity(x.sign),
        (_, Kind::Inf) => f.infinity(y.sign),
        (Kind::Zero, Kind::Zero) => zero_sum(f, x.sign, y.sign, rm),
        (Kind::Zero, _) => repack(f, y, y.sign),
        (_, Kind::Zero) => repack(f, x, x.sign),
        _ => add_finite(
            f,
            (x.sign, x.exp, u128::from(x.sig)),
            (y.sign, y.exp, u128::from(y.sig)),
            rm,
            flags,
        ),
    }
}

/// `a + b` (fadd).
pub fn add(f: Format, a: u64, b: u64, rm: Rounding, flags: &mut u8) -> u64 {
    add_unpacked(f, unpack(f, a), unpack(f, b), rm, flags)
}

/// `a - b` (fsub).
pub fn sub(f: Format, a: u64, b: u64, rm: Rounding, flags: &mut u8) -> u64 {
    let mut y = unpack(f, b);
    y.sign = !y.sign;
    add_unpacked(f, unpack(f, a), y, rm, flags)
}

/// `a * b` (fmul).
pub fn mul(f: Format, a: u64, b: u64, rm: Rounding, flags: &mut u8) -> u64 {
    let (x, y) = (unpack(f, a), unpack(f, b));
    if x.is_nan() || y.is_nan() {
        return nan_result(f, x.is_snan() || y.is_snan(), flags);
    }
    let sign = x.sign ^ y.sign;
    match (x.kind, y.kind) {
        (Kind::Inf, Kind::Zero) | (Kind::Zero, Kind::Inf) => invalid(f, flags),
        (Kind::Inf, _) | (_, Kind::Inf) => f.infinity(sign),
        (Kind::Zero, _) | (_, Kind::Zero) => f.zero(sign),
        _ => round_pack(
            f,
            sign,
            x.exp + y.exp,
            u128::from(x.sig) * u128::from(y.sig),
            rm,
            flags,
        ),
    }
}

/// `a / b` (fdiv).
pub fn div(f: Format, a: u64, b: u64, rm: Rounding, flags: &mut u8) -> u64 {
    let (x, y) = (unpack(f, a), unpack(f, b));
    if x.is_nan() || y.is_nan() {
        return nan_result(f, x.is_snan() || y.is_snan(), flags);
    }
    let sign = x.sign ^ y.sign;
    match (x.kind, y.kind) {
        (Kind::Inf, Kind::Inf) | (Kind::Zero, Kind::Zero) => invalid(f, flags),
        (Kind::Inf, _) => f.infinity(sign),
        (_, Kind::Inf) | (Kind::Zero, _) => f.zero(sign),
        (_, Kind::Zero) => {
            *flags |= DZ;
            f.infinity(sign)
        }
        _ => {
            // Both significands are in [2^fb, 2^(fb+1)), so the quotient of
            // x.sig * 2^74 by y.sig has at least 73 bits; the remainder
            // becomes the sticky bit.
            let num = u128::from(x.sig) << 74;
            let den = u128::from(y.sig);
            let q = num / den;
            let sticky = u128::from(num % den != 0);
            round_pack(f, sign, x.exp - y.exp - 74, q | sticky, rm, flags)
        }
    }
}

/// Floor of the square root of `n` (n < 2^126) and whether it is exact.
fn isqrt(n: u128) -> (u128, bool) {
    // A host estimate, one Newton step (error then below a few units) and an
    // exact integer correction: the result does not depend on the host's
    // rounding.
    let mut r = (n as f64).sqrt() as u128;
    if r == 0 {
        r = 1;
    }
    r = (r + n / r) >> 1;
    while r * r > n {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= n {
        r += 1;
    }
    (r, r * r == n)
}

/// Square root (fsqrt).
pub fn sqrt(f: Format, a: u64, rm: Rounding, flags: &mut u8) -> u64 {
    let x = unpack(f, a);
    match x.kind {
        Kind::QuietNan | Kind::SignalingNan => nan_result(f, x.is_snan(), flags),
        // sqrt(-0) = -0 (IEEE 754 5.4.1).
        Kind::Zero => f.zero(x.sign),
        _ if x.sign => invalid(f, flags),
        Kind::Inf => f.infinity(false),
        Kind::Finite => {
            let (mut e, mut m) = (x.exp, u128::from(x.sig));
            if e & 1 != 0 {
                m <<= 1;
                e -= 1;
            }
            // m < 2^54, so m * 2^70 < 2^124 and its root has >= 46 bits.
            let (r, exact) = isqrt(m << 70);
            round_pack(f, false, (e - 70) / 2, r | u128::from(!exact), rm, flags)
        }
    }
}

/// Fused `(±a*b) ± c` with a single rounding. `negate_product` and
/// `negate_addend` select fmadd (false, false), fmsub (false, true),
/// fnmsub (true, false) and fnmadd (true, true).
#[allow(clippy::too_many_arguments)]
pub fn fused_multiply_add(
    f: Format,
    a: u64,
    b: u64,
    c: u64,
    negate_product: bool,
    negate_addend: bool,
    rm: Rounding,
    flags: &mut u8,
) -> u64 {
    let (x, y, z) = (unpack(f, a), unpack(f, b), unpack(f, c));
    let product_sign = x.sign ^ y.sign ^ negate_product;
    let addend_sign = z.sign ^ negate_addend;
    let inf_times_zero = matches!(
        (x.kind, y.kind),
        (Kind::Inf, Kind::Zero) | (Kind::Zero, Kind::Inf)
    );
    if x.is_nan() || y.is_nan() || z.is_nan() {
        // RISC-V: inf * 0 raises NV even when the addend is a quiet NaN.
        let nv = x.is_snan() || y.is_snan() || z.is_snan() || inf_times_zero;
        return nan_result(f, nv, flags);
    }
    if inf_times_zero {
        return invalid(f, flags);
    }
    if x.kind == Kind::Inf || y.kind == Kind::Inf {
        return if z.kind == Kind::Inf && addend_sign != product_sign {
            invalid(f, flags)
        } else {
            f.infinity(product_sign)
        };
    }
    if z.kind == Kind::Inf {
        return f.infinity(addend_sign);
    }
    if x.kind == Kind::Zero || y.kind == Kind::Zero {
        return if z.kind == Kind::Zero {
            zero_sum(f, product_sign, addend_sign, rm)
        } else {
            repack(f, z, addend_sign)
        };
    }
    let product = (
        product_sign,
        x.exp + y.exp,
        u128::from(x.sig) * u128::from(y.sig),
    );
    if z.kind == Kind::Zero {
        let (s, e, m) = product;
        return round_pack(f, s, e, m, rm, flags);
    }
    add_finite(
        f,
        product,
        (addend_sign, z.exp, u128::from(z.sig)),
        rm,
        flags,
    )
}

/// Orders two non-NaN values with -0 < +0 (the fmin/fmax order).
#[inline]
fn less_signed_zero(f: Format, a: u64, b: u64) -> bool {
    let (a, b) = (a & f.width_mask(), b & f.width_mask());
    let (sa, sb) = (a & f.sign_mask() != 0, b & f.sign_mask() != 0);
    match (sa, sb) {
        (true, false) => true,
        (false, true) => false,
        (false, false) => a < b,
        (true, true) => a > b,
    }
}

fn min_max(f: Format, a: u64, b: u64, want_max: bool, flags: &mut u8) -> u64 {
    let (x, y) = (unpack(f, a), unpack(f, b));
    // F 2.2: signaling NaN inputs raise NV even when the result is not NaN;
    // one NaN yields the other operand, two NaNs the canonical NaN.
    if x.is_snan() || y.is_snan() {
        *flags |= NV;
    }
    let (a, b) = (a & f.width_mask(), b & f.width_mask());
    match (x.is_nan(), y.is_nan()) {
        (true, true) => f.canonical_nan(),
        (true, false) => b,
        (false, true) => a,
        (false, false) => {
            if less_signed_zero(f, a, b) != want_max {
                a
            } else {
                b
            }
        }
    }
}

/// fmin: the smaller operand, with -0 < +0 and NaN operands ignored.
pub fn min(f: Format, a: u64, b: u64, flags: &mut u8) -> u64 {
    min_max(f, a, b, false, flags)
}

/// fmax: the larger operand, with -0 < +0 and NaN operands ignored.
pub fn max(f: Format, a: u64, b: u64, flags: &mut u8) -> u64 {
    min_max(f, a, b, true, flags)
}

/// IEEE ordering of two non-NaN values (+0 == -0).
#[inline]
fn ordered_less(f: Format, a: u64, b: u64) -> bool {
    let mag = f.sign_mask() - 1;
    let both_zero = (a | b) & mag == 0;
    !both_zero && less_signed_zero(f, a, b)
}

/// feq: quiet comparison, NV only for signaling NaN operands.
pub fn eq(f: Format, a: u64, b: u64, flags: &mut u8) -> bool {
    let (x, y) = (unpack(f, a), unpack(f, b));
    if x.is_nan() || y.is_nan() {
        if x.is_snan() || y.is_snan() {
            *flags |= NV;
        }
        return false;
    }
    let (a, b) = (a & f.width_mask(), b & f.width_mask());
    a == b || (x.kind == Kind::Zero && y.kind == Kind::Zero)
}

/// flt: signaling comparison, NV for any NaN operand.
pub fn lt(f: Format, a: u64, b: u64, flags: &mut u8) -> bool {
    let (x, y) = (unpack(f, a), unpack(f, b));
    if x.is_nan() || y.is_nan() {
        *flags |= NV;
        return false;
    }
    ordered_less(f, a & f.width_mask(), b & f.width_mask())
}

/// fle: signaling comparison, NV for any NaN operand.
pub fn le(f: Format, a: u64, b: u64, flags: &mut u8) -> bool {
    let (x, y) = (unpack(f, a), unpack(f, b));
    if x.is_nan() || y.is_nan() {
        *flags |= NV;
        return false;
    }
    let (a, b) = (a & f.width_mask(), b & f.width_mask());
    a == b || (x.kind == Kind::Zero && y.kind == Kind::Zero) || ordered_less(f, a, b)
}

/// fclass: the one-hot 10-bit class mask (bit 0 = -inf ... bit 9 = quiet NaN).
pub fn classify(f: Format, a: u64) -> u64 {
    let x = unpack(f, a);
    let subnormal = ((a & f.width_mask()) >> f.frac_bits()) & ((1 << f.exp_bits()) - 1) == 0;
    let bit = match (x.kind, x.sign) {
        (Kind::Inf, true) => 0,
        (Kind::Finite, true) if !subnormal => 1,
        (Kind::Finite, true) => 2,
        (Kind::Zero, true) => 3,
        (Kind::Zero, false) => 4,
        (Kind::Finite, false) if subnormal => 5,
        (Kind::Finite, false) => 6,
        (Kind::Inf, false) => 7,
        (Kind::SignalingNan, _) => 8,
        (Kind::QuietNan, _) => 9,
    };
    1 << bit
}

/// fcvt.{w,wu,l,lu}.{s,d}. Out-of-range values (after rounding), infinities
/// and NaN saturate per the spec's fcvt table (NaN gives the largest positive
/// value) and raise NV only; an in-range inexact result raises NX. 32-bit
/// results, signed and unsigned, are sign-extended from bit 31 as RV64 writes
/// them to the integer register.
pub fn to_int(f: Format, a: u64, kind: IntKind, rm: Rounding, flags: &mut u8) -> u64 {
    let (bits, signed) = match kind {
        IntKind::I32 => (32, true),
        IntKind::U32 => (32, false),
        IntKind::I64 => (64, true),
        IntKind::U64 => (64, false),
    };
    let max_positive: u128 = if signed {
        (1 << (bits - 1)) - 1
    } else {
        (1 << bits) - 1
    };
    let max_negative: u128 = if signed { 1 << (bits - 1) } else { 0 };
    let encode = |negative: bool, magnitude: u128| -> u64 {
        let v = if negative {
            (magnitude as i128).wrapping_neg()
        } else {
            magnitude as i128
        };
        if bits == 32 {
            v as i32 as i64 as u64
        } else {
            v as u64
        }
    };
    let saturate = |negative: bool, flags: &mut u8| -> u64 {
        *flags |= NV;
        if negative {
            encode(true, max_negative)
        } else {
            encode(false, max_positive)
        }
    };

    let x = unpack(f, a);
    match x.kind {
        Kind::QuietNan | Kind::SignalingNan => saturate(false, flags),
        Kind::Inf => saturate(x.sign, flags),
        Kind::Zero => 0,
        Kind::Finite => {
            let sig = u128::from(x.sig);
            let (magnitude, inexact) = if x.exp > 64 {
                // At least 2^65: out of range for every kind.
                return saturate(x.sign, flags);
            } else if x.exp >= 0 {
                (sig << x.exp, false)
            } else {
                let (kept, round, sticky) = split(sig, (-x.exp) as u32);
                let up = round_increment(rm, x.sign, kept & 1 != 0, round, sticky);
                (kept + u128::from(up), round || sticky)
            };
            let limit = if x.sign { max_negative } else { max_positive };
            if magnitude > limit {
                return saturate(x.sign, flags);
            }
            if inexact {
                *flags |= NX;
            }
            encode(x.sign, magnitude)
        }
    }
}

/// fcvt.{s,d}.{w,wu,l,lu}. `value` is the integer register; for I32/U32 only
/// its low 32 bits are used. A zero integer gives +0.
pub fn from_int(f: Format, value: u64, kind: IntKind, rm: Rounding, flags: &mut u8) -> u64 {
    let (negative, magnitude) = match kind {
        IntKind::I32 => {
            let v = value as u32 as i32;
            (v < 0, u64::from(v.unsigned_abs()))
        }
        IntKind::U32 => (false, u64::from(value as u32)),
        IntKind::I64 => {
            let v = value as i64;
            (v < 0, v.unsigned_abs())
        }
        IntKind::U64 => (false, value),
    };
    if magnitude == 0 {
        return 0;
    }
    round_pack(f, negative, 0, u128::from(magnitude), rm, flags)
}

/// Converts between formats (fcvt.d.s / fcvt.s.d): NaN becomes the canonical
/// NaN of the target format (NV if it was signaling).
fn convert(from: Format, to: Format, a: u64, rm: Rounding, flags: &mut u8) -> u64 {
    let x = unpack(from, a);
    match x.kind {
        Kind::QuietNan | Kind::SignalingNan => nan_result(to, x.is_snan(), flags),
        Kind::Inf => to.infinity(x.sign),
        Kind::Zero => to.zero(x.sign),
        Kind::Finite => round_pack(to, x.sign, x.exp, u128::from(x.sig), rm, flags),
    }
}

/// fcvt.d.s: exact widening (only a signaling NaN raises a flag).
pub fn single_to_double(a: u64, flags: &mut u8) -> u64 {
    convert(
        Format::Single,
        Format::Double,
        a,
        Rounding::NearestEven,
        flags,
    )
}

/// fcvt.s.d: narrowing with rounding.
pub fn double_to_single(a: u64, rm: Rounding, flags: &mut u8) -> u64 {
    convert(Format::Double, Format::Single, a, rm, flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Format = Format::Single;
    const D: Format = Format::Double;
    const RNE: Rounding = Rounding::NearestEven;
    const RTZ: Rounding = Rounding::TowardZero;
    const RDN: Rounding = Rounding::Down;
    const RUP: Rounding = Rounding::Up;
    const RMM: Rounding = Rounding::NearestMaxMagnitude;
    const MODES: [Rounding; 5] = [RNE, RTZ, RDN, RUP, RMM];

    const QNAN_D_PAYLOAD: u64 = 0x7ff8_0000_dead_beef;
    const SNAN_D: u64 = 0x7ff0_0000_0000_0001;
    const NEG_QNAN_D: u64 = 0xfff8_0000_0000_0000;
    const QNAN_S_PAYLOAD: u64 = 0x7fc0_1234;
    const SNAN_S: u64 = 0x7f80_0001;
    const NEG_QNAN_S: u64 = 0xffc0_0000;

    fn d(x: f64) -> u64 {
        x.to_bits()
    }

    fn s(x: f32) -> u64 {
        u64::from(x.to_bits())
    }

    fn p2(e: i32) -> f64 {
        // Exact powers of two over the whole double range, subnormals included.
        if e >= -1022 {
            f64::from_bits(((e + 1023) as u64) << 52)
        } else {
            f64::from_bits(1 << (e + 1074))
        }
    }

    /// Runs an operation with fresh flags and returns (result, flags).
    fn run<T>(op: impl FnOnce(&mut u8) -> T) -> (T, u8) {
        let mut flags = 0;
        let r = op(&mut flags);
        (r, flags)
    }

    #[test]
    fn rounding_from_bits() {
        assert_eq!(Rounding::from_bits(0), Some(RNE));
        assert_eq!(Rounding::from_bits(1), Some(RTZ));
        assert_eq!(Rounding::from_bits(2), Some(RDN));
        assert_eq!(Rounding::from_bits(3), Some(RUP));
        assert_eq!(Rounding::from_bits(4), Some(RMM));
        for rm in 5..=255 {
            assert_eq!(Rounding::from_bits(rm), None);
        }
    }

    #[test]
    fn add_rounding_modes_halfway_and_not() {
        let one = 1.0f64;
        let up = 1.0 + p2(-52);
        // (addend, [RNE, RTZ, RDN, RUP, RMM]) for positive sums starting at 1.0.
        let cases: [(f64, f64, [f64; 5]); 4] = [
            // Exact tie, even below: RNE stays, RMM goes away from zero.
            (one, p2(-53), [one, one, one, up, up]),
            // Below half.
            (one, p2(-54), [one, one, one, up, one]),
            // Above half.
            (one, p2(-53) + p2(-54), [up, one, one, up, up]),
            // Tie with odd kept LSB: RNE rounds up to even.
            (
                up,
                p2(-53),
                [up + p2(-52), up, up, up + p2(-52), up + p2(-52)],
            ),
        ];
        for (a, b, want) in cases {
            for (rm, w) in MODES.iter().zip(want) {
                let (r, fl) = run(|fl| add(D, d(a), d(b), *rm, fl));
                assert_eq!(r, d(w), "{a} + {b} {rm:?}");
                assert_eq!(fl, NX);
                // Mirror image for negative operands: RDN and RUP swap.
                let (r, fl) = run(|fl| add(D, d(-a), d(-b), *rm, fl));
                let w_neg = match rm {
                    Rounding::Down => -want[3],
                    Rounding::Up => -want[2],
                    _ => -w,
                };
                assert_eq!(r, d(w_neg), "-{a} + -{b} {rm:?}");
                assert_eq!(fl, NX);
            }
        }
        // Single precision tie: 1 + 2^-24.
        let one_s = 1.0f32;
        let up_s = 1.0f32 + f32::EPSILON;
        let want = [one_s, one_s, one_s, up_s, up_s];
        for (rm, w) in MODES.iter().zip(want) {
            let (r, fl) = run(|fl| add(S, s(one_s), s(f32::EPSILON / 2.0), *rm, fl));
            assert_eq!(r, s(w), "{rm:?}");
            assert_eq!(fl, NX);
        }
        // Exact results raise nothing.
        assert_eq!(run(|fl| add(D, d(1.5), d(2.25), RNE, fl)), (d(3.75), 0));
        assert_eq!(run(|fl| sub(S, s(1.5), s(2.25), RUP, fl)), (s(-0.75), 0));
    }

    #[test]
    fn mul_div_sqrt_rounding_modes() {
        // 1/3 in every mode.
        let third = 1.0f64 / 3.0; // RNE: rounds down (0x3fd5555555555555).
        let third_up = f64::from_bits(third.to_bits() + 1);
        let want = [third, third, third, third_up, third];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(run(|fl| div(D, d(1.0), d(3.0), *rm, fl)), (d(w), NX));
            let neg = match rm {
                Rounding::Down => -third_up,
                Rounding::Up => -third,
                _ => -w,
            };
            assert_eq!(
                run(|fl| div(D, d(-1.0), d(3.0), *rm, fl)),
                (d(neg), NX),
                "{rm:?}"
            );
        }
        // 1/10 rounds up under RNE.
        let tenth = 0.1f64;
        assert_eq!(
            run(|fl| div(D, d(1.0), d(10.0), RTZ, fl)),
            (tenth.to_bits() - 1, NX)
        );
        assert_eq!(
            run(|fl| div(D, d(1.0), d(10.0), RUP, fl)),
            (tenth.to_bits(), NX)
        );
        // sqrt(2) in single: RNE (0x3fb504f3) rounds down, like RTZ/RDN.
        let r2 = 2.0f32.sqrt();
        let r2_up = f32::from_bits(r2.to_bits() + 1);
        let want = [r2, r2, r2, r2_up, r2];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(run(|fl| sqrt(S, s(2.0), *rm, fl)), (s(w), NX), "{rm:?}");
        }
        assert_eq!(run(|fl| sqrt(D, d(6.25), RDN, fl)), (d(2.5), 0));
        assert_eq!(run(|fl| sqrt(S, s(0.25), RUP, fl)), (s(0.5), 0));
        // Product tie: (1 + 2^-52) * (1 + 2^-1) = 1.5 + 2^-52 + 2^-53 -> tie.
        let a = 1.0 + p2(-52);
        let exact_lo = 1.5 + p2(-52);
        let hi = 1.5 + p2(-51);
        let want = [hi, exact_lo, exact_lo, hi, hi];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(
                run(|fl| mul(D, d(a), d(1.5), *rm, fl)),
                (d(w), NX),
                "{rm:?}"
            );
        }
    }

    #[test]
    fn subnormals_and_underflow() {
        let min_sub = p2(-1074);
        // Subnormal inputs are exact.
        assert_eq!(
            run(|fl| mul(D, d(min_sub), d(p2(52)), RNE, fl)),
            (d(p2(-1022)), 0)
        );
        assert_eq!(
            run(|fl| add(D, d(min_sub), d(min_sub), RNE, fl)),
            (d(p2(-1073)), 0)
        );
        // An exact subnormal result raises nothing (UF needs inexactness).
        let (r, fl) = run(|fl| sub(D, 0x0010_0000_0000_0001, 0x0010_0000_0000_0000, RNE, fl));
        assert_eq!((r, fl), (1, 0));
        // Half of the smallest subnormal: a tie between 0 and 2^-1074.
        let want = [0.0, 0.0, 0.0, min_sub, min_sub];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(
                run(|fl| mul(D, d(min_sub), d(0.5), *rm, fl)),
                (d(w), UF | NX)
            );
            let neg = match rm {
                Rounding::Down => -min_sub,
                Rounding::Up => -0.0,
                _ => -w,
            };
            assert_eq!(
                run(|fl| mul(D, d(-min_sub), d(0.5), *rm, fl)),
                (d(neg), UF | NX)
            );
        }
        // Subnormal result with rounding (single): 2^-149 * 1.5 = tie 1.5 ulp.
        let ms = f32::from_bits(1);
        let (r, fl) = run(|fl| mul(S, s(ms), s(1.5), RNE, fl));
        assert_eq!((r, fl), (2, UF | NX));
        let (r, fl) = run(|fl| mul(S, s(ms), s(1.5), RTZ, fl));
        assert_eq!((r, fl), (1, UF | NX));

        // Tininess is detected after rounding. v = 2^-126 - 2^-151 rounds
        // (unbounded exponent, 24 bits) up to 2^-126 under RNE/RMM/RUP: not
        // tiny, so no UF although the result is inexact.
        let v = p2(-126) - p2(-151);
        let min_normal_s = 0x0080_0000;
        let below = 0x007f_ffff;
        let want = [
            (RNE, min_normal_s, NX),
            (RMM, min_normal_s, NX),
            (RUP, min_normal_s, NX),
            (RTZ, below, UF | NX),
            (RDN, below, UF | NX),
        ];
        for (rm, r, fl) in want {
            assert_eq!(run(|f| double_to_single(d(v), rm, f)), (r, fl), "{rm:?}");
        }
        // v2 = 2^-126 - 2^-150 is exact with 24 bits but below 2^-126: tiny.
        // Rounded to the subnormal grid it is a tie that goes up to 2^-126.
        let v2 = p2(-126) - p2(-150);
        assert_eq!(
            run(|f| double_to_single(d(v2), RNE, f)),
            (min_normal_s, UF | NX)
        );
        assert_eq!(
            run(|f| double_to_single(d(v2), RUP, f)),
            (min_normal_s, UF | NX)
        );
        assert_eq!(run(|f| double_to_single(d(v2), RTZ, f)), (below, UF | NX));
        // Same in double: (1 - 2^-53) * 2^-1022 is tiny, result rounds to 2^-1022.
        let (r, fl) = run(|f| mul(D, d(1.0 - p2(-53)), d(p2(-1022)), RNE, f));
        assert_eq!((r, fl), (d(p2(-1022)), UF | NX));
        // (1 - 2^-27)(1 + 2^-27) * 2^-1022 = 2^-1022 - 2^-1076: a tie at 53
        // bits that rounds to 2^-1022 under RNE, so it is not tiny.
        let x = d((1.0 - p2(-27)) * p2(-511));
        let y = d((1.0 + p2(-27)) * p2(-511));
        assert_eq!(run(|f| mul(D, x, y, RNE, f)), (d(p2(-1022)), NX));
        assert_eq!(
            run(|f| mul(D, x, y, RTZ, f)),
            (0x000f_ffff_ffff_ffff, UF | NX)
        );
        let r = run(|f| fused_multiply_add(D, x, y, d(-0.0), false, false, RNE, f));
        assert_eq!(r, (d(p2(-1022)), NX));
        let r = run(|f| fused_multiply_add(D, x, y, 1, false, true, RDN, f));
        assert_eq!(r, (0x000f_ffff_ffff_fffe, UF | NX));
        // Division into the subnormal range.
        let (r, fl) = run(|f| div(D, d(p2(-1000)), d(3.0 * p2(70)), RNE, f));
        assert_eq!(r, d(p2(-1000) / (3.0 * p2(70))));
        assert_eq!(fl, UF | NX);
        // sqrt of a subnormal is normal and exact here.
        assert_eq!(run(|f| sqrt(D, d(p2(-1074)), RNE, f)), (d(p2(-537)), 0));
        assert_eq!(run(|f| sqrt(S, 1, RNE, f)).0, s(f32::from_bits(1).sqrt()));
    }

    #[test]
    fn overflow_per_rounding_mode() {
        let max = f64::MAX;
        let inf = f64::INFINITY;
        // [RNE, RTZ, RDN, RUP, RMM] for +MAX * 2 and -MAX * 2.
        let pos = [inf, max, max, inf, inf];
        let neg = [-inf, -max, -inf, -max, -inf];
        for i in 0..5 {
            let rm = MODES[i];
            assert_eq!(run(|f| mul(D, d(max), d(2.0), rm, f)), (d(pos[i]), OF | NX));
            assert_eq!(
                run(|f| mul(D, d(-max), d(2.0), rm, f)),
                (d(neg[i]), OF | NX)
            );
            let (smax, sinf) = (f32::MAX, f32::INFINITY);
            let want = if pos[i] == inf { sinf } else { smax };
            assert_eq!(run(|f| add(S, s(smax), s(smax), rm, f)), (s(want), OF | NX));
            // Narrowing overflow.
            assert_eq!(
                run(|f| double_to_single(d(1e39), rm, f)),
                (s(want), OF | NX)
            );
        }
        // Overflow caused by rounding: MAX + half an ulp ties up to 2^1024.
        let half_ulp = p2(970);
        assert_eq!(
            run(|f| add(D, d(max), d(half_ulp), RNE, f)),
            (d(inf), OF | NX)
        );
        assert_eq!(
            run(|f| add(D, d(max), d(half_ulp), RMM, f)),
            (d(inf), OF | NX)
        );
        // ...but not when the rounded result stays finite.
        assert_eq!(run(|f| add(D, d(max), d(half_ulp), RTZ, f)), (d(max), NX));
        assert_eq!(run(|f| add(D, d(max), d(p2(969)), RNE, f)), (d(max), NX));
        assert_eq!(
            run(|f| add(D, d(max), d(p2(969)), RUP, f)),
            (d(inf), OF | NX)
        );
        // Division by a tiny number overflows (no DZ).
        assert_eq!(
            run(|f| div(D, d(1.0), d(p2(-1074)), RNE, f)),
            (d(inf), OF | NX)
        );
        // Infinity operands are exact: no OF.
        assert_eq!(run(|f| mul(D, d(inf), d(2.0), RNE, f)), (d(inf), 0));
    }

    #[test]
    fn signed_zeros() {
        for f in [S, D] {
            let pz = 0;
            let nz = f.sign_mask();
            let (one, mone) = match f {
                Format::Single => (s(1.0), s(-1.0)),
                Format::Double => (d(1.0), d(-1.0)),
            };
            for rm in MODES {
                let z = if rm == RDN { nz } else { pz };
                assert_eq!(run(|fl| add(f, one, mone, rm, fl)), (z, 0));
                assert_eq!(run(|fl| sub(f, one, one, rm, fl)), (z, 0));
                assert_eq!(run(|fl| add(f, pz, nz, rm, fl)), (z, 0));
                assert_eq!(run(|fl| add(f, nz, pz, rm, fl)), (z, 0));
                assert_eq!(run(|fl| sub(f, pz, pz, rm, fl)), (z, 0));
                assert_eq!(run(|fl| add(f, nz, nz, rm, fl)), (nz, 0));
                assert_eq!(run(|fl| add(f, pz, pz, rm, fl)), (pz, 0));
                assert_eq!(run(|fl| sub(f, nz, pz, rm, fl)), (nz, 0));
                // x + 0 = x exactly.
                assert_eq!(run(|fl| add(f, nz, one, rm, fl)), (one, 0));
                assert_eq!(run(|fl| add(f, mone, pz, rm, fl)), (mone, 0));
                // fma: 2 * 3 - 6 is an exact zero.
                let (two, three, six) = match f {
                    Format::Single => (s(2.0), s(3.0), s(6.0)),
                    Format::Double => (d(2.0), d(3.0), d(6.0)),
                };
                let r = run(|fl| fused_multiply_add(f, two, three, six, false, true, rm, fl));
                assert_eq!(r, (z, 0));
                // Zero product plus zero addend.
                let r = run(|fl| fused_multiply_add(f, pz, one, nz, false, false, rm, fl));
                assert_eq!(r, (z, 0));
                let r = run(|fl| fused_multiply_add(f, one, nz, nz, false, false, rm, fl));
                assert_eq!(r, (nz, 0));
                // fnmadd(0, 1, 0) = -(0 * 1) - 0 = -0.
                let r = run(|fl| fused_multiply_add(f, pz, one, pz, true, true, rm, fl));
                assert_eq!(r, (nz, 0));
            }
            assert_eq!(run(|fl| mul(f, nz, one, RNE, fl)), (nz, 0));
            assert_eq!(run(|fl| mul(f, nz, mone, RNE, fl)), (pz, 0));
            assert_eq!(run(|fl| div(f, mone, f.infinity(false), RNE, fl)), (nz, 0));
            assert_eq!(run(|fl| div(f, pz, mone, RNE, fl)), (nz, 0));
            assert_eq!(run(|fl| sqrt(f, nz, RNE, fl)), (nz, 0));
            assert_eq!(run(|fl| sqrt(f, pz, RNE, fl)), (pz, 0));
        }
    }

    #[test]
    fn nan_canonicalisation_and_invalid() {
        let cases = [
            (D, QNAN_D_PAYLOAD, SNAN_D, NEG_QNAN_D, d(1.0)),
            (S, QNAN_S_PAYLOAD, SNAN_S, NEG_QNAN_S, s(1.0)),
        ];
        for (f, qnan, snan, nqnan, one) in cases {
            let cn = f.canonical_nan();
            let inf = f.infinity(false);
            let ninf = f.infinity(true);
            let zero = 0;
            type Op = fn(Format, u64, u64, Rounding, &mut u8) -> u64;
            let ops: [Op; 4] = [add, sub, mul, div];
            for op in ops {
                for rm in MODES {
                    assert_eq!(run(|fl| op(f, qnan, one, rm, fl)), (cn, 0));
                    assert_eq!(run(|fl| op(f, one, nqnan, rm, fl)), (cn, 0));
                    assert_eq!(run(|fl| op(f, qnan, nqnan, rm, fl)), (cn, 0));
                    assert_eq!(run(|fl| op(f, snan, one, rm, fl)), (cn, NV));
                    assert_eq!(run(|fl| op(f, qnan, snan, rm, fl)), (cn, NV));
                }
            }
            // Invalid operations.
            assert_eq!(run(|fl| add(f, inf, ninf, RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| sub(f, inf, inf, RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| add(f, inf, inf, RNE, fl)), (inf, 0));
            assert_eq!(run(|fl| sub(f, ninf, inf, RNE, fl)), (ninf, 0));
            assert_eq!(run(|fl| mul(f, inf, zero, RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| mul(f, f.zero(true), ninf, RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| div(f, zero, f.zero(true), RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| div(f, inf, ninf, RNE, fl)), (cn, NV));
            // Division by zero.
            assert_eq!(run(|fl| div(f, one, zero, RNE, fl)), (inf, DZ));
            assert_eq!(run(|fl| div(f, one, f.zero(true), RNE, fl)), (ninf, DZ));
            assert_eq!(
                run(|fl| div(f, one | f.sign_mask(), zero, RNE, fl)),
                (ninf, DZ)
            );
            assert_eq!(run(|fl| div(f, inf, zero, RNE, fl)), (inf, 0));
            assert_eq!(run(|fl| div(f, one, inf, RNE, fl)), (zero, 0));
            // sqrt.
            assert_eq!(run(|fl| sqrt(f, one | f.sign_mask(), RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| sqrt(f, ninf, RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| sqrt(f, inf, RNE, fl)), (inf, 0));
            assert_eq!(run(|fl| sqrt(f, qnan, RNE, fl)), (cn, 0));
            assert_eq!(run(|fl| sqrt(f, nqnan, RNE, fl)), (cn, 0));
            assert_eq!(run(|fl| sqrt(f, snan, RNE, fl)), (cn, NV));
            assert_eq!(run(|fl| sqrt(f, snan | f.sign_mask(), RNE, fl)), (cn, NV));
            // Flags accumulate (OR) into the caller's byte.
            let mut fl = NX;
            div(f, one, zero, RNE, &mut fl);
            assert_eq!(fl, NX | DZ);
        }
        // Conversions between formats.
        assert_eq!(
            run(|fl| single_to_double(SNAN_S, fl)),
            (CANONICAL_NAN_DOUBLE, NV)
        );
        assert_eq!(
            run(|fl| single_to_double(QNAN_S_PAYLOAD, fl)),
            (CANONICAL_NAN_DOUBLE, 0)
        );
        assert_eq!(
            run(|fl| single_to_double(NEG_QNAN_S, fl)),
            (CANONICAL_NAN_DOUBLE, 0)
        );
        assert_eq!(
            run(|fl| double_to_single(SNAN_D, RNE, fl)),
            (CANONICAL_NAN_SINGLE, NV)
        );
        assert_eq!(
            run(|fl| double_to_single(QNAN_D_PAYLOAD, RNE, fl)),
            (CANONICAL_NAN_SINGLE, 0)
        );
        assert_eq!(
            run(|fl| double_to_single(NEG_QNAN_D, RTZ, fl)),
            (CANONICAL_NAN_SINGLE, 0)
        );
    }

    #[test]
    fn fma_special_cases() {
        let f = D;
        let cn = CANONICAL_NAN_DOUBLE;
        let inf = d(f64::INFINITY);
        let one = d(1.0);
        let fma = |a, b, c, np, na, fl: &mut u8| fused_multiply_add(f, a, b, c, np, na, RNE, fl);
        // inf * 0 raises NV even with a quiet-NaN addend (RISC-V rule).
        assert_eq!(
            run(|fl| fma(inf, 0, QNAN_D_PAYLOAD, false, false, fl)),
            (cn, NV)
        );
        assert_eq!(run(|fl| fma(0, inf, NEG_QNAN_D, true, true, fl)), (cn, NV));
        assert_eq!(run(|fl| fma(inf, 0, one, false, false, fl)), (cn, NV));
        // Quiet NaNs otherwise raise nothing; sNaN anywhere raises NV.
        assert_eq!(
            run(|fl| fma(QNAN_D_PAYLOAD, one, one, false, false, fl)),
            (cn, 0)
        );
        assert_eq!(
            run(|fl| fma(one, one, QNAN_D_PAYLOAD, false, false, fl)),
            (cn, 0)
        );
        assert_eq!(
            run(|fl| fma(QNAN_D_PAYLOAD, 0, inf, false, false, fl)),
            (cn, 0)
        );
        assert_eq!(run(|fl| fma(one, one, SNAN_D, false, false, fl)), (cn, NV));
        assert_eq!(
            run(|fl| fma(SNAN_D, one, QNAN_D_PAYLOAD, false, false, fl)),
            (cn, NV)
        );
        // inf - inf inside the fma.
        assert_eq!(run(|fl| fma(inf, one, inf, false, true, fl)), (cn, NV));
        assert_eq!(run(|fl| fma(inf, one, inf, false, false, fl)), (inf, 0));
        assert_eq!(
            run(|fl| fma(inf, one, inf, true, true, fl)),
            (inf | D.sign_mask(), 0)
        );
        assert_eq!(
            run(|fl| fma(one, one, inf, false, true, fl)),
            (inf | D.sign_mask(), 0)
        );
        assert_eq!(
            run(|fl| fma(d(f64::MAX), d(2.0), inf, false, true, fl)),
            (inf | D.sign_mask(), 0)
        );
        // The four variants.
        let (a, b, c) = (d(2.0), d(3.0), d(1.0));
        assert_eq!(run(|fl| fma(a, b, c, false, false, fl)), (d(7.0), 0));
        assert_eq!(run(|fl| fma(a, b, c, false, true, fl)), (d(5.0), 0));
        assert_eq!(run(|fl| fma(a, b, c, true, false, fl)), (d(-5.0), 0));
        assert_eq!(run(|fl| fma(a, b, c, true, true, fl)), (d(-7.0), 0));
        // Single rounding: (1 + 2^-52)(1 - 2^-52) - 1 = -2^-104 exactly.
        let r = run(|fl| fma(d(1.0 + p2(-52)), d(1.0 - p2(-52)), one, false, true, fl));
        assert_eq!(r, (d(-p2(-104)), 0));
        // Zero product: the addend is returned exactly.
        assert_eq!(
            run(|fl| fma(0, d(5.0), d(p2(-1074)), false, false, fl)),
            (1, 0)
        );
        // Product overflow absorbed by the addend? No: it is exact math, then rounding.
        let r = run(|fl| fma(d(f64::MAX), d(2.0), d(-f64::MAX), false, false, fl));
        assert_eq!(r, (d(f64::MAX), 0));
        // A tiny product only affects directed rounding.
        let tiny = d(p2(-600));
        for (rm, want) in [
            (RNE, 1.0),
            (RTZ, 1.0),
            (RDN, 1.0),
            (RUP, 1.0 + p2(-52)),
            (RMM, 1.0),
        ] {
            let r = run(|fl| fused_multiply_add(f, tiny, tiny, one, false, false, rm, fl));
            assert_eq!(r, (d(want), NX), "{rm:?}");
            let r = run(|fl| fused_multiply_add(f, tiny, tiny, one, false, true, rm, fl));
            // tiny^2 - 1 lies just above -1.
            let want_neg = match rm {
                RTZ | RUP => -(1.0 - p2(-53)),
                _ => -1.0,
            };
            assert_eq!(r, (d(want_neg), NX), "{rm:?}");
            let r = run(|fl| fused_multiply_add(f, tiny, tiny, one, true, false, rm, fl));
            let want_sub = match rm {
                RTZ | RDN => 1.0 - p2(-53),
                _ => 1.0,
            };
            assert_eq!(r, (d(want_sub), NX), "{rm:?}");
        }
        // Single precision: fma result is rounded once.
        let a = 1.0f32 + f32::EPSILON;
        let r = run(|fl| fused_multiply_add(S, s(a), s(a), s(-1.0), false, false, RNE, fl));
        // 2^-22 + 2^-46 needs 25 bits: inexact.
        assert_eq!(r, (s(a.mul_add(a, -1.0)), NX));
        assert_eq!(f32::from_bits(r.0 as u32), f32::EPSILON * 2.0);
    }

    #[test]
    fn min_max() {
        for f in [S, D] {
            let (one, two, qnan, snan) = match f {
                Format::Single => (s(1.0), s(2.0), QNAN_S_PAYLOAD, SNAN_S),
                Format::Double => (d(1.0), d(2.0), QNAN_D_PAYLOAD, SNAN_D),
            };
            let nz = f.sign_mask();
            let ninf = f.infinity(true);
            let cn = f.canonical_nan();
            // -0 < +0 for fmin/fmax, in either operand order.
            assert_eq!(run(|fl| min(f, 0, nz, fl)), (nz, 0));
            assert_eq!(run(|fl| min(f, nz, 0, fl)), (nz, 0));
            assert_eq!(run(|fl| max(f, 0, nz, fl)), (0, 0));
            assert_eq!(run(|fl| max(f, nz, 0, fl)), (0, 0));
            assert_eq!(run(|fl| min(f, one, two, fl)), (one, 0));
            assert_eq!(run(|fl| max(f, one, two, fl)), (two, 0));
            assert_eq!(run(|fl| min(f, one | nz, two | nz, fl)), (two | nz, 0));
            assert_eq!(run(|fl| max(f, one | nz, two | nz, fl)), (one | nz, 0));
            assert_eq!(run(|fl| min(f, ninf, one | nz, fl)), (ninf, 0));
            // One NaN: the other operand; sNaN raises NV anyway.
            assert_eq!(run(|fl| min(f, qnan, one, fl)), (one, 0));
            assert_eq!(run(|fl| max(f, one, qnan | nz, fl)), (one, 0));
            assert_eq!(run(|fl| max(f, ninf, qnan, fl)), (ninf, 0));
            assert_eq!(run(|fl| min(f, snan, one, fl)), (one, NV));
            assert_eq!(run(|fl| max(f, nz, snan, fl)), (nz, NV));
            // Two NaNs: canonical NaN.
            assert_eq!(run(|fl| min(f, qnan, qnan, fl)), (cn, 0));
            assert_eq!(run(|fl| max(f, qnan | nz, qnan, fl)), (cn, 0));
            assert_eq!(run(|fl| max(f, snan, qnan, fl)), (cn, NV));
            assert_eq!(run(|fl| min(f, qnan, snan, fl)), (cn, NV));
        }
    }

    #[test]
    fn comparisons() {
        for f in [S, D] {
            let (one, half, qnan, snan) = match f {
                Format::Single => (s(1.0), s(0.5), QNAN_S_PAYLOAD, SNAN_S),
                Format::Double => (d(1.0), d(0.5), QNAN_D_PAYLOAD, SNAN_D),
            };
            let nz = f.sign_mask();
            let inf = f.infinity(false);
            let ninf = f.infinity(true);
            // Zeros compare equal.
            assert_eq!(run(|fl| eq(f, 0, nz, fl)), (true, 0));
            assert_eq!(run(|fl| le(f, 0, nz, fl)), (true, 0));
            assert_eq!(run(|fl| le(f, nz, 0, fl)), (true, 0));
            assert_eq!(run(|fl| lt(f, nz, 0, fl)), (false, 0));
            assert_eq!(run(|fl| lt(f, 0, nz, fl)), (false, 0));
            // Ordinary ordering, negatives included.
            assert_eq!(run(|fl| lt(f, one | nz, half | nz, fl)), (true, 0));
            assert_eq!(run(|fl| lt(f, half | nz, one | nz, fl)), (false, 0));
            assert_eq!(run(|fl| lt(f, half, one, fl)), (true, 0));
            assert_eq!(run(|fl| lt(f, one, one, fl)), (false, 0));
            assert_eq!(run(|fl| le(f, one, one, fl)), (true, 0));
            assert_eq!(run(|fl| le(f, one, half, fl)), (false, 0));
            assert_eq!(run(|fl| lt(f, ninf, inf, fl)), (true, 0));
            assert_eq!(run(|fl| le(f, inf, inf, fl)), (true, 0));
            assert_eq!(run(|fl| lt(f, nz, 1, fl)), (true, 0));
            assert_eq!(run(|fl| lt(f, 1 | nz, 0, fl)), (true, 0));
            assert_eq!(run(|fl| eq(f, one, half, fl)), (false, 0));
            assert_eq!(run(|fl| eq(f, inf, inf, fl)), (true, 0));
            // feq is quiet; flt/fle signal on any NaN.
            for nan in [qnan, qnan | nz] {
                assert_eq!(run(|fl| eq(f, nan, one, fl)), (false, 0));
                assert_eq!(run(|fl| eq(f, nan, nan, fl)), (false, 0));
                assert_eq!(run(|fl| lt(f, nan, one, fl)), (false, NV));
                assert_eq!(run(|fl| le(f, one, nan, fl)), (false, NV));
            }
            assert_eq!(run(|fl| eq(f, snan, one, fl)), (false, NV));
            assert_eq!(run(|fl| eq(f, one, snan, fl)), (false, NV));
            assert_eq!(run(|fl| lt(f, snan, one, fl)), (false, NV));
            assert_eq!(run(|fl| le(f, snan, snan, fl)), (false, NV));
        }
    }

    #[test]
    fn classify_all_classes() {
        let cases_d = [
            (d(f64::NEG_INFINITY), 0),
            (d(-1.0), 1),
            (0x8000_0000_0000_0001, 2),
            (0x800f_ffff_ffff_ffff, 2),
            (d(-0.0), 3),
            (0, 4),
            (1, 5),
            (d(f64::MIN_POSITIVE), 6),
            (d(f64::MAX), 6),
            (d(f64::INFINITY), 7),
            (SNAN_D, 8),
            (0xfff7_ffff_ffff_ffff, 8),
            (CANONICAL_NAN_DOUBLE, 9),
            (NEG_QNAN_D, 9),
        ];
        for (bits, class) in cases_d {
            assert_eq!(classify(D, bits), 1 << class, "{bits:#x}");
        }
        let cases_s = [
            (s(f32::NEG_INFINITY), 0),
            (s(-3.5), 1),
            (0x8000_0001, 2),
            (s(-0.0), 3),
            (0, 4),
            (0x007f_ffff, 5),
            (s(f32::MIN_POSITIVE), 6),
            (s(f32::INFINITY), 7),
            (SNAN_S, 8),
            (0xffbf_ffff, 8),
            (CANONICAL_NAN_SINGLE, 9),
            (NEG_QNAN_S, 9),
        ];
        for (bits, class) in cases_s {
            assert_eq!(classify(S, bits), 1 << class, "{bits:#x}");
        }
    }

    const I32_MIN: u64 = 0xffff_ffff_8000_0000;
    const I32_MAX: u64 = 0x7fff_ffff;
    const U32_MAX: u64 = u64::MAX; // 0xffff_ffff sign-extended.

    #[test]
    fn to_int_saturation_table() {
        let kinds = [
            (IntKind::I32, I32_MIN, I32_MAX),
            (IntKind::U32, 0, U32_MAX),
            (IntKind::I64, i64::MIN as u64, i64::MAX as u64),
            (IntKind::U64, 0, u64::MAX),
        ];
        for f in [S, D] {
            let nans = match f {
                Format::Single => [QNAN_S_PAYLOAD, SNAN_S, NEG_QNAN_S, CANONICAL_NAN_SINGLE],
                Format::Double => [QNAN_D_PAYLOAD, SNAN_D, NEG_QNAN_D, CANONICAL_NAN_DOUBLE],
            };
            for (kind, lo, hi) in kinds {
                for rm in MODES {
                    for nan in nans {
                        assert_eq!(run(|fl| to_int(f, nan, kind, rm, fl)), (hi, NV));
                    }
                    let r = run(|fl| to_int(f, f.infinity(false), kind, rm, fl));
                    assert_eq!(r, (hi, NV));
                    let r = run(|fl| to_int(f, f.infinity(true), kind, rm, fl));
                    assert_eq!(r, (lo, NV));
                    let r = run(|fl| to_int(f, f.max_finite(false), kind, rm, fl));
                    assert_eq!(r, (hi, NV));
                    let r = run(|fl| to_int(f, f.max_finite(true), kind, rm, fl));
                    assert_eq!(r, (lo, NV));
                    assert_eq!(run(|fl| to_int(f, 0, kind, rm, fl)), (0, 0));
                    assert_eq!(run(|fl| to_int(f, f.sign_mask(), kind, rm, fl)), (0, 0));
                }
            }
        }
        let cvt = |x: f64, kind, rm| run(|fl| to_int(D, d(x), kind, rm, fl));
        // I32 boundaries.
        assert_eq!(cvt(2147483647.0, IntKind::I32, RNE), (I32_MAX, 0));
        assert_eq!(cvt(2147483648.0, IntKind::I32, RTZ), (I32_MAX, NV));
        assert_eq!(cvt(2147483647.5, IntKind::I32, RTZ), (I32_MAX, NX));
        assert_eq!(cvt(2147483647.5, IntKind::I32, RNE), (I32_MAX, NV));
        assert_eq!(cvt(2147483647.5, IntKind::I32, RDN), (I32_MAX, NX));
        assert_eq!(cvt(-2147483648.0, IntKind::I32, RNE), (I32_MIN, 0));
        assert_eq!(cvt(-2147483648.5, IntKind::I32, RTZ), (I32_MIN, NX));
        assert_eq!(cvt(-2147483648.5, IntKind::I32, RNE), (I32_MIN, NX));
        assert_eq!(cvt(-2147483648.5, IntKind::I32, RMM), (I32_MIN, NV));
        assert_eq!(cvt(-2147483648.5, IntKind::I32, RDN), (I32_MIN, NV));
        assert_eq!(cvt(-2147483649.0, IntKind::I32, RUP), (I32_MIN, NV));
        assert_eq!(cvt(-1.0, IntKind::I32, RNE), (u64::MAX, 0));
        assert_eq!(cvt(-7.0, IntKind::I64, RNE), ((-7i64) as u64, 0));
        // U32: results are sign-extended from bit 31 (fcvt.wu.s of 3e9).
        let r = run(|fl| to_int(S, s(3e9), IntKind::U32, RNE, fl));
        assert_eq!(r, (0xffff_ffff_b2d0_5e00, 0));
        assert_eq!(cvt(4294967295.0, IntKind::U32, RNE), (U32_MAX, 0));
        assert_eq!(cvt(4294967296.0, IntKind::U32, RNE), (U32_MAX, NV));
        assert_eq!(cvt(4294967295.5, IntKind::U32, RUP), (U32_MAX, NV));
        assert_eq!(cvt(4294967295.5, IntKind::U32, RTZ), (U32_MAX, NX));
        assert_eq!(
            cvt(2147483648.0, IntKind::U32, RTZ),
            (0xffff_ffff_8000_0000, 0)
        );
        assert_eq!(cvt(1.0, IntKind::U32, RTZ), (1, 0));
        // Negative inputs to unsigned kinds: -0.5 per rounding mode.
        for kind in [IntKind::U32, IntKind::U64] {
            assert_eq!(cvt(-0.5, kind, RTZ), (0, NX));
            assert_eq!(cvt(-0.5, kind, RNE), (0, NX));
            assert_eq!(cvt(-0.5, kind, RUP), (0, NX));
            assert_eq!(cvt(-0.5, kind, RDN), (0, NV));
            assert_eq!(cvt(-0.5, kind, RMM), (0, NV));
            assert_eq!(cvt(-0.75, kind, RNE), (0, NV));
            assert_eq!(cvt(-1.0, kind, RTZ), (0, NV));
            assert_eq!(cvt(-p2(-1074), kind, RTZ), (0, NX));
            assert_eq!(cvt(-p2(-1074), kind, RDN), (0, NV));
        }
        // 64-bit boundaries.
        assert_eq!(cvt(p2(63), IntKind::I64, RNE), (i64::MAX as u64, NV));
        assert_eq!(cvt(-p2(63), IntKind::I64, RNE), (i64::MIN as u64, 0));
        assert_eq!(cvt(p2(64), IntKind::U64, RNE), (u64::MAX, NV));
        assert_eq!(
            cvt(p2(64) - p2(11), IntKind::U64, RNE),
            (u64::MAX - 2047, 0)
        );
        assert_eq!(cvt(p2(63), IntKind::U64, RNE), (1 << 63, 0));
        assert_eq!(cvt(p2(100), IntKind::U64, RNE), (u64::MAX, NV));
        assert_eq!(cvt(-p2(100), IntKind::I64, RNE), (i64::MIN as u64, NV));
        // Rounding modes on halfway and non-halfway values.
        let table: [(f64, [i64; 5]); 6] = [
            (2.5, [2, 2, 2, 3, 3]),
            (-2.5, [-2, -2, -3, -2, -3]),
            (3.5, [4, 3, 3, 4, 4]),
            (2.25, [2, 2, 2, 3, 2]),
            (-2.75, [-3, -2, -3, -2, -3]),
            (0.5, [0, 0, 0, 1, 1]),
        ];
        for (x, want) in table {
            for (rm, w) in MODES.iter().zip(want) {
                assert_eq!(cvt(x, IntKind::I64, *rm), (w as u64, NX), "{x} {rm:?}");
                let r = run(|fl| to_int(S, s(x as f32), IntKind::I32, *rm, fl));
                assert_eq!(r, (w as u64, NX), "{x} {rm:?}");
            }
        }
        // Subnormals round to 0 or +-1.
        assert_eq!(cvt(p2(-1074), IntKind::I64, RUP), (1, NX));
        assert_eq!(cvt(p2(-1074), IntKind::I64, RNE), (0, NX));
        assert_eq!(cvt(-p2(-1074), IntKind::I32, RDN), (u64::MAX, NX));
    }

    #[test]
    fn from_int_rounding() {
        let m = u64::MAX; // 2^64 - 1
        let two64 = 0x5f80_0000; // 2^64 as single
        let below = 0x5f7f_ffff; // 2^64 - 2^40
        let want = [two64, below, below, two64, two64];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(
                run(|fl| from_int(S, m, IntKind::U64, *rm, fl)),
                (w, NX),
                "{rm:?}"
            );
        }
        // 2^24 + 1: a tie between 2^24 and 2^24 + 2.
        let x = (1u64 << 24) + 1;
        let (lo, hi) = (s(16777216.0), s(16777218.0));
        let want = [lo, lo, lo, hi, hi];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(
                run(|fl| from_int(S, x, IntKind::I64, *rm, fl)),
                (w, NX),
                "{rm:?}"
            );
            assert_eq!(
                run(|fl| from_int(S, x, IntKind::U32, *rm, fl)),
                (w, NX),
                "{rm:?}"
            );
            let neg = (x as i64).wrapping_neg() as u64;
            let wn = match rm {
                Rounding::Down => hi,
                Rounding::Up => lo,
                _ => w,
            } | S.sign_mask();
            assert_eq!(run(|fl| from_int(S, neg, IntKind::I64, *rm, fl)), (wn, NX));
            assert_eq!(run(|fl| from_int(S, neg, IntKind::I32, *rm, fl)), (wn, NX));
        }
        // 2^24 + 3: tie with odd kept LSB goes up under RNE.
        let r = run(|fl| from_int(S, (1 << 24) + 3, IntKind::U64, RNE, fl));
        assert_eq!(r, (s(16777220.0), NX));
        // Double: 2^53 + 1 ties to even.
        let r = run(|fl| from_int(D, (1 << 53) + 1, IntKind::U64, RNE, fl));
        assert_eq!(r, (d(p2(53)), NX));
        let r = run(|fl| from_int(D, (1 << 53) + 1, IntKind::U64, RUP, fl));
        assert_eq!(r, (d(p2(53) + 2.0), NX));
        assert_eq!(
            run(|fl| from_int(D, m, IntKind::U64, RTZ, fl)),
            (d(p2(64) - p2(11)), NX)
        );
        // Exact cases, and only the low 32 bits count for 32-bit kinds.
        assert_eq!(run(|fl| from_int(D, 0, IntKind::I64, RDN, fl)), (0, 0));
        assert_eq!(
            run(|fl| from_int(S, 0xffff_ffff_0000_0000, IntKind::I32, RDN, fl)),
            (0, 0)
        );
        assert_eq!(
            run(|fl| from_int(D, 0x1234_5678_ffff_ffff, IntKind::I32, RNE, fl)),
            (d(-1.0), 0)
        );
        assert_eq!(
            run(|fl| from_int(D, 0x1234_5678_ffff_ffff, IntKind::U32, RNE, fl)),
            (d(4294967295.0), 0)
        );
        assert_eq!(
            run(|fl| from_int(D, 0x8000_0000, IntKind::I32, RNE, fl)),
            (d(-2147483648.0), 0)
        );
        assert_eq!(
            run(|fl| from_int(D, 1 << 63, IntKind::I64, RNE, fl)),
            (d(-p2(63)), 0)
        );
        assert_eq!(
            run(|fl| from_int(D, 1 << 63, IntKind::U64, RNE, fl)),
            (d(p2(63)), 0)
        );
        assert_eq!(
            run(|fl| from_int(S, 0xffff_ffff, IntKind::U32, RTZ, fl)),
            (below_u32(), NX)
        );
    }

    fn below_u32() -> u64 {
        // 2^32 - 256: the largest single below 2^32.
        s(4294967040.0)
    }

    #[test]
    fn format_conversions() {
        // Widening is exact, subnormal singles become normal doubles.
        assert_eq!(run(|fl| single_to_double(1, fl)), (d(p2(-149)), 0));
        assert_eq!(run(|fl| single_to_double(s(-0.0), fl)), (d(-0.0), 0));
        assert_eq!(
            run(|fl| single_to_double(s(f32::MAX), fl)),
            (d(f32::MAX as f64), 0)
        );
        assert_eq!(
            run(|fl| single_to_double(s(f32::NEG_INFINITY), fl)),
            (d(f64::NEG_INFINITY), 0)
        );
        // Narrowing.
        assert_eq!(run(|fl| double_to_single(d(0.5), RNE, fl)), (s(0.5), 0));
        assert_eq!(run(|fl| double_to_single(d(-0.0), RNE, fl)), (s(-0.0), 0));
        assert_eq!(
            run(|fl| double_to_single(d(f64::INFINITY), RTZ, fl)),
            (s(f32::INFINITY), 0)
        );
        let third = 1.0f64 / 3.0;
        let t = 1.0f32 / 3.0; // RNE rounds up here (unlike in double).
        let t_down = f32::from_bits(t.to_bits() - 1);
        let want = [t, t_down, t_down, t, t];
        for (rm, w) in MODES.iter().zip(want) {
            assert_eq!(
                run(|fl| double_to_single(d(third), *rm, fl)),
                (s(w), NX),
                "{rm:?}"
            );
        }
        // Underflow to zero and to the smallest subnormal.
        assert_eq!(run(|fl| double_to_single(d(1e-50), RNE, fl)), (0, UF | NX));
        assert_eq!(run(|fl| double_to_single(d(1e-50), RUP, fl)), (1, UF | NX));
        assert_eq!(
            run(|fl| double_to_single(d(-1e-50), RDN, fl)),
            (0x8000_0001, UF | NX)
        );
        assert_eq!(
            run(|fl| double_to_single(d(-1e-50), RUP, fl)),
            (0x8000_0000, UF | NX)
        );
        // Exact subnormal single: no flags.
        assert_eq!(
            run(|fl| double_to_single(d(p2(-140)), RNE, fl)),
            (1 << 9, 0)
        );
        // Largest double below the single overflow threshold under RNE.
        let thr = f32::MAX as f64 + p2(103); // half an ulp above f32::MAX: tie -> inf
        assert_eq!(
            run(|fl| double_to_single(d(thr), RNE, fl)),
            (s(f32::INFINITY), OF | NX)
        );
        let r = run(|fl| double_to_single(d(thr - p2(80)), RNE, fl));
        assert_eq!(r, (s(f32::MAX), NX));
    }

    // ---- Randomised comparison against the host FPU (RNE) ----------------

    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const SPECIAL_D: [u64; 18] = [
        0,
        0x8000_0000_0000_0000,
        1,
        0x8000_0000_0000_0001,
        0x000f_ffff_ffff_ffff,
        0x0010_0000_0000_0000,
        0x7fef_ffff_ffff_ffff,
        0xffef_ffff_ffff_ffff,
        0x7ff0_0000_0000_0000,
        0xfff0_0000_0000_0000,
        CANONICAL_NAN_DOUBLE,
        QNAN_D_PAYLOAD,
        SNAN_D,
        NEG_QNAN_D,
        0x3ff0_0000_0000_0000,
        0xbff0_0000_0000_0000,
        0x3ff0_0000_0000_0001,
        0x3fef_ffff_ffff_ffff,
    ];

    /// A random binary64 pattern, biased towards interesting regions.
    fn gen_d(rng: &mut Rng) -> u64 {
        let r = rng.next();
        match rng.below(10) {
            0 => SPECIAL_D[rng.below(SPECIAL_D.len() as u64) as usize],
            // Subnormal.
            1 => r & 0x800f_ffff_ffff_ffff,
            // Near the top or bottom of the exponent range.
            2 => (r & 0x800f_ffff_ffff_ffff) | ((0x7f0 + rng.below(0xf)) << 52),
            3 => (r & 0x800f_ffff_ffff_ffff) | ((1 + rng.below(0x40)) << 52),
            // Moderate exponents, sparse significands (exercise ties/exact results).
            4 => {
                let e = 0x3ff - 40 + rng.below(80);
                let m = (r & 0x800f_ffff_ffff_ffff) & !((1u64 << rng.below(52)) - 1);
                m | (e << 52)
            }
            5 | 6 => (r & 0x800f_ffff_ffff_ffff) | ((0x3ff - 60 + rng.below(120)) << 52),
            _ => r,
        }
    }

    fn f32_bits(x: u64) -> u32 {
        x as u32
    }

    const SPECIAL_S: [u32; 18] = [
        0,
        0x8000_0000,
        1,
        0x8000_0001,
        0x007f_ffff,
        0x0080_0000,
        0x7f7f_ffff,
        0xff7f_ffff,
        0x7f80_0000,
        0xff80_0000,
        0x7fc0_0000,
        0x7fc0_1234,
        0x7f80_0001,
        0xffc0_0000,
        0x3f80_0000,
        0xbf80_0000,
        0x3f80_0001,
        0x3f7f_ffff,
    ];

    fn gen_s(rng: &mut Rng) -> u64 {
        let r = f32_bits(rng.next());
        let v = match rng.below(10) {
            0 => SPECIAL_S[rng.below(SPECIAL_S.len() as u64) as usize],
            1 => r & 0x807f_ffff,
            2 => (r & 0x807f_ffff) | ((0xf0 + rng.below(0xf) as u32) << 23),
            3 => (r & 0x807f_ffff) | ((1 + rng.below(0x20) as u32) << 23),
            4 => {
                let e = 0x7f - 20 + rng.below(40) as u32;
                let m = (r & 0x807f_ffff) & !((1u32 << rng.below(23)) - 1);
                m | (e << 23)
            }
            5 | 6 => (r & 0x807f_ffff) | ((0x7f - 30 + rng.below(60) as u32) << 23),
            _ => r,
        };
        u64::from(v)
    }

    /// A second operand: sometimes close to (or the negation of) the first,
    /// to exercise cancellation.
    fn gen_near(rng: &mut Rng, a: u64, f: Format, gen: fn(&mut Rng) -> u64) -> u64 {
        match rng.below(4) {
            0 => {
                let flip = if rng.below(2) == 0 { f.sign_mask() } else { 0 };
                let width = rng.below(12);
                let delta = rng.below(1 << width);
                (a ^ flip).wrapping_add(delta) & f.width_mask()
            }
            _ => gen(rng),
        }
    }

    fn is_nan_bits(f: Format, x: u64) -> bool {
        let mag = x & (f.sign_mask() - 1);
        mag > f.infinity(false)
    }

    fn is_finite_bits(f: Format, x: u64) -> bool {
        x & (f.sign_mask() - 1) < f.infinity(false)
    }

    fn is_snan_bits(f: Format, x: u64) -> bool {
        is_nan_bits(f, x) && x & (1 << (f.frac_bits() - 1)) == 0
    }

    fn min_normal(f: Format) -> u64 {
        1 << f.frac_bits()
    }

    /// Compares one result against the host result and derived flags.
    /// `exact` is Some(exactness of the operation) when cheaply known.
    #[allow(clippy::too_many_arguments)]
    fn check(
        what: &str,
        f: Format,
        inputs: &[u64],
        ours: (u64, u8),
        host: u64,
        expect_nv: bool,
        expect_dz: bool,
        exact: Option<bool>,
    ) {
        let (r, fl) = ours;
        let ctx =
            || format!("{what} {f:?} inputs {inputs:x?} ours {r:#x} flags {fl:#x} host {host:#x}");
        if is_nan_bits(f, host) {
            assert_eq!(r, f.canonical_nan(), "{}", ctx());
        } else {
            assert_eq!(r, host, "{}", ctx());
        }
        assert_eq!(fl & NV != 0, expect_nv, "NV {}", ctx());
        assert_eq!(fl & DZ != 0, expect_dz, "DZ {}", ctx());
        let inputs_finite = inputs.iter().all(|&x| is_finite_bits(f, x));
        // Finite results from infinite operands (x / inf) are exact.
        let exact = if inputs_finite { exact } else { Some(true) };
        let overflow = inputs_finite && !expect_dz && !is_finite_bits(f, r) && !is_nan_bits(f, r);
        assert_eq!(fl & OF != 0, overflow, "OF {}", ctx());
        if overflow {
            assert_ne!(fl & NX, 0, "NX with OF {}", ctx());
        }
        if !is_finite_bits(f, r) || is_nan_bits(f, r) {
            if !overflow {
                assert_eq!(fl & (NX | UF), 0, "NX/UF on special {}", ctx());
            }
            return;
        }
        if let Some(exact) = exact {
            assert_eq!(fl & NX == 0, exact, "NX {}", ctx());
            let mag = r & (f.sign_mask() - 1);
            if exact || mag > min_normal(f) {
                assert_eq!(fl & UF, 0, "UF {}", ctx());
            } else if mag < min_normal(f) {
                assert_ne!(fl & UF, 0, "UF {}", ctx());
            }
        } else if fl & UF != 0 {
            assert_ne!(fl & NX, 0, "UF without NX {}", ctx());
        }
    }

    fn two_sum_f64(a: f64, b: f64) -> (f64, f64) {
        let s = a + b;
        let bb = s - a;
        (s, (a - (s - bb)) + (b - bb))
    }

    fn two_sum_f32(a: f32, b: f32) -> (f32, f32) {
        let s = a + b;
        let bb = s - a;
        (s, (a - (s - bb)) + (b - bb))
    }

    const ITERS: usize = 200_000;

    #[test]
    fn random_double_vs_host() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let big = p2(-900);
        for _ in 0..ITERS {
            let a = gen_d(&mut rng);
            let b = gen_near(&mut rng, a, D, gen_d);
            let c = if rng.below(3) == 0 {
                // Addend close to minus the product: heavy cancellation.
                let p = (f64::from_bits(a) * f64::from_bits(b)).to_bits() ^ D.sign_mask();
                p.wrapping_add(rng.below(8)).wrapping_sub(4)
            } else {
                gen_d(&mut rng)
            };
            let (fa, fb, fc) = (f64::from_bits(a), f64::from_bits(b), f64::from_bits(c));
            let snan_ab = is_snan_bits(D, a) || is_snan_bits(D, b);
            let nan_ab = fa.is_nan() || fb.is_nan();

            // add / sub
            let h = fa + fb;
            let exact = h.is_finite().then(|| two_sum_f64(fa, fb).1 == 0.0);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            check(
                "add",
                D,
                &[a, b],
                run(|fl| add(D, a, b, RNE, fl)),
                d(h),
                nv,
                false,
                exact,
            );
            let h = fa - fb;
            let exact = h.is_finite().then(|| two_sum_f64(fa, -fb).1 == 0.0);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            check(
                "sub",
                D,
                &[a, b],
                run(|fl| sub(D, a, b, RNE, fl)),
                d(h),
                nv,
                false,
                exact,
            );

            // mul
            let h = fa * fb;
            let exact = (h.is_finite() && h.abs() >= big).then(|| fa.mul_add(fb, -h) == 0.0);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            check(
                "mul",
                D,
                &[a, b],
                run(|fl| mul(D, a, b, RNE, fl)),
                d(h),
                nv,
                false,
                exact,
            );

            // div
            let h = fa / fb;
            let exact = (h.is_finite() && h.abs() >= big && fa.abs() >= big && h != 0.0)
                .then(|| h.mul_add(fb, -fa) == 0.0);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            let dz = fb == 0.0 && fa.is_finite() && fa != 0.0;
            check(
                "div",
                D,
                &[a, b],
                run(|fl| div(D, a, b, RNE, fl)),
                d(h),
                nv,
                dz,
                exact,
            );

            // sqrt
            let h = fa.sqrt();
            let exact = (h.is_finite() && fa >= big).then(|| h.mul_add(h, -fa) == 0.0);
            let nv = is_snan_bits(D, a) || (h.is_nan() && !fa.is_nan());
            check(
                "sqrt",
                D,
                &[a],
                run(|fl| sqrt(D, a, RNE, fl)),
                d(h),
                nv,
                false,
                exact,
            );

            // fma, all four sign variants
            for (np, na) in [(false, false), (false, true), (true, false), (true, true)] {
                let pa = if np { -fa } else { fa };
                let cc = if na { -fc } else { fc };
                let h = pa.mul_add(fb, cc);
                let inf_zero = (fa.is_infinite() && fb == 0.0) || (fa == 0.0 && fb.is_infinite());
                let any_nan = nan_ab || fc.is_nan();
                let nv = snan_ab || is_snan_bits(D, c) || inf_zero || (h.is_nan() && !any_nan);
                let ours = run(|fl| fused_multiply_add(D, a, b, c, np, na, RNE, fl));
                check("fma", D, &[a, b, c], ours, d(h), nv, false, None);
            }

            // double -> single
            let h = fa as f32;
            let exact = h.is_finite().then(|| f64::from(h) == fa);
            let ours = run(|fl| double_to_single(a, RNE, fl));
            let (r, fl) = ours;
            let ctx = format!("d2s {a:#x} -> {r:#x} {fl:#x}");
            if fa.is_nan() {
                assert_eq!(r, CANONICAL_NAN_SINGLE, "{ctx}");
                assert_eq!(fl, if is_snan_bits(D, a) { NV } else { 0 }, "{ctx}");
            } else {
                let input_class = if fa.is_finite() { 0 } else { s(h) };
                check("d2s", S, &[input_class], ours, s(h), false, false, exact);
                if fa.is_infinite() {
                    assert_eq!(fl, 0, "{ctx}");
                }
            }

            // compares and min/max against the host
            let (r, fl) = run(|fl| lt(D, a, b, fl));
            assert_eq!(r, fa < fb);
            assert_eq!(fl, if nan_ab { NV } else { 0 });
            let (r, fl) = run(|fl| le(D, a, b, fl));
            assert_eq!(r, fa <= fb);
            assert_eq!(fl, if nan_ab { NV } else { 0 });
            let (r, fl) = run(|fl| eq(D, a, b, fl));
            assert_eq!(r, fa == fb);
            assert_eq!(fl, if snan_ab { NV } else { 0 });
            let (r, _) = run(|fl| min(D, a, b, fl));
            // Rust's min/max ignore one NaN like fmin/fmax, but not -0 < +0.
            let both_nan = fa.is_nan() && fb.is_nan();
            let both_zero = fa == 0.0 && fb == 0.0;
            if !both_nan && !both_zero {
                assert_eq!(f64::from_bits(r), fa.min(fb));
            }
        }
    }

    #[test]
    fn random_single_vs_host() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..ITERS {
            let a = gen_s(&mut rng);
            let b = gen_near(&mut rng, a, S, gen_s);
            let c = if rng.below(3) == 0 {
                let p = u64::from((f32::from_bits(a as u32) * f32::from_bits(b as u32)).to_bits());
                (p ^ S.sign_mask())
                    .wrapping_add(rng.below(8))
                    .wrapping_sub(4)
                    & 0xffff_ffff
            } else {
                gen_s(&mut rng)
            };
            let (fa, fb, fc) = (
                f32::from_bits(a as u32),
                f32::from_bits(b as u32),
                f32::from_bits(c as u32),
            );
            let (da, db, dc) = (f64::from(fa), f64::from(fb), f64::from(fc));
            let snan_ab = is_snan_bits(S, a) || is_snan_bits(S, b);
            let nan_ab = fa.is_nan() || fb.is_nan();

            let h = fa + fb;
            let exact = h.is_finite().then(|| two_sum_f32(fa, fb).1 == 0.0);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            check(
                "add",
                S,
                &[a, b],
                run(|fl| add(S, a, b, RNE, fl)),
                s(h),
                nv,
                false,
                exact,
            );
            let h = fa - fb;
            let exact = h.is_finite().then(|| two_sum_f32(fa, -fb).1 == 0.0);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            check(
                "sub",
                S,
                &[a, b],
                run(|fl| sub(S, a, b, RNE, fl)),
                s(h),
                nv,
                false,
                exact,
            );

            let h = fa * fb;
            let exact = h.is_finite().then(|| f64::from(h) == da * db);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            check(
                "mul",
                S,
                &[a, b],
                run(|fl| mul(S, a, b, RNE, fl)),
                s(h),
                nv,
                false,
                exact,
            );

            let h = fa / fb;
            let exact = (h.is_finite() && fb != 0.0).then(|| f64::from(h) * db == da);
            let nv = snan_ab || (h.is_nan() && !nan_ab);
            let dz = fb == 0.0 && fa.is_finite() && fa != 0.0;
            check(
                "div",
                S,
                &[a, b],
                run(|fl| div(S, a, b, RNE, fl)),
                s(h),
                nv,
                dz,
                exact,
            );

            let h = fa.sqrt();
            let exact = h.is_finite().then(|| f64::from(h) * f64::from(h) == da);
            let nv = is_snan_bits(S, a) || (h.is_nan() && !fa.is_nan());
            check(
                "sqrt",
                S,
                &[a],
                run(|fl| sqrt(S, a, RNE, fl)),
                s(h),
                nv,
                false,
                exact,
            );

            for (np, na) in [(false, false), (false, true), (true, false), (true, true)] {
                let pa = if np { -fa } else { fa };
                let cc = if na { -fc } else { fc };
                let h = pa.mul_add(fb, cc);
                let exact = h.is_finite().then(|| {
                    let (sum, err) = two_sum_f64(f64::from(pa) * db, f64::from(cc));
                    err == 0.0 && sum == f64::from(h)
                });
                let inf_zero = (fa.is_infinite() && fb == 0.0) || (fa == 0.0 && fb.is_infinite());
                let any_nan = nan_ab || fc.is_nan();
                let nv = snan_ab || is_snan_bits(S, c) || inf_zero || (h.is_nan() && !any_nan);
                let ours = run(|fl| fused_multiply_add(S, a, b, c, np, na, RNE, fl));
                check("fma", S, &[a, b, c], ours, s(h), nv, false, exact);
            }
            let _ = dc;

            // single -> double is exact.
            let (r, fl) = run(|fl| single_to_double(a, fl));
            if fa.is_nan() {
                assert_eq!(r, CANONICAL_NAN_DOUBLE);
                assert_eq!(fl, if is_snan_bits(S, a) { NV } else { 0 });
            } else {
                assert_eq!((r, fl), (d(da), 0), "{a:#x}");
            }

            let (r, fl) = run(|fl| le(S, a, b, fl));
            assert_eq!(r, fa <= fb);
            assert_eq!(fl, if nan_ab { NV } else { 0 });
            let (r, fl) = run(|fl| eq(S, a, b, fl));
            assert_eq!(r, fa == fb);
            assert_eq!(fl, if snan_ab { NV } else { 0 });
            let (r, _) = run(|fl| max(S, a, b, fl));
            // Rust's min/max ignore one NaN like fmin/fmax, but not -0 < +0.
            let both_nan = fa.is_nan() && fb.is_nan();
            let both_zero = fa == 0.0 && fb == 0.0;
            if !both_nan && !both_zero {
                assert_eq!(f32::from_bits(r as u32), fa.max(fb));
            }
        }
    }

    /// Next representable value towards +inf / -inf (finite nonzero input).
    fn step(f: Format, x: u64, towards_positive: bool) -> u64 {
        let negative = x & f.sign_mask() != 0;
        if negative == towards_positive {
            x - 1
        } else {
            x + 1
        }
    }

    /// The correctly rounded result in a directed mode, given the RNE result
    /// `r` and the sign of (exact - r).
    fn directed(f: Format, r: u64, err_sign: std::cmp::Ordering, rm: Rounding) -> u64 {
        use std::cmp::Ordering::*;
        let (lo, hi) = match err_sign {
            Equal => return r,
            Greater => (r, step(f, r, true)),
            Less => (step(f, r, false), r),
        };
        match rm {
            Rounding::Up => hi,
            Rounding::Down => lo,
            // lo and hi have the same sign (r is normal and nonzero).
            Rounding::TowardZero => {
                if r & f.sign_mask() == 0 {
                    lo
                } else {
                    hi
                }
            }
            _ => r,
        }
    }

    fn ord(x: f64) -> std::cmp::Ordering {
        x.partial_cmp(&0.0).unwrap()
    }

    #[test]
    fn random_directed_rounding() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        let directed_modes = [RTZ, RDN, RUP];
        let normal_d = |rng: &mut Rng| {
            let r = rng.next();
            (r & 0x800f_ffff_ffff_ffff) | ((0x3ff - 300 + rng.below(600)) << 52)
        };
        let normal_s = |rng: &mut Rng| {
            let r = rng.next();
            (r & 0x807f_ffff) | ((0x7f - 40 + rng.below(80)) << 23)
        };
        let ok_d = |x: f64| x.is_finite() && x != 0.0 && x.abs() > p2(-900) && x.abs() < p2(900);
        let ok_s = |x: f32| x.is_finite() && x != 0.0 && x.abs() > 1e-30 && x.abs() < 1e30;
        for _ in 0..ITERS / 2 {
            let a = normal_d(&mut rng);
            let b = gen_near(&mut rng, a, D, |r| {
                let x = r.next();
                (x & 0x800f_ffff_ffff_ffff) | ((0x3ff - 300 + r.below(600)) << 52)
            });
            let (fa, fb) = (f64::from_bits(a), f64::from_bits(b));
            let mut cases: Vec<(&str, u64, std::cmp::Ordering)> = Vec::new();
            let h = fa + fb;
            if ok_d(h) {
                cases.push(("add", d(h), ord(two_sum_f64(fa, fb).1)));
            }
            let h = fa * fb;
            if ok_d(h) {
                cases.push(("mul", d(h), ord(fa.mul_add(fb, -h))));
            }
            let h = fa / fb;
            if ok_d(h) {
                // exact - h = (a - h*b) / b
                let e = -h.mul_add(fb, -fa);
                let sign = if fb < 0.0 { ord(e).reverse() } else { ord(e) };
                cases.push(("div", d(h), sign));
            }
            let h = fa.abs().sqrt();
            if ok_d(h) {
                cases.push(("sqrt", d(h), ord(-h.mul_add(h, -fa.abs()))));
            }
            for (what, r, sign) in cases {
                for rm in directed_modes {
                    let want = directed(D, r, sign, rm);
                    let (got, fl) = run(|fl| match what {
                        "add" => add(D, a, b, rm, fl),
                        "mul" => mul(D, a, b, rm, fl),
                        "div" => div(D, a, b, rm, fl),
                        _ => sqrt(D, a & !D.sign_mask(), rm, fl),
                    });
                    assert_eq!(got, want, "{what} {rm:?} {a:#x} {b:#x}");
                    let nx = sign != std::cmp::Ordering::Equal;
                    assert_eq!(fl, if nx { NX } else { 0 }, "{what} {rm:?} {a:#x} {b:#x}");
                }
            }

            // Single precision, including fma and narrowing.
            let a = normal_s(&mut rng);
            let b = gen_near(&mut rng, a, S, |r| {
                let x = r.next();
                (x & 0x807f_ffff) | ((0x7f - 40 + r.below(80)) << 23)
            });
            let c = normal_s(&mut rng);
            let (fa, fb, fc) = (
                f32::from_bits(a as u32),
                f32::from_bits(b as u32),
                f32::from_bits(c as u32),
            );
            let (da, db, dc) = (f64::from(fa), f64::from(fb), f64::from(fc));
            let mut cases: Vec<(&str, u64, std::cmp::Ordering)> = Vec::new();
            let h = fa + fb;
            if ok_s(h) {
                cases.push(("add", s(h), ord(f64::from(two_sum_f32(fa, fb).1))));
            }
            let h = fa * fb;
            if ok_s(h) {
                cases.push(("mul", s(h), ord(da * db - f64::from(h))));
            }
            let h = fa / fb;
            if ok_s(h) {
                let e = da - f64::from(h) * db;
                let sign = if fb < 0.0 { ord(e).reverse() } else { ord(e) };
                cases.push(("div", s(h), sign));
            }
            let h = fa.abs().sqrt();
            if ok_s(h) {
                cases.push(("sqrt", s(h), ord(da.abs() - f64::from(h) * f64::from(h))));
            }
            let h = fa.mul_add(fb, fc);
            if ok_s(h) {
                let (sum, err) = two_sum_f64(da * db, dc);
                let diff = sum - f64::from(h);
                let sign = if diff != 0.0 { ord(diff) } else { ord(err) };
                cases.push(("fma", s(h), sign));
            }
            let wide = f64::from_bits(normal_d(&mut rng));
            let h = wide as f32;
            if ok_s(h) {
                cases.push(("d2s", s(h), ord(wide - f64::from(h))));
            }
            for (what, r, sign) in cases {
                for rm in directed_modes {
                    let want = directed(S, r, sign, rm);
                    let (got, fl) = run(|fl| match what {
                        "add" => add(S, a, b, rm, fl),
                        "mul" => mul(S, a, b, rm, fl),
                        "div" => div(S, a, b, rm, fl),
                        "fma" => fused_multiply_add(S, a, b, c, false, false, rm, fl),
                        "d2s" => double_to_single(d(wide), rm, fl),
                        _ => sqrt(S, a & !S.sign_mask(), rm, fl),
                    });
                    assert_eq!(got, want, "{what} {rm:?} {a:#x} {b:#x} {c:#x}");
                    let nx = sign != std::cmp::Ordering::Equal;
                    assert_eq!(fl, if nx { NX } else { 0 }, "{what} {rm:?} {a:#x} {b:#x}");
                }
            }
        }
    }

    #[test]
    fn random_int_conversions() {
        let mut rng = Rng(0x0bad_5eed_0bad_5eed);
        let kinds = [
            (IntKind::I32, -(1i128 << 31), (1i128 << 31) - 1),
            (IntKind::U32, 0, (1i128 << 32) - 1),
            (IntKind::I64, -(1i128 << 63), (1i128 << 63) - 1),
            (IntKind::U64, 0, (1i128 << 64) - 1),
        ];
        for _ in 0..ITERS {
            // Integers of random width and sign.
            let width = rng.below(65) as u32;
            let mut v = if width == 64 {
                rng.next()
            } else {
                rng.next() & ((1u64 << width) - 1)
            };
            if rng.below(2) == 0 {
                v = v.wrapping_neg();
            }
            for (kind, _, _) in kinds {
                let value: i128 = match kind {
                    IntKind::I32 => i128::from(v as u32 as i32),
                    IntKind::U32 => i128::from(v as u32),
                    IntKind::I64 => i128::from(v as i64),
                    IntKind::U64 => i128::from(v),
                };
                // Host conversion is RNE.
                let hd = value as f64;
                let hs = value as f32;
                let (r, fl) = run(|fl| from_int(D, v, kind, RNE, fl));
                assert_eq!(r, d(hd), "{kind:?} {v:#x}");
                assert_eq!(fl, if hd as i128 == value { 0 } else { NX });
                let (r, fl) = run(|fl| from_int(S, v, kind, RNE, fl));
                assert_eq!(r, s(hs), "{kind:?} {v:#x}");
                assert_eq!(fl, if hs as i128 == value { 0 } else { NX });
                for rm in [RTZ, RDN, RUP] {
                    let (r, _) = run(|fl| from_int(D, v, kind, rm, fl));
                    let sign = value.cmp(&(hd as i128));
                    if hd != 0.0 {
                        assert_eq!(r, directed(D, d(hd), sign, rm), "{kind:?} {v:#x} {rm:?}");
                    }
                    let (r, _) = run(|fl| from_int(S, v, kind, rm, fl));
                    let sign = value.cmp(&(hs as i128));
                    if hs != 0.0 {
                        assert_eq!(r, directed(S, s(hs), sign, rm), "{kind:?} {v:#x} {rm:?}");
                    }
                }
            }

            // Float to integer in every mode, checked with host rounding.
            let (f, x) = if rng.below(2) == 0 {
                let e = rng.below(80) as i32 - 10;
                let m = f64::from_bits(rng.next() & 0x800f_ffff_ffff_ffff | 0x3ff0_0000_0000_0000);
                let x = if rng.below(8) == 0 {
                    f64::from_bits(gen_d(&mut rng))
                } else if rng.below(4) == 0 {
                    // Halfway values.
                    ((m * p2(e.min(50))).trunc() + 0.5) * if rng.below(2) == 0 { 1.0 } else { -1.0 }
                } else {
                    m * p2(e)
                };
                (D, x)
            } else {
                let x = f32::from_bits(gen_s(&mut rng) as u32);
                let x = if rng.below(2) == 0 {
                    x
                } else {
                    f32::from_bits(
                        (rng.next() as u32 & 0x807f_ffff)
                            | ((0x7f - 5 + rng.below(70) as u32) << 23),
                    )
                };
                (S, f64::from(x))
            };
            let bits = match f {
                Format::Single => s(x as f32),
                Format::Double => d(x),
            };
            for (kind, lo, hi) in kinds {
                for rm in MODES {
                    let (r, fl) = run(|fl| to_int(f, bits, kind, rm, fl));
                    let (want, want_fl) = if x.is_nan() {
                        (hi, NV)
                    } else {
                        let rounded = match rm {
                            Rounding::NearestEven => x.round_ties_even(),
                            Rounding::TowardZero => x.trunc(),
                            Rounding::Down => x.floor(),
                            Rounding::Up => x.ceil(),
                            Rounding::NearestMaxMagnitude => x.round(),
                        };
                        if rounded < lo as f64 {
                            (lo, NV)
                        } else if rounded > hi as f64 {
                            (hi, NV)
                        } else {
                            (rounded as i128, if rounded == x { 0 } else { NX })
                        }
                    };
                    let want = match kind {
                        IntKind::I32 | IntKind::U32 => want as i32 as i64 as u64,
                        _ => want as u64,
                    };
                    assert_eq!((r, fl), (want, want_fl), "{f:?} {x:e} {kind:?} {rm:?}");
                }
            }
        }
    }
}
