//! The memory-mapped I/O seam: guest-physical addresses outside RAM.
//!
//! A PC maps its local APIC, IOAPIC, HPET (and whatever else) above RAM. The CPU knows none
//! of them: a data access whose physical address is not RAM goes to the [`MmioSpace`] the
//! platform plugged into [`crate::X86Cpu::mmio`], which answers it or says that nothing is
//! there. Without one, or where nothing answers, reads give all ones and writes are dropped,
//! as on a PC's bus (no fault). With callbacks enabled, PANDA's `mmio_after_read` and
//! `mmio_before_write` fire around accesses that a device answered, and
//! `unassigned_io_read`/`unassigned_io_write` for those nothing answered
//! (`pandare_core::execution::memory` decides the order).
//!
//! The platform implements [`PhysicalDevices`] over its own bus, typically a
//! `pandare_devices::MmioBus` with the board's devices behind its keys, so the CPU crate
//! does not name any device. An access a device answered ends the run slice after its
//! instruction ([`crate::Exit::Budget`]), so the platform sees timers and interrupt lines it
//! may have changed before the next instruction.

/// The devices a platform maps at physical addresses outside RAM. One machine thread: no
/// locks, no host side effects beyond the devices' own state.
pub trait PhysicalDevices {
    /// Reads `size` bytes (1, 2, 4 or 8) at physical `address` at virtual time `now`;
    /// `None` when no device answers there.
    fn read(&mut self, address: u64, size: u8, now: u64) -> Option<u64>;
    /// Writes the low `size` bytes of `value` at physical `address` at virtual time `now`;
    /// false when no device answers there.
    fn write(&mut self, address: u64, size: u8, value: u64, now: u64) -> bool;
}

/// The physical address space outside RAM, as the platform answers it.
pub struct MmioSpace(pub Box<dyn PhysicalDevices + Send>);

impl std::fmt::Debug for MmioSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MmioSpace")
    }
}

impl crate::X86Cpu {
    /// A device answered: the block ends after this instruction (the loops test
    /// `code_written` after each instruction already, so this costs them nothing more) and
    /// the run loop ends the slice there.
    fn end_block_for_device(&mut self) {
        self.device_accessed = true;
        self.code_written = true;
    }

    /// A device read at a physical address outside RAM; `None` when nothing answers.
    pub(crate) fn mmio_read(&mut self, address: u64, size: u8) -> Option<u64> {
        let now = self.icount;
        let value = self.mmio.as_mut()?.0.read(address, size, now);
        if value.is_some() {
            self.end_block_for_device();
        }
        value
    }

    /// A device write at a physical address outside RAM; false when nothing answers.
    pub(crate) fn mmio_write(&mut self, address: u64, size: u8, value: u64) -> bool {
        let now = self.icount;
        let answered = match self.mmio.as_mut() {
            Some(space) => space.0.write(address, size, value, now),
            None => false,
        };
        if answered {
            self.end_block_for_device();
        }
        answered
    }
}
