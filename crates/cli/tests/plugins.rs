//! `--panda` on `panda run` and `panda replay`, and `panda plugins`, on the real binary.

mod common;

use common::{generic_image, panda, run, TempDir, BOOT_LIMIT, QUICK_LIMIT};

#[test]
fn panda_plugins_lists_and_describes_the_plugins() {
    let mut command = panda();
    command.arg("plugins");
    let list = run(command, QUICK_LIMIT);
    assert!(list.status.success(), "{}", list.stderr);
    for name in [
        "asid_instr_count",
        "coverage",
        "hypercaller",
        "pc_search",
        "stringsearch",
    ] {
        assert!(list.stdout.contains(&format!("{name} ")), "{}", list.stdout);
    }
    let mut command = panda();
    command.args(["plugins", "stringsearch"]);
    let one = run(command, QUICK_LIMIT);
    assert!(one.stdout.contains("  str "), "{}", one.stdout);
    assert!(
        one.stdout.contains("PPP callback on_ssm(cpu, pc"),
        "{}",
        one.stdout
    );
    let mut command = panda();
    command.args(["plugins", "nosuch"]);
    let unknown = run(command, QUICK_LIMIT);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(unknown.stderr.contains("the plugins are: asid_instr_count"));
}

#[test]
fn bad_plugins_and_arguments_stop_the_run_before_it_starts() {
    for (spec, expected) in [
        ("covrage", "there is no plugin called \"covrage\""),
        ("coverage:file=x", "it accepts filename, mode"),
        ("coverage:full=maybe", "not true or false"),
        ("pc_search", "no pc to search for"),
    ] {
        let mut command = panda();
        command.args([
            "run",
            "--generic",
            "riscv64",
            "--panda",
            spec,
            "--cmd",
            "true",
        ]);
        let failed = run(command, QUICK_LIMIT);
        assert_eq!(failed.status.code(), Some(1), "{spec}: {}", failed.stderr);
        assert!(
            failed.stderr.starts_with("panda: error: ") && failed.stderr.contains(expected),
            "{spec}: {}",
            failed.stderr
        );
        assert_eq!(failed.stdout, "");
    }
}

#[test]
fn plugins_run_with_a_run_and_with_its_replay() {
    generic_image();
    let dir = TempDir::new("plugins");
    let csv = dir.path("cov.csv");
    let recording = dir.path("rec").display().to_string();
    let mut command = panda();
    command
        .current_dir(&dir.0)
        .args(["run", "--generic", "riscv64", "--record", &recording])
        .args([
            "--panda",
            &format!("coverage:filename={};asid_instr_count", csv.display()),
        ])
        .args(["--panda", "stringsearch:str=CLI42"])
        .args(["--cmd", "echo CLI$((40+2))"]);
    let live = run(command, BOOT_LIMIT);
    assert!(live.status.success(), "{}", live.stderr);
    assert_eq!(live.stdout, "CLI42\n");
    assert!(live.stderr.contains("coverage: wrote "), "{}", live.stderr);
    assert!(
        live.stderr.contains("asid_instr_count: "),
        "{}",
        live.stderr
    );
    assert!(
        live.stderr.contains("stringsearch: matches \"CLI42\": "),
        "{}",
        live.stderr
    );
    assert!(dir.path("stringsearch_string_matches.txt").exists());
    let text = std::fs::read_to_string(&csv).unwrap();
    let first_pc = text
        .lines()
        .nth(2)
        .unwrap()
        .split(',')
        .nth(1)
        .unwrap()
        .to_string();

    let mut command = panda();
    command
        .current_dir(&dir.0)
        .args(["replay", &recording])
        .args([
            "--panda",
            &format!("pc_search:pc={first_pc},out_file=pcs.txt"),
        ]);
    let replayed = run(command, BOOT_LIMIT);
    assert!(replayed.status.success(), "{}", replayed.stderr);
    assert!(
        replayed
            .stderr
            .contains(&format!("pc_search: executions per pc: {first_pc}: ")),
        "{}",
        replayed.stderr
    );
    let pcs = std::fs::read_to_string(dir.path("pcs.txt")).unwrap();
    assert!(pcs.lines().count() > 1, "{pcs}");
}
