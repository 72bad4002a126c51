//! The built-in plugins on the real riscv64 guest, started from its `root` snapshot: what
//! each finds and writes, PPP callbacks, monitor commands, and unloading.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pandare::console::UNITS_PER_SECOND;
use pandare::monitor::Session;
use pandare::store::SnapshotStore;
use pandare::{Console, Convention, MachineConfig};
use pandare_core::instrument::{Callback, EXIT_RAN_TO_END};
use pandare_plugins::stringsearch::StringMatch;
use pandare_plugins::{Plugins, PppValue};

/// A console at the guest's shell prompt: from the image's `root` snapshot when there is
/// one (as `panda run` leaves it), else booted.
fn guest() -> Console {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`");
    let prompt = config.prompt_regex().unwrap();
    let mut store = SnapshotStore::for_guest(&config, Some("riscv64"));
    if let Ok(snapshot) = store.load("root") {
        let mut machine = config.build_blank().unwrap();
        machine.load_snapshot(&snapshot).unwrap();
        return Console::new(machine, prompt);
    }
    eprintln!("no root snapshot of the riscv64 image: booting it");
    let mut console = Console::new(config.build().unwrap(), prompt);
    console.wait_for_prompt(120 * UNITS_PER_SECOND).unwrap();
    console
}

fn run(console: &mut Console, command: &str) -> String {
    console.run_command(command, 60 * UNITS_PER_SECOND).unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let directory =
        std::env::temp_dir().join(format!("pandare-plugins-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    directory
}

fn spec_path(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn stringsearch_finds_a_marker_printed_by_the_shell_and_runs_on_ssm() {
    let directory = scratch("stringsearch");
    let prefix = directory.join("ss");
    let mut console = guest();
    let mut plugins = Plugins::new();

    let events: Arc<Mutex<Vec<StringMatch>>> = Arc::default();
    let log = Arc::clone(&events);
    plugins
        .register_ppp(
            "stringsearch",
            "on_ssm",
            "typed",
            move |_, event: &StringMatch| {
                log.lock().unwrap().push(event.clone());
            },
        )
        .unwrap();
    let plain: Arc<Mutex<Vec<Vec<PppValue>>>> = Arc::default();
    let log = Arc::clone(&plain);
    let signature = plugins
        .register_ppp_values("stringsearch", "on_ssm", "plain", move |_, values| {
            log.lock().unwrap().push(values.to_vec());
        })
        .unwrap();
    assert!(signature.starts_with("(cpu, pc, addr, matched"));

    plugins
        .load_spec(
            console.machine().instrumentation(),
            &format!("stringsearch:str=SSM42MARK,name={}", spec_path(&prefix)),
        )
        .unwrap();
    // The typed command holds "SSM$((6*7))MARK": only the shell's output holds the marker.
    assert_eq!(run(&mut console, "echo SSM$((6*7))MARK"), "SSM42MARK\n");
    let report = plugins
        .unload(console.machine().instrumentation(), "stringsearch")
        .unwrap();

    eprintln!("{report}");
    let typed = events.lock().unwrap();
    assert!(!typed.is_empty(), "no on_ssm event; report: {report}");
    assert!(typed.iter().all(|event| event.matched == b"SSM42MARK"));
    assert!(typed.iter().any(|event| event.is_write), "{typed:?}");
    let plain = plain.lock().unwrap();
    assert_eq!(plain.len(), typed.len());
    assert_eq!(plain[0][2], PppValue::Bytes(b"SSM42MARK".to_vec()));
    assert_eq!(plain[0][3], PppValue::U64(9));

    let matches =
        std::fs::read_to_string(directory.join("ss_string_matches.txt")).expect("matches file");
    assert!(matches.starts_with("pc,asid,access,string,matches\n"));
    assert!(matches.contains(",\"SSM42MARK\","), "{matches}");
    assert!(report.contains("\"SSM42MARK\": "), "{report}");

    // Unloaded: its callbacks are gone, and matches no longer reach on_ssm.
    assert!(console.machine().instrumentation().list().is_empty());
    let seen = typed.len();
    drop(typed);
    drop(plain);
    run(&mut console, "echo SSM$((6*7))MARK");
    assert_eq!(events.lock().unwrap().len(), seen);
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn coverage_writes_kernel_and_user_blocks_and_obeys_monitor_commands() {
    let directory = scratch("coverage");
    let csv = directory.join("blocks.csv");
    let second = directory.join("second.csv");
    let mut console = guest();
    // The kernel's trap vector, a system register read by name through the ABI.
    let mut stvec = 0;
    console
        .machine()
        .with_cpu(&mut |cpu| stvec = cpu.register("stvec").unwrap());
    assert_ne!(stvec, 0);
    let mut plugins = Plugins::new();
    plugins
        .load_spec(
            console.machine().instrumentation(),
            &format!("coverage:filename={}", spec_path(&csv)),
        )
        .unwrap();
    run(&mut console, "ls / > /dev/null");
    // Not written until collection stops.
    assert!(!csv.exists());

    let store = SnapshotStore::in_directory(directory.join("snapshots"));
    let mut session = Session::new(console, store, 512, "");
    let (text, _) = session.monitor("plugin_cmd coverage_disable");
    assert!(text.starts_with("coverage: wrote "), "{text}");
    let (text, _) = session.monitor(&format!("plugin_cmd coverage_enable={}", second.display()));
    assert!(text.contains("collecting into"), "{text}");
    session
        .console
        .run_command("true", 60 * UNITS_PER_SECOND)
        .unwrap();
    let report = plugins
        .unload(session.console.machine().instrumentation(), "coverage")
        .unwrap();
    assert!(report.contains("second.csv"), "{report}");
    eprintln!("{report}");

    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("asid-block"));
    assert_eq!(lines.next(), Some("asid,pc,size,in_kernel"));
    let records: Vec<(u64, u64, u64, bool)> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields.len(), 4, "{line}");
            let hex =
                |field: &str| u64::from_str_radix(field.trim_start_matches("0x"), 16).unwrap();
            (
                hex(fields[0]),
                hex(fields[1]),
                fields[2].parse().unwrap(),
                fields[3] == "1",
            )
        })
        .collect();
    assert!(
        records
            .iter()
            .any(|&(_, pc, _, kernel)| pc == stvec && kernel),
        "the kernel's trap vector {stvec:#x} is not in the coverage"
    );
    assert!(records
        .iter()
        .any(|&(_, pc, _, kernel)| !kernel && pc < 1 << 40));
    let unique: std::collections::HashSet<_> = records.iter().collect();
    assert_eq!(unique.len(), records.len(), "duplicates without full=true");
    assert!(std::fs::read_to_string(&second).unwrap().lines().count() > 2);
    let _ = std::fs::remove_dir_all(&directory);
}

#[test]
fn pc_search_counts_a_pc_in_the_middle_of_a_block_and_asid_instr_count_adds_up() {
    let directory = scratch("pc_search");
    let mut console = guest();
    // Find a user-mode block of several instructions that the command runs.
    let blocks: Arc<Mutex<Vec<(u64, u64, u32)>>> = Arc::default();
    let log = Arc::clone(&blocks);
    console
        .machine()
        .instrumentation()
        .register(
            "find",
            Callback::AfterBlockExec(Box::new(move |_, block, exit| {
                if block.pc < 1 << 63 && exit == EXIT_RAN_TO_END && block.instruction_count >= 4 {
                    log.lock()
                        .unwrap()
                        .push((block.pc, block.size, block.instruction_count));
                }
            })),
        )
        .unwrap();
    // Two processes: the shell, and ls.
    let command = "for i in 1 2 3; do echo $i; done > /dev/null; ls / > /dev/null";
    let start = console.save_snapshot();
    run(&mut console, command);
    console.machine().instrumentation().delete("find").unwrap();
    let (block_pc, block_size, _) = blocks.lock().unwrap()[0];
    // An instruction in the middle: past the first two bytes (pcs are 2-aligned with RVC).
    let target = {
        let middle = block_pc + block_size / 2;
        middle & !1
    };
    assert!(target > block_pc);

    // The same command again from the same state, counted three ways.
    console.load_snapshot(&start).unwrap();
    let full_runs: Arc<Mutex<(u64, u64)>> = Arc::default();
    let log = Arc::clone(&full_runs);
    console
        .machine()
        .instrumentation()
        .register(
            "reference",
            Callback::AfterBlockExec(Box::new(move |_, block, exit| {
                if block.pc <= target && target < block.pc + block.size {
                    let mut counts = log.lock().unwrap();
                    counts.1 += 1;
                    if exit == EXIT_RAN_TO_END {
                        counts.0 += 1;
                    }
                }
            })),
        )
        .unwrap();
    let out = directory.join("pcs.csv");
    let mut plugins = Plugins::new();
    let instrumentation = console.machine().instrumentation();
    plugins
        .load_spec(
            &mut *instrumentation,
            &format!("pc_search:pc={target:#x},out_file={}", spec_path(&out)),
        )
        .unwrap();
    plugins
        .load_spec(instrumentation, "asid_instr_count")
        .unwrap();
    let before = console.machine().instruction_count();
    run(&mut console, command);
    let retired = console.machine().instruction_count() - before;
    let reports = plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();

    let (ran_through, entered) = *full_runs.lock().unwrap();
    eprintln!(
        "{reports:#?}\nblock runs over {target:#x}: {ran_through} to the end, {entered} entered"
    );
    let text = std::fs::read_to_string(&out).unwrap();
    let hits: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            assert_eq!(fields[0], format!("{target:#x}"));
            fields[1].parse().unwrap()
        })
        .collect();
    let found = hits.len() as u64;
    assert!(ran_through > 0);
    assert!(
        ran_through <= found && found <= entered,
        "pc_search found {found}; blocks over it ran through {ran_through} times, entered {entered}"
    );
    assert!(hits.windows(2).all(|pair| pair[0] < pair[1]));
    assert!(hits.iter().all(|&count| count >= before));

    // asid_instr_count's total is every instruction retired while it was loaded (its
    // report comes first: plugins unload last loaded first).
    let counted: u64 = reports[0]
        .split_whitespace()
        .nth(1)
        .and_then(|total| total.parse().ok())
        .unwrap_or_else(|| panic!("{}", reports[0]));
    assert!(reports[0].starts_with("asid_instr_count: "), "{reports:?}");
    assert_eq!(counted, retired, "{}", reports[0]);
    let spaces: u64 = reports[0]
        .split_whitespace()
        .nth(4)
        .unwrap()
        .parse()
        .unwrap();
    assert!(spaces >= 2, "{}", reports[0]);
    assert!(
        reports[1].contains(&format!("{target:#x}: {found}")),
        "{reports:?}"
    );
    let _ = std::fs::remove_dir_all(&directory);
}

/// A static riscv64 Linux executable: `li a0, MAGIC; hypercall; mv a0, a1; exit(a0)`.
fn hypercall_program(magic: u16) -> Vec<u8> {
    assert!(magic < 0x800, "addi takes a 12-bit immediate");
    let code: Vec<u32> = vec![
        (u32::from(magic) << 20) | (10 << 7) | 0x13, // addi a0, zero, MAGIC
        0x7a50_2013,                                 // slti zero, zero, 0x7a5: the hypercall
        0x0005_8513,                                 // addi a0, a1, 0
        0x05d0_0893,                                 // addi a7, zero, 93 (exit)
        0x0000_0073,                                 // ecall
    ];
    common::static_riscv64_elf(&code)
}

/// Writes `bytes` to `path` in the guest with printf, a few bytes per command.
fn write_guest_file(console: &mut Console, path: &str, bytes: &[u8]) {
    run(console, &format!(": > {path}"));
    for chunk in bytes.chunks(24) {
        let escaped: String = chunk.iter().map(|b| format!("\\{b:03o}")).collect();
        run(console, &format!("printf '{escaped}' >> {path}"));
    }
    run(console, &format!("chmod +x {path}"));
}

#[test]
fn hypercaller_dispatches_a_guest_programs_hypercall_by_magic() {
    use pandare_plugins::hypercaller::Hypercalls;

    let mut console = guest();
    write_guest_file(&mut console, "/tmp/hc", &hypercall_program(0x123));
    write_guest_file(&mut console, "/tmp/other", &hypercall_program(0x7));
    let mut plugins = Plugins::new();
    plugins
        .load_spec(console.machine().instrumentation(), "hypercaller")
        .unwrap();
    let hypercalls: Hypercalls = plugins.api("hypercaller").unwrap();
    hypercalls
        .register(
            0x123,
            Box::new(|cpu| {
                assert!(!cpu.in_kernel_mode());
                // The handler's result goes in the hypercall convention's second register.
                let abi = cpu.abi();
                abi.set_argument(cpu, Convention::Hypercall, 1, 42).unwrap();
            }),
        )
        .unwrap();
    assert!(hypercalls.register(0x123, Box::new(|_| {})).is_err());

    assert_eq!(run(&mut console, "/tmp/hc; echo $?"), "42\n");
    run(&mut console, "/tmp/other");
    run(&mut console, "/tmp/hc");
    assert!(hypercalls.unregister(0x123));
    run(&mut console, "/tmp/hc");
    let report = plugins
        .unload(console.machine().instrumentation(), "hypercaller")
        .unwrap();
    eprintln!("{report}");
    assert_eq!(
        report,
        "hypercaller: handled 0x123 x2; no handler for 0x7 x1, 0x123 x1"
    );
    assert!(plugins.api::<Hypercalls>("hypercaller").is_err());
}

#[test]
fn plugins_change_nothing_in_the_guest() {
    let directory = scratch("determinism");
    let command = "ls / > /dev/null; echo SSM$((6*7))MARK";
    let mut plain = guest();
    run(&mut plain, command);
    let expected = (
        plain.machine().instruction_count(),
        plain.machine().state_hash(),
    );

    let mut observed = guest();
    let mut plugins = Plugins::new();
    let instrumentation = observed.machine().instrumentation();
    for spec in [
        format!(
            "coverage:filename={},full=true",
            directory.join("c.csv").display()
        ),
        "asid_instr_count".to_string(),
        format!(
            "stringsearch:str=SSM42MARK,name={}",
            directory.join("s").display()
        ),
        format!(
            "pc_search:pc=0xffffffff80a81240,out_file={}",
            directory.join("p.txt").display()
        ),
        "hypercaller".to_string(),
    ] {
        plugins.load_spec(&mut *instrumentation, &spec).unwrap();
    }
    run(&mut observed, command);
    let got = (
        observed.machine().instruction_count(),
        observed.machine().state_hash(),
    );
    plugins
        .unload_all(observed.machine().instrumentation())
        .unwrap();
    assert_eq!(got, expected);
    let _ = std::fs::remove_dir_all(&directory);
}
