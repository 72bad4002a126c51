//! User-mode counters on the Linux guest (issue 15), as on a board under OpenSBI: `time`
//! works, Linux's `scounteren` (read from `info registers`) opens only `time` to user mode
//! until `perf_user_access` is 2, `cycle` and `instret` stay stopped after the PMU driver's
//! boot-time stop, and a recorded session replays with the same counter values.

mod guest;

use guest::{guest_config, run_marked, unavailable};
use pandare::console::UNITS_PER_SECOND;
use pandare::replay;
use pandare::Console;

/// A register's value from the register dump (`info registers`: `name  hex`).
fn dumped(console: &mut Console, name: &str) -> u64 {
    let mut dump = String::new();
    console
        .machine()
        .with_cpu(&mut |cpu| dump = cpu.abi().dump(cpu));
    let after = dump
        .split_once(&format!("{name} "))
        .unwrap_or_else(|| panic!("no {name} in {dump}"))
        .1
        .trim_start();
    u64::from_str_radix(&after[..16], 16).unwrap()
}

#[test]
fn user_mode_reads_time_and_reads_cycle_and_instret_only_when_allowed() {
    let config = match guest_config() {
        Ok(config) => config,
        Err(reason) => return unavailable(&reason),
    };
    let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    console.wait_for_prompt(180 * UNITS_PER_SECOND).unwrap();
    let mut index = 0;
    let mut run = |console: &mut Console, command: &str| {
        index += 1;
        run_marked(console, index, command, 60)
    };

    // What Linux 6.12's SBI PMU driver leaves: user mode may read `time` only.
    assert_eq!(dumped(&mut console, "scounteren"), 0x2);
    assert_eq!(dumped(&mut console, "mcounteren"), 0xffff_ffff);
    // Its boot-time stop of every counter stopped cycle (bit 0) and instret (bit 2).
    assert_eq!(dumped(&mut console, "mcountinhibit") & 0b111, 0b101);

    for command in ["time true", "busybox time true"] {
        let outcome = run(&mut console, command);
        assert_eq!(outcome.status, Some(0), "{command}: {outcome:?}");
        let lines: Vec<&str> = outcome.output.lines().collect();
        assert_eq!(lines.len(), 3, "{command}: {outcome:?}");
        for (line, name) in lines.iter().zip(["real", "user", "sys"]) {
            assert!(
                line.starts_with(name) && line.ends_with('s'),
                "{command}: {outcome:?}"
            );
        }
    }

    let time = run(&mut console, "probe t");
    assert_eq!(time.status, Some(0), "{time:?}");
    assert!(time.output.ends_with(" increased\n"), "{time:?}");
    for counter in ["c", "i", "3"] {
        let outcome = run(&mut console, &format!("probe {counter}"));
        assert_eq!(outcome.status, Some(128 + 4), "{counter}: {outcome:?}");
        assert_eq!(outcome.output, "Illegal instruction\n", "{counter}");
    }

    // Legacy access: cycle, time and instret, and still no programmable counter.
    let legacy = run(&mut console, "echo 2 > /proc/sys/kernel/perf_user_access");
    assert_eq!(legacy.status, Some(0), "{legacy:?}");
    assert_eq!(dumped(&mut console, "scounteren"), 0x7);
    for counter in ["c", "i"] {
        let outcome = run(&mut console, &format!("probe {counter}"));
        assert_eq!(outcome.status, Some(0), "{counter}: {outcome:?}");
        // Stopped at boot, as under OpenSBI: two reads 20000 instructions apart agree.
        assert!(
            outcome.output.ends_with(" same\n"),
            "{counter}: {outcome:?}"
        );
    }
    assert_eq!(run(&mut console, "probe 3").status, Some(128 + 4));

    let back = run(&mut console, "echo 1 > /proc/sys/kernel/perf_user_access");
    assert_eq!(back.status, Some(0), "{back:?}");
    assert_eq!(dumped(&mut console, "scounteren"), 0x2);
}

#[test]
fn counter_values_are_the_same_in_a_recording_and_its_replays() {
    let config = match guest_config() {
        Ok(config) => config,
        Err(reason) => return unavailable(&reason),
    };
    let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    console.wait_for_prompt(180 * UNITS_PER_SECOND).unwrap();
    console.start_recording();
    let mut recorded = String::new();
    for (index, command) in [
        "probe t; probe t",
        "echo 2 > /proc/sys/kernel/perf_user_access; probe c; probe i; probe t",
    ]
    .into_iter()
    .enumerate()
    {
        let outcome = run_marked(&mut console, index, command, 60);
        assert_eq!(outcome.status, Some(0), "{command}: {outcome:?}");
        recorded += &outcome.output;
    }
    // The values themselves are in the output, so equal outputs mean equal values.
    assert_eq!(recorded.matches(" increased\n").count(), 3, "{recorded}");
    let recording = console
        .finish_recording(config.memory_mib, &config.append)
        .unwrap();

    let mut machine = config.build_blank().unwrap();
    for _ in 0..2 {
        let mut output = Vec::new();
        let result = replay::replay(&recording, machine.as_mut(), &mut |bytes| {
            output.extend_from_slice(bytes);
        })
        .unwrap();
        assert!(result.output_matches, "the replay's output differs");
        let text = pandare::console::strip_terminal_codes(&output);
        for line in recorded.lines() {
            assert!(
                text.contains(line),
                "{line:?} missing from the replay:\n{text}"
            );
        }
    }
}
