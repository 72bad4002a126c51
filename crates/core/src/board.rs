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

/// Something the console UART did, for the replay-time serial callbacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialEvent {
    /// A byte of input entered the receive FIFO (`replay_serial_receive`).
    Receive(u8),
    /// The guest read a received byte from the data register (`replay_serial_read`).
    Read(u8),
    /// The guest wrote a byte to the data register (`replay_serial_write`).
    Write(u8),
    /// A byte left the transmit side (`replay_serial_send`).
    Send(u8),
}

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
    /// The registers as text.
    fn register_dump(&self) -> String;
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

    /// Calls `f` with the CPU between slices (registers, memory, pc). Fires
    /// `after_machine_init` first if no run, snapshot load or earlier read did; fires nothing
    /// else. A stop requested through the view ends the next run at its first block boundary.
    pub fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn GuestCpu) -> R) -> R {
        self.machine_init();
        let (result, stop) = self.board.with_cpu(|cpu| {
            let result = f(&mut *cpu);
            (result, cpu.take_stop())
        });
        if stop {
            self.instrumentation.request_stop();
        }
        result
    }

    /// `after_machine_init`, exactly once in the machine's life, whatever comes first.
    fn machine_init(&mut self) {
        if self.instrumentation.take_machine_init() {
            self.instrumentation.apply_pending();
            if self.instrumentation.has(CallbackKind::AfterMachineInit) {
                self.fire_cpu(CallbackKind::AfterMachineInit);
            }
        }
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
        self.machine_init();
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

    fn register_dump(&self) -> String {
        self.board.register_dump()
    }

    fn instrumentation(&mut self) -> &mut Instrumentation {
        &mut self.instrumentation
    }
}
