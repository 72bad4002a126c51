//! Instruction semantics over iced-x86's decoded [`Instruction`]s: the integer instruction
//! set and the system instructions. Anything not listed here raises #UD (x87, MMX and SSE
//! wait for the `x86-float` crate; see the crate's documentation).

use iced_x86::{Code, ConditionCode, FlowControl, Instruction, Mnemonic, OpKind, Register};

use crate::alu::{self, mask, sign_extend, Shift};
use crate::cpu::{Event, X86Cpu};
use crate::mmu;
use crate::state::flags::{self as fl, AF, CF, DF, OF, PF, SF, ZF};
use crate::state::{cr, msr, seg, Mode, Segment, State};
use crate::Fault;

type R<T> = Result<T, Fault>;

/// Whether an instruction ends a decoded block: control transfers, and instructions that
/// may change the mode, the address space or the interrupt state.
pub fn ends_block(i: &Instruction) -> bool {
    if i.flow_control() != FlowControl::Next {
        return true;
    }
    matches!(
        i.mnemonic(),
        Mnemonic::Mov | Mnemonic::Pop
            if (0..i.op_count()).any(|n| {
                i.op_kind(n) == OpKind::Register
                    && (i.op_register(n).is_segment_register() || i.op_register(n).is_cr())
            })
    ) || matches!(
        i.mnemonic(),
        Mnemonic::Wrmsr
            | Mnemonic::Lgdt
            | Mnemonic::Lidt
            | Mnemonic::Lldt
            | Mnemonic::Ltr
            | Mnemonic::Invlpg
            | Mnemonic::Popf
            | Mnemonic::Popfd
            | Mnemonic::Popfq
            | Mnemonic::Sti
            | Mnemonic::Cli
            | Mnemonic::Swapgs
            | Mnemonic::Hlt
            | Mnemonic::Lmsw
            | Mnemonic::Clts
    )
}

/// Whether an instruction is INT n, INT3 or INTO (their delivery clears TF, so no
/// single-step trap follows them).
pub fn is_software_interrupt(i: &Instruction) -> bool {
    matches!(
        i.mnemonic(),
        Mnemonic::Int | Mnemonic::Int3 | Mnemonic::Into | Mnemonic::Int1
    )
}

/// Whether an instruction enters the kernel for a system call: SYSCALL, SYSENTER or
/// INT 0x80.
pub fn is_system_call(i: &Instruction) -> bool {
    match i.mnemonic() {
        Mnemonic::Syscall | Mnemonic::Sysenter => true,
        Mnemonic::Int => i.immediate(0) == 0x80,
        _ => false,
    }
}

/// Whether an instruction is a string instruction (commits per iteration).
pub fn is_string(i: &Instruction) -> bool {
    (0..i.op_count()).any(|n| {
        matches!(
            i.op_kind(n),
            OpKind::MemorySegSI
                | OpKind::MemorySegESI
                | OpKind::MemorySegRSI
                | OpKind::MemoryESDI
                | OpKind::MemoryESEDI
                | OpKind::MemoryESRDI
        )
    })
}

// ---- registers -------------------------------------------------------------------------

/// Reads a general, segment or instruction-pointer register by iced's name.
pub fn reg_get(s: &State, r: Register) -> u64 {
    let n = r as usize;
    match n {
        1..=4 => s.gpr[n - 1] & 0xff,
        5..=8 => (s.gpr[n - 5] >> 8) & 0xff,
        9..=20 => s.gpr[n - 9 + 4] & 0xff,
        21..=36 => s.gpr[n - 21] & 0xffff,
        37..=52 => s.gpr[n - 37] & 0xffff_ffff,
        53..=68 => s.gpr[n - 53],
        69 => s.rip & 0xffff_ffff,
        70 => s.rip,
        71..=76 => u64::from(s.segments[n - 71].selector),
        _ => 0,
    }
}

/// Writes a general register (8/16-bit writes merge, 32-bit writes zero-extend).
pub fn reg_set(s: &mut State, r: Register, v: u64) {
    let n = r as usize;
    match n {
        1..=4 => s.gpr[n - 1] = (s.gpr[n - 1] & !0xff) | (v & 0xff),
        5..=8 => s.gpr[n - 5] = (s.gpr[n - 5] & !0xff00) | ((v & 0xff) << 8),
        9..=20 => s.gpr[n - 9 + 4] = (s.gpr[n - 9 + 4] & !0xff) | (v & 0xff),
        21..=36 => s.gpr[n - 21] = (s.gpr[n - 21] & !0xffff) | (v & 0xffff),
        37..=52 => s.gpr[n - 37] = v & 0xffff_ffff,
        53..=68 => s.gpr[n - 53] = v,
        _ => {}
    }
}

fn seg_index(r: Register) -> usize {
    match r {
        Register::ES => seg::ES,
        Register::CS => seg::CS,
        Register::SS => seg::SS,
        Register::FS => seg::FS,
        Register::GS => seg::GS,
        _ => seg::DS,
    }
}

// ---- operands ----------------------------------------------------------------------------

pub(crate) fn address_mask(cpu: &X86Cpu, i: &Instruction) -> u64 {
    let base = i.memory_base();
    let index = i.memory_index();
    let size = if base != Register::None && base != Register::RIP && base != Register::EIP {
        base.size()
    } else if index != Register::None {
        index.size()
    } else if base == Register::EIP {
        4
    } else if base == Register::RIP {
        8
    } else {
        match i.memory_displ_size() {
            2 => 2,
            4 if cpu.state.mode() != Mode::Long64 => 4,
            _ => 8,
        }
    };
    mask(size as u32)
}

/// The effective address (segment offset) of the memory operand.
fn ea(cpu: &X86Cpu, i: &Instruction) -> u64 {
    let base = i.memory_base();
    let mut a = i.memory_displacement64();
    if base == Register::RIP || base == Register::EIP {
        return a & address_mask(cpu, i);
    }
    if base != Register::None {
        a = a.wrapping_add(reg_get(&cpu.state, base));
    }
    let index = i.memory_index();
    if index != Register::None {
        a = a.wrapping_add(
            reg_get(&cpu.state, index).wrapping_mul(u64::from(i.memory_index_scale())),
        );
    }
    a & address_mask(cpu, i)
}

fn op_size(i: &Instruction, n: u32) -> u32 {
    match i.op_kind(n) {
        OpKind::Register => i.op_register(n).size() as u32,
        OpKind::Memory => i.memory_size().size() as u32,
        OpKind::Immediate8 | OpKind::Immediate8_2nd => 1,
        OpKind::Immediate16 | OpKind::Immediate8to16 => 2,
        OpKind::Immediate32 | OpKind::Immediate8to32 => 4,
        _ => 8,
    }
}

fn read_op(cpu: &mut X86Cpu, i: &Instruction, n: u32, size: u32) -> R<u64> {
    Ok(match i.op_kind(n) {
        OpKind::Register => reg_get(&cpu.state, i.op_register(n)),
        OpKind::Memory => {
            let offset = ea(cpu, i);
            cpu.read(seg_index(i.memory_segment()), offset, size)?
        }
        _ => i.immediate(n) & mask(size),
    })
}

fn write_op(cpu: &mut X86Cpu, i: &Instruction, n: u32, size: u32, v: u64) -> R<()> {
    match i.op_kind(n) {
        OpKind::Register => {
            reg_set(&mut cpu.state, i.op_register(n), v);
            Ok(())
        }
        OpKind::Memory => {
            let offset = ea(cpu, i);
            cpu.write(seg_index(i.memory_segment()), offset, size, v & mask(size))
        }
        _ => Err(Fault::ud()),
    }
}

fn set_flags(cpu: &mut X86Cpu, value: u64, which: u64) {
    cpu.state.rflags = (cpu.state.rflags & !which) | (value & which);
}

fn cond(f: u64, cc: ConditionCode) -> bool {
    let c = f & CF != 0;
    let z = f & ZF != 0;
    let s = f & SF != 0;
    let o = f & OF != 0;
    let p = f & PF != 0;
    match cc {
        ConditionCode::o => o,
        ConditionCode::no => !o,
        ConditionCode::b => c,
        ConditionCode::ae => !c,
        ConditionCode::e => z,
        ConditionCode::ne => !z,
        ConditionCode::be => c || z,
        ConditionCode::a => !c && !z,
        ConditionCode::s => s,
        ConditionCode::ns => !s,
        ConditionCode::p => p,
        ConditionCode::np => !p,
        ConditionCode::l => s != o,
        ConditionCode::ge => s == o,
        ConditionCode::le => z || s != o,
        ConditionCode::g => !z && s == o,
        ConditionCode::None => true,
    }
}

// ---- stack -------------------------------------------------------------------------------

fn stack_mask(cpu: &X86Cpu) -> u64 {
    match cpu.state.mode() {
        Mode::Long64 => u64::MAX,
        _ if cpu.state.segments[seg::SS].attributes & Segment::DB != 0 => 0xffff_ffff,
        _ => 0xffff,
    }
}

fn set_sp(cpu: &mut X86Cpu, value: u64) {
    let m = stack_mask(cpu);
    cpu.state.gpr[4] = (cpu.state.gpr[4] & !m) | (value & m);
}

fn push(cpu: &mut X86Cpu, value: u64, size: u32) -> R<()> {
    let m = stack_mask(cpu);
    let sp = cpu.state.gpr[4].wrapping_sub(u64::from(size)) & m;
    cpu.write(seg::SS, sp, size, value & mask(size))?;
    set_sp(cpu, sp);
    Ok(())
}

fn pop(cpu: &mut X86Cpu, size: u32) -> R<u64> {
    let m = stack_mask(cpu);
    let sp = cpu.state.gpr[4] & m;
    let value = cpu.read(seg::SS, sp, size)?;
    set_sp(cpu, sp.wrapping_add(u64::from(size)));
    Ok(value)
}

fn branch(cpu: &mut X86Cpu, target: u64, size: u32) -> R<()> {
    let target = target & mask(size);
    if cpu.state.mode() == Mode::Long64 && !mmu::canonical(target) {
        return Err(Fault::gp(0));
    }
    cpu.state.rip = target;
    Ok(())
}

fn cpl0(cpu: &X86Cpu) -> R<()> {
    if cpu.state.cpl != 0 {
        Err(Fault::gp(0))
    } else {
        Ok(())
    }
}

fn iopl(cpu: &X86Cpu) -> u8 {
    ((cpu.state.rflags >> 12) & 3) as u8
}

// ---- the instructions ------------------------------------------------------------------------

/// Executes `i` (the instruction at RIP). On `Ok` RIP points at the next instruction.
pub fn execute(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let next = i.next_ip();
    let ip_mask = match cpu.state.mode() {
        Mode::Long64 => u64::MAX,
        Mode::Protected32 => 0xffff_ffff,
        _ => 0xffff,
    };
    let next = next & ip_mask;
    // Default: fall through. Branches overwrite `rip` below.
    let old_rip = cpu.state.rip;
    cpu.state.rip = next;
    let result = execute_inner(cpu, i, next);
    if result.is_err() {
        cpu.state.rip = old_rip;
    }
    if cpu.state.interrupt_shadow && !matches!(i.mnemonic(), Mnemonic::Sti) {
        cpu.state.interrupt_shadow = false;
    }
    result
}

fn execute_inner(cpu: &mut X86Cpu, i: &Instruction, next: u64) -> R<Event> {
    use Mnemonic as M;
    if crate::float::handles(i) {
        return crate::float::execute(cpu, i);
    }
    match i.code() {
        Code::Jmp_ptr1616
        | Code::Jmp_ptr1632
        | Code::Jmp_m1616
        | Code::Jmp_m1632
        | Code::Jmp_m1664 => return far_jump(cpu, i, next, false),
        Code::Call_ptr1616
        | Code::Call_ptr1632
        | Code::Call_m1616
        | Code::Call_m1632
        | Code::Call_m1664 => return far_jump(cpu, i, next, true),
        _ => {}
    }
    let m = i.mnemonic();
    match m {
        M::Retf => return far_return(cpu, i),
        M::In | M::Out | M::Insb | M::Insw | M::Insd | M::Outsb | M::Outsw | M::Outsd => {
            return port_io(cpu, i)
        }
        M::Sysenter => return sysenter(cpu),
        M::Lsl | M::Lar => return lsl_lar(cpu, i),
        M::Verr | M::Verw => return verify(cpu, i),
        M::Lss | M::Lds | M::Les | M::Lfs | M::Lgs => return load_far_pointer(cpu, i),
        M::Rdpmc => {
            // Outside CPL 0 without CR4.PCE: #GP(0) (SDM vol. 2 RDPMC). No performance
            // counters are implemented, so an allowed RDPMC is #UD, as in QEMU.
            if cpu.state.cpl != 0 && cpu.state.cr4 & cr::CR4_PCE == 0 {
                return Err(Fault::gp(0));
            }
            return Err(Fault::ud());
        }
        M::Sysexit | M::Sysexitq => return sysexit(cpu, i),
        M::Add | M::Adc | M::Sub | M::Sbb | M::Cmp | M::And | M::Or | M::Xor | M::Test => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let b = read_op(cpu, i, 1, size)? & mask(size);
            let carry = cpu.state.rflags & CF != 0;
            let (r, f) = match m {
                M::Add => alu::add(a, b, false, size),
                M::Adc => alu::add(a, b, carry, size),
                M::Sub | M::Cmp => alu::sub(a, b, false, size),
                M::Sbb => alu::sub(a, b, carry, size),
                M::And | M::Test => (a & b, alu::logic(a & b, size)),
                M::Or => (a | b, alu::logic(a | b, size)),
                _ => (a ^ b, alu::logic(a ^ b, size)),
            };
            if !matches!(m, M::Cmp | M::Test) {
                write_op(cpu, i, 0, size, r)?;
            }
            set_flags(cpu, f, fl::ARITH);
        }
        M::Inc | M::Dec => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let (r, f) = if m == M::Inc {
                alu::add(a, 1, false, size)
            } else {
                alu::sub(a, 1, false, size)
            };
            write_op(cpu, i, 0, size, r)?;
            set_flags(cpu, f, fl::ARITH & !CF);
        }
        M::Neg => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let (r, f) = alu::sub(0, a, false, size);
            write_op(cpu, i, 0, size, r)?;
            set_flags(cpu, f, fl::ARITH);
        }
        M::Not => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            write_op(cpu, i, 0, size, !a & mask(size))?;
        }
        M::Mul | M::Imul if i.op_count() == 1 => {
            let size = op_size(i, 0);
            let src = read_op(cpu, i, 0, size)?;
            let a = cpu.state.gpr[0] & mask(size);
            let bits = size * 8;
            let (low, high, overflow) = if m == M::Mul {
                let p = a as u128 * src as u128;
                let low = (p as u64) & mask(size);
                let high = ((p >> bits) as u64) & mask(size);
                (low, high, high != 0)
            } else {
                let p = sign_extend(a, size) as i64 as i128 * sign_extend(src, size) as i64 as i128;
                let low = (p as u64) & mask(size);
                let high = ((p >> bits) as u64) & mask(size);
                (low, high, sign_extend(low, size) as i64 as i128 != p)
            };
            if size == 1 {
                reg_set(&mut cpu.state, Register::AX, low | (high << 8));
            } else {
                let (ra, rd) = match size {
                    2 => (Register::AX, Register::DX),
                    4 => (Register::EAX, Register::EDX),
                    _ => (Register::RAX, Register::RDX),
                };
                reg_set(&mut cpu.state, ra, low);
                reg_set(&mut cpu.state, rd, high);
            }
            set_flags(cpu, alu::with_cf_of(low, size, overflow), fl::ARITH);
        }
        M::Imul => {
            let size = op_size(i, 0);
            let (a, b) = if i.op_count() == 2 {
                (read_op(cpu, i, 0, size)?, read_op(cpu, i, 1, size)?)
            } else {
                (read_op(cpu, i, 1, size)?, read_op(cpu, i, 2, size)?)
            };
            let p = sign_extend(a, size) as i64 as i128
                * sign_extend(b & mask(size), size) as i64 as i128;
            let low = (p as u64) & mask(size);
            let overflow = sign_extend(low, size) as i64 as i128 != p;
            write_op(cpu, i, 0, size, low)?;
            set_flags(cpu, alu::with_cf_of(low, size, overflow), fl::ARITH);
        }
        M::Div | M::Idiv => {
            let size = op_size(i, 0);
            let divisor = read_op(cpu, i, 0, size)?;
            if divisor == 0 {
                return Err(Fault::de());
            }
            let bits = size * 8;
            let (lo, hi) = if size == 1 {
                (cpu.state.gpr[0] & 0xff, (cpu.state.gpr[0] >> 8) & 0xff)
            } else {
                (cpu.state.gpr[0] & mask(size), cpu.state.gpr[2] & mask(size))
            };
            let dividend = ((hi as u128) << bits) | lo as u128;
            let (q, r) = if m == M::Div {
                let q = dividend / divisor as u128;
                if q > mask(size) as u128 {
                    return Err(Fault::de());
                }
                (q as u64, (dividend % divisor as u128) as u64)
            } else {
                // Sign-extend the 2×size dividend.
                let shift = 128 - 2 * bits;
                let n = ((dividend << shift) as i128) >> shift;
                let d = sign_extend(divisor, size) as i64 as i128;
                let q = n.checked_div(d).ok_or_else(Fault::de)?;
                let min = -(1i128 << (bits - 1));
                let max = (1i128 << (bits - 1)) - 1;
                if q < min || q > max {
                    return Err(Fault::de());
                }
                ((q as u64) & mask(size), ((n % d) as u64) & mask(size))
            };
            if size == 1 {
                reg_set(&mut cpu.state, Register::AX, q | (r << 8));
            } else {
                let (ra, rd) = match size {
                    2 => (Register::AX, Register::DX),
                    4 => (Register::EAX, Register::EDX),
                    _ => (Register::RAX, Register::RDX),
                };
                reg_set(&mut cpu.state, ra, q);
                reg_set(&mut cpu.state, rd, r);
            }
        }
        M::Rol | M::Ror | M::Rcl | M::Rcr | M::Shl | M::Sal | M::Shr | M::Sar => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let count = read_op(cpu, i, 1, 1)?;
            let kind = match m {
                M::Rol => Shift::Rol,
                M::Ror => Shift::Ror,
                M::Rcl => Shift::Rcl,
                M::Rcr => Shift::Rcr,
                M::Shr => Shift::Shr,
                M::Sar => Shift::Sar,
                _ => Shift::Shl,
            };
            let (r, f) = alu::shift(kind, a, count, size, cpu.state.rflags);
            write_op(cpu, i, 0, size, r)?;
            cpu.state.rflags = f;
        }
        M::Shld | M::Shrd => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let b = read_op(cpu, i, 1, size)?;
            let count = read_op(cpu, i, 2, 1)?;
            let (r, f) = alu::double_shift(m == M::Shld, a, b, count, size, cpu.state.rflags);
            write_op(cpu, i, 0, size, r)?;
            cpu.state.rflags = f;
        }
        M::Bt | M::Bts | M::Btr | M::Btc => {
            let size = op_size(i, 0);
            let bits = u64::from(size * 8);
            let offset_imm = i.op_kind(1) != OpKind::Register;
            let raw = read_op(cpu, i, 1, size)?;
            let (value, bit, location) = if i.op_kind(0) == OpKind::Memory {
                let base = ea(cpu, i);
                let (address, bit) = if offset_imm {
                    (base, raw & (bits - 1))
                } else {
                    let offset = sign_extend(raw, size) as i64;
                    let unit = offset.div_euclid(bits as i64);
                    let address =
                        base.wrapping_add((unit * i64::from(size)) as u64) & address_mask(cpu, i);
                    (address, offset.rem_euclid(bits as i64) as u64)
                };
                let segment = seg_index(i.memory_segment());
                (
                    cpu.read(segment, address, size)?,
                    bit,
                    Some((segment, address)),
                )
            } else {
                (read_op(cpu, i, 0, size)?, raw & (bits - 1), None)
            };
            let set = (value >> bit) & 1 != 0;
            let new = match m {
                M::Bts => value | (1 << bit),
                M::Btr => value & !(1 << bit),
                M::Btc => value ^ (1 << bit),
                _ => value,
            };
            if m != M::Bt {
                match location {
                    Some((segment, address)) => cpu.write(segment, address, size, new)?,
                    None => write_op(cpu, i, 0, size, new)?,
                }
            }
            set_flags(cpu, if set { CF } else { 0 }, CF);
        }
        M::Bsf | M::Bsr | M::Tzcnt | M::Lzcnt => {
            // TZCNT and LZCNT execute as BSF and BSR: BMI1 and ABM are not advertised, and
            // on such processors the F3 prefix is ignored.
            let size = op_size(i, 0);
            let src = read_op(cpu, i, 1, size)?;
            if src == 0 {
                set_flags(cpu, ZF, ZF);
                // The destination is left unchanged (32-bit: not even zero-extended), as
                // processors do.
            } else {
                let r = if matches!(m, M::Bsf | M::Tzcnt) {
                    u64::from(src.trailing_zeros())
                } else {
                    63 - u64::from(src.leading_zeros())
                };
                write_op(cpu, i, 0, size, r)?;
                set_flags(cpu, 0, ZF);
            }
        }
        M::Popcnt => {
            let size = op_size(i, 0);
            let src = read_op(cpu, i, 1, size)?;
            write_op(cpu, i, 0, size, u64::from(src.count_ones()))?;
            set_flags(cpu, if src == 0 { ZF } else { 0 }, fl::ARITH);
        }
        M::Mov => return mov(cpu, i),
        M::Movzx | M::Movsx | M::Movsxd => {
            let size = op_size(i, 0);
            let src_size = op_size(i, 1);
            let v = read_op(cpu, i, 1, src_size)?;
            let v = if m == M::Movzx {
                v
            } else {
                sign_extend(v, src_size)
            };
            write_op(cpu, i, 0, size, v & mask(size))?;
        }
        M::Lea => {
            let size = op_size(i, 0);
            let a = ea(cpu, i);
            write_op(cpu, i, 0, size, a & mask(size))?;
        }
        M::Xchg => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let b = read_op(cpu, i, 1, size)?;
            // Memory first, so a fault changes nothing.
            if i.op_kind(1) == OpKind::Memory {
                write_op(cpu, i, 1, size, a)?;
                write_op(cpu, i, 0, size, b)?;
            } else {
                write_op(cpu, i, 0, size, b)?;
                write_op(cpu, i, 1, size, a)?;
            }
        }
        M::Xadd => {
            let size = op_size(i, 0);
            let a = read_op(cpu, i, 0, size)?;
            let b = read_op(cpu, i, 1, size)?;
            let (r, f) = alu::add(a, b, false, size);
            write_op(cpu, i, 0, size, r)?;
            write_op(cpu, i, 1, size, a)?;
            if i.op_kind(0) == OpKind::Register
                && i.op_register(0).full_register() == i.op_register(1).full_register()
            {
                write_op(cpu, i, 0, size, r)?;
            }
            set_flags(cpu, f, fl::ARITH);
        }
        M::Cmpxchg => {
            let size = op_size(i, 0);
            let dst = read_op(cpu, i, 0, size)?;
            let acc = cpu.state.gpr[0] & mask(size);
            let (_, f) = alu::sub(acc, dst, false, size);
            if acc == dst {
                let src = read_op(cpu, i, 1, size)?;
                write_op(cpu, i, 0, size, src)?;
            } else {
                // The destination is written back with its own value (a locked RMW).
                if i.op_kind(0) == OpKind::Memory {
                    write_op(cpu, i, 0, size, dst)?;
                }
                let ra = match size {
                    1 => Register::AL,
                    2 => Register::AX,
                    4 => Register::EAX,
                    _ => Register::RAX,
                };
                reg_set(&mut cpu.state, ra, dst);
            }
            set_flags(cpu, f, fl::ARITH);
        }
        M::Cmpxchg8b | M::Cmpxchg16b => {
            let half = if m == M::Cmpxchg8b { 4 } else { 8 };
            let offset = ea(cpu, i);
            let segment = seg_index(i.memory_segment());
            if half == 8 && offset & 15 != 0 {
                return Err(Fault::gp(0));
            }
            let lo = cpu.read(segment, offset, half)?;
            let hi = cpu.read(segment, offset + u64::from(half), half)?;
            let m_ = mask(half);
            let (eax, edx) = (cpu.state.gpr[0] & m_, cpu.state.gpr[2] & m_);
            cpu.probe_write(segment, offset, half * 2)?;
            if lo == eax && hi == edx {
                cpu.write(segment, offset, half, cpu.state.gpr[3] & m_)?;
                cpu.write(
                    segment,
                    offset + u64::from(half),
                    half,
                    cpu.state.gpr[1] & m_,
                )?;
                set_flags(cpu, ZF, ZF);
            } else {
                cpu.write(segment, offset, half, lo)?;
                cpu.write(segment, offset + u64::from(half), half, hi)?;
                let (ra, rd) = if half == 4 {
                    (Register::EAX, Register::EDX)
                } else {
                    (Register::RAX, Register::RDX)
                };
                reg_set(&mut cpu.state, ra, lo);
                reg_set(&mut cpu.state, rd, hi);
                set_flags(cpu, 0, ZF);
            }
        }
        M::Bswap => {
            let size = op_size(i, 0);
            let v = read_op(cpu, i, 0, size)?;
            let r = match size {
                8 => v.swap_bytes(),
                4 => u64::from((v as u32).swap_bytes()),
                // 16-bit BSWAP is undefined; processors clear the register's low word.
                _ => 0,
            };
            write_op(cpu, i, 0, size, r)?;
        }
        M::Cbw | M::Cwde | M::Cdqe | M::Cwd | M::Cdq => {
            let a = cpu.state.gpr[0];
            match m {
                M::Cbw => reg_set(&mut cpu.state, Register::AX, sign_extend(a, 1)),
                M::Cwde => reg_set(&mut cpu.state, Register::EAX, sign_extend(a, 2)),
                M::Cdqe => cpu.state.gpr[0] = sign_extend(a, 4),
                M::Cwd => reg_set(&mut cpu.state, Register::DX, sign_extend(a, 2) >> 16),
                _ => reg_set(&mut cpu.state, Register::EDX, sign_extend(a, 4) >> 32),
            }
        }
        M::Cqo => cpu.state.gpr[2] = ((cpu.state.gpr[0] as i64) >> 63) as u64,
        M::Setb
        | M::Setae
        | M::Sete
        | M::Setne
        | M::Setbe
        | M::Seta
        | M::Sets
        | M::Setns
        | M::Setp
        | M::Setnp
        | M::Setl
        | M::Setge
        | M::Setle
        | M::Setg
        | M::Seto
        | M::Setno => {
            let v = u64::from(cond(cpu.state.rflags, i.condition_code()));
            write_op(cpu, i, 0, 1, v)?;
        }
        M::Cmovb
        | M::Cmovae
        | M::Cmove
        | M::Cmovne
        | M::Cmovbe
        | M::Cmova
        | M::Cmovs
        | M::Cmovns
        | M::Cmovp
        | M::Cmovnp
        | M::Cmovl
        | M::Cmovge
        | M::Cmovle
        | M::Cmovg
        | M::Cmovo
        | M::Cmovno => {
            let size = op_size(i, 0);
            let src = read_op(cpu, i, 1, size)?;
            if cond(cpu.state.rflags, i.condition_code()) {
                write_op(cpu, i, 0, size, src)?;
            } else if size == 4 {
                let old = read_op(cpu, i, 0, size)?;
                write_op(cpu, i, 0, size, old)?;
            }
        }
        M::Jo
        | M::Jno
        | M::Jb
        | M::Jae
        | M::Je
        | M::Jne
        | M::Jbe
        | M::Ja
        | M::Js
        | M::Jns
        | M::Jp
        | M::Jnp
        | M::Jl
        | M::Jge
        | M::Jle
        | M::Jg => {
            if cond(cpu.state.rflags, i.condition_code()) {
                cpu.state.rip = i.near_branch_target();
            }
        }
        M::Jmp => {
            let target = match i.op_kind(0) {
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                    i.near_branch_target()
                }
                OpKind::Register | OpKind::Memory => {
                    let size = op_size(i, 0);
                    if i.op_kind(0) == OpKind::Memory && i.memory_size().size() > 8 {
                        return Err(Fault::ud());
                    }
                    read_op(cpu, i, 0, size)?
                }
                _ => return Err(Fault::ud()),
            };
            let size = branch_size(cpu, i);
            branch(cpu, target, size)?;
        }
        M::Call => {
            let size = (-i.stack_pointer_increment()) as u32;
            let target = match i.op_kind(0) {
                OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64 => {
                    i.near_branch_target()
                }
                OpKind::Register | OpKind::Memory if i.memory_size().size() <= 8 => {
                    read_op(cpu, i, 0, size)?
                }
                _ => return Err(Fault::ud()),
            };
            let target = target & mask(size);
            if cpu.state.mode() == Mode::Long64 && !mmu::canonical(target) {
                return Err(Fault::gp(0));
            }
            push(cpu, next, size)?;
            cpu.state.rip = target;
        }
        M::Ret => {
            let extra = if i.op_count() > 0 { i.immediate(0) } else { 0 };
            let size = (i.stack_pointer_increment() as u64 - extra) as u32;
            let target = pop(cpu, size)?;
            branch(cpu, target, size)?;
            let sp = cpu.state.gpr[4].wrapping_add(extra);
            set_sp(cpu, sp);
        }
        M::Loop | M::Loope | M::Loopne | M::Jrcxz | M::Jecxz | M::Jcxz => {
            let counter = loop_counter(i);
            let count = reg_get(&cpu.state, counter);
            let take = match m {
                M::Jrcxz | M::Jecxz | M::Jcxz => count == 0,
                _ => {
                    let left = count.wrapping_sub(1) & mask(counter.size() as u32);
                    reg_set(&mut cpu.state, counter, left);
                    let z = cpu.state.rflags & ZF != 0;
                    left != 0
                        && match m {
                            M::Loope => z,
                            M::Loopne => !z,
                            _ => true,
                        }
                }
            };
            if take {
                cpu.state.rip = i.near_branch_target();
            }
        }
        M::Push => {
            let size = (-i.stack_pointer_increment()) as u32;
            let v = match i.op_kind(0) {
                OpKind::Register => reg_get(&cpu.state, i.op_register(0)),
                OpKind::Memory => read_op(cpu, i, 0, size)?,
                _ => i.immediate(0),
            };
            push(cpu, v, size)?;
        }
        M::Pop => {
            let size = i.stack_pointer_increment() as u32;
            let v = pop(cpu, size)?;
            if i.op_kind(0) == OpKind::Register && i.op_register(0).is_segment_register() {
                load_segment(cpu, seg_index(i.op_register(0)), v as u16)?;
            } else {
                write_op(cpu, i, 0, size, v)?;
            }
        }
        M::Enter => {
            let size = match i.code() {
                Code::Enterw_imm16_imm8 => 2,
                Code::Enterd_imm16_imm8 => 4,
                _ => 8,
            };
            let frame_size = i.immediate(0) & 0xffff;
            let level = i.immediate(1) & 31;
            let rbp = reg_get(&cpu.state, Register::RBP);
            push(cpu, rbp, size)?;
            let frame = cpu.state.gpr[4] & stack_mask(cpu);
            if level > 0 {
                let mut bp = rbp;
                for _ in 1..level {
                    bp = bp.wrapping_sub(u64::from(size)) & stack_mask(cpu);
                    let v = cpu.read(seg::SS, bp, size)?;
                    push(cpu, v, size)?;
                }
                push(cpu, frame, size)?;
            }
            let rbp_reg = match size {
                2 => Register::BP,
                4 => Register::EBP,
                _ => Register::RBP,
            };
            reg_set(&mut cpu.state, rbp_reg, frame);
            let sp = (cpu.state.gpr[4] & stack_mask(cpu)).wrapping_sub(frame_size);
            // The new stack top must be writable (as processors probe it).
            cpu.probe_write(seg::SS, sp & stack_mask(cpu), 1)?;
            set_sp(cpu, sp);
        }
        M::Leave => {
            let size = match i.code() {
                Code::Leavew => 2,
                Code::Leaved => 4,
                _ => 8,
            };
            let bp = cpu.state.gpr[5] & stack_mask(cpu);
            let v = cpu.read(seg::SS, bp, size)?;
            set_sp(cpu, bp.wrapping_add(u64::from(size)));
            let rbp_reg = match size {
                2 => Register::BP,
                4 => Register::EBP,
                _ => Register::RBP,
            };
            reg_set(&mut cpu.state, rbp_reg, v);
        }
        M::Movsb
        | M::Movsw
        | M::Movsq
        | M::Cmpsb
        | M::Cmpsw
        | M::Cmpsq
        | M::Stosb
        | M::Stosw
        | M::Stosd
        | M::Stosq
        | M::Lodsb
        | M::Lodsw
        | M::Lodsd
        | M::Lodsq
        | M::Scasb
        | M::Scasw
        | M::Scasd
        | M::Scasq => return string(cpu, i),
        M::Movsd | M::Cmpsd if is_string(i) => return string(cpu, i),
        M::Xlatb => {
            let offset = (reg_get(&cpu.state, i.memory_base())
                .wrapping_add(cpu.state.gpr[0] & 0xff))
                & address_mask(cpu, i);
            let v = cpu.read(seg_index(i.memory_segment()), offset, 1)?;
            reg_set(&mut cpu.state, Register::AL, v);
        }
        M::Lahf => {
            if cpu.state.mode() == Mode::Long64 && !crate::cpuid::LAHF_LM {
                return Err(Fault::ud());
            }
            let f = cpu.state.rflags & (SF | ZF | AF | PF | CF) | fl::FIXED;
            reg_set(&mut cpu.state, Register::AH, f);
        }
        M::Sahf => {
            let ah = (cpu.state.gpr[0] >> 8) & 0xff;
            set_flags(cpu, ah, SF | ZF | AF | PF | CF);
        }
        M::Pushf | M::Pushfd | M::Pushfq => {
            let size = (-i.stack_pointer_increment()) as u32;
            let v = cpu.state.rflags & !(fl::VM | fl::RF);
            push(cpu, v, size)?;
        }
        M::Popf | M::Popfd | M::Popfq => {
            let size = i.stack_pointer_increment() as u32;
            let v = pop(cpu, size)?;
            let mut writable = fl::ARITH | fl::TF | fl::DF | fl::NT | fl::AC | fl::ID;
            if cpu.state.cpl == 0 {
                writable |= fl::IOPL | fl::IF;
            } else if cpu.state.cpl <= iopl(cpu) {
                writable |= fl::IF;
            }
            writable &= mask(size);
            let new = (cpu.state.rflags & !writable) | (v & writable);
            cpu.state.rflags = (new & !(fl::VIF | fl::VIP | fl::RF)) | fl::FIXED;
        }
        M::Clc => set_flags(cpu, 0, CF),
        M::Stc => set_flags(cpu, CF, CF),
        M::Cmc => cpu.state.rflags ^= CF,
        M::Cld => set_flags(cpu, 0, DF),
        M::Std => set_flags(cpu, DF, DF),
        M::Cli => {
            if cpu.state.cpl > iopl(cpu) {
                return Err(Fault::gp(0));
            }
            set_flags(cpu, 0, fl::IF);
        }
        M::Sti => {
            if cpu.state.cpl > iopl(cpu) {
                return Err(Fault::gp(0));
            }
            if cpu.state.rflags & fl::IF == 0 {
                cpu.state.interrupt_shadow = true;
            }
            set_flags(cpu, fl::IF, fl::IF);
        }
        M::Nop
        | M::Pause
        | M::Endbr64
        | M::Endbr32
        | M::Reservednop
        | M::Lfence
        | M::Mfence
        | M::Sfence
        | M::Prefetchnta
        | M::Prefetcht0
        | M::Prefetcht1
        | M::Prefetcht2
        | M::Prefetchw => {}
        M::Clflush => {
            // Faults like a byte read of the line; otherwise nothing to do (no caches).
            let offset = ea(cpu, i);
            cpu.read(seg_index(i.memory_segment()), offset, 1)?;
        }
        M::Cpuid => {
            let leaf = cpu.state.gpr[0] as u32;
            let sub = cpu.state.gpr[1] as u32;
            let [a, b, c, d] = crate::cpuid::cpuid(leaf, sub);
            cpu.state.gpr[0] = u64::from(a);
            cpu.state.gpr[3] = u64::from(b);
            cpu.state.gpr[1] = u64::from(c);
            cpu.state.gpr[2] = u64::from(d);
        }
        M::Rdtsc => {
            if cpu.state.cr4 & cr::CR4_TSD != 0 && cpu.state.cpl != 0 {
                return Err(Fault::gp(0));
            }
            let t = cpu.tsc();
            cpu.state.gpr[0] = t & 0xffff_ffff;
            cpu.state.gpr[2] = t >> 32;
        }
        // Without a kernel (user mode), software interrupts come back as what Linux's gates
        // make of them: #BP for INT3, #GP for INT n (gates of DPL 0).
        M::Int3 if cpu.user_mode => return Err(Fault::bp()),
        M::Int if cpu.user_mode => return Err(Fault::gp(u32::from(i.immediate(0) as u8) * 8 + 2)),
        M::Int3 => {
            cpu.deliver(3, None, next, true)?;
        }
        M::Int => {
            let vector = i.immediate(0) as u8;
            cpu.deliver(vector, None, next, true)?;
        }
        M::Hlt => {
            cpl0(cpu)?;
            cpu.state.halted = true;
            return Ok(Event::Halted);
        }
        M::Rdmsr => {
            cpl0(cpu)?;
            let v = cpu
                .read_msr(cpu.state.gpr[1] as u32)
                .ok_or_else(|| Fault::gp(0))?;
            cpu.state.gpr[0] = v & 0xffff_ffff;
            cpu.state.gpr[2] = v >> 32;
        }
        M::Wrmsr => {
            cpl0(cpu)?;
            let v = (cpu.state.gpr[0] & 0xffff_ffff) | (cpu.state.gpr[2] << 32);
            cpu.write_msr(cpu.state.gpr[1] as u32, v)?;
        }
        M::Syscall => return syscall(cpu, next),
        M::Sysret | M::Sysretq => return sysret(cpu, i),
        M::Swapgs => {
            if cpu.state.mode() != Mode::Long64 {
                return Err(Fault::ud());
            }
            cpl0(cpu)?;
            std::mem::swap(
                &mut cpu.state.segments[seg::GS].base,
                &mut cpu.state.kernel_gs_base,
            );
        }
        M::Iret | M::Iretd | M::Iretq => return iret(cpu, i),
        M::Lgdt | M::Lidt => {
            cpl0(cpu)?;
            let offset = ea(cpu, i);
            let segment = seg_index(i.memory_segment());
            let limit = cpu.read(segment, offset, 2)? as u16;
            let base_size = if cpu.state.mode() == Mode::Long64 {
                8
            } else {
                4
            };
            let mut base = cpu.read(segment, offset + 2, base_size)?;
            if matches!(i.code(), Code::Lgdt_m1632_16 | Code::Lidt_m1632_16) {
                // 16-bit operand size: a 24-bit base.
                base &= 0xff_ffff;
            }
            let table = crate::state::TableRegister { base, limit };
            if m == M::Lgdt {
                cpu.state.gdtr = table;
            } else {
                cpu.state.idtr = table;
            }
        }
        M::Sgdt | M::Sidt => {
            if cpu.state.cr4 & (1 << 11) != 0 && cpu.state.cpl != 0 {
                return Err(Fault::gp(0));
            }
            let table = if m == M::Sgdt {
                cpu.state.gdtr
            } else {
                cpu.state.idtr
            };
            let offset = ea(cpu, i);
            let segment = seg_index(i.memory_segment());
            let base_size = if cpu.state.mode() == Mode::Long64 {
                8
            } else {
                4
            };
            cpu.probe_write(segment, offset, 2 + base_size)?;
            cpu.write(segment, offset, 2, u64::from(table.limit))?;
            cpu.write(segment, offset + 2, base_size, table.base)?;
        }
        M::Lldt | M::Ltr => {
            cpl0(cpu)?;
            if cpu.state.mode() == Mode::Real {
                return Err(Fault::ud());
            }
            let selector = read_op(cpu, i, 0, 2)? as u16;
            if m == M::Lldt {
                if selector & !3 == 0 {
                    cpu.state.ldtr = Segment::default();
                } else {
                    let d = cpu.load_system_descriptor(selector)?;
                    if d.attributes & Segment::S != 0 || d.kind() != 2 {
                        return Err(Fault::gp(u32::from(selector & !3)));
                    }
                    cpu.state.ldtr = d;
                }
            } else {
                let d = cpu.load_system_descriptor(selector)?;
                if d.attributes & Segment::S != 0 || !matches!(d.kind(), 1 | 9) {
                    return Err(Fault::gp(u32::from(selector & !3)));
                }
                // Mark the TSS busy in the GDT.
                let address = cpu.state.gdtr.base + u64::from(selector & !7) + 5;
                let byte = cpu.read_linear(address, 1, true)?;
                cpu.write_linear(address, 1, byte | 2, true)?;
                cpu.state.tr = Segment {
                    attributes: d.attributes | 2,
                    ..d
                };
            }
        }
        M::Sldt | M::Str => {
            let v = if m == M::Sldt {
                cpu.state.ldtr.selector
            } else {
                cpu.state.tr.selector
            };
            let size = op_size(i, 0);
            write_op(cpu, i, 0, size, u64::from(v))?;
        }
        M::Invlpg => {
            cpl0(cpu)?;
            let offset = ea(cpu, i);
            let linear = cpu
                .linear(seg_index(i.memory_segment()), offset, 1)
                .unwrap_or(offset);
            cpu.tlb.flush_page(linear);
        }
        M::Wbinvd | M::Invd => cpl0(cpu)?,
        M::Clts => {
            cpl0(cpu)?;
            cpu.state.cr0 &= !cr::CR0_TS;
        }
        M::Smsw => {
            let size = op_size(i, 0);
            write_op(cpu, i, 0, size, cpu.state.cr0 & mask(size))?;
        }
        M::Lmsw => {
            cpl0(cpu)?;
            let v = read_op(cpu, i, 0, 2)?;
            // LMSW cannot clear PE.
            let new = (cpu.state.cr0 & !0xe) | (v & 0xf) | (cpu.state.cr0 & 1);
            write_cr(cpu, 0, new)?;
        }
        M::Daa | M::Das => {
            let al = cpu.state.gpr[0] & 0xff;
            let old_cf = cpu.state.rflags & CF != 0;
            let af_in = cpu.state.rflags & AF != 0;
            let mut r = al;
            let mut f = 0;
            if al & 0xf > 9 || af_in {
                let (v, borrow_or_carry) = if m == M::Daa {
                    (al + 6, al + 6 > 0xff)
                } else {
                    (al.wrapping_sub(6), al < 6)
                };
                r = v & 0xff;
                f |= AF;
                if old_cf || borrow_or_carry {
                    f |= CF;
                }
            }
            if al > 0x99 || old_cf {
                r = if m == M::Daa {
                    r + 0x60
                } else {
                    r.wrapping_sub(0x60)
                } & 0xff;
                f |= CF;
            }
            reg_set(&mut cpu.state, Register::AL, r);
            set_flags(cpu, f | alu::szp(r, 1), fl::ARITH);
        }
        M::Aaa | M::Aas => {
            let ax = cpu.state.gpr[0] & 0xffff;
            let mut f = 0;
            let mut r = ax;
            if ax & 0xf > 9 || cpu.state.rflags & AF != 0 {
                r = if m == M::Aaa {
                    ax.wrapping_add(0x106)
                } else {
                    // AX − 6 (a borrow reaches AH), then AH − 1, as current processors do.
                    let r = ax.wrapping_sub(6) & 0xffff;
                    let ah = ((r >> 8).wrapping_sub(1)) & 0xff;
                    (ah << 8) | (r & 0xff)
                };
                f = AF | CF;
            }
            r &= 0xff0f;
            reg_set(&mut cpu.state, Register::AX, r);
            set_flags(cpu, f | alu::szp(r & 0xff, 1), fl::ARITH);
        }
        M::Aam => {
            let base = i.immediate(0) & 0xff;
            if base == 0 {
                return Err(Fault::de());
            }
            let al = cpu.state.gpr[0] & 0xff;
            let r = ((al / base) << 8) | (al % base);
            reg_set(&mut cpu.state, Register::AX, r);
            set_flags(cpu, alu::szp(r & 0xff, 1), fl::ARITH);
        }
        M::Aad => {
            let base = i.immediate(0) & 0xff;
            let ax = cpu.state.gpr[0];
            let al = ((ax & 0xff) + ((ax >> 8) & 0xff) * base) & 0xff;
            reg_set(&mut cpu.state, Register::AX, al);
            set_flags(cpu, alu::szp(al, 1), fl::ARITH);
        }
        M::Salc => {
            let v = if cpu.state.rflags & CF != 0 { 0xff } else { 0 };
            reg_set(&mut cpu.state, Register::AL, v);
        }
        M::Pusha | M::Pushad => {
            let size = if m == M::Pushad { 4 } else { 2 };
            let sp = cpu.state.gpr[4] & stack_mask(cpu);
            cpu.probe_write(
                seg::SS,
                sp.wrapping_sub(8 * u64::from(size)) & stack_mask(cpu),
                8 * size,
            )?;
            let values: Vec<u64> = (0..8)
                .map(|n| if n == 4 { sp } else { cpu.state.gpr[n] })
                .collect();
            for v in values {
                push(cpu, v, size)?;
            }
        }
        M::Popa | M::Popad => {
            let size = if m == M::Popad { 4 } else { 2 };
            let mut values = [0u64; 8];
            for n in (0..8).rev() {
                values[n] = pop(cpu, size)?;
            }
            let regs: [Register; 8] = if size == 4 {
                [
                    Register::EAX,
                    Register::ECX,
                    Register::EDX,
                    Register::EBX,
                    Register::ESP,
                    Register::EBP,
                    Register::ESI,
                    Register::EDI,
                ]
            } else {
                [
                    Register::AX,
                    Register::CX,
                    Register::DX,
                    Register::BX,
                    Register::SP,
                    Register::BP,
                    Register::SI,
                    Register::DI,
                ]
            };
            for n in (0..8).filter(|&n| n != 4) {
                reg_set(&mut cpu.state, regs[n], values[n]);
            }
        }
        M::Into if cpu.user_mode && cpu.state.rflags & OF != 0 => {
            return Err(Fault {
                vector: 4,
                error_code: None,
                address: None,
            })
        }
        M::Into => {
            if cpu.state.rflags & OF != 0 {
                cpu.deliver(4, None, next, true)?;
            }
        }
        M::Bound => {
            let size = op_size(i, 0);
            let index = sign_extend(read_op(cpu, i, 0, size)?, size) as i64;
            let address = ea(cpu, i);
            let segment = seg_index(i.memory_segment());
            let lower = sign_extend(cpu.read(segment, address, size)?, size) as i64;
            let upper = sign_extend(
                cpu.read(segment, address.wrapping_add(u64::from(size)), size)?,
                size,
            ) as i64;
            if index < lower || index > upper {
                return Err(Fault {
                    vector: 5,
                    error_code: None,
                    address: None,
                });
            }
        }
        M::Arpl => {
            if cpu.state.mode() == Mode::Real {
                return Err(Fault::ud());
            }
            let dst = read_op(cpu, i, 0, 2)?;
            let src = read_op(cpu, i, 1, 2)?;
            if dst & 3 < src & 3 {
                write_op(cpu, i, 0, 2, (dst & !3) | (src & 3))?;
                set_flags(cpu, ZF, ZF);
            } else {
                set_flags(cpu, 0, ZF);
            }
        }
        _ => return Err(Fault::ud()),
    }
    Ok(Event::Retired)
}

fn branch_size(cpu: &X86Cpu, i: &Instruction) -> u32 {
    match i.op_kind(0) {
        OpKind::NearBranch16 => 2,
        OpKind::NearBranch32 => 4,
        OpKind::NearBranch64 => 8,
        _ => {
            let size = op_size(i, 0);
            if cpu.state.mode() == Mode::Long64 && size == 4 {
                8
            } else {
                size
            }
        }
    }
}

fn loop_counter(i: &Instruction) -> Register {
    use Code as C;
    match i.mnemonic() {
        Mnemonic::Jcxz => return Register::CX,
        Mnemonic::Jecxz => return Register::ECX,
        Mnemonic::Jrcxz => return Register::RCX,
        _ => {}
    }
    match i.code() {
        C::Loop_rel8_16_CX
        | C::Loop_rel8_32_CX
        | C::Loope_rel8_16_CX
        | C::Loope_rel8_32_CX
        | C::Loopne_rel8_16_CX
        | C::Loopne_rel8_32_CX => Register::CX,
        C::Loop_rel8_16_RCX
        | C::Loop_rel8_64_RCX
        | C::Loope_rel8_16_RCX
        | C::Loope_rel8_64_RCX
        | C::Loopne_rel8_16_RCX
        | C::Loopne_rel8_64_RCX => Register::RCX,
        _ => Register::ECX,
    }
}

fn mov(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let r0 = if i.op_kind(0) == OpKind::Register {
        i.op_register(0)
    } else {
        Register::None
    };
    let r1 = if i.op_kind(1) == OpKind::Register {
        i.op_register(1)
    } else {
        Register::None
    };
    if r0.is_cr() || r1.is_cr() {
        cpl0(cpu)?;
        if r0.is_cr() {
            let v = reg_get(&cpu.state, r1);
            write_cr(cpu, r0 as u32 - Register::CR0 as u32, v)?;
        } else {
            let n = r1 as u32 - Register::CR0 as u32;
            let v = match n {
                0 => cpu.state.cr0,
                2 => cpu.state.cr2,
                3 => cpu.state.cr3,
                4 => cpu.state.cr4,
                8 => cpu.state.cr8,
                _ => return Err(Fault::ud()),
            };
            reg_set(&mut cpu.state, r0, v);
        }
        return Ok(Event::Retired);
    }
    if r0.is_tr() || r1.is_tr() {
        return Err(Fault::ud());
    }
    if r0.is_dr() || r1.is_dr() {
        // Debug registers hold their values; breakpoints and single-step traps through them
        // are not implemented yet. DR4/DR5 alias DR6/DR7 unless CR4.DE is set.
        cpl0(cpu)?;
        let dr = if r0.is_dr() { r0 } else { r1 };
        let mut n = dr as usize - Register::DR0 as usize;
        if n == 4 || n == 5 {
            if cpu.state.cr4 & cr::CR4_DE != 0 {
                return Err(Fault::ud());
            }
            n += 2;
        }
        if n > 7 {
            return Err(Fault::ud());
        }
        if r0.is_dr() {
            let v = reg_get(&cpu.state, r1);
            cpu.state.dr[n] = match n {
                6 => (v & 0xe00f) | 0xffff_0ff0,
                7 => (v & 0xffff_2bff) | 0x400,
                _ => v,
            };
        } else {
            let v = cpu.state.dr[n];
            reg_set(&mut cpu.state, r0, v);
        }
        return Ok(Event::Retired);
    }
    if r0.is_segment_register() {
        if r0 == Register::CS {
            return Err(Fault::ud());
        }
        let v = read_op(cpu, i, 1, 2)? as u16;
        load_segment(cpu, seg_index(r0), v)?;
        if r0 == Register::SS {
            cpu.state.interrupt_shadow = true;
        }
        return Ok(Event::Retired);
    }
    if r1.is_segment_register() {
        let v = reg_get(&cpu.state, r1);
        // To a register: zero-extended to the operand size; to memory: 16 bits.
        let size = if i.op_kind(0) == OpKind::Memory {
            2
        } else {
            op_size(i, 0)
        };
        write_op(cpu, i, 0, size, v)?;
        return Ok(Event::Retired);
    }
    let size = op_size(i, 0);
    let v = read_op(cpu, i, 1, size)?;
    write_op(cpu, i, 0, size, v)?;
    Ok(Event::Retired)
}

/// Loads a data or stack segment register (MOV, POP): real mode sets base = selector × 16;
/// protected and long mode read the descriptor, with null selectors allowed except for SS
/// outside 64-bit ring 0.
fn load_segment(cpu: &mut X86Cpu, index: usize, selector: u16) -> R<()> {
    if cpu.state.mode() == Mode::Real {
        let s = &mut cpu.state.segments[index];
        s.selector = selector;
        s.base = u64::from(selector) << 4;
        return Ok(());
    }
    if selector & !3 == 0 {
        if index == seg::SS && !(cpu.state.mode() == Mode::Long64 && cpu.state.cpl != 3) {
            return Err(Fault::gp(0));
        }
        let base = cpu.state.segments[index].base;
        cpu.state.segments[index] = Segment {
            selector,
            // 64-bit mode keeps FS/GS bases on a null load (they are reloaded by WRMSR).
            base: if index == seg::FS || index == seg::GS {
                base
            } else {
                0
            },
            limit: 0,
            attributes: 0,
        };
        return Ok(());
    }
    // Type and privilege are checked before presence, and a not-present stack segment is
    // #SS, not #NP (SDM vol. 2, MOV and POP: "segment marked not present").
    let d = cpu.read_descriptor(selector)?;
    let error = u32::from(selector & !3);
    let rpl = (selector & 3) as u8;
    let cpl = cpu.state.cpl;
    if d.attributes & Segment::S == 0 {
        return Err(Fault::gp(error));
    }
    let code = d.kind() & 8 != 0;
    let writable = !code && d.kind() & 2 != 0;
    if index == seg::SS {
        if !writable || rpl != cpl || d.dpl() != cpl {
            return Err(Fault::gp(error));
        }
    } else {
        let readable = !code || d.kind() & 2 != 0;
        let conforming = code && d.kind() & 4 != 0;
        if !readable || (!conforming && (d.dpl() < cpl || d.dpl() < rpl)) {
            return Err(Fault::gp(error));
        }
    }
    if !d.present() {
        return Err(if index == seg::SS {
            Fault::ss(error)
        } else {
            Fault::np(error)
        });
    }
    // FS and GS take the descriptor's 32-bit base (in 64-bit mode it replaces the MSR value).
    cpu.state.segments[index] = d;
    Ok(())
}

/// Writes a control register with the checks and TLB effects the manuals give.
pub fn write_cr(cpu: &mut X86Cpu, n: u32, v: u64) -> R<()> {
    let s = &mut cpu.state;
    match n {
        0 => {
            if v >> 32 != 0 {
                return Err(Fault::gp(0));
            }
            let v = v | cr::CR0_ET;
            if v & cr::CR0_PG != 0 && v & cr::CR0_PE == 0 {
                return Err(Fault::gp(0));
            }
            if v & cr::CR0_NW != 0 && v & cr::CR0_CD == 0 {
                return Err(Fault::gp(0));
            }
            let turning_on = v & cr::CR0_PG != 0 && s.cr0 & cr::CR0_PG == 0;
            let turning_off = v & cr::CR0_PG == 0 && s.cr0 & cr::CR0_PG != 0;
            if turning_on && s.efer & msr::EFER_LME != 0 {
                if s.cr4 & cr::CR4_PAE == 0 {
                    return Err(Fault::gp(0));
                }
                s.efer |= msr::EFER_LMA;
            }
            if turning_off && s.efer & msr::EFER_LMA != 0 {
                if s.mode() == Mode::Long64 {
                    return Err(Fault::gp(0));
                }
                s.efer &= !msr::EFER_LMA;
            }
            let changed = s.cr0 ^ v;
            s.cr0 = v;
            if changed & (cr::CR0_PG | cr::CR0_WP | cr::CR0_PE) != 0 {
                cpu.tlb.flush(false);
            }
        }
        2 => s.cr2 = v,
        3 => {
            if s.long_mode_active() && v >> mmu::PHYS_BITS != 0 {
                return Err(Fault::gp(0));
            }
            if crate::hooks::cr3_write_refused(cpu, v) {
                return Ok(());
            }
            let s = &mut cpu.state;
            s.cr3 = v;
            let keep_global = s.cr4 & cr::CR4_PGE != 0;
            cpu.tlb.flush(keep_global);
        }
        4 => {
            if v & !cr::CR4_SUPPORTED != 0 {
                return Err(Fault::gp(0));
            }
            if s.long_mode_active() && v & cr::CR4_PAE == 0 {
                return Err(Fault::gp(0));
            }
            let changed = s.cr4 ^ v;
            s.cr4 = v;
            if changed & (cr::CR4_PGE | cr::CR4_PAE | cr::CR4_PSE) != 0 {
                cpu.tlb.flush(false);
            }
        }
        8 => {
            if v & !0xf != 0 {
                return Err(Fault::gp(0));
            }
            s.cr8 = v;
        }
        _ => return Err(Fault::ud()),
    }
    Ok(())
}

fn syscall(cpu: &mut X86Cpu, next: u64) -> R<Event> {
    let s = &mut cpu.state;
    if s.efer & msr::EFER_SCE == 0 || !s.long_mode_active() {
        return Err(Fault::ud());
    }
    let from_user = s.cpl == 3;
    let long = s.mode() == Mode::Long64;
    s.gpr[1] = next;
    s.gpr[11] = s.rflags & !fl::RF;
    s.rflags = (s.rflags & !s.sfmask & !fl::RF) | fl::FIXED;
    let selector = ((s.star >> 32) & 0xfffc) as u16;
    s.segments[seg::CS] = Segment::flat(
        selector,
        Segment::PRESENT | Segment::S | Segment::L | Segment::G | 0xb,
    );
    s.segments[seg::SS] = Segment::flat(
        selector + 8,
        Segment::PRESENT | Segment::S | Segment::DB | Segment::G | 0x3,
    );
    s.cpl = 0;
    s.rip = if long { s.lstar } else { s.cstar };
    Ok(if from_user {
        Event::Syscall
    } else {
        Event::Retired
    })
}

fn sysret(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let s = &mut cpu.state;
    if s.efer & msr::EFER_SCE == 0 || s.mode() != Mode::Long64 {
        return Err(Fault::ud());
    }
    if s.cpl != 0 {
        return Err(Fault::gp(0));
    }
    let to_64 = i.mnemonic() == Mnemonic::Sysretq || i.code() == iced_x86::Code::Sysretq;
    let base = ((s.star >> 48) & 0xffff) as u16;
    if to_64 {
        if !mmu::canonical(s.gpr[1]) {
            return Err(Fault::gp(0));
        }
        s.segments[seg::CS] = Segment::flat(
            (base + 16) | 3,
            Segment::PRESENT | Segment::S | Segment::L | Segment::G | (3 << 5) | 0xb,
        );
        s.rip = s.gpr[1];
    } else {
        s.segments[seg::CS] = Segment::flat(
            base | 3,
            Segment::PRESENT | Segment::S | Segment::DB | Segment::G | (3 << 5) | 0xb,
        );
        s.rip = s.gpr[1] & 0xffff_ffff;
    }
    // SS keeps its cached base/limit as flat; only the selector and DPL change.
    s.segments[seg::SS] = Segment::flat(
        (base + 8) | 3,
        Segment::PRESENT | Segment::S | Segment::DB | Segment::G | (3 << 5) | 0x3,
    );
    s.rflags = (s.gpr[11] & 0x3c_7fd7) | fl::FIXED;
    s.cpl = 3;
    Ok(Event::Retired)
}

fn iret(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let size = match i.mnemonic() {
        Mnemonic::Iretq => 8,
        Mnemonic::Iretd => 4,
        _ => 2,
    };
    if cpu.state.mode() == Mode::Real {
        let ip = pop(cpu, size)?;
        let cs = pop(cpu, size)? as u16;
        let f = pop(cpu, size)?;
        cpu.state.rip = ip & mask(size);
        cpu.state.segments[seg::CS].selector = cs;
        cpu.state.segments[seg::CS].base = u64::from(cs) << 4;
        let writable = fl::WRITABLE & !(fl::VM | fl::RF | fl::VIF | fl::VIP) & mask(size);
        cpu.state.rflags = (cpu.state.rflags & !writable) | (f & writable) | fl::FIXED;
        return Ok(Event::Retired);
    }
    if cpu.state.rflags & fl::NT != 0 && !cpu.state.long_mode_active() {
        // Task returns are not implemented.
        return Err(Fault::gp(0));
    }
    let long = cpu.state.mode() == Mode::Long64;
    let ip = pop(cpu, size)?;
    let cs = pop(cpu, size)? as u16;
    let f = pop(cpu, size)?;
    let rpl = (cs & 3) as u8;
    let cpl = cpu.state.cpl;
    if rpl < cpl {
        return Err(Fault::gp(u32::from(cs & !3)));
    }
    let code = cpu.load_descriptor(cs)?;
    if code.kind() & 8 == 0 || code.attributes & Segment::S == 0 {
        return Err(Fault::gp(u32::from(cs & !3)));
    }
    let (new_sp, new_ss) = if long || rpl > cpl {
        let sp = pop(cpu, size)?;
        let ss = pop(cpu, size)? as u16;
        (Some(sp), Some(ss))
    } else {
        (None, None)
    };
    let mut writable = fl::ARITH | fl::TF | fl::DF | fl::NT | fl::AC | fl::ID | fl::RF;
    if cpl == 0 {
        writable |= fl::IOPL | fl::IF | fl::VIF | fl::VIP;
    } else if cpl <= iopl(cpu) {
        writable |= fl::IF;
    }
    writable &= mask(size);
    let target_64 = code.attributes & Segment::L != 0 && cpu.state.long_mode_active();
    let ip = if target_64 { ip } else { ip & 0xffff_ffff };
    if target_64 && !mmu::canonical(ip) {
        return Err(Fault::gp(0));
    }
    // Everything that can fault (the SS descriptor) is read before anything is committed.
    let stack = match (new_sp, new_ss) {
        (Some(sp), Some(ss)) => {
            let segment = if ss & !3 == 0 {
                if !(target_64 && rpl != 3) {
                    return Err(Fault::gp(0));
                }
                Segment {
                    selector: ss,
                    base: 0,
                    limit: 0,
                    attributes: 0,
                }
            } else {
                let d = cpu.load_descriptor(ss)?;
                let writable_data = d.attributes & Segment::S != 0 && d.kind() & 0xa == 0x2;
                if (ss & 3) as u8 != rpl || d.dpl() != rpl || !writable_data {
                    return Err(Fault::gp(u32::from(ss & !3)));
                }
                d
            };
            Some((sp, segment))
        }
        _ => None,
    };
    cpu.state.segments[seg::CS] = code;
    cpu.state.cpl = rpl;
    cpu.state.rip = ip;
    cpu.state.rflags = ((cpu.state.rflags & !writable) | (f & writable)) | fl::FIXED;
    if let Some((sp, segment)) = stack {
        cpu.state.segments[seg::SS] = segment;
        cpu.state.gpr[4] = sp;
    }
    if rpl > cpl {
        // Data segments the outer level may not use become null, in IA-32e mode too
        // (SDM vol. 2 IRET, RETURN-TO-OUTER-PRIVILEGE-LEVEL; AMD APM vol. 3 IRET).
        for index in [seg::ES, seg::DS, seg::FS, seg::GS] {
            let s = cpu.state.segments[index];
            let code_conforming = s.kind() & 0xc == 0xc;
            if s.present() && !code_conforming && s.dpl() < rpl {
                cpu.state.segments[index] = Segment {
                    selector: 0,
                    ..Segment::default()
                };
            }
        }
    }
    Ok(Event::Retired)
}

/// LSL and LAR: the segment limit (scaled) or the access rights (second dword AND
/// 0x00F0FF00) of the descriptor a selector names, with ZF set, when that descriptor is of a
/// type they accept and visible at CPL and RPL; otherwise ZF clear and the destination
/// unchanged (SDM vol. 2 LSL, LAR). Linux's vDSO getcpu reads its per-CPU segment with LSL.
fn lsl_lar(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    if matches!(cpu.state.mode(), Mode::Real) {
        return Err(Fault::ud());
    }
    let lar = i.mnemonic() == Mnemonic::Lar;
    let source_size = if i.op_kind(1) == OpKind::Memory {
        2
    } else {
        op_size(i, 1)
    };
    let selector = read_op(cpu, i, 1, source_size)? as u16;
    let index = u64::from(selector & !7);
    let (base, limit) = if selector & 4 != 0 {
        (cpu.state.ldtr.base, u64::from(cpu.state.ldtr.limit))
    } else {
        (cpu.state.gdtr.base, u64::from(cpu.state.gdtr.limit))
    };
    let mut found = None;
    if selector & !3 != 0 && index + 7 <= limit {
        let raw = cpu.read_linear(base + index, 8, true)?;
        let high = (raw >> 32) as u32;
        let kind = (high >> 8) & 0xf;
        let system = high & (1 << 12) == 0;
        let dpl = ((high >> 13) & 3) as u8;
        let long = cpu.state.long_mode_active();
        let type_ok = if system {
            match kind {
                2 | 9 | 0xb => true,
                0xc => lar,
                1 | 3 => !long,
                4 | 5 => lar && !long,
                _ => false,
            }
        } else {
            true
        };
        let conforming = !system && kind & 0xc == 0xc;
        let visible = conforming || (dpl >= cpu.state.cpl && dpl >= (selector & 3) as u8);
        if type_ok && visible {
            let raw_limit = (raw & 0xffff) | (u64::from(high) & 0x000f_0000);
            found = Some(if lar {
                u64::from(high & 0x00f0_ff00)
            } else if high & (1 << 23) != 0 {
                (raw_limit << 12) | 0xfff
            } else {
                raw_limit
            });
        }
    }
    match found {
        Some(value) => {
            let size = op_size(i, 0);
            write_op(cpu, i, 0, size, value & mask(size))?;
            set_flags(cpu, ZF, ZF);
        }
        None => set_flags(cpu, 0, ZF),
    }
    Ok(Event::Retired)
}

/// LSS, LDS, LES, LFS, LGS: a far pointer from memory (offset, then selector) into a segment
/// register and a general register; the segment load's checks come first (SDM vol. 2 LDS/
/// LES/LFS/LGS/LSS). The i386 kernel's espfix path returns through LSS.
fn load_far_pointer(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    if i.op_kind(1) != OpKind::Memory {
        return Err(Fault::ud());
    }
    let size = op_size(i, 0);
    let segment = seg_index(i.memory_segment());
    let offset_at = ea(cpu, i);
    let offset = cpu.read(segment, offset_at, size)?;
    let selector = cpu.read(segment, offset_at.wrapping_add(u64::from(size)), 2)? as u16;
    let index = match i.mnemonic() {
        Mnemonic::Lss => seg::SS,
        Mnemonic::Lds => seg::DS,
        Mnemonic::Les => seg::ES,
        Mnemonic::Lfs => seg::FS,
        _ => seg::GS,
    };
    load_segment(cpu, index, selector)?;
    write_op(cpu, i, 0, size, offset)?;
    Ok(Event::Retired)
}

/// VERR and VERW: ZF set when the selector names a code or data segment visible at CPL
/// and RPL (conforming code: always, for VERR) that is readable (VERR) or writable data
/// (VERW); presence is not checked (SDM vol. 2 VERR/VERW).
fn verify(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    if matches!(cpu.state.mode(), Mode::Real) {
        return Err(Fault::ud());
    }
    let size = if i.op_kind(0) == OpKind::Memory {
        2
    } else {
        op_size(i, 0)
    };
    let selector = read_op(cpu, i, 0, size)? as u16;
    let index = u64::from(selector & !7);
    let (base, limit) = if selector & 4 != 0 {
        (cpu.state.ldtr.base, u64::from(cpu.state.ldtr.limit))
    } else {
        (cpu.state.gdtr.base, u64::from(cpu.state.gdtr.limit))
    };
    let mut ok = false;
    if selector & !3 != 0 && index + 7 <= limit {
        let high = (cpu.read_linear(base + index, 8, true)? >> 32) as u32;
        let kind = (high >> 8) & 0xf;
        let code = kind & 8 != 0;
        let dpl = ((high >> 13) & 3) as u8;
        let conforming = code && kind & 4 != 0;
        let visible = dpl >= cpu.state.cpl && dpl >= (selector & 3) as u8;
        ok = high & (1 << 12) != 0
            && if i.mnemonic() == Mnemonic::Verr {
                (!code || kind & 2 != 0) && (conforming || visible)
            } else {
                !code && kind & 2 != 0 && visible
            };
    }
    set_flags(cpu, if ok { ZF } else { 0 }, ZF);
    Ok(Event::Retired)
}

// ---- far transfers, ports, SYSENTER ---------------------------------------------------------

/// Loads CS for a far JMP/CALL/RET to `selector` at the current privilege (code segments
/// only; call gates and task switches are not implemented and raise #GP).
fn far_code_segment(cpu: &mut X86Cpu, selector: u16, returning: bool) -> R<Segment> {
    if cpu.state.mode() == Mode::Real {
        return Ok(Segment {
            selector,
            base: u64::from(selector) << 4,
            limit: 0xffff,
            attributes: cpu.state.segments[seg::CS].attributes,
        });
    }
    let error = u32::from(selector & !3);
    let d = cpu.load_descriptor(selector)?;
    if d.attributes & Segment::S == 0 || d.kind() & 8 == 0 {
        return Err(Fault::gp(error));
    }
    let rpl = (selector & 3) as u8;
    let cpl = cpu.state.cpl;
    let conforming = d.kind() & 4 != 0;
    let allowed = if returning {
        rpl >= cpl
            && if conforming {
                d.dpl() <= rpl
            } else {
                d.dpl() == rpl
            }
    } else if conforming {
        d.dpl() <= cpl
    } else {
        d.dpl() == cpl && rpl <= cpl
    };
    if !allowed {
        return Err(Fault::gp(error));
    }
    if d.attributes & Segment::L != 0 && d.attributes & Segment::DB != 0 {
        return Err(Fault::gp(error));
    }
    Ok(d)
}

fn far_jump(cpu: &mut X86Cpu, i: &Instruction, next: u64, call: bool) -> R<Event> {
    let (selector, offset, size) = match i.op_kind(0) {
        OpKind::FarBranch16 => (i.far_branch_selector(), u64::from(i.far_branch16()), 2),
        OpKind::FarBranch32 => (i.far_branch_selector(), u64::from(i.far_branch32()), 4),
        OpKind::Memory => {
            let size = match i.code() {
                Code::Jmp_m1616 | Code::Call_m1616 => 2,
                Code::Jmp_m1632 | Code::Call_m1632 => 4,
                _ => 8,
            };
            let address = ea(cpu, i);
            let segment = seg_index(i.memory_segment());
            let offset = cpu.read(segment, address, size)?;
            let selector = cpu.read(segment, address.wrapping_add(u64::from(size)), 2)? as u16;
            (selector, offset, size)
        }
        _ => return Err(Fault::ud()),
    };
    let code = far_code_segment(cpu, selector, false)?;
    let cpl = cpu.state.cpl;
    let target_64 = code.attributes & Segment::L != 0 && cpu.state.long_mode_active();
    if target_64 && !mmu::canonical(offset) {
        return Err(Fault::gp(0));
    }
    if !target_64 && cpu.state.mode() != Mode::Real && offset > u64::from(code.limit) {
        return Err(Fault::gp(0));
    }
    if call {
        let cs = u64::from(cpu.state.segments[seg::CS].selector);
        push(cpu, cs, size)?;
        push(cpu, next, size)?;
    }
    let selector = if cpu.state.mode() == Mode::Real {
        selector
    } else {
        (selector & !3) | u16::from(cpl)
    };
    cpu.state.segments[seg::CS] = code.with_selector(selector);
    cpu.state.rip = offset & mask(size);
    Ok(Event::Retired)
}

fn far_return(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let size = match i.code() {
        Code::Retfw | Code::Retfw_imm16 => 2,
        Code::Retfd | Code::Retfd_imm16 => 4,
        _ => 8,
    };
    let extra = if i.op_count() > 0 { i.immediate(0) } else { 0 };
    let offset = pop(cpu, size)?;
    let selector = pop(cpu, size)? as u16;
    let code = far_code_segment(cpu, selector, true)?;
    let rpl = (selector & 3) as u8;
    let sp = (cpu.state.gpr[4] & stack_mask(cpu)).wrapping_add(extra);
    set_sp(cpu, sp);
    if cpu.state.mode() != Mode::Real && rpl > cpu.state.cpl {
        let new_sp = pop(cpu, size)?;
        let ss = pop(cpu, size)? as u16;
        let stack = if ss & !3 == 0 {
            if code.attributes & Segment::L == 0 {
                return Err(Fault::gp(0));
            }
            Segment {
                selector: ss,
                ..Segment::default()
            }
        } else {
            cpu.load_descriptor(ss)?
        };
        cpu.state.segments[seg::SS] = stack;
        cpu.state.gpr[4] = new_sp.wrapping_add(extra);
        cpu.state.cpl = rpl;
        // As IRET does: data segments the outer level may not use become null (SDM vol. 2
        // RET, RETURN-TO-OUTER-PRIVILEGE-LEVEL).
        for index in [seg::ES, seg::DS, seg::FS, seg::GS] {
            let s = cpu.state.segments[index];
            let code_conforming = s.kind() & 0xc == 0xc;
            if s.present() && !code_conforming && s.dpl() < rpl {
                cpu.state.segments[index] = Segment::default();
            }
        }
    }
    cpu.state.segments[seg::CS] = code;
    cpu.state.rip = offset & mask(size);
    Ok(Event::Retired)
}

/// IN, OUT, INS and OUTS: allowed when CPL ≤ IOPL (the TSS I/O permission bitmap is not
/// consulted yet); the CPU's port device answers, or reads give all ones.
fn port_io(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    use Mnemonic as M;
    if cpu.state.mode() != Mode::Real && cpu.state.cpl > iopl(cpu) {
        return Err(Fault::gp(0));
    }
    let m = i.mnemonic();
    let size: u32 = match m {
        M::Insb | M::Outsb => 1,
        M::Insw | M::Outsw => 2,
        M::Insd | M::Outsd => 4,
        M::In => op_size(i, 0),
        _ => op_size(i, 1),
    };
    let port_operand = if m == M::In { 1 } else { 0 };
    let port = match m {
        M::In | M::Out => match i.op_kind(port_operand) {
            OpKind::Register => cpu.state.gpr[2] as u16,
            _ => i.immediate(port_operand) as u16,
        },
        _ => cpu.state.gpr[2] as u16,
    };
    match m {
        M::In => {
            let v = cpu.port_read(port, size);
            write_op(cpu, i, 0, size, u64::from(v))?;
        }
        M::Out => {
            let v = read_op(cpu, i, 1, size)?;
            cpu.port_write(port, size, v as u32);
        }
        _ => {
            // One element per execution (REP repeats by re-executing the instruction).
            let address_size: u32 = (0..i.op_count())
                .find_map(|n| match i.op_kind(n) {
                    OpKind::MemorySegSI | OpKind::MemoryESDI => Some(2),
                    OpKind::MemorySegESI | OpKind::MemoryESEDI => Some(4),
                    OpKind::MemorySegRSI | OpKind::MemoryESRDI => Some(8),
                    _ => None,
                })
                .unwrap_or(8);
            let am = mask(address_size);
            let (cx, si, di) = match address_size {
                2 => (Register::CX, Register::SI, Register::DI),
                4 => (Register::ECX, Register::ESI, Register::EDI),
                _ => (Register::RCX, Register::RSI, Register::RDI),
            };
            let rep = i.has_rep_prefix();
            if rep && reg_get(&cpu.state, cx) & am == 0 {
                return Ok(Event::Retired);
            }
            let step = if cpu.state.rflags & DF != 0 {
                u64::from(size).wrapping_neg()
            } else {
                u64::from(size)
            };
            if matches!(m, M::Insb | M::Insw | M::Insd) {
                let d = reg_get(&cpu.state, di) & am;
                cpu.probe_write(seg::ES, d, size)?;
                let v = cpu.port_read(port, size);
                cpu.write(seg::ES, d, size, u64::from(v))?;
                reg_set(&mut cpu.state, di, d.wrapping_add(step) & am);
            } else {
                let s_off = reg_get(&cpu.state, si) & am;
                let v = cpu.read(seg_index(i.memory_segment()), s_off, size)?;
                cpu.port_write(port, size, v as u32);
                reg_set(&mut cpu.state, si, s_off.wrapping_add(step) & am);
            }
            if rep {
                let left = reg_get(&cpu.state, cx).wrapping_sub(1) & am;
                reg_set(&mut cpu.state, cx, left);
                if left != 0 {
                    cpu.state.rip = i.ip();
                }
            }
        }
    }
    Ok(Event::Retired)
}

fn sysenter(cpu: &mut X86Cpu) -> R<Event> {
    let s = &mut cpu.state;
    let cs = (s.sysenter[0] & 0xfffc) as u16;
    if s.cr0 & cr::CR0_PE == 0 || cs == 0 {
        return Err(Fault::gp(0));
    }
    let long = s.long_mode_active();
    s.rflags &= !(fl::VM | fl::IF | fl::RF);
    s.segments[seg::CS] = Segment::flat(
        cs,
        Segment::PRESENT
            | Segment::S
            | Segment::G
            | 0xb
            | if long { Segment::L } else { Segment::DB },
    );
    s.segments[seg::SS] = Segment::flat(
        cs + 8,
        Segment::PRESENT | Segment::S | Segment::DB | Segment::G | 0x3,
    );
    s.cpl = 0;
    let m = if long { u64::MAX } else { 0xffff_ffff };
    s.rip = s.sysenter[2] & m;
    s.gpr[4] = s.sysenter[1] & m;
    Ok(Event::Syscall)
}

fn sysexit(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let s = &mut cpu.state;
    let cs = (s.sysenter[0] & 0xfffc) as u16;
    if s.cr0 & cr::CR0_PE == 0 || cs == 0 || s.cpl != 0 {
        return Err(Fault::gp(0));
    }
    let to_64 = i.code() == Code::Sysexitq;
    let user = (3u16) << 5;
    if to_64 {
        if !mmu::canonical(s.gpr[2]) || !mmu::canonical(s.gpr[1]) {
            return Err(Fault::gp(0));
        }
        s.segments[seg::CS] = Segment::flat(
            (cs + 32) | 3,
            Segment::PRESENT | Segment::S | Segment::G | Segment::L | user | 0xb,
        );
        s.segments[seg::SS] = Segment::flat(
            (cs + 40) | 3,
            Segment::PRESENT | Segment::S | Segment::DB | Segment::G | user | 0x3,
        );
        s.rip = s.gpr[2];
        s.gpr[4] = s.gpr[1];
    } else {
        s.segments[seg::CS] = Segment::flat(
            (cs + 16) | 3,
            Segment::PRESENT | Segment::S | Segment::G | Segment::DB | user | 0xb,
        );
        s.segments[seg::SS] = Segment::flat(
            (cs + 24) | 3,
            Segment::PRESENT | Segment::S | Segment::DB | Segment::G | user | 0x3,
        );
        s.rip = s.gpr[2] & 0xffff_ffff;
        s.gpr[4] = s.gpr[1] & 0xffff_ffff;
    }
    s.cpl = 3;
    Ok(Event::Retired)
}

// ---- string instructions -------------------------------------------------------------------

/// Iterations one execution of a REP instruction performs before returning with RIP still
/// at the instruction (it then continues on the next step, as after an interrupt).
const REP_CHUNK: u64 = 1 << 16;

fn string(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    use Mnemonic as M;
    let m = i.mnemonic();
    let size: u32 = match m {
        M::Movsb | M::Cmpsb | M::Stosb | M::Lodsb | M::Scasb => 1,
        M::Movsw | M::Cmpsw | M::Stosw | M::Lodsw | M::Scasw => 2,
        M::Movsd | M::Cmpsd | M::Stosd | M::Lodsd | M::Scasd => 4,
        _ => 8,
    };
    let address_size: u32 = (0..i.op_count())
        .find_map(|n| match i.op_kind(n) {
            OpKind::MemorySegSI | OpKind::MemoryESDI => Some(2),
            OpKind::MemorySegESI | OpKind::MemoryESEDI => Some(4),
            OpKind::MemorySegRSI | OpKind::MemoryESRDI => Some(8),
            _ => None,
        })
        .unwrap_or(8);
    let am = mask(address_size);
    let src_seg = seg_index(i.memory_segment());
    let step = if cpu.state.rflags & DF != 0 {
        (u64::from(size)).wrapping_neg()
    } else {
        u64::from(size)
    };
    let rep = i.has_rep_prefix() || i.has_repne_prefix();
    let (cx, si, di) = match address_size {
        2 => (Register::CX, Register::SI, Register::DI),
        4 => (Register::ECX, Register::ESI, Register::EDI),
        _ => (Register::RCX, Register::RSI, Register::RDI),
    };
    let mut done = 0u64;
    loop {
        if rep && reg_get(&cpu.state, cx) == 0 {
            break;
        }
        if rep && done == REP_CHUNK {
            // Come back to this instruction (RIP unchanged).
            cpu.state.rip = i.ip();
            return Ok(Event::Retired);
        }
        let s_off = reg_get(&cpu.state, si) & am;
        let d_off = reg_get(&cpu.state, di) & am;
        let mut stop = false;
        match m {
            M::Movsb | M::Movsw | M::Movsd | M::Movsq => {
                let v = cpu.read(src_seg, s_off, size)?;
                cpu.write(seg::ES, d_off, size, v)?;
                reg_set(&mut cpu.state, si, s_off.wrapping_add(step) & am);
                reg_set(&mut cpu.state, di, d_off.wrapping_add(step) & am);
            }
            M::Stosb | M::Stosw | M::Stosd | M::Stosq => {
                let v = cpu.state.gpr[0] & mask(size);
                cpu.write(seg::ES, d_off, size, v)?;
                reg_set(&mut cpu.state, di, d_off.wrapping_add(step) & am);
            }
            M::Lodsb | M::Lodsw | M::Lodsd | M::Lodsq => {
                let v = cpu.read(src_seg, s_off, size)?;
                let ra = match size {
                    1 => Register::AL,
                    2 => Register::AX,
                    4 => Register::EAX,
                    _ => Register::RAX,
                };
                reg_set(&mut cpu.state, ra, v);
                reg_set(&mut cpu.state, si, s_off.wrapping_add(step) & am);
            }
            M::Cmpsb | M::Cmpsw | M::Cmpsd | M::Cmpsq => {
                let a = cpu.read(src_seg, s_off, size)?;
                let b = cpu.read(seg::ES, d_off, size)?;
                let (_, f) = alu::sub(a, b, false, size);
                set_flags(cpu, f, fl::ARITH);
                reg_set(&mut cpu.state, si, s_off.wrapping_add(step) & am);
                reg_set(&mut cpu.state, di, d_off.wrapping_add(step) & am);
                stop = true;
            }
            _ => {
                let a = cpu.state.gpr[0] & mask(size);
                let b = cpu.read(seg::ES, d_off, size)?;
                let (_, f) = alu::sub(a, b, false, size);
                set_flags(cpu, f, fl::ARITH);
                reg_set(&mut cpu.state, di, d_off.wrapping_add(step) & am);
                stop = true;
            }
        }
        if !rep {
            break;
        }
        let count = reg_get(&cpu.state, cx).wrapping_sub(1) & am;
        reg_set(&mut cpu.state, cx, count);
        done += 1;
        if stop {
            let z = cpu.state.rflags & ZF != 0;
            if (i.has_repe_prefix() && !z) || (i.has_repne_prefix() && z) {
                break;
            }
        }
    }
    Ok(Event::Retired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_numbering_matches_iced() {
        let mut s = State::reset();
        s.gpr = [0x1122_3344_5566_7788; 16];
        reg_set(&mut s, Register::AH, 0xab);
        assert_eq!(s.gpr[0], 0x1122_3344_5566_ab88);
        reg_set(&mut s, Register::SIL, 0xcd);
        assert_eq!(s.gpr[6] & 0xff, 0xcd);
        reg_set(&mut s, Register::R15D, 0xdead_beef);
        assert_eq!(s.gpr[15], 0xdead_beef);
        reg_set(&mut s, Register::R9W, 0x1234);
        assert_eq!(s.gpr[9], 0x1122_3344_5566_1234);
        assert_eq!(reg_get(&s, Register::BH), 0x77);
        assert_eq!(reg_get(&s, Register::R8L), 0x88);
    }
}
