//! `panda exec` on x86_64 against the host (native) and `qemu-x86_64` on a compute-bound
//! static program, in the same invocation: `busybox sha256sum` over deterministic stdin
//! data (default 8 MiB).
//!
//! ```text
//! cargo run --release -p pandare-user --example exec_bench_x86 -- BUSYBOX [MIB] [RUNS]
//! ```
//!
//! BUSYBOX is Debian's static amd64 busybox (`apt-get download busybox-static`, then
//! `dpkg-deb -x`). Prints min/median/max wall time of each, the guest instructions,
//! pandare's MIPS, and the ratios of the medians to native and to qemu-x86_64. The machine's
//! load matters: say how loaded it was.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use pandare_core::Machine;
use pandare_user::{run_to_end, Io, Outcome, Program, UserBoard};
use pandare_x86::user::{X86User, X86_64};

fn stats(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2], times[times.len() - 1])
}

/// Runs `command` with `data` on stdin; its wall time and stdout.
fn timed(command: &mut Command, data: &[u8]) -> (f64, Vec<u8>) {
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
    (start.elapsed().as_secs_f64(), output.stdout)
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
    let file = std::fs::read(&busybox).expect("read BUSYBOX");
    let program = Program {
        path: busybox.clone(),
        argv: vec![busybox.clone(), "sha256sum".to_string()],
        envp: Vec::new(),
    };

    let (mut native, mut qemu, mut ours) = (Vec::new(), Vec::new(), Vec::new());
    let (mut instructions, mut digest) = (0, Vec::new());
    let (mut native_digest, mut qemu_digest) = (Vec::new(), Vec::new());
    // Interleaved, so that a change in the machine's load touches all three alike.
    for _ in 0..runs {
        let (time, out) = timed(Command::new(&busybox).arg("sha256sum"), &data);
        native.push(time);
        native_digest = out;
        let (time, out) = timed(
            Command::new("qemu-x86_64").arg(&busybox).arg("sha256sum"),
            &data,
        );
        qemu.push(time);
        qemu_digest = out;
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let io = Io {
            stdin: Box::new(std::io::Cursor::new(data.clone())),
            stdout: Box::new(Sink(out.clone())),
            stderr: Box::new(std::io::stderr()),
        };
        let start = Instant::now();
        let cpu = X86User::new(&X86_64, 1 << 30).unwrap();
        let mut machine = UserBoard::load(cpu, &file, &program, io).unwrap();
        let outcome = run_to_end(&mut machine);
        ours.push(start.elapsed().as_secs_f64());
        assert_eq!(outcome, Some(Outcome::Exited(0)));
        instructions = machine.instruction_count();
        digest = out.lock().unwrap().clone();
    }
    assert_eq!(
        digest, native_digest,
        "panda exec's digest differs from native"
    );
    assert_eq!(
        digest, qemu_digest,
        "panda exec's digest differs from qemu-x86_64"
    );

    let (n_min, n_med, n_max) = stats(&mut native);
    let (q_min, q_med, q_max) = stats(&mut qemu);
    let (o_min, o_med, o_max) = stats(&mut ours);
    println!("busybox sha256sum over {mib} MiB, {runs} runs each (interleaved)");
    println!("digest: {}", String::from_utf8_lossy(&digest).trim());
    println!("guest instructions: {instructions}");
    println!("native:       min {n_min:.3} s  median {n_med:.3} s  max {n_max:.3} s");
    println!("qemu-x86_64:  min {q_min:.3} s  median {q_med:.3} s  max {q_max:.3} s");
    println!(
        "panda exec:   min {o_min:.3} s  median {o_med:.3} s  max {o_max:.3} s  ({:.0} MIPS at the median)",
        instructions as f64 / o_med / 1e6
    );
    println!(
        "ratios of the medians: panda exec / native {:.1}, panda exec / qemu-x86_64 {:.2}, qemu-x86_64 / native {:.1}",
        o_med / n_med,
        o_med / q_med,
        q_med / n_med
    );
}
