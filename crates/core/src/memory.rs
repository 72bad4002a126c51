//! Guest RAM (with dirty tracking and page-sharing images for snapshots) and the device
//! seams: memory-mapped ([`MmioDevice`]) and port-mapped ([`PortIoDevice`]) registers, and
//! the [`SerialEvent`]s a serial device reports for PANDA's replay-time serial callbacks.
//! Knows nothing of page tables or ISAs; the buses that map devices at addresses live in
//! `pandare-devices`.

use std::sync::Arc;

/// A memory-mapped device. One machine thread: no locks, no host side effects beyond the
/// device's own state. The bus has checked that the access lies inside the device's window.
pub trait MmioDevice {
    /// Reads `size` bytes (1, 2, 4 or 8) at `offset` from the device's base, at virtual
    /// time `now` (for devices whose registers follow the clock).
    fn read(&mut self, offset: u64, size: u8, now: u64) -> u64;
    /// Writes the low `size` bytes of `value` at `offset` from the device's base, at
    /// virtual time `now`.
    fn write(&mut self, offset: u64, size: u8, value: u64, now: u64);
}

/// A device on a port-I/O bus (x86's `in`/`out`). Same rules as [`MmioDevice`]; accesses
/// are 1, 2 or 4 bytes wide and lie inside the device's port range.
pub trait PortIoDevice {
    /// Reads `size` bytes at port `offset` from the device's first port, at virtual time
    /// `now`.
    fn read(&mut self, offset: u16, size: u8, now: u64) -> u32;
    /// Writes the low `size` bytes of `value` at port `offset` from the device's first
    /// port, at virtual time `now`.
    fn write(&mut self, offset: u16, size: u8, value: u32, now: u64);
}

/// What a serial device did, as PANDA's replay-time serial callbacks report it. The device
/// reports these events; whoever fires callbacks turns them into calls, adding the
/// addresses (FIFO and data register or port) the board mapped the device at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerialEvent {
    /// A byte of input entered the receive FIFO (`replay_serial_receive`).
    Receive(u8),
    /// The guest read a received byte from the data register (`replay_serial_read`).
    Read(u8),
    /// The guest wrote a byte to the data register (`replay_serial_write`).
    Write(u8),
    /// A byte was transmitted: it reached the output (`replay_serial_send`).
    Send(u8),
}

/// Size of a RAM page for dirty tracking and snapshots.
pub const PAGE_SIZE: usize = 4096;

/// One page of RAM contents.
pub type Page = [u8; PAGE_SIZE];

/// The contents of RAM at one moment, page by page. Pages are shared between images that
/// have them in common, and all-zero pages are not stored at all, so keeping several
/// snapshots of a mostly unchanged guest costs little.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RamImage {
    pages: Vec<Option<Arc<Page>>>,
}

impl RamImage {
    /// An image of `page_count` zero pages.
    pub fn zeroed(page_count: usize) -> RamImage {
        RamImage {
            pages: vec![None; page_count],
        }
    }

    /// Builds an image from its pages (`None` is a zero page).
    pub fn from_pages(pages: Vec<Option<Arc<Page>>>) -> RamImage {
        RamImage { pages }
    }

    /// The pages, `None` for zero pages.
    pub fn pages(&self) -> &[Option<Arc<Page>>] {
        &self.pages
    }

    /// Number of pages.
    pub fn page_count(&self) -> usize {
        self.pages.len()
    }

    /// Pages that are not all zero.
    pub fn stored_pages(&self) -> usize {
        self.pages.iter().filter(|page| page.is_some()).count()
    }
}

/// Guest RAM: one contiguous, zero-initialised block at a guest-physical base address,
/// with per-page dirty tracking against the last snapshot taken or restored.
///
/// Every write through this type marks its pages dirty. A CPU that writes RAM through host
/// pointers must only do so for pages that are already dirty (it takes a slow path through
/// [`Ram::write_value`] first), and must forget those pointers after [`Ram::capture`] or
/// [`Ram::restore`], which clear the dirty marks.
#[derive(Debug)]
pub struct Ram {
    base: u64,
    bytes: Vec<u8>,
    dirty: Vec<bool>,
    image: RamImage,
}

impl Ram {
    /// Allocates `size` bytes of zeroed RAM at guest-physical `base`. The allocation is
    /// lazily backed by the host, so untouched guest pages cost nothing. `size` is rounded
    /// up to whole pages.
    pub fn new(base: u64, size: usize) -> Self {
        let page_count = size.div_ceil(PAGE_SIZE);
        Ram {
            base,
            bytes: vec![0; page_count * PAGE_SIZE],
            dirty: vec![false; page_count],
            image: RamImage::zeroed(page_count),
        }
    }

    /// Guest-physical address of the first byte.
    #[inline]
    pub fn base(&self) -> u64 {
        self.base
    }

    /// Size in bytes.
    #[inline]
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// Whether `[address, address + len)` lies entirely in RAM.
    #[inline]
    pub fn contains(&self, address: u64, len: u64) -> bool {
        address >= self.base
            && address
                .checked_add(len)
                .is_some_and(|end| end <= self.base + self.size())
    }

    /// Offset in the RAM block of a guest-physical address known to be inside it.
    #[inline]
    pub fn offset(&self, address: u64) -> usize {
        (address - self.base) as usize
    }

    /// The whole RAM as bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// Host address of the first byte, for a CPU's TLB addends. Writing through it is
    /// allowed only for dirty pages (see the type's documentation).
    #[inline]
    pub fn host_base(&self) -> u64 {
        self.bytes.as_ptr() as u64
    }

    /// Marks the page holding guest-physical `address` (in RAM) dirty.
    #[inline]
    pub fn mark_dirty(&mut self, address: u64) {
        let page = self.offset(address) / PAGE_SIZE;
        self.dirty[page] = true;
    }

    /// Whether the page holding guest-physical `address` (in RAM) is dirty.
    #[inline]
    pub fn is_dirty(&self, address: u64) -> bool {
        self.dirty[self.offset(address) / PAGE_SIZE]
    }

    /// Writes the low `size` (1 to 8) bytes of `value`, little-endian, at `address`, which
    /// the caller has checked is in RAM.
    #[inline]
    pub fn write_value(&mut self, address: u64, size: usize, value: u64) {
        let start = self.offset(address);
        self.bytes[start..start + size].copy_from_slice(&value.to_le_bytes()[..size]);
        self.dirty[start / PAGE_SIZE] = true;
        self.dirty[(start + size - 1) / PAGE_SIZE] = true;
    }

    /// Copies `data` to guest-physical `address`; false when it does not fit in RAM.
    pub fn write_bytes(&mut self, address: u64, data: &[u8]) -> bool {
        if !self.contains(address, data.len() as u64) {
            return false;
        }
        if data.is_empty() {
            return true;
        }
        let start = self.offset(address);
        self.bytes[start..start + data.len()].copy_from_slice(data);
        for page in start / PAGE_SIZE..=(start + data.len() - 1) / PAGE_SIZE {
            self.dirty[page] = true;
        }
        true
    }

    /// Copies bytes from guest-physical `address`; false when the range is not in RAM.
    pub fn read_bytes(&self, address: u64, out: &mut [u8]) -> bool {
        if !self.contains(address, out.len() as u64) {
            return false;
        }
        let start = self.offset(address);
        out.copy_from_slice(&self.bytes[start..start + out.len()]);
        true
    }

    fn page_bytes(&self, page: usize) -> &[u8] {
        &self.bytes[page * PAGE_SIZE..(page + 1) * PAGE_SIZE]
    }

    /// Takes an image of RAM now. Only pages written since the last capture or restore are
    /// copied; the rest are shared with that image. Clears the dirty marks.
    pub fn capture(&mut self) -> RamImage {
        for page in 0..self.dirty.len() {
            if !std::mem::replace(&mut self.dirty[page], false) {
                continue;
            }
            let bytes = self.page_bytes(page);
            self.image.pages[page] = if bytes.iter().all(|&b| b == 0) {
                None
            } else {
                let mut copy = Box::new([0u8; PAGE_SIZE]);
                copy.copy_from_slice(bytes);
                Some(Arc::from(copy))
            };
        }
        self.image.clone()
    }

    /// Makes RAM equal to `image`, copying only the pages that differ from it (those
    /// written since the last capture or restore, and those where the images differ).
    /// Returns the guest-physical addresses of the pages copied. Clears the dirty marks.
    pub fn restore(&mut self, image: &RamImage) -> Result<Vec<u64>, RamImageMismatch> {
        if image.page_count() != self.dirty.len() {
            return Err(RamImageMismatch {
                expected: self.dirty.len(),
                found: image.page_count(),
            });
        }
        let mut changed = Vec::new();
        for page in 0..self.dirty.len() {
            let wanted = &image.pages[page];
            let same_as_current = !self.dirty[page]
                && match (&self.image.pages[page], wanted) {
                    (None, None) => true,
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    _ => false,
                };
            self.dirty[page] = false;
            if same_as_current {
                continue;
            }
            let target = &mut self.bytes[page * PAGE_SIZE..(page + 1) * PAGE_SIZE];
            match wanted {
                Some(contents) => target.copy_from_slice(&contents[..]),
                None => target.fill(0),
            }
            changed.push(self.base + (page * PAGE_SIZE) as u64);
        }
        self.image = image.clone();
        Ok(changed)
    }
}

/// A RAM image of the wrong size for this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the RAM image has {found} pages but this machine has {expected}; it was taken with a different memory size")]
pub struct RamImageMismatch {
    /// Pages in this machine's RAM.
    pub expected: usize,
    /// Pages in the image.
    pub found: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_rejects_ranges_that_overflow_or_leave_ram() {
        let ram = Ram::new(0x8000_0000, 0x1000);
        assert!(ram.contains(0x8000_0000, 0x1000));
        assert!(!ram.contains(0x8000_0001, 0x1000));
        assert!(!ram.contains(0x7fff_ffff, 1));
        assert!(!ram.contains(u64::MAX, 2));
    }

    #[test]
    fn restore_copies_back_only_changed_pages_and_shares_the_rest() {
        let mut ram = Ram::new(0x1000, 4 * PAGE_SIZE);
        ram.write_bytes(0x1000, &[1]);
        let first = ram.capture();
        assert_eq!(first.stored_pages(), 1);
        ram.write_value(0x3000, 8, 0xdead_beef);
        let second = ram.capture();
        assert!(Arc::ptr_eq(
            first.pages()[0].as_ref().unwrap(),
            second.pages()[0].as_ref().unwrap()
        ));
        ram.write_bytes(0x1000, &[9]);
        let changed = ram.restore(&first).unwrap();
        assert_eq!(changed, vec![0x1000, 0x3000]);
        let mut out = [0u8; 8];
        ram.read_bytes(0x1000, &mut out[..1]);
        assert_eq!(out[0], 1);
        ram.read_bytes(0x3000, &mut out);
        assert_eq!(u64::from_le_bytes(out), 0);
        assert_eq!(ram.restore(&second).unwrap(), vec![0x3000]);
    }

    #[test]
    fn restore_rejects_an_image_of_another_size() {
        let mut ram = Ram::new(0, 2 * PAGE_SIZE);
        let other = RamImage::zeroed(3);
        assert!(ram.restore(&other).is_err());
    }

    #[test]
    fn write_then_read_round_trips() {
        let mut ram = Ram::new(0x1000, 0x1000);
        assert!(ram.write_bytes(0x1010, &[1, 2, 3]));
        let mut out = [0; 3];
        assert!(ram.read_bytes(0x1010, &mut out));
        assert_eq!(out, [1, 2, 3]);
        assert!(!ram.write_bytes(0x1fff, &[1, 2]));
    }
}
