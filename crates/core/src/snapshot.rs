//! Whole-machine snapshots: in memory (page-sharing RAM images, so taking and reverting
//! cost only what changed) and on disk (see [`crate::archive`]).

use crate::memory::RamImage;

/// Everything needed to put a machine back exactly as it was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Architecture name (`riscv64`); a snapshot only loads into the same architecture.
    pub architecture: String,
    /// Guest RAM size in bytes; a snapshot only loads into a machine of the same size.
    pub memory_bytes: u64,
    /// The architecture's serialized CPU, device, clock and pending-input state.
    pub state: Vec<u8>,
    /// RAM contents.
    pub ram: RamImage,
}

/// Why a snapshot could not be taken, loaded, read or written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// Made for another architecture.
    #[error("the snapshot is of a {found} machine, not {expected}")]
    WrongArchitecture {
        /// This machine's architecture.
        expected: String,
        /// The snapshot's.
        found: String,
    },
    /// Made with another memory size.
    #[error("the snapshot is of a machine with {found} MiB of RAM, this one has {expected} MiB; boot with --mem {found}")]
    WrongMemorySize {
        /// This machine's RAM in MiB.
        expected: u64,
        /// The snapshot's.
        found: u64,
    },
    /// The serialized state is malformed or inconsistent.
    #[error("the snapshot's machine state is invalid: {0}")]
    InvalidState(String),
    /// Made by a pandare whose machine state this build does not read (a generic
    /// image's `root` snapshot is then made again).
    #[error("the snapshot was made by another version of pandare (machine state version {found}; this build reads version {expected}); boot the guest afresh and take the snapshot again")]
    StateVersion {
        /// The version in the snapshot.
        found: u32,
        /// The version this build reads.
        expected: u32,
    },
    /// The file is not a pandare archive of the kind expected, is damaged, or is of an
    /// unsupported format version.
    #[error("{path}: {problem}")]
    Archive {
        /// The file.
        path: String,
        /// What is wrong with it, and what to do.
        problem: crate::archive::ArchiveError,
    },
    /// The file is not a pandare snapshot, is damaged, or is of an unsupported version.
    #[error("{path}: {problem}")]
    BadFile {
        /// The file.
        path: String,
        /// What is wrong with it, and what to do.
        problem: String,
    },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}
