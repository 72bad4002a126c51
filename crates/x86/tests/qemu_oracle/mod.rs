//! QEMU as the oracle for the x86 CPU's system-level behaviour.
//!
//! A program of `tests/qemu_programs/` is assembled and linked with the host's binutils into
//! an ELF whose PVH note (`XEN_ELFNOTE_PHYS32_ENTRY`) lets `qemu-system-x86_64 -M microvm
//! -kernel` start it: QEMU's firmware loads the ELF's segments and jumps to the entry in
//! 32-bit protected mode, paging off, flat segments. QEMU runs it with one instruction per
//! translation block and logs the CPU state before each one and every exception
//! (`-d cpu,int,nochain`, filtered to the program's addresses with `-dfilter`); output goes
//! to the debug console (port 0xe9) and the program ends by writing its status to QEMU's
//! `isa-debug-exit` device (port 0xf4).
//!
//! pandare's [`X86Cpu`] starts in the state of QEMU's first dump at the entry, over RAM
//! loaded from the same ELF segments, with the same two ports, and is stepped one
//! instruction at a time beside the log: before every instruction RIP, the general
//! registers, RFLAGS, CPL, the segment registers (selector, base, limit, attributes), LDTR,
//! TR, GDTR, IDTR, CR0, CR2, CR3, CR4 and EFER must be equal, and every exception must be
//! the same (vector, error code, CR2). The first difference fails the test with a report:
//! the instruction after which the states differ (index, address, disassembly), each
//! differing register with both values, and the instructions before it.
//!
//! What may differ by design is masked, each in one place below: flags an instruction
//! leaves undefined (iced-x86's `rflags_undefined`), the time-stamp counter (RDTSC, RDMSR of
//! IA32_TSC: pandare counts instructions), CPUID (the model's identity differs from QEMU's;
//! the features are reduced on QEMU's side with `-cpu`), and the "accessed" bit of a
//! segment descriptor's type, which QEMU keeps in the register's cache and pandare need not.

pub mod trace;

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iced_x86::{Formatter as _, Instruction, IntelFormatter, Mnemonic, RflagsBits};
use pandare_core::memory::{PortIoDevice, Ram};
use pandare_x86::cpu::PortSpace;
use pandare_x86::state::{flags, Segment, State, TableRegister};
use pandare_x86::{Event, Exit, Fault, X86Cpu};

use trace::{Dump, Interrupt, Record, SegmentDump};

/// QEMU's CPU reduced to what pandare's CPUID model advertises (`src/cpuid.rs`): qemu64
/// without de, mce, mtrr, mca, pse36, sse3 (pni), svm, 3dnowprefetch and the hypervisor bit,
/// with popcnt. The local APIC stays: microvm's firmware expects one (pandare's PC brings
/// its own), and no program here touches it.
pub const QEMU_CPU: &str =
    "qemu64,-de,-mce,-mtrr,-mca,-pse36,-pni,-svm,-3dnowprefetch,-hypervisor,+popcnt,level=1,xlevel=0x80000008";

/// Guest RAM on both sides.
const RAM_MIB: u64 = 32;
/// Wall-clock limit for QEMU.
const QEMU_TIMEOUT: Duration = Duration::from_secs(60);
/// QEMU's log is cut off at this size (about 1.3 KB per instruction).
const MAX_LOG_BYTES: u64 = 256 << 20;
/// Instructions compared at most (every program is far shorter).
const MAX_STEPS: usize = 200_000;
/// Instructions shown before the divergence.
const CONTEXT: usize = 10;

/// The host tools the comparison needs.
pub struct Tools {
    qemu: PathBuf,
    assembler: PathBuf,
    linker: PathBuf,
}

/// Finds QEMU and binutils, or says what to install.
pub fn tools() -> Result<Tools, String> {
    let find = pandare_test_support::tool;
    Ok(Tools {
        qemu: find("qemu-system-x86_64")
            .map_err(|e| format!("{e} (Debian: qemu-system-x86 10 from bookworm-backports)"))?,
        assembler: find("as").map_err(|e| format!("{e} (Debian: binutils)"))?,
        linker: find("ld").map_err(|e| format!("{e} (Debian: binutils)"))?,
    })
}

fn programs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/qemu_programs")
}

/// A built program.
pub struct Program {
    pub name: String,
    pub dir: PathBuf,
    pub elf: PathBuf,
    /// The loadable segments: (physical address, bytes, size in memory).
    pub segments: Vec<(u64, Vec<u8>, u64)>,
    pub entry: u64,
}

impl Program {
    /// The address range the program's code lives in (for `-dfilter`).
    fn range(&self) -> (u64, u64) {
        let low = self.segments.iter().map(|s| s.0).min().unwrap_or(0);
        let high = self.segments.iter().map(|s| s.0 + s.2).max().unwrap_or(0);
        (low, high)
    }
}

/// Assembles and links `qemu_programs/<name>.S` with `link.ld`.
pub fn build(tools: &Tools, name: &str) -> Result<Program, String> {
    let source = programs_dir().join(format!("{name}.S"));
    if !source.is_file() {
        return Err(format!("no program {}", source.display()));
    }
    // One directory per build: tests run in parallel and may build the same program.
    static BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let build = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir()
        .join(format!("pandare-x86-qemu-{}", std::process::id()))
        .join(format!("{name}-{build}"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let object = dir.join(format!("{name}.o"));
    let elf = dir.join(format!("{name}.elf"));
    pandare_test_support::run_tool(
        Command::new(&tools.assembler)
            .arg("--64")
            .arg("-I")
            .arg(programs_dir())
            .arg("-o")
            .arg(&object)
            .arg(&source),
    )?;
    pandare_test_support::run_tool(
        Command::new(&tools.linker)
            .args(["-m", "elf_x86_64", "-T"])
            .arg(programs_dir().join("link.ld"))
            .arg("-o")
            .arg(&elf)
            .arg(&object),
    )?;
    let bytes = std::fs::read(&elf).map_err(|e| format!("reading {}: {e}", elf.display()))?;
    let (entry, segments) = load_elf(&bytes).map_err(|e| format!("{}: {e}", elf.display()))?;
    Ok(Program {
        name: name.to_string(),
        dir,
        elf,
        segments,
        entry,
    })
}

type Segments = Vec<(u64, Vec<u8>, u64)>;

/// The entry point and PT_LOAD segments of a little-endian ELF64 file.
fn load_elf(bytes: &[u8]) -> Result<(u64, Segments), String> {
    let u16_at = |at: usize| -> Result<u64, String> {
        bytes
            .get(at..at + 2)
            .map(|b| u64::from(u16::from_le_bytes([b[0], b[1]])))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    let u32_at = |at: usize| -> Result<u64, String> {
        bytes
            .get(at..at + 4)
            .map(|b| u64::from(u32::from_le_bytes(b.try_into().unwrap())))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    let u64_at = |at: usize| -> Result<u64, String> {
        bytes
            .get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
            .ok_or_else(|| "truncated ELF".to_string())
    };
    if bytes.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err("not a little-endian ELF64 file".into());
    }
    let entry = u64_at(0x18)?;
    let phoff = u64_at(0x20)? as usize;
    let phentsize = u16_at(0x36)? as usize;
    let phnum = u16_at(0x38)? as usize;
    let mut segments = Vec::new();
    for index in 0..phnum {
        let at = phoff + index * phentsize;
        if u32_at(at)? != 1 {
            continue;
        }
        let offset = u64_at(at + 8)? as usize;
        let paddr = u64_at(at + 24)?;
        let filesz = u64_at(at + 32)? as usize;
        let memsz = u64_at(at + 40)?;
        let data = bytes
            .get(offset..offset + filesz)
            .ok_or("a segment lies outside the file")?
            .to_vec();
        if paddr + memsz > RAM_MIB << 20 {
            return Err(format!("a segment at {paddr:#x} lies outside the RAM"));
        }
        segments.push((paddr, data, memsz));
    }
    if segments.is_empty() {
        return Err("no loadable segment".into());
    }
    Ok((entry, segments))
}

// ---------------------------------------------------------------------------------------
// QEMU

/// What QEMU did.
pub struct QemuRun {
    /// The debug console's bytes.
    pub output: Vec<u8>,
    /// The value written to isa-debug-exit (QEMU's exit status is `value * 2 + 1`).
    pub exit: Option<u32>,
    pub records: Vec<Record>,
}

/// Runs the program in QEMU with the per-instruction log.
pub fn run_qemu(tools: &Tools, program: &Program) -> Result<QemuRun, String> {
    let log = program.dir.join("qemu.log");
    let console = program.dir.join("debugcon.txt");
    let _ = std::fs::remove_file(&log);
    let _ = std::fs::remove_file(&console);
    let (low, high) = program.range();
    let mut command = Command::new(&tools.qemu);
    command
        .args(["-M", "microvm", "-m"])
        .arg(format!("{RAM_MIB}M"))
        .args(["-cpu", QEMU_CPU])
        .args(["-accel", "tcg,one-insn-per-tb=on"])
        .args(["-d", "cpu,int,nochain", "-dfilter"])
        .arg(format!("{low:#x}..{high:#x}"))
        .arg("-D")
        .arg(&log)
        .args(["-display", "none", "-serial", "none", "-monitor", "none"])
        .args(["-no-reboot", "-debugcon"])
        .arg(format!("file:{}", console.display()))
        .args(["-device", "isa-debug-exit,iobase=0xf4,iosize=4"])
        .arg("-kernel")
        .arg(&program.elf)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", tools.qemu.display()))?;
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > QEMU_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "QEMU did not end within {QEMU_TIMEOUT:?} (the program must end by writing \
                     port 0xf4); log in {}",
                    log.display()
                ));
            }
            Ok(None) if std::fs::metadata(&log).is_ok_and(|m| m.len() > MAX_LOG_BYTES) => {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_file(&log);
                return Err(format!(
                    "QEMU's log passed {MAX_LOG_BYTES} bytes: the program loops (log deleted)"
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for QEMU: {e}")),
        }
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        use std::io::Read as _;
        let _ = pipe.read_to_string(&mut stderr);
    }
    // isa-debug-exit: status (value << 1) | 1; 0 is QEMU's own ending (e.g. -no-reboot
    // after a triple fault).
    let exit = match status.code() {
        Some(code) if code & 1 == 1 => Some((code as u32) >> 1),
        Some(0) => None,
        other => {
            return Err(format!(
                "QEMU failed ({other:?}): {stderr}\ncommand: {command:?}"
            ))
        }
    };
    let output = std::fs::read(&console).unwrap_or_default();
    let text = std::fs::read_to_string(&log)
        .map_err(|e| format!("reading QEMU's log {}: {e}", log.display()))?;
    let records = trace::parse(&text).map_err(|e| format!("QEMU's log {}: {e}", log.display()))?;
    Ok(QemuRun {
        output,
        exit,
        records,
    })
}

// ---------------------------------------------------------------------------------------
// pandare

/// What the two ports saw on pandare's side.
#[derive(Default)]
pub struct PortLog {
    pub output: Vec<u8>,
    pub exit: Option<u32>,
}

/// The debug console (0xe9) and isa-debug-exit (0xf4), as QEMU's devices behave.
struct Ports(Arc<Mutex<PortLog>>);

impl PortIoDevice for Ports {
    fn read(&mut self, port: u16, size: u8, _now: u64) -> u32 {
        match port {
            // QEMU's debugcon reads back its "readback" value, 0xe9.
            0xe9 => 0xe9,
            _ => (((1u64) << (u32::from(size) * 8)) - 1) as u32,
        }
    }
    fn write(&mut self, port: u16, _size: u8, value: u32, _now: u64) {
        let mut log = self.0.lock().unwrap();
        match port {
            0xe9 => log.output.push(value as u8),
            0xf4 if log.exit.is_none() => log.exit = Some(value),
            _ => {}
        }
    }
}

/// pandare's CPU over the program's RAM in `state`, with the two ports.
fn our_cpu(program: &Program, state: State) -> Result<(X86Cpu, Arc<Mutex<PortLog>>), String> {
    let mut ram = Ram::new(0, (RAM_MIB << 20) as usize);
    for (address, data, _) in &program.segments {
        if !ram.write_bytes(*address, data) {
            return Err(format!("segment at {address:#x} outside RAM"));
        }
    }
    let mut cpu = X86Cpu::new(state, ram).map_err(|e| format!("QEMU's entry state: {e}"))?;
    let log = Arc::new(Mutex::new(PortLog::default()));
    cpu.ports = Some(PortSpace(Box::new(Ports(log.clone()))));
    Ok((cpu, log))
}

fn segment_from(dump: &SegmentDump) -> Segment {
    Segment {
        selector: dump.selector,
        base: dump.base,
        limit: dump.limit,
        attributes: dump.attributes(),
    }
}

/// The state QEMU's firmware entered the program in.
fn entry_state(dump: &Dump) -> State {
    let mut state = State::reset();
    for (i, value) in dump.gpr.iter().enumerate() {
        state.gpr[i] = *value;
    }
    state.rip = dump.rip;
    state.rflags = dump.rflags;
    for (ours, theirs) in state.segments.iter_mut().zip(&dump.segments) {
        *ours = segment_from(theirs);
    }
    state.ldtr = segment_from(&dump.ldtr);
    state.tr = segment_from(&dump.tr);
    state.gdtr = TableRegister {
        base: dump.gdtr.0,
        limit: dump.gdtr.1 as u16,
    };
    state.idtr = TableRegister {
        base: dump.idtr.0,
        limit: dump.idtr.1 as u16,
    };
    state.cpl = dump.cpl;
    state.cr0 = dump.cr0;
    state.cr2 = dump.cr2;
    state.cr3 = dump.cr3;
    state.cr4 = dump.cr4;
    state.efer = dump.efer;
    state
}

/// RFLAGS bits an instruction leaves undefined.
fn undefined_flags(instruction: &Instruction) -> u64 {
    let bits = instruction.rflags_undefined();
    let mut mask = 0;
    for (iced, ours) in [
        (RflagsBits::OF, flags::OF),
        (RflagsBits::SF, flags::SF),
        (RflagsBits::ZF, flags::ZF),
        (RflagsBits::AF, flags::AF),
        (RflagsBits::CF, flags::CF),
        (RflagsBits::PF, flags::PF),
    ] {
        if bits & iced != 0 {
            mask |= ours;
        }
    }
    mask
}

/// An exception or software interrupt pandare delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Delivered {
    vector: u8,
    error_code: Option<u32>,
    address: Option<u64>,
    software: bool,
}

impl std::fmt::Display for Delivered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "vector {:#04x} ({}) error code {}{}{}",
            self.vector,
            trace::vector_name(self.vector),
            self.error_code
                .map_or("none".to_string(), |c| format!("{c:#x}")),
            if self.software { " (software)" } else { "" },
            self.address
                .map(|a| format!(" CR2 {a:#x}"))
                .unwrap_or_default(),
        )
    }
}

/// One compared instruction, for the report.
struct Executed {
    index: usize,
    address: u64,
    text: String,
    event: Option<Delivered>,
}

fn disassemble(instruction: &Instruction) -> String {
    let mut text = String::new();
    IntelFormatter::new().format(instruction, &mut text);
    text
}

/// Differences between pandare's state and a dump, as "name: QEMU x, pandare y" lines.
fn differences(state: &State, dump: &Dump) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, qemu: u64, ours: u64| {
        if qemu != ours {
            out.push(format!(
                "{name:<10} QEMU {qemu:#018x}  pandare {ours:#018x}"
            ));
        }
    };
    const NAMES: [&str; 16] = [
        "RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI", "R8", "R9", "R10", "R11", "R12",
        "R13", "R14", "R15",
    ];
    // Outside 64-bit mode QEMU prints the low 32 bits of the first eight registers, RIP
    // and the segment bases (CR2 and the table bases in full).
    let width = if dump.gpr.len() == 16 {
        u64::MAX
    } else {
        0xffff_ffff
    };
    for (i, value) in dump.gpr.iter().enumerate() {
        check(NAMES[i], *value, state.gpr[i] & width);
    }
    check("RIP", dump.rip, state.rip & width);
    check("RFLAGS", dump.rflags, state.rflags);
    check("CPL", u64::from(dump.cpl), u64::from(state.cpl));
    const SEGMENTS: [&str; 6] = ["ES", "CS", "SS", "DS", "FS", "GS"];
    for (i, theirs) in dump.segments.iter().enumerate() {
        compare_segment(&mut check, SEGMENTS[i], theirs, &state.segments[i], width);
    }
    compare_segment(&mut check, "LDTR", &dump.ldtr, &state.ldtr, width);
    compare_segment(&mut check, "TR", &dump.tr, &state.tr, width);
    check("GDTR.base", dump.gdtr.0, state.gdtr.base);
    check("GDTR.limit", dump.gdtr.1.into(), state.gdtr.limit.into());
    check("IDTR.base", dump.idtr.0, state.idtr.base);
    check("IDTR.limit", dump.idtr.1.into(), state.idtr.limit.into());
    check("CR0", dump.cr0, state.cr0);
    check("CR2", dump.cr2, state.cr2);
    check("CR3", dump.cr3, state.cr3);
    check("CR4", dump.cr4, state.cr4);
    check("EFER", dump.efer, state.efer);
    out
}

fn compare_segment(
    check: &mut impl FnMut(&str, u64, u64),
    name: &str,
    theirs: &SegmentDump,
    ours: &Segment,
    width: u64,
) {
    check(
        &format!("{name}.sel"),
        theirs.selector.into(),
        ours.selector.into(),
    );
    check(&format!("{name}.base"), theirs.base, ours.base & width);
    // A null selector's cache is unusable: its other fields mean nothing (QEMU zeroes
    // them, the manuals leave them unspecified). LDTR and TR are compared whole once loaded.
    let null = theirs.selector & !3 == 0;
    if null && !matches!(name, "LDTR" | "TR") {
        return;
    }
    if null && theirs.attributes() & Segment::PRESENT == 0 {
        return;
    }
    check(
        &format!("{name}.limit"),
        theirs.limit.into(),
        ours.limit.into(),
    );
    // The type's "accessed" bit (bit 0 of code and data types): QEMU's cache holds what
    // it wrote back to the descriptor; pandare's is not required to.
    let accessed = if theirs.attributes() & Segment::S != 0 {
        1
    } else if name == "TR" {
        // LTR marks the TSS busy in the descriptor and (on hardware: VMX requires a busy
        // type in TR's access rights) in TR's cache; QEMU loads its cache before setting
        // the busy bit, so it shows type 9 where pandare shows 11. Not visible to software.
        2
    } else {
        0
    };
    check(
        &format!("{name}.attr"),
        u64::from(theirs.attributes() & !accessed),
        u64::from(ours.attributes & !accessed),
    );
}

/// Whether two dumps hold the same state (wherever they are in the log).
fn same_state(a: &Dump, b: &Dump) -> bool {
    Dump {
        line: 0,
        ..a.clone()
    } == Dump {
        line: 0,
        ..b.clone()
    }
}

/// The result of a lockstep comparison that agreed throughout.
pub struct Agreement {
    pub instructions: usize,
    pub exceptions: usize,
    /// Known QEMU deviations met (and followed so that the comparison could go on).
    pub deviations: Vec<String>,
    /// How pandare's own output differs from QEMU's because of them.
    pub corrections: Vec<Correction>,
    pub output: Vec<u8>,
    pub exit: Option<u32>,
}

/// Steps pandare beside QEMU's log; `Err` is the divergence report.
pub fn lockstep(program: &Program, qemu: &QemuRun) -> Result<Agreement, String> {
    let records = &qemu.records;
    let start = records
        .iter()
        .position(|r| matches!(r, Record::Step(d) if d.rip == program.entry))
        .ok_or_else(|| {
            format!(
                "QEMU's log has no instruction at the entry {:#x} ({} records): did the \
                 firmware start the program?",
                program.entry,
                records.len()
            )
        })?;
    let Record::Step(first) = &records[start] else {
        unreachable!()
    };
    let (mut cpu, ports) = our_cpu(program, entry_state(first))?;
    let mut history: VecDeque<Executed> = VecDeque::new();
    let mut at = start;
    let mut exceptions = 0;
    let mut deviations = Vec::new();
    let mut previous_dump: Option<&Dump> = None;
    let mut corrections = Vec::new();
    let report = |history: &VecDeque<Executed>, headline: String, details: &[String]| {
        let mut text = format!("{}: {headline}\n", program.name);
        for line in details {
            let _ = writeln!(text, "    {line}");
        }
        let _ = writeln!(text, "  instructions before (index, address, disassembly):");
        for executed in history {
            let _ = write!(
                text,
                "    {:6} {:#018x}  {}",
                executed.index, executed.address, executed.text
            );
            if let Some(event) = executed.event {
                let _ = write!(text, "   -> {event}");
            }
            text.push('\n');
        }
        let _ = writeln!(
            text,
            "  QEMU's log: {}",
            program.dir.join("qemu.log").display()
        );
        text
    };
    for index in 0..MAX_STEPS {
        // The state before instruction `index`.
        let dump = match records.get(at) {
            Some(Record::Step(dump)) => dump,
            Some(Record::Hardware { line, vector }) => {
                return Err(report(
                    &history,
                    format!(
                        "QEMU took external interrupt {vector:#x} (log line {line}): the \
                         programs must run with interrupts disabled"
                    ),
                    &[],
                ))
            }
            Some(Record::Interrupt(interrupt)) => {
                return Err(report(
                    &history,
                    format!(
                        "QEMU delivered {interrupt} (log line {}) where pandare expected an \
                         instruction",
                        interrupt.line
                    ),
                    &[],
                ))
            }
            None => {
                let log = ports.lock().unwrap();
                if log.exit.is_some() && qemu.exit.is_some() {
                    return Ok(Agreement {
                        instructions: index,
                        exceptions,
                        deviations,
                        corrections,
                        output: log.output.clone(),
                        exit: log.exit,
                    });
                }
                return Err(report(
                    &history,
                    format!(
                        "QEMU's log ends before instruction {index} (QEMU exit {:?}, pandare \
                         exit {:?})",
                        qemu.exit, log.exit
                    ),
                    &[],
                ));
            }
        };
        let mut dump = dump;
        let mut diffs = differences(&cpu.state, dump);
        // QEMU logs a translation block before running it; a block that exits before its
        // instruction (an exit request from QEMU's I/O thread) is logged again when
        // re-entered. Skip such repeats of an identical state.
        while !diffs.is_empty() {
            let (Some(previous), Some(Record::Step(again))) = (previous_dump, records.get(at + 1))
            else {
                break;
            };
            if !same_state(previous, dump) {
                break;
            }
            at += 1;
            dump = again;
            diffs = differences(&cpu.state, dump);
        }
        previous_dump = Some(dump);
        if !diffs.is_empty() {
            let headline = match history.back() {
                Some(last) => format!(
                    "first divergence after instruction {} at {:#x} `{}` (state before \
                     instruction {index}, QEMU log line {})",
                    last.index, last.address, last.text, dump.line
                ),
                None => "the entry states differ".to_string(),
            };
            return Err(report(&history, headline, &diffs));
        }
        // The exit port written: QEMU may still log the instruction after the OUT (its
        // exit request lands asynchronously), so the comparison ends here.
        let exited = ports.lock().unwrap().exit;
        if let Some(exit) = exited {
            if qemu.exit.is_none() {
                return Err(report(
                    &history,
                    format!("pandare's program exited ({exit}) but QEMU's did not"),
                    &[],
                ));
            }
            let log = ports.lock().unwrap();
            return Ok(Agreement {
                instructions: index,
                exceptions,
                deviations,
                corrections,
                output: log.output.clone(),
                exit: log.exit,
            });
        }
        let instruction = cpu.decode_current().ok();
        let text = instruction
            .as_ref()
            .map_or("(cannot fetch or decode)".to_string(), disassemble);
        let rip = cpu.state.rip;
        let linear = rip.wrapping_add(if cpu.state.long_mode_active() {
            0
        } else {
            cpu.state.segments[1].base
        });
        let leaf = cpu.state.gpr[0] as u32;
        let mut result = cpu.step();
        // QEMU's exceptions between this instruction and the next.
        at += 1;
        // A repeat of the dump before this instruction: a block QEMU logged but left before
        // running it (see below); the instruction ran after the repeat.
        while let Some(Record::Step(again)) = records.get(at) {
            // (A faulting instruction leaves pandare's state as it was: the repeat is one.)
            let moved = result.is_err() || !differences(&cpu.state, again).is_empty();
            if !same_state(again, dump) || !moved {
                break;
            }
            at += 1;
        }
        let mut theirs: Vec<&Interrupt> = Vec::new();
        while let Some(Record::Interrupt(interrupt)) = records.get(at) {
            theirs.push(interrupt);
            at += 1;
        }
        let next = match records.get(at) {
            Some(Record::Step(next)) => Some(next),
            _ => None,
        };
        let output_now = ports.lock().unwrap().output.len();
        let mut ours: Option<Delivered> = None;
        let mut halted = false;
        let mut fetched_again = false;
        loop {
            match result {
                Err(fault) => {
                    if let Some(note) =
                        qemu_skips_msr_fault(&mut cpu, instruction.as_ref(), fault, &theirs)
                    {
                        // Follow QEMU past the instruction so that the comparison goes on.
                        let Some(next) = next else {
                            return Err(report(&history, format!("{note}; QEMU's log ends"), &[]));
                        };
                        cpu.state.rip = next.rip;
                        if instruction.as_ref().map(Instruction::mnemonic) == Some(Mnemonic::Rdmsr)
                        {
                            cpu.state.gpr[0] = next.gpr[0];
                            cpu.state.gpr[2] = next.gpr[2];
                        }
                        deviations.push(format!(
                            "instruction {index} at {linear:#x} `{text}`: {note}"
                        ));
                        corrections.push(Correction {
                            offset: output_now,
                            qemu: String::new(),
                            ours: handler_text(fault.vector, fault.error_code.unwrap_or(0)),
                        });
                    } else {
                        let mut event = delivered(fault, false);
                        if cpu.deliver_fault(fault).is_err() {
                            return Err(report(
                                &history,
                                format!(
                                    "pandare triple-faulted at instruction {index} {linear:#x} \
                                 `{text}` ({event})"
                                ),
                                &[],
                            ));
                        }
                        if let Some((vector, qemu_code)) = qemu_omits_ext(&theirs) {
                            // Follow QEMU: its error code on the handler's stack.
                            let rsp = cpu.state.gpr[4];
                            let width = if cpu.state.long_mode_active() { 8 } else { 4 };
                            let mut bytes = [0u8; 8];
                            bytes[..4].copy_from_slice(&qemu_code.to_le_bytes());
                            if let Some(physical) = cpu.virt_to_phys(rsp) {
                                cpu.ram.write_bytes(physical, &bytes[..width]);
                            }
                            deviations.push(format!(
                                "instruction {index} at {linear:#x} `{text}`: QEMU's error code \
                                 for the IDT entry it could not use lacks EXT (QEMU {qemu_code:#x}, \
                                 the manuals and pandare {:#x})",
                                qemu_code | 1
                            ));
                            corrections.push(Correction {
                                offset: output_now,
                                qemu: handler_text(vector, qemu_code),
                                ours: handler_text(vector, qemu_code | 1),
                            });
                        }
                        if let Some(qemu_code) = qemu_drops_present_bit(fault, &theirs) {
                            // Follow QEMU: its error code on the handler's stack.
                            let rsp = cpu.state.gpr[4];
                            let width = if cpu.state.long_mode_active() { 8 } else { 4 };
                            let mut bytes = [0u8; 8];
                            bytes[..4].copy_from_slice(&qemu_code.to_le_bytes());
                            if let Some(physical) = cpu.virt_to_phys(rsp) {
                                cpu.ram.write_bytes(physical, &bytes[..width]);
                            }
                            deviations.push(format!(
                            "instruction {index} at {linear:#x} `{text}`: QEMU's #PF error code \
                             for a reserved-bit violation lacks P (QEMU {qemu_code:#x}, the \
                             manuals and pandare {:#x})",
                            fault.error_code.unwrap_or(0)
                        ));
                            corrections.push(Correction {
                                offset: output_now,
                                qemu: handler_text(14, qemu_code),
                                ours: handler_text(14, fault.error_code.unwrap_or(0)),
                            });
                            event.error_code = Some(qemu_code);
                        }
                        if let Some(next) = next.filter(|n| n.cr2 != cpu.state.cr2) {
                            if fault.vector != 14 && theirs.first().map(|t| t.vector) == Some(13) {
                                // QEMU's TCG takes a non-canonical access through its page-fault
                                // path and leaves the address in CR2 when it raises #GP; only
                                // #PF loads CR2 (SDM vol. 3 §2.5, §6.15). Follow QEMU's CR2.
                                deviations.push(format!(
                                    "instruction {index} at {linear:#x} `{text}`: QEMU's #GP \
                                 wrote CR2 = {:#x}; the manuals leave CR2 alone",
                                    next.cr2
                                ));
                                cpu.state.cr2 = next.cr2;
                            }
                        }
                        ours = Some(event);
                    }
                }
                Ok(Event::Halted) => halted = true,
                Ok(_) => {
                    if let Some(i) = &instruction {
                        let next_ip = rip.wrapping_add(i.len() as u64);
                        let vector = match i.mnemonic() {
                            Mnemonic::Int => Some(i.immediate8()),
                            Mnemonic::Int3 => Some(3),
                            Mnemonic::Into => Some(4),
                            Mnemonic::Int1 => Some(1),
                            _ => None,
                        };
                        if let Some(vector) = vector.filter(|_| cpu.state.rip != next_ip) {
                            ours = Some(Delivered {
                                vector,
                                error_code: None,
                                address: None,
                                software: true,
                            });
                        }
                    }
                }
            }
            // QEMU raises a fault on fetching the next instruction before it logs that
            // instruction (it translates, then logs and runs): take it as this step's.
            let fetch_fault = theirs
                .first()
                .is_some_and(|t| !t.software && t.pc == linear_ip(&cpu.state));
            if ours.is_none() && !halted && !fetched_again && fetch_fault {
                fetched_again = true;
                result = cpu.step();
                if result.is_err() {
                    continue;
                }
            }
            break;
        }
        // A REP string instruction: QEMU may log it once per iteration batch.
        if let Some(i) = &instruction {
            if i.has_rep_prefix() || i.has_repe_prefix() || i.has_repne_prefix() {
                while let Some(Record::Step(next)) = records.get(at) {
                    if next.rip != rip || cpu.state.rip == rip {
                        break;
                    }
                    at += 1;
                }
            }
        }
        history.push_back(Executed {
            index,
            address: linear,
            text: text.clone(),
            event: ours,
        });
        if history.len() > CONTEXT {
            history.pop_front();
        }
        // A software interrupt whose gate refuses it: QEMU logs the attempt, then the #GP
        // it delivers instead.
        let delivered_by_qemu = match theirs.as_slice() {
            [first, second, ..] if first.software && !second.software => Some(*second),
            _ => theirs.first().copied(),
        };
        let same = match (ours, delivered_by_qemu) {
            (None, None) => true,
            (Some(ours), Some(theirs)) => {
                ours.vector == theirs.vector
                    && ours.software == theirs.software
                    && ours.error_code.unwrap_or(0) == theirs.error_code
                    && (ours.vector != 14 || ours.address == theirs.cr2)
            }
            _ => false,
        };
        if !same {
            let mut details = vec![
                format!(
                    "QEMU:    {}",
                    if theirs.is_empty() {
                        "no exception".to_string()
                    } else {
                        theirs
                            .iter()
                            .map(|t| format!("{t} (log line {})", t.line))
                            .collect::<Vec<_>>()
                            .join(", then ")
                    }
                ),
                format!(
                    "pandare: {}",
                    ours.map_or("no exception".to_string(), |o| o.to_string())
                ),
            ];
            details.dedup();
            return Err(report(
                &history,
                format!("instruction {index} at {linear:#x} `{text}` raised different exceptions"),
                &details,
            ));
        }
        if ours.is_some() {
            exceptions += 1;
        }
        if halted {
            let log = ports.lock().unwrap();
            return Err(report(
                &history,
                format!(
                    "pandare halted at instruction {index} (exit port {:?}); programs end by \
                     writing port 0xf4 first",
                    log.exit
                ),
                &[],
            ));
        }
        // Values that differ by design: take QEMU's.
        if let (Some(i), Some(Record::Step(next))) = (&instruction, records.get(at)) {
            let mut undefined = if ours.is_none() {
                undefined_flags(i)
            } else {
                0
            };
            let others_same = (cpu.state.rflags ^ next.rflags) & !flags::ARITH == 0;
            if i.mnemonic() == Mnemonic::Syscall && others_same {
                // QEMU 10's SYSCALL loses the arithmetic flags (it masks its lazily computed
                // EFLAGS image without them); the manuals keep every flag SFMASK does not
                // clear (SDM vol. 2 SYSCALL: RFLAGS AND NOT(IA32_FMASK)), as pandare does.
                if (cpu.state.rflags ^ next.rflags) & flags::ARITH != 0 {
                    deviations.push(format!(
                        "instruction {index} at {linear:#x} `{text}`: QEMU's SYSCALL cleared \
                         the arithmetic flags (QEMU RFLAGS {:#x}, pandare {:#x})",
                        next.rflags, cpu.state.rflags
                    ));
                }
                undefined |= flags::ARITH;
            }
            cpu.state.rflags = (cpu.state.rflags & !undefined) | (next.rflags & undefined);
            let time = matches!(i.mnemonic(), Mnemonic::Rdtsc | Mnemonic::Rdtscp)
                || (i.mnemonic() == Mnemonic::Rdmsr && cpu.state.gpr[1] as u32 == 0x10);
            if time && ours.is_none() {
                cpu.state.gpr[0] = next.gpr[0];
                cpu.state.gpr[2] = next.gpr[2];
            }
            if i.mnemonic() == Mnemonic::Cpuid && leaf == 0x8000_0001 && ours.is_none() {
                // The AMD alias of EDX.APIC (see leaf 1 below).
                let apic = 1 << 9;
                cpu.state.gpr[2] = (cpu.state.gpr[2] & !apic) | (next.gpr[2] & apic);
            }
            if i.mnemonic() == Mnemonic::Cpuid && leaf == 1 && ours.is_none() {
                // QEMU keeps its local APIC (microvm's firmware needs one), so it sets
                // EDX.APIC, which pandare's CPU leaves to the PC platform; EBX[23:16]
                // (logical processors) means something only with EDX.HTT, set by neither.
                let apic = 1 << 9;
                cpu.state.gpr[2] = (cpu.state.gpr[2] & !apic) | (next.gpr[2] & apic);
                let count = 0xff << 16;
                cpu.state.gpr[3] = (cpu.state.gpr[3] & !count) | (next.gpr[3] & count);
            }
        }
    }
    Err(format!(
        "{}: more than {MAX_STEPS} instructions compared without an end",
        program.name
    ))
}

/// Where pandare's output differs from QEMU's because of a known QEMU deviation: at byte
/// `offset` of QEMU's output, its text `qemu` is pandare's `ours`.
pub struct Correction {
    pub offset: usize,
    pub qemu: String,
    pub ours: String,
}

/// QEMU's output with the corrections applied: what pandare prints when it runs alone.
pub fn corrected(output: &[u8], corrections: &[Correction]) -> Result<Vec<u8>, String> {
    let mut text = output.to_vec();
    for correction in corrections.iter().rev() {
        let end = correction.offset + correction.qemu.len();
        if text.get(correction.offset..end) != Some(correction.qemu.as_bytes()) {
            return Err(format!(
                "QEMU's output has no {:?} at byte {} to correct",
                correction.qemu, correction.offset
            ));
        }
        text.splice(correction.offset..end, correction.ours.bytes());
    }
    Ok(text)
}

/// The programs' handlers print "#vv/eeee " for every exception (the convention of
/// `qemu_programs/`).
fn handler_text(vector: u8, error_code: u32) -> String {
    format!("#{vector:02x}/{error_code:04x} ")
}

/// QEMU's TCG raises no #GP for RDMSR/WRMSR of an MSR it does not know (RDMSR reads 0), for
/// a reserved memory type written to IA32_PAT, or for a non-canonical address written to
/// LSTAR, CSTAR, FS_BASE, GS_BASE, KERNEL_GS_BASE or SYSENTER_ESP/EIP, nor for a CR8 write
/// above 15; the manuals (Intel SDM vol. 4 and the RDMSR/WRMSR and MOV CR pages, AMD APM
/// vol. 2) require #GP(0) and pandare raises it; likewise WBINVD and INVD outside CPL 0.
/// Returns the note when that happened.
fn qemu_skips_msr_fault(
    cpu: &mut X86Cpu,
    instruction: Option<&Instruction>,
    fault: Fault,
    theirs: &[&Interrupt],
) -> Option<String> {
    if !theirs.is_empty() {
        return None;
    }
    if fault == Fault::ud()
        && instruction.is_none()
        && cpu.state.mode() == pandare_x86::Mode::Long64
        && first_byte(cpu) == Some(0xce)
    {
        // INTO is invalid in 64-bit mode (SDM vol. 2 INTn/INTO); QEMU 10 runs it as INTO.
        return Some(
            "INTO in 64-bit mode: pandare raises #UD as the manuals say, QEMU does not".to_string(),
        );
    }
    let instruction = instruction?;
    let mnemonic = instruction.mnemonic();
    if fault != Fault::gp(0) {
        return None;
    }
    if matches!(mnemonic, Mnemonic::Wbinvd | Mnemonic::Invd) && cpu.state.cpl != 0 {
        // QEMU 10 executes WBINVD/INVD at any privilege; the manuals raise #GP(0) outside
        // CPL 0.
        return Some(format!(
            "{mnemonic:?} at CPL {}: pandare raises #GP(0) as the manuals say, QEMU does not",
            cpu.state.cpl
        ));
    }
    if cpu.state.cpl != 0 {
        return None;
    }
    if mnemonic == Mnemonic::Mov && instruction.op0_register() == iced_x86::Register::CR8 {
        // QEMU keeps the low four bits of a CR8 write; the manuals (MOV to CR8: reserved
        // bits 63:4) raise #GP(0).
        return Some(
            "MOV to CR8 of a value above 15: pandare raises #GP(0) as the manuals \
                     say, QEMU does not"
                .to_string(),
        );
    }
    if !matches!(mnemonic, Mnemonic::Rdmsr | Mnemonic::Wrmsr) {
        return None;
    }
    Some(format!(
        "{} of MSR {:#x} (value {:#x}): pandare raises #GP(0) as the manuals say, QEMU does not",
        if mnemonic == Mnemonic::Rdmsr {
            "RDMSR"
        } else {
            "WRMSR"
        },
        cpu.state.gpr[1] as u32,
        (cpu.state.gpr[2] << 32) | (cpu.state.gpr[0] & 0xffff_ffff)
    ))
}

/// QEMU 10 reports a reserved-bit page fault with error code RSVD alone; the manuals (Intel
/// SDM vol. 3 §4.7: "bit 3 of the error code can be set only if bit 0 is also set") give
/// P | RSVD, as pandare does. Returns QEMU's error code when that is the only difference.
fn qemu_drops_present_bit(fault: Fault, theirs: &[&Interrupt]) -> Option<u32> {
    let theirs = theirs.first()?;
    let ours = fault.error_code?;
    (fault.vector == 14
        && theirs.vector == 14
        && ours & 9 == 9
        && theirs.error_code == ours & !1
        && Some(theirs.error_code) != fault.error_code)
        .then_some(theirs.error_code)
}

/// The byte at RIP, when it is mapped.
fn first_byte(cpu: &mut X86Cpu) -> Option<u8> {
    let physical = cpu.virt_to_phys(linear_ip(&cpu.state))?;
    let mut byte = [0u8];
    cpu.ram.read_bytes(physical, &mut byte).then_some(byte[0])
}

/// The linear address of RIP.
fn linear_ip(state: &State) -> u64 {
    if state.mode() == pandare_x86::Mode::Long64 {
        state.rip
    } else {
        state.rip.wrapping_add(state.segments[1].base) & 0xffff_ffff
    }
}

/// QEMU 10 reports a fault on the IDT entry of an exception or external interrupt with the
/// IDT bit but without EXT; the manuals (SDM vol. 3 §6.13) set EXT for every event that is
/// not a software interrupt, as pandare does. Returns the second exception's vector and
/// QEMU's error code when that is what happened.
fn qemu_omits_ext(theirs: &[&Interrupt]) -> Option<(u8, u32)> {
    let [first, second, ..] = theirs else {
        return None;
    };
    (!first.software && second.error_code & 3 == 2 && matches!(second.vector, 11 | 13))
        .then_some((second.vector, second.error_code))
}

fn delivered(fault: Fault, software: bool) -> Delivered {
    Delivered {
        vector: fault.vector,
        error_code: fault.error_code,
        address: fault.address,
        software,
    }
}

/// Runs the program on pandare's block-cached run loop (not stepped), to its HLT.
pub fn run_blocks(program: &Program, qemu: &QemuRun) -> Result<PortLog, String> {
    let start = qemu
        .records
        .iter()
        .find_map(|r| match r {
            Record::Step(d) if d.rip == program.entry => Some(d),
            _ => None,
        })
        .ok_or("no entry state")?;
    let (mut cpu, ports) = our_cpu(program, entry_state(start))?;
    match cpu.run(10_000_000) {
        Exit::Halted => {}
        other => return Err(format!("{}: run ended with {other:?}", program.name)),
    }
    let log = std::mem::take(&mut *ports.lock().unwrap());
    Ok(log)
}
