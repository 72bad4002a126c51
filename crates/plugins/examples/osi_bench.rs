//! Measures the `osi` plugin on the riscv64 guest (release build): the current process and
//! the full process list in µs (min / median / max over repeated calls, the guest stopped
//! at its prompt), a process's mappings and fds, and what `on_task_change` costs a workload
//! (the address hook on `finish_task_switch` against a compare at every block start).
//!
//! `PANDARE_CACHE_DIR=... cargo run --release -p pandare-plugins --example osi_bench`

use std::time::{Duration, Instant};

use pandare::console::UNITS_PER_SECOND;
use pandare::store::SnapshotStore;
use pandare::{Console, MachineConfig};
use pandare_core::instrument::GuestCpu;
use pandare_plugins::osi::OsiApi;
use pandare_plugins::Plugins;

const WORKLOAD: &str = "for i in 1 2 3 4 5 6 7 8 9 10; do busybox true; ls /proc > /dev/null; done";

fn console(config: &MachineConfig) -> Console {
    let mut store = SnapshotStore::for_guest(config, Some("riscv64"));
    let snapshot = store
        .load("root")
        .expect("a root snapshot of the riscv64 image: run `panda run riscv64` once");
    let mut machine = config.build_blank().unwrap();
    machine.load_snapshot(&snapshot).unwrap();
    Console::new(machine, config.prompt_regex().unwrap())
}

fn summary(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let micros = |duration: Duration| duration.as_secs_f64() * 1e6;
    println!(
        "{name:<28} min {:>9.1} µs  median {:>9.1} µs  max {:>9.1} µs  ({} runs)",
        micros(times[0]),
        micros(times[times.len() / 2]),
        micros(times[times.len() - 1]),
        times.len()
    );
}

fn time(
    console: &mut Console,
    runs: usize,
    mut call: impl FnMut(&mut dyn GuestCpu) -> usize,
) -> (Vec<Duration>, usize) {
    let mut times = Vec::with_capacity(runs);
    let mut size = 0;
    console.machine().with_cpu(&mut |cpu| {
        for _ in 0..runs {
            let start = Instant::now();
            size = std::hint::black_box(call(cpu));
            times.push(start.elapsed());
        }
    });
    (times, size)
}

fn main() {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image: run `panda image build riscv64`");
    let mut guest = console(&config);
    let mut plugins = Plugins::new();
    plugins.set_kernel_image(&config.kernel);
    let started = Instant::now();
    plugins
        .load(guest.machine().instrumentation(), "osi", [])
        .unwrap();
    println!(
        "profile derivation and plugin load: {:.0} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    let api: OsiApi = plugins.api("osi").unwrap();
    // Run a little so that the machine is at its prompt in a settled state.
    guest
        .run_command("echo ready", 60 * UNITS_PER_SECOND)
        .unwrap();
    let shell = guest.machine_shell_task(&api);

    let (times, _) = time(&mut guest, 2000, |cpu| {
        api.current_task(cpu).unwrap() as usize
    });
    summary("current task (registers)", times);
    let (times, _) = time(&mut guest, 2000, |cpu| {
        api.current_process(cpu).unwrap().pid as usize
    });
    summary("current process", times);
    let (times, count) = time(&mut guest, 300, |cpu| api.processes(cpu).unwrap().len());
    summary(&format!("process list ({count})"), times);
    let (times, count) = time(&mut guest, 300, |cpu| {
        api.mappings(cpu, shell).unwrap().len()
    });
    summary(&format!("shell mappings ({count})"), times);
    let (times, count) = time(&mut guest, 300, |cpu| api.fds(cpu, shell).unwrap().len());
    summary(&format!("shell fds ({count})"), times);

    // on_task_change's cost on a workload: none, the hook, the per-block compare.
    for (label, spec) in [
        ("no osi", None),
        ("osi task_change=hook", Some("hook")),
        ("osi task_change=blocks", Some("blocks")),
    ] {
        let mut times = Vec::new();
        let mut report = String::new();
        for _ in 0..3 {
            let mut guest = console(&config);
            let mut plugins = Plugins::new();
            plugins.set_kernel_image(&config.kernel);
            if let Some(method) = spec {
                plugins
                    .load(
                        guest.machine().instrumentation(),
                        "osi",
                        [("task_change".to_string(), method.to_string())],
                    )
                    .unwrap();
            }
            let start = Instant::now();
            guest.run_command(WORKLOAD, 120 * UNITS_PER_SECOND).unwrap();
            times.push(start.elapsed());
            if spec.is_some() {
                report = plugins
                    .unload(guest.machine().instrumentation(), "osi")
                    .unwrap();
            }
        }
        times.sort();
        println!(
            "workload, {label:<24} min {:.3} s  median {:.3} s  max {:.3} s  {report}",
            times[0].as_secs_f64(),
            times[1].as_secs_f64(),
            times[2].as_secs_f64()
        );
    }
}

trait ShellTask {
    fn machine_shell_task(&mut self, api: &OsiApi) -> u64;
}

impl ShellTask for Console {
    /// The task of the shell (`sh`, pid 1 in this image's initrd).
    fn machine_shell_task(&mut self, api: &OsiApi) -> u64 {
        let mut task = 0;
        self.machine().with_cpu(&mut |cpu| {
            task = api
                .processes(cpu)
                .unwrap()
                .iter()
                .find(|process| process.name == b"sh")
                .expect("a shell")
                .task;
        });
        task
    }
}
