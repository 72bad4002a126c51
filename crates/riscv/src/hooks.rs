//! The RISC-V side of PANDA's callbacks: the [`GuestCpu`] view handed to callbacks, the
//! hypercall encoding, and the instrumented memory accesses. The firing points themselves
//! are in `execute.rs` (blocks, instructions, traps, `satp`) and `virt/mod.rs` (machine
//! level); `docs/callbacks.md` lists them all.

use pandare_core::instrument::{
    BlockInfo, Callback, CallbackKind, GuestCpu, InstrumentError, Instrumentation,
};

use crate::hart::{Hart, Privilege, Trap};
use crate::mmu::{self, Access, MemStop, PAGE_SIZE};
use crate::virt::Bus;

/// The guest hypercall: `slti x0, x0, 0x7a5`, a HINT the ISA designates for custom use
/// (it writes `x0`, so it does nothing on real hardware). Arguments and results travel in
/// registers of the callback's choosing (by convention `a0`–`a7`).
pub const HYPERCALL: u32 = 0x7a50_2013;

/// The hart and bus seen through the architecture-neutral [`GuestCpu`] trait.
pub(crate) struct RiscvCpu<'a> {
    pub hart: &'a mut Hart,
    pub bus: &'a mut Bus,
    pub stop: bool,
}

impl<'a> RiscvCpu<'a> {
    pub fn new(hart: &'a mut Hart, bus: &'a mut Bus) -> RiscvCpu<'a> {
        RiscvCpu {
            hart,
            bus,
            stop: false,
        }
    }

    /// A side-effect-free translation for debugging accesses: walks the current page
    /// table without setting accessed/dirty bits and without permission checks.
    fn debug_translate(&self, vaddr: u64) -> Option<u64> {
        debug_translate(self.hart, self.bus, vaddr)
    }

    fn physical_range(&self, paddr: u64, len: usize) -> Result<(), InstrumentError> {
        if self.bus.ram.contains(paddr, len as u64) {
            Ok(())
        } else {
            Err(InstrumentError::Unmapped { address: paddr })
        }
    }

    /// Splits a virtual range into physical pieces; `Unmapped` names the first bad byte.
    fn pieces(&self, vaddr: u64, len: usize) -> Result<Vec<(u64, usize, usize)>, InstrumentError> {
        let mut pieces = Vec::new();
        let mut done = 0usize;
        while done < len {
            let address = vaddr.wrapping_add(done as u64);
            let in_page = (PAGE_SIZE - (address & (PAGE_SIZE - 1))) as usize;
            let chunk = in_page.min(len - done);
            let paddr = self
                .debug_translate(address)
                .filter(|&paddr| self.bus.ram.contains(paddr, chunk as u64))
                .ok_or(InstrumentError::Unmapped { address })?;
            pieces.push((paddr, done, chunk));
            done += chunk;
        }
        Ok(pieces)
    }
}

/// Walks the page table like the MMU would for a data access, but without side effects.
pub(crate) fn debug_translate(hart: &Hart, bus: &Bus, vaddr: u64) -> Option<u64> {
    let mode = hart.satp >> 60;
    if hart.privilege == Privilege::Machine || mode == 0 {
        return Some(vaddr);
    }
    let levels: u64 = if mode == 9 { 4 } else { 3 };
    let va_bits = 12 + 9 * levels;
    let top = (vaddr as i64) >> (va_bits - 1);
    if top != 0 && top != -1 {
        return None;
    }
    let mut table = (hart.satp & ((1 << 44) - 1)) << 12;
    for level in (0..levels).rev() {
        let vpn = (vaddr >> (12 + 9 * level)) & 0x1ff;
        let pte = bus.read_ram_u64(table + vpn * 8)?;
        if pte & 1 == 0 {
            return None;
        }
        let ppn = (pte >> 10) & ((1 << 44) - 1);
        if pte & 0b1010 == 0 {
            table = ppn << 12;
            continue;
        }
        let offset_mask = (1u64 << (12 + 9 * level)) - 1;
        return Some((ppn << 12) & !offset_mask | vaddr & offset_mask);
    }
    None
}

impl GuestCpu for RiscvCpu<'_> {
    fn architecture(&self) -> &'static str {
        crate::virt::ARCHITECTURE
    }

    fn pc(&self) -> u64 {
        self.hart.pc
    }

    fn set_pc(&mut self, pc: u64) {
        self.hart.pc = pc;
    }

    fn abi(&self) -> &'static dyn pandare_core::abi::GuestAbi {
        &crate::abi::ABI
    }

    fn register(&self, name: &str) -> Result<u64, InstrumentError> {
        use crate::abi::Location;
        match crate::abi::locate(name) {
            Some(Location::General(index)) => Ok(self.hart.reg(index)),
            Some(Location::ProgramCounter) => Ok(self.hart.pc),
            Some(Location::Csr(number)) => {
                self.hart
                    .peek_csr(number)
                    .ok_or_else(|| InstrumentError::UnknownRegister {
                        architecture: crate::virt::ARCHITECTURE,
                        name: name.to_string(),
                    })
            }
            None => Err(InstrumentError::UnknownRegister {
                architecture: crate::virt::ARCHITECTURE,
                name: name.to_string(),
            }),
        }
    }

    fn set_register(&mut self, name: &str, value: u64) -> Result<(), InstrumentError> {
        use crate::abi::Location;
        match crate::abi::locate(name) {
            Some(Location::General(index)) => {
                self.hart.set_reg(index, value);
                Ok(())
            }
            Some(Location::ProgramCounter) => {
                self.hart.pc = value;
                Ok(())
            }
            Some(Location::Csr(_)) => Err(InstrumentError::ReadOnlyRegister {
                architecture: crate::virt::ARCHITECTURE,
                name: name.to_string(),
            }),
            None => Err(InstrumentError::UnknownRegister {
                architecture: crate::virt::ARCHITECTURE,
                name: name.to_string(),
            }),
        }
    }

    fn read_memory(&mut self, vaddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        for (paddr, start, len) in self.pieces(vaddr, buffer.len())? {
            self.bus
                .ram
                .read_bytes(paddr, &mut buffer[start..start + len]);
        }
        Ok(())
    }

    fn write_memory(&mut self, vaddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        for (paddr, start, len) in self.pieces(vaddr, data.len())? {
            self.write_physical(paddr, &data[start..start + len])?;
        }
        Ok(())
    }

    fn read_physical(&mut self, paddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        self.physical_range(paddr, buffer.len())?;
        self.bus.ram.read_bytes(paddr, buffer);
        Ok(())
    }

    fn write_physical(&mut self, paddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        self.physical_range(paddr, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        // Translated code on these pages is dropped before anything else runs.
        let first = paddr & !(PAGE_SIZE - 1);
        let last = (paddr + data.len() as u64 - 1) & !(PAGE_SIZE - 1);
        let mut page = first;
        while page <= last {
            if self.bus.take_code_page(page) {
                self.hart.modified_code_pages.push(page);
            }
            page += PAGE_SIZE;
        }
        self.bus.ram.write_bytes(paddr, data);
        Ok(())
    }

    fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64> {
        self.debug_translate(vaddr)
    }

    fn asid(&self) -> u64 {
        self.hart.satp
    }

    fn in_kernel_mode(&self) -> bool {
        self.hart.privilege != Privilege::User
    }

    fn instruction_count(&self) -> u64 {
        self.hart.clock.retired
    }

    fn request_stop(&mut self) {
        self.stop = true;
    }
}

/// Calls every enabled callback of one kind with a fresh view of the CPU:
/// `fire!(instr, hart, bus, Kind, |callback, cpu| expression)`.
macro_rules! fire {
    ($instr:expr, $hart:expr, $bus:expr, $kind:ident, |$cb:ident, $cpu:ident| $body:expr) => {{
        let instr: &mut pandare_core::instrument::Instrumentation = $instr;
        if instr.has(pandare_core::instrument::CallbackKind::$kind) {
            let mut view = $crate::hooks::RiscvCpu::new($hart, $bus);
            for callback in instr.enabled(pandare_core::instrument::CallbackKind::$kind) {
                if let pandare_core::instrument::Callback::$kind($cb) = callback {
                    let $cpu: &mut dyn pandare_core::instrument::GuestCpu = &mut view;
                    $body;
                }
            }
            if view.stop {
                instr.request_stop();
            }
        }
    }};
}
pub(crate) use fire;

/// Fires `before_handle_exception` and takes the exception it leaves, if any.
pub(crate) fn take_exception(
    hart: &mut Hart,
    bus: &mut Bus,
    instr: &mut Instrumentation,
    trap: Trap,
    pc: u64,
) {
    let original = trap.cause as i32;
    let mut index = original;
    fire!(instr, hart, bus, BeforeHandleException, |callback, cpu| {
        let answer = callback(cpu, original);
        if index == original && answer != original {
            index = answer;
        }
    });
    if index >= 0 {
        // The callbacks may have moved the pc; the trap is taken where the hart is now
        // only when they did not (then `pc` is the faulting instruction).
        let epc = if hart.pc == pc { pc } else { hart.pc };
        hart.take_trap(Trap::new(index as u64, trap.tval), epc);
    }
}

/// Fires `before_handle_interrupt`: the interrupt to take, or `None` when cancelled.
pub(crate) fn filter_interrupt(
    hart: &mut Hart,
    bus: &mut Bus,
    instr: &mut Instrumentation,
    cause: u64,
) -> Option<u64> {
    let original = cause as i32;
    let mut index = original;
    fire!(instr, hart, bus, BeforeHandleInterrupt, |callback, cpu| {
        let answer = callback(cpu, original);
        if index == original && answer != original {
            index = answer;
        }
    });
    (index >= 0).then_some(index as u64)
}

fn bytes_of(value: u64, size: u64) -> ([u8; 8], usize) {
    (value.to_le_bytes(), size as usize)
}

/// The physical address of a data access the way the executor would find it: from the
/// TLB when it holds the page (which may be stale, exactly as for an uninstrumented run),
/// else `None`.
pub(crate) fn tlb_physical(
    hart: &Hart,
    bus: &Bus,
    vaddr: u64,
    size: u64,
    access: Access,
) -> Option<u64> {
    let set = &hart.tlb[hart.data_set & 3];
    let entry = match access {
        Access::Write => set.write[mmu::index(vaddr)],
        _ => set.read[mmu::index(vaddr)],
    };
    let hit = entry.tag == vaddr & !(PAGE_SIZE - 1) && mmu::fits_in_page(vaddr, size);
    hit.then(|| {
        let host = vaddr.wrapping_add(entry.addend);
        host - bus.ram_host_address(crate::virt::RAM_BASE) + crate::virt::RAM_BASE
    })
}

/// A load with memory callbacks around it. It takes the same path as the uninstrumented
/// executor (TLB hit or slow path), so instrumentation never changes what the guest sees.
pub(crate) fn hooked_load(
    hart: &mut Hart,
    bus: &mut Bus,
    instr: &mut Instrumentation,
    pc: u64,
    vaddr: u64,
    size: u64,
) -> Result<u64, MemStop> {
    let n = size as usize;
    fire!(instr, hart, bus, VirtMemBeforeRead, |cb, cpu| cb(
        cpu, pc, vaddr, n
    ));
    let hit = tlb_physical(hart, bus, vaddr, size, Access::Read);
    let paddr = match hit {
        Some(paddr) => paddr,
        None => hart
            .translate(bus, vaddr, Access::Read)
            .map_err(MemStop::Trap)?,
    };
    fire!(instr, hart, bus, PhysMemBeforeRead, |cb, cpu| cb(
        cpu, pc, paddr, n
    ));
    let mut result = match hit {
        Some(paddr) => Ok(bus.read_ram(paddr, size)),
        None => hart.load_slow(bus, vaddr, size),
    };
    let in_ram = bus.ram.contains(paddr, size);
    match &mut result {
        Err(MemStop::Device(value)) => {
            fire!(instr, hart, bus, MmioAfterRead, |cb, cpu| cb(
                cpu, paddr, vaddr, n, value
            ));
        }
        Err(MemStop::Trap(trap)) if trap.cause == Trap::LOAD_ACCESS && !in_ram => {
            let mut answer = None;
            fire!(instr, hart, bus, UnassignedIoRead, |cb, cpu| {
                let mut value = 0;
                if answer.is_none() && cb(cpu, pc, paddr, n, &mut value) {
                    answer = Some(value);
                }
            });
            if let Some(value) = answer {
                result = Err(MemStop::Device(value));
            }
        }
        _ => {}
    }
    let value = match result {
        Ok(value) | Err(MemStop::Device(value)) => value,
        Err(_) => return result,
    };
    let (data, len) = bytes_of(value, size);
    fire!(instr, hart, bus, VirtMemAfterRead, |cb, cpu| cb(
        cpu,
        pc,
        vaddr,
        n,
        &data[..len]
    ));
    fire!(instr, hart, bus, PhysMemAfterRead, |cb, cpu| cb(
        cpu,
        pc,
        paddr,
        n,
        &data[..len]
    ));
    result
}

/// A store with memory callbacks around it.
pub(crate) fn hooked_store(
    hart: &mut Hart,
    bus: &mut Bus,
    instr: &mut Instrumentation,
    pc: u64,
    vaddr: u64,
    size: u64,
    value: u64,
) -> Result<(), MemStop> {
    let n = size as usize;
    let mut value = value;
    let (data, len) = bytes_of(value, size);
    fire!(instr, hart, bus, VirtMemBeforeWrite, |cb, cpu| cb(
        cpu,
        pc,
        vaddr,
        n,
        &data[..len]
    ));
    let hit = tlb_physical(hart, bus, vaddr, size, Access::Write);
    let paddr = match hit {
        Some(paddr) => paddr,
        None => hart
            .translate(bus, vaddr, Access::Write)
            .map_err(MemStop::Trap)?,
    };
    fire!(instr, hart, bus, PhysMemBeforeWrite, |cb, cpu| cb(
        cpu,
        pc,
        paddr,
        n,
        &data[..len]
    ));
    let in_ram = bus.ram.contains(paddr, size);
    if !in_ram {
        fire!(instr, hart, bus, MmioBeforeWrite, |cb, cpu| cb(
            cpu, paddr, vaddr, n, &mut value
        ));
    }
    // A write-TLB hit is a RAM page without translated code, as on the fast path; but a
    // callback may have made it code since (then the slow path sees the mark).
    let mut result = match hit {
        Some(paddr) if !bus.is_code_page(paddr & !(PAGE_SIZE - 1)) => {
            bus.write_ram(paddr, size, value);
            Ok(())
        }
        _ => hart.store_slow(bus, vaddr, size, value),
    };
    if let Err(MemStop::Trap(trap)) = result {
        if trap.cause == Trap::STORE_ACCESS && !in_ram {
            let mut handled = false;
            fire!(instr, hart, bus, UnassignedIoWrite, |cb, cpu| {
                handled |= cb(cpu, pc, paddr, n, value);
            });
            if handled {
                result = Ok(());
            }
        }
    }
    if let Err(MemStop::Trap(_)) = result {
        return result;
    }
    let (data, len) = bytes_of(value, size);
    fire!(instr, hart, bus, VirtMemAfterWrite, |cb, cpu| cb(
        cpu,
        pc,
        vaddr,
        n,
        &data[..len]
    ));
    fire!(instr, hart, bus, PhysMemAfterWrite, |cb, cpu| cb(
        cpu,
        pc,
        paddr,
        n,
        &data[..len]
    ));
    result
}

/// Fires a block-level callback kind that takes `(cpu, block)`.
#[inline]
pub(crate) fn fire_block(
    hart: &mut Hart,
    bus: &mut Bus,
    instr: &mut Instrumentation,
    kind: CallbackKind,
    info: &BlockInfo,
) {
    if instr.has(kind) {
        fire_block_callbacks(hart, bus, instr, kind, info);
    }
}

#[inline]
fn fire_block_callbacks(
    hart: &mut Hart,
    bus: &mut Bus,
    instr: &mut Instrumentation,
    kind: CallbackKind,
    info: &BlockInfo,
) {
    let mut view = RiscvCpu::new(hart, bus);
    for callback in instr.enabled(kind) {
        match callback {
            Callback::BeforeBlockExec(f)
            | Callback::StartBlockExec(f)
            | Callback::EndBlockExec(f)
            | Callback::AfterBlockTranslate(f)
            | Callback::CpuRestoreState(f) => f(&mut view, info),
            _ => {}
        }
    }
    if view.stop {
        instr.request_stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_is_slti_to_x0() {
        let op = crate::decode::decode(HYPERCALL);
        assert_eq!(op.kind, crate::decode::Kind::Slti);
        assert_eq!(op.rd, crate::decode::ZERO_SINK);
    }
}
