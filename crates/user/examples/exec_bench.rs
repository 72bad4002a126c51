//! `panda exec` against `qemu-riscv64` on a compute-bound static program, in the same
//! invocation: `busybox sha256sum` over deterministic stdin data (default 8 MiB).
//!
//! ```text
//! cargo run --release -p pandare-user --example exec_bench -- BUSYBOX [MIB] [RUNS]
//! ```
//!
//! BUSYBOX is Debian's static riscv64 busybox (for example extracted from the riscv64
//! image's initramfs). Prints min/median/max wall time of each, the ratio of the medians,
//! and pandare's guest MIPS. The machine's load matters: say how loaded it was.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use pandare_core::Machine;
use pandare_riscv::user::RiscvUser;
use pandare_user::{run_to_end, Io, Outcome, Program, UserBoard};

fn stats(times: &mut [f64]) -> (f64, f64, f64) {
    times.sort_by(f64::total_cmp);
    (times[0], times[times.len() / 2], times[times.len() - 1])
}

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(busybox) = args.next() else {
        eprintln!("usage: exec_bench BUSYBOX [MIB] [RUNS]");
        std::process::exit(2);
    };
    let mib: usize = args
        .next()
        .map_or(8, |s| s.parse().expect("MIB is a number"));
    let runs: usize = args
        .next()
        .map_or(3, |s| s.parse().expect("RUNS is a number"));
    let data: Vec<u8> = (0..mib << 20)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_left(7) as u8)
        .collect();
    let file = std::fs::read(&busybox).expect("read BUSYBOX");
    let program = Program {
        path: busybox.clone(),
        argv: vec![busybox.clone(), "sha256sum".to_string()],
        envp: Vec::new(),
    };

    let mut ours = Vec::new();
    let mut instructions = 0;
    let mut digest = Vec::new();
    for _ in 0..runs {
        let out = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
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
        let io = Io {
            stdin: Box::new(std::io::Cursor::new(data.clone())),
            stdout: Box::new(Sink(out.clone())),
            stderr: Box::new(std::io::stderr()),
        };
        let start = Instant::now();
        let cpu = RiscvUser::new(1 << 30).unwrap();
        let mut machine = UserBoard::load(cpu, &file, &program, io).unwrap();
        let outcome = run_to_end(&mut machine);
        ours.push(start.elapsed().as_secs_f64());
        assert_eq!(outcome, Some(Outcome::Exited(0)));
        instructions = machine.instruction_count();
        digest = out.lock().unwrap().clone();
    }

    let mut qemu = Vec::new();
    let mut qemu_digest = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut child = Command::new("qemu-riscv64")
            .env_clear()
            .arg(&busybox)
            .arg("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run qemu-riscv64 (Debian's qemu-user; scripts/install-test-tools.sh)");
        let mut stdin = child.stdin.take().unwrap();
        let input = data.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        qemu.push(start.elapsed().as_secs_f64());
        qemu_digest = output.stdout;
    }
    assert_eq!(digest, qemu_digest, "the digests differ");

    let (o_min, o_med, o_max) = stats(&mut ours);
    let (q_min, q_med, q_max) = stats(&mut qemu);
    println!("busybox sha256sum over {mib} MiB, {runs} runs each");
    println!("digest: {}", String::from_utf8_lossy(&digest).trim());
    println!("guest instructions: {instructions}");
    println!(
        "panda exec:   min {o_min:.3} s  median {o_med:.3} s  max {o_max:.3} s  ({:.0} MIPS at the median)",
        instructions as f64 / o_med / 1e6
    );
    println!("qemu-riscv64: min {q_min:.3} s  median {q_med:.3} s  max {q_max:.3} s");
    println!(
        "ratio (median panda exec / median qemu-riscv64): {:.2}",
        o_med / q_med
    );
}
