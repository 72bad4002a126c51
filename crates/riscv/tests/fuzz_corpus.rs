//! The fuzz targets' logic ([`pandare_riscv::fuzzing`]) as ordinary tests: over the
//! committed seed corpus in `fuzz/corpus/`, every compressed halfword, random instruction
//! words and random bare-metal programs. None of it may panic.
//!
//! Bare-metal corpus programs built from `fuzz/corpus-src/bare_metal/*.S` also state how
//! they must end (`# expect: power-off`, `failure N` or `stuck`), which is checked too.
//! `PANDARE_FUZZ_SEED`, `PANDARE_FUZZ_WORDS` and `PANDARE_FUZZ_PROGRAMS` make the random
//! tests longer or different when run by hand.

use std::path::{Path, PathBuf};

use pandare_core::{Exit, ShutdownKind};
use pandare_riscv::fuzzing::{
    check_word, decode_words, run_bare_metal_with, BareMetalRun, BARE_METAL_SLICE,
    BARE_METAL_SLICES,
};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `fuzz/corpus/<target>`, sorted, with their contents.
fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = fuzz_dir().join("corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect()
}

/// Runs `f` on `data`, naming the corpus file if it panics.
fn named<T>(path: &Path, f: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    std::panic::catch_unwind(f).unwrap_or_else(|_| panic!("{} panicked", path.display()))
}

#[test]
fn decode_corpus() {
    let files = corpus("decode");
    assert!(
        files.len() >= 20,
        "fuzz/corpus/decode has {} files",
        files.len()
    );
    for (path, data) in files {
        named(&path, || decode_words(&data));
    }
}

/// How a corpus program says it must end: the `# expect:` line of its source, if any.
fn expectation(binary: &Path) -> Option<String> {
    let name = binary.file_stem()?.to_str()?;
    let source = fuzz_dir().join(format!("corpus-src/bare_metal/{name}.S"));
    let text = std::fs::read_to_string(source).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("# expect: "))
        .map(str::to_string)
}

fn check_expectation(path: &Path, expected: &str, run: &BareMetalRun) {
    let ok = match expected.split_whitespace().collect::<Vec<_>>()[..] {
        ["power-off"] => run.exit == Some(Exit::Shutdown(ShutdownKind::PowerOff)),
        ["failure", code] => {
            run.exit == Some(Exit::Shutdown(ShutdownKind::Failure(code.parse().unwrap())))
        }
        // Stuck in a trap loop: nothing retires, yet virtual time passes to the end.
        ["stuck"] => {
            run.exit == Some(Exit::BudgetExhausted)
                && run.instructions < 100
                && run.now == u64::from(BARE_METAL_SLICES) * BARE_METAL_SLICE
        }
        _ => panic!("{}: unknown expectation {expected:?}", path.display()),
    };
    assert!(
        ok,
        "{} should end with {expected:?}: {:?} after {} instructions at pc {:#x}, console {:?}",
        path.display(),
        run.exit,
        run.instructions,
        run.pc,
        String::from_utf8_lossy(&run.console)
    );
}

#[test]
fn bare_metal_corpus() {
    let files = corpus("bare_metal");
    assert!(
        files.len() >= 10,
        "fuzz/corpus/bare_metal has {} files",
        files.len()
    );
    let mut checked = 0;
    for (path, data) in files {
        let run = named(&path, || {
            run_bare_metal_with(&data, BARE_METAL_SLICES, BARE_METAL_SLICE)
        });
        if let Some(expected) = expectation(&path) {
            check_expectation(&path, &expected, &run);
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "only {checked} corpus programs state how they end"
    );
}

/// A fixed-seed xorshift64 generator.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn every_compressed_halfword() {
    for half in 0..=u16::MAX {
        if half & 3 != 3 {
            check_word(u32::from(half), 0x8000_0000);
        }
    }
}

#[test]
fn random_words() {
    let mut rng = XorShift(knob("SEED", 0x9e37_79b9_7f4a_7c15) | 1);
    let mut bytes = Vec::with_capacity(4096);
    let mut words = 0;
    while words < knob("WORDS", 200_000) {
        bytes.clear();
        for _ in 0..1024 {
            bytes.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        }
        decode_words(&bytes);
        words += 1024;
    }
}

// ---------------------------------------------------------------------------
// Random bare-metal programs

const RAM_BASE: u64 = 0x8000_0000;
/// Where a program's Sv39 root page table goes (1 MiB into RAM, clear of the program).
const PAGE_TABLE: u64 = RAM_BASE + 0x10_0000;

/// Integer registers holding interesting addresses for the whole program (bodies never
/// write them): RAM, the last bytes of a page, the UART, the CLINT, the PLIC, the test
/// finisher (with an offset so plain stores do not stop the machine), and unmapped space.
const ADDRESS_REGISTERS: [(u32, u64); 7] = [
    (1, RAM_BASE + 0x8000),
    (2, RAM_BASE + 0x9ffc),
    (3, 0x1000_0000),
    (4, 0x200_4000),
    (5, 0xc20_1000),
    (6, 0x10_0008),
    (7, 0x4000_0000),
];

/// A bare-metal program under construction, as 32-bit words and halfwords.
#[derive(Default)]
struct Program {
    bytes: Vec<u8>,
}

#[allow(clippy::too_many_arguments)]
impl Program {
    fn word(&mut self, word: u32) {
        self.bytes.extend_from_slice(&word.to_le_bytes());
    }
    fn half(&mut self, half: u16) {
        self.bytes.extend_from_slice(&half.to_le_bytes());
    }
    fn pc(&self) -> u64 {
        RAM_BASE + self.bytes.len() as u64
    }
    fn r(&mut self, opcode: u32, rd: u32, f3: u32, rs1: u32, rs2: u32, f7: u32) {
        self.word(f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode);
    }
    fn i(&mut self, opcode: u32, rd: u32, f3: u32, rs1: u32, imm: i32) {
        self.word((imm as u32 & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode);
    }
    fn s(&mut self, opcode: u32, f3: u32, rs1: u32, rs2: u32, imm: i32) {
        let imm = imm as u32;
        self.word(
            (imm >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (imm & 31) << 7 | opcode,
        );
    }
    fn b(&mut self, f3: u32, rs1: u32, rs2: u32, imm: i32) {
        let imm = imm as u32;
        self.word(
            (imm >> 12 & 1) << 31
                | (imm >> 5 & 0x3f) << 25
                | rs2 << 20
                | rs1 << 15
                | f3 << 12
                | (imm >> 1 & 0xf) << 8
                | (imm >> 11 & 1) << 7
                | 0x63,
        );
    }
    fn jal(&mut self, rd: u32, imm: i32) {
        let imm = imm as u32;
        self.word(
            (imm >> 20 & 1) << 31
                | (imm >> 1 & 0x3ff) << 21
                | (imm >> 11 & 1) << 20
                | (imm >> 12 & 0xff) << 12
                | rd << 7
                | 0x6f,
        );
    }
    /// `li rd, value`, the long way (17 instructions).
    fn li(&mut self, rd: u32, value: u64) {
        self.i(0x13, rd, 0, 0, 0);
        for byte in value.to_be_bytes() {
            self.i(0x13, rd, 1, rd, 8);
            self.i(0x13, rd, 6, rd, i32::from(byte));
        }
    }
    fn csrw(&mut self, csr: u32, rs1: u32) {
        self.i(0x73, 0, 1, rs1, csr as i32);
    }
    fn csrs(&mut self, csr: u32, rs1: u32) {
        self.i(0x73, 0, 2, rs1, csr as i32);
    }
    fn csrr(&mut self, rd: u32, csr: u32) {
        self.i(0x73, rd, 2, 0, csr as i32);
    }
    /// `li t, value` into x31 and `csrw csr, x31`.
    fn set_csr(&mut self, csr: u32, value: u64) {
        self.li(31, value);
        self.csrw(csr, 31);
    }
    fn sd(&mut self, base: u32, rs2: u32, imm: i32) {
        self.s(0x23, 3, base, rs2, imm);
    }
}

/// CSR numbers worth aiming at: every implemented one, some that are not.
const CSRS: &[u32] = &[
    0x001, 0x002, 0x003, 0xc00, 0xc01, 0xc02, 0xc03, 0xc1f, 0x100, 0x104, 0x105, 0x106, 0x10a,
    0x140, 0x141, 0x142, 0x143, 0x144, 0x180, 0xf11, 0xf12, 0xf13, 0xf14, 0xf15, 0x300, 0x301,
    0x302, 0x303, 0x304, 0x305, 0x306, 0x30a, 0x320, 0x340, 0x341, 0x342, 0x343, 0x344, 0x3a0,
    0x3a2, 0x3b0, 0x3bf, 0xb00, 0xb02, 0xb03, 0xb1f, 0x323, 0x33f, 0x7b0, 0x5a8, 0xfff,
];

/// Registers bodies may write (x8..x30): x1..x7 keep their addresses, x31 is scratch.
fn body_register(rng: &mut XorShift) -> u32 {
    8 + rng.below(23) as u32
}

/// Any register, as a source.
fn source_register(rng: &mut XorShift) -> u32 {
    rng.below(32) as u32
}

/// One random, mostly well-formed instruction aimed at the interesting parts of the CPU.
fn random_instruction(program: &mut Program, rng: &mut XorShift) {
    let rd = body_register(rng);
    let rs1 = source_register(rng);
    let rs2 = source_register(rng);
    let base = 1 + rng.below(7) as u32;
    let small = rng.below(64) as i32 - 32;
    match rng.below(16) {
        0 => program.word(rng.next() as u32),
        1 => {
            // Any compressed instruction (it may clobber the address registers).
            let half = rng.next() as u16;
            program.half(if half & 3 == 3 { half & !1 } else { half });
        }
        2 => {
            let opcode = [0x13, 0x1b, 0x33, 0x3b][rng.below(4) as usize];
            let f7 = [0, 1, 0x20][rng.below(3) as usize];
            program.r(opcode, rd, rng.below(8) as u32, rs1, rs2, f7);
        }
        3 => program.i(0x03, rd, rng.below(7) as u32, base, small),
        4 => program.s(0x23, rng.below(4) as u32, base, rs2, small),
        5 => program.i(
            0x07,
            rng.below(32) as u32,
            2 + rng.below(2) as u32,
            base,
            small,
        ),
        6 => program.s(
            0x27,
            2 + rng.below(2) as u32,
            base,
            rng.below(32) as u32,
            small,
        ),
        7 => {
            let f5 = [
                0x00, 0x01, 0x02, 0x03, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c,
            ];
            let f5 = f5[rng.below(f5.len() as u64) as usize];
            let f7 = f5 << 2 | rng.below(4) as u32;
            let rs2 = if f5 == 2 { 0 } else { rs2 };
            program.r(0x2f, rd, 2 + rng.below(2) as u32, base, rs2, f7);
        }
        8 | 9 => {
            let csr = CSRS[rng.below(CSRS.len() as u64) as usize];
            let f3 = [1, 2, 3, 5, 6, 7][rng.below(6) as usize];
            let rd = if rng.below(2) == 0 { 0 } else { rd };
            program.i(0x73, rd, f3, rs1, csr as i32);
        }
        10 => {
            let system = [
                0x0000_0073, // ecall
                0x0010_0073, // ebreak
                0x3020_0073, // mret
                0x1020_0073, // sret
                0x1050_0073, // wfi
                0x1200_0073, // sfence.vma
                0x0ff0_000f, // fence
                0x0000_100f, // fence.i
            ];
            program.word(system[rng.below(system.len() as u64) as usize]);
        }
        11 => {
            let fmt = rng.below(2) as u32;
            let f5 = [
                0x00, 0x01, 0x02, 0x03, 0x0b, 0x04, 0x05, 0x08, 0x14, 0x18, 0x1a, 0x1c, 0x1e,
            ];
            let f5 = f5[rng.below(f5.len() as u64) as usize];
            let rs2 = match f5 {
                0x0b | 0x1c | 0x1e => 0,
                0x08 => 1 - fmt,
                0x18 | 0x1a => rng.below(4) as u32,
                _ => rs2,
            };
            program.r(0x53, rd, rng.below(8) as u32, rs1, rs2, f5 << 2 | fmt);
        }
        12 => {
            let opcode = [0x43, 0x47, 0x4b, 0x4f][rng.below(4) as usize];
            let rs3 = rng.below(32) as u32;
            program.r(
                opcode,
                rd,
                rng.below(8) as u32,
                rs1,
                rs2,
                rs3 << 2 | rng.below(2) as u32,
            );
        }
        13 => program.b(
            rng.below(8) as u32,
            rs1,
            rs2,
            (rng.below(16) as i32 - 8) * 4,
        ),
        14 => match rng.below(3) {
            0 => program.jal(0, (rng.below(16) as i32 - 4) * 4),
            1 => program.i(0x67, rd, 0, base, small),
            _ => program.word(rng.next() as u32 & 0xffff_f000 | rd << 7 | 0x17),
        },
        _ => program.i(0x13, rd, rng.below(8) as u32, rs1, small),
    }
}

/// A random program: a prologue that sets up addresses, trap handlers, interrupts and
/// possibly paging and a lower privilege, then random instructions.
fn random_program(rng: &mut XorShift) -> Vec<u8> {
    let mut program = Program::default();
    if rng.below(10) == 0 {
        // Plain random bytes.
        let len = 2 + rng.below(256) as usize;
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    for (register, address) in ADDRESS_REGISTERS {
        program.li(register, address);
    }
    // Jump over the two trap handlers; their addresses are known from here.
    let handlers = program.pc() + 4;
    program.jal(0, 4 + 16 + 16);
    // M-mode handler: skip 4 bytes past mepc and return.
    program.csrr(31, 0x341);
    program.i(0x13, 31, 0, 31, 4);
    program.csrw(0x341, 31);
    program.word(0x3020_0073);
    // S-mode handler: the same with sepc and sret.
    program.csrr(31, 0x141);
    program.i(0x13, 31, 0, 31, 4);
    program.csrw(0x141, 31);
    program.word(0x1020_0073);
    if rng.below(8) != 0 {
        let vectored = rng.below(4) == 0;
        program.set_csr(0x305, handlers | u64::from(vectored));
        program.set_csr(0x105, handlers + 16);
    }
    if rng.below(2) == 0 {
        program.set_csr(0x302, rng.next() & 0xb3ff);
        program.set_csr(0x303, rng.next() & 0x222);
    }
    if rng.below(4) != 0 {
        program.set_csr(0x300, 1 << 13); // FS initial
    }
    if rng.below(2) == 0 {
        program.set_csr(0x304, rng.next() & 0xaaa);
        if rng.below(2) == 0 {
            program.li(31, rng.below(3000)); // mtimecmp soon
            program.sd(4, 31, 0);
        }
        if rng.below(2) == 0 {
            program.li(31, 1 << 3 | 1 << 1); // MIE, SIE
            program.csrs(0x300, 31);
        }
    }
    let privilege = rng.below(3);
    if privilege != 0 {
        // Drop to S (1) or U (2) mode, with Sv39 identity paging half the time.
        if rng.below(2) == 0 {
            let user = if privilege == 2 { 1 << 4 } else { 0 };
            let leaf = 0xcf | user; // V R W X A D (+U)
            program.li(30, PAGE_TABLE);
            program.li(31, leaf); // gigapage 0: devices
            program.sd(30, 31, 0);
            program.li(31, leaf | (RAM_BASE >> 12) << 10); // gigapage 2: RAM
            program.sd(30, 31, 16);
            program.set_csr(0x180, 8 << 60 | PAGE_TABLE >> 12);
            if rng.below(2) == 0 {
                program.li(31, 1 << 18); // SUM
                program.csrs(0x300, 31);
            }
        }
        let mpp = if privilege == 1 { 1 << 11 } else { 0 };
        program.li(31, 3 << 11);
        program.i(0x73, 0, 3, 31, 0x300); // csrc mstatus, MPP
        program.li(31, mpp);
        program.csrs(0x300, 31);
        let body = program.pc() + 17 * 4 + 4 + 4;
        program.set_csr(0x341, body);
        program.word(0x3020_0073); // mret
        assert_eq!(program.pc(), body);
    }
    for _ in 0..rng.below(64) {
        random_instruction(&mut program, rng);
    }
    if rng.below(4) == 0 {
        program.li(31, 0x5555); // power off through the test finisher
        program.s(0x23, 2, 6, 31, -8);
    }
    program.bytes
}

/// `PANDARE_FUZZ_<NAME>` from the environment, for longer runs by hand, else `default`.
fn knob(name: &str, default: u64) -> u64 {
    std::env::var(format!("PANDARE_FUZZ_{name}"))
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_programs() {
    let seed = knob("SEED", 0x2545_f491_4f6c_dd1d);
    let count = knob("PROGRAMS", 300);
    let mut rng = XorShift(seed | 1);
    let mut exits = std::collections::BTreeMap::new();
    for index in 0..count {
        let program = random_program(&mut rng);
        let run = std::panic::catch_unwind(|| run_bare_metal_with(&program, 4, 2_000))
            .unwrap_or_else(|_| {
                let path = std::env::temp_dir().join(format!("pandare-random-program-{index}.bin"));
                std::fs::write(&path, &program).unwrap();
                panic!(
                    "random program {index} panicked; saved as {}",
                    path.display()
                )
            });
        let exit = match run.exit {
            Some(Exit::BudgetExhausted) => "budget",
            Some(Exit::Idle) => "idle",
            Some(Exit::Shutdown(_)) => "shutdown",
            Some(Exit::UnhandledTrap { .. }) => "unhandled trap",
            None => "did not load",
        };
        *exits.entry(exit).or_insert(0) += 1;
    }
    eprintln!("random program exits: {exits:?}");
}
