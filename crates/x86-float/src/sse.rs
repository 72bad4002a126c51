//! SSE/SSE2 floating point: MXCSR, the XMM register file, and the scalar/packed single and
//! double operations with x86's NaN rules, DAZ, FTZ and exact MXCSR flags.
//!
//! Every lane operation is a pure function `(mxcsr, operands) -> Lane` returning the result
//! bits and the exception flags that lane raised. A caller runs the lanes of one instruction,
//! ORs their flags and hands them to [`SseState::raise`], which sets MXCSR's sticky flags and
//! says whether an unmasked exception must be delivered (#XM, or #UD when CR4.OSXMMEXCPT is
//! clear); in that case the destination must be left unchanged.

use crate::soft::{self, flag, Exact, Format, RoundCtl, Rounding, Value, F32, F64};

/// MXCSR bit: denormals are zeros.
pub const MXCSR_DAZ: u32 = 1 << 6;
/// MXCSR bit: flush to zero.
pub const MXCSR_FTZ: u32 = 1 << 15;
/// MXCSR value after reset/FXRSTOR of a fresh image: all exceptions masked, round to nearest.
pub const MXCSR_DEFAULT: u32 = 0x1f80;
/// Writable MXCSR bits (the MXCSR_MASK the host reports in FXSAVE: DAZ supported).
pub const MXCSR_MASK: u32 = 0xffff;

/// The SSE register state: XMM0–XMM15 and MXCSR.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SseState {
    /// XMM registers (16 in 64-bit mode; 8 visible in 32-bit modes).
    pub xmm: [u128; 16],
    /// Control and status register.
    pub mxcsr: u32,
}

impl Default for SseState {
    fn default() -> Self {
        Self {
            xmm: [0; 16],
            mxcsr: MXCSR_DEFAULT,
        }
    }
}

/// An unmasked SIMD floating-point exception: the CPU raises #XM (or #UD without
/// CR4.OSXMMEXCPT) and leaves the destination unchanged. MXCSR's flags are already set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unmasked SIMD floating-point exception (flags {flags:#x})")]
pub struct SimdException {
    /// The flags raised by the instruction (MXCSR bits 0–5).
    pub flags: u8,
}

/// Error of LDMXCSR/FXRSTOR: reserved MXCSR bits set; the CPU raises #GP(0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("MXCSR value {0:#x} sets reserved bits (outside MXCSR_MASK {MXCSR_MASK:#x}); the CPU raises #GP(0)")]
pub struct ReservedMxcsr(pub u32);

impl SseState {
    /// Sets MXCSR's sticky flags from `flags`; `Err` when any of them is unmasked.
    pub fn raise(&mut self, flags: u8) -> Result<(), SimdException> {
        self.mxcsr |= flags as u32 & 0x3f;
        let unmasked = flags as u32 & !(self.mxcsr >> 7) & 0x3f;
        if unmasked != 0 {
            Err(SimdException { flags })
        } else {
            Ok(())
        }
    }

    /// Checks a state restored from a snapshot: MXCSR must not set reserved bits (every
    /// other field may hold any value; the operations never panic on any state).
    pub fn validate(&self) -> Result<(), ReservedMxcsr> {
        if self.mxcsr & !MXCSR_MASK != 0 {
            Err(ReservedMxcsr(self.mxcsr))
        } else {
            Ok(())
        }
    }

    /// LDMXCSR.
    pub fn ldmxcsr(&mut self, v: u32) -> Result<(), ReservedMxcsr> {
        if v & !MXCSR_MASK != 0 {
            return Err(ReservedMxcsr(v));
        }
        self.mxcsr = v;
        Ok(())
    }
}

/// One lane's result: the bits to store and the flags raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane<T> {
    /// Result bits.
    pub value: T,
    /// MXCSR flags raised by this lane.
    pub flags: u8,
}

/// A two-operand floating-point arithmetic operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpOp {
    /// ADDPS/ADDSS/ADDPD/ADDSD.
    Add,
    /// SUB*.
    Sub,
    /// MUL*.
    Mul,
    /// DIV*.
    Div,
    /// MIN* (returns the second operand when either is NaN or both are zero).
    Min,
    /// MAX*.
    Max,
}

fn ctl(mx: u32) -> RoundCtl {
    RoundCtl {
        rc: Rounding::from_bits(mx >> 13),
        ue_masked: mx & (1 << 11) != 0,
        oe_masked: mx & (1 << 10) != 0,
        ftz: mx & MXCSR_FTZ != 0,
    }
}

fn masked(mx: u32, f: u8) -> bool {
    (mx >> 7) as u8 & f == f
}

/// Unpacks a source operand under DAZ; sets DE for a denormal when DAZ is off.
fn src(bits: u64, fmt: Format, mx: u32, flags: &mut u8) -> Value {
    let (v, den) = soft::unpack_ieee(bits, fmt);
    if den {
        if mx & MXCSR_DAZ != 0 {
            return Value::Zero { sign: v.sign() };
        }
        *flags |= flag::DE;
    }
    v
}

fn default_nan(fmt: Format) -> u64 {
    soft::pack_ieee(soft::DEFAULT_NAN, fmt)
}

fn finish(e: Result<Exact, Value>, fmt: Format, mx: u32, flags: u8) -> (u64, u8) {
    match e {
        Err(v) => (soft::pack_ieee(v, fmt), flags),
        Ok(x) => {
            let (v, f) = soft::round(x, fmt, ctl(mx));
            (soft::pack_ieee(v, fmt), flags | (f & 0x3f))
        }
    }
}

/// One lane of a binary operation on single (`fmt = F32`) or double (`F64`) bit patterns.
pub fn binop(op: FpOp, a: u64, b: u64, fmt: Format, mx: u32) -> Lane<u64> {
    let mut flags = 0;
    let va = src(a, fmt, mx, &mut flags);
    let vb = src(b, fmt, mx, &mut flags);
    if matches!(op, FpOp::Min | FpOp::Max) {
        if va.is_nan() || vb.is_nan() {
            // MIN/MAX are signalling comparisons: any NaN is invalid.
            return Lane {
                value: soft::pack_ieee(vb, fmt),
                flags: flag::IE | (flags & !flag::DE),
            };
        }
        let ord = soft::compare(va, vb);
        let take_a = match op {
            FpOp::Min => ord == std::cmp::Ordering::Less,
            _ => ord == std::cmp::Ordering::Greater,
        };
        // Under DAZ the operand returned is the flushed zero.
        let pick = if take_a { va } else { vb };
        return Lane {
            value: soft::pack_ieee(pick, fmt),
            flags,
        };
    }
    if va.is_nan() || vb.is_nan() {
        let ie = if va.is_snan() || vb.is_snan() {
            flag::IE
        } else {
            0
        };
        let pick = if va.is_nan() { va } else { vb };
        return Lane {
            value: soft::pack_ieee(pick.quieted(), fmt),
            flags: ie,
        };
    }
    let invalid = Lane {
        value: default_nan(fmt),
        flags: flag::IE,
    };
    let e = match op {
        FpOp::Add | FpOp::Sub => {
            let sub = op == FpOp::Sub;
            match (va, vb) {
                (Value::Inf { sign: x }, Value::Inf { sign: y }) => {
                    if x != (y ^ sub) {
                        return invalid;
                    }
                    Err(va)
                }
                (Value::Inf { .. }, _) => Err(va),
                (_, Value::Inf { sign }) => Err(Value::Inf { sign: sign ^ sub }),
                (Value::Zero { sign: x }, Value::Zero { sign: y }) => {
                    let y = y ^ sub;
                    let rd = Rounding::from_bits(mx >> 13) == Rounding::Down;
                    Err(Value::Zero {
                        sign: if x == y { x } else { rd },
                    })
                }
                (Value::Zero { .. }, _) => {
                    Ok(exact_of(if sub { vb.with_sign(!vb.sign()) } else { vb }))
                }
                (_, Value::Zero { .. }) => Ok(exact_of(va)),
                _ => soft::add_exact(va, vb, sub, Rounding::from_bits(mx >> 13)),
            }
        }
        FpOp::Mul => {
            let s = va.sign() ^ vb.sign();
            match (va, vb) {
                (Value::Inf { .. }, Value::Zero { .. })
                | (Value::Zero { .. }, Value::Inf { .. }) => return invalid,
                (Value::Inf { .. }, _) | (_, Value::Inf { .. }) => Err(Value::Inf { sign: s }),
                (Value::Zero { .. }, _) | (_, Value::Zero { .. }) => Err(Value::Zero { sign: s }),
                _ => Ok(soft::mul_exact(va, vb)),
            }
        }
        FpOp::Div => {
            let s = va.sign() ^ vb.sign();
            match (va, vb) {
                (Value::Inf { .. }, Value::Inf { .. })
                | (Value::Zero { .. }, Value::Zero { .. }) => return invalid,
                (Value::Inf { .. }, _) => Err(Value::Inf { sign: s }),
                (_, Value::Inf { .. }) => Err(Value::Zero { sign: s }),
                (Value::Zero { .. }, _) => Err(Value::Zero { sign: s }),
                (_, Value::Zero { .. }) => {
                    // Zero divide is reported alone: a denormal dividend's DE is not.
                    flags = flag::ZE;
                    Err(Value::Inf { sign: s })
                }
                _ => Ok(soft::div_exact(va, vb)),
            }
        }
        FpOp::Min | FpOp::Max => unreachable!("handled above"),
    };
    if !masked(mx, flags) {
        return Lane { value: 0, flags };
    }
    let (value, flags) = finish(e, fmt, mx, flags);
    Lane { value, flags }
}

/// An exact form of a finite value (for x + 0).
fn exact_of(v: Value) -> Exact {
    match v {
        Value::Finite { sign, exp, sig } => Exact {
            sign,
            sig: sig as u128,
            scale: exp - 63,
            sticky: false,
        },
        _ => unreachable!("exact_of() is only called on finite values"),
    }
}

/// One lane of SQRT.
pub fn sqrt(a: u64, fmt: Format, mx: u32) -> Lane<u64> {
    let mut flags = 0;
    let va = src(a, fmt, mx, &mut flags);
    let r = match va {
        Value::NaN { .. } => {
            let ie = if va.is_snan() { flag::IE } else { 0 };
            return Lane {
                value: soft::pack_ieee(va.quieted(), fmt),
                flags: ie,
            };
        }
        Value::Zero { .. } => Err(va),
        Value::Inf { sign: false } => Err(va),
        Value::Inf { sign: true } | Value::Finite { sign: true, .. } => {
            return Lane {
                value: default_nan(fmt),
                flags: flag::IE,
            }
        }
        Value::Finite { .. } => Ok(soft::sqrt_exact(va)),
    };
    if !masked(mx, flags) {
        return Lane { value: 0, flags };
    }
    let (value, flags) = finish(r, fmt, mx, flags);
    Lane { value, flags }
}

/// CMPPS/CMPSS/CMPPD/CMPSD predicate (imm8 & 7).
pub fn cmp(pred: u8, a: u64, b: u64, fmt: Format, mx: u32) -> Lane<bool> {
    let mut flags = 0;
    let va = src(a, fmt, mx, &mut flags);
    let vb = src(b, fmt, mx, &mut flags);
    let unordered = va.is_nan() || vb.is_nan();
    let signalling = matches!(pred & 7, 1 | 2 | 5 | 6);
    if unordered {
        let ie = va.is_snan() || vb.is_snan() || signalling;
        let r = matches!(pred & 7, 3..=6);
        return Lane {
            value: r,
            flags: if ie { flag::IE } else { 0 },
        };
    }
    use std::cmp::Ordering::*;
    let o = soft::compare(va, vb);
    let r = match pred & 7 {
        0 => o == Equal,
        1 => o == Less,
        2 => o != Greater,
        3 => false,
        4 => o != Equal,
        5 => o != Less,
        6 => o == Greater,
        _ => true,
    };
    Lane { value: r, flags }
}

/// COMISS/UCOMISS/COMISD/UCOMISD: the RFLAGS bits (ZF|PF|CF; OF, SF and AF cleared).
pub fn comis(signalling: bool, a: u64, b: u64, fmt: Format, mx: u32) -> Lane<u64> {
    const CF: u64 = 1;
    const PF: u64 = 4;
    const ZF: u64 = 0x40;
    let mut flags = 0;
    let va = src(a, fmt, mx, &mut flags);
    let vb = src(b, fmt, mx, &mut flags);
    if va.is_nan() || vb.is_nan() {
        let ie = va.is_snan() || vb.is_snan() || signalling;
        return Lane {
            value: ZF | PF | CF,
            flags: if ie { flag::IE } else { 0 },
        };
    }
    use std::cmp::Ordering::*;
    let value = match soft::compare(va, vb) {
        Less => CF,
        Equal => ZF,
        Greater => 0,
    };
    Lane { value, flags }
}

/// Float → float conversion (CVTSS2SD, CVTSD2SS, CVTPS2PD, CVTPD2PS).
pub fn convert(a: u64, from: Format, to: Format, mx: u32) -> Lane<u64> {
    let mut flags = 0;
    let va = src(a, from, mx, &mut flags);
    let r = match va {
        Value::NaN { .. } => {
            let ie = if va.is_snan() { flag::IE } else { 0 };
            return Lane {
                value: soft::pack_ieee(va.quieted(), to),
                flags: ie | flags,
            };
        }
        Value::Finite { .. } => Ok(exact_of(va)),
        v => Err(v),
    };
    if !masked(mx, flags) {
        return Lane { value: 0, flags };
    }
    let (value, flags) = finish(r, to, mx, flags);
    Lane { value, flags }
}

/// Integer → float (CVTSI2SS/SD, CVTDQ2PS/PD).
pub fn from_int(v: i64, to: Format, mx: u32) -> Lane<u64> {
    let r = soft::from_int(v as i128).ok_or(Value::Zero { sign: false });
    let (value, flags) = finish(r, to, mx, 0);
    Lane { value, flags }
}

/// Float → integer of `bits` width (CVTSS2SI, CVTSD2SI, CVTPS2DQ, CVTPD2DQ and their truncating
/// CVTT forms).
/// `truncate` selects the CVTT forms; out-of-range and NaN give the integer indefinite.
pub fn to_int(a: u64, from: Format, bits: u32, truncate: bool, mx: u32) -> Lane<i64> {
    // Conversions to integer report only IE and PE: a denormal source's DE is dropped.
    let mut ignored_de = 0;
    let va = src(a, from, mx, &mut ignored_de);
    let rc = if truncate {
        Rounding::Zero
    } else {
        Rounding::from_bits(mx >> 13)
    };
    let min = -(1i128 << (bits - 1));
    let max = (1i128 << (bits - 1)) - 1;
    match soft::to_int(va, rc, min, max) {
        Some((v, inexact)) => Lane {
            value: v as i64,
            flags: if inexact { flag::PE } else { 0 },
        },
        None => Lane {
            value: min as i64,
            flags: flag::IE,
        },
    }
}

/// Shorthand formats re-exported for callers.
pub const SINGLE: Format = F32;
/// Double format.
pub const DOUBLE: Format = F64;

/// Width of a floating-point SSE instruction's operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    /// Scalar (…SS/…SD): lane 0 computed, the other lanes of the destination kept.
    Scalar,
    /// Packed (…PS/…PD): every lane.
    Packed,
}

fn lanes(fmt: Format, w: Width) -> u32 {
    match w {
        Width::Scalar => 1,
        Width::Packed => 128 / lane_bits(fmt),
    }
}

fn lane_bits(fmt: Format) -> u32 {
    if fmt == F32 {
        32
    } else {
        64
    }
}

fn get(v: u128, bits: u32, i: u32) -> u64 {
    ((v >> (bits * i)) as u64) & (u64::MAX >> (64 - bits))
}

fn put(v: u128, bits: u32, i: u32, x: u64) -> u128 {
    let m = (u64::MAX >> (64 - bits)) as u128;
    (v & !(m << (bits * i))) | ((x as u128 & m) << (bits * i))
}

/// Runs a lane function over a register: `dst` supplies the lanes a scalar operation keeps.
fn over(dst: u128, fmt: Format, w: Width, mut f: impl FnMut(u32) -> Lane<u64>) -> Lane<u128> {
    let bits = lane_bits(fmt);
    let mut value = dst;
    let mut flags = 0;
    for i in 0..lanes(fmt, w) {
        let l = f(i);
        value = put(value, bits, i, l.value);
        flags |= l.flags;
    }
    Lane { value, flags }
}

/// ADD/SUB/MUL/DIV/MIN/MAX in PS/SS/PD/SD forms: `a` is the destination (first source).
pub fn arith(op: FpOp, a: u128, b: u128, fmt: Format, w: Width, mx: u32) -> Lane<u128> {
    let bits = lane_bits(fmt);
    over(a, fmt, w, |i| {
        binop(op, get(a, bits, i), get(b, bits, i), fmt, mx)
    })
}

/// SQRTPS/SQRTSS/SQRTPD/SQRTSD: the square root of `b`'s lanes into `a`.
pub fn sqrt_reg(a: u128, b: u128, fmt: Format, w: Width, mx: u32) -> Lane<u128> {
    let bits = lane_bits(fmt);
    over(a, fmt, w, |i| sqrt(get(b, bits, i), fmt, mx))
}

/// CMPPS/CMPSS/CMPPD/CMPSD: all-ones or zero per lane.
pub fn cmp_reg(pred: u8, a: u128, b: u128, fmt: Format, w: Width, mx: u32) -> Lane<u128> {
    let bits = lane_bits(fmt);
    over(a, fmt, w, |i| {
        let l = cmp(pred, get(a, bits, i), get(b, bits, i), fmt, mx);
        Lane {
            value: if l.value { u64::MAX } else { 0 },
            flags: l.flags,
        }
    })
}

/// CVTPS2PD (`from = F32`: the two low singles widened) and CVTPD2PS (two doubles narrowed into
/// the low half, upper half zeroed).
pub fn cvt_packed_float(b: u128, from: Format, mx: u32) -> Lane<u128> {
    let mut value = 0u128;
    let mut flags = 0;
    for i in 0..2 {
        let (x, to, ob) = if from == F32 {
            (get(b, 32, i), F64, 64)
        } else {
            (get(b, 64, i), F32, 32)
        };
        let l = convert(x, from, to, mx);
        value = put(value, ob, i, l.value);
        flags |= l.flags;
    }
    Lane { value, flags }
}

/// CVTDQ2PS (four int32 → singles) and CVTDQ2PD (two low int32 → doubles).
pub fn cvt_from_dq(b: u128, to: Format, mx: u32) -> Lane<u128> {
    let n = if to == F32 { 4 } else { 2 };
    let bits = lane_bits(to);
    let mut value = 0u128;
    let mut flags = 0;
    for i in 0..n {
        let l = from_int(get(b, 32, i) as u32 as i32 as i64, to, mx);
        value = put(value, bits, i, l.value);
        flags |= l.flags;
    }
    Lane { value, flags }
}

/// CVT(T)PS2DQ (four singles → int32) and CVT(T)PD2DQ (two doubles → low int32s, upper zero).
pub fn cvt_to_dq(b: u128, from: Format, truncate: bool, mx: u32) -> Lane<u128> {
    let n = if from == F32 { 4 } else { 2 };
    let bits = lane_bits(from);
    let mut value = 0u128;
    let mut flags = 0;
    for i in 0..n {
        let l = to_int(get(b, bits, i), from, 32, truncate, mx);
        value = put(value, 32, i, l.value as u64);
        flags |= l.flags;
    }
    Lane { value, flags }
}

/// Scalar conversions in register form.
///
/// CVTSI2SS/CVTSI2SD: the integer (sign-extended from 32 or 64 bits by the caller) into lane 0
/// of `a`, the other lanes kept.
pub fn cvtsi2s(a: u128, v: i64, to: Format, mx: u32) -> Lane<u128> {
    over(a, to, Width::Scalar, |_| from_int(v, to, mx))
}

/// CVTSS2SD (`from = F32`) and CVTSD2SS: lane 0 of `b` converted into lane 0 of `a`.
pub fn cvt_scalar_float(a: u128, b: u128, from: Format, mx: u32) -> Lane<u128> {
    let to = if from == F32 { F64 } else { F32 };
    let x = get(b, lane_bits(from), 0);
    over(a, to, Width::Scalar, |_| convert(x, from, to, mx))
}

/// CVTPI2PS: two int32 (an MMX register or m64) into the low two singles of `a`, the high
/// half kept. (The caller performs the MMX transition when the source is a register.)
pub fn cvtpi2ps(a: u128, mm: u64, mx: u32) -> Lane<u128> {
    let mut value = a;
    let mut flags = 0;
    for i in 0..2 {
        let l = from_int((mm >> (32 * i)) as u32 as i32 as i64, F32, mx);
        value = put(value, 32, i, l.value);
        flags |= l.flags;
    }
    Lane { value, flags }
}

/// CVTPI2PD: two int32 into two doubles (exact).
pub fn cvtpi2pd(mm: u64, mx: u32) -> Lane<u128> {
    cvt_from_dq(mm as u128, F64, mx)
}

/// CVTPS2PI/CVTTPS2PI (`from = F32`, the low two singles of `b`) and CVTPD2PI/CVTTPD2PI (the
/// two doubles): two int32 for an MMX register.
pub fn cvt_to_pi(b: u128, from: Format, truncate: bool, mx: u32) -> Lane<u64> {
    let bits = lane_bits(from);
    let mut value = 0u64;
    let mut flags = 0;
    for i in 0..2 {
        let l = to_int(get(b, bits, i), from, 32, truncate, mx);
        value |= (l.value as u32 as u64) << (32 * i);
        flags |= l.flags;
    }
    Lane { value, flags }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raise_sets_the_flag_and_reports_an_unmasked_exception() {
        let mut s = SseState {
            mxcsr: MXCSR_DEFAULT & !(1 << 9),
            ..SseState::default()
        };
        let l = binop(FpOp::Div, 1f64.to_bits(), 0, F64, s.mxcsr);
        assert_eq!(s.raise(l.flags), Err(SimdException { flags: flag::ZE }));
        assert_eq!(s.mxcsr & 0x3f, flag::ZE as u32);
    }

    #[test]
    fn masked_flags_are_sticky_and_not_reported() {
        let mut s = SseState::default();
        let l = binop(FpOp::Div, 1f64.to_bits(), 3f64.to_bits(), F64, s.mxcsr);
        assert_eq!(s.raise(l.flags), Ok(()));
        assert_eq!(s.mxcsr & 0x3f, flag::PE as u32);
    }

    #[test]
    fn unmasked_underflow_is_reported_even_when_exact() {
        // 2^-1022 / 2 = 2^-1023 is exact as a denormal; with UE unmasked it is still UE.
        let mx = MXCSR_DEFAULT & !(1 << 11);
        let l = binop(FpOp::Div, 0x0010_0000_0000_0000, 2f64.to_bits(), F64, mx);
        assert_eq!(l.flags, flag::UE);
    }

    #[test]
    fn unmasked_invalid_stops_before_the_denormal_check() {
        let mx = MXCSR_DEFAULT & !1;
        let l = sqrt(0x8000_0000_0000_0001, F64, mx);
        assert_eq!(l.flags, flag::IE);
    }

    #[test]
    fn ldmxcsr_rejects_reserved_bits() {
        let mut s = SseState::default();
        assert_eq!(s.ldmxcsr(0x1_1f80), Err(ReservedMxcsr(0x1_1f80)));
        assert_eq!(s.mxcsr, MXCSR_DEFAULT);
    }
}
