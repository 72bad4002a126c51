//! What system call tracing costs: records the riscv64 guest's boot and a workload of
//! commands once, then replays the recording with nothing loaded, with an address hook
//! that never fires (the callback-checking executor loop alone, which any exception
//! callback or address hook selects: the floor of what tracing system calls costs), with
//! `syscalls2` and an empty Rust `on_all_sys_enter` callback, and with `syscalls_logger`, alternating the
//! configurations for `rounds` rounds (default 3). Prints each replay's CPU time (this
//! thread's, steadier than wall time on a shared machine), the best, the spread, and the
//! ratio of the best times.
//!
//! `PANDARE_CACHE_DIR=... cargo run --release -p pandare-plugins --example syscall_overhead [rounds]`
//!
//! `syscall_overhead live CONFIG [ITERATIONS]` (CONFIG 0–3 as above) runs one configuration
//! once, live from the `root` snapshot, over the system-call-heavy command only (2000
//! iterations by default): a deterministic run
//! short enough for `valgrind --tool=callgrind`, whose host instruction counts are the
//! steady figure on a shared machine.

use std::sync::Arc;
use std::time::Instant;

use pandare::console::UNITS_PER_SECOND;
use pandare::{replay, Console, MachineConfig};
use pandare_core::instrument::AddressHook;
use pandare_osi::Profile;
use pandare_plugins::syscalls2::{SyscallNumber, Syscalls2};
use pandare_plugins::Plugins;

/// CPU time this thread has used, in seconds (Linux; `None` elsewhere).
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

const WORKLOAD: &[&str] = &[
    "ls -la /proc > /dev/null",
    "cat /proc/version /proc/cpuinfo > /dev/null",
    "for i in 1 2 3 4 5 6 7 8 9 10; do echo $i > /dev/null; /bin/true; done",
    "find / -xdev > /dev/null 2>&1; echo done",
    // System-call heavy: each round opens, writes and closes /dev/null from the shell.
    "i=0; while [ $i -lt 2000 ]; do i=$((i+1)); echo $i > /dev/null; done; echo $i",
];

/// Loads configuration `run` into `plugins` and the machine's registry.
fn configure(
    run: usize,
    plugins: &mut Plugins,
    machine: &mut dyn pandare_core::Machine,
    log: &std::path::Path,
) {
    match run {
        1 => machine
            .instrumentation()
            .add_hook(
                "never",
                AddressHook::at(1),
                Box::new(|_, _| unreachable!("odd addresses are never executed")),
            )
            .unwrap(),
        2 => {
            plugins
                .register_ppp(
                    "syscalls2",
                    "on_all_sys_enter",
                    "empty",
                    |_, _: &SyscallNumber| {},
                )
                .unwrap();
            plugins
                .load(machine.instrumentation(), "syscalls2", Vec::new())
                .unwrap();
        }
        3 => plugins
            .load_spec(
                machine.instrumentation(),
                &format!("syscalls_logger:file={}", log.display()),
            )
            .unwrap(),
        _ => {}
    }
}

fn live(run: usize, iterations: u32) {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed");
    let profile = Arc::new(
        Profile::derive(&std::fs::read(&config.kernel).expect("the kernel image"))
            .expect("the kernel's profile"),
    );
    let snapshot = pandare::store::SnapshotStore::for_guest(&config, Some("riscv64"))
        .load("root")
        .expect("the root snapshot (run `panda run --generic riscv64` once)");
    let mut machine = config.build_blank().unwrap();
    machine.load_snapshot(&snapshot).unwrap();
    let mut console = Console::new(machine, config.prompt_regex().unwrap());
    let mut plugins = Plugins::new();
    plugins.set_kernel_profile(profile);
    let log = std::env::temp_dir().join(format!("syscall_overhead-{}.log", std::process::id()));
    configure(run, &mut plugins, console.machine(), &log);
    let before = console.machine().instruction_count();
    let command = format!(
        "i=0; while [ $i -lt {iterations} ]; do i=$((i+1)); echo $i > /dev/null; done; echo $i"
    );
    let output = console
        .run_command(&command, 300 * UNITS_PER_SECOND)
        .unwrap();
    let instructions = console.machine().instruction_count() - before;
    let stats = plugins
        .api::<Syscalls2>("syscalls2")
        .map(|api| api.stats())
        .ok();
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
    let _ = std::fs::remove_file(&log);
    println!(
        "live run {run}: {instructions} guest instructions, output {:?}, {stats:?}",
        output.trim()
    );
}

fn main() {
    if std::env::args().nth(1).as_deref() == Some("live") {
        let run = std::env::args()
            .nth(2)
            .and_then(|text| text.parse().ok())
            .expect("live CONFIG [ITERATIONS]: a number 0-3");
        let iterations = std::env::args()
            .nth(3)
            .map_or(2000, |text| text.parse().expect("ITERATIONS: a number"));
        live(run, iterations);
        return;
    }
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|text| text.parse().expect("rounds: a number"))
        .unwrap_or(3);
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`");
    let started = Instant::now();
    let profile = Arc::new(
        Profile::derive(&std::fs::read(&config.kernel).expect("the kernel image"))
            .expect("the kernel's profile"),
    );
    eprintln!(
        "profile derived in {:.2} s",
        started.elapsed().as_secs_f64()
    );

    let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    console.start_recording();
    console.wait_for_prompt(300 * UNITS_PER_SECOND).unwrap();
    for command in WORKLOAD {
        console
            .run_command(command, 300 * UNITS_PER_SECOND)
            .unwrap();
    }
    let recording = console
        .finish_recording(config.memory_mib, &config.append)
        .unwrap();
    let instructions = recording.end().map_or(0, |end| end.instructions);
    eprintln!("recorded boot + workload: {instructions} instructions");

    let names = [
        "none",
        "an address hook that never fires",
        "syscalls2 + empty on_all_sys_enter",
        "syscalls_logger",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let log = std::env::temp_dir().join(format!("syscall_overhead-{}.log", std::process::id()));
    let mut machine = config.build_blank().unwrap();
    for round in 0..rounds {
        for (run, name) in names.iter().enumerate() {
            let mut plugins = Plugins::new();
            plugins.set_kernel_profile(Arc::clone(&profile));
            configure(run, &mut plugins, machine.as_mut(), &log);
            let before = thread_cpu_seconds().unwrap_or(0.0);
            let wall = Instant::now();
            let result = replay::replay(&recording, machine.as_mut(), &mut |_| {}).unwrap();
            let cpu = thread_cpu_seconds().unwrap_or(0.0) - before;
            assert!(result.output_matches);
            let stats = plugins
                .api::<Syscalls2>("syscalls2")
                .map(|api| api.stats())
                .ok();
            plugins.unload_all(machine.instrumentation()).unwrap();
            let _ = machine.instrumentation().delete("never");
            println!(
                "round {round} {name:<38} cpu {cpu:6.2} s  wall {:6.2} s  {:6.1} MIPS{}",
                wall.elapsed().as_secs_f64(),
                instructions as f64 / cpu.max(0.01) / 1e6,
                stats.map_or(String::new(), |stats| format!(
                    "  ({} system calls, {} return hooks)",
                    stats.entries, stats.hooks
                )),
            );
            times[run].push(cpu);
        }
    }
    let _ = std::fs::remove_file(&log);
    let best = |list: &[f64]| list.iter().copied().fold(f64::INFINITY, f64::min);
    let worst = |list: &[f64]| list.iter().copied().fold(0.0, f64::max);
    let base = best(&times[0]);
    for (run, name) in names.iter().enumerate() {
        println!(
            "{name:<38} best {:6.2} s  worst {:6.2} s  best vs none {:+.1} %",
            best(&times[run]),
            worst(&times[run]),
            (best(&times[run]) / base - 1.0) * 100.0
        );
    }
}
