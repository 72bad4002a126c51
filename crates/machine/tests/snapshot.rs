//! Snapshots of a running Linux guest: loading one brings back the guest's files, and
//! reverting again and again leaves a machine that still runs commands correctly.

use std::time::Instant;

use pandare::console::{Console, UNITS_PER_SECOND};
use pandare::MachineConfig;

fn booted() -> Console {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`");
    let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    console.wait_for_prompt(60 * UNITS_PER_SECOND).unwrap();
    console
}

fn run(console: &mut Console, command: &str) -> String {
    console.run_command(command, 60 * UNITS_PER_SECOND).unwrap()
}

#[test]
fn loading_a_snapshot_restores_file_contents_and_survives_many_reverts() {
    let mut console = booted();
    assert_eq!(run(&mut console, "echo old > /tmp/file"), "");
    // The snapshot is taken at a prompt, as the generic images' `root` snapshot is.
    let snapshot = console.save_snapshot();
    assert_eq!(
        run(&mut console, "echo new > /tmp/file; cat /tmp/file"),
        "new\n"
    );

    console.load_snapshot(&snapshot).unwrap();
    assert_eq!(run(&mut console, "cat /tmp/file"), "old\n");

    let started = Instant::now();
    for round in 0..100 {
        console.load_snapshot(&snapshot).unwrap();
        if round % 25 == 0 {
            let output = run(
                &mut console,
                &format!("echo {round} >> /tmp/file; cat /tmp/file"),
            );
            assert_eq!(output, format!("old\n{round}\n"));
        }
    }
    eprintln!("100 reverts in {:?}", started.elapsed());
    console.load_snapshot(&snapshot).unwrap();
    assert_eq!(
        run(&mut console, "cat /tmp/file; echo $((6*7))"),
        "old\n42\n"
    );
}

#[test]
fn a_snapshot_does_not_load_into_a_machine_of_another_size() {
    let mut console = booted();
    let snapshot = console.save_snapshot();
    let mut config = MachineConfig::generic("riscv64", &mut |_| {}).unwrap();
    config.memory_mib = 256;
    let mut smaller = config.build().unwrap();
    let error = smaller.load_snapshot(&snapshot).unwrap_err();
    assert!(error.to_string().contains("--mem 512"), "{error}");
}

#[test]
fn a_snapshot_of_another_architecture_or_with_bad_state_is_refused_and_changes_nothing() {
    let mut console = booted();
    let good = console.save_snapshot();
    let foreign = pandare::Snapshot {
        architecture: "x86_64".to_string(),
        ..good.clone()
    };
    let error = console.load_snapshot(&foreign).unwrap_err();
    assert!(error.to_string().contains("x86_64"), "{error}");
    let garbled = pandare::Snapshot {
        state: b"{\"not\": \"a state\"}".to_vec(),
        ..good.clone()
    };
    let error = console.load_snapshot(&garbled).unwrap_err();
    assert!(error.to_string().contains("invalid"), "{error}");
    // The refused loads left the machine as it was: it still runs commands.
    assert_eq!(run(&mut console, "echo $((6*7))"), "42\n");
}
