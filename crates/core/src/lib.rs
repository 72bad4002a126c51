//! pandare-core: the architecture-neutral machine core.
//!
//! It owns what every guest architecture shares: guest RAM, the MMIO device seam, virtual
//! time derived from the retired-instruction count, the exit reasons of a run slice, the
//! [`Machine`] trait, the [`GuestAbi`] seam through which arch-neutral code learns an
//! architecture's registers and conventions, and PANDA's semantics written once: the firing
//! protocol every executor calls into ([`execution`]) and the board shell that turns an
//! architecture's platform ([`Board`]) into a [`Machine`] ([`Shell`]). It never knows an ISA:
//! no register names, page-table formats or instruction encodings live here.
#![warn(missing_docs)]

pub mod abi;
pub mod archive;
pub mod board;
pub mod execution;
pub mod files;
pub mod instrument;
pub mod machine;
pub mod memory;
pub mod snapshot;
pub mod time;

pub use abi::{
    ArchDescription, Convention, Endianness, GuestAbi, KernelSymbols, LinuxAbi, RegisterClass,
    RegisterInfo,
};
pub use board::{Board, Shell};
pub use machine::{Exit, Fnv64, Machine, ShutdownKind};
pub use memory::{
    MmioDevice, Page, PortIoDevice, Ram, RamImage, RamImageMismatch, SerialEvent, PAGE_SIZE,
};
pub use snapshot::{Snapshot, SnapshotError};
pub use time::VirtualClock;
