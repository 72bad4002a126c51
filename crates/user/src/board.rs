//! The process as a [`Board`]: the arch-neutral [`Shell`] runs it like any machine, so
//! PANDA's callbacks, plugins and stops work as they do on a whole system.

use std::io::Write as _;

use pandare_core::board::{SerialAddresses, SerialEvent, SliceExit};
use pandare_core::execution::CpuView;
use pandare_core::instrument::Instrumentation;
use pandare_core::{Board, Exit, RamImage, Shell, ShutdownKind, SnapshotError};

use crate::arch::{CpuExit, Fault, UserCpu};
use crate::process::{Io, LoadError, Process, Program, UserError};
use crate::syscall::{self, Action};

/// How the program ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it (a fault, `abort`, a broken pipe).
    Killed {
        /// The signal.
        signal: u32,
        /// The fault, when the signal came from one.
        fault: Option<Fault>,
    },
    /// The run could not go on.
    Error(UserError),
}

impl Outcome {
    /// The exit status a shell would report: the program's status, or 128 + the signal.
    /// An emulation error is 127 (as for a command that could not run).
    pub fn status(&self) -> i32 {
        match self {
            Outcome::Exited(status) => *status,
            Outcome::Killed { signal, .. } => 128 + *signal as i32,
            Outcome::Error(_) => 127,
        }
    }

    /// One line saying what happened, for stderr (`None` for a plain exit).
    pub fn report(&self) -> Option<String> {
        match self {
            Outcome::Exited(_) => None,
            Outcome::Killed {
                signal,
                fault: Some(fault),
            } => Some(format!(
                "the program was killed by signal {signal} ({}): {} at pc {:#x}, address {:#x}",
                signal_name(*signal),
                fault.description,
                fault.pc,
                fault.address
            )),
            Outcome::Killed {
                signal,
                fault: None,
            } => Some(format!(
                "the program was killed by signal {signal} ({})",
                signal_name(*signal)
            )),
            Outcome::Error(error) => Some(error.to_string()),
        }
    }
}

/// Linux's name for a signal.
pub fn signal_name(signal: u32) -> &'static str {
    match signal {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        5 => "SIGTRAP",
        6 => "SIGABRT",
        7 => "SIGBUS",
        8 => "SIGFPE",
        9 => "SIGKILL",
        10 => "SIGUSR1",
        11 => "SIGSEGV",
        12 => "SIGUSR2",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => "a signal",
    }
}

/// A user-mode process on an architecture's CPU.
#[derive(Debug)]
pub struct UserBoard<C> {
    /// The CPU.
    pub cpu: C,
    /// The process.
    pub process: Process,
    outcome: Option<Outcome>,
}

/// A process the [`Shell`] runs: a [`pandare_core::Machine`].
pub type UserMachine<C> = Shell<UserBoard<C>>;

impl<C: UserCpu> UserBoard<C> {
    /// Loads `program` (its bytes are `file`) on `cpu`.
    pub fn load(
        mut cpu: C,
        file: &[u8],
        program: &Program,
        io: Io,
    ) -> Result<UserMachine<C>, LoadError> {
        let process = Process::load(&mut cpu, file, program, io)?;
        Ok(Shell::new(UserBoard {
            cpu,
            process,
            outcome: None,
        }))
    }

    /// How the program ended, once it has.
    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    fn end(&mut self, outcome: Outcome) -> SliceExit {
        let exit = match &outcome {
            Outcome::Exited(0) => Exit::Shutdown(ShutdownKind::PowerOff),
            Outcome::Exited(status) => Exit::Shutdown(ShutdownKind::Failure(*status as u32)),
            Outcome::Killed {
                fault: Some(fault), ..
            } => Exit::UnhandledTrap {
                cause: fault.cause,
                pc: fault.pc,
                value: fault.address,
            },
            Outcome::Killed { signal, .. } => Exit::Shutdown(ShutdownKind::Failure(128 + *signal)),
            Outcome::Error(_) => Exit::UnhandledTrap {
                cause: u64::MAX,
                pc: self.cpu.pc(),
                value: 0,
            },
        };
        let _ = self.process.io.stdout.flush();
        self.outcome = Some(outcome);
        SliceExit::Halt(exit)
    }
}

/// Runs a loaded program to its end (or until a callback stops it: `None`).
pub fn run_to_end<C: UserCpu>(machine: &mut UserMachine<C>) -> Option<Outcome> {
    use pandare_core::Machine;
    loop {
        match machine.run(u64::MAX / 4) {
            Exit::BudgetExhausted | Exit::Idle => {
                if machine.instrumentation.take_stopped() {
                    return None;
                }
            }
            Exit::Shutdown(_) | Exit::UnhandledTrap { .. } => {
                return machine.board.outcome.clone();
            }
        }
    }
}

impl<C: UserCpu> Board for UserBoard<C> {
    fn architecture(&self) -> &'static str {
        self.cpu.arch().name()
    }

    fn memory_bytes(&self) -> u64 {
        self.cpu.memory_bytes()
    }

    fn now(&self) -> u64 {
        self.cpu.now()
    }

    fn instruction_count(&self) -> u64 {
        self.cpu.instruction_count()
    }

    fn pc(&self) -> u64 {
        self.cpu.pc()
    }

    fn next_event(&self) -> Option<u64> {
        None
    }

    fn idle_to(&mut self, time: u64) {
        self.cpu.idle_to(time);
    }

    fn sync_interrupts(&mut self) {}

    fn wants_wakeup(&self) -> bool {
        false
    }

    fn run_cpu(&mut self, instr: &mut Instrumentation, budget: u64) -> SliceExit {
        match self.cpu.run(instr, budget) {
            CpuExit::Budget => SliceExit::Continue,
            CpuExit::Stopped => SliceExit::Stopped,
            CpuExit::Syscall => match syscall::handle(&mut self.cpu, &mut self.process) {
                Action::Return(value) => {
                    self.cpu.finish_syscall(value);
                    SliceExit::Continue
                }
                Action::Exit(status) => self.end(Outcome::Exited(status)),
                Action::Killed(signal) => self.end(Outcome::Killed {
                    signal,
                    fault: None,
                }),
                Action::Stop(error) => self.end(Outcome::Error(error)),
            },
            CpuExit::Fault(fault) => self.end(Outcome::Killed {
                signal: fault.signal,
                fault: Some(fault),
            }),
        }
    }

    fn shutdown_requested(&self) -> Option<ShutdownKind> {
        None
    }

    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R {
        self.cpu.with_cpu(f)
    }

    // A process has no serial console: its output goes straight to the host's streams.
    fn collect_serial_events(&mut self, _collect: bool) {}

    fn take_serial_events(&mut self) -> Vec<SerialEvent> {
        Vec::new()
    }

    fn serial_addresses(&self) -> SerialAddresses {
        SerialAddresses {
            fifo: 0,
            data_register: 0,
        }
    }

    fn console_input(&mut self, _bytes: &[u8]) {}

    fn take_console_output(&mut self) -> Vec<u8> {
        Vec::new()
    }

    fn state_hash(&self) -> u64 {
        self.cpu.state_hash()
    }

    /// Snapshots of a process hold its RAM only; they cannot be loaded back (see
    /// `docs/exec.md`).
    fn save(&mut self, _stopped: Option<Exit>) -> (Vec<u8>, RamImage) {
        (Vec::new(), self.cpu.capture_ram())
    }

    fn restore(&mut self, _state: &[u8], _ram: &RamImage) -> Result<Option<Exit>, SnapshotError> {
        Err(SnapshotError::InvalidState(
            "panda exec cannot load snapshots: a process's kernel-side state (memory map, \
             descriptors, signal dispositions) is not saved; run the program again instead"
                .to_string(),
        ))
    }
}

/// A loaded process of any architecture, for front ends that choose the architecture at
/// run time (`panda exec`).
pub trait ProcessMachine: pandare_core::Machine {
    /// Runs to the program's end; `None` when a callback stopped the run first.
    fn run_to_end(&mut self) -> Option<Outcome>;
    /// How the program ended, once it has.
    fn outcome(&self) -> Option<&Outcome>;
    /// The process (memory map, streams, tracing).
    fn process(&mut self) -> &mut Process;
}

impl<C: UserCpu> ProcessMachine for UserMachine<C> {
    fn run_to_end(&mut self) -> Option<Outcome> {
        run_to_end(self)
    }

    fn outcome(&self) -> Option<&Outcome> {
        self.board.outcome()
    }

    fn process(&mut self) -> &mut Process {
        &mut self.board.process
    }
}
