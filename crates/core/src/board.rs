//! The board shell: PANDA's machine-level loop, written once for every architecture.
//!
//! A [`Board`] is what an architecture's platform supplies: its CPU, its devices and its
//! memory map, and the answers to a few questions about them (what time is it, when is the
//! next timer event, did the guest ask to power off). [`Shell`] wraps a board with the
//! callback registry and implements [`Machine`]: the slice-to-next-event loop, the sticky
//! stop after a shutdown or an unhandled trap, snapshot architecture and memory checks,
//! and the machine-level callbacks (`after_machine_init`, `top_loop`, `main_loop_wait`,
//! `pre_shutdown`, `before_loadvm`/`after_loadvm`, the replay-time serial callbacks).
//!
//! The board owns the CPU and the bus, so reading or writing the CPU between slices is
//! [`Shell::with_cpu`]: it fires `after_machine_init` when nothing did yet, and nothing else
//! (users' `top_loop` and `main_loop_wait` fire only for runs).

use std::ops::{Deref, DerefMut};

use crate::execution::{self, CpuView};
use crate::instrument::{CallbackKind, GuestCpu, Instrumentation};
use crate::machine::{Exit, Machine, ShutdownKind};
use crate::memory::{RamImage, PAGE_SIZE};
use crate::snapshot::{Snapshot, SnapshotError};

pub use crate::memory::SerialEvent;

/// Where the console UART sits, as the serial callbacks report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialAddresses {
    /// The FIFOs' address (PANDA's `fifo_addr`): the UART's base.
    pub fifo: u64,
    /// The data register's address (PANDA's `port_addr`): physical (MMIO) or an I/O port.
    pub data_register: u64,
}

/// How the board's CPU ended a run of the executor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SliceExit {
    /// The budget ran out, or a device was accessed (interrupt lines and timers may have
    /// changed): the shell brings interrupts up to date and carries on.
    Continue,
    /// A callback asked to stop (PANDA's `end_analysis`).
    Stopped,
    /// The CPU waits for an interrupt.
    WaitForInterrupt,
    /// Nothing in the machine can go on: the shell returns this exit now and for every
    /// later run (for example a trap that no handler can take).
    Halt(Exit),
}

/// An architecture's platform: CPU, devices and memory map. Everything PANDA-specific
/// about running it is in [`Shell`], which implements [`Machine`] for any board.
pub trait Board: Send {
    /// Architecture name (`riscv64`): snapshots only load into the same one.
    fn architecture(&self) -> &'static str;
    /// Guest RAM size in bytes: snapshots only load into the same size.
    fn memory_bytes(&self) -> u64;
    /// Current virtual time.
    fn now(&self) -> u64;
    /// Instructions retired so far.
    fn instruction_count(&self) -> u64;
    /// Program counter.
    fn pc(&self) -> u64;
    /// Virtual time of the next timer event still ahead, if one is armed.
    fn next_event(&self) -> Option<u64>;
    /// Lets virtual time pass while the CPU is idle, to `time` (the shell never asks for
    /// more than [`Board::next_event`]).
    fn idle_to(&mut self, time: u64);
    /// Brings every interrupt line up to date with device and timer state.
    fn sync_interrupts(&mut self);
    /// Whether the CPU would leave its wait for an interrupt now.
    fn wants_wakeup(&self) -> bool;
    /// Runs the CPU for at most `budget` instructions, firing the callbacks `instr` has
    /// enabled (through [`crate::execution`]). Requests the CPU makes of the platform
    /// (firmware calls) are answered inside.
    fn run_cpu(&mut self, instr: &mut Instrumentation, budget: u64) -> SliceExit;
    /// Whether the guest asked to power off, reboot or report failure.
    fn shutdown_requested(&self) -> Option<ShutdownKind>;
    /// Calls `f` with the view of the CPU that callbacks get.
    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R;
    /// Turns collecting the console UART's [`SerialEvent`]s on or off.
    fn collect_serial_events(&mut self, collect: bool);
    /// The serial events collected since the last call.
    fn take_serial_events(&mut self) -> Vec<SerialEvent>;
    /// Where the console UART is.
    fn serial_addresses(&self) -> SerialAddresses;
    /// Hands bytes to the console's receive side.
    fn console_input(&mut self, bytes: &[u8]);
    /// Takes the bytes the guest wrote to its console since the last call.
    fn take_console_output(&mut self) -> Vec<u8>;
    /// A cheap hash of the architectural registers.
    fn state_hash(&self) -> u64;
    /// Captures RAM (pages shared with earlier captures) and serializes everything else;
    /// `stopped` is the shell's sticky exit, kept in the same state.
    fn save(&mut self, stopped: Option<Exit>) -> (Vec<u8>, RamImage);
    /// Puts CPU, devices and RAM back from a snapshot whose architecture and memory size the
    /// shell checked, and returns the sticky exit it held. On error nothing changed.
    fn restore(&mut self, state: &[u8], ram: &RamImage) -> Result<Option<Exit>, SnapshotError>;
}

/// A whole machine: a [`Board`] and PANDA's callbacks around it.
///
/// It dereferences to the board, so a platform's parts stay reachable by their names
/// (`machine.cpu`, `machine.bus`).
#[derive(Debug)]
pub struct Shell<B> {
    /// The platform.
    pub board: B,
    /// PANDA's callbacks (see `docs/callbacks.md`).
    pub instrumentation: Instrumentation,
    /// Set once the guest shut down or crashed; later runs return it again.
    stopped: Option<Exit>,
}

impl<B> Deref for Shell<B> {
    type Target = B;
    fn deref(&self) -> &B {
        &self.board
    }
}

impl<B> DerefMut for Shell<B> {
    fn deref_mut(&mut self) -> &mut B {
        &mut self.board
    }
}

impl<B: Board> Shell<B> {
    /// A machine around `board`, with no callbacks.
    pub fn new(board: B) -> Shell<B> {
        Shell {
            board,
            instrumentation: Instrumentation::default(),
            stopped: None,
        }
    }

    /// Calls `f` with the CPU between slices (registers, memory, pc). Fires nothing:
    /// `after_machine_init` stays due for the first run, as in PANDA, where scripts register
    /// it after building the machine and expect it at `run()`. A stop requested through the
    /// view ends the next run at its first block boundary.
    pub fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn GuestCpu) -> R) -> R {
        let (result, stop) = self.board.with_cpu(|cpu| {
            let result = f(&mut *cpu);
            (result, cpu.take_stop())
        });
        if stop {
            self.instrumentation.request_stop();
        }
        result
    }

    /// Fires a kind whose callbacks take only the CPU.
    fn fire_cpu(&mut self, kind: CallbackKind) {
        let instr = &mut self.instrumentation;
        self.board
            .with_cpu(|cpu| execution::fire_cpu(instr, cpu, kind));
    }

    /// `after_machine_init` (first time only), `top_loop` and `main_loop_wait`, at the start
    /// of a run.
    #[cold]
    fn machine_level_hooks(&mut self, machine_init: bool) {
        self.instrumentation.apply_pending();
        if machine_init && self.instrumentation.has(CallbackKind::AfterMachineInit) {
            self.fire_cpu(CallbackKind::AfterMachineInit);
        }
        if self.instrumentation.has(CallbackKind::TopLoop) {
            self.fire_cpu(CallbackKind::TopLoop);
        }
        execution::fire_plain(&mut self.instrumentation, CallbackKind::MainLoopWait);
    }

    /// The replay-time serial callbacks for what the UART did since they last fired: right
    /// after the access that caused it (a device access ends the executor's slice), or
    /// after recorded input was queued.
    #[cold]
    fn fire_serial_events(&mut self) {
        let events = self.board.take_serial_events();
        if events.is_empty() {
            return;
        }
        let addresses = self.board.serial_addresses();
        let instr = &mut self.instrumentation;
        self.board
            .with_cpu(|cpu| execution::fire_serial(instr, cpu, addresses, &events));
    }

    /// Runs the console UART's side of `f` with its events collected when a replay-time
    /// serial callback wants them.
    fn with_serial_events<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let serial_events = self.instrumentation.wants_serial_events();
        self.board.collect_serial_events(serial_events);
        let result = f(self);
        if serial_events {
            self.fire_serial_events();
        }
        result
    }
}

impl<B: Board> Machine for Shell<B> {
    fn run(&mut self, budget: u64) -> Exit {
        if let Some(exit) = self.stopped {
            return exit;
        }
        let end = self.board.now().saturating_add(budget);
        let machine_init = self.instrumentation.take_machine_init();
        if self.instrumentation.active() {
            self.machine_level_hooks(machine_init);
        }
        loop {
            self.board.sync_interrupts();
            let now = self.board.now();
            if now >= end {
                return Exit::BudgetExhausted;
            }
            let slice_end = match self.board.next_event() {
                Some(event) if event > now => event.min(end),
                _ => end,
            };
            let exit = self.with_serial_events(|shell| {
                shell
                    .board
                    .run_cpu(&mut shell.instrumentation, slice_end - now)
            });
            match exit {
                SliceExit::Continue => {}
                // `Instrumentation::take_stopped` tells the caller why the run ended.
                SliceExit::Stopped => return Exit::BudgetExhausted,
                SliceExit::WaitForInterrupt => {
                    self.board.sync_interrupts();
                    if !self.board.wants_wakeup() {
                        return Exit::Idle;
                    }
                }
                SliceExit::Halt(exit) => {
                    self.stopped = Some(exit);
                    return exit;
                }
            }
            if let Some(kind) = self.board.shutdown_requested() {
                execution::fire_plain(&mut self.instrumentation, CallbackKind::PreShutdown);
                let exit = Exit::Shutdown(kind);
                self.stopped = Some(exit);
                return exit;
            }
            // A stop asked for in the slice's last block ends the run here.
            if self.instrumentation.take_stop() {
                return Exit::BudgetExhausted;
            }
        }
    }

    fn now(&self) -> u64 {
        self.board.now()
    }

    fn instruction_count(&self) -> u64 {
        self.board.instruction_count()
    }

    fn next_event(&self) -> Option<u64> {
        self.board.next_event()
    }

    fn skip_to(&mut self, time: u64) {
        let limit = self.board.next_event().unwrap_or(time);
        self.board.idle_to(time.min(limit));
    }

    fn console_input(&mut self, bytes: &[u8]) {
        self.with_serial_events(|shell| shell.board.console_input(bytes));
    }

    fn take_console_output(&mut self) -> Vec<u8> {
        self.board.take_console_output()
    }

    fn save_snapshot(&mut self) -> Snapshot {
        let (state, ram) = self.board.save(self.stopped);
        Snapshot {
            architecture: self.board.architecture().to_string(),
            memory_bytes: self.board.memory_bytes(),
            state,
            ram,
        }
    }

    fn load_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        execution::fire_plain(&mut self.instrumentation, CallbackKind::BeforeLoadvm);
        let architecture = self.board.architecture();
        if snapshot.architecture != architecture {
            return Err(SnapshotError::WrongArchitecture {
                expected: architecture.to_string(),
                found: snapshot.architecture.clone(),
            });
        }
        let memory_bytes = self.board.memory_bytes();
        if snapshot.memory_bytes != memory_bytes
            || snapshot.ram.page_count() as u64 * PAGE_SIZE as u64 != memory_bytes
        {
            return Err(SnapshotError::WrongMemorySize {
                expected: memory_bytes >> 20,
                found: snapshot.memory_bytes >> 20,
            });
        }
        self.stopped = self.board.restore(&snapshot.state, &snapshot.ram)?;
        if self.instrumentation.has(CallbackKind::AfterLoadvm) {
            self.fire_cpu(CallbackKind::AfterLoadvm);
        }
        Ok(())
    }

    fn architecture(&self) -> &'static str {
        self.board.architecture()
    }

    fn memory_bytes(&self) -> u64 {
        self.board.memory_bytes()
    }

    fn pc(&self) -> u64 {
        self.board.pc()
    }

    fn state_hash(&self) -> u64 {
        self.board.state_hash()
    }

    fn with_cpu(&mut self, f: &mut dyn FnMut(&mut dyn GuestCpu)) {
        Shell::with_cpu(self, |cpu| f(cpu));
    }

    fn instrumentation(&mut self) -> &mut Instrumentation {
        &mut self.instrumentation
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::instrument::{Callback, InstrumentError};
    use crate::memory::Ram;

    const MEMORY: u64 = 1 << 20;

    /// The toy's ABI: one register, `count`, and the program counter.
    #[derive(Debug)]
    struct ToyAbi;

    const TOY_CONVENTION: crate::abi::CallingConvention = crate::abi::CallingConvention {
        arguments: &["count"],
        return_value: "count",
        number: None,
    };

    impl crate::abi::GuestAbi for ToyAbi {
        fn architecture(&self) -> &'static str {
            "toy"
        }
        fn pointer_bits(&self) -> u32 {
            64
        }
        fn endianness(&self) -> crate::abi::Endianness {
            crate::abi::Endianness::Little
        }
        fn registers(&self) -> &'static [crate::abi::RegisterInfo] {
            &[
                crate::abi::RegisterInfo {
                    name: "count",
                    aliases: &[],
                    class: crate::abi::RegisterClass::General,
                    number: 0,
                    bits: 64,
                },
                crate::abi::RegisterInfo {
                    name: "pc",
                    aliases: &[],
                    class: crate::abi::RegisterClass::ProgramCounter,
                    number: 1,
                    bits: 64,
                },
            ]
        }
        fn program_counter(&self) -> &'static str {
            "pc"
        }
        fn stack_pointer(&self) -> &'static str {
            "count"
        }
        fn return_address(&self) -> Option<&'static str> {
            None
        }
        fn convention(&self, _: crate::abi::Convention) -> &'static crate::abi::CallingConvention {
            &TOY_CONVENTION
        }
        fn asid_register(&self) -> &'static str {
            "count"
        }
        fn is_kernel_address(&self, _: u64) -> bool {
            false
        }
        fn linux(&self) -> Option<&'static dyn crate::abi::LinuxAbi> {
            None
        }
    }

    /// A board whose CPU retires its budget in one go and powers off at a set count.
    struct Toy {
        retired: u64,
        pc: u64,
        power_off_at: Option<u64>,
        shutdown: Option<ShutdownKind>,
        ram: Ram,
        output: Vec<u8>,
    }

    struct ToyCpu<'a> {
        board: &'a mut Toy,
        stop: bool,
    }

    impl GuestCpu for ToyCpu<'_> {
        fn architecture(&self) -> &'static str {
            "toy"
        }
        fn abi(&self) -> &'static dyn crate::abi::GuestAbi {
            &ToyAbi
        }
        fn pc(&self) -> u64 {
            self.board.pc
        }
        fn set_pc(&mut self, pc: u64) {
            self.board.pc = pc;
        }
        fn register(&self, name: &str) -> Result<u64, InstrumentError> {
            match name {
                "count" => Ok(self.board.retired),
                _ => Err(InstrumentError::UnknownRegister {
                    architecture: "toy",
                    name: name.to_string(),
                }),
            }
        }
        fn set_register(&mut self, name: &str, _: u64) -> Result<(), InstrumentError> {
            Err(InstrumentError::UnknownRegister {
                architecture: "toy",
                name: name.to_string(),
            })
        }
        fn read_memory(&mut self, vaddr: u64, _: &mut [u8]) -> Result<(), InstrumentError> {
            Err(InstrumentError::Unmapped { address: vaddr })
        }
        fn write_memory(&mut self, vaddr: u64, _: &[u8]) -> Result<(), InstrumentError> {
            Err(InstrumentError::Unmapped { address: vaddr })
        }
        fn read_physical(&mut self, paddr: u64, _: &mut [u8]) -> Result<(), InstrumentError> {
            Err(InstrumentError::Unmapped { address: paddr })
        }
        fn write_physical(&mut self, paddr: u64, _: &[u8]) -> Result<(), InstrumentError> {
            Err(InstrumentError::Unmapped { address: paddr })
        }
        fn virt_to_phys(&mut self, _: u64) -> Option<u64> {
            None
        }
        fn asid(&self) -> u64 {
            0
        }
        fn in_kernel_mode(&self) -> bool {
            true
        }
        fn instruction_count(&self) -> u64 {
            self.board.retired
        }
        fn request_stop(&mut self) {
            self.stop = true;
        }
    }

    impl CpuView for ToyCpu<'_> {
        fn take_stop(&mut self) -> bool {
            std::mem::take(&mut self.stop)
        }
        fn code_modified(&self) -> bool {
            false
        }
    }

    impl Board for Toy {
        fn architecture(&self) -> &'static str {
            "toy"
        }
        fn memory_bytes(&self) -> u64 {
            MEMORY
        }
        fn now(&self) -> u64 {
            self.retired
        }
        fn instruction_count(&self) -> u64 {
            self.retired
        }
        fn pc(&self) -> u64 {
            self.pc
        }
        fn next_event(&self) -> Option<u64> {
            None
        }
        fn idle_to(&mut self, _: u64) {}
        fn sync_interrupts(&mut self) {}
        fn wants_wakeup(&self) -> bool {
            true
        }
        fn run_cpu(&mut self, _: &mut Instrumentation, budget: u64) -> SliceExit {
            let end = self.retired + budget;
            match self.power_off_at {
                Some(at) if at <= end => {
                    self.retired = at;
                    self.shutdown = Some(ShutdownKind::PowerOff);
                }
                _ => self.retired = end,
            }
            self.output.push(b'.');
            SliceExit::Continue
        }
        fn shutdown_requested(&self) -> Option<ShutdownKind> {
            self.shutdown
        }
        fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R {
            f(&mut ToyCpu {
                board: self,
                stop: false,
            })
        }
        fn collect_serial_events(&mut self, _: bool) {}
        fn take_serial_events(&mut self) -> Vec<SerialEvent> {
            Vec::new()
        }
        fn serial_addresses(&self) -> SerialAddresses {
            SerialAddresses {
                fifo: 0,
                data_register: 0,
            }
        }
        fn console_input(&mut self, _: &[u8]) {}
        fn take_console_output(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.output)
        }
        fn state_hash(&self) -> u64 {
            self.retired
        }
        fn save(&mut self, stopped: Option<Exit>) -> (Vec<u8>, RamImage) {
            let mut state = self.retired.to_le_bytes().to_vec();
            state.push(u8::from(stopped.is_some()));
            (state, self.ram.capture())
        }
        fn restore(&mut self, state: &[u8], ram: &RamImage) -> Result<Option<Exit>, SnapshotError> {
            let bytes: [u8; 8] = state
                .get(..8)
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| SnapshotError::InvalidState("too short".to_string()))?;
            self.ram
                .restore(ram)
                .map_err(|e| SnapshotError::InvalidState(e.to_string()))?;
            self.retired = u64::from_le_bytes(bytes);
            self.shutdown = None;
            Ok((state.get(8) == Some(&1)).then_some(Exit::Shutdown(ShutdownKind::PowerOff)))
        }
    }

    fn toy(power_off_at: Option<u64>) -> Shell<Toy> {
        Shell::new(Toy {
            retired: 0,
            pc: 0x1000,
            power_off_at,
            shutdown: None,
            ram: Ram::new(0, MEMORY as usize),
            output: Vec::new(),
        })
    }

    type Log = Arc<Mutex<Vec<&'static str>>>;

    /// Registers a callback of each machine-level kind that logs its name.
    fn log_machine_level(machine: &mut Shell<Toy>) -> Log {
        let log: Log = Arc::default();
        let instr = &mut machine.instrumentation;
        let entry = |name: &'static str| {
            let log = Arc::clone(&log);
            move || log.lock().unwrap().push(name)
        };
        let init = entry("init");
        let top = entry("top");
        let wait = entry("wait");
        let shutdown = entry("shutdown");
        let before_loadvm = entry("before_loadvm");
        let after_loadvm = entry("after_loadvm");
        for (name, callback) in [
            (
                "init",
                Callback::AfterMachineInit(Box::new(move |_| init())),
            ),
            ("top", Callback::TopLoop(Box::new(move |_| top()))),
            ("wait", Callback::MainLoopWait(Box::new(wait))),
            ("shutdown", Callback::PreShutdown(Box::new(shutdown))),
            (
                "before_loadvm",
                Callback::BeforeLoadvm(Box::new(before_loadvm)),
            ),
            (
                "after_loadvm",
                Callback::AfterLoadvm(Box::new(move |_| after_loadvm())),
            ),
        ] {
            instr.register(name, callback).unwrap();
        }
        log
    }

    fn taken(log: &Log) -> Vec<&'static str> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    #[test]
    fn machines_are_send() {
        fn assert_send<T: Send>() {}
        assert_send::<Shell<Toy>>();
        assert_send::<Box<dyn Machine>>();
    }

    #[test]
    fn after_machine_init_fires_once_at_the_first_run_whatever_came_before() {
        // A run first.
        let mut machine = toy(None);
        let log = log_machine_level(&mut machine);
        assert_eq!(machine.run(10), Exit::BudgetExhausted);
        assert_eq!(taken(&log), ["init", "top", "wait"]);
        machine.with_cpu(|cpu| cpu.pc());
        assert_eq!(machine.run(10), Exit::BudgetExhausted);
        assert_eq!(taken(&log), ["top", "wait"]);

        // A CPU read first: it fires nothing, and machine init stays due for the run.
        let mut machine = toy(None);
        let log = log_machine_level(&mut machine);
        let count = machine.with_cpu(|cpu| cpu.register("count").unwrap());
        assert_eq!(count, 0);
        assert!(taken(&log).is_empty());
        machine.run(10);
        assert_eq!(taken(&log), ["init", "top", "wait"]);
        machine.run(10);
        assert_eq!(taken(&log), ["top", "wait"]);

        // A snapshot load first: the init callback sees the loaded machine at the first run.
        let mut source = toy(None);
        source.run(25);
        let snapshot = source.save_snapshot();
        let mut machine = toy(None);
        let log = log_machine_level(&mut machine);
        machine.load_snapshot(&snapshot).unwrap();
        assert_eq!(taken(&log), ["before_loadvm", "after_loadvm"]);
        assert_eq!(machine.instruction_count(), 25);
        machine.run(10);
        assert_eq!(taken(&log), ["init", "top", "wait"]);
    }

    #[test]
    fn only_runs_fire_top_loop_and_main_loop_wait() {
        let mut machine = toy(None);
        let log = log_machine_level(&mut machine);
        machine.with_cpu(|cpu| cpu.set_pc(0x2000));
        assert_eq!(machine.pc(), 0x2000);
        let snapshot = machine.save_snapshot();
        machine.console_input(b"x");
        machine.take_console_output();
        machine.skip_to(5);
        let _ = (machine.state_hash(), machine.pc(), machine.now());
        assert!(taken(&log).is_empty());
        machine.load_snapshot(&snapshot).unwrap();
        assert_eq!(taken(&log), ["before_loadvm", "after_loadvm"]);
        machine.run(0);
        assert_eq!(taken(&log), ["init", "top", "wait"]);
    }

    #[test]
    fn a_stop_asked_for_between_slices_ends_the_next_run_at_once() {
        let mut machine = toy(None);
        machine.with_cpu(|cpu| cpu.request_stop());
        assert_eq!(machine.run(100), Exit::BudgetExhausted);
        assert!(machine.instrumentation.take_stopped());
        assert_eq!(
            machine.instruction_count(),
            100,
            "the toy runs whole budgets"
        );
        assert_eq!(machine.run(100), Exit::BudgetExhausted);
        assert!(!machine.instrumentation.take_stopped());
    }

    #[test]
    fn shutdown_is_sticky_and_survives_a_snapshot() {
        let mut machine = toy(Some(30));
        let log = log_machine_level(&mut machine);
        let shutdown = Exit::Shutdown(ShutdownKind::PowerOff);
        assert_eq!(machine.run(100), shutdown);
        assert_eq!(machine.instruction_count(), 30);
        assert_eq!(taken(&log), ["init", "top", "wait", "shutdown"]);
        // A stopped machine runs nothing and fires nothing.
        assert_eq!(machine.run(100), shutdown);
        assert!(taken(&log).is_empty());
        let snapshot = machine.save_snapshot();
        let mut copy = toy(None);
        copy.load_snapshot(&snapshot).unwrap();
        assert_eq!(copy.run(100), shutdown);
        assert_eq!(copy.instruction_count(), 30);
    }

    #[test]
    fn snapshots_of_another_architecture_or_size_are_refused_unchanged() {
        let mut machine = toy(None);
        machine.run(7);
        let good = machine.save_snapshot();
        let log = log_machine_level(&mut machine);
        let other = Snapshot {
            architecture: "riscv64".to_string(),
            ..good.clone()
        };
        assert!(matches!(
            machine.load_snapshot(&other),
            Err(SnapshotError::WrongArchitecture { .. })
        ));
        let smaller = Snapshot {
            memory_bytes: MEMORY / 2,
            ..good.clone()
        };
        assert!(matches!(
            machine.load_snapshot(&smaller),
            Err(SnapshotError::WrongMemorySize { .. })
        ));
        // before_loadvm fires for each attempt; after_loadvm only for a load.
        assert_eq!(taken(&log), ["before_loadvm", "before_loadvm"]);
        assert_eq!(machine.instruction_count(), 7);
    }
}
