//! Host-CPU differential tests of the x87, MMX, SSE and SSE2 instructions: the host is
//! x86_64, the strongest oracle there is (the `pandare-x86-float` crate is compared with the
//! host operation by operation; these tests check the CPU around it: decoding, operand
//! selection, memory operands, MXCSR/x87 state, EFLAGS from comparisons, alignment and
//! exceptions).
//!
//! Each case is a short machine-code sequence and a random state: general registers, flags,
//! 8 KiB of data filled with floating-point edge values, and an FXSAVE image (x87 stack with
//! random TOP and tags, control words in every rounding/precision setting, MXCSR in every
//! rounding mode with DAZ/FTZ, sometimes unmasked exceptions; XMM lanes with denormals,
//! NaNs, infinities). The sequence runs natively in a forked child (FXRSTOR64 in the
//! prologue, FXSAVE64 in the epilogue) and on the emulated CPU in 64-bit user mode; GPRs,
//! the arithmetic flags, the data and the FXSAVE image are compared, or the fault (signal
//! against vector); the image's FOP, FIP and FDP too (the emulator keeps them as current
//! Intel processors do). The first divergence is reported with the bytes and both states.

#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use pandare_core::memory::Ram;
use pandare_x86::state::flags::{ARITH, FIXED, IF};
use pandare_x86::state::{SseState, X87State};
use pandare_x86::{Exit, State, X86Cpu};
use pandare_x86_float::image::{fxrstor, fxsave, FxForm};

mod native;
use native::{CODE, DATA, DATA_LEN, SCRATCH_TOP, STATE};
/// Offsets in the state page: the input and output FXSAVE images, a scratch word.
const FX_IN: u64 = 0x200;
const FX_OUT: u64 = 0x400;
const SCRATCH: u64 = 0x600;

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
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const F32_EDGES: &[u32] = &[
    0,
    0x8000_0000,
    0x7f80_0000,
    0xff80_0000,
    1,
    0x8000_0001,
    0x007f_ffff,
    0x0080_0000,
    0x7f7f_ffff,
    0x3f80_0000,
    0xbf80_0000,
    0x7fc0_0000,
    0xffc0_0000,
    0x7fa0_0001,
    0x4f00_0000,
    0xcf00_0000,
    0x5f00_0000,
    0x3f00_0000,
    0x4b80_0000,
];
const F64_EDGES: &[u64] = &[
    0,
    0x8000_0000_0000_0000,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    1,
    0x800f_ffff_ffff_ffff,
    0x0010_0000_0000_0000,
    0x7fef_ffff_ffff_ffff,
    0x3ff0_0000_0000_0000,
    0xbff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0xfff8_0000_0000_0000,
    0x7ff4_0000_0000_0001,
    0x41e0_0000_0000_0000,
    0xc1e0_0000_0000_0000,
    0x43e0_0000_0000_0000,
    0x3fe0_0000_0000_0000,
    0x4330_0000_0000_0000,
    0x36a0_0000_0000_0000,
];

fn f32_value(r: &mut Rng) -> u32 {
    match r.below(4) {
        0 => F32_EDGES[r.below(F32_EDGES.len() as u64) as usize],
        1 => r.next() as u32,
        2 => {
            ((r.next() as u32) & 0x807f_ffff)
                | ([0u32, 1, 126, 127, 128, 254][r.below(6) as usize] << 23)
        }
        _ => {
            ((r.next() as u32) & 0x8000_0000)
                | ((120 + r.below(16) as u32) << 23)
                | ((r.next() as u32) & 0x7f_f000)
        }
    }
}

fn f64_value(r: &mut Rng) -> u64 {
    match r.below(4) {
        0 => F64_EDGES[r.below(F64_EDGES.len() as u64) as usize],
        1 => r.next(),
        2 => {
            (r.next() & 0x800f_ffff_ffff_ffff)
                | ([0u64, 1, 1022, 1023, 1024, 2046][r.below(6) as usize] << 52)
        }
        _ => {
            (r.next() & 0x8000_0000_0000_0000)
                | ((1015 + r.below(16)) << 52)
                | (r.next() & 0xf_ffff_f000_0000)
        }
    }
}

/// A random 80-bit register: normal values near 1, extremes, zeros, denormals, infinities,
/// NaNs and (rarely) unsupported encodings.
fn f80_value(r: &mut Rng, modest: bool) -> (u16, u64) {
    let sign = (r.below(2) as u16) << 15;
    if modest {
        // |x| < 0.25: inside every transcendental's defined domain (FYL2XP1's is the
        // smallest, |x| < 1 - sqrt(2)/2).
        return (sign | (0x3fe0 + r.below(29) as u16), r.next() | (1 << 63));
    }
    match r.below(8) {
        0 => {
            let edges: &[(u16, u64)] = &[
                (0, 0),
                (0x7fff, 1 << 63),
                (0x7fff, 0xc000_0000_0000_0000),
                (0x7fff, 0xa000_0000_0000_0000),
                (0, 1),
                (1, 1 << 63),
                (0x7ffe, u64::MAX),
                (0x3fff, 1 << 63),
                (0x7fff, 0),
                (0x403e, 1 << 63),
                (0x401e, 1 << 63),
            ];
            let (se, m) = edges[r.below(edges.len() as u64) as usize];
            (se | sign, m)
        }
        1 => (
            sign | [0u16, 1, 0x3c00, 0x43ff, 0x7ffe][r.below(5) as usize],
            r.next() | (1 << 63),
        ),
        2 | 3 => (sign | (0x3ff0 + r.below(32) as u16), r.next() | (1 << 63)),
        4 => (
            sign | (0x3ff0 + r.below(64) as u16),
            (r.next() | (1 << 63)) & !0xffff_ffff,
        ),
        _ => (
            sign | (0x3f00 + r.below(0x200) as u16),
            r.next() | (1 << 63),
        ),
    }
}

#[derive(Clone)]
struct Input {
    gpr: [u64; 16],
    flags: u64,
    data: Vec<u8>,
    fx: [u8; 512],
}

#[derive(Clone, Debug, PartialEq)]
struct Finish {
    gpr: [u64; 16],
    flags: u64,
    data: Vec<u8>,
    fx: Vec<u8>,
}

/// `Ok(state)` or `Err(signal)`.
type Outcome = Result<Finish, i32>;

fn movabs_store_rax(c: &mut Vec<u8>, address: u64) {
    c.extend([0x48, 0xa3]);
    c.extend(address.to_le_bytes());
}

fn prologue() -> Vec<u8> {
    let mut c = vec![0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57];
    c.extend([0x48, 0x89, 0xe0]); // mov rax, rsp
    movabs_store_rax(&mut c, STATE + 136);
    c.extend([0x48, 0xb8]);
    c.extend(STATE.to_le_bytes()); // movabs rax, STATE
    c.extend([0x48, 0x0f, 0xae, 0x88]); // fxrstor64 [rax+FX_IN]
    c.extend((FX_IN as u32).to_le_bytes());
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
    let mut c = Vec::new();
    movabs_store_rax(&mut c, STATE);
    c.extend([0x48, 0xb8]);
    c.extend(STATE.to_le_bytes());
    c.extend([0x48, 0x0f, 0xae, 0x80]); // fxsave64 [rax+FX_OUT]
    c.extend((FX_OUT as u32).to_le_bytes());
    c.extend([0xdb, 0xe3]); // fninit: the Rust code after the case expects a sane FPU
    c.extend([0xc7, 0x80]); // mov dword [rax+SCRATCH], 0x1f80
    c.extend((SCRATCH as u32).to_le_bytes());
    c.extend(0x1f80u32.to_le_bytes());
    c.extend([0x0f, 0xae, 0x90]); // ldmxcsr [rax+SCRATCH]
    c.extend((SCRATCH as u32).to_le_bytes());
    c.extend([0x48, 0x89, 0xe0]); // mov rax, rsp
    movabs_store_rax(&mut c, STATE + 32);
    c.extend([0x48, 0xb8]);
    c.extend(SCRATCH_TOP.to_le_bytes());
    c.extend([0x48, 0x89, 0xc4]); // mov rsp, rax
    c.push(0x9c); // pushfq
    c.push(0xfc); // cld
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

/// The code page: prologue, the case, epilogue; and the case's offset. For compatibility
/// mode the prologue loads DS/ES with the user data selector, far-jumps into the 32-bit
/// code segment 0x23, and the case is followed by a far jump back to 0x33.
fn program(code: &[u8], compat: bool) -> (Vec<u8>, u64) {
    let mut p = prologue();
    if !compat {
        let start = p.len() as u64;
        p.extend_from_slice(code);
        p.extend(epilogue());
        return (p, start);
    }
    // The prologue ends with `mov rax, [rax]`; DS/ES are loaded through a scratch register
    // before it would be clobbered, so reload RAX afterwards.
    let reload = p.split_off(p.len() - 3);
    p.extend([0x66, 0xb9, 0x2b, 0x00, 0x8e, 0xd9, 0x8e, 0xc1]); // mov cx, 0x2b; mov ds/es, ecx
    p.extend([0x48, 0x8b, 0x48, 0x08]); // mov rcx, [rax+8]
    p.extend(reload);
    let at = p.len() as u64;
    let target = CODE + at + 6;
    let farptr = target + code.len() as u64 + 7;
    let back = farptr + 6;
    p.extend([0xff, 0x2d]); // jmp far [rip+disp32]
    p.extend(((farptr - (CODE + at + 6)) as u32).to_le_bytes());
    let start = p.len() as u64;
    p.extend_from_slice(code);
    p.push(0xea); // jmp far 0x33:back (32-bit code)
    p.extend((back as u32).to_le_bytes());
    p.extend([0x33, 0x00]);
    p.extend((target as u32).to_le_bytes());
    p.extend([0x23, 0x00]);
    p.extend(epilogue());
    (p, start)
}

fn native(code: &[u8], input: &Input, compat: bool) -> Outcome {
    let (program, _) = program(code, compat);
    native::run(
        &program,
        &input.data,
        &input.gpr,
        input.flags,
        &[(FX_IN, &input.fx[..])],
    )
    .map(|run| Finish {
        gpr: run.gpr(),
        flags: run.word(16),
        fx: run.state[FX_OUT as usize..FX_OUT as usize + 416].to_vec(),
        data: run.data,
    })
}

fn write_u64(ram: &mut Ram, address: u64, value: u64) {
    assert!(ram.write_bytes(address, &value.to_le_bytes()));
}

fn signal_of(vector: u8) -> i32 {
    match vector {
        0 | 16 | 19 => libc::SIGFPE,
        3 => libc::SIGTRAP,
        6 => libc::SIGILL,
        17 => libc::SIGBUS,
        _ => libc::SIGSEGV,
    }
}

/// Runs `code` on the emulated CPU at CPL 3 (64-bit or compatibility mode), as Linux sets
/// a process up: one instruction at a time ([`X86Cpu::step`]), and again from pre-decoded
/// blocks ([`X86Cpu::run`] in user mode, stopping at a SYSCALL written where the code
/// ends). Both must agree exactly, the FPU state included; the first is compared with the
/// host.
fn emulated(code: &[u8], input: &Input, compat: bool) -> Outcome {
    let stepped = emulated_in(code, input, compat, false).expect("stepping always finishes");
    if let Some(blocks) = emulated_in(code, input, compat, true) {
        BLOCK_RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(
            stepped, blocks,
            "step-by-step and block execution differ for {code:02x?}"
        );
    }
    stepped
}

/// How many emulated runs were also made from blocks (reported, so the check is seen to run).
static BLOCK_RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn emulated_in(code: &[u8], input: &Input, compat: bool, blocks: bool) -> Option<Outcome> {
    let mut ram = Ram::new(0, 0x40000);
    let user = 0x7;
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
    let (mut image, start) = program(code, compat);
    if blocks {
        let end = (start as usize) + code.len();
        image[end..end + 2].copy_from_slice(&[0x0f, 0x05]);
    }
    assert!(ram.write_bytes(CODE_PHYS, &image));
    assert!(ram.write_bytes(DATA_PHYS, &input.data));
    let mut state = State::long_mode(PML4, 3);
    state.gpr = input.gpr;
    state.rflags = input.flags | FIXED | IF;
    state.rip = CODE + start;
    if compat {
        // CS 0x23 (32-bit user code), DS = ES = 0x2b as the prologue loads them.
        state.segments[pandare_x86::state::seg::CS] = pandare_x86::Segment::flat(0x23, 0xc0fb);
        state.segments[4].selector = 0;
        state.segments[5].selector = 0;
    } else {
        for index in [0, 3, 4, 5] {
            state.segments[index].selector = 0;
        }
    }
    let (mut x87, mut sse) = (X87State::default(), SseState::default());
    fxrstor(&mut x87, &mut sse, FxForm::Bits64, 16, &input.fx).expect("valid input image");
    state.x87 = x87;
    state.sse = sse;
    let mut cpu = X86Cpu::new(state, ram).expect("valid state");
    cpu.user_mode = true;
    let end = CODE + start + code.len() as u64;
    let mut steps = 0;
    if blocks {
        loop {
            steps += 1;
            assert!(
                steps < 100,
                "block run did not reach the end of {code:02x?}"
            );
            match cpu.run(1_000) {
                Exit::Budget => {}
                Exit::Syscall if cpu.state.rip == end => break,
                Exit::Fault(fault) => return Some(Err(signal_of(fault.vector))),
                _ => return None,
            }
        }
    }
    while cpu.state.rip != end {
        steps += 1;
        assert!(
            steps < 10_000,
            "emulated run did not reach the end of {code:02x?}"
        );
        if let Err(fault) = cpu.step() {
            return Some(Err(signal_of(fault.vector)));
        }
    }
    let mut data = vec![0u8; DATA_LEN];
    assert!(cpu.ram.read_bytes(DATA_PHYS, &mut data));
    let mut fx = [0u8; 512];
    fxsave(&cpu.state.x87, &cpu.state.sse, FxForm::Bits64, 16, &mut fx);
    Some(Ok(Finish {
        gpr: cpu.state.gpr,
        flags: cpu.state.rflags,
        data,
        fx: fx[..416].to_vec(),
    }))
}

// ---- inputs -----------------------------------------------------------------------------

/// Control words: every precision and rounding control, usually all exceptions masked,
/// sometimes one or all unmasked.
fn random_fcw(r: &mut Rng) -> u16 {
    let pc = [0u16, 2, 3][r.below(3) as usize] << 8;
    let rc = (r.below(4) as u16) << 10;
    let masks = match r.below(8) {
        0 => 0x3f & !(1 << r.below(6)),
        1 => 0,
        _ => 0x3f,
    };
    0x40 | pc | rc | masks
}

fn random_mxcsr(r: &mut Rng) -> u32 {
    let rc = (r.below(4) as u32) << 13;
    let daz = if r.below(4) == 0 { 0x40 } else { 0 };
    let ftz = if r.below(4) == 0 { 0x8000 } else { 0 };
    let masks = match r.below(8) {
        0 => 0x1f80 & !(0x80 << r.below(6)),
        1 => 0,
        _ => 0x1f80,
    };
    rc | daz | ftz | masks | (r.below(64) as u32 & if r.below(2) == 0 { 0x3f } else { 0 })
}

#[derive(Clone, Copy)]
struct Shape {
    /// The x87 stack depth: random, or `Some(n)` registers valid from TOP.
    depth: Option<u8>,
    /// Register values near 1 (transcendentals' defined domain).
    modest: bool,
    /// RBX may be misaligned (alignment faults).
    misalign: bool,
}

fn random_input(r: &mut Rng, shape: Shape) -> Input {
    let mut gpr = [0u64; 16];
    for g in gpr.iter_mut() {
        *g = match r.below(4) {
            0 => r.next() & 0xffff_ffff,
            1 => r.below(64),
            2 => (r.next() as i32 as i64) as u64,
            _ => r.next(),
        };
    }
    let misalign = if shape.misalign && r.below(6) == 0 {
        1 + r.below(15)
    } else {
        0
    };
    gpr[3] = DATA + 0x100 + 16 * r.below(0x60) + misalign; // rbx
    gpr[6] = DATA + 0x800 + 16 * r.below(0x40); // rsi
    gpr[7] = DATA + 0xc00 + 16 * r.below(0x40); // rdi (MASKMOVDQU)
    gpr[4] = DATA + 0x1800;
    let flags = r.next() & ARITH;
    let mut data = vec![0u8; DATA_LEN];
    for chunk in data.chunks_mut(8) {
        let v = match r.below(3) {
            0 => f64_value(r),
            1 => u64::from(f32_value(r)) | (u64::from(f32_value(r)) << 32),
            _ => r.next(),
        };
        chunk.copy_from_slice(&v.to_le_bytes()[..chunk.len()]);
    }
    data[0x17f8..0x1800].copy_from_slice(&flags.to_le_bytes());
    let mut fx = [0u8; 512];
    let fcw = random_fcw(r);
    let top = r.below(8) as u16;
    // Exception flags only where masked, so nothing is pending (ES clear).
    let sticky = (r.below(64) as u16) & fcw & 0x3f & if r.below(2) == 0 { 0x3f } else { 0 };
    let cc = (r.next() as u16) & 0x4700;
    let fsw = (top << 11) | cc | sticky;
    let tags: u8 = match shape.depth {
        Some(n) => (0..n).fold(0, |t, k| t | 1 << ((top + u16::from(k)) & 7)),
        None => match r.below(3) {
            0 => r.next() as u8,
            _ => {
                let n = r.below(9) as u16;
                (0..n).fold(0, |t, k| t | 1 << ((top + k) & 7))
            }
        },
    };
    fx[0..2].copy_from_slice(&fcw.to_le_bytes());
    fx[2..4].copy_from_slice(&fsw.to_le_bytes());
    fx[4] = tags;
    let mxcsr = random_mxcsr(r);
    fx[24..28].copy_from_slice(&mxcsr.to_le_bytes());
    fx[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
    for i in 0..8 {
        let (se, m) = f80_value(r, shape.modest);
        let o = 32 + 16 * i;
        fx[o..o + 8].copy_from_slice(&m.to_le_bytes());
        fx[o + 8..o + 10].copy_from_slice(&se.to_le_bytes());
    }
    for i in 0..16 {
        let v: u128 = match r.below(3) {
            0 => u128::from(f64_value(r)) | (u128::from(f64_value(r)) << 64),
            1 => (0..4).fold(0u128, |v, k| v | (u128::from(f32_value(r)) << (32 * k))),
            _ => u128::from(r.next()) | (u128::from(r.next()) << 64),
        };
        let o = 160 + 16 * i;
        fx[o..o + 16].copy_from_slice(&v.to_le_bytes());
    }
    Input {
        gpr,
        flags,
        data,
        fx,
    }
}

// ---- cases ------------------------------------------------------------------------------

struct Case {
    /// The mnemonics iced decodes from `code` (checks the hand-written encodings).
    name: String,
    code: Vec<u8>,
    shape: Shape,
    /// Transcendental: x87 registers within 1 ulp and C1 not compared (as the semantics
    /// crate's own host test).
    approx: bool,
}

const ANY: Shape = Shape {
    depth: None,
    modest: false,
    misalign: true,
};

fn mnemonics_in(code: &[u8], bitness: u32) -> String {
    let mut decoder =
        iced_x86::Decoder::with_ip(bitness, code, CODE, iced_x86::DecoderOptions::NONE);
    let mut names = Vec::new();
    while decoder.can_decode() {
        let i = decoder.decode();
        names.push(format!("{:?}", i.mnemonic()).to_lowercase());
    }
    names.join(" ")
}

fn case(name: &str, code: Vec<u8>) -> Case {
    Case {
        name: name.to_string(),
        code,
        shape: ANY,
        approx: false,
    }
}

/// `ulps` between two 80-bit values given as (significand, sign+exponent).
fn f80_close(a: &[u8], b: &[u8]) -> bool {
    let m = |x: &[u8]| u64::from_le_bytes(x[..8].try_into().unwrap());
    let se = |x: &[u8]| u16::from_le_bytes([x[8], x[9]]);
    if se(a) != se(b) {
        // Adjacent binades: compare as one integer scale.
        let (ea, eb) = (se(a) & 0x7fff, se(b) & 0x7fff);
        if se(a) & 0x8000 != se(b) & 0x8000 || ea.abs_diff(eb) != 1 {
            return false;
        }
        let (lo, hi) = if ea < eb { (a, b) } else { (b, a) };
        return m(lo) == u64::MAX && m(hi) == 1 << 63;
    }
    m(a).abs_diff(m(b)) <= 1
}

fn compare(case: &Case, input: &Input, n: &Outcome, e: &Outcome) -> Result<(), String> {
    let describe = || {
        format!(
            "{} {:02x?}\n input gpr {:x?} flags {:#x}\n input fx {:02x?}",
            case.name,
            case.code,
            input.gpr,
            input.flags,
            &input.fx[..416]
        )
    };
    let (a, b) = match (n, e) {
        (Err(x), Err(y)) if x == y => return Ok(()),
        (Ok(a), Ok(b)) => (a, b),
        _ => {
            return Err(format!(
                "{}\n first divergence: outcome host {:?} emulated {:?}",
                describe(),
                n.as_ref().map(|_| "completed"),
                e.as_ref().map(|_| "completed")
            ))
        }
    };
    if let Some(r) = (0..16).find(|&r| a.gpr[r] != b.gpr[r]) {
        return Err(format!(
            "{}\n first divergence: gpr {r}: host {:#x} emulated {:#x}",
            describe(),
            a.gpr[r],
            b.gpr[r]
        ));
    }
    if a.flags & ARITH != b.flags & ARITH {
        return Err(format!(
            "{}\n first divergence: flags host {:#x} emulated {:#x}",
            describe(),
            a.flags & ARITH,
            b.flags & ARITH
        ));
    }
    let rbx = input.gpr[3];
    if let Some(k) = (0..DATA_LEN).find(|&k| a.data[k] != b.data[k]) {
        return Err(format!(
            "{}\n first divergence: memory {:#x} (rbx{:+}): host {:#x} emulated {:#x}",
            describe(),
            DATA + k as u64,
            (DATA + k as u64) as i64 - rbx as i64,
            a.data[k],
            b.data[k]
        ));
    }
    // The whole FXSAVE image, FOP/FIP/FDP included.
    let name = |k: usize| match k {
        0..=1 => "FCW".to_string(),
        2..=3 => "FSW".to_string(),
        4 => "FTW (abridged)".to_string(),
        6..=7 => "FOP".to_string(),
        8..=15 => "FIP".to_string(),
        16..=23 => "FDP".to_string(),
        24..=27 => "MXCSR".to_string(),
        28..=31 => "MXCSR_MASK".to_string(),
        32..=159 => format!("ST/MM physical register R{}", (k - 32) / 16),
        _ => format!("XMM{}", (k - 160) / 16),
    };
    for k in 0..416 {
        let (mut x, mut y) = (a.fx[k], b.fx[k]);
        if case.approx && k == 3 {
            // C1 (FSW bit 9).
            x &= !0x02;
            y &= !0x02;
        }
        if case.approx && (32..160).contains(&k) {
            let o = 32 + (k - 32) / 16 * 16;
            if f80_close(&a.fx[o..o + 10], &b.fx[o..o + 10]) {
                continue;
            }
        }
        if x != y {
            return Err(format!(
                "{}\n first divergence: FXSAVE byte {k} ({}): host {:#04x} emulated {:#04x}\n host fx {:02x?}\n emul fx {:02x?}",
                describe(),
                name(k),
                x,
                y,
                &a.fx[..416],
                &b.fx[..416]
            ));
        }
    }
    Ok(())
}

fn run(cases: &[Case], per_case: usize, seed: u64) -> usize {
    run_in(cases, per_case, seed, false)
}

/// Only the low halves of the GPRs are defined after 32-bit code returns to 64-bit mode.
fn low_halves(o: &mut Outcome) {
    if let Ok(f) = o.as_mut() {
        for g in f.gpr.iter_mut() {
            *g &= 0xffff_ffff;
        }
    }
}

/// Runs the cases in 64-bit mode, or (`compat`) as 32-bit code in compatibility mode.
fn run_in(cases: &[Case], per_case: usize, seed: u64, compat: bool) -> usize {
    let per_case = per_case
        * std::env::var("PANDARE_FLOAT_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
    let mut r = Rng(seed | 1);
    let mut failures = Vec::new();
    let mut count = 0;
    for case in cases {
        let decoded = mnemonics_in(&case.code, if compat { 32 } else { 64 });
        assert_eq!(
            decoded, case.name,
            "the test's encoding {:02x?} decodes as something else",
            case.code
        );
        for _ in 0..per_case {
            let input = random_input(&mut r, case.shape);
            let mut n = native(&case.code, &input, compat);
            let mut e = emulated(&case.code, &input, compat);
            if compat {
                low_halves(&mut n);
                low_halves(&mut e);
            }
            count += 1;
            if let Err(report) = compare(case, &input, &n, &e) {
                failures.push(report);
                break;
            }
        }
    }
    eprintln!(
        "({} runs so far in this process also compared from pre-decoded blocks)",
        BLOCK_RUNS.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        failures.is_empty(),
        "{} of {} classes diverged:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
    count
}

fn with(prefix: &[u8], rest: &[u8]) -> Vec<u8> {
    let mut c = prefix.to_vec();
    c.extend_from_slice(rest);
    c
}

/// Register (xmm1, xmm2 / mm1, mm2) and memory ([rbx]) forms of `prefix 0F op /r [imm]`.
fn both(cases: &mut Vec<Case>, name: &str, prefix: &[u8], op: u8, imm: Option<u8>) {
    for modrm in [0xca, 0x0b] {
        let mut c = with(prefix, &[0x0f, op, modrm]);
        c.extend(imm);
        cases.push(case(name, c));
    }
}

#[test]
fn sse_floating_point_matches_host() {
    let mut cases = Vec::new();
    let four = [
        ("ps", &[][..]),
        ("pd", &[0x66][..]),
        ("ss", &[0xf3][..]),
        ("sd", &[0xf2][..]),
    ];
    for (op, base) in [
        (0x58u8, "add"),
        (0x59, "mul"),
        (0x5c, "sub"),
        (0x5d, "min"),
        (0x5e, "div"),
        (0x5f, "max"),
        (0x51, "sqrt"),
    ] {
        for (suffix, prefix) in four {
            both(&mut cases, &format!("{base}{suffix}"), prefix, op, None);
        }
    }
    for (suffix, prefix) in four {
        for pred in [0u8, 1, 2, 3, 4, 5, 6, 7] {
            both(
                &mut cases,
                &format!("cmp{suffix}"),
                prefix,
                0xc2,
                Some(pred),
            );
        }
    }
    for (name, prefix, op) in [
        ("rcpps", &[][..], 0x53u8),
        ("rcpss", &[0xf3][..], 0x53),
        ("rsqrtps", &[][..], 0x52),
        ("rsqrtss", &[0xf3][..], 0x52),
        ("ucomiss", &[][..], 0x2e),
        ("ucomisd", &[0x66][..], 0x2e),
        ("comiss", &[][..], 0x2f),
        ("comisd", &[0x66][..], 0x2f),
        ("andps", &[][..], 0x54),
        ("andpd", &[0x66][..], 0x54),
        ("andnps", &[][..], 0x55),
        ("andnpd", &[0x66][..], 0x55),
        ("orps", &[][..], 0x56),
        ("orpd", &[0x66][..], 0x56),
        ("xorps", &[][..], 0x57),
        ("xorpd", &[0x66][..], 0x57),
        ("cvtps2pd", &[][..], 0x5a),
        ("cvtpd2ps", &[0x66][..], 0x5a),
        ("cvtss2sd", &[0xf3][..], 0x5a),
        ("cvtsd2ss", &[0xf2][..], 0x5a),
        ("cvtdq2ps", &[][..], 0x5b),
        ("cvtps2dq", &[0x66][..], 0x5b),
        ("cvttps2dq", &[0xf3][..], 0x5b),
        ("cvttpd2dq", &[0x66][..], 0xe6),
        ("cvtdq2pd", &[0xf3][..], 0xe6),
        ("cvtpd2dq", &[0xf2][..], 0xe6),
        ("cvtpi2ps", &[][..], 0x2a),
        ("cvtpi2pd", &[0x66][..], 0x2a),
        ("cvttps2pi", &[][..], 0x2c),
        ("cvttpd2pi", &[0x66][..], 0x2c),
        ("cvtps2pi", &[][..], 0x2d),
        ("cvtpd2pi", &[0x66][..], 0x2d),
        ("cvttss2si", &[0xf3][..], 0x2c),
        ("cvttsd2si", &[0xf2][..], 0x2c),
        ("cvtss2si", &[0xf3][..], 0x2d),
        ("cvtsd2si", &[0xf2][..], 0x2d),
        ("cvtsi2ss", &[0xf3][..], 0x2a),
        ("cvtsi2sd", &[0xf2][..], 0x2a),
        ("unpcklps", &[][..], 0x14),
        ("unpcklpd", &[0x66][..], 0x14),
        ("unpckhps", &[][..], 0x15),
        ("unpckhpd", &[0x66][..], 0x15),
    ] {
        both(&mut cases, name, prefix, op, None);
    }
    // 64-bit integer forms (REX.W) and high registers (REX.R/B: xmm9, xmm10 / r9, r10).
    for (name, prefix, op) in [
        ("cvtsi2ss", [0xf3u8, 0x48], 0x2au8),
        ("cvtsi2sd", [0xf2, 0x48], 0x2a),
        ("cvttss2si", [0xf3, 0x48], 0x2c),
        ("cvtsd2si", [0xf2, 0x48], 0x2d),
        ("addsd", [0xf2, 0x45], 0x58),
        ("mulpd", [0x66, 0x45], 0x59),
        ("cvtsi2sd", [0xf2, 0x4d], 0x2a),
    ] {
        both(&mut cases, name, &prefix, op, None);
    }
    for (name, imm) in [("shufps", 0x1bu8), ("shufps", 0xe4), ("shufps", 0x72)] {
        both(&mut cases, name, &[], 0xc6, Some(imm));
    }
    for imm in [0u8, 1, 2, 3] {
        both(&mut cases, "shufpd", &[0x66], 0xc6, Some(imm));
    }
    let n = run(&cases, 30, 0x05ee_f10a7);
    eprintln!("SSE/SSE2 floating point: {n} differential cases");
}

#[test]
fn sse_moves_match_host() {
    let mut cases = Vec::new();
    for (name, prefix, load, store) in [
        ("movups", &[][..], 0x10u8, 0x11u8),
        ("movupd", &[0x66][..], 0x10, 0x11),
        ("movss", &[0xf3][..], 0x10, 0x11),
        ("movsd", &[0xf2][..], 0x10, 0x11),
        ("movaps", &[][..], 0x28, 0x29),
        ("movapd", &[0x66][..], 0x28, 0x29),
        ("movdqa", &[0x66][..], 0x6f, 0x7f),
        ("movdqu", &[0xf3][..], 0x6f, 0x7f),
    ] {
        both(&mut cases, name, prefix, load, None);
        both(&mut cases, name, prefix, store, None);
    }
    for (name, code) in [
        ("movlps", vec![0x0f, 0x12, 0x0b]),
        ("movhlps", vec![0x0f, 0x12, 0xca]),
        ("movlpd", vec![0x66, 0x0f, 0x12, 0x0b]),
        ("movlps", vec![0x0f, 0x13, 0x0b]),
        ("movlpd", vec![0x66, 0x0f, 0x13, 0x0b]),
        ("movhps", vec![0x0f, 0x16, 0x0b]),
        ("movlhps", vec![0x0f, 0x16, 0xca]),
        ("movhpd", vec![0x66, 0x0f, 0x16, 0x0b]),
        ("movhps", vec![0x0f, 0x17, 0x0b]),
        ("movhpd", vec![0x66, 0x0f, 0x17, 0x0b]),
        ("movntps", vec![0x0f, 0x2b, 0x0b]),
        ("movntpd", vec![0x66, 0x0f, 0x2b, 0x0b]),
        ("movntdq", vec![0x66, 0x0f, 0xe7, 0x0b]),
        ("movnti", vec![0x0f, 0xc3, 0x0b]),
        ("movnti", vec![0x48, 0x0f, 0xc3, 0x0b]),
        ("movntq", vec![0x0f, 0xe7, 0x0b]),
        ("movd", vec![0x66, 0x0f, 0x6e, 0xca]),
        ("movd", vec![0x66, 0x0f, 0x6e, 0x0b]),
        ("movq", vec![0x66, 0x48, 0x0f, 0x6e, 0xca]),
        ("movd", vec![0x66, 0x0f, 0x7e, 0xca]),
        ("movd", vec![0x66, 0x0f, 0x7e, 0x0b]),
        ("movq", vec![0x66, 0x48, 0x0f, 0x7e, 0xca]),
        ("movq", vec![0xf3, 0x0f, 0x7e, 0xca]),
        ("movq", vec![0xf3, 0x0f, 0x7e, 0x0b]),
        ("movq", vec![0x66, 0x0f, 0xd6, 0xca]),
        ("movq", vec![0x66, 0x0f, 0xd6, 0x0b]),
        ("movq2dq", vec![0xf3, 0x0f, 0xd6, 0xca]),
        ("movdq2q", vec![0xf2, 0x0f, 0xd6, 0xca]),
        ("movd", vec![0x0f, 0x6e, 0xca]),
        ("movq", vec![0x48, 0x0f, 0x6e, 0xca]),
        ("movd", vec![0x0f, 0x7e, 0x0b]),
        ("movq", vec![0x48, 0x0f, 0x7e, 0xca]),
        ("movq", vec![0x0f, 0x6f, 0xca]),
        ("movq", vec![0x0f, 0x6f, 0x0b]),
        ("movq", vec![0x0f, 0x7f, 0x0b]),
        ("movmskps", vec![0x0f, 0x50, 0xca]),
        ("movmskpd", vec![0x66, 0x0f, 0x50, 0xca]),
        ("pmovmskb", vec![0x66, 0x0f, 0xd7, 0xca]),
        ("pmovmskb", vec![0x0f, 0xd7, 0xca]),
        ("maskmovdqu", vec![0x66, 0x0f, 0xf7, 0xca]),
        ("maskmovq", vec![0x0f, 0xf7, 0xca]),
        ("movaps", vec![0x44, 0x0f, 0x28, 0xfa]),
        ("movdqu", vec![0xf3, 0x44, 0x0f, 0x6f, 0x7b, 0x05]),
        ("stmxcsr", vec![0x0f, 0xae, 0x1b]),
        ("ldmxcsr stmxcsr", vec![0x0f, 0xae, 0x16, 0x0f, 0xae, 0x1b]),
        ("emms", vec![0x0f, 0x77]),
        ("movq emms", vec![0x0f, 0x6f, 0xca, 0x0f, 0x77]),
    ] {
        cases.push(case(name, code));
    }
    // LDMXCSR from memory: a valid MXCSR most of the time, reserved bits sometimes (#GP).
    let n = run(&cases, 30, 0x0f0f_5e01);
    eprintln!("SSE moves: {n} differential cases");
}

#[test]
fn integer_simd_matches_host() {
    let mut cases = Vec::new();
    let ops: &[(&str, u8)] = &[
        ("punpcklbw", 0x60),
        ("punpcklwd", 0x61),
        ("punpckldq", 0x62),
        ("packsswb", 0x63),
        ("pcmpgtb", 0x64),
        ("pcmpgtw", 0x65),
        ("pcmpgtd", 0x66),
        ("packuswb", 0x67),
        ("punpckhbw", 0x68),
        ("punpckhwd", 0x69),
        ("punpckhdq", 0x6a),
        ("packssdw", 0x6b),
        ("pcmpeqb", 0x74),
        ("pcmpeqw", 0x75),
        ("pcmpeqd", 0x76),
        ("psrlw", 0xd1),
        ("psrld", 0xd2),
        ("psrlq", 0xd3),
        ("paddq", 0xd4),
        ("pmullw", 0xd5),
        ("psubusb", 0xd8),
        ("psubusw", 0xd9),
        ("pminub", 0xda),
        ("pand", 0xdb),
        ("paddusb", 0xdc),
        ("paddusw", 0xdd),
        ("pmaxub", 0xde),
        ("pandn", 0xdf),
        ("pavgb", 0xe0),
        ("psraw", 0xe1),
        ("psrad", 0xe2),
        ("pavgw", 0xe3),
        ("pmulhuw", 0xe4),
        ("pmulhw", 0xe5),
        ("psubsb", 0xe8),
        ("psubsw", 0xe9),
        ("pminsw", 0xea),
        ("por", 0xeb),
        ("paddsb", 0xec),
        ("paddsw", 0xed),
        ("pmaxsw", 0xee),
        ("pxor", 0xef),
        ("psllw", 0xf1),
        ("pslld", 0xf2),
        ("psllq", 0xf3),
        ("pmuludq", 0xf4),
        ("pmaddwd", 0xf5),
        ("psadbw", 0xf6),
        ("psubb", 0xf8),
        ("psubw", 0xf9),
        ("psubd", 0xfa),
        ("psubq", 0xfb),
        ("paddb", 0xfc),
        ("paddw", 0xfd),
        ("paddd", 0xfe),
    ];
    for &(name, op) in ops {
        both(&mut cases, name, &[0x66], op, None);
        both(&mut cases, name, &[], op, None);
    }
    both(&mut cases, "punpcklqdq", &[0x66], 0x6c, None);
    both(&mut cases, "punpckhqdq", &[0x66], 0x6d, None);
    for imm in [0x1bu8, 0x00, 0xe4, 0x4e] {
        both(&mut cases, "pshufd", &[0x66], 0x70, Some(imm));
        both(&mut cases, "pshufhw", &[0xf3], 0x70, Some(imm));
        both(&mut cases, "pshuflw", &[0xf2], 0x70, Some(imm));
        both(&mut cases, "pshufw", &[], 0x70, Some(imm));
    }
    // Shifts by an immediate: 71/72/73 /n ib on xmm2 and mm2.
    for (name, op, n) in [
        ("psrlw", 0x71u8, 2u8),
        ("psraw", 0x71, 4),
        ("psllw", 0x71, 6),
        ("psrld", 0x72, 2),
        ("psrad", 0x72, 4),
        ("pslld", 0x72, 6),
        ("psrlq", 0x73, 2),
        ("psllq", 0x73, 6),
    ] {
        for imm in [0u8, 1, 7, 15, 16, 31, 33, 64, 200] {
            cases.push(case(name, vec![0x66, 0x0f, op, 0xc0 | (n << 3) | 2, imm]));
            cases.push(case(name, vec![0x0f, op, 0xc0 | (n << 3) | 2, imm]));
        }
    }
    for imm in [0u8, 1, 5, 15, 16, 200] {
        cases.push(case("psrldq", vec![0x66, 0x0f, 0x73, 0xda, imm]));
        cases.push(case("pslldq", vec![0x66, 0x0f, 0x73, 0xfa, imm]));
    }
    for imm in [0u8, 3, 7, 9] {
        cases.push(case("pextrw", vec![0x66, 0x0f, 0xc5, 0xca, imm]));
        cases.push(case("pextrw", vec![0x0f, 0xc5, 0xca, imm]));
        cases.push(case("pinsrw", vec![0x66, 0x0f, 0xc4, 0xca, imm]));
        cases.push(case("pinsrw", vec![0x66, 0x0f, 0xc4, 0x0b, imm]));
        cases.push(case("pinsrw", vec![0x0f, 0xc4, 0xca, imm]));
    }
    let n = run(&cases, 12, 0x0051_3d1e);
    eprintln!("integer SIMD: {n} differential cases");
}

#[test]
fn x87_matches_host() {
    let mut cases = Vec::new();
    let deep = Shape {
        depth: None,
        modest: false,
        misalign: false,
    };
    let mut add = |name: &str, code: Vec<u8>| {
        let mut c = case(name, code);
        c.shape = deep;
        cases.push(c);
    };
    let arith = [
        "fadd", "fmul", "fcom", "fcomp", "fsub", "fsubr", "fdiv", "fdivr",
    ];
    let iarith = [
        "fiadd", "fimul", "ficom", "ficomp", "fisub", "fisubr", "fidiv", "fidivr",
    ];
    for (n, name) in arith.iter().enumerate() {
        let n = n as u8;
        add(name, vec![0xd8, 0x03 | (n << 3)]); // m32fp
        add(name, vec![0xdc, 0x03 | (n << 3)]); // m64fp
        add(name, vec![0xd8, 0xc3 | (n << 3)]); // st0, st3
        add(iarith[n as usize], vec![0xda, 0x03 | (n << 3)]); // m32int
        add(iarith[n as usize], vec![0xde, 0x03 | (n << 3)]); // m16int
    }
    for (n, name) in [
        (0u8, "fadd"),
        (1, "fmul"),
        (4, "fsubr"),
        (5, "fsub"),
        (6, "fdivr"),
        (7, "fdiv"),
    ] {
        add(name, vec![0xdc, 0xc2 | (n << 3)]); // st2, st0
        add(&format!("{name}p"), vec![0xde, 0xc2 | (n << 3)]);
    }
    for (name, code) in [
        ("fcompp", vec![0xde, 0xd9]),
        ("fucompp", vec![0xda, 0xe9]),
        ("fucom", vec![0xdd, 0xe2]),
        ("fucomp", vec![0xdd, 0xea]),
        ("fucomi", vec![0xdb, 0xea]),
        ("fcomi", vec![0xdb, 0xf2]),
        ("fucomip", vec![0xdf, 0xea]),
        ("fcomip", vec![0xdf, 0xf2]),
        ("fcmovb", vec![0xda, 0xc2]),
        ("fcmove", vec![0xda, 0xca]),
        ("fcmovbe", vec![0xda, 0xd2]),
        ("fcmovu", vec![0xda, 0xda]),
        ("fcmovnb", vec![0xdb, 0xc2]),
        ("fcmovne", vec![0xdb, 0xca]),
        ("fcmovnbe", vec![0xdb, 0xd2]),
        ("fcmovnu", vec![0xdb, 0xda]),
        ("fld", vec![0xd9, 0x03]),
        ("fld", vec![0xdd, 0x03]),
        ("fld", vec![0xdb, 0x2b]),
        ("fld", vec![0xd9, 0xc3]),
        ("fild", vec![0xdf, 0x03]),
        ("fild", vec![0xdb, 0x03]),
        ("fild", vec![0xdf, 0x2b]),
        ("fbld", vec![0xdf, 0x23]),
        ("fst", vec![0xd9, 0x13]),
        ("fstp", vec![0xd9, 0x1b]),
        ("fst", vec![0xdd, 0x13]),
        ("fstp", vec![0xdd, 0x1b]),
        ("fstp", vec![0xdb, 0x3b]),
        ("fst", vec![0xdd, 0xd3]),
        ("fstp", vec![0xdd, 0xdb]),
        ("fist", vec![0xdf, 0x13]),
        ("fistp", vec![0xdf, 0x1b]),
        ("fist", vec![0xdb, 0x13]),
        ("fistp", vec![0xdb, 0x1b]),
        ("fistp", vec![0xdf, 0x3b]),
        ("fbstp", vec![0xdf, 0x33]),
        ("fxch", vec![0xd9, 0xcb]),
        ("fnop", vec![0xd9, 0xd0]),
        ("fchs", vec![0xd9, 0xe0]),
        ("fabs", vec![0xd9, 0xe1]),
        ("ftst", vec![0xd9, 0xe4]),
        ("fxam", vec![0xd9, 0xe5]),
        ("fld1", vec![0xd9, 0xe8]),
        ("fldl2t", vec![0xd9, 0xe9]),
        ("fldl2e", vec![0xd9, 0xea]),
        ("fldpi", vec![0xd9, 0xeb]),
        ("fldlg2", vec![0xd9, 0xec]),
        ("fldln2", vec![0xd9, 0xed]),
        ("fldz", vec![0xd9, 0xee]),
        ("fxtract", vec![0xd9, 0xf4]),
        ("fprem1", vec![0xd9, 0xf5]),
        ("fdecstp", vec![0xd9, 0xf6]),
        ("fincstp", vec![0xd9, 0xf7]),
        ("fprem", vec![0xd9, 0xf8]),
        ("fsqrt", vec![0xd9, 0xfa]),
        ("frndint", vec![0xd9, 0xfc]),
        ("fscale", vec![0xd9, 0xfd]),
        ("ffree", vec![0xdd, 0xc3]),
        ("ffreep", vec![0xdf, 0xc3]),
        ("fnclex", vec![0xdb, 0xe2]),
        ("fninit", vec![0xdb, 0xe3]),
        ("fnstsw", vec![0xdf, 0xe0]),
        ("fnstsw", vec![0xdd, 0x3b]),
        ("fnstcw", vec![0xd9, 0x3b]),
        ("fldcw", vec![0xd9, 0x2b]),
        ("fldcw fld fstp", vec![0xd9, 0x2b, 0xdd, 0x06, 0xd9, 0x1b]),
        ("wait", vec![0x9b]),
        ("fld wait", vec![0xdd, 0x03, 0x9b]),
        ("fdiv wait", vec![0xd8, 0x33, 0x9b]),
        ("fsqrt fnstsw", vec![0xd9, 0xfa, 0xdf, 0xe0]),
        (
            "fld fld faddp fstp",
            vec![0xdd, 0x03, 0xdd, 0x06, 0xde, 0xc1, 0xdd, 0x1b],
        ),
    ] {
        add(name, code);
    }
    let mut env = |name: &str, code: Vec<u8>| {
        let mut c = case(name, code);
        c.shape = deep;
        cases.push(c);
    };
    // FNSTENV/FNSAVE: the 28-byte environment with FIP, FOP and FDP compared too.
    env("fnstenv", vec![0xd9, 0x33]);
    env("fnsave", vec![0xdd, 0x33]);
    env("fnstenv fldenv", vec![0xd9, 0x33, 0xd9, 0x23]);
    env("fnsave frstor", vec![0xdd, 0x33, 0xdd, 0x23]);
    env("fdiv fnstenv", vec![0xd8, 0x33, 0xd9, 0x36]);
    env("fld fnsave", vec![0xdd, 0x03, 0xdd, 0x36]);
    env("fldenv", vec![0xd9, 0x26]);
    env("frstor", vec![0xdd, 0x26]);
    let n = run(&cases, 25, 0x0087_8787);
    eprintln!("x87: {n} differential cases");
}

#[test]
fn x87_transcendentals_are_within_one_ulp_of_host() {
    let mut cases = Vec::new();
    for (name, code) in [
        ("f2xm1", vec![0xd9, 0xf0]),
        ("fyl2x", vec![0xd9, 0xf1]),
        ("fptan", vec![0xd9, 0xf2]),
        ("fpatan", vec![0xd9, 0xf3]),
        ("fyl2xp1", vec![0xd9, 0xf9]),
        ("fsincos", vec![0xd9, 0xfb]),
        ("fsin", vec![0xd9, 0xfe]),
        ("fcos", vec![0xd9, 0xff]),
    ] {
        cases.push(Case {
            name: name.into(),
            code,
            shape: Shape {
                depth: Some(2),
                modest: true,
                misalign: false,
            },
            approx: true,
        });
    }
    let n = run(&cases, 40, 0x7a05);
    eprintln!("x87 transcendentals: {n} differential cases");
}

#[test]
fn mmx_and_x87_aliasing_matches_host() {
    // MMX writes set the exponent to all ones, every MMX instruction sets TOP = 0 and all
    // tags valid, EMMS empties them; x87 loads afterwards see the aliased registers.
    let mut cases = Vec::new();
    for (name, code) in [
        ("paddb", vec![0x0f, 0xfc, 0xca]),
        ("paddb emms", vec![0x0f, 0xfc, 0xca, 0x0f, 0x77]),
        ("fld movq", vec![0xdd, 0x03, 0x0f, 0x6f, 0xca]),
        ("movq fld", vec![0x0f, 0x6f, 0xca, 0xd9, 0xc1]),
        (
            "movq emms fld",
            vec![0x0f, 0x6f, 0x0b, 0x0f, 0x77, 0xdd, 0x03],
        ),
        ("cvtpi2ps", vec![0x0f, 0x2a, 0xca]),
        ("cvtpi2ps", vec![0x0f, 0x2a, 0x0b]),
        ("movq2dq", vec![0xf3, 0x0f, 0xd6, 0xca]),
    ] {
        cases.push(case(name, code));
    }
    let n = run(&cases, 30, 0x3344);
    eprintln!("MMX/x87 aliasing: {n} differential cases");
}

#[test]
fn fxsave_and_fxrstor_round_trip_like_the_host() {
    // FXSAVE64/FXRSTOR64 and the legacy forms at [rbx] (16-byte aligned, or #GP when RBX
    // is misaligned); a changed image restores into every register. FIP/FDP/FOP (bytes 6–23)
    // are not compared.
    let mut cases = Vec::new();
    for (name, code) in [
        ("fxsave", vec![0x0f, 0xae, 0x03]),
        ("fxsave64", vec![0x48, 0x0f, 0xae, 0x03]),
        ("fxsave fxrstor", vec![0x0f, 0xae, 0x03, 0x0f, 0xae, 0x0b]),
        (
            "fxsave64 fxrstor64",
            vec![0x48, 0x0f, 0xae, 0x03, 0x48, 0x0f, 0xae, 0x0b],
        ),
        // FXSAVE, change MXCSR and XMM3 in the image (offsets 24 and 208), FXRSTOR.
        (
            "fxsave64 mov mov fxrstor64",
            vec![
                0x48, 0x0f, 0xae, 0x03, // fxsave64 [rbx]
                0xc7, 0x43, 0x18, 0x80, 0x3f, 0, 0, // mov dword [rbx+24], 0x3f80
                0x48, 0x89, 0x8b, 0xd0, 0, 0, 0, // mov [rbx+208], rcx
                0x48, 0x0f, 0xae, 0x0b, // fxrstor64 [rbx]
            ],
        ),
    ] {
        cases.push(case(name, code));
    }
    let n = run(&cases, 40, 0x000f_5a7e);
    eprintln!("FXSAVE/FXRSTOR: {n} differential cases");
}

/// The CPUID features of the x87/MMX/SSE/SSE2 baseline this CPU implements.
fn baseline(f: &iced_x86::CpuidFeature) -> bool {
    use iced_x86::CpuidFeature as F;
    matches!(
        f,
        F::FPU
            | F::FPU287
            | F::FPU387
            | F::MMX
            | F::SSE
            | F::SSE2
            | F::FXSR
            | F::CMOV
            | F::INTEL8086
    )
}

/// A random instruction from the float opcode space: an optional mandatory prefix and REX,
/// then `0F op` or an x87 escape (D8–DF), a ModRM byte (register-direct, or a [rbx/rsi/rdi +
/// disp8] memory operand) and sometimes an imm8.
fn random_float_instruction(r: &mut Rng) -> Vec<u8> {
    let mut c = Vec::new();
    match r.below(4) {
        0 => c.push(0x66),
        1 => c.push(0xf2),
        2 => c.push(0xf3),
        _ => {}
    }
    let x87 = r.below(3) == 0;
    if !x87 && r.below(3) == 0 {
        c.push(0x40 | (r.below(16) as u8 & 0xd)); // REX without .X
    }
    if x87 {
        if r.below(6) == 0 {
            // FWAIT, or the waiting forms (FSTCW, FSTSW, FSTENV, FSAVE, FINIT, FCLEX).
            c.push(0x9b);
        }
        c.push(0xd8 + r.below(8) as u8);
    } else {
        c.push(0x0f);
        // Mostly the SSE/MMX ranges; sometimes anything (SSE3+ maps, other opcodes).
        let op = match r.below(6) {
            0 => r.next() as u8,
            1 => 0x10 + r.below(0x20) as u8,
            2 => 0x50 + r.below(0x30) as u8,
            3 => 0xc2 + r.below(6) as u8,
            _ => 0xd0 + r.below(0x30) as u8,
        };
        c.push(op);
    }
    if r.below(2) == 0 {
        c.push(0xc0 | r.below(64) as u8);
    } else {
        let rm = [3u8, 6, 7][r.below(3) as usize];
        c.push(0x40 | ((r.below(8) as u8) << 3) | rm);
        c.push((r.below(8) as u8) * 16); // disp8: 16-byte steps keep most operands aligned
    }
    if r.below(3) == 0 {
        c.push(r.next() as u8);
    }
    c
}

#[test]
fn random_float_sequences_match_host() {
    random_float_sequences(false);
}

#[test]
fn random_float_sequences_in_compatibility_mode_match_host() {
    random_float_sequences(true);
}

fn random_float_sequences(compat: bool) {
    // Random float-opcode byte strings on random states: whenever the sequence decodes to x87,
    // MMX, SSE or SSE2 instructions (or later extensions, which must raise #UD here and may
    // complete on the host), the outcome and the whole state must agree.
    // PANDARE_FLOAT_SEED / PANDARE_FLOAT_SEQUENCES make the run different or longer.
    let seed = std::env::var("PANDARE_FLOAT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x000f_10a7_5eed_u64);
    let sequences: usize = std::env::var("PANDARE_FLOAT_SEQUENCES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30_000);
    let (sequences, bitness) = if compat {
        (sequences / 2, 32)
    } else {
        (sequences, 64)
    };
    let mut r = Rng((seed ^ u64::from(bitness)) | 1);
    let (mut compared, mut beyond, mut faults) = (0, 0, 0);
    for _ in 0..sequences {
        let mut code = Vec::new();
        for _ in 0..1 + r.below(3) {
            code.extend(random_float_instruction(&mut r));
        }
        let mut decoder =
            iced_x86::Decoder::with_ip(bitness, &code, CODE, iced_x86::DecoderOptions::NONE);
        let mut usable = true;
        let mut total = 0;
        let mut needs_more = false;
        while decoder.can_decode() {
            let i = decoder.decode();
            if i.is_invalid() {
                break;
            }
            use iced_x86::Mnemonic as M;
            let features = i.cpuid_features();
            let float = features.iter().any(|f| {
                baseline(f)
                    && !matches!(
                        f,
                        iced_x86::CpuidFeature::INTEL8086 | iced_x86::CpuidFeature::CMOV
                    )
            });
            let memory_ok = !(0..i.op_count()).any(|n| i.op_kind(n) == iced_x86::OpKind::Memory)
                || (matches!(
                    i.memory_base(),
                    iced_x86::Register::RBX
                        | iced_x86::Register::RSI
                        | iced_x86::Register::RDI
                        | iced_x86::Register::EBX
                        | iced_x86::Register::ESI
                        | iced_x86::Register::EDI
                ) && i.memory_index() == iced_x86::Register::None
                    // The child's FS/GS bases are its thread's, not the emulator's 0.
                    && !matches!(
                        i.memory_segment(),
                        iced_x86::Register::FS | iced_x86::Register::GS
                    ));
            if !float
                || !memory_ok
                || i.flow_control() != iced_x86::FlowControl::Next
                || matches!(
                    i.mnemonic(),
                    // Results within 1 ulp, and images holding FIP/FDP/FOP: directed tests.
                    M::F2xm1
                        | M::Fyl2x
                        | M::Fyl2xp1
                        | M::Fptan
                        | M::Fpatan
                        | M::Fsin
                        | M::Fcos
                        | M::Fsincos
                        | M::Prefetchnta
                        | M::Prefetcht0
                        | M::Prefetcht1
                        | M::Prefetcht2
                        | M::Maskmovq
                        | M::Maskmovdqu
                )
            {
                usable = false;
            }
            needs_more |= features.iter().any(|f| !baseline(f));
            total += i.len();
        }
        if !usable || total != code.len() {
            continue;
        }
        let input = random_input(
            &mut r,
            Shape {
                depth: None,
                modest: false,
                misalign: true,
            },
        );
        let mut n = native(&code, &input, compat);
        let mut e = emulated(&code, &input, compat);
        if compat {
            low_halves(&mut n);
            low_halves(&mut e);
        }
        if e == Err(libc::SIGILL) && n != Err(libc::SIGILL) {
            assert!(
                needs_more,
                "the host ran {code:02x?} ({}) but the emulator raised #UD on a baseline x87/MMX/SSE/SSE2 instruction",
                mnemonics_in(&code, bitness)
            );
            beyond += 1;
            continue;
        }
        if e.is_err() {
            faults += 1;
        }
        let c = Case {
            name: mnemonics_in(&code, bitness),
            code: code.clone(),
            shape: ANY,
            approx: false,
        };
        if let Err(report) = compare(&c, &input, &n, &e) {
            panic!("random sequence diverged:\n{report}");
        }
        compared += 1;
    }
    eprintln!(
        "random float sequences ({bitness}-bit code): {compared} compared ({faults} faulting alike), {beyond} needing SSE3 or later skipped"
    );
    assert!(
        compared > sequences / 10,
        "too few usable sequences: {compared}"
    );
}

#[test]
fn compatibility_mode_matches_host() {
    // 32-bit code under a 64-bit kernel, as i386 programs run: legacy FXSAVE/FNSTENV layouts,
    // XMM0–7 only, 32-bit addressing.
    let mut cases = Vec::new();
    for (name, prefix, op) in [
        ("addsd", &[0xf2u8][..], 0x58u8),
        ("mulps", &[][..], 0x59),
        ("divpd", &[0x66][..], 0x5e),
        ("sqrtss", &[0xf3][..], 0x51),
        ("cvtsd2ss", &[0xf2][..], 0x5a),
        ("cvttsd2si", &[0xf2][..], 0x2c),
        ("cvtsi2sd", &[0xf2][..], 0x2a),
        ("ucomisd", &[0x66][..], 0x2e),
        ("movaps", &[][..], 0x28),
        ("movdqu", &[0xf3][..], 0x6f),
        ("movdqa", &[0x66][..], 0x7f),
        ("movq", &[0xf3][..], 0x7e),
        ("pcmpeqb", &[0x66][..], 0x74),
        ("paddd", &[][..], 0xfe),
        ("punpcklbw", &[0x66][..], 0x60),
    ] {
        both(&mut cases, name, prefix, op, None);
    }
    for (name, code) in [
        ("fld", vec![0xdd, 0x03]),
        ("fadd", vec![0xd8, 0x03]),
        ("fistp", vec![0xdf, 0x1b]),
        ("fstp", vec![0xdb, 0x3b]),
        ("fcomi", vec![0xdb, 0xf2]),
        ("fnstsw", vec![0xdf, 0xe0]),
        ("emms", vec![0x0f, 0x77]),
        ("pmovmskb", vec![0x66, 0x0f, 0xd7, 0xca]),
        ("movd", vec![0x66, 0x0f, 0x7e, 0xca]),
        ("stmxcsr", vec![0x0f, 0xae, 0x1b]),
    ] {
        let mut c = case(name, code);
        c.shape.misalign = false;
        cases.push(c);
    }
    for (name, code) in [
        ("fnstenv", vec![0xd9, 0x33]),
        ("fxsave", vec![0x0f, 0xae, 0x03]),
        ("fxsave fxrstor", vec![0x0f, 0xae, 0x03, 0x0f, 0xae, 0x0b]),
    ] {
        cases.push(case(name, code));
    }
    let n = run_in(&cases, 25, 0x3232_f10a, true);
    eprintln!("compatibility mode: {n} differential cases");
}
