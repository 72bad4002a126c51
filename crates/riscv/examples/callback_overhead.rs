//! What PANDA's callbacks cost: boots the generic riscv64 image for a fixed number of
//! instructions with no callbacks, with one empty `before_block_exec`, with one empty
//! `insn_exec` on every instruction and with one address hook that never fires, and prints
//! instructions per second and the ratios.
//!
//! ```text
//! cargo run --release -p pandare-riscv --example callback_overhead [instructions] [rounds] [runs]
//! ```
//!
//! Times are the CPU time of the machine's thread (wall time where that is not available).
//! With `rounds` > 1 the runs alternate that many times and the ratios compare the best
//! time of each (the development machine is shared and noisy). `runs` picks some of them by
//! number (`01` = no callbacks and the block callback), for profiling one.
//!
//! Needs the cached image (`panda image build riscv64`, or any `panda run --generic
//! riscv64`).

use std::time::Instant;

use pandare_core::instrument::{AddressHook, Callback};
use pandare_core::{Exit, Machine};
use pandare_riscv::{Virt, VirtConfig, VirtMachine};

/// CPU time this thread has used, in seconds (Linux; `None` elsewhere). On a shared machine
/// it is steadier than wall time, which also counts time spent waiting for a core.
fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // The kernel reports USER_HZ ticks, 100 per second on every Linux platform.
    Some(ticks as f64 / 100.0)
}

/// Registers the callbacks of one run.
type Setup = dyn Fn(&mut VirtMachine);

fn boot(
    kernel: &[u8],
    initrd: &[u8],
    append: &str,
    instructions: u64,
    setup: &Setup,
) -> (f64, u64) {
    let config = VirtConfig {
        ram_bytes: 512 << 20,
        command_line: append.to_string(),
        ..Default::default()
    };
    let mut machine = Virt::new_linux(config, kernel, Some(initrd)).expect("machine");
    setup(&mut machine);
    let start = Instant::now();
    let cpu_start = thread_cpu_seconds();
    while machine.instruction_count() < instructions {
        let left = instructions - machine.instruction_count();
        match machine.run(left.min(50_000_000)) {
            Exit::BudgetExhausted => {}
            Exit::Idle => match machine.next_event() {
                Some(time) => machine.skip_to(time),
                None => break,
            },
            other => panic!("the guest stopped early: {other:?}"),
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let seconds = match (cpu_start, thread_cpu_seconds()) {
        (Some(begin), Some(end)) if end > begin => end - begin,
        _ => wall,
    };
    (seconds, machine.instruction_count())
}

fn main() {
    let instructions: u64 = std::env::args()
        .nth(1)
        .map(|text| text.parse().expect("instruction count"))
        .unwrap_or(1_200_000_000);
    let Some(image) = pandare_images::cached("riscv64") else {
        eprintln!("the riscv64 generic image is not cached: run `panda run --generic riscv64 --cmd true` once");
        std::process::exit(2);
    };
    let kernel = std::fs::read(&image.kernel).expect("kernel");
    let initrd = std::fs::read(&image.initrd).expect("initrd");
    let rounds: usize = std::env::args()
        .nth(2)
        .map(|text| text.parse().expect("rounds"))
        .unwrap_or(1);
    let picked = std::env::args()
        .nth(3)
        .unwrap_or_else(|| "0123".to_string());
    let runs: [(&str, &Setup); 4] = [
        ("no callbacks", &|_| {}),
        ("empty before_block_exec", &|machine| {
            machine
                .instrumentation()
                .register("empty", Callback::BeforeBlockExec(Box::new(|_, _| {})))
                .unwrap();
        }),
        ("empty insn_exec on every instruction", &|machine| {
            let instr = machine.instrumentation();
            instr
                .register("select", Callback::InsnTranslate(Box::new(|_, _| true)))
                .unwrap();
            instr
                .register("empty", Callback::InsnExec(Box::new(|_, _| {})))
                .unwrap();
        }),
        ("an address hook that never fires", &|machine| {
            machine
                .instrumentation()
                .add_hook("never", AddressHook::at(0), Box::new(|_, _| {}))
                .unwrap();
        }),
    ];
    let mut best = [f64::INFINITY; 4];
    let mut retired = [0u64; 4];
    for round in 0..rounds {
        for (number, (label, setup)) in runs.iter().enumerate() {
            if !picked.contains(char::from(b'0' + number as u8)) {
                continue;
            }
            let (seconds, count) = boot(&kernel, &initrd, &image.append, instructions, setup);
            best[number] = best[number].min(seconds);
            retired[number] = count;
            if rounds > 1 {
                println!("round {round}: {label:<40} {seconds:.2} s");
            }
        }
    }
    for (number, (label, _)) in runs.iter().enumerate() {
        if !best[number].is_finite() {
            continue;
        }
        let seconds = best[number];
        let mips = retired[number] as f64 / seconds / 1e6;
        println!(
            "{label:<40} {} instructions in {seconds:.2} s: {mips:.0} MIPS, {:.2}x the time of no callbacks",
            retired[number],
            seconds / best[0]
        );
    }
}
