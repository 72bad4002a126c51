//! Record a session that runs commands, then replay it: same instruction count, same
//! console output, every checkpoint matching; a tampered recording is caught at the
//! first checkpoint that differs.

use pandare::console::{Console, UNITS_PER_SECOND};
use pandare::replay::{self, Event, ReplayError};
use pandare::MachineConfig;

fn config() -> MachineConfig {
    MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`")
}

fn record() -> (MachineConfig, replay::Recording, String) {
    let config = config();
    let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    console.wait_for_prompt(60 * UNITS_PER_SECOND).unwrap();
    console.start_recording();
    let mut output = String::new();
    for command in [
        "echo marker-$((6*7))",
        "ls /proc | wc -l",
        "sleep 1; echo slept",
    ] {
        output += &console.run_command(command, 60 * UNITS_PER_SECOND).unwrap();
    }
    let recording = console
        .finish_recording(config.memory_mib, &config.append)
        .unwrap();
    (config, recording, output)
}

#[test]
fn replays_reproduce_the_recording_exactly_and_tampering_is_detected() {
    let (config, recording, output) = record();
    assert!(output.contains("marker-42"), "{output}");
    assert!(output.contains("slept"), "{output}");
    let checkpoints = recording
        .events
        .iter()
        .filter(|event| matches!(event, Event::Checkpoint(_)))
        .count();
    assert!(checkpoints >= 3, "only {checkpoints} checkpoints");

    let mut first_output = Vec::new();
    let mut machine = config.build_blank().unwrap();
    let first = replay::replay(&recording, machine.as_mut(), &mut |bytes| {
        first_output.extend_from_slice(bytes);
    })
    .unwrap();
    assert!(first.output_matches);
    assert_eq!(first.checkpoints, checkpoints);
    assert_eq!(
        Some(first.instructions),
        recording.end().map(|c| c.instructions)
    );
    assert!(String::from_utf8_lossy(&first_output).contains("marker-42"));

    // Again on the same machine object: a replay starts from the recording's snapshot.
    let second = replay::replay(&recording, machine.as_mut(), &mut |_| {}).unwrap();
    assert_eq!(first, second);

    let mut tampered = recording.clone();
    let middle = tampered
        .events
        .iter()
        .rposition(|event| matches!(event, Event::Checkpoint(_)))
        .unwrap()
        - 1;
    let index = tampered.events[..=middle]
        .iter()
        .filter(|event| matches!(event, Event::Checkpoint(_)))
        .count();
    if let Some(Event::Checkpoint(checkpoint)) = tampered.events[..=middle]
        .iter_mut()
        .rev()
        .find(|event| matches!(event, Event::Checkpoint(_)))
    {
        checkpoint.pc ^= 4;
    }
    let error = replay::replay(&tampered, machine.as_mut(), &mut |_| {}).unwrap_err();
    match error {
        ReplayError::Diverged {
            index: at, what, ..
        } => {
            assert_eq!(at, index - 1);
            assert!(what.contains("pc"), "{what}");
        }
        other => panic!("unexpected error {other}"),
    }
}
