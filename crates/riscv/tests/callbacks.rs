//! PANDA's callbacks on the real guest: the generic riscv64 image is booted once to its
//! shell prompt per test binary, and each test starts from that snapshot. Bare-metal
//! programs built by hand cover exception cancelling and the hypercall.
//!
//! Run with `cargo test --release -p pandare-riscv --test callbacks` (the image must be
//! cached: `panda run --generic riscv64 --cmd true` builds it).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pandare_core::instrument::{
    data_value, AddressHook, Callback, CallbackKind, HookPoint, InstrumentError, Instrumentation,
    EXIT_RAN_TO_END,
};
use pandare_core::{Exit, Machine, ShutdownKind, Snapshot};
use pandare_riscv::{VirtConfig, VirtMachine};

const RAM: u64 = 512 << 20;

fn config() -> VirtConfig {
    VirtConfig {
        ram_bytes: RAM,
        ..Default::default()
    }
}

/// Runs `machine` for `instructions`, skipping idle time; returns the console output.
fn run_for(machine: &mut VirtMachine, instructions: u64) -> Vec<u8> {
    let end = machine.now() + instructions;
    let mut output = Vec::new();
    while machine.now() < end {
        match machine.run(end - machine.now()) {
            Exit::BudgetExhausted => {
                if machine.instrumentation().take_stopped() {
                    break;
                }
            }
            Exit::Idle => match machine.next_event() {
                Some(time) => machine.skip_to(time.min(end)),
                None => break,
            },
            other => panic!("the guest stopped: {other:?}"),
        }
        output.extend(machine.take_console_output());
    }
    output.extend(machine.take_console_output());
    output
}

/// The machine at the shell prompt, booted once per test binary (`None` without the
/// image: the tests then pass vacuously with a note).
fn at_prompt() -> Option<VirtMachine> {
    static SNAPSHOT: OnceLock<Option<Snapshot>> = OnceLock::new();
    let snapshot = SNAPSHOT.get_or_init(|| {
        let Some(image) = pandare_images::cached("riscv64") else {
            eprintln!("riscv64 image not cached: skipping guest tests");
            return None;
        };
        let kernel = std::fs::read(&image.kernel).ok()?;
        let initrd = std::fs::read(&image.initrd).ok()?;
        let config = VirtConfig {
            command_line: image.append.clone(),
            ..config()
        };
        let mut machine = VirtMachine::new_linux(config, &kernel, Some(&initrd)).unwrap();
        let mut output = Vec::new();
        for _ in 0..400 {
            output.extend(run_for(&mut machine, 10_000_000));
            let text = String::from_utf8_lossy(&output);
            let last_line = text.rsplit('\n').next().unwrap_or_default();
            if last_line.starts_with("pandare:") && last_line.contains("# ") {
                // The kernel still has deferred work when the first prompt appears (with
                // the SBI PMU, its driver's event checks): let it finish, so the tests'
                // budgets measure their commands alone.
                run_for(&mut machine, 200_000_000);
                return Some(machine.save_snapshot());
            }
        }
        panic!(
            "no shell prompt after 4e9 instructions: {:?}",
            String::from_utf8_lossy(&output[output.len().saturating_sub(300)..])
        );
    });
    let snapshot = snapshot.as_ref()?;
    let mut machine = VirtMachine::new_blank(config()).unwrap();
    machine.load_snapshot(snapshot).unwrap();
    Some(machine)
}

/// Types `command` and runs `instructions`; returns the console output.
fn command(machine: &mut VirtMachine, command: &str, instructions: u64) -> String {
    machine.console_input(command.as_bytes());
    machine.console_input(b"\n");
    String::from_utf8_lossy(&run_for(machine, instructions)).into_owned()
}

#[derive(Default)]
struct BlockStats {
    before: u64,
    after_to_end: u64,
    after_early: u64,
    pc_mismatches: u64,
    count_mismatches: u64,
    executed: u64,
    start: u64,
}

#[test]
fn block_callbacks_see_the_hart_and_add_up() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    let stats = Arc::new(Mutex::new(BlockStats::default()));
    let (before, after) = (Arc::clone(&stats), Arc::clone(&stats));
    let instr = machine.instrumentation();
    instr
        .register(
            "before",
            Callback::BeforeBlockExec(Box::new(move |cpu, block| {
                let mut stats = before.lock().unwrap();
                stats.before += 1;
                stats.pc_mismatches += u64::from(cpu.pc() != block.pc);
                stats.start = cpu.instruction_count();
                assert!(block.size >= 2 * u64::from(block.instruction_count));
                assert!(block.size <= 4 * u64::from(block.instruction_count));
            })),
        )
        .unwrap();
    instr
        .register(
            "after",
            Callback::AfterBlockExec(Box::new(move |cpu, block, code| {
                let mut stats = after.lock().unwrap();
                let ran = cpu.instruction_count() - stats.start;
                stats.executed += ran;
                if code == EXIT_RAN_TO_END {
                    stats.after_to_end += 1;
                    stats.count_mismatches += u64::from(ran != u64::from(block.instruction_count));
                } else {
                    stats.after_early += 1;
                    stats.count_mismatches += u64::from(ran >= u64::from(block.instruction_count));
                }
            })),
        )
        .unwrap();
    let start = machine.instruction_count();
    let output = command(&mut machine, "ls /", 60_000_000);
    assert!(output.contains("bin"), "{output}");
    let retired = machine.instruction_count() - start;
    let stats = stats.lock().unwrap();
    assert!(stats.before > 100_000, "{} blocks", stats.before);
    assert_eq!(stats.pc_mismatches, 0);
    assert_eq!(stats.count_mismatches, 0);
    assert_eq!(stats.before, stats.after_to_end + stats.after_early);
    assert!(stats.after_early > 0);
    assert_eq!(stats.executed, retired);
}

#[test]
fn insn_exec_on_every_instruction_counts_retired_instructions() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    // Blocks decoded before the translate callbacks exist are dropped when they arrive.
    run_for(&mut machine, 5_000_000);
    let counters: [Arc<AtomicU64>; 3] = Default::default();
    let [before, after, faults] = counters.clone();
    let instr = machine.instrumentation();
    instr
        .register("all", Callback::InsnTranslate(Box::new(|_, _| true)))
        .unwrap();
    instr
        .register(
            "all after",
            Callback::AfterInsnTranslate(Box::new(|_, _| true)),
        )
        .unwrap();
    instr
        .register(
            "count",
            Callback::InsnExec(Box::new(move |cpu, pc| {
                assert_eq!(cpu.pc(), pc);
                before.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
    instr
        .register(
            "count after",
            Callback::AfterInsnExec(Box::new(move |_, _| {
                after.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
    instr
        .register(
            "faults",
            Callback::CpuRestoreState(Box::new(move |_, _| {
                faults.fetch_add(1, Ordering::Relaxed);
            })),
        )
        .unwrap();
    let start = machine.instruction_count();
    command(&mut machine, "echo hello", 30_000_000);
    let retired = machine.instruction_count() - start;
    let [before, after, faults] = counters.map(|c| c.load(Ordering::Relaxed));
    assert!(retired > 1_000_000);
    assert_eq!(after, retired);
    assert_eq!(before, retired + faults);
}

#[test]
fn virtual_reads_match_physical_memory() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    let checked = Arc::new(AtomicU64::new(0));
    let wrong = Arc::new(AtomicU64::new(0));
    // An atomic read-modify-write announces its write before its read completes; its
    // memory holds the new value by the time the read is reported, so skip those.
    let last_write = Arc::new(Mutex::new((0, 0)));
    let (c, w, l) = (
        Arc::clone(&checked),
        Arc::clone(&wrong),
        Arc::clone(&last_write),
    );
    let instr = machine.instrumentation();
    instr
        .register(
            "writes",
            Callback::VirtMemBeforeWrite(Box::new(move |_, pc, addr, _, _| {
                *last_write.lock().unwrap() = (pc, addr);
            })),
        )
        .unwrap();
    instr
        .register(
            "reads",
            Callback::VirtMemAfterRead(Box::new(move |cpu, pc, addr, size, data| {
                assert_eq!(size, data.len());
                if *l.lock().unwrap() == (pc, addr) {
                    return;
                }
                let Some(paddr) = cpu.virt_to_phys(addr) else {
                    w.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let mut bytes = vec![0; size];
                let same_page = (addr & 0xfff) + size as u64 <= 0x1000;
                if same_page && cpu.read_physical(paddr, &mut bytes).is_ok() {
                    c.fetch_add(1, Ordering::Relaxed);
                    let mut virtual_bytes = vec![0; size];
                    cpu.read_memory(addr, &mut virtual_bytes).unwrap();
                    if bytes != data || virtual_bytes != data {
                        w.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })),
        )
        .unwrap();
    command(&mut machine, "cat /proc/version", 30_000_000);
    assert!(checked.load(Ordering::Relaxed) > 100_000);
    assert_eq!(wrong.load(Ordering::Relaxed), 0);
}

#[test]
fn new_processes_change_the_asid_and_make_user_ecalls() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    let changes = Arc::new(Mutex::new(Vec::new()));
    let ecalls = Arc::new(AtomicU64::new(0));
    let (c, e) = (Arc::clone(&changes), Arc::clone(&ecalls));
    let instr = machine.instrumentation();
    instr
        .register(
            "asid",
            Callback::AsidChanged(Box::new(move |cpu, old, new| {
                assert_eq!(cpu.asid(), old, "the callback runs before the change");
                c.lock().unwrap().push((old, new));
                false
            })),
        )
        .unwrap();
    instr
        .register(
            "ecall",
            Callback::BeforeHandleException(Box::new(move |cpu, index| {
                if index == 8 {
                    assert!(!cpu.in_kernel_mode());
                    e.fetch_add(1, Ordering::Relaxed);
                }
                index
            })),
        )
        .unwrap();
    let output = command(&mut machine, "ls /proc", 60_000_000);
    assert!(output.contains("self"), "{output}");
    let changes = changes.lock().unwrap();
    assert!(changes.len() >= 2, "{changes:x?}");
    assert!(changes.iter().all(|(old, new)| old != new));
    assert!(ecalls.load(Ordering::Relaxed) > 10);
}

#[test]
fn determinism_callbacks_change_nothing() {
    let Some(mut plain) = at_prompt() else {
        return;
    };
    let Some(mut watched) = at_prompt() else {
        return;
    };
    // Register on a running guest (warm TLB and block cache), in the middle of a command.
    plain.console_input(b"ls -l /bin | head -3\n");
    watched.console_input(b"ls -l /bin | head -3\n");
    let a = String::from_utf8_lossy(&run_for(&mut plain, 7_000_000)).into_owned();
    let b = String::from_utf8_lossy(&run_for(&mut watched, 7_000_000)).into_owned();
    assert_eq!(a, b);
    let instr = watched.instrumentation();
    let events = Arc::new(AtomicU64::new(0));
    macro_rules! count {
        () => {{
            let events = Arc::clone(&events);
            move || {
                events.fetch_add(1, Ordering::Relaxed);
            }
        }};
    }
    let tick = count!();
    instr
        .register("b", Callback::BeforeBlockExec(Box::new(move |_, _| tick())))
        .unwrap();
    let tick = count!();
    instr
        .register(
            "a",
            Callback::AfterBlockExec(Box::new(move |_, _, _| tick())),
        )
        .unwrap();
    instr
        .register("t", Callback::InsnTranslate(Box::new(|_, pc| pc % 3 == 0)))
        .unwrap();
    let tick = count!();
    instr
        .register("i", Callback::InsnExec(Box::new(move |_, _| tick())))
        .unwrap();
    let tick = count!();
    instr
        .register(
            "r",
            Callback::PhysMemAfterRead(Box::new(move |_, _, _, _, _| tick())),
        )
        .unwrap();
    let tick = count!();
    instr
        .register(
            "w",
            Callback::VirtMemBeforeWrite(Box::new(move |_, _, _, _, _| tick())),
        )
        .unwrap();
    let tick = count!();
    instr
        .register(
            "x",
            Callback::BeforeHandleException(Box::new(move |_, index| {
                tick();
                index
            })),
        )
        .unwrap();
    let tick = count!();
    instr
        .register(
            "s",
            Callback::AsidChanged(Box::new(move |_, _, _| {
                tick();
                false
            })),
        )
        .unwrap();
    let a = command(&mut plain, "cat /proc/self/maps", 80_000_000);
    let b = command(&mut watched, "cat /proc/self/maps", 80_000_000);
    assert!(a.contains("[stack]"), "{a}");
    assert!(events.load(Ordering::Relaxed) > 1_000_000);
    assert_eq!(a, b);
    assert_eq!(plain.instruction_count(), watched.instruction_count());
    assert_eq!(plain.pc(), watched.pc());
    assert_eq!(plain.state_hash(), watched.state_hash());
}

#[test]
fn callbacks_enable_disable_and_register_others_by_name() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    let outer = Arc::new(AtomicU64::new(0));
    let inner = Arc::new(AtomicU64::new(0));
    let control = machine.instrumentation().controller();
    let (o, i) = (Arc::clone(&outer), Arc::clone(&inner));
    let registered = AtomicBool::new(false);
    machine
        .instrumentation()
        .register(
            "outer",
            Callback::BeforeBlockExec(Box::new(move |_, _| {
                o.fetch_add(1, Ordering::Relaxed);
                if !registered.swap(true, Ordering::Relaxed) {
                    let i = Arc::clone(&i);
                    control.register(
                        "inner",
                        Callback::AfterBlockExec(Box::new(move |_, _, _| {
                            i.fetch_add(1, Ordering::Relaxed);
                        })),
                    );
                    // A second one by the same name is refused when the queue is applied.
                    control.register("inner", Callback::TopLoop(Box::new(|_| {})));
                }
            })),
        )
        .unwrap();
    machine.instrumentation().disable("outer").unwrap();
    run_for(&mut machine, 5_000_000);
    assert_eq!(outer.load(Ordering::Relaxed), 0);
    machine.instrumentation().enable("outer").unwrap();
    run_for(&mut machine, 5_000_000);
    let first = outer.load(Ordering::Relaxed);
    assert!(first > 0);
    // The inner callback started at the block boundary after it was registered: it saw
    // every block but the first.
    assert_eq!(inner.load(Ordering::Relaxed), first - 1);
    let errors = machine.instrumentation().take_errors();
    assert!(matches!(
        errors.as_slice(),
        [InstrumentError::DuplicateName { .. }]
    ));
    machine.instrumentation().disable_forever("outer").unwrap();
    assert!(machine.instrumentation().enable("outer").is_err());
    machine.instrumentation().delete("inner").unwrap();
    run_for(&mut machine, 5_000_000);
    assert_eq!(outer.load(Ordering::Relaxed), first);
    assert_eq!(machine.instrumentation().mask(), 0);
}

#[test]
fn a_callback_can_stop_the_run() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    let blocks = Arc::new(AtomicU64::new(0));
    let b = Arc::clone(&blocks);
    machine
        .instrumentation()
        .register(
            "stop",
            Callback::BeforeBlockExec(Box::new(move |cpu, _| {
                if b.fetch_add(1, Ordering::Relaxed) == 999 {
                    cpu.request_stop();
                }
            })),
        )
        .unwrap();
    let start = machine.instruction_count();
    assert_eq!(machine.run(100_000_000), Exit::BudgetExhausted);
    assert!(machine.instrumentation().take_stopped());
    assert_eq!(blocks.load(Ordering::Relaxed), 1000);
    assert!(machine.instruction_count() - start < 100_000);
}

#[test]
fn unknown_and_refused_names_are_errors() {
    let error = CallbackKind::from_name("before_block_exek").unwrap_err();
    assert!(error.to_string().contains("before_block_exek"));
    let error = Instrumentation::check_kind("before_tcg_codegen").unwrap_err();
    assert!(
        error.to_string().contains("after_block_translate"),
        "{error}"
    );
    let mut instr = Instrumentation::new();
    assert!(matches!(
        instr.enable("nothing"),
        Err(InstrumentError::NoSuchCallback { .. })
    ));
    let machine = VirtMachine::new_bare_metal(config(), &[0; 4]).unwrap();
    drop(machine);
}

/// Little-endian bytes of 32-bit instructions.
fn program(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|word| word.to_le_bytes()).collect()
}

const EBREAK: u32 = 0x0010_0073;
/// `lui t0, 0x100; lui t1, 0x5; addi t1, t1, 0x555; sw t1, 0(t0)`: power off through the
/// test finisher; then `j .`.
const POWER_OFF: [u32; 5] = [
    0x0010_02b7,
    0x0000_5337,
    0x5553_0313,
    0x0062_a023,
    0x0000_006f,
];

#[test]
fn a_cancelled_exception_is_not_delivered() {
    let mut words = vec![EBREAK];
    words.extend(POWER_OFF);
    // Without the callback, the breakpoint goes to mtvec (0, not RAM) and the hart is stuck.
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    assert_eq!(machine.run(10_000), Exit::BudgetExhausted);

    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    machine
        .instrumentation()
        .register(
            "skip",
            Callback::BeforeHandleException(Box::new(move |cpu, index| {
                s.lock().unwrap().push((index, cpu.pc()));
                cpu.set_pc(cpu.pc() + 4);
                -1
            })),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(*seen.lock().unwrap(), vec![(3, 0x8000_0000)]);
    assert_eq!(machine.cpu.hart.reg(6), 0x5555);
}

#[test]
fn an_exception_can_be_replaced() {
    // auipc t0, 0; addi t0, t0, 16; csrw mtvec, t0; ebreak; j . (the handler): the
    // breakpoint becomes an illegal instruction, and mcause says so.
    let words = [0x0000_0297, 0x0102_8293, 0x3052_9073, EBREAK, 0x0000_006f];
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    machine
        .instrumentation()
        .register(
            "swap",
            Callback::BeforeHandleException(Box::new(
                |_, index| if index == 3 { 2 } else { index },
            )),
        )
        .unwrap();
    machine.run(10);
    assert_eq!(machine.cpu.hart.peek_csr(0x342), Some(2));
    assert_eq!(machine.cpu.hart.peek_csr(0x341), Some(0x8000_000c));
    assert_eq!(machine.pc(), 0x8000_0010);
}

#[test]
fn the_hypercall_reaches_its_callback_with_registers() {
    // li a0, 7; hypercall; mv a2, a1; power off.
    let mut words = vec![0x0070_0513, pandare_riscv_hypercall(), 0x0005_8613];
    words.extend(POWER_OFF);
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    machine
        .instrumentation()
        .register(
            "hypercall",
            Callback::GuestHypercall(Box::new(move |cpu| {
                c.fetch_add(1, Ordering::Relaxed);
                let a0 = cpu.register("a0").unwrap();
                assert!(cpu.register("nonsense").is_err());
                cpu.set_register("A1", a0 * 6).unwrap();
                true
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(machine.cpu.hart.reg(12), 42);
}

/// `slti x0, x0, 0x7a5` (see `docs/callbacks.md`).
fn pandare_riscv_hypercall() -> u32 {
    0x7a50_2013
}

#[test]
fn memory_callbacks_see_bare_metal_stores_and_can_rewrite_memory() {
    // auipc t0, 1 (t0 = 0x8000_1000); lui t1, 0x5; addi t1, t1, 0x555; sd t1, 0(t0);
    // ld t2, 0(t0); power off.
    let mut words = vec![
        0x0000_1297,
        0x0000_5337,
        0x5553_0313,
        0x0062_b023,
        0x0002_b383,
    ];
    words.extend(POWER_OFF);
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (Arc::clone(&log), Arc::clone(&log));
    let instr = machine.instrumentation();
    instr
        .register(
            "w",
            Callback::PhysMemAfterWrite(Box::new(move |cpu, pc, addr, size, data| {
                l1.lock()
                    .unwrap()
                    .push(("w", pc, addr, size, data_value(data)));
                if addr == 0x8000_1000 {
                    // Rewrite what was stored: the load that follows must see it.
                    cpu.write_physical(addr, &0x77u64.to_le_bytes()).unwrap();
                }
            })),
        )
        .unwrap();
    instr
        .register(
            "r",
            Callback::VirtMemAfterRead(Box::new(move |_, pc, addr, size, data| {
                l2.lock()
                    .unwrap()
                    .push(("r", pc, addr, size, data_value(data)));
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::PowerOff));
    let log = log.lock().unwrap();
    assert_eq!(log[0], ("w", 0x8000_000c, 0x8000_1000, 8, 0x5555));
    assert_eq!(log[1], ("r", 0x8000_0010, 0x8000_1000, 8, 0x77));
    assert_eq!(machine.cpu.hart.reg(7), 0x77);
}

#[test]
fn device_callbacks_answer_unmapped_reads_and_rewrite_device_writes() {
    // lui t0, 0x20000 (nothing is mapped there); lw t2, 0(t0); power off.
    let mut words = vec![0x2000_02b7, 0x0002_a383];
    words.extend(POWER_OFF);
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    let instr = machine.instrumentation();
    instr
        .register(
            "answer",
            Callback::UnassignedIoRead(Box::new(|_, pc, addr, size, value| {
                assert_eq!((pc, addr, size), (0x8000_0004, 0x2000_0000, 4));
                *value = 0x1234;
                true
            })),
        )
        .unwrap();
    instr
        .register(
            "fail instead",
            Callback::MmioBeforeWrite(Box::new(|_, paddr, _, _, value| {
                if paddr == 0x10_0000 {
                    *value = 0x3333 | 7 << 16;
                }
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::Failure(7)));
    assert_eq!(machine.cpu.hart.reg(7), 0x1234);
}

#[test]
fn machine_level_callbacks_fire_once_per_run_and_at_shutdown() {
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&POWER_OFF)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let instr = machine.instrumentation();
    for (name, callback) in [
        ("init", {
            let log = Arc::clone(&log);
            Callback::AfterMachineInit(Box::new(move |cpu| {
                assert_eq!(cpu.instruction_count(), 0);
                log.lock().unwrap().push("init");
            }))
        }),
        ("top", {
            let log = Arc::clone(&log);
            Callback::TopLoop(Box::new(move |_| log.lock().unwrap().push("top")))
        }),
        ("wait", {
            let log = Arc::clone(&log);
            Callback::MainLoopWait(Box::new(move || log.lock().unwrap().push("wait")))
        }),
        ("shutdown", {
            let log = Arc::clone(&log);
            Callback::PreShutdown(Box::new(move || log.lock().unwrap().push("shutdown")))
        }),
    ] {
        instr.register(name, callback).unwrap();
    }
    assert_eq!(machine.run(2), Exit::BudgetExhausted);
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(
        *log.lock().unwrap(),
        ["init", "top", "wait", "top", "wait", "shutdown"]
    );
}

/// `li t0, 10; li a0, 0; loop: addi a0, a0, 1; mv a1, a0; addi t0, t0, -1; bnez t0, loop`,
/// then power off: ten iterations of a four-instruction block.
const LOOP: [u32; 6] = [
    0x00a0_0293,
    0x0000_0513,
    0x0015_0513,
    0x0005_0593,
    0xfff2_8293,
    0xfe02_9ae3,
];
/// The loop's first instruction and `mv a1, a0`, in the middle of the loop's block.
const LOOP_START: u64 = 0x8000_0008;
const LOOP_MIDDLE: u64 = 0x8000_000c;
/// Where the power-off sequence after the loop starts.
const AFTER_LOOP: u64 = 0x8000_0018;

fn loop_machine() -> VirtMachine {
    let mut words = LOOP.to_vec();
    words.extend(POWER_OFF);
    VirtMachine::new_bare_metal(config(), &program(&words)).unwrap()
}

#[test]
fn a_hook_in_the_middle_of_a_cached_block_fires_once_per_iteration() {
    let mut reference = loop_machine();
    assert_eq!(
        reference.run(10_000),
        Exit::Shutdown(ShutdownKind::PowerOff)
    );

    let mut machine = loop_machine();
    // Three iterations run first, so the loop's block is decoded and cached unsplit.
    assert_eq!(machine.run(2 + 4 * 3), Exit::BudgetExhausted);
    assert_eq!(machine.pc(), LOOP_START);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ends = Arc::new(Mutex::new(Vec::new()));
    let (s, e) = (Arc::clone(&seen), Arc::clone(&ends));
    let instr = machine.instrumentation();
    instr
        .add_hook(
            "middle",
            AddressHook::at(LOOP_MIDDLE),
            Box::new(move |cpu, call| {
                assert_eq!(call.address, LOOP_MIDDLE);
                assert_eq!(call.block.pc, LOOP_MIDDLE);
                s.lock().unwrap().push((
                    cpu.pc(),
                    cpu.register("a0").unwrap(),
                    cpu.register("a1").unwrap(),
                    cpu.instruction_count(),
                ));
            }),
        )
        .unwrap();
    instr
        .add_hook(
            "end",
            AddressHook {
                point: HookPoint::End,
                ..AddressHook::at(LOOP_START)
            },
            Box::new(move |cpu, call| {
                e.lock()
                    .unwrap()
                    .push((cpu.pc(), call.block, call.exit_code));
            }),
        )
        .unwrap();
    assert!(matches!(
        instr.add_hook("end", AddressHook::at(0), Box::new(|_, _| {})),
        Err(InstrumentError::DuplicateName { .. })
    ));
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    let seen = seen.lock().unwrap();
    // Iterations 4 to 10, each seen before `mv a1, a0` runs: a1 still holds a0 - 1.
    let expected: Vec<_> = (4..=10u64)
        .map(|i| (LOOP_MIDDLE, i, i - 1, 2 + 4 * (i - 1) + 1))
        .collect();
    assert_eq!(*seen, expected);
    let ends = ends.lock().unwrap();
    assert_eq!(ends.len(), 7);
    for (pc, block, code) in ends.iter() {
        // The block at the loop's start ends before the hooked address.
        assert_eq!(*pc, LOOP_MIDDLE);
        assert_eq!(
            (block.pc, block.instruction_count, block.size),
            (LOOP_START, 1, 4)
        );
        assert_eq!(*code, EXIT_RAN_TO_END);
    }
    // Split blocks change no count.
    assert_eq!(machine.instruction_count(), reference.instruction_count());
}

#[test]
fn a_hook_can_disable_itself_until_enabled_again() {
    let mut machine = loop_machine();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    machine
        .instrumentation()
        .add_hook(
            "third",
            AddressHook::at(LOOP_MIDDLE),
            Box::new(move |_, call| {
                if c.fetch_add(1, Ordering::Relaxed) + 1 == 3 {
                    call.enabled = false;
                }
            }),
        )
        .unwrap();
    assert_eq!(machine.run(2 + 4 * 6), Exit::BudgetExhausted);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    let instr = machine.instrumentation();
    assert_eq!(instr.is_enabled("third"), Ok(false));
    assert_eq!(instr.mask(), 0);
    instr.enable("third").unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    // Iterations 1 to 3, then 7 to 10 (after it was enabled again).
    assert_eq!(calls.load(Ordering::Relaxed), 7);
    let instr = machine.instrumentation();
    assert_eq!(instr.list_hooks().len(), 1);
    instr.delete("third").unwrap();
    assert!(instr.list_hooks().is_empty());
    assert!(matches!(
        instr.enable("third"),
        Err(InstrumentError::NoSuchCallback { .. })
    ));
}

#[test]
fn a_hook_can_redirect_execution() {
    let mut machine = loop_machine();
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    machine
        .instrumentation()
        .add_hook(
            "leave",
            AddressHook::at(LOOP_MIDDLE),
            Box::new(move |cpu, _| {
                c.fetch_add(1, Ordering::Relaxed);
                cpu.set_pc(AFTER_LOOP);
            }),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // `mv a1, a0` never ran; the power-off sequence did.
    assert_eq!(machine.cpu.hart.reg(10), 1);
    assert_eq!(machine.cpu.hart.reg(11), 0);
    assert_eq!(machine.instruction_count(), 3 + 4);
}

#[test]
fn hooks_filter_by_address_space_and_mode() {
    // Runs `f` once in M-mode, then from the trap handler once in U-mode, and powers off
    // at the user-mode `ecall`. `f: addi a0, a0, 1; addi a1, a1, 2; ecall`, the second
    // instruction hooked.
    let mut words = vec![
        0x0000_0297, // auipc t0, 0
        0x0202_8313, // addi t1, t0, 0x20 (handler)
        0x3053_1073, // csrw mtvec, t1
        0x0402_8313, // addi t1, t0, 0x40 (f)
        0x0003_0067, // jr t1
        0x0000_0013,
        0x0000_0013,
        0x0000_0013,
        0x3420_23f3, // handler: csrr t2, mcause
        0x0080_0e13, // li t3, 8
        0x03c3_8463, // beq t2, t3, 0x50 (power off)
        0x3000_1073, // csrw mstatus, zero (mret goes to U-mode)
        0x3413_1073, // csrw mepc, t1
        0x3020_0073, // mret
        0x0000_0013,
        0x0000_0013,
        0x0015_0513, // f: addi a0, a0, 1
        0x0025_8593, // addi a1, a1, 2
        0x0000_0073, // ecall
        0x0000_0013,
    ];
    words.extend(POWER_OFF);
    let mut machine = VirtMachine::new_bare_metal(config(), &program(&words)).unwrap();
    let hooked = 0x8000_0044;
    let instr = machine.instrumentation();
    let mut logs = Vec::new();
    for (name, asid, kernel) in [
        ("any", None, None),
        ("kernel", None, Some(true)),
        ("user", None, Some(false)),
        ("bare", Some(0), None),
        ("other", Some(1), None),
        ("bare user", Some(0), Some(false)),
    ] {
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&log);
        let hook = AddressHook {
            asid,
            kernel,
            ..AddressHook::at(hooked)
        };
        instr
            .add_hook(
                name,
                hook,
                Box::new(move |cpu, _| {
                    assert_eq!(cpu.pc(), hooked);
                    l.lock().unwrap().push(cpu.in_kernel_mode());
                }),
            )
            .unwrap();
        logs.push((name, log));
    }
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    let fired: Vec<(&str, Vec<bool>)> = logs
        .iter()
        .map(|(name, log)| (*name, log.lock().unwrap().clone()))
        .collect();
    assert_eq!(
        fired,
        [
            ("any", vec![true, false]),
            ("kernel", vec![true]),
            ("user", vec![false]),
            ("bare", vec![true, false]),
            ("other", vec![]),
            ("bare user", vec![false]),
        ]
    );
}

#[test]
fn hook_points_come_from_panda_block_callback_types() {
    for (name, point) in [
        ("start_block_exec", HookPoint::Start),
        ("before_block_exec", HookPoint::Start),
        ("after_block_exec", HookPoint::End),
        ("end_block_exec", HookPoint::End),
    ] {
        let kind = CallbackKind::from_name(name).unwrap();
        assert_eq!(HookPoint::from_kind(kind), Ok(point));
    }
    assert!(matches!(
        HookPoint::from_kind(CallbackKind::AfterBlockTranslate),
        Err(InstrumentError::Unsupported { .. })
    ));
}

#[test]
fn a_hook_on_the_trap_vector_fires_for_user_ecalls_and_survives_a_revert() {
    let Some(mut machine) = at_prompt() else {
        return;
    };
    let Some(mut plain) = at_prompt() else {
        return;
    };
    let start = machine.save_snapshot();
    let vector = machine.cpu.hart.peek_csr(0x105).unwrap();
    let shell = machine.cpu.hart.peek_csr(0x180).unwrap();
    assert!(vector >= 1 << 63, "stvec {vector:#x} is a kernel address");
    let entries = Arc::new(Mutex::new(Vec::new()));
    let user_entries = Arc::new(AtomicU64::new(0));
    let shell_entries = Arc::new(AtomicU64::new(0));
    let ecalls = Arc::new(AtomicU64::new(0));
    let instr = machine.instrumentation();
    let e = Arc::clone(&entries);
    instr
        .add_hook(
            "vector",
            AddressHook {
                kernel: Some(true),
                ..AddressHook::at(vector)
            },
            Box::new(move |cpu, call| {
                assert_eq!(cpu.pc(), vector);
                assert_eq!(call.block.pc, vector);
                e.lock().unwrap().push(cpu.asid());
            }),
        )
        .unwrap();
    let u = Arc::clone(&user_entries);
    instr
        .add_hook(
            "vector in user mode",
            AddressHook {
                kernel: Some(false),
                ..AddressHook::at(vector)
            },
            Box::new(move |_, _| {
                u.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();
    let s = Arc::clone(&shell_entries);
    instr
        .add_hook(
            "vector from the shell",
            AddressHook {
                asid: Some(shell),
                ..AddressHook::at(vector)
            },
            Box::new(move |_, _| {
                s.fetch_add(1, Ordering::Relaxed);
            }),
        )
        .unwrap();
    let c = Arc::clone(&ecalls);
    instr
        .register(
            "ecalls",
            Callback::BeforeHandleException(Box::new(move |_, index| {
                if index == 8 {
                    c.fetch_add(1, Ordering::Relaxed);
                }
                index
            })),
        )
        .unwrap();
    let mut counts = Vec::new();
    for round in 0..2 {
        if round == 1 {
            machine.load_snapshot(&start).unwrap();
            entries.lock().unwrap().clear();
            shell_entries.store(0, Ordering::Relaxed);
            ecalls.store(0, Ordering::Relaxed);
        }
        let output = command(&mut machine, "echo hooked; ls /", 40_000_000);
        assert!(output.contains("hooked"), "{output}");
        let entries = entries.lock().unwrap();
        let ecalls = ecalls.load(Ordering::Relaxed);
        assert!(ecalls > 10, "{ecalls} user ecalls");
        // Every user ecall enters the kernel at stvec (so do interrupts and page faults).
        assert!(
            entries.len() as u64 >= ecalls,
            "{} < {ecalls}",
            entries.len()
        );
        let from_shell = entries.iter().filter(|&&asid| asid == shell).count() as u64;
        assert!(from_shell > 0);
        assert_eq!(shell_entries.load(Ordering::Relaxed), from_shell);
        counts.push((entries.len(), ecalls, machine.instruction_count()));
    }
    // The hooks survived the revert, and the run after it was the same run.
    assert_eq!(counts[0], counts[1]);
    assert_eq!(user_entries.load(Ordering::Relaxed), 0);
    // Hooks change nothing in the guest.
    let output = command(&mut plain, "echo hooked; ls /", 40_000_000);
    assert!(output.contains("hooked"));
    assert_eq!(plain.instruction_count(), machine.instruction_count());
    assert_eq!(plain.pc(), machine.pc());
    assert_eq!(plain.state_hash(), machine.state_hash());
}

#[test]
fn a_hook_fires_where_a_block_runs_at_another_virtual_address() {
    // M-mode maps the first gigabyte of RAM twice (at 0x8000_0000 and 0x1_0000_0000, with
    // Sv39 gigapages; the devices at 0), then runs the ten-iteration loop in S-mode at the
    // first address and again at the second. Only the second copy's middle is hooked, so
    // the loop's block is first decoded unsplit, then reached at the alias.
    let mut words = vec![
        0x0000_0297, // auipc t0, 0
        0x0080_0313, // li t1, 8
        0x03c3_1313, // slli t1, t1, 60
        0x0008_03b7, // lui t2, 0x80
        0x0013_8393, // addi t2, t2, 1 (the page table's page number)
        0x0073_6333, // or t1, t1, t2
        0x1803_1073, // csrw satp, t1
        0x0000_1e37, // lui t3, 1
        0x800e_0e13, // addi t3, t3, -2048 (mstatus.MPP = S)
        0x300e_1073, // csrw mstatus, t3
        0x0402_8e93, // addi t4, t0, 0x40
        0x341e_9073, // csrw mepc, t4
        0x1200_0073, // sfence.vma
        0x3020_0073, // mret
        0x0000_0013,
        0x0000_0013,
    ];
    words.extend(LOOP); // at 0x40
    words.extend([
        0x0004_9c63, // bnez s1, 0x70 (power off)
        0x0010_0493, // li s1, 1
        0x0010_0f13, // li t5, 1
        0x020f_1f13, // slli t5, t5, 32
        0x040f_0f13, // addi t5, t5, 0x40
        0x000f_0067, // jr t5 (the loop again, at the alias)
    ]);
    words.extend(POWER_OFF); // at 0x70
    let mut image = program(&words);
    image.resize(0x1000, 0);
    let gigapage = |physical: u64| (physical >> 12) << 10 | 0xcf; // V R W X A D
    for (index, physical) in [(0, 0), (2, 0x8000_0000u64), (4, 0x8000_0000)] {
        image.resize(0x1000 + index * 8, 0);
        image.extend(gigapage(physical).to_le_bytes());
    }
    let mut machine = VirtMachine::new_bare_metal(config(), &image).unwrap();
    let alias_middle = 0x1_0000_004c;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    machine
        .instrumentation()
        .add_hook(
            "alias",
            AddressHook::at(alias_middle),
            Box::new(move |cpu, call| {
                assert_eq!(call.block.pc, alias_middle);
                s.lock().unwrap().push((
                    cpu.pc(),
                    cpu.register("a0").unwrap(),
                    cpu.register("a1").unwrap(),
                    cpu.in_kernel_mode(),
                ));
            }),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    // Before `mv a1, a0` runs, a1 holds the previous iteration's a0 (10 from the first copy).
    let expected: Vec<_> = (1..=10u64)
        .map(|i| (alias_middle, i, if i == 1 { 10 } else { i - 1 }, true))
        .collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// Block callbacks alone run in the executor's block-start loop; with another kind enabled
/// they run in the fully instrumented one. Both must see the same blocks with the same
/// arguments, and a redirect from `before_block_exec` must act the same in both.
#[test]
fn the_block_start_loop_and_the_instrumented_loop_agree() {
    let redirect = |with_other_kind: bool| {
        let mut machine = loop_machine();
        let arrivals = Arc::new(AtomicU64::new(0));
        let a = Arc::clone(&arrivals);
        let instr = machine.instrumentation();
        instr
            .register(
                "redirect",
                Callback::BeforeBlockExec(Box::new(move |cpu, block| {
                    if block.pc == LOOP_START && a.fetch_add(1, Ordering::Relaxed) == 2 {
                        cpu.set_pc(AFTER_LOOP);
                    }
                })),
            )
            .unwrap();
        if with_other_kind {
            instr
                .register("other", Callback::AfterBlockExec(Box::new(|_, _, _| {})))
                .unwrap();
        }
        assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
        (machine.instruction_count(), machine.state_hash())
    };
    let mut reference = loop_machine();
    assert_eq!(
        reference.run(10_000),
        Exit::Shutdown(ShutdownKind::PowerOff)
    );
    let fast = redirect(false);
    assert_eq!(fast, redirect(true));
    assert!(fast.0 < reference.instruction_count());

    let trace = |with_other_kind: bool| {
        let mut machine = at_prompt()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let instr = machine.instrumentation();
        instr
            .register(
                "trace",
                Callback::BeforeBlockExec(Box::new(move |cpu, block| {
                    s.lock().unwrap().push((
                        block.pc,
                        block.size,
                        block.instruction_count,
                        cpu.instruction_count(),
                        cpu.pc(),
                    ));
                })),
            )
            .unwrap();
        if with_other_kind {
            instr
                .register("other", Callback::AfterBlockExec(Box::new(|_, _, _| {})))
                .unwrap();
        }
        let output = command(&mut machine, "echo $((3*4))", 60_000_000);
        assert!(output.contains("12"), "{output:?}");
        let seen = std::mem::take(&mut *seen.lock().unwrap());
        Some((seen, machine.instruction_count(), machine.state_hash()))
    };
    let Some(fast) = trace(false) else {
        return;
    };
    let full = trace(true).unwrap();
    assert!(fast.0.len() > 10_000);
    assert_eq!(fast.0.len(), full.0.len());
    assert!(fast.0 == full.0, "the two loops saw different blocks");
    assert_eq!((fast.1, fast.2), (full.1, full.2));
}
