//! `panda exec` on x86 against the host (native) and QEMU's user-mode emulator on
//! compute-bound static programs, in the same invocation: x86_64 `busybox sha256sum`
//! against `qemu-x86_64`, and an i386 SHA-256 filter in C (`tests/programs/x86/hash.c`,
//! built here with `gcc -m32 -static -O2`) against `qemu-i386`, both over the same
//! deterministic stdin data (default 8 MiB).
//!
//! ```text
//! cargo run --release -p pandare-user --example exec_bench_x86 -- BUSYBOX [MIB] [RUNS]
//! ```
//!
//! BUSYBOX is Debian's static amd64 busybox (`apt-get download busybox-static`, then
//! `dpkg-deb -x`). Prints min/median/max of each — wall time, and CPU time (user + system,
//! from `getrusage`: the children's for native and qemu, this thread's for panda exec),
//! which a loaded machine disturbs less — the guest instructions, pandare's MIPS, and the
//! ratios of the medians to native and to qemu-x86_64. Say how loaded the machine was.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use pandare_core::Machine;
use pandare_user::{run_to_end, Io, Outcome, Program, UserBoard};
use pandare_x86::user::{X86Linux, X86User, I386, X86_64};

/// CPU seconds (user + system) of `who` (`RUSAGE_CHILDREN`, `RUSAGE_THREAD`).
fn cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes one `struct rusage` into the zeroed value it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(who, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn stats(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2], times[times.len() - 1])
}

/// Runs `command` with `data` on stdin; its wall time, CPU time and stdout.
fn timed(command: &mut Command, data: &[u8]) -> (f64, f64, Vec<u8>) {
    let cpu_before = cpu_seconds(libc::RUSAGE_CHILDREN);
    let start = Instant::now();
    let mut child = command
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("run {command:?}: {e} (qemu-user: scripts/install-test-tools.sh)")
        });
    let mut stdin = child.stdin.take().unwrap();
    let input = data.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "{command:?}: {}", output.status);
    let wall = start.elapsed().as_secs_f64();
    (
        wall,
        cpu_seconds(libc::RUSAGE_CHILDREN) - cpu_before,
        output.stdout,
    )
}

struct Sink(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One program to measure.
struct Subject {
    name: String,
    path: String,
    args: Vec<String>,
    arch: &'static X86Linux,
    qemu: &'static str,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(busybox) = args.next() else {
        eprintln!("usage: exec_bench_x86 BUSYBOX [MIB] [RUNS]");
        std::process::exit(2);
    };
    let mib: usize = args
        .next()
        .map_or(8, |s| s.parse().expect("MIB is a number"));
    let runs: usize = args
        .next()
        .map_or(5, |s| s.parse().expect("RUNS is a number"));
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    let mut subjects = vec![Subject {
        name: "x86_64 busybox sha256sum".to_string(),
        path: busybox.clone(),
        args: vec!["sha256sum".to_string()],
        arch: &X86_64,
        qemu: "qemu-x86_64",
    }];
    let source = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/programs/x86/hash.c");
    let hash32 = std::env::temp_dir().join(format!("exec-bench-hash32-{}", std::process::id()));
    let built = Command::new("gcc")
        .args(["-m32", "-static", "-O2", "-o"])
        .arg(&hash32)
        .arg(source)
        .status();
    if built.is_ok_and(|status| status.success()) {
        subjects.push(Subject {
            name: "i386 hash.c (SHA-256, gcc -m32 -O2)".to_string(),
            path: hash32.to_string_lossy().into_owned(),
            args: Vec::new(),
            arch: &I386,
            qemu: "qemu-i386",
        });
    } else {
        println!("(no i386 subject: gcc -m32 -static could not build {source})");
    }
    for subject in &subjects {
        bench(subject, &data, mib, runs);
    }
    let _ = std::fs::remove_file(&hash32);
}

fn bench(subject: &Subject, data: &[u8], mib: usize, runs: usize) {
    let file = std::fs::read(&subject.path).expect("read the program");
    let mut argv = vec![subject.path.clone()];
    argv.extend(subject.args.iter().cloned());
    let program = Program {
        path: subject.path.clone(),
        argv,
        envp: Vec::new(),
    };
    let (mut native, mut qemu, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let (mut native_cpu, mut qemu_cpu, mut ours_cpu) = (Vec::new(), Vec::new(), Vec::new());
    let (mut instructions, mut digest) = (0, Vec::new());
    let (mut native_digest, mut qemu_digest) = (Vec::new(), Vec::new());
    // Interleaved, so that a change in the machine's load touches all three alike.
    for _ in 0..runs {
        let (time, cpu, out) = timed(Command::new(&subject.path).args(&subject.args), data);
        native.push(time);
        native_cpu.push(cpu);
        native_digest = out;
        let (time, cpu, out) = timed(
            Command::new(subject.qemu)
                .arg(&subject.path)
                .args(&subject.args),
            data,
        );
        qemu.push(time);
        qemu_cpu.push(cpu);
        qemu_digest = out;
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let io = Io {
            stdin: Box::new(std::io::Cursor::new(data.to_vec())),
            stdout: Box::new(Sink(out.clone())),
            stderr: Box::new(std::io::stderr()),
        };
        let cpu_before = cpu_seconds(libc::RUSAGE_THREAD);
        let start = Instant::now();
        let cpu = X86User::new(subject.arch, 1 << 30).unwrap();
        let mut machine = UserBoard::load(cpu, &file, &program, io).unwrap();
        let outcome = run_to_end(&mut machine);
        ours.push(start.elapsed().as_secs_f64());
        ours_cpu.push(cpu_seconds(libc::RUSAGE_THREAD) - cpu_before);
        assert_eq!(outcome, Some(Outcome::Exited(0)));
        instructions = machine.instruction_count();
        digest = out.lock().unwrap().clone();
    }
    assert_eq!(
        digest, native_digest,
        "panda exec's output differs from native"
    );
    assert_eq!(
        digest, qemu_digest,
        "panda exec's output differs from {}",
        subject.qemu
    );

    println!(
        "{} over {mib} MiB, {runs} runs each (interleaved)",
        subject.name
    );
    println!("output: {}", String::from_utf8_lossy(&digest).trim());
    println!("guest instructions: {instructions}");
    let q = subject.qemu;
    for (what, native, qemu, ours) in [
        ("wall time", &mut native, &mut qemu, &mut ours),
        ("CPU time", &mut native_cpu, &mut qemu_cpu, &mut ours_cpu),
    ] {
        let (n_min, n_med, n_max) = stats(native);
        let (q_min, q_med, q_max) = stats(qemu);
        let (o_min, o_med, o_max) = stats(ours);
        println!("{what}:");
        println!("  native:       min {n_min:.3} s  median {n_med:.3} s  max {n_max:.3} s");
        println!("  {q:<12}  min {q_min:.3} s  median {q_med:.3} s  max {q_max:.3} s");
        println!(
            "  panda exec:   min {o_min:.3} s  median {o_med:.3} s  max {o_max:.3} s  ({:.0} MIPS at the median, {:.0} at the min)",
            instructions as f64 / o_med / 1e6,
            instructions as f64 / o_min / 1e6
        );
        println!(
            "  ratios of the medians: panda exec / native {:.1}, panda exec / {q} {:.2}, {q} / native {:.1}",
            o_med / n_med,
            o_med / q_med,
            q_med / n_med
        );
    }
}
