//! Pre-decoded operations: the hot instruction forms compilers emit, translated once per
//! block from iced-x86's [`Instruction`] into a compact [`Op`] with resolved register
//! indices, operand size, immediate and memory operand, and executed by one `match` over
//! [`Kind`]. Every other instruction is [`Kind::Generic`] and runs through
//! [`crate::exec::execute`] on the `Instruction` the block keeps beside the op.
//!
//! Precise faults without saving registers: each handler does everything that can fault
//! (memory reads, the write of a read-modify-write, pushes, canonical checks) before it
//! changes a register, RFLAGS or RIP. On `Err` nothing architectural has changed.

use iced_x86::{Code, ConditionCode, Instruction, Mnemonic, OpKind, Register};

use crate::alu::{self, mask, sign_extend, Shift};
use crate::cpu::{Block, Event, X86Cpu};
use crate::state::flags::{self as fl, CF};
use crate::state::{seg, Mode};
use crate::Fault;

/// The bits of a register a write of each size keeps (8/16-bit writes merge).
const KEEP: [u64; 16] = {
    let mut t = [0u64; 16];
    t[1] = !0xff;
    t[2] = !0xffff;
    t
};

/// Sign bit by size.
const SIGN: [u64; 16] = {
    let mut t = [1u64 << 63; 16];
    t[1] = 0x80;
    t[2] = 0x8000;
    t[4] = 0x8000_0000;
    t
};

/// PF, ZF and SF of a result already masked to its size.
#[inline(always)]
fn szp(r: u64, sign: u64) -> u64 {
    let low = (r ^ (r >> 4)) & 0xf;
    (((0x9669u64 >> low) & 1) << 2) | (u64::from(r == 0) << 6) | (u64::from(r & sign != 0) << 7)
}

/// `a + b + carry` of masked operands: the result and its arithmetic flags.
#[inline(always)]
fn add_flags(a: u64, b: u64, carry: bool, m: u64, sign: u64) -> (u64, u64) {
    let r = a.wrapping_add(b).wrapping_add(u64::from(carry)) & m;
    let cf = if carry { r <= a } else { r < a };
    let of = u64::from((a ^ r) & (b ^ r) & sign != 0) << 11;
    (
        r,
        szp(r, sign) | u64::from(cf) | ((a ^ b ^ r) & fl::AF) | of,
    )
}

/// `a - b - borrow` of masked operands: the result and its arithmetic flags.
#[inline(always)]
fn sub_flags(a: u64, b: u64, borrow: bool, m: u64, sign: u64) -> (u64, u64) {
    let r = a.wrapping_sub(b).wrapping_sub(u64::from(borrow)) & m;
    let cf = a < b || (borrow && a == b);
    let of = u64::from((a ^ b) & (a ^ r) & sign != 0) << 11;
    (
        r,
        szp(r, sign) | u64::from(cf) | ((a ^ b ^ r) & fl::AF) | of,
    )
}

/// Flags of a logical result (CF = OF = AF = 0).
#[inline(always)]
fn logic_flags(r: u64, sign: u64) -> u64 {
    szp(r, sign)
}

/// In [`X86Cpu::execute_ops_inner`]'s count: the next op faulted (the fault is in
/// `X86Cpu::op_fault`).
const FAULTED: usize = 1 << (usize::BITS - 1);

/// "No register" in [`Mem`].
const NONE: u8 = 16;

/// A pre-resolved memory operand: `disp + base + (index << scale)`, masked to 32 bits when
/// `a32`, in segment `seg`. RIP-relative operands have their target in `disp`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mem {
    base: u8,
    index: u8,
    scale: u8,
    seg: u8,
    a32: bool,
    /// 64-bit mode through a segment other than FS/GS: the linear address is the offset.
    flat: bool,
    /// 64-bit mode through FS or GS: the linear address is the segment base plus the offset.
    based: bool,
    disp: u64,
}

/// Operation kinds. `R` register, `M` memory, `I` immediate; destination first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Not specialised: [`crate::exec::execute`] on the instruction.
    Generic,
    Nop,
    MovRR,
    MovRI,
    MovRM,
    MovMR,
    MovMI,
    /// MOVZX/MOVSX/MOVSXD (`sign`), source of `src_size` bytes.
    ExtRR,
    ExtRM,
    Lea,
    /// ADD/OR/ADC/SBB/AND/SUB/XOR/CMP/TEST ([`Alu`] in `sub`).
    AluRR,
    AluRI,
    AluRM,
    /// The register and immediate forms of the ALU operations without a carry in, one kind
    /// each (one dispatch instead of two).
    AddRR,
    AddRI,
    OrRR,
    OrRI,
    AndRR,
    AndRI,
    SubRR,
    SubRI,
    XorRR,
    XorRI,
    CmpRR,
    CmpRI,
    TestRR,
    TestRI,

    AluMR,
    AluMI,
    Inc,
    Dec,
    Neg,
    Not,
    /// Shifts and rotates of a register by an immediate or CL ([`Shift`] in `sub`).
    ShiftRI,
    ShiftRC,
    /// IMUL r, r/m and IMUL r, r/m, imm.
    ImulRR,
    ImulRM,
    ImulRRI,
    ImulRMI,
    /// One-operand MUL (`sub` 0) and IMUL (`sub` 1) of 2, 4 or 8 bytes: rDX:rAX.
    MulR,
    MulM,
    /// 32-bit code's 4-byte stack operations (through SS, its size from SS.B at run time).
    Push32R,
    Push32I,
    Pop32R,
    Call32,
    Ret32,
    /// 64-bit mode stack operations.
    PushR,
    PushI,
    PopR,
    Call,
    CallR,
    CallM,
    Ret,
    Jmp,
    JmpR,
    JmpM,
    Jcc,
    SetccR,
    CmovRR,
    CmovRM,
    XchgRR,
    /// BSWAP of a 32- or 64-bit register.
    Bswap,
    /// CBW/CWDE/CDQE (by size) and CWD/CDQ/CQO.
    Cext,
    Cdx,
}

/// ALU operations, in the order of the group-1 opcode extension, then TEST.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Alu {
    Add,
    Or,
    Adc,
    Sbb,
    And,
    Sub,
    Xor,
    Cmp,
    Test,
}

const ALU: [Alu; 9] = [
    Alu::Add,
    Alu::Or,
    Alu::Adc,
    Alu::Sbb,
    Alu::And,
    Alu::Sub,
    Alu::Xor,
    Alu::Cmp,
    Alu::Test,
];

const SHIFTS: [Shift; 7] = [
    Shift::Rol,
    Shift::Ror,
    Shift::Rcl,
    Shift::Rcr,
    Shift::Shl,
    Shift::Shr,
    Shift::Sar,
];

/// One pre-decoded instruction.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Op {
    pub(crate) kind: Kind,
    /// Operand size in bytes.
    size: u8,
    /// Destination (or only) register.
    r: u8,
    /// Source register.
    r2: u8,
    /// ALU or shift kind; condition code; sign extension.
    sub: u8,
    /// Source size (MOVZX/MOVSX).
    src_size: u8,
    mem: Mem,
    /// Immediate, branch target.
    imm: u64,
    /// IP of the next instruction.
    next: u64,
    /// [`mask`] of `size`, the bits a register write of `size` keeps, the sign bit.
    m: u64,
    keep: u64,
    sign: u64,
    /// The arithmetic flags this op writes are read later (see [`analyse_flags`]): when
    /// false, [`X86Cpu::execute_ops`] skips computing them.
    flags: bool,
}

impl Op {
    fn generic() -> Op {
        Op {
            kind: Kind::Generic,
            size: 0,
            r: 0,
            r2: 0,
            sub: 0,
            src_size: 0,
            mem: Mem::default(),
            imm: 0,
            next: 0,
            m: 0,
            keep: 0,
            sign: 0,
            flags: true,
        }
    }
}

/// Index (0–15) and size of a general register, except AH/CH/DH/BH.
fn gpr(r: Register) -> Option<(u8, u8)> {
    let n = r as u32;
    Some(match n {
        1..=4 => ((n - 1) as u8, 1),
        9..=20 => ((n - 9 + 4) as u8, 1),
        21..=36 => ((n - 21) as u8, 2),
        37..=52 => ((n - 37) as u8, 4),
        53..=68 => ((n - 53) as u8, 8),
        _ => return None,
    })
}

fn segment_index(r: Register) -> u8 {
    (match r {
        Register::ES => seg::ES,
        Register::CS => seg::CS,
        Register::SS => seg::SS,
        Register::FS => seg::FS,
        Register::GS => seg::GS,
        _ => seg::DS,
    }) as u8
}

fn mem_operand(cpu: &X86Cpu, i: &Instruction) -> Option<Mem> {
    let base = i.memory_base();
    let index = i.memory_index();
    let address_mask = crate::exec::address_mask(cpu, i);
    if address_mask == 0xffff {
        return None;
    }
    let mut m = Mem {
        base: NONE,
        index: NONE,
        scale: i.memory_index_scale().trailing_zeros() as u8,
        seg: segment_index(i.memory_segment()),
        a32: address_mask == 0xffff_ffff,
        flat: cpu.state.mode() == Mode::Long64
            && !matches!(i.memory_segment(), Register::FS | Register::GS),
        based: cpu.state.mode() == Mode::Long64
            && matches!(i.memory_segment(), Register::FS | Register::GS),
        disp: i.memory_displacement64(),
    };
    if base != Register::None && base != Register::RIP && base != Register::EIP {
        m.base = gpr(base).filter(|&(_, s)| s >= 4)?.0;
    }
    if index != Register::None {
        m.index = gpr(index).filter(|&(_, s)| s >= 4)?.0;
    }
    Some(m)
}

/// Translates `i` (decoded in the CPU's current mode) into an op.
pub(crate) fn translate(cpu: &X86Cpu, i: &Instruction) -> Op {
    translate_inner(cpu, i).unwrap_or_else(Op::generic)
}

fn translate_inner(cpu: &X86Cpu, i: &Instruction) -> Option<Op> {
    let mode = cpu.state.mode();
    let long = mode == Mode::Long64;
    if !long && mode != Mode::Protected32 {
        return None;
    }
    if i.has_lock_prefix() || crate::float::handles(i) {
        return None;
    }
    let ip_mask = if long { u64::MAX } else { 0xffff_ffff };
    let mut op = Op::generic();
    op.next = i.next_ip() & ip_mask;
    let count = i.op_count();
    let kind = |n: u32| i.op_kind(n);
    let reg = |n: u32| gpr(i.op_register(n));
    let imm_size = |n: u32| {
        matches!(
            kind(n),
            OpKind::Immediate8
                | OpKind::Immediate8to16
                | OpKind::Immediate8to32
                | OpKind::Immediate8to64
                | OpKind::Immediate16
                | OpKind::Immediate32
                | OpKind::Immediate32to64
                | OpKind::Immediate64
        )
    };
    let m = i.mnemonic();
    // Two-operand forms with GPR/memory/immediate operands, by operand size.
    let two = |op: &mut Op, rr: Kind, ri: Kind, rm: Kind, mr: Kind, mi: Kind| -> Option<()> {
        if count != 2 {
            return None;
        }
        match (kind(0), kind(1)) {
            (OpKind::Register, OpKind::Register) => {
                let (a, size) = reg(0)?;
                let (b, bsize) = reg(1)?;
                if size != bsize {
                    return None;
                }
                (op.kind, op.size, op.r, op.r2) = (rr, size, a, b);
            }
            (OpKind::Register, OpKind::Memory) => {
                let (a, size) = reg(0)?;
                op.mem = mem_operand(cpu, i)?;
                (op.kind, op.size, op.r) = (rm, size, a);
            }
            (OpKind::Memory, OpKind::Register) => {
                let (b, size) = reg(1)?;
                op.mem = mem_operand(cpu, i)?;
                (op.kind, op.size, op.r2) = (mr, size, b);
            }
            (OpKind::Register, _) if imm_size(1) => {
                let (a, size) = reg(0)?;
                (op.kind, op.size, op.r) = (ri, size, a);
                op.imm = i.immediate(1) & mask(size.into());
            }
            (OpKind::Memory, _) if imm_size(1) => {
                let size = i.memory_size().size() as u8;
                op.mem = mem_operand(cpu, i)?;
                (op.kind, op.size) = (mi, size);
                op.imm = i.immediate(1) & mask(size.into());
            }
            _ => return None,
        }
        if op.kind == Kind::Generic || !matches!(op.size, 1 | 2 | 4 | 8) {
            return None;
        }
        Some(())
    };
    match m {
        // ENDBR64/ENDBR32: CET is not implemented (nor advertised), so they are NOPs.
        Mnemonic::Nop | Mnemonic::Endbr64 | Mnemonic::Endbr32 => op.kind = Kind::Nop,
        Mnemonic::Bswap if kind(0) == OpKind::Register => {
            let (a, size) = reg(0)?;
            if size < 4 {
                return None;
            }
            (op.kind, op.r, op.size) = (Kind::Bswap, a, size);
        }
        Mnemonic::Mov => {
            two(
                &mut op,
                Kind::MovRR,
                Kind::MovRI,
                Kind::MovRM,
                Kind::MovMR,
                Kind::MovMI,
            )?;
        }
        Mnemonic::Add
        | Mnemonic::Or
        | Mnemonic::Adc
        | Mnemonic::Sbb
        | Mnemonic::And
        | Mnemonic::Sub
        | Mnemonic::Xor
        | Mnemonic::Cmp
        | Mnemonic::Test => {
            op.sub = match m {
                Mnemonic::Add => Alu::Add,
                Mnemonic::Or => Alu::Or,
                Mnemonic::Adc => Alu::Adc,
                Mnemonic::Sbb => Alu::Sbb,
                Mnemonic::And => Alu::And,
                Mnemonic::Sub => Alu::Sub,
                Mnemonic::Xor => Alu::Xor,
                Mnemonic::Cmp => Alu::Cmp,
                _ => Alu::Test,
            } as u8;
            two(
                &mut op,
                Kind::AluRR,
                Kind::AluRI,
                Kind::AluRM,
                Kind::AluMR,
                Kind::AluMI,
            )?;
            let register = op.kind == Kind::AluRR;
            if matches!(op.kind, Kind::AluRR | Kind::AluRI) {
                op.kind = match (ALU[usize::from(op.sub).min(8)], register) {
                    (Alu::Add, true) => Kind::AddRR,
                    (Alu::Add, false) => Kind::AddRI,
                    (Alu::Or, true) => Kind::OrRR,
                    (Alu::Or, false) => Kind::OrRI,
                    (Alu::And, true) => Kind::AndRR,
                    (Alu::And, false) => Kind::AndRI,
                    (Alu::Sub, true) => Kind::SubRR,
                    (Alu::Sub, false) => Kind::SubRI,
                    (Alu::Xor, true) => Kind::XorRR,
                    (Alu::Xor, false) => Kind::XorRI,
                    (Alu::Cmp, true) => Kind::CmpRR,
                    (Alu::Cmp, false) => Kind::CmpRI,
                    (Alu::Test, true) => Kind::TestRR,
                    (Alu::Test, false) => Kind::TestRI,
                    _ => op.kind,
                };
            }
        }
        Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd if count == 2 => {
            let (a, size) = reg(0)?;
            op.sub = u8::from(m != Mnemonic::Movzx);
            op.r = a;
            op.size = size;
            match kind(1) {
                OpKind::Register => {
                    let (b, s) = reg(1)?;
                    (op.kind, op.r2, op.src_size) = (Kind::ExtRR, b, s);
                }
                OpKind::Memory => {
                    op.mem = mem_operand(cpu, i)?;
                    op.src_size = i.memory_size().size() as u8;
                    op.kind = Kind::ExtRM;
                }
                _ => return None,
            }
            if !matches!(op.src_size, 1 | 2 | 4) {
                return None;
            }
        }
        Mnemonic::Lea if kind(0) == OpKind::Register && kind(1) == OpKind::Memory => {
            let (a, size) = reg(0)?;
            if size < 2 {
                return None;
            }
            op.mem = mem_operand(cpu, i)?;
            (op.kind, op.r, op.size) = (Kind::Lea, a, size);
        }
        Mnemonic::Inc | Mnemonic::Dec | Mnemonic::Neg | Mnemonic::Not
            if count == 1 && kind(0) == OpKind::Register =>
        {
            let (a, size) = reg(0)?;
            op.kind = match m {
                Mnemonic::Inc => Kind::Inc,
                Mnemonic::Dec => Kind::Dec,
                Mnemonic::Neg => Kind::Neg,
                _ => Kind::Not,
            };
            (op.r, op.size) = (a, size);
        }
        Mnemonic::Rol
        | Mnemonic::Ror
        | Mnemonic::Rcl
        | Mnemonic::Rcr
        | Mnemonic::Shl
        | Mnemonic::Sal
        | Mnemonic::Shr
        | Mnemonic::Sar
            if count == 2 && kind(0) == OpKind::Register =>
        {
            let (a, size) = reg(0)?;
            op.sub = match m {
                Mnemonic::Rol => Shift::Rol,
                Mnemonic::Ror => Shift::Ror,
                Mnemonic::Rcl => Shift::Rcl,
                Mnemonic::Rcr => Shift::Rcr,
                Mnemonic::Shr => Shift::Shr,
                Mnemonic::Sar => Shift::Sar,
                _ => Shift::Shl,
            } as u8;
            (op.r, op.size) = (a, size);
            if kind(1) == OpKind::Register {
                if i.op_register(1) != Register::CL {
                    return None;
                }
                op.kind = Kind::ShiftRC;
            } else {
                op.kind = Kind::ShiftRI;
                op.imm = i.immediate(1) & 0xff;
            }
        }
        Mnemonic::Mul | Mnemonic::Imul if count == 1 => {
            op.sub = u8::from(m == Mnemonic::Imul);
            if kind(0) == OpKind::Register {
                let (a, size) = reg(0)?;
                (op.kind, op.r, op.size) = (Kind::MulR, a, size);
            } else {
                op.mem = mem_operand(cpu, i)?;
                (op.kind, op.size) = (Kind::MulM, i.memory_size().size() as u8);
            }
            if !matches!(op.size, 2 | 4 | 8) {
                return None;
            }
        }
        Mnemonic::Imul if count >= 2 && kind(0) == OpKind::Register => {
            let (a, size) = reg(0)?;
            (op.r, op.size) = (a, size);
            let memory = kind(1) == OpKind::Memory;
            if memory {
                op.mem = mem_operand(cpu, i)?;
            } else {
                let (b, _) = reg(1)?;
                op.r2 = b;
            }
            op.kind = match (count, memory) {
                (2, false) => Kind::ImulRR,
                (2, true) => Kind::ImulRM,
                (_, false) => Kind::ImulRRI,
                (_, true) => Kind::ImulRMI,
            };
            if count == 3 {
                op.imm = i.immediate(2) & mask(size.into());
            }
        }
        Mnemonic::Push if long && count == 1 => {
            if kind(0) == OpKind::Register {
                let (a, size) = reg(0)?;
                if size != 8 {
                    return None;
                }
                (op.kind, op.r) = (Kind::PushR, a);
            } else if imm_size(0) && i.stack_pointer_increment() == -8 {
                (op.kind, op.imm) = (Kind::PushI, i.immediate(0));
            } else {
                return None;
            }
        }
        Mnemonic::Push if !long && count == 1 && i.stack_pointer_increment() == -4 => {
            if kind(0) == OpKind::Register {
                let (a, size) = reg(0)?;
                if size != 4 {
                    return None;
                }
                (op.kind, op.r) = (Kind::Push32R, a);
            } else if imm_size(0) {
                (op.kind, op.imm) = (Kind::Push32I, i.immediate(0) & 0xffff_ffff);
            } else {
                return None;
            }
        }
        Mnemonic::Pop
            if !long
                && count == 1
                && kind(0) == OpKind::Register
                && i.stack_pointer_increment() == 4 =>
        {
            let (a, size) = reg(0)?;
            if size != 4 {
                return None;
            }
            (op.kind, op.r) = (Kind::Pop32R, a);
        }
        Mnemonic::Call if !long && i.code() == Code::Call_rel32_32 => {
            (op.kind, op.imm) = (Kind::Call32, i.near_branch_target() & 0xffff_ffff);
        }
        Mnemonic::Ret if !long && i.code() == Code::Retnd => op.kind = Kind::Ret32,
        Mnemonic::Pop if long && count == 1 && kind(0) == OpKind::Register => {
            let (a, size) = reg(0)?;
            if size != 8 {
                return None;
            }
            (op.kind, op.r) = (Kind::PopR, a);
        }
        Mnemonic::Call | Mnemonic::Jmp if long => {
            let call = m == Mnemonic::Call;
            match i.code() {
                Code::Call_rel32_64 | Code::Jmp_rel32_64 | Code::Jmp_rel8_64 => {
                    let target = i.near_branch_target();
                    if !crate::mmu::canonical(target) {
                        return None;
                    }
                    op.kind = if call { Kind::Call } else { Kind::Jmp };
                    op.imm = target;
                }
                Code::Call_rm64 | Code::Jmp_rm64 => {
                    if kind(0) == OpKind::Register {
                        op.r = reg(0)?.0;
                        op.kind = if call { Kind::CallR } else { Kind::JmpR };
                    } else {
                        op.mem = mem_operand(cpu, i)?;
                        op.kind = if call { Kind::CallM } else { Kind::JmpM };
                    }
                }
                _ => return None,
            }
        }
        Mnemonic::Jmp if i.code() == Code::Jmp_rel8_32 || i.code() == Code::Jmp_rel32_32 => {
            (op.kind, op.imm) = (Kind::Jmp, i.near_branch_target());
        }
        Mnemonic::Ret if long && i.code() == Code::Retnq => {
            op.kind = Kind::Ret;
        }
        _ if i.condition_code() != ConditionCode::None => {
            let cc = i.condition_code() as u8;
            op.sub = cc;
            match i.code() {
                Code::Jo_rel8_64
                | Code::Jno_rel8_64
                | Code::Jb_rel8_64
                | Code::Jae_rel8_64
                | Code::Je_rel8_64
                | Code::Jne_rel8_64
                | Code::Jbe_rel8_64
                | Code::Ja_rel8_64
                | Code::Js_rel8_64
                | Code::Jns_rel8_64
                | Code::Jp_rel8_64
                | Code::Jnp_rel8_64
                | Code::Jl_rel8_64
                | Code::Jge_rel8_64
                | Code::Jle_rel8_64
                | Code::Jg_rel8_64
                | Code::Jo_rel32_64
                | Code::Jno_rel32_64
                | Code::Jb_rel32_64
                | Code::Jae_rel32_64
                | Code::Je_rel32_64
                | Code::Jne_rel32_64
                | Code::Jbe_rel32_64
                | Code::Ja_rel32_64
                | Code::Js_rel32_64
                | Code::Jns_rel32_64
                | Code::Jp_rel32_64
                | Code::Jnp_rel32_64
                | Code::Jl_rel32_64
                | Code::Jge_rel32_64
                | Code::Jle_rel32_64
                | Code::Jg_rel32_64
                    if long =>
                {
                    let target = i.near_branch_target();
                    if !crate::mmu::canonical(target) {
                        return None;
                    }
                    (op.kind, op.imm) = (Kind::Jcc, target);
                }
                Code::Jo_rel8_32
                | Code::Jno_rel8_32
                | Code::Jb_rel8_32
                | Code::Jae_rel8_32
                | Code::Je_rel8_32
                | Code::Jne_rel8_32
                | Code::Jbe_rel8_32
                | Code::Ja_rel8_32
                | Code::Js_rel8_32
                | Code::Jns_rel8_32
                | Code::Jp_rel8_32
                | Code::Jnp_rel8_32
                | Code::Jl_rel8_32
                | Code::Jge_rel8_32
                | Code::Jle_rel8_32
                | Code::Jg_rel8_32
                | Code::Jo_rel32_32
                | Code::Jno_rel32_32
                | Code::Jb_rel32_32
                | Code::Jae_rel32_32
                | Code::Je_rel32_32
                | Code::Jne_rel32_32
                | Code::Jbe_rel32_32
                | Code::Ja_rel32_32
                | Code::Js_rel32_32
                | Code::Jns_rel32_32
                | Code::Jp_rel32_32
                | Code::Jnp_rel32_32
                | Code::Jl_rel32_32
                | Code::Jge_rel32_32
                | Code::Jle_rel32_32
                | Code::Jg_rel32_32
                    if !long =>
                {
                    (op.kind, op.imm) = (Kind::Jcc, i.near_branch_target());
                }
                _ if is_setcc(m) && count == 1 => {
                    if kind(0) != OpKind::Register {
                        return None;
                    }
                    let (a, size) = reg(0)?;
                    if size != 1 {
                        return None;
                    }
                    (op.kind, op.r) = (Kind::SetccR, a);
                }
                _ if is_cmov(m) && count == 2 => {
                    let (a, size) = reg(0)?;
                    (op.r, op.size) = (a, size);
                    if kind(1) == OpKind::Register {
                        (op.kind, op.r2) = (Kind::CmovRR, reg(1)?.0);
                    } else {
                        op.mem = mem_operand(cpu, i)?;
                        op.kind = Kind::CmovRM;
                    }
                }
                _ => return None,
            }
        }
        Mnemonic::Xchg if count == 2 && kind(0) == OpKind::Register => {
            if kind(1) != OpKind::Register {
                return None;
            }
            let (a, size) = reg(0)?;
            let (b, bsize) = reg(1)?;
            if size != bsize {
                return None;
            }
            (op.kind, op.r, op.r2, op.size) = (Kind::XchgRR, a, b, size);
        }
        Mnemonic::Cbw | Mnemonic::Cwde | Mnemonic::Cdqe => {
            op.kind = Kind::Cext;
            op.size = match m {
                Mnemonic::Cbw => 2,
                Mnemonic::Cwde => 4,
                _ => 8,
            };
        }
        Mnemonic::Cwd | Mnemonic::Cdq | Mnemonic::Cqo => {
            op.kind = Kind::Cdx;
            op.size = match m {
                Mnemonic::Cwd => 2,
                Mnemonic::Cdq => 4,
                _ => 8,
            };
        }
        _ => return None,
    }
    let size = usize::from(op.size & 15);
    (op.m, op.keep, op.sign) = (mask(size as u32), KEEP[size], SIGN[size]);
    Some(op)
}

fn is_setcc(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Seto
            | Mnemonic::Setno
            | Mnemonic::Setb
            | Mnemonic::Setae
            | Mnemonic::Sete
            | Mnemonic::Setne
            | Mnemonic::Setbe
            | Mnemonic::Seta
            | Mnemonic::Sets
            | Mnemonic::Setns
            | Mnemonic::Setp
            | Mnemonic::Setnp
            | Mnemonic::Setl
            | Mnemonic::Setge
            | Mnemonic::Setle
            | Mnemonic::Setg
    )
}

fn is_cmov(m: Mnemonic) -> bool {
    matches!(
        m,
        Mnemonic::Cmovo
            | Mnemonic::Cmovno
            | Mnemonic::Cmovb
            | Mnemonic::Cmovae
            | Mnemonic::Cmove
            | Mnemonic::Cmovne
            | Mnemonic::Cmovbe
            | Mnemonic::Cmova
            | Mnemonic::Cmovs
            | Mnemonic::Cmovns
            | Mnemonic::Cmovp
            | Mnemonic::Cmovnp
            | Mnemonic::Cmovl
            | Mnemonic::Cmovge
            | Mnemonic::Cmovle
            | Mnemonic::Cmovg
    )
}

// ---- execution -----------------------------------------------------------------------------

impl X86Cpu {
    #[inline(always)]
    fn get(&self, r: u8, size: u8) -> u64 {
        self.state.gpr[(r & 15) as usize] & mask(size.into())
    }

    /// Reads register `r` at the op's size.
    #[inline(always)]
    fn gm(&self, r: u8, op: &Op) -> u64 {
        self.state.gpr[(r & 15) as usize] & op.m
    }

    /// Writes register `r` at the op's size (8/16-bit writes merge, 32-bit writes
    /// zero-extend).
    #[inline(always)]
    fn sm(&mut self, r: u8, op: &Op, v: u64) {
        let g = &mut self.state.gpr[(r & 15) as usize];
        *g = (*g & op.keep) | (v & op.m);
    }

    /// Writes a register: 8/16-bit writes merge, 32-bit writes zero-extend.
    #[inline(always)]
    fn set(&mut self, r: u8, size: u8, v: u64) {
        let g = &mut self.state.gpr[(r & 15) as usize];
        *g = (*g & KEEP[(size & 15) as usize]) | (v & mask(size.into()));
    }

    #[inline(always)]
    fn ea(&self, m: &Mem) -> u64 {
        let mut a = m.disp;
        if m.base != NONE {
            a = a.wrapping_add(self.state.gpr[(m.base & 15) as usize]);
        }
        if m.index != NONE {
            a = a.wrapping_add(self.state.gpr[(m.index & 15) as usize] << m.scale);
        }
        if m.a32 {
            a &= 0xffff_ffff;
        }
        a
    }

    #[inline(always)]
    fn load(&mut self, m: &Mem, size: u8) -> Result<u64, Fault> {
        let offset = self.ea(m);
        self.load_at(m, offset, size)
    }

    #[inline(always)]
    fn store(&mut self, m: &Mem, size: u8, v: u64) -> Result<(), Fault> {
        let offset = self.ea(m);
        self.store_at(m, offset, size, v)
    }

    /// Reads the operand at `offset` (its effective address) in `m`'s segment.
    #[inline(always)]
    fn load_at(&mut self, m: &Mem, offset: u64, size: u8) -> Result<u64, Fault> {
        if m.flat {
            flat_check(offset, m.seg)?;
            return self.read_linear_inline(offset, size.into(), false);
        }
        if m.based {
            let linear = self.state.segments[usize::from(m.seg) % 6]
                .base
                .wrapping_add(offset);
            flat_check(linear, m.seg)?;
            return self.read_linear_inline(linear, size.into(), false);
        }
        self.read(m.seg as usize, offset, size.into())
    }

    #[inline(always)]
    fn store_at(&mut self, m: &Mem, offset: u64, size: u8, v: u64) -> Result<(), Fault> {
        let v = v & mask(size.into());
        if m.flat {
            flat_check(offset, m.seg)?;
            return self.write_linear_inline(offset, size.into(), v, false);
        }
        if m.based {
            let linear = self.state.segments[usize::from(m.seg) % 6]
                .base
                .wrapping_add(offset);
            flat_check(linear, m.seg)?;
            return self.write_linear_inline(linear, size.into(), v, false);
        }
        self.write(m.seg as usize, offset, size.into(), v)
    }

    #[inline(always)]
    fn set_arith(&mut self, f: u64, which: u64) {
        self.state.rflags = (self.state.rflags & !which) | (f & which);
    }

    /// A 64-bit-mode push of 8 bytes (the stack pointer changes only on success).
    #[inline(always)]
    fn push64(&mut self, v: u64) -> Result<(), Fault> {
        let sp = self.state.gpr[4].wrapping_sub(8);
        flat_check(sp, seg::SS as u8)?;
        self.write_linear_inline(sp, 8, v, false)?;
        self.state.gpr[4] = sp;
        Ok(())
    }

    /// The stack pointer mask of 32-bit code: SS.B selects ESP or SP.
    #[inline(always)]
    fn stack_mask32(&self) -> u64 {
        if self.state.segments[seg::SS].attributes & crate::state::Segment::DB != 0 {
            0xffff_ffff
        } else {
            0xffff
        }
    }

    /// A 4-byte push in 32-bit code (the stack pointer changes only on success).
    #[inline(always)]
    fn push32(&mut self, v: u64) -> Result<(), Fault> {
        let m = self.stack_mask32();
        let sp = self.state.gpr[4].wrapping_sub(4) & m;
        self.write(seg::SS, sp, 4, v & 0xffff_ffff)?;
        self.state.gpr[4] = (self.state.gpr[4] & !m) | sp;
        Ok(())
    }

    /// A 4-byte pop in 32-bit code: the value, after moving the stack pointer.
    #[inline(always)]
    fn pop32(&mut self) -> Result<u64, Fault> {
        let m = self.stack_mask32();
        let sp = self.state.gpr[4] & m;
        let v = self.read(seg::SS, sp, 4)?;
        self.state.gpr[4] = (self.state.gpr[4] & !m) | (sp.wrapping_add(4) & m);
        Ok(v)
    }

    /// ALU operation `k` on `a` and `b`: (result, flags, whether the result is written).
    #[inline(always)]
    fn alu(&self, op: &Op, a: u64, b: u64, want: bool) -> (u64, u64, bool) {
        self.alu_k(op.sub, op, a, b, want)
    }

    /// [`X86Cpu::alu`] with the operation given apart (a constant folds the dispatch away).
    #[inline(always)]
    fn alu_k(&self, k: u8, op: &Op, a: u64, b: u64, want: bool) -> (u64, u64, bool) {
        let (m, sign) = (op.m, op.sign);
        let carry = self.state.rflags & CF != 0;
        let alu = ALU[(k as usize).min(8)];
        if !want {
            let r = match alu {
                Alu::Add => a.wrapping_add(b),
                Alu::Adc => a.wrapping_add(b).wrapping_add(u64::from(carry)),
                Alu::Sub | Alu::Cmp => a.wrapping_sub(b),
                Alu::Sbb => a.wrapping_sub(b).wrapping_sub(u64::from(carry)),
                Alu::And | Alu::Test => a & b,
                Alu::Or => a | b,
                Alu::Xor => a ^ b,
            };
            return (r, 0, !matches!(alu, Alu::Cmp | Alu::Test));
        }
        match alu {
            Alu::Add => {
                let (r, f) = add_flags(a, b, false, m, sign);
                (r, f, true)
            }
            Alu::Adc => {
                let (r, f) = add_flags(a, b, carry, m, sign);
                (r, f, true)
            }
            Alu::Sub => {
                let (r, f) = sub_flags(a, b, false, m, sign);
                (r, f, true)
            }
            Alu::Cmp => {
                let (r, f) = sub_flags(a, b, false, m, sign);
                (r, f, false)
            }
            Alu::Sbb => {
                let (r, f) = sub_flags(a, b, carry, m, sign);
                (r, f, true)
            }
            Alu::And => (a & b, logic_flags(a & b, sign), true),
            Alu::Test => (a & b, logic_flags(a & b, sign), false),
            Alu::Or => (a | b, logic_flags(a | b, sign), true),
            Alu::Xor => (a ^ b, logic_flags(a ^ b, sign), true),
        }
    }

    /// ALU operation `k` (a constant at each use) on register `op.r` and `b`.
    #[inline(always)]
    fn alu_register(&mut self, k: u8, op: &Op, b: u64, want: bool) {
        let a = self.gm(op.r, op);
        let (r, f, write) = self.alu_k(k, op, a, b, want);
        if write {
            self.sm(op.r, op, r);
        }
        if want {
            self.set_arith(f, fl::ARITH);
        }
    }

    /// Executes a specialised op (not [`Kind::Generic`]) at RIP. On `Ok` RIP is at the next
    /// instruction (or the branch target) and the instruction has retired; on `Err` no
    /// architectural state changed.
    #[inline(never)]
    pub(crate) fn execute_op(&mut self, op: &Op) -> Result<Event, Fault> {
        let next = self.op_body(op, true)?;
        // A retired instruction clears RF (IRET, which sets it, is generic).
        self.state.rflags &= !fl::RF;
        self.state.rip = next;
        self.state.interrupt_shadow = false;
        self.icount += 1;
        Ok(Event::Retired)
    }

    /// Runs the pre-decoded ops of `block` from its start while they are specialised (not
    /// generic), up to `count` instructions: the uninstrumented loops' fast path, with
    /// nothing to check between instructions (no op is a system call, software interrupt,
    /// HLT or mode change, and within a block only the last instruction branches).
    /// Stops before the first generic op, before the last instruction of a block that
    /// crosses a page (the run loop checks its second page), after an op that wrote
    /// decoded code, or at once when RFLAGS.TF is set or RIP is not at the block's start.
    /// Returns how many retired, and the fault of the next one if it faulted (nothing of
    /// it retired; the state is as before it).
    #[inline(always)]
    pub(crate) fn execute_ops(&mut self, block: &Block, count: usize) -> (usize, Option<Fault>) {
        // The fault travels in a field: a returned `Option<Fault>` costs a store-forwarding
        // stall on every call.
        // Flags an op's successors overwrite are skipped only when the whole block runs
        // (a budget may end it between the writer and the overwriter).
        let limit = if block.crossing.is_some() {
            count.min(block.len() - 1)
        } else {
            count
        };
        let done = if limit == block.ops.len() {
            self.execute_ops_inner::<true>(block, limit)
        } else {
            self.execute_ops_inner::<false>(block, limit)
        };
        if done & !FAULTED != 0 {
            // Retired instructions clear RF (IRET, which sets it, is generic).
            self.state.rflags &= !fl::RF;
        }
        if done & FAULTED != 0 {
            (done & !FAULTED, self.op_fault.take())
        } else {
            (done, None)
        }
    }

    /// Runs up to `limit` ops; `WHOLE`: they are the whole block (flags may be skipped).
    #[inline(never)]
    fn execute_ops_inner<const WHOLE: bool>(&mut self, block: &Block, limit: usize) -> usize {
        if self.state.rflags & fl::TF != 0 || block.ip(0) != self.state.rip {
            return 0;
        }
        let mut rip = self.state.rip;
        let mut done = 0;
        let mut faulted = 0;
        for op in &block.ops[..limit.min(block.ops.len())] {
            if op.kind == Kind::Generic {
                break;
            }
            match self.op_body(op, op.flags || !WHOLE) {
                Ok(next) => {
                    rip = next;
                    // Counted per op: a device reached by a later op's access reads the
                    // count as its clock.
                    self.icount += 1;
                }
                Err(f) => {
                    self.op_fault = Some(f);
                    faulted = FAULTED;
                    break;
                }
            }
            done += 1;
            if self.code_written {
                break;
            }
        }
        // RIP and the interrupt shadow once for the run (no op reads RIP: their
        // RIP-relative operands and return addresses were resolved when translated).
        self.state.rip = rip;
        if done > 0 {
            self.state.interrupt_shadow = false;
        }
        done | faulted
    }

    /// The op's effect; returns the next RIP. `want`: compute the arithmetic flags it
    /// writes. RIP, the instruction count and the interrupt shadow are the caller's.
    #[inline(always)]
    fn op_body(&mut self, op: &Op, want: bool) -> Result<u64, Fault> {
        let mut next = op.next;
        let size = op.size;
        match op.kind {
            Kind::Generic => unreachable!("generic ops run through exec::execute"),
            Kind::Nop => {}
            Kind::MovRR => {
                let v = self.gm(op.r2, op);
                self.sm(op.r, op, v);
            }
            Kind::MovRI => self.sm(op.r, op, op.imm),
            Kind::MovRM => {
                let v = self.load(&op.mem, size)?;
                self.sm(op.r, op, v);
            }
            Kind::MovMR => {
                let v = self.gm(op.r2, op);
                self.store(&op.mem, size, v)?;
            }
            Kind::MovMI => self.store(&op.mem, size, op.imm)?,
            Kind::ExtRR | Kind::ExtRM => {
                let s = op.src_size;
                let v = if op.kind == Kind::ExtRR {
                    self.get(op.r2, s)
                } else {
                    self.load(&op.mem, s)?
                };
                let v = if op.sub != 0 {
                    sign_extend(v, s.into())
                } else {
                    v
                };
                self.sm(op.r, op, v & mask(size.into()));
            }
            Kind::Lea => {
                let a = self.ea(&op.mem);
                self.sm(op.r, op, a & mask(size.into()));
            }
            Kind::AluRR | Kind::AluRI | Kind::AluRM => {
                let a = self.gm(op.r, op);
                let b = match op.kind {
                    Kind::AluRR => self.gm(op.r2, op),
                    Kind::AluRI => op.imm,
                    _ => self.load(&op.mem, size)?,
                };
                let (r, f, write) = self.alu(op, a, b, want);
                if write {
                    self.sm(op.r, op, r);
                }
                if want {
                    self.set_arith(f, fl::ARITH);
                }
            }
            Kind::AddRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::Add as u8, op, b, want);
            }
            Kind::AddRI => self.alu_register(Alu::Add as u8, op, op.imm, want),
            Kind::OrRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::Or as u8, op, b, want);
            }
            Kind::OrRI => self.alu_register(Alu::Or as u8, op, op.imm, want),
            Kind::AndRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::And as u8, op, b, want);
            }
            Kind::AndRI => self.alu_register(Alu::And as u8, op, op.imm, want),
            Kind::SubRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::Sub as u8, op, b, want);
            }
            Kind::SubRI => self.alu_register(Alu::Sub as u8, op, op.imm, want),
            Kind::XorRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::Xor as u8, op, b, want);
            }
            Kind::XorRI => self.alu_register(Alu::Xor as u8, op, op.imm, want),
            Kind::CmpRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::Cmp as u8, op, b, want);
            }
            Kind::CmpRI => self.alu_register(Alu::Cmp as u8, op, op.imm, want),
            Kind::TestRR => {
                let b = self.gm(op.r2, op);
                self.alu_register(Alu::Test as u8, op, b, want);
            }
            Kind::TestRI => self.alu_register(Alu::Test as u8, op, op.imm, want),
            Kind::AluMR | Kind::AluMI => {
                let offset = self.ea(&op.mem);
                let a = self.load_at(&op.mem, offset, size)?;
                let b = if op.kind == Kind::AluMR {
                    self.gm(op.r2, op)
                } else {
                    op.imm
                };
                let (r, f, write) = self.alu(op, a, b, true);
                if write {
                    self.store_at(&op.mem, offset, size, r)?;
                }
                self.set_arith(f, fl::ARITH);
            }
            Kind::Inc | Kind::Dec => {
                let a = self.gm(op.r, op);
                if !want {
                    let r = if op.kind == Kind::Inc {
                        a.wrapping_add(1)
                    } else {
                        a.wrapping_sub(1)
                    };
                    self.sm(op.r, op, r);
                    return Ok(next);
                }
                let (r, f) = if op.kind == Kind::Inc {
                    add_flags(a, 1, false, op.m, op.sign)
                } else {
                    sub_flags(a, 1, false, op.m, op.sign)
                };
                self.sm(op.r, op, r);
                self.set_arith(f, fl::ARITH & !CF);
            }
            Kind::Neg => {
                let a = self.gm(op.r, op);
                let (r, f) = sub_flags(0, a, false, op.m, op.sign);
                self.sm(op.r, op, r);
                if want {
                    self.set_arith(f, fl::ARITH);
                }
            }
            Kind::Not => {
                let a = self.gm(op.r, op);
                self.sm(op.r, op, !a);
            }
            Kind::ShiftRI | Kind::ShiftRC => {
                let a = self.gm(op.r, op);
                let count = if op.kind == Kind::ShiftRI {
                    op.imm
                } else {
                    self.state.gpr[1] & 0xff
                };
                let (s, f) = (u32::from(size), self.state.rflags);
                // RCL/RCR read CF: always through alu::shift.
                if !want && op.kind == Kind::ShiftRI && !matches!(op.sub, 2 | 3) {
                    self.sm(op.r, op, shift_result(op.sub, a, op.imm, s));
                    return Ok(next);
                }
                // One inlined copy per common kind, so each is straight-line code.
                let (r, f) = match op.sub {
                    0 => alu::shift(Shift::Rol, a, count, s, f),
                    1 => alu::shift(Shift::Ror, a, count, s, f),
                    4 => alu::shift(Shift::Shl, a, count, s, f),
                    5 => alu::shift(Shift::Shr, a, count, s, f),
                    6 => alu::shift(Shift::Sar, a, count, s, f),
                    k => shift_slow(SHIFTS[(k as usize).min(6)], a, count, s, f),
                };
                self.sm(op.r, op, r);
                self.state.rflags = f;
            }
            Kind::ImulRR | Kind::ImulRM | Kind::ImulRRI | Kind::ImulRMI => {
                let src = match op.kind {
                    Kind::ImulRR | Kind::ImulRRI => self.gm(op.r2, op),
                    _ => self.load(&op.mem, size)?,
                };
                let (a, b) = match op.kind {
                    Kind::ImulRR | Kind::ImulRM => (self.gm(op.r, op), src),
                    _ => (src, op.imm),
                };
                let s = u32::from(size);
                let p = sign_extend(a, s) as i64 as i128 * sign_extend(b, s) as i64 as i128;
                let low = (p as u64) & mask(s);
                let overflow = sign_extend(low, s) as i64 as i128 != p;
                self.sm(op.r, op, low);
                if want {
                    self.set_arith(alu::with_cf_of(low, s, overflow), fl::ARITH);
                }
            }
            Kind::MulR | Kind::MulM => {
                let src = if op.kind == Kind::MulR {
                    self.gm(op.r, op)
                } else {
                    self.load(&op.mem, size)?
                };
                let s = u32::from(size);
                let a = self.get(0, size);
                let (low, high, overflow) = if op.sub == 0 {
                    let p = u128::from(a) * u128::from(src);
                    let (low, high) = ((p as u64) & mask(s), ((p >> (s * 8)) as u64) & mask(s));
                    (low, high, high != 0)
                } else {
                    let p = i128::from(sign_extend(a, s) as i64)
                        * i128::from(sign_extend(src, s) as i64);
                    let (low, high) = ((p as u64) & mask(s), ((p >> (s * 8)) as u64) & mask(s));
                    (low, high, i128::from(sign_extend(low, s) as i64) != p)
                };
                self.set(0, size, low);
                self.set(2, size, high);
                self.set_arith(alu::with_cf_of(low, s, overflow), fl::ARITH);
            }
            Kind::Push32R => {
                let v = self.state.gpr[(op.r & 15) as usize];
                self.push32(v)?;
            }
            Kind::Push32I => self.push32(op.imm)?,
            Kind::Pop32R => {
                let v = self.pop32()?;
                self.state.gpr[(op.r & 15) as usize] = v;
            }
            Kind::Call32 => {
                self.push32(next)?;
                next = op.imm;
            }
            Kind::Ret32 => {
                next = self.pop32()?;
            }
            Kind::PushR => {
                let v = self.state.gpr[(op.r & 15) as usize];
                self.push64(v)?;
            }
            Kind::PushI => self.push64(op.imm)?,
            Kind::PopR => {
                let sp = self.state.gpr[4];
                flat_check(sp, seg::SS as u8)?;
                let v = self.read_linear_inline(sp, 8, false)?;
                self.state.gpr[4] = sp.wrapping_add(8);
                self.state.gpr[(op.r & 15) as usize] = v;
            }
            Kind::Call => {
                self.push64(next)?;
                next = op.imm;
            }
            Kind::CallR | Kind::CallM => {
                let target = if op.kind == Kind::CallR {
                    self.state.gpr[(op.r & 15) as usize]
                } else {
                    self.load(&op.mem, 8)?
                };
                if !crate::mmu::canonical(target) {
                    return Err(Fault::gp(0));
                }
                self.push64(next)?;
                next = target;
            }
            Kind::Ret => {
                let sp = self.state.gpr[4];
                flat_check(sp, seg::SS as u8)?;
                let target = self.read_linear_inline(sp, 8, false)?;
                if !crate::mmu::canonical(target) {
                    return Err(Fault::gp(0));
                }
                self.state.gpr[4] = sp.wrapping_add(8);
                next = target;
            }
            Kind::Jmp => next = op.imm,
            Kind::JmpR | Kind::JmpM => {
                let target = if op.kind == Kind::JmpR {
                    self.state.gpr[(op.r & 15) as usize]
                } else {
                    self.load(&op.mem, 8)?
                };
                if !crate::mmu::canonical(target) {
                    return Err(Fault::gp(0));
                }
                next = target;
            }
            Kind::Jcc => {
                if condition(self.state.rflags, op.sub) {
                    next = op.imm;
                }
            }
            Kind::SetccR => {
                let v = u64::from(condition(self.state.rflags, op.sub));
                self.set(op.r, 1, v);
            }
            Kind::CmovRR | Kind::CmovRM => {
                let v = if op.kind == Kind::CmovRR {
                    self.gm(op.r2, op)
                } else {
                    self.load(&op.mem, size)?
                };
                if condition(self.state.rflags, op.sub) {
                    self.sm(op.r, op, v);
                } else if size == 4 {
                    // A 32-bit CMOV zero-extends its destination even when it does not move.
                    let keep = self.get(op.r, 4);
                    self.set(op.r, 4, keep);
                }
            }
            Kind::XchgRR => {
                let a = self.gm(op.r, op);
                let b = self.gm(op.r2, op);
                self.sm(op.r, op, b);
                self.sm(op.r2, op, a);
            }
            Kind::Bswap => {
                let v = self.gm(op.r, op);
                let r = if size == 8 {
                    v.swap_bytes()
                } else {
                    u64::from((v as u32).swap_bytes())
                };
                self.sm(op.r, op, r);
            }
            Kind::Cext => {
                let a = self.state.gpr[0];
                let v = sign_extend(a, u32::from(size) / 2);
                self.set(0, size, v);
            }
            Kind::Cdx => {
                let a = self.state.gpr[0];
                let v = ((sign_extend(a, size.into()) as i64) >> 63) as u64;
                self.set(2, size, v);
            }
        }
        Ok(next)
    }
}

/// The result of a shift or rotate by an immediate whose flags are not needed.
#[inline(always)]
fn shift_result(kind: u8, a: u64, count: u64, size: u32) -> u64 {
    let bits = size * 8;
    let count = (count & if size == 8 { 0x3f } else { 0x1f }) as u32;
    let m = mask(size);
    match kind {
        0 | 1 => {
            let n = count % bits;
            if n == 0 {
                a
            } else if kind == 0 {
                ((a << n) | (a >> (bits - n))) & m
            } else {
                ((a >> n) | (a << (bits - n))) & m
            }
        }
        4 => a.checked_shl(count).unwrap_or(0) & m,
        5 => a.checked_shr(count).unwrap_or(0),
        _ => ((sign_extend(a, size) as i64) >> count.min(63)) as u64 & m,
    }
}

/// Marks which ops of a block must compute their arithmetic flags: those whose flags are
/// read (or may be observed) before later ops of the block overwrite them. Backwards over
/// the block, per flag: live at the end of the block (the next block may read them), at
/// any op that can fault (the exception sees RFLAGS as before it) and at any generic op.
/// `crossing`: the last op runs apart (its second page is checked first), so it counts as
/// a reader.
pub(crate) fn analyse_flags(ops: &mut [Op], crossing: bool) {
    let mut live = fl::ARITH;
    let last = ops.len().wrapping_sub(1);
    for (n, op) in ops.iter_mut().enumerate().rev() {
        let (reads, writes, faults) = flag_use(op);
        op.flags = live & writes != 0 || faults || (crossing && n == last);
        if faults || (crossing && n == last) {
            live = fl::ARITH;
        } else {
            live = (live & !writes) | reads;
        }
    }
}

/// The arithmetic flags an op reads, those it always writes, and whether it can fault.
fn flag_use(op: &Op) -> (u64, u64, bool) {
    const ALL: u64 = fl::ARITH;
    let alu_reads = |op: &Op| {
        if matches!(ALU[(op.sub as usize).min(8)], Alu::Adc | Alu::Sbb) {
            CF
        } else {
            0
        }
    };
    match op.kind {
        Kind::Nop
        | Kind::MovRR
        | Kind::MovRI
        | Kind::ExtRR
        | Kind::Lea
        | Kind::Not
        | Kind::XchgRR
        | Kind::Bswap
        | Kind::Cext
        | Kind::Cdx
        | Kind::Jmp => (0, 0, false),
        Kind::AluRR | Kind::AluRI => (alu_reads(op), ALL, false),
        Kind::AddRR | Kind::AddRI => (0, ALL, false),
        Kind::OrRR | Kind::OrRI => (0, ALL, false),
        Kind::AndRR | Kind::AndRI => (0, ALL, false),
        Kind::SubRR | Kind::SubRI => (0, ALL, false),
        Kind::XorRR | Kind::XorRI => (0, ALL, false),
        Kind::CmpRR | Kind::CmpRI => (0, ALL, false),
        Kind::TestRR | Kind::TestRI => (0, ALL, false),

        Kind::Inc | Kind::Dec => (0, ALL & !CF, false),
        Kind::Neg | Kind::ImulRR | Kind::ImulRRI | Kind::MulR => (0, ALL, false),
        Kind::ShiftRI => {
            let count = op.imm & if op.size == 8 { 0x3f } else { 0x1f };
            match op.sub {
                _ if count == 0 => (0, 0, false),
                0 | 1 => (0, CF | fl::OF, false),
                4..=6 => (0, ALL, false),
                // RCL/RCR read CF.
                _ => (ALL, 0, false),
            }
        }
        Kind::ShiftRC | Kind::Jcc | Kind::SetccR | Kind::CmovRR => (ALL, 0, false),
        _ => (ALL, 0, true),
    }
}

#[inline(never)]
fn shift_slow(kind: Shift, a: u64, count: u64, size: u32, flags: u64) -> (u64, u64) {
    alu::shift(kind, a, count, size, flags)
}

/// The 64-bit-mode check of a linear address through a segment with base 0: canonical,
/// else #SS(0) through SS and #GP(0) otherwise.
#[inline(always)]
fn flat_check(linear: u64, segment: u8) -> Result<(), Fault> {
    if crate::mmu::canonical(linear) {
        Ok(())
    } else if usize::from(segment) == seg::SS {
        Err(Fault::ss(0))
    } else {
        Err(Fault::gp(0))
    }
}

/// Whether condition code `cc` ([`ConditionCode`] as a byte) holds in `f`.
#[inline(always)]
fn condition(f: u64, cc: u8) -> bool {
    use crate::state::flags::{OF, PF, SF, ZF};
    let c = f & CF != 0;
    let z = f & ZF != 0;
    let s = f & SF != 0;
    let o = f & OF != 0;
    let p = f & PF != 0;
    match cc {
        1 => o,
        2 => !o,
        3 => c,
        4 => !c,
        5 => z,
        6 => !z,
        7 => c || z,
        8 => !c && !z,
        9 => s,
        10 => !s,
        11 => p,
        12 => !p,
        13 => s != o,
        14 => s == o,
        15 => z || s != o,
        16 => !z && s == o,
        _ => true,
    }
}
