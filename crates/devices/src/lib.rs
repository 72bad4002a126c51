//! pandare-devices: device models that more than one platform uses, and the buses that
//! map devices at addresses.
//!
//! - [`bus`]: [`MmioBus`] (guest-physical windows) and [`PortBus`] (x86 port I/O), each an
//!   exact address-range map from addresses to keys the board chooses; the board hands out
//!   the device behind a key as a [`pandare_core::MmioDevice`] or
//!   [`pandare_core::PortIoDevice`] and keeps concrete access to its devices.
//! - [`uart_16550`]: the 16550 UART (vm-superio's register model), usable memory-mapped with
//!   a register stride or on ports, with its console input queue, its validated and
//!   versioned state, and the [`pandare_core::SerialEvent`]s behind PANDA's
//!   `replay_serial_*` callbacks.
//!
//! Devices here own no thread, file or clock: time comes in with each access (`now`, in
//! virtual time units), input is queued by the machine, output is taken by the machine.
//! Nothing here knows an ISA.
//!
//! ```
//! use pandare_core::PortIoDevice;
//! use pandare_devices::{PortBus, PortDevices, Uart16550, Uart16550Config};
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Eq)]
//! enum Port { Com1 }
//! struct Pc { com1: Uart16550 }
//! impl PortDevices<Port> for Pc {
//!     fn port_device(&mut self, port: Port) -> &mut dyn PortIoDevice {
//!         match port { Port::Com1 => &mut self.com1 }
//!     }
//! }
//!
//! let mut bus = PortBus::new();
//! bus.insert(0x3f8, 8, Port::Com1).unwrap();
//! let mut pc = Pc { com1: Uart16550::new(Uart16550Config { reg_shift: 0, irq: 4 }) };
//! bus.write(&mut pc, 0x3f8, 1, u32::from(b'A'), 0);
//! assert_eq!(pc.com1.take_output(), b"A");
//! assert_eq!(bus.read(&mut pc, 0x2f8, 1, 0), 0xff); // nothing at COM2
//! ```
#![warn(missing_docs)]

pub mod bus;
pub mod uart_16550;

pub use bus::{BusError, MmioBus, MmioDevices, PortBus, PortDevices};
pub use uart_16550::{Uart16550, Uart16550Config, Uart16550State, Uart16550StateError};
