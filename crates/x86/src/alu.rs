//! Integer arithmetic with the flags the manuals define, computed eagerly.
//!
//! Every function takes operands of `size` bytes (1, 2, 4 or 8) already truncated, and
//! returns the truncated result with the new arithmetic flags. Where the manuals leave a flag
//! undefined, these functions give what current Intel and AMD processors give where they
//! agree (and the differential tests mask it).

use crate::state::flags::{AF, CF, OF, PF, SF, ZF};

/// All ones in the low `size` bytes.
#[inline(always)]
pub fn mask(size: u32) -> u64 {
    MASKS[(size & 15) as usize]
}

/// [`mask`] by size (sizes above 8 give all ones, as before).
const MASKS: [u64; 16] = {
    let mut t = [u64::MAX; 16];
    let mut n = 0;
    while n < 8 {
        t[n] = (1u64 << (n * 8)) - 1;
        n += 1;
    }
    t
};

/// The sign bit of a `size`-byte value.
#[inline]
pub fn sign_bit(size: u32) -> u64 {
    1u64 << (size * 8 - 1)
}

/// Sign-extends the low `size` bytes of `value` to 64 bits.
#[inline]
pub fn sign_extend(value: u64, size: u32) -> u64 {
    let shift = 64 - size * 8;
    (((value << shift) as i64) >> shift) as u64
}

/// PF, ZF and SF of a result (branch-free: PF from a 16-entry parity table of the low
/// byte's nibbles folded together).
#[inline(always)]
pub fn szp(result: u64, size: u32) -> u64 {
    let low = (result ^ (result >> 4)) & 0xf;
    let pf = ((0x9669u64 >> low) & 1) << 2;
    let zf = u64::from(result & mask(size) == 0) << 6;
    let sf = ((result >> (size * 8 - 1)) & 1) << 7;
    pf | zf | sf
}

/// AF and OF from the operands and result of an addition (`b`) or subtraction (`b`
/// inverted by the caller for OF).
#[inline(always)]
fn af(a: u64, b: u64, r: u64) -> u64 {
    (a ^ b ^ r) & AF
}

/// `a + b + carry`.
#[inline(always)]
pub fn add(a: u64, b: u64, carry: bool, size: u32) -> (u64, u64) {
    let m = mask(size);
    let (r, cf) = if size == 8 {
        let (s1, c1) = a.overflowing_add(b);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        (s2, u64::from(c1 | c2))
    } else {
        let wide = a + b + u64::from(carry);
        (wide & m, (wide >> (size * 8)) & 1)
    };
    let of = (((a ^ r) & (b ^ r)) >> (size * 8 - 1)) & 1;
    (r, szp(r, size) | cf | af(a, b, r) | (of << 11))
}

/// `a - b - borrow`.
#[inline(always)]
pub fn sub(a: u64, b: u64, borrow: bool, size: u32) -> (u64, u64) {
    let m = mask(size);
    let (d1, c1) = a.overflowing_sub(b);
    let (d2, c2) = d1.overflowing_sub(u64::from(borrow));
    let r = d2 & m;
    // Operands are below 2^bits: the full-width borrow is the sized borrow.
    let cf = u64::from(c1 | c2);
    let of = (((a ^ b) & (a ^ r)) >> (size * 8 - 1)) & 1;
    (r, szp(r, size) | cf | af(a, b, r) | (of << 11))
}

/// Flags of a logical operation's result (CF = OF = 0; AF is undefined, given as 0).
#[inline(always)]
pub fn logic(r: u64, size: u32) -> u64 {
    szp(r, size)
}

/// Shift and rotate kinds, in the order of the group-2 opcode extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shift {
    /// ROL.
    Rol,
    /// ROR.
    Ror,
    /// RCL.
    Rcl,
    /// RCR.
    Rcr,
    /// SHL/SAL.
    Shl,
    /// SHR.
    Shr,
    /// SAR.
    Sar,
}

/// A shift or rotate of `a` (`size` bytes) by `count` (unmasked); `flags` are the current
/// RFLAGS. Returns the result and the new RFLAGS (unchanged when the masked count is 0).
#[inline(always)]
pub fn shift(kind: Shift, a: u64, count: u64, size: u32, flags: u64) -> (u64, u64) {
    let bits = size * 8;
    let count = (count & if size == 8 { 0x3f } else { 0x1f }) as u32;
    if count == 0 {
        return (a, flags);
    }
    let m = mask(size);
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    let cf_in = flags & CF;
    match kind {
        Shift::Rol | Shift::Ror => {
            let n = count % bits;
            let r = if n == 0 {
                a
            } else if kind == Shift::Rol {
                ((a << n) | (a >> (bits - n))) & m
            } else {
                ((a >> n) | (a << (bits - n))) & m
            };
            let mut f = flags & !(CF | OF);
            let cf = if kind == Shift::Rol { r & 1 } else { msb(r) };
            if cf != 0 {
                f |= CF;
            }
            // OF is defined for a count of 1; for larger counts processors compute it the
            // same way (the tests mask it).
            let of = if kind == Shift::Rol {
                msb(r) ^ cf
            } else {
                msb(r) ^ ((r >> (bits - 2)) & 1)
            };
            if of != 0 {
                f |= OF;
            }
            (r, f)
        }
        Shift::Rcl | Shift::Rcr => {
            let n = if size < 4 { count % (bits + 1) } else { count };
            if n == 0 {
                return (a, flags);
            }
            // Rotate through a (bits+1)-bit value: carry above the operand.
            let wide = ((cf_in as u128) << bits) | a as u128;
            let total = bits + 1;
            let full = (1u128 << total) - 1;
            let rotated = if kind == Shift::Rcl {
                ((wide << n) | (wide >> (total - n))) & full
            } else {
                ((wide >> n) | (wide << (total - n))) & full
            };
            let r = (rotated as u64) & m;
            let cf = ((rotated >> bits) & 1) as u64;
            let mut f = flags & !(CF | OF);
            if cf != 0 {
                f |= CF;
            }
            let of = if kind == Shift::Rcl {
                msb(r) ^ cf
            } else {
                msb(r) ^ ((r >> (bits - 2)) & 1)
            };
            if of != 0 {
                f |= OF;
            }
            (r, f)
        }
        Shift::Shl => {
            let r = if count >= bits { 0 } else { (a << count) & m };
            let cf = if count > bits {
                0
            } else {
                (a >> (bits - count)) & 1
            };
            let mut f = (flags & !(CF | OF | AF | SF | ZF | PF)) | szp(r, size);
            if cf != 0 {
                f |= CF;
            }
            if msb(r) ^ cf != 0 {
                f |= OF;
            }
            (r, f)
        }
        Shift::Shr => {
            let r = if count >= bits { 0 } else { a >> count };
            let cf = if count > bits {
                0
            } else {
                (a >> (count - 1)) & 1
            };
            let mut f = (flags & !(CF | OF | AF | SF | ZF | PF)) | szp(r, size);
            if cf != 0 {
                f |= CF;
            }
            if msb(a) != 0 {
                f |= OF;
            }
            (r, f)
        }
        Shift::Sar => {
            let s = sign_extend(a, size) as i64;
            let c = count.min(63);
            let r = ((s >> c) as u64) & m;
            let cf = ((s >> (c - 1).min(63)) & 1) as u64;
            let mut f = (flags & !(CF | OF | AF | SF | ZF | PF)) | szp(r, size);
            if cf != 0 {
                f |= CF;
            }
            (r, f)
        }
    }
}

/// SHLD (`left`) or SHRD of `dst` with bits from `src` by `count` (unmasked). Returns the
/// result and the new RFLAGS (unchanged when the masked count is 0). For 16-bit operands
/// with a count above 16 the result is undefined; this gives what a 32-bit funnel gives.
pub fn double_shift(
    left: bool,
    dst: u64,
    src: u64,
    count: u64,
    size: u32,
    flags: u64,
) -> (u64, u64) {
    let bits = size * 8;
    let count = (count & if size == 8 { 0x3f } else { 0x1f }) as u32;
    if count == 0 {
        return (dst, flags);
    }
    let m = mask(size);
    let (r, cf) = if left {
        // Concatenate dst:src (dst high), shift left, take the high half.
        let wide = ((dst as u128) << bits) | src as u128;
        let wide = if bits == 16 {
            // 16-bit: the hardware funnels dst:src:dst.
            (wide << 16) | dst as u128
        } else {
            wide
        };
        let width = if bits == 16 { 48 } else { 2 * bits };
        let shifted = wide << count;
        let r = ((shifted >> (width - bits)) as u64) & m;
        let cf = ((wide >> (width - count)) & 1) as u64;
        (r, cf)
    } else {
        let wide = ((src as u128) << bits) | dst as u128;
        let wide = if bits == 16 {
            ((dst as u128) << 32) | wide
        } else {
            wide
        };
        let r = ((wide >> count) as u64) & m;
        let cf = ((wide >> (count - 1)) & 1) as u64;
        (r, cf)
    };
    let msb = |v: u64| (v >> (bits - 1)) & 1;
    let mut f = (flags & !(CF | OF | AF | SF | ZF | PF)) | szp(r, size);
    if cf != 0 {
        f |= CF;
    }
    if msb(r) ^ msb(dst) != 0 {
        f |= OF;
    }
    (r, f)
}

/// Parity, zero and sign for a result, plus the given carry/overflow.
#[inline]
pub fn with_cf_of(r: u64, size: u32, carry_overflow: bool) -> u64 {
    let mut f = szp(r, size);
    if carry_overflow {
        f |= CF | OF;
    }
    f
}
