//! The x86 executor's speed on compiler-generated integer code, against the host and
//! against QEMU's user-mode emulator on the same C source.
//!
//! Builds `kernel.c` (SHA-256 over 2 MiB, an LZ77 compressor, a shell sort) three ways at
//! run time with the host `gcc`: a flat binary at 0x400000 this example runs on an
//! `X86Cpu` in 64-bit long mode (identity-mapped with 2 MiB pages, CPL 0) up to its HLT, and
//! a static Linux program run natively and under `qemu-x86_64`. Prints instructions,
//! CPU seconds (this thread's, the children's: the machine may be shared) and MIPS for
//! each of `RUNS` (default 3) runs, then min/median/max.
//!
//! `cargo run --release -p pandare-x86 --example bench`; `PROFILE=N` runs only the first N
//! emulated instructions (for a profiler or an instruction-counting tool such as
//! `valgrind --tool=callgrind`, whose counts do not depend on the machine's load).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pandare_core::memory::Ram;
use pandare_x86::state::flags;
use pandare_x86::{Exit, State, X86Cpu};

const LOAD: u64 = 0x40_0000;
const RESULT: u64 = 0x3f_0000;
const PML4: u64 = 0x1000;
const PDPT: u64 = 0x2000;
const PD: u64 = 0x3000;
const RAM: usize = 16 << 20;

// The kernel: no SSE (the integer executor is what is measured), no red zone.
const CFLAGS: &[&str] = &[
    "-O2",
    "-ffreestanding",
    "-fno-pic",
    "-fno-builtin",
    "-fno-stack-protector",
    "-mno-red-zone",
    "-mno-sse",
    "-mno-mmx",
];

fn run(cmd: &mut Command) -> Result<std::process::Output, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e} (install gcc, binutils and qemu-user)"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

fn build(dir: &Path) -> Result<(Vec<u8>, PathBuf), String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/bench");
    let kernel_o = dir.join("kernel.o");
    run(Command::new("gcc")
        .args(CFLAGS)
        .arg("-c")
        .arg(src.join("kernel.c"))
        .arg("-o")
        .arg(&kernel_o))?;
    run(Command::new("gcc")
        .arg("-c")
        .arg(src.join("start.S"))
        .arg("-o")
        .arg(dir.join("start.o")))?;
    let elf = dir.join("kernel.elf");
    run(Command::new("ld")
        .args(["-static", "-nostdlib", "-e", "_start", "-z", "noexecstack"])
        .arg(format!("-Ttext={LOAD:#x}"))
        .arg(dir.join("start.o"))
        .arg(&kernel_o)
        .arg("-o")
        .arg(&elf))?;
    let bin = dir.join("kernel.bin");
    run(Command::new("objcopy")
        .args(["-O", "binary"])
        .arg(&elf)
        .arg(&bin))?;
    let native = dir.join("native");
    run(Command::new("gcc")
        .args(["-O2", "-static", "-fno-pic", "-no-pie"])
        .arg(src.join("main.c"))
        .arg(&kernel_o)
        .arg("-o")
        .arg(&native))?;
    let image = std::fs::read(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
    Ok((image, native))
}

fn machine(image: &[u8]) -> X86Cpu {
    let mut ram = Ram::new(0, RAM);
    let put = |ram: &mut Ram, a: u64, v: u64| assert!(ram.write_bytes(a, &v.to_le_bytes()));
    put(&mut ram, PML4, PDPT | 3);
    put(&mut ram, PDPT, PD | 3);
    for n in 0..(RAM as u64 >> 21) {
        put(&mut ram, PD + n * 8, (n << 21) | 0x83);
    }
    assert!(ram.write_bytes(LOAD, image));
    let mut state = State::long_mode(PML4, 0);
    state.rip = LOAD;
    state.rflags = flags::FIXED;
    X86Cpu::new(state, ram).expect("valid state")
}

/// CPU seconds (user + system) of this thread, or of the waited-for children.
fn cpu_seconds(children: bool) -> f64 {
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    if children {
        // SAFETY: rusage is plain data; all zeroes is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: getrusage fills the struct it is given.
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
        seconds(usage.ru_utime) + seconds(usage.ru_stime)
    } else {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime fills the timespec it is given.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }
}

/// Runs a program; returns its CPU seconds (user + system) and its output. CPU time, not
/// wall time: the machine is shared, and a descheduled program should not look slow.
fn timed(cmd: &Path, qemu: bool) -> Result<(f64, String), String> {
    let mut c = if qemu {
        let mut c = Command::new("qemu-x86_64");
        c.arg(cmd);
        c
    } else {
        Command::new(cmd)
    };
    let start = cpu_seconds(true);
    let out = run(&mut c)?;
    Ok((
        cpu_seconds(true) - start,
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    ))
}

fn spread(v: &mut [f64]) -> String {
    v.sort_by(|a, b| a.total_cmp(b));
    format!(
        "min {:.4} median {:.4} max {:.4}",
        v[0],
        v[v.len() / 2],
        v[v.len() - 1]
    )
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let profile_limit: Option<u64> = std::env::var("PROFILE").ok().and_then(|p| p.parse().ok());
    let dir = std::env::temp_dir().join(format!("pandare-x86-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let built = build(&dir);
    let (image, native) = match built {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let (mut emu, mut nat, mut qemu, mut mips) = (vec![], vec![], vec![], vec![]);
    let mut expected = String::new();
    for n in 0..runs {
        let (t, out) = timed(&native, false).unwrap_or_else(|e| panic!("{e}"));
        nat.push(t);
        expected = out;
        match timed(&native, true) {
            Ok((t, out)) => {
                assert_eq!(out, expected, "qemu-x86_64 disagrees with the host");
                qemu.push(t);
            }
            Err(e) => eprintln!("bench: qemu-x86_64 not measured: {e}"),
        }
        let mut cpu = machine(&image);
        if let Some(limit) = profile_limit {
            // Profiling (`PROFILE=N`): only the first N instructions, no comparison.
            while cpu.instruction_count() < limit {
                if cpu.run(limit - cpu.instruction_count()) != Exit::Budget {
                    break;
                }
            }
            println!("profiled {} instructions", cpu.instruction_count());
            return;
        }
        let start = cpu_seconds(false);
        let wall = Instant::now();
        loop {
            match cpu.run(1 << 24) {
                Exit::Budget => {}
                Exit::Halted => break,
                other => panic!("emulated kernel stopped: {other:?} at {:#x}", cpu.state.rip),
            }
        }
        let t = cpu_seconds(false) - start;
        let wall = wall.elapsed().as_secs_f64();
        let mut r = [0u8; 8];
        assert!(cpu.ram.read_bytes(RESULT, &mut r));
        let got = format!("{:x}", u64::from_le_bytes(r));
        assert_eq!(
            got, expected,
            "the emulated kernel's result differs from the host's"
        );
        let count = cpu.instruction_count();
        let m = count as f64 / t / 1e6;
        println!(
            "run {n}: {count} instructions, emulated {t:.3} s CPU ({wall:.3} s wall, {m:.1} MIPS), native {:.4} s, qemu-x86_64 {}",
            nat[n],
            qemu.last().map_or("-".into(), |q| format!("{q:.3} s"))
        );
        emu.push(t);
        mips.push(m);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut ratio: Vec<f64> = emu.iter().zip(&qemu).map(|(e, q)| e / q).collect();
    println!("result {expected} (emulated = native = qemu)");
    println!("emulated s:    {}", spread(&mut emu));
    println!("MIPS:          {}", spread(&mut mips));
    println!("native s:      {}", spread(&mut nat));
    if !qemu.is_empty() {
        println!("qemu-x86_64 s: {}", spread(&mut qemu));
        println!("emulated / qemu-x86_64 (per run): {}", spread(&mut ratio));
    }
}
