//! `panda run --record` and `panda replay` through the real binary, the root snapshot, and
//! damaged recordings and snapshots: each a clear one-line error, never a panic.

mod common;

use common::{generic_image, panda, run, TempDir, BOOT_LIMIT, QUICK_LIMIT};

fn assert_clear_failure(result: &common::Run, expected: &str) {
    assert!(!result.status.success(), "succeeded:\n{}", result.stderr);
    assert!(!result.stderr.contains("panicked"), "{}", result.stderr);
    assert!(
        result.stderr.contains("panda: error:") && result.stderr.contains(expected),
        "expected {expected:?} in:\n{}",
        result.stderr
    );
}

#[test]
fn a_recorded_run_replays_and_damaged_recordings_are_refused() {
    generic_image();
    let directory = TempDir::new("recordings");
    let name = directory.path("session").display().to_string();

    let mut record = panda();
    record.args(["run", "--generic", "riscv64", "--stats", "--record", &name]);
    record.args([
        "--cmd",
        "echo recorded-$((6*7))",
        "--cmd",
        "ls /proc | wc -l",
    ]);
    let recorded = run(record, BOOT_LIMIT);
    assert!(recorded.status.success(), "{}", recorded.stderr);
    assert!(
        recorded.stdout.starts_with("recorded-42\n"),
        "{}",
        recorded.stdout
    );

    let mut replay = panda();
    replay.args(["replay", &name, "--verify", "--console"]);
    let replayed = run(replay, BOOT_LIMIT);
    assert!(replayed.status.success(), "{}", replayed.stderr);
    assert!(
        replayed.stdout.contains("recorded-42"),
        "{}",
        replayed.stdout
    );
    assert!(
        replayed.stderr.contains("checkpoints matched"),
        "{}",
        replayed.stderr
    );
    assert!(
        replayed.stderr.contains("console output matched"),
        "{}",
        replayed.stderr
    );

    let file = directory.path("session.recording");
    let bytes = std::fs::read(&file).unwrap();

    let truncated = directory.path("truncated.recording");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let mut command = panda();
    command.args(["replay", &truncated.display().to_string()]);
    assert_clear_failure(&run(command, QUICK_LIMIT), "truncated");

    let mut flipped = bytes.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x10;
    let damaged = directory.path("flipped.recording");
    std::fs::write(&damaged, &flipped).unwrap();
    let mut command = panda();
    command.args(["replay", &damaged.display().to_string()]);
    assert_clear_failure(&run(command, QUICK_LIMIT), "damaged");

    let mut command = panda();
    command.args(["replay", &directory.path("nothing").display().to_string()]);
    assert_clear_failure(&run(command, QUICK_LIMIT), "no recording");
}

#[test]
fn loadvm_of_a_missing_or_damaged_snapshot_is_a_clear_error() {
    generic_image();
    let mut command = panda();
    command.args([
        "run",
        "--generic",
        "riscv64",
        "--loadvm",
        "no-such-snapshot",
        "--cmd",
        "true",
    ]);
    assert_clear_failure(
        &run(command, QUICK_LIMIT),
        "no snapshot named 'no-such-snapshot'",
    );

    // A damaged file under a snapshot name: the store reads it and refuses it.
    let directory = pandare_images::cache_root()
        .join("snapshots")
        .join("riscv64");
    std::fs::create_dir_all(&directory).unwrap();
    let path = directory.join(format!("damaged-{}.snapshot", std::process::id()));
    std::fs::write(&path, b"\x89PANDARE not really").unwrap();
    let name = path.file_stem().unwrap().to_str().unwrap().to_string();
    let mut command = panda();
    command.args([
        "run",
        "--generic",
        "riscv64",
        "--loadvm",
        &name,
        "--cmd",
        "true",
    ]);
    let result = run(command, QUICK_LIMIT);
    let _ = std::fs::remove_file(&path);
    assert_clear_failure(&result, &name);
}
