//! Guest RAM and the MMIO device seam. Knows nothing of page tables or ISAs.

/// A memory-mapped device. One machine thread: no locks, no host side effects beyond the
/// device's own state.
pub trait MmioDevice {
    /// Reads `size` bytes (1, 2, 4 or 8) at `offset` from the device's base.
    fn read(&mut self, offset: u64, size: u8) -> u64;
    /// Writes the low `size` bytes of `value` at `offset` from the device's base.
    fn write(&mut self, offset: u64, size: u8, value: u64);
}

/// Guest RAM: one contiguous, zero-initialised block at a guest-physical base address.
#[derive(Debug)]
pub struct Ram {
    base: u64,
    bytes: Vec<u8>,
}

impl Ram {
    /// Allocates `size` bytes of zeroed RAM at guest-physical `base`. The allocation is
    /// lazily backed by the host, so untouched guest pages cost nothing.
    pub fn new(base: u64, size: usize) -> Self {
        Ram {
            base,
            bytes: vec![0; size],
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

    /// The whole RAM as mutable bytes.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Host pointer to the first byte (for the CPU's TLB addends).
    #[inline]
    pub fn host_base(&mut self) -> *mut u8 {
        self.bytes.as_mut_ptr()
    }

    /// Copies `data` to guest-physical `address`; false when it does not fit in RAM.
    pub fn write_bytes(&mut self, address: u64, data: &[u8]) -> bool {
        if !self.contains(address, data.len() as u64) {
            return false;
        }
        let start = self.offset(address);
        self.bytes[start..start + data.len()].copy_from_slice(data);
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
    fn write_then_read_round_trips() {
        let mut ram = Ram::new(0x1000, 0x100);
        assert!(ram.write_bytes(0x1010, &[1, 2, 3]));
        let mut out = [0; 3];
        assert!(ram.read_bytes(0x1010, &mut out));
        assert_eq!(out, [1, 2, 3]);
        assert!(!ram.write_bytes(0x10ff, &[1, 2]));
    }
}
