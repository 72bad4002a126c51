//! RVC expansion: owns the mapping of every 16-bit compressed (C extension)
//! encoding of RV64GC onto the 32-bit base instruction it stands for, and the
//! decision of which 16-bit encodings are illegal or reserved.
//!
//! Covered: all RV64C instructions including the D-extension compressed
//! loads/stores (C.FLD, C.FSD, C.FLDSP, C.FSDSP). C.FLW/C.FSW/C.FLWSP/C.FSWSP
//! do not exist on RV64 (their slots are C.LD/C.SD/C.LDSP/C.SDSP), and the
//! Zc* extensions (Zcb, Zcmp, Zcmop, ...) are not implemented, so their
//! encodings are treated as reserved. HINT encodings are legal and expand to
//! the equivalent no-effect 32-bit instruction.

const OP_LOAD: u32 = 0x03;
const OP_LOAD_FP: u32 = 0x07;
const OP_IMM: u32 = 0x13;
const OP_IMM_32: u32 = 0x1b;
const OP_STORE: u32 = 0x23;
const OP_STORE_FP: u32 = 0x27;
const OP_OP: u32 = 0x33;
const OP_LUI: u32 = 0x37;
const OP_OP_32: u32 = 0x3b;
const OP_BRANCH: u32 = 0x63;
const OP_JALR: u32 = 0x67;
const OP_JAL: u32 = 0x6f;

/// The 32-bit EBREAK instruction.
const EBREAK: u32 = 0x0010_0073;

/// Stack pointer register number.
const SP: u32 = 2;

/// Extracts bits `hi..=lo` of `v`, shifted down to bit 0.
#[inline]
fn bits(v: u32, hi: u32, lo: u32) -> u32 {
    (v >> lo) & ((1u32 << (hi - lo + 1)) - 1)
}

/// Extracts bit `n` of `v`.
#[inline]
fn bit(v: u32, n: u32) -> u32 {
    (v >> n) & 1
}

/// Sign-extends the low `width` bits of `v`.
#[inline]
fn sext(v: u32, width: u32) -> i32 {
    let shift = 32 - width;
    ((v << shift) as i32) >> shift
}

#[inline]
fn r_type(opcode: u32, rd: u32, funct3: u32, rs1: u32, rs2: u32, funct7: u32) -> u32 {
    (funct7 << 25) | (rs2 << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode
}

#[inline]
fn i_type(opcode: u32, rd: u32, funct3: u32, rs1: u32, imm: i32) -> u32 {
    (((imm as u32) & 0xfff) << 20) | (rs1 << 15) | (funct3 << 12) | (rd << 7) | opcode
}

#[inline]
fn s_type(opcode: u32, funct3: u32, rs1: u32, rs2: u32, imm: i32) -> u32 {
    let imm = imm as u32;
    (bits(imm, 11, 5) << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (funct3 << 12)
        | (bits(imm, 4, 0) << 7)
        | opcode
}

#[inline]
fn b_type(funct3: u32, rs1: u32, rs2: u32, imm: i32) -> u32 {
    let imm = imm as u32;
    (bit(imm, 12) << 31)
        | (bits(imm, 10, 5) << 25)
        | (rs2 << 20)
        | (rs1 << 15)
        | (funct3 << 12)
        | (bits(imm, 4, 1) << 8)
        | (bit(imm, 11) << 7)
        | OP_BRANCH
}

/// `imm20` is the value of instruction bits 31:12.
#[inline]
fn u_type(opcode: u32, rd: u32, imm20: u32) -> u32 {
    ((imm20 & 0xf_ffff) << 12) | (rd << 7) | opcode
}

#[inline]
fn j_type(rd: u32, imm: i32) -> u32 {
    let imm = imm as u32;
    (bit(imm, 20) << 31)
        | (bits(imm, 10, 1) << 21)
        | (bit(imm, 11) << 20)
        | (bits(imm, 19, 12) << 12)
        | (rd << 7)
        | OP_JAL
}

/// Expands a 16-bit RVC instruction (RV64GC: C with the F/D compressed
/// loads/stores C.FLD/C.FSD/C.FLDSP/C.FSDSP; no C.FLW/C.FSW on RV64) into the
/// 32-bit instruction it stands for.
///
/// Returns `None` for illegal or reserved encodings (the all-zero halfword,
/// C.ADDI4SPN with nzuimm=0, C.ADDI16SP/C.LUI with a zero immediate, C.ADDIW
/// with rd=0, C.LWSP/C.LDSP with rd=0, C.JR with rs1=0, the reserved
/// quadrant-0 `100` slot, the reserved C.SUBW/C.ADDW-group slots) and for
/// halfwords whose low two bits are `0b11` (not a compressed instruction).
///
/// HINT encodings (C.NOP with a nonzero immediate, C.ADDI/C.LI/C.LUI/C.MV/
/// C.ADD/C.SLLI with rd=0, C.ADDI with a zero immediate, shifts by zero, ...)
/// are legal and expand to their no-effect 32-bit equivalent.
pub fn expand(half: u16) -> Option<u32> {
    let h = u32::from(half);
    let funct3 = bits(h, 15, 13);
    match h & 0b11 {
        0b00 => expand_q0(h, funct3),
        0b01 => expand_q1(h, funct3),
        0b10 => expand_q2(h, funct3),
        _ => None,
    }
}

/// Quadrant 0: stack-pointer-based ADDI and register-based loads/stores.
fn expand_q0(h: u32, funct3: u32) -> Option<u32> {
    // Compressed register fields name x8..x15 (or f8..f15).
    let rd_p = bits(h, 4, 2) + 8;
    let rs1_p = bits(h, 9, 7) + 8;
    let rs2_p = rd_p;
    // Offset scaled by 8 (doubleword accesses): uimm[5:3|7:6].
    let off_d = (bits(h, 12, 10) << 3) | (bits(h, 6, 5) << 6);
    // Offset scaled by 4 (word accesses): uimm[5:3|2|6].
    let off_w = (bits(h, 12, 10) << 3) | (bit(h, 6) << 2) | (bit(h, 5) << 6);
    match funct3 {
        // C.ADDI4SPN: addi rd', x2, nzuimm[9:2]
        0b000 => {
            let nzuimm = (bits(h, 12, 11) << 4)
                | (bits(h, 10, 7) << 6)
                | (bit(h, 6) << 2)
                | (bit(h, 5) << 3);
            if nzuimm == 0 {
                // Includes the all-zero halfword, which is defined illegal.
                return None;
            }
            Some(i_type(OP_IMM, rd_p, 0b000, SP, nzuimm as i32))
        }
        // C.FLD: fld rd', uimm(rs1')
        0b001 => Some(i_type(OP_LOAD_FP, rd_p, 0b011, rs1_p, off_d as i32)),
        // C.LW: lw rd', uimm(rs1')
        0b010 => Some(i_type(OP_LOAD, rd_p, 0b010, rs1_p, off_w as i32)),
        // C.LD (RV64): ld rd', uimm(rs1')
        0b011 => Some(i_type(OP_LOAD, rd_p, 0b011, rs1_p, off_d as i32)),
        // Reserved (Zcb loads/stores live here; not implemented).
        0b100 => None,
        // C.FSD: fsd rs2', uimm(rs1')
        0b101 => Some(s_type(OP_STORE_FP, 0b011, rs1_p, rs2_p, off_d as i32)),
        // C.SW: sw rs2', uimm(rs1')
        0b110 => Some(s_type(OP_STORE, 0b010, rs1_p, rs2_p, off_w as i32)),
        // C.SD (RV64): sd rs2', uimm(rs1')
        _ => Some(s_type(OP_STORE, 0b011, rs1_p, rs2_p, off_d as i32)),
    }
}

/// Quadrant 1: immediates, ALU ops on compressed registers, jumps, branches.
fn expand_q1(h: u32, funct3: u32) -> Option<u32> {
    let rd = bits(h, 11, 7);
    // Sign-extended 6-bit immediate imm[5|4:0] = inst[12|6:2].
    let imm6 = sext((bit(h, 12) << 5) | bits(h, 6, 2), 6);
    match funct3 {
        // C.NOP (rd=0) / C.ADDI: addi rd, rd, imm. rd=0 or imm=0 are HINTs.
        0b000 => Some(i_type(OP_IMM, rd, 0b000, rd, imm6)),
        // C.ADDIW (RV64): addiw rd, rd, imm; rd=0 reserved.
        0b001 => {
            if rd == 0 {
                return None;
            }
            Some(i_type(OP_IMM_32, rd, 0b000, rd, imm6))
        }
        // C.LI: addi rd, x0, imm; rd=0 is a HINT.
        0b010 => Some(i_type(OP_IMM, rd, 0b000, 0, imm6)),
        0b011 => {
            if rd == SP {
                // C.ADDI16SP: addi x2, x2, nzimm[9:4]
                let raw = (bit(h, 12) << 9)
                    | (bit(h, 6) << 4)
                    | (bit(h, 5) << 6)
                    | (bits(h, 4, 3) << 7)
                    | (bit(h, 2) << 5);
                if raw == 0 {
                    return None;
                }
                Some(i_type(OP_IMM, SP, 0b000, SP, sext(raw, 10)))
            } else {
                // C.LUI: lui rd, nzimm[17:12]; imm=0 reserved, rd=0 a HINT.
                let raw = (bit(h, 12) << 5) | bits(h, 6, 2);
                if raw == 0 {
                    return None;
                }
                let imm20 = sext(raw, 6) as u32;
                Some(u_type(OP_LUI, rd, imm20))
            }
        }
        0b100 => expand_q1_alu(h),
        // C.J: jal x0, offset
        0b101 => {
            let raw = (bit(h, 12) << 11)
                | (bit(h, 11) << 4)
                | (bits(h, 10, 9) << 8)
                | (bit(h, 8) << 10)
                | (bit(h, 7) << 6)
                | (bit(h, 6) << 7)
                | (bits(h, 5, 3) << 1)
                | (bit(h, 2) << 5);
            Some(j_type(0, sext(raw, 12)))
        }
        // C.BEQZ / C.BNEZ: beq/bne rs1', x0, offset
        _ => {
            let rs1_p = bits(h, 9, 7) + 8;
            let raw = (bit(h, 12) << 8)
                | (bits(h, 11, 10) << 3)
                | (bits(h, 6, 5) << 6)
                | (bits(h, 4, 3) << 1)
                | (bit(h, 2) << 5);
            let f3 = if funct3 == 0b110 { 0b000 } else { 0b001 };
            Some(b_type(f3, rs1_p, 0, sext(raw, 9)))
        }
    }
}

/// Quadrant 1, funct3=100: C.SRLI, C.SRAI, C.ANDI and the register-register
/// ALU group.
fn expand_q1_alu(h: u32) -> Option<u32> {
    let rd_p = bits(h, 9, 7) + 8;
    let rs2_p = bits(h, 4, 2) + 8;
    // 6-bit shift amount shamt[5|4:0] = inst[12|6:2]; on RV64 shamt[5]=1 is
    // legal and shamt=0 is a HINT.
    let shamt = (bit(h, 12) << 5) | bits(h, 6, 2);
    match bits(h, 11, 10) {
        // C.SRLI: srli rd', rd', shamt
        0b00 => Some(i_type(OP_IMM, rd_p, 0b101, rd_p, shamt as i32)),
        // C.SRAI: srai rd', rd', shamt
        0b01 => Some(i_type(OP_IMM, rd_p, 0b101, rd_p, (0x400 | shamt) as i32)),
        // C.ANDI: andi rd', rd', imm
        0b10 => Some(i_type(OP_IMM, rd_p, 0b111, rd_p, sext(shamt, 6))),
        _ => {
            let op2 = bits(h, 6, 5);
            if bit(h, 12) == 0 {
                // C.SUB / C.XOR / C.OR / C.AND
                let (funct3, funct7) = match op2 {
                    0b00 => (0b000, 0b010_0000),
                    0b01 => (0b100, 0),
                    0b10 => (0b110, 0),
                    _ => (0b111, 0),
                };
                Some(r_type(OP_OP, rd_p, funct3, rd_p, rs2_p, funct7))
            } else {
                // C.SUBW / C.ADDW; the other two slots are reserved.
                match op2 {
                    0b00 => Some(r_type(OP_OP_32, rd_p, 0b000, rd_p, rs2_p, 0b010_0000)),
                    0b01 => Some(r_type(OP_OP_32, rd_p, 0b000, rd_p, rs2_p, 0)),
                    _ => None,
                }
            }
        }
    }
}

/// Quadrant 2: SLLI, stack-pointer-based loads/stores, JR/MV/EBREAK/JALR/ADD.
fn expand_q2(h: u32, funct3: u32) -> Option<u32> {
    let rd = bits(h, 11, 7);
    let rs2 = bits(h, 6, 2);
    // Load offsets from sp.
    let ld_off_d = (bit(h, 12) << 5) | (bits(h, 6, 5) << 3) | (bits(h, 4, 2) << 6);
    let ld_off_w = (bit(h, 12) << 5) | (bits(h, 6, 4) << 2) | (bits(h, 3, 2) << 6);
    // Store offsets from sp.
    let st_off_d = (bits(h, 12, 10) << 3) | (bits(h, 9, 7) << 6);
    let st_off_w = (bits(h, 12, 9) << 2) | (bits(h, 8, 7) << 6);
    match funct3 {
        // C.SLLI: slli rd, rd, shamt; rd=0 and shamt=0 are HINTs.
        0b000 => {
            let shamt = (bit(h, 12) << 5) | rs2;
            Some(i_type(OP_IMM, rd, 0b001, rd, shamt as i32))
        }
        // C.FLDSP: fld rd, uimm(x2)
        0b001 => Some(i_type(OP_LOAD_FP, rd, 0b011, SP, ld_off_d as i32)),
        // C.LWSP: lw rd, uimm(x2); rd=0 reserved.
        0b010 => {
            if rd == 0 {
                return None;
            }
            Some(i_type(OP_LOAD, rd, 0b010, SP, ld_off_w as i32))
        }
        // C.LDSP (RV64): ld rd, uimm(x2); rd=0 reserved.
        0b011 => {
            if rd == 0 {
                return None;
            }
            Some(i_type(OP_LOAD, rd, 0b011, SP, ld_off_d as i32))
        }
        0b100 => {
            if bit(h, 12) == 0 {
                if rs2 == 0 {
                    // C.JR: jalr x0, 0(rs1); rs1=0 reserved.
                    if rd == 0 {
                        return None;
                    }
                    Some(i_type(OP_JALR, 0, 0b000, rd, 0))
                } else {
                    // C.MV: add rd, x0, rs2; rd=0 is a HINT.
                    Some(r_type(OP_OP, rd, 0b000, 0, rs2, 0))
                }
            } else if rs2 == 0 {
                if rd == 0 {
                    // C.EBREAK
                    Some(EBREAK)
                } else {
                    // C.JALR: jalr x1, 0(rs1)
                    Some(i_type(OP_JALR, 1, 0b000, rd, 0))
                }
            } else {
                // C.ADD: add rd, rd, rs2; rd=0 is a HINT.
                Some(r_type(OP_OP, rd, 0b000, rd, rs2, 0))
            }
        }
        // C.FSDSP: fsd rs2, uimm(x2)
        0b101 => Some(s_type(OP_STORE_FP, 0b011, SP, rs2, st_off_d as i32)),
        // C.SWSP: sw rs2, uimm(x2)
        0b110 => Some(s_type(OP_STORE, 0b010, SP, rs2, st_off_w as i32)),
        // C.SDSP (RV64): sd rs2, uimm(x2)
        _ => Some(s_type(OP_STORE, 0b011, SP, rs2, st_off_d as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One case per instruction form (several for immediates with many
    /// scrambled bits): halfword and 32-bit expansion, as produced by GNU as
    /// 2.40 (`-march=rv64gc`) for the compressed and the uncompressed form.
    const KNOWN: &[(u16, u32)] = &[
        (0x0808, 0x0101_0513), // c.addi4spn a0, sp, 16 -> addi a0, sp, 16
        (0x1fe4, 0x3fc1_0493), // c.addi4spn s1, sp, 1020 -> addi s1, sp, 1020
        (0x2588, 0x0085_b507), // c.fld fa0, 8(a1) -> fld fa0, 8(a1)
        (0x3ce0, 0x0f84_b407), // c.fld fs0, 248(s1) -> fld fs0, 248(s1)
        (0x41c8, 0x0045_a503), // c.lw a0, 4(a1) -> lw a0, 4(a1)
        (0x5c7c, 0x07c4_2783), // c.lw a5, 124(s0) -> lw a5, 124(s0)
        (0x6588, 0x0085_b503), // c.ld a0, 8(a1) -> ld a0, 8(a1)
        (0x7fe0, 0x0f87_b403), // c.ld s0, 248(a5) -> ld s0, 248(a5)
        (0xa588, 0x00a5_b427), // c.fsd fa0, 8(a1) -> fsd fa0, 8(a1)
        (0xbc7c, 0x0ef4_3c27), // c.fsd fa5, 248(s0) -> fsd fa5, 248(s0)
        (0xc1c8, 0x00a5_a223), // c.sw a0, 4(a1) -> sw a0, 4(a1)
        (0xdf64, 0x0697_2e23), // c.sw s1, 124(a4) -> sw s1, 124(a4)
        (0xe588, 0x00a5_b423), // c.sd a0, 8(a1) -> sd a0, 8(a1)
        (0xfe74, 0x0ed6_3c23), // c.sd a3, 248(a2) -> sd a3, 248(a2)
        (0x0001, 0x0000_0013), // c.nop -> addi zero, zero, 0
        (0x0505, 0x0015_0513), // c.addi a0, 1 -> addi a0, a0, 1
        (0x1f81, 0xfe0f_8f93), // c.addi t6, -32 -> addi t6, t6, -32
        (0x00fd, 0x01f0_8093), // c.addi ra, 31 -> addi ra, ra, 31
        (0x357d, 0xfff5_051b), // c.addiw a0, -1 -> addiw a0, a0, -1
        (0x2d81, 0x000d_8d9b), // c.addiw s11, 0 -> addiw s11, s11, 0
        (0x557d, 0xfff0_0513), // c.li a0, -1 -> addi a0, zero, -1
        (0x42fd, 0x01f0_0293), // c.li t0, 31 -> addi t0, zero, 31
        (0x7101, 0xe001_0113), // c.addi16sp sp, -512 -> addi sp, sp, -512
        (0x617d, 0x1f01_0113), // c.addi16sp sp, 496 -> addi sp, sp, 496
        (0x6141, 0x0101_0113), // c.addi16sp sp, 16 -> addi sp, sp, 16
        (0x6505, 0x0000_1537), // c.lui a0, 1 -> lui a0, 1
        (0x6dfd, 0x0001_fdb7), // c.lui s11, 0x1f -> lui s11, 0x1f
        (0x7081, 0xfffe_00b7), // c.lui ra, 0xfffe0 -> lui ra, 0xfffe0
        (0x737d, 0xffff_f337), // c.lui t1, 0xfffff -> lui t1, 0xfffff
        (0x8105, 0x0015_5513), // c.srli a0, 1 -> srli a0, a0, 1
        (0x90fd, 0x03f4_d493), // c.srli s1, 63 -> srli s1, s1, 63
        (0x9381, 0x0207_d793), // c.srli a5, 32 -> srli a5, a5, 32
        (0x8505, 0x4015_5513), // c.srai a0, 1 -> srai a0, a0, 1
        (0x947d, 0x43f4_5413), // c.srai s0, 63 -> srai s0, s0, 63
        (0x997d, 0xfff5_7513), // c.andi a0, -1 -> andi a0, a0, -1
        (0x8a7d, 0x01f6_7613), // c.andi a2, 31 -> andi a2, a2, 31
        (0x9881, 0xfe04_f493), // c.andi s1, -32 -> andi s1, s1, -32
        (0x8d0d, 0x40b5_0533), // c.sub a0, a1 -> sub a0, a0, a1
        (0x8c3d, 0x00f4_4433), // c.xor s0, a5 -> xor s0, s0, a5
        (0x8ed9, 0x00e6_e6b3), // c.or a3, a4 -> or a3, a3, a4
        (0x8cf1, 0x00c4_f4b3), // c.and s1, a2 -> and s1, s1, a2
        (0x9d0d, 0x40b5_053b), // c.subw a0, a1 -> subw a0, a0, a1
        (0x9fa1, 0x0087_87bb), // c.addw a5, s0 -> addw a5, a5, s0
        (0xaffd, 0x7fe0_006f), // c.j .+2046 -> jal zero, .+2046
        (0xb001, 0x801f_f06f), // c.j .-2048 -> jal zero, .-2048
        (0xa009, 0x0020_006f), // c.j .+2 -> jal zero, .+2
        (0xbb99, 0xd57f_f06f), // c.j .-682 -> jal zero, .-682
        (0xcd7d, 0x0e05_0f63), // c.beqz a0, .+254 -> beq a0, zero, .+254
        (0xd081, 0xf004_80e3), // c.beqz s1, .-256 -> beq s1, zero, .-256
        (0xe389, 0x0007_9163), // c.bnez a5, .+2 -> bne a5, zero, .+2
        (0xf839, 0xf404_1be3), // c.bnez s0, .-170 -> bne s0, zero, .-170
        (0x0506, 0x0015_1513), // c.slli a0, 1 -> slli a0, a0, 1
        (0x1ffe, 0x03ff_9f93), // c.slli t6, 63 -> slli t6, t6, 63
        (0x1082, 0x0200_9093), // c.slli ra, 32 -> slli ra, ra, 32
        (0x2502, 0x0001_3507), // c.fldsp fa0, 0(sp) -> fld fa0, 0(sp)
        (0x307e, 0x1f81_3007), // c.fldsp ft0, 504(sp) -> fld ft0, 504(sp)
        (0x3faa, 0x0a81_3f87), // c.fldsp ft11, 168(sp) -> fld ft11, 168(sp)
        (0x4502, 0x0001_2503), // c.lwsp a0, 0(sp) -> lw a0, 0(sp)
        (0x5ffe, 0x0fc1_2f83), // c.lwsp t6, 252(sp) -> lw t6, 252(sp)
        (0x40d6, 0x0541_2083), // c.lwsp ra, 84(sp) -> lw ra, 84(sp)
        (0x6502, 0x0001_3503), // c.ldsp a0, 0(sp) -> ld a0, 0(sp)
        (0x70fe, 0x1f81_3083), // c.ldsp ra, 504(sp) -> ld ra, 504(sp)
        (0x7daa, 0x0a81_3d83), // c.ldsp s11, 168(sp) -> ld s11, 168(sp)
        (0x8082, 0x0000_8067), // c.jr ra -> jalr zero, 0(ra)
        (0x8f82, 0x000f_8067), // c.jr t6 -> jalr zero, 0(t6)
        (0x852e, 0x00b0_0533), // c.mv a0, a1 -> add a0, zero, a1
        (0x8f86, 0x0010_0fb3), // c.mv t6, ra -> add t6, zero, ra
        (0x9002, 0x0010_0073), // c.ebreak -> ebreak
        (0x9502, 0x0005_00e7), // c.jalr a0 -> jalr ra, 0(a0)
        (0x9082, 0x0000_80e7), // c.jalr ra -> jalr ra, 0(ra)
        (0x952e, 0x00b5_0533), // c.add a0, a1 -> add a0, a0, a1
        (0x9f86, 0x001f_8fb3), // c.add t6, ra -> add t6, t6, ra
        (0xa02a, 0x00a1_3027), // c.fsdsp fa0, 0(sp) -> fsd fa0, 0(sp)
        (0xbffe, 0x1ff1_3c27), // c.fsdsp ft11, 504(sp) -> fsd ft11, 504(sp)
        (0xb502, 0x0a01_3427), // c.fsdsp ft0, 168(sp) -> fsd ft0, 168(sp)
        (0xc02a, 0x00a1_2023), // c.swsp a0, 0(sp) -> sw a0, 0(sp)
        (0xdf82, 0x0e01_2e23), // c.swsp zero, 252(sp) -> sw zero, 252(sp)
        (0xcafe, 0x05f1_2a23), // c.swsp t6, 84(sp) -> sw t6, 84(sp)
        (0xe02a, 0x00a1_3023), // c.sdsp a0, 0(sp) -> sd a0, 0(sp)
        (0xff86, 0x1e11_3c23), // c.sdsp ra, 504(sp) -> sd ra, 504(sp)
        (0xf56e, 0x0bb1_3423), // c.sdsp s11, 168(sp) -> sd s11, 168(sp)
    ];

    #[test]
    fn known_encodings() {
        for &(half, word) in KNOWN {
            assert_eq!(
                expand(half),
                Some(word),
                "{half:#06x}: want {word:#010x}, got {:x?}",
                expand(half)
            );
        }
    }

    #[test]
    fn hints_are_legal() {
        let cases: &[(u16, u32)] = &[
            (0x0001, 0x0000_0013), // c.nop -> addi zero, zero, 0
            (0x0005, 0x0010_0013), // c.nop 1 -> addi zero, zero, 1
            (0x0081, 0x0000_8093), // c.addi ra, 0 -> addi ra, ra, 0
            (0x4005, 0x0010_0013), // c.li zero, 1 -> addi zero, zero, 1
            (0x6005, 0x0000_1037), // c.lui zero, 1 -> lui zero, 0x1
            (0x8006, 0x0010_0033), // c.mv zero, ra -> add zero, zero, ra
            (0x9006, 0x0010_0033), // c.add zero, ra -> add zero, zero, ra
            (0x0006, 0x0010_1013), // c.slli zero, 1 -> slli zero, zero, 0x1
            (0x0002, 0x0000_1013), // c.slli64 zero -> slli zero, zero, 0x0
            (0x8001, 0x0004_5413), // c.srli64 s0 -> srli s0, s0, 0x0
            (0x8401, 0x4004_5413), // c.srai64 s0 -> srai s0, s0, 0x0
        ];
        for &(half, word) in cases {
            assert_eq!(expand(half), Some(word), "{half:#06x}");
        }
    }

    #[test]
    fn rv64_specific_forms() {
        // Shift amounts with shamt[5] set are legal on RV64.
        assert_eq!(expand(0x9001), Some(0x0204_5413)); // srli s0, s0, 0x20
        assert_eq!(expand(0x1502), Some(0x0205_1513)); // slli a0, a0, 0x20
                                                       // C.ADDIW with a zero immediate (sext.w) is legal.
        assert_eq!(expand(0x2501), Some(0x0005_051b)); // addiw a0, a0, 0
                                                       // C.EBREAK and C.JALR.
        assert_eq!(expand(0x9002), Some(0x0010_0073));
        assert_eq!(expand(0x9082), Some(0x0000_80e7));
    }

    #[test]
    fn reserved_encodings_are_none() {
        let cases: &[(u16, &str)] = &[
            (0x0000, "all-zero halfword"),
            (0x0004, "c.addi4spn nzuimm=0, rd'=s1"),
            (0x001c, "c.addi4spn nzuimm=0, rd'=a5"),
            (0x6101, "c.addi16sp imm=0"),
            (0x6501, "c.lui a0, imm=0"),
            (0x6001, "c.lui zero, imm=0"),
            (0x2001, "c.addiw rd=0"),
            (0x2005, "c.addiw rd=0, imm=1"),
            (0x307d, "c.addiw rd=0, imm=-1"),
            (0x4002, "c.lwsp rd=0"),
            (0x5002, "c.lwsp rd=0, uimm[5]=1"),
            (0x6002, "c.ldsp rd=0"),
            (0x7002, "c.ldsp rd=0, uimm[5]=1"),
            (0x8002, "c.jr rs1=0"),
            (0x8000, "quadrant 0, funct3=100"),
            (0x9ffc, "quadrant 0, funct3=100 (all operand bits set)"),
            (0x9c41, "reserved slot after c.subw/c.addw (10)"),
            (0x9c61, "reserved slot after c.subw/c.addw (11)"),
            (0x9ffd, "reserved slot after c.subw/c.addw (all bits)"),
            (0x0003, "quadrant 3: not compressed"),
            (0x0513, "quadrant 3: low half of addi"),
            (0xffff, "quadrant 3: all ones"),
        ];
        for &(half, what) in cases {
            assert_eq!(expand(half), None, "{half:#06x}: {what}");
        }
    }

    #[test]
    fn exhaustive_never_panics_and_is_32_bit() {
        let mut legal = 0u32;
        for h in 0..=u16::MAX {
            let r = expand(h);
            if h & 0b11 == 0b11 {
                assert_eq!(r, None, "{h:#06x}");
            }
            if let Some(word) = r {
                assert_eq!(word & 0b11, 0b11, "{h:#06x} -> {word:#010x}");
                legal += 1;
            }
        }
        // 49152 compressed halfwords, of which 2409 are reserved/illegal.
        assert_eq!(legal, 49152 - 2409);
    }

    #[test]
    fn expansion_preserves_register_fields() {
        // C.MV / C.ADD keep full 5-bit register numbers for every pair.
        for rd in 1..32u16 {
            for rs2 in 1..32u16 {
                let mv = 0x8002 | (rd << 7) | (rs2 << 2);
                let add = 0x9002 | (rd << 7) | (rs2 << 2);
                let (rd, rs2) = (u32::from(rd), u32::from(rs2));
                assert_eq!(expand(mv), Some((rs2 << 20) | (rd << 7) | 0x33));
                assert_eq!(
                    expand(add),
                    Some((rs2 << 20) | (rd << 15) | (rd << 7) | 0x33)
                );
            }
        }
    }
}
