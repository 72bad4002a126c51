//! Bad input to the real `panda` binary: every case must end, soon, with a non-zero exit
//! status and one clear `panda: error:` line on stderr, and never with a Rust panic.

mod common;

use common::{generic_image, panda, spawn, Run, TempDir, BOOT_LIMIT, QUICK_LIMIT};
use std::process::Command;
use std::time::Duration;

/// Checks that `run` failed cleanly, and returns its `panda: error:` line, which must hold
/// every string in `expected`.
fn clean_failure(run: &Run, expected: &[&str]) -> String {
    let context = format!(
        "status {}, after {:.1} s\nstdout:\n{}\nstderr:\n{}",
        run.status,
        run.elapsed.as_secs_f64(),
        run.stdout,
        run.stderr
    );
    assert_eq!(
        run.status.code(),
        Some(1),
        "exit status 1 expected; {context}"
    );
    assert!(
        !run.stderr.contains("panicked at"),
        "a Rust panic; {context}"
    );
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|line| line.starts_with("panda: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "one `panda: error:` line expected; {context}"
    );
    for want in expected {
        assert!(
            errors[0].contains(want),
            "the error should mention {want:?}; {context}"
        );
    }
    errors[0].to_string()
}

/// A `panda run` failure that happens before the guest runs: one line on stderr and
/// nothing on stdout.
fn quick_failure(command: Command, expected: &[&str]) -> String {
    let run = common::run(command, QUICK_LIMIT);
    let line = clean_failure(&run, expected);
    assert_eq!(run.stderr.trim_end(), line, "only the error on stderr");
    assert_eq!(run.stdout, "", "nothing on stdout");
    line
}

fn run_kernel(kernel: &std::path::Path) -> Command {
    let mut command = panda();
    command
        .args(["run", "--kernel"])
        .arg(kernel)
        .args(["--cmd", "true"]);
    command
}

#[test]
fn a_missing_kernel() {
    let line = quick_failure(
        run_kernel("/nonexistent/kernel".as_ref()),
        &["/nonexistent/kernel", "No such file or directory"],
    );
    assert_eq!(
        line.matches("No such file").count(),
        1,
        "the reason once: {line}"
    );
}

#[test]
fn a_missing_initrd() {
    let mut command = run_kernel("/bin/ls".as_ref());
    command.args(["--initrd", "/nonexistent/initrd"]);
    quick_failure(command, &["initrd", "/nonexistent/initrd"]);
}

#[test]
fn a_device_as_kernel_or_initrd_is_refused_without_reading_it() {
    // Read whole, /dev/zero would exhaust the host's memory.
    quick_failure(
        run_kernel("/dev/zero".as_ref()),
        &["kernel", "/dev/zero", "not a regular file"],
    );
    let mut command = run_kernel("/bin/ls".as_ref());
    command.args(["--initrd", "/dev/zero"]);
    quick_failure(command, &["initrd", "/dev/zero", "not a regular file"]);
}

#[test]
fn a_kernel_larger_than_the_guest_memory_is_not_read() {
    let image = generic_image();
    let mut command = run_kernel(&image.kernel);
    command.args(["--mem", "16"]);
    quick_failure(command, &["kernel", "larger than", "--mem"]);
}

#[test]
fn a_kernel_truncated_inside_its_header() {
    let image = generic_image();
    let kernel = std::fs::read(&image.kernel).expect("read the image's kernel");
    let dir = TempDir::new("truncated");
    let path = dir.path("kernel-40-bytes");
    std::fs::write(&path, &kernel[..40]).unwrap();
    quick_failure(run_kernel(&path), &["40 bytes", "truncated"]);
}

#[test]
fn a_file_that_is_not_a_kernel_image() {
    // An x86-64 (or whatever the host is) ELF executable: this test itself.
    let elf = std::env::current_exe().expect("the test executable");
    quick_failure(run_kernel(&elf), &["not a RISC-V Linux Image"]);
}

#[test]
fn an_empty_kernel_file() {
    let dir = TempDir::new("empty");
    let path = dir.path("empty");
    std::fs::write(&path, b"").unwrap();
    quick_failure(run_kernel(&path), &["0 bytes"]);
}

#[test]
fn a_kernel_truncated_after_its_header_ends_without_hanging() {
    // The header is intact, so the file loads, but the code stops after 4 KiB: the hart
    // runs into zeros, traps, and its trap vector is not set up. Nothing can ever print.
    let image = generic_image();
    let kernel = std::fs::read(&image.kernel).expect("read the image's kernel");
    let dir = TempDir::new("truncated-4k");
    let path = dir.path("kernel-4k");
    std::fs::write(&path, &kernel[..4096]).unwrap();
    // Its 120 virtual seconds of boot time pass as idle time, in well under a second.
    let run = common::run(run_kernel(&path), 60);
    clean_failure(&run, &["booting the guest"]);
}

#[test]
fn a_corrupt_initrd_ends_in_a_clear_kernel_panic() {
    let image = generic_image();
    let dir = TempDir::new("corrupt-initrd");
    let path = dir.path("initrd");
    // Random bytes (a fixed xorshift sequence): not a cpio archive, so the kernel finds no
    // /init and no root file system, and panics.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    std::fs::write(&path, bytes).unwrap();
    // Linux's default is to spin for ever after a panic; with `panic=-1` it resets at once
    // (an SBI system reset). Both must end with the panic's reason.
    let start = |append: &str| {
        let mut command = run_kernel(&image.kernel);
        command
            .arg("--initrd")
            .arg(&path)
            .args(["--append", append]);
        spawn(command, Duration::from_secs(BOOT_LIMIT))
    };
    let spinning = start("console=ttyS0 quiet");
    let resetting = start("console=ttyS0 quiet panic=-1");
    for run in [spinning.wait(), resetting.wait()] {
        clean_failure(&run, &["kernel panicked", "Unable to mount root fs"]);
        // The panic comes about 1 virtual second into the boot; the 120-second boot limit
        // must not be what ends the run.
        assert!(
            run.elapsed < Duration::from_secs(120),
            "took {:?}",
            run.elapsed
        );
    }
}

#[test]
fn an_unknown_generic_image_lists_the_available_ones() {
    let mut command = panda();
    command.args(["run", "--generic", "nosuch", "--cmd", "true"]);
    quick_failure(command, &["nosuch", "available", "riscv64"]);
}

#[test]
fn no_memory() {
    // Checked before the image is looked at, so this needs no image.
    let mut command = panda();
    command.args(["run", "--generic", "riscv64", "--mem", "0", "--cmd", "true"]);
    quick_failure(command, &["--mem"]);
}

#[test]
fn too_little_memory() {
    let mut command = run_kernel("/bin/ls".as_ref());
    command.args(["--mem", "1"]);
    quick_failure(command, &["memory", "16 MiB"]);
}

#[test]
fn more_memory_than_the_host_gives() {
    // 64 GiB is within the platform's range; a host that cannot provide it must say so
    // rather than abort in the allocation. (A host that can goes on to reject the kernel.)
    let elf = std::env::current_exe().expect("the test executable");
    let mut command = run_kernel(&elf);
    command.args(["--mem", "65536"]);
    quick_failure(command, &[]);
}

#[test]
fn a_prompt_that_is_not_a_regular_expression() {
    let mut command = run_kernel("/bin/ls".as_ref());
    command.args(["--prompt", "(oops"]);
    quick_failure(
        command,
        &["(oops", "not a valid regular expression", "unclosed group"],
    );
}

#[test]
fn an_unknown_architecture() {
    let mut command = run_kernel("/bin/ls".as_ref());
    command.args(["--arch", "vax"]);
    quick_failure(command, &["vax", "riscv64"]);
}

#[test]
fn no_guest_at_all() {
    let mut command = panda();
    command.args(["run", "--cmd", "true"]);
    quick_failure(command, &["--generic", "--kernel"]);
}

#[test]
fn an_unreachable_mirror_fails_fast_and_says_so() {
    let cache = TempDir::new("mirror");
    let mut command = panda();
    command
        .args(["image", "build", "riscv64"])
        .env("PANDARE_CACHE_DIR", &cache.0)
        // Port 9 (discard) on the loopback: nothing listens there.
        .env("PANDARE_DEBIAN_MIRROR", "http://127.0.0.1:9/debian");
    let run = common::run(command, 120);
    clean_failure(
        &run,
        &["http://127.0.0.1:9/debian", "PANDARE_DEBIAN_MIRROR"],
    );
    assert!(
        run.elapsed < Duration::from_secs(60),
        "took {:?}",
        run.elapsed
    );
    assert!(
        !cache.path("images/riscv64").exists(),
        "a failed build must not leave an image behind"
    );
}

#[test]
fn a_mirror_that_is_not_a_url() {
    let cache = TempDir::new("mirror-url");
    let mut command = panda();
    command
        .args(["image", "build", "riscv64"])
        .env("PANDARE_CACHE_DIR", &cache.0)
        .env("PANDARE_DEBIAN_MIRROR", "not a url");
    let run = common::run(command, QUICK_LIMIT);
    clean_failure(&run, &["PANDARE_DEBIAN_MIRROR"]);
}
