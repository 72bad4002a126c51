//! x87 transcendental instructions: FSIN, FCOS, FSINCOS, FPTAN, FPATAN, F2XM1, FYL2X, FYL2XP1.
//!
//! Hardware results are not specified bit for bit (Intel documents < 1 ulp). These are computed
//! in a 128-bit-significand software float (`Big`) and rounded once to 64 bits under RC, with
//! the trigonometric argument reduced modulo the 66-bit π/2 that the x87 uses internally (so
//! large arguments give the hardware's answers, not the mathematically exact ones). The
//! host-oracle tests measure the distance to the host CPU in ulps.

use crate::soft::{self, flag, Exact, RoundCtl, Value, F80};
use crate::x87::{sw, F80Bits, X87State};

/// A software float: `m × 2^(exp − 127)`, `m` normalised (bit 127 set) unless zero.
#[derive(Clone, Copy, Debug)]
struct Big {
    neg: bool,
    exp: i32,
    m: u128,
}

impl Big {
    const ZERO: Big = Big {
        neg: false,
        exp: 0,
        m: 0,
    };

    fn norm(neg: bool, exp: i32, m: u128) -> Big {
        if m == 0 {
            return Big::ZERO;
        }
        let lz = m.leading_zeros() as i32;
        Big {
            neg,
            exp: exp - lz,
            m: m << lz,
        }
    }

    fn int(i: i64) -> Big {
        Big::norm(i < 0, 127, i.unsigned_abs() as u128)
    }

    fn from_value(v: Value) -> Big {
        match v {
            Value::Finite { sign, exp, sig } => Big {
                neg: sign,
                exp,
                m: (sig as u128) << 64,
            },
            _ => Big::ZERO,
        }
    }

    fn is_zero(self) -> bool {
        self.m == 0
    }

    fn neg(self) -> Big {
        Big {
            neg: !self.neg,
            ..self
        }
    }

    fn abs(self) -> Big {
        Big { neg: false, ..self }
    }

    fn add(self, b: Big) -> Big {
        if self.is_zero() {
            return b;
        }
        if b.is_zero() {
            return self;
        }
        let (a, b) = if (self.exp, self.m) >= (b.exp, b.m) {
            (self, b)
        } else {
            (b, self)
        };
        let d = a.exp - b.exp;
        if d >= 128 {
            // Keep the direction of the tiny addend in the last bit, so that rounding to 64
            // bits (and C1) sees "just below" or "just above".
            return if a.neg == b.neg {
                Big {
                    m: a.m.saturating_add(1),
                    ..a
                }
            } else {
                Big::norm(a.neg, a.exp, a.m - 1)
            };
        }
        let bm = b.m >> d;
        if a.neg == b.neg {
            let (s, carry) = a.m.overflowing_add(bm);
            if carry {
                Big {
                    neg: a.neg,
                    exp: a.exp + 1,
                    m: (s >> 1) | (1 << 127),
                }
            } else {
                Big {
                    neg: a.neg,
                    exp: a.exp,
                    m: s,
                }
            }
        } else {
            Big::norm(a.neg, a.exp, a.m - bm)
        }
    }

    fn sub(self, b: Big) -> Big {
        self.add(b.neg())
    }

    fn mul(self, b: Big) -> Big {
        if self.is_zero() || b.is_zero() {
            return Big::ZERO;
        }
        let (a1, a0) = (self.m >> 64, self.m & u64::MAX as u128);
        let (b1, b0) = (b.m >> 64, b.m & u64::MAX as u128);
        let lo = a0 * b0;
        let mid1 = a1 * b0;
        let mid2 = a0 * b1;
        let hi = a1 * b1;
        let (mid, c1) = mid1.overflowing_add(mid2);
        let (lo2, c2) = lo.overflowing_add(mid << 64);
        let hi = hi + (mid >> 64) + ((c1 as u128) << 64) + c2 as u128;
        let neg = self.neg ^ b.neg;
        if hi >> 127 != 0 {
            Big {
                neg,
                exp: self.exp + b.exp + 1,
                m: hi,
            }
        } else {
            Big {
                neg,
                exp: self.exp + b.exp,
                m: (hi << 1) | (lo2 >> 127),
            }
        }
    }

    fn div(self, b: Big) -> Big {
        if self.is_zero() {
            return Big::ZERO;
        }
        let mut r = self.m;
        let mut q: u128 = 0;
        if r >= b.m {
            r -= b.m;
            q = 1;
        }
        for _ in 0..127 {
            let carry = r >> 127;
            r <<= 1;
            q <<= 1;
            if carry != 0 || r >= b.m {
                r = r.wrapping_sub(b.m);
                q |= 1;
            }
        }
        Big::norm(self.neg ^ b.neg, self.exp - b.exp, q)
    }

    /// Division by a small positive integer (the series' denominators): two hardware
    /// divisions instead of the bit loop of [`Big::div`].
    fn div_int(self, d: u64) -> Big {
        if self.is_zero() {
            return self;
        }
        let d = d as u128;
        let q_hi = self.m / d;
        let r = self.m % d;
        let q_lo = (r << 64) / d;
        let lz = q_hi.leading_zeros();
        let m = if lz == 0 {
            q_hi
        } else {
            (q_hi << lz) | (q_lo >> (64 - lz))
        };
        Big {
            neg: self.neg,
            exp: self.exp - lz as i32,
            m,
        }
    }

    fn half(self) -> Big {
        if self.is_zero() {
            self
        } else {
            Big {
                exp: self.exp - 1,
                ..self
            }
        }
    }

    fn sqrt(self) -> Big {
        if self.is_zero() {
            return self;
        }
        // Start from the double-precision root of the top 53 bits, scaled to [1, 4) (IEEE
        // square root is correctly rounded on every host, so this stays deterministic), then
        // three Newton steps.
        let e2 = self.exp & !1;
        let odd = self.exp - e2; // 0 or 1
        let frac = ((self.m >> 75) as u64) & ((1 << 52) - 1);
        let f = f64::from_bits(((1023 + odd as u64) << 52) | frac).sqrt();
        let bits = f.to_bits();
        let fe = ((bits >> 52) & 0x7ff) as i32 - 1023;
        let fm = ((bits & ((1 << 52) - 1)) | (1 << 52)) as u128;
        let mut y = Big::norm(false, fe + e2 / 2 + 127 - 52, fm);
        for _ in 0..3 {
            y = y.add(self.div(y)).half();
        }
        y
    }

    fn exact(self) -> Exact {
        // The low 64 bits carry the approximation's direction; only when they are all zero is
        // an inexact tail assumed.
        let sticky = self.m & u64::MAX as u128 == 0;
        Exact {
            sign: self.neg,
            sig: self.m,
            scale: self.exp - 127,
            sticky,
        }
    }

    /// Compares magnitudes.
    fn mag_gt(self, b: Big) -> bool {
        if self.is_zero() {
            return false;
        }
        if b.is_zero() {
            return true;
        }
        (self.exp, self.m) > (b.exp, b.m)
    }
}

/// +1.0 in 80 bits.
const ONE_BITS: F80Bits = F80Bits {
    m: 1 << 63,
    se: 0x3fff,
};

fn zero_bits(sign: bool) -> F80Bits {
    F80Bits {
        m: 0,
        se: if sign { 0x8000 } else { 0 },
    }
}

/// π/2 to 128 bits.
const HALF_PI: Big = Big {
    neg: false,
    exp: 0,
    m: 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1,
};
/// π to 128 bits.
const PI: Big = Big {
    neg: false,
    exp: 1,
    m: 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1,
};
/// ln 2 to 128 bits.
const LN2: Big = Big {
    neg: false,
    exp: -1,
    m: 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af,
};
/// log2(e) to 128 bits.
const LOG2E: Big = Big {
    neg: false,
    exp: 0,
    m: 0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88,
};
/// √2 to 128 bits.
const SQRT2: Big = Big {
    neg: false,
    exp: 0,
    m: 0xb504_f333_f9de_6484_597d_89b3_754a_be9f,
};

/// Σ an alternating power series in `x2` from `first`, term k being term k−1 × x2 / ratio(k).
fn series(first: Big, x2: Big, ratio: impl Fn(i64) -> i64) -> Big {
    let mut sum = first;
    let mut term = first;
    for k in 1..200 {
        term = term.mul(x2).div_int(ratio(k) as u64).neg();
        if term.is_zero() || term.exp < sum.exp - 132 {
            break;
        }
        sum = sum.add(term);
    }
    sum
}

fn sin_big(r: Big) -> Big {
    series(r, r.mul(r), |k| (2 * k) * (2 * k + 1))
}

fn cos_big(r: Big) -> Big {
    series(Big::int(1), r.mul(r), |k| (2 * k - 1) * (2 * k))
}

/// atanh(u) = u + u³/3 + u⁵/5 + … (|u| small).
fn atanh_big(u: Big) -> Big {
    let u2 = u.mul(u);
    let mut sum = u;
    let mut p = u;
    for k in 1..400 {
        p = p.mul(u2);
        let t = p.div_int(2 * k as u64 + 1);
        if t.is_zero() || t.exp < sum.exp - 132 {
            break;
        }
        sum = sum.add(t);
    }
    sum
}

/// atan(x) for any finite x.
fn atan_big(x: Big) -> Big {
    let one = Big::int(1);
    if x.abs().mag_gt(one) {
        let r = HALF_PI.sub(atan_big(one.div(x.abs())));
        return if x.neg { r.neg() } else { r };
    }
    // Halve the angle three times: atan(x) = 2 atan(x / (1 + √(1 + x²))).
    let mut y = x;
    for _ in 0..3 {
        y = y.div(one.add(one.add(y.mul(y)).sqrt()));
    }
    // Σ (−1)^k y^(2k+1)/(2k+1).
    let y2 = y.mul(y);
    let mut sum = y;
    let mut p = y;
    for k in 1..200 {
        p = p.mul(y2).neg();
        let t = p.div_int(2 * k as u64 + 1);
        if t.is_zero() || t.exp < sum.exp - 132 {
            break;
        }
        sum = sum.add(t);
    }
    Big {
        exp: sum.exp + 3,
        ..sum
    }
}

/// ln(x) for x > 0.
fn ln_big(x: Big) -> Big {
    // x = m × 2^e with m in [√2/2, √2).
    let mut e = x.exp;
    let mut m = Big { exp: 0, ..x };
    if m.mag_gt(SQRT2) {
        m.exp -= 1;
        e += 1;
    }
    let one = Big::int(1);
    let u = m.sub(one).div(m.add(one));
    let l = atanh_big(u);
    let l = Big {
        exp: l.exp + 1,
        ..l
    };
    Big::int(e as i64).mul(LN2).add(l)
}

/// e^t − 1.
fn expm1_big(t: Big) -> Big {
    let mut sum = t;
    let mut term = t;
    for k in 2..200 {
        term = term.mul(t).div_int(k as u64);
        if term.is_zero() || term.exp < sum.exp - 132 {
            break;
        }
        sum = sum.add(term);
    }
    sum
}

/// 66-bit π/2 used by the x87 for argument reduction, as an integer scaled by 2^-65.
const HALF_PI_66: u128 = (0xc90f_daa2_2168_c234u128 << 2) | 3;

/// Reduces |x| < 2^63 modulo the 66-bit π/2 with the quotient rounded to nearest (as
/// FPREM1): the quadrant (quotient mod 4) and the remainder in [−π/4, π/4]. Evaluating the
/// series on this remainder, rather than cos(π/2 − r) with the true π, is what makes results
/// near the zeros match the hardware.
fn reduce(x: Value) -> (u32, Big) {
    let Value::Finite { exp, sig, .. } = x else {
        return (0, Big::ZERO);
    };
    // |x| = sig × 2^(exp − 63) = (sig << (exp + 2)) × 2^-65 when exp ≥ −2.
    if exp < -2 {
        return (0, Big::from_value(x.with_sign(false)));
    }
    let n = (sig as u128) << (exp + 2) as u32;
    let mut q = n / HALF_PI_66;
    let r = n % HALF_PI_66;
    if 2 * r > HALF_PI_66 {
        q += 1;
        return ((q & 3) as u32, Big::norm(true, 127 - 65, HALF_PI_66 - r));
    }
    ((q & 3) as u32, Big::norm(false, 127 - 65, r))
}

impl X87State {
    /// ST(0) as an operand of FSIN/FCOS/FSINCOS/FPTAN: `Err(written)` when the result was
    /// decided here (stack underflow, unsupported, infinity, NaN), `written` telling whether
    /// ST(0) received it (false when an unmasked exception suppressed it).
    fn st0_operand(&mut self) -> Result<(Value, bool), bool> {
        if self.is_empty(0) {
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
                return Err(true);
            }
            return Err(false);
        }
        let r = self.st(0);
        let (v, den, class) = soft::unpack_f80(r.se, r.m);
        if class == soft::F80Class::Unsupported || matches!(v, Value::Inf { .. }) {
            self.set_c1(false);
            if self.raise(flag::IE) {
                self.set_st(0, F80Bits::INDEFINITE);
                return Err(true);
            }
            return Err(false);
        }
        if v.is_nan() {
            self.set_c1(false);
            if !v.is_snan() || self.raise(flag::IE) {
                let (se, m) = soft::pack_f80(v.quieted());
                self.set_st(0, F80Bits { m, se });
                return Err(true);
            }
            return Err(false);
        }
        Ok((v, den))
    }

    /// For FSINCOS/FPTAN: a result decided by [`Self::st0_operand`] is also pushed.
    fn operand_or_push(&mut self) -> Option<(Value, bool)> {
        match self.st0_operand() {
            Ok(x) => Some(x),
            Err(written) => {
                if written {
                    let v = self.st(0);
                    self.push(v);
                }
                None
            }
        }
    }

    fn round_big(&mut self, b: Big) -> F80Bits {
        if b.is_zero() {
            self.set_c1(false);
            return F80Bits {
                m: 0,
                se: if b.neg { 0x8000 } else { 0 },
            };
        }
        let ctl = RoundCtl {
            rc: self.rc(),
            ue_masked: self.fcw & 0x10 != 0,
            oe_masked: true,
            ftz: false,
        };
        let (v, f) = soft::round(b.exact(), F80, ctl);
        self.set_c1(f & flag::ROUNDED_UP != 0);
        self.raise(f & 0x3f);
        let (se, m) = soft::pack_f80(v);
        F80Bits { m, se }
    }

    /// FSIN (`cos = false`) and FCOS. |ST(0)| ≥ 2^63 sets C2 and leaves ST(0) unchanged.
    pub fn fsin_fcos(&mut self, cos: bool) {
        self.fsw &= !sw::C2;
        let Ok((v, den)) = self.st0_operand() else {
            return;
        };
        if let Value::Finite { exp, .. } = v {
            if exp >= 63 {
                self.fsw |= sw::C2;
                return;
            }
        }
        if den && !self.raise(flag::DE) {
            return;
        }
        if let Value::Zero { sign } = v {
            // Exact: sin(±0) = ±0, cos(±0) = +1.
            self.set_c1(false);
            let out = if cos { ONE_BITS } else { zero_bits(sign) };
            self.set_st(0, out);
            return;
        }
        let r = self.trig(v, cos);
        let out = self.round_big(r);
        self.set_st(0, out);
    }

    fn trig(&self, v: Value, cos: bool) -> Big {
        if let Value::Zero { sign } = v {
            return if cos {
                Big::int(1)
            } else {
                Big {
                    neg: sign,
                    ..Big::ZERO
                }
            };
        }
        let (q, r) = reduce(v);
        let q = if cos { (q + 1) & 3 } else { q };
        let s = match q {
            0 => sin_big(r),
            1 => cos_big(r),
            2 => sin_big(r).neg(),
            _ => cos_big(r).neg(),
        };
        if v.sign() && !cos {
            s.neg()
        } else {
            s
        }
    }

    /// FSINCOS: ST(0) = sin(ST(0)), then pushes cos (so ST(0) = cos, ST(1) = sin).
    pub fn fsincos(&mut self) {
        self.fsw &= !sw::C2;
        if !self.is_empty(0) && !self.is_empty(7) {
            self.overflow_both();
            return;
        }
        let Some((v, den)) = self.operand_or_push() else {
            return;
        };
        if let Value::Finite { exp, .. } = v {
            if exp >= 63 {
                self.fsw |= sw::C2;
                return;
            }
        }
        if den && !self.raise(flag::DE) {
            return;
        }
        let (sb, cb) = if let Value::Zero { sign } = v {
            self.set_c1(false);
            (
                F80Bits {
                    m: 0,
                    se: if sign { 0x8000 } else { 0 },
                },
                F80Bits {
                    m: 1 << 63,
                    se: 0x3fff,
                },
            )
        } else {
            let s = self.trig(v, false);
            let c = self.trig(v, true);
            (self.round_big(s), self.round_big(c))
        };
        self.set_st(0, sb);
        self.push(cb);
    }

    /// FPTAN: ST(0) = tan(ST(0)), then pushes 1.0.
    pub fn fptan(&mut self) {
        self.fsw &= !sw::C2;
        if !self.is_empty(0) && !self.is_empty(7) {
            self.overflow_both();
            return;
        }
        let Some((v, den)) = self.operand_or_push() else {
            return;
        };
        if let Value::Finite { exp, .. } = v {
            if exp >= 63 {
                self.fsw |= sw::C2;
                return;
            }
        }
        if den && !self.raise(flag::DE) {
            return;
        }
        let t = match v {
            Value::Zero { sign } => Big {
                neg: sign,
                ..Big::ZERO
            },
            _ => {
                let (q, r) = reduce(v);
                let t = if q & 1 == 0 {
                    sin_big(r).div(cos_big(r))
                } else {
                    cos_big(r).div(sin_big(r)).neg()
                };
                if v.sign() {
                    t.neg()
                } else {
                    t
                }
            }
        };
        let tb = self.round_big(t);
        self.set_st(0, tb);
        self.push(F80Bits {
            m: 1 << 63,
            se: 0x3fff,
        });
    }

    /// F2XM1: ST(0) = 2^ST(0) − 1 (defined for −1 ≤ ST(0) ≤ +1).
    pub fn f2xm1(&mut self) {
        let Some((v, den)) = self.st0_operand_allow_inf() else {
            return;
        };
        if den && !self.raise(flag::DE) {
            return;
        }
        let r = match v {
            Value::Zero { .. } => {
                self.set_c1(false);
                return;
            }
            Value::Inf { sign: false } => {
                self.set_c1(false);
                return;
            }
            Value::Inf { sign: true } => {
                self.set_c1(false);
                self.set_st(
                    0,
                    F80Bits {
                        m: 1 << 63,
                        se: 0xbfff,
                    },
                );
                return;
            }
            Value::Finite { exp, sig, .. } if exp > 0 || (exp == 0 && sig != 1 << 63) => {
                // Outside −1..+1 the host leaves ST(0) unchanged and reports only PE.
                self.set_c1(false);
                self.raise(flag::PE);
                return;
            }
            _ => expm1_big(Big::from_value(v).mul(LN2)),
        };
        let out = self.round_big(r);
        self.set_st(0, out);
    }

    /// FYL2X (`plus_one = false`): ST(1) = ST(1) × log2(ST(0)), pop; FYL2XP1: ST(1) × log2(ST(0) + 1).
    pub fn fyl2x(&mut self, plus_one: bool) {
        if self.is_empty(0) || self.is_empty(1) {
            if self.underflow() {
                self.set_st(1, F80Bits::INDEFINITE);
                self.pop();
            }
            return;
        }
        let (a, b) = (self.st(0), self.st(1));
        let (x, dx, cx) = soft::unpack_f80(a.se, a.m);
        let (y, dy, cy) = soft::unpack_f80(b.se, b.m);
        self.set_c1(false);
        let invalid = |s: &mut Self| {
            if s.raise(flag::IE) {
                s.set_st(1, F80Bits::INDEFINITE);
                s.pop();
            }
        };
        if cx == soft::F80Class::Unsupported || cy == soft::F80Class::Unsupported {
            return invalid(self);
        }
        if x.is_nan() || y.is_nan() {
            let ie = x.is_snan() || y.is_snan();
            if ie && !self.raise(flag::IE) {
                return;
            }
            let pick = crate::x87::pick_nan(x, y).quieted();
            let (se, m) = soft::pack_f80(pick);
            self.set_st(1, F80Bits { m, se });
            self.pop();
            return;
        }
        // log2(±0) × y is a zero divide, reported without DE (as SSE does too).
        let zero_divide =
            !plus_one && matches!(x, Value::Zero { .. }) && !matches!(y, Value::Zero { .. });
        // Invalid operands are reported without DE.
        let is_inf = |v: Value| matches!(v, Value::Inf { .. });
        let is_zero = |v: Value| matches!(v, Value::Zero { .. });
        let one = matches!(x, Value::Finite { exp: 0, sig, sign: false } if sig == 1 << 63);
        let invalid_case = if plus_one {
            (is_inf(x) && (x.sign() || is_zero(y))) || (is_zero(x) && is_inf(y))
        } else {
            (is_zero(x) && is_zero(y))
                || (x.sign() && !is_zero(x))
                || (is_inf(x) && is_zero(y))
                || (one && is_inf(y))
        };
        if invalid_case {
            return invalid(self);
        }
        if (dx || dy) && !zero_divide && !self.raise(flag::DE) {
            return;
        }
        let special = |s: &mut Self, v: Value| {
            let (se, m) = soft::pack_f80(v);
            s.set_st(1, F80Bits { m, se });
            s.pop();
        };
        // The logarithm's argument and its sign/class.
        let l: Big = if plus_one {
            match x {
                Value::Inf { .. } => return special(self, Value::Inf { sign: y.sign() }),
                Value::Zero { sign } => {
                    if matches!(y, Value::Inf { .. }) {
                        return invalid(self);
                    }
                    return special(
                        self,
                        Value::Zero {
                            sign: sign ^ y.sign(),
                        },
                    );
                }
                _ => {
                    let xb = Big::from_value(x);
                    atanh_big(xb.div(Big::int(2).add(xb))).mul(LOG2E)
                }
            }
        } else {
            match x {
                Value::Zero { .. } => match y {
                    Value::Zero { .. } => return invalid(self),
                    _ => {
                        // log2(0) = −∞ times a finite y is a zero divide; times ±∞ it is just
                        // ∓∞ (no flag, measured on the host).
                        if !matches!(y, Value::Inf { .. }) && !self.raise(flag::ZE) {
                            return;
                        }
                        return special(self, Value::Inf { sign: !y.sign() });
                    }
                },
                _ if x.sign() => return invalid(self),
                Value::Inf { .. } => match y {
                    Value::Zero { .. } => return invalid(self),
                    _ => return special(self, Value::Inf { sign: y.sign() }),
                },
                _ => {
                    let lb = ln_big(Big::from_value(x)).mul(LOG2E);
                    if lb.is_zero() {
                        if matches!(y, Value::Inf { .. }) {
                            return invalid(self);
                        }
                        return special(self, Value::Zero { sign: y.sign() });
                    }
                    lb
                }
            }
        };
        let l = if plus_one {
            Big {
                exp: l.exp + 1,
                ..l
            }
        } else {
            l
        };
        let r = match y {
            Value::Zero { sign } => return special(self, Value::Zero { sign: sign ^ l.neg }),
            Value::Inf { sign } => return special(self, Value::Inf { sign: sign ^ l.neg }),
            _ => Big::from_value(y).mul(l),
        };
        let out = self.round_big(r);
        self.set_st(1, out);
        self.pop();
    }

    /// FPATAN: ST(1) = atan2(ST(1), ST(0)), pop.
    pub fn fpatan(&mut self) {
        if self.is_empty(0) || self.is_empty(1) {
            if self.underflow() {
                self.set_st(1, F80Bits::INDEFINITE);
                self.pop();
            }
            return;
        }
        let (a, b) = (self.st(0), self.st(1));
        let (x, dx, cx) = soft::unpack_f80(a.se, a.m);
        let (y, dy, cy) = soft::unpack_f80(b.se, b.m);
        self.set_c1(false);
        if cx == soft::F80Class::Unsupported || cy == soft::F80Class::Unsupported {
            if self.raise(flag::IE) {
                self.set_st(1, F80Bits::INDEFINITE);
                self.pop();
            }
            return;
        }
        if x.is_nan() || y.is_nan() {
            let ie = x.is_snan() || y.is_snan();
            if ie && !self.raise(flag::IE) {
                return;
            }
            let pick = crate::x87::pick_nan(x, y).quieted();
            let (se, m) = soft::pack_f80(pick);
            self.set_st(1, F80Bits { m, se });
            self.pop();
            return;
        }
        if (dx || dy) && !self.raise(flag::DE) {
            return;
        }
        let quarter = |k: i64| PI.mul(Big::int(k)).div(Big::int(4));
        let r = match (y, x) {
            (Value::Zero { .. }, _) => {
                if x.sign() {
                    PI
                } else {
                    let (se, m) = soft::pack_f80(Value::Zero { sign: y.sign() });
                    self.set_st(1, F80Bits { m, se });
                    self.pop();
                    return;
                }
            }
            (Value::Inf { .. }, Value::Inf { sign }) => quarter(if sign { 3 } else { 1 }),
            (Value::Inf { .. }, _) | (_, Value::Zero { .. }) => HALF_PI,
            (_, Value::Inf { sign }) => {
                if sign {
                    PI
                } else {
                    let (se, m) = soft::pack_f80(Value::Zero { sign: y.sign() });
                    self.set_st(1, F80Bits { m, se });
                    self.pop();
                    return;
                }
            }
            _ => {
                let (yb, xb) = (Big::from_value(y).abs(), Big::from_value(x).abs());
                let t = if yb.mag_gt(xb) {
                    HALF_PI.sub(atan_big(xb.div(yb)))
                } else {
                    atan_big(yb.div(xb))
                };
                if x.sign() {
                    PI.sub(t)
                } else {
                    t
                }
            }
        };
        let r = if y.sign() { r.neg() } else { r };
        let out = self.round_big(r);
        self.set_st(1, out);
        self.pop();
    }

    fn st0_operand_allow_inf(&mut self) -> Option<(Value, bool)> {
        if self.is_empty(0) {
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return None;
        }
        let r = self.st(0);
        let (v, den, class) = soft::unpack_f80(r.se, r.m);
        if class == soft::F80Class::Unsupported {
            self.set_c1(false);
            if self.raise(flag::IE) {
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return None;
        }
        if v.is_nan() {
            self.set_c1(false);
            if !v.is_snan() || self.raise(flag::IE) {
                let (se, m) = soft::pack_f80(v.quieted());
                self.set_st(0, F80Bits { m, se });
            }
            return None;
        }
        Some((v, den))
    }
}
