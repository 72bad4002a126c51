//! A determinism probe for refactors of the executor: prints figures that must not change
//! when the code that runs the guest is reorganised.
//!
//! ```text
//! PANDARE_CACHE_DIR=... cargo run --release -p pandare --example exec_probe [full_instructions]
//! ```
//!
//! 1. `plain`: the generic riscv64 image booted to the prompt with no callbacks, then a
//!    command: instruction counts, state hashes and a hash of the console output.
//! 2. `block`: the same boot with one `before_block_exec` (the executor's block-start loop),
//!    hashing every block's pc, size and instruction count.
//! 3. `full`: the first `full_instructions` (default 2 × 10^8) of the boot with block,
//!    memory, exception, interrupt and ASID callbacks (the fully instrumented loop), hashing
//!    everything they are told.

use std::sync::{Arc, Mutex};

use pandare::console::{Console, UNITS_PER_SECOND};
use pandare::{Exit, MachineConfig};
use pandare_core::instrument::{BlockInfo, Callback};
use pandare_core::Fnv64;

type Trace = Arc<Mutex<(Fnv64, u64)>>;

fn mix(trace: &Trace, words: &[u64]) {
    let mut guard = trace
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for &word in words {
        guard.0.word(word);
    }
    guard.1 += 1;
}

fn block_words(block: &BlockInfo) -> [u64; 3] {
    [block.pc, block.size, u64::from(block.instruction_count)]
}

fn show(name: &str, trace: &Trace) {
    let guard = trace
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    println!("{name}: events {} hash {:016x}", guard.1, guard.0.finish());
}

fn main() {
    let full_instructions: u64 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("full_instructions is a number"))
        .unwrap_or(200_000_000);
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image (panda image build riscv64)");
    let prompt = config.prompt_regex().unwrap();
    let limit = 120 * UNITS_PER_SECOND;

    // 1. No callbacks.
    let mut console = Console::new(config.build().unwrap(), prompt.clone());
    let boot = console.wait_for_prompt(limit).expect("boots");
    let machine = console.machine();
    println!(
        "plain: prompt at {} instructions, state {:016x}, boot output {:016x}",
        machine.instruction_count(),
        machine.state_hash(),
        {
            let mut hash = Fnv64::default();
            hash.bytes(&boot);
            hash.finish()
        }
    );
    let output = console
        .run_command(
            "echo $((6*7)); ls -R /sys/kernel | wc -l; cat /proc/uptime",
            limit,
        )
        .expect("command runs");
    let machine = console.machine();
    println!(
        "plain: after command {} instructions, state {:016x}, output {:?}",
        machine.instruction_count(),
        machine.state_hash(),
        output
    );

    // 2. One before_block_exec.
    let blocks: Trace = Arc::default();
    let mut machine = config.build().unwrap();
    let trace = Arc::clone(&blocks);
    machine
        .instrumentation()
        .register(
            "blocks",
            Callback::BeforeBlockExec(Box::new(move |_, block| mix(&trace, &block_words(block)))),
        )
        .unwrap();
    let mut console = Console::new(machine, prompt);
    console.wait_for_prompt(limit).expect("boots");
    let machine = console.machine();
    println!(
        "block: prompt at {} instructions, state {:016x}",
        machine.instruction_count(),
        machine.state_hash()
    );
    show("block: before_block_exec", &blocks);

    // 3. Everything that fires inside the loop.
    let mut machine = config.build().unwrap();
    let traces: Vec<(&str, Trace)> = [
        "before_block_exec",
        "after_block_exec",
        "memory",
        "exceptions",
        "interrupts",
        "asid",
    ]
    .into_iter()
    .map(|name| (name, Trace::default()))
    .collect();
    let instr = machine.instrumentation();
    let t = Arc::clone(&traces[0].1);
    instr
        .register(
            "before",
            Callback::BeforeBlockExec(Box::new(move |_, block| mix(&t, &block_words(block)))),
        )
        .unwrap();
    let t = Arc::clone(&traces[1].1);
    instr
        .register(
            "after",
            Callback::AfterBlockExec(Box::new(move |cpu, block, code| {
                let mut words = block_words(block).to_vec();
                words.extend([u64::from(code), cpu.pc(), cpu.instruction_count()]);
                mix(&t, &words);
            })),
        )
        .unwrap();
    let t = Arc::clone(&traces[2].1);
    instr
        .register(
            "read",
            Callback::VirtMemAfterRead(Box::new(move |_, pc, addr, size, data| {
                mix(
                    &t,
                    &[
                        1,
                        pc,
                        addr,
                        size as u64,
                        pandare_core::instrument::data_value(data),
                    ],
                );
            })),
        )
        .unwrap();
    let t = Arc::clone(&traces[2].1);
    instr
        .register(
            "write",
            Callback::PhysMemBeforeWrite(Box::new(move |_, pc, addr, size, data| {
                mix(
                    &t,
                    &[
                        2,
                        pc,
                        addr,
                        size as u64,
                        pandare_core::instrument::data_value(data),
                    ],
                );
            })),
        )
        .unwrap();
    let t = Arc::clone(&traces[3].1);
    instr
        .register(
            "exception",
            Callback::BeforeHandleException(Box::new(move |cpu, index| {
                mix(&t, &[index as u64, cpu.pc(), cpu.instruction_count()]);
                index
            })),
        )
        .unwrap();
    let t = Arc::clone(&traces[4].1);
    instr
        .register(
            "interrupt",
            Callback::BeforeHandleInterrupt(Box::new(move |cpu, index| {
                mix(&t, &[index as u64, cpu.pc(), cpu.instruction_count()]);
                index
            })),
        )
        .unwrap();
    let t = Arc::clone(&traces[5].1);
    instr
        .register(
            "asid",
            Callback::AsidChanged(Box::new(move |cpu, old, new| {
                mix(&t, &[old, new, cpu.pc()]);
                false
            })),
        )
        .unwrap();
    while machine.instruction_count() < full_instructions {
        let left = full_instructions - machine.instruction_count();
        match machine.run(left.min(10_000_000)) {
            Exit::BudgetExhausted => {}
            Exit::Idle => {
                let next = machine.next_event().expect("a timer is armed");
                machine.skip_to(next);
            }
            other => panic!("unexpected exit {other:?}"),
        }
        machine.take_console_output();
    }
    println!(
        "full: {} instructions, now {}, state {:016x}",
        machine.instruction_count(),
        machine.now(),
        machine.state_hash()
    );
    for (name, trace) in &traces {
        show(&format!("full: {name}"), trace);
    }
}
