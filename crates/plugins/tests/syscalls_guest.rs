//! syscalls2, syscalls_logger, proc_start_linux and hooks2 on the real riscv64 guest,
//! started from its `root` snapshot, against what the guest's programs did: a write's
//! buffer is what `echo` printed, openat's path is what `cat` opened, pending returns do
//! not leak across many commands, a blocking console read pairs with its return, a new
//! program's argv and entry, process start and end, and a recording's replay gives the
//! same events as live, twice.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use pandare::console::UNITS_PER_SECOND;
use pandare::replay;
use pandare::store::SnapshotStore;
use pandare::{Console, MachineConfig};
use pandare_osi::Profile;
use pandare_plugins::hooks2::ProcessEvent;
use pandare_plugins::proc_start_linux::AuxvValues;
use pandare_plugins::syscalls2::{Syscall, SyscallNumber, Syscalls2};
use pandare_plugins::{Plugins, PppValue};

/// Events gathered by callbacks.
type Log<T> = Arc<Mutex<Vec<T>>>;

fn config() -> MachineConfig {
    MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`")
}

/// The kernel's profile, derived once for all the tests of this file.
fn profile(config: &MachineConfig) -> Arc<Profile> {
    static PROFILE: OnceLock<Arc<Profile>> = OnceLock::new();
    Arc::clone(PROFILE.get_or_init(|| {
        let image = std::fs::read(&config.kernel).expect("the riscv64 kernel image");
        Arc::new(Profile::derive(&image).expect("the riscv64 kernel's profile"))
    }))
}

/// A console at the guest's shell prompt (from the image's `root` snapshot when there is
/// one, else booted) and a plugin manager with the kernel's profile.
fn guest() -> (Console, Plugins, MachineConfig) {
    let config = config();
    let prompt = config.prompt_regex().unwrap();
    let mut plugins = Plugins::new();
    plugins.set_kernel_profile(profile(&config));
    let mut store = SnapshotStore::for_guest(&config, Some("riscv64"));
    if let Ok(snapshot) = store.load("root") {
        let mut machine = config.build_blank().unwrap();
        machine.load_snapshot(&snapshot).unwrap();
        return (Console::new(machine, prompt), plugins, config);
    }
    eprintln!("no root snapshot of the riscv64 image: booting it");
    let mut console = Console::new(config.build().unwrap(), prompt);
    console.wait_for_prompt(120 * UNITS_PER_SECOND).unwrap();
    (console, plugins, config)
}

fn run(console: &mut Console, command: &str) -> String {
    console.run_command(command, 60 * UNITS_PER_SECOND).unwrap()
}

fn number(profile: &Profile, name: &str) -> u64 {
    profile
        .syscalls()
        .iter()
        .find(|info| info.name == name)
        .unwrap_or_else(|| panic!("the kernel has no {name} system call"))
        .number
}

#[test]
fn write_buffers_and_openat_paths_are_what_the_programs_used() {
    let (mut console, mut plugins, _) = guest();
    // Typed Rust: write's buffer, read at entry.
    let writes: Log<(i64, Vec<u8>, u64)> = Arc::default();
    let log = Arc::clone(&writes);
    plugins
        .register_ppp(
            "syscalls2",
            "on_sys_write_enter",
            "writes",
            move |cpu, event: &Syscall| {
                let (fd, buf, count) = (event.raw[0] as i64, event.raw[1], event.raw[2]);
                let mut bytes = vec![0u8; count.min(4096) as usize];
                cpu.read_memory(buf, &mut bytes).unwrap();
                log.lock().unwrap().push((fd, bytes, event.id));
            },
        )
        .unwrap();
    let returns: Log<(u64, Option<i64>)> = Arc::default();
    let log = Arc::clone(&returns);
    plugins
        .register_ppp(
            "syscalls2",
            "on_sys_write_return",
            "write returns",
            move |_, event: &Syscall| log.lock().unwrap().push((event.id, event.signed_retval())),
        )
        .unwrap();
    // Plain values (the Python path): openat's (pc, dfd, filename, flags, mode), with the
    // path read from the guest at entry.
    let opens: Log<(Vec<PppValue>, Vec<u8>)> = Arc::default();
    let log = Arc::clone(&opens);
    let signature = plugins
        .register_ppp_values(
            "syscalls2",
            "on_sys_openat_enter",
            "opens",
            move |cpu, values| {
                let PppValue::U64(filename) = values[2] else {
                    panic!("openat's filename is not a pointer: {values:?}");
                };
                let mut path = Vec::new();
                let mut byte = [0u8];
                while path.len() < 4096 {
                    cpu.read_memory(filename + path.len() as u64, &mut byte)
                        .unwrap();
                    if byte[0] == 0 {
                        break;
                    }
                    path.push(byte[0]);
                }
                log.lock().unwrap().push((values.to_vec(), path));
            },
        )
        .unwrap();
    assert_eq!(signature, "(cpu, pc, dfd, filename, flags, mode)");
    let all: Arc<Mutex<u64>> = Arc::default();
    let log = Arc::clone(&all);
    plugins
        .register_ppp(
            "syscalls2",
            "on_all_sys_enter",
            "all",
            move |_, _: &SyscallNumber| *log.lock().unwrap() += 1,
        )
        .unwrap();

    plugins
        .load(console.machine().instrumentation(), "syscalls2", Vec::new())
        .unwrap();
    assert_eq!(run(&mut console, "echo SYSMARK$((6*7))"), "SYSMARK42\n");
    assert_eq!(run(&mut console, "cat /proc/version > /dev/null"), "");
    let stats = plugins.api::<Syscalls2>("syscalls2").unwrap().stats();
    let report = plugins
        .unload(console.machine().instrumentation(), "syscalls2")
        .unwrap();
    eprintln!("{report}");

    let writes = writes.lock().unwrap();
    let marker = writes
        .iter()
        .find(|(_, bytes, _)| bytes == b"SYSMARK42\n")
        .unwrap_or_else(|| panic!("no write of the marker: {writes:?}"));
    assert_eq!(marker.0, 1, "the marker went to stdout");
    let returns = returns.lock().unwrap();
    assert!(
        returns.contains(&(marker.2, Some(10))),
        "the marker's write returned 10: {returns:?}"
    );
    let opens = opens.lock().unwrap();
    let open = opens
        .iter()
        .find(|(_, path)| path == b"/proc/version")
        .unwrap_or_else(|| {
            panic!(
                "cat did not open /proc/version: {:?}",
                opens
                    .iter()
                    .map(|(_, path)| String::from_utf8_lossy(path))
                    .collect::<Vec<_>>()
            )
        });
    assert_eq!(open.0.len(), 5);
    assert_eq!(open.0[1], PppValue::I64(-100), "dfd is AT_FDCWD");
    assert!(*all.lock().unwrap() >= stats.entries.min(1));
    assert_eq!(*all.lock().unwrap(), stats.entries);
    assert_eq!(stats.evicted, 0);
}

/// An analysis of entries alone keeps no pending returns and hooks no return address: the
/// machine then runs its uninstrumented loop between system calls.
#[test]
fn entries_alone_track_no_returns() {
    let (mut console, mut plugins, _) = guest();
    let entries: Arc<Mutex<u64>> = Arc::default();
    let count = Arc::clone(&entries);
    plugins
        .register_ppp(
            "syscalls2",
            "on_all_sys_enter",
            "entries",
            move |_, _: &SyscallNumber| *count.lock().unwrap() += 1,
        )
        .unwrap();
    plugins
        .load(console.machine().instrumentation(), "syscalls2", Vec::new())
        .unwrap();
    assert_eq!(run(&mut console, "echo ENTRIES$((6*7))"), "ENTRIES42\n");
    let api = plugins.api::<Syscalls2>("syscalls2").unwrap();
    let stats = api.stats();
    assert!(*entries.lock().unwrap() > 10, "{stats:?}");
    assert_eq!(stats.hooks, 0, "{stats:?}");
    assert_eq!(api.pending_count(), 0);
    assert!(console.machine().instrumentation().list_hooks().is_empty());
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
}

#[test]
fn pending_returns_do_not_leak_across_execs_and_exits() {
    let (mut console, mut plugins, config) = guest();
    let profile = profile(&config);
    plugins
        .load(console.machine().instrumentation(), "syscalls2", Vec::new())
        .unwrap();
    let api = plugins.api::<Syscalls2>("syscalls2").unwrap();
    // Returns are tracked only while someone listens to them.
    let returns = Arc::new(Mutex::new(0u64));
    let count = Arc::clone(&returns);
    plugins
        .register_ppp(
            "syscalls2",
            "on_all_sys_return",
            "returns",
            move |_, _: &SyscallNumber| *count.lock().unwrap() += 1,
        )
        .unwrap();
    for _ in 0..3 {
        run(
            &mut console,
            "ls / > /dev/null; /bin/true; echo x > /dev/null",
        );
    }
    let early = api.pending_count();
    for _ in 0..15 {
        run(
            &mut console,
            "ls / > /dev/null; /bin/true; echo x > /dev/null",
        );
    }
    let late = api.pending();
    let stats = api.stats();
    eprintln!(
        "pending after 3 rounds: {early}; after 18: {}; {stats:?}",
        late.len()
    );
    for entry in &late {
        eprintln!("  pending: {:?} task {:#x}", entry.name(), entry.task);
    }
    // 54 programs were executed and exited: none of their execve or exit_group entries
    // stays, and what is pending does not grow with the commands.
    assert!(
        late.len() <= early.max(1) + 1,
        "{early} then {}",
        late.len()
    );
    let execve = number(&profile, "execve");
    let exit_group = number(&profile, "exit_group");
    assert!(late
        .iter()
        .all(|entry| entry.number != execve && entry.number != exit_group));
    assert!(stats.entries > 1000, "{stats:?}");
    assert!(*returns.lock().unwrap() > 1000, "{stats:?}");
    assert!(stats.no_return >= 54, "{stats:?}");
    assert_eq!(stats.evicted, 0);

    // Signals: a child killed while it sleeps never returns from its sleep (its entry is
    // dropped when the shell reaps it); a shell interrupted in `wait` by a trapped signal
    // runs its handler and goes on.
    let sleeps = ["nanosleep", "clock_nanosleep"].map(|name| number(&profile, name));
    for _ in 0..3 {
        run(&mut console, "sleep 10 & sleep 1; kill $!; wait");
    }
    let output = run(
        &mut console,
        "trap 'echo TRAPPED' USR1; (sleep 1; kill -USR1 $$) & wait; wait; echo WAITED",
    );
    assert!(
        output.contains("TRAPPED") && output.contains("WAITED"),
        "{output:?}"
    );
    let after = api.pending();
    let stats = api.stats();
    eprintln!("pending after the signals: {}; {stats:?}", after.len());
    for entry in &after {
        eprintln!("  pending: {:?} task {:#x}", entry.name(), entry.task);
    }
    assert!(
        after.iter().all(|entry| !sleeps.contains(&entry.number)),
        "a killed sleep's entry stayed"
    );
    assert!(
        after.len() <= early.max(1) + 1,
        "{early} then {}",
        after.len()
    );
    assert_eq!(stats.evicted, 0);
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
}

#[test]
fn a_blocking_console_read_returns_to_its_caller() {
    let (mut console, mut plugins, config) = guest();
    let profile = profile(&config);
    let read = number(&profile, "read");
    let events: Arc<Mutex<Vec<(bool, Syscall)>>> = Arc::default();
    for (point, entry) in [("on_sys_read_enter", true), ("on_sys_read_return", false)] {
        let log = Arc::clone(&events);
        plugins
            .register_ppp("syscalls2", point, point, move |_, event: &Syscall| {
                log.lock().unwrap().push((entry, event.clone()));
            })
            .unwrap();
    }
    plugins
        .load(console.machine().instrumentation(), "syscalls2", Vec::new())
        .unwrap();
    // The shell reads the command from the console one read at a time: each read blocks
    // until a byte arrives, while other tasks run.
    assert_eq!(run(&mut console, "echo typed"), "typed\n");
    let events = events.lock().unwrap();
    let mut open: HashMap<u64, &Syscall> = HashMap::new();
    let mut console_reads = 0;
    for (entry, event) in events.iter() {
        assert_eq!(event.number, read);
        if *entry {
            open.insert(event.id, event);
        } else {
            let entered = open
                .remove(&event.id)
                .unwrap_or_else(|| panic!("a return without its entry: {event:?}"));
            assert_eq!(entered.task, event.task, "returned in another task");
            assert_eq!(entered.raw, event.raw);
            if event.raw[0] == 0 && event.signed_retval() == Some(1) {
                console_reads += 1;
            }
        }
    }
    // "echo typed\n" arrives a byte per read (at least the command's length).
    assert!(
        console_reads >= 10,
        "{console_reads} console reads returned"
    );
    // At most the shell's read of the next command is still waiting.
    assert!(open.len() <= 1, "{open:?}");
    drop(events);
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
}

/// What the analysis under replay is compared on: each entry and return in order.
type Trace = Vec<(bool, u64, Vec<PppValue>, Option<u64>)>;

fn trace_syscalls(plugins: &mut Plugins) -> Arc<Mutex<Trace>> {
    let trace: Arc<Mutex<Trace>> = Arc::default();
    for (point, entry) in [("on_all_sys_enter2", true), ("on_all_sys_return2", false)] {
        let log = Arc::clone(&trace);
        plugins
            .register_ppp(
                "syscalls2",
                point,
                point,
                move |_, event: &pandare_plugins::syscalls2::DescribedSyscall| {
                    let event = &event.0;
                    log.lock().unwrap().push((
                        entry,
                        event.number,
                        event.arguments(),
                        event.retval,
                    ));
                },
            )
            .unwrap();
    }
    trace
}

#[test]
fn a_replay_gives_the_live_events_twice() {
    let (mut console, mut plugins, config) = guest();
    let live = trace_syscalls(&mut plugins);
    plugins
        .load(console.machine().instrumentation(), "syscalls2", Vec::new())
        .unwrap();
    console.start_recording();
    let output = run(
        &mut console,
        "echo REPLAYED; cat /proc/version > /dev/null; ls /",
    );
    let recording = console
        .finish_recording(config.memory_mib, &config.append)
        .unwrap();
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
    assert!(output.contains("REPLAYED"));
    let live = live.lock().unwrap().clone();
    assert!(live.len() > 100, "{} events", live.len());

    let mut machine = config.build_blank().unwrap();
    for round in 0..2 {
        let mut plugins = Plugins::new();
        plugins.set_kernel_profile(profile(&config));
        let replayed = trace_syscalls(&mut plugins);
        plugins
            .load(machine.instrumentation(), "syscalls2", Vec::new())
            .unwrap();
        let result = replay::replay(&recording, machine.as_mut(), &mut |_| {}).unwrap();
        assert!(result.output_matches);
        plugins.unload_all(machine.instrumentation()).unwrap();
        let replayed = replayed.lock().unwrap();
        // Entries made before the recording started return during it: live saw them
        // with their entry, the replay starts without it. Compare from the first entry.
        let replayed_from = replayed.iter().position(|event| event.0).unwrap();
        let live_from = live.iter().position(|event| event.0).unwrap();
        assert_eq!(
            replayed[replayed_from..],
            live[live_from..],
            "replay {round} differs from live"
        );
    }
}

#[test]
fn proc_start_linux_reads_argv_and_the_entry_of_a_new_program() {
    let (mut console, mut plugins, _) = guest();
    let programs: Log<(AuxvValues, Vec<u8>)> = Arc::default();
    let log = Arc::clone(&programs);
    plugins
        .register_ppp(
            "proc_start_linux",
            "on_rec_auxv",
            "programs",
            move |cpu, auxv: &AuxvValues| {
                // The program's ELF header, just before its program headers.
                let mut header = vec![0u8; 64];
                let _ = cpu.read_memory(auxv.phdr.wrapping_sub(64), &mut header);
                log.lock().unwrap().push((auxv.clone(), header));
            },
        )
        .unwrap();
    let plain: Arc<Mutex<Vec<Vec<PppValue>>>> = Arc::default();
    let log = Arc::clone(&plain);
    plugins
        .register_ppp_values(
            "proc_start_linux",
            "on_rec_auxv",
            "plain",
            move |_, values| {
                log.lock().unwrap().push(values.to_vec());
            },
        )
        .unwrap();
    plugins
        .load(
            console.machine().instrumentation(),
            "proc_start_linux",
            Vec::new(),
        )
        .unwrap();
    assert!(
        plugins.is_loaded("syscalls2"),
        "proc_start_linux loads syscalls2"
    );
    assert_eq!(run(&mut console, "/bin/busybox echo a b c"), "a b c\n");
    let report = plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
    eprintln!("{report:?}");

    let programs = programs.lock().unwrap();
    let (auxv, header) = programs
        .iter()
        .find(|(auxv, _)| auxv.argv.first().is_some_and(|arg| arg == b"/bin/busybox"))
        .unwrap_or_else(|| panic!("no busybox start: {programs:?}"));
    let argv: Vec<&[u8]> = auxv.argv.iter().map(Vec::as_slice).collect();
    assert_eq!(argv, [&b"/bin/busybox"[..], b"echo", b"a", b"b", b"c"]);
    assert_eq!(auxv.argc, 5);
    assert_eq!(auxv.execfn, b"/bin/busybox");
    assert!(auxv.envc > 0 && auxv.envp.iter().any(|env| env.starts_with(b"PATH=")));
    assert_eq!(auxv.pagesz, 4096);
    assert_eq!(&header[..4], b"\x7fELF", "AT_PHDR - 64 is the ELF header");
    let e_type = u16::from_le_bytes([header[16], header[17]]);
    let e_entry = u64::from_le_bytes(header[24..32].try_into().unwrap());
    let e_phoff = u64::from_le_bytes(header[32..40].try_into().unwrap());
    assert_eq!(e_phoff, 64);
    // A position-independent program is loaded at (phdr - e_phoff) for its first segment
    // at 0; a fixed one at its link addresses.
    let bias = if e_type == 3 { auxv.phdr - 64 } else { 0 };
    assert_eq!(auxv.entry, e_entry + bias, "AT_ENTRY is the ELF entry");
    // The first block is the program's entry (static) or its interpreter's.
    if auxv.base == 0 {
        assert_eq!(auxv.pc, auxv.entry);
    }
    let plain = plain.lock().unwrap();
    assert_eq!(plain.len(), programs.len());
    let index = programs
        .iter()
        .position(|(found, _)| found == auxv)
        .unwrap();
    assert_eq!(plain[index][1], PppValue::U64(5));
    assert_eq!(
        plain[index][2],
        PppValue::Bytes(b"/bin/busybox\0echo\0a\0b\0c".to_vec())
    );
    assert_eq!(plain[index][7], PppValue::U64(auxv.entry));
}

#[test]
fn hooks2_reports_a_background_process_start_and_end() {
    let (mut console, mut plugins, _) = guest();
    let events: Arc<Mutex<Vec<(&'static str, ProcessEvent)>>> = Arc::default();
    for point in ["on_process_start", "on_process_end"] {
        let log = Arc::clone(&events);
        plugins
            .register_ppp("hooks2", point, point, move |_, event: &ProcessEvent| {
                log.lock().unwrap().push((point, event.clone()));
            })
            .unwrap();
    }
    plugins
        .load(console.machine().instrumentation(), "hooks2", Vec::new())
        .unwrap();
    let output = run(&mut console, "sleep 0 & echo PID=$!; wait");
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
    let pid: u32 = output
        .lines()
        .find_map(|line| line.strip_prefix("PID="))
        .unwrap_or_else(|| panic!("{output:?}"))
        .trim()
        .parse()
        .unwrap();
    let events = events.lock().unwrap();
    let start = events
        .iter()
        .position(|(point, event)| *point == "on_process_start" && event.pid == pid)
        .unwrap_or_else(|| panic!("no start of {pid}: {events:?}"));
    let end = events
        .iter()
        .position(|(point, event)| *point == "on_process_end" && event.pid == pid)
        .unwrap_or_else(|| panic!("no end of {pid}: {events:?}"));
    assert!(start < end);
    assert_eq!(events[end].1.procname, b"sleep");
}

#[test]
fn syscalls_logger_writes_decoded_calls_per_process() {
    let (mut console, mut plugins, _) = guest();
    let directory =
        std::env::temp_dir().join(format!("pandare-syscalls-logger-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let json = directory.join("calls.jsonl");
    plugins
        .load_spec(
            console.machine().instrumentation(),
            &format!("syscalls_logger:file={},format=json", json.display()),
        )
        .unwrap();
    run(&mut console, "cat /proc/version > /dev/null");
    assert!(!json.exists(), "written at unload");
    let reports = plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();
    eprintln!("{reports:?}");
    let text = std::fs::read_to_string(&json).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let open = lines
        .iter()
        .find(|line| line["syscall"] == "openat" && line["args"][1]["string"] == "/proc/version")
        .unwrap_or_else(|| panic!("no openat of /proc/version in {text}"));
    assert_eq!(open["process"], "cat");
    assert_eq!(open["args"][0]["value"], -100);
    assert!(open["return"].as_i64().unwrap() >= 0, "{open}");
    assert!(open["pid"].as_u64().unwrap() > 1);
    assert!(lines
        .iter()
        .any(|line| line["syscall"] == "exit_group" && line["process"] == "cat"));
    let _ = std::fs::remove_dir_all(&directory);
}

/// A static riscv64 program that starts a thread (`clone` with `CLONE_THREAD`), whose
/// thread calls `exit(0)` while the main thread yields 100 times, then `exit_group(0)`.
fn thread_program() -> Vec<u8> {
    let code: Vec<u32> = vec![
        0x0001_1537, // lui a0, 0x11
        0xf005_0513, // addi a0, a0, -256: CLONE_VM|FS|FILES|SIGHAND|THREAD (0x10f00)
        0x8001_0593, // addi a1, sp, -2048: the thread's stack
        0x0000_0613, // addi a2, zero, 0
        0x0000_0693, // addi a3, zero, 0
        0x0000_0713, // addi a4, zero, 0
        0x0dc0_0893, // addi a7, zero, 220 (clone)
        0x0000_0073, // ecall
        0x0205_0263, // beq a0, zero, +36: the thread
        0x0640_0493, // addi s1, zero, 100
        0x07c0_0893, // loop: addi a7, zero, 124 (sched_yield)
        0x0000_0073, // ecall
        0xfff4_8493, // addi s1, s1, -1
        0xfe04_9ae3, // bne s1, zero, loop
        0x0000_0513, // addi a0, zero, 0
        0x05e0_0893, // addi a7, zero, 94 (exit_group)
        0x0000_0073, // ecall
        0x0000_0513, // the thread: addi a0, zero, 0
        0x05d0_0893, // addi a7, zero, 93 (exit)
        0x0000_0073, // ecall
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
fn hooks2_reports_a_thread_start_and_both_ends() {
    use pandare_plugins::hooks2::ThreadEvent;

    let (mut console, mut plugins, _) = guest();
    write_guest_file(&mut console, "/tmp/thr", &thread_program());
    let threads: Log<(&'static str, ThreadEvent)> = Arc::default();
    for point in ["on_thread_start", "on_thread_end"] {
        let log = Arc::clone(&threads);
        plugins
            .register_ppp("hooks2", point, point, move |_, event: &ThreadEvent| {
                log.lock().unwrap().push((point, event.clone()));
            })
            .unwrap();
    }
    let processes: Log<(&'static str, ProcessEvent)> = Arc::default();
    let log = Arc::clone(&processes);
    plugins
        .register_ppp(
            "hooks2",
            "on_process_end",
            "ends",
            move |_, event: &ProcessEvent| log.lock().unwrap().push(("end", event.clone())),
        )
        .unwrap();
    plugins
        .load(console.machine().instrumentation(), "hooks2", Vec::new())
        .unwrap();
    assert_eq!(run(&mut console, "/tmp/thr; echo rc=$?"), "rc=0\n");
    plugins
        .unload_all(console.machine().instrumentation())
        .unwrap();

    let threads = threads.lock().unwrap();
    let ours: Vec<&(&str, ThreadEvent)> = threads
        .iter()
        .filter(|(_, event)| event.procname == b"thr")
        .collect();
    eprintln!("{ours:?}");
    let (_, start) = ours
        .iter()
        .find(|(point, _)| *point == "on_thread_start")
        .unwrap_or_else(|| panic!("no thread start: {threads:?}"));
    assert_ne!(start.tid, start.pid, "a new thread of the process");
    assert!(
        ours.iter()
            .any(|(point, event)| *point == "on_thread_end" && event.tid == start.tid),
        "the thread's exit"
    );
    assert!(
        ours.iter()
            .any(|(point, event)| *point == "on_thread_end" && event.tid == start.pid),
        "the main thread's exit_group"
    );
    let processes = processes.lock().unwrap();
    assert!(processes
        .iter()
        .any(|(_, event)| event.pid == start.pid && event.procname == b"thr"));
}
