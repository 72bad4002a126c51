//! Buses: exact address-range maps from guest addresses to the devices a board mapped
//! there.
//!
//! A bus maps windows (`base`, `size`) to keys of the board's choosing (usually a small
//! `Copy` enum). It never owns the devices: the board keeps them as typed fields, so it can
//! still feed a UART's input or read an interrupt controller's lines, and hands out the
//! device behind a key through [`MmioDevices`] or [`PortDevices`]. An access reaches a
//! device only when it lies wholly inside that device's window; windows never overlap.
//!
//! What an access that reaches no device does is the platform's rule, so the two buses
//! differ: [`MmioBus`] reports it (`None`/`false`: RISC-V raises an access fault), and
//! [`PortBus`] answers it as a PC does (reads are all ones, writes are dropped).

use std::fmt::Debug;

use pandare_core::{MmioDevice, PortIoDevice};

/// A window the bus refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// A window of size zero.
    #[error("a device window of size 0 at {base:#x} maps nothing; give the device's size")]
    Empty {
        /// Where it was to start.
        base: u64,
    },
    /// A window running past the end of the address space.
    #[error("the device window at {base:#x} of {size:#x} bytes runs past the end of the {space:#x}-byte address space")]
    OutOfSpace {
        /// Where it was to start.
        base: u64,
        /// Its size.
        size: u64,
        /// Size of the bus's address space.
        space: u128,
    },
    /// A window overlapping one already mapped.
    #[error("the device window {base:#x}..{end:#x} overlaps the window {other_base:#x}..{other_end:#x} already mapped")]
    Overlap {
        /// Where it was to start.
        base: u64,
        /// Its end (exclusive).
        end: u128,
        /// Start of the window it overlaps.
        other_base: u64,
        /// End (exclusive) of the window it overlaps.
        other_end: u128,
    },
}

/// One mapped window: `[base, base + size)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Window<K> {
    base: u64,
    size: u64,
    key: K,
}

impl<K> Window<K> {
    fn end(&self) -> u128 {
        u128::from(self.base) + u128::from(self.size)
    }
}

/// Non-overlapping windows sorted by base, in an address space of `space` bytes.
#[derive(Clone, Debug)]
struct RangeMap<K> {
    windows: Vec<Window<K>>,
    space: u128,
}

impl<K: Copy> RangeMap<K> {
    fn new(space: u128) -> Self {
        RangeMap {
            windows: Vec::new(),
            space,
        }
    }

    fn insert(&mut self, base: u64, size: u64, key: K) -> Result<(), BusError> {
        if size == 0 {
            return Err(BusError::Empty { base });
        }
        let window = Window { base, size, key };
        if window.end() > self.space {
            return Err(BusError::OutOfSpace {
                base,
                size,
                space: self.space,
            });
        }
        let index = self.windows.partition_point(|w| w.base < base);
        let neighbours = [index.checked_sub(1), Some(index)];
        for other in neighbours.into_iter().flatten() {
            let Some(other) = self.windows.get(other) else {
                continue;
            };
            if u128::from(other.base) < window.end() && u128::from(base) < other.end() {
                return Err(BusError::Overlap {
                    base,
                    end: window.end(),
                    other_base: other.base,
                    other_end: other.end(),
                });
            }
        }
        self.windows.insert(index, window);
        Ok(())
    }

    /// The key and offset of the window holding all of `[address, address + len)`.
    #[inline]
    fn find(&self, address: u64, len: u64) -> Option<(K, u64)> {
        let index = self.windows.partition_point(|w| w.base <= address);
        let window = self.windows.get(index.checked_sub(1)?)?;
        let end = u128::from(address) + u128::from(len);
        (end <= window.end()).then_some((window.key, address - window.base))
    }

    fn windows(&self) -> impl Iterator<Item = (u64, u64, K)> + '_ {
        self.windows.iter().map(|w| (w.base, w.size, w.key))
    }
}

/// The board's devices on a memory-mapped bus, by key.
pub trait MmioDevices<K> {
    /// The device mapped under `key`.
    fn mmio_device(&mut self, key: K) -> &mut dyn MmioDevice;
}

/// The board's devices on a port-I/O bus, by key.
pub trait PortDevices<K> {
    /// The device mapped under `key`.
    fn port_device(&mut self, key: K) -> &mut dyn PortIoDevice;
}

/// Memory-mapped device windows in the 64-bit guest-physical address space.
#[derive(Clone, Debug)]
pub struct MmioBus<K> {
    map: RangeMap<K>,
}

impl<K: Copy + Debug> Default for MmioBus<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Debug> MmioBus<K> {
    /// A bus with nothing mapped.
    pub fn new() -> Self {
        MmioBus {
            map: RangeMap::new(1 << 64),
        }
    }

    /// Maps `size` bytes at guest-physical `base` to the device under `key`.
    pub fn insert(&mut self, base: u64, size: u64, key: K) -> Result<(), BusError> {
        self.map.insert(base, size, key)
    }

    /// The device and the offset in its window of an access of `size` bytes at `address`;
    /// `None` unless the access lies wholly inside one window.
    #[inline]
    pub fn find(&self, address: u64, size: u8) -> Option<(K, u64)> {
        self.map.find(address, u64::from(size))
    }

    /// Reads through the bus; `None` when no device answers (the platform decides what
    /// that means: RISC-V raises an access fault).
    pub fn read(
        &self,
        devices: &mut impl MmioDevices<K>,
        address: u64,
        size: u8,
        now: u64,
    ) -> Option<u64> {
        let (key, offset) = self.find(address, size)?;
        Some(devices.mmio_device(key).read(offset, size, now))
    }

    /// Writes through the bus; false when no device answers.
    pub fn write(
        &self,
        devices: &mut impl MmioDevices<K>,
        address: u64,
        size: u8,
        value: u64,
        now: u64,
    ) -> bool {
        match self.find(address, size) {
            Some((key, offset)) => {
                devices.mmio_device(key).write(offset, size, value, now);
                true
            }
            None => false,
        }
    }

    /// The windows, as (base, size, key), by address.
    pub fn windows(&self) -> impl Iterator<Item = (u64, u64, K)> + '_ {
        self.map.windows()
    }
}

/// Number of ports in the port-I/O space.
pub const PORT_SPACE: u32 = 0x1_0000;

/// Port-I/O device ranges, as on a PC: 65,536 byte-wide ports; 1, 2 and 4-byte accesses.
///
/// An access that lies wholly inside one device's range goes to that device whole. Any other
/// access is carried out byte by byte, as an ISA bus does: each byte goes to the device
/// at its port, or, where none is mapped (or past port 0xffff), reads as 0xff and is dropped
/// when written.
#[derive(Clone, Debug)]
pub struct PortBus<K> {
    map: RangeMap<K>,
}

impl<K: Copy + Debug> Default for PortBus<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// The low `size` bytes set.
fn mask(size: u8) -> u32 {
    match size {
        0 => 0,
        1..=3 => (1u32 << (8 * u32::from(size))) - 1,
        _ => u32::MAX,
    }
}

impl<K: Copy + Debug> PortBus<K> {
    /// A bus with nothing mapped.
    pub fn new() -> Self {
        PortBus {
            map: RangeMap::new(u128::from(PORT_SPACE)),
        }
    }

    /// Maps `count` ports from `first` to the device under `key`.
    pub fn insert(&mut self, first: u16, count: u32, key: K) -> Result<(), BusError> {
        self.map.insert(u64::from(first), u64::from(count), key)
    }

    /// The device and the port offset in its range of an access of `size` bytes at `port`;
    /// `None` unless the access lies wholly inside one range.
    #[inline]
    pub fn find(&self, port: u16, size: u8) -> Option<(K, u16)> {
        let (key, offset) = self.map.find(u64::from(port), u64::from(size))?;
        // Ranges end at 0x10000, so the offset fits.
        Some((key, offset as u16))
    }

    /// Reads `size` (1, 2 or 4) bytes at `port`; unmapped bytes read as 0xff.
    pub fn read(&self, devices: &mut impl PortDevices<K>, port: u16, size: u8, now: u64) -> u32 {
        let size = size.min(4);
        if let Some((key, offset)) = self.find(port, size) {
            return devices.port_device(key).read(offset, size, now) & mask(size);
        }
        let mut value = 0;
        for byte in 0..size {
            let part = u16::try_from(u32::from(port) + u32::from(byte))
                .ok()
                .and_then(|port| self.find(port, 1))
                .map_or(0xff, |(key, offset)| {
                    devices.port_device(key).read(offset, 1, now) & 0xff
                });
            value |= part << (8 * byte);
        }
        value
    }

    /// Writes the low `size` (1, 2 or 4) bytes of `value` at `port`; unmapped bytes are
    /// dropped.
    pub fn write(
        &self,
        devices: &mut impl PortDevices<K>,
        port: u16,
        size: u8,
        value: u32,
        now: u64,
    ) {
        let size = size.min(4);
        if let Some((key, offset)) = self.find(port, size) {
            devices
                .port_device(key)
                .write(offset, size, value & mask(size), now);
            return;
        }
        for byte in 0..size {
            let target = u16::try_from(u32::from(port) + u32::from(byte))
                .ok()
                .and_then(|port| self.find(port, 1));
            if let Some((key, offset)) = target {
                let part = (value >> (8 * byte)) & 0xff;
                devices.port_device(key).write(offset, 1, part, now);
            }
        }
    }

    /// The ranges, as (first port, count, key), by port.
    pub fn ranges(&self) -> impl Iterator<Item = (u16, u32, K)> + '_ {
        self.map
            .windows()
            .map(|(base, size, key)| (base as u16, size as u32, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that logs its accesses and answers reads with `answer`.
    #[derive(Debug, Default)]
    struct Probe {
        log: Vec<(&'static str, u64, u8, u64, u64)>,
        answer: u64,
    }

    impl MmioDevice for Probe {
        fn read(&mut self, offset: u64, size: u8, now: u64) -> u64 {
            self.log.push(("r", offset, size, 0, now));
            self.answer
        }
        fn write(&mut self, offset: u64, size: u8, value: u64, now: u64) {
            self.log.push(("w", offset, size, value, now));
        }
    }

    impl PortIoDevice for Probe {
        fn read(&mut self, offset: u16, size: u8, now: u64) -> u32 {
            self.log.push(("r", u64::from(offset), size, 0, now));
            self.answer as u32
        }
        fn write(&mut self, offset: u16, size: u8, value: u32, now: u64) {
            self.log
                .push(("w", u64::from(offset), size, u64::from(value), now));
        }
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Key {
        A,
        B,
    }

    #[derive(Default)]
    struct Board {
        a: Probe,
        b: Probe,
    }

    impl MmioDevices<Key> for Board {
        fn mmio_device(&mut self, key: Key) -> &mut dyn MmioDevice {
            match key {
                Key::A => &mut self.a,
                Key::B => &mut self.b,
            }
        }
    }

    impl PortDevices<Key> for Board {
        fn port_device(&mut self, key: Key) -> &mut dyn PortIoDevice {
            match key {
                Key::A => &mut self.a,
                Key::B => &mut self.b,
            }
        }
    }

    fn mmio() -> MmioBus<Key> {
        let mut bus = MmioBus::new();
        bus.insert(0x1000_0000, 0x100, Key::A).unwrap();
        bus.insert(0x200_0000, 0x1_0000, Key::B).unwrap();
        bus
    }

    #[test]
    fn mmio_accesses_reach_the_device_at_their_offset_with_the_time() {
        let bus = mmio();
        let mut board = Board::default();
        board.a.answer = 0x41;
        assert_eq!(bus.read(&mut board, 0x1000_0005, 1, 77), Some(0x41));
        assert!(bus.write(&mut board, 0x200_4000, 8, 0x1234, 78));
        assert_eq!(board.a.log, [("r", 5, 1, 0, 77)]);
        assert_eq!(board.b.log, [("w", 0x4000, 8, 0x1234, 78)]);
    }

    #[test]
    fn mmio_accesses_must_lie_wholly_inside_a_window() {
        let bus = mmio();
        assert_eq!(bus.find(0x1000_00ff, 1), Some((Key::A, 0xff)));
        assert_eq!(bus.find(0x1000_00fc, 4), Some((Key::A, 0xfc)));
        // Straddling the end, just past it, just before it.
        assert_eq!(bus.find(0x1000_00fc, 8), None);
        assert_eq!(bus.find(0x1000_0100, 1), None);
        assert_eq!(bus.find(0x0fff_ffff, 1), None);
        assert_eq!(bus.find(0x0fff_ffff, 2), None);
        let mut board = Board::default();
        assert_eq!(bus.read(&mut board, 0x3000_0000, 4, 0), None);
        assert!(!bus.write(&mut board, 0x3000_0000, 4, 1, 0));
        assert!(board.a.log.is_empty() && board.b.log.is_empty());
    }

    #[test]
    fn mmio_windows_reach_the_top_of_the_address_space_but_not_beyond() {
        let mut bus = MmioBus::new();
        bus.insert(u64::MAX - 0xfff, 0x1000, Key::A).unwrap();
        assert_eq!(bus.find(u64::MAX, 1), Some((Key::A, 0xfff)));
        assert_eq!(bus.find(u64::MAX, 2), None);
        assert!(matches!(
            bus.insert(u64::MAX, 2, Key::B),
            Err(BusError::OutOfSpace { .. })
        ));
    }

    #[test]
    fn overlapping_and_empty_windows_are_refused() {
        let mut bus = mmio();
        for (base, size) in [
            (0x1000_00ff, 1),
            (0x0fff_ffff, 2),
            (0x0fff_0000, 0x10_0000),
            (0x201_0000 - 1, 0x10),
        ] {
            let error = bus.insert(base, size, Key::B).unwrap_err();
            assert!(matches!(error, BusError::Overlap { .. }), "{base:#x}");
            assert!(error.to_string().contains("overlaps"), "{error}");
        }
        assert_eq!(
            bus.insert(0x5000, 0, Key::A),
            Err(BusError::Empty { base: 0x5000 })
        );
        // Touching windows are fine.
        bus.insert(0x1000_0100, 0x100, Key::B).unwrap();
        bus.insert(0x0fff_ff00, 0x100, Key::B).unwrap();
        let bases: Vec<u64> = bus.windows().map(|(base, _, _)| base).collect();
        assert_eq!(bases, [0x200_0000, 0x0fff_ff00, 0x1000_0000, 0x1000_0100]);
    }

    fn ports() -> PortBus<Key> {
        let mut bus = PortBus::new();
        bus.insert(0x3f8, 8, Key::A).unwrap();
        bus.insert(0x40, 4, Key::B).unwrap();
        bus
    }

    #[test]
    fn port_accesses_of_every_width_reach_the_device_whole() {
        let bus = ports();
        let mut board = Board::default();
        board.a.answer = 0xdead_beef;
        assert_eq!(bus.read(&mut board, 0x3f8, 1, 5), 0xef);
        assert_eq!(bus.read(&mut board, 0x3fa, 2, 6), 0xbeef);
        assert_eq!(bus.read(&mut board, 0x3fc, 4, 7), 0xdead_beef);
        bus.write(&mut board, 0x3ff, 1, 0x1ff, 8);
        assert_eq!(
            board.a.log,
            [
                ("r", 0, 1, 0, 5),
                ("r", 2, 2, 0, 6),
                ("r", 4, 4, 0, 7),
                ("w", 7, 1, 0xff, 8)
            ]
        );
    }

    #[test]
    fn unmapped_ports_read_all_ones_and_drop_writes() {
        let bus = ports();
        let mut board = Board::default();
        assert_eq!(bus.read(&mut board, 0x3f7, 1, 0), 0xff);
        assert_eq!(bus.read(&mut board, 0x400, 2, 0), 0xffff);
        assert_eq!(bus.read(&mut board, 0x80, 4, 0), 0xffff_ffff);
        assert_eq!(bus.read(&mut board, 0xffff, 4, 0), 0xffff_ffff);
        bus.write(&mut board, 0x3f0, 4, 0x1234_5678, 0);
        bus.write(&mut board, 0xfffe, 4, 0x1234_5678, 0);
        assert!(board.a.log.is_empty() && board.b.log.is_empty());
    }

    #[test]
    fn a_port_access_straddling_a_range_goes_byte_by_byte() {
        let bus = ports();
        let mut board = Board::default();
        board.a.answer = 0x42;
        // 0x3ff is the device's last port, 0x400 is nothing.
        assert_eq!(bus.read(&mut board, 0x3ff, 2, 0), 0xff42);
        // 0x3f6 and 0x3f7 are nothing, 0x3f8 and 0x3f9 the device's first two.
        assert_eq!(bus.read(&mut board, 0x3f6, 4, 0), 0x4242_ffff);
        bus.write(&mut board, 0x3f7, 2, 0xabcd, 1);
        assert_eq!(
            board.a.log,
            [
                ("r", 7, 1, 0, 0),
                ("r", 0, 1, 0, 0),
                ("r", 1, 1, 0, 0),
                ("w", 0, 1, 0xab, 1)
            ]
        );
    }

    #[test]
    fn port_ranges_stay_inside_the_port_space() {
        let mut bus = ports();
        bus.insert(0xfff0, 0x10, Key::B).unwrap();
        assert!(matches!(
            bus.insert(0xff00, 0x100, Key::B),
            Err(BusError::Overlap { .. })
        ));
        let mut other = PortBus::new();
        assert!(matches!(
            other.insert(0xfff8, 9, Key::A),
            Err(BusError::OutOfSpace { .. })
        ));
        other.insert(0, 1, Key::A).unwrap();
        let ranges: Vec<_> = bus.ranges().collect();
        assert_eq!(
            ranges,
            [
                (0x40, 4, Key::B),
                (0x3f8, 8, Key::A),
                (0xfff0, 0x10, Key::B)
            ]
        );
    }
}
