//! Decoding RV64GC instructions into the CPU's pre-decoded form.
//!
//! An [`Op`] is a fixed 12-byte record: the operation, its register operands and an
//! immediate, extracted once when a block is translated so the executor never looks at
//! instruction bits again. Compressed instructions are expanded first
//! ([`crate::compressed::expand`]) and decode to the same ops as their 32-bit forms.
//! Writes to `x0` are redirected to a sink register (index 32) here, so the executor
//! never tests `rd != 0`.

use crate::compressed;

/// The register index that absorbs writes to `x0`.
pub const ZERO_SINK: u8 = 32;

/// What an [`Op`] does. One variant per executor arm; dense so the executor's `match`
/// compiles to a jump table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Kind {
    Illegal,
    Lui,
    Auipc,
    Jal,
    Jalr,
    Beq,
    Bne,
    Blt,
    Bge,
    Bltu,
    Bgeu,
    Lb,
    Lh,
    Lw,
    Ld,
    Lbu,
    Lhu,
    Lwu,
    Sb,
    Sh,
    Sw,
    Sd,
    Addi,
    Slti,
    Sltiu,
    Xori,
    Ori,
    Andi,
    Slli,
    Srli,
    Srai,
    Add,
    Sub,
    Sll,
    Slt,
    Sltu,
    Xor,
    Srl,
    Sra,
    Or,
    And,
    Addiw,
    Slliw,
    Srliw,
    Sraiw,
    Addw,
    Subw,
    Sllw,
    Srlw,
    Sraw,
    Mul,
    Mulh,
    Mulhsu,
    Mulhu,
    Div,
    Divu,
    Rem,
    Remu,
    Mulw,
    Divw,
    Divuw,
    Remw,
    Remuw,
    Fence,
    // Everything below ends its block and runs through the cold system path.
    FenceI,
    Ecall,
    Ebreak,
    Mret,
    Sret,
    Wfi,
    SfenceVma,
    Csrrw,
    Csrrs,
    Csrrc,
    Csrrwi,
    Csrrsi,
    Csrrci,
    // Atomics: `aux` holds the AMO function, `imm` is 1 for doubleword.
    LrW,
    LrD,
    ScW,
    ScD,
    Amo,
    // Floating point: `aux` = rm | (double << 3); see `fp.rs` for `imm`.
    Flw,
    Fld,
    Fsw,
    Fsd,
    Fma,
    Fadd,
    Fsub,
    Fmul,
    Fdiv,
    Fsqrt,
    Fsgnj,
    Fsgnjn,
    Fsgnjx,
    Fmin,
    Fmax,
    FcvtSD,
    FcvtDS,
    Feq,
    Flt,
    Fle,
    Fclass,
    FcvtToInt,
    FcvtFromInt,
    FmvXW,
    FmvWX,
    FmvXD,
    FmvDX,
}

/// AMO functions (`funct5` of the A extension), stored in [`Op::aux`] for [`Kind::Amo`].
#[allow(missing_docs)]
pub mod amo {
    pub const ADD: u8 = 0x00;
    pub const SWAP: u8 = 0x01;
    pub const XOR: u8 = 0x04;
    pub const OR: u8 = 0x08;
    pub const AND: u8 = 0x0c;
    pub const MIN: u8 = 0x10;
    pub const MAX: u8 = 0x14;
    pub const MINU: u8 = 0x18;
    pub const MAXU: u8 = 0x1c;
}

/// One pre-decoded instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Op {
    /// The operation.
    pub kind: Kind,
    /// Destination register (32 for `x0`), or FP destination.
    pub rd: u8,
    /// First source register.
    pub rs1: u8,
    /// Second source register.
    pub rs2: u8,
    /// Sign-extended immediate, CSR number, raw bits for illegal instructions, or FP extras.
    pub imm: i32,
    /// Byte offset of this instruction from the start of its block.
    pub offset: u16,
    /// Instruction length in bytes (2 or 4).
    pub len: u8,
    /// Small extra operand: AMO function, FP rounding mode and format.
    pub aux: u8,
}

const _: () = assert!(std::mem::size_of::<Op>() == 12);

impl Op {
    /// Whether this op ends a block (control flow, system, or anything that can change
    /// translation or interrupt state).
    #[inline]
    pub fn ends_block(&self) -> bool {
        matches!(
            self.kind,
            Kind::Jal
                | Kind::Jalr
                | Kind::Beq
                | Kind::Bne
                | Kind::Blt
                | Kind::Bge
                | Kind::Bltu
                | Kind::Bgeu
                | Kind::Illegal
        ) || self.kind as u8 >= Kind::FenceI as u8 && (self.kind as u8) < Kind::LrW as u8
    }
}

fn rd_of(raw: u32) -> u8 {
    ((raw >> 7) & 31) as u8
}
fn rs1_of(raw: u32) -> u8 {
    ((raw >> 15) & 31) as u8
}
fn rs2_of(raw: u32) -> u8 {
    ((raw >> 20) & 31) as u8
}
fn imm_i(raw: u32) -> i32 {
    (raw as i32) >> 20
}
fn imm_s(raw: u32) -> i32 {
    (((raw as i32) >> 25) << 5) | ((raw >> 7) & 31) as i32
}
fn imm_b(raw: u32) -> i32 {
    let sign = ((raw as i32) >> 31) << 12;
    sign | (((raw >> 7) & 1) << 11) as i32
        | (((raw >> 25) & 0x3f) << 5) as i32
        | (((raw >> 8) & 0xf) << 1) as i32
}
fn imm_u(raw: u32) -> i32 {
    (raw & 0xffff_f000) as i32
}
fn imm_j(raw: u32) -> i32 {
    let sign = ((raw as i32) >> 31) << 20;
    sign | (raw & 0x000f_f000) as i32
        | (((raw >> 20) & 1) << 11) as i32
        | (((raw >> 21) & 0x3ff) << 1) as i32
}

/// Integer destination: writes to x0 go to the sink.
fn xd(raw: u32) -> u8 {
    match rd_of(raw) {
        0 => ZERO_SINK,
        r => r,
    }
}

/// Decodes one instruction. `bits` holds the instruction (a compressed one in its low 16
/// bits); the result's `offset` is left 0 for the caller to fill in.
pub fn decode(bits: u32) -> Op {
    if bits & 3 != 3 {
        let half = bits as u16;
        return match compressed::expand(half) {
            Some(expanded) => Op {
                len: 2,
                ..decode_full(expanded)
            },
            None => illegal(u32::from(half), 2),
        };
    }
    decode_full(bits)
}

fn illegal(raw: u32, len: u8) -> Op {
    Op {
        kind: Kind::Illegal,
        rd: 0,
        rs1: 0,
        rs2: 0,
        imm: raw as i32,
        offset: 0,
        len,
        aux: 0,
    }
}

fn op(kind: Kind, rd: u8, rs1: u8, rs2: u8, imm: i32) -> Op {
    Op {
        kind,
        rd,
        rs1,
        rs2,
        imm,
        offset: 0,
        len: 4,
        aux: 0,
    }
}

fn decode_full(raw: u32) -> Op {
    let opcode = raw & 0x7f;
    let funct3 = (raw >> 12) & 7;
    let funct7 = raw >> 25;
    let (rd, rs1, rs2) = (xd(raw), rs1_of(raw), rs2_of(raw));
    let bad = illegal(raw, 4);
    match opcode {
        0x37 => op(Kind::Lui, rd, 0, 0, imm_u(raw)),
        0x17 => op(Kind::Auipc, rd, 0, 0, imm_u(raw)),
        0x6f => op(Kind::Jal, rd, 0, 0, imm_j(raw)),
        0x67 if funct3 == 0 => op(Kind::Jalr, rd, rs1, 0, imm_i(raw)),
        0x63 => {
            let kind = match funct3 {
                0 => Kind::Beq,
                1 => Kind::Bne,
                4 => Kind::Blt,
                5 => Kind::Bge,
                6 => Kind::Bltu,
                7 => Kind::Bgeu,
                _ => return bad,
            };
            op(kind, 0, rs1, rs2, imm_b(raw))
        }
        0x03 => {
            let kind = match funct3 {
                0 => Kind::Lb,
                1 => Kind::Lh,
                2 => Kind::Lw,
                3 => Kind::Ld,
                4 => Kind::Lbu,
                5 => Kind::Lhu,
                6 => Kind::Lwu,
                _ => return bad,
            };
            op(kind, rd, rs1, 0, imm_i(raw))
        }
        0x23 => {
            let kind = match funct3 {
                0 => Kind::Sb,
                1 => Kind::Sh,
                2 => Kind::Sw,
                3 => Kind::Sd,
                _ => return bad,
            };
            op(kind, 0, rs1, rs2, imm_s(raw))
        }
        0x13 => {
            let imm = imm_i(raw);
            let shamt = (raw >> 20) & 0x3f;
            match funct3 {
                0 => op(Kind::Addi, rd, rs1, 0, imm),
                2 => op(Kind::Slti, rd, rs1, 0, imm),
                3 => op(Kind::Sltiu, rd, rs1, 0, imm),
                4 => op(Kind::Xori, rd, rs1, 0, imm),
                6 => op(Kind::Ori, rd, rs1, 0, imm),
                7 => op(Kind::Andi, rd, rs1, 0, imm),
                1 if raw >> 26 == 0 => op(Kind::Slli, rd, rs1, 0, shamt as i32),
                5 if raw >> 26 == 0 => op(Kind::Srli, rd, rs1, 0, shamt as i32),
                5 if raw >> 26 == 0x10 => op(Kind::Srai, rd, rs1, 0, shamt as i32),
                _ => bad,
            }
        }
        0x1b => {
            let shamt = ((raw >> 20) & 0x1f) as i32;
            match (funct3, funct7) {
                (0, _) => op(Kind::Addiw, rd, rs1, 0, imm_i(raw)),
                (1, 0) => op(Kind::Slliw, rd, rs1, 0, shamt),
                (5, 0) => op(Kind::Srliw, rd, rs1, 0, shamt),
                (5, 0x20) => op(Kind::Sraiw, rd, rs1, 0, shamt),
                _ => bad,
            }
        }
        0x33 => {
            let kind = match (funct7, funct3) {
                (0, 0) => Kind::Add,
                (0x20, 0) => Kind::Sub,
                (0, 1) => Kind::Sll,
                (0, 2) => Kind::Slt,
                (0, 3) => Kind::Sltu,
                (0, 4) => Kind::Xor,
                (0, 5) => Kind::Srl,
                (0x20, 5) => Kind::Sra,
                (0, 6) => Kind::Or,
                (0, 7) => Kind::And,
                (1, 0) => Kind::Mul,
                (1, 1) => Kind::Mulh,
                (1, 2) => Kind::Mulhsu,
                (1, 3) => Kind::Mulhu,
                (1, 4) => Kind::Div,
                (1, 5) => Kind::Divu,
                (1, 6) => Kind::Rem,
                (1, 7) => Kind::Remu,
                _ => return bad,
            };
            op(kind, rd, rs1, rs2, 0)
        }
        0x3b => {
            let kind = match (funct7, funct3) {
                (0, 0) => Kind::Addw,
                (0x20, 0) => Kind::Subw,
                (0, 1) => Kind::Sllw,
                (0, 5) => Kind::Srlw,
                (0x20, 5) => Kind::Sraw,
                (1, 0) => Kind::Mulw,
                (1, 4) => Kind::Divw,
                (1, 5) => Kind::Divuw,
                (1, 6) => Kind::Remw,
                (1, 7) => Kind::Remuw,
                _ => return bad,
            };
            op(kind, rd, rs1, rs2, 0)
        }
        0x0f => match funct3 {
            // FENCE (and its hints) orders memory; with one hart and no caches it is a no-op.
            0 => op(Kind::Fence, 0, 0, 0, 0),
            1 => op(Kind::FenceI, 0, 0, 0, 0),
            _ => bad,
        },
        0x73 => decode_system(raw, rd, rs1, rs2, funct3, funct7),
        0x2f => decode_atomic(raw, rd, rs1, rs2, funct3),
        0x07 | 0x27 | 0x43 | 0x47 | 0x4b | 0x4f | 0x53 => crate::fp::decode(raw),
        _ => bad,
    }
}

fn decode_system(raw: u32, rd: u8, rs1: u8, rs2: u8, funct3: u32, funct7: u32) -> Op {
    let csr = (raw >> 20) as i32;
    let bad = illegal(raw, 4);
    match funct3 {
        0 => {
            if rd_of(raw) != 0 {
                return bad;
            }
            match (funct7, rs2, rs1) {
                (0, 0, 0) => op(Kind::Ecall, 0, 0, 0, 0),
                (0, 1, 0) => op(Kind::Ebreak, 0, 0, 0, 0),
                (0x18, 2, 0) => op(Kind::Mret, 0, 0, 0, 0),
                (0x08, 2, 0) => op(Kind::Sret, 0, 0, 0, 0),
                (0x08, 5, 0) => op(Kind::Wfi, 0, 0, 0, 0),
                (0x09, _, _) => op(Kind::SfenceVma, 0, rs1, rs2, 0),
                _ => bad,
            }
        }
        1 => op(Kind::Csrrw, rd, rs1, 0, csr),
        2 => op(Kind::Csrrs, rd, rs1, 0, csr),
        3 => op(Kind::Csrrc, rd, rs1, 0, csr),
        5 => op(Kind::Csrrwi, rd, rs1, 0, csr),
        6 => op(Kind::Csrrsi, rd, rs1, 0, csr),
        7 => op(Kind::Csrrci, rd, rs1, 0, csr),
        _ => bad,
    }
}

fn decode_atomic(raw: u32, rd: u8, rs1: u8, rs2: u8, funct3: u32) -> Op {
    let double = match funct3 {
        2 => false,
        3 => true,
        _ => return illegal(raw, 4),
    };
    let funct5 = (raw >> 27) as u8;
    let size = i32::from(double);
    match funct5 {
        0x02 if rs2 == 0 => op(if double { Kind::LrD } else { Kind::LrW }, rd, rs1, 0, 0),
        0x03 => op(if double { Kind::ScD } else { Kind::ScW }, rd, rs1, rs2, 0),
        amo::ADD
        | amo::SWAP
        | amo::XOR
        | amo::OR
        | amo::AND
        | amo::MIN
        | amo::MAX
        | amo::MINU
        | amo::MAXU => Op {
            aux: funct5,
            ..op(Kind::Amo, rd, rs1, rs2, size)
        },
        _ => illegal(raw, 4),
    }
}

/// Builds an op for the FP decoder (which lives beside the FP executor).
pub(crate) fn fp_op(kind: Kind, rd: u8, rs1: u8, rs2: u8, imm: i32, aux: u8) -> Op {
    Op {
        aux,
        ..op(kind, rd, rs1, rs2, imm)
    }
}

/// An illegal-instruction op carrying the raw bits (for `mtval`/`stval`).
pub(crate) fn illegal_op(raw: u32) -> Op {
    illegal(raw, 4)
}

/// Integer destination register as the executor stores it.
pub(crate) fn int_rd(raw: u32) -> u8 {
    xd(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addi_decodes_operands_and_sign_extends_the_immediate() {
        // addi a0, a1, -1
        let op = decode(0xfff5_8513);
        assert_eq!(op.kind, Kind::Addi);
        assert_eq!((op.rd, op.rs1, op.imm, op.len), (10, 11, -1, 4));
    }

    #[test]
    fn writes_to_x0_go_to_the_sink_register() {
        // addi zero, zero, 0 (nop)
        assert_eq!(decode(0x0000_0013).rd, ZERO_SINK);
    }

    #[test]
    fn branch_and_jump_immediates_are_reassembled() {
        // beq a0, a1, -4  => 0xfeb50ee3
        let op = decode(0xfeb5_0ee3);
        assert_eq!((op.kind, op.imm), (Kind::Beq, -4));
        // jal ra, 2048 => 0x001000ef? encode: imm[11]=1 at bit 20
        let op = decode(0x0010_00ef);
        assert_eq!((op.kind, op.rd, op.imm), (Kind::Jal, 1, 2048));
        // sd ra, -8(sp) => 0xfe113c23
        let op = decode(0xfe11_3c23);
        assert_eq!((op.kind, op.rs1, op.rs2, op.imm), (Kind::Sd, 2, 1, -8));
    }

    #[test]
    fn reserved_encodings_are_illegal() {
        assert_eq!(decode(0xffff_ffff).kind, Kind::Illegal);
        // slli with shamt bit 6 set on funct6 position (RV64 allows 6 bits, funct6 must be 0)
        assert_eq!(decode(0x0800_1013 | (1 << 30)).kind, Kind::Illegal);
        // lr.w with rs2 != 0
        assert_eq!(decode(0x1015_252f).kind, Kind::Illegal);
        // ecall with rd != 0
        assert_eq!(decode(0x0000_00f3).kind, Kind::Illegal);
    }

    #[test]
    fn block_enders_are_the_control_and_system_ops() {
        assert!(decode(0x0000_0073).ends_block()); // ecall
        assert!(decode(0x1050_0073).ends_block()); // wfi
        assert!(!decode(0xfff5_8513).ends_block()); // addi
        assert!(!decode(0x0000_000f).ends_block()); // fence
    }
}
