//! The monitor on a running guest: savevm / loadvm / delvm / info, recording through
//! begin_record / end_record, and clear errors for what does not exist.

use pandare::console::{Console, UNITS_PER_SECOND};
use pandare::monitor::{Action, Session};
use pandare::replay;
use pandare::store::SnapshotStore;
use pandare::MachineConfig;
use pandare_core::instrument::Callback;

fn session(directory: &std::path::Path) -> Session {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`");
    let mut console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    console.wait_for_prompt(60 * UNITS_PER_SECOND).unwrap();
    let store = SnapshotStore::in_directory(directory.join("snapshots"));
    Session::new(console, store, config.memory_mib, &config.append)
}

fn run(session: &mut Session, command: &str) -> String {
    session
        .console
        .run_command(command, 60 * UNITS_PER_SECOND)
        .unwrap()
}

fn monitor(session: &mut Session, command: &str) -> String {
    let (text, action) = session.monitor(command);
    assert_eq!(action, Action::Continue);
    text
}

#[test]
fn monitor_commands_save_load_delete_and_record() {
    let directory = std::env::temp_dir().join(format!("pandare-monitor-{}", std::process::id()));
    let mut session = session(&directory);

    run(&mut session, "echo before > /tmp/state");
    assert_eq!(monitor(&mut session, "savevm clean"), "");
    run(&mut session, "echo after > /tmp/state");
    assert_eq!(monitor(&mut session, "loadvm clean"), "");
    assert_eq!(run(&mut session, "cat /tmp/state"), "before\n");

    let listing = monitor(&mut session, "info snapshots");
    assert!(listing.contains("clean"), "{listing}");
    let registers = monitor(&mut session, "info registers");
    assert!(registers.contains("pc "), "{registers}");

    assert!(monitor(&mut session, "loadvm missing").contains("no snapshot named 'missing'"));
    assert!(monitor(&mut session, "frobnicate").contains("unknown command"));
    assert!(monitor(&mut session, "help").contains("savevm NAME"));
    assert_eq!(monitor(&mut session, "delvm clean"), "");
    assert!(monitor(&mut session, "delvm clean").contains("no snapshot"));

    // A fresh store reads snapshots back from disk.
    monitor(&mut session, "savevm disk");
    let mut fresh = SnapshotStore::in_directory(directory.join("snapshots"));
    assert!(fresh.load("disk").is_ok());

    let name = directory.join("session").display().to_string();
    assert_eq!(monitor(&mut session, &format!("begin_record {name}")), "");
    run(&mut session, "echo recorded");
    let written = monitor(&mut session, "end_record");
    assert!(written.contains("Recording written"), "{written}");
    let recording = replay::read_recording(&replay::recording_path(&name)).unwrap();
    let mut machine = MachineConfig::generic("riscv64", &mut |_| {})
        .unwrap()
        .build_blank()
        .unwrap();
    let mut output = Vec::new();
    let report = replay::replay(&recording, machine.as_mut(), &mut |bytes| {
        output.extend_from_slice(bytes);
    })
    .unwrap();
    assert!(report.output_matches);
    assert!(String::from_utf8_lossy(&output).contains("recorded"));

    assert_eq!(session.monitor("quit").1, Action::Quit);
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn plugin_cmd_fires_monitor_callbacks_with_the_rest_of_the_line() {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`");
    let console = Console::new(config.build().unwrap(), config.prompt_regex().unwrap());
    let directory = std::env::temp_dir().join(format!("pandare-plugin-cmd-{}", std::process::id()));
    let store = SnapshotStore::in_directory(directory.join("snapshots"));
    let mut session = Session::new(console, store, config.memory_mib, &config.append);

    let nothing = monitor(&mut session, "plugin_cmd hello");
    assert!(
        nothing.contains("no monitor callback is enabled"),
        "{nothing}"
    );
    assert!(monitor(&mut session, "help").contains("plugin_cmd ARGS"));

    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = std::sync::Arc::clone(&seen);
    let instrumentation = session.console.machine().instrumentation();
    instrumentation
        .register(
            "greeter",
            Callback::Monitor(Box::new(move |command| {
                log.lock().unwrap().push(command.to_string());
                command
                    .strip_prefix("greet ")
                    .map(|who| format!("hello, {who}"))
            })),
        )
        .unwrap();
    instrumentation
        .register("silent", Callback::Monitor(Box::new(|_| None)))
        .unwrap();

    assert_eq!(
        monitor(&mut session, "plugin_cmd greet  the   world "),
        "hello,  the   world \n"
    );
    let refused = monitor(&mut session, "plugin_cmd frobnicate");
    assert!(
        refused.contains("no monitor callback handled 'plugin_cmd frobnicate'"),
        "{refused}"
    );
    assert_eq!(*seen.lock().unwrap(), ["greet  the   world ", "frobnicate"]);
    session
        .console
        .machine()
        .instrumentation()
        .disable("greeter")
        .unwrap();
    assert!(monitor(&mut session, "plugin_cmd greet x").contains("handled"));

    // Commands a front end adds: offered what the monitor does not know, listed in help.
    session.add_commands(
        "shout TEXT           print TEXT loudly",
        Box::new(|machine, line| {
            let text = line.strip_prefix("shout ")?;
            Some(format!("{} at {:#x}", text.to_uppercase(), machine.pc()))
        }),
    );
    assert!(monitor(&mut session, "help").contains("shout TEXT"));
    assert!(monitor(&mut session, "shout hi").starts_with("HI at 0x"));
    assert!(monitor(&mut session, "whisper hi").contains("unknown command"));
}
