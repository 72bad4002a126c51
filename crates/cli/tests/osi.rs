//! OS introspection through the CLI: `--panda osi` and `coverage`'s `osi-block` mode on a
//! live run, the recording carrying the kernel's profile, its replay needing nothing else
//! and giving the same records, and a damaged profile refused clearly.

mod common;

use std::collections::BTreeSet;

use common::{generic_image, panda, run, TempDir, BOOT_LIMIT, QUICK_LIMIT};

/// The records of an `osi-block` coverage file, after checking its two header lines.
fn osi_records(path: &std::path::Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("osi-block"));
    assert_eq!(
        lines.next(),
        Some("process name,process id,thread id,in kernel,block address,block size")
    );
    lines.map(str::to_string).collect()
}

#[test]
fn osi_block_coverage_live_and_replayed_from_the_recorded_profile() {
    generic_image();
    let directory = TempDir::new("osi");
    let name = directory.path("osi").display().to_string();
    let live_csv = directory.path("live.csv");
    let replay_csv = directory.path("replay.csv");

    let mut record = panda();
    record.args(["run", "--generic", "riscv64", "--record", &name]);
    record.args(["--panda", "osi"]);
    record.args([
        "--panda",
        &format!(
            "coverage:mode=osi-block,privilege=user,filename={}",
            live_csv.display()
        ),
    ]);
    // A script, so the program has a name of its own (busybox runs applets such as cat
    // inside the shell).
    record.args([
        "--cmd",
        "printf '#!/bin/sh\\nread v < /proc/version\\n' > /tmp/covprog; chmod +x /tmp/covprog",
        "--cmd",
        "/tmp/covprog",
    ]);
    let recorded = run(record, BOOT_LIMIT);
    assert!(recorded.status.success(), "{}", recorded.stderr);
    assert!(
        !recorded.stderr.contains("carries no kernel profile"),
        "{}",
        recorded.stderr
    );
    let live = osi_records(&live_csv);
    let program: Vec<&String> = live.iter().filter(|r| r.starts_with("covprog,")).collect();
    assert!(
        !program.is_empty(),
        "no block of covprog in {} records",
        live.len()
    );
    for record in &program {
        let fields: Vec<&str> = record.split(',').collect();
        assert_eq!(fields.len(), 6, "{record}");
        assert_eq!(fields[1], fields[2], "covprog is single-threaded: {record}");
        assert_eq!(fields[3], "0", "privilege=user: {record}");
        assert!(fields[4].starts_with("0x"), "{record}");
    }

    // The recording carries the profile.
    let path = directory.path("osi.recording");
    let recording = pandare::replay::read_recording(&path).unwrap();
    let profile = recording
        .kernel_profile
        .clone()
        .expect("no profile recorded");
    pandare_osi::Profile::from_bytes(&profile).expect("the recorded profile reads back");

    let mut replay = panda();
    replay.args(["replay", &name, "--verify"]);
    replay.args([
        "--panda",
        &format!(
            "coverage:mode=osi-block,privilege=user,filename={}",
            replay_csv.display()
        ),
    ]);
    let replayed = run(replay, BOOT_LIMIT);
    assert!(replayed.status.success(), "{}", replayed.stderr);
    let again = osi_records(&replay_csv);
    // The recording starts at the command's Enter key: the replay sees part of the run.
    assert!(again.is_subset(&live), "{:?}", again.difference(&live));
    assert!(again.iter().any(|r| r.starts_with("covprog,")));

    // A damaged profile is refused with a clear error.
    let mut damaged = recording;
    damaged.kernel_profile = Some(b"not a profile".to_vec());
    let damaged_path = directory.path("damaged.recording");
    pandare::replay::write_recording(&damaged_path, &damaged).unwrap();
    let mut command = panda();
    command.args([
        "replay",
        &damaged_path.display().to_string(),
        "--panda",
        "osi",
    ]);
    let result = run(command, QUICK_LIMIT);
    assert!(!result.status.success());
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    assert!(
        result.stderr.contains("kernel profile") && result.stderr.contains("damaged"),
        "{}",
        result.stderr
    );

    // Without a profile, a replay still runs, and OSI plugins say why they cannot load.
    let mut bare = damaged;
    bare.kernel_profile = None;
    let bare_path = directory.path("bare.recording");
    pandare::replay::write_recording(&bare_path, &bare).unwrap();
    let mut command = panda();
    command.args(["replay", &bare_path.display().to_string(), "--panda", "osi"]);
    let result = run(command, QUICK_LIMIT);
    assert!(!result.status.success());
    assert!(
        result.stderr.contains("carries no kernel profile"),
        "{}",
        result.stderr
    );
    let mut command = panda();
    command.args(["replay", &bare_path.display().to_string(), "--verify"]);
    assert!(run(command, BOOT_LIMIT).status.success());
}
