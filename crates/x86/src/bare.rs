//! A bare-metal x86-64 test board: one [`X86Cpu`] in 64-bit long mode, RAM, and a page of
//! control registers on the MMIO seam (power-off, a one-shot timer interrupt, a console
//! byte), under core's board shell (`Shell<BareBoard>` is a [`pandare_core::Machine`]).
//!
//! It exists so that PANDA's callback semantics can be tested on x86 before a PC exists
//! (the arch-neutral conformance suite runs on it), and it is the seed the PC machine grows
//! from: the same [`Board`] shape, with the control page replaced by the PC's devices (local
//! APIC, IOAPIC, HPET on the MMIO seam, the legacy ones on the port space) and the timer by
//! the APIC's.
//!
//! **Entry**: a program image is loaded at [`LOAD_ADDRESS`] and entered at its first byte
//! at CPL 0 in 64-bit mode, RSP = [`STACK_TOP`], interrupts off, EFER.SCE set, with
//! identity-mapped paging whose tables sit at physical 0 ([`CR3`] = 0, so the address space
//! is 0 as for a machine without translation): the low 4 GiB in 2 MiB pages, writable,
//! user-accessible and executable. GDT and IDT are empty: a program that takes exceptions
//! installs its own.
//!
//! **Control page** at [`CONTROL`] (8-byte registers, see the constants): writing
//! [`POWER_OFF_VALUE`] to [`POWER_OFF`] powers off, `(code << 16) | 0x3333` reports failure
//! `code`; writing `n` to [`TIMER`] raises interrupt vector [`TIMER_VECTOR`] `n`
//! instructions later (one shot; it is offered before each block while pending and
//! RFLAGS.IF is set); a byte written to [`CONSOLE`] goes to the console output. Physical
//! addresses outside RAM and the control page answer nothing (reads all ones).

use std::sync::{Arc, Mutex};

use pandare_core::board::{Board, SerialAddresses, SerialEvent, SliceExit};
use pandare_core::execution::CpuView;
use pandare_core::instrument::Instrumentation;
use pandare_core::memory::{Ram, RamImage};
use pandare_core::{Exit as MachineExit, Fnv64, ShutdownKind, SnapshotError};

use crate::hooks::X86View;
use crate::mmio::{MmioSpace, PhysicalDevices};
use crate::state::{flags, State};
use crate::{Exit, X86Cpu};

/// Where programs are loaded and entered.
pub const LOAD_ADDRESS: u64 = 0x10000;
/// The initial stack pointer.
pub const STACK_TOP: u64 = 0x8_0000;
/// CR3: the identity page tables sit at physical 0 (PML4 at 0, PDPT at 0x1000, the four
/// page directories at 0x2000–0x5fff).
pub const CR3: u64 = 0;
/// Physical (and virtual) address of the control page.
pub const CONTROL: u64 = 0xfef0_0000;
/// The power-off register.
pub const POWER_OFF: u64 = CONTROL;
/// The value that powers off.
pub const POWER_OFF_VALUE: u64 = 0x5555;
/// The timer register (instructions until the interrupt).
pub const TIMER: u64 = CONTROL + 8;
/// The console register.
pub const CONSOLE: u64 = CONTROL + 0x10;
/// The timer's interrupt vector.
pub const TIMER_VECTOR: u8 = 0x20;

/// The value written to [`POWER_OFF`] that reports failure `code`.
pub fn failure_value(code: u32) -> u64 {
    (u64::from(code) << 16) | 0x3333
}

/// The control page's state, shared by the board and the CPU's MMIO seam.
#[derive(Default)]
struct Control {
    shutdown: Option<ShutdownKind>,
    /// Virtual time of the armed timer interrupt.
    deadline: Option<u64>,
    /// Virtual time spent idle (added to the instruction count to make virtual time).
    idle: u64,
    console: Vec<u8>,
}

/// The control page as the CPU's MMIO seam sees it.
struct ControlPage(Arc<Mutex<Control>>);

impl PhysicalDevices for ControlPage {
    fn read(&mut self, address: u64, _size: u8, _now: u64) -> Option<u64> {
        (address >> 12 == CONTROL >> 12).then_some(0)
    }

    fn write(&mut self, address: u64, _size: u8, value: u64, now: u64) -> bool {
        if address >> 12 != CONTROL >> 12 {
            return false;
        }
        let mut control = self
            .0
            .lock()
            .expect("the control page is not shared across threads");
        match address {
            POWER_OFF if value == POWER_OFF_VALUE => {
                control.shutdown = Some(ShutdownKind::PowerOff);
            }
            POWER_OFF if value & 0xffff == 0x3333 => {
                control.shutdown = Some(ShutdownKind::Failure((value >> 16) as u32));
            }
            TIMER => control.deadline = Some(now + control.idle + value),
            CONSOLE => control.console.push(value as u8),
            _ => {}
        }
        true
    }
}

/// The board: the CPU, its RAM (inside the CPU) and the control page.
#[derive(Debug)]
pub struct BareBoard {
    /// The CPU.
    pub cpu: X86Cpu,
    control: Arc<Mutex<Control>>,
    /// The timer interrupt is raised and not yet taken.
    pending: bool,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("shutdown", &self.shutdown)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

// SAFETY: `X86Cpu` is not `Send` only because its block cache shares decoded blocks through
// `Rc` (and the run loop's block metadata holds `rc::Weak`s to them). Every such reference
// lives inside the CPU (the cache, the metadata, a run loop's local while it runs) and none is
// handed out of the crate, so moving the board with its CPU to another thread moves all of
// them together: no two threads can ever touch one reference count.
unsafe impl Send for BareBoard {}

/// A bare-metal machine: [`BareBoard`] in core's shell.
pub type BareMachine = pandare_core::Shell<BareBoard>;

/// Why a program cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum BareError {
    /// It does not fit in RAM above [`LOAD_ADDRESS`].
    #[error("the program is {size} bytes; {room} fit above {LOAD_ADDRESS:#x} in {ram} bytes of RAM; give more memory")]
    TooLarge {
        /// Its size.
        size: usize,
        /// Bytes available.
        room: u64,
        /// RAM size.
        ram: u64,
    },
    /// RAM too small for the page tables, the program and the stack.
    #[error("{ram} bytes of RAM is too little for a bare-metal machine; give at least 1 MiB")]
    TooLittleMemory {
        /// RAM size.
        ram: u64,
    },
}

impl BareBoard {
    /// A board with `ram_bytes` of RAM running `image` (see the module's notes).
    pub fn new(image: &[u8], ram_bytes: u64) -> Result<BareBoard, BareError> {
        if ram_bytes < 1 << 20 {
            return Err(BareError::TooLittleMemory { ram: ram_bytes });
        }
        let room = ram_bytes - LOAD_ADDRESS;
        if image.len() as u64 > room {
            return Err(BareError::TooLarge {
                size: image.len(),
                room,
                ram: ram_bytes,
            });
        }
        let mut ram = Ram::new(0, ram_bytes as usize);
        let entry = |ram: &mut Ram, address: u64, value: u64| {
            ram.write_bytes(address, &value.to_le_bytes());
        };
        entry(&mut ram, 0, 0x1000 | 7);
        for gib in 0..4u64 {
            let directory = 0x2000 + gib * 0x1000;
            entry(&mut ram, 0x1000 + gib * 8, directory | 7);
            for n in 0..512u64 {
                let frame = (gib << 30) | (n << 21);
                entry(&mut ram, directory + n * 8, frame | 0x87);
            }
        }
        ram.write_bytes(LOAD_ADDRESS, image);
        let mut state = State::long_mode(CR3, 0);
        state.rip = LOAD_ADDRESS;
        state.gpr[4] = STACK_TOP;
        state.rflags = flags::FIXED;
        let mut cpu = X86Cpu::new(state, ram).expect("the bare-metal entry state is valid");
        let control = Arc::new(Mutex::new(Control::default()));
        cpu.mmio = Some(MmioSpace(Box::new(ControlPage(Arc::clone(&control)))));
        Ok(BareBoard {
            cpu,
            control,
            pending: false,
        })
    }

    fn control(&self) -> std::sync::MutexGuard<'_, Control> {
        self.control
            .lock()
            .expect("the control page is not shared across threads")
    }
}

const STATE_VERSION: u32 = 1;

impl Board for BareBoard {
    fn architecture(&self) -> &'static str {
        "x86_64"
    }

    fn memory_bytes(&self) -> u64 {
        self.cpu.ram.size()
    }

    fn now(&self) -> u64 {
        self.cpu.instruction_count() + self.control().idle
    }

    fn instruction_count(&self) -> u64 {
        self.cpu.instruction_count()
    }

    fn pc(&self) -> u64 {
        self.cpu.linear_pc()
    }

    fn next_event(&self) -> Option<u64> {
        self.control().deadline
    }

    fn idle_to(&mut self, time: u64) {
        let now = self.now();
        self.control().idle += time.saturating_sub(now);
    }

    fn sync_interrupts(&mut self) {
        let now = self.now();
        let mut control = self.control();
        if control.deadline.is_some_and(|deadline| deadline <= now) {
            control.deadline = None;
            drop(control);
            self.pending = true;
        }
    }

    fn wants_wakeup(&self) -> bool {
        self.pending && self.cpu.state.rflags & flags::IF != 0
    }

    fn run_cpu(&mut self, instr: &mut Instrumentation, budget: u64) -> SliceExit {
        let mut slice = budget;
        if self.pending {
            if self.cpu.interrupt_with(instr, TIMER_VECTOR) {
                self.pending = false;
            } else {
                // Held off (by a callback, RFLAGS.IF or the interrupt shadow): offered again
                // after the next instruction.
                slice = budget.min(1);
            }
        }
        match self.cpu.run_with(instr, slice) {
            Exit::Budget => SliceExit::Continue,
            Exit::Stopped => SliceExit::Stopped,
            Exit::Halted if self.control().shutdown.is_some() => SliceExit::Continue,
            Exit::Halted => SliceExit::WaitForInterrupt,
            // A PC resets on a triple fault.
            Exit::TripleFault => SliceExit::Halt(MachineExit::Shutdown(ShutdownKind::Reboot)),
            // Only in user mode, which this board does not use.
            Exit::Syscall | Exit::Fault(_) => SliceExit::Halt(MachineExit::UnhandledTrap {
                cause: 0,
                pc: self.cpu.linear_pc(),
                value: 0,
            }),
        }
    }

    fn shutdown_requested(&self) -> Option<ShutdownKind> {
        self.control().shutdown
    }

    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R {
        f(&mut X86View::new(&mut self.cpu))
    }

    fn collect_serial_events(&mut self, _collect: bool) {}

    fn take_serial_events(&mut self) -> Vec<SerialEvent> {
        Vec::new()
    }

    fn serial_addresses(&self) -> SerialAddresses {
        SerialAddresses {
            fifo: CONSOLE,
            data_register: CONSOLE,
        }
    }

    fn console_input(&mut self, _bytes: &[u8]) {}

    fn take_console_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.control().console)
    }

    fn state_hash(&self) -> u64 {
        let mut hash = Fnv64::default();
        hash.bytes(&self.cpu.state.to_bytes());
        hash.word(self.cpu.instruction_count());
        hash.finish()
    }

    fn save(&mut self, stopped: Option<MachineExit>) -> (Vec<u8>, RamImage) {
        // The sticky exit of a bare-metal board is a shutdown, recomputed from the control
        // page on restore; the rest is the CPU and the control page.
        let _ = stopped;
        let mut out = Vec::new();
        out.extend(STATE_VERSION.to_le_bytes());
        let control = self.control();
        for word in [
            self.cpu.instruction_count(),
            control.idle,
            control.deadline.map_or(u64::MAX, |d| d),
            u64::from(self.pending),
            match control.shutdown {
                None => 0,
                Some(ShutdownKind::PowerOff) => 1,
                Some(ShutdownKind::Reboot) => 2,
                Some(ShutdownKind::Failure(code)) => 3 | (u64::from(code) << 8),
            },
        ] {
            out.extend(word.to_le_bytes());
        }
        drop(control);
        out.extend(self.cpu.state.to_bytes());
        let ram = self.cpu.ram.capture();
        (out, ram)
    }

    fn restore(
        &mut self,
        state: &[u8],
        ram: &RamImage,
    ) -> Result<Option<MachineExit>, SnapshotError> {
        let invalid = |why: &str| SnapshotError::InvalidState(why.to_string());
        if state.len() < 4 + 5 * 8 {
            return Err(invalid("the bare-metal board's state is truncated"));
        }
        let version = u32::from_le_bytes(state[..4].try_into().expect("4 bytes"));
        if version != STATE_VERSION {
            return Err(SnapshotError::StateVersion {
                found: version,
                expected: STATE_VERSION,
            });
        }
        let word = |n: usize| {
            u64::from_le_bytes(state[4 + n * 8..12 + n * 8].try_into().expect("8 bytes"))
        };
        let cpu_state = State::from_bytes(&state[44..]).map_err(|e| invalid(&e.to_string()))?;
        let shutdown = match word(4) & 0xff {
            0 => None,
            1 => Some(ShutdownKind::PowerOff),
            2 => Some(ShutdownKind::Reboot),
            3 => Some(ShutdownKind::Failure((word(4) >> 8) as u32)),
            _ => return Err(invalid("unknown shutdown kind")),
        };
        self.cpu
            .ram
            .restore(ram)
            .map_err(|e| invalid(&e.to_string()))?;
        self.cpu
            .set_state(cpu_state)
            .map_err(|e| invalid(&e.to_string()))?;
        self.cpu.icount = word(0);
        let mut control = self.control();
        control.idle = word(1);
        control.deadline = (word(2) != u64::MAX).then_some(word(2));
        control.shutdown = shutdown;
        drop(control);
        self.pending = word(3) != 0;
        Ok(shutdown.map(MachineExit::Shutdown))
    }
}
