//! The RISC-V side of PANDA's callbacks: the [`GuestCpu`] view handed to callbacks (with
//! what the arch-neutral firing protocol in `pandare_core::execution` needs of it: stop
//! requests, modified code, the TLB and the slow-path loads and stores), and the hypercall
//! encoding. What fires when is decided in `pandare_core::execution`; `execute.rs` calls it
//! at its firing points, and `docs/callbacks.md` lists them all.

use pandare_core::execution::memory::DataAccess;
use pandare_core::execution::{CpuView, Hooks};
use pandare_core::instrument::{GuestCpu, InstrumentError};

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

impl CpuView for RiscvCpu<'_> {
    #[inline]
    fn take_stop(&mut self) -> bool {
        std::mem::take(&mut self.stop)
    }

    #[inline]
    fn code_modified(&self) -> bool {
        !self.hart.modified_code_pages.is_empty()
    }
}

fn access_of(write: bool) -> Access {
    if write {
        Access::Write
    } else {
        Access::Read
    }
}

impl DataAccess for RiscvCpu<'_> {
    type Stop = MemStop;

    fn tlb_physical(&self, vaddr: u64, size: u64, write: bool) -> Option<u64> {
        tlb_physical(self.hart, self.bus, vaddr, size, access_of(write))
    }

    fn translate(&mut self, vaddr: u64, write: bool) -> Result<u64, MemStop> {
        self.hart
            .translate(self.bus, vaddr, access_of(write))
            .map_err(MemStop::Trap)
    }

    fn load(&mut self, hit: Option<u64>, vaddr: u64, size: u64) -> Result<u64, MemStop> {
        match hit {
            Some(paddr) => Ok(self.bus.read_ram(paddr, size)),
            None => self.hart.load_slow(self.bus, vaddr, size),
        }
    }

    fn store(
        &mut self,
        hit: Option<u64>,
        vaddr: u64,
        size: u64,
        value: u64,
    ) -> Result<(), MemStop> {
        // A write-TLB hit is a RAM page without translated code, as on the fast path; but a
        // callback may have made it code since (then the slow path sees the mark).
        match hit {
            Some(paddr) if !self.bus.is_code_page(paddr & !(PAGE_SIZE - 1)) => {
                self.bus.write_ram(paddr, size, value);
                Ok(())
            }
            _ => self.hart.store_slow(self.bus, vaddr, size, value),
        }
    }

    fn is_ram(&self, paddr: u64, size: u64) -> bool {
        self.bus.ram.contains(paddr, size)
    }

    fn peek(&self, paddr: u64, size: u64) -> u64 {
        if self.bus.ram.contains(paddr, size) {
            self.bus.read_ram(paddr, size)
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

    fn is_access_fault(stop: &MemStop, write: bool) -> bool {
        let cause = if write {
            Trap::STORE_ACCESS
        } else {
            Trap::LOAD_ACCESS
        };
        matches!(stop, MemStop::Trap(trap) if trap.cause == cause)
    }

    fn is_trap(stop: &MemStop) -> bool {
        matches!(stop, MemStop::Trap(_))
    }
}

/// Takes an exception through `before_handle_exception`: the trap the callbacks leave,
/// if any, where they leave it.
pub(crate) fn take_exception(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    trap: Trap,
    pc: u64,
) {
    let decision = hooks.exception(&mut RiscvCpu::new(hart, bus), trap.cause, pc);
    if let Some((cause, epc)) = decision {
        hart.take_trap(Trap::new(cause, trap.tval), epc);
    }
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
