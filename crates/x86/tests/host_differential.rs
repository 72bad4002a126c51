//! Host-CPU differential tests: the host is x86_64, the strongest oracle there is.
//!
//! Each case is a short machine-code sequence and a random register/flag/memory state. The
//! sequence runs natively in a forked child (code and data mapped at fixed addresses, the
//! state loaded by a prologue and saved by an epilogue written here in machine code), and on
//! the emulated CPU in 64-bit user mode with page tables mapping the same virtual addresses.
//! General registers, the defined arithmetic flags and DF, and the data pages are compared,
//! or the fault (the signal the child died of against the emulator's exception vector).
//! The first divergence is reported with the instruction bytes and both states.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use pandare_core::memory::Ram;
use pandare_x86::state::flags::{AF, ARITH, CF, DF, FIXED, OF, PF, SF, ZF};
use pandare_x86::{State, X86Cpu};

mod native;
use native::{CODE, DATA, DATA_LEN, SCRATCH_TOP, STATE};

// Physical layout of the emulated machine.
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const PT: u64 = 0x4000;
const CODE_PHYS: u64 = 0x10000;
const DATA_PHYS: u64 = 0x20000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Mostly random, sometimes an edge value.
    fn value(&mut self) -> u64 {
        match self.next() % 8 {
            0 => [
                0,
                1,
                u64::MAX,
                0x8000_0000_0000_0000,
                0x7fff_ffff_ffff_ffff,
                0x80,
                0x7f,
                0xffff_ffff,
                0x8000_0000,
                0xff,
                0x8000,
                0xffff,
            ][(self.next() % 12) as usize],
            1 => self.next() & 0xff,
            2 => self.next() & 0xffff_ffff,
            _ => self.next(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
struct Outcome {
    /// `Ok((gprs, flags, data))` or `Err(signal)`.
    result: Result<([u64; 16], u64, Vec<u8>), i32>,
    /// For an emulated page fault: the address.
    page_fault: Option<u64>,
    /// The emulated run changed the code page (natively that overwrites the epilogue).
    wrote_code: bool,
}

#[derive(Clone)]
struct Input {
    gpr: [u64; 16],
    flags: u64,
    data: Vec<u8>,
}

/// The prologue; for compatibility-mode cases it first loads DS and ES with the user data
/// selector (null selectors fault outside 64-bit mode).
fn prologue_for(compat: bool) -> Vec<u8> {
    let mut c = vec![0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57];
    if compat {
        c.extend([0xb8, 0x2b, 0, 0, 0, 0x8e, 0xd8, 0x8e, 0xc0]); // mov eax, 0x2b; mov ds/es, eax
    }
    c.extend([0x48, 0x89, 0xe0]); // mov rax, rsp
    c.extend([0x48, 0xa3]);
    c.extend((STATE + 136).to_le_bytes()); // movabs [STATE+136], rax
    c.extend([0x48, 0xb8]);
    c.extend(STATE.to_le_bytes()); // movabs rax, STATE
    c.extend([0x48, 0x8b, 0x60, 0x20]); // mov rsp, [rax+32]
    c.extend([0xff, 0xb0, 0x80, 0, 0, 0]); // push qword [rax+128]
    c.push(0x9d); // popfq
    for (reg, off) in [(1u8, 8u8), (2, 16), (3, 24), (5, 40), (6, 48), (7, 56)] {
        c.extend([0x48, 0x8b, 0x40 | (reg << 3), off]);
    }
    for r in 8u8..16 {
        c.extend([0x4c, 0x8b, 0x40 | ((r - 8) << 3), r * 8]);
    }
    c.extend([0x48, 0x8b, 0x00]); // mov rax, [rax]
    c
}

fn epilogue() -> Vec<u8> {
    let mut c = vec![0x48, 0xa3];
    c.extend(STATE.to_le_bytes()); // movabs [STATE], rax
    c.extend([0x48, 0x89, 0xe0]); // mov rax, rsp
    c.extend([0x48, 0xa3]);
    c.extend((STATE + 32).to_le_bytes());
    c.extend([0x48, 0xb8]);
    c.extend(SCRATCH_TOP.to_le_bytes());
    c.extend([0x48, 0x89, 0xc4]); // mov rsp, rax
    c.push(0x9c); // pushfq
    c.push(0xfc); // cld: the SysV ABI wants DF clear on return (memcpy uses REP MOVS)
    c.extend([0x48, 0xb8]);
    c.extend(STATE.to_le_bytes());
    for (reg, off) in [(1u8, 8u8), (2, 16), (3, 24), (5, 40), (6, 48), (7, 56)] {
        c.extend([0x48, 0x89, 0x40 | (reg << 3), off]);
    }
    for r in 8u8..16 {
        c.extend([0x4c, 0x89, 0x40 | ((r - 8) << 3), r * 8]);
    }
    c.push(0x59); // pop rcx
    c.extend([0x48, 0x89, 0x88, 0x80, 0, 0, 0]); // mov [rax+128], rcx
    c.extend([0x48, 0x8b, 0xa0, 0x88, 0, 0, 0]); // mov rsp, [rax+136]
    c.extend([
        0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, 0xc3,
    ]);
    c
}

/// Runs `code` natively in a forked child.
/// The code page natively: prologue, (for compatibility mode the far jump into 32-bit code),
/// the case's code, (the far jump back), epilogue; and the code's offset in it.
fn program(code: &[u8], compat: bool) -> (Vec<u8>, u64) {
    let mut program = prologue_for(compat);
    let start;
    if compat {
        // jmp far [rip+farptr] into the 32-bit code segment 0x23; the code; a far jump back
        // to 0x33 at the epilogue; the far pointer.
        let p = program.len() as u64;
        let t = CODE + p + 6;
        let l = code.len() as u64;
        let farptr = t + l + 7;
        let back = farptr + 6;
        program.extend([0xff, 0x2d]);
        program.extend(((farptr - (CODE + p + 6)) as u32).to_le_bytes());
        start = program.len() as u64;
        program.extend_from_slice(code);
        program.push(0xea);
        program.extend((back as u32).to_le_bytes());
        program.extend([0x33, 0x00]);
        program.extend((t as u32).to_le_bytes());
        program.extend([0x23, 0x00]);
    } else {
        start = program.len() as u64;
        program.extend_from_slice(code);
    }
    program.extend(epilogue());
    (program, start)
}

fn native(code: &[u8], input: &Input, compat: bool) -> Outcome {
    let (program, _) = program(code, compat);
    let result = native::run(&program, &input.data, &input.gpr, input.flags, &[])
        .map(|run| (run.gpr(), run.word(16), run.data));
    Outcome {
        result,
        page_fault: None,
        wrote_code: false,
    }
}

fn write_u64(ram: &mut Ram, address: u64, value: u64) {
    assert!(ram.write_bytes(address, &value.to_le_bytes()));
}

/// Runs `code` on the emulated CPU at CPL 3 in 64-bit mode, one instruction at a time
/// ([`X86Cpu::step`]), and again from pre-decoded blocks ([`X86Cpu::run`], where an op's
/// flags may be skipped when later ops of its block overwrite them): both must agree
/// exactly (every RFLAGS bit), and the first is compared with the host.
fn emulated(code: &[u8], input: &Input, compat: bool) -> Outcome {
    let stepped = emulated_in(code, input, compat, false).expect("stepping always finishes");
    if let Some(blocks) = emulated_in(code, input, compat, true) {
        assert_eq!(
            stepped, blocks,
            "step-by-step and block execution differ for {code:02x?}"
        );
    }
    stepped.0
}

/// Registers, RFLAGS and RIP when a run faulted (the state the exception would see).
type FaultState = Option<([u64; 16], u64, u64)>;

fn signal_of(fault: &pandare_x86::Fault) -> i32 {
    match fault.vector {
        0 => libc::SIGFPE,
        3 => libc::SIGTRAP,
        6 => libc::SIGILL,
        12 | 17 => libc::SIGBUS,
        _ => libc::SIGSEGV,
    }
}

/// One emulated run (`blocks`: through the run loop, stopping at a SYSCALL written where
/// the code ends; `None` when the code itself stops that run some other way).
fn emulated_in(
    code: &[u8],
    input: &Input,
    compat: bool,
    blocks: bool,
) -> Option<(Outcome, FaultState)> {
    let mut ram = Ram::new(0, 0x40000);
    let user = 0x7; // present, writable, user
    write_u64(&mut ram, PML4, PDPT | user);
    write_u64(&mut ram, PDPT, PD | user);
    write_u64(&mut ram, PD + ((CODE >> 21) & 511) * 8, PT | user);
    write_u64(&mut ram, PT + ((CODE >> 12) & 511) * 8, CODE_PHYS | user);
    for page in 0..(DATA_LEN as u64 / 0x1000) {
        write_u64(
            &mut ram,
            PT + (((DATA >> 12) + page) & 511) * 8,
            (DATA_PHYS + page * 0x1000) | user | (1 << 63),
        );
    }
    // The same bytes at the same virtual addresses as natively (CALL pushes addresses, and
    // a computed address may read the code page).
    let (mut image, start) = program(code, compat);
    if blocks {
        let end = (start as usize) + code.len();
        image[end..end + 2].copy_from_slice(&[0x0f, 0x05]);
    }
    assert!(ram.write_bytes(CODE_PHYS, &image));
    assert!(ram.write_bytes(DATA_PHYS, &input.data));
    let mut state = State::long_mode(PML4, 3);
    state.gpr = input.gpr;
    state.rflags = input.flags | FIXED | pandare_x86::state::flags::IF;
    state.rip = CODE + start;
    if compat {
        // CS 0x23 (32-bit user code), DS = ES = 0x2b as the prologue loads them.
        state.segments[pandare_x86::state::seg::CS] = pandare_x86::Segment::flat(0x23, 0xc0fb);
        state.segments[4].selector = 0;
        state.segments[5].selector = 0;
    } else {
        // The host's user data selectors are null; the emulated ones too.
        for index in [0, 3, 4, 5] {
            state.segments[index].selector = 0;
        }
    }
    let mut cpu = X86Cpu::new(state, ram).expect("valid state");
    let end = CODE + start + code.len() as u64;
    let mut steps = 0;
    if blocks {
        cpu.user_mode = true;
        loop {
            steps += 1;
            assert!(
                steps < 1000,
                "block run did not reach the end of {code:02x?}"
            );
            match cpu.run(1_000) {
                pandare_x86::Exit::Budget => {}
                pandare_x86::Exit::Syscall if cpu.state.rip == end => break,
                pandare_x86::Exit::Fault(fault) => {
                    let s = &cpu.state;
                    return Some((
                        Outcome {
                            result: Err(signal_of(&fault)),
                            page_fault: fault.address,
                            wrote_code: false,
                        },
                        Some((s.gpr, s.rflags, s.rip)),
                    ));
                }
                _ => return None,
            }
        }
    }
    while cpu.state.rip != end {
        steps += 1;
        assert!(
            steps < 100_000,
            "emulated run did not reach the end of {code:02x?}"
        );
        if let Err(fault) = cpu.step() {
            let s = &cpu.state;
            return Some((
                Outcome {
                    result: Err(signal_of(&fault)),
                    page_fault: fault.address,
                    wrote_code: false,
                },
                Some((s.gpr, s.rflags, s.rip)),
            ));
        }
    }
    let mut data = vec![0u8; DATA_LEN];
    assert!(cpu.ram.read_bytes(DATA_PHYS, &mut data));
    let mut code_page = vec![0u8; image.len()];
    assert!(cpu.ram.read_bytes(CODE_PHYS, &mut code_page));
    Some((
        Outcome {
            result: Ok((cpu.state.gpr, cpu.state.rflags, data)),
            page_fault: None,
            wrote_code: code_page != image,
        },
        None,
    ))
}

/// One instruction class: encodings and which flags the manuals leave undefined.
struct Case {
    name: String,
    code: Vec<u8>,
    /// Flags not compared (undefined), given the input.
    undefined: Box<dyn Fn(&Input) -> u64>,
    /// Adjusts a random input (counts, pointers).
    shape: fn(&mut Input, &mut Rng),
}

fn none(_: &Input) -> u64 {
    0
}
fn keep(_: &mut Input, _: &mut Rng) {}

fn random_input(rng: &mut Rng) -> Input {
    let mut gpr = [0u64; 16];
    for g in gpr.iter_mut() {
        *g = rng.value();
    }
    // RBX, RSI, RDI point into the data pages; RSP at the top of the first one.
    gpr[3] = DATA + 0x800 + (rng.next() % 0x700);
    gpr[6] = DATA + 0x800 + (rng.next() % 0x700);
    gpr[7] = DATA + 0x800 + (rng.next() % 0x700);
    gpr[4] = DATA + 0x1800;
    let mut flags = rng.next() & ARITH;
    if rng.next().is_multiple_of(4) {
        flags |= DF;
    }
    let mut data = vec![0u8; DATA_LEN];
    for chunk in data.chunks_mut(8) {
        let v = rng.value().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    // The native prologue loads the flags through the test stack (PUSH; POPFQ): the qword
    // below RSP holds them on both sides.
    data[0x17f8..0x1800].copy_from_slice(&flags.to_le_bytes());
    Input { gpr, flags, data }
}

fn compare(case: &Case, input: &Input, native: &Outcome, emulated: &Outcome) -> Result<(), String> {
    let describe = || {
        format!(
            "{} {:02x?}\n input gpr {:x?} flags {:#x}",
            case.name, case.code, input.gpr, input.flags
        )
    };
    match (&native.result, &emulated.result) {
        (Err(a), Err(b)) if a == b => Ok(()),
        (Ok((ga, fa, da)), Ok((gb, fb, db))) => {
            if ga != gb {
                let first = (0..16).find(|&n| ga[n] != gb[n]).unwrap();
                return Err(format!(
                    "{}\n first divergence: gpr {first}: host {:#x} emulated {:#x}\n host {:x?}\n emul {:x?}",
                    describe(),
                    ga[first],
                    gb[first],
                    ga,
                    gb
                ));
            }
            let m = (ARITH | DF) & !(case.undefined)(input);
            if fa & m != fb & m {
                return Err(format!(
                    "{}\n first divergence: flags (compared {m:#x}): host {:#x} emulated {:#x} (differ {:#x})",
                    describe(),
                    fa & m,
                    fb & m,
                    (fa ^ fb) & m
                ));
            }
            if da != db {
                let first = (0..DATA_LEN).find(|&n| da[n] != db[n]).unwrap();
                return Err(format!(
                    "{}\n first divergence: memory {:#x}: host {:#x} emulated {:#x}",
                    describe(),
                    DATA + first as u64,
                    da[first],
                    db[first]
                ));
            }
            Ok(())
        }
        (a, b) => Err(format!(
            "{}\n first divergence: outcome host {:?} emulated {:?}",
            describe(),
            a.as_ref().map(|_| "completed"),
            b.as_ref().map(|_| "completed")
        )),
    }
}

fn run_cases(cases: &[Case], per_case: usize, seed: u64) -> usize {
    run_cases_in(cases, per_case, seed, false)
}

/// Runs the cases in 64-bit mode or (`compat`) as 32-bit code in compatibility mode, where
/// only the low 32 bits of the registers are compared (the upper halves are undefined after
/// a return to 64-bit mode).
fn run_cases_in(cases: &[Case], per_case: usize, seed: u64, compat: bool) -> usize {
    let mut rng = Rng(seed);
    let mut count = 0;
    let mut failures = Vec::new();
    for case in cases {
        for _ in 0..per_case {
            let mut input = random_input(&mut rng);
            (case.shape)(&mut input, &mut rng);
            let mut n = native(&case.code, &input, compat);
            let mut e = emulated(&case.code, &input, compat);
            if compat {
                for outcome in [&mut n, &mut e] {
                    if let Ok((gpr, _, _)) = outcome.result.as_mut() {
                        for g in gpr.iter_mut() {
                            *g &= 0xffff_ffff;
                        }
                    }
                }
            }
            count += 1;
            if let Err(report) = compare(case, &input, &n, &e) {
                failures.push(report);
                break;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} classes diverged:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    count
}

/// Prefixes for the four operand sizes of a "v"-sized opcode (`op` is the 8-bit form's
/// opcode, `op + 1` the others').
fn sized(size: u32, op8: u8, rest: &[u8]) -> Vec<u8> {
    let mut c = Vec::new();
    match size {
        1 => c.push(op8),
        2 => c.extend([0x66, op8 + 1]),
        4 => c.push(op8 + 1),
        _ => c.extend([0x48, op8 + 1]),
    }
    c.extend_from_slice(rest);
    c
}

fn case(name: String, code: Vec<u8>, undefined: impl Fn(&Input) -> u64 + 'static) -> Case {
    Case {
        name,
        code,
        undefined: Box::new(undefined),
        shape: keep,
    }
}

const SIZES: [u32; 4] = [1, 2, 4, 8];

#[test]
fn alu_register_and_memory_forms() {
    let mut cases = Vec::new();
    let ops: [(&str, u8, u64); 9] = [
        ("add", 0x00, 0),
        ("or", 0x08, AF),
        ("adc", 0x10, 0),
        ("sbb", 0x18, 0),
        ("and", 0x20, AF),
        ("sub", 0x28, 0),
        ("xor", 0x30, AF),
        ("cmp", 0x38, 0),
        ("test", 0x84, AF),
    ];
    fn af(_: &Input) -> u64 {
        AF
    }
    for (name, op, und) in ops {
        let undefined = if und == 0 { none } else { af };
        for size in SIZES {
            // reg, reg (rdx, rcx) and [rbx], reg and reg, [rbx]
            cases.push(case(
                format!("{name}{size} r,r"),
                sized(size, op, &[0xca]),
                undefined,
            ));
            cases.push(case(
                format!("{name}{size} m,r"),
                sized(size, op, &[0x0b]),
                undefined,
            ));
            if op != 0x84 {
                cases.push(case(
                    format!("{name}{size} r,m"),
                    sized(size, op + 2, &[0x0b]),
                    undefined,
                ));
            }
            // group 1 immediates: 80/81 /n and 83 /n
            if op != 0x84 {
                let n = op >> 3;
                let imm: Vec<u8> = if size == 1 {
                    vec![0x9c]
                } else if size == 2 {
                    vec![0x34, 0x92]
                } else {
                    vec![0x78, 0x56, 0x34, 0x92]
                };
                let mut rest = vec![0xc0 | (n << 3) | 1];
                rest.extend(&imm);
                cases.push(case(
                    format!("{name}{size} r,imm"),
                    sized(size, 0x80, &rest),
                    undefined,
                ));
                if size > 1 {
                    let mut c = sized(size, 0x82, &[0xc0 | (n << 3) | 2, 0x85]);
                    // 0x83 is the sign-extended imm8 form
                    let last = c.len() - 3;
                    c[last] = 0x83;
                    cases.push(case(format!("{name}{size} r,imm8"), c, undefined));
                }
            }
        }
    }
    // INC/DEC/NOT/NEG
    for size in SIZES {
        cases.push(case(format!("inc{size}"), sized(size, 0xfe, &[0xc1]), none));
        cases.push(case(
            format!("dec{size} m"),
            sized(size, 0xfe, &[0x0b]),
            none,
        ));
        cases.push(case(format!("not{size}"), sized(size, 0xf6, &[0xd1]), none));
        cases.push(case(format!("neg{size}"), sized(size, 0xf6, &[0xd9]), none));
        cases.push(case(
            format!("neg{size} m"),
            sized(size, 0xf6, &[0x1b]),
            none,
        ));
    }
    let n = run_cases(&cases, 40, 0x1234_5678_9abc_def1);
    eprintln!("alu: {n} differential cases");
}

#[test]
fn multiply_and_divide() {
    fn mul_und(_: &Input) -> u64 {
        SF | ZF | AF | PF
    }
    fn div_und(_: &Input) -> u64 {
        ARITH
    }
    fn small_divisor(input: &mut Input, rng: &mut Rng) {
        // Keep RDX small often so the quotient fits (otherwise #DE).
        if rng.next().is_multiple_of(2) {
            input.gpr[2] = rng.next() % 4;
            input.gpr[0] &= 0xffff;
        }
    }
    let mut cases = Vec::new();
    for size in SIZES {
        cases.push(case(
            format!("mul{size}"),
            sized(size, 0xf6, &[0xe1]),
            mul_und,
        ));
        cases.push(case(
            format!("imul{size}"),
            sized(size, 0xf6, &[0xe9]),
            mul_und,
        ));
        cases.push(case(
            format!("mul{size} m"),
            sized(size, 0xf6, &[0x23]),
            mul_und,
        ));
        for (name, modrm) in [("div", 0xf1u8), ("idiv", 0xf9)] {
            cases.push(Case {
                name: format!("{name}{size}"),
                code: sized(size, 0xf6, &[modrm]),
                undefined: Box::new(div_und),
                shape: small_divisor,
            });
        }
        if size > 1 {
            let mut two = sized(size, 0xae, &[0xd1]);
            // 0F AF /r: imul r, r/m
            let l = two.len();
            two[l - 2] = 0xaf;
            two.insert(l - 2, 0x0f);
            cases.push(case(format!("imul{size} r,r"), two, mul_und));
            let imm: Vec<u8> = if size == 2 {
                vec![0x34, 0x92]
            } else {
                vec![0x78, 0x56, 0x34, 0x92]
            };
            let mut three = sized(size, 0x68, &[0xd1]);
            three.extend(&imm);
            cases.push(case(format!("imul{size} r,r,imm"), three, mul_und));
            let mut three8 = sized(size, 0x6a, &[0xd1, 0x85]);
            let l = three8.len();
            three8[l - 3] = 0x6b;
            cases.push(case(format!("imul{size} r,r,imm8"), three8, mul_und));
        }
    }
    let n = run_cases(&cases, 60, 0x5555_1234_aaaa_0001);
    eprintln!("mul/div: {n} differential cases");
}

/// The flags the manuals leave undefined after a shift or rotate of `bits` by `count`
/// (already masked): AF after a shift by a nonzero count, OF for counts above 1, CF for
/// SHL/SHR by the width or more.
fn shift_undefined(shift: bool, shl_shr: bool, bits: u64, count: u64) -> u64 {
    let mut u = 0;
    if count != 0 && shift {
        u |= AF;
    }
    if count > 1 {
        u |= OF;
    }
    if shl_shr && count >= bits {
        u |= CF;
    }
    u
}

#[test]
fn shifts_and_rotates() {
    let names = ["rol", "ror", "rcl", "rcr", "shl", "shr", "sal", "sar"];
    let mut cases = Vec::new();
    for size in SIZES {
        let bits = u64::from(size) * 8;
        let count_mask = if size == 8 { 0x3f } else { 0x1f };
        for n in 0u8..8 {
            if n == 6 {
                continue;
            }
            let shift = n >= 4;
            let shl_shr = n == 4 || n == 5;
            let by_cl = move |input: &Input| {
                shift_undefined(shift, shl_shr, bits, input.gpr[1] & count_mask)
            };
            let by_one = move |_: &Input| shift_undefined(shift, shl_shr, bits, 1);
            let by_imm = move |_: &Input| shift_undefined(shift, shl_shr, bits, 5 & count_mask);
            let name = names[n as usize];
            cases.push(case(
                format!("{name}{size} cl"),
                sized(size, 0xd2, &[0xc2 | (n << 3)]),
                by_cl,
            ));
            cases.push(case(
                format!("{name}{size} 1"),
                sized(size, 0xd0, &[0xc2 | (n << 3)]),
                by_one,
            ));
            cases.push(case(
                format!("{name}{size} m,cl"),
                sized(size, 0xd2, &[0x03 | (n << 3)]),
                by_cl,
            ));
            cases.push(case(
                format!("{name}{size} imm"),
                sized(size, 0xc0, &[0xc2 | (n << 3), 5]),
                by_imm,
            ));
        }
    }
    // SHLD/SHRD by CL and by an immediate; 16-bit counts above 16 leave the result
    // undefined, so those inputs keep CL at or below 16.
    fn cl_upto_16(input: &mut Input, rng: &mut Rng) {
        input.gpr[1] = (input.gpr[1] & !0xff) | (rng.next() % 17);
    }
    for (size, prefix) in [(2u32, vec![0x66u8]), (4, vec![]), (8, vec![0x48])] {
        let count_mask = if size == 8 { 0x3f } else { 0x1f };
        for (name, op) in [("shld", 0xa4u8), ("shrd", 0xac)] {
            let mut c = prefix.clone();
            c.extend([0x0f, op + 1, 0xf2]); // edx, esi, cl
            let mut by_cl = case(format!("{name}{size} cl"), c, move |input: &Input| {
                shift_undefined(true, false, 64, input.gpr[1] & count_mask)
            });
            if size == 2 {
                by_cl.shape = cl_upto_16;
            }
            cases.push(by_cl);
            let mut c = prefix.clone();
            c.extend([0x0f, op, 0x33, 7]); // [rbx], esi, 7
            cases.push(case(format!("{name}{size} m,imm"), c, move |_: &Input| {
                shift_undefined(true, false, 64, 7)
            }));
        }
    }
    let n = run_cases(&cases, 40, 0x0bad_cafe_f00d_0001);
    eprintln!("shifts: {n} differential cases");
}

#[test]
fn bit_operations() {
    fn bt_und(_: &Input) -> u64 {
        ARITH & !CF
    }
    fn bsf_und(_: &Input) -> u64 {
        ARITH & !ZF
    }
    fn small_offset(input: &mut Input, rng: &mut Rng) {
        // A bit offset that keeps the access inside the data pages (±2 KiB).
        input.gpr[2] = (rng.next() % 0x8000).wrapping_sub(0x4000);
    }
    let mut cases = Vec::new();
    for (size, prefix) in [(2u32, vec![0x66]), (4, vec![]), (8, vec![0x48])] {
        for (name, op, ext) in [
            ("bt", 0xa3u8, 4u8),
            ("bts", 0xab, 5),
            ("btr", 0xb3, 6),
            ("btc", 0xbb, 7),
        ] {
            let mut c = prefix.clone();
            c.extend([0x0f, op, 0xd1]); // ecx, edx
            cases.push(case(format!("{name}{size} r,r"), c, bt_und));
            let mut c = prefix.clone();
            c.extend([0x0f, op, 0x13]); // [rbx], edx
            cases.push(Case {
                name: format!("{name}{size} m,r"),
                code: c,
                undefined: Box::new(bt_und),
                shape: small_offset,
            });
            let mut c = prefix.clone();
            c.extend([0x0f, 0xba, 0x03 | (ext << 3), 0x4d]); // [rbx], 0x4d
            cases.push(case(format!("{name}{size} m,imm"), c, bt_und));
        }
        for (name, op) in [("bsf", 0xbcu8), ("bsr", 0xbd)] {
            let mut c = prefix.clone();
            c.extend([0x0f, op, 0xca]);
            cases.push(case(format!("{name}{size}"), c, bsf_und));
        }
        let mut c = vec![0xf3];
        c.extend(&prefix);
        c.extend([0x0f, 0xb8, 0xca]);
        cases.push(case(format!("popcnt{size}"), c, none));
    }
    let n = run_cases(&cases, 40, 0x7777_0000_1111_2222);
    eprintln!("bits: {n} differential cases");
}

#[test]
fn moves_conditions_and_exchanges() {
    let mut cases = Vec::new();
    for cc in 0u8..16 {
        cases.push(case(
            format!("cmov{cc:x} 32"),
            vec![0x0f, 0x40 + cc, 0xca],
            none,
        ));
        cases.push(case(
            format!("cmov{cc:x} 64 m"),
            vec![0x48, 0x0f, 0x40 + cc, 0x0b],
            none,
        ));
        cases.push(case(
            format!("set{cc:x}"),
            vec![0x0f, 0x90 + cc, 0xc1],
            none,
        ));
        // jcc +2 over "inc eax"
        cases.push(case(
            format!("j{cc:x}"),
            vec![0x70 + cc, 0x02, 0xff, 0xc0],
            none,
        ));
    }
    for (name, code) in [
        ("movzx8", vec![0x0f, 0xb6, 0xca]),
        ("movzx16", vec![0x48, 0x0f, 0xb7, 0x0b]),
        ("movsx8", vec![0x48, 0x0f, 0xbe, 0xce]),
        ("movsx16", vec![0x0f, 0xbf, 0x0b]),
        ("movsxd", vec![0x48, 0x63, 0xca]),
        ("mov8 ah", vec![0x88, 0xe1]),
        ("mov16 m", vec![0x66, 0x89, 0x13]),
        ("mov64 imm", vec![0x48, 0xb9, 1, 2, 3, 4, 5, 6, 7, 0x88]),
        ("lea sib", vec![0x48, 0x8d, 0x4c, 0x93, 0x7f]),
        ("lea32", vec![0x8d, 0x4c, 0x93, 0x80]),
        ("xchg", vec![0x48, 0x87, 0xca]),
        ("xchg m", vec![0x87, 0x0b]),
        ("xadd", vec![0x48, 0x0f, 0xc1, 0xca]),
        ("xadd m8", vec![0x0f, 0xc0, 0x0b]),
        ("cmpxchg", vec![0x48, 0x0f, 0xb1, 0xca]),
        ("cmpxchg m32", vec![0x0f, 0xb1, 0x0b]),
        ("cmpxchg8b", vec![0x0f, 0xc7, 0x0b]),
        (
            "cmpxchg16b (#GP unless aligned)",
            vec![0x48, 0x0f, 0xc7, 0x0b],
        ),
        (
            "cmpxchg16b aligned",
            vec![0x48, 0x83, 0xe3, 0xf0, 0x48, 0x0f, 0xc7, 0x0b],
        ),
        (
            "lock cmpxchg16b equal",
            vec![
                0x48, 0x83, 0xe3, 0xf0, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x53, 0x08, 0xf0, 0x48, 0x0f,
                0xc7, 0x0b,
            ],
        ),
        ("lock xadd m", vec![0xf0, 0x48, 0x0f, 0xc1, 0x0b]),
        ("xlat", vec![0x48, 0x25, 0x7f, 0, 0, 0, 0xd7]),
        ("movsb a32 down", vec![0xfd, 0x67, 0xa4, 0xfc]),
        ("neg m64 lock", vec![0xf0, 0x48, 0xf7, 0x1b]),
        ("bts m lock", vec![0xf0, 0x0f, 0xab, 0x03]),
        ("bswap32", vec![0x0f, 0xc9]),
        ("bswap64", vec![0x48, 0x0f, 0xc9]),
        ("cbw", vec![0x66, 0x98]),
        ("cwde", vec![0x98]),
        ("cdqe", vec![0x48, 0x98]),
        ("cwd", vec![0x66, 0x99]),
        ("cdq", vec![0x99]),
        ("cqo", vec![0x48, 0x99]),
        ("lahf", vec![0x9f]),
        ("sahf", vec![0x9e]),
        ("clc stc cmc", vec![0xf8, 0xf9, 0xf5]),
        ("cld", vec![0xfc]),
        ("std", vec![0xfd]),
        ("push pop", vec![0x51, 0x41, 0x50, 0x5a, 0x41, 0x59]),
        (
            "push imm",
            vec![0x6a, 0x85, 0x68, 1, 2, 3, 0x84, 0x59, 0x5a],
        ),
        ("push m pop m", vec![0xff, 0x33, 0x8f, 0x06]),
        ("pushf pop", vec![0x9c, 0x59]),
        ("call pop", vec![0xe8, 0, 0, 0, 0, 0x59]),
        ("enter leave", vec![0xc8, 0x10, 0x00, 0x00, 0xc9]),
        (
            "enter 3",
            vec![0xc8, 0x08, 0x00, 0x03, 0x48, 0x89, 0xe9, 0xc9],
        ),
        ("loop", vec![0xe2, 0x02, 0xff, 0xc0]),
        ("jrcxz", vec![0xe3, 0x02, 0xff, 0xc0]),
        (
            "nop forms",
            vec![
                0x90, 0x0f, 0x1f, 0x00, 0x66, 0x0f, 0x1f, 0x44, 0, 0, 0xf3, 0x90,
            ],
        ),
        ("ud2", vec![0x0f, 0x0b]),
        ("hlt (user)", vec![0xf4]),
        ("rdmsr (user)", vec![0x0f, 0x32]),
        ("invalid", vec![0x06]),
    ] {
        let shape: fn(&mut Input, &mut Rng) =
            if name.starts_with("loop") || name.starts_with("jrcxz") || name.starts_with("enter") {
                |input, rng| {
                    input.gpr[1] = rng.next() % 3;
                    input.gpr[5] = DATA + 0x1000 + (rng.next() % 0x100) * 8;
                }
            } else {
                keep
            };
        cases.push(Case {
            name: name.to_string(),
            code,
            undefined: Box::new(none),
            shape,
        });
    }
    let n = run_cases(&cases, 30, 0x2468_ace0_1357_9bdf);
    eprintln!("moves/conditions: {n} differential cases");
}

#[test]
fn string_instructions() {
    fn counts(input: &mut Input, rng: &mut Rng) {
        input.gpr[1] = rng.next() % 24;
        input.gpr[0] = rng.value();
    }
    fn equalish(input: &mut Input, rng: &mut Rng) {
        counts(input, rng);
        // Make the compared strings share a prefix so REPE runs a while.
        let s = (input.gpr[6] - DATA) as usize;
        let d = (input.gpr[7] - DATA) as usize;
        let n = (rng.next() % 32) as usize;
        for k in 0..n {
            input.data[d + k] = input.data[s + k];
        }
        input.data[d] = input.gpr[0] as u8;
    }
    let mut cases = Vec::new();
    for (name, op) in [("movs", 0xa4u8), ("stos", 0xaa), ("lods", 0xac)] {
        for size in SIZES {
            for (rep, p) in [("", None), ("rep ", Some(0xf3u8))] {
                let mut c = Vec::new();
                c.extend(p);
                c.extend(sized(size, op, &[]));
                cases.push(Case {
                    name: format!("{rep}{name}{size}"),
                    code: c,
                    undefined: Box::new(none),
                    shape: counts,
                });
            }
        }
    }
    for (name, op) in [("cmps", 0xa6u8), ("scas", 0xae)] {
        for size in SIZES {
            for (rep, p) in [("", None), ("repe ", Some(0xf3u8)), ("repne ", Some(0xf2))] {
                let mut c = Vec::new();
                c.extend(p);
                c.extend(sized(size, op, &[]));
                cases.push(Case {
                    name: format!("{rep}{name}{size}"),
                    code: c,
                    undefined: Box::new(none),
                    shape: equalish,
                });
            }
        }
    }
    // 32-bit addressing (67 prefix).
    cases.push(Case {
        name: "rep movsb a32".into(),
        code: vec![0x67, 0xf3, 0xa4],
        undefined: Box::new(none),
        shape: counts,
    });
    let n = run_cases(&cases, 40, 0x9999_8888_7777_6666);
    eprintln!("strings: {n} differential cases");
}

#[test]
fn random_instruction_bytes_agree_on_outcome_class() {
    // Random short byte strings: the emulator must never panic; whenever both complete, the
    // registers must agree (and the flags, after an instruction whose flags are all
    // defined); when the host completes and the emulator raised #UD, the instruction must
    // be one this CPU does not implement yet (x87, MMX, SSE, later extensions), never a
    // baseline integer one.
    // PANDARE_DIFF_SEED and PANDARE_DIFF_SEQUENCES make the run different or longer.
    let seed = std::env::var("PANDARE_DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xfeed_face_dead_beef_u64);
    let sequences: usize = std::env::var("PANDARE_DIFF_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let (compared, flags_compared, not_implemented) = random_sequences(false, seed, sequences);
    eprintln!(
        "random bytes: {compared} sequences compared ({flags_compared} with flags), {not_implemented} needing x87/SSE or later"
    );
    let (compared, flags_compared, not_implemented) =
        random_sequences(true, seed ^ 0x5555, sequences / 2);
    eprintln!(
        "random bytes, compatibility mode: {compared} sequences compared ({flags_compared} with flags), {not_implemented} needing x87/SSE or later"
    );
}

/// Runs `sequences` random byte strings natively and emulated (64-bit, or 32-bit code in
/// compatibility mode), returning how many were compared, with flags, and skipped as
/// needing features this CPU lacks.
fn random_sequences(compat: bool, seed: u64, sequences: usize) -> (usize, usize, usize) {
    let bitness = if compat { 32 } else { 64 };
    let mut rng = Rng(seed | 1);
    let mut compared = 0;
    let mut flags_compared = 0;
    let mut not_implemented = 0;
    for _ in 0..sequences {
        let len = 1 + (rng.next() % 6) as usize;
        let mut code: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Keep memory operands rare by forcing a register-direct ModRM half the time;
        // emulated_guarded skips control transfers, privileged and host-dependent opcodes.
        if rng.next().is_multiple_of(2) && code.len() > 1 {
            code[1] |= 0xc0;
        }
        let mut input = random_input(&mut rng);
        input.gpr[1] &= 0xff;
        // x87/MMX/SSE state is not loaded by this harness (the child's is whatever the test
        // process left): those sequences are compared in host_float.rs.
        if uses_float_state(&code, bitness) {
            continue;
        }
        let Some(e) = emulated_guarded(&code, &input, compat) else {
            continue;
        };
        let mut n = native(&code, &input, compat);
        let mut e = e;
        if compat {
            for outcome in [&mut n, &mut e] {
                if let Ok((gpr, _, _)) = outcome.result.as_mut() {
                    for g in gpr.iter_mut() {
                        *g &= 0xffff_ffff;
                    }
                }
            }
        }
        // The child also maps its state page, which the emulated machine does not, and a
        // store into the code page overwrites the child's epilogue: such computed addresses
        // are harness artefacts, not divergences.
        if e.page_fault
            .is_some_and(|a| (STATE..STATE + 0x1000).contains(&a))
            || e.wrote_code
        {
            continue;
        }
        if e.result == Err(libc::SIGILL) && n.result != Err(libc::SIGILL) {
            let first_unimplemented = first_instruction_needing_more_than_baseline(&code, bitness);
            assert!(
                first_unimplemented,
                "the host ran {code:02x?} ({:?}) but the emulator raised #UD on a baseline integer instruction",
                n.result.as_ref().map(|_| "completed")
            );
            not_implemented += 1;
            continue;
        }
        if e.result.is_err() || n.result.is_err() {
            if let Err(report) = compare(&random_case(&code, ARITH), &input, &n, &e) {
                panic!("{report}");
            }
            continue;
        }
        // Flags the manuals leave undefined are not compared, nor is any result computed
        // from them (a later instruction reading one).
        let Some(undefined) = undefined_flags_after(&code, bitness) else {
            continue;
        };
        if undefined != ARITH {
            flags_compared += 1;
        }
        if let Err(report) = compare(&random_case(&code, undefined), &input, &n, &e) {
            panic!("{report}");
        }
        compared += 1;
    }
    (compared, flags_compared, not_implemented)
}

fn random_case(code: &[u8], undefined: u64) -> Case {
    Case {
        name: "random".into(),
        code: code.to_vec(),
        undefined: Box::new(move |_| undefined),
        shape: keep,
    }
}

fn decode_all(code: &[u8], bitness: u32) -> Vec<iced_x86::Instruction> {
    let mut decoder =
        iced_x86::Decoder::with_ip(bitness, code, CODE, iced_x86::DecoderOptions::NONE);
    let mut out = Vec::new();
    while decoder.can_decode() {
        out.push(decoder.decode());
    }
    out
}

/// Whether some instruction of `code` is an x87, MMX, SSE or SSE2 one.
fn uses_float_state(code: &[u8], bitness: u32) -> bool {
    use iced_x86::CpuidFeature as F;
    decode_all(code, bitness).iter().any(|i| {
        i.cpuid_features().iter().any(|f| {
            matches!(
                f,
                F::FPU | F::FPU287 | F::FPU387 | F::MMX | F::SSE | F::SSE2 | F::FXSR
            )
        })
    })
}

/// Whether some instruction of `code` needs a CPUID feature beyond this CPU's integer
/// baseline (or is invalid).
fn first_instruction_needing_more_than_baseline(code: &[u8], bitness: u32) -> bool {
    use iced_x86::CpuidFeature as F;
    decode_all(code, bitness).iter().any(|i| {
        i.is_invalid()
            || i.cpuid_features().iter().any(|f| {
                !matches!(
                    f,
                    F::INTEL8086
                        | F::INTEL8086_ONLY
                        | F::INTEL186
                        | F::INTEL286
                        | F::INTEL386
                        | F::INTEL486
                        | F::X64
                        | F::CMOV
                        | F::CX8
                        | F::CMPXCHG16B
                        | F::POPCNT
                        | F::MULTIBYTENOP
                        | F::PAUSE
                )
            })
    })
}

/// The arithmetic flags left undefined after `code` (from iced's per-instruction flag
/// facts), or `None` when an instruction reads a flag an earlier one left undefined.
fn undefined_flags_after(code: &[u8], bitness: u32) -> Option<u64> {
    use iced_x86::RflagsBits as B;
    let to_arch = |bits: u32| {
        let mut f = 0;
        for (b, a) in [
            (B::OF, OF),
            (B::SF, SF),
            (B::ZF, ZF),
            (B::AF, AF),
            (B::CF, CF),
            (B::PF, PF),
        ] {
            if bits & b != 0 {
                f |= a;
            }
        }
        f
    };
    let mut poisoned = 0u64;
    for i in decode_all(code, bitness) {
        if to_arch(i.rflags_read()) & poisoned != 0 {
            return None;
        }
        poisoned = (poisoned & !to_arch(i.rflags_modified())) | to_arch(i.rflags_undefined());
    }
    Some(poisoned)
}

/// The emulator on `code`, or `None` when the sequence leaves its bytes (a branch) — such
/// sequences cannot be run natively to a known end.
fn emulated_guarded(code: &[u8], input: &Input, compat: bool) -> Option<Outcome> {
    // Decode to check every instruction is inside the buffer and none transfers control.
    let bitness = if compat { 32 } else { 64 };
    let mut decoder =
        iced_x86::Decoder::with_ip(bitness, code, CODE, iced_x86::DecoderOptions::NONE);
    let mut total = 0;
    while decoder.can_decode() {
        let i = decoder.decode();
        if i.is_invalid() {
            break;
        }
        use iced_x86::Mnemonic as M;
        if i.flow_control() != iced_x86::FlowControl::Next
            || i.is_privileged()
            || i.is_stack_instruction()
            || matches!(
                i.memory_segment(),
                iced_x86::Register::FS | iced_x86::Register::GS
            )
            || matches!(
                i.mnemonic(),
                M::Sgdt
                    | M::Sidt
                    | M::Sldt
                    | M::Str
                    | M::Smsw
                    | M::Cpuid
                    | M::Rdtsc
                    | M::Lar
                    | M::Lsl
                    | M::Verr
                    | M::Verw
                    | M::Syscall
                    | M::Sysenter
                    | M::Rdpid
                    | M::Rdrand
                    | M::Rdseed
                    | M::Xgetbv
                    | M::Les
                    | M::Lds
                    | M::Lss
                    | M::Lfs
                    | M::Lgs
            )
            || (0..i.op_count()).any(|n| {
                i.op_kind(n) == iced_x86::OpKind::Register
                    && i.op_register(n).is_segment_register()
                    && n == 0
                    && i.mnemonic() == M::Mov
            })
        {
            return None;
        }
        // Memory operands only through rbx/rsi/rdi with small displacements, or none.
        if (0..i.op_count()).any(|n| i.op_kind(n) == iced_x86::OpKind::Memory)
            && (!matches!(
                i.memory_base(),
                iced_x86::Register::RBX
                    | iced_x86::Register::RSI
                    | iced_x86::Register::RDI
                    | iced_x86::Register::EBX
                    | iced_x86::Register::ESI
                    | iced_x86::Register::EDI
            ) || i.memory_index() != iced_x86::Register::None)
        {
            return None;
        }
        total += i.len();
    }
    if total != code.len() {
        return None;
    }
    Some(emulated(code, input, compat))
}

/// 32-bit code in compatibility mode (CS 0x23, as 32-bit programs run under a 64-bit
/// kernel): operand and address sizes default to 32 bits, INC/DEC have their one-byte
/// forms, and the legacy instructions (PUSHA/POPA, BCD adjustments, SALC, BOUND, INTO)
/// exist.
#[test]
fn compatibility_mode() {
    fn none32(_: &Input) -> u64 {
        0
    }
    fn af(_: &Input) -> u64 {
        AF
    }
    fn mul_und(_: &Input) -> u64 {
        SF | ZF | AF | PF
    }
    fn div_und(_: &Input) -> u64 {
        ARITH
    }
    fn daa_und(_: &Input) -> u64 {
        OF
    }
    fn aaa_und(_: &Input) -> u64 {
        OF | SF | ZF | PF
    }
    fn aam_und(_: &Input) -> u64 {
        OF | AF | CF
    }
    fn small_dividend(input: &mut Input, rng: &mut Rng) {
        if rng.next().is_multiple_of(2) {
            input.gpr[2] = rng.next() % 4;
        }
    }
    fn counts(input: &mut Input, rng: &mut Rng) {
        input.gpr[1] = rng.next() % 20;
        input.gpr[5] = DATA + 0x1000 + (rng.next() % 0x100) * 8;
    }
    let mut cases = Vec::new();
    let mut add = |name: &str, code: Vec<u8>, undefined: fn(&Input) -> u64| {
        cases.push(case(name.to_string(), code, undefined));
    };
    for (name, op, und) in [
        ("add", 0x00u8, none32 as fn(&Input) -> u64),
        ("adc", 0x10, none32),
        ("sbb", 0x18, none32),
        ("sub", 0x28, none32),
        ("and", 0x20, af),
        ("xor", 0x30, af),
        ("cmp", 0x38, none32),
    ] {
        for size in [1u32, 2, 4] {
            add(&format!("{name}{size} r,r"), sized(size, op, &[0xca]), und);
            add(&format!("{name}{size} m,r"), sized(size, op, &[0x0b]), und);
        }
    }
    for r in 0u8..8 {
        if r == 4 {
            continue;
        }
        add(&format!("inc r{r}"), vec![0x40 + r], none32);
        add(&format!("dec r{r}"), vec![0x48 + r], none32);
    }
    add("mul32", vec![0xf7, 0xe1], mul_und);
    add(
        "imul32 r,r,imm",
        vec![0x69, 0xd1, 0x78, 0x56, 0x34, 0x92],
        mul_und,
    );
    add("shl32 cl", vec![0xd3, 0xe2], |i| {
        let c = i.gpr[1] & 0x1f;
        (if c != 0 { AF } else { 0 }) | (if c > 1 { OF } else { 0 })
    });
    add("sar16 1", vec![0x66, 0xd1, 0xfa], af);
    add("bt m,r", vec![0x0f, 0xa3, 0x13], |_| ARITH & !CF);
    add("movsx", vec![0x0f, 0xbe, 0xcb], none32);
    add("xchg m", vec![0x87, 0x0b], none32);
    add("cmpxchg8b", vec![0x0f, 0xc7, 0x0b], none32);
    add("bswap", vec![0x0f, 0xca], none32);
    add("push pop", vec![0x51, 0x66, 0x52, 0x66, 0x58, 0x5b], none32);
    add("pushad popad", vec![0x60, 0x31, 0xc0, 0x61], af);
    add("pusha popa 16", vec![0x66, 0x60, 0x66, 0x61], none32);
    add("call pop", vec![0xe8, 0, 0, 0, 0, 0x59], none32);
    // call to a RET that returns over it: CALL rel32 and RET of 32-bit code.
    add(
        "call ret",
        vec![0xe8, 0x02, 0, 0, 0, 0xeb, 0x01, 0xc3],
        none32,
    );
    add(
        "push imm8 imm32 pop pop",
        vec![0x6a, 0x85, 0x68, 1, 2, 3, 0x84, 0x59, 0x5a],
        none32,
    );
    add("push esp pop esp", vec![0x54, 0x5c], none32);
    add("pushfd pop", vec![0x9c, 0x59], none32);
    add("lahf sahf", vec![0x9f, 0x80, 0xf4, 0xc1, 0x9e], none32);
    add("daa", vec![0x27], daa_und);
    add("das", vec![0x2f], daa_und);
    add("aaa", vec![0x37], aaa_und);
    add("aas", vec![0x3f], aaa_und);
    add("aam", vec![0xd4, 0x0a], aam_und);
    add("aam 7", vec![0xd4, 0x07], aam_und);
    add("aam 0", vec![0xd4, 0x00], aam_und);
    add("aad", vec![0xd5, 0x0a], aam_und);
    add("salc", vec![0xd6], none32);
    add("bound", vec![0x62, 0x0b], none32);
    add("cwde cdq", vec![0x98, 0x99], none32);
    add("lea16", vec![0x66, 0x8d, 0x4c, 0x93, 0x80], none32);
    add("jcc", vec![0x74, 0x01, 0x40], none32);
    add("ud2", vec![0x0f, 0x0b], none32);
    add("div32", vec![0xf7, 0xf1], div_und);
    let mut cases = cases;
    for (name, code) in [
        ("rep movsd", vec![0xf3, 0xa5]),
        ("rep stosb", vec![0xf3, 0xaa]),
        ("repe cmpsb", vec![0xf3, 0xa6]),
        ("repne scasw", vec![0xf2, 0x66, 0xaf]),
        ("lodsd", vec![0xad]),
        ("loop", vec![0xe2, 0x01, 0x40]),
        ("jecxz", vec![0xe3, 0x01, 0x40]),
        ("enter leave", vec![0xc8, 0x10, 0x00, 0x02, 0xc9]),
    ] {
        cases.push(Case {
            name: name.to_string(),
            code,
            undefined: Box::new(none32),
            shape: counts,
        });
    }
    cases.push(Case {
        name: "idiv32".into(),
        code: vec![0xf7, 0xf9],
        undefined: Box::new(div_und),
        shape: small_dividend,
    });
    let n = run_cases_in(&cases, 30, 0x3232_3232_1010_0101, true);
    eprintln!("compatibility mode: {n} differential cases");
}

/// Sequences where later instructions of a block overwrite earlier ones' flags (which the
/// block executor then skips computing), with flag readers, partial writers (INC/DEC,
/// rotates), shifts by zero, and memory operands that may fault in between (the exception
/// must see exact flags; `emulated` compares the faulting state of both executions).
#[test]
fn flag_liveness_in_blocks() {
    fn und_sz(_: &Input) -> u64 {
        SF | ZF | AF | PF
    }
    fn und_mul(_: &Input) -> u64 {
        SF | ZF | AF | PF
    }
    // Rotates by more than one leave OF undefined.
    fn und_of(_: &Input) -> u64 {
        OF
    }
    type Sequence = (&'static str, Vec<u8>, fn(&Input) -> u64);
    let sequences: Vec<Sequence> = vec![
        (
            "add xor ror shl inc adc setc",
            vec![
                0x01, 0xd8, 0x31, 0xd1, 0xc1, 0xce, 0x05, 0x48, 0xc1, 0xe7, 0x03, 0x49, 0xff, 0xc0,
                0x4d, 0x11, 0xd1, 0x0f, 0x92, 0xc0,
            ],
            none,
        ),
        (
            "cmp, load (may fault), sub",
            vec![0x48, 0x39, 0xd8, 0x8b, 0x0b, 0x29, 0xf2],
            none,
        ),
        (
            "test lea cmovz imul",
            vec![
                0x85, 0xc0, 0x48, 0x8d, 0x0c, 0x58, 0x0f, 0x44, 0xf9, 0x0f, 0xaf, 0xd6,
            ],
            und_sz,
        ),
        (
            "neg dec rol8 and",
            vec![
                0x48, 0xf7, 0xd8, 0xff, 0xc9, 0xd0, 0xc2, 0x81, 0xe6, 0xff, 0x00, 0x00, 0x00,
            ],
            none,
        ),
        (
            "sub then shr by 0",
            vec![0x29, 0xd8, 0xc1, 0xe9, 0x00],
            none,
        ),
        (
            "dec then ror (CF from dec's predecessor)",
            vec![0x01, 0xd8, 0xff, 0xc9, 0xc1, 0xc8, 0x08, 0x0f, 0x92, 0xc1],
            und_of,
        ),
        (
            "add8 mul sbb, add to memory (may fault)",
            vec![0x00, 0xd8, 0xf7, 0xe1, 0x19, 0xd2, 0x01, 0x03],
            none,
        ),
        ("add rcr", vec![0x01, 0xd8, 0xd1, 0xd8], none),
        (
            "16/8-bit: add ax, add cl imm, rol dx, setg",
            vec![
                0x66, 0x01, 0xd8, 0x80, 0xc1, 0x7f, 0x66, 0xc1, 0xc2, 0x01, 0x0f, 0x9f, 0xc0,
            ],
            none,
        ),
        (
            "xor, push (stack store), or, pop",
            vec![0x31, 0xc0, 0x53, 0x09, 0xd1, 0x5b],
            none,
        ),
        (
            "imul by imm, mul, adc to carry",
            vec![0x6b, 0xc3, 0x07, 0x48, 0xf7, 0xe3, 0x48, 0x83, 0xd1, 0x00],
            none,
        ),
        (
            "or then load, sar by cl",
            vec![0x09, 0xd8, 0x0f, 0xb6, 0x0b, 0xd3, 0xfa],
            und_mul,
        ),
    ];
    let cases: Vec<Case> = sequences
        .into_iter()
        .map(|(name, code, undefined)| case(name.to_string(), code, undefined))
        .collect();
    let cases = cases
        .into_iter()
        .map(|mut c| {
            // Half the time rbx points into the data pages (no fault).
            c.shape = |input: &mut Input, rng: &mut Rng| {
                if rng.next() & 1 == 0 {
                    input.gpr[3] = DATA + (rng.next() % (DATA_LEN as u64 - 16));
                }
            };
            c
        })
        .collect::<Vec<_>>();
    run_cases(&cases, 200, 0x5eed_f1a9);
}
