//! The F and D extensions as the hart sees them: decoding, NaN-boxing, `fcsr`, `mstatus.FS`
//! and FP loads and stores. The arithmetic itself is in [`crate::fpu`].

use crate::decode::{fp_op, illegal_op, int_rd, Kind, Op};
use crate::execute::{Flow, HartExit};
use crate::fpu::{self, Format, IntKind, Rounding};
use crate::hart::{Hart, Trap};
use crate::mmu::{self, MemStop, PAGE_SIZE};
use crate::virt::Bus;

const DOUBLE: u8 = 1 << 3;
const NEGATE_PRODUCT: i32 = 1 << 5;
const NEGATE_ADDEND: i32 = 1 << 6;
const BOX: u64 = 0xffff_ffff_0000_0000;

/// Decodes LOAD-FP, STORE-FP, the fused multiply-adds and OP-FP.
pub(crate) fn decode(raw: u32) -> Op {
    let opcode = raw & 0x7f;
    let funct3 = ((raw >> 12) & 7) as u8;
    let rd = ((raw >> 7) & 31) as u8;
    let rs1 = ((raw >> 15) & 31) as u8;
    let rs2 = ((raw >> 20) & 31) as u8;
    let bad = illegal_op(raw);
    match opcode {
        0x07 | 0x27 => {
            let double = match funct3 {
                2 => false,
                3 => true,
                _ => return bad,
            };
            let (kind, imm, rd) = if opcode == 0x07 {
                let kind = if double { Kind::Fld } else { Kind::Flw };
                (kind, (raw as i32) >> 20, rd)
            } else {
                let kind = if double { Kind::Fsd } else { Kind::Fsw };
                (kind, (((raw as i32) >> 25) << 5) | i32::from(rd), 0)
            };
            fp_op(kind, rd, rs1, rs2, imm, 0)
        }
        0x43 | 0x47 | 0x4b | 0x4f => {
            let Some(format) = format_bit((raw >> 25) & 3) else {
                return bad;
            };
            if !valid_rm(funct3) {
                return bad;
            }
            let negate = match opcode {
                0x43 => 0,
                0x47 => NEGATE_ADDEND,
                0x4b => NEGATE_PRODUCT,
                _ => NEGATE_PRODUCT | NEGATE_ADDEND,
            };
            let rs3 = (raw >> 27) as i32;
            fp_op(Kind::Fma, rd, rs1, rs2, rs3 | negate, funct3 | format)
        }
        0x53 => decode_op_fp(raw, rd, rs1, rs2, funct3),
        _ => bad,
    }
}

fn format_bit(fmt: u32) -> Option<u8> {
    match fmt {
        0 => Some(0),
        1 => Some(DOUBLE),
        _ => None,
    }
}

/// Rounding-mode fields 5 and 6 are reserved; 7 (dynamic) is checked against `frm` later.
fn valid_rm(rm: u8) -> bool {
    rm != 5 && rm != 6
}

fn decode_op_fp(raw: u32, rd: u8, rs1: u8, rs2: u8, funct3: u8) -> Op {
    let bad = illegal_op(raw);
    let funct7 = raw >> 25;
    let Some(format) = format_bit(funct7 & 3) else {
        return bad;
    };
    let rounded = |kind: Kind| {
        if valid_rm(funct3) {
            fp_op(kind, rd, rs1, rs2, 0, funct3 | format)
        } else {
            bad
        }
    };
    let plain = |kind: Kind, rd: u8| fp_op(kind, rd, rs1, rs2, 0, format);
    match funct7 >> 2 {
        0x00 => rounded(Kind::Fadd),
        0x01 => rounded(Kind::Fsub),
        0x02 => rounded(Kind::Fmul),
        0x03 => rounded(Kind::Fdiv),
        0x0b if rs2 == 0 => rounded(Kind::Fsqrt),
        0x04 => match funct3 {
            0 => plain(Kind::Fsgnj, rd),
            1 => plain(Kind::Fsgnjn, rd),
            2 => plain(Kind::Fsgnjx, rd),
            _ => bad,
        },
        0x05 => match funct3 {
            0 => plain(Kind::Fmin, rd),
            1 => plain(Kind::Fmax, rd),
            _ => bad,
        },
        // fcvt.s.d (fmt S, rs2 = 1) and fcvt.d.s (fmt D, rs2 = 0).
        0x08 if format == 0 && rs2 == 1 => rounded(Kind::FcvtSD),
        0x08 if format == DOUBLE && rs2 == 0 => rounded(Kind::FcvtDS),
        0x14 => match funct3 {
            0 => plain(Kind::Fle, int_rd(raw)),
            1 => plain(Kind::Flt, int_rd(raw)),
            2 => plain(Kind::Feq, int_rd(raw)),
            _ => bad,
        },
        0x18 if rs2 < 4 && valid_rm(funct3) => fp_op(
            Kind::FcvtToInt,
            int_rd(raw),
            rs1,
            0,
            i32::from(rs2),
            funct3 | format,
        ),
        0x1a if rs2 < 4 && valid_rm(funct3) => fp_op(
            Kind::FcvtFromInt,
            rd,
            rs1,
            0,
            i32::from(rs2),
            funct3 | format,
        ),
        0x1c if rs2 == 0 => match (funct3, format) {
            (0, 0) => plain(Kind::FmvXW, int_rd(raw)),
            (0, _) => plain(Kind::FmvXD, int_rd(raw)),
            (1, _) => plain(Kind::Fclass, int_rd(raw)),
            _ => bad,
        },
        0x1e if rs2 == 0 && funct3 == 0 => plain(
            if format == 0 {
                Kind::FmvWX
            } else {
                Kind::FmvDX
            },
            rd,
        ),
        _ => bad,
    }
}

fn int_kind(code: i32) -> IntKind {
    match code {
        0 => IntKind::I32,
        1 => IntKind::U32,
        2 => IntKind::I64,
        _ => IntKind::U64,
    }
}

impl Hart {
    /// An FP operand of `format`: singles must be NaN-boxed, else they read as the
    /// canonical NaN.
    #[inline]
    fn fp_operand(&self, register: u8, format: Format) -> u64 {
        let value = self.f[usize::from(register & 31)];
        match format {
            Format::Double => value,
            Format::Single if value & BOX == BOX => value & 0xffff_ffff,
            Format::Single => fpu::CANONICAL_NAN_SINGLE,
        }
    }

    #[inline]
    fn set_fp(&mut self, register: u8, format: Format, value: u64) {
        self.f[usize::from(register & 31)] = match format {
            Format::Double => value,
            Format::Single => BOX | value,
        };
        self.fp_dirty();
    }

    /// Executes an F/D instruction.
    pub(crate) fn execute_fp(&mut self, bus: &mut Bus, op: &Op, pc: u64) -> Result<Flow, MemStop> {
        if !self.fp_enabled() {
            return Err(self.illegal_at(bus, pc, op.len));
        }
        let format = if op.aux & DOUBLE != 0 {
            Format::Double
        } else {
            Format::Single
        };
        let rm_field = op.aux & 7;
        let rm_bits = if rm_field == 7 { self.frm } else { rm_field };
        let rounding = Rounding::from_bits(rm_bits);
        let uses_rounding = matches!(
            op.kind,
            Kind::Fma
                | Kind::Fadd
                | Kind::Fsub
                | Kind::Fmul
                | Kind::Fdiv
                | Kind::Fsqrt
                | Kind::FcvtSD
                | Kind::FcvtDS
                | Kind::FcvtToInt
                | Kind::FcvtFromInt
        );
        let rm = match rounding {
            Some(rm) => rm,
            None if uses_rounding => return Err(self.illegal_at(bus, pc, op.len)),
            None => Rounding::NearestEven,
        };
        let mut flags = 0u8;
        let a = self.fp_operand(op.rs1, format);
        let b = self.fp_operand(op.rs2, format);
        match op.kind {
            Kind::Flw | Kind::Fld => {
                let size = if op.kind == Kind::Fld { 8 } else { 4 };
                let address = self.x[usize::from(op.rs1 & 63)].wrapping_add(op.imm as i64 as u64);
                let (value, device) = match self.load_value(bus, address, size) {
                    Ok(value) => (value, false),
                    Err(MemStop::Device(value)) => (value, true),
                    Err(stop) => return Err(stop),
                };
                let load_format = if size == 8 {
                    Format::Double
                } else {
                    Format::Single
                };
                self.set_fp(op.rd, load_format, value);
                return Ok(if device {
                    Flow::Exit(HartExit::Device)
                } else {
                    Flow::Next
                });
            }
            Kind::Fsw | Kind::Fsd => {
                let size = if op.kind == Kind::Fsd { 8 } else { 4 };
                let address = self.x[usize::from(op.rs1 & 63)].wrapping_add(op.imm as i64 as u64);
                let value = self.f[usize::from(op.rs2 & 31)];
                return match self.store_slow(bus, address, size, value) {
                    Ok(()) => Ok(Flow::Next),
                    Err(MemStop::Device(_)) => Ok(Flow::Exit(HartExit::Device)),
                    Err(stop) => Err(stop),
                };
            }
            Kind::Fma => {
                let c = self.fp_operand((op.imm & 31) as u8, format);
                let result = fpu::fused_multiply_add(
                    format,
                    a,
                    b,
                    c,
                    op.imm & NEGATE_PRODUCT != 0,
                    op.imm & NEGATE_ADDEND != 0,
                    rm,
                    &mut flags,
                );
                self.set_fp(op.rd, format, result);
            }
            Kind::Fadd => {
                let result = fpu::add(format, a, b, rm, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::Fsub => {
                let result = fpu::sub(format, a, b, rm, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::Fmul => {
                let result = fpu::mul(format, a, b, rm, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::Fdiv => {
                let result = fpu::div(format, a, b, rm, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::Fsqrt => {
                let result = fpu::sqrt(format, a, rm, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::Fsgnj | Kind::Fsgnjn | Kind::Fsgnjx => {
                let sign = match format {
                    Format::Single => 1u64 << 31,
                    Format::Double => 1u64 << 63,
                };
                let new_sign = match op.kind {
                    Kind::Fsgnj => b & sign,
                    Kind::Fsgnjn => !b & sign,
                    _ => (a ^ b) & sign,
                };
                self.set_fp(op.rd, format, a & !sign | new_sign);
            }
            Kind::Fmin => {
                let result = fpu::min(format, a, b, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::Fmax => {
                let result = fpu::max(format, a, b, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::FcvtSD => {
                let source = self.fp_operand(op.rs1, Format::Double);
                let result = fpu::double_to_single(source, rm, &mut flags);
                self.set_fp(op.rd, Format::Single, result);
            }
            Kind::FcvtDS => {
                let source = self.fp_operand(op.rs1, Format::Single);
                let result = fpu::single_to_double(source, &mut flags);
                self.set_fp(op.rd, Format::Double, result);
            }
            Kind::Feq | Kind::Flt | Kind::Fle => {
                let result = match op.kind {
                    Kind::Feq => fpu::eq(format, a, b, &mut flags),
                    Kind::Flt => fpu::lt(format, a, b, &mut flags),
                    _ => fpu::le(format, a, b, &mut flags),
                };
                self.x[usize::from(op.rd & 63)] = u64::from(result);
            }
            Kind::Fclass => self.x[usize::from(op.rd & 63)] = fpu::classify(format, a),
            Kind::FcvtToInt => {
                let result = fpu::to_int(format, a, int_kind(op.imm), rm, &mut flags);
                self.x[usize::from(op.rd & 63)] = result;
            }
            Kind::FcvtFromInt => {
                let value = self.x[usize::from(op.rs1 & 63)];
                let result = fpu::from_int(format, value, int_kind(op.imm), rm, &mut flags);
                self.set_fp(op.rd, format, result);
            }
            Kind::FmvXW => {
                let raw = self.f[usize::from(op.rs1 & 31)];
                self.x[usize::from(op.rd & 63)] = raw as u32 as i32 as i64 as u64;
            }
            Kind::FmvXD => self.x[usize::from(op.rd & 63)] = self.f[usize::from(op.rs1 & 31)],
            Kind::FmvWX => {
                let value = self.x[usize::from(op.rs1 & 63)] & 0xffff_ffff;
                self.set_fp(op.rd, Format::Single, value);
            }
            Kind::FmvDX => {
                let value = self.x[usize::from(op.rs1 & 63)];
                self.set_fp(op.rd, Format::Double, value);
            }
            _ => return Err(MemStop::Trap(Trap::illegal(0))),
        }
        if flags != 0 {
            self.fflags |= flags;
            self.fp_dirty();
        }
        Ok(Flow::Next)
    }

    /// A data load through the TLB, for the cold paths.
    fn load_value(&mut self, bus: &mut Bus, address: u64, size: u64) -> Result<u64, MemStop> {
        let entry = self.tlb[self.data_set & 3].read[mmu::index(address)];
        if entry.tag == address & !(PAGE_SIZE - 1) && address & (PAGE_SIZE - 1) <= PAGE_SIZE - size
        {
            let host = address.wrapping_add(entry.addend);
            return Ok(bus.read_host(host, size));
        }
        self.load_slow(bus, address, size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fadd_d_decodes_format_and_rounding() {
        // fadd.d fa0, fa1, fa2, rtz  => funct7 0x01, rm 1
        let raw = 0x01 << 25 | 12 << 20 | 11 << 15 | 1 << 12 | 10 << 7 | 0x53;
        let op = decode(raw);
        assert_eq!(op.kind, Kind::Fadd);
        assert_eq!((op.rd, op.rs1, op.rs2, op.aux), (10, 11, 12, 1 | DOUBLE));
    }

    #[test]
    fn reserved_rounding_modes_and_formats_are_illegal() {
        let fadd_s = |rm: u32| 12 << 20 | 11 << 15 | rm << 12 | 10 << 7 | 0x53;
        assert_eq!(decode(fadd_s(5)).kind, Kind::Illegal);
        assert_eq!(decode(fadd_s(7)).kind, Kind::Fadd);
        // fmt = 2 (H) is not implemented
        assert_eq!(decode(0x02 << 25 | 0x53).kind, Kind::Illegal);
    }

    #[test]
    fn compare_results_go_to_integer_registers_with_x0_sunk() {
        // feq.d zero, fa0, fa1
        let raw = 0x51 << 25 | 11 << 20 | 10 << 15 | 2 << 12 | 0x53;
        let op = decode(raw);
        assert_eq!((op.kind, op.rd), (Kind::Feq, crate::decode::ZERO_SINK));
    }
}
