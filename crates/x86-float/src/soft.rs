//! The soft-float core shared by x87 and SSE: exact arithmetic on an unpacked form, and one
//! rounding routine parameterised by the destination format (significand precision and
//! exponent range), so that x87 precision control (24/53/64-bit significands with the 15-bit
//! exponent range) and the IEEE single/double formats all round through the same code.
//!
//! It knows nothing about registers, stacks or MXCSR: callers pass the rounding mode and the
//! masks that change results (underflow/overflow masked responses, FTZ) and get flags back.

/// Exception flags, in the bit positions shared by the x87 status word and MXCSR.
pub mod flag {
    /// Invalid operation.
    pub const IE: u8 = 0x01;
    /// Denormal operand.
    pub const DE: u8 = 0x02;
    /// Zero divide.
    pub const ZE: u8 = 0x04;
    /// Overflow.
    pub const OE: u8 = 0x08;
    /// Underflow.
    pub const UE: u8 = 0x10;
    /// Precision (inexact).
    pub const PE: u8 = 0x20;
    /// Not an exception: the rounded result's magnitude is larger than the exact one (x87 C1).
    pub const ROUNDED_UP: u8 = 0x80;
}

/// Rounding control, encoded as in the x87 control word's RC and MXCSR's RC fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rounding {
    /// Round to nearest, ties to even.
    Nearest = 0,
    /// Round toward negative infinity.
    Down = 1,
    /// Round toward positive infinity.
    Up = 2,
    /// Round toward zero (truncate).
    Zero = 3,
}

impl Rounding {
    /// The mode from a 2-bit RC field.
    pub fn from_bits(rc: u32) -> Self {
        match rc & 3 {
            0 => Self::Nearest,
            1 => Self::Down,
            2 => Self::Up,
            _ => Self::Zero,
        }
    }
}

/// A binary floating-point format: significand precision (counting the integer bit) and the
/// normal exponent range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// Significand bits, including the integer bit.
    pub p: u32,
    /// Smallest normal exponent.
    pub emin: i32,
    /// Largest finite exponent.
    pub emax: i32,
}

/// IEEE binary32.
pub const F32: Format = Format {
    p: 24,
    emin: -126,
    emax: 127,
};
/// IEEE binary64.
pub const F64: Format = Format {
    p: 53,
    emin: -1022,
    emax: 1023,
};
/// x87 double extended (precision control 64).
pub const F80: Format = Format {
    p: 64,
    emin: -16382,
    emax: 16383,
};

/// A value taken apart. Finite values are normalised: `sig` has bit 63 set and the value is
/// `sig * 2^(exp - 63)`. NaN payloads are kept as the fraction aligned so that bit 62 is the
/// quiet bit (the x87 layout without the integer bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value {
    /// Signed zero.
    Zero {
        /// Sign bit.
        sign: bool,
    },
    /// Signed infinity.
    Inf {
        /// Sign bit.
        sign: bool,
    },
    /// NaN with its payload (bit 62 quiet).
    NaN {
        /// Sign bit.
        sign: bool,
        /// Fraction, quiet bit at 62.
        frac: u64,
    },
    /// Finite non-zero.
    Finite {
        /// Sign bit.
        sign: bool,
        /// Binary exponent (unbiased).
        exp: i32,
        /// Significand with bit 63 set.
        sig: u64,
    },
}

/// The quiet bit in a NaN's `frac`.
pub const QUIET: u64 = 1 << 62;

impl Value {
    /// The sign bit.
    pub fn sign(self) -> bool {
        match self {
            Value::Zero { sign }
            | Value::Inf { sign }
            | Value::NaN { sign, .. }
            | Value::Finite { sign, .. } => sign,
        }
    }
    /// True for a signalling NaN.
    pub fn is_snan(self) -> bool {
        matches!(self, Value::NaN { frac, .. } if frac & QUIET == 0)
    }
    /// True for any NaN.
    pub fn is_nan(self) -> bool {
        matches!(self, Value::NaN { .. })
    }
    /// The same value with its sign replaced.
    pub fn with_sign(self, s: bool) -> Self {
        match self {
            Value::Zero { .. } => Value::Zero { sign: s },
            Value::Inf { .. } => Value::Inf { sign: s },
            Value::NaN { frac, .. } => Value::NaN { sign: s, frac },
            Value::Finite { exp, sig, .. } => Value::Finite { sign: s, exp, sig },
        }
    }
    /// The NaN made quiet; other values unchanged.
    pub fn quieted(self) -> Self {
        match self {
            Value::NaN { sign, frac } => Value::NaN {
                sign,
                frac: frac | QUIET,
            },
            v => v,
        }
    }
}

/// The default (indefinite) QNaN: negative, quiet, zero payload.
pub const DEFAULT_NAN: Value = Value::NaN {
    sign: true,
    frac: QUIET,
};

/// Unpacks an IEEE binary32/binary64 bit pattern. Returns the value and whether it was a
/// denormal (the caller applies DAZ and the DE flag).
pub fn unpack_ieee(bits: u64, fmt: Format) -> (Value, bool) {
    let fb = fmt.p - 1;
    let eb = if fmt.p == 24 { 8 } else { 11 };
    let sign = (bits >> (fb + eb)) & 1 != 0;
    let e = ((bits >> fb) & ((1 << eb) - 1)) as i32;
    let f = bits & ((1u64 << fb) - 1);
    let bias = fmt.emax;
    if e == (1 << eb) - 1 {
        if f == 0 {
            (Value::Inf { sign }, false)
        } else {
            (
                Value::NaN {
                    sign,
                    frac: f << (63 - fb),
                },
                false,
            )
        }
    } else if e == 0 {
        if f == 0 {
            (Value::Zero { sign }, false)
        } else {
            let lz = f.leading_zeros() as i32;
            // value = f * 2^(emin - fb); normalise f to bit 63.
            let sig = f << lz;
            let exp = fmt.emin - fb as i32 + (63 - lz);
            (Value::Finite { sign, exp, sig }, true)
        }
    } else {
        let sig = (f | (1 << fb)) << (63 - fb);
        (
            Value::Finite {
                sign,
                exp: e - bias,
                sig,
            },
            false,
        )
    }
}

/// Packs a value (already rounded to the format) into IEEE bits.
pub fn pack_ieee(v: Value, fmt: Format) -> u64 {
    let fb = fmt.p - 1;
    let eb = if fmt.p == 24 { 8 } else { 11 };
    let emask = (1u64 << eb) - 1;
    let s = |sign: bool| (sign as u64) << (fb + eb);
    match v {
        Value::Zero { sign } => s(sign),
        Value::Inf { sign } => s(sign) | (emask << fb),
        Value::NaN { sign, frac } => s(sign) | (emask << fb) | (frac >> (63 - fb)),
        Value::Finite { sign, exp, sig } => {
            if exp >= fmt.emin {
                let be = (exp + fmt.emax) as u64;
                s(sign) | (be << fb) | ((sig >> (63 - fb)) & ((1 << fb) - 1))
            } else {
                let sh = (63 - fb) as i32 + (fmt.emin - exp);
                s(sign) | if sh >= 64 { 0 } else { sig >> sh }
            }
        }
    }
}

/// Kinds of 80-bit encodings that x87 arithmetic rejects with an invalid-operation exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum F80Class {
    /// A supported encoding (zero, normal, denormal, pseudo-denormal, infinity, NaN).
    Supported,
    /// Unnormal, pseudo-infinity or pseudo-NaN: the integer bit is clear where it must be set.
    Unsupported,
}

/// Unpacks an 80-bit register value (`se` = sign and exponent, `m` = significand with explicit
/// integer bit). Returns the value, whether it is a denormal operand (denormal or
/// pseudo-denormal), and its class.
pub fn unpack_f80(se: u16, m: u64) -> (Value, bool, F80Class) {
    let sign = se & 0x8000 != 0;
    let e = (se & 0x7fff) as i32;
    if e == 0x7fff {
        if m & (1 << 63) == 0 {
            return (DEFAULT_NAN, false, F80Class::Unsupported);
        }
        let frac = m & !(1 << 63);
        if frac == 0 {
            (Value::Inf { sign }, false, F80Class::Supported)
        } else {
            (Value::NaN { sign, frac }, false, F80Class::Supported)
        }
    } else if e == 0 {
        if m == 0 {
            (Value::Zero { sign }, false, F80Class::Supported)
        } else {
            let lz = m.leading_zeros() as i32;
            (
                Value::Finite {
                    sign,
                    exp: F80.emin - lz,
                    sig: m << lz,
                },
                true,
                F80Class::Supported,
            )
        }
    } else if m & (1 << 63) == 0 {
        (DEFAULT_NAN, false, F80Class::Unsupported)
    } else {
        (
            Value::Finite {
                sign,
                exp: e - 16383,
                sig: m,
            },
            false,
            F80Class::Supported,
        )
    }
}

/// Packs a value (rounded to the 15-bit exponent range) into (sign+exponent, significand).
pub fn pack_f80(v: Value) -> (u16, u64) {
    let s = |sign: bool| if sign { 0x8000u16 } else { 0 };
    match v {
        Value::Zero { sign } => (s(sign), 0),
        Value::Inf { sign } => (s(sign) | 0x7fff, 1 << 63),
        Value::NaN { sign, frac } => (s(sign) | 0x7fff, (1 << 63) | frac),
        Value::Finite { sign, exp, sig } => {
            if exp >= F80.emin {
                (s(sign) | (exp + 16383) as u16, sig)
            } else {
                let sh = F80.emin - exp;
                (s(sign), if sh >= 64 { 0 } else { sig >> sh })
            }
        }
    }
}

/// How a rounding step treats tiny results and masked responses.
#[derive(Clone, Copy, Debug)]
pub struct RoundCtl {
    /// Rounding mode.
    pub rc: Rounding,
    /// Underflow exception masked.
    pub ue_masked: bool,
    /// Overflow exception masked.
    pub oe_masked: bool,
    /// Flush tiny results to zero (SSE FTZ; only acts when underflow is masked).
    pub ftz: bool,
}

/// An exact intermediate: `(sig + sticky) * 2^scale`, with `sig != 0`.
#[derive(Clone, Copy, Debug)]
pub struct Exact {
    /// Sign of the result.
    pub sign: bool,
    /// Integer significand.
    pub sig: u128,
    /// Power of two scaling `sig`.
    pub scale: i32,
    /// Non-zero bits below `sig` were lost.
    pub sticky: bool,
}

/// Result of rounding the integer `k` (with round and sticky bits) in a mode.
fn round_int(k: u128, round: bool, sticky: bool, sign: bool, rc: Rounding) -> u128 {
    let inc = match rc {
        Rounding::Nearest => round && (sticky || k & 1 != 0),
        Rounding::Zero => false,
        Rounding::Up => !sign && (round || sticky),
        Rounding::Down => sign && (round || sticky),
    };
    k + inc as u128
}

/// Splits a normalised significand (bit 127 set) at `sh` dropped bits.
fn split(sig: u128, sticky: bool, sh: i32) -> (u128, bool, bool) {
    if sh > 128 {
        (0, false, true)
    } else if sh == 128 {
        (0, sig >> 127 != 0, sig << 1 != 0 || sticky)
    } else {
        let sh = sh as u32;
        let k = sig >> sh;
        let round = (sig >> (sh - 1)) & 1 != 0;
        let st = sticky || sig & ((1u128 << (sh - 1)) - 1) != 0;
        (k, round, st)
    }
}

/// Rounds an exact value to `fmt` under `ctl`; returns the value and the flags raised
/// (UE, OE, PE). With overflow unmasked, the value returned is the rounded result as if the
/// exponent range were unbounded (the x87 caller applies its bias adjustment; SSE discards it).
pub fn round(x: Exact, fmt: Format, ctl: RoundCtl) -> (Value, u8) {
    let lz = x.sig.leading_zeros() as i32;
    let sig = x.sig << lz;
    let e = x.scale + 127 - lz; // binary exponent of the exact value
    let p = fmt.p as i32;
    let q = if e < fmt.emin && ctl.ue_masked {
        fmt.emin - (p - 1)
    } else {
        e - (p - 1)
    };
    let (k, round_bit, st) = split(sig, x.sticky, 127 - (e - q));
    let inexact = round_bit || st;
    let k0 = k;
    let mut k = round_int(k, round_bit, st, x.sign, ctl.rc);
    let up = k != k0;
    let mut q = q;
    if k >> p != 0 {
        k >>= 1;
        q += 1;
    }
    // Tininess is detected after rounding (as if the exponent range were unbounded).
    let tiny = e < fmt.emin && {
        let qu = e - (p - 1);
        let (ku, r, s) = split(sig, x.sticky, 127 - (e - qu));
        let ku = round_int(ku, r, s, x.sign, ctl.rc);
        let eu = if ku >> p != 0 { qu + p } else { qu + p - 1 };
        eu < fmt.emin
    };
    let mut flags = 0;
    if tiny && ctl.ue_masked && ctl.ftz {
        return (Value::Zero { sign: x.sign }, flag::UE | flag::PE);
    }
    if up {
        flags |= flag::ROUNDED_UP;
    }
    if tiny && (inexact || !ctl.ue_masked) {
        flags |= flag::UE;
    }
    if inexact {
        flags |= flag::PE;
    }
    if k == 0 {
        return (Value::Zero { sign: x.sign }, flags);
    }
    let bits = 128 - k.leading_zeros() as i32;
    let exp = q + bits - 1;
    if exp > fmt.emax && ctl.oe_masked {
        flags |= flag::OE | flag::PE;
        let to_inf = match ctl.rc {
            Rounding::Nearest => true,
            Rounding::Zero => false,
            Rounding::Up => !x.sign,
            Rounding::Down => x.sign,
        };
        if to_inf {
            return (Value::Inf { sign: x.sign }, flags | flag::ROUNDED_UP);
        }
        flags &= !flag::ROUNDED_UP;
        let maxsig = (u64::MAX >> (64 - p)) << (64 - p);
        return (
            Value::Finite {
                sign: x.sign,
                exp: fmt.emax,
                sig: maxsig,
            },
            flags,
        );
    }
    if exp > fmt.emax {
        flags |= flag::OE;
    }
    let sig = (k << (64 - bits)) as u64;
    (
        Value::Finite {
            sign: x.sign,
            exp,
            sig,
        },
        flags,
    )
}

/// The exact sum of two finite values (`sub` negates `b`), or an exact zero.
pub fn add_exact(a: Value, b: Value, sub: bool, rc: Rounding) -> Result<Exact, Value> {
    let (sa, ea, ma) = fin(a);
    let (sb, eb, mb) = fin(b);
    let sb = sb ^ sub;
    let (mut big, mut small) = ((sa, ea, ma), (sb, eb, mb));
    if (eb, mb) > (ea, ma) {
        std::mem::swap(&mut big, &mut small);
    }
    let x = (big.2 as u128) << 63;
    let d = big.1 - small.1;
    let y0 = (small.2 as u128) << 63;
    let y = if d >= 127 {
        1
    } else {
        let y = y0 >> d;
        y | ((y << d != y0) as u128)
    };
    let scale = big.1 - 126;
    if big.0 == small.0 {
        Ok(Exact {
            sign: big.0,
            sig: x + y,
            scale,
            sticky: false,
        })
    } else {
        let s = x - y;
        if s == 0 {
            Err(Value::Zero {
                sign: rc == Rounding::Down,
            })
        } else {
            Ok(Exact {
                sign: big.0,
                sig: s,
                scale,
                sticky: false,
            })
        }
    }
}

/// The exact product of two finite values.
pub fn mul_exact(a: Value, b: Value) -> Exact {
    let (sa, ea, ma) = fin(a);
    let (sb, eb, mb) = fin(b);
    Exact {
        sign: sa ^ sb,
        sig: ma as u128 * mb as u128,
        scale: ea + eb - 126,
        sticky: false,
    }
}

/// The quotient of two finite values, with enough bits for any rounding.
pub fn div_exact(a: Value, b: Value) -> Exact {
    let (sa, ea, ma) = fin(a);
    let (sb, eb, mb) = fin(b);
    let n = (ma as u128) << 64;
    let q1 = n / mb as u128;
    let r1 = n % mb as u128;
    let n2 = r1 << 64;
    let q2 = n2 / mb as u128;
    let r2 = n2 % mb as u128;
    let sig = (q1 << 62) | (q2 >> 2) | ((q2 & 3 != 0 || r2 != 0) as u128);
    Exact {
        sign: sa ^ sb,
        sig,
        scale: ea - eb - 126,
        sticky: false,
    }
}

/// The square root of a positive finite value, with enough bits for any rounding.
pub fn sqrt_exact(a: Value) -> Exact {
    let (_, ea, ma) = fin(a);
    let mut e = ea - 63;
    let mut m = ma as u128;
    if e & 1 != 0 {
        m <<= 1;
        e -= 1;
    }
    // Digit-by-digit square root of m * 2^128.
    let mut r: u128 = 0;
    let mut q: u128 = 0;
    for i in (0..33 + 64).rev() {
        let pair = if i >= 64 {
            (m >> (2 * (i - 64))) & 3
        } else {
            0
        };
        r = (r << 2) | pair;
        let t = (q << 2) | 1;
        if r >= t {
            r -= t;
            q = (q << 1) | 1;
        } else {
            q <<= 1;
        }
    }
    Exact {
        sign: false,
        sig: q,
        scale: e / 2 - 64,
        sticky: r != 0,
    }
}

/// An exact integer value.
pub fn from_int(v: i128) -> Option<Exact> {
    if v == 0 {
        None
    } else {
        Some(Exact {
            sign: v < 0,
            sig: v.unsigned_abs(),
            scale: 0,
            sticky: false,
        })
    }
}

fn fin(v: Value) -> (bool, i32, u64) {
    match v {
        Value::Finite { sign, exp, sig } => (sign, exp, sig),
        _ => unreachable!("fin() is only called on finite operands"),
    }
}

/// Converts a value to an integer in `[min, max]` with rounding mode `rc`; `None` when the
/// value is NaN, infinite or out of range (the caller stores the integer indefinite and raises
/// IE). The bool is "inexact".
pub fn to_int(v: Value, rc: Rounding, min: i128, max: i128) -> Option<(i128, bool)> {
    match v {
        Value::Zero { .. } => Some((0, false)),
        Value::Inf { .. } | Value::NaN { .. } => None,
        Value::Finite { sign, exp, sig } => {
            if exp >= 64 {
                return None;
            }
            // value = sig * 2^(exp-63): integer part drops (63 - exp) bits.
            let s = (sig as u128) << 64;
            let sh = 127 - exp;
            let (k, r, st) = split(s, false, sh);
            let k = round_int(k, r, st, sign, rc) as i128;
            let k = if sign { -k } else { k };
            if k < min || k > max {
                None
            } else {
                Some((k, r || st))
            }
        }
    }
}

/// Rounds a finite value to an integral value in the same format (FRNDINT, ROUNDSS-like).
pub fn round_to_integral(v: Value, rc: Rounding) -> (Value, bool) {
    match v {
        Value::Finite { sign, exp, sig } if exp < 63 => {
            let s = (sig as u128) << 64;
            let (k, r, st) = split(s, false, 127 - exp);
            let k = round_int(k, r, st, sign, rc);
            if k == 0 {
                (Value::Zero { sign }, r || st)
            } else {
                let bits = 128 - k.leading_zeros() as i32;
                (
                    Value::Finite {
                        sign,
                        exp: bits - 1,
                        sig: (k << (64 - bits)) as u64,
                    },
                    r || st,
                )
            }
        }
        v => (v, false),
    }
}

/// Compares two non-NaN values: `Less`, `Equal` or `Greater` (zeros of either sign equal).
pub fn compare(a: Value, b: Value) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let key = |v: Value| -> (i32, i32, u64) {
        match v {
            Value::Zero { .. } => (0, 0, 0),
            Value::Inf { sign } => (if sign { -2 } else { 2 }, 0, 0),
            Value::Finite { sign, exp, sig } => (if sign { -1 } else { 1 }, exp, sig),
            Value::NaN { .. } => (0, 0, 0),
        }
    };
    let (ca, ea, ma) = key(a);
    let (cb, eb, mb) = key(b);
    if ca != cb {
        return ca.cmp(&cb);
    }
    let mag = (ea, ma).cmp(&(eb, mb));
    if ca < 0 {
        mag.reverse()
    } else if ca == 0 || ca.abs() == 2 {
        Ordering::Equal
    } else {
        mag
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RN: RoundCtl = RoundCtl {
        rc: Rounding::Nearest,
        ue_masked: true,
        oe_masked: true,
        ftz: false,
    };

    fn f64v(x: f64) -> Value {
        unpack_ieee(x.to_bits(), F64).0
    }

    #[test]
    fn one_plus_one_is_two() {
        let e = add_exact(f64v(1.0), f64v(1.0), false, Rounding::Nearest).unwrap();
        let (v, fl) = round(e, F64, RN);
        assert_eq!(f64::from_bits(pack_ieee(v, F64)), 2.0);
        assert_eq!(fl, 0);
    }

    #[test]
    fn one_third_is_inexact_and_nearest() {
        let (v, fl) = round(div_exact(f64v(1.0), f64v(3.0)), F64, RN);
        assert_eq!(f64::from_bits(pack_ieee(v, F64)), 1.0 / 3.0);
        assert_eq!(fl, flag::PE);
    }

    #[test]
    fn sqrt_two_matches_host() {
        let (v, _) = round(sqrt_exact(f64v(2.0)), F64, RN);
        assert_eq!(f64::from_bits(pack_ieee(v, F64)), 2f64.sqrt());
    }

    #[test]
    fn denormal_round_trips_through_unpack() {
        let bits = 1u64;
        let (v, den) = unpack_ieee(bits, F64);
        assert!(den);
        assert_eq!(pack_ieee(v, F64), bits);
    }
}
