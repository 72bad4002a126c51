//! `panda exec`'s process on the riscv64 hart: hand-assembled programs (exit status, I/O,
//! memory calls, a fault, an unimplemented call) and Debian's static busybox, each
//! compared with `qemu-riscv64` (Debian's qemu-user) running the same program; bad
//! programs; determinism; callbacks firing in user mode.
//!
//! The programs in `tests/programs/riscv64` are assembled with Debian's riscv64 binutils
//! at test time; busybox comes from the riscv64 image's initramfs (built by
//! `panda image build riscv64` or on first use). Without the tools or QEMU, a test prints
//! `SKIP` (or fails under `CI=true`); `scripts/install-test-tools.sh` installs them.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use pandare_core::instrument::Callback;
use pandare_core::Machine;
use pandare_riscv::user::RiscvUser;
use pandare_test_support::{run_tool, tool, unavailable};
use pandare_user::{run_to_end, Io, Outcome, Program, UserBoard, UserError};

const MEMORY: u64 = 256 << 20;

/// A `Write` whose bytes the test reads afterwards.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What one run produced.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    stdout: String,
    stderr: String,
    status: i32,
}

struct Ours {
    run: Run,
    outcome: Outcome,
    instructions: u64,
}

fn program(path: &Path, args: &[&str]) -> Program {
    let path = path.to_string_lossy().into_owned();
    let mut argv = vec![path.clone()];
    argv.extend(args.iter().map(|s| s.to_string()));
    Program {
        path,
        argv,
        envp: Vec::new(),
    }
}

fn run_ours_with(
    path: &Path,
    args: &[&str],
    stdin: &[u8],
    setup: impl FnOnce(&mut pandare_user::UserMachine<RiscvUser>),
) -> Ours {
    let (stdout, stderr) = (Sink::default(), Sink::default());
    let io = Io {
        stdin: Box::new(std::io::Cursor::new(stdin.to_vec())),
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
    };
    let file = std::fs::read(path).unwrap();
    let cpu = RiscvUser::new(MEMORY).unwrap();
    let mut machine = UserBoard::load(cpu, &file, &program(path, args), io).unwrap();
    setup(&mut machine);
    let outcome = run_to_end(&mut machine).expect("no callback stops the run");
    Ours {
        run: Run {
            stdout: stdout.text(),
            stderr: stderr.text(),
            status: outcome.status(),
        },
        outcome,
        instructions: machine.instruction_count(),
    }
}

fn run_ours(path: &Path, args: &[&str], stdin: &[u8]) -> Ours {
    run_ours_with(path, args, stdin, |_| {})
}

/// The same program under qemu-riscv64 (empty environment), or `None` when QEMU is
/// missing (reported through `unavailable`).
fn run_qemu(path: &Path, args: &[&str], stdin: &[u8]) -> Option<Run> {
    let qemu = match tool("qemu-riscv64") {
        Ok(qemu) => qemu,
        Err(reason) => {
            unavailable(&format!("{reason} (Debian's qemu-user)"));
            return None;
        }
    };
    let mut child = Command::new(qemu)
        .env_clear()
        .arg(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    use std::os::unix::process::ExitStatusExt;
    let status = output
        .status
        .code()
        .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
    Some(Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status,
    })
}

/// Assembles and links `tests/programs/riscv64/NAME.S`; `None` without binutils.
fn assemble(name: &str) -> Option<PathBuf> {
    assemble_linked(name, &["-static"])
}

/// Assembles `NAME.S` and links it with `link_args`.
fn assemble_linked(name: &str, link_args: &[&str]) -> Option<PathBuf> {
    let (Ok(as_), Ok(ld)) = (tool("riscv64-linux-gnu-as"), tool("riscv64-linux-gnu-ld")) else {
        unavailable("riscv64-linux-gnu binutils not found; run scripts/install-test-tools.sh");
        return None;
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs/riscv64")
        .join(format!("{name}.S"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("user-programs");
    std::fs::create_dir_all(&dir).unwrap();
    // One copy per test thread: tests run at the same time.
    let unique = format!(
        "{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    )
    .replace(['(', ')'], "");
    let object = dir.join(format!("{unique}.o"));
    let binary = dir.join(unique);
    run_tool(
        Command::new(as_)
            .arg("-march=rv64gc")
            .arg("-o")
            .arg(&object)
            .arg(&source),
    )
    .unwrap();
    // No relaxation: the programs do not set up gp.
    run_tool(
        Command::new(ld)
            .arg("--no-relax")
            .args(link_args)
            .arg("-o")
            .arg(&binary)
            .arg(&object),
    )
    .unwrap();
    Some(binary)
}

/// Debian's static busybox for riscv64, from the image's initramfs.
fn busybox() -> Option<PathBuf> {
    let image = match pandare_images::ensure("riscv64", &mut |_| {}) {
        Ok(image) => image,
        Err(error) => {
            unavailable(&format!("the riscv64 image is not available: {error}"));
            return None;
        }
    };
    let archive = std::fs::read(&image.initrd).unwrap();
    let data = cpio_file(&archive, "bin/busybox").expect("the initramfs holds bin/busybox");
    // Written under a unique name and renamed: tests running at the same time may be
    // executing the previous copy.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join("busybox-riscv64");
    let temporary = dir.join(format!(
        "busybox-riscv64.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&temporary, data).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&temporary, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    Some(path)
}

/// A file's bytes from an uncompressed newc cpio archive.
fn cpio_file<'a>(archive: &'a [u8], name: &str) -> Option<&'a [u8]> {
    let mut at = 0usize;
    let field = |at: usize, index: usize| {
        let text = std::str::from_utf8(&archive[at + 6 + index * 8..at + 14 + index * 8]).ok()?;
        usize::from_str_radix(text, 16).ok()
    };
    while at + 110 <= archive.len() && &archive[at..at + 6] == b"070701" {
        let size = field(at, 6)?;
        let name_size = field(at, 11)?;
        let entry = std::str::from_utf8(&archive[at + 110..at + 110 + name_size - 1]).ok()?;
        let data_start = (at + 110 + name_size).next_multiple_of(4);
        if entry == name {
            return Some(&archive[data_start..data_start + size]);
        }
        if entry == "TRAILER!!!" {
            return None;
        }
        at = (data_start + size).next_multiple_of(4);
    }
    None
}

fn compare_with_qemu(path: &Path, args: &[&str], stdin: &[u8], ours: &Run) {
    if let Some(theirs) = run_qemu(path, args, stdin) {
        assert_eq!(ours, &theirs, "panda exec and qemu-riscv64 disagree");
    }
}

#[test]
fn exit_status_is_the_programs() {
    let Some(path) = assemble("exit42") else {
        return;
    };
    let ours = run_ours(&path, &[], b"");
    assert_eq!(ours.outcome, Outcome::Exited(42));
    // Two `li`s; the `ecall` traps, so it does not retire.
    assert_eq!(ours.instructions, 2);
    compare_with_qemu(&path, &[], b"", &ours.run);
}

#[test]
fn output_and_arguments_match_qemu() {
    let Some(path) = assemble("hello") else {
        return;
    };
    let ours = run_ours(&path, &["first", "second"], b"");
    assert_eq!(
        ours.run.stdout, "hello from riscv64 user mode\n3\nfirst",
        "{:?}",
        ours.outcome
    );
    assert_eq!(ours.run.stderr, "this goes to stderr\n");
    assert_eq!(ours.run.status, 0);
    compare_with_qemu(&path, &["first", "second"], b"", &ours.run);
}

#[test]
fn a_static_pie_runs_at_the_pie_base() {
    let Some(path) = assemble_linked("hello", &["-pie", "--no-dynamic-linker"]) else {
        return;
    };
    let file = std::fs::read(&path).unwrap();
    let elf = pandare_user::Elf::parse(&file, "hello-pie").unwrap();
    assert!(elf.position_independent);
    let ours = run_ours(&path, &["pie"], b"");
    assert_eq!(ours.run.stdout, "hello from riscv64 user mode\n2\npie");
    compare_with_qemu(&path, &["pie"], b"", &ours.run);
}

#[test]
fn memory_calls_then_a_fault_on_an_unmapped_page() {
    let Some(path) = assemble("memory") else {
        return;
    };
    let ours = run_ours(&path, &[], b"");
    assert_eq!(ours.run.stdout, "ok\nok\nok\nok\n", "{:?}", ours.outcome);
    assert_eq!(ours.run.status, 139, "{:?}", ours.outcome);
    compare_with_qemu(&path, &[], b"", &ours.run);
}

#[test]
fn a_fault_is_reported_like_a_shell_with_pc_and_address() {
    let Some(path) = assemble("segv") else {
        return;
    };
    let ours = run_ours(&path, &[], b"");
    let Outcome::Killed {
        signal: 11,
        fault: Some(fault),
    } = &ours.outcome
    else {
        panic!("{:?}", ours.outcome);
    };
    assert_eq!(fault.address, 0xdead000);
    let report = ours.outcome.report().unwrap();
    assert!(
        report.contains("signal 11 (SIGSEGV)") && report.contains("store page fault"),
        "{report}"
    );
    assert_eq!(ours.run.status, 139);
    compare_with_qemu(&path, &[], b"", &ours.run);
}

#[test]
fn an_unimplemented_call_is_named() {
    let Some(path) = assemble("unimplemented") else {
        return;
    };
    let ours = run_ours(&path, &[], b"");
    let Outcome::Error(UserError::UnimplementedSyscall { number, name, .. }) = &ours.outcome else {
        panic!("{:?}", ours.outcome);
    };
    assert_eq!((*number, *name), (220, Some("clone")));
    let report = ours.outcome.report().unwrap();
    assert!(report.contains("system call 220 (clone)"), "{report}");
    assert_eq!(ours.run.status, 127);
}

#[test]
fn bad_programs_are_refused_with_clear_errors() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let script = dir.join("not-a-program.sh");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let load = |path: &Path| {
        let file = std::fs::read(path).unwrap();
        let cpu = RiscvUser::new(MEMORY).unwrap();
        UserBoard::load(cpu, &file, &program(path, &[]), Io::host())
            .map(drop)
            .expect_err("refused")
            .to_string()
    };
    let error = load(&script);
    assert!(error.contains("is not an ELF program"), "{error}");
    // The host's own (x86_64, dynamically linked) programs.
    let host = std::env::current_exe().unwrap();
    let error = load(&host);
    assert!(
        error.contains("is a x86_64 program but the CPU is riscv64"),
        "{error}"
    );
    let empty = dir.join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(load(&empty).contains("not an ELF program"));
}

#[test]
fn busybox_matches_qemu() {
    let Some(busybox) = busybox() else {
        return;
    };
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let text = b"one\ntwo\nthree\n";
    let cases: [(&[&str], &[u8], i32); 8] = [
        (&["echo", "hello"], b"", 0),
        (&["cat"], text, 0),
        (&["sort", "-r"], text, 0),
        (&["md5sum"], &data, 0),
        (&["sh", "-c", "echo $((6*7))"], b"", 0),
        (&["sha256sum"], &data, 0),
        (&["true"], b"", 0),
        (&["false"], b"", 1),
    ];
    for (args, stdin, status) in cases {
        let ours = run_ours(&busybox, args, stdin);
        assert_eq!(
            ours.run.status, status,
            "busybox {args:?}: {:?} {}",
            ours.outcome, ours.run.stderr
        );
        compare_with_qemu(&busybox, args, stdin, &ours.run);
    }
    let echo = run_ours(&busybox, &["echo", "hello"], b"");
    assert_eq!(echo.run.stdout, "hello\n");
    let sum = run_ours(&busybox, &["sh", "-c", "echo $((6*7))"], b"");
    assert_eq!(sum.run.stdout, "42\n");
}

#[test]
fn two_runs_are_identical() {
    let Some(busybox) = busybox() else {
        return;
    };
    let data: Vec<u8> = (0..100_000u32).map(|i| (i ^ i >> 5) as u8).collect();
    let first = run_ours(&busybox, &["sha256sum"], &data);
    let second = run_ours(&busybox, &["sha256sum"], &data);
    assert_eq!(first.run, second.run);
    assert_eq!(first.instructions, second.instructions);
    // The digest is the host's.
    if let Ok(sha) = tool("sha256sum") {
        let mut child = Command::new(sha)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&data).unwrap();
        let mut expected = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut expected)
            .unwrap();
        child.wait().unwrap();
        assert_eq!(
            first.run.stdout.split_whitespace().next(),
            expected.split_whitespace().next()
        );
    }
}

#[test]
fn callbacks_fire_in_user_mode() {
    let Some(path) = assemble("hello") else {
        return;
    };
    let blocks = Arc::new(Mutex::new(0u64));
    let syscalls = Arc::new(Mutex::new(Vec::new()));
    let ours = run_ours_with(&path, &[], b"", |machine| {
        let counter = Arc::clone(&blocks);
        machine
            .instrumentation
            .register(
                "blocks",
                Callback::BeforeBlockExec(Box::new(move |cpu, _| {
                    assert!(!cpu.in_kernel_mode());
                    *counter.lock().unwrap() += 1;
                })),
            )
            .unwrap();
        let log = Arc::clone(&syscalls);
        machine
            .instrumentation
            .register(
                "exceptions",
                Callback::BeforeHandleException(Box::new(move |cpu, index| {
                    log.lock()
                        .unwrap()
                        .push((index, cpu.register("a7").unwrap()));
                    index
                })),
            )
            .unwrap();
    });
    assert_eq!(ours.run.status, 0);
    assert!(*blocks.lock().unwrap() >= 3);
    // write, write, write, exit: four ecalls from U-mode (cause 8).
    assert_eq!(
        *syscalls.lock().unwrap(),
        [(8, 64), (8, 64), (8, 64), (8, 93)]
    );
}

#[test]
fn memory_callbacks_see_the_programs_stores() {
    let Some(path) = assemble("hello") else {
        return;
    };
    let writes = Arc::new(Mutex::new(Vec::new()));
    let ours = run_ours_with(&path, &[], b"", |machine| {
        let log = Arc::clone(&writes);
        machine
            .instrumentation
            .register(
                "writes",
                Callback::VirtMemAfterWrite(Box::new(move |_cpu, _pc, address, _size, data| {
                    log.lock().unwrap().push((address, data.to_vec()));
                })),
            )
            .unwrap();
    });
    assert_eq!(ours.run.status, 0);
    // The program stores argc's digit and a newline (two `sb`s); the syscall layer's own
    // writes are the kernel's and fire nothing.
    let writes = writes.lock().unwrap();
    assert_eq!(writes.len(), 2, "{writes:?}");
    assert_eq!(writes[0].1, b"1");
    assert_eq!(writes[1].1, b"\n");
    assert_eq!(writes[1].0, writes[0].0 + 1);
}

#[test]
fn damaged_programs_never_panic() {
    let Some(path) = assemble("hello") else {
        return;
    };
    let good = std::fs::read(&path).unwrap();
    let try_load = |bytes: &[u8]| {
        let cpu = RiscvUser::new(16 << 20).unwrap();
        let _ = UserBoard::load(cpu, bytes, &program(&path, &[]), Io::host());
    };
    for len in (0..good.len()).step_by(7) {
        try_load(&good[..len]);
    }
    // Every byte of the ELF header and program headers set to a few extreme values.
    for index in 0..(64 + 56 * 3).min(good.len()) {
        for value in [0u8, 0x7f, 0x80, 0xff] {
            let mut bytes = good.clone();
            bytes[index] = value;
            try_load(&bytes);
        }
    }
}

#[test]
fn a_callback_can_stop_the_program() {
    let Some(busybox) = busybox() else {
        return;
    };
    let file = std::fs::read(&busybox).unwrap();
    let cpu = RiscvUser::new(MEMORY).unwrap();
    let io = Io {
        stdin: Box::new(std::io::empty()),
        stdout: Box::new(Sink::default()),
        stderr: Box::new(Sink::default()),
    };
    let mut machine = UserBoard::load(cpu, &file, &program(&busybox, &["true"]), io).unwrap();
    let blocks = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&blocks);
    machine
        .instrumentation
        .register(
            "stop",
            Callback::BeforeBlockExec(Box::new(move |cpu, _| {
                let mut count = counter.lock().unwrap();
                *count += 1;
                if *count == 100 {
                    cpu.request_stop();
                }
            })),
        )
        .unwrap();
    assert_eq!(run_to_end(&mut machine), None);
    assert_eq!(*blocks.lock().unwrap(), 100);
    assert!(machine.board.outcome().is_none());
}
