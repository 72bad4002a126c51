//! `panda exec`'s process on the x86 CPU: static C programs with inline assembly
//! (`tests/programs/x86`: flags, string instructions and atomics, misaligned and
//! page-crossing memory, faults, SSE and x87 rounding, TLS, generated code) built at test time for x86_64
//! (glibc and musl) and i386 (glibc), run natively on the host — the reference for
//! user-level semantics — and under `panda exec`; stdout and exit status must be
//! identical. Also: two runs are identical, wrong programs are refused.
//!
//! The compilers are the host's `gcc` (with `gcc-multilib` for `-m32`) and `musl-gcc`;
//! without them a test prints `SKIP` (or fails under `CI=true`);
//! `scripts/install-test-tools.sh` installs them.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use pandare_core::instrument::Callback;
use pandare_core::Machine;
use pandare_test_support::{tool, unavailable};
use pandare_user::UserArch;
use pandare_user::{run_to_end, Io, LoadError, Outcome, Program, UserBoard};
use pandare_x86::user::{X86Linux, X86User, I386, X86_64};

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

/// How a program is built: its name in messages, the compiler, its flags, the CPU.
struct Variant {
    name: &'static str,
    compiler: &'static str,
    flags: &'static [&'static str],
    arch: &'static X86Linux,
}

const VARIANTS: &[Variant] = &[
    Variant {
        name: "x86_64 glibc",
        compiler: "gcc",
        flags: &["-static", "-O2"],
        arch: &X86_64,
    },
    Variant {
        name: "i386 glibc",
        compiler: "gcc",
        flags: &["-m32", "-static", "-O2"],
        arch: &I386,
    },
    Variant {
        name: "x86_64 musl",
        compiler: "musl-gcc",
        flags: &["-static", "-O2"],
        arch: &X86_64,
    },
];

/// Builds `tests/programs/x86/NAME.c` for `variant`; `None` (after `unavailable`) when
/// the compiler is missing or cannot build for the target (no multilib).
fn build(name: &str, variant: &Variant) -> Option<PathBuf> {
    let compiler = match tool(variant.compiler) {
        Ok(compiler) => compiler,
        Err(reason) => {
            unavailable(&reason);
            return None;
        }
    };
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/programs/x86")
        .join(format!("{name}.c"));
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("x86-programs");
    std::fs::create_dir_all(&dir).unwrap();
    let binary = dir.join(
        format!(
            "{name}-{}-{}-{:?}",
            variant.name.replace(' ', "-"),
            std::process::id(),
            std::thread::current().id()
        )
        .replace(['(', ')'], ""),
    );
    // SSE assembly (float.c, faults.c) needs SSE2 enabled for i386 (the C arithmetic stays
    // x87).
    let sse2: &[&str] = if matches!(name, "float" | "faults") && !variant.arch.elf_64() {
        &["-msse2"]
    } else {
        &[]
    };
    let output = Command::new(compiler)
        .args(variant.flags)
        .args(sse2)
        .arg("-o")
        .arg(&binary)
        .arg(&source)
        .output()
        .unwrap();
    if !output.status.success() {
        unavailable(&format!(
            "{} cannot build {name}.c for {} (is gcc-multilib installed? run scripts/install-test-tools.sh): {}",
            variant.compiler,
            variant.name,
            String::from_utf8_lossy(&output.stderr)
        ));
        return None;
    }
    Some(binary)
}

/// What one run produced: stdout and the status a shell reports.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    stdout: String,
    status: i32,
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

fn run_native(path: &Path, args: &[&str]) -> Run {
    use std::os::unix::process::ExitStatusExt;
    let output = Command::new(path)
        .env_clear()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let status = output
        .status
        .code()
        .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0));
    Run {
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        status,
    }
}

/// Runs under `panda exec`; also returns the outcome, stderr and the instruction count.
fn run_ours(path: &Path, args: &[&str], arch: &'static X86Linux) -> (Run, Outcome, String, u64) {
    run_ours_with(path, args, arch, |_| {})
}

/// [`run_ours`] after `setup` registered callbacks.
fn run_ours_with(
    path: &Path,
    args: &[&str],
    arch: &'static X86Linux,
    setup: impl FnOnce(&mut pandare_user::UserMachine<X86User>),
) -> (Run, Outcome, String, u64) {
    let (stdout, stderr) = (Sink::default(), Sink::default());
    let io = Io {
        stdin: Box::new(std::io::empty()),
        stdout: Box::new(stdout.clone()),
        stderr: Box::new(stderr.clone()),
    };
    let file = std::fs::read(path).unwrap();
    let cpu = X86User::new(arch, MEMORY).unwrap();
    let mut machine = UserBoard::load(cpu, &file, &program(path, args), io).unwrap();
    setup(&mut machine);
    let outcome = run_to_end(&mut machine).expect("no callback stops the run");
    let run = Run {
        stdout: stdout.text(),
        status: outcome.status(),
    };
    (run, outcome, stderr.text(), machine.instruction_count())
}

/// Builds `name` for every variant and requires the same stdout and status natively and
/// under `panda exec` for each argument list.
fn matches_the_host(name: &str, argument_lists: &[&[&str]]) {
    for variant in VARIANTS {
        let Some(binary) = build(name, variant) else {
            continue;
        };
        for args in argument_lists {
            let native = run_native(&binary, args);
            let (ours, outcome, stderr, _) = run_ours(&binary, args, variant.arch);
            assert!(
                !matches!(outcome, Outcome::Error(_)),
                "{name} {args:?} ({}): {outcome:?} {stderr}",
                variant.name
            );
            if ours != native {
                let first = ours
                    .stdout
                    .lines()
                    .zip(native.stdout.lines())
                    .position(|(a, b)| a != b);
                panic!(
                    "{name} {args:?} ({}): panda exec and the host differ (status {} vs {}); first differing line {:?}: ours {:?}, host {:?}\n{stderr}",
                    variant.name,
                    ours.status,
                    native.status,
                    first,
                    first.and_then(|n| ours.stdout.lines().nth(n)),
                    first.and_then(|n| native.stdout.lines().nth(n)),
                );
            }
        }
        let _ = std::fs::remove_file(&binary);
    }
}

#[test]
fn integer_flags_match_the_host() {
    matches_the_host("flags", &[&[]]);
}

#[test]
fn string_instructions_and_atomics_match_the_host() {
    matches_the_host("strings", &[&[]]);
}

#[test]
fn misaligned_and_page_crossing_accesses_match_the_host() {
    // With an argument: a store across into the read-only page ends it with SIGSEGV.
    matches_the_host("memory", &[&[], &["fault"]]);
}

#[test]
fn faults_end_the_program_with_the_hosts_signal() {
    matches_the_host(
        "faults",
        &[
            &["div"],
            &["ud2"],
            &["int3"],
            &["hlt"],
            &["null"],
            &["exec"],
            &["abort"],
            &["sse"],
            &["x87"],
            &["none"],
        ],
    );
}

#[test]
fn sse_and_x87_rounding_and_printf_match_the_host() {
    matches_the_host("float", &[&[]]);
}

#[test]
fn thread_local_storage_matches_the_host() {
    matches_the_host("tls", &[&[]]);
}

#[test]
fn a_fault_is_reported_with_pc_and_address() {
    let Some(binary) = build("faults", &VARIANTS[0]) else {
        return;
    };
    let (run, outcome, _, _) = run_ours(&binary, &["null"], &X86_64);
    assert_eq!(run.status, 139);
    let report = outcome.report().unwrap();
    assert!(
        report.contains("signal 11 (SIGSEGV): page fault: write to an unmapped page")
            && report.contains("address 0x0"),
        "{report}"
    );
    let (_, outcome, _, _) = run_ours(&binary, &["ud2"], &X86_64);
    assert!(outcome.report().unwrap().contains("invalid opcode (#UD)"));
}

#[test]
fn two_runs_are_identical() {
    for variant in &VARIANTS[..2] {
        let Some(binary) = build("float", variant) else {
            continue;
        };
        let (first, _, _, count) = run_ours(&binary, &[], variant.arch);
        let (second, _, _, again) = run_ours(&binary, &[], variant.arch);
        assert_eq!(first, second);
        assert_eq!(count, again, "{}", variant.name);
        assert!(count > 100_000, "{count}");
    }
}

#[test]
fn programs_for_the_other_x86_are_refused() {
    let Some(binary) = build("faults", &VARIANTS[1]) else {
        return;
    };
    let file = std::fs::read(&binary).unwrap();
    let cpu = X86User::new(&X86_64, MEMORY).unwrap();
    let error = UserBoard::load(cpu, &file, &program(&binary, &[]), Io::host()).unwrap_err();
    assert!(matches!(error, LoadError::WrongArchitecture { .. }));
    assert!(
        error
            .to_string()
            .contains("is a i386 program but the CPU is x86_64; run it with --arch i386"),
        "{error}"
    );
    let cpu = X86User::new(&I386, MEMORY).unwrap();
    let error = UserBoard::load(
        cpu,
        b"#!/bin/sh\necho hi\n",
        &program(&binary, &[]),
        Io::host(),
    )
    .unwrap_err();
    assert!(matches!(error, LoadError::Elf(_)), "{error}");
}

#[test]
fn an_unimplemented_call_is_named() {
    // fork() is clone (56) on x86_64 and fork (2)... glibc's fork uses clone: either way
    // the message names the call.
    let source = Path::new(env!("CARGO_TARGET_TMPDIR")).join("x86-fork.c");
    std::fs::write(
        &source,
        "#include <unistd.h>\nint main(void) { return fork() < 0; }\n",
    )
    .unwrap();
    for variant in &VARIANTS[..2] {
        let Ok(compiler) = tool(variant.compiler) else {
            unavailable("gcc not found; run scripts/install-test-tools.sh");
            continue;
        };
        let binary = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "x86-fork-{}-{}",
            variant.arch.elf_machine(),
            std::process::id()
        ));
        let status = Command::new(compiler)
            .args(variant.flags)
            .arg("-o")
            .arg(&binary)
            .arg(&source)
            .status()
            .unwrap();
        if !status.success() {
            unavailable(&format!(
                "{} cannot build for {}",
                variant.compiler, variant.name
            ));
            continue;
        }
        let (run, outcome, _, _) = run_ours(&binary, &[], variant.arch);
        assert_eq!(run.status, 127);
        let report = outcome.report().unwrap();
        assert!(
            report.contains("(clone)") && report.contains("which panda exec does not implement"),
            "{report}"
        );
        let _ = std::fs::remove_file(&binary);
    }
}

#[test]
fn callbacks_fire_under_panda_exec() {
    // (variant, system call exception index, its register, write, exit_group)
    let cases = [
        (&VARIANTS[0], 0x100, "rax", 1, 231),
        (&VARIANTS[1], 0x80, "eax", 4, 252),
    ];
    for (variant, index, register, write, exit_group) in cases {
        let Some(binary) = build("callbacks", variant) else {
            continue;
        };
        let blocks = Arc::new(Mutex::new(0u64));
        let instructions = Arc::new(Mutex::new(0u64));
        let exceptions = Arc::new(Mutex::new(Vec::new()));
        let writes = Arc::new(Mutex::new(Vec::new()));
        let (run, outcome, stderr, retired) =
            run_ours_with(&binary, &[], variant.arch, |machine| {
                let hooks = &mut machine.instrumentation;
                let counter = Arc::clone(&blocks);
                hooks
                    .register(
                        "blocks",
                        Callback::BeforeBlockExec(Box::new(move |cpu, _| {
                            assert!(!cpu.in_kernel_mode());
                            *counter.lock().unwrap() += 1;
                        })),
                    )
                    .unwrap();
                hooks
                    .register("every", Callback::InsnTranslate(Box::new(|_, _| true)))
                    .unwrap();
                let counter = Arc::clone(&instructions);
                hooks
                    .register(
                        "insns",
                        Callback::InsnExec(Box::new(move |_, _| {
                            *counter.lock().unwrap() += 1;
                        })),
                    )
                    .unwrap();
                let log = Arc::clone(&exceptions);
                hooks
                    .register(
                        "exceptions",
                        Callback::BeforeHandleException(Box::new(move |cpu, index| {
                            let number = cpu.register(register).unwrap();
                            log.lock().unwrap().push((index, number));
                            index
                        })),
                    )
                    .unwrap();
                let log = Arc::clone(&writes);
                hooks
                    .register(
                        "writes",
                        Callback::VirtMemAfterWrite(Box::new(move |_, _, address, _, data| {
                            if data == 0x5eed_1234u32.to_le_bytes() {
                                log.lock().unwrap().push(address);
                            }
                        })),
                    )
                    .unwrap();
            });
        assert_eq!(run.status, 0, "{} {outcome:?} {stderr}", variant.name);
        let address = u64::from_str_radix(run.stdout.lines().next().unwrap(), 16).unwrap();
        assert_eq!(run.stdout.lines().nth(1), Some("done"));
        // The program's store of the marker, at the global's address; the syscall layer's
        // copies into the program's memory are the kernel's and fire nothing.
        assert_eq!(*writes.lock().unwrap(), [address], "{}", variant.name);
        let exceptions = exceptions.lock().unwrap();
        assert!(
            exceptions.iter().all(|&(i, _)| i == index),
            "{exceptions:?}"
        );
        assert!(
            exceptions.iter().any(|&(_, n)| n == write),
            "{exceptions:?}"
        );
        assert_eq!(exceptions.last().map(|e| e.1), Some(exit_group));
        let blocks = *blocks.lock().unwrap();
        let instructions = *instructions.lock().unwrap();
        assert!(
            blocks > 100 && blocks < retired,
            "{blocks} blocks, {retired} retired"
        );
        // insn_exec fires for every instruction retired and for each system call
        // instruction (which the layer answers instead of the CPU retiring it).
        assert_eq!(
            instructions,
            retired + exceptions.len() as u64,
            "{}",
            variant.name
        );
    }
}

#[test]
fn a_callback_can_stop_the_program() {
    let Some(binary) = build("flags", &VARIANTS[0]) else {
        return;
    };
    let file = std::fs::read(&binary).unwrap();
    let cpu = X86User::new(&X86_64, MEMORY).unwrap();
    let io = Io {
        stdin: Box::new(std::io::empty()),
        stdout: Box::new(Sink::default()),
        stderr: Box::new(Sink::default()),
    };
    let mut machine = UserBoard::load(cpu, &file, &program(&binary, &[]), io).unwrap();
    let blocks = Arc::new(Mutex::new(0u32));
    let counter = Arc::clone(&blocks);
    machine
        .instrumentation
        .register(
            "stop",
            Callback::BeforeBlockExec(Box::new(move |cpu, _| {
                let mut count = counter.lock().unwrap();
                *count += 1;
                if *count == 1000 {
                    cpu.request_stop();
                }
            })),
        )
        .unwrap();
    assert_eq!(run_to_end(&mut machine), None);
    assert_eq!(*blocks.lock().unwrap(), 1000);
}

/// Debian's static busybox for amd64 (the host's architecture), fetched once with the
/// host's apt (`apt-get download busybox-static`, no root) and extracted with `dpkg-deb`.
fn busybox_amd64() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-amd64");
    let path = dir.join("busybox");
    if path.is_file() {
        return Some(path);
    }
    let (Ok(apt), Ok(dpkg)) = (tool("apt-get"), tool("dpkg-deb")) else {
        unavailable("apt-get and dpkg-deb are needed to fetch Debian's busybox-static");
        return None;
    };
    let work = dir.join(format!("fetch-{}", std::process::id()));
    std::fs::create_dir_all(&work).unwrap();
    let fetched = Command::new(apt)
        .args(["download", "busybox-static"])
        .current_dir(&work)
        .output()
        .unwrap();
    let deb = std::fs::read_dir(&work)
        .unwrap()
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|e| e == "deb"));
    let Some(deb) = deb.filter(|_| fetched.status.success()) else {
        unavailable(&format!(
            "apt-get download busybox-static failed: {}",
            String::from_utf8_lossy(&fetched.stderr)
        ));
        return None;
    };
    let tree = work.join("tree");
    let status = Command::new(dpkg)
        .arg("-x")
        .arg(&deb)
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success(), "dpkg-deb -x {}", deb.display());
    let binary = ["bin/busybox", "usr/bin/busybox"]
        .iter()
        .map(|p| tree.join(p))
        .find(|p| p.is_file())
        .expect("busybox-static holds bin/busybox or usr/bin/busybox");
    // Renamed into place: another run may be using the previous copy.
    std::fs::rename(&binary, &path).unwrap();
    let _ = std::fs::remove_dir_all(&work);
    Some(path)
}

#[test]
fn debian_busybox_matches_the_host() {
    let Some(busybox) = busybox_amd64() else {
        return;
    };
    let input: Vec<u8> = (0..300_000u32)
        .map(|i| i.wrapping_mul(2_654_435_761).rotate_left(9) as u8)
        .collect();
    let lines: String = (0..2000u32)
        .map(|i| format!("{}\n", i.wrapping_mul(7919) % 1000))
        .collect();
    let cases: &[(&[&str], &[u8])] = &[
        (&["echo", "hello", "world"], b""),
        (&["sh", "-c", "echo $((6*7)); exit 3"], b""),
        (
            &["sh", "-c", "for i in 1 2 3; do printf '%s-' $i; done; echo"],
            b"",
        ),
        (&["true"], b""),
        (&["false"], b""),
        (&["sha256sum"], &input),
        (&["md5sum"], &input),
        (&["wc"], &input),
        (&["sort", "-n"], lines.as_bytes()),
        (&["uniq", "-c"], lines.as_bytes()),
        (&["seq", "3", "9"], b""),
        (&["uname", "-m"], b""),
        (&["sh", "-c", "kill -SEGV $$"], b""),
    ];
    for (args, stdin) in cases {
        use std::os::unix::process::ExitStatusExt;
        let mut child = Command::new(&busybox)
            .env_clear()
            .args(*args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut pipe = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        });
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let native = Run {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            status: output
                .status
                .code()
                .unwrap_or_else(|| 128 + output.status.signal().unwrap_or(0)),
        };
        let (stdout, stderr) = (Sink::default(), Sink::default());
        let io = Io {
            stdin: Box::new(std::io::Cursor::new(stdin.to_vec())),
            stdout: Box::new(stdout.clone()),
            stderr: Box::new(stderr.clone()),
        };
        let file = std::fs::read(&busybox).unwrap();
        let cpu = X86User::new(&X86_64, MEMORY).unwrap();
        let mut machine = UserBoard::load(cpu, &file, &program(&busybox, args), io).unwrap();
        let outcome = run_to_end(&mut machine).unwrap();
        let ours = Run {
            stdout: stdout.text(),
            status: outcome.status(),
        };
        assert_eq!(
            ours,
            native,
            "busybox {args:?}: {outcome:?} {}",
            stderr.text()
        );
    }
}

#[test]
fn static_pie_programs_run_at_the_pie_base() {
    for (variant, base) in [
        (&VARIANTS[0], 0x5555_5555_4000u64),
        (&VARIANTS[1], 0x40_0000),
    ] {
        let pie = Variant {
            name: variant.name,
            compiler: variant.compiler,
            flags: if variant.arch.elf_64() {
                &["-static-pie", "-O2"]
            } else {
                &["-m32", "-static-pie", "-O2"]
            },
            arch: variant.arch,
        };
        let Some(binary) = build("callbacks", &pie) else {
            continue;
        };
        let (run, outcome, stderr, _) = run_ours(&binary, &[], variant.arch);
        assert_eq!(run.status, 0, "{} {outcome:?} {stderr}", variant.name);
        let marker = u64::from_str_radix(run.stdout.lines().next().unwrap(), 16).unwrap();
        assert!(
            (base..base + (16 << 20)).contains(&marker),
            "{}: the global is at {marker:#x}, not just above {base:#x}",
            variant.name
        );
        let _ = std::fs::remove_file(&binary);
    }
}

#[test]
fn damaged_programs_never_panic() {
    for variant in &VARIANTS[..2] {
        let Some(binary) = build("callbacks", variant) else {
            continue;
        };
        let good = std::fs::read(&binary).unwrap();
        let try_load = |bytes: &[u8]| {
            let cpu = X86User::new(variant.arch, 16 << 20).unwrap();
            let _ = UserBoard::load(cpu, bytes, &program(&binary, &[]), Io::host());
        };
        for len in (0..4096.min(good.len())).step_by(13) {
            try_load(&good[..len]);
        }
        // Every byte of the ELF header and the first program headers set to a few
        // extreme values.
        let headers = if variant.arch.elf_64() {
            64 + 56 * 4
        } else {
            52 + 32 * 4
        };
        for index in 0..headers {
            for value in [0u8, 0x7f, 0x80, 0xff] {
                let mut bytes = good.clone();
                bytes[index] = value;
                try_load(&bytes);
            }
        }
        let _ = std::fs::remove_file(&binary);
    }
}

#[test]
fn clocks_and_randomness_come_from_virtual_time_and_a_fixed_seed() {
    for variant in VARIANTS {
        let Some(binary) = build("clocks", variant) else {
            continue;
        };
        let (first, outcome, stderr, count) = run_ours(&binary, &[], variant.arch);
        assert_eq!(first.status, 0, "{} {outcome:?} {stderr}", variant.name);
        let lines: Vec<&str> = first.stdout.lines().collect();
        assert_eq!(lines[0], "realtime 2026-01-01", "{}", variant.name);
        assert_eq!(lines[1], "resolution 1 ns");
        assert_eq!(lines[2], "slept at least 1.5 s: 1");
        assert_eq!(lines[3], "time and gettimeofday agree: 1");
        assert!(lines[4].starts_with("getrandom 8:"), "{}", lines[4]);
        assert!(lines[6].starts_with("cpus 1, user time 0."), "{}", lines[6]);
        let (second, _, _, again) = run_ours(&binary, &[], variant.arch);
        assert_eq!(first, second, "{}", variant.name);
        assert_eq!(count, again);
        // The native run agrees on everything that does not depend on the host's clock
        // and entropy.
        let native = run_native(&binary, &[]);
        let native_lines: Vec<&str> = native.stdout.lines().collect();
        assert_eq!(native_lines[1..4], lines[1..4], "{}", variant.name);
        let _ = std::fs::remove_file(&binary);
    }
}

#[test]
fn generated_code_follows_its_stores_and_mappings() {
    // With an argument: a store to the page after it was made read-only and executable.
    matches_the_host("jit", &[&[], &["fault"]]);
}
