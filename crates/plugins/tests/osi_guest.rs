//! The `osi` plugin on the real riscv64 guest, started from its `root` snapshot: at one
//! instant, the walks must equal what the guest itself shows under `/proc` (typed at its
//! serial console): the process list, a process's mappings (one with more than 100, so
//! its maple tree has inner nodes), its file descriptors; the current process's asid is
//! the CPU's; `on_task_change` never misses a switch before user code runs.
//!
//! The process with many mappings is `osi_guest/maps.S`, assembled with the riscv64
//! binutils and typed into the guest with `printf`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use pandare::console::UNITS_PER_SECOND;
use pandare::store::SnapshotStore;
use pandare::{Console, MachineConfig};
use pandare_core::instrument::{Callback, GuestCpu, Instrumentation};
use pandare_osi::Mapping;
use pandare_plugins::osi::{OsiApi, TaskChange};
use pandare_plugins::Plugins;

/// A console at the guest's shell prompt (from the `root` snapshot when there is one),
/// with the `osi` plugin loaded on the kernel the image boots.
fn guest() -> (Console, Plugins, OsiApi) {
    let config = MachineConfig::generic("riscv64", &mut |message| eprintln!("{message}"))
        .expect("the riscv64 image is needed: run `target/release/panda image build riscv64`");
    let prompt = config.prompt_regex().unwrap();
    let mut store = SnapshotStore::for_guest(&config, Some("riscv64"));
    let mut console = match store.load("root") {
        Ok(snapshot) => {
            let mut machine = config.build_blank().unwrap();
            machine.load_snapshot(&snapshot).unwrap();
            Console::new(machine, prompt)
        }
        Err(_) => {
            eprintln!("no root snapshot of the riscv64 image: booting it");
            let mut console = Console::new(config.build().unwrap(), prompt);
            console.wait_for_prompt(120 * UNITS_PER_SECOND).unwrap();
            console
        }
    };
    let mut plugins = Plugins::new();
    plugins.set_kernel_image(&config.kernel);
    plugins
        .load(console.machine().instrumentation(), "osi", [])
        .unwrap();
    let api: OsiApi = plugins.api("osi").unwrap();
    (console, plugins, api)
}

fn run(console: &mut Console, command: &str) -> String {
    console.run_command(command, 60 * UNITS_PER_SECOND).unwrap()
}

/// Runs `walk` with the CPU as it is now (the guest stopped at its prompt).
fn at_once<T>(console: &mut Console, mut walk: impl FnMut(&mut dyn GuestCpu) -> T) -> T {
    let mut result = None;
    console
        .machine()
        .with_cpu(&mut |cpu| result = Some(walk(cpu)));
    result.unwrap()
}

/// Assembles `osi_guest/maps.S` into a static riscv64 program; `None` (after reporting)
/// without the riscv64 binutils.
fn maps_program() -> Option<Vec<u8>> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/osi_guest/maps.S");
    let directory = std::env::temp_dir().join(format!("pandare-osi-maps-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let object = directory.join("maps.o");
    let program = directory.join("maps");
    let tool = |name: &str, arguments: &[&std::ffi::OsStr]| {
        std::process::Command::new(name)
            .args(arguments)
            .status()
            .is_ok_and(|status| status.success())
    };
    let built = tool(
        "riscv64-linux-gnu-as",
        &[source.as_os_str(), "-o".as_ref(), object.as_os_str()],
    ) && tool(
        "riscv64-linux-gnu-ld",
        &[
            "-static".as_ref(),
            "-N".as_ref(),
            "-s".as_ref(),
            "--build-id=none".as_ref(),
            "--no-warn-rwx-segments".as_ref(),
            "-o".as_ref(),
            program.as_os_str(),
            object.as_os_str(),
        ],
    );
    let bytes = built.then(|| std::fs::read(&program).unwrap());
    let _ = std::fs::remove_dir_all(&directory);
    if bytes.is_none() {
        pandare_test_support::unavailable(
            "the riscv64 binutils (riscv64-linux-gnu-as, -ld) are needed to build the guest program: apt-get install binutils-riscv64-linux-gnu",
        );
    }
    bytes
}

/// Types `bytes` into the guest file `path` (octal `printf` escapes, 96 bytes a line so
/// that no line comes near the terminal's 4095-byte limit), and makes it executable.
fn put_file(console: &mut Console, path: &str, bytes: &[u8]) {
    run(console, &format!(": > {path}"));
    for chunk in bytes.chunks(96) {
        let escaped: String = chunk.iter().map(|byte| format!("\\{byte:03o}")).collect();
        run(console, &format!("printf '{escaped}' >> {path}"));
    }
    run(console, &format!("chmod +x {path}"));
    let size = run(console, &format!("wc -c < {path}"));
    assert_eq!(
        size.trim(),
        bytes.len().to_string(),
        "{path} arrived damaged"
    );
}

/// `/proc/PID/maps` as (start, end, perms, offset, path).
fn parse_maps(text: &str) -> Vec<(u64, u64, String, u64, String)> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = fields[0].split_once('-').unwrap();
            let hex = |text: &str| u64::from_str_radix(text, 16).unwrap();
            (
                hex(start),
                hex(end),
                fields[1].to_string(),
                hex(fields[2]),
                fields
                    .get(5..)
                    .map(|rest| rest.join(" "))
                    .unwrap_or_default(),
            )
        })
        .collect()
}

/// A mapping as `/proc/PID/maps` prints it (perms from `vm_flags`: VM_READ 1, VM_WRITE 2,
/// VM_EXEC 4, VM_MAYSHARE 0x80).
fn as_maps_line(mapping: &Mapping) -> (u64, u64, String, u64, String) {
    let flag = |bit: u64, letter: char| {
        if mapping.flags & bit != 0 {
            letter
        } else {
            '-'
        }
    };
    let perms: String = [
        flag(1, 'r'),
        flag(2, 'w'),
        flag(4, 'x'),
        if mapping.flags & 0x80 != 0 { 's' } else { 'p' },
    ]
    .into_iter()
    .collect();
    (
        mapping.base,
        mapping.base + mapping.size,
        perms,
        mapping.offset,
        mapping.file.clone().unwrap_or_default(),
    )
}

/// The guest's own process list: pid → name, from `/proc` with shell builtins only (no
/// process is created to list them).
fn proc_processes(console: &mut Console) -> BTreeMap<u32, String> {
    let text = run(
        console,
        "for p in /proc/[0-9]*; do read c < $p/comm && echo ${p#/proc/} $c; done",
    );
    text.lines()
        .filter_map(|line| {
            let (pid, name) = line.split_once(' ')?;
            Some((pid.parse().ok()?, name.to_string()))
        })
        .collect()
}

#[test]
fn processes_mappings_and_fds_equal_the_guests_proc() {
    let Some(program) = maps_program() else {
        return;
    };
    let (mut console, mut plugins, api) = guest();
    put_file(&mut console, "/tmp/maps", &program);
    // The program waits for a signal with stdin a pipe; `$!` is its pid.
    let pid: u32 = run(
        &mut console,
        "sleep 1000 | /tmp/maps /bin/busybox 4>/dev/null & echo $!",
    )
    .trim()
    .parse()
    .unwrap();
    let mut lines = 0;
    for _ in 0..50 {
        lines = run(&mut console, &format!("wc -l < /proc/{pid}/maps"))
            .trim()
            .parse()
            .unwrap_or(0);
        if lines > 150 {
            break;
        }
    }
    assert!(lines > 150, "the program made only {lines} mappings");

    // The process list, at the instant the guest printed its own.
    let mut attempts = 0;
    loop {
        let guest_view = proc_processes(&mut console);
        let walked = at_once(&mut console, |cpu| api.processes(cpu).unwrap());
        // `/proc/PID/comm` of a kernel thread is its full name, and a workqueue worker's
        // has its current work appended (`kworker/0:1-events`); `comm` (PANDA's name) holds
        // the first 15 bytes of the former, the worker's name without the latter.
        let ours: BTreeMap<u32, String> = walked
            .iter()
            .filter(|process| process.pid != 0)
            .map(|process| {
                let name = String::from_utf8_lossy(&process.name).into_owned();
                let shown = match guest_view.get(&process.pid) {
                    Some(shown)
                        if process.asid == 0
                            && (name.len() == 15 && shown.starts_with(&name)
                                || shown.starts_with(&format!("{name}-"))) =>
                    {
                        shown.clone()
                    }
                    _ => name,
                };
                (process.pid, shown)
            })
            .collect();
        if ours == guest_view || attempts == 2 {
            assert_eq!(ours, guest_view, "processes differ from /proc");
            assert!(ours.len() > 20, "{ours:?}");
            assert_eq!(ours.get(&pid).map(String::as_str), Some("maps"));
            // PANDA's fields: ppid is the parent's pid, kernel threads have no asid.
            let init = walked.iter().find(|process| process.pid == 1).unwrap();
            assert_eq!(init.ppid, 0);
            let maps = walked.iter().find(|process| process.pid == pid).unwrap();
            let shell: u32 = run(&mut console, "echo $$").trim().parse().unwrap();
            assert_eq!(maps.ppid, shell);
            assert!(maps.asid != 0 && maps.pages > 150 * 2, "{maps:?}");
            let kthreadd = walked.iter().find(|process| process.pid == 2).unwrap();
            assert_eq!((kthreadd.asid, kthreadd.pages), (0, 0));
            break;
        }
        attempts += 1;
    }

    // The mappings of the program (height-3 maple tree) and of the shell.
    let shell: u32 = run(&mut console, "echo $$").trim().parse().unwrap();
    for (target, least) in [(pid, 150), (shell, 5)] {
        let text = run(&mut console, &format!("cat /proc/{target}/maps"));
        let expected = parse_maps(&text);
        let walked = at_once(&mut console, |cpu| {
            let processes = api.processes(cpu).unwrap();
            let task = processes.iter().find(|p| p.pid == target).unwrap().task;
            api.mappings(cpu, task).unwrap()
        });
        let ours: Vec<_> = walked.iter().map(as_maps_line).collect();
        assert!(expected.len() >= least, "{text}");
        assert_eq!(
            ours, expected,
            "mappings of pid {target} differ from /proc/{target}/maps"
        );
        for name in ["[stack]", "[vdso]"] {
            assert!(ours.iter().any(|line| line.4 == name), "{name} missing");
        }
    }
    assert_eq!(
        at_once(&mut console, |cpu| {
            let processes = api.processes(cpu).unwrap();
            let task = processes.iter().find(|p| p.pid == pid).unwrap().task;
            api.program_path(cpu, task).unwrap()
        })
        .as_deref(),
        Some("/tmp/maps")
    );

    // The program's maple tree has inner nodes: its root and the root's first child are
    // maple_arange_64 nodes (type 3), so the tree has a height of 3 at least.
    let kinds = at_once(&mut console, |cpu| {
        let profile = api.profile();
        let processes = api.processes(cpu).unwrap();
        let task = processes.iter().find(|p| p.pid == pid).unwrap().task;
        let word = |cpu: &mut dyn GuestCpu, address: u64| {
            let mut bytes = [0u8; 8];
            cpu.read_memory(address, &mut bytes).unwrap();
            u64::from_le_bytes(bytes)
        };
        let mm = word(cpu, task + profile.offset("task_struct", "mm").unwrap());
        let root = word(
            cpu,
            mm + profile.offset("mm_struct", "mm_mt").unwrap()
                + profile.offset("maple_tree", "ma_root").unwrap(),
        );
        let child = word(cpu, (root & !0xff) + 80);
        ((root >> 3) & 0xf, (child >> 3) & 0xf)
    });
    assert_eq!(kinds, (3, 3), "the maple tree is not 3 levels high");

    // A mapping by address: the program's file mapping at offset 2 pages.
    let (task, found) = at_once(&mut console, |cpu| {
        let processes = api.processes(cpu).unwrap();
        let task = processes.iter().find(|p| p.pid == pid).unwrap().task;
        let mappings = api.mappings(cpu, task).unwrap();
        let file = mappings
            .iter()
            .find(|m| m.file.as_deref() == Some("/bin/busybox") && m.offset == 8192)
            .cloned()
            .unwrap();
        let found = api.mapping_by_address(cpu, task, file.base + 100).unwrap();
        assert_eq!(found.as_ref(), Some(&file));
        (task, found)
    });
    assert_eq!(found.unwrap().name.as_deref(), Some("busybox"));

    // File descriptors: stdin a pipe, the file it mapped as 3, 4 /dev/null.
    let text = run(
        &mut console,
        &format!("for f in /proc/{pid}/fd/*; do echo ${{f##*/}} $(readlink $f); done"),
    );
    let expected: Vec<(u32, String)> = text
        .lines()
        .filter_map(|line| {
            let (fd, path) = line.split_once(' ')?;
            Some((fd.parse().ok()?, path.to_string()))
        })
        .collect();
    let fds = at_once(&mut console, |cpu| api.fds(cpu, task).unwrap());
    assert_eq!(fds, expected);
    assert!(fds[0].1.starts_with("pipe:["), "{fds:?}");
    assert!(fds.contains(&(3, "/bin/busybox".to_string())), "{fds:?}");
    assert!(fds.contains(&(4, "/dev/null".to_string())), "{fds:?}");
    assert_eq!(
        at_once(&mut console, |cpu| api.fd_path(cpu, task, 3).unwrap()).as_deref(),
        Some("/bin/busybox")
    );
    let threads = at_once(&mut console, |cpu| api.threads(cpu, task).unwrap());
    assert_eq!(threads.len(), 1);
    assert_eq!((threads[0].pid, threads[0].tid), (pid, pid));

    run(&mut console, &format!("kill {pid}"));
    let report = plugins
        .unload(console.machine().instrumentation(), "osi")
        .unwrap();
    assert!(report.contains("task changes seen"), "{report}");
    eprintln!("{report}");
}

#[test]
fn the_current_process_has_the_cpus_asid_and_task_changes_are_never_missed() {
    let (mut console, mut plugins, api) = guest();
    let changes: Arc<Mutex<Vec<TaskChange>>> = Arc::default();
    let log = Arc::clone(&changes);
    plugins
        .register_ppp(
            "osi",
            "on_task_change",
            "log",
            move |_, change: &TaskChange| {
                log.lock().unwrap().push(*change);
            },
        )
        .unwrap();
    // At every user-mode block: the task on_task_change announced last is current, and
    // the current process's asid is the CPU's.
    #[derive(Default)]
    struct Seen {
        blocks: u64,
        stale: u64,
        asid_mismatch: Vec<String>,
        names: BTreeSet<String>,
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let check = Arc::clone(&seen);
    let user = api.clone();
    let instrumentation: &mut Instrumentation = console.machine().instrumentation();
    instrumentation
        .register(
            "check",
            Callback::StartBlockExec(Box::new(move |cpu, _| {
                if cpu.in_kernel_mode() {
                    return;
                }
                let mut seen = check.lock().unwrap();
                seen.blocks += 1;
                let task = user.current_task(cpu).unwrap();
                if task != user.last_task() {
                    seen.stale += 1;
                }
                if seen.blocks % 64 == 1 {
                    let process = user.current_process(cpu).unwrap();
                    let name = String::from_utf8_lossy(&process.name).into_owned();
                    if process.asid != cpu.asid() {
                        seen.asid_mismatch.push(format!(
                            "{name}: asid {:#x}, satp {:#x}",
                            process.asid,
                            cpu.asid()
                        ));
                    }
                    seen.names.insert(name);
                }
            })),
        )
        .unwrap();
    run(
        &mut console,
        "for i in 1 2 3; do busybox true; ls / > /dev/null; done",
    );
    let seen = seen.lock().unwrap();
    let changes = changes.lock().unwrap();
    assert!(seen.blocks > 10_000, "{} user blocks", seen.blocks);
    assert_eq!(
        seen.stale, 0,
        "user code ran in a task on_task_change did not announce"
    );
    assert!(seen.asid_mismatch.is_empty(), "{:?}", seen.asid_mismatch);
    for name in ["sh", "ls"] {
        assert!(seen.names.contains(name), "{:?}", seen.names);
    }
    // Each event names a new task, and tells the one before.
    assert!(changes.len() > 10, "{} task changes", changes.len());
    assert!(changes.iter().all(|change| change.task != change.previous));
    assert!(changes
        .windows(2)
        .all(|pair| pair[1].previous == pair[0].task));
    assert_eq!(api.task_changes(), changes.len() as u64);
}

#[test]
fn without_a_kernel_profile_the_plugin_does_not_load() {
    let mut instrumentation = Instrumentation::new();
    let mut plugins = Plugins::new();
    let error = plugins
        .load(&mut instrumentation, "osi", [])
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("no kernel profile for OS introspection")
            && error.contains("not given a kernel image"),
        "{error}"
    );
    let not_a_kernel: PathBuf =
        std::env::temp_dir().join(format!("pandare-not-a-kernel-{}", std::process::id()));
    std::fs::write(&not_a_kernel, vec![0u8; 1 << 16]).unwrap();
    plugins.set_kernel_image(&not_a_kernel);
    let error = plugins
        .load(&mut instrumentation, "osi_linux", [])
        .unwrap_err()
        .to_string();
    let _ = std::fs::remove_file(&not_a_kernel);
    assert!(
        error.contains("no kernel profile") && error.contains(&not_a_kernel.display().to_string()),
        "{error}"
    );
    assert!(instrumentation.list().is_empty());
    let error = plugins
        .load(
            &mut instrumentation,
            "osi",
            [("task_change".into(), "often".into())],
        )
        .unwrap_err()
        .to_string();
    assert!(error.contains("no kernel profile"), "{error}");
}
