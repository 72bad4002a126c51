//! The seam between the run loop (CLI, Python, tests) and an architecture's platform.

use crate::instrument::GuestCpu;
use crate::snapshot::{Snapshot, SnapshotError};

/// Why a run slice returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The virtual-time budget given to [`Machine::run`] was used up exactly.
    BudgetExhausted,
    /// The CPU waits for an interrupt (WFI) and nothing is pending; the caller may advance
    /// the clock to [`Machine::next_event`] or deliver input.
    Idle,
    /// The guest asked the platform to power off, reboot or report failure.
    Shutdown(ShutdownKind),
    /// The guest took a trap that nothing in the machine can handle (for example a trap
    /// into M-mode while the emulator itself plays the firmware). The machine is stopped.
    UnhandledTrap {
        /// Architecture-specific cause code.
        cause: u64,
        /// Program counter of the trapping instruction.
        pc: u64,
        /// Architecture-specific trap value (faulting address or instruction bits).
        value: u64,
    },
}

/// How a guest ended its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownKind {
    /// An orderly power-off.
    PowerOff,
    /// A reboot request: pandare ends the run there.
    Reboot,
    /// The guest reported failure with this code (for example a bare-metal test's exit code).
    Failure(u32),
}

/// A whole guest machine of some architecture, driven one budget slice at a time.
///
/// Virtual time is measured in instruction units: it advances by one for every retired
/// instruction and jumps forward only while the CPU is idle (see [`Machine::skip_to`]).
///
/// A machine is `Send`: a front end may run it on a thread of its own. Architectures
/// implement it through [`crate::board::Board`] and [`crate::board::Shell`].
pub trait Machine: Send {
    /// Runs until `budget` units of virtual time have passed, the guest idles or shuts down.
    fn run(&mut self, budget: u64) -> Exit;
    /// Current virtual time.
    fn now(&self) -> u64;
    /// Instructions retired so far.
    fn instruction_count(&self) -> u64;
    /// Virtual time of the next timer event, if one is scheduled.
    fn next_event(&self) -> Option<u64>;
    /// Advances virtual time while idle to `time` (no later than the next event).
    fn skip_to(&mut self, time: u64);
    /// Hands bytes to the console's receive side; they become visible to the guest now.
    fn console_input(&mut self, bytes: &[u8]);
    /// Takes the bytes the guest wrote to its console since the last call.
    fn take_console_output(&mut self) -> Vec<u8>;
    /// Captures the whole machine state. Cheap when little changed since the last
    /// snapshot taken or loaded: RAM pages are shared.
    fn save_snapshot(&mut self) -> Snapshot;
    /// Puts the machine back to `snapshot`, which must come from a machine of the same
    /// architecture and memory size. On error the machine is unchanged.
    fn load_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), SnapshotError>;
    /// Architecture name (`riscv64`).
    fn architecture(&self) -> &'static str;
    /// Guest RAM size in bytes.
    fn memory_bytes(&self) -> u64;
    /// Program counter.
    fn pc(&self) -> u64;
    /// A cheap hash of the architectural registers, for record/replay checkpoints.
    fn state_hash(&self) -> u64;
    /// Calls `f` with the CPU, between run slices: to read or change registers and memory
    /// outside any callback. Nothing runs and no callback fires (not `top_loop`, not
    /// `main_loop_wait`, and `after_machine_init` stays due for the first run). The
    /// registers as text (`info registers`) are `cpu.abi().dump(cpu)`.
    fn with_cpu(&mut self, f: &mut dyn FnMut(&mut dyn GuestCpu));
    /// The callback registry (PANDA's callbacks; see `docs/callbacks.md`).
    fn instrumentation(&mut self) -> &mut crate::instrument::Instrumentation;
}

/// FNV-1a, 64-bit: a small, stable hash for checkpoints and traces (never for security).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Mixes in bytes.
    pub fn bytes(&mut self, data: &[u8]) {
        for &byte in data {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    /// Mixes in a 64-bit value (little-endian bytes).
    pub fn word(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}
