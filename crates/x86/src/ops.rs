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
use crate::cpu::{Event, X86Cpu};
use crate::state::flags::{self as fl, CF};
use crate::state::{seg, Mode};
use crate::Fault;

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
    let imm_size = |n: u32| match kind(n) {
        OpKind::Immediate8
        | OpKind::Immediate8to16
        | OpKind::Immediate8to32
        | OpKind::Immediate8to64
        | OpKind::Immediate16
        | OpKind::Immediate32
        | OpKind::Immediate32to64
        | OpKind::Immediate64 => true,
        _ => false,
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
        Mnemonic::Nop => op.kind = Kind::Nop,
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

    /// Writes a register: 8/16-bit writes merge, 32-bit writes zero-extend.
    #[inline(always)]
    fn set(&mut self, r: u8, size: u8, v: u64) {
        let g = &mut self.state.gpr[(r & 15) as usize];
        *g = match size {
            1 => (*g & !0xff) | (v & 0xff),
            2 => (*g & !0xffff) | (v & 0xffff),
            4 => v & 0xffff_ffff,
            _ => v,
        };
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
            return self.read_linear(offset, size.into(), false);
        }
        self.read(m.seg as usize, offset, size.into())
    }

    #[inline(always)]
    fn store_at(&mut self, m: &Mem, offset: u64, size: u8, v: u64) -> Result<(), Fault> {
        let v = v & mask(size.into());
        if m.flat {
            flat_check(offset, m.seg)?;
            return self.write_linear(offset, size.into(), v, false);
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
        self.write_linear(sp, 8, v, false)?;
        self.state.gpr[4] = sp;
        Ok(())
    }

    /// ALU operation `k` on `a` and `b`: (result, flags, whether the result is written).
    #[inline(always)]
    fn alu(&self, k: u8, a: u64, b: u64, size: u8) -> (u64, u64, bool) {
        let size = u32::from(size);
        let carry = self.state.rflags & CF != 0;
        match ALU[(k as usize).min(8)] {
            Alu::Add => {
                let (r, f) = alu::add(a, b, false, size);
                (r, f, true)
            }
            Alu::Adc => {
                let (r, f) = alu::add(a, b, carry, size);
                (r, f, true)
            }
            Alu::Sub => {
                let (r, f) = alu::sub(a, b, false, size);
                (r, f, true)
            }
            Alu::Cmp => {
                let (r, f) = alu::sub(a, b, false, size);
                (r, f, false)
            }
            Alu::Sbb => {
                let (r, f) = alu::sub(a, b, carry, size);
                (r, f, true)
            }
            Alu::And => (a & b, alu::logic(a & b, size), true),
            Alu::Test => (a & b, alu::logic(a & b, size), false),
            Alu::Or => (a | b, alu::logic(a | b, size), true),
            Alu::Xor => (a ^ b, alu::logic(a ^ b, size), true),
        }
    }

    /// Executes a specialised op (not [`Kind::Generic`]) at RIP. On `Ok` RIP is at the next
    /// instruction (or the branch target) and the instruction has retired; on `Err` no
    /// architectural state changed.
    #[inline]
    pub(crate) fn execute_op(&mut self, op: &Op) -> Result<Event, Fault> {
        let mut next = op.next;
        let size = op.size;
        match op.kind {
            Kind::Generic => unreachable!("generic ops run through exec::execute"),
            Kind::Nop => {}
            Kind::MovRR => {
                let v = self.get(op.r2, size);
                self.set(op.r, size, v);
            }
            Kind::MovRI => self.set(op.r, size, op.imm),
            Kind::MovRM => {
                let v = self.load(&op.mem, size)?;
                self.set(op.r, size, v);
            }
            Kind::MovMR => {
                let v = self.get(op.r2, size);
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
                self.set(op.r, size, v & mask(size.into()));
            }
            Kind::Lea => {
                let a = self.ea(&op.mem);
                self.set(op.r, size, a & mask(size.into()));
            }
            Kind::AluRR | Kind::AluRI | Kind::AluRM => {
                let a = self.get(op.r, size);
                let b = match op.kind {
                    Kind::AluRR => self.get(op.r2, size),
                    Kind::AluRI => op.imm,
                    _ => self.load(&op.mem, size)?,
                };
                let (r, f, write) = self.alu(op.sub, a, b, size);
                if write {
                    self.set(op.r, size, r);
                }
                self.set_arith(f, fl::ARITH);
            }
            Kind::AluMR | Kind::AluMI => {
                let offset = self.ea(&op.mem);
                let a = self.load_at(&op.mem, offset, size)?;
                let b = if op.kind == Kind::AluMR {
                    self.get(op.r2, size)
                } else {
                    op.imm
                };
                let (r, f, write) = self.alu(op.sub, a, b, size);
                if write {
                    self.store_at(&op.mem, offset, size, r)?;
                }
                self.set_arith(f, fl::ARITH);
            }
            Kind::Inc | Kind::Dec => {
                let a = self.get(op.r, size);
                let (r, f) = if op.kind == Kind::Inc {
                    alu::add(a, 1, false, size.into())
                } else {
                    alu::sub(a, 1, false, size.into())
                };
                self.set(op.r, size, r);
                self.set_arith(f, fl::ARITH & !CF);
            }
            Kind::Neg => {
                let a = self.get(op.r, size);
                let (r, f) = alu::sub(0, a, false, size.into());
                self.set(op.r, size, r);
                self.set_arith(f, fl::ARITH);
            }
            Kind::Not => {
                let a = self.get(op.r, size);
                self.set(op.r, size, !a);
            }
            Kind::ShiftRI | Kind::ShiftRC => {
                let a = self.get(op.r, size);
                let count = if op.kind == Kind::ShiftRI {
                    op.imm
                } else {
                    self.state.gpr[1] & 0xff
                };
                let (s, f) = (u32::from(size), self.state.rflags);
                // One inlined copy per common kind, so each is straight-line code.
                let (r, f) = match op.sub {
                    0 => alu::shift(Shift::Rol, a, count, s, f),
                    1 => alu::shift(Shift::Ror, a, count, s, f),
                    4 => alu::shift(Shift::Shl, a, count, s, f),
                    5 => alu::shift(Shift::Shr, a, count, s, f),
                    6 => alu::shift(Shift::Sar, a, count, s, f),
                    k => shift_slow(SHIFTS[(k as usize).min(6)], a, count, s, f),
                };
                self.set(op.r, size, r);
                self.state.rflags = f;
            }
            Kind::ImulRR | Kind::ImulRM | Kind::ImulRRI | Kind::ImulRMI => {
                let src = match op.kind {
                    Kind::ImulRR | Kind::ImulRRI => self.get(op.r2, size),
                    _ => self.load(&op.mem, size)?,
                };
                let (a, b) = match op.kind {
                    Kind::ImulRR | Kind::ImulRM => (self.get(op.r, size), src),
                    _ => (src, op.imm),
                };
                let s = u32::from(size);
                let p = sign_extend(a, s) as i64 as i128 * sign_extend(b, s) as i64 as i128;
                let low = (p as u64) & mask(s);
                let overflow = sign_extend(low, s) as i64 as i128 != p;
                self.set(op.r, size, low);
                self.set_arith(alu::with_cf_of(low, s, overflow), fl::ARITH);
            }
            Kind::PushR => {
                let v = self.state.gpr[(op.r & 15) as usize];
                self.push64(v)?;
            }
            Kind::PushI => self.push64(op.imm)?,
            Kind::PopR => {
                let sp = self.state.gpr[4];
                flat_check(sp, seg::SS as u8)?;
                let v = self.read_linear(sp, 8, false)?;
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
                let target = self.read_linear(sp, 8, false)?;
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
                    self.get(op.r2, size)
                } else {
                    self.load(&op.mem, size)?
                };
                if condition(self.state.rflags, op.sub) {
                    self.set(op.r, size, v);
                } else if size == 4 {
                    // A 32-bit CMOV zero-extends its destination even when it does not move.
                    let keep = self.get(op.r, 4);
                    self.set(op.r, 4, keep);
                }
            }
            Kind::XchgRR => {
                let a = self.get(op.r, size);
                let b = self.get(op.r2, size);
                self.set(op.r, size, b);
                self.set(op.r2, size, a);
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
        self.state.rip = next;
        self.state.interrupt_shadow = false;
        self.icount += 1;
        Ok(Event::Retired)
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
