//! The 16550 UART: vm-superio's register model, with a level-sensitive interrupt line, a
//! console input queue that refills the receive FIFO only at guest-determined points, a
//! validated and versioned state, and the [`SerialEvent`]s behind PANDA's replay-time
//! serial callbacks.
//!
//! The same device sits on either bus. Memory-mapped ([`MmioDevice`]), register `i` is at
//! offset `i << reg_shift`, and an access of any size reads or writes that register's byte
//! (zero-extended), as QEMU's `serial_mm` does; offsets past the eight registers read 0.
//! On ports ([`PortIoDevice`], e.g. COM1 at 0x3f8), registers are consecutive byte ports
//! and a 2- or 4-byte access is carried out as byte accesses to consecutive registers,
//! lowest first, as an ISA bus does. The interrupt line's number is configuration the
//! board reads to wire [`Uart16550::level`] to its interrupt controller.
//!
//! # Serial events
//! While [`Uart16550::collect_events`] is on, the device records what it did: bytes moving
//! from the input queue into the FIFO (`Receive`), received bytes the guest read from the
//! data register (`Read`), bytes the guest wrote to the data register (`Write`), and bytes
//! that reached the output (`Send`; not in loopback mode). The machine takes them with
//! [`Uart16550::take_events`] after each run slice or input and fires the callbacks; the
//! device knows nothing of callbacks.
//!
//! Determinism: input is queued by [`Uart16550::input`] and moves into the FIFO only then
//! and after each guest access, never on a timer or a host thread.

use std::collections::VecDeque;

use pandare_core::{MmioDevice, PortIoDevice, SerialEvent};
use serde::{Deserialize, Serialize};
use vm_superio::serial::{NoEvents, SerialState};
use vm_superio::{Serial, Trigger};

/// Number of registers (ports, or strides in a memory-mapped window).
pub const REGISTER_COUNT: u16 = 8;
/// Bytes the receive FIFO holds.
pub const FIFO_SIZE: usize = 64;

// Register indices.
const DATA: u8 = 0;
// Interrupt identification (IIR) and enable (IER) bits.
const IIR_NONE: u8 = 1;
const IIR_THR_EMPTY: u8 = 1 << 1;
const IIR_DATA_AVAILABLE: u8 = 1 << 2;
const IER_DATA_AVAILABLE: u8 = 1;
const IER_THR_EMPTY: u8 = 1 << 1;
/// The IER bits the model keeps (16550A: the four interrupt enables).
const IER_VALID: u8 = 0x0f;
/// Line control: the divisor latch is mapped over the data register.
const LCR_DLAB: u8 = 1 << 7;
/// Line status: a received byte is waiting.
const LSR_DATA_READY: u8 = 1;
/// Line status bits the model ever sets: data ready, transmitter holding register empty,
/// transmitter idle.
const LSR_VALID: u8 = LSR_DATA_READY | 0x20 | 0x40;
/// Modem control: loopback.
const MCR_LOOP: u8 = 1 << 4;

/// Where the UART's registers are and which interrupt line it drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uart16550Config {
    /// Register `i` is at offset `i << reg_shift` in a memory-mapped window (the device
    /// tree's `reg-shift`); 0 for byte-spaced registers and for port I/O.
    pub reg_shift: u8,
    /// The interrupt line the board wires [`Uart16550::level`] to (a PLIC source, an ISA
    /// IRQ). The device itself only drives a level.
    pub irq: u32,
}

impl Uart16550Config {
    /// Bytes the eight registers span in a memory-mapped window.
    pub fn register_span(&self) -> u64 {
        u64::from(REGISTER_COUNT) << self.reg_shift
    }
}

/// vm-superio signals interrupts through a trigger; the line level is computed from the
/// device's registers instead, so the trigger has nothing to do.
#[derive(Debug, Default)]
struct NoTrigger;

impl Trigger for NoTrigger {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        Ok(())
    }
}

/// A 16550 UART.
pub struct Uart16550 {
    config: Uart16550Config,
    serial: Serial<NoTrigger, NoEvents, Vec<u8>>,
    /// Bytes typed but not yet in the receive FIFO.
    pending_input: VecDeque<u8>,
    level: bool,
    /// Events since the machine last took them, while it collects them.
    events: Option<Vec<SerialEvent>>,
}

impl std::fmt::Debug for Uart16550 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uart16550")
            .field("config", &self.config)
            .field("pending_input", &self.pending_input.len())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Uart16550 {
    /// A UART in its reset state.
    pub fn new(config: Uart16550Config) -> Self {
        Uart16550 {
            config,
            serial: Serial::new(NoTrigger, Vec::new()),
            pending_input: VecDeque::new(),
            level: false,
            events: None,
        }
    }

    /// Where its registers are and which line it drives.
    pub fn config(&self) -> Uart16550Config {
        self.config
    }

    /// Reads register `index` (0 to 7; others read 0).
    pub fn read_register(&mut self, index: u8) -> u8 {
        if u16::from(index) >= REGISTER_COUNT {
            return 0;
        }
        let received = self.events.is_some() && index == DATA && {
            let state = self.serial.state();
            state.line_control & LCR_DLAB == 0 && state.line_status & LSR_DATA_READY != 0
        };
        let value = self.serial.read(index);
        if let (true, Some(events)) = (received, self.events.as_mut()) {
            events.push(SerialEvent::Read(value));
        }
        self.after_access();
        value
    }

    /// Writes register `index` (0 to 7; others are ignored).
    pub fn write_register(&mut self, index: u8, value: u8) {
        if u16::from(index) >= REGISTER_COUNT {
            return;
        }
        let data = self.events.is_some()
            && index == DATA
            && self.serial.state().line_control & LCR_DLAB == 0;
        let sent_before = self.serial.writer_mut().len();
        // Writing to a Vec cannot fail and the trigger is infallible.
        let _ = self.serial.write(index, value);
        if let (true, Some(events)) = (data, self.events.as_mut()) {
            events.push(SerialEvent::Write(value));
            // In loopback mode the byte goes to the receive side instead of the output.
            if self.serial.writer_mut().len() > sent_before {
                events.push(SerialEvent::Send(value));
            }
        }
        self.after_access();
    }

    /// Starts (`true`) or stops collecting [`SerialEvent`]s. Stopping drops those not
    /// taken.
    pub fn collect_events(&mut self, collect: bool) {
        match (collect, self.events.is_some()) {
            (true, false) => self.events = Some(Vec::new()),
            (false, true) => self.events = None,
            _ => {}
        }
    }

    /// The events collected since the last call, oldest first.
    pub fn take_events(&mut self) -> Vec<SerialEvent> {
        self.events.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn after_access(&mut self) {
        self.refill();
        self.update_level();
    }

    /// The line is high while a condition is both pending and enabled, as on a real
    /// 16550. (vm-superio keeps a pending condition in IIR after IER disables it, so IIR
    /// alone would hold the line high, and a handler that quiets the UART by clearing
    /// IER would be interrupted again and again.)
    fn update_level(&mut self) {
        let state = self.serial.state();
        self.level = level_of(state.interrupt_identification, state.interrupt_enable);
    }

    /// Moves queued input into the receive FIFO as far as it has room.
    fn refill(&mut self) {
        while !self.pending_input.is_empty() && self.serial.fifo_capacity() > 0 {
            let (front, _) = self.pending_input.as_slices();
            let take = front.len().min(self.serial.fifo_capacity());
            match self.serial.enqueue_raw_bytes(&front[..take]) {
                // Loopback mode takes no input.
                Ok(0) | Err(_) => break,
                Ok(taken) => {
                    let bytes = self.pending_input.drain(..taken);
                    if let Some(events) = self.events.as_mut() {
                        events.extend(bytes.map(SerialEvent::Receive));
                    }
                }
            }
        }
    }

    /// Queues console input and moves what fits into the FIFO now.
    pub fn input(&mut self, bytes: &[u8]) {
        self.pending_input.extend(bytes);
        self.refill();
        self.update_level();
    }

    /// Bytes not yet read by the guest (FIFO and queue).
    pub fn input_backlog(&self) -> usize {
        self.pending_input.len() + (FIFO_SIZE - self.serial.fifo_capacity())
    }

    /// The interrupt line's level.
    pub fn level(&self) -> bool {
        self.level
    }

    /// Appends bytes to the output as if transmitted (a firmware console may share it).
    pub fn push_output(&mut self, bytes: &[u8]) {
        self.serial.writer_mut().extend_from_slice(bytes);
    }

    /// Takes everything transmitted since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.serial.writer_mut())
    }

    /// The state as data, for snapshots (output not yet taken is not state).
    pub fn save(&self) -> Uart16550State {
        let state = self.serial.state();
        Uart16550State {
            version: Uart16550State::VERSION,
            registers: [
                state.baud_divisor_low,
                state.baud_divisor_high,
                state.interrupt_enable,
                state.interrupt_identification,
                state.line_control,
                state.line_status,
                state.modem_control,
                state.modem_status,
                state.scratch,
            ],
            fifo: state.in_buffer,
            pending_input: self.pending_input.iter().copied().collect(),
            level: self.level,
        }
    }

    /// Rebuilds a UART from saved state, with empty output and no events collected, after
    /// checking that the state is one this model can be in.
    pub fn restore(
        config: Uart16550Config,
        state: &Uart16550State,
    ) -> Result<Uart16550, Uart16550StateError> {
        state.validate()?;
        let [baud_divisor_low, baud_divisor_high, interrupt_enable, interrupt_identification, line_control, line_status, modem_control, modem_status, scratch] =
            state.registers;
        let serial_state = SerialState {
            baud_divisor_low,
            baud_divisor_high,
            interrupt_enable,
            interrupt_identification,
            line_control,
            line_status,
            modem_control,
            modem_status,
            scratch,
            in_buffer: state.fifo.clone(),
        };
        let serial =
            Serial::from_state(&serial_state, NoTrigger, NoEvents, Vec::new()).map_err(|_| {
                Uart16550StateError::FifoTooLong {
                    len: state.fifo.len(),
                }
            })?;
        Ok(Uart16550 {
            config,
            serial,
            pending_input: state.pending_input.iter().copied().collect(),
            level: state.level,
            events: None,
        })
    }

    fn register_of_offset(&self, offset: u64) -> Option<u8> {
        u8::try_from(offset >> self.config.reg_shift)
            .ok()
            .filter(|&index| u16::from(index) < REGISTER_COUNT)
    }
}

/// The interrupt line: a condition both pending in IIR and enabled in IER.
fn level_of(identification: u8, enable: u8) -> bool {
    let transmitter_empty = identification & IIR_THR_EMPTY != 0 && enable & IER_THR_EMPTY != 0;
    let data_available =
        identification & IIR_DATA_AVAILABLE != 0 && enable & IER_DATA_AVAILABLE != 0;
    identification & IIR_NONE == 0 && (transmitter_empty || data_available)
}

impl MmioDevice for Uart16550 {
    fn read(&mut self, offset: u64, _size: u8, _now: u64) -> u64 {
        match self.register_of_offset(offset) {
            Some(index) => u64::from(self.read_register(index)),
            None => 0,
        }
    }

    fn write(&mut self, offset: u64, _size: u8, value: u64, _now: u64) {
        if let Some(index) = self.register_of_offset(offset) {
            self.write_register(index, value as u8);
        }
    }
}

impl PortIoDevice for Uart16550 {
    fn read(&mut self, offset: u16, size: u8, _now: u64) -> u32 {
        (0..size.min(4)).fold(0, |value, byte| {
            let index = offset.saturating_add(u16::from(byte));
            let part = u8::try_from(index).map_or(0, |index| self.read_register(index));
            value | u32::from(part) << (8 * byte)
        })
    }

    fn write(&mut self, offset: u16, size: u8, value: u32, _now: u64) {
        for byte in 0..size.min(4) {
            if let Ok(index) = u8::try_from(offset.saturating_add(u16::from(byte))) {
                self.write_register(index, (value >> (8 * byte)) as u8);
            }
        }
    }
}

/// The UART's state as data. The serialized form is the one riscv64 snapshots have always
/// held for their UART (`registers`, `fifo`, `pending_input`, `level`); the version is
/// written only once it differs from 1, so version-1 states stay byte-identical.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Uart16550State {
    /// Layout version ([`Uart16550State::VERSION`]).
    #[serde(
        default = "Uart16550State::first_version",
        skip_serializing_if = "Uart16550State::is_first_version"
    )]
    pub version: u32,
    /// Divisor latch low and high, IER, IIR, LCR, LSR, MCR, MSR, scratch.
    pub registers: [u8; 9],
    /// The receive FIFO, oldest byte first.
    pub fifo: Vec<u8>,
    /// Console input queued behind the FIFO.
    pub pending_input: Vec<u8>,
    /// The interrupt line.
    pub level: bool,
}

impl Uart16550State {
    /// The layout this build writes and reads.
    pub const VERSION: u32 = 1;

    fn first_version() -> u32 {
        1
    }

    fn is_first_version(version: &u32) -> bool {
        *version == 1
    }

    /// Checks that the state is one the model can be in: this layout version, a FIFO that
    /// fits, register bits the model can set, a line status and interrupt line that agree
    /// with the FIFO and registers, and queued input only behind a full FIFO (or in
    /// loopback mode, which takes no input).
    pub fn validate(&self) -> Result<(), Uart16550StateError> {
        use Uart16550StateError as E;
        if self.version != Self::VERSION {
            return Err(E::Version {
                found: self.version,
            });
        }
        if self.fifo.len() > FIFO_SIZE {
            return Err(E::FifoTooLong {
                len: self.fifo.len(),
            });
        }
        let [_, _, enable, identification, _, line_status, modem_control, _, _] = self.registers;
        let register = |name, value| Err(E::Register { name, value });
        if enable & !IER_VALID != 0 {
            return register("interrupt enable", enable);
        }
        if !matches!(identification, 0x01 | 0x02 | 0x04 | 0x06) {
            return register("interrupt identification", identification);
        }
        if line_status & !LSR_VALID != 0 {
            return register("line status", line_status);
        }
        if (line_status & LSR_DATA_READY != 0) == self.fifo.is_empty() {
            return Err(E::DataReady {
                fifo: self.fifo.len(),
            });
        }
        if self.level != level_of(identification, enable) {
            return Err(E::Level { level: self.level });
        }
        let loopback = modem_control & MCR_LOOP != 0;
        if !self.pending_input.is_empty() && self.fifo.len() < FIFO_SIZE && !loopback {
            return Err(E::QueuedInputWithRoom {
                queued: self.pending_input.len(),
                fifo: self.fifo.len(),
            });
        }
        Ok(())
    }
}

/// A saved UART state that cannot be restored.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Uart16550StateError {
    /// A layout this build does not read.
    #[error("the UART state has layout version {found}, but this build reads version {}; make the snapshot or recording again with this build", Uart16550State::VERSION)]
    Version {
        /// The version found.
        found: u32,
    },
    /// More bytes in the FIFO than it holds.
    #[error("the UART state's receive FIFO holds {len} bytes, more than the 16550's {FIFO_SIZE}")]
    FifoTooLong {
        /// Bytes found.
        len: usize,
    },
    /// A register value the model never produces.
    #[error(
        "the UART state's {name} register holds {value:#04x}, which the 16550 model never produces"
    )]
    Register {
        /// The register.
        name: &'static str,
        /// Its value.
        value: u8,
    },
    /// The line status' data-ready bit disagrees with the FIFO.
    #[error("the UART state's data-ready bit disagrees with its receive FIFO ({fifo} bytes)")]
    DataReady {
        /// Bytes in the FIFO.
        fifo: usize,
    },
    /// The interrupt line disagrees with IIR and IER.
    #[error(
        "the UART state's interrupt line is {level} but its interrupt registers say otherwise"
    )]
    Level {
        /// The level found.
        level: bool,
    },
    /// Input queued while the FIFO had room.
    #[error("the UART state queues {queued} input bytes while its receive FIFO has room ({fifo} of {FIFO_SIZE} bytes)")]
    QueuedInputWithRoom {
        /// Bytes queued.
        queued: usize,
        /// Bytes in the FIFO.
        fifo: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const IER: u8 = 1;
    const LCR: u8 = 3;
    const MCR: u8 = 4;
    const LSR: u8 = 5;
    const MMIO: Uart16550Config = Uart16550Config {
        reg_shift: 0,
        irq: 10,
    };

    fn uart() -> Uart16550 {
        Uart16550::new(MMIO)
    }

    #[test]
    fn transmitted_bytes_reach_the_output() {
        let mut uart = uart();
        uart.write_register(0, b'h');
        uart.write_register(0, b'i');
        assert_eq!(uart.take_output(), b"hi");
        assert!(uart.take_output().is_empty());
    }

    #[test]
    fn input_beyond_the_fifo_waits_and_raises_the_line_when_enabled() {
        let mut uart = uart();
        uart.write_register(IER, 1);
        uart.input(&[b'x'; 100]);
        assert!(uart.level());
        assert_eq!(uart.input_backlog(), 100);
        let mut read = 0;
        while uart.read_register(LSR) & 1 != 0 {
            assert_eq!(uart.read_register(0), b'x');
            read += 1;
        }
        assert_eq!(read, 100);
        assert!(!uart.level());
    }

    #[test]
    fn disabling_an_interrupt_in_ier_lowers_the_line() {
        let mut uart = uart();
        uart.write_register(IER, 2); // transmitter empty: pending at once
        assert!(uart.level());
        uart.write_register(IER, 0);
        assert!(!uart.level());
        uart.write_register(IER, 2);
        assert!(uart.level());
        uart.input(b"x");
        uart.write_register(IER, 1); // data available only
        assert!(uart.level());
        assert_eq!(uart.read_register(0), b'x');
        assert!(!uart.level());
    }

    #[test]
    fn events_report_input_reads_writes_and_sends_in_order() {
        let mut uart = uart();
        uart.input(b"a");
        uart.collect_events(true);
        uart.input(b"b");
        assert_eq!(uart.read_register(0), b'a');
        uart.write_register(0, b'c');
        // The divisor latch is not the data register.
        uart.write_register(LCR, LCR_DLAB);
        uart.write_register(0, 1);
        uart.write_register(LCR, 3);
        // In loopback mode a written byte is received, not sent.
        uart.write_register(MCR, MCR_LOOP);
        uart.write_register(0, b'd');
        use SerialEvent::*;
        assert_eq!(
            uart.take_events(),
            [
                Receive(b'b'),
                Read(b'a'),
                Write(b'c'),
                Send(b'c'),
                Write(b'd')
            ]
        );
        assert!(uart.take_events().is_empty());
        uart.collect_events(false);
        uart.write_register(0, b'e');
        assert!(uart.take_events().is_empty());
    }

    #[test]
    fn registers_follow_the_stride_in_a_memory_mapped_window() {
        let mut uart = Uart16550::new(Uart16550Config {
            reg_shift: 2,
            irq: 0,
        });
        assert_eq!(uart.config().register_span(), 32);
        MmioDevice::write(&mut uart, 7 * 4, 4, 0x5a, 0);
        assert_eq!(MmioDevice::read(&mut uart, 7 * 4, 4, 0), 0x5a);
        assert_eq!(uart.read_register(7), 0x5a);
        // Past the eight registers: nothing.
        MmioDevice::write(&mut uart, 8 * 4, 1, 0x77, 0);
        assert_eq!(MmioDevice::read(&mut uart, 8 * 4, 1, 0), 0);
        assert_eq!(MmioDevice::read(&mut uart, u64::MAX, 1, 0), 0);
        MmioDevice::write(&mut uart, 0, 4, 0x141, 0);
        assert_eq!(uart.take_output(), b"A");
    }

    #[test]
    fn wide_port_accesses_touch_consecutive_registers() {
        let mut uart = Uart16550::new(Uart16550Config {
            reg_shift: 0,
            irq: 4,
        });
        // Scratch (7) then past the device: a 16-bit write at offset 6 writes MSR (ignored)
        // and scratch.
        PortIoDevice::write(&mut uart, 6, 2, 0x9900, 0);
        assert_eq!(uart.read_register(7), 0x99);
        PortIoDevice::write(&mut uart, 0, 1, u32::from(b'Z'), 0);
        assert_eq!(uart.take_output(), b"Z");
        // LCR (3) and MCR (4) as one 16-bit read: defaults 0x03 and 0x08.
        assert_eq!(PortIoDevice::read(&mut uart, 3, 2, 0), 0x0803);
    }

    fn busy_uart() -> Uart16550 {
        let mut uart = uart();
        uart.write_register(IER, 3);
        uart.write_register(7, 0x42);
        uart.input(&[b'q'; 70]);
        uart.read_register(0);
        uart
    }

    #[test]
    fn state_round_trips_and_restores_the_same_behaviour() {
        let mut original = busy_uart();
        let state = original.save();
        assert_eq!(state.pending_input.len(), 5);
        let mut restored = Uart16550::restore(MMIO, &state).unwrap();
        assert_eq!(restored.save(), state);
        for _ in 0..70 {
            assert_eq!(restored.read_register(0), original.read_register(0));
            assert_eq!(restored.level(), original.level());
        }
        assert_eq!(restored.save(), original.save());
    }

    #[test]
    fn version_one_state_keeps_the_serialized_form_snapshots_hold() {
        let json = serde_json::to_string(&uart().save()).unwrap();
        assert_eq!(
            json,
            r#"{"registers":[12,0,0,1,3,96,8,176,0],"fifo":[],"pending_input":[],"level":false}"#
        );
        let back: Uart16550State = serde_json::from_str(&json).unwrap();
        assert_eq!(back.version, 1);
        assert_eq!(back, uart().save());
    }

    #[test]
    fn a_newer_layout_is_refused_with_its_version() {
        let json = r#"{"version":2,"registers":[12,0,0,1,3,96,8,176,0],"fifo":[],"pending_input":[],"level":false}"#;
        let state: Uart16550State = serde_json::from_str(json).unwrap();
        let error = Uart16550::restore(MMIO, &state).unwrap_err();
        assert_eq!(error, Uart16550StateError::Version { found: 2 });
        assert!(error.to_string().contains("version 2"), "{error}");
    }

    #[test]
    fn corrupt_states_are_refused() {
        let good = busy_uart().save();
        assert!(good.validate().is_ok());
        let corrupt = |change: fn(&mut Uart16550State)| {
            let mut state = good.clone();
            change(&mut state);
            Uart16550::restore(MMIO, &state).unwrap_err()
        };
        assert!(matches!(
            corrupt(|s| s.fifo = vec![0; 65]),
            Uart16550StateError::FifoTooLong { len: 65 }
        ));
        assert!(matches!(
            corrupt(|s| s.registers[2] = 0x10),
            Uart16550StateError::Register { .. }
        ));
        assert!(matches!(
            corrupt(|s| s.registers[3] = 0x00),
            Uart16550StateError::Register { .. }
        ));
        assert!(matches!(
            corrupt(|s| s.registers[5] = 0xff),
            Uart16550StateError::Register { .. }
        ));
        assert!(matches!(
            corrupt(|s| s.registers[5] &= !1),
            Uart16550StateError::DataReady { .. }
        ));
        assert!(matches!(
            corrupt(|s| s.level = !s.level),
            Uart16550StateError::Level { .. }
        ));
        assert!(matches!(
            corrupt(|s| {
                s.fifo.truncate(10);
            }),
            Uart16550StateError::QueuedInputWithRoom {
                queued: 5,
                fifo: 10
            }
        ));
        let error = corrupt(|s| s.registers[3] = 0x08);
        assert!(
            error.to_string().contains("interrupt identification"),
            "{error}"
        );
    }
}
