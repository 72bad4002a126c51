//! `panda exec` end to end: Debian's static riscv64 busybox (from the generic image's
//! initramfs) run by the real binary; exit statuses, output, a plugin, a signal, and bad
//! programs refused with one clear error line.

mod common;

use common::{generic_image, panda, run, TempDir, QUICK_LIMIT};
use std::path::{Path, PathBuf};

/// A file's bytes from an uncompressed newc cpio archive.
fn cpio_file<'a>(archive: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let field = |at: usize, index: usize| {
        let text =
            std::str::from_utf8(archive.get(at + 6 + index * 8..at + 14 + index * 8)?).ok()?;
        usize::from_str_radix(text, 16).ok()
    };
    let mut at = 0usize;
    while archive.get(at..at + 6) == Some(b"070701") {
        let (size, name_size) = (field(at, 6)?, field(at, 11)?);
        let entry = std::str::from_utf8(archive.get(at + 110..at + 110 + name_size - 1)?).ok()?;
        let data = (at + 110 + name_size).next_multiple_of(4);
        if entry == name {
            return archive.get(data..data + size);
        }
        at = (data + size).next_multiple_of(4);
    }
    None
}

fn busybox(dir: &TempDir) -> PathBuf {
    let image = generic_image();
    let archive = std::fs::read(&image.initrd).expect("read the initramfs");
    let data = cpio_file(&archive, "bin/busybox").expect("the initramfs holds bin/busybox");
    let path = dir.path("busybox");
    std::fs::write(&path, data).unwrap();
    path
}

fn exec(args: &[&str], program: &Path, program_args: &[&str]) -> common::Run {
    let mut command = panda();
    command
        .arg("exec")
        .args(args)
        .arg(program)
        .args(program_args);
    run(command, QUICK_LIMIT * 4)
}

#[test]
fn busybox_runs_with_its_exit_status() {
    let dir = TempDir::new("exec");
    let busybox = busybox(&dir);
    let echo = exec(&[], &busybox, &["echo", "hello", "world"]);
    assert_eq!(echo.stdout, "hello world\n", "{}", echo.stderr);
    assert_eq!(echo.status.code(), Some(0));
    let sum = exec(&[], &busybox, &["sh", "-c", "echo $((6*7)); exit 3"]);
    assert_eq!(sum.stdout, "42\n", "{}", sum.stderr);
    assert_eq!(sum.status.code(), Some(3));
    let no = exec(&[], &busybox, &["false"]);
    assert_eq!(no.status.code(), Some(1), "{}", no.stderr);
    // A signal the program sends itself: 128 + 11, as a shell reports it.
    let killed = exec(&[], &busybox, &["sh", "-c", "kill -SEGV $$"]);
    assert_eq!(killed.status.code(), Some(139), "{}", killed.stderr);
    assert!(
        killed.stderr.contains("killed by signal 11 (SIGSEGV)"),
        "{}",
        killed.stderr
    );
}

#[test]
fn plugins_and_counts_work_in_user_mode() {
    let dir = TempDir::new("exec-plugins");
    let busybox = busybox(&dir);
    let first = exec(
        &["--count", "--panda", "asid_instr_count"],
        &busybox,
        &["echo", "hi"],
    );
    assert_eq!(first.stdout, "hi\n", "{}", first.stderr);
    assert!(
        first.stderr.contains("asid_instr_count:"),
        "{}",
        first.stderr
    );
    let count = |run: &common::Run| {
        run.stderr
            .lines()
            .find_map(|line| line.strip_prefix("panda exec: "))
            .and_then(|rest| rest.strip_suffix(" instructions retired"))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no count in:\n{}", run.stderr))
    };
    let second = exec(&["--count"], &busybox, &["echo", "hi"]);
    assert!(count(&first) > 10_000);
    assert_eq!(count(&first), count(&second), "deterministic");
}

#[test]
fn bad_programs_get_one_clear_error() {
    let dir = TempDir::new("exec-bad");
    let script = dir.path("script.sh");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    for (program, expected) in [
        (script.clone(), "is not an ELF program"),
        (dir.path("missing"), "cannot read"),
        // This test binary: an x86_64 program, but dynamically linked.
        (
            std::env::current_exe().unwrap(),
            "runs statically linked programs only (link with -static)",
        ),
    ] {
        let run = exec(&[], &program, &[]);
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        let errors: Vec<_> = run
            .stderr
            .lines()
            .filter(|line| line.starts_with("panda: error: "))
            .collect();
        assert_eq!(errors.len(), 1, "{}", run.stderr);
        assert!(errors[0].contains(expected), "{}", run.stderr);
    }
    // Asking for riscv64 explicitly: the x86_64 file is refused by its header.
    let run = exec(
        &["--arch", "riscv64"],
        &std::env::current_exe().unwrap(),
        &[],
    );
    assert!(
        run.stderr
            .contains("is a x86_64 program but the CPU is riscv64; run it with --arch x86_64"),
        "{}",
        run.stderr
    );
}

/// Builds a static C program with the host's gcc (`-m32` for i386), or `None` (SKIP, or a
/// failure under `CI=true`) without gcc and its multilib.
fn static_c(dir: &TempDir, name: &str, source: &str, flags: &[&str]) -> Option<PathBuf> {
    let c = dir.path(&format!("{name}.c"));
    std::fs::write(&c, source).unwrap();
    let binary = dir.path(name);
    let built = std::process::Command::new("gcc")
        .args(flags)
        .args(["-static", "-O2", "-o"])
        .arg(&binary)
        .arg(&c)
        .output();
    match built {
        Ok(output) if output.status.success() => Some(binary),
        other => {
            pandare_test_support::unavailable(&format!(
                "gcc {flags:?} -static cannot build a test program ({other:?}); run scripts/install-test-tools.sh"
            ));
            None
        }
    }
}

#[test]
fn x86_programs_run_with_the_architecture_of_their_header() {
    let dir = TempDir::new("exec-x86");
    let source = "#include <stdio.h>\nint main(int c, char **v) { printf(\"%s %d\\n\", v[1], (int)sizeof(void *)); return 7; }\n";
    for (name, flags, arch, other) in [
        ("hello64", &[][..], "x86_64", "i386"),
        ("hello32", &["-m32"][..], "i386", "x86_64"),
    ] {
        let Some(binary) = static_c(&dir, name, source, flags) else {
            continue;
        };
        let width = if arch == "x86_64" { 8 } else { 4 };
        // Detected from the ELF header, and asked for explicitly.
        for args in [&[][..], &["--arch", arch][..]] {
            let run = exec(args, &binary, &["hi"]);
            assert_eq!(run.stdout, format!("hi {width}\n"), "{}", run.stderr);
            assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
        }
        // A plugin counts what the CPU retired, all of it in user mode.
        let run = exec(
            &["--count", "--panda", "asid_instr_count"],
            &binary,
            &["hi"],
        );
        assert_eq!(run.status.code(), Some(7), "{}", run.stderr);
        let retired = run
            .stderr
            .lines()
            .find_map(|line| line.strip_prefix("panda exec: "))
            .and_then(|rest| rest.strip_suffix(" instructions retired"))
            .unwrap_or_else(|| panic!("no count in:\n{}", run.stderr));
        assert!(
            run.stderr.contains(&format!(
                "asid_instr_count: {retired} instructions in 1 address spaces"
            )),
            "{}",
            run.stderr
        );
        // The other x86: refused by the header, with what to do.
        let run = exec(&["--arch", other], &binary, &[]);
        assert_eq!(run.status.code(), Some(1), "{}", run.stderr);
        assert!(
            run.stderr.contains(&format!(
                "is a {arch} program but the CPU is {other}; run it with --arch {arch}"
            )),
            "{}",
            run.stderr
        );
    }
}
