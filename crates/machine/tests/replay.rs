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

mod with_callbacks {
    use super::*;
    use pandare::Machine;
    use pandare_core::instrument::Callback;
    use pandare_core::Fnv64;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    /// What one replay saw.
    #[derive(Debug, PartialEq, Eq)]
    struct Observed {
        instructions: u64,
        output: Vec<u8>,
        block_trace: Option<u64>,
        blocks: u64,
    }

    fn replay_with(
        recording: &replay::Recording,
        machine: &mut dyn Machine,
        blocks: bool,
        instructions: bool,
    ) -> (Observed, u64) {
        let trace = Arc::new(Mutex::new((Fnv64::default(), 0u64)));
        let executed = Arc::new(AtomicU64::new(0));
        let instrumentation = machine.instrumentation();
        if blocks {
            let trace = Arc::clone(&trace);
            instrumentation
                .register(
                    "block-trace",
                    Callback::BeforeBlockExec(Box::new(move |_cpu, block| {
                        let mut trace = trace.lock().unwrap();
                        trace.0.word(block.pc);
                        trace.0.word(block.size);
                        trace.1 += 1;
                    })),
                )
                .unwrap();
        }
        if instructions {
            instrumentation
                .register(
                    "select-all",
                    Callback::InsnTranslate(Box::new(|_cpu, _pc| true)),
                )
                .unwrap();
            let executed = Arc::clone(&executed);
            instrumentation
                .register(
                    "count",
                    Callback::InsnExec(Box::new(move |_cpu, _pc| {
                        executed.fetch_add(1, Ordering::Relaxed);
                    })),
                )
                .unwrap();
        }
        let mut output = Vec::new();
        let report = replay::replay(recording, machine, &mut |bytes| {
            output.extend_from_slice(bytes);
        })
        .unwrap();
        assert!(report.output_matches);
        for name in ["block-trace", "select-all", "count"] {
            let _ = machine.instrumentation().delete(name);
        }
        let (hash, count) = *trace.lock().unwrap();
        let executed = executed.load(Ordering::Relaxed);
        (
            Observed {
                instructions: report.instructions,
                output,
                block_trace: blocks.then(|| hash.finish()),
                blocks: count,
            },
            executed,
        )
    }

    #[test]
    fn replays_with_no_block_or_per_instruction_callbacks_agree_exactly() {
        let (config, recording, _) = record();
        let mut machine = config.build_blank().unwrap();
        let (plain, _) = replay_with(&recording, machine.as_mut(), false, false);
        let (blocks, _) = replay_with(&recording, machine.as_mut(), true, false);
        let (both, executed) = replay_with(&recording, machine.as_mut(), true, true);

        assert_eq!(plain.instructions, blocks.instructions);
        assert_eq!(plain.output, blocks.output);
        assert_eq!(
            blocks, both,
            "per-instruction callbacks changed the block trace"
        );
        assert!(blocks.blocks > 100_000, "only {} blocks", blocks.blocks);
        let replayed = recording.end().unwrap().instructions - recording_start(&recording);
        assert!(
            executed >= replayed,
            "insn_exec fired {executed} times for {replayed} retired instructions"
        );
    }

    fn recording_start(recording: &replay::Recording) -> u64 {
        recording
            .events
            .iter()
            .find_map(|event| match event {
                Event::Checkpoint(checkpoint) => Some(checkpoint.instructions),
                _ => None,
            })
            .unwrap()
    }
}

/// A replay driven a slice at a time by a [`replay::Replayer`] stops where a callback asks
/// it to, and, driven on to its end, is the same replay as [`replay::replay`] in one call.
#[test]
fn a_replay_in_slices_stops_when_asked_and_otherwise_is_the_same_replay() {
    use pandare_core::instrument::Callback;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    let (config, recording, _) = record();
    let mut machine = config.build_blank().unwrap();
    let whole = replay::replay(&recording, machine.as_mut(), &mut |_| {}).unwrap();

    let blocks = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&blocks);
    machine
        .instrumentation()
        .register(
            "stop-at-1000",
            Callback::BeforeBlockExec(Box::new(move |cpu, _block| {
                if counter.fetch_add(1, Ordering::Relaxed) + 1 == 1000 {
                    cpu.request_stop();
                }
            })),
        )
        .unwrap();
    let mut output = Vec::new();
    let mut replayer = replay::Replayer::start(&recording, machine.as_mut()).unwrap();
    let first = replayer
        .run(machine.as_mut(), u64::MAX, &mut |bytes| {
            output.extend_from_slice(bytes);
        })
        .unwrap();
    assert_eq!(first, replay::Progress::Running);
    assert_eq!(blocks.load(Ordering::Relaxed), 1000, "the stop came late");
    let stopped_at = replayer.instructions_replayed(machine.as_ref());
    assert!(stopped_at > 0 && stopped_at < whole.instructions_replayed);

    // On to the end, 1 ms of virtual time at a time.
    let mut slices = 0;
    let report = loop {
        match replayer
            .run(machine.as_mut(), 1_000_000, &mut |bytes| {
                output.extend_from_slice(bytes);
            })
            .unwrap()
        {
            replay::Progress::Running => slices += 1,
            replay::Progress::Finished(report) => break report,
        }
    };
    assert!(slices > 100, "only {slices} slices");
    assert_eq!(report, whole);
    assert!(report.output_matches);
}

/// PANDA's replay-time serial callbacks: every recorded input byte enters the UART's
/// receive FIFO and is read by the guest; every byte the guest writes is sent, and what is
/// sent is the replay's console output. Outside a replay they do not fire.
#[test]
fn replay_serial_callbacks_see_the_input_and_the_output() {
    use pandare_core::instrument::Callback;
    use std::sync::{Arc, Mutex};

    let (config, recording, _) = record();
    let mut machine = config.build_blank().unwrap();
    #[derive(Default, Debug)]
    struct Seen {
        received: Vec<u8>,
        read: Vec<u8>,
        written: Vec<u8>,
        sent: Vec<u8>,
        addresses: Vec<(u64, u64)>,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let instrumentation = machine.instrumentation();
    let s = Arc::clone(&seen);
    instrumentation
        .register(
            "receive",
            Callback::ReplaySerialReceive(Box::new(move |_, _, value| {
                s.lock().unwrap().received.push(value);
            })),
        )
        .unwrap();
    let s = Arc::clone(&seen);
    instrumentation
        .register(
            "read",
            Callback::ReplaySerialRead(Box::new(move |_, fifo, port, value| {
                let mut seen = s.lock().unwrap();
                seen.read.push(value);
                seen.addresses.push((fifo, port));
            })),
        )
        .unwrap();
    let s = Arc::clone(&seen);
    instrumentation
        .register(
            "write",
            Callback::ReplaySerialWrite(Box::new(move |_, _, _, value| {
                s.lock().unwrap().written.push(value);
            })),
        )
        .unwrap();
    let s = Arc::clone(&seen);
    instrumentation
        .register(
            "send",
            Callback::ReplaySerialSend(Box::new(move |_, _, value| {
                s.lock().unwrap().sent.push(value);
            })),
        )
        .unwrap();

    let mut output = Vec::new();
    let report = replay::replay(&recording, machine.as_mut(), &mut |bytes| {
        output.extend_from_slice(bytes);
    })
    .unwrap();
    assert!(report.output_matches);
    let typed: Vec<u8> = recording
        .events
        .iter()
        .filter_map(|event| match event {
            Event::Input { bytes, .. } => Some(bytes.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    {
        let seen = seen.lock().unwrap();
        assert!(!typed.is_empty());
        assert_eq!(seen.received, typed);
        assert_eq!(seen.read, typed);
        assert_eq!(seen.written, seen.sent);
        assert_eq!(seen.sent, output);
        assert!(String::from_utf8_lossy(&seen.sent).contains("marker-42"));
        assert!(seen
            .addresses
            .iter()
            .all(|&(fifo, port)| fifo == 0x1000_0000 && port == 0x1000_0000));
    }

    // Live, after the replay: nothing fires.
    let before = seen.lock().unwrap().sent.len();
    machine.console_input(b"echo live\n");
    let end = machine.now() + 50_000_000;
    while machine.now() < end {
        if let pandare::Exit::Idle = machine.run(end - machine.now()) {
            match machine.next_event() {
                Some(time) => machine.skip_to(time.min(end)),
                None => break,
            }
        }
    }
    assert!(String::from_utf8_lossy(&machine.take_console_output()).contains("live"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.sent.len(), before);
    assert_eq!(seen.received.len(), typed.len());
}
