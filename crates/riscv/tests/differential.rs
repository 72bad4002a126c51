//! Differential tests against QEMU: small self-checking bare-metal programs
//! (`tests/programs/*.S`) run on `qemu-system-riscv64` and on pandare's virt machine, and
//! their console output and exit status must be identical.
//!
//! The programs are assembled at test time with Debian's `riscv64-linux-gnu` binutils and
//! linked at 0x80000000 (`tests/programs/link.ld`); the ELF goes to QEMU (`-bios none
//! -kernel`), the raw binary to [`Virt::new_bare_metal`]. When the outputs differ,
//! QEMU runs again with a per-instruction log and pandare is stepped one instruction at a
//! time beside it, and the test reports the first instruction after which the two
//! disagree (pc, integer and FP registers, the CSRs QEMU logs), with its disassembly.
//!
//! A program may carry header lines:
//! - `# qemu-cpu: prop=value,...` appended to QEMU's `-cpu` (e.g. `svadu=true`);
//! - `# march: rv64g...` to assemble for another ISA string than `rv64gc_zicsr_zifencei`.
//!
//! Without QEMU or the cross binutils every test prints `SKIP: ...` (straight to the
//! terminal, past the test harness' capture) and returns; `scripts/install-test-tools.sh`
//! installs both.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pandare_core::{Exit, Machine, ShutdownKind};
use pandare_riscv::{disasm, Privilege, Virt, VirtConfig, VirtMachine};
// QEMU's CPU reduced to what pandare implements (see FACTS.md): the architecture
// description's, which the boot benchmark uses too.
use pandare_riscv::abi::QEMU_CPU;
use pandare_test_support::run_tool;

const RAM_BASE: u64 = 0x8000_0000;
const RAM_BYTES: u64 = 128 << 20;
const DEFAULT_MARCH: &str = "rv64gc_zicsr_zifencei";
/// Wall-clock limit for a plain QEMU run.
const QEMU_TIMEOUT: Duration = Duration::from_secs(20);
/// Wall-clock limit for the traced QEMU rerun (logging every instruction is slow).
const TRACE_TIMEOUT: Duration = Duration::from_secs(60);
/// Instructions pandare may retire before the run counts as hung.
const OUR_INSTRUCTION_LIMIT: u64 = 50_000_000;
/// Virtual time (instructions plus idle time) before the run counts as hung.
const OUR_TIME_LIMIT: u64 = 20_000_000_000;
/// Instructions compared in lockstep at most.
const MAX_TRACE_STEPS: u64 = 1_000_000;
/// QEMU's log is cut off at this size (about 2.8 KB per instruction).
const MAX_TRACE_BYTES: u64 = 3 << 30;
/// Instructions shown before the divergence.
const CONTEXT: usize = 12;

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ending {
    /// Test finisher 0x5555.
    Pass,
    /// Test finisher 0x3333 with this code.
    Fail(u32),
    /// No end within the limits.
    Hung,
    /// Anything else (QEMU error, unhandled trap, reboot...).
    Other(String),
}

// ---------------------------------------------------------------------------------------
// Tools and building

struct Tools {
    qemu: PathBuf,
    assembler: PathBuf,
    linker: PathBuf,
    objcopy: PathBuf,
}

fn tools() -> Result<Tools, String> {
    let find = pandare_test_support::tool;
    Ok(Tools {
        qemu: find(pandare_riscv::DESCRIPTION.qemu.binary)?,
        assembler: find("riscv64-linux-gnu-as")?,
        linker: find("riscv64-linux-gnu-ld")?,
        objcopy: find("riscv64-linux-gnu-objcopy")?,
    })
}

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

struct Program {
    dir: PathBuf,
    elf: PathBuf,
    image: Vec<u8>,
    qemu_cpu: String,
    /// Known QEMU deviations from the spec: (QEMU's text, the specified text).
    qemu_fixes: Vec<(String, String)>,
}

/// The values of the `# key: value` header lines.
fn headers<'a>(source: &'a str, key: &'a str) -> impl Iterator<Item = &'a str> {
    source.lines().filter_map(move |line| {
        line.trim()
            .strip_prefix('#')
            .map(str::trim)
            .and_then(|rest| rest.strip_prefix(key))
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

fn header<'a>(source: &'a str, key: &'a str) -> Option<&'a str> {
    headers(source, key).next()
}

/// Assembles and links `programs/<name>.S`, or `generated` (written to the build
/// directory as `<name>.S`) when given.
fn build(tools: &Tools, name: &str, generated: Option<&str>) -> Result<Program, String> {
    let dir = std::env::temp_dir()
        .join(format!("pandare-differential-{}", std::process::id()))
        .join(name);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let source_path = match generated {
        Some(text) => {
            let path = dir.join(format!("{name}.S"));
            fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            path
        }
        None => programs_dir().join(format!("{name}.S")),
    };
    let source = fs::read_to_string(&source_path)
        .map_err(|e| format!("cannot read {}: {e}", source_path.display()))?;
    let object = dir.join(format!("{name}.o"));
    let elf = dir.join(format!("{name}.elf"));
    let binary = dir.join(format!("{name}.bin"));
    let march = header(&source, "march").unwrap_or(DEFAULT_MARCH);
    run_tool(
        Command::new(&tools.assembler)
            .arg(format!("-march={march}"))
            .arg("-mabi=lp64d")
            // Linker relaxation is quadratic: generated programs would take minutes.
            .arg("-mno-relax")
            .arg("-I")
            .arg(programs_dir())
            .arg("-o")
            .arg(&object)
            .arg(&source_path),
    )?;
    run_tool(
        Command::new(&tools.linker)
            .args(["--no-warn-rwx-segments", "--no-relax"])
            .arg("-T")
            .arg(programs_dir().join("link.ld"))
            .arg("-o")
            .arg(&elf)
            .arg(&object),
    )?;
    run_tool(
        Command::new(&tools.objcopy)
            .args(["-O", "binary"])
            .arg(&elf)
            .arg(&binary),
    )?;
    let image = fs::read(&binary).map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
    let qemu_cpu = match header(&source, "qemu-cpu") {
        Some(extra) => format!("{QEMU_CPU},{extra}"),
        None => QEMU_CPU.to_string(),
    };
    let qemu_fixes = headers(&source, "qemu-fix")
        .map(|fix| {
            let (from, to) = fix
                .split_once(" => ")
                .ok_or_else(|| format!("{name}: `# qemu-fix: {fix}` needs `OLD => NEW`"))?;
            Ok((from.to_string(), to.to_string()))
        })
        .collect::<Result<_, String>>()?;
    Ok(Program {
        qemu_fixes,
        dir,
        elf,
        image,
        qemu_cpu,
    })
}

// ---------------------------------------------------------------------------------------
// Running

struct Run {
    output: Vec<u8>,
    ending: Ending,
    /// Wall time.
    elapsed: Duration,
}

/// Runs QEMU for at most `timeout`; with `log`, also stops it once that file grows past
/// the size given.
fn run_qemu(
    tools: &Tools,
    program: &Program,
    extra: &[&str],
    timeout: Duration,
    log: Option<(&Path, u64)>,
) -> Run {
    let start = Instant::now();
    let mut child = match Command::new(&tools.qemu)
        .args(["-M", "virt", "-m", "128M", "-bios", "none", "-nographic"])
        .arg("-cpu")
        .arg(&program.qemu_cpu)
        .arg("-kernel")
        .arg(&program.elf)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return Run {
                output: Vec::new(),
                ending: Ending::Other(format!("cannot start QEMU: {e}")),
                elapsed: start.elapsed(),
            }
        }
    };
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stdout.read_to_end(&mut bytes);
        bytes
    });
    let err_reader = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stderr.read_to_end(&mut bytes);
        bytes
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None)
                if start.elapsed() > timeout
                    || log.is_some_and(|(path, limit)| {
                        fs::metadata(path).is_ok_and(|m| m.len() > limit)
                    }) =>
            {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => panic!("waiting for QEMU: {e}"),
        }
    };
    let output = out_reader.join().unwrap_or_default();
    let errors = String::from_utf8_lossy(&err_reader.join().unwrap_or_default()).into_owned();
    let ending = match status {
        None => Ending::Hung,
        Some(_) if errors.contains("qemu-system-riscv64:") => {
            Ending::Other(format!("QEMU error: {}", errors.trim()))
        }
        Some(status) => match status.code() {
            Some(0) => Ending::Pass,
            Some(code) => Ending::Fail(code as u32),
            None => Ending::Other(format!("QEMU died: {status}")),
        },
    };
    Run {
        output,
        ending,
        elapsed: start.elapsed(),
    }
}

fn new_machine(program: &Program) -> VirtMachine {
    Virt::new_bare_metal(
        VirtConfig {
            ram_bytes: RAM_BYTES,
            ..Default::default()
        },
        &program.image,
    )
    .expect("the program fits in RAM")
}

/// What a [`Machine::run`] exit means for a test run; `None` to carry on.
fn ending_of(machine: &mut VirtMachine, exit: Exit) -> Option<Ending> {
    match exit {
        Exit::BudgetExhausted => None,
        Exit::Idle => match machine.next_event() {
            Some(time) => {
                machine.skip_to(time);
                None
            }
            None => Some(Ending::Other(format!(
                "WFI with no interrupt pending and no timer armed (pc {:#x})",
                machine.cpu.hart.pc
            ))),
        },
        Exit::Shutdown(ShutdownKind::PowerOff) => Some(Ending::Pass),
        Exit::Shutdown(ShutdownKind::Failure(code)) => Some(Ending::Fail(code)),
        Exit::Shutdown(ShutdownKind::Reboot) => Some(Ending::Other("reboot".into())),
        Exit::UnhandledTrap { cause, pc, value } => Some(Ending::Other(format!(
            "unhandled trap: cause {cause:#x} at pc {pc:#x}, value {value:#x}"
        ))),
    }
}

fn run_ours(program: &Program) -> Run {
    let start = Instant::now();
    let mut machine = new_machine(program);
    let mut output = Vec::new();
    let ending = loop {
        if machine.instruction_count() >= OUR_INSTRUCTION_LIMIT || machine.now() >= OUR_TIME_LIMIT {
            // Say where: the stuck loop is usually the first clue.
            let _ = writeln!(
                std::io::stdout(),
                "pandare hung at {} after {} instructions",
                describe(&machine, machine.cpu.hart.pc),
                machine.instruction_count()
            );
            break Ending::Hung;
        }
        let exit = machine.run(1_000_000);
        output.extend(machine.take_console_output());
        if let Some(ending) = ending_of(&mut machine, exit) {
            break ending;
        }
    };
    output.extend(machine.take_console_output());
    Run {
        output,
        ending,
        elapsed: start.elapsed(),
    }
}

// ---------------------------------------------------------------------------------------
// QEMU's instruction log

/// One `-d exec,cpu,fpu` entry: the state before an instruction runs.
#[derive(Clone, Debug)]
struct State {
    pc: u64,
    x: [u64; 32],
    f: [u64; 32],
    /// (number, value) of the CSRs in the dump.
    csrs: Vec<(u16, u64)>,
    /// `epc` of the trap QEMU logged just before this entry (`-d int`).
    after_trap: Option<u64>,
}

/// CSRs in QEMU's dump that pandare also has, with the bits worth comparing.
fn csr_of_dump_name(name: &str) -> Option<(u16, u64)> {
    Some(match name {
        "mstatus" => (0x300, !0),
        // MTIP follows the wall clock in QEMU; MSIP/MEIP/SEIP come from devices.
        "mip" => (0x344, 0x22),
        "mie" => (0x304, !0),
        "mideleg" => (0x303, !0),
        "medeleg" => (0x302, !0),
        "mtvec" => (0x305, !0),
        "stvec" => (0x105, !0),
        "mepc" => (0x341, !0),
        "sepc" => (0x141, !0),
        "mcause" => (0x342, !0),
        "scause" => (0x142, !0),
        "mtval" => (0x343, !0),
        "stval" => (0x143, !0),
        "mscratch" => (0x340, !0),
        "sscratch" => (0x140, !0),
        "satp" => (0x180, !0),
        "fcsr" => (0x003, !0),
        _ => return None,
    })
}

fn csr_name(number: u16) -> &'static str {
    match number {
        0x300 => "mstatus",
        0x344 => "mip",
        0x304 => "mie",
        0x303 => "mideleg",
        0x302 => "medeleg",
        0x305 => "mtvec",
        0x105 => "stvec",
        0x341 => "mepc",
        0x141 => "sepc",
        0x342 => "mcause",
        0x142 => "scause",
        0x343 => "mtval",
        0x143 => "stval",
        0x340 => "mscratch",
        0x140 => "sscratch",
        0x180 => "satp",
        0x003 => "fcsr",
        _ => "csr",
    }
}

const ABI: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4",
    "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4",
    "t5", "t6",
];

struct TraceReader {
    lines: std::io::Lines<BufReader<fs::File>>,
    current: Option<State>,
    pending_trap: Option<u64>,
}

impl TraceReader {
    fn open(path: &Path) -> std::io::Result<TraceReader> {
        Ok(TraceReader {
            lines: BufReader::with_capacity(1 << 20, fs::File::open(path)?).lines(),
            current: None,
            pending_trap: None,
        })
    }

    fn hex(text: &str) -> u64 {
        u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap_or(0)
    }

    /// The next complete entry.
    fn next_state(&mut self) -> Option<State> {
        loop {
            let Some(Ok(line)) = self.lines.next() else {
                return self.current.take();
            };
            if line.starts_with("Trace ") {
                let next = State {
                    pc: 0,
                    x: [0; 32],
                    f: [0; 32],
                    csrs: Vec::new(),
                    after_trap: self.pending_trap.take(),
                };
                if let Some(done) = self.current.replace(next) {
                    return Some(done);
                }
                continue;
            }
            if let Some(rest) = line.strip_prefix("riscv_cpu_do_interrupt:") {
                // "hart:0, async:1, cause:..., epc:0x..., tval:0x..., desc=..."
                if let Some(epc) = rest
                    .split(',')
                    .find_map(|field| field.trim().strip_prefix("epc:"))
                {
                    self.pending_trap = Some(Self::hex(epc));
                }
                continue;
            }
            let Some(state) = self.current.as_mut() else {
                continue;
            };
            let mut words = line.split_whitespace();
            while let (Some(name), Some(value)) = (words.next(), words.next()) {
                let value = Self::hex(value);
                if name == "pc" {
                    state.pc = value;
                } else if let Some(index) = name
                    .strip_prefix('x')
                    .and_then(|rest| rest.split('/').next())
                    .and_then(|n| n.parse::<usize>().ok())
                {
                    state.x[index & 31] = value;
                } else if let Some(index) = name
                    .strip_prefix('f')
                    .and_then(|rest| rest.split_once('/'))
                    .and_then(|(n, _)| n.parse::<usize>().ok())
                {
                    state.f[index & 31] = value;
                } else if let Some((number, _)) = csr_of_dump_name(name) {
                    state.csrs.push((number, value));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Lockstep comparison

/// Where instruction fetch at `pc` goes: a read-only Sv39/Sv48 walk of the page tables
/// in RAM below M-mode (no permission checks: the report only wants the bytes).
fn fetch_address(machine: &VirtMachine, pc: u64) -> Option<u64> {
    let hart = &machine.cpu.hart;
    let satp = hart.satp();
    let levels = match satp >> 60 {
        _ if hart.privilege == Privilege::Machine => return Some(pc),
        0 => return Some(pc),
        8 => 3,
        9 => 4,
        _ => return None,
    };
    let mut table = (satp & ((1 << 44) - 1)) << 12;
    for level in (0..levels).rev() {
        let mut entry = [0u8; 8];
        let index = (pc >> (12 + 9 * level)) & 0x1ff;
        if !machine.bus.ram.read_bytes(table + index * 8, &mut entry) {
            return None;
        }
        let pte = u64::from_le_bytes(entry);
        if pte & 1 == 0 {
            return None;
        }
        let ppn = (pte >> 10) & ((1 << 44) - 1);
        if pte & 0xa != 0 {
            let offset = pc & ((1 << (12 + 9 * level)) - 1);
            return Some((ppn << 12) + offset);
        }
        table = ppn << 12;
    }
    None
}

fn instruction_at(machine: &VirtMachine, pc: u64) -> Option<u32> {
    let address = fetch_address(machine, pc)?;
    let mut bytes = [0u8; 4];
    if (address & 0xfff) <= 0xffc && machine.bus.ram.read_bytes(address, &mut bytes) {
        return Some(u32::from_le_bytes(bytes));
    }
    let mut half = [0u8; 2];
    machine
        .bus
        .ram
        .read_bytes(address, &mut half)
        .then(|| u32::from(u16::from_le_bytes(half)))
}

fn describe(machine: &VirtMachine, pc: u64) -> String {
    match instruction_at(machine, pc) {
        Some(bits) => {
            let text = disasm::disassemble(bits, pc);
            if bits & 3 == 3 {
                format!("{pc:#x}: {bits:08x}  {text}")
            } else {
                format!("{pc:#x}: {:04x}      {text}", bits & 0xffff)
            }
        }
        None => format!("{pc:#x}: (not mapped to RAM)"),
    }
}

/// Differences between pandare's state and a QEMU entry.
fn differences(machine: &VirtMachine, state: &State, with_csrs: bool) -> Vec<String> {
    let hart = &machine.cpu.hart;
    let mut found = Vec::new();
    if hart.pc != state.pc {
        found.push(format!(
            "pc: qemu {:#018x} ours {:#018x}",
            state.pc, hart.pc
        ));
    }
    for (i, ((ours, qemu), name)) in hart.x.iter().zip(&state.x).zip(ABI).enumerate().skip(1) {
        if ours != qemu {
            found.push(format!("x{i}/{name}: qemu {qemu:#018x} ours {ours:#018x}"));
        }
    }
    for (i, (ours, qemu)) in hart.f.iter().zip(&state.f).enumerate() {
        if ours != qemu {
            found.push(format!("f{i}: qemu {qemu:#018x} ours {ours:#018x}"));
        }
    }
    if with_csrs {
        for &(number, value) in &state.csrs {
            let Some(ours) = hart.peek_csr(number) else {
                continue;
            };
            let mask = csr_of_dump_name(csr_name(number)).map_or(!0, |(_, mask)| mask);
            if (ours ^ value) & mask != 0 {
                found.push(format!(
                    "{}: qemu {value:#018x} ours {ours:#018x}",
                    csr_name(number)
                ));
            }
        }
    }
    found
}

/// Reruns both sides instruction by instruction and describes the first divergence.
fn first_divergence(tools: &Tools, program: &Program) -> String {
    let log = program.dir.join("qemu-trace.log");
    let _ = fs::remove_file(&log);
    let log_arg = log.display().to_string();
    let traced = run_qemu(
        tools,
        program,
        &[
            "-accel",
            "tcg,one-insn-per-tb=on",
            "-d",
            "exec,cpu,nochain,int,fpu",
            "-D",
            &log_arg,
        ],
        TRACE_TIMEOUT,
        Some((&log, MAX_TRACE_BYTES)),
    );
    let mut reader = match TraceReader::open(&log) {
        Ok(reader) => reader,
        Err(e) => return format!("no QEMU trace ({e}); traced run ended {:?}", traced.ending),
    };
    // Skip QEMU's reset vector.
    let first = loop {
        match reader.next_state() {
            Some(state) if state.pc >= RAM_BASE => break state,
            Some(_) => {}
            None => return "QEMU's trace never reached 0x80000000".to_string(),
        }
    };
    let mut machine = new_machine(program);
    // Start from QEMU's registers (its reset vector sets a0, a1, a2, t0).
    machine.cpu.hart.x[..32].copy_from_slice(&first.x);
    machine.cpu.hart.f = first.f;

    let mut history: VecDeque<(u64, String)> = VecDeque::new();
    let mut previous: Option<(u64, [u64; 32])> = None;
    let mut state = first;
    let mut index = 0u64;
    let mut ours_ended: Option<Ending> = None;
    let report = |history: &VecDeque<(u64, String)>, headline: String, details: &[String]| {
        let mut text = format!("{headline}\n  last instructions (pandare's view):\n");
        for (i, line) in history {
            let _ = writeln!(text, "    #{i:<8} {line}");
        }
        if !details.is_empty() {
            let _ = writeln!(text, "  differences after the last one:");
            for line in details {
                let _ = writeln!(text, "    {line}");
            }
        }
        text
    };
    loop {
        let with_csrs = state.after_trap.is_none();
        if let Some(epc) = state.after_trap {
            // The trap entry: pandare's step at a trapping instruction also runs the
            // handler's first instruction, so compare against the pc the trap left.
            state.pc = epc;
            if previous == Some((state.pc, state.x)) {
                // A synchronous exception: the entry before was the faulting instruction.
                match reader.next_state() {
                    Some(next) => {
                        state = next;
                        continue;
                    }
                    None => break,
                }
            }
        }
        if let Some(ending) = &ours_ended {
            return report(
                &history,
                format!(
                    "pandare ended ({ending:?}) after {index} instructions but QEMU went on at {:#x}",
                    state.pc
                ),
                &[],
            );
        }
        let diffs = differences(&machine, &state, with_csrs);
        if !diffs.is_empty() {
            let headline = match history.back() {
                Some((i, line)) => format!("first divergence after instruction #{i}: {line}"),
                None => "the states differ at the first instruction".to_string(),
            };
            return report(&history, headline, &diffs);
        }
        previous = Some((state.pc, state.x));
        if index >= MAX_TRACE_STEPS {
            return format!("no divergence in the first {MAX_TRACE_STEPS} instructions");
        }
        history.push_back((index, describe(&machine, machine.cpu.hart.pc)));
        if history.len() > CONTEXT {
            history.pop_front();
        }
        let exit = machine.run(1);
        let _ = machine.take_console_output();
        ours_ended = ending_of(&mut machine, exit);
        index += 1;
        match reader.next_state() {
            Some(next) => state = next,
            None => break,
        }
    }
    match ours_ended {
        Some(_) => format!(
            "no register divergence in {index} instructions: the difference is in memory or \
             device state (compare the console outputs above); QEMU's traced run ended {:?}",
            traced.ending
        ),
        None => report(
            &history,
            format!(
                "QEMU's trace ended ({:?}) after {index} instructions but pandare went on at {:#x}",
                traced.ending, machine.cpu.hart.pc
            ),
            &[],
        ),
    }
}

// ---------------------------------------------------------------------------------------
// The test driver

fn skip(reason: &str) {
    // Straight to the terminal: libtest captures print!/eprint! but not direct writes.
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// Index of the first line that differs between two outputs.
fn first_differing_line(qemu: &[u8], ours: &[u8]) -> Option<usize> {
    let qemu = show(qemu);
    let ours = show(ours);
    let a: Vec<&str> = qemu.lines().collect();
    let b: Vec<&str> = ours.lines().collect();
    (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i))
}

/// The first differing lines of two console outputs, with some context.
fn output_difference(qemu: &[u8], ours: &[u8]) -> String {
    let Some(first) = first_differing_line(qemu, ours) else {
        return "the console outputs are identical".to_string();
    };
    let (qemu, ours) = (show(qemu), show(ours));
    let a: Vec<&str> = qemu.lines().collect();
    let b: Vec<&str> = ours.lines().collect();
    let from = first.saturating_sub(4);
    let mut text = format!(
        "console outputs differ from line {} (QEMU {} lines, pandare {}):\n",
        first + 1,
        a.len(),
        b.len()
    );
    for (name, lines) in [("QEMU", &a), ("pandare", &b)] {
        let _ = writeln!(text, "  --- {name}");
        for (i, line) in lines.iter().enumerate().skip(from).take(first - from + 8) {
            let mark = if i == first { '>' } else { ' ' };
            let _ = writeln!(text, "  {mark}{:5} {line}", i + 1);
        }
    }
    text
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `programs/<name>.S` on QEMU and pandare and requires the same output and a PASS
/// ending.
fn differential(name: &str) {
    differential_program(name, None, &[]);
}

/// Like [`differential`] for a generated program; `notes[i]`, when present, describes what
/// output line `i` (from 0) checks and is shown when that line differs.
fn differential_program(name: &str, generated: Option<&str>, notes: &[String]) {
    let tools = match tools() {
        Ok(tools) => tools,
        Err(reason) => return skip(&format!("{name}: {reason}")),
    };
    let program = build(&tools, name, generated).unwrap_or_else(|e| panic!("building {name}: {e}"));
    let mut qemu = run_qemu(&tools, &program, &[], QEMU_TIMEOUT, None);
    if let Ending::Other(reason) = &qemu.ending {
        panic!("{name}: QEMU could not run the program: {reason}");
    }
    for (from, to) in &program.qemu_fixes {
        let text = show(&qemu.output);
        if text.contains(from.as_str()) {
            qemu.output = text.replace(from.as_str(), to).into_bytes();
        } else {
            println!("{name}: known QEMU deviation not seen (fixed in QEMU?): {from}");
        }
    }
    let ours = run_ours(&program);
    let same = qemu.output == ours.output && qemu.ending == ours.ending;
    if same && qemu.ending == Ending::Pass {
        if std::env::var_os("PANDARE_DIFF_KEEP").is_none() {
            let _ = fs::remove_dir_all(&program.dir);
        }
        if let Some(parent) = program.dir.parent() {
            let _ = fs::remove_dir(parent);
        }
        println!(
            "{name}: identical ({} bytes of output; QEMU {:?}, pandare {:?})",
            ours.output.len(),
            qemu.elapsed,
            ours.elapsed
        );
        return;
    }
    let mut message = format!("{name}: ");
    if same {
        let _ = writeln!(
            message,
            "QEMU and pandare agree, but the program's own checks failed ({:?})",
            qemu.ending
        );
    } else {
        let _ = writeln!(
            message,
            "pandare differs from QEMU (QEMU ended {:?}, pandare {:?})",
            qemu.ending, ours.ending
        );
    }
    let _ = fs::write(program.dir.join("qemu.out"), &qemu.output);
    let _ = fs::write(program.dir.join("pandare.out"), &ours.output);
    let _ = writeln!(message, "{}", output_difference(&qemu.output, &ours.output));
    if let Some(note) = first_differing_line(&qemu.output, &ours.output).and_then(|i| notes.get(i))
    {
        let _ = writeln!(message, "that line checks: {note}");
    }
    let both_hang = qemu.ending == Ending::Hung
        && ours.ending == Ending::Hung
        && (qemu.output.starts_with(&ours.output) || ours.output.starts_with(&qemu.output));
    if both_hang {
        let _ = writeln!(message, "the program hangs on both (no trace taken)");
    } else if !same {
        let _ = writeln!(message, "{}", first_divergence(&tools, &program));
    }
    if !program.qemu_fixes.is_empty() {
        let _ = writeln!(
            message,
            "(QEMU's output was corrected for known deviations: {:?})",
            program.qemu_fixes
        );
    }
    let _ = writeln!(
        message,
        "(build and trace files in {})",
        program.dir.display()
    );
    panic!("{message}");
}

macro_rules! differential_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                differential(stringify!($name));
            }
        )*
    };
}

differential_tests!(
    smoke,
    rv64i,
    loads_stores,
    rv64m,
    atomics,
    fp_single,
    fp_double,
    fp_special,
    fp_convert,
    fp_nanbox,
    compressed,
    zicsr,
    traps,
    interrupts,
    sv39,
    sv48,
    svadu,
    clint,
    plic,
);

// ---------------------------------------------------------------------------------------
// Generated programs: random operands through every F/D operation

/// xorshift64*: small, deterministic, good enough to pick test operands.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// What an FP operation reads and writes, for operand generation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FpShape {
    /// FP operands of this width (32 or 64), FP or integer result.
    Float(u32),
    /// Fused multiply-add of this width.
    Fused(u32),
    /// An integer operand converted or moved to FP.
    FromInt,
}

/// (assembly with fa0..fa2/a0 in and fa3/a1 out, operand shape)
const FP_OPS: &[(&str, FpShape)] = &[
    ("fadd.s fa3, fa0, fa1, dyn", FpShape::Float(32)),
    ("fsub.s fa3, fa0, fa1, dyn", FpShape::Float(32)),
    ("fmul.s fa3, fa0, fa1, dyn", FpShape::Float(32)),
    ("fdiv.s fa3, fa0, fa1, dyn", FpShape::Float(32)),
    ("fsqrt.s fa3, fa0, dyn", FpShape::Float(32)),
    ("fmin.s fa3, fa0, fa1", FpShape::Float(32)),
    ("fmax.s fa3, fa0, fa1", FpShape::Float(32)),
    ("fmadd.s fa3, fa0, fa1, fa2, dyn", FpShape::Fused(32)),
    ("fmsub.s fa3, fa0, fa1, fa2, dyn", FpShape::Fused(32)),
    ("fnmadd.s fa3, fa0, fa1, fa2, dyn", FpShape::Fused(32)),
    ("fnmsub.s fa3, fa0, fa1, fa2, dyn", FpShape::Fused(32)),
    ("fsgnj.s fa3, fa0, fa1", FpShape::Float(32)),
    ("fsgnjn.s fa3, fa0, fa1", FpShape::Float(32)),
    ("fsgnjx.s fa3, fa0, fa1", FpShape::Float(32)),
    ("feq.s a1, fa0, fa1", FpShape::Float(32)),
    ("flt.s a1, fa0, fa1", FpShape::Float(32)),
    ("fle.s a1, fa0, fa1", FpShape::Float(32)),
    ("fclass.s a1, fa0", FpShape::Float(32)),
    ("fcvt.w.s a1, fa0, dyn", FpShape::Float(32)),
    ("fcvt.wu.s a1, fa0, dyn", FpShape::Float(32)),
    ("fcvt.l.s a1, fa0, dyn", FpShape::Float(32)),
    ("fcvt.lu.s a1, fa0, dyn", FpShape::Float(32)),
    ("fcvt.s.w fa3, a0, dyn", FpShape::FromInt),
    ("fcvt.s.wu fa3, a0, dyn", FpShape::FromInt),
    ("fcvt.s.l fa3, a0, dyn", FpShape::FromInt),
    ("fcvt.s.lu fa3, a0, dyn", FpShape::FromInt),
    ("fcvt.s.d fa3, fa0, dyn", FpShape::Float(64)),
    ("fcvt.d.s fa3, fa0", FpShape::Float(32)),
    ("fmv.x.w a1, fa0", FpShape::Float(32)),
    ("fmv.w.x fa3, a0", FpShape::FromInt),
    ("fadd.d fa3, fa0, fa1, dyn", FpShape::Float(64)),
    ("fsub.d fa3, fa0, fa1, dyn", FpShape::Float(64)),
    ("fmul.d fa3, fa0, fa1, dyn", FpShape::Float(64)),
    ("fdiv.d fa3, fa0, fa1, dyn", FpShape::Float(64)),
    ("fsqrt.d fa3, fa0, dyn", FpShape::Float(64)),
    ("fmin.d fa3, fa0, fa1", FpShape::Float(64)),
    ("fmax.d fa3, fa0, fa1", FpShape::Float(64)),
    ("fmadd.d fa3, fa0, fa1, fa2, dyn", FpShape::Fused(64)),
    ("fmsub.d fa3, fa0, fa1, fa2, dyn", FpShape::Fused(64)),
    ("fnmadd.d fa3, fa0, fa1, fa2, dyn", FpShape::Fused(64)),
    ("fnmsub.d fa3, fa0, fa1, fa2, dyn", FpShape::Fused(64)),
    ("fsgnj.d fa3, fa0, fa1", FpShape::Float(64)),
    ("fsgnjn.d fa3, fa0, fa1", FpShape::Float(64)),
    ("fsgnjx.d fa3, fa0, fa1", FpShape::Float(64)),
    ("feq.d a1, fa0, fa1", FpShape::Float(64)),
    ("flt.d a1, fa0, fa1", FpShape::Float(64)),
    ("fle.d a1, fa0, fa1", FpShape::Float(64)),
    ("fclass.d a1, fa0", FpShape::Float(64)),
    ("fcvt.w.d a1, fa0, dyn", FpShape::Float(64)),
    ("fcvt.wu.d a1, fa0, dyn", FpShape::Float(64)),
    ("fcvt.l.d a1, fa0, dyn", FpShape::Float(64)),
    ("fcvt.lu.d a1, fa0, dyn", FpShape::Float(64)),
    ("fcvt.d.w fa3, a0", FpShape::FromInt),
    ("fcvt.d.wu fa3, a0", FpShape::FromInt),
    ("fcvt.d.l fa3, a0, dyn", FpShape::FromInt),
    ("fcvt.d.lu fa3, a0, dyn", FpShape::FromInt),
    ("fmv.x.d a1, fa0", FpShape::Float(64)),
    ("fmv.d.x fa3, a0", FpShape::FromInt),
];

const SINGLE_SPECIALS: &[u32] = &[
    0x0000_0000,
    0x8000_0000,
    0x0000_0001,
    0x8000_0001,
    0x007f_ffff,
    0x807f_ffff,
    0x0080_0000,
    0x8080_0000,
    0x3f80_0000,
    0xbf80_0000,
    0x7f7f_ffff,
    0xff7f_ffff,
    0x7f80_0000,
    0xff80_0000,
    0x7fc0_0000,
    0xffc0_0000,
    0x7f80_0001,
    0x7fbf_ffff,
    0x7fc1_2345,
    0x3f80_0001,
    0x3f7f_ffff,
    0x4f00_0000,
    0xcf00_0000,
    0x4f80_0000,
    0x5f00_0000,
    0xdf00_0000,
    0x5f80_0000,
    0x4eff_ffff,
    0x3f00_0000,
    0x3fc0_0000,
    0x4020_0000,
    0xbfc0_0000,
    0xcf00_0001,
    0x5eff_ffff,
    0x0040_0000,
];

const DOUBLE_SPECIALS: &[u64] = &[
    0x0000_0000_0000_0000,
    0x8000_0000_0000_0000,
    0x0000_0000_0000_0001,
    0x800f_ffff_ffff_ffff,
    0x0010_0000_0000_0000,
    0x3ff0_0000_0000_0000,
    0xbff0_0000_0000_0000,
    0x7fef_ffff_ffff_ffff,
    0xffef_ffff_ffff_ffff,
    0x7ff0_0000_0000_0000,
    0xfff0_0000_0000_0000,
    0x7ff8_0000_0000_0000,
    0xfff8_0000_0000_0000,
    0x7ff0_0000_0000_0001,
    0x7ff4_0000_0000_0000,
    0x3ff0_0000_0000_0001,
    0x3fef_ffff_ffff_ffff,
    0x41e0_0000_0000_0000,
    0xc1e0_0000_0000_0000,
    0x41df_ffff_ffe0_0000,
    0x41f0_0000_0000_0000,
    0x43e0_0000_0000_0000,
    0xc3e0_0000_0000_0000,
    0x43f0_0000_0000_0000,
    0x3fe0_0000_0000_0000,
    0x3ff8_0000_0000_0000,
    0x4004_0000_0000_0000,
    0x47ef_ffff_e000_0000,
    0x3690_0000_0000_0000,
    0x3810_0000_0000_0000,
];

const INT_SPECIALS: &[u64] = &[
    0,
    1,
    u64::MAX,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0xffff_ffff_8000_0000,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0x0020_0000_0000_0001,
    0x0000_0000_0100_0001,
    0x1234_5678_0000_0003,
];

fn random_single(rng: &mut Rng) -> u32 {
    match rng.below(10) {
        0..=3 => rng.pick(SINGLE_SPECIALS),
        4..=5 => rng.next() as u32,
        _ => {
            // Structured: any sign, an exponent near an edge or near 1, any fraction.
            let exponent = match rng.below(4) {
                0 => rng.below(4) as u32,
                1 => 0xfe - rng.below(4) as u32,
                2 => 0x7f - 30 + rng.below(60) as u32,
                _ => rng.below(256) as u32,
            };
            let fraction = match rng.below(3) {
                0 => rng.next() as u32 & 0x7f_ffff,
                1 => (rng.next() as u32 & 0x7f_ffff) >> rng.below(23),
                _ => 0x7f_ffff - (rng.below(4) as u32),
            };
            (rng.below(2) as u32) << 31 | exponent << 23 | fraction
        }
    }
}

fn random_double(rng: &mut Rng) -> u64 {
    match rng.below(10) {
        0..=3 => rng.pick(DOUBLE_SPECIALS),
        4..=5 => rng.next(),
        _ => {
            let exponent = match rng.below(4) {
                0 => rng.below(4),
                1 => 0x7fe - rng.below(4),
                2 => 0x3ff - 70 + rng.below(140),
                _ => rng.below(2048),
            };
            let fraction = match rng.below(3) {
                0 => rng.next() & ((1 << 52) - 1),
                1 => (rng.next() & ((1 << 52) - 1)) >> rng.below(52),
                _ => ((1 << 52) - 1) - rng.below(4),
            };
            rng.below(2) << 63 | exponent << 52 | fraction
        }
    }
}

/// A single in an FP register: NaN-boxed, except now and then.
fn boxed(rng: &mut Rng, bits: u32) -> u64 {
    if rng.below(40) == 0 {
        (rng.next() & 0xffff_fffe_0000_0000) | u64::from(bits)
    } else {
        0xffff_ffff_0000_0000 | u64::from(bits)
    }
}

fn random_int(rng: &mut Rng) -> u64 {
    match rng.below(4) {
        0 => rng.pick(INT_SPECIALS),
        1 => rng.next() >> rng.below(64),
        2 => (rng.next() as i64 >> rng.below(64)) as u64,
        _ => rng.next(),
    }
}

/// Operands (a, b, c, integer) for an operation of this shape.
fn fp_operands(rng: &mut Rng, shape: FpShape) -> [u64; 4] {
    let int = random_int(rng);
    match shape {
        FpShape::Float(32) | FpShape::Fused(32) => {
            let (a, b) = (random_single(rng), random_single(rng));
            let mut c = random_single(rng);
            if shape == FpShape::Fused(32) && rng.below(3) == 0 {
                // c close to -(a * b): the fused result is the tiny exact residual.
                let product = f64::from(f32::from_bits(a)) * f64::from(f32::from_bits(b));
                c = (-(product as f32)).to_bits() ^ (rng.below(2) as u32);
            }
            [boxed(rng, a), boxed(rng, b), boxed(rng, c), int]
        }
        FpShape::Float(_) | FpShape::Fused(_) => {
            let (a, b) = (random_double(rng), random_double(rng));
            let mut c = random_double(rng);
            if shape == FpShape::Fused(64) && rng.below(3) == 0 {
                let product = f64::from_bits(a) * f64::from_bits(b);
                c = (-product).to_bits() ^ rng.below(2);
            }
            // Singles read from a double's bits (fcvt.d.s) want boxing now and then.
            [a, b, c, int]
        }
        FpShape::FromInt => [random_double(rng), 0, 0, int],
    }
}

/// Builds a program running `count` random F/D operations, and a note per output line.
fn fp_random_program(seed: u64, count: usize) -> (String, Vec<String>) {
    let mut rng = Rng(seed | 1);
    let mut text = String::from(
        "# Generated: random operands through every F and D operation, one output line\n\
         # per vector: fa3 (raw), a1, fflags.\n\
         .include \"common.inc\"\n\
         START\n\
         \x20   FP_ON\n\
         \x20   la s0, vectors\n\
         \x20   la s1, vectors_end\n\
         1:  ld t0, 0(s0)\n\
         \x20   ld t1, 8(s0)\n\
         \x20   fsrm t1\n\
         \x20   fld fa0, 16(s0)\n\
         \x20   fld fa1, 24(s0)\n\
         \x20   fld fa2, 32(s0)\n\
         \x20   ld a0, 40(s0)\n\
         \x20   li a1, 0x5a5a5a5a5a5a5a5a\n\
         \x20   fmv.d.x fa3, a1\n\
         \x20   csrwi fflags, 0\n\
         \x20   la t2, ops\n\
         \x20   slli t0, t0, 3\n\
         \x20   add t2, t2, t0\n\
         \x20   jalr ra, 0(t2)\n\
         \x20   frflags s2\n\
         \x20   mv s3, a1\n\
         \x20   fmv.x.d a0, fa3\n\
         \x20   call _puthex\n\
         \x20   la a0, _space\n\
         \x20   call _puts\n\
         \x20   mv a0, s3\n\
         \x20   call _puthex\n\
         \x20   la a0, _space\n\
         \x20   call _puts\n\
         \x20   mv a0, s2\n\
         \x20   call _puthex_byte\n\
         \x20   call _newline\n\
         \x20   addi s0, s0, 48\n\
         \x20   bne s0, s1, 1b\n\
         \x20   EXIT\n\
         \x20   .option norvc\n\
         \x20   .balign 8\n\
         ops:\n",
    );
    for (op, _) in FP_OPS {
        let _ = writeln!(text, "    {op}\n    ret");
    }
    text.push_str("    .data\n    .balign 8\nvectors:\n");
    let mut notes = Vec::with_capacity(count);
    for _ in 0..count {
        let index = rng.below(FP_OPS.len() as u64) as usize;
        let (op, shape) = FP_OPS[index];
        let rm = rng.below(5);
        let [a, b, c, int] = fp_operands(&mut rng, shape);
        let _ = writeln!(
            text,
            "    .dword {index}, {rm}, {a:#x}, {b:#x}, {c:#x}, {int:#x}"
        );
        notes.push(format!(
            "{op} with frm={rm}, fa0={a:#018x} fa1={b:#018x} fa2={c:#018x} a0={int:#018x}"
        ));
    }
    text.push_str("vectors_end:\n");
    (text, notes)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Random F/D vectors. `PANDARE_DIFF_SEED` and `PANDARE_DIFF_VECTORS` change the seed and
/// the count (default 6000).
#[test]
fn fp_random() {
    let seed = env_number("PANDARE_DIFF_SEED", 0x5eed_f00d);
    let count = env_number("PANDARE_DIFF_VECTORS", 6000) as usize;
    let (text, notes) = fp_random_program(seed, count);
    differential_program("fp_random", Some(&text), &notes);
}

// ---------------------------------------------------------------------------------------
// Generated programs: random instruction words

/// Registers x8..x15 and sp point into the scratch buffer; everything else is random.
const POINTER_REGISTERS: [u32; 9] = [2, 8, 9, 10, 11, 12, 13, 14, 15];

fn r_type(opcode: u32, rd: u32, funct3: u32, rs1: u32, rs2: u32, funct7: u32) -> u32 {
    funct7 << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | opcode
}

fn i_type(opcode: u32, rd: u32, funct3: u32, rs1: u32, imm: u32) -> u32 {
    (imm & 0xfff) << 20 | rs1 << 15 | funct3 << 12 | rd << 7 | opcode
}

fn s_type(opcode: u32, funct3: u32, rs1: u32, rs2: u32, imm: u32) -> u32 {
    (imm >> 5 & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | funct3 << 12 | (imm & 0x1f) << 7 | opcode
}

/// A random 32-bit instruction that neither jumps away nor touches memory outside the
/// scratch buffer (control transfers go to the next instruction; SYSTEM is left out).
fn random_word(rng: &mut Rng) -> u32 {
    let reg = |rng: &mut Rng| rng.below(32) as u32;
    let pointer = |rng: &mut Rng| rng.pick(&POINTER_REGISTERS);
    let aligned_pointer = |rng: &mut Rng| rng.pick(&POINTER_REGISTERS[..8]);
    let small_imm = |rng: &mut Rng| (rng.below(512) as u32).wrapping_sub(256);
    let (rd, rs1, rs2) = (reg(rng), reg(rng), reg(rng));
    let funct3 = rng.below(8) as u32;
    match rng.below(20) {
        // Loads and stores, integer and FP.
        0 | 1 => i_type(0x03, rd, funct3, pointer(rng), small_imm(rng)),
        2 => i_type(0x07, rd, funct3, pointer(rng), small_imm(rng)),
        3 => s_type(0x23, funct3, pointer(rng), rs2, small_imm(rng)),
        4 => s_type(0x27, funct3, pointer(rng), rs2, small_imm(rng)),
        // Atomics (no SC: whether it succeeds after unrelated stores and traps is
        // implementation-defined).
        5 => {
            let funct5 = match rng.below(10) {
                0 => rng.below(32) as u32,
                1 => 0b00010, // lr
                _ => rng.pick(&[
                    0b00001, 0, 0b00100, 0b01100, 0b01000, 0b10000, 0b10100, 0b11000, 0b11100,
                ]),
            };
            let width = if rng.below(8) == 0 {
                funct3
            } else {
                2 + rng.below(2) as u32
            };
            let rs2 = if funct5 == 0b00010 && rng.below(4) != 0 {
                0
            } else {
                rs2
            };
            r_type(
                0x2f,
                rd,
                width,
                aligned_pointer(rng),
                rs2,
                funct5 << 2 | rng.below(4) as u32,
            )
        }
        // Integer computation.
        6 | 7 => {
            let imm = match funct3 {
                1 | 5 if rng.below(4) != 0 => rng.pick(&[0u32, 0x400]) | rng.below(64) as u32,
                _ => rng.next() as u32,
            };
            i_type(0x13, rd, funct3, rs1, imm)
        }
        8 => {
            let imm = match funct3 {
                1 | 5 if rng.below(4) != 0 => rng.pick(&[0u32, 0x400]) | rng.below(32) as u32,
                _ => rng.next() as u32,
            };
            i_type(0x1b, rd, funct3, rs1, imm)
        }
        9..=11 => {
            let opcode = rng.pick(&[0x33, 0x3b]);
            let funct7 = match rng.below(8) {
                0 => rng.below(128) as u32,
                1..=3 => 1,
                4 => 0x20,
                _ => 0,
            };
            r_type(opcode, rd, funct3, rs1, rs2, funct7)
        }
        12 => (rng.next() as u32 & !0xfff) | rd << 7 | rng.pick(&[0x37, 0x17]),
        // Floating point.
        13..=15 => {
            let funct7 = if rng.below(6) == 0 {
                rng.below(128) as u32
            } else {
                rng.pick(&[
                    0x00, 0x04, 0x08, 0x0c, 0x2c, 0x10, 0x14, 0x60, 0x70, 0x50, 0x68, 0x78, 0x20,
                ]) | rng.below(2) as u32
            };
            let rs2 = if matches!(funct7 >> 2, 0x18 | 0x1a | 0x08 | 0x0b | 0x1c | 0x1e) {
                let limit = if rng.below(4) == 0 { 32 } else { 4 };
                rng.below(limit) as u32
            } else {
                rs2
            };
            let rm = if rng.below(4) == 0 {
                funct3
            } else {
                rng.pick(&[0, 1, 2, 3, 4, 7])
            };
            r_type(0x53, rd, rm, rs1, rs2, funct7)
        }
        16 => {
            let opcode = rng.pick(&[0x43, 0x47, 0x4b, 0x4f]);
            let format = if rng.below(6) == 0 {
                rng.below(4)
            } else {
                rng.below(2)
            } as u32;
            let rm = if rng.below(7) == 0 {
                funct3
            } else {
                rng.pick(&[0, 1, 2, 3, 4, 7])
            };
            r_type(opcode, rd, rm, rs1, rs2, reg(rng) << 2 | format)
        }
        // Control transfer to the next instruction, fences, unused opcodes.
        17 => {
            // Branch with offset 4, or jal with offset 4.
            if rng.below(2) == 0 {
                r_type(0x63, 0b00100, funct3, rs1, rs2, 0)
            } else {
                1 << 22 | rd << 7 | 0x6f
            }
        }
        18 => i_type(
            0x0f,
            rd,
            rng.pick(&[0, 0, 1, funct3]),
            rs1,
            rng.next() as u32,
        ),
        _ => {
            let opcode = rng.pick(&[0x0b, 0x2b, 0x57, 0x5b, 0x6b, 0x77, 0x7b, 0x1f, 0x3f]);
            (rng.next() as u32 & !0x7f) | opcode
        }
    }
}

/// A random compressed instruction that does not jump.
fn random_parcel(rng: &mut Rng) -> u16 {
    loop {
        let parcel = (rng.next() as u16 & !3) | rng.below(3) as u16;
        let funct3 = parcel >> 13;
        let jumps = match parcel & 3 {
            1 => matches!(funct3, 0b101..=0b111),
            2 => {
                funct3 == 0b100 && parcel >> 12 & 1 == 0 && parcel >> 2 & 0x1f == 0
                    || funct3 == 0b100
                        && parcel >> 12 & 1 == 1
                        && parcel >> 2 & 0x1f == 0
                        && parcel >> 7 & 0x1f != 0
            }
            _ => false,
        };
        if !jumps {
            return parcel;
        }
    }
}

/// Builds a program that runs `count` random instructions, each from a fresh register
/// file, and prints for each what it changed (registers, fcsr) and any trap.
fn insn_random_program(seed: u64, count: usize) -> (String, Vec<String>) {
    let mut rng = Rng(seed | 1);
    const SETS: usize = 8;
    let mut text = String::from(include_str!("programs/insn_random.inc"));
    let mut notes = Vec::with_capacity(count);
    for i in 0..count {
        let set = rng.below(SETS as u64);
        let _ = writeln!(
            text,
            "    la t0, init{set}\n    la t1, restore\n    jalr t1, 0(t1)"
        );
        if rng.below(6) == 0 {
            let parcel = random_parcel(&mut rng);
            let _ = writeln!(text, "    .hword {parcel:#06x}");
            notes.push(format!(
                "{parcel:04x} {} (register set {set})",
                disasm::disassemble(u32::from(parcel), 0)
            ));
        } else {
            let word = random_word(&mut rng);
            let _ = writeln!(text, "    .word {word:#010x}");
            notes.push(format!(
                "{word:08x} {} (register set {set})",
                disasm::disassemble(word, 0)
            ));
        }
        let _ = writeln!(
            text,
            "    csrw sscratch, t0\n    la t0, save\n    jalr t0, 0(t0)\n    la a0, init{set}\n    li a1, {i}\n    call report"
        );
    }
    text.push_str("    EXIT\n    .data\n    .balign 8\n");
    for set in 0..SETS {
        let _ = writeln!(text, "init{set}:");
        for register in 0..32u32 {
            let value = if POINTER_REGISTERS.contains(&register) {
                // Spread over the scratch buffer; x15 is misaligned.
                let offset = (register as u64 * 8 + set as u64 * 64) % 2048;
                format!(
                    "scratch + 2048 + {}",
                    offset + u64::from(register == 15) * 3
                )
            } else {
                format!("{:#x}", random_int(&mut rng))
            };
            let _ = writeln!(text, "    .dword {value}");
        }
        for _ in 0..32 {
            let value = if rng.below(2) == 0 {
                0xffff_ffff_0000_0000 | u64::from(random_single(&mut rng))
            } else {
                random_double(&mut rng)
            };
            let _ = writeln!(text, "    .dword {value:#x}");
        }
        let _ = writeln!(text, "    .dword {}", rng.below(5) << 5);
    }
    (text, notes)
}

/// Random instruction words (loads/stores confined to a scratch buffer, no control
/// transfers): decoding, illegal encodings and results. `PANDARE_DIFF_SEED` and
/// `PANDARE_DIFF_INSNS` (default 6000) change the seed and count.
#[test]
fn insn_random() {
    let seed = env_number("PANDARE_DIFF_SEED", 0x1234_5678);
    let count = env_number("PANDARE_DIFF_INSNS", 6000) as usize;
    let (text, notes) = insn_random_program(seed, count);
    differential_program("insn_random", Some(&text), &notes);
}

// ---------------------------------------------------------------------------------------
// Generated programs: which CSRs exist

/// Every CSR number read (`csrrs rd, csr, x0`, which never writes) from M, S and U mode;
/// the program prints the numbers that did not trap. Left out: the debug trigger CSRs
/// 0x7a0-0x7af (optional Sdtrig, which QEMU implements and pandare does not) and
/// mhpmcounter19-31 / hpmcounter19-31 (QEMU implements 16 counters and traps on the
/// others; the privileged spec requires all 29, pandare has them read-only zero).
#[test]
fn csr_scan() {
    let skipped = |csr: u32| {
        (0x7a0..=0x7af).contains(&csr)
            || matches!(csr & 0xf00, 0xb00 | 0xc00) && (0x13..=0x1f).contains(&(csr & 0xff))
    };
    let mut text = String::from(
        "# Generated: which CSR numbers can be read in M, S and U mode.\n\
         .include \"common.inc\"\n\
         START\n\
         \x20   SET_MTVEC scan_trap\n",
    );
    for (mode, enter) in [("M", ""), ("S", "    TO_S\n"), ("U", "    TO_U\n")] {
        let _ = writeln!(text, "{enter}    PUTS \"-- {mode}\\n\"");
        for csr in (0..4096).filter(|&csr| !skipped(csr)) {
            let _ = writeln!(
                text,
                "    li s11, 0\n    csrrs a1, {csr}, x0\n    bnez s11, 1f\n    li a0, {csr}\n    call print_number\n1:"
            );
        }
        if !enter.is_empty() {
            text.push_str("    TO_M\n");
        }
    }
    text.push_str(
        "    EXIT\n\
         print_number:\n\
         \x20   mv a2, ra\n\
         \x20   li t2, 8\n\
         \x20   call _puthex_from\n\
         \x20   call _newline\n\
         \x20   jr a2\n\
         # Records the trap in s11 and skips the csrrs; TO_M's ecalls go to _trap_skip.\n\
         \x20   .balign 4\n\
         scan_trap:\n\
         \x20   csrr s11, mcause\n\
         \x20   addi s11, s11, -8\n\
         \x20   li s10, 1\n\
         \x20   bgtu s11, s10, 2f\n\
         \x20   j _trap_skip\n\
         2:  li s11, 1\n\
         \x20   csrr s10, mepc\n\
         \x20   addi s10, s10, 4\n\
         \x20   csrw mepc, s10\n\
         \x20   mret\n",
    );
    differential_program("csr_scan", Some(&text), &[]);
}

// ---------------------------------------------------------------------------------------
// Generated programs: random CSR operations

/// CSRs M-mode can write without disturbing the test itself (not mscratch: the trap
/// handler's stack), with the bits compared:
/// the architectural ones (QEMU implements more WARL bits in several of them, keeps
/// xepc bit 0, and lets UXL be written).
const CSR_MASKS: &[(&str, u64)] = &[
    ("sscratch", !0),
    ("mepc", !1),
    ("sepc", !1),
    ("mcause", !0),
    ("scause", !0),
    ("mtval", !0),
    ("stval", !0),
    ("mie", 0xaaa),
    ("mip", 0x222),
    ("sie", 0x222),
    ("sip", 0x222),
    ("mideleg", 0x222),
    ("medeleg", 0xb3ff),
    ("mcounteren", 0x7),
    ("scounteren", 0x7),
    ("satp", !0),
    ("sstatus", !(3 << 32)),
    ("fcsr", !0),
    ("frm", !0),
    ("fflags", !0),
];

/// Random CSR instructions (every form, random operands) on the CSRs of [`CSR_MASKS`],
/// printing the value read and the value then read back (masked).
#[test]
fn csr_random() {
    let mut rng = Rng(env_number("PANDARE_DIFF_SEED", 0xc5c5) | 1);
    let count = env_number("PANDARE_DIFF_CSRS", 3000) as usize;
    let mut text = String::from(
        "# Generated: random CSR instructions; per line: the value read, the value after.\n\
         .include \"common.inc\"\n\
         START\n\
         \x20   FP_ON\n\
         \x20   SET_MTVEC _trap_skip\n",
    );
    let mut notes = Vec::new();
    for i in 0..count {
        let (csr, mask) = rng.pick(CSR_MASKS);
        let value = match rng.below(3) {
            0 => random_int(&mut rng),
            1 => 1u64 << rng.below(64),
            _ => rng.next() & 0xfff,
        };
        let immediate = rng.below(32);
        let op = rng.pick(&["csrrw", "csrrs", "csrrc", "csrrwi", "csrrsi", "csrrci"]);
        let (instruction, operand) = if op.ends_with('i') {
            (format!("{op} t5, {csr}, {immediate}"), immediate)
        } else {
            (format!("{op} t5, {csr}, t4"), value)
        };
        // FS is turned back on now and then (sstatus writes may turn it off).
        if rng.below(20) == 0 {
            text.push_str("    FP_ON\n");
        }
        let _ = writeln!(
            text,
            "    li t4, {value:#x}\n    li t5, 0\n    {instruction}\n    li t3, {mask:#x}\n    and t5, t5, t3\n    csrr t6, {csr}\n    and t6, t6, t3\n    PRINT_AS r{i}, t5\n    PRINT_AS w{i}, t6"
        );
        let note = format!("{instruction} with operand {operand:#x}");
        notes.push(note.clone());
        notes.push(note);
    }
    text.push_str("    EXIT\n");
    differential_program("csr_random", Some(&text), &notes);
}
