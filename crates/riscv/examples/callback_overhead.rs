//! What PANDA's callbacks cost: boots the generic riscv64 image for a fixed number of
//! instructions with no callbacks, with one empty `before_block_exec`, and with one empty
//! `insn_exec` on every instruction, and prints instructions per second and the ratios.
//!
//! ```text
//! cargo run --release -p pandare-riscv --example callback_overhead [instructions]
//! ```
//!
//! Needs the cached image (`panda image build riscv64`, or any `panda run --generic
//! riscv64`).

use std::time::Instant;

use pandare_core::instrument::Callback;
use pandare_core::{Exit, Machine};
use pandare_riscv::{VirtConfig, VirtMachine};

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
    let mut machine = VirtMachine::new_linux(config, kernel, Some(initrd)).expect("machine");
    setup(&mut machine);
    let start = Instant::now();
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
    (start.elapsed().as_secs_f64(), machine.instruction_count())
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
    let runs: [(&str, &Setup); 3] = [
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
    ];
    let mut baseline = None;
    for (label, setup) in runs {
        let (seconds, retired) = boot(&kernel, &initrd, &image.append, instructions, setup);
        let mips = retired as f64 / seconds / 1e6;
        let base = *baseline.get_or_insert(seconds);
        println!(
            "{label:<40} {retired} instructions in {seconds:.2} s: {mips:.0} MIPS, {:.2}x the time of no callbacks",
            seconds / base
        );
    }
}
