//! pandare-core: the architecture-neutral machine core.
//!
//! It owns what every guest architecture shares: guest RAM, the MMIO device seam, virtual
//! time derived from the retired-instruction count, the exit reasons of a run slice, and the
//! [`Machine`] trait each architecture's platform implements. It never knows an ISA: no
//! register names, page-table formats or instruction encodings live here.
#![warn(missing_docs)]

pub mod archive;
pub mod files;
pub mod instrument;
pub mod machine;
pub mod memory;
pub mod snapshot;
pub mod time;

pub use machine::{Exit, Fnv64, Machine, ShutdownKind};
pub use memory::{MmioDevice, Page, Ram, RamImage, RamImageMismatch, PAGE_SIZE};
pub use snapshot::{Snapshot, SnapshotError};
pub use time::VirtualClock;
