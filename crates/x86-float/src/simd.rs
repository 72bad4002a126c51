//! SIMD integer operations of MMX and SSE2, and the bitwise/shuffle/unpack/move-mask
//! operations that SSE applies to floating-point registers. One implementation serves both
//! widths: values are `u128`, and `W` is the register width in bytes (8 for MMX, 16 for XMM;
//! an MMX operand occupies the low 8 bytes and the result's upper bytes are zero).
//!
//! None of these raise exceptions; the caller only moves operands in and out.

/// Lane width in bytes (1, 2, 4 or 8).
pub type LaneBytes = u32;

#[inline]
fn lane(v: u128, w: LaneBytes, i: u32) -> u64 {
    let bits = 8 * w;
    ((v >> (bits * i)) & mask(w)) as u64
}

#[inline]
fn mask(w: LaneBytes) -> u128 {
    if w >= 16 {
        u128::MAX
    } else {
        (1u128 << (8 * w)) - 1
    }
}

#[inline]
fn sext(x: u64, w: LaneBytes) -> i64 {
    let sh = 64 - 8 * w;
    ((x << sh) as i64) >> sh
}

/// Applies `f` to each pair of lanes of width `w` across `width` bytes.
#[inline]
fn map2(a: u128, b: u128, w: LaneBytes, width: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    // One monomorphic loop per lane width over the registers' bytes: the lane accesses
    // become plain loads and stores the compiler can unroll (this is the hot path of
    // glibc's SSE2 string functions).
    match w {
        1 => map2_n::<1>(a, b, width, f),
        2 => map2_n::<2>(a, b, width, f),
        4 => map2_n::<4>(a, b, width, f),
        _ => map2_n::<8>(a, b, width, f),
    }
}

#[inline]
fn map2_n<const W: usize>(a: u128, b: u128, width: u32, f: impl Fn(u64, u64) -> u64) -> u128 {
    let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
    let mut r = [0u8; 16];
    let n = (width as usize / W).min(16 / W);
    for i in 0..n {
        let mut x = [0u8; 8];
        let mut y = [0u8; 8];
        x[..W].copy_from_slice(&a[i * W..i * W + W]);
        y[..W].copy_from_slice(&b[i * W..i * W + W]);
        let v = f(u64::from_le_bytes(x), u64::from_le_bytes(y));
        r[i * W..i * W + W].copy_from_slice(&v.to_le_bytes()[..W]);
    }
    u128::from_le_bytes(r)
}

/// Saturation of PADD/PSUB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sat {
    /// Wrap around (PADDB, PSUBW...).
    Wrap,
    /// Signed saturation (PADDSB...).
    Signed,
    /// Unsigned saturation (PADDUSB...).
    Unsigned,
}

fn saturate(x: i128, w: LaneBytes, sat: Sat) -> u64 {
    let bits = 8 * w;
    match sat {
        Sat::Wrap => x as u64,
        Sat::Signed => {
            let (lo, hi) = (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1);
            x.clamp(lo, hi) as u64
        }
        Sat::Unsigned => x.clamp(0, (1i128 << bits) - 1) as u64,
    }
}

fn ext(x: u64, w: LaneBytes, signed: bool) -> i128 {
    if signed {
        sext(x, w) as i128
    } else {
        x as i128
    }
}

/// PADD{B,W,D,Q}, PADDS{B,W}, PADDUS{B,W}.
pub fn padd(a: u128, b: u128, w: LaneBytes, sat: Sat, width: u32) -> u128 {
    let s = sat == Sat::Signed;
    map2(a, b, w, width, |x, y| {
        saturate(ext(x, w, s) + ext(y, w, s), w, sat)
    })
}

/// PSUB{B,W,D,Q}, PSUBS{B,W}, PSUBUS{B,W}.
pub fn psub(a: u128, b: u128, w: LaneBytes, sat: Sat, width: u32) -> u128 {
    let s = sat == Sat::Signed;
    map2(a, b, w, width, |x, y| {
        saturate(ext(x, w, s) - ext(y, w, s), w, sat)
    })
}

/// PMULLW.
pub fn pmullw(a: u128, b: u128, width: u32) -> u128 {
    map2(a, b, 2, width, |x, y| x.wrapping_mul(y))
}

/// PMULHW (signed) and PMULHUW (unsigned): high 16 bits of the 32-bit products.
pub fn pmulhw(a: u128, b: u128, signed: bool, width: u32) -> u128 {
    map2(a, b, 2, width, |x, y| {
        ((ext(x, 2, signed) * ext(y, 2, signed)) >> 16) as u64
    })
}

/// PMULUDQ: unsigned products of the even doublewords into quadwords.
pub fn pmuludq(a: u128, b: u128, width: u32) -> u128 {
    map2(a, b, 8, width, |x, y| (x & 0xffff_ffff) * (y & 0xffff_ffff))
}

/// PMADDWD: sums of adjacent signed word products (the one overflow case, 0x8000_0000 twice,
/// wraps to 0x8000_0000 as on hardware).
pub fn pmaddwd(a: u128, b: u128, width: u32) -> u128 {
    map2(a, b, 4, width, |x, y| {
        let p0 = sext(x & 0xffff, 2) * sext(y & 0xffff, 2);
        let p1 = sext(x >> 16, 2) * sext(y >> 16, 2);
        (p0.wrapping_add(p1)) as u64
    })
}

/// PSADBW: per 8-byte group, the sum of absolute byte differences in the low word.
pub fn psadbw(a: u128, b: u128, width: u32) -> u128 {
    map2(a, b, 8, width, |x, y| {
        (0..8)
            .map(|i| ((x >> (8 * i)) & 0xff).abs_diff((y >> (8 * i)) & 0xff))
            .sum()
    })
}

/// PAVGB/PAVGW: rounded unsigned average.
pub fn pavg(a: u128, b: u128, w: LaneBytes, width: u32) -> u128 {
    map2(a, b, w, width, |x, y| (x + y + 1) >> 1)
}

/// PMINUB/PMAXUB/PMINSW/PMAXSW.
pub fn pminmax(a: u128, b: u128, w: LaneBytes, signed: bool, max: bool, width: u32) -> u128 {
    map2(a, b, w, width, |x, y| {
        let (p, q) = (ext(x, w, signed), ext(y, w, signed));
        if (p > q) == max && p != q {
            x
        } else {
            y
        }
    })
}

/// PCMPEQ{B,W,D}.
pub fn pcmpeq(a: u128, b: u128, w: LaneBytes, width: u32) -> u128 {
    map2(a, b, w, width, |x, y| if x == y { u64::MAX } else { 0 })
}

/// PCMPGT{B,W,D} (signed).
pub fn pcmpgt(a: u128, b: u128, w: LaneBytes, width: u32) -> u128 {
    map2(a, b, w, width, |x, y| {
        if sext(x, w) > sext(y, w) {
            u64::MAX
        } else {
            0
        }
    })
}

/// PANDN / ANDNPS / ANDNPD: `!a & b`.
pub fn andn(a: u128, b: u128) -> u128 {
    !a & b
}

/// Shift kinds for PSLL/PSRL/PSRA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// Logical left.
    Left,
    /// Logical right.
    Right,
    /// Arithmetic right.
    Arith,
}

/// PSLL{W,D,Q}, PSRL{W,D,Q}, PSRA{W,D} by a count (imm8, or the whole low 64 bits of the
/// count operand): counts past the lane width give zero (or the sign for PSRA).
pub fn pshift(a: u128, w: LaneBytes, kind: Shift, count: u64, width: u32) -> u128 {
    let bits = 8 * w as u64;
    map2(a, 0, w, width, |x, _| match kind {
        Shift::Left => {
            if count >= bits {
                0
            } else {
                x << count
            }
        }
        Shift::Right => {
            if count >= bits {
                0
            } else {
                x >> count
            }
        }
        Shift::Arith => (sext(x, w) >> count.min(bits - 1)) as u64,
    })
}

/// PSLLDQ (left) and PSRLDQ (right): byte shifts of the whole register; counts above 15 clear.
pub fn pshift_bytes(a: u128, left: bool, count: u8) -> u128 {
    if count > 15 {
        0
    } else if left {
        a << (8 * count as u32)
    } else {
        a >> (8 * count as u32)
    }
}

/// PACKSSWB (w=2 → bytes), PACKSSDW (w=4 → words), PACKUSWB (unsigned saturation): the
/// narrowed lanes of `a` then `b`.
pub fn pack(a: u128, b: u128, w: LaneBytes, unsigned: bool, width: u32) -> u128 {
    let n = width / w;
    let nw = w / 2;
    let sat = if unsigned { Sat::Unsigned } else { Sat::Signed };
    let mut r = 0u128;
    for (k, src) in [a, b].into_iter().enumerate() {
        for i in 0..n {
            let x = saturate(sext(lane(src, w, i), w) as i128, nw, sat) as u128 & mask(nw);
            r |= x << (8 * nw * (k as u32 * n + i));
        }
    }
    r
}

/// PUNPCKL{BW,WD,DQ,QDQ} (`high = false`) and PUNPCKH*: interleaves the low (or high) halves'
/// lanes of `a` and `b`, `a` first. Also UNPCKLPS/UNPCKHPS (w=4) and UNPCKLPD/HPD (w=8).
pub fn unpack(a: u128, b: u128, w: LaneBytes, high: bool, width: u32) -> u128 {
    let half = width / w / 2;
    let base = if high { half } else { 0 };
    let mut r = 0u128;
    for i in 0..half {
        r |= (lane(a, w, base + i) as u128) << (8 * w * (2 * i));
        r |= (lane(b, w, base + i) as u128) << (8 * w * (2 * i + 1));
    }
    r
}

/// PSHUFD (w=4, XMM) and PSHUFW (w=2, MMX): lane i of the result is lane `imm[2i+1:2i]`.
pub fn pshuf(a: u128, w: LaneBytes, imm: u8, width: u32) -> u128 {
    let mut r = 0u128;
    for i in 0..width / w {
        let sel = (imm >> (2 * i)) & 3;
        r |= (lane(a, w, sel as u32) as u128) << (8 * w * i);
    }
    r
}

/// PSHUFLW (`high = false`) and PSHUFHW: shuffles the words of one quadword, copying the other.
pub fn pshuf_half(a: u128, high: bool, imm: u8) -> u128 {
    let (keep, src) = if high {
        (a & u64::MAX as u128, a >> 64)
    } else {
        (a >> 64, a & u64::MAX as u128)
    };
    let sh = pshuf(src, 2, imm, 8);
    if high {
        keep | (sh << 64)
    } else {
        sh | (keep << 64)
    }
}

/// SHUFPS: the low two lanes from `a`, the high two from `b`, chosen by imm.
pub fn shufps(a: u128, b: u128, imm: u8) -> u128 {
    let s = |i: u32| ((imm >> (2 * i)) & 3) as u32;
    (lane(a, 4, s(0)) as u128)
        | (lane(a, 4, s(1)) as u128) << 32
        | (lane(b, 4, s(2)) as u128) << 64
        | (lane(b, 4, s(3)) as u128) << 96
}

/// SHUFPD: lane 0 from `a` (imm bit 0), lane 1 from `b` (imm bit 1).
pub fn shufpd(a: u128, b: u128, imm: u8) -> u128 {
    (lane(a, 8, (imm & 1) as u32) as u128) | (lane(b, 8, ((imm >> 1) & 1) as u32) as u128) << 64
}

/// PMOVMSKB (w=1), MOVMSKPS (w=4), MOVMSKPD (w=8): the lanes' sign bits.
pub fn movmsk(a: u128, w: LaneBytes, width: u32) -> u32 {
    if w == 1 {
        // PMOVMSKB: the eight sign bits of each quadword gathered by one multiplication.
        let gather =
            |q: u64| ((q & 0x8080_8080_8080_8080).wrapping_mul(0x0002_0408_1020_4081) >> 56) as u32;
        let low = gather(a as u64);
        return if width == 8 {
            low
        } else {
            low | (gather((a >> 64) as u64) << 8)
        };
    }
    let bytes = a.to_le_bytes();
    let mut m = 0;
    for i in 0..(width / w).min(16 / w.max(1)) {
        // A lane's sign bit is the top bit of its last byte.
        m |= u32::from(bytes[((i + 1) * w - 1) as usize] >> 7) << i;
    }
    m
}

/// PEXTRW: word `imm & (lanes - 1)`, zero-extended.
pub fn pextrw(a: u128, imm: u8, width: u32) -> u32 {
    lane(a, 2, (imm as u32) & (width / 2 - 1)) as u32
}

/// PINSRW: replaces word `imm & (lanes - 1)` with the low 16 bits of `v`.
pub fn pinsrw(a: u128, v: u32, imm: u8, width: u32) -> u128 {
    let i = (imm as u32) & (width / 2 - 1);
    (a & !(0xffffu128 << (16 * i))) | ((v as u128 & 0xffff) << (16 * i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paddsb_saturates_at_127() {
        assert_eq!(padd(0x7f, 0x01, 1, Sat::Signed, 8) & 0xff, 0x7f);
    }

    #[test]
    fn psraw_by_large_count_fills_with_the_sign() {
        assert_eq!(pshift(0x8000, 2, Shift::Arith, 99, 8) & 0xffff, 0xffff);
    }

    #[test]
    fn pmovmskb_gathers_every_byte_sign() {
        for k in 0..16 {
            assert_eq!(movmsk(0x80u128 << (8 * k), 1, 16), 1 << k);
        }
        assert_eq!(movmsk(u128::MAX, 1, 16), 0xffff);
        assert_eq!(movmsk(u128::MAX, 1, 8), 0xff);
        assert_eq!(movmsk(0x7f7f_7f7f_7f7f_7f7f_7f7f_7f7f_7f7f_7f7f, 1, 16), 0);
    }

    #[test]
    fn packuswb_clamps_negative_words_to_zero() {
        assert_eq!(pack(0xffff, 0, 2, true, 16) & 0xff, 0);
    }
}
