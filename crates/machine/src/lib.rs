//! pandare: the facade over every guest architecture.
//!
//! [`MachineConfig`] names a guest (a generic image or one's own kernel and initrd) and
//! [`MachineConfig::build`] turns it into a running [`Machine`]; [`driver`] holds what every
//! front end does around it (defaults, the `root` snapshot, idle pacing). [`Console`] drives the
//! guest's serial console the way a user at a terminal would: wait for the shell prompt,
//! type a command, collect exactly its output. The CLI, the Python package and the
//! integration tests all build machines through this crate.
#![warn(missing_docs)]

pub mod bench;
pub mod config;
pub mod console;
pub mod driver;
pub mod exec;
pub mod fuzzing;
pub mod monitor;
pub mod replay;
pub mod store;

pub use config::{Architecture, BuildError, MachineConfig, DEFAULT_PROMPT};
pub use console::{Console, ConsoleError};
pub use driver::{DriverError, GuestOptions};
pub use pandare_core::{
    ArchDescription, Convention, Exit, GuestAbi, Machine, ShutdownKind, Snapshot, SnapshotError,
};
