//! x87, MMX, SSE and SSE2 instructions: decoding iced-x86's [`Instruction`]s onto the
//! semantics of the `pandare-x86-float` crate (exact to the host CPU), with the CPU's
//! availability rules, memory access and exceptions.
//!
//! Rules, in the order a processor checks them:
//! - x87 (D8–DF): CR0.EM or CR0.TS → #NM; a *waiting* instruction (all but the FN* forms)
//!   with an unmasked exception pending (FSW.ES) → #MF. Unmasked x87 exceptions are
//!   delayed as on hardware: the instruction that causes one completes and sets ES.
//!   #MF is raised whatever CR0.NE says (no PC FERR#/IRQ 13 path: Linux sets CR0.NE).
//! - (F)WAIT: CR0.MP and CR0.TS → #NM; then a pending x87 exception → #MF.
//! - MMX (an MM register operand, EMMS): CR0.EM → #UD; CR0.TS → #NM; pending x87 exception
//!   → #MF; on retiring, the MMX transition (TOP = 0, all tags valid; EMMS: all empty).
//! - SSE/SSE2 (an XMM operand, LDMXCSR/STMXCSR, MOVNTI): CR0.EM or CR4.OSFXSR clear → #UD;
//!   CR0.TS → #NM; a 16-byte memory operand not 16-byte aligned → #GP(0), except for
//!   MOVUPS/MOVUPD/MOVDQU; unmasked SIMD exceptions → #XM when CR4.OSXMMEXCPT, else #UD,
//!   with MXCSR's flags set and the destination unchanged.
//! - FXSAVE/FXRSTOR: CR0.EM or CR0.TS → #NM; operand not 16-byte aligned → #GP(0);
//!   FXRSTOR of an image with reserved MXCSR bits → #GP(0).
//!
//! Faults are precise: memory is read before any state changes, and stores are written
//! before the register state is committed (x87 instructions restore their state when the
//! store faults). FISTTP (SSE3) is not handled here and raises #UD like the rest of SSE3.
//! The x87 last-instruction pointers follow current Intel processors (the host the tests
//! compare with): FIP for every non-control x87 instruction, FOP and FDP only for one that
//! leaves an unmasked exception pending, FCS and FDS saved as 0.

use iced_x86::{Code, CpuidFeature, Instruction, MemorySize, Mnemonic as M, OpKind, Register};
use pandare_x86_float::image::{self, EnvForm, FxForm};
use pandare_x86_float::simd::{self, Sat, Shift};
use pandare_x86_float::sse::{self, FpOp, Lane, Width, DOUBLE, SINGLE};
use pandare_x86_float::x87::{Arith, CompareKind, Constant, MemOperand, Operand, StoreKind};
use pandare_x86_float::{approx, soft::Format};

use crate::cpu::{Event, X86Cpu};
use crate::exec::{reg_get, reg_set};
use crate::state::flags::{AF, CF, OF, PF, SF, ZF};
use crate::state::{cr, seg, Mode};
use crate::Fault;

type R<T> = Result<T, Fault>;

/// Whether `instruction` is an x87, MMX, SSE or SSE2 instruction this module executes
/// (prefetches, fences and CLFLUSH stay with the integer executor; SSE3 and later raise #UD
/// there).
pub(crate) fn handles(instruction: &Instruction) -> bool {
    // iced lists an instruction's defining feature first: FPU for FCMOVcc ([FPU, CMOV]) and
    // FISTTP ([FPU, SSE3], which is not ours), SSE/SSE2 for the fences and prefetches.
    let features = instruction.cpuid_features();
    match features.first() {
        Some(
            CpuidFeature::FPU
            | CpuidFeature::FPU287
            | CpuidFeature::FPU387
            | CpuidFeature::MMX
            | CpuidFeature::SSE
            | CpuidFeature::SSE2
            | CpuidFeature::FXSR,
        ) => {
            features.get(1) != Some(&CpuidFeature::SSE3)
                && !matches!(
                    instruction.mnemonic(),
                    M::Prefetchnta
                        | M::Prefetcht0
                        | M::Prefetcht1
                        | M::Prefetcht2
                        | M::Sfence
                        | M::Lfence
                        | M::Mfence
                )
        }
        _ => instruction.mnemonic() == M::Wait,
    }
}

/// #MF.
fn mf() -> Fault {
    Fault {
        vector: 16,
        error_code: None,
        address: None,
    }
}

/// #XM, or #UD when CR4.OSXMMEXCPT is clear.
fn simd_fault(cpu: &X86Cpu) -> Fault {
    if cpu.state.cr4 & cr::CR4_OSXMMEXCPT != 0 {
        Fault {
            vector: 19,
            error_code: None,
            address: None,
        }
    } else {
        Fault::ud()
    }
}

/// Executes an instruction [`handles`] accepted (RIP already points past it).
pub(crate) fn execute(cpu: &mut X86Cpu, i: &Instruction) -> R<Event> {
    let m = i.mnemonic();
    let cr0 = cpu.state.cr0;
    if m == M::Wait {
        if cr0 & (cr::CR0_MP | cr::CR0_TS) == cr::CR0_MP | cr::CR0_TS {
            return Err(Fault::nm());
        }
        if cpu.state.x87.exception_pending() {
            return Err(mf());
        }
        return Ok(Event::Retired);
    }
    // iced lists an instruction's defining feature first (FPU for FCMOVcc's [FPU, CMOV]).
    let features = i.cpuid_features();
    let first = features.first().copied();
    if first == Some(CpuidFeature::FXSR) {
        if cr0 & (cr::CR0_EM | cr::CR0_TS) != 0 {
            return Err(Fault::nm());
        }
        fxsave_fxrstor(cpu, i)?;
        return Ok(Event::Retired);
    }
    if matches!(
        first,
        Some(CpuidFeature::FPU | CpuidFeature::FPU287 | CpuidFeature::FPU387)
    ) {
        if cr0 & (cr::CR0_EM | cr::CR0_TS) != 0 {
            return Err(Fault::nm());
        }
        if !no_wait(m) && cpu.state.x87.exception_pending() {
            return Err(mf());
        }
        let saved = cpu.state.x87.clone();
        let result = x87(cpu, i);
        if result.is_err() {
            cpu.state.x87 = saved;
        }
        return result.map(|()| Event::Retired);
    }
    let mmx = m == M::Emms || (0..i.op_count()).any(|n| op_reg(i, n).is_mm());
    let xmm =
        matches!(m, M::Ldmxcsr | M::Stmxcsr) || (0..i.op_count()).any(|n| op_reg(i, n).is_xmm());
    if cr0 & cr::CR0_EM != 0 && (mmx || xmm) {
        return Err(Fault::ud());
    }
    if xmm && cpu.state.cr4 & cr::CR4_OSFXSR == 0 {
        return Err(Fault::ud());
    }
    if cr0 & cr::CR0_TS != 0 && (mmx || xmm) {
        return Err(Fault::nm());
    }
    if mmx && cpu.state.x87.exception_pending() {
        return Err(mf());
    }
    simd(cpu, i)?;
    if m == M::Emms {
        cpu.state.x87.emms();
    } else if mmx {
        cpu.state.x87.mmx_enter();
    }
    Ok(Event::Retired)
}

/// The x87 instructions that do not check for pending exceptions.
fn no_wait(m: M) -> bool {
    matches!(
        m,
        M::Fninit
            | M::Fnclex
            | M::Fnstcw
            | M::Fnstsw
            | M::Fnstenv
            | M::Fnsave
            | M::Fneni
            | M::Fndisi
            | M::Fnsetpm
    )
}

fn op_reg(i: &Instruction, n: u32) -> Register {
    if i.op_kind(n) == OpKind::Register {
        i.op_register(n)
    } else {
        Register::None
    }
}

// ---- memory operands ----------------------------------------------------------------

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

/// The effective address (offset in the segment) of the memory operand, wrapped to the
/// address size.
fn ea(cpu: &X86Cpu, i: &Instruction) -> u64 {
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
    let mask = if size >= 8 {
        u64::MAX
    } else {
        (1u64 << (size * 8)) - 1
    };
    let mut a = i.memory_displacement64();
    if base == Register::RIP || base == Register::EIP {
        return a & mask;
    }
    if base != Register::None {
        a = a.wrapping_add(reg_get(&cpu.state, base));
    }
    if index != Register::None {
        a = a.wrapping_add(
            reg_get(&cpu.state, index).wrapping_mul(u64::from(i.memory_index_scale())),
        );
    }
    a & mask
}

/// Whether a 16-byte memory operand of this instruction may be misaligned.
fn unaligned_ok(m: M) -> bool {
    matches!(m, M::Movups | M::Movupd | M::Movdqu)
}

/// The linear address of the memory operand for `len` bytes (segment checks), with the
/// 16-byte alignment rule.
fn mem_linear(cpu: &X86Cpu, i: &Instruction, len: usize, write: bool) -> R<u64> {
    let offset = ea(cpu, i);
    let linear = cpu.linear_for(seg_index(i.memory_segment()), offset, len as u32, write)?;
    let aligned = match i.mnemonic() {
        M::Fxsave | M::Fxsave64 | M::Fxrstor | M::Fxrstor64 => true,
        m => len == 16 && !unaligned_ok(m),
    };
    if aligned && linear & 15 != 0 {
        return Err(Fault::gp(0));
    }
    Ok(linear)
}

fn read_mem(cpu: &mut X86Cpu, i: &Instruction, out: &mut [u8]) -> R<()> {
    let linear = mem_linear(cpu, i, out.len(), false)?;
    cpu.read_linear_bytes(linear, out, false)
}

fn write_mem(cpu: &mut X86Cpu, i: &Instruction, data: &[u8]) -> R<()> {
    let linear = mem_linear(cpu, i, data.len(), true)?;
    cpu.write_linear_bytes(linear, data, false)
}

/// Reads the memory operand (its size from the instruction), zero-extended.
fn read_mem_value(cpu: &mut X86Cpu, i: &Instruction) -> R<u128> {
    let size = i.memory_size().size().min(16);
    let mut b = [0u8; 16];
    read_mem(cpu, i, &mut b[..size])?;
    Ok(u128::from_le_bytes(b))
}

// ---- register operands --------------------------------------------------------------

/// Reads operand `n`: XMM, MM, a general register, memory or an immediate, zero-extended.
fn src(cpu: &mut X86Cpu, i: &Instruction, n: u32) -> R<u128> {
    match i.op_kind(n) {
        OpKind::Register => {
            let r = i.op_register(n);
            Ok(if r.is_xmm() {
                cpu.state.sse.xmm[r.number()]
            } else if r.is_mm() {
                u128::from(cpu.state.x87.mm(r.number() as u8))
            } else {
                u128::from(reg_get(&cpu.state, r))
            })
        }
        OpKind::Memory => read_mem_value(cpu, i),
        _ => Ok(u128::from(i.immediate(n))),
    }
}

/// Writes operand `n`: an XMM register (all 128 bits), an MM register (64), a general
/// register (32-bit writes zero-extend) or memory (the operand's size).
fn dst(cpu: &mut X86Cpu, i: &Instruction, n: u32, v: u128) -> R<()> {
    match i.op_kind(n) {
        OpKind::Register => {
            let r = i.op_register(n);
            if r.is_xmm() {
                cpu.state.sse.xmm[r.number()] = v;
            } else if r.is_mm() {
                cpu.state.x87.set_mm(r.number() as u8, v as u64);
            } else {
                reg_set(&mut cpu.state, r, v as u64);
            }
            Ok(())
        }
        OpKind::Memory => {
            let size = i.memory_size().size().min(16);
            write_mem(cpu, i, &v.to_le_bytes()[..size])
        }
        _ => Err(Fault::ud()),
    }
}

/// The register width in bytes of operand 0 (8 for MMX, 16 for XMM).
fn width(i: &Instruction) -> u32 {
    if op_reg(i, 0).is_mm() {
        8
    } else {
        16
    }
}

fn raise(cpu: &mut X86Cpu, flags: u8) -> R<()> {
    cpu.state.sse.raise(flags).map_err(|_| simd_fault(cpu))
}

/// Sets ZF, PF and CF from `zpc` and clears OF, SF and AF (COMISS, FCOMI).
fn set_compare_flags(cpu: &mut X86Cpu, zpc: u64) {
    let all = ZF | PF | CF | OF | SF | AF;
    cpu.state.rflags = (cpu.state.rflags & !all) | (zpc & (ZF | PF | CF));
}

/// The element format of a floating-point SSE mnemonic (…PS/…SS single, …PD/…SD double).
fn fmt_of(m: M) -> Format {
    if matches!(
        m,
        M::Addpd
            | M::Addsd
            | M::Subpd
            | M::Subsd
            | M::Mulpd
            | M::Mulsd
            | M::Divpd
            | M::Divsd
            | M::Minpd
            | M::Minsd
            | M::Maxpd
            | M::Maxsd
            | M::Sqrtpd
            | M::Sqrtsd
            | M::Cmppd
            | M::Cmpsd
            | M::Comisd
            | M::Ucomisd
    ) {
        DOUBLE
    } else {
        SINGLE
    }
}

// ---- MMX, SSE, SSE2 -----------------------------------------------------------------

fn simd(cpu: &mut X86Cpu, i: &Instruction) -> R<()> {
    let m = i.mnemonic();
    let mx = cpu.state.sse.mxcsr;
    match m {
        M::Emms => {}
        // ---- moves
        M::Movaps
        | M::Movapd
        | M::Movdqa
        | M::Movups
        | M::Movupd
        | M::Movdqu
        | M::Movntps
        | M::Movntpd
        | M::Movntdq
        | M::Movnti
        | M::Movntq => {
            let v = src(cpu, i, 1)?;
            dst(cpu, i, 0, v)?;
        }
        M::Movss | M::Movsd => {
            let bits = if m == M::Movss { 32 } else { 64 };
            let low = (1u128 << bits) - 1;
            let v = src(cpu, i, 1)?;
            match (i.op_kind(0), i.op_kind(1)) {
                (OpKind::Register, OpKind::Register) => {
                    let d = src(cpu, i, 0)?;
                    dst(cpu, i, 0, (d & !low) | (v & low))?;
                }
                // Loads zero the rest of the register; stores write the low element.
                _ => dst(cpu, i, 0, v & low)?,
            }
        }
        M::Movlps | M::Movlpd | M::Movhps | M::Movhpd | M::Movhlps | M::Movlhps => {
            let v = src(cpu, i, 1)?;
            if i.op_kind(0) == OpKind::Memory {
                let part = if matches!(m, M::Movhps | M::Movhpd) {
                    v >> 64
                } else {
                    v
                };
                dst(cpu, i, 0, part)?;
            } else {
                let d = src(cpu, i, 0)?;
                let lo = u128::from(u64::MAX);
                let r = match m {
                    M::Movlps | M::Movlpd => (d & !lo) | (v & lo),
                    M::Movhps | M::Movhpd => (d & lo) | (v << 64),
                    M::Movhlps => (d & !lo) | (v >> 64),
                    _ => (d & lo) | (v << 64),
                };
                dst(cpu, i, 0, r)?;
            }
        }
        M::Movd | M::Movq | M::Movq2dq | M::Movdq2q => {
            let mut v = src(cpu, i, 1)?;
            // The element moved: 32 bits for MOVD, 64 for the rest.
            let bits = if m == M::Movd { 32 } else { 64 };
            v &= (1u128 << bits) - 1;
            dst(cpu, i, 0, v)?;
        }
        M::Movmskps | M::Movmskpd | M::Pmovmskb => {
            let v = src(cpu, i, 1)?;
            let w = match m {
                M::Movmskps => 4,
                M::Movmskpd => 8,
                _ => 1,
            };
            let width = if op_reg(i, 1).is_mm() { 8 } else { 16 };
            let r = simd::movmsk(v, w, width);
            reg_set(&mut cpu.state, op_reg(i, 0), u64::from(r));
        }
        M::Maskmovq | M::Maskmovdqu => {
            let data = src(cpu, i, 1)?;
            let mask = src(cpu, i, 2)?;
            let width = if op_reg(i, 1).is_mm() { 8 } else { 16 };
            let offset = match i.op_kind(0) {
                OpKind::MemorySegDI => cpu.state.gpr[7] & 0xffff,
                OpKind::MemorySegEDI => cpu.state.gpr[7] & 0xffff_ffff,
                _ => cpu.state.gpr[7],
            };
            let segment = seg_index(i.memory_segment());
            let selected: Vec<usize> = (0..width as usize)
                .filter(|&b| (mask >> (8 * b + 7)) & 1 != 0)
                .collect();
            if !selected.is_empty() {
                cpu.probe_write(segment, offset, width)?;
                for b in selected {
                    cpu.write(
                        segment,
                        offset.wrapping_add(b as u64),
                        1,
                        (data >> (8 * b)) as u64 & 0xff,
                    )?;
                }
            }
        }
        // ---- logic
        M::Andps | M::Andpd | M::Pand => binary(cpu, i, |a, b| a & b)?,
        M::Andnps | M::Andnpd | M::Pandn => binary(cpu, i, simd::andn)?,
        M::Orps | M::Orpd | M::Por => binary(cpu, i, |a, b| a | b)?,
        M::Xorps | M::Xorpd | M::Pxor => binary(cpu, i, |a, b| a ^ b)?,
        // ---- floating-point arithmetic
        M::Addps | M::Addss | M::Addpd | M::Addsd => fp_arith(cpu, i, FpOp::Add)?,
        M::Subps | M::Subss | M::Subpd | M::Subsd => fp_arith(cpu, i, FpOp::Sub)?,
        M::Mulps | M::Mulss | M::Mulpd | M::Mulsd => fp_arith(cpu, i, FpOp::Mul)?,
        M::Divps | M::Divss | M::Divpd | M::Divsd => fp_arith(cpu, i, FpOp::Div)?,
        M::Minps | M::Minss | M::Minpd | M::Minsd => fp_arith(cpu, i, FpOp::Min)?,
        M::Maxps | M::Maxss | M::Maxpd | M::Maxsd => fp_arith(cpu, i, FpOp::Max)?,
        M::Sqrtps | M::Sqrtss | M::Sqrtpd | M::Sqrtsd => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)?;
            let l = sse::sqrt_reg(a, b, fmt_of(m), packed(m), mx);
            commit(cpu, i, l)?;
        }
        M::Rcpps | M::Rcpss | M::Rsqrtps | M::Rsqrtss => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)?;
            let p = matches!(m, M::Rcpps | M::Rsqrtps);
            let r = if matches!(m, M::Rcpps | M::Rcpss) {
                approx::rcp_reg(a, b, p)
            } else {
                approx::rsqrt_reg(a, b, p)
            };
            dst(cpu, i, 0, r)?;
        }
        M::Cmpps | M::Cmpss | M::Cmppd | M::Cmpsd => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)?;
            let pred = i.immediate(2) as u8 & 7;
            let l = sse::cmp_reg(pred, a, b, fmt_of(m), packed(m), mx);
            commit(cpu, i, l)?;
        }
        M::Comiss | M::Ucomiss | M::Comisd | M::Ucomisd => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)?;
            let fmt = fmt_of(m);
            let lane = if fmt == SINGLE { 0xffff_ffff } else { u64::MAX };
            let l = sse::comis(
                matches!(m, M::Comiss | M::Comisd),
                a as u64 & lane,
                b as u64 & lane,
                fmt,
                mx,
            );
            raise(cpu, l.flags)?;
            set_compare_flags(cpu, l.value);
        }
        // ---- conversions
        M::Cvtsi2ss | M::Cvtsi2sd => {
            let a = src(cpu, i, 0)?;
            let v = src(cpu, i, 1)? as u64;
            let v = if i.memory_size().size() == 4 || op_reg(i, 1).size() == 4 {
                v as u32 as i32 as i64
            } else {
                v as i64
            };
            let to = if m == M::Cvtsi2ss { SINGLE } else { DOUBLE };
            commit(cpu, i, sse::cvtsi2s(a, v, to, mx))?;
        }
        M::Cvtss2si | M::Cvttss2si | M::Cvtsd2si | M::Cvttsd2si => {
            let b = src(cpu, i, 1)? as u64;
            let from = if matches!(m, M::Cvtss2si | M::Cvttss2si) {
                SINGLE
            } else {
                DOUBLE
            };
            let b = if from == SINGLE { b & 0xffff_ffff } else { b };
            let bits = (op_reg(i, 0).size() * 8) as u32;
            let l = sse::to_int(b, from, bits, matches!(m, M::Cvttss2si | M::Cvttsd2si), mx);
            raise(cpu, l.flags)?;
            reg_set(&mut cpu.state, op_reg(i, 0), l.value as u64);
        }
        M::Cvtss2sd | M::Cvtsd2ss => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)?;
            let from = if m == M::Cvtss2sd { SINGLE } else { DOUBLE };
            commit(cpu, i, sse::cvt_scalar_float(a, b, from, mx))?;
        }
        M::Cvtps2pd | M::Cvtpd2ps => {
            let b = src(cpu, i, 1)?;
            let from = if m == M::Cvtps2pd { SINGLE } else { DOUBLE };
            commit(cpu, i, sse::cvt_packed_float(b, from, mx))?;
        }
        M::Cvtdq2ps | M::Cvtdq2pd => {
            let b = src(cpu, i, 1)?;
            let to = if m == M::Cvtdq2ps { SINGLE } else { DOUBLE };
            commit(cpu, i, sse::cvt_from_dq(b, to, mx))?;
        }
        M::Cvtps2dq | M::Cvttps2dq | M::Cvtpd2dq | M::Cvttpd2dq => {
            let b = src(cpu, i, 1)?;
            let from = if matches!(m, M::Cvtps2dq | M::Cvttps2dq) {
                SINGLE
            } else {
                DOUBLE
            };
            let t = matches!(m, M::Cvttps2dq | M::Cvttpd2dq);
            commit(cpu, i, sse::cvt_to_dq(b, from, t, mx))?;
        }
        M::Cvtpi2ps => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)? as u64;
            commit(cpu, i, sse::cvtpi2ps(a, b, mx))?;
        }
        M::Cvtpi2pd => {
            let b = src(cpu, i, 1)? as u64;
            commit(cpu, i, sse::cvtpi2pd(b, mx))?;
        }
        M::Cvtps2pi | M::Cvttps2pi | M::Cvtpd2pi | M::Cvttpd2pi => {
            let b = src(cpu, i, 1)?;
            let from = if matches!(m, M::Cvtps2pi | M::Cvttps2pi) {
                SINGLE
            } else {
                DOUBLE
            };
            let t = matches!(m, M::Cvttps2pi | M::Cvttpd2pi);
            let l = sse::cvt_to_pi(b, from, t, mx);
            raise(cpu, l.flags)?;
            dst(cpu, i, 0, u128::from(l.value))?;
        }
        // ---- shuffles and unpacks
        M::Shufps | M::Shufpd => {
            let a = src(cpu, i, 0)?;
            let b = src(cpu, i, 1)?;
            let imm = i.immediate(2) as u8;
            let r = if m == M::Shufps {
                simd::shufps(a, b, imm)
            } else {
                simd::shufpd(a, b, imm)
            };
            dst(cpu, i, 0, r)?;
        }
        M::Unpcklps | M::Unpckhps | M::Unpcklpd | M::Unpckhpd => {
            let w = if matches!(m, M::Unpcklps | M::Unpckhps) {
                4
            } else {
                8
            };
            let high = matches!(m, M::Unpckhps | M::Unpckhpd);
            binary(cpu, i, |a, b| simd::unpack(a, b, w, high, 16))?;
        }
        M::Punpcklbw
        | M::Punpcklwd
        | M::Punpckldq
        | M::Punpcklqdq
        | M::Punpckhbw
        | M::Punpckhwd
        | M::Punpckhdq
        | M::Punpckhqdq => {
            let (w, high) = match m {
                M::Punpcklbw => (1, false),
                M::Punpcklwd => (2, false),
                M::Punpckldq => (4, false),
                M::Punpcklqdq => (8, false),
                M::Punpckhbw => (1, true),
                M::Punpckhwd => (2, true),
                M::Punpckhdq => (4, true),
                _ => (8, true),
            };
            let width = width(i);
            binary(cpu, i, |a, b| simd::unpack(a, b, w, high, width))?;
        }
        M::Pshufd | M::Pshufw => {
            let b = src(cpu, i, 1)?;
            let imm = i.immediate(2) as u8;
            let r = if m == M::Pshufd {
                simd::pshuf(b, 4, imm, 16)
            } else {
                simd::pshuf(b, 2, imm, 8)
            };
            dst(cpu, i, 0, r)?;
        }
        M::Pshuflw | M::Pshufhw => {
            let b = src(cpu, i, 1)?;
            let r = simd::pshuf_half(b, m == M::Pshufhw, i.immediate(2) as u8);
            dst(cpu, i, 0, r)?;
        }
        M::Packsswb | M::Packssdw | M::Packuswb => {
            let (w, unsigned) = match m {
                M::Packsswb => (2, false),
                M::Packssdw => (4, false),
                _ => (2, true),
            };
            let width = width(i);
            binary(cpu, i, |a, b| simd::pack(a, b, w, unsigned, width))?;
        }
        // ---- integer arithmetic
        M::Paddb | M::Paddw | M::Paddd | M::Paddq => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::padd(a, b, w, Sat::Wrap, width))?;
        }
        M::Paddsb | M::Paddsw => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::padd(a, b, w, Sat::Signed, width))?;
        }
        M::Paddusb | M::Paddusw => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::padd(a, b, w, Sat::Unsigned, width))?;
        }
        M::Psubb | M::Psubw | M::Psubd | M::Psubq => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::psub(a, b, w, Sat::Wrap, width))?;
        }
        M::Psubsb | M::Psubsw => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::psub(a, b, w, Sat::Signed, width))?;
        }
        M::Psubusb | M::Psubusw => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::psub(a, b, w, Sat::Unsigned, width))?;
        }
        M::Pmullw => {
            let width = width(i);
            binary(cpu, i, |a, b| simd::pmullw(a, b, width))?;
        }
        M::Pmulhw | M::Pmulhuw => {
            let (signed, width) = (m == M::Pmulhw, width(i));
            binary(cpu, i, |a, b| simd::pmulhw(a, b, signed, width))?;
        }
        M::Pmuludq => {
            let width = width(i);
            binary(cpu, i, |a, b| simd::pmuludq(a, b, width))?;
        }
        M::Pmaddwd => {
            let width = width(i);
            binary(cpu, i, |a, b| simd::pmaddwd(a, b, width))?;
        }
        M::Psadbw => {
            let width = width(i);
            binary(cpu, i, |a, b| simd::psadbw(a, b, width))?;
        }
        M::Pavgb | M::Pavgw => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::pavg(a, b, w, width))?;
        }
        M::Pminub | M::Pmaxub | M::Pminsw | M::Pmaxsw => {
            let (w, width) = (lane_of(m), width(i));
            let signed = matches!(m, M::Pminsw | M::Pmaxsw);
            let max = matches!(m, M::Pmaxub | M::Pmaxsw);
            binary(cpu, i, |a, b| simd::pminmax(a, b, w, signed, max, width))?;
        }
        M::Pcmpeqb | M::Pcmpeqw | M::Pcmpeqd => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::pcmpeq(a, b, w, width))?;
        }
        M::Pcmpgtb | M::Pcmpgtw | M::Pcmpgtd => {
            let (w, width) = (lane_of(m), width(i));
            binary(cpu, i, |a, b| simd::pcmpgt(a, b, w, width))?;
        }
        M::Psllw | M::Pslld | M::Psllq | M::Psrlw | M::Psrld | M::Psrlq | M::Psraw | M::Psrad => {
            let kind = match m {
                M::Psllw | M::Pslld | M::Psllq => Shift::Left,
                M::Psrlw | M::Psrld | M::Psrlq => Shift::Right,
                _ => Shift::Arith,
            };
            let (w, width) = (lane_of(m), width(i));
            let a = src(cpu, i, 0)?;
            // The count: an imm8, or the whole low quadword of the register or memory.
            let count = src(cpu, i, 1)? as u64;
            dst(cpu, i, 0, simd::pshift(a, w, kind, count, width))?;
        }
        M::Pslldq | M::Psrldq => {
            let a = src(cpu, i, 0)?;
            let r = simd::pshift_bytes(a, m == M::Pslldq, i.immediate(1) as u8);
            dst(cpu, i, 0, r)?;
        }
        M::Pextrw => {
            let a = src(cpu, i, 1)?;
            let width = if op_reg(i, 1).is_mm() { 8 } else { 16 };
            let r = simd::pextrw(a, i.immediate(2) as u8, width);
            reg_set(&mut cpu.state, op_reg(i, 0), u64::from(r));
        }
        M::Pinsrw => {
            let a = src(cpu, i, 0)?;
            let v = src(cpu, i, 1)? as u32;
            let r = simd::pinsrw(a, v, i.immediate(2) as u8, width(i));
            dst(cpu, i, 0, r)?;
        }
        // ---- MXCSR
        M::Ldmxcsr => {
            let v = read_mem_value(cpu, i)? as u32;
            cpu.state.sse.ldmxcsr(v).map_err(|_| Fault::gp(0))?;
        }
        M::Stmxcsr => {
            let v = cpu.state.sse.mxcsr;
            write_mem(cpu, i, &v.to_le_bytes())?;
        }
        _ => return Err(Fault::ud()),
    }
    Ok(())
}

/// Lane width in bytes from a packed-integer mnemonic's suffix.
fn lane_of(m: M) -> u32 {
    match m {
        M::Paddb
        | M::Paddsb
        | M::Paddusb
        | M::Psubb
        | M::Psubsb
        | M::Psubusb
        | M::Pavgb
        | M::Pminub
        | M::Pmaxub
        | M::Pcmpeqb
        | M::Pcmpgtb => 1,
        M::Paddw
        | M::Paddsw
        | M::Paddusw
        | M::Psubw
        | M::Psubsw
        | M::Psubusw
        | M::Pavgw
        | M::Pminsw
        | M::Pmaxsw
        | M::Pcmpeqw
        | M::Pcmpgtw
        | M::Psllw
        | M::Psrlw
        | M::Psraw => 2,
        M::Paddd | M::Psubd | M::Pcmpeqd | M::Pcmpgtd | M::Pslld | M::Psrld | M::Psrad => 4,
        _ => 8,
    }
}

/// Packed (…PS/…PD) or scalar (…SS/…SD).
fn packed(m: M) -> Width {
    if matches!(
        m,
        M::Addps
            | M::Addpd
            | M::Subps
            | M::Subpd
            | M::Mulps
            | M::Mulpd
            | M::Divps
            | M::Divpd
            | M::Minps
            | M::Minpd
            | M::Maxps
            | M::Maxpd
            | M::Sqrtps
            | M::Sqrtpd
            | M::Cmpps
            | M::Cmppd
    ) {
        Width::Packed
    } else {
        Width::Scalar
    }
}

/// `op0 = f(op0, op1)`.
fn binary(cpu: &mut X86Cpu, i: &Instruction, f: impl Fn(u128, u128) -> u128) -> R<()> {
    let a = src(cpu, i, 0)?;
    let b = src(cpu, i, 1)?;
    let r = f(a, b);
    let r = if width(i) == 8 {
        r & u128::from(u64::MAX)
    } else {
        r
    };
    dst(cpu, i, 0, r)
}

fn fp_arith(cpu: &mut X86Cpu, i: &Instruction, op: FpOp) -> R<()> {
    let m = i.mnemonic();
    let a = src(cpu, i, 0)?;
    let b = src(cpu, i, 1)?;
    let l = sse::arith(op, a, b, fmt_of(m), packed(m), cpu.state.sse.mxcsr);
    commit(cpu, i, l)
}

/// Raises the lane flags and, when no unmasked exception results, writes operand 0.
fn commit(cpu: &mut X86Cpu, i: &Instruction, l: Lane<u128>) -> R<()> {
    raise(cpu, l.flags)?;
    dst(cpu, i, 0, l.value)
}

// ---- FXSAVE / FXRSTOR --------------------------------------------------------------------

fn fxsave_fxrstor(cpu: &mut X86Cpu, i: &Instruction) -> R<()> {
    let m = i.mnemonic();
    let form = if matches!(m, M::Fxsave64 | M::Fxrstor64) {
        FxForm::Bits64
    } else {
        FxForm::Bits32
    };
    let xmm_count = if cpu.state.mode() == Mode::Long64 {
        16
    } else {
        8
    };
    // The architectural part of the image: bytes 0–159 and the XMM registers saved.
    let len = 160 + 16 * xmm_count;
    let mut img = [0u8; 512];
    match m {
        M::Fxsave | M::Fxsave64 => {
            image::fxsave(&cpu.state.x87, &cpu.state.sse, form, xmm_count, &mut img);
            // The 512-byte operand is checked (segment limit, alignment) as a whole.
            mem_linear(cpu, i, 512, true)?;
            write_mem(cpu, i, &img[..len])
        }
        _ => {
            mem_linear(cpu, i, 512, false)?;
            read_mem(cpu, i, &mut img[..len])?;
            image::fxrstor(
                &mut cpu.state.x87,
                &mut cpu.state.sse,
                form,
                xmm_count,
                &img,
            )
            .map_err(|_| Fault::gp(0))?;
            // FCS and FDS are deprecated (saved as 0 whatever was loaded).
            cpu.state.x87.fcs = 0;
            cpu.state.x87.fds = 0;
            Ok(())
        }
    }
}

// ---- x87 --------------------------------------------------------------------------------

fn st_index(i: &Instruction, n: u32) -> u8 {
    let r = op_reg(i, n);
    if r.is_st() {
        r.number() as u8
    } else {
        0
    }
}

fn x87_mem(cpu: &mut X86Cpu, i: &Instruction) -> R<MemOperand> {
    let size = i.memory_size();
    let mut b = [0u8; 10];
    let n = size.size().min(10);
    read_mem(cpu, i, &mut b[..n])?;
    let mut q = [0u8; 8];
    q.copy_from_slice(&b[..8]);
    let q = u64::from_le_bytes(q);
    Ok(match size {
        MemorySize::Float32 => MemOperand::F32(q as u32),
        MemorySize::Float64 => MemOperand::F64(q),
        MemorySize::Float80 => MemOperand::F80(pandare_x86_float::x87::F80Bits::from_bytes(b)),
        MemorySize::Int16 => MemOperand::I16(q as u16 as i16),
        MemorySize::Int32 => MemOperand::I32(q as u32 as i32),
        MemorySize::Int64 => MemOperand::I64(q as i64),
        MemorySize::Bcd => MemOperand::Bcd(b),
        _ => return Err(Fault::ud()),
    })
}

/// The source of an arithmetic or compare instruction: memory, or the ST(i) operand.
fn x87_src(cpu: &mut X86Cpu, i: &Instruction, n: u32) -> R<Operand> {
    if i.op_count() > n && i.op_kind(n) == OpKind::Memory {
        Ok(Operand::Mem(x87_mem(cpu, i)?))
    } else if i.op_count() > n {
        Ok(Operand::St(st_index(i, n)))
    } else {
        Ok(Operand::St(1))
    }
}

fn is_control(m: M) -> bool {
    matches!(
        m,
        M::Fninit
            | M::Finit
            | M::Fnclex
            | M::Fclex
            | M::Fldcw
            | M::Fnstcw
            | M::Fstcw
            | M::Fnstsw
            | M::Fstsw
            | M::Fnstenv
            | M::Fstenv
            | M::Fldenv
            | M::Fnsave
            | M::Fsave
            | M::Frstor
            | M::Fneni
            | M::Feni
            | M::Fndisi
            | M::Fdisi
            | M::Fnsetpm
            | M::Fsetpm
    )
}

fn env_form(i: &Instruction) -> EnvForm {
    match i.code() {
        Code::Fldenv_m14byte
        | Code::Fnstenv_m14byte
        | Code::Fstenv_m14byte
        | Code::Frstor_m94byte
        | Code::Fnsave_m94byte
        | Code::Fsave_m94byte => EnvForm::Bits16,
        _ => EnvForm::Bits32,
    }
}

fn store_kind(i: &Instruction) -> Option<StoreKind> {
    Some(match i.memory_size() {
        MemorySize::Float32 => StoreKind::F32,
        MemorySize::Float64 => StoreKind::F64,
        MemorySize::Float80 => StoreKind::F80,
        MemorySize::Int16 => StoreKind::I16,
        MemorySize::Int32 => StoreKind::I32,
        MemorySize::Int64 => StoreKind::I64,
        MemorySize::Bcd => StoreKind::Bcd,
        _ => return None,
    })
}

fn x87(cpu: &mut X86Cpu, i: &Instruction) -> R<()> {
    let m = i.mnemonic();
    let has_mem = (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory);
    let f = cpu.state.rflags;
    match m {
        M::Fld | M::Fild | M::Fbld => {
            let s = x87_src(cpu, i, 0)?;
            cpu.state.x87.fld(s);
        }
        M::Fld1 | M::Fldl2t | M::Fldl2e | M::Fldpi | M::Fldlg2 | M::Fldln2 | M::Fldz => {
            let c = match m {
                M::Fld1 => Constant::One,
                M::Fldl2t => Constant::L2T,
                M::Fldl2e => Constant::L2E,
                M::Fldpi => Constant::Pi,
                M::Fldlg2 => Constant::Lg2,
                M::Fldln2 => Constant::Ln2,
                _ => Constant::Zero,
            };
            cpu.state.x87.fld_const(c);
        }
        M::Fstpnce => {
            // D9 D8+i (FSTP1): FSTP ST(i) that does not check for an empty ST(0): then
            // nothing is stored and no exception is raised; C1 is cleared and the stack pops
            // (measured on an Intel host).
            let x = &mut cpu.state.x87;
            let st = st_index(i, 0);
            if !x.is_empty(0) {
                let v = x.st(0);
                x.set_st(st, v);
            }
            x.fsw &= !0x200;
            x.pop();
        }
        M::Fst | M::Fstp | M::Fist | M::Fistp | M::Fbstp => {
            let pop = matches!(m, M::Fstp | M::Fistp | M::Fbstp);
            if has_mem {
                let kind = store_kind(i).ok_or_else(Fault::ud)?;
                // Check the destination first: a faulting store changes nothing.
                let len = i.memory_size().size();
                mem_linear(cpu, i, len, true)?;
                if let Some(bytes) = cpu.state.x87.fst(kind, pop) {
                    write_mem(cpu, i, &bytes)?;
                }
            } else {
                let st = st_index(i, 0);
                cpu.state.x87.fst_st(st, pop);
            }
        }
        M::Fadd
        | M::Faddp
        | M::Fiadd
        | M::Fsub
        | M::Fsubp
        | M::Fisub
        | M::Fsubr
        | M::Fsubrp
        | M::Fisubr
        | M::Fmul
        | M::Fmulp
        | M::Fimul
        | M::Fdiv
        | M::Fdivp
        | M::Fidiv
        | M::Fdivr
        | M::Fdivrp
        | M::Fidivr => {
            let op = match m {
                M::Fadd | M::Faddp | M::Fiadd => Arith::Add,
                M::Fsub | M::Fsubp | M::Fisub => Arith::Sub,
                M::Fsubr | M::Fsubrp | M::Fisubr => Arith::SubR,
                M::Fmul | M::Fmulp | M::Fimul => Arith::Mul,
                M::Fdiv | M::Fdivp | M::Fidiv => Arith::Div,
                _ => Arith::DivR,
            };
            let pop = matches!(
                m,
                M::Faddp | M::Fsubp | M::Fsubrp | M::Fmulp | M::Fdivp | M::Fdivrp
            );
            let (d, s) = if has_mem {
                (0, x87_src(cpu, i, 0)?)
            } else {
                (st_index(i, 0), Operand::St(st_index(i, 1)))
            };
            cpu.state.x87.arith(op, d, s, pop);
        }
        M::Fcom
        | M::Fcomp
        | M::Fcompp
        | M::Fucom
        | M::Fucomp
        | M::Fucompp
        | M::Ficom
        | M::Ficomp => {
            let kind = if matches!(m, M::Fucom | M::Fucomp | M::Fucompp) {
                CompareKind::Unordered
            } else {
                CompareKind::Ordered
            };
            let pops = match m {
                M::Fcompp | M::Fucompp => 2,
                M::Fcomp | M::Fucomp | M::Ficomp => 1,
                _ => 0,
            };
            let s = if has_mem {
                x87_src(cpu, i, 0)?
            } else if i.op_count() == 2 {
                Operand::St(st_index(i, 1))
            } else {
                Operand::St(1)
            };
            cpu.state.x87.fcom(kind, s, pops);
        }
        M::Fcomi | M::Fcomip | M::Fucomi | M::Fucomip => {
            let kind = if matches!(m, M::Fucomi | M::Fucomip) {
                CompareKind::Unordered
            } else {
                CompareKind::Ordered
            };
            let pop = matches!(m, M::Fcomip | M::Fucomip);
            let zpc = cpu.state.x87.fcomi(kind, st_index(i, 1), pop);
            set_compare_flags(cpu, zpc);
        }
        M::Ftst => cpu.state.x87.ftst(),
        M::Fxam => cpu.state.x87.fxam(),
        M::Fxch => cpu.state.x87.fxch(st_index(i, 1).max(st_index(i, 0))),
        M::Fcmovb
        | M::Fcmove
        | M::Fcmovbe
        | M::Fcmovu
        | M::Fcmovnb
        | M::Fcmovne
        | M::Fcmovnbe
        | M::Fcmovnu => {
            let c = f & CF != 0;
            let z = f & ZF != 0;
            let p = f & PF != 0;
            let cond = match m {
                M::Fcmovb => c,
                M::Fcmove => z,
                M::Fcmovbe => c || z,
                M::Fcmovu => p,
                M::Fcmovnb => !c,
                M::Fcmovne => !z,
                M::Fcmovnbe => !c && !z,
                _ => !p,
            };
            cpu.state.x87.fcmov(st_index(i, 1), cond);
        }
        M::Fchs => cpu.state.x87.fchs(),
        M::Fabs => cpu.state.x87.fabs(),
        M::Fsqrt => cpu.state.x87.fsqrt(),
        M::Frndint => cpu.state.x87.frndint(),
        M::Fscale => cpu.state.x87.fscale(),
        M::Fxtract => cpu.state.x87.fxtract(),
        M::Fprem => cpu.state.x87.fprem(false),
        M::Fprem1 => cpu.state.x87.fprem(true),
        M::F2xm1 => cpu.state.x87.f2xm1(),
        M::Fyl2x => cpu.state.x87.fyl2x(false),
        M::Fyl2xp1 => cpu.state.x87.fyl2x(true),
        M::Fptan => cpu.state.x87.fptan(),
        M::Fpatan => cpu.state.x87.fpatan(),
        M::Fsin => cpu.state.x87.fsin_fcos(false),
        M::Fcos => cpu.state.x87.fsin_fcos(true),
        M::Fsincos => cpu.state.x87.fsincos(),
        M::Ffree => cpu.state.x87.ffree(st_index(i, 0)),
        M::Ffreep => {
            cpu.state.x87.ffree(st_index(i, 0));
            cpu.state.x87.pop();
        }
        M::Fincstp => cpu.state.x87.fincstp(),
        M::Fdecstp => cpu.state.x87.fdecstp(),
        M::Fnop | M::Fneni | M::Feni | M::Fndisi | M::Fdisi | M::Fnsetpm | M::Fsetpm => {}
        M::Fninit | M::Finit => cpu.state.x87.finit(),
        M::Fnclex | M::Fclex => cpu.state.x87.fclex(),
        M::Fldcw => {
            let v = read_mem_value(cpu, i)? as u16;
            cpu.state.x87.fldcw(v);
        }
        M::Fnstcw | M::Fstcw => {
            let v = cpu.state.x87.fcw;
            write_mem(cpu, i, &v.to_le_bytes())?;
        }
        M::Fnstsw | M::Fstsw => {
            let v = cpu.state.x87.fsw;
            if has_mem {
                write_mem(cpu, i, &v.to_le_bytes())?;
            } else {
                reg_set(&mut cpu.state, Register::AX, u64::from(v));
            }
        }
        M::Fnstenv | M::Fstenv | M::Fnsave | M::Fsave => {
            let form = env_form(i);
            let len = form.env_len()
                + if matches!(m, M::Fnsave | M::Fsave) {
                    80
                } else {
                    0
                };
            mem_linear(cpu, i, len, true)?;
            let bytes = if matches!(m, M::Fnstenv | M::Fstenv) {
                image::fstenv(&mut cpu.state.x87, form)
            } else {
                image::fsave(&mut cpu.state.x87, form)
            };
            write_mem(cpu, i, &bytes)?;
        }
        M::Fldenv | M::Frstor => {
            let form = env_form(i);
            let len = form.env_len() + if m == M::Frstor { 80 } else { 0 };
            let mut b = vec![0u8; len];
            read_mem(cpu, i, &mut b)?;
            let r = if m == M::Fldenv {
                image::fldenv(&mut cpu.state.x87, form, &b)
            } else {
                image::frstor(&mut cpu.state.x87, form, &b)
            };
            r.map_err(|_| Fault::gp(0))?;
            // FCS and FDS are deprecated: the loaded selectors are not kept (the Intel host
            // stores 0 after loading any).
            cpu.state.x87.fcs = 0;
            cpu.state.x87.fds = 0;
        }
        _ => return Err(Fault::ud()),
    }
    if !is_control(m) {
        // The last-instruction pointers as current Intel processors keep them: FIP for every
        // non-control instruction; FOP and FDP only when the instruction leaves an unmasked
        // exception pending; FCS and FDS deprecated (saved as 0).
        let pending = cpu.state.x87.exception_pending();
        let fop = if pending { fop_of(cpu, i) } else { 0 };
        let fdp = if pending && has_mem { ea(cpu, i) } else { 0 };
        let x = &mut cpu.state.x87;
        x.fip = i.ip();
        x.fcs = 0;
        if pending {
            x.fop = fop;
            if has_mem {
                x.fdp = fdp;
                x.fds = 0;
            }
        }
    }
    Ok(())
}

/// FOP of the x87 instruction `i`: the low three bits of its escape byte (D8–DF) and its
/// ModRM byte, read again from the code (only on the rare path of an unmasked exception;
/// a fetch translation, no data access).
fn fop_of(cpu: &mut X86Cpu, i: &Instruction) -> u16 {
    let base = cpu.state.segments[seg::CS].base;
    let long = cpu.state.mode() == Mode::Long64;
    let len = i.len().min(15);
    let mut bytes = [0u8; 15];
    for (k, byte) in bytes.iter_mut().enumerate().take(len) {
        let mut linear = base.wrapping_add(i.ip()).wrapping_add(k as u64);
        if !long {
            linear &= 0xffff_ffff;
        }
        match cpu.translate(linear, crate::mmu::Access::Fetch, false) {
            Ok(p) => cpu.phys_read(p, std::slice::from_mut(byte)),
            Err(_) => return 0,
        }
    }
    // Prefixes (66, 67, F0, F2, F3, segment overrides, REX) are never D8–DF.
    match bytes[..len].iter().position(|b| (0xd8..=0xdf).contains(b)) {
        Some(k) if k + 1 < len => (u16::from(bytes[k] & 7) << 8) | u16::from(bytes[k + 1]),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `handles` looks at iced's first feature only; this checks that against every feature
    /// of every legacy encoding, so a reordering in iced cannot silently drop instructions.
    #[test]
    fn handles_agrees_with_the_whole_feature_list() {
        for code in Code::values() {
            let name = format!("{code:?}");
            if ["VEX_", "EVEX_", "XOP_", "MVEX_", "D3NOW_"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                continue;
            }
            let mut i = Instruction::default();
            i.set_code(code);
            let f = code.cpuid_features();
            let ours = f.iter().any(|f| {
                matches!(
                    f,
                    CpuidFeature::FPU
                        | CpuidFeature::FPU287
                        | CpuidFeature::FPU387
                        | CpuidFeature::MMX
                        | CpuidFeature::SSE
                        | CpuidFeature::SSE2
                        | CpuidFeature::FXSR
                )
            }) && !f.contains(&CpuidFeature::SSE3)
                && !matches!(
                    code.mnemonic(),
                    M::Prefetchnta
                        | M::Prefetcht0
                        | M::Prefetcht1
                        | M::Prefetcht2
                        | M::Sfence
                        | M::Lfence
                        | M::Mfence
                );
            let expected = ours || code.mnemonic() == M::Wait;
            assert_eq!(handles(&i), expected, "{name} {f:?}");
        }
    }
}
