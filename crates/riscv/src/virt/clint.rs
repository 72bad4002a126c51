//! The core-local interruptor: `msip`, `mtimecmp` and `mtime`, with time from the
//! virtual clock.

/// Size of the register window.
pub const SIZE: u64 = 0x1_0000;

/// CLINT state for one hart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clint {
    /// Machine software interrupt pending.
    pub msip: bool,
    /// Machine timer compare, in `mtime` ticks.
    pub mtimecmp: u64,
    /// Added to the virtual time to give `mtime` (set by writes to `mtime`).
    pub mtime_offset: u64,
}

impl Default for Clint {
    fn default() -> Self {
        Clint {
            msip: false,
            mtimecmp: u64::MAX,
            mtime_offset: 0,
        }
    }
}

fn merge(old: u64, offset: u64, size: u8, value: u64) -> u64 {
    if size >= 8 {
        return value;
    }
    let shift = (offset & 4) * 8;
    let mask = 0xffff_ffffu64 << shift;
    old & !mask | (value << shift) & mask
}

impl Clint {
    /// Register read at `offset` with the clock at `time` ticks.
    pub fn read(&self, offset: u64, size: u8, time: u64) -> u64 {
        let value = match offset & !7 {
            0 => u64::from(self.msip),
            0x4000 => self.mtimecmp,
            0xbff8 => time.wrapping_add(self.mtime_offset),
            _ => 0,
        };
        if size >= 8 {
            value
        } else {
            (value >> ((offset & 4) * 8)) & 0xffff_ffff
        }
    }

    /// Register write.
    pub fn write(&mut self, offset: u64, size: u8, value: u64, time: u64) {
        match offset & !7 {
            0 if offset == 0 => self.msip = value & 1 != 0,
            0x4000 => self.mtimecmp = merge(self.mtimecmp, offset, size, value),
            0xbff8 => {
                let mtime = merge(time.wrapping_add(self.mtime_offset), offset, size, value);
                self.mtime_offset = mtime.wrapping_sub(time);
            }
            _ => {}
        }
    }
}

impl pandare_core::MmioDevice for Clint {
    fn read(&mut self, offset: u64, size: u8, now: u64) -> u64 {
        Clint::read(self, offset, size, now)
    }

    fn write(&mut self, offset: u64, size: u8, value: u64, now: u64) {
        Clint::write(self, offset, size, value, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtimecmp_can_be_written_in_halves() {
        let mut clint = Clint::default();
        clint.write(0x4000, 4, 0x1234, 0);
        clint.write(0x4004, 4, 0, 0);
        assert_eq!(clint.mtimecmp, 0x1234);
        assert_eq!(clint.read(0x4000, 8, 0), 0x1234);
    }

    #[test]
    fn mtime_follows_the_clock_and_accepts_writes() {
        let mut clint = Clint::default();
        assert_eq!(clint.read(0xbff8, 8, 50), 50);
        clint.write(0xbff8, 8, 1000, 50);
        assert_eq!(clint.read(0xbff8, 8, 60), 1010);
    }
}
