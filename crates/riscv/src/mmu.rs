//! Address translation (Sv39, Sv48), the software TLB, and the slow paths of loads, stores
//! and fetches.
//!
//! The TLB is direct-mapped, one array per access kind, and one set per (privilege, SUM)
//! combination, so switching privilege or toggling `sstatus.SUM` costs nothing. A read or
//! write entry holds `host address - guest virtual address` so a hit is one add; a fetch
//! entry holds `physical - virtual`, because blocks are cached by physical address.
//! Pages that hold translated code never get write entries: the first store to such a page
//! takes the slow path, which reports the page so its blocks are invalidated.
//!
//! Page walks set the accessed and dirty bits in hardware (the privileged spec allows
//! this); a PTE with reserved bits 63:54 set raises a page fault (no Svnapot/Svpbmt).

use crate::hart::{mstatus, Hart, Privilege, Trap};
use crate::virt::Bus;

pub(crate) const PAGE_SIZE: u64 = 4096;
const ENTRIES: usize = 256;
/// A tag no page-aligned address matches.
const INVALID: u64 = 1;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Entry {
    pub tag: u64,
    pub addend: u64,
}

const EMPTY: Entry = Entry {
    tag: INVALID,
    addend: 0,
};

/// One TLB set: read, write and fetch arrays.
#[derive(Debug)]
pub(crate) struct Tlb {
    pub read: [Entry; ENTRIES],
    pub write: [Entry; ENTRIES],
    pub fetch: [Entry; ENTRIES],
}

impl Tlb {
    pub fn new() -> Tlb {
        Tlb {
            read: [EMPTY; ENTRIES],
            write: [EMPTY; ENTRIES],
            fetch: [EMPTY; ENTRIES],
        }
    }

    pub fn flush(&mut self) {
        self.read = [EMPTY; ENTRIES];
        self.write = [EMPTY; ENTRIES];
        self.fetch = [EMPTY; ENTRIES];
    }

    pub fn flush_page(&mut self, vaddr: u64) {
        let index = index(vaddr);
        let page = vaddr & !(PAGE_SIZE - 1);
        for array in [&mut self.read, &mut self.write, &mut self.fetch] {
            if array[index].tag == page {
                array[index] = EMPTY;
            }
        }
    }
}

/// Whether a `size`-byte access at `address` stays inside one page.
#[inline(always)]
pub(crate) fn fits_in_page(address: u64, size: u64) -> bool {
    (address & (PAGE_SIZE - 1)) + size <= PAGE_SIZE
}

#[inline(always)]
pub(crate) fn index(vaddr: u64) -> usize {
    (vaddr >> 12) as usize & (ENTRIES - 1)
}

/// The kind of access being translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    Fetch,
    Read,
    Write,
}

impl Access {
    fn page_fault(self) -> u64 {
        match self {
            Access::Fetch => Trap::INSTRUCTION_PAGE_FAULT,
            Access::Read => Trap::LOAD_PAGE_FAULT,
            Access::Write => Trap::STORE_PAGE_FAULT,
        }
    }

    fn access_fault(self) -> u64 {
        match self {
            Access::Fetch => Trap::INSTRUCTION_ACCESS,
            Access::Read => Trap::LOAD_ACCESS,
            Access::Write => Trap::STORE_ACCESS,
        }
    }
}

/// Why a memory access did not simply complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MemStop {
    /// The access raised this exception; the instruction does not retire.
    Trap(Trap),
    /// A device was accessed (the value for loads): the instruction retires and the block
    /// ends so interrupt changes take effect exactly after it.
    Device(u64),
    /// A store hit a page holding translated code: the instruction retires and the block
    /// ends so stale translations are dropped before anything else runs.
    CodeModified,
}

const PTE_V: u64 = 1;
const PTE_R: u64 = 1 << 1;
const PTE_W: u64 = 1 << 2;
const PTE_X: u64 = 1 << 3;
const PTE_U: u64 = 1 << 4;
const PTE_A: u64 = 1 << 6;
const PTE_D: u64 = 1 << 7;
const PTE_RESERVED: u64 = 0x3ff << 54;

impl Hart {
    fn privilege_for(&self, access: Access) -> Privilege {
        match access {
            Access::Fetch => self.privilege,
            Access::Read | Access::Write => self.data_privilege(),
        }
    }

    /// Translates a virtual address for `access`, walking the page table when needed.
    pub(crate) fn translate(
        &mut self,
        bus: &mut Bus,
        vaddr: u64,
        access: Access,
    ) -> Result<u64, Trap> {
        let privilege = self.privilege_for(access);
        let mode = self.satp >> 60;
        if privilege == Privilege::Machine || mode == 0 {
            return Ok(vaddr);
        }
        let levels = if mode == 9 { 4 } else { 3 };
        let va_bits = 12 + 9 * levels;
        let fault = Trap::new(access.page_fault(), vaddr);
        // The address must be sign-extended from its top implemented bit.
        let top = (vaddr as i64) >> (va_bits - 1);
        if top != 0 && top != -1 {
            return Err(fault);
        }
        let mut table = (self.satp & ((1 << 44) - 1)) << 12;
        for level in (0..levels).rev() {
            let vpn = (vaddr >> (12 + 9 * level)) & 0x1ff;
            let pte_address = table + vpn * 8;
            let Some(pte) = bus.read_ram_u64(pte_address) else {
                return Err(Trap::new(access.access_fault(), vaddr));
            };
            if pte & PTE_V == 0 || pte & (PTE_R | PTE_W) == PTE_W || pte & PTE_RESERVED != 0 {
                return Err(fault);
            }
            if pte & (PTE_R | PTE_X) == 0 {
                table = ((pte >> 10) & ((1 << 44) - 1)) << 12;
                continue;
            }
            // A leaf: check permissions.
            let mxr = self.mstatus & mstatus::MXR != 0;
            let allowed = match access {
                Access::Fetch => pte & PTE_X != 0,
                Access::Read => pte & PTE_R != 0 || mxr && pte & PTE_X != 0,
                Access::Write => pte & PTE_W != 0,
            };
            if !allowed {
                return Err(fault);
            }
            let user_page = pte & PTE_U != 0;
            match privilege {
                Privilege::User if !user_page => return Err(fault),
                Privilege::Supervisor
                    if user_page
                        && (access == Access::Fetch || self.mstatus & mstatus::SUM == 0) =>
                {
                    return Err(fault);
                }
                _ => {}
            }
            let ppn = (pte >> 10) & ((1 << 44) - 1);
            let low_ppn_mask = (1u64 << (9 * level)) - 1;
            if ppn & low_ppn_mask != 0 {
                // A misaligned superpage.
                return Err(fault);
            }
            let mut updated = pte | PTE_A;
            if access == Access::Write {
                updated |= PTE_D;
            }
            if updated != pte && !bus.write_ram_u64(pte_address, updated) {
                return Err(Trap::new(access.access_fault(), vaddr));
            }
            let offset_mask = (1u64 << (12 + 9 * level)) - 1;
            return Ok((ppn << 12) & !offset_mask | vaddr & offset_mask);
        }
        Err(fault)
    }

    /// Translates the pc for fetching, filling the fetch TLB. Only RAM is executable.
    #[inline]
    pub(crate) fn fetch_physical(&mut self, bus: &mut Bus, vaddr: u64) -> Result<u64, Trap> {
        let entry = self.tlb[self.fetch_set].fetch[index(vaddr)];
        if entry.tag == vaddr & !(PAGE_SIZE - 1) {
            return Ok(vaddr.wrapping_add(entry.addend));
        }
        self.fetch_physical_slow(bus, vaddr)
    }

    #[cold]
    fn fetch_physical_slow(&mut self, bus: &mut Bus, vaddr: u64) -> Result<u64, Trap> {
        let paddr = self.translate(bus, vaddr, Access::Fetch)?;
        if !bus.ram.contains(paddr & !(PAGE_SIZE - 1), PAGE_SIZE) {
            return Err(Trap::new(Trap::INSTRUCTION_ACCESS, vaddr));
        }
        let set = self.fetch_set;
        self.tlb[set].fetch[index(vaddr)] = Entry {
            tag: vaddr & !(PAGE_SIZE - 1),
            addend: paddr.wrapping_sub(vaddr) & !(PAGE_SIZE - 1),
        };
        Ok(paddr)
    }

    /// The load slow path: TLB miss, page-crossing access or device.
    #[cold]
    #[inline(never)]
    pub(crate) fn load_slow(
        &mut self,
        bus: &mut Bus,
        vaddr: u64,
        size: u64,
    ) -> Result<u64, MemStop> {
        if (vaddr & (PAGE_SIZE - 1)) + size > PAGE_SIZE {
            let mut value = 0;
            for byte in 0..size {
                let part = self.load_slow(bus, vaddr.wrapping_add(byte), 1)?;
                value |= part << (8 * byte);
            }
            return Ok(value);
        }
        let paddr = self
            .translate(bus, vaddr, Access::Read)
            .map_err(MemStop::Trap)?;
        if bus.ram.contains(paddr, size) {
            let page = paddr & !(PAGE_SIZE - 1);
            let host = bus.ram_host_address(page);
            let set = self.data_set;
            self.tlb[set].read[index(vaddr)] = Entry {
                tag: vaddr & !(PAGE_SIZE - 1),
                addend: host.wrapping_sub(vaddr & !(PAGE_SIZE - 1)),
            };
            return Ok(bus.read_ram(paddr, size));
        }
        match bus.mmio_read(paddr, size as u8, self.time()) {
            Some(value) => Err(MemStop::Device(value)),
            None => Err(MemStop::Trap(Trap::new(Trap::LOAD_ACCESS, vaddr))),
        }
    }

    /// The store slow path: TLB miss, page-crossing access, code page or device.
    #[cold]
    #[inline(never)]
    pub(crate) fn store_slow(
        &mut self,
        bus: &mut Bus,
        vaddr: u64,
        size: u64,
        value: u64,
    ) -> Result<(), MemStop> {
        if (vaddr & (PAGE_SIZE - 1)) + size > PAGE_SIZE {
            // Translate both pages before writing anything, so a page fault leaves memory
            // unchanged. (A part outside RAM faults only after the bytes before it were
            // written, which the spec allows for misaligned stores.)
            let split = PAGE_SIZE - (vaddr & (PAGE_SIZE - 1));
            self.translate(bus, vaddr, Access::Write)
                .map_err(MemStop::Trap)?;
            self.translate(bus, vaddr.wrapping_add(split), Access::Write)
                .map_err(MemStop::Trap)?;
            let mut stop = Ok(());
            for byte in 0..size {
                let result = self.store_slow(bus, vaddr.wrapping_add(byte), 1, value >> (8 * byte));
                match result {
                    Ok(()) => {}
                    Err(MemStop::Trap(trap)) => return Err(MemStop::Trap(trap)),
                    Err(other) => stop = Err(other),
                }
            }
            return stop;
        }
        let paddr = self
            .translate(bus, vaddr, Access::Write)
            .map_err(MemStop::Trap)?;
        if bus.ram.contains(paddr, size) {
            let page = paddr & !(PAGE_SIZE - 1);
            let touched_code = bus.take_code_page(page);
            if touched_code {
                self.modified_code_pages.push(page);
            }
            bus.write_ram(paddr, size, value);
            let host = bus.ram_host_address(page);
            let set = self.data_set;
            self.tlb[set].write[index(vaddr)] = Entry {
                tag: vaddr & !(PAGE_SIZE - 1),
                addend: host.wrapping_sub(vaddr & !(PAGE_SIZE - 1)),
            };
            return if touched_code {
                Err(MemStop::CodeModified)
            } else {
                Ok(())
            };
        }
        if bus.mmio_write(paddr, size as u8, value, self.time()) {
            Err(MemStop::Device(0))
        } else {
            Err(MemStop::Trap(Trap::new(Trap::STORE_ACCESS, vaddr)))
        }
    }

    /// Translates an aligned atomic access and returns its physical RAM address.
    /// Misaligned atomics raise address-misaligned; atomics on devices raise access faults.
    pub(crate) fn atomic_address(
        &mut self,
        bus: &mut Bus,
        vaddr: u64,
        size: u64,
        access: Access,
    ) -> Result<u64, MemStop> {
        if vaddr & (size - 1) != 0 {
            let cause = if access == Access::Read {
                Trap::LOAD_MISALIGNED
            } else {
                Trap::STORE_MISALIGNED
            };
            return Err(MemStop::Trap(Trap::new(cause, vaddr)));
        }
        let paddr = self.translate(bus, vaddr, access).map_err(MemStop::Trap)?;
        if !bus.ram.contains(paddr, size) {
            return Err(MemStop::Trap(Trap::new(access.access_fault(), vaddr)));
        }
        if access == Access::Write {
            let page = paddr & !(PAGE_SIZE - 1);
            if bus.take_code_page(page) {
                self.modified_code_pages.push(page);
            }
        }
        Ok(paddr)
    }

    /// Drops every write-TLB entry that points into the physical page `page` (called when
    /// the page starts holding translated code).
    pub(crate) fn forget_writable(&mut self, bus: &Bus, page: u64) {
        let host = bus.ram_host_address(page);
        for set in self.tlb.iter_mut() {
            for entry in set.write.iter_mut() {
                if entry.tag != INVALID && entry.tag.wrapping_add(entry.addend) == host {
                    *entry = EMPTY;
                }
            }
        }
    }

    /// `sfence.vma`: flush one page (rs1 != x0) or everything.
    pub(crate) fn sfence_vma(&mut self, vaddr: Option<u64>) {
        match vaddr {
            Some(vaddr) => {
                for set in self.tlb.iter_mut() {
                    set.flush_page(vaddr);
                }
            }
            None => self.flush_tlb(),
        }
    }
}
