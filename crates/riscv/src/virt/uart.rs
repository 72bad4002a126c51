//! The 16550 UART: vm-superio's model with a level-sensitive interrupt line and an input
//! queue that refills the receive FIFO only at guest-determined points.

use std::collections::VecDeque;

use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};

/// Size of the register window.
pub const SIZE: u64 = 0x100;

// Interrupt identification (IIR) and enable (IER) bits.
const IIR_NONE: u8 = 1;
const IIR_THR_EMPTY: u8 = 1 << 1;
const IIR_DATA_AVAILABLE: u8 = 1 << 2;
const IER_DATA_AVAILABLE: u8 = 1;
const IER_THR_EMPTY: u8 = 1 << 1;
/// Line control: the divisor latch is mapped over the data register.
const LCR_DLAB: u8 = 1 << 7;
/// Line status: a received byte is waiting.
const LSR_DATA_READY: u8 = 1;

/// What the UART did, as PANDA's replay-time serial callbacks report it.
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

/// vm-superio signals interrupts through a trigger; the line level is read from the
/// device's interrupt identification instead, so the trigger has nothing to do.
#[derive(Debug, Default)]
pub struct NoTrigger;

impl Trigger for NoTrigger {
    type E = std::convert::Infallible;
    fn trigger(&self) -> Result<(), Self::E> {
        Ok(())
    }
}

/// The console UART.
pub struct Uart {
    serial: Serial<NoTrigger, NoEvents, Vec<u8>>,
    /// Bytes typed but not yet in the receive FIFO.
    pending_input: VecDeque<u8>,
    level: bool,
    /// Events since the machine last took them, while it collects them.
    events: Option<Vec<SerialEvent>>,
}

impl std::fmt::Debug for Uart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uart")
            .field("pending_input", &self.pending_input.len())
            .field("level", &self.level)
            .finish_non_exhaustive()
    }
}

impl Default for Uart {
    fn default() -> Self {
        Uart {
            serial: Serial::new(NoTrigger, Vec::new()),
            pending_input: VecDeque::new(),
            level: false,
            events: None,
        }
    }
}

impl Uart {
    /// Register read.
    pub fn read(&mut self, offset: u64) -> u8 {
        let received = self.events.is_some() && offset == 0 && {
            let state = self.serial.state();
            state.line_control & LCR_DLAB == 0 && state.line_status & LSR_DATA_READY != 0
        };
        let value = self.serial.read(offset as u8);
        if let (true, Some(events)) = (received, self.events.as_mut()) {
            events.push(SerialEvent::Read(value));
        }
        self.after_access();
        value
    }

    /// Register write.
    pub fn write(&mut self, offset: u64, value: u8) {
        let data = self.events.is_some()
            && offset == 0
            && self.serial.state().line_control & LCR_DLAB == 0;
        let sent_before = self.serial.writer_mut().len();
        // Writing to a Vec cannot fail and the trigger is infallible.
        let _ = self.serial.write(offset as u8, value);
        if let (true, Some(events)) = (data, self.events.as_mut()) {
            events.push(SerialEvent::Write(value));
            // In loopback mode the byte goes to the receive side instead of the output.
            if self.serial.writer_mut().len() > sent_before {
                events.push(SerialEvent::Send(value));
            }
        }
        self.after_access();
    }

    /// Starts (`true`) or stops collecting [`SerialEvent`]s.
    pub fn collect_events(&mut self, collect: bool) {
        match (collect, self.events.is_some()) {
            (true, false) => self.events = Some(Vec::new()),
            (false, true) => self.events = None,
            _ => {}
        }
    }

    /// The events collected since the last call.
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
        let (pending, enabled) = (state.interrupt_identification, state.interrupt_enable);
        let transmitter_empty = pending & IIR_THR_EMPTY != 0 && enabled & IER_THR_EMPTY != 0;
        let data_available = pending & IIR_DATA_AVAILABLE != 0 && enabled & IER_DATA_AVAILABLE != 0;
        self.level = pending & IIR_NONE == 0 && (transmitter_empty || data_available);
    }

    /// Moves queued input into the receive FIFO as far as it has room.
    fn refill(&mut self) {
        while !self.pending_input.is_empty() && self.serial.fifo_capacity() > 0 {
            let (front, _) = self.pending_input.as_slices();
            let take = front.len().min(self.serial.fifo_capacity());
            match self.serial.enqueue_raw_bytes(&front[..take]) {
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

    /// The state as data, for snapshots.
    pub(crate) fn save(&self) -> super::state::UartState {
        let state = self.serial.state();
        super::state::UartState {
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

    /// Rebuilds the UART from saved state (with empty output).
    pub(crate) fn restore(state: &super::state::UartState) -> Result<Uart, String> {
        let [baud_divisor_low, baud_divisor_high, interrupt_enable, interrupt_identification, line_control, line_status, modem_control, modem_status, scratch] =
            state.registers;
        let serial_state = vm_superio::serial::SerialState {
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
        let serial = Serial::from_state(&serial_state, NoTrigger, NoEvents, Vec::new())
            .map_err(|_| "UART receive FIFO larger than the device's".to_string())?;
        Ok(Uart {
            serial,
            pending_input: state.pending_input.iter().copied().collect(),
            level: state.level,
            events: None,
        })
    }

    /// Queues input bytes and fills the FIFO now.
    pub fn input(&mut self, bytes: &[u8]) {
        self.pending_input.extend(bytes);
        self.refill();
        self.update_level();
    }

    /// Bytes not yet read by the guest (FIFO and queue).
    pub fn input_backlog(&self) -> usize {
        self.pending_input.len() + (64 - self.serial.fifo_capacity())
    }

    /// The interrupt line.
    pub fn level(&self) -> bool {
        self.level
    }

    /// Appends bytes to the output as if transmitted (the SBI debug console shares it).
    pub fn push_output(&mut self, bytes: &[u8]) {
        self.serial.writer_mut().extend_from_slice(bytes);
    }

    /// Takes everything transmitted since the last call.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(self.serial.writer_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IER: u64 = 1;
    const LSR: u64 = 5;

    #[test]
    fn transmitted_bytes_reach_the_output() {
        let mut uart = Uart::default();
        uart.write(0, b'h');
        uart.write(0, b'i');
        assert_eq!(uart.take_output(), b"hi");
        assert!(uart.take_output().is_empty());
    }

    #[test]
    fn input_beyond_the_fifo_waits_and_raises_the_line_when_enabled() {
        let mut uart = Uart::default();
        uart.write(IER, 1);
        uart.input(&[b'x'; 100]);
        assert!(uart.level());
        assert_eq!(uart.input_backlog(), 100);
        let mut read = 0;
        while uart.read(LSR) & 1 != 0 {
            assert_eq!(uart.read(0), b'x');
            read += 1;
        }
        assert_eq!(read, 100);
        assert!(!uart.level());
    }

    #[test]
    fn disabling_an_interrupt_in_ier_lowers_the_line() {
        let mut uart = Uart::default();
        uart.write(IER, 2); // transmitter empty: pending at once
        assert!(uart.level());
        uart.write(IER, 0);
        assert!(!uart.level());
        uart.write(IER, 2);
        assert!(uart.level());
        uart.input(b"x");
        uart.write(IER, 1); // data available only
        assert!(uart.level());
        assert_eq!(uart.read(0), b'x');
        assert!(!uart.level());
    }
}
