//! PANDA's callbacks, architecture-neutral: callback kinds and their names, the view of the
//! CPU handed to callbacks, and the registry an architecture's executor fires from.
//!
//! The registry keeps a bitmask of the kinds that have at least one enabled callback
//! ([`Instrumentation::mask`]). An executor tests it once per run slice (or block) and takes
//! an instrumented path only when something is enabled, so nothing registered costs nothing.
//! Executors never use this user-facing API: they fire through the narrow
//! [`crate::execution::Hooks`] handle, and the machine-level kinds fire from
//! [`crate::board::Shell`]. Where each kind fires is documented in `docs/callbacks.md`.
//!
//! Address hooks ([`Instrumentation::add_hook`]) run a callback when execution reaches an
//! address, optionally only in one address space or mode; they share the callbacks' names.
//!
//! Callbacks can change the registry while they run through a [`Controller`] (a cloneable
//! handle from [`Instrumentation::controller`]): the changes are queued and applied at the
//! next block boundary, as PANDA does.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Value of `after_block_exec`'s exit code when the block ran to its end (QEMU's
/// `TB_EXIT_IDX0`).
pub const EXIT_RAN_TO_END: u8 = 0;
/// Value of `after_block_exec`'s exit code when the block stopped early: a trap, a device
/// access that ends the slice, the budget, or a callback (QEMU's `TB_EXIT_REQUESTED`).
pub const EXIT_EARLY: u8 = 3;

macro_rules! kinds {
    ($( $variant:ident = $name:literal ),* $(,)?) => {
        /// One of PANDA's callback types (`panda_cb_type`), in PANDA's order.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        #[allow(missing_docs)]
        pub enum CallbackKind {
            $( $variant, )*
        }

        impl CallbackKind {
            /// Every kind, in PANDA's order.
            pub const ALL: &'static [CallbackKind] = &[ $( CallbackKind::$variant, )* ];

            /// PANDA's name (`before_block_exec`), as in `@panda.cb_<name>`.
            pub fn name(self) -> &'static str {
                match self {
                    $( CallbackKind::$variant => $name, )*
                }
            }
        }
    };
}

kinds! {
    BeforeBlockTranslate = "before_block_translate",
    AfterBlockTranslate = "after_block_translate",
    BeforeBlockExecInvalidateOpt = "before_block_exec_invalidate_opt",
    BeforeTcgCodegen = "before_tcg_codegen",
    BeforeBlockExec = "before_block_exec",
    AfterBlockExec = "after_block_exec",
    InsnTranslate = "insn_translate",
    InsnExec = "insn_exec",
    AfterInsnTranslate = "after_insn_translate",
    AfterInsnExec = "after_insn_exec",
    VirtMemBeforeRead = "virt_mem_before_read",
    VirtMemBeforeWrite = "virt_mem_before_write",
    PhysMemBeforeRead = "phys_mem_before_read",
    PhysMemBeforeWrite = "phys_mem_before_write",
    VirtMemAfterRead = "virt_mem_after_read",
    VirtMemAfterWrite = "virt_mem_after_write",
    PhysMemAfterRead = "phys_mem_after_read",
    PhysMemAfterWrite = "phys_mem_after_write",
    MmioAfterRead = "mmio_after_read",
    MmioBeforeWrite = "mmio_before_write",
    HdRead = "hd_read",
    HdWrite = "hd_write",
    GuestHypercall = "guest_hypercall",
    Monitor = "monitor",
    Qmp = "qmp",
    CpuRestoreState = "cpu_restore_state",
    BeforeLoadvm = "before_loadvm",
    AsidChanged = "asid_changed",
    ReplayHdTransfer = "replay_hd_transfer",
    ReplayNetTransfer = "replay_net_transfer",
    ReplaySerialReceive = "replay_serial_receive",
    ReplaySerialRead = "replay_serial_read",
    ReplaySerialSend = "replay_serial_send",
    ReplaySerialWrite = "replay_serial_write",
    ReplayBeforeDma = "replay_before_dma",
    ReplayAfterDma = "replay_after_dma",
    ReplayHandlePacket = "replay_handle_packet",
    AfterCpuExecEnter = "after_cpu_exec_enter",
    BeforeCpuExecExit = "before_cpu_exec_exit",
    AfterMachineInit = "after_machine_init",
    AfterLoadvm = "after_loadvm",
    TopLoop = "top_loop",
    DuringMachineInit = "during_machine_init",
    MainLoopWait = "main_loop_wait",
    PreShutdown = "pre_shutdown",
    UnassignedIoRead = "unassigned_io_read",
    UnassignedIoWrite = "unassigned_io_write",
    BeforeHandleException = "before_handle_exception",
    BeforeHandleInterrupt = "before_handle_interrupt",
    StartBlockExec = "start_block_exec",
    EndBlockExec = "end_block_exec",
}

impl CallbackKind {
    /// The kind PANDA calls `name` (with or without a `cb_` prefix).
    pub fn from_name(name: &str) -> Result<CallbackKind, InstrumentError> {
        let bare = name.strip_prefix("cb_").unwrap_or(name);
        CallbackKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == bare)
            .ok_or_else(|| InstrumentError::UnknownKind {
                name: name.to_string(),
            })
    }

    /// This kind's bit in [`Instrumentation::mask`].
    #[inline]
    pub const fn bit(self) -> u64 {
        1 << self as u8
    }

    /// Why pandare cannot fire this kind, or `None` when it can. Registering a refused kind
    /// is an error with this text, never a callback that silently does nothing.
    pub fn refusal(self) -> Option<&'static str> {
        use CallbackKind::*;
        Some(match self {
            BeforeTcgCodegen => {
                "pandare has no intermediate code between decoding and execution: inspect \
                 blocks with after_block_translate and instrument instructions with \
                 insn_translate/insn_exec"
            }
            HdRead | HdWrite => "PANDA never wired hd_read/hd_write (they are stubs)",
            Qmp => "pandare has no QMP server; the text monitor's plugin_cmd fires monitor",
            ReplayHdTransfer | ReplayNetTransfer | ReplayBeforeDma | ReplayAfterDma
            | ReplayHandlePacket => {
                "the machine has no disk, network card or DMA device yet, so these \
                 transfers never happen; use memory callbacks instead"
            }
            DuringMachineInit => {
                "the machine is already built when callbacks can be registered; use \
                 after_machine_init"
            }
            _ => return None,
        })
    }

    /// Whether this kind fires when code is decoded (registering one after code was
    /// decoded flushes the decoded code so the callbacks see every translation).
    pub fn is_translate_time(self) -> bool {
        matches!(
            self,
            CallbackKind::BeforeBlockTranslate
                | CallbackKind::AfterBlockTranslate
                | CallbackKind::InsnTranslate
                | CallbackKind::AfterInsnTranslate
        )
    }
}

/// Kinds whose callbacks fire on memory accesses.
pub const MEMORY_KINDS: u64 = CallbackKind::VirtMemBeforeRead.bit()
    | CallbackKind::VirtMemBeforeWrite.bit()
    | CallbackKind::PhysMemBeforeRead.bit()
    | CallbackKind::PhysMemBeforeWrite.bit()
    | CallbackKind::VirtMemAfterRead.bit()
    | CallbackKind::VirtMemAfterWrite.bit()
    | CallbackKind::PhysMemAfterRead.bit()
    | CallbackKind::PhysMemAfterWrite.bit()
    | CallbackKind::MmioAfterRead.bit()
    | CallbackKind::MmioBeforeWrite.bit()
    | CallbackKind::UnassignedIoRead.bit()
    | CallbackKind::UnassignedIoWrite.bit();

/// Errors of the callback registry and of [`GuestCpu`] accesses.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InstrumentError {
    /// No PANDA callback has this name.
    #[error("no callback type is called {name:?}; PANDA's names look like \"before_block_exec\" (see docs/callbacks.md)")]
    UnknownKind {
        /// The name asked for.
        name: String,
    },
    /// pandare does not fire this callback type.
    #[error("callback type {kind} is not available: {reason}")]
    Unsupported {
        /// PANDA's name.
        kind: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A callback with this name is already registered.
    #[error(
        "a callback named {name:?} is already registered; delete it first or pick another name"
    )]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// No callback has this name.
    #[error("no callback named {name:?} is registered")]
    NoSuchCallback {
        /// The name.
        name: String,
    },
    /// The callback was disabled forever and cannot be enabled again.
    #[error("callback {name:?} was disabled forever")]
    DisabledForever {
        /// The name.
        name: String,
    },
    /// The architecture has no register by this name.
    #[error("{architecture} has no register called {name:?}")]
    UnknownRegister {
        /// The architecture.
        architecture: &'static str,
        /// The name asked for.
        name: String,
    },
    /// The register can be read by name but not written (a system register).
    #[error("{architecture} register {name:?} is read-only here (a system register)")]
    ReadOnlyRegister {
        /// The architecture.
        architecture: &'static str,
        /// The register.
        name: String,
    },
    /// A guest address that is not mapped (virtual) or not RAM (physical).
    #[error("guest address {address:#x} is not mapped to RAM")]
    Unmapped {
        /// The first address that failed.
        address: u64,
    },
}

/// The block a block-level callback is about (PANDA's `TranslationBlock`, reduced to what
/// analyses read).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Virtual address of the block's first instruction.
    pub pc: u64,
    /// Size of the block's code in bytes.
    pub size: u64,
    /// Number of instructions in the block.
    pub instruction_count: u32,
}

/// The architecture-neutral view of the CPU handed to callbacks. Whatever a callback
/// changes through it (pc, registers, memory) takes effect exactly; memory writes to
/// translated code invalidate that code.
pub trait GuestCpu {
    /// Architecture name (`riscv64`).
    fn architecture(&self) -> &'static str;
    /// The architecture's registers and conventions (see [`crate::abi`]).
    fn abi(&self) -> &'static dyn crate::abi::GuestAbi;
    /// Program counter (in an instruction-level callback: that instruction's address).
    fn pc(&self) -> u64;
    /// Moves the program counter: execution continues there.
    fn set_pc(&mut self, pc: u64);
    /// A register by any name or alias of the ABI's register table (case-insensitive, e.g.
    /// `a0`, `x10`, `sp`, `pc`, `satp`).
    fn register(&self, name: &str) -> Result<u64, InstrumentError>;
    /// Sets a register by name (general registers and the pc; system registers are
    /// read-only).
    fn set_register(&mut self, name: &str, value: u64) -> Result<(), InstrumentError>;
    /// Reads guest virtual memory through the guest's current page tables (no side effects
    /// on the page tables). Only RAM is readable.
    fn read_memory(&mut self, vaddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError>;
    /// Writes guest virtual memory; nothing is written unless every byte is mapped.
    fn write_memory(&mut self, vaddr: u64, data: &[u8]) -> Result<(), InstrumentError>;
    /// Reads guest physical memory (RAM only).
    fn read_physical(&mut self, paddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError>;
    /// Writes guest physical memory (RAM only).
    fn write_physical(&mut self, paddr: u64, data: &[u8]) -> Result<(), InstrumentError>;
    /// The physical address `vaddr` maps to now, if any.
    fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64>;
    /// The current address-space identifier (what `asid_changed` reports).
    fn asid(&self) -> u64;
    /// Whether the CPU runs in the kernel (supervisor or machine mode).
    fn in_kernel_mode(&self) -> bool;
    /// Instructions retired so far (exact, also in the middle of a block).
    fn instruction_count(&self) -> u64;
    /// Ends the current run slice at the next block boundary (PANDA's `end_analysis`).
    fn request_stop(&mut self);
}

/// Reads a little-endian integer out of a memory callback's data.
pub fn data_value(data: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let n = data.len().min(8);
    bytes[..n].copy_from_slice(&data[..n]);
    u64::from_le_bytes(bytes)
}

/// `fn(cpu, block)`.
pub type BlockFn = Box<dyn FnMut(&mut dyn GuestCpu, &BlockInfo) + Send>;
/// `fn(cpu, block) -> bool`.
pub type BlockBoolFn = Box<dyn FnMut(&mut dyn GuestCpu, &BlockInfo) -> bool + Send>;
/// `fn(cpu, block, exit_code)`.
pub type BlockExitFn = Box<dyn FnMut(&mut dyn GuestCpu, &BlockInfo, u8) + Send>;
/// `fn(cpu, pc)`.
pub type PcFn = Box<dyn FnMut(&mut dyn GuestCpu, u64) + Send>;
/// `fn(cpu, pc) -> bool`.
pub type PcBoolFn = Box<dyn FnMut(&mut dyn GuestCpu, u64) -> bool + Send>;
/// `fn(cpu, pc, addr, size)`.
pub type MemFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u64, usize) + Send>;
/// `fn(cpu, pc, addr, size, data)`.
pub type MemDataFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u64, usize, &[u8]) + Send>;
/// `fn(cpu, physaddr, vaddr, size, &mut value)`.
pub type MmioFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u64, usize, &mut u64) + Send>;
/// `fn(cpu, pc, physaddr, size, &mut value) -> handled`.
pub type UnassignedReadFn =
    Box<dyn FnMut(&mut dyn GuestCpu, u64, u64, usize, &mut u64) -> bool + Send>;
/// `fn(cpu, pc, physaddr, size, value) -> handled`.
pub type UnassignedWriteFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u64, usize, u64) -> bool + Send>;
/// `fn(cpu, old, new) -> block the change`.
pub type AsidFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u64) -> bool + Send>;
/// `fn(cpu, index) -> new index`.
pub type IndexFn = Box<dyn FnMut(&mut dyn GuestCpu, i32) -> i32 + Send>;
/// `fn(cpu)`.
pub type CpuFn = Box<dyn FnMut(&mut dyn GuestCpu) + Send>;
/// `fn(cpu) -> bool`.
pub type CpuBoolFn = Box<dyn FnMut(&mut dyn GuestCpu) -> bool + Send>;
/// `fn(cpu, flag)`.
pub type CpuFlagFn = Box<dyn FnMut(&mut dyn GuestCpu, bool) + Send>;
/// `fn()`.
pub type PlainFn = Box<dyn FnMut() + Send>;
/// `fn(cpu, fifo_addr, value)`: a byte entering or leaving one of the UART's FIFOs.
pub type SerialFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u8) + Send>;
/// `fn(cpu, fifo_addr, port_addr, value)`: a byte the guest read from or wrote to the
/// UART's data register at physical address `port_addr`.
pub type SerialPortFn = Box<dyn FnMut(&mut dyn GuestCpu, u64, u64, u8) + Send>;
/// `fn(command) -> output`: `Some(text)` when the command was handled (the text, possibly
/// empty, is what the monitor prints), `None` when it was not for this callback.
pub type MonitorFn = Box<dyn FnMut(&str) -> Option<String> + Send>;

/// A callback: its kind and the closure, with PANDA's arguments and return meaning.
#[allow(missing_docs)]
pub enum Callback {
    BeforeBlockTranslate(PcFn),
    AfterBlockTranslate(BlockFn),
    /// Return `true` to drop the block and decode it again.
    BeforeBlockExecInvalidateOpt(BlockBoolFn),
    BeforeBlockExec(BlockFn),
    /// The exit code is [`EXIT_RAN_TO_END`] or [`EXIT_EARLY`].
    AfterBlockExec(BlockExitFn),
    /// Return `true` to have `insn_exec` called for the instruction at `pc`.
    InsnTranslate(PcBoolFn),
    InsnExec(PcFn),
    /// Return `true` to have `after_insn_exec` called for the instruction at `pc`.
    AfterInsnTranslate(PcBoolFn),
    AfterInsnExec(PcFn),
    VirtMemBeforeRead(MemFn),
    VirtMemBeforeWrite(MemDataFn),
    PhysMemBeforeRead(MemFn),
    PhysMemBeforeWrite(MemDataFn),
    VirtMemAfterRead(MemDataFn),
    VirtMemAfterWrite(MemDataFn),
    PhysMemAfterRead(MemDataFn),
    PhysMemAfterWrite(MemDataFn),
    /// The value read can be changed.
    MmioAfterRead(MmioFn),
    /// The value about to be written can be changed.
    MmioBeforeWrite(MmioFn),
    /// Return `true` if handled, which skips the instruction's effect (it is a no-op).
    GuestHypercall(CpuBoolFn),
    CpuRestoreState(BlockFn),
    BeforeLoadvm(PlainFn),
    /// Return `true` to block the change.
    AsidChanged(AsidFn),
    AfterCpuExecEnter(CpuFn),
    /// The flag says whether a block ran since `after_cpu_exec_enter`.
    BeforeCpuExecExit(CpuFlagFn),
    AfterMachineInit(CpuFn),
    AfterLoadvm(CpuFn),
    TopLoop(CpuFn),
    MainLoopWait(PlainFn),
    PreShutdown(PlainFn),
    /// The `plugin_cmd` monitor command, with the rest of its line. Return the text to
    /// print when the command was for this callback, `None` otherwise.
    Monitor(MonitorFn),
    /// Replay only: a byte of recorded input entering the UART's receive FIFO.
    ReplaySerialReceive(SerialFn),
    /// Replay only: the guest read a received byte from the UART's data register.
    ReplaySerialRead(SerialPortFn),
    /// Replay only: a byte leaving the UART's transmit side (the serial output).
    ReplaySerialSend(SerialFn),
    /// Replay only: the guest wrote a byte to the UART's data register.
    ReplaySerialWrite(SerialPortFn),
    /// Return `true` and set the value to answer a read nothing is mapped at.
    UnassignedIoRead(UnassignedReadFn),
    /// Return `true` to let a write to nothing pass silently.
    UnassignedIoWrite(UnassignedWriteFn),
    /// Returns the exception to take instead, or -1 to cancel it.
    BeforeHandleException(IndexFn),
    /// Returns the interrupt to take instead, or -1 to cancel it (for now).
    BeforeHandleInterrupt(IndexFn),
    StartBlockExec(BlockFn),
    EndBlockExec(BlockFn),
}

impl Callback {
    /// The callback's kind.
    pub fn kind(&self) -> CallbackKind {
        use CallbackKind as K;
        match self {
            Callback::BeforeBlockTranslate(_) => K::BeforeBlockTranslate,
            Callback::AfterBlockTranslate(_) => K::AfterBlockTranslate,
            Callback::BeforeBlockExecInvalidateOpt(_) => K::BeforeBlockExecInvalidateOpt,
            Callback::BeforeBlockExec(_) => K::BeforeBlockExec,
            Callback::AfterBlockExec(_) => K::AfterBlockExec,
            Callback::InsnTranslate(_) => K::InsnTranslate,
            Callback::InsnExec(_) => K::InsnExec,
            Callback::AfterInsnTranslate(_) => K::AfterInsnTranslate,
            Callback::AfterInsnExec(_) => K::AfterInsnExec,
            Callback::VirtMemBeforeRead(_) => K::VirtMemBeforeRead,
            Callback::VirtMemBeforeWrite(_) => K::VirtMemBeforeWrite,
            Callback::PhysMemBeforeRead(_) => K::PhysMemBeforeRead,
            Callback::PhysMemBeforeWrite(_) => K::PhysMemBeforeWrite,
            Callback::VirtMemAfterRead(_) => K::VirtMemAfterRead,
            Callback::VirtMemAfterWrite(_) => K::VirtMemAfterWrite,
            Callback::PhysMemAfterRead(_) => K::PhysMemAfterRead,
            Callback::PhysMemAfterWrite(_) => K::PhysMemAfterWrite,
            Callback::MmioAfterRead(_) => K::MmioAfterRead,
            Callback::MmioBeforeWrite(_) => K::MmioBeforeWrite,
            Callback::GuestHypercall(_) => K::GuestHypercall,
            Callback::CpuRestoreState(_) => K::CpuRestoreState,
            Callback::BeforeLoadvm(_) => K::BeforeLoadvm,
            Callback::AsidChanged(_) => K::AsidChanged,
            Callback::AfterCpuExecEnter(_) => K::AfterCpuExecEnter,
            Callback::BeforeCpuExecExit(_) => K::BeforeCpuExecExit,
            Callback::AfterMachineInit(_) => K::AfterMachineInit,
            Callback::AfterLoadvm(_) => K::AfterLoadvm,
            Callback::TopLoop(_) => K::TopLoop,
            Callback::MainLoopWait(_) => K::MainLoopWait,
            Callback::PreShutdown(_) => K::PreShutdown,
            Callback::Monitor(_) => K::Monitor,
            Callback::ReplaySerialReceive(_) => K::ReplaySerialReceive,
            Callback::ReplaySerialRead(_) => K::ReplaySerialRead,
            Callback::ReplaySerialSend(_) => K::ReplaySerialSend,
            Callback::ReplaySerialWrite(_) => K::ReplaySerialWrite,
            Callback::UnassignedIoRead(_) => K::UnassignedIoRead,
            Callback::UnassignedIoWrite(_) => K::UnassignedIoWrite,
            Callback::BeforeHandleException(_) => K::BeforeHandleException,
            Callback::BeforeHandleInterrupt(_) => K::BeforeHandleInterrupt,
            Callback::StartBlockExec(_) => K::StartBlockExec,
            Callback::EndBlockExec(_) => K::EndBlockExec,
        }
    }
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Callback({})", self.kind().name())
    }
}

/// Bit of [`Instrumentation::mask`] set while an address hook firing at
/// [`HookPoint::Start`] is enabled.
pub const HOOKS_AT_START: u64 = 1 << 62;
/// Bit of [`Instrumentation::mask`] set while an address hook firing at [`HookPoint::End`]
/// is enabled.
pub const HOOKS_AT_END: u64 = 1 << 63;
/// Both address-hook bits of [`Instrumentation::mask`].
pub const ADDRESS_HOOKS: u64 = HOOKS_AT_START | HOOKS_AT_END;

/// The kinds [`Instrumentation::fire_block_start`] fires.
const BLOCK_START_KINDS: u64 =
    CallbackKind::BeforeBlockExec.bit() | CallbackKind::StartBlockExec.bit();
/// Kinds that fire outside an executor's run loop (around it, or from the machine), so they
/// do not need the instrumented loop.
const OUTSIDE_LOOP_KINDS: u64 = CallbackKind::AfterCpuExecEnter.bit()
    | CallbackKind::BeforeCpuExecExit.bit()
    | CallbackKind::AfterMachineInit.bit()
    | CallbackKind::AfterLoadvm.bit()
    | CallbackKind::BeforeLoadvm.bit()
    | CallbackKind::TopLoop.bit()
    | CallbackKind::MainLoopWait.bit()
    | CallbackKind::PreShutdown.bit()
    | CallbackKind::Monitor.bit()
    | SERIAL_KINDS;

/// The replay-time serial kinds: the machine fires them from its UART's events, after the
/// device access that caused them (outside the executor's loop).
pub const SERIAL_KINDS: u64 = CallbackKind::ReplaySerialReceive.bit()
    | CallbackKind::ReplaySerialRead.bit()
    | CallbackKind::ReplaySerialSend.bit()
    | CallbackKind::ReplaySerialWrite.bit();

/// When an address hook fires, relative to the block that starts at its address (blocks
/// are split at hooked addresses, so one always starts there).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// Before the instruction at the address runs: PANDA's `start_block_exec` (the default
    /// `cb_type` of `panda.hook`) and `before_block_exec`.
    #[default]
    Start,
    /// After the block that starts at the address ran, with its exit code: PANDA's
    /// `after_block_exec` and `end_block_exec`.
    End,
}

impl HookPoint {
    /// The hook point for PANDA's block-level `cb_type` of `panda.hook`. The translate-time
    /// types are refused: a hook is about executing an address.
    pub fn from_kind(kind: CallbackKind) -> Result<HookPoint, InstrumentError> {
        match kind {
            CallbackKind::StartBlockExec | CallbackKind::BeforeBlockExec => Ok(HookPoint::Start),
            CallbackKind::AfterBlockExec | CallbackKind::EndBlockExec => Ok(HookPoint::End),
            _ => Err(InstrumentError::Unsupported {
                kind: kind.name(),
                reason: "address hooks fire on start_block_exec, before_block_exec, \
                         after_block_exec or end_block_exec",
            }),
        }
    }
}

/// Where an address hook fires: when execution reaches `address` (a virtual address), in
/// the address space and mode given, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddressHook {
    /// Virtual address of the instruction.
    pub address: u64,
    /// Only when [`GuestCpu::asid`] has this value.
    pub asid: Option<u64>,
    /// Only in kernel mode (`Some(true)`) or only in user mode (`Some(false)`), as
    /// [`GuestCpu::in_kernel_mode`] says.
    pub kernel: Option<bool>,
    /// Before the instruction or after its block.
    pub point: HookPoint,
}

impl AddressHook {
    /// A hook at `address` in every address space and mode, before the instruction runs.
    pub fn at(address: u64) -> AddressHook {
        AddressHook {
            address,
            asid: None,
            kernel: None,
            point: HookPoint::Start,
        }
    }

    fn matches(&self, cpu: &dyn GuestCpu) -> bool {
        self.asid.is_none_or(|asid| asid == cpu.asid())
            && self
                .kernel
                .is_none_or(|kernel| kernel == cpu.in_kernel_mode())
    }
}

/// What an address hook's callback is told, and its switch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookCall {
    /// The hooked address.
    pub address: u64,
    /// The block that starts at the address (PANDA's `tb`).
    pub block: BlockInfo,
    /// For [`HookPoint::End`], the block's exit code ([`EXIT_RAN_TO_END`] or
    /// [`EXIT_EARLY`]); [`EXIT_RAN_TO_END`] at [`HookPoint::Start`].
    pub exit_code: u8,
    /// True when the callback is called. Set it to false to disable the hook (PyPANDA's
    /// `hook.enabled = False`): it does not fire again until enabled by name.
    pub enabled: bool,
}

/// An address hook's callback: `fn(cpu, call)`.
pub type HookFn = Box<dyn FnMut(&mut dyn GuestCpu, &mut HookCall) + Send>;

/// A change asked for while callbacks run, applied at the next block boundary.
enum Change {
    Register(String, Callback),
    AddHook(String, AddressHook, HookFn),
    Enable(String),
    Disable(String),
    DisableForever(String),
    Delete(String),
    Stop,
}

#[derive(Default)]
struct Queue {
    pending: AtomicBool,
    changes: Mutex<Vec<Change>>,
}

/// A handle for changing the registry from inside callbacks (or from another thread):
/// changes are queued and take effect at the next block boundary.
#[derive(Clone)]
pub struct Controller {
    queue: Arc<Queue>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    fn push(&self, change: Change) {
        self.queue
            .changes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(change);
        self.queue.pending.store(true, Ordering::Release);
    }

    /// Registers a callback (errors are reported by [`Instrumentation::take_errors`]).
    pub fn register(&self, name: &str, callback: Callback) {
        self.push(Change::Register(name.to_string(), callback));
    }

    /// Adds an address hook (errors are reported by [`Instrumentation::take_errors`]).
    pub fn add_hook(&self, name: &str, hook: AddressHook, callback: HookFn) {
        self.push(Change::AddHook(name.to_string(), hook, callback));
    }

    /// Enables a callback or hook by name.
    pub fn enable(&self, name: &str) {
        self.push(Change::Enable(name.to_string()));
    }

    /// Disables a callback by name.
    pub fn disable(&self, name: &str) {
        self.push(Change::Disable(name.to_string()));
    }

    /// Disables a callback for good.
    pub fn disable_forever(&self, name: &str) {
        self.push(Change::DisableForever(name.to_string()));
    }

    /// Deletes a callback.
    pub fn delete(&self, name: &str) {
        self.push(Change::Delete(name.to_string()));
    }

    /// Ends the current run slice at the next block boundary.
    pub fn request_stop(&self) {
        self.push(Change::Stop);
    }
}

struct Slot {
    name: String,
    /// Registration order, for [`Instrumentation::list`].
    order: u64,
    enabled: bool,
    forever: bool,
    callback: Callback,
}

struct HookSlot {
    name: String,
    hook: AddressHook,
    enabled: bool,
    forever: bool,
    callback: HookFn,
}

/// What a name stands for.
#[derive(Clone, Copy)]
enum Entry {
    Callback(CallbackKind),
    /// An address hook, at this address.
    Hook(u64),
}

/// The callback registry of one machine.
///
/// Callbacks are kept in one list per kind (the executor's dispatch lists), so firing a
/// kind walks only that kind's callbacks, and a kind with nothing enabled costs one bit
/// test of the mask.
#[derive(Default)]
pub struct Instrumentation {
    mask: u64,
    /// Callbacks by kind (indexed by `CallbackKind as usize`), each in registration order.
    by_kind: Vec<Vec<Slot>>,
    /// What each registered name stands for.
    by_name: HashMap<String, Entry>,
    /// Address hooks by address, each list in registration order. An address stays here
    /// (and blocks stay split at it) while a hook is registered there, enabled or not.
    hooks: BTreeMap<u64, Vec<HookSlot>>,
    /// Addresses hooked since the executor last looked: their decoded code is dropped.
    new_hook_addresses: Vec<u64>,
    registered: u64,
    queue: Option<Arc<Queue>>,
    errors: Vec<InstrumentError>,
    flush_code: bool,
    stop: bool,
    stopped: bool,
    machine_init_done: bool,
    replaying: bool,
    /// `(pc, instructions retired)` where address hooks last fired: when the executor starts
    /// over at the same place without running anything (a callback changed code), they do
    /// not fire twice for one arrival.
    pub(crate) last_hook_arrival: Option<(u64, u64)>,
}

impl std::fmt::Debug for Instrumentation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instrumentation")
            .field("mask", &format_args!("{:#x}", self.mask))
            .field("callbacks", &self.by_name.len())
            .finish_non_exhaustive()
    }
}

impl Instrumentation {
    /// An empty registry.
    pub fn new() -> Instrumentation {
        Instrumentation::default()
    }

    /// Kinds with at least one enabled callback, one bit per [`CallbackKind::bit`], and
    /// [`HOOKS_AT_START`] / [`HOOKS_AT_END`] when an address hook is enabled.
    #[inline]
    pub fn mask(&self) -> u64 {
        self.mask
    }

    /// Whether any callback of `kind` is enabled.
    #[inline]
    pub fn has(&self, kind: CallbackKind) -> bool {
        self.mask & kind.bit() != 0
    }

    /// Whether anything is enabled or queued: the executor's one test.
    #[inline]
    pub fn active(&self) -> bool {
        self.mask != 0 || self.stop || self.changes_pending()
    }

    /// Whether the only callbacks that fire inside the executor's loop are
    /// `before_block_exec`, `start_block_exec` and `before_handle_exception`, with no
    /// address hooks registered: the executor can then run its uninstrumented loop, fire
    /// the first two at each block ([`Instrumentation::fire_block_start`]) and the third
    /// where it takes an exception (rare, so that costs nothing between exceptions).
    #[inline]
    pub(crate) fn only_block_start(&self) -> bool {
        self.mask
            & !(BLOCK_START_KINDS | CallbackKind::BeforeHandleException.bit() | OUTSIDE_LOOP_KINDS)
            == 0
            && self.hooks.is_empty()
    }

    /// Fires the enabled `before_block_exec` callbacks, then the `start_block_exec` ones,
    /// for `block`. The executor's fast path: one walk over each kind's list.
    #[inline]
    pub(crate) fn fire_block_start(&mut self, cpu: &mut dyn GuestCpu, block: &BlockInfo) {
        for slot in &mut self.by_kind[CallbackKind::BeforeBlockExec as usize] {
            if let (true, Callback::BeforeBlockExec(f)) = (slot.enabled, &mut slot.callback) {
                f(cpu, block);
            }
        }
        if self.mask & CallbackKind::StartBlockExec.bit() != 0 {
            for slot in &mut self.by_kind[CallbackKind::StartBlockExec as usize] {
                if let (true, Callback::StartBlockExec(f)) = (slot.enabled, &mut slot.callback) {
                    f(cpu, block);
                }
            }
        }
    }

    /// Whether the executor has something to do at the next block boundary besides firing
    /// callbacks: queued changes to apply, a code flush or a stop to take. Inline and cheap:
    /// the instrumented loop tests it before every block.
    #[inline]
    pub(crate) fn needs_attention(&self) -> bool {
        self.stop | self.flush_code | !self.new_hook_addresses.is_empty() || self.changes_pending()
    }

    #[inline]
    fn changes_pending(&self) -> bool {
        self.queue
            .as_ref()
            .is_some_and(|queue| queue.pending.load(Ordering::Acquire))
    }

    /// Registers `callback` under `name`, enabled.
    pub fn register(&mut self, name: &str, callback: Callback) -> Result<(), InstrumentError> {
        let kind = callback.kind();
        if let Some(reason) = kind.refusal() {
            return Err(InstrumentError::Unsupported {
                kind: kind.name(),
                reason,
            });
        }
        if self.by_name.contains_key(name) {
            return Err(InstrumentError::DuplicateName {
                name: name.to_string(),
            });
        }
        self.by_name.insert(name.to_string(), Entry::Callback(kind));
        if self.by_kind.is_empty() {
            self.by_kind
                .resize_with(CallbackKind::ALL.len(), Default::default);
        }
        self.registered += 1;
        self.by_kind[kind as usize].push(Slot {
            name: name.to_string(),
            order: self.registered,
            enabled: true,
            forever: false,
            callback,
        });
        if kind.is_translate_time() {
            self.flush_code = true;
        }
        self.update_mask();
        Ok(())
    }

    /// Checks that a callback type can be registered (for front ends that name types by
    /// string before building the closure).
    pub fn check_kind(name: &str) -> Result<CallbackKind, InstrumentError> {
        let kind = CallbackKind::from_name(name)?;
        match kind.refusal() {
            Some(reason) => Err(InstrumentError::Unsupported {
                kind: kind.name(),
                reason,
            }),
            None => Ok(kind),
        }
    }

    /// The switches of a named callback or hook: `(enabled, forever, translate_time)`.
    fn switches(&mut self, name: &str) -> Result<(&mut bool, &mut bool, bool), InstrumentError> {
        let entry = self.by_name.get(name).copied();
        match entry {
            Some(Entry::Callback(kind)) => {
                let slot = self.by_kind[kind as usize]
                    .iter_mut()
                    .find(|slot| slot.name == name)
                    .expect("every named callback is in its kind's list");
                Ok((
                    &mut slot.enabled,
                    &mut slot.forever,
                    kind.is_translate_time(),
                ))
            }
            Some(Entry::Hook(address)) => {
                let slot = self
                    .hooks
                    .get_mut(&address)
                    .and_then(|slots| slots.iter_mut().find(|slot| slot.name == name))
                    .expect("every named hook is in its address's list");
                Ok((&mut slot.enabled, &mut slot.forever, false))
            }
            None => Err(InstrumentError::NoSuchCallback {
                name: name.to_string(),
            }),
        }
    }

    /// Enables a callback or hook by name.
    pub fn enable(&mut self, name: &str) -> Result<(), InstrumentError> {
        let (enabled, forever, translate_time) = self.switches(name)?;
        if *forever {
            return Err(InstrumentError::DisabledForever {
                name: name.to_string(),
            });
        }
        let newly = !*enabled;
        *enabled = true;
        if newly && translate_time {
            self.flush_code = true;
        }
        self.update_mask();
        Ok(())
    }

    /// Disables a callback or hook by name (it can be enabled again).
    pub fn disable(&mut self, name: &str) -> Result<(), InstrumentError> {
        *self.switches(name)?.0 = false;
        self.update_mask();
        Ok(())
    }

    /// Disables a callback or hook so that it can never be enabled again.
    pub fn disable_forever(&mut self, name: &str) -> Result<(), InstrumentError> {
        let (enabled, forever, _) = self.switches(name)?;
        *enabled = false;
        *forever = true;
        self.update_mask();
        Ok(())
    }

    /// Removes a callback or hook.
    pub fn delete(&mut self, name: &str) -> Result<(), InstrumentError> {
        match self.by_name.remove(name) {
            Some(Entry::Callback(kind)) => {
                self.by_kind[kind as usize].retain(|slot| slot.name != name);
            }
            Some(Entry::Hook(address)) => {
                if let Some(slots) = self.hooks.get_mut(&address) {
                    slots.retain(|slot| slot.name != name);
                    if slots.is_empty() {
                        self.hooks.remove(&address);
                    }
                }
            }
            None => {
                return Err(InstrumentError::NoSuchCallback {
                    name: name.to_string(),
                })
            }
        }
        self.update_mask();
        Ok(())
    }

    /// Whether a callback or hook by this name is registered and enabled.
    pub fn is_enabled(&self, name: &str) -> Result<bool, InstrumentError> {
        match self.by_name.get(name) {
            Some(&Entry::Callback(kind)) => Ok(self.by_kind[kind as usize]
                .iter()
                .any(|slot| slot.name == name && slot.enabled)),
            Some(&Entry::Hook(address)) => Ok(self.hooks[&address]
                .iter()
                .any(|slot| slot.name == name && slot.enabled)),
            None => Err(InstrumentError::NoSuchCallback {
                name: name.to_string(),
            }),
        }
    }

    /// Adds an address hook under `name` (names are shared with callbacks: enable,
    /// disable, disable forever and delete it by name), enabled. `callback` runs each time
    /// execution reaches `hook.address` in the address space and mode asked for: see
    /// `docs/callbacks.md`, "Address hooks".
    pub fn add_hook(
        &mut self,
        name: &str,
        hook: AddressHook,
        callback: HookFn,
    ) -> Result<(), InstrumentError> {
        if self.by_name.contains_key(name) {
            return Err(InstrumentError::DuplicateName {
                name: name.to_string(),
            });
        }
        self.by_name
            .insert(name.to_string(), Entry::Hook(hook.address));
        let slots = self.hooks.entry(hook.address).or_default();
        if slots.is_empty() {
            self.new_hook_addresses.push(hook.address);
        }
        slots.push(HookSlot {
            name: name.to_string(),
            hook,
            enabled: true,
            forever: false,
            callback,
        });
        self.update_mask();
        Ok(())
    }

    /// The registered address hooks, by address, with whether each is enabled.
    pub fn list_hooks(&self) -> Vec<(String, AddressHook, bool)> {
        self.hooks
            .values()
            .flatten()
            .map(|slot| (slot.name.clone(), slot.hook, slot.enabled))
            .collect()
    }

    /// Whether a hook (enabled or not) is registered at `address`: decoded blocks end
    /// before such an address, so that a block starts there.
    #[inline]
    pub(crate) fn is_hooked(&self, address: u64) -> bool {
        !self.hooks.is_empty() && self.hooks.contains_key(&address)
    }

    /// Whether any address hook is registered.
    #[inline]
    pub(crate) fn has_hooks(&self) -> bool {
        !self.hooks.is_empty()
    }

    /// The lowest hooked address in `start..end`.
    pub(crate) fn first_hook_in(&self, start: u64, end: u64) -> Option<u64> {
        if start >= end {
            return None;
        }
        self.hooks
            .range(start..end)
            .next()
            .map(|(&address, _)| address)
    }

    /// Addresses hooked for the first time since the last call: the executor drops the
    /// decoded code that covers them, so that a block starts at each.
    pub(crate) fn take_new_hook_addresses(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.new_hook_addresses)
    }

    /// Calls the enabled hooks at `address` for `point` whose address space and mode match
    /// `cpu`, in registration order. A hook that clears [`HookCall::enabled`] is disabled.
    pub(crate) fn fire_hooks(
        &mut self,
        point: HookPoint,
        cpu: &mut dyn GuestCpu,
        address: u64,
        block: &BlockInfo,
        exit_code: u8,
    ) {
        let Some(slots) = self.hooks.get_mut(&address) else {
            return;
        };
        let mut disabled = false;
        for slot in slots {
            if !slot.enabled || slot.hook.point != point || !slot.hook.matches(cpu) {
                continue;
            }
            let mut call = HookCall {
                address,
                block: *block,
                exit_code,
                enabled: true,
            };
            (slot.callback)(cpu, &mut call);
            if !call.enabled {
                slot.enabled = false;
                disabled = true;
            }
        }
        if disabled {
            self.update_mask();
        }
    }

    /// Names of the registered callbacks with their kinds, in registration order.
    pub fn list(&self) -> Vec<(String, CallbackKind, bool)> {
        let mut slots: Vec<&Slot> = self.by_kind.iter().flatten().collect();
        slots.sort_by_key(|slot| slot.order);
        slots
            .into_iter()
            .map(|slot| (slot.name.clone(), slot.callback.kind(), slot.enabled))
            .collect()
    }

    /// A handle to change the registry from inside callbacks.
    pub fn controller(&mut self) -> Controller {
        let queue = self.queue.get_or_insert_with(Default::default);
        Controller {
            queue: Arc::clone(queue),
        }
    }

    /// Asks the executor to end the current run slice at the next block boundary.
    pub fn request_stop(&mut self) {
        self.stop = true;
    }

    /// Whether a stop was requested and not yet taken; the executor takes it (and
    /// [`Instrumentation::take_stopped`] then reports it).
    pub(crate) fn take_stop(&mut self) -> bool {
        let stop = std::mem::take(&mut self.stop);
        self.stopped |= stop;
        stop
    }

    /// Whether a run slice ended because a callback asked to stop. Cleared by the call.
    pub fn take_stopped(&mut self) -> bool {
        std::mem::take(&mut self.stopped)
    }

    /// Errors from changes queued through a [`Controller`] (such as a duplicate name).
    pub fn take_errors(&mut self) -> Vec<InstrumentError> {
        std::mem::take(&mut self.errors)
    }

    /// Applies queued changes (the executor calls this at block boundaries).
    pub fn apply_pending(&mut self) {
        if !self.changes_pending() {
            return;
        }
        let Some(queue) = self.queue.clone() else {
            return;
        };
        queue.pending.store(false, Ordering::Release);
        let changes = std::mem::take(
            &mut *queue
                .changes
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        );
        for change in changes {
            let result = match change {
                Change::Register(name, callback) => self.register(&name, callback),
                Change::AddHook(name, hook, callback) => self.add_hook(&name, hook, callback),
                Change::Enable(name) => self.enable(&name),
                Change::Disable(name) => self.disable(&name),
                Change::DisableForever(name) => self.disable_forever(&name),
                Change::Delete(name) => self.delete(&name),
                Change::Stop => {
                    self.stop = true;
                    Ok(())
                }
            };
            if let Err(error) = result {
                self.errors.push(error);
            }
        }
    }

    /// Whether translate-time callbacks were enabled since the last call: the executor
    /// then drops its decoded code so they see every translation.
    pub(crate) fn take_code_flush(&mut self) -> bool {
        std::mem::take(&mut self.flush_code)
    }

    /// Says whether the machine is replaying a recording: the `replay_*` callbacks fire
    /// only then, as in PANDA. The replayer sets it for the length of a replay.
    pub fn set_replaying(&mut self, replaying: bool) {
        self.replaying = replaying;
    }

    /// Whether the machine is replaying a recording.
    pub fn replaying(&self) -> bool {
        self.replaying
    }

    /// Whether the machine should collect its UART's events for the replay-time serial
    /// callbacks: replaying, with one of them enabled.
    #[inline]
    pub(crate) fn wants_serial_events(&self) -> bool {
        self.replaying && self.mask & SERIAL_KINDS != 0
    }

    /// Whether `after_machine_init` is still to fire; true only the first time.
    pub(crate) fn take_machine_init(&mut self) -> bool {
        !std::mem::replace(&mut self.machine_init_done, true)
    }

    fn update_mask(&mut self) {
        let callbacks = CallbackKind::ALL
            .iter()
            .zip(&self.by_kind)
            .filter(|(_, slots)| slots.iter().any(|slot| slot.enabled))
            .fold(0, |mask, (kind, _)| mask | kind.bit());
        let hooks = self
            .hooks
            .values()
            .flatten()
            .filter(|slot| slot.enabled)
            .fold(0, |mask, slot| {
                mask | match slot.hook.point {
                    HookPoint::Start => HOOKS_AT_START,
                    HookPoint::End => HOOKS_AT_END,
                }
            });
        self.mask = callbacks | hooks;
    }

    /// The enabled callbacks of `kind`, in registration order, for the executor to call.
    #[inline]
    pub fn enabled(&mut self, kind: CallbackKind) -> impl Iterator<Item = &mut Callback> {
        let slots: &mut [Slot] = if self.mask & kind.bit() != 0 {
            &mut self.by_kind[kind as usize]
        } else {
            &mut []
        };
        slots
            .iter_mut()
            .filter(|slot| slot.enabled)
            .map(|slot| &mut slot.callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(CallbackKind::ALL.len(), 51);
        for &kind in CallbackKind::ALL {
            assert_eq!(CallbackKind::from_name(kind.name()), Ok(kind));
        }
        assert_eq!(
            CallbackKind::from_name("cb_before_block_exec"),
            Ok(CallbackKind::BeforeBlockExec)
        );
        let error = CallbackKind::from_name("before_blok_exec").unwrap_err();
        assert!(error.to_string().contains("before_blok_exec"));
    }

    #[test]
    fn registry_enables_disables_and_deletes_by_name() {
        let mut instr = Instrumentation::new();
        assert!(!instr.active());
        instr
            .register("a", Callback::BeforeBlockExec(Box::new(|_, _| {})))
            .unwrap();
        assert!(instr.has(CallbackKind::BeforeBlockExec));
        assert!(matches!(
            instr.register("a", Callback::InsnExec(Box::new(|_, _| {}))),
            Err(InstrumentError::DuplicateName { .. })
        ));
        instr.disable("a").unwrap();
        assert_eq!(instr.mask(), 0);
        instr.enable("a").unwrap();
        assert_eq!(instr.mask(), CallbackKind::BeforeBlockExec.bit());
        instr.disable_forever("a").unwrap();
        assert!(matches!(
            instr.enable("a"),
            Err(InstrumentError::DisabledForever { .. })
        ));
        instr.delete("a").unwrap();
        assert!(matches!(
            instr.disable("a"),
            Err(InstrumentError::NoSuchCallback { .. })
        ));
        assert!(matches!(
            Instrumentation::check_kind("before_tcg_codegen"),
            Err(InstrumentError::Unsupported { .. })
        ));
    }

    #[test]
    fn queued_changes_apply_later() {
        let mut instr = Instrumentation::new();
        let control = instr.controller();
        control.register("late", Callback::TopLoop(Box::new(|_| {})));
        control.register("late", Callback::TopLoop(Box::new(|_| {})));
        assert!(instr.active());
        assert_eq!(instr.mask(), 0);
        instr.apply_pending();
        assert!(instr.has(CallbackKind::TopLoop));
        assert_eq!(instr.take_errors().len(), 1);
    }

    #[test]
    fn hooks_share_names_with_callbacks_and_set_their_mask_bits() {
        let mut instr = Instrumentation::new();
        instr
            .register("a", Callback::BeforeBlockExec(Box::new(|_, _| {})))
            .unwrap();
        assert!(matches!(
            instr.add_hook("a", AddressHook::at(0x1000), Box::new(|_, _| {})),
            Err(InstrumentError::DuplicateName { .. })
        ));
        let control = instr.controller();
        control.add_hook(
            "end",
            AddressHook {
                point: HookPoint::End,
                ..AddressHook::at(0x1000)
            },
            Box::new(|_, _| {}),
        );
        control.add_hook("start", AddressHook::at(0x2000), Box::new(|_, _| {}));
        assert!(instr.needs_attention());
        instr.apply_pending();
        assert_eq!(
            instr.mask(),
            CallbackKind::BeforeBlockExec.bit() | HOOKS_AT_START | HOOKS_AT_END
        );
        assert_eq!(instr.take_new_hook_addresses(), [0x1000, 0x2000]);
        assert!(instr.is_hooked(0x1000) && !instr.is_hooked(0x1004));
        assert_eq!(instr.first_hook_in(0x1001, 0x3000), Some(0x2000));
        instr.disable("start").unwrap();
        assert_eq!(instr.is_enabled("start"), Ok(false));
        assert_eq!(instr.mask() & HOOKS_AT_START, 0);
        // A disabled hook keeps its address a block boundary.
        assert!(instr.is_hooked(0x2000));
        instr.delete("start").unwrap();
        assert!(!instr.is_hooked(0x2000));
        instr.disable_forever("end").unwrap();
        assert!(matches!(
            instr.enable("end"),
            Err(InstrumentError::DisabledForever { .. })
        ));
        assert_eq!(instr.list_hooks().len(), 1);
        assert_eq!(instr.list().len(), 1);
    }
}
