//! The real `panda` binary boots Debian's riscv64 kernel (the generic image, built first if
//! the cache lacks it) and runs commands in the guest.
//!
//! Boots are the expensive part (about 10 s each), so there are three: the same list of
//! commands booted twice side by side (outputs checked, and the instruction counts must be
//! equal), and one boot of the image's files given as `--kernel`/`--initrd` with `--append`
//! and `--mem`.

mod common;

use common::{generic_image, panda, spawn, Run, BOOT_LIMIT};
use std::time::Duration;

/// A static riscv64 ELF executable whose only instruction is `0xffffffff` (not a valid
/// encoding): an ELF64 header, one PT_LOAD program header covering the whole file, and the
/// four code bytes.
fn garbage_elf() -> Vec<u8> {
    const BASE: u64 = 0x1_0000;
    const CODE_OFFSET: u64 = 64 + 56;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF");
    elf.extend_from_slice(&[2, 1, 1, 0]); // 64-bit, little-endian, version 1, System V ABI
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    elf.extend_from_slice(&243u16.to_le_bytes()); // e_machine: EM_RISCV
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(BASE + CODE_OFFSET).to_le_bytes()); // e_entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    elf.extend_from_slice(&5u32.to_le_bytes()); // e_flags: RVC, double-float ABI
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&56u16.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    assert_eq!(elf.len(), 64);
    let size = CODE_OFFSET + 4;
    elf.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R+X
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    assert_eq!(elf.len() as u64, CODE_OFFSET);
    elf.extend_from_slice(&[0xff; 4]);
    elf
}

/// A shell command that writes `bytes` to `path` with `printf` octal escapes (every byte
/// escaped, so the typed line is plain ASCII with no `%` or quote in it).
fn printf_to(bytes: &[u8], path: &str) -> String {
    let escaped: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    format!("printf '{escaped}' > {path}")
}

/// The commands of the main boot, in order, and what each must print exactly (`None` when
/// checked separately).
fn commands() -> Vec<(String, Option<&'static str>)> {
    let run_garbage = format!(
        "{}; chmod +x /tmp/bad; /tmp/bad; echo status=$?",
        printf_to(&garbage_elf(), "/tmp/bad")
    );
    vec![
        ("echo $((6*7))".to_string(), Some("42\n")),
        ("awk 'BEGIN{print 1/3}'".to_string(), Some("0.333333\n")),
        ("uname -a".to_string(), None),
        ("cat /proc/cpuinfo".to_string(), None),
        // The kernel delivers SIGILL to the process; the shell says so (128 + 4).
        (run_garbage, Some("Illegal instruction\nstatus=132\n")),
        ("echo still alive".to_string(), Some("still alive\n")),
    ]
}

fn check_main_boot(run: &Run) {
    assert!(
        run.status.success(),
        "panda failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    assert!(
        !run.stderr.contains("panicked at"),
        "stderr:\n{}",
        run.stderr
    );
    let stdout = run.stdout.as_str();
    let (first, rest) = stdout.split_at(stdout.find("Linux ").unwrap_or_else(|| {
        panic!("no `uname -a` output in:\n{stdout}");
    }));
    assert_eq!(first, "42\n0.333333\n", "in:\n{stdout}");
    let (uname, rest) = rest.split_once('\n').expect("uname prints a line");
    assert!(
        uname.contains("riscv64 GNU/Linux"),
        "uname -a said {uname:?}"
    );
    assert!(
        rest.starts_with("processor\t: 0\n"),
        "cpuinfo should follow uname in:\n{stdout}"
    );
    assert!(
        rest.contains("rv64imafdc_zicntr_zicsr_zifencei"),
        "cpuinfo lacks the ISA string:\n{rest}"
    );
    assert!(
        rest.ends_with("\nIllegal instruction\nstatus=132\nstill alive\n"),
        "the garbage executable should die of SIGILL inside the guest, and the shell live on; \
         stdout:\n{stdout}"
    );
}

#[test]
fn commands_run_in_order_and_two_boots_retire_the_same_instructions() {
    let image = generic_image();
    let commands = commands();
    let start = || {
        let mut command = panda();
        command.args(["run", "--generic", &image.name, "--stats"]);
        for (text, _) in &commands {
            command.args(["--cmd", text]);
        }
        spawn(command, Duration::from_secs(BOOT_LIMIT))
    };
    // Side by side: the count must not depend on what else the host is doing.
    let (first, second) = (start(), start());
    let (first, second) = (first.wait(), second.wait());
    eprintln!(
        "two boots took {:.1} s and {:.1} s",
        first.elapsed.as_secs_f64(),
        second.elapsed.as_secs_f64()
    );
    check_main_boot(&first);
    check_main_boot(&second);
    assert_eq!(first.stdout, second.stdout);
    let (a, b) = (first.instructions(), second.instructions());
    assert!(a > 100_000_000, "implausibly few instructions: {a}");
    assert_eq!(
        a, b,
        "the same commands retired different instruction counts"
    );
    assert!(
        first.stderr.contains("virtual time: "),
        "--stats prints the virtual time:\n{}",
        first.stderr
    );
}

#[test]
fn own_kernel_and_initrd_with_append_and_mem() {
    let image = generic_image();
    let append = "console=ttyS0 quiet pandare.test=own-files";
    let mut command = panda();
    command
        .args(["run", "--kernel"])
        .arg(&image.kernel)
        .arg("--initrd")
        .arg(&image.initrd)
        .args(["--append", append, "--mem", "256"])
        .args(["--cmd", "cat /proc/cmdline"])
        .args(["--cmd", "grep MemTotal /proc/meminfo"]);
    let run = common::run(command, BOOT_LIMIT);
    assert!(
        run.status.success(),
        "panda failed ({}):\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.stdout,
        run.stderr
    );
    let (cmdline, meminfo) = run
        .stdout
        .split_once('\n')
        .unwrap_or_else(|| panic!("stdout:\n{}", run.stdout));
    assert_eq!(cmdline, append, "--append must be the kernel command line");
    let kib: u64 = meminfo
        .trim()
        .strip_prefix("MemTotal:")
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected meminfo line {meminfo:?}"));
    // Less the kernel's own image and reservations (about 60 MiB); the image's default of
    // 512 MiB would show as about 450 MiB.
    assert!(
        (150 * 1024..=256 * 1024).contains(&kib),
        "--mem 256 should give about 256 MiB, the guest sees {kib} kB"
    );
}
