//! The process's address space: which pages are mapped with which permissions, the
//! program break and where anonymous mappings go. The CPU ([`UserCpu`]) keeps its page
//! tables in step with every change made here.

use std::collections::BTreeMap;

use crate::arch::{Prot, UserCpu, PAGE_SIZE};

/// Bytes reserved for the main thread's stack below the architecture's stack top.
pub const STACK_BYTES: u64 = 8 << 20;
/// Gap between the stack's reserve and the highest anonymous mapping (Linux keeps at least
/// 128 MiB for the stack to grow into).
const MMAP_GAP: u64 = 128 << 20;

/// Rounds down to a page.
pub fn page_floor(address: u64) -> u64 {
    address & !(PAGE_SIZE - 1)
}

/// Rounds up to a page (saturating at the top of the address space).
pub fn page_ceil(address: u64) -> u64 {
    address.saturating_add(PAGE_SIZE - 1) & !(PAGE_SIZE - 1)
}

/// The address space.
#[derive(Debug, Default)]
pub struct Memory {
    /// Mapped pages (by address) and their permissions.
    pages: BTreeMap<u64, Prot>,
    /// Start of the heap (end of the program's highest segment, page-aligned).
    pub brk_start: u64,
    /// Current program break.
    pub brk: u64,
    /// Anonymous mappings are placed top-down below this.
    pub mmap_top: u64,
    /// Lowest address of the stack's reserve.
    pub stack_bottom: u64,
}

impl Memory {
    /// An empty address space under a stack ending at `stack_top`.
    pub fn new(stack_top: u64) -> Memory {
        let stack_bottom = stack_top - STACK_BYTES;
        Memory {
            pages: BTreeMap::new(),
            brk_start: 0,
            brk: 0,
            mmap_top: stack_bottom - MMAP_GAP,
            stack_bottom,
        }
    }

    /// The permissions of the page holding `address`, if it is mapped.
    pub fn prot(&self, address: u64) -> Option<Prot> {
        self.pages.get(&page_floor(address)).copied()
    }

    /// Number of mapped pages.
    pub fn mapped_pages(&self) -> usize {
        self.pages.len()
    }

    /// Whether every byte of `[address, address + len)` is mapped readable (or writable
    /// when `write`): what the kernel's user copies check.
    pub fn accessible(&self, address: u64, len: u64, write: bool) -> bool {
        if len == 0 {
            return true;
        }
        let Some(last) = address.checked_add(len - 1) else {
            return false;
        };
        let mut page = page_floor(address);
        loop {
            match self.pages.get(&page) {
                Some(prot) if if write { prot.write() } else { prot.read() } => {}
                _ => return false,
            }
            if page >= page_floor(last) {
                return true;
            }
            page += PAGE_SIZE;
        }
    }

    /// Whether any page of the range is mapped.
    pub fn any_mapped(&self, start: u64, len: u64) -> bool {
        self.pages
            .range(start..start.saturating_add(len))
            .next()
            .is_some()
    }

    /// How many pages of `[start, start + len)` are mapped (`None` for a range past the
    /// end of the address space).
    pub fn range_pages(&self, start: u64, len: u64) -> Option<u64> {
        let end = start.checked_add(len)?;
        Some(self.pages.range(start..end).count() as u64)
    }

    /// Maps `[start, start + len)` (page-aligned) with fresh zeroed pages, replacing what
    /// was there. On running out of frames, the pages mapped so far are unmapped again.
    pub fn map<C: UserCpu>(
        &mut self,
        cpu: &mut C,
        start: u64,
        len: u64,
        prot: Prot,
    ) -> Result<(), crate::arch::OutOfMemory> {
        self.unmap(cpu, start, len);
        let mut page = start;
        while page < start + len {
            if let Err(error) = cpu.map_page(page, prot) {
                self.unmap(cpu, start, page - start);
                cpu.flush_mappings();
                return Err(error);
            }
            self.pages.insert(page, prot);
            page += PAGE_SIZE;
        }
        cpu.flush_mappings();
        Ok(())
    }

    /// Unmaps every mapped page of `[start, start + len)`.
    pub fn unmap<C: UserCpu>(&mut self, cpu: &mut C, start: u64, len: u64) {
        let pages: Vec<u64> = self
            .pages
            .range(start..start.saturating_add(len))
            .map(|(&page, _)| page)
            .collect();
        if pages.is_empty() {
            return;
        }
        for page in pages {
            cpu.unmap_page(page);
            self.pages.remove(&page);
        }
        cpu.flush_mappings();
    }

    /// Changes the permissions of `[start, start + len)`; false (and nothing changed) when
    /// part of the range is not mapped (`mprotect`'s ENOMEM).
    pub fn protect<C: UserCpu>(&mut self, cpu: &mut C, start: u64, len: u64, prot: Prot) -> bool {
        let count = self.pages.range(start..start.saturating_add(len)).count() as u64;
        if count != len / PAGE_SIZE {
            return false;
        }
        let pages: Vec<u64> = self
            .pages
            .range(start..start + len)
            .map(|(&page, _)| page)
            .collect();
        for page in pages {
            cpu.protect_page(page, prot);
            self.pages.insert(page, prot);
        }
        cpu.flush_mappings();
        true
    }

    /// The highest free range of `len` bytes below [`Memory::mmap_top`] and above the
    /// heap, top-down as Linux places anonymous mappings.
    pub fn find_free(&self, len: u64) -> Option<u64> {
        let floor = page_ceil(self.brk.max(self.brk_start)) + PAGE_SIZE;
        let mut end = self.mmap_top;
        for (&page, _) in self.pages.range(..self.mmap_top).rev() {
            let free_start = page + PAGE_SIZE;
            if end >= free_start && end - free_start >= len {
                break;
            }
            end = end.min(page);
        }
        let start = end.checked_sub(len)?;
        (start >= floor).then_some(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding() {
        assert_eq!(page_floor(0x1fff), 0x1000);
        assert_eq!(page_ceil(0x1001), 0x2000);
        assert_eq!(page_ceil(0x1000), 0x1000);
        assert_eq!(page_ceil(u64::MAX), !(PAGE_SIZE - 1));
    }
}
