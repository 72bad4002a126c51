//! The x86 side of PANDA's callbacks: the [`GuestCpu`] view handed to callbacks
//! ([`X86View`]) with what the arch-neutral firing protocol in `pandare_core::execution`
//! needs of it (stop requests, modified code, data accesses), the cold branch that diverts
//! data accesses to the memory protocol while memory callbacks are enabled, and the
//! `asid_changed` notification for CR3 writes. What fires when is decided in
//! `pandare_core::execution`; `run.rs` calls it at its firing points, and
//! `docs/callbacks.md` lists them all.
//!
//! **The pc** callbacks see (`GuestCpu::pc`, `BlockInfo::pc`, the `pc` of instruction and
//! memory callbacks, address hooks) is the linear address of the instruction, `CS.base +
//! RIP`, which is PANDA's `panda_current_pc` on x86. In 64-bit mode it is RIP itself, and so
//! it is under Linux's flat 32-bit segments; it differs from RIP only in real mode and with
//! non-zero CS bases. `set_pc` takes a linear address too. The register `rip`/`eip` is RIP.
//!
//! **Virtual addresses** in memory callbacks and `read_memory`/`write_memory` are linear
//! addresses (after segmentation), as in PANDA.

use std::ptr::NonNull;

use pandare_core::execution::memory::DataAccess;
use pandare_core::execution::{CpuView, Hooks};
use pandare_core::instrument::{CallbackKind, GuestCpu, InstrumentError};

use crate::mmu::Access;
use crate::state::{seg, Mode};
use crate::{Fault, X86Cpu};

/// What the instrumented loop lends the CPU's access functions while it runs: the
/// registry's executor handle, whether data accesses go through the memory protocol, and
/// the instruction that runs (its RIP and linear pc).
#[derive(Debug, Default)]
pub(crate) struct Instrumented {
    hooks: Option<HooksPtr>,
    /// Data accesses go through `Hooks::load`/`Hooks::store` (memory callbacks enabled).
    pub(crate) memory: bool,
    /// RIP of the running instruction (RIP itself already points past it).
    pub(crate) rip: u64,
    /// Its linear address.
    pub(crate) pc: u64,
}

/// The registry handle of the run in progress.
#[derive(Debug)]
struct HooksPtr(NonNull<Hooks>);

// SAFETY: the pointer is only set by the run loop for the duration of one call of
// `X86Cpu::run_with` on the machine thread (and cleared before it returns), and only
// dereferenced inside that call; the CPU never carries it across threads while it is set.
unsafe impl Send for HooksPtr {}

impl Instrumented {
    /// Lends `hooks` (for the current run loop only; see [`Instrumented::clear`]).
    pub(crate) fn lend(&mut self, hooks: &mut Hooks, memory: bool) {
        self.hooks = Some(HooksPtr(NonNull::from(hooks)));
        self.memory = memory;
    }

    /// Takes the loan back.
    pub(crate) fn clear(&mut self) {
        self.hooks = None;
        self.memory = false;
    }

    /// Whether translation must end a block before linear address `address` (an address
    /// hook is registered there).
    pub(crate) fn splits_at(&self, address: u64) -> bool {
        match &self.hooks {
            // SAFETY: see `HooksPtr`; the registry is only read here.
            Some(ptr) => unsafe { ptr.0.as_ref() }.is_hooked(address),
            None => false,
        }
    }
}

/// Runs `f` with the lent registry and the CPU, the loan taken out meanwhile (so accesses
/// `f` makes take the plain path). `None` when nothing is lent.
fn with_hooks<R>(cpu: &mut X86Cpu, f: impl FnOnce(&mut X86Cpu, &mut Hooks) -> R) -> Option<R> {
    let ptr = cpu.instrument.hooks.take()?;
    let memory = std::mem::take(&mut cpu.instrument.memory);
    // SAFETY: see `HooksPtr`. The run loop that lent the registry does not touch it while
    // the instruction (and so this access) runs, and the loan is out of the CPU while `f`
    // runs, so this is the only reference in use.
    let result = f(cpu, unsafe { &mut *ptr.0.as_ptr() });
    cpu.instrument.hooks = Some(ptr);
    cpu.instrument.memory = memory;
    Some(result)
}

impl X86Cpu {
    /// The linear address of `ip` in the current code segment (see the module's notes).
    #[inline]
    pub(crate) fn linear_of(&self, ip: u64) -> u64 {
        let base = self.state.segments[seg::CS].base;
        match self.state.mode() {
            Mode::Long64 => ip,
            Mode::Real => base.wrapping_add(ip & 0xffff) & 0xf_ffff,
            _ => base.wrapping_add(ip) & 0xffff_ffff,
        }
    }

    /// The linear address of the current instruction: PANDA's pc.
    #[inline]
    pub fn linear_pc(&self) -> u64 {
        self.linear_of(self.state.rip)
    }

    /// Moves execution to linear address `pc` in the current code segment.
    pub fn set_linear_pc(&mut self, pc: u64) {
        let base = self.state.segments[seg::CS].base;
        self.state.rip = match self.state.mode() {
            Mode::Long64 => pc,
            Mode::Real => pc.wrapping_sub(base) & 0xffff,
            _ => pc.wrapping_sub(base) & 0xffff_ffff,
        };
    }
}

/// The CPU seen through the architecture-neutral [`GuestCpu`] trait, as callbacks get it.
/// (`X86Cpu` itself implements [`GuestCpu`] the same way; this view adds what the firing
/// protocol needs.)
#[derive(Debug)]
pub struct X86View<'a> {
    cpu: &'a mut X86Cpu,
    /// Data accesses through this view are implicit supervisor accesses (descriptor tables,
    /// the TSS, delivery stacks).
    supervisor: bool,
}

impl<'a> X86View<'a> {
    /// The view of `cpu`.
    pub fn new(cpu: &'a mut X86Cpu) -> X86View<'a> {
        X86View {
            cpu,
            supervisor: false,
        }
    }
}

impl GuestCpu for X86View<'_> {
    fn architecture(&self) -> &'static str {
        GuestCpu::architecture(&*self.cpu)
    }
    fn abi(&self) -> &'static dyn pandare_core::abi::GuestAbi {
        self.cpu.abi()
    }
    fn pc(&self) -> u64 {
        GuestCpu::pc(&*self.cpu)
    }
    fn set_pc(&mut self, pc: u64) {
        GuestCpu::set_pc(&mut *self.cpu, pc);
    }
    fn register(&self, name: &str) -> Result<u64, InstrumentError> {
        self.cpu.register(name)
    }
    fn set_register(&mut self, name: &str, value: u64) -> Result<(), InstrumentError> {
        self.cpu.set_register(name, value)
    }
    fn read_memory(&mut self, vaddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        self.cpu.read_memory(vaddr, buffer)
    }
    fn write_memory(&mut self, vaddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        self.cpu.write_memory(vaddr, data)
    }
    fn read_physical(&mut self, paddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        self.cpu.read_physical(paddr, buffer)
    }
    fn write_physical(&mut self, paddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        self.cpu.write_physical(paddr, data)
    }
    fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64> {
        X86Cpu::virt_to_phys(self.cpu, vaddr)
    }
    fn asid(&self) -> u64 {
        self.cpu.state.cr3
    }
    fn in_kernel_mode(&self) -> bool {
        self.cpu.state.cpl == 0
    }
    fn instruction_count(&self) -> u64 {
        self.cpu.icount
    }
    fn request_stop(&mut self) {
        self.cpu.stop_requested = true;
    }
}

impl CpuView for X86View<'_> {
    #[inline]
    fn take_stop(&mut self) -> bool {
        std::mem::take(&mut self.cpu.stop_requested)
    }

    #[inline]
    fn code_modified(&self) -> bool {
        // Stores to code drop the blocks of that page at once; the flag says the block
        // being run (or about to run) may be one of them.
        self.cpu.code_written
    }
}

/// Why an access through the memory protocol did not complete as a plain RAM access.
#[derive(Debug)]
pub enum MemStop {
    /// It faulted.
    Fault(Fault),
    /// A device answered (the value read, or written).
    Device(u64),
    /// Nothing is at that physical address.
    Unassigned,
}

impl X86View<'_> {
    fn access(write: bool) -> Access {
        if write {
            Access::Write
        } else {
            Access::Read
        }
    }

    /// The physical address of a single-page access outside RAM, if it is one.
    fn outside_ram(&mut self, vaddr: u64, size: u64, write: bool) -> Result<Option<u64>, Fault> {
        if (vaddr & 0xfff) + size > 0x1000 {
            return Ok(None);
        }
        let paddr = self
            .cpu
            .translate(vaddr, Self::access(write), self.supervisor)?;
        Ok((!self.cpu.ram.contains(paddr, size)).then_some(paddr))
    }
}

impl DataAccess for X86View<'_> {
    type Stop = MemStop;

    /// Always `None`: [`DataAccess::translate`] is the CPU's own translation, which looks in
    /// the TLB first and walks the page tables on a miss, exactly as the uninstrumented
    /// access does (same accessed/dirty bits, same faults, same TLB contents).
    fn tlb_physical(&self, _vaddr: u64, _size: u64, _write: bool) -> Option<u64> {
        None
    }

    fn translate(&mut self, vaddr: u64, write: bool) -> Result<u64, MemStop> {
        self.cpu
            .translate(vaddr, Self::access(write), self.supervisor)
            .map_err(MemStop::Fault)
    }

    fn load(&mut self, _hit: Option<u64>, vaddr: u64, size: u64) -> Result<u64, MemStop> {
        if let Some(paddr) = self
            .outside_ram(vaddr, size, false)
            .map_err(MemStop::Fault)?
        {
            return Err(match self.cpu.mmio_read(paddr, size as u8) {
                Some(value) => MemStop::Device(value),
                None => MemStop::Unassigned,
            });
        }
        let mut bytes = [0u8; 8];
        self.cpu
            .read_linear_bytes(vaddr, &mut bytes[..size as usize], self.supervisor)
            .map_err(MemStop::Fault)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn store(
        &mut self,
        _hit: Option<u64>,
        vaddr: u64,
        size: u64,
        value: u64,
    ) -> Result<(), MemStop> {
        if let Some(paddr) = self
            .outside_ram(vaddr, size, true)
            .map_err(MemStop::Fault)?
        {
            return if self.cpu.mmio_write(paddr, size as u8, value) {
                Ok(())
            } else {
                Err(MemStop::Unassigned)
            };
        }
        let bytes = value.to_le_bytes();
        self.cpu
            .write_linear_bytes(vaddr, &bytes[..size as usize], self.supervisor)
            .map_err(MemStop::Fault)
    }

    fn is_ram(&self, paddr: u64, size: u64) -> bool {
        self.cpu.ram.contains(paddr, size)
    }

    fn peek(&self, paddr: u64, size: u64) -> u64 {
        let mut bytes = [0u8; 8];
        if self.cpu.ram.read_bytes(paddr, &mut bytes[..size as usize]) {
            u64::from_le_bytes(bytes)
        } else {
            0
        }
    }

    fn device_value(stop: &mut MemStop) -> Option<&mut u64> {
        match stop {
            MemStop::Device(value) => Some(value),
            _ => None,
        }
    }

    fn device_answer(value: u64) -> MemStop {
        MemStop::Device(value)
    }

    fn is_access_fault(stop: &MemStop, _write: bool) -> bool {
        matches!(stop, MemStop::Unassigned)
    }

    fn is_trap(stop: &MemStop) -> bool {
        matches!(stop, MemStop::Fault(_))
    }
}

/// A read at a linear address through the memory protocol (memory callbacks enabled): one
/// access of up to 8 bytes per callback, in order (a 16-byte SSE access is two), a
/// page-crossing access as one (its physical address is its first byte's). Called from the
/// cold branch of [`X86Cpu::read_linear_bytes`].
#[cold]
#[inline(never)]
pub(crate) fn read_hooked(
    cpu: &mut X86Cpu,
    linear: u64,
    out: &mut [u8],
    supervisor: bool,
) -> Result<(), Fault> {
    let pc = cpu.instrument.pc;
    with_hooks(cpu, |cpu, hooks| {
        let mut view = X86View { cpu, supervisor };
        let mut offset = 0usize;
        for chunk in out.chunks_mut(8) {
            let vaddr = linear.wrapping_add(offset as u64);
            let size = chunk.len() as u64;
            let value = match hooks.load(&mut view, pc, vaddr, size) {
                Ok(value) | Err(MemStop::Device(value)) => value,
                // Nothing there and no callback answered: a PC's bus reads all ones.
                Err(MemStop::Unassigned) => u64::MAX,
                Err(MemStop::Fault(fault)) => return Err(fault),
            };
            chunk.copy_from_slice(&value.to_le_bytes()[..chunk.len()]);
            offset += chunk.len();
        }
        Ok(())
    })
    .unwrap_or_else(|| cpu.read_linear_bytes(linear, out, supervisor))
}

/// A write at a linear address through the memory protocol; see [`read_hooked`]. Each
/// chunk's pages are checked before it is written, so a fault leaves earlier chunks
/// written, as the plain path's per-page order does for accesses it splits.
#[cold]
#[inline(never)]
pub(crate) fn write_hooked(
    cpu: &mut X86Cpu,
    linear: u64,
    data: &[u8],
    supervisor: bool,
) -> Result<(), Fault> {
    let pc = cpu.instrument.pc;
    with_hooks(cpu, |cpu, hooks| {
        let mut view = X86View { cpu, supervisor };
        let mut offset = 0usize;
        for chunk in data.chunks(8) {
            let vaddr = linear.wrapping_add(offset as u64);
            let mut bytes = [0u8; 8];
            bytes[..chunk.len()].copy_from_slice(chunk);
            match hooks.store(
                &mut view,
                pc,
                vaddr,
                chunk.len() as u64,
                u64::from_le_bytes(bytes),
            ) {
                // A write to nothing that no callback accepted is dropped, as on a PC.
                Ok(()) | Err(MemStop::Device(_)) | Err(MemStop::Unassigned) => {}
                Err(MemStop::Fault(fault)) => return Err(fault),
            }
            offset += chunk.len();
        }
        Ok(())
    })
    .unwrap_or_else(|| cpu.write_linear_bytes(linear, data, supervisor))
}

/// A CR3 write is about to change CR3 to `new`: `asid_changed` (when enabled, in the
/// instrumented loop), whose callbacks see the old CR3 and the pc of the instruction that
/// writes it. True when a callback refused the change: CR3 keeps its value and the TLB is
/// not flushed.
#[inline]
pub(crate) fn cr3_write_refused(cpu: &mut X86Cpu, new: u64) -> bool {
    cpu.instrument.hooks.is_some() && cpu.state.cr3 != new && asid_changing(cpu, new)
}

#[cold]
#[inline(never)]
fn asid_changing(cpu: &mut X86Cpu, new: u64) -> bool {
    with_hooks(cpu, |cpu, hooks| {
        if !hooks.has(CallbackKind::AsidChanged) {
            return false;
        }
        let old = cpu.state.cr3;
        let after = std::mem::replace(&mut cpu.state.rip, cpu.instrument.rip);
        let refused = hooks.asid_changed(&mut X86View::new(cpu), old, new);
        cpu.state.rip = after;
        refused
    })
    .unwrap_or(false)
}
