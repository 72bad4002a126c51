//! System-level rules of the x87, MMX and SSE units, through the IDT of a small machine
//! (`pandare_x86::fuzzing::machine`: handlers are HLT at `HANDLERS + 16 × vector`): #NM
//! for CR0.TS/EM, #UD for SSE without CR4.OSFXSR or with CR0.EM, #XM or #UD for unmasked
//! SIMD exceptions by CR4.OSXMMEXCPT, #MF at the next waiting x87 instruction, #GP for
//! misaligned 16-byte operands and FXSAVE areas and for reserved MXCSR bits; FXSAVE →
//! FXRSTOR round trips; the state's serialization with the FPU; and the CPUID model
//! advertising exactly what executes.

use pandare_x86::fuzzing::{layout, machine, StartMode};
use pandare_x86::state::{cr, State};
use pandare_x86::{Exit, X86Cpu};

fn kernel(code: &[u8]) -> X86Cpu {
    machine(code, 0, StartMode::Long64)
}

/// The vector whose handler the CPU halted in.
fn halted_in(cpu: &X86Cpu) -> Option<u64> {
    let rip = cpu.state.rip.checked_sub(1 + layout::HANDLERS)?;
    (rip < 256 * 16).then_some(rip / 16)
}

/// Runs until HLT; the vector taken, or `None` when the code's own final HLT was reached.
fn run(cpu: &mut X86Cpu) -> Option<u64> {
    assert_eq!(cpu.run(10_000), Exit::Halted);
    halted_in(cpu)
}

/// The faulting RIP pushed by the exception (the frame's first qword, no error code).
fn frame_rip(cpu: &X86Cpu, error_code: bool) -> u64 {
    let rsp = cpu.state.gpr[4] + if error_code { 8 } else { 0 };
    let mut b = [0u8; 8];
    assert!(cpu.ram.read_bytes(rsp, &mut b));
    u64::from_le_bytes(b)
}

const ADDPS: [u8; 3] = [0x0f, 0x58, 0xc1]; // addps xmm0, xmm1
const FLD1: [u8; 2] = [0xd9, 0xe8];
const PADDB_MM: [u8; 3] = [0x0f, 0xfc, 0xc1];

fn with_hlt(code: &[u8]) -> Vec<u8> {
    let mut c = code.to_vec();
    c.push(0xf4);
    c
}

#[test]
fn cr0_ts_raises_nm_for_x87_mmx_sse_fwait_and_fxsave() {
    for (name, code) in [
        ("x87", FLD1.to_vec()),
        ("mmx", PADDB_MM.to_vec()),
        ("sse", ADDPS.to_vec()),
        ("fwait", vec![0x9b]),
        (
            "fxsave",
            vec![0x0f, 0xae, 0x04, 0x25, 0x00, 0x00, 0x04, 0x00],
        ),
    ] {
        let mut cpu = kernel(&with_hlt(&code));
        cpu.state.cr0 |= cr::CR0_TS;
        assert_eq!(run(&mut cpu), Some(7), "{name} with CR0.TS");
        assert_eq!(
            frame_rip(&cpu, false),
            layout::CODE,
            "{name}: #NM is a fault"
        );
        // CLTS and the instruction runs.
        let mut cpu = kernel(&with_hlt(&[&[0x0f, 0x06][..], &code].concat()));
        cpu.state.cr0 |= cr::CR0_TS;
        assert_eq!(run(&mut cpu), None, "{name} after CLTS");
    }
    // FWAIT only faults with CR0.MP as well.
    let mut cpu = kernel(&with_hlt(&[0x9b]));
    cpu.state.cr0 = (cpu.state.cr0 | cr::CR0_TS) & !cr::CR0_MP;
    assert_eq!(run(&mut cpu), None);
}

#[test]
fn cr0_em_is_nm_for_x87_and_ud_for_mmx_and_sse() {
    for (name, code, vector) in [
        ("x87", FLD1.to_vec(), 7),
        ("mmx", PADDB_MM.to_vec(), 6),
        ("sse", ADDPS.to_vec(), 6),
    ] {
        let mut cpu = kernel(&with_hlt(&code));
        cpu.state.cr0 |= cr::CR0_EM;
        assert_eq!(run(&mut cpu), Some(vector), "{name} with CR0.EM");
    }
}

#[test]
fn sse_without_osfxsr_is_ud_but_mmx_and_x87_run() {
    for (name, code, vector) in [
        ("sse", ADDPS.to_vec(), Some(6)),
        ("ldmxcsr", vec![0x0f, 0xae, 0x14, 0x25, 0, 0, 4, 0], Some(6)),
        ("mmx", PADDB_MM.to_vec(), None),
        ("x87", FLD1.to_vec(), None),
    ] {
        let mut cpu = kernel(&with_hlt(&code));
        cpu.state.cr4 &= !cr::CR4_OSFXSR;
        assert_eq!(run(&mut cpu), vector, "{name} without CR4.OSFXSR");
    }
}

#[test]
fn unmasked_simd_exception_is_xm_or_ud_and_leaves_the_destination() {
    // divss xmm0, xmm1 with xmm1 = 0 and ZE unmasked.
    for (osxmmexcpt, vector) in [(true, 19), (false, 6)] {
        let mut cpu = kernel(&with_hlt(&[0xf3, 0x0f, 0x5e, 0xc1]));
        cpu.state.sse.mxcsr = 0x1f80 & !(1 << 9);
        cpu.state.sse.xmm[0] = u128::from(1.0f32.to_bits());
        cpu.state.sse.xmm[1] = 0;
        if !osxmmexcpt {
            cpu.state.cr4 &= !cr::CR4_OSXMMEXCPT;
        }
        assert_eq!(run(&mut cpu), Some(vector));
        assert_eq!(frame_rip(&cpu, false), layout::CODE);
        assert_eq!(cpu.state.sse.xmm[0], u128::from(1.0f32.to_bits()));
        assert_eq!(
            cpu.state.sse.mxcsr & 0x3f,
            0x4,
            "ZE is set even when delivered"
        );
    }
    // Masked: the result is written, no exception.
    let mut cpu = kernel(&with_hlt(&[0xf3, 0x0f, 0x5e, 0xc1]));
    cpu.state.sse.xmm[0] = u128::from(1.0f32.to_bits());
    assert_eq!(run(&mut cpu), None);
    assert_eq!(cpu.state.sse.xmm[0] as u32, f32::INFINITY.to_bits());
}

#[test]
fn unmasked_x87_exception_is_delivered_at_the_next_waiting_instruction() {
    // fldcw [DATA] (ZE unmasked); fldz; fld1; fdiv st0, st1 (pending); fnstsw ax (no wait);
    // fnop (waits: #MF here).
    let code = [
        0xd9, 0x2c, 0x25, 0x00, 0x00, 0x04, 0x00, // fldcw [0x40000]
        0xd9, 0xee, // fldz
        0xd9, 0xe8, // fld1
        0xd8, 0xf1, // fdiv st0, st1
        0xdf, 0xe0, // fnstsw ax
        0xd9, 0xd0, // fnop
        0xf4,
    ];
    let mut cpu = kernel(&code);
    assert!(cpu.ram.write_bytes(layout::DATA, &0x037bu16.to_le_bytes()));
    assert_eq!(run(&mut cpu), Some(16));
    assert_eq!(frame_rip(&cpu, false), layout::CODE + 15, "#MF at FNOP");
    assert_eq!(
        cpu.state.gpr[0] & 0x80,
        0x80,
        "FNSTSW ran and saw ES (no-wait forms do not fault)"
    );
    assert!(cpu.state.x87.exception_pending());
    // FNCLEX clears it; then waiting instructions run.
    let mut code2 = code[..15].to_vec();
    code2.extend([0xdb, 0xe2, 0x9b, 0xd9, 0xd0, 0xf4]); // fnclex; fwait; fnop; hlt
    let mut cpu = kernel(&code2);
    assert!(cpu.ram.write_bytes(layout::DATA, &0x037bu16.to_le_bytes()));
    assert_eq!(run(&mut cpu), None);
    // MMX instructions wait as well.
    let mut code3 = code[..15].to_vec();
    code3.extend([0x0f, 0x77, 0xf4]); // emms
    let mut cpu = kernel(&code3);
    assert!(cpu.ram.write_bytes(layout::DATA, &0x037bu16.to_le_bytes()));
    assert_eq!(run(&mut cpu), Some(16));
}

#[test]
fn misaligned_operands_and_reserved_mxcsr_bits_raise_gp() {
    for (name, code, error) in [
        // movaps xmm0, [0x40008]
        (
            "movaps",
            vec![0x0f, 0x28, 0x04, 0x25, 0x08, 0x00, 0x04, 0x00],
            true,
        ),
        // movups xmm0, [0x40008]: allowed
        (
            "movups",
            vec![0x0f, 0x10, 0x04, 0x25, 0x08, 0x00, 0x04, 0x00],
            false,
        ),
        // addps xmm0, [0x40008]
        (
            "addps",
            vec![0x0f, 0x58, 0x04, 0x25, 0x08, 0x00, 0x04, 0x00],
            true,
        ),
        // addss xmm0, [0x40001]: scalar, allowed
        (
            "addss",
            vec![0xf3, 0x0f, 0x58, 0x04, 0x25, 0x01, 0x00, 0x04, 0x00],
            false,
        ),
        // fxsave [0x40008]
        (
            "fxsave",
            vec![0x0f, 0xae, 0x04, 0x25, 0x08, 0x00, 0x04, 0x00],
            true,
        ),
        // ldmxcsr [0x40100] holding 0x10000
        (
            "ldmxcsr",
            vec![0x0f, 0xae, 0x14, 0x25, 0x00, 0x01, 0x04, 0x00],
            true,
        ),
    ] {
        let mut cpu = kernel(&with_hlt(&code));
        assert!(cpu
            .ram
            .write_bytes(layout::DATA + 0x100, &0x1_0000u32.to_le_bytes()));
        let expected = if error { Some(13) } else { None };
        assert_eq!(run(&mut cpu), expected, "{name}");
    }
}

#[test]
fn fxsave_fxrstor_round_trip_every_register() {
    // fxsave64 [0x40000]; fninit; pxor xmm0..; fxrstor64 [0x40000]
    let code = [
        0x48, 0x0f, 0xae, 0x04, 0x25, 0x00, 0x00, 0x04, 0x00, // fxsave64 [0x40000]
        0xdb, 0xe3, // fninit
        0x66, 0x0f, 0xef, 0xc0, // pxor xmm0, xmm0
        0x66, 0x45, 0x0f, 0xef, 0xff, // pxor xmm15, xmm15
        0x48, 0x0f, 0xae, 0x0c, 0x25, 0x00, 0x00, 0x04, 0x00, // fxrstor64 [0x40000]
        0xf4,
    ];
    let mut cpu = kernel(&code);
    for (n, x) in cpu.state.sse.xmm.iter_mut().enumerate() {
        *x = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128.rotate_left(n as u32 * 8);
    }
    cpu.state.sse.mxcsr = 0x7f80 | 0x40 | 0x5;
    for c in [
        pandare_x86_float::x87::Constant::Pi,
        pandare_x86_float::x87::Constant::L2E,
        pandare_x86_float::x87::Constant::One,
    ] {
        cpu.state.x87.fld_const(c);
    }
    cpu.state.x87.fldcw(0x0a7f);
    let before = cpu.state.clone();
    assert_eq!(run(&mut cpu), None);
    assert_eq!(cpu.state.sse, before.sse);
    assert_eq!(cpu.state.x87.regs, before.x87.regs);
    assert_eq!(
        (cpu.state.x87.fcw, cpu.state.x87.fsw, cpu.state.x87.tags),
        (before.x87.fcw, before.x87.fsw, before.x87.tags)
    );
}

#[test]
fn the_fpu_state_is_serialized_and_old_versions_are_refused() {
    let mut cpu = kernel(&[0xf4]);
    cpu.state.sse.xmm[7] = u128::MAX - 5;
    cpu.state.sse.mxcsr = 0x9fc0;
    cpu.state
        .x87
        .fld_const(pandare_x86_float::x87::Constant::Pi);
    cpu.state.x87.set_last(0x1d9, 0x1234, 0x33, 0x5678, 0x2b);
    let bytes = cpu.state.to_bytes();
    let back = State::from_bytes(&bytes).expect("round trip");
    assert_eq!(back, cpu.state);
    // Version 1 (no FPU state) is refused with a message saying so.
    let mut v1 = bytes.clone();
    v1[4..8].copy_from_slice(&1u32.to_le_bytes());
    let message = State::from_bytes(&v1).unwrap_err().to_string();
    assert!(message.contains("version 1"), "{message}");
    // A reserved MXCSR bit in the snapshot is an error, not a state.
    let mut bad = cpu.state.clone();
    bad.sse.mxcsr = 0x1_1f80;
    assert!(State::from_bytes(&bad.to_bytes()).is_err());
    assert!(bad.validate().is_err());
}

#[test]
fn user_mode_state_is_as_linux_leaves_it() {
    let s = State::long_mode(0x1000, 3);
    assert_eq!(s.x87.fcw, 0x037f);
    assert_eq!(s.x87.tags, 0);
    assert_eq!(s.sse.mxcsr, 0x1f80);
    assert_ne!(s.cr0 & cr::CR0_NE, 0);
    assert_ne!(s.cr4 & cr::CR4_OSFXSR, 0);
    assert_ne!(s.cr4 & cr::CR4_OSXMMEXCPT, 0);
    let r = State::reset();
    assert_eq!((r.x87.fcw, r.x87.tags, r.sse.mxcsr), (0x0040, 0xff, 0x1f80));
}

#[test]
fn cpuid_advertises_exactly_what_executes() {
    use pandare_x86::cpuid;
    // One representative instruction per advertised feature must execute; one per
    // unadvertised extension must raise #UD.
    let edx = cpuid::cpuid(1, 0)[3];
    let ecx = cpuid::cpuid(1, 0)[2];
    let ext_edx = cpuid::cpuid(0x8000_0001, 0)[3];
    let ext_ecx = cpuid::cpuid(0x8000_0001, 0)[2];
    let runs = |code: &[u8]| {
        let mut cpu = kernel(&with_hlt(code));
        run(&mut cpu)
    };
    let advertised: &[(bool, &str, &[u8])] = &[
        (edx & 1 != 0, "fpu: fld1", &FLD1),
        (edx & (1 << 4) != 0, "tsc: rdtsc", &[0x0f, 0x31]),
        (
            edx & (1 << 5) != 0,
            "msr: rdmsr PAT",
            &[0xb9, 0x77, 0x02, 0, 0, 0x0f, 0x32],
        ),
        (
            edx & (1 << 8) != 0,
            "cx8",
            &[0x0f, 0xc7, 0x0c, 0x25, 0, 0, 4, 0],
        ),
        (edx & (1 << 15) != 0, "cmov", &[0x0f, 0x44, 0xc1]),
        (
            edx & (1 << 19) != 0,
            "clflush",
            &[0x0f, 0xae, 0x3c, 0x25, 0, 0, 4, 0],
        ),
        (edx & (1 << 23) != 0, "mmx: paddb", &PADDB_MM),
        (
            edx & (1 << 24) != 0,
            "fxsr: fxsave",
            &[0x0f, 0xae, 0x04, 0x25, 0, 0, 4, 0],
        ),
        (edx & (1 << 25) != 0, "sse: addps", &ADDPS),
        (
            edx & (1 << 26) != 0,
            "sse2: paddq xmm",
            &[0x66, 0x0f, 0xd4, 0xc1],
        ),
        (
            ecx & (1 << 13) != 0,
            "cx16",
            &[0x48, 0x0f, 0xc7, 0x0c, 0x25, 0, 0, 4, 0],
        ),
        (ecx & (1 << 23) != 0, "popcnt", &[0xf3, 0x0f, 0xb8, 0xc1]),
        (ext_ecx & 1 != 0, "lahf_lm: lahf", &[0x9f]),
    ];
    for (set, name, code) in advertised {
        assert!(set, "{name} is not advertised");
        assert_ne!(runs(code), Some(6), "{name} is advertised but raises #UD");
    }
    let not_advertised: &[(bool, &str, &[u8])] = &[
        (ecx & 1 != 0, "sse3: movddup", &[0xf2, 0x0f, 0x12, 0xc1]),
        (
            ecx & 1 != 0,
            "sse3: fisttp",
            &[0xdb, 0x0c, 0x25, 0, 0, 4, 0],
        ),
        (
            ecx & (1 << 9) != 0,
            "ssse3: pshufb",
            &[0x66, 0x0f, 0x38, 0x00, 0xc1],
        ),
        (
            ecx & (1 << 19) != 0,
            "sse4.1: pminsd",
            &[0x66, 0x0f, 0x38, 0x39, 0xc1],
        ),
        (ecx & (1 << 26) != 0, "xsave: xgetbv", &[0x0f, 0x01, 0xd0]),
        (ecx & (1 << 30) != 0, "rdrand", &[0x0f, 0xc7, 0xf0]),
        (ext_edx & (1 << 27) != 0, "rdtscp", &[0x0f, 0x01, 0xf9]),
    ];
    for (set, name, code) in not_advertised {
        assert!(!set, "{name} is advertised");
        assert_eq!(
            runs(code),
            Some(6),
            "{name} is not advertised and must raise #UD"
        );
    }
}

/// Not a timed test: the speed of SSE2 code through `float.rs` next to the same loop's
/// integer instructions (`cargo test -p pandare-x86 --release --test float_system --
/// --ignored --nocapture sse_speed`).
#[test]
#[ignore]
fn sse_speed() {
    // A strlen-like loop: movdqa xmm0, [rbx]; pcmpeqb xmm0, xmm1; pmovmskb eax, xmm0;
    // add rbx, 16; and rbx, 0x40fff; dec ecx; jnz; then an addsd/mulsd loop; hlt.
    let mut code = vec![0xb9, 0x40, 0x42, 0x0f, 0x00]; // mov ecx, 1_000_000
    let top = code.len();
    code.extend([0x66, 0x0f, 0x6f, 0x03]); // movdqa xmm0, [rbx]
    code.extend([0x66, 0x0f, 0x74, 0xc1]); // pcmpeqb xmm0, xmm1
    code.extend([0x66, 0x0f, 0xd7, 0xc0]); // pmovmskb eax, xmm0
    code.extend([0x48, 0x83, 0xc3, 0x10]); // add rbx, 16
    code.extend([0x48, 0x81, 0xe3, 0xff, 0x0f, 0x04, 0x00]); // and rbx, 0x40fff
    code.extend([0xff, 0xc9]); // dec ecx
    let back = top as i64 - (code.len() as i64 + 2);
    code.extend([0x75, back as u8]); // jnz
    code.extend([0xb9, 0x40, 0x42, 0x0f, 0x00]); // mov ecx, 1_000_000
    let top = code.len();
    code.extend([0xf2, 0x0f, 0x58, 0xc2]); // addsd xmm0, xmm2
    code.extend([0xf2, 0x0f, 0x59, 0xc3]); // mulsd xmm0, xmm3
    code.extend([0xff, 0xc9]); // dec ecx
    let back = top as i64 - (code.len() as i64 + 2);
    code.extend([0x75, back as u8]);
    code.push(0xf4);
    let mut cpu = kernel(&code);
    cpu.state.gpr[3] = layout::DATA;
    cpu.state.sse.xmm[2] = u128::from(1.5f64.to_bits());
    cpu.state.sse.xmm[3] = u128::from(0.75f64.to_bits());
    let start = std::time::Instant::now();
    assert_eq!(cpu.run(u64::MAX), Exit::Halted);
    let elapsed = start.elapsed();
    let n = cpu.instruction_count();
    eprintln!(
        "{n} instructions (3/7 and 2/4 of them SSE2) in {:.3} s: {:.1} MIPS",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64() / 1e6
    );
}
