//! PANDA's callback semantics as a suite any architecture runs.
//!
//! Each case is a generic function over a [`ConformanceTarget`]: the architecture supplies
//! a machine for a bare-metal program, the small guest [`Program`]s whose contracts are
//! written below, a few facts (register names for arguments, exception numbers, the
//! instruction sizes), readers for registers and two system registers between run
//! slices, and a Linux guest booted to its shell prompt. The cases check the firing rules:
//! order and arguments of block callbacks, exact counts, memory callbacks' addresses and
//! values, exception cancelling and replacement, interrupts held off, code rewritten after
//! it ran, the hypercall, hooks in the middle of
//! blocks and at aliased addresses, enable/disable/delete by name, stopping a run, and that
//! callbacks change nothing in the guest.
//!
//! An architecture's test file implements the trait and expands [`conformance_tests!`](crate::conformance_tests),
//! which makes every case in [`CASES`] its own `#[test]`:
//!
//! ```ignore
//! struct Riscv64;
//! impl pandare_test_support::conformance::ConformanceTarget for Riscv64 { /* ... */ }
//! pandare_test_support::conformance_tests!(Riscv64);
//! ```
//!
//! A case that needs what the target cannot give (no cross assembler, no guest image)
//! reports it through [`crate::unavailable`]: a visible skip, or a failure under `CI=true`.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pandare_core::instrument::{
    data_value, AddressHook, Callback, CallbackKind, HookPoint, InstrumentError, Instrumentation,
    EXIT_RAN_TO_END,
};
use pandare_core::{Exit, Machine, ShutdownKind, Snapshot};

/// The guest programs a target supplies. Each is a bare-metal image entered at its first
/// byte in the most privileged mode, without address translation (address space 0), with
/// the symbols its contract names. "Powers off" means the board's power-off sequence,
/// which takes at least three instructions, ends the run with
/// `Exit::Shutdown(ShutdownKind::PowerOff)` and writes the MMIO register at symbol
/// `power_off_register`. `ARG0`..`ARG2` are the target's [`ConformanceTarget::ARGUMENTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Program {
    /// Powers off at once.
    PowerOff,
    /// A breakpoint instruction at `breakpoint`, with no trap handler installed (the trap
    /// must not lead to a power-off); then, at `after_breakpoint`, sets ARG0 to 1 and powers
    /// off.
    Breakpoint,
    /// Installs a trap handler, executes a breakpoint at `breakpoint`; the handler puts
    /// the exception number into ARG0 and the address of the trapping instruction into
    /// ARG1, then spins at `handler_done`.
    TrappedBreakpoint,
    /// Sets ARG0 to 7, executes the architecture's hypercall at `hypercall`, copies ARG1
    /// into ARG2, powers off.
    Hypercall,
    /// Stores the 8-byte value 0x5555 at physical `data` with the instruction at `store`,
    /// loads 8 bytes from `data` into ARG0 with the instruction at `load` (the next one),
    /// powers off.
    StoreLoad,
    /// Loads 4 bytes from the unmapped physical address `unmapped` into ARG0 with the
    /// instruction at `load`, powers off.
    UnmappedLoad,
    /// Exactly two instructions, then at `loop` a loop of four instructions run ten times:
    /// ARG0 counts iterations from 1; the second instruction, at `middle`, copies ARG0 into
    /// ARG1. After the loop, at `after_loop`, powers off. Instructions at `loop` and
    /// `middle` are one block's first two.
    Loop,
    /// Runs a function twice, first in kernel mode, then from its trap handler in user
    /// mode; the function's second instruction is at `hooked`, and it ends with a system
    /// call; the one from user mode makes the handler power off.
    UserMode,
    /// Maps RAM twice with the MMU (the devices stay reachable), then runs the [`Loop`]
    /// body's ten iterations in kernel mode at the first mapping, and again at the second,
    /// where the `middle` instruction's virtual address is `alias_middle`; then powers off.
    ///
    /// [`Loop`]: Program::Loop
    AliasedLoop,
    /// Installs a trap handler, arms a timer interrupt a few dozen instructions ahead,
    /// enables it, and spins at `wait` (a one-instruction loop); the handler sets ARG0 to
    /// 1 and powers off.
    TimerInterrupt,
    /// Calls the function at `patched`, which sets ARG0 to 1 and returns; copies ARG0 into
    /// ARG1; overwrites the function's first instruction, with a store, by the one at
    /// `replacement` (which sets ARG0 to 2); makes the change visible to instruction
    /// fetch as the architecture requires; calls the function again; powers off.
    SelfModifying,
}

impl Program {
    /// The stem of the program's source file in an architecture's `tests/conformance/`.
    pub fn source_name(self) -> &'static str {
        match self {
            Program::PowerOff => "power_off",
            Program::Breakpoint => "breakpoint",
            Program::TrappedBreakpoint => "trapped_breakpoint",
            Program::Hypercall => "hypercall",
            Program::StoreLoad => "store_load",
            Program::UnmappedLoad => "unmapped_load",
            Program::Loop => "loop",
            Program::UserMode => "user_mode",
            Program::AliasedLoop => "aliased_loop",
            Program::TimerInterrupt => "timer_interrupt",
            Program::SelfModifying => "self_modifying",
        }
    }
}

impl Program {
    /// Every program, for targets that build them all up front.
    pub const ALL: [Program; 11] = [
        Program::PowerOff,
        Program::Breakpoint,
        Program::TrappedBreakpoint,
        Program::Hypercall,
        Program::StoreLoad,
        Program::UnmappedLoad,
        Program::Loop,
        Program::UserMode,
        Program::AliasedLoop,
        Program::TimerInterrupt,
        Program::SelfModifying,
    ];
}

/// A built guest program: its raw image and the addresses of its symbols.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestProgram {
    /// The bytes the machine loads.
    pub image: Vec<u8>,
    /// Symbol name to address.
    pub symbols: BTreeMap<String, u64>,
}

impl GuestProgram {
    /// The address of `name`, which the program's contract promises.
    pub fn symbol(&self, name: &str) -> u64 {
        *self.symbols.get(name).unwrap_or_else(|| {
            panic!("the program has no symbol `{name}`, which its contract names")
        })
    }
}

/// What an architecture supplies to run the suite.
pub trait ConformanceTarget: 'static {
    /// Its machine.
    type Machine: Machine;

    /// Names of three integer registers used as arguments and results (RISC-V: `a0`,
    /// `a1`, `a2`). Register names are case-insensitive.
    const ARGUMENTS: [&'static str; 3];
    /// Sizes an instruction can have, in bytes.
    const INSTRUCTION_BYTES: RangeInclusive<u64>;
    /// The exception number (as `before_handle_exception` gets it) of a breakpoint.
    const BREAKPOINT: i32;
    /// The exception number of an illegal instruction.
    const ILLEGAL_INSTRUCTION: i32;
    /// The exception number of a system call from user mode, where system calls are
    /// exceptions.
    const USER_SYSCALL: Option<i32>;
    /// The interrupt number (as `before_handle_interrupt` gets it) of the timer interrupt
    /// [`Program::TimerInterrupt`] raises.
    const TIMER_INTERRUPT: i32;

    /// Builds `which`, or says why it cannot (a missing assembler, with how to install it).
    fn program(&self, which: Program) -> Result<GuestProgram, String>;
    /// A machine that runs `program` bare-metal, as [`Program`] describes.
    fn bare_metal(&self, program: &GuestProgram) -> Self::Machine;
    /// A Linux guest at its shell prompt (each call a fresh machine, usually from a
    /// snapshot taken once), or why there is none (the image is not built).
    fn guest_at_prompt(&self) -> Result<Self::Machine, String>;
    /// The value written to `power_off_register` that makes the machine stop with
    /// `ShutdownKind::Failure(code)`.
    fn failure_value(&self, code: u32) -> u64;
    /// Register `name` between run slices.
    fn register(&self, machine: &mut Self::Machine, name: &str) -> u64;
    /// The current address-space identifier, as `GuestCpu::asid` gives it.
    fn asid(&self, machine: &mut Self::Machine) -> u64;
    /// Where the kernel is entered on a system call from user mode (RISC-V: `stvec`).
    fn syscall_entry(&self, machine: &mut Self::Machine) -> u64;
}

// ---------------------------------------------------------------------------------------
// Helpers

fn bare<T: ConformanceTarget>(target: &T, which: Program) -> Option<(T::Machine, GuestProgram)> {
    match target.program(which) {
        Ok(program) => Some((target.bare_metal(&program), program)),
        Err(reason) => {
            crate::unavailable(&reason);
            None
        }
    }
}

fn guest<T: ConformanceTarget>(target: &T) -> Option<T::Machine> {
    match target.guest_at_prompt() {
        Ok(machine) => Some(machine),
        Err(reason) => {
            crate::unavailable(&reason);
            None
        }
    }
}

/// Runs `machine` for `instructions` units of virtual time, skipping idle time, stopping
/// early when a callback asked to stop; returns the console output.
pub fn run_for(machine: &mut impl Machine, instructions: u64) -> Vec<u8> {
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

/// Types `command` and a newline, runs `instructions`; returns the console output.
pub fn command(machine: &mut impl Machine, command: &str, instructions: u64) -> String {
    machine.console_input(command.as_bytes());
    machine.console_input(b"\n");
    String::from_utf8_lossy(&run_for(machine, instructions)).into_owned()
}

/// Boots `machine` (a Linux guest of pandare's generic images) until the last console line
/// is the shell prompt (`pandare:... # `), in slices of 10^7 instructions up to 4·10^9, and
/// returns a snapshot there.
pub fn boot_to_prompt(machine: &mut impl Machine) -> Snapshot {
    let mut output = Vec::new();
    for _ in 0..400 {
        output.extend(run_for(machine, 10_000_000));
        let text = String::from_utf8_lossy(&output);
        let last_line = text.rsplit('\n').next().unwrap_or_default();
        if last_line.starts_with("pandare:") && last_line.contains("# ") {
            // A kernel may still have deferred work when the first prompt appears (riscv64's
            // PMU driver does): let it finish, so the cases' budgets measure their commands.
            run_for(machine, 200_000_000);
            return machine.save_snapshot();
        }
    }
    panic!(
        "no shell prompt after 4e9 instructions: {:?}",
        String::from_utf8_lossy(&output[output.len().saturating_sub(300)..])
    );
}

// ---------------------------------------------------------------------------------------
// The cases, on a booted guest

#[derive(Default)]
struct BlockStats {
    before: u64,
    after_to_end: u64,
    after_early: u64,
    pc_mismatches: u64,
    count_mismatches: u64,
    size_mismatches: u64,
    executed: u64,
    start: u64,
}

/// `before_block_exec` sees the CPU at the block's pc; `after_block_exec` follows each one,
/// with `EXIT_RAN_TO_END` exactly when every instruction of the block ran; the instructions
/// the callbacks account for are exactly those retired.
pub fn block_callbacks_see_the_cpu_and_add_up<T: ConformanceTarget>(target: &T) {
    let Some(mut machine) = guest(target) else {
        return;
    };
    let stats = Arc::new(Mutex::new(BlockStats::default()));
    let (before, after) = (Arc::clone(&stats), Arc::clone(&stats));
    let sizes = T::INSTRUCTION_BYTES;
    let instr = machine.instrumentation();
    instr
        .register(
            "before",
            Callback::BeforeBlockExec(Box::new(move |cpu, block| {
                let mut stats = before.lock().unwrap();
                stats.before += 1;
                stats.pc_mismatches += u64::from(cpu.pc() != block.pc);
                stats.start = cpu.instruction_count();
                let count = u64::from(block.instruction_count);
                let fits = (sizes.start() * count..=sizes.end() * count).contains(&block.size);
                stats.size_mismatches += u64::from(!fits);
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
    assert_eq!(stats.size_mismatches, 0);
    assert_eq!(stats.count_mismatches, 0);
    assert_eq!(stats.before, stats.after_to_end + stats.after_early);
    assert!(stats.after_early > 0);
    assert_eq!(stats.executed, retired);
}

/// With every instruction selected at translation, `after_insn_exec` fires once per
/// retired instruction, and `insn_exec` once more for each one that faulted
/// (`cpu_restore_state`).
pub fn insn_exec_on_every_instruction_counts_retired_instructions<T: ConformanceTarget>(
    target: &T,
) {
    let Some(mut machine) = guest(target) else {
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

/// Every virtual read reports the bytes that physical memory (at the translated address)
/// and a virtual read through the callback API hold.
pub fn virtual_reads_match_physical_memory<T: ConformanceTarget>(target: &T) {
    let Some(mut machine) = guest(target) else {
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

/// `asid_changed` fires before each address-space switch (the CPU still shows the old
/// one), and user-mode system calls reach `before_handle_exception` in user mode.
pub fn new_processes_change_the_asid_and_make_system_calls<T: ConformanceTarget>(target: &T) {
    let Some(syscall) = T::USER_SYSCALL else {
        crate::unavailable("this architecture's system calls are not exceptions");
        return;
    };
    let Some(mut machine) = guest(target) else {
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
            "syscall",
            Callback::BeforeHandleException(Box::new(move |cpu, index| {
                if index == syscall {
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

/// Registering callbacks of many kinds on a running guest changes nothing the guest does:
/// output, instruction count, pc and registers stay those of a run without them.
pub fn callbacks_change_nothing_in_the_guest<T: ConformanceTarget>(target: &T) {
    let Some(mut plain) = guest(target) else {
        return;
    };
    let Some(mut watched) = guest(target) else {
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

/// Callbacks are enabled, disabled (once or forever) and deleted by name; a callback can
/// register another, which starts at the next block boundary; a duplicate name queued
/// from a callback is refused when the queue is applied.
pub fn callbacks_enable_disable_and_register_others_by_name<T: ConformanceTarget>(target: &T) {
    let Some(mut machine) = guest(target) else {
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

/// `request_stop` from a callback ends the run after that block: the run returns, the
/// stop is reported once, and no further block ran.
pub fn a_callback_can_stop_the_run<T: ConformanceTarget>(target: &T) {
    let Some(mut machine) = guest(target) else {
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

/// A hook on the kernel's system-call entry fires, with the right address space, on each
/// user system call; hooks filter by address space and mode; they survive a snapshot
/// revert, after which the run is the same run; and they change nothing in the guest.
pub fn a_hook_on_the_syscall_entry_fires_for_user_calls_and_survives_a_revert<
    T: ConformanceTarget,
>(
    target: &T,
) {
    let Some(syscall) = T::USER_SYSCALL else {
        crate::unavailable("this architecture's system calls are not exceptions");
        return;
    };
    let Some(mut machine) = guest(target) else {
        return;
    };
    let Some(mut plain) = guest(target) else {
        return;
    };
    let start = machine.save_snapshot();
    let vector = target.syscall_entry(&mut machine);
    let shell = target.asid(&mut machine);
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
            "syscalls",
            Callback::BeforeHandleException(Box::new(move |_, index| {
                if index == syscall {
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
        assert!(ecalls > 10, "{ecalls} user system calls");
        // Every user system call enters the kernel there (so may interrupts and faults).
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

/// Block callbacks alone (with `before_handle_exception`, which the uninstrumented body
/// fires where it takes an exception) run in the executor's block-start loop; with another
/// kind enabled they run in the fully instrumented one. Both must see the same blocks and
/// exceptions with the same arguments, and a redirect from `before_block_exec` must act
/// the same in both.
pub fn the_block_start_loop_and_the_instrumented_loop_agree<T: ConformanceTarget>(target: &T) {
    const EXCEPTION_MARK: u64 = u64::MAX;
    if !a_redirect_from_before_block_exec_acts_the_same_in_both_loops(target) {
        return;
    }

    let trace = |with_other_kind: bool| {
        let mut machine = guest(target)?;
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
        // Exceptions go into the same trace, marked by a block address no block has.
        let e = Arc::clone(&seen);
        instr
            .register(
                "exceptions",
                Callback::BeforeHandleException(Box::new(move |cpu, index| {
                    e.lock().unwrap().push((
                        EXCEPTION_MARK,
                        index as u64,
                        0,
                        cpu.instruction_count(),
                        cpu.pc(),
                    ));
                    index
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
    let exceptions = fast
        .0
        .iter()
        .filter(|entry| entry.0 == EXCEPTION_MARK)
        .count();
    assert!(exceptions > 10, "only {exceptions} exceptions seen");
    assert_eq!(fast.0.len(), full.0.len());
    assert!(fast.0 == full.0, "the two loops saw different blocks");
    assert_eq!((fast.1, fast.2), (full.1, full.2));
}

/// The bare-metal half of [`the_block_start_loop_and_the_instrumented_loop_agree`], for
/// targets that have no Linux guest yet: a `before_block_exec` callback that moves the pc
/// gives the same run in the block-start loop (alone) and in the instrumented loop (with
/// another kind enabled). False when the program cannot be built (reported as unavailable).
pub fn a_redirect_from_before_block_exec_acts_the_same_in_both_loops<T: ConformanceTarget>(
    target: &T,
) -> bool {
    let Some((mut reference, program)) = bare(target, Program::Loop) else {
        return false;
    };
    let (loop_start, after_loop) = (program.symbol("loop"), program.symbol("after_loop"));
    let redirect = |with_other_kind: bool| {
        let mut machine = target.bare_metal(&program);
        let arrivals = Arc::new(AtomicU64::new(0));
        let a = Arc::clone(&arrivals);
        let instr = machine.instrumentation();
        instr
            .register(
                "redirect",
                Callback::BeforeBlockExec(Box::new(move |cpu, block| {
                    if block.pc == loop_start && a.fetch_add(1, Ordering::Relaxed) == 2 {
                        cpu.set_pc(after_loop);
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
    assert_eq!(
        reference.run(10_000),
        Exit::Shutdown(ShutdownKind::PowerOff)
    );
    let fast = redirect(false);
    assert_eq!(fast, redirect(true));
    assert!(fast.0 < reference.instruction_count());
    true
}

// ---------------------------------------------------------------------------------------
// The cases, bare-metal

/// Unknown callback names and PANDA callbacks pandare refuses are errors that name them
/// (or say what to use instead), and so are operations on names never registered.
pub fn unknown_and_refused_names_are_errors<T: ConformanceTarget>(target: &T) {
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
    if let Some((mut machine, _)) = bare(target, Program::PowerOff) {
        assert!(matches!(
            machine.instrumentation().disable("nothing"),
            Err(InstrumentError::NoSuchCallback { .. })
        ));
    }
}

/// `before_handle_exception` returning -1 cancels the exception: it is not delivered, and
/// execution goes on where the callback put the pc.
pub fn a_cancelled_exception_is_not_delivered<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::Breakpoint) else {
        return;
    };
    let [marker, ..] = T::ARGUMENTS;
    // Without the callback, the breakpoint is delivered and the program never powers off.
    assert_ne!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_ne!(target.register(&mut machine, marker), 1);

    let mut machine = target.bare_metal(&program);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let resume = program.symbol("after_breakpoint");
    machine
        .instrumentation()
        .register(
            "skip",
            Callback::BeforeHandleException(Box::new(move |cpu, index| {
                s.lock().unwrap().push((index, cpu.pc()));
                cpu.set_pc(resume);
                -1
            })),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(T::BREAKPOINT, program.symbol("breakpoint"))]
    );
    assert_eq!(target.register(&mut machine, marker), 1);
}

/// `before_handle_exception` returning another exception number delivers that one instead,
/// at the same instruction.
pub fn an_exception_can_be_replaced<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::TrappedBreakpoint) else {
        return;
    };
    machine
        .instrumentation()
        .register(
            "swap",
            Callback::BeforeHandleException(Box::new(|_, index| {
                if index == T::BREAKPOINT {
                    T::ILLEGAL_INSTRUCTION
                } else {
                    index
                }
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::BudgetExhausted);
    let [cause, address, _] = T::ARGUMENTS;
    assert_eq!(
        target.register(&mut machine, cause),
        T::ILLEGAL_INSTRUCTION as u64
    );
    assert_eq!(
        target.register(&mut machine, address),
        program.symbol("breakpoint")
    );
    assert_eq!(machine.pc(), program.symbol("handler_done"));
}

/// `guest_hypercall` fires once at the hypercall, and reads and writes registers by name
/// (case-insensitively); an unknown name is an error.
pub fn the_hypercall_reaches_its_callback_with_registers<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, _)) = bare(target, Program::Hypercall) else {
        return;
    };
    let [input, output, copy] = T::ARGUMENTS;
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    machine
        .instrumentation()
        .register(
            "hypercall",
            Callback::GuestHypercall(Box::new(move |cpu| {
                c.fetch_add(1, Ordering::Relaxed);
                let value = cpu.register(input).unwrap();
                assert!(cpu.register("nonsense").is_err());
                cpu.set_register(&output.to_uppercase(), value * 6).unwrap();
                true
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(target.register(&mut machine, copy), 42);
}

/// `phys_mem_after_write` and `virt_mem_after_read` see each access's pc, address, size and
/// value; memory written from a callback is what the next load reads.
pub fn memory_callbacks_see_stores_and_can_rewrite_memory<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::StoreLoad) else {
        return;
    };
    let data = program.symbol("data");
    let log = Arc::new(Mutex::new(Vec::new()));
    let (l1, l2) = (Arc::clone(&log), Arc::clone(&log));
    let instr = machine.instrumentation();
    instr
        .register(
            "w",
            Callback::PhysMemAfterWrite(Box::new(move |cpu, pc, addr, size, bytes| {
                l1.lock()
                    .unwrap()
                    .push(("w", pc, addr, size, data_value(bytes)));
                if addr == data {
                    // Rewrite what was stored: the load that follows must see it.
                    cpu.write_physical(addr, &0x77u64.to_le_bytes()).unwrap();
                }
            })),
        )
        .unwrap();
    instr
        .register(
            "r",
            Callback::VirtMemAfterRead(Box::new(move |_, pc, addr, size, bytes| {
                l2.lock()
                    .unwrap()
                    .push(("r", pc, addr, size, data_value(bytes)));
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::PowerOff));
    let log = log.lock().unwrap();
    assert_eq!(log[0], ("w", program.symbol("store"), data, 8, 0x5555));
    assert_eq!(log[1], ("r", program.symbol("load"), data, 8, 0x77));
    let [result, ..] = T::ARGUMENTS;
    assert_eq!(target.register(&mut machine, result), 0x77);
}

/// `unassigned_io_read` answers a read where no device is, and `mmio_before_write` can
/// change the value a device receives.
pub fn device_callbacks_answer_unmapped_reads_and_rewrite_device_writes<T: ConformanceTarget>(
    target: &T,
) {
    let Some((mut machine, program)) = bare(target, Program::UnmappedLoad) else {
        return;
    };
    let (load, unmapped) = (program.symbol("load"), program.symbol("unmapped"));
    let power_off = program.symbol("power_off_register");
    let failure = target.failure_value(7);
    let instr = machine.instrumentation();
    instr
        .register(
            "answer",
            Callback::UnassignedIoRead(Box::new(move |_, pc, addr, size, value| {
                assert_eq!((pc, addr, size), (load, unmapped, 4));
                *value = 0x1234;
                true
            })),
        )
        .unwrap();
    instr
        .register(
            "fail instead",
            Callback::MmioBeforeWrite(Box::new(move |_, paddr, _, _, value| {
                if paddr == power_off {
                    *value = failure;
                }
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100), Exit::Shutdown(ShutdownKind::Failure(7)));
    let [result, ..] = T::ARGUMENTS;
    assert_eq!(target.register(&mut machine, result), 0x1234);
}

/// `after_machine_init` fires once, before the first instruction; `top_loop` and
/// `main_loop_wait` once per run; `pre_shutdown` at shutdown.
pub fn machine_level_callbacks_fire_once_per_run_and_at_shutdown<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, _)) = bare(target, Program::PowerOff) else {
        return;
    };
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

/// The [`Program::Loop`] facts the loop cases use.
struct LoopFacts {
    start: u64,
    middle: u64,
    after: u64,
}

fn loop_facts(program: &GuestProgram) -> LoopFacts {
    LoopFacts {
        start: program.symbol("loop"),
        middle: program.symbol("middle"),
        after: program.symbol("after_loop"),
    }
}

/// Instructions before the loop, and in its body (the [`Program::Loop`] contract).
const PROLOGUE: u64 = 2;
const BODY: u64 = 4;

/// A hook in the middle of a block already cached unsplit fires once per iteration,
/// before the hooked instruction, with the block split there; split blocks change no
/// count. A duplicate hook name is refused.
pub fn a_hook_in_the_middle_of_a_cached_block_fires_once_per_iteration<T: ConformanceTarget>(
    target: &T,
) {
    let Some((mut reference, program)) = bare(target, Program::Loop) else {
        return;
    };
    let facts = loop_facts(&program);
    let [a0, a1, _] = T::ARGUMENTS;
    assert_eq!(
        reference.run(10_000),
        Exit::Shutdown(ShutdownKind::PowerOff)
    );

    let mut machine = target.bare_metal(&program);
    // Three iterations run first, so the loop's block is decoded and cached unsplit.
    assert_eq!(machine.run(PROLOGUE + BODY * 3), Exit::BudgetExhausted);
    assert_eq!(machine.pc(), facts.start);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let ends = Arc::new(Mutex::new(Vec::new()));
    let (s, e) = (Arc::clone(&seen), Arc::clone(&ends));
    let middle = facts.middle;
    let instr = machine.instrumentation();
    instr
        .add_hook(
            "middle",
            AddressHook::at(middle),
            Box::new(move |cpu, call| {
                assert_eq!(call.address, middle);
                assert_eq!(call.block.pc, middle);
                s.lock().unwrap().push((
                    cpu.pc(),
                    cpu.register(a0).unwrap(),
                    cpu.register(a1).unwrap(),
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
                ..AddressHook::at(facts.start)
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
    // Iterations 4 to 10, each seen before the copy runs: ARG1 still holds ARG0 - 1.
    let expected: Vec<_> = (4..=10u64)
        .map(|i| (middle, i, i - 1, PROLOGUE + BODY * (i - 1) + 1))
        .collect();
    assert_eq!(*seen, expected);
    let ends = ends.lock().unwrap();
    assert_eq!(ends.len(), 7);
    for (pc, block, code) in ends.iter() {
        // The block at the loop's start ends before the hooked address.
        assert_eq!(*pc, middle);
        assert_eq!(
            (block.pc, block.instruction_count, block.size),
            (facts.start, 1, middle - facts.start)
        );
        assert_eq!(*code, EXIT_RAN_TO_END);
    }
    // Split blocks change no count.
    assert_eq!(machine.instruction_count(), reference.instruction_count());
}

/// A hook that clears its `enabled` flag stops firing, shows as disabled and leaves the
/// callback mask empty; enabled again by name, it fires again; deleted, it is gone.
pub fn a_hook_can_disable_itself_until_enabled_again<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::Loop) else {
        return;
    };
    let facts = loop_facts(&program);
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    machine
        .instrumentation()
        .add_hook(
            "third",
            AddressHook::at(facts.middle),
            Box::new(move |_, call| {
                if c.fetch_add(1, Ordering::Relaxed) + 1 == 3 {
                    call.enabled = false;
                }
            }),
        )
        .unwrap();
    assert_eq!(machine.run(PROLOGUE + BODY * 6), Exit::BudgetExhausted);
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

/// A hook that sets the pc sends execution there before the hooked instruction runs.
pub fn a_hook_can_redirect_execution<T: ConformanceTarget>(target: &T) {
    let Some((mut reference, program)) = bare(target, Program::Loop) else {
        return;
    };
    let facts = loop_facts(&program);
    assert_eq!(
        reference.run(10_000),
        Exit::Shutdown(ShutdownKind::PowerOff)
    );
    let power_off_instructions = reference.instruction_count() - (PROLOGUE + BODY * 10);
    let mut machine = target.bare_metal(&program);
    let calls = Arc::new(AtomicU64::new(0));
    let c = Arc::clone(&calls);
    let after = facts.after;
    machine
        .instrumentation()
        .add_hook(
            "leave",
            AddressHook::at(facts.middle),
            Box::new(move |cpu, _| {
                c.fetch_add(1, Ordering::Relaxed);
                cpu.set_pc(after);
            }),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    // The copy never ran; the power-off sequence did.
    let [a0, a1, _] = T::ARGUMENTS;
    assert_eq!(target.register(&mut machine, a0), 1);
    assert_eq!(target.register(&mut machine, a1), 0);
    assert_eq!(
        machine.instruction_count(),
        PROLOGUE + 1 + power_off_instructions
    );
}

/// Hooks filtered by address space and by kernel/user mode fire only where both match.
pub fn hooks_filter_by_address_space_and_mode<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::UserMode) else {
        return;
    };
    let hooked = program.symbol("hooked");
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

/// PANDA's block callback types name the hook points.
pub fn hook_points_come_from_panda_block_callback_types<T: ConformanceTarget>(_: &T) {
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

/// A hook on a virtual address fires where a block already decoded at another virtual
/// address (the same physical code) runs there.
pub fn a_hook_fires_where_a_block_runs_at_another_virtual_address<T: ConformanceTarget>(
    target: &T,
) {
    let Some((mut machine, program)) = bare(target, Program::AliasedLoop) else {
        return;
    };
    let alias_middle = program.symbol("alias_middle");
    let [a0, a1, _] = T::ARGUMENTS;
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
                    cpu.register(a0).unwrap(),
                    cpu.register(a1).unwrap(),
                    cpu.in_kernel_mode(),
                ));
            }),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    // Before the copy runs, ARG1 holds the previous iteration's ARG0 (10 from the first
    // mapping).
    let expected: Vec<_> = (1..=10u64)
        .map(|i| (alias_middle, i, if i == 1 { 10 } else { i - 1 }, true))
        .collect();
    assert_eq!(*seen.lock().unwrap(), expected);
}

/// `before_handle_interrupt` fires before the interrupt is taken, with its number; `-1`
/// leaves it pending and it is offered again before the next block; returning the number
/// takes it.
pub fn an_interrupt_can_be_held_off_and_is_offered_again<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::TimerInterrupt) else {
        return;
    };
    let offers = Arc::new(Mutex::new(Vec::new()));
    let o = Arc::clone(&offers);
    machine
        .instrumentation()
        .register(
            "hold off",
            Callback::BeforeHandleInterrupt(Box::new(move |cpu, index| {
                let mut offers = o.lock().unwrap();
                offers.push((index, cpu.pc(), cpu.instruction_count()));
                if offers.len() <= 3 {
                    -1
                } else {
                    index
                }
            })),
        )
        .unwrap();
    assert_eq!(machine.run(100_000), Exit::Shutdown(ShutdownKind::PowerOff));
    let [taken, ..] = T::ARGUMENTS;
    assert_eq!(target.register(&mut machine, taken), 1);
    let offers = offers.lock().unwrap();
    assert_eq!(offers.len(), 4, "{offers:x?}");
    let wait = program.symbol("wait");
    for (index, (number, pc, count)) in offers.iter().enumerate() {
        assert_eq!((*number, *pc), (T::TIMER_INTERRUPT, wait), "offer {index}");
        if index > 0 {
            // Offered again at the next block: one more turn of the one-instruction loop.
            assert_eq!(*count, offers[index - 1].2 + 1, "offer {index}");
        }
    }
}

/// A store over code that already ran makes the new code run, and the block is decoded
/// again (`before_block_translate` fires for it again).
pub fn a_write_to_code_that_ran_runs_the_new_code<T: ConformanceTarget>(target: &T) {
    let Some((mut machine, program)) = bare(target, Program::SelfModifying) else {
        return;
    };
    let patched = program.symbol("patched");
    let translations = Arc::new(AtomicU64::new(0));
    let t = Arc::clone(&translations);
    machine
        .instrumentation()
        .register(
            "translations",
            Callback::BeforeBlockTranslate(Box::new(move |_, pc| {
                if pc == patched {
                    t.fetch_add(1, Ordering::Relaxed);
                }
            })),
        )
        .unwrap();
    assert_eq!(machine.run(10_000), Exit::Shutdown(ShutdownKind::PowerOff));
    let [new, old, _] = T::ARGUMENTS;
    assert_eq!(target.register(&mut machine, old), 1);
    assert_eq!(target.register(&mut machine, new), 2);
    assert_eq!(translations.load(Ordering::Relaxed), 2);
}

/// Every case's name, in the order [`conformance_tests!`](crate::conformance_tests) expands them.
pub const CASES: [&str; 24] = [
    "block_callbacks_see_the_cpu_and_add_up",
    "insn_exec_on_every_instruction_counts_retired_instructions",
    "virtual_reads_match_physical_memory",
    "new_processes_change_the_asid_and_make_system_calls",
    "callbacks_change_nothing_in_the_guest",
    "callbacks_enable_disable_and_register_others_by_name",
    "a_callback_can_stop_the_run",
    "a_hook_on_the_syscall_entry_fires_for_user_calls_and_survives_a_revert",
    "the_block_start_loop_and_the_instrumented_loop_agree",
    "unknown_and_refused_names_are_errors",
    "a_cancelled_exception_is_not_delivered",
    "an_exception_can_be_replaced",
    "the_hypercall_reaches_its_callback_with_registers",
    "memory_callbacks_see_stores_and_can_rewrite_memory",
    "device_callbacks_answer_unmapped_reads_and_rewrite_device_writes",
    "machine_level_callbacks_fire_once_per_run_and_at_shutdown",
    "a_hook_in_the_middle_of_a_cached_block_fires_once_per_iteration",
    "a_hook_can_disable_itself_until_enabled_again",
    "a_hook_can_redirect_execution",
    "hooks_filter_by_address_space_and_mode",
    "hook_points_come_from_panda_block_callback_types",
    "a_hook_fires_where_a_block_runs_at_another_virtual_address",
    "an_interrupt_can_be_held_off_and_is_offered_again",
    "a_write_to_code_that_ran_runs_the_new_code",
];

/// Expands to one `#[test]` per conformance case, each calling the case with `$target`
/// (an expression giving a value that implements [`ConformanceTarget`]).
#[macro_export]
macro_rules! conformance_tests {
    ($target:expr) => {
        $crate::conformance_tests!(@cases $target;
            block_callbacks_see_the_cpu_and_add_up,
            insn_exec_on_every_instruction_counts_retired_instructions,
            virtual_reads_match_physical_memory,
            new_processes_change_the_asid_and_make_system_calls,
            callbacks_change_nothing_in_the_guest,
            callbacks_enable_disable_and_register_others_by_name,
            a_callback_can_stop_the_run,
            a_hook_on_the_syscall_entry_fires_for_user_calls_and_survives_a_revert,
            the_block_start_loop_and_the_instrumented_loop_agree,
            unknown_and_refused_names_are_errors,
            a_cancelled_exception_is_not_delivered,
            an_exception_can_be_replaced,
            the_hypercall_reaches_its_callback_with_registers,
            memory_callbacks_see_stores_and_can_rewrite_memory,
            device_callbacks_answer_unmapped_reads_and_rewrite_device_writes,
            machine_level_callbacks_fire_once_per_run_and_at_shutdown,
            a_hook_in_the_middle_of_a_cached_block_fires_once_per_iteration,
            a_hook_can_disable_itself_until_enabled_again,
            a_hook_can_redirect_execution,
            hooks_filter_by_address_space_and_mode,
            hook_points_come_from_panda_block_callback_types,
            a_hook_fires_where_a_block_runs_at_another_virtual_address,
            an_interrupt_can_be_held_off_and_is_offered_again,
            a_write_to_code_that_ran_runs_the_new_code,
        );
    };
    (@cases $target:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::conformance::$case(&$target);
            }
        )*
    };
}
