//! The x87 FPU: the register stack, control/status/tag words, last-instruction pointers, and
//! the operations, exact to a real CPU (80-bit extended precision, precision and rounding
//! control, stack faults, masked responses, C0–C3).
//!
//! Unmasked exceptions follow the hardware's delayed model: the instruction records the
//! exception flags and sets the status word's ES and B bits; the CPU must raise #MF (CR0.NE=1)
//! before the next *waiting* x87/MMX instruction when [`X87State::exception_pending`] is true.
//! Where the manuals say an unmasked exception leaves the destination unchanged (invalid
//! operation, zero divide, denormal operand), the operations here do so; unmasked overflow and
//! underflow store the result with the exponent bias-adjusted by ∓24576, as hardware does.
//!
//! Memory operands are passed as values ([`MemOperand`]) and stores return bytes; the caller
//! (the x86 CPU crate) performs the memory access and its faults. A store whose unmasked
//! exception suppresses it returns `None`.

use crate::soft::{self, flag, Exact, F80Class, Format, RoundCtl, Rounding, Value, F32, F64, F80};

/// One 80-bit register: 64-bit significand (explicit integer bit) and sign+exponent.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct F80Bits {
    /// Significand, bit 63 is the integer bit.
    pub m: u64,
    /// Sign (bit 15) and biased exponent (bits 0–14).
    pub se: u16,
}

impl F80Bits {
    /// The QNaN floating-point indefinite.
    pub const INDEFINITE: F80Bits = F80Bits {
        m: 0xc000_0000_0000_0000,
        se: 0xffff,
    };

    /// The 10-byte little-endian memory image.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0; 10];
        b[..8].copy_from_slice(&self.m.to_le_bytes());
        b[8..].copy_from_slice(&self.se.to_le_bytes());
        b
    }

    /// From the 10-byte memory image.
    pub fn from_bytes(b: [u8; 10]) -> Self {
        let mut m = [0; 8];
        m.copy_from_slice(&b[..8]);
        F80Bits {
            m: u64::from_le_bytes(m),
            se: u16::from_le_bytes([b[8], b[9]]),
        }
    }

    fn value(self) -> (Value, bool, F80Class) {
        soft::unpack_f80(self.se, self.m)
    }

    fn from_value(v: Value) -> Self {
        let (se, m) = soft::pack_f80(v);
        F80Bits { m, se }
    }
}

/// Status word bits.
pub mod sw {
    /// Stack fault.
    pub const SF: u16 = 0x40;
    /// Error summary.
    pub const ES: u16 = 0x80;
    /// Condition code C0.
    pub const C0: u16 = 0x100;
    /// Condition code C1.
    pub const C1: u16 = 0x200;
    /// Condition code C2.
    pub const C2: u16 = 0x400;
    /// Condition code C3.
    pub const C3: u16 = 0x4000;
    /// FPU busy (mirrors ES).
    pub const B: u16 = 0x8000;
    /// All four condition codes.
    pub const CC: u16 = C0 | C1 | C2 | C3;
}

/// The x87 state as FXSAVE keeps it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct X87State {
    /// Physical registers R0–R7 (ST(i) is R((TOP+i) mod 8)).
    pub regs: [F80Bits; 8],
    /// Control word.
    pub fcw: u16,
    /// Status word, TOP in bits 11–13.
    pub fsw: u16,
    /// Abridged tag: bit i set when physical register i is valid (non-empty).
    pub tags: u8,
    /// Last non-control instruction's opcode (11 bits).
    pub fop: u16,
    /// Last instruction pointer (offset; 64-bit in long mode).
    pub fip: u64,
    /// Last instruction's code segment selector (32-bit forms).
    pub fcs: u16,
    /// Last data pointer.
    pub fdp: u64,
    /// Last data segment selector (32-bit forms).
    pub fds: u16,
}

impl Default for X87State {
    fn default() -> Self {
        let mut s = X87State {
            regs: [F80Bits::default(); 8],
            fcw: 0,
            fsw: 0,
            tags: 0,
            fop: 0,
            fip: 0,
            fcs: 0,
            fdp: 0,
            fds: 0,
        };
        s.finit();
        s
    }
}

/// A source operand of an arithmetic or compare instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operand {
    /// ST(i).
    St(u8),
    /// A memory operand.
    Mem(MemOperand),
}

/// A memory operand's value, as read by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemOperand {
    /// m32fp.
    F32(u32),
    /// m64fp.
    F64(u64),
    /// m80fp.
    F80(F80Bits),
    /// m16int.
    I16(i16),
    /// m32int.
    I32(i32),
    /// m64int.
    I64(i64),
    /// m80bcd (FBLD): ten bytes.
    Bcd([u8; 10]),
}

/// Width of a store (FST/FIST/FISTTP/FBSTP).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// m32fp.
    F32,
    /// m64fp.
    F64,
    /// m80fp.
    F80,
    /// m16int (rounded by RC).
    I16,
    /// m32int.
    I32,
    /// m64int.
    I64,
    /// FISTTP m16int (truncating).
    I16Trunc,
    /// FISTTP m32int.
    I32Trunc,
    /// FISTTP m64int.
    I64Trunc,
    /// m80bcd.
    Bcd,
}

/// Arithmetic operations. The result is `ST(dst) op src`; the reversed forms compute
/// `src op ST(dst)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// FADD.
    Add,
    /// FSUB.
    Sub,
    /// FSUBR.
    SubR,
    /// FMUL.
    Mul,
    /// FDIV.
    Div,
    /// FDIVR.
    DivR,
}

/// Compare flavours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompareKind {
    /// FCOM: any NaN is invalid.
    Ordered,
    /// FUCOM: only SNaN is invalid.
    Unordered,
}

/// FLD constants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Constant {
    /// FLD1.
    One,
    /// FLDL2T: log2(10).
    L2T,
    /// FLDL2E: log2(e).
    L2E,
    /// FLDPI.
    Pi,
    /// FLDLG2: log10(2).
    Lg2,
    /// FLDLN2: ln(2).
    Ln2,
    /// FLDZ.
    Zero,
}

/// A value pulled from an operand: either a number to work on, or an already-handled fault.
enum Fetched {
    Ok(Value, bool, F80Class),
    Empty,
}

impl X87State {
    /// TOP.
    pub fn top(&self) -> u8 {
        ((self.fsw >> 11) & 7) as u8
    }

    fn set_top(&mut self, t: u8) {
        self.fsw = (self.fsw & !0x3800) | (((t & 7) as u16) << 11);
    }

    fn phys(&self, i: u8) -> usize {
        ((self.top() + i) & 7) as usize
    }

    /// True when ST(i) is empty.
    pub fn is_empty(&self, i: u8) -> bool {
        self.tags & (1 << self.phys(i)) == 0
    }

    /// ST(i)'s bits (whatever an empty register holds).
    pub fn st(&self, i: u8) -> F80Bits {
        self.regs[self.phys(i)]
    }

    /// Writes ST(i) and marks it valid.
    pub fn set_st(&mut self, i: u8, v: F80Bits) {
        let p = self.phys(i);
        self.regs[p] = v;
        self.tags |= 1 << p;
    }

    /// True when an unmasked exception is pending (ES): the CPU raises #MF before the next
    /// waiting x87 or MMX instruction.
    pub fn exception_pending(&self) -> bool {
        self.fsw & sw::ES != 0
    }

    pub(crate) fn rc(&self) -> Rounding {
        Rounding::from_bits((self.fcw >> 10) as u32)
    }

    /// The format arithmetic rounds to under precision control.
    fn pc_format(&self) -> Format {
        let p = match (self.fcw >> 8) & 3 {
            0 => 24,
            2 => 53,
            _ => 64,
        };
        Format { p, ..F80 }
    }

    fn masked(&self, f: u8) -> bool {
        (self.fcw as u8) & f & 0x3f == f & 0x3f
    }

    fn ctl(&self) -> RoundCtl {
        RoundCtl {
            rc: self.rc(),
            ue_masked: self.masked(flag::UE),
            oe_masked: self.masked(flag::OE),
            ftz: false,
        }
    }

    /// Records exception flags; sets ES and B when one of them is unmasked. Returns true
    /// when all of `f` are masked.
    pub(crate) fn raise(&mut self, f: u8) -> bool {
        self.fsw |= (f & 0x3f) as u16;
        self.update_es();
        self.masked(f)
    }

    fn update_es(&mut self) {
        if self.fsw & !self.fcw & 0x3f != 0 {
            self.fsw |= sw::ES | sw::B;
        } else {
            self.fsw &= !(sw::ES | sw::B);
        }
    }

    pub(crate) fn set_c1(&mut self, on: bool) {
        if on {
            self.fsw |= sw::C1;
        } else {
            self.fsw &= !sw::C1;
        }
    }

    fn set_cc(&mut self, c3: bool, c2: bool, c1: bool, c0: bool) {
        self.fsw &= !sw::CC;
        if c3 {
            self.fsw |= sw::C3;
        }
        if c2 {
            self.fsw |= sw::C2;
        }
        if c1 {
            self.fsw |= sw::C1;
        }
        if c0 {
            self.fsw |= sw::C0;
        }
    }

    /// Stack underflow: IE|SF, C1=0. Returns true when masked (the caller then uses the
    /// indefinite as the result).
    pub(crate) fn underflow(&mut self) -> bool {
        self.set_c1(false);
        self.fsw |= sw::SF;
        self.raise(flag::IE)
    }

    /// Stack overflow of an instruction that replaces ST(0) and pushes (FXTRACT, FPTAN,
    /// FSINCOS): IE|SF with C1=1; masked, ST(0) and the pushed value are the indefinite.
    pub(crate) fn overflow_both(&mut self) {
        self.fsw |= sw::SF;
        self.set_c1(true);
        if self.raise(flag::IE) {
            self.set_st(0, F80Bits::INDEFINITE);
            self.set_top(self.top().wrapping_sub(1));
            self.set_st(0, F80Bits::INDEFINITE);
        }
    }

    /// Pops the stack (marks ST(0) empty, TOP+1).
    pub fn pop(&mut self) {
        let p = self.phys(0);
        self.tags &= !(1 << p);
        self.set_top(self.top().wrapping_add(1));
    }

    /// Pushes a value; on stack overflow (ST(7) valid) raises IE|SF with C1=1 and, when
    /// masked, pushes the indefinite instead.
    pub(crate) fn push(&mut self, v: F80Bits) {
        if !self.is_empty(7) {
            self.fsw |= sw::SF;
            self.set_c1(true);
            if !self.raise(flag::IE) {
                return;
            }
            self.set_top(self.top().wrapping_sub(1));
            self.set_st(0, F80Bits::INDEFINITE);
            return;
        }
        self.set_top(self.top().wrapping_sub(1));
        self.set_st(0, v);
    }

    fn fetch(&self, op: Operand) -> Fetched {
        match op {
            Operand::St(i) => {
                if self.is_empty(i) {
                    Fetched::Empty
                } else {
                    let (v, d, c) = self.st(i).value();
                    Fetched::Ok(v, d, c)
                }
            }
            Operand::Mem(m) => {
                let (v, d) = match m {
                    MemOperand::F32(b) => soft::unpack_ieee(b as u64, F32),
                    MemOperand::F64(b) => soft::unpack_ieee(b, F64),
                    MemOperand::F80(b) => {
                        let (v, d, c) = b.value();
                        return Fetched::Ok(v, d, c);
                    }
                    MemOperand::I16(x) => (int_value(x as i64), false),
                    MemOperand::I32(x) => (int_value(x as i64), false),
                    MemOperand::I64(x) => (int_value(x), false),
                    MemOperand::Bcd(b) => (bcd_value(b), false),
                };
                Fetched::Ok(v, d, F80Class::Supported)
            }
        }
    }

    // ---- control ----

    /// FNINIT/FINIT.
    pub fn finit(&mut self) {
        self.fcw = 0x037f;
        self.fsw = 0;
        self.tags = 0;
        self.fop = 0;
        self.fip = 0;
        self.fcs = 0;
        self.fdp = 0;
        self.fds = 0;
    }

    /// FNCLEX/FCLEX: clears the exception flags, SF, ES and B.
    pub fn fclex(&mut self) {
        self.fsw &= !(0x3f | sw::SF | sw::ES | sw::B);
    }

    /// FLDCW: loading a control word that unmasks a raised flag sets ES.
    pub fn fldcw(&mut self, cw: u16) {
        // Bits 6 and 13–15 are reserved; bit 6 reads as 1 on current processors.
        self.fcw = (cw & 0x1f3f) | 0x40;
        self.update_es();
    }

    /// Records the last instruction's pointers (called by the CPU for every non-control x87
    /// instruction, as FXSAVE reports them).
    pub fn set_last(&mut self, fop: u16, fip: u64, fcs: u16, fdp: u64, fds: u16) {
        self.fop = fop & 0x7ff;
        self.fip = fip;
        self.fcs = fcs;
        self.fdp = fdp;
        self.fds = fds;
    }

    /// The full 2-bit-per-register tag word (FSTENV/FSAVE), computed from the contents:
    /// 00 valid, 01 zero, 10 special (NaN, infinity, denormal, unsupported), 11 empty.
    pub fn full_tag_word(&self) -> u16 {
        let mut t = 0u16;
        for p in 0..8 {
            let tag = if self.tags & (1 << p) == 0 {
                3
            } else {
                let r = self.regs[p];
                let e = r.se & 0x7fff;
                if e == 0x7fff || (e == 0 && r.m != 0) || (e != 0 && r.m >> 63 == 0) {
                    2
                } else if e == 0 {
                    1
                } else {
                    0
                }
            };
            t |= tag << (2 * p);
        }
        t
    }

    /// Sets the abridged tags from a full tag word (FLDENV/FRSTOR): 11 is empty.
    pub fn set_full_tag_word(&mut self, t: u16) {
        self.tags = 0;
        for p in 0..8 {
            if (t >> (2 * p)) & 3 != 3 {
                self.tags |= 1 << p;
            }
        }
    }

    /// FFREE ST(i).
    pub fn ffree(&mut self, i: u8) {
        // C1 is cleared (the manuals leave C0–C3 undefined; measured on an Intel host).
        self.set_c1(false);
        let p = self.phys(i);
        self.tags &= !(1 << p);
    }

    /// FINCSTP.
    pub fn fincstp(&mut self) {
        self.set_c1(false);
        self.set_top(self.top().wrapping_add(1));
    }

    /// FDECSTP.
    pub fn fdecstp(&mut self) {
        self.set_c1(false);
        self.set_top(self.top().wrapping_sub(1));
    }

    // ---- loads and stores ----

    /// FLD (m32/m64/m80 fp, ST(i)), FILD (m16/32/64 int), FBLD (m80 bcd).
    pub fn fld(&mut self, src: Operand) {
        if let Operand::St(i) = src {
            if self.is_empty(i) {
                // An empty source is reported as a stack underflow (C1 = 0) even when the
                // stack is also full (measured on an Intel host); masked, the indefinite is
                // pushed.
                if self.underflow() {
                    self.set_top(self.top().wrapping_sub(1));
                    self.set_st(0, F80Bits::INDEFINITE);
                }
                return;
            }
        }
        if !self.is_empty(7) {
            // Stack overflow is detected before the operand is examined.
            self.push(F80Bits::INDEFINITE);
            return;
        }
        let v = match src {
            Operand::St(i) => {
                if self.is_empty(i) {
                    if !self.underflow() {
                        return;
                    }
                    F80Bits::INDEFINITE
                } else {
                    self.st(i)
                }
            }
            Operand::Mem(MemOperand::F80(b)) => b,
            Operand::Mem(m @ (MemOperand::F32(_) | MemOperand::F64(_))) => {
                let Fetched::Ok(v, den, _) = self.fetch(Operand::Mem(m)) else {
                    unreachable!("memory operands are never empty")
                };
                let mut f = if den { flag::DE } else { 0 };
                let v = if v.is_snan() {
                    f = flag::IE;
                    v.quieted()
                } else {
                    v
                };
                if f != 0 {
                    self.set_c1(false);
                    // An unmasked denormal operand still loads; an unmasked SNaN does not.
                    if !self.raise(f) && f == flag::IE {
                        return;
                    }
                }
                F80Bits::from_value(v)
            }
            Operand::Mem(m) => {
                let Fetched::Ok(v, _, _) = self.fetch(Operand::Mem(m)) else {
                    unreachable!("memory operands are never empty")
                };
                F80Bits::from_value(v)
            }
        };
        self.set_c1(false);
        self.push(v);
    }

    /// FLD1, FLDZ, FLDPI, FLDL2E, FLDL2T, FLDLG2, FLDLN2: the constants are held with 66
    /// significant bits and rounded to 64 under RC (never raising PE), as hardware does.
    pub fn fld_const(&mut self, c: Constant) {
        // (exponent, 128 significand bits)
        let (exp, sig): (i32, u128) = match c {
            Constant::One => (0, 1 << 127),
            Constant::Zero => {
                self.set_c1(false);
                self.push(F80Bits { m: 0, se: 0 });
                return;
            }
            Constant::L2T => (1, 0xd49a_784b_cd1b_8afe_492b_f6ff_4daf_db4c),
            Constant::L2E => (0, 0xb8aa_3b29_5c17_f0bb_be87_fed0_691d_3e88),
            Constant::Pi => (1, 0xc90f_daa2_2168_c234_c4c6_628b_80dc_1cd1),
            Constant::Lg2 => (-2, 0x9a20_9a84_fbcf_f798_8f89_59ac_0b7c_9178),
            Constant::Ln2 => (-1, 0xb172_17f7_d1cf_79ab_c9e3_b398_03f2_f6af),
        };
        let x = Exact {
            sign: false,
            sig,
            scale: exp - 127,
            sticky: c != Constant::One,
        };
        let (v, _) = soft::round(
            x,
            F80,
            RoundCtl {
                rc: self.rc(),
                ue_masked: true,
                oe_masked: true,
                ftz: false,
            },
        );
        self.set_c1(false);
        self.push(F80Bits::from_value(v));
    }

    /// FST/FSTP, FIST/FISTP, FISTTP, FBSTP of ST(0). Returns the bytes to store (little
    /// endian, the width of `kind`), or `None` when an unmasked exception suppresses the
    /// store (the stack is then not popped either).
    pub fn fst(&mut self, kind: StoreKind, pop: bool) -> Option<Vec<u8>> {
        let r = self.store_bytes(kind);
        if r.is_some() && pop {
            self.pop();
        }
        r
    }

    /// FST ST(i) / FSTP ST(i).
    pub fn fst_st(&mut self, i: u8, pop: bool) {
        if self.is_empty(0) {
            if !self.underflow() {
                return;
            }
            self.set_st(i, F80Bits::INDEFINITE);
        } else {
            self.set_c1(false);
            let v = self.st(0);
            self.set_st(i, v);
        }
        if pop {
            self.pop();
        }
    }

    fn store_bytes(&mut self, kind: StoreKind) -> Option<Vec<u8>> {
        use StoreKind as K;
        let indefinite = |k: K| -> Vec<u8> {
            match k {
                K::F32 => 0xffc0_0000u32.to_le_bytes().to_vec(),
                K::F64 => 0xfff8_0000_0000_0000u64.to_le_bytes().to_vec(),
                K::F80 => F80Bits::INDEFINITE.to_bytes().to_vec(),
                K::I16 | K::I16Trunc => 0x8000u16.to_le_bytes().to_vec(),
                K::I32 | K::I32Trunc => 0x8000_0000u32.to_le_bytes().to_vec(),
                K::I64 | K::I64Trunc => 0x8000_0000_0000_0000u64.to_le_bytes().to_vec(),
                K::Bcd => vec![0, 0, 0, 0, 0, 0, 0, 0xc0, 0xff, 0xff],
            }
        };
        if self.is_empty(0) {
            return if self.underflow() {
                Some(indefinite(kind))
            } else {
                None
            };
        }
        let r = self.st(0);
        if kind == K::F80 {
            self.set_c1(false);
            return Some(r.to_bytes().to_vec());
        }
        let (v, den, class) = r.value();
        if class == F80Class::Unsupported {
            self.set_c1(false);
            return if self.raise(flag::IE) {
                Some(indefinite(kind))
            } else {
                None
            };
        }
        match kind {
            K::F32 | K::F64 => {
                // A denormal register value raises no DE on a store (measured on the host).
                let _ = den;
                let fmt = if kind == K::F32 { F32 } else { F64 };
                let (val, f) = match v {
                    Value::NaN { .. } => (v.quieted(), if v.is_snan() { flag::IE } else { 0 }),
                    Value::Finite { sign, exp, sig } => {
                        let x = Exact {
                            sign,
                            sig: sig as u128,
                            scale: exp - 63,
                            sticky: false,
                        };
                        soft::round(x, fmt, self.ctl())
                    }
                    v => (v, 0),
                };
                self.set_c1(f & flag::ROUNDED_UP != 0);
                if f & flag::IE != 0 && !self.raise(flag::IE) {
                    return None;
                }
                let f = f & 0x3e;
                let ou = f & (flag::OE | flag::UE);
                if ou != 0 && !self.masked(ou) {
                    // Unmasked overflow/underflow on a store to memory: nothing is stored, and
                    // only OE/UE is reported (no PE, C1 clear).
                    self.set_c1(false);
                    self.raise(ou);
                    return None;
                }
                if f != 0 {
                    self.raise(f);
                }
                let bits = soft::pack_ieee(val, fmt);
                Some(if kind == K::F32 {
                    (bits as u32).to_le_bytes().to_vec()
                } else {
                    bits.to_le_bytes().to_vec()
                })
            }
            K::Bcd => {
                let (i, inexact) = match soft::to_int(
                    v,
                    self.rc(),
                    -999_999_999_999_999_999,
                    999_999_999_999_999_999,
                ) {
                    Some(x) => x,
                    None => {
                        self.set_c1(false);
                        return if self.raise(flag::IE) {
                            Some(indefinite(kind))
                        } else {
                            None
                        };
                    }
                };
                self.set_c1(inexact && int_rounded_up(i, v));
                if inexact {
                    self.raise(flag::PE);
                }
                let mut b = [0u8; 10];
                let mut n = i.unsigned_abs();
                for byte in b.iter_mut().take(9) {
                    let lo = (n % 10) as u8;
                    n /= 10;
                    let hi = (n % 10) as u8;
                    n /= 10;
                    *byte = lo | (hi << 4);
                }
                b[9] = if v.sign() { 0x80 } else { 0 };
                Some(b.to_vec())
            }
            _ => {
                let (bits, trunc) = match kind {
                    K::I16 => (16, false),
                    K::I32 => (32, false),
                    K::I64 => (64, false),
                    K::I16Trunc => (16, true),
                    K::I32Trunc => (32, true),
                    _ => (64, true),
                };
                let rc = if trunc { Rounding::Zero } else { self.rc() };
                let min = -(1i128 << (bits - 1));
                let max = (1i128 << (bits - 1)) - 1;
                match soft::to_int(v, rc, min, max) {
                    None => {
                        self.set_c1(false);
                        if self.raise(flag::IE) {
                            Some(indefinite(kind))
                        } else {
                            None
                        }
                    }
                    Some((i, inexact)) => {
                        // C1 tells whether the integer's magnitude exceeds the exact value.
                        self.set_c1(inexact && int_rounded_up(i, v));
                        if inexact {
                            self.raise(flag::PE);
                        }
                        let bytes = (i as i64).to_le_bytes();
                        Some(bytes[..bits as usize / 8].to_vec())
                    }
                }
            }
        }
    }

    // ---- arithmetic ----

    /// FADD/FSUB/FSUBR/FMUL/FDIV/FDIVR (and the P and I forms): `ST(dst) = ST(dst) op src`
    /// (or `src op ST(dst)` for the R forms), popping afterwards when `pop`.
    pub fn arith(&mut self, op: Arith, dst: u8, src: Operand, pop: bool) {
        let a = self.fetch(Operand::St(dst));
        let b = self.fetch(src);
        let done = self.arith_inner(op, dst, a, b);
        if done && pop {
            self.pop();
        }
    }

    /// Rounds an exact result for a register destination, applying x87's response to
    /// unmasked overflow/underflow: the exponent is bias-adjusted by ∓24576; when even the
    /// adjusted exponent is out of range (FSCALE can do that), the result is a signed infinity
    /// (C1 set) or a signed zero, as the host does.
    fn round_x87(&self, x: Exact, fmt: Format) -> (Value, u8) {
        let ctl = self.ctl();
        let (v, f) = soft::round(x, fmt, ctl);
        match v {
            Value::Finite { sign, exp, sig } if f & flag::OE != 0 && !ctl.oe_masked => {
                if exp - 24576 > F80.emax {
                    (Value::Inf { sign }, flag::OE | flag::PE | flag::ROUNDED_UP)
                } else {
                    (
                        Value::Finite {
                            sign,
                            exp: exp - 24576,
                            sig,
                        },
                        f,
                    )
                }
            }
            Value::Finite { sign, exp, sig } if exp < F80.emin && !ctl.ue_masked => {
                if exp + 24576 < F80.emin {
                    (Value::Zero { sign }, flag::UE | flag::PE)
                } else {
                    (
                        Value::Finite {
                            sign,
                            exp: exp + 24576,
                            sig,
                        },
                        f,
                    )
                }
            }
            v => (v, f),
        }
    }

    /// Writes a result to ST(dst) after rounding under PC/RC, with x87's bias-adjusted
    /// responses to unmasked overflow and underflow. Returns false when an unmasked exception
    /// suppressed the write.
    fn write_rounded(&mut self, dst: u8, r: Result<Exact, Value>, pre: u8) -> bool {
        match r {
            Err(v) => {
                self.set_c1(false);
                if pre != 0 && !self.raise(pre) {
                    return false;
                }
                self.set_st(dst, F80Bits::from_value(v));
                true
            }
            Ok(x) => {
                if pre != 0 && !self.raise(pre) {
                    self.set_c1(false);
                    return false;
                }
                let (v, f) = self.round_x87(x, self.pc_format());
                self.set_c1(f & flag::ROUNDED_UP != 0);
                self.raise(f);
                self.set_st(dst, F80Bits::from_value(v));
                true
            }
        }
    }

    /// Checks the operands common to two-operand instructions: stack underflow, unsupported
    /// encodings and NaNs. `Err(done)` when the result has been decided here.
    fn two_operands(
        &mut self,
        dst: u8,
        a: &Fetched,
        b: &Fetched,
    ) -> Result<(Value, Value, u8), bool> {
        let (va, da, ca, vb, db, cb) = match (a, b) {
            (Fetched::Ok(va, da, ca), Fetched::Ok(vb, db, cb)) => (*va, *da, *ca, *vb, *db, *cb),
            _ => {
                if self.underflow() {
                    self.set_st(dst, F80Bits::INDEFINITE);
                    return Err(true);
                }
                return Err(false);
            }
        };
        self.set_c1(false);
        if ca == F80Class::Unsupported || cb == F80Class::Unsupported {
            if self.raise(flag::IE) {
                self.set_st(dst, F80Bits::INDEFINITE);
                return Err(true);
            }
            return Err(false);
        }
        if va.is_nan() || vb.is_nan() {
            let ie = va.is_snan() || vb.is_snan();
            let r = pick_nan(va, vb);
            if ie && !self.raise(flag::IE) {
                return Err(false);
            }
            self.set_st(dst, F80Bits::from_value(r.quieted()));
            return Err(true);
        }
        let de = if da || db { flag::DE } else { 0 };
        Ok((va, vb, de))
    }

    fn invalid(&mut self, dst: u8) -> bool {
        self.set_c1(false);
        if self.raise(flag::IE) {
            self.set_st(dst, F80Bits::INDEFINITE);
            true
        } else {
            false
        }
    }

    fn arith_inner(&mut self, op: Arith, dst: u8, a: Fetched, b: Fetched) -> bool {
        let (va, vb, de) = match self.two_operands(dst, &a, &b) {
            Ok(x) => x,
            Err(done) => return done,
        };
        let (x, y, op) = match op {
            Arith::SubR => (vb, va, Arith::Sub),
            Arith::DivR => (vb, va, Arith::Div),
            op => (va, vb, op),
        };
        let rc = self.rc();
        let mut pre = de;
        let r: Result<Exact, Value> = match op {
            Arith::Add | Arith::Sub => {
                let sub = op == Arith::Sub;
                match (x, y) {
                    (Value::Inf { sign: p }, Value::Inf { sign: q }) => {
                        if p != (q ^ sub) {
                            return self.invalid(dst);
                        }
                        Err(x)
                    }
                    (Value::Inf { .. }, _) => Err(x),
                    (_, Value::Inf { sign }) => Err(Value::Inf { sign: sign ^ sub }),
                    (Value::Zero { sign: p }, Value::Zero { sign: q }) => {
                        let q = q ^ sub;
                        Err(Value::Zero {
                            sign: if p == q { p } else { rc == Rounding::Down },
                        })
                    }
                    (Value::Zero { .. }, _) => {
                        Ok(exact_of(if sub { y.with_sign(!y.sign()) } else { y }))
                    }
                    (_, Value::Zero { .. }) => Ok(exact_of(x)),
                    _ => soft::add_exact(x, y, sub, rc),
                }
            }
            Arith::Mul => {
                let s = x.sign() ^ y.sign();
                match (x, y) {
                    (Value::Inf { .. }, Value::Zero { .. })
                    | (Value::Zero { .. }, Value::Inf { .. }) => return self.invalid(dst),
                    (Value::Inf { .. }, _) | (_, Value::Inf { .. }) => Err(Value::Inf { sign: s }),
                    (Value::Zero { .. }, _) | (_, Value::Zero { .. }) => {
                        Err(Value::Zero { sign: s })
                    }
                    _ => Ok(soft::mul_exact(x, y)),
                }
            }
            _ => {
                let s = x.sign() ^ y.sign();
                match (x, y) {
                    (Value::Inf { .. }, Value::Inf { .. })
                    | (Value::Zero { .. }, Value::Zero { .. }) => return self.invalid(dst),
                    (Value::Inf { .. }, _) => Err(Value::Inf { sign: s }),
                    (_, Value::Inf { .. }) => Err(Value::Zero { sign: s }),
                    (Value::Zero { .. }, _) => Err(Value::Zero { sign: s }),
                    (_, Value::Zero { .. }) => {
                        pre = flag::ZE;
                        Err(Value::Inf { sign: s })
                    }
                    _ => Ok(soft::div_exact(x, y)),
                }
            }
        };
        self.write_rounded(dst, r, pre)
    }

    /// FSQRT.
    pub fn fsqrt(&mut self) {
        self.unary(|_, v, de| match v {
            Value::Zero { .. } | Value::Inf { sign: false } => Ok((Err(v), de)),
            Value::Inf { .. } | Value::Finite { sign: true, .. } => Err(()),
            _ => Ok((Ok(soft::sqrt_exact(v)), de)),
        });
    }

    /// Common shape of one-operand ST(0) operations that round under PC: underflow, unsupported
    /// and NaN handling, then `f` gives the exact result and pre-computation flags, or `Err` for
    /// an invalid operation.
    #[allow(clippy::type_complexity)]
    fn unary(
        &mut self,
        f: impl FnOnce(&Self, Value, u8) -> Result<(Result<Exact, Value>, u8), ()>,
    ) {
        let a = self.fetch(Operand::St(0));
        let Fetched::Ok(v, den, class) = a else {
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return;
        };
        self.set_c1(false);
        if class == F80Class::Unsupported {
            self.invalid(0);
            return;
        }
        if v.is_nan() {
            if v.is_snan() && !self.raise(flag::IE) {
                return;
            }
            self.set_st(0, F80Bits::from_value(v.quieted()));
            return;
        }
        let de = if den { flag::DE } else { 0 };
        match f(self, v, de) {
            Err(()) => {
                self.invalid(0);
            }
            Ok((r, pre)) => {
                self.write_rounded(0, r, pre);
            }
        }
    }

    /// FCHS.
    pub fn fchs(&mut self) {
        self.sign_op(|s| !s);
    }

    /// FABS.
    pub fn fabs(&mut self) {
        self.sign_op(|_| false);
    }

    fn sign_op(&mut self, f: impl Fn(bool) -> bool) {
        if self.is_empty(0) {
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return;
        }
        self.set_c1(false);
        let mut r = self.st(0);
        r.se = (r.se & 0x7fff) | if f(r.se & 0x8000 != 0) { 0x8000 } else { 0 };
        self.set_st(0, r);
    }

    /// FCMOVcc ST(0), ST(i): the CPU evaluates the condition from RFLAGS. An empty ST(0) or
    /// ST(i) is a stack underflow whether or not the condition holds.
    pub fn fcmov(&mut self, i: u8, cond: bool) {
        if self.is_empty(0) || self.is_empty(i) {
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return;
        }
        // C1 is left as it was (measured on an Intel host).
        if cond {
            let v = self.st(i);
            self.set_st(0, v);
        }
    }

    /// FXCH ST(i).
    pub fn fxch(&mut self, i: u8) {
        let (e0, ei) = (self.is_empty(0), self.is_empty(i));
        if e0 || ei {
            if !self.underflow() {
                return;
            }
            let a = if e0 { F80Bits::INDEFINITE } else { self.st(0) };
            let b = if ei { F80Bits::INDEFINITE } else { self.st(i) };
            self.set_st(0, b);
            self.set_st(i, a);
            return;
        }
        self.set_c1(false);
        let a = self.st(0);
        let b = self.st(i);
        self.set_st(0, b);
        self.set_st(i, a);
    }

    /// FRNDINT: rounds ST(0) to an integral value under RC (PC does not apply).
    pub fn frndint(&mut self) {
        self.unary_exact(|s, v| {
            let (r, inexact) = soft::round_to_integral(v, s.rc());
            let up = inexact
                && match soft::compare(r, v) {
                    std::cmp::Ordering::Greater => !v.sign(),
                    std::cmp::Ordering::Less => v.sign(),
                    _ => false,
                };
            (
                r,
                if inexact { flag::PE } else { 0 } | if up { flag::ROUNDED_UP } else { 0 },
            )
        });
    }

    /// One-operand operations whose result is exact or rounded by `f` itself (no PC).
    fn unary_exact(&mut self, f: impl FnOnce(&Self, Value) -> (Value, u8)) {
        let Fetched::Ok(v, den, class) = self.fetch(Operand::St(0)) else {
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return;
        };
        self.set_c1(false);
        if class == F80Class::Unsupported {
            self.invalid(0);
            return;
        }
        if v.is_nan() {
            if v.is_snan() && !self.raise(flag::IE) {
                return;
            }
            self.set_st(0, F80Bits::from_value(v.quieted()));
            return;
        }
        if den && !self.raise(flag::DE) {
            return;
        }
        let (r, fl) = f(self, v);
        self.set_c1(fl & flag::ROUNDED_UP != 0);
        self.raise(fl & 0x3f);
        self.set_st(0, F80Bits::from_value(r));
    }

    // ---- compares ----

    /// FCOM/FCOMP/FCOMPP/FUCOM*/FICOM*/FTST: sets C3, C2, C0 (C1 cleared), popping `pops`
    /// times. An unmasked invalid operation still sets the condition codes ("unordered")
    /// but suppresses the pops.
    pub fn fcom(&mut self, kind: CompareKind, src: Operand, pops: u8) {
        let ((c3, c2, c0), raised) = self.compare(kind, src);
        self.set_cc(c3, c2, false, c0);
        if self.masked(raised) {
            for _ in 0..pops {
                self.pop();
            }
        }
    }

    /// FTST: compares ST(0) with +0.0.
    pub fn ftst(&mut self) {
        self.fcom(CompareKind::Ordered, Operand::Mem(MemOperand::F32(0)), 0);
    }

    /// FCOMI/FCOMIP/FUCOMI/FUCOMIP: returns RFLAGS' ZF|PF|CF as they must be set (OF, SF
    /// and AF cleared by the caller). As for FCOM, an unmasked invalid operation still sets
    /// them but suppresses the pop.
    pub fn fcomi(&mut self, kind: CompareKind, i: u8, pop: bool) -> u64 {
        // C1 is left as it was unless the stack underflows (measured on an Intel host: the
        // manual's "C1 set to 0" does not hold for FCOMI/FUCOMI).
        let c1 = self.fsw & sw::C1;
        let underflow = self.is_empty(0) || self.is_empty(i);
        let ((c3, c2, c0), raised) = self.compare(kind, Operand::St(i));
        if !underflow {
            self.fsw = (self.fsw & !sw::C1) | c1;
        }
        if pop && self.masked(raised) {
            self.pop();
        }
        (c3 as u64) << 6 | (c2 as u64) << 2 | c0 as u64
    }

    /// Returns (C3, C2, C0) and the exceptions raised.
    fn compare(&mut self, kind: CompareKind, src: Operand) -> ((bool, bool, bool), u8) {
        let a = self.fetch(Operand::St(0));
        let b = self.fetch(src);
        let (va, da, ca, vb, db, cb) = match (a, b) {
            (Fetched::Ok(va, da, ca), Fetched::Ok(vb, db, cb)) => (va, da, ca, vb, db, cb),
            _ => {
                // The condition codes say "unordered" even when the exception is unmasked.
                self.underflow();
                return ((true, true, true), flag::IE);
            }
        };
        self.set_c1(false);
        let unsupported = ca == F80Class::Unsupported || cb == F80Class::Unsupported;
        if unsupported || va.is_nan() || vb.is_nan() {
            let ie = unsupported || va.is_snan() || vb.is_snan() || kind == CompareKind::Ordered;
            if ie {
                self.raise(flag::IE);
            }
            return ((true, true, true), if ie { flag::IE } else { 0 });
        }
        let de = if da || db { flag::DE } else { 0 };
        self.raise(de);
        let cc = match soft::compare(va, vb) {
            std::cmp::Ordering::Greater => (false, false, false),
            std::cmp::Ordering::Less => (false, false, true),
            std::cmp::Ordering::Equal => (true, false, false),
        };
        (cc, de)
    }

    /// FXAM: classifies ST(0) into C3, C2, C0 and puts its sign in C1.
    pub fn fxam(&mut self) {
        let r = self.st(0);
        let sign = r.se & 0x8000 != 0;
        if self.is_empty(0) {
            self.set_cc(true, false, sign, true);
            return;
        }
        let e = r.se & 0x7fff;
        let int = r.m >> 63 != 0;
        let (c3, c2, c0) = if e == 0x7fff {
            if !int {
                (false, false, false)
            } else if r.m << 1 == 0 {
                (false, true, true)
            } else {
                (false, false, true)
            }
        } else if e == 0 {
            if r.m == 0 {
                (true, false, false)
            } else {
                (true, true, false)
            }
        } else if !int {
            (false, false, false)
        } else {
            (false, true, false)
        };
        self.set_cc(c3, c2, sign, c0);
    }

    // ---- scale, extract, remainder ----

    /// FSCALE: ST(0) × 2^trunc(ST(1)).
    pub fn fscale(&mut self) {
        let a = self.fetch(Operand::St(0));
        let b = self.fetch(Operand::St(1));
        let (va, vb, de) = match self.two_operands(0, &a, &b) {
            Ok(x) => x,
            Err(_) => return,
        };
        let r: Result<Exact, Value> = match (va, vb) {
            (Value::Zero { .. }, Value::Inf { sign: false })
            | (Value::Inf { .. }, Value::Inf { sign: true }) => {
                self.invalid(0);
                return;
            }
            (Value::Zero { .. } | Value::Inf { .. }, _) => Err(va),
            (Value::Finite { sign, .. }, Value::Inf { sign: s }) => Err(if s {
                Value::Zero { sign }
            } else {
                Value::Inf { sign }
            }),
            // Scaling by zero returns the operand as it is (a denormal raises no UE).
            (Value::Finite { .. }, Value::Zero { .. }) => Err(va),
            (Value::Finite { sign, exp, sig }, Value::Finite { .. }) => {
                let n = match soft::to_int(vb, Rounding::Zero, -(1 << 40), 1 << 40) {
                    Some((n, _)) => n,
                    None => {
                        if vb.sign() {
                            -(1 << 40)
                        } else {
                            1 << 40
                        }
                    }
                } as i64;
                let n = n.clamp(-100_000, 100_000) as i32;
                Ok(Exact {
                    sign,
                    sig: sig as u128,
                    scale: exp - 63 + n,
                    sticky: false,
                })
            }
            _ => unreachable!("NaNs handled by two_operands"),
        };
        // FSCALE rounds to the destination under RC with full 64-bit precision.
        if let Ok(x) = r {
            if de != 0 && !self.raise(de) {
                return;
            }
            let (v, f) = self.round_x87(x, F80);
            self.set_c1(f & flag::ROUNDED_UP != 0);
            self.raise(f);
            self.set_st(0, F80Bits::from_value(v));
        } else {
            self.write_rounded(0, r, de);
        }
    }

    /// FXTRACT: ST(0) = significand, then pushes... (hardware order: ST(1) = exponent,
    /// ST(0) = significand).
    pub fn fxtract(&mut self) {
        let Fetched::Ok(v, den, class) = self.fetch(Operand::St(0)) else {
            // Underflow: both results are the indefinite, with C1 = 0 even when the push
            // finds the stack full (measured on an Intel host).
            if self.underflow() {
                self.set_st(0, F80Bits::INDEFINITE);
                self.set_top(self.top().wrapping_sub(1));
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return;
        };
        self.set_c1(false);
        if !self.is_empty(7) {
            // Stack overflow: ST(0) and the pushed value both become the indefinite.
            self.fsw |= sw::SF;
            self.set_c1(true);
            if self.raise(flag::IE) {
                self.set_st(0, F80Bits::INDEFINITE);
                self.set_top(self.top().wrapping_sub(1));
                self.set_st(0, F80Bits::INDEFINITE);
            }
            return;
        }
        let (e, s) = match v {
            _ if class == F80Class::Unsupported => {
                if !self.raise(flag::IE) {
                    return;
                }
                (F80Bits::INDEFINITE, F80Bits::INDEFINITE)
            }
            Value::NaN { .. } => {
                if v.is_snan() && !self.raise(flag::IE) {
                    return;
                }
                let q = F80Bits::from_value(v.quieted());
                (q, q)
            }
            Value::Zero { sign } => {
                if !self.raise(flag::ZE) {
                    return;
                }
                (
                    F80Bits::from_value(Value::Inf { sign: true }),
                    F80Bits::from_value(Value::Zero { sign }),
                )
            }
            Value::Inf { sign } => (
                F80Bits::from_value(Value::Inf { sign: false }),
                F80Bits::from_value(Value::Inf { sign }),
            ),
            Value::Finite { sign, exp, sig } => {
                if den && !self.raise(flag::DE) {
                    return;
                }
                let ev = int_value(exp as i64);
                (
                    F80Bits::from_value(ev),
                    F80Bits::from_value(Value::Finite { sign, exp: 0, sig }),
                )
            }
        };
        self.set_st(0, e);
        self.push(s);
    }

    /// FPREM (`ieee = false`, truncating quotient) and FPREM1 (`ieee = true`, nearest):
    /// partial remainder of ST(0) by ST(1); C2 set when incomplete, C0/C3/C1 = quotient
    /// bits 2/1/0.
    pub fn fprem(&mut self, ieee: bool) {
        // C2 ("incomplete") is only left set by a partial reduction: a stack underflow, a
        // NaN operand or an exception that stops the instruction clears it (measured on an
        // Intel host).
        self.fsw &= !sw::C2;
        let a = self.fetch(Operand::St(0));
        let b = self.fetch(Operand::St(1));
        let (va, vb, de) = match self.two_operands(0, &a, &b) {
            Ok(x) => x,
            Err(_) => return,
        };
        match (va, vb) {
            (Value::Inf { .. }, _) | (_, Value::Zero { .. }) => {
                self.invalid(0);
                return;
            }
            (Value::Zero { .. }, _) | (_, Value::Inf { .. }) => {
                if de != 0 && !self.raise(de) {
                    return;
                }
                // ST(0) is written back re-encoded (a pseudo-denormal becomes normal, a
                // denormal stays one and raises no UE).
                if let Value::Finite { .. } = va {
                    self.set_st(0, F80Bits::from_value(va));
                }
                self.set_cc(false, false, false, false);
                return;
            }
            _ => {}
        }
        if de != 0 && !self.raise(de) {
            return;
        }
        let (
            Value::Finite {
                sign: sa,
                exp: ea,
                sig: ma,
            },
            Value::Finite {
                exp: eb, sig: mb, ..
            },
        ) = (va, vb)
        else {
            unreachable!("finite operands checked above")
        };
        let d = ea - eb;
        if d >= 64 {
            // Partial remainder: reduce by b × 2^(d - n) with n in 32..=63, chosen so that
            // d - n is a multiple of 32.
            let n = 32 + (d - 32) % 32;
            let (r, _) = rem_int(ma, mb, n as u32, false);
            let v = self.rem_value(sa, r as u128, eb + (d - n));
            self.set_st(0, F80Bits::from_value(v));
            self.fsw &= !sw::CC;
            self.fsw |= sw::C2;
            return;
        }
        let (r, q, neg) = if d < 0 {
            // |a| < |b|: the quotient is 0 (ST(0) unchanged), or 1 for FPREM1 when
            // |a| > |b|/2, giving a - b exactly.
            if ieee && d == -1 && ma > mb {
                ((2 * mb as u128) - ma as u128, 1u64, true)
            } else {
                // The operand is written back normalised (a pseudo-denormal becomes normal;
                // a denormal raises UE when unmasked and is bias-adjusted).
                let x = exact_of(va);
                let v = self.rem_value(sa, x.sig, x.scale + 63);
                self.set_st(0, F80Bits::from_value(v));
                self.set_cc(false, false, false, false);
                return;
            }
        } else {
            let (r, q) = rem_int(ma, mb, d as u32, ieee);
            (r.unsigned_abs(), q, r < 0)
        };
        let scale_exp = if d < 0 { eb - 1 } else { eb };
        let v = self.rem_value(sa ^ neg, r, scale_exp);
        let v = if let Value::Zero { .. } = v {
            Value::Zero { sign: sa }
        } else {
            v
        };
        self.set_st(0, F80Bits::from_value(v));
        self.set_cc(q & 2 != 0, false, q & 1 != 0, q & 4 != 0);
    }
}

impl X87State {
    /// A remainder `r × 2^(e - 63)` as a register value: exact, but a tiny one raises UE
    /// when unmasked (and is bias-adjusted), as hardware does.
    fn rem_value(&mut self, sign: bool, r: u128, e: i32) -> Value {
        if r == 0 {
            return Value::Zero { sign };
        }
        let x = Exact {
            sign,
            sig: r,
            scale: e - 63,
            sticky: false,
        };
        let (v, f) = self.round_x87(x, F80);
        self.raise(f & 0x3f);
        v
    }
}

/// The remainder of `ma × 2^d` by `mb` (both 64-bit significands), with the low quotient
/// bits; `ieee` rounds the quotient to nearest-even.
fn rem_int(ma: u64, mb: u64, d: u32, ieee: bool) -> (i128, u64) {
    let mut r = ma as u128 % mb as u128;
    let mut q: u64 = (ma as u128 / mb as u128) as u64;
    for _ in 0..d {
        r <<= 1;
        q <<= 1;
        if r >= mb as u128 {
            r -= mb as u128;
            q |= 1;
        }
    }
    let mut r = r as i128;
    if ieee {
        let twice = r * 2;
        if twice > mb as i128 || (twice == mb as i128 && q & 1 != 0) {
            r -= mb as i128;
            q = q.wrapping_add(1);
        }
    }
    (r, q)
}

/// x87's choice between two NaN operands: a QNaN over an SNaN, otherwise the larger
/// significand.
pub(crate) fn pick_nan(a: Value, b: Value) -> Value {
    match (a, b) {
        (Value::NaN { frac: fa, .. }, Value::NaN { frac: fb, .. }) => {
            let (qa, qb) = (fa & soft::QUIET != 0, fb & soft::QUIET != 0);
            if qa != qb {
                return if qa { a } else { b };
            }
            let (ma, mb) = (fa | soft::QUIET, fb | soft::QUIET);
            if ma > mb {
                a
            } else if mb > ma {
                b
            } else if !a.sign() {
                a
            } else {
                b
            }
        }
        (Value::NaN { .. }, _) => a,
        _ => b,
    }
}

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

/// True when the integer `i`, the rounding of `v`, has a larger magnitude than `v` (C1).
fn int_rounded_up(i: i128, v: Value) -> bool {
    let iv = int_value(i as i64).with_sign(false);
    soft::compare(iv, v.with_sign(false)) == std::cmp::Ordering::Greater
}

/// An integer as an (exact) extended value.
fn int_value(i: i64) -> Value {
    match soft::from_int(i as i128) {
        None => Value::Zero { sign: false },
        Some(x) => {
            soft::round(
                x,
                F80,
                RoundCtl {
                    rc: Rounding::Nearest,
                    ue_masked: true,
                    oe_masked: true,
                    ftz: false,
                },
            )
            .0
        }
    }
}

/// A packed BCD operand (FBLD): 18 digits, sign in bit 79. Invalid digits are taken at their
/// binary weight, as the result is undefined.
fn bcd_value(b: [u8; 10]) -> Value {
    let mut n: i128 = 0;
    for i in (0..9).rev() {
        n = n * 100 + ((b[i] >> 4) as i128) * 10 + (b[i] & 15) as i128;
    }
    let sign = b[9] & 0x80 != 0;
    match soft::from_int(n) {
        None => Value::Zero { sign },
        Some(x) => {
            soft::round(
                Exact { sign, ..x },
                F80,
                RoundCtl {
                    rc: Rounding::Nearest,
                    ue_masked: true,
                    oe_masked: true,
                    ftz: false,
                },
            )
            .0
        }
    }
}
