//! PANDA's callback semantics on riscv64: the arch-neutral conformance suite
//! (`pandare_test_support::conformance`), one `#[test]` per case, with the guest programs in
//! `tests/conformance/*.S` and the generic riscv64 image booted once to its shell prompt
//! per test binary.
//!
//! The programs are assembled at test time with Debian's `riscv64-linux-gnu` binutils and
//! linked at 0x80000000 (`tests/programs/link.ld`); their symbols give the addresses the
//! cases check. Without the binutils or the image, the cases that need them print `SKIP:`
//! (and fail under `CI=true`): `scripts/install-test-tools.sh` installs the binutils,
//! `panda image build riscv64` builds the image.
//!
//! Run with `cargo test --release -p pandare-riscv --test callbacks`.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use pandare_core::{Machine, Snapshot};
use pandare_riscv::{Virt, VirtConfig, VirtMachine};
use pandare_test_support::conformance::{self, ConformanceTarget, GuestProgram, Program};
use pandare_test_support::{tool, tool_output};

const RAM: u64 = 512 << 20;

fn config() -> VirtConfig {
    VirtConfig {
        ram_bytes: RAM,
        ..Default::default()
    }
}

/// The riscv64 virt machine as a conformance target.
struct Riscv64;

/// Assembles, links and dumps `tests/conformance/<name>.S`: its raw image and symbols.
fn build(name: &str) -> Result<GuestProgram, String> {
    let tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let sources = tests.join("conformance");
    let dir = std::env::temp_dir().join(format!("pandare-conformance-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let (object, elf, binary) = (
        dir.join(format!("{name}.o")),
        dir.join(format!("{name}.elf")),
        dir.join(format!("{name}.bin")),
    );
    tool_output(
        Command::new(tool("riscv64-linux-gnu-as")?)
            .args(["-march=rv64gc_zicsr_zifencei", "-mabi=lp64d", "-mno-relax"])
            .arg("-I")
            .arg(&sources)
            .arg("-o")
            .arg(&object)
            .arg(sources.join(format!("{name}.S"))),
    )?;
    tool_output(
        Command::new(tool("riscv64-linux-gnu-ld")?)
            .args(["--no-warn-rwx-segments", "--no-relax", "-T"])
            .arg(tests.join("programs/link.ld"))
            .arg("-o")
            .arg(&elf)
            .arg(&object),
    )?;
    tool_output(
        Command::new(tool("riscv64-linux-gnu-objcopy")?)
            .args(["-O", "binary"])
            .arg(&elf)
            .arg(&binary),
    )?;
    let image =
        std::fs::read(&binary).map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
    let listing = tool_output(Command::new(tool("riscv64-linux-gnu-nm")?).arg(&elf))?;
    let symbols = String::from_utf8_lossy(&listing)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let address = u64::from_str_radix(fields.next()?, 16).ok()?;
            let _kind = fields.next()?;
            Some((fields.next()?.to_string(), address))
        })
        .collect();
    Ok(GuestProgram { image, symbols })
}

/// `a0`..`a2` between slices.
fn argument_index(name: &str) -> usize {
    match name.to_ascii_lowercase().as_str() {
        "a0" => 10,
        "a1" => 11,
        "a2" => 12,
        other => panic!("the riscv64 target reads only a0 to a2, not {other}"),
    }
}

impl ConformanceTarget for Riscv64 {
    type Machine = VirtMachine;

    const ARGUMENTS: [&'static str; 3] = ["a0", "a1", "a2"];
    /// RVC instructions are 2 bytes, the others 4.
    const INSTRUCTION_BYTES: RangeInclusive<u64> = 2..=4;
    const BREAKPOINT: i32 = 3;
    const ILLEGAL_INSTRUCTION: i32 = 2;
    /// Environment call from U-mode.
    const USER_SYSCALL: Option<i32> = Some(8);
    /// Machine timer interrupt.
    const TIMER_INTERRUPT: i32 = 7;

    fn program(&self, which: Program) -> Result<GuestProgram, String> {
        static PROGRAMS: OnceLock<Result<BTreeMap<Program, GuestProgram>, String>> =
            OnceLock::new();
        let programs = PROGRAMS.get_or_init(|| {
            Program::ALL
                .into_iter()
                .map(|program| Ok((program, build(program.source_name())?)))
                .collect()
        });
        match programs {
            Ok(programs) => Ok(programs[&which].clone()),
            Err(reason) => Err(reason.clone()),
        }
    }

    fn bare_metal(&self, program: &GuestProgram) -> VirtMachine {
        Virt::new_bare_metal(config(), &program.image).unwrap()
    }

    fn guest_at_prompt(&self) -> Result<VirtMachine, String> {
        static SNAPSHOT: OnceLock<Option<Snapshot>> = OnceLock::new();
        let snapshot = SNAPSHOT.get_or_init(|| {
            let image = pandare_images::cached("riscv64")?;
            let kernel = std::fs::read(&image.kernel).unwrap();
            let initrd = std::fs::read(&image.initrd).unwrap();
            let config = VirtConfig {
                command_line: image.append.clone(),
                ..config()
            };
            let mut machine = Virt::new_linux(config, &kernel, Some(&initrd)).unwrap();
            Some(conformance::boot_to_prompt(&mut machine))
        });
        let snapshot = snapshot
            .as_ref()
            .ok_or("the riscv64 image is not cached; build it with `panda image build riscv64`")?;
        let mut machine = Virt::new_blank(config()).unwrap();
        machine.load_snapshot(snapshot).unwrap();
        Ok(machine)
    }

    fn failure_value(&self, code: u32) -> u64 {
        0x3333 | u64::from(code) << 16
    }

    fn register(&self, machine: &mut VirtMachine, name: &str) -> u64 {
        machine.cpu.hart.reg(argument_index(name))
    }

    fn asid(&self, machine: &mut VirtMachine) -> u64 {
        machine.cpu.hart.satp()
    }

    fn syscall_entry(&self, machine: &mut VirtMachine) -> u64 {
        machine.cpu.hart.peek_csr(0x105).expect("stvec exists")
    }
}

pandare_test_support::conformance_tests!(Riscv64);

/// The suite's programs follow their contracts on this machine: each powers off, faults or
/// spins where the contract says, so a case cannot pass for the wrong reason.
#[test]
fn the_programs_follow_their_contracts() {
    let target = Riscv64;
    let Ok(program) = target.program(Program::PowerOff) else {
        pandare_test_support::unavailable("riscv64 binutils are missing");
        return;
    };
    assert!(program.symbols.contains_key("power_off_register"));
    let loop_program = target.program(Program::Loop).unwrap();
    assert_eq!(
        loop_program.symbol("middle") - loop_program.symbol("loop"),
        4
    );
    assert_eq!(loop_program.symbol("loop") - 0x8000_0000, 8);
    let aliased = target.program(Program::AliasedLoop).unwrap();
    assert_eq!(
        aliased.symbol("alias_middle") - aliased.symbol("middle"),
        0x8000_0000
    );
}
