//! Paging: 4-level (long mode), PAE and 32-bit 2-level walks with accessed/dirty bits, NX
//! and global pages; the software TLB; page-fault error codes.

use pandare_core::memory::Ram;

use crate::state::{cr, msr, State};
use crate::Fault;

/// What an access is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A data read.
    Read,
    /// A data write.
    Write,
    /// An instruction fetch.
    Fetch,
}

/// Page-fault error-code bits.
pub mod pf {
    /// The page was present (a protection violation).
    pub const P: u32 = 1 << 0;
    /// The access was a write.
    pub const W: u32 = 1 << 1;
    /// The access was made at CPL 3.
    pub const U: u32 = 1 << 2;
    /// A reserved bit was set in a paging entry.
    pub const RSVD: u32 = 1 << 3;
    /// The access was an instruction fetch.
    pub const I: u32 = 1 << 4;
}

/// Physical-address width this CPU reports (CPUID 0x8000_0008).
pub const PHYS_BITS: u32 = 40;
const ADDR_MASK: u64 = ((1u64 << PHYS_BITS) - 1) & !0xfff;
const PTE_P: u64 = 1;
const PTE_RW: u64 = 1 << 1;
const PTE_US: u64 = 1 << 2;
const PTE_A: u64 = 1 << 5;
const PTE_D: u64 = 1 << 6;
const PTE_PS: u64 = 1 << 7;
const PTE_G: u64 = 1 << 8;
const PTE_NX: u64 = 1 << 63;

/// The result of a successful walk: where the page is and what it allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// Physical address of the byte asked for.
    pub physical: u64,
    /// Writable at every level.
    pub writable: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// Executable (no NX bit at any level).
    pub executable: bool,
    /// Global page.
    pub global: bool,
    /// The leaf's dirty bit is set (so writes need no further walk).
    pub dirty: bool,
}

fn read_entry(ram: &Ram, address: u64, wide: bool) -> u64 {
    if wide {
        let mut b = [0u8; 8];
        if ram.read_bytes(address, &mut b) {
            u64::from_le_bytes(b)
        } else {
            0
        }
    } else {
        let mut b = [0u8; 4];
        if ram.read_bytes(address, &mut b) {
            u32::from_le_bytes(b) as u64
        } else {
            0
        }
    }
}

fn write_entry(ram: &mut Ram, address: u64, value: u64, wide: bool) {
    if wide {
        ram.write_bytes(address, &value.to_le_bytes());
    } else {
        ram.write_bytes(address, &(value as u32).to_le_bytes());
    }
}

/// Walks the page tables `state` designates for `vaddr`, checking `access` at privilege
/// `user` (CPL 3, or an implicit supervisor access when false). Sets accessed bits along
/// the walk and the leaf's dirty bit on a write, only when the access is allowed.
/// `update` false makes a side-effect-free probe (debugger and introspection reads).
pub fn walk(
    state: &State,
    ram: &mut Ram,
    vaddr: u64,
    access: Access,
    user: bool,
    update: bool,
) -> Result<Translation, Fault> {
    let nxe = state.efer & msr::EFER_NXE != 0;
    let fault = |bits: u32| {
        let mut code = bits;
        if access == Access::Write {
            code |= pf::W;
        }
        if user {
            code |= pf::U;
        }
        if access == Access::Fetch && nxe {
            code |= pf::I;
        }
        Fault::page(vaddr, code)
    };
    // Entries visited, to set accessed bits once the access is known to be allowed.
    let mut visited: [(u64, u64); 4] = [(0, 0); 4];
    let mut depth = 0;
    let (leaf_entry, leaf_address, page_mask, wide) = if state.cr4 & cr::CR4_PAE != 0 {
        let rsvd_high = !((1u64 << PHYS_BITS) - 1) & !PTE_NX & !(0x7ff << 52);
        let nx_rsvd = if nxe { 0 } else { PTE_NX };
        let levels: &[u32] = if state.long_mode_active() {
            &[39, 30, 21, 12]
        } else {
            &[30, 21, 12]
        };
        let mut table = if state.long_mode_active() {
            state.cr3 & ADDR_MASK
        } else {
            state.cr3 & 0xffff_ffe0
        };
        let mut found = None;
        for (level, &shift) in levels.iter().enumerate() {
            let index_bits = if !state.long_mode_active() && level == 0 {
                3
            } else {
                0x1ff
            };
            let entry_address = if !state.long_mode_active() && level == 0 {
                table + ((vaddr >> shift) & index_bits) * 8
            } else {
                (table & ADDR_MASK) + ((vaddr >> shift) & index_bits) * 8
            };
            let entry = read_entry(ram, entry_address, true);
            if entry & PTE_P == 0 {
                return Err(fault(0));
            }
            let pdpte_legacy = !state.long_mode_active() && level == 0;
            let mut reserved = entry & (rsvd_high | nx_rsvd);
            if pdpte_legacy {
                // PAE PDPTEs: bits 1, 2, 5–8 and 63 are reserved too.
                reserved |= entry & (0x1e6 | PTE_NX);
            }
            let is_leaf = shift == 12 || (entry & PTE_PS != 0 && !pdpte_legacy);
            if entry & PTE_PS != 0 && (shift == 39 || shift == 30) && !pdpte_legacy {
                // No 1 GiB pages (pdpe1gb is not advertised); PS in a PML4E is reserved.
                reserved |= PTE_PS;
            }
            if is_leaf && shift == 21 {
                // 2 MiB page: bits 13–20 of the address field are reserved.
                reserved |= entry & 0x1f_e000;
            }
            if reserved != 0 {
                return Err(fault(pf::P | pf::RSVD));
            }
            if !pdpte_legacy {
                visited[depth] = (entry_address, entry);
                depth += 1;
            }
            if is_leaf {
                found = Some((entry, entry_address, (1u64 << shift) - 1));
                break;
            }
            table = entry & ADDR_MASK;
        }
        let (entry, address, page_mask) = found.expect("the last level is always a leaf");
        (entry, address, page_mask, true)
    } else {
        let pde_address = (state.cr3 & 0xffff_f000) + ((vaddr >> 22) & 0x3ff) * 4;
        let pde = read_entry(ram, pde_address, false);
        if pde & PTE_P == 0 {
            return Err(fault(0));
        }
        visited[0] = (pde_address, pde);
        depth = 1;
        if pde & PTE_PS != 0 && state.cr4 & cr::CR4_PSE != 0 {
            // 4 MiB page; PSE-36 is not advertised, so bits 13–21 are reserved.
            if pde & 0x003f_e000 != 0 {
                return Err(fault(pf::P | pf::RSVD));
            }
            (pde, pde_address, (1u64 << 22) - 1, false)
        } else {
            let pte_address = (pde & 0xffff_f000) + ((vaddr >> 12) & 0x3ff) * 4;
            let pte = read_entry(ram, pte_address, false);
            if pte & PTE_P == 0 {
                return Err(fault(0));
            }
            visited[1] = (pte_address, pte);
            depth = 2;
            (pte, pte_address, 0xfff, false)
        }
    };
    let mut writable = true;
    let mut user_ok = true;
    let mut executable = true;
    for &(_, entry) in &visited[..depth] {
        writable &= entry & PTE_RW != 0;
        user_ok &= entry & PTE_US != 0;
        if nxe && wide {
            executable &= entry & PTE_NX == 0;
        }
    }
    let allowed = match access {
        Access::Read => !user || user_ok,
        Access::Write => {
            if user {
                user_ok && writable
            } else {
                writable || state.cr0 & cr::CR0_WP == 0
            }
        }
        Access::Fetch => (!user || user_ok) && executable,
    };
    if !allowed {
        return Err(fault(pf::P));
    }
    let mut dirty = leaf_entry & PTE_D != 0;
    if update {
        for &(address, entry) in &visited[..depth] {
            let mut new = entry | PTE_A;
            if address == leaf_address && access == Access::Write {
                new |= PTE_D;
                dirty = true;
            }
            if new != entry {
                write_entry(ram, address, new, wide);
            }
        }
    }
    let frame = if wide {
        leaf_entry & ((1u64 << PHYS_BITS) - 1) & !page_mask
    } else if page_mask == 0xfff {
        leaf_entry & 0xffff_f000
    } else {
        leaf_entry & 0xffc0_0000
    };
    Ok(Translation {
        physical: frame | (vaddr & page_mask),
        writable,
        user: user_ok,
        executable,
        global: leaf_entry & PTE_G != 0 && state.cr4 & cr::CR4_PGE != 0,
        dirty,
    })
}

/// One TLB entry: a 4 KiB virtual page and what the walk found for it.
#[derive(Clone, Copy, Debug)]
struct Entry {
    /// Virtual page number, or `u64::MAX` when empty.
    page: u64,
    translation: Translation,
}

const TLB_SIZE: usize = 256;

/// A fast-path slot: the linear page (tagged with the privilege it was checked for) whose
/// reads, and writes, may go straight to RAM, and the physical address of that page.
#[derive(Clone, Copy, Debug)]
struct Fast {
    /// `page << 1 | user`, or `u64::MAX`.
    read_tag: u64,
    /// The same for writes (set only for dirty, writable pages in RAM holding no decoded
    /// code).
    write_tag: u64,
    /// Physical address of the page.
    physical: u64,
}

const NO_FAST: Fast = Fast {
    read_tag: u64::MAX,
    write_tag: u64::MAX,
    physical: 0,
};

/// The software TLB: direct-mapped, 256 entries, one 4 KiB page each (large pages fill one
/// entry per 4 KiB page used). Flushed whole on CR3 writes (global entries kept when
/// CR4.PGE is on), CR0.PG/WP and CR4 paging changes; INVLPG drops one page.
///
/// Beside it, the data fast path: per slot, a linear page already checked for reads (and
/// writes) at user or supervisor privilege whose frame is in RAM, so that a hit is a tag
/// compare and a RAM access. Every flush drops it whole (global pages too), and
/// [`Tlb::generation`] counts flushes so that caches keyed by linear address (the block
/// jump cache) can tell when a mapping may have changed.
#[derive(Clone, Debug)]
pub struct Tlb {
    entries: Box<[Entry; TLB_SIZE]>,
    fast: Box<[Fast; TLB_SIZE]>,
    generation: u64,
}

impl Default for Tlb {
    fn default() -> Self {
        Tlb {
            entries: Box::new(
                [Entry {
                    page: u64::MAX,
                    translation: Translation {
                        physical: 0,
                        writable: false,
                        user: false,
                        executable: false,
                        global: false,
                        dirty: false,
                    },
                }; TLB_SIZE],
            ),
            fast: Box::new([NO_FAST; TLB_SIZE]),
            generation: 0,
        }
    }
}

#[inline(always)]
fn fast_tag(vaddr: u64, user: bool) -> u64 {
    ((vaddr >> 12) << 1) | u64::from(user)
}

impl Tlb {
    /// The cached translation of `vaddr`'s page, if any.
    #[inline]
    pub fn lookup(&self, vaddr: u64) -> Option<Translation> {
        let page = vaddr >> 12;
        let entry = &self.entries[(page as usize) % TLB_SIZE];
        if entry.page == page {
            let mut t = entry.translation;
            t.physical |= vaddr & 0xfff;
            Some(t)
        } else {
            None
        }
    }

    /// Remembers a translation.
    pub fn insert(&mut self, vaddr: u64, mut translation: Translation) {
        let page = vaddr >> 12;
        translation.physical &= !0xfff;
        self.entries[(page as usize) % TLB_SIZE] = Entry { page, translation };
    }

    /// Drops everything (`keep_global`: except global pages; the fast path is dropped
    /// whole).
    pub fn flush(&mut self, keep_global: bool) {
        for entry in self.entries.iter_mut() {
            if !(keep_global && entry.translation.global) {
                entry.page = u64::MAX;
            }
        }
        self.fast.fill(NO_FAST);
        self.generation = self.generation.wrapping_add(1);
    }

    /// Drops the page holding `vaddr` (INVLPG), global or not.
    pub fn flush_page(&mut self, vaddr: u64) {
        let page = vaddr >> 12;
        let slot = (page as usize) % TLB_SIZE;
        let entry = &mut self.entries[slot];
        if entry.page == page {
            entry.page = u64::MAX;
        }
        self.fast[slot] = NO_FAST;
        self.generation = self.generation.wrapping_add(1);
    }

    /// Counts flushes: a linear-address cache filled at one generation is valid while the
    /// generation stays the same.
    #[inline(always)]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The physical address of `vaddr` when a read of `size` bytes there at privilege
    /// `user` may go straight to RAM (within one page, already checked).
    #[inline(always)]
    pub(crate) fn fast_read(&self, vaddr: u64, size: u32, user: bool) -> Option<u64> {
        let slot = &self.fast[((vaddr >> 12) as usize) % TLB_SIZE];
        if slot.read_tag == fast_tag(vaddr, user) && (vaddr & 0xfff) + u64::from(size) <= 0x1000 {
            Some(slot.physical | (vaddr & 0xfff))
        } else {
            None
        }
    }

    /// The same for a write.
    #[inline(always)]
    pub(crate) fn fast_write(&self, vaddr: u64, size: u32, user: bool) -> Option<u64> {
        let slot = &self.fast[((vaddr >> 12) as usize) % TLB_SIZE];
        if slot.write_tag == fast_tag(vaddr, user) && (vaddr & 0xfff) + u64::from(size) <= 0x1000 {
            Some(slot.physical | (vaddr & 0xfff))
        } else {
            None
        }
    }

    /// Records that reads (and, with `write`, writes) of `vaddr`'s page at privilege `user`
    /// were allowed and reach RAM at `physical`'s page.
    pub(crate) fn fill_fast(&mut self, vaddr: u64, physical: u64, user: bool, write: bool) {
        let slot = &mut self.fast[((vaddr >> 12) as usize) % TLB_SIZE];
        let tag = fast_tag(vaddr, user);
        let physical = physical & !0xfff;
        if slot.read_tag != tag || slot.physical != physical {
            *slot = NO_FAST;
        }
        slot.read_tag = tag;
        slot.physical = physical;
        if write {
            slot.write_tag = tag;
        }
    }

    /// Sends every later write to physical page `frame` (a page number) through the slow
    /// path (it now holds decoded code).
    pub(crate) fn forget_fast_writes(&mut self, frame: u64) {
        for slot in self.fast.iter_mut() {
            if slot.physical >> 12 == frame {
                slot.write_tag = u64::MAX;
            }
        }
    }
}

/// Whether `vaddr` is canonical for 48-bit virtual addresses.
#[inline]
pub fn canonical(vaddr: u64) -> bool {
    ((vaddr as i64) << 16 >> 16) as u64 == vaddr
}
