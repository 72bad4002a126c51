//! Determinism of the riscv64 Linux boot: the same guest gives the same instruction count
//! at the prompt and after a command, and how the run is sliced (long budgets, short ones,
//! single instructions) never changes what the machine does.

use pandare::console::{Console, UNITS_PER_SECOND};
use pandare::{Machine, MachineConfig};
use pandare_riscv::{Virt, VirtConfig, VirtMachine};

fn generic_riscv64() -> MachineConfig {
    MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64` (scripts/test.sh does)")
}

fn boot_and_run(config: &MachineConfig) -> (u64, u64, String) {
    let mut console = Console::new(
        config.build().expect("machine builds"),
        config.prompt_regex().unwrap(),
    );
    console
        .wait_for_prompt(60 * UNITS_PER_SECOND)
        .expect("boots to the prompt");
    let at_prompt = console.machine().instruction_count();
    let output = console
        .run_command("echo $((6*7)); cat /proc/uptime", 60 * UNITS_PER_SECOND)
        .expect("command runs");
    (at_prompt, console.machine().instruction_count(), output)
}

#[test]
fn two_boots_reach_the_prompt_and_finish_a_command_at_the_same_instruction_counts() {
    let config = generic_riscv64();
    let first = boot_and_run(&config);
    let second = boot_and_run(&config);
    assert!(
        first.2.starts_with("42\n"),
        "unexpected output {:?}",
        first.2
    );
    assert_eq!(first, second);
}

/// A fingerprint of the architectural state.
fn state(machine: &VirtMachine) -> (u64, u64, [u64; 32], u64) {
    let hart = &machine.cpu.hart;
    let mut registers = [0; 32];
    registers.copy_from_slice(&hart.x[..32]);
    (
        machine.instruction_count(),
        hart.pc,
        registers,
        machine.now(),
    )
}

fn linux_machine(config: &MachineConfig) -> VirtMachine {
    let kernel = std::fs::read(&config.kernel).unwrap();
    let initrd = std::fs::read(config.initrd.as_ref().unwrap()).unwrap();
    let virt = VirtConfig {
        ram_bytes: config.memory_mib << 20,
        // The SBI early console prints the kernel log from the first instructions on, so
        // console output is compared too.
        command_line: format!("{} earlycon=sbi", config.append.replace("quiet", "")),
        ..VirtConfig::default()
    };
    Virt::new_linux(virt, &kernel, Some(&initrd)).unwrap()
}

/// Runs `machine` until virtual time `until`, in slices from `slices` (cycled), skipping
/// idle time like the console does.
fn run_until(machine: &mut VirtMachine, until: u64, slices: &[u64], output: &mut Vec<u8>) {
    let mut turn = 0;
    while machine.now() < until {
        let slice = slices[turn % slices.len()].min(until - machine.now());
        turn += 1;
        match machine.run(slice) {
            pandare::Exit::BudgetExhausted => {}
            pandare::Exit::Idle => {
                let next = machine.next_event().expect("a timer is armed");
                machine.skip_to(next.min(until));
            }
            other => panic!("unexpected exit {other:?}"),
        }
        output.extend(machine.take_console_output());
    }
}

#[test]
fn slicing_the_run_differently_never_changes_the_execution() {
    let config = generic_riscv64();
    // Far enough into the boot to have taken page faults, timer interrupts and console
    // output; the single-step stretch lands in the middle of blocks.
    let until = 300_000_000;
    let mut reference = linux_machine(&config);
    let mut reference_output = Vec::new();
    run_until(&mut reference, until, &[10_000_000], &mut reference_output);

    let mut sliced = linux_machine(&config);
    let mut sliced_output = Vec::new();
    run_until(
        &mut sliced,
        until - 20_000,
        &[999_983, 7, 1_234_567, 13],
        &mut sliced_output,
    );
    run_until(&mut sliced, until, &[1], &mut sliced_output);

    assert_eq!(state(&reference), state(&sliced));
    assert_eq!(reference_output, sliced_output);
    assert!(
        !reference_output.is_empty(),
        "the kernel printed nothing by then"
    );
}
