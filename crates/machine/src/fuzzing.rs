//! What the file-format fuzz targets do with their input (`fuzz/fuzz_targets/
//! snapshot_archive.rs` and `recording.rs`), shared with the tests that run it over the
//! committed corpus (`tests/fuzz_corpus.rs`). Untrusted bytes are read as a snapshot or a
//! recording file and, when that succeeds, used: a snapshot is loaded into a machine of its
//! size and run briefly. Errors are the expected outcome; a panic, a hang or an allocation
//! beyond what the input justifies is a bug.

use pandare_core::archive::{self, Archive};
use pandare_core::Machine;
use pandare_riscv::virt::{Virt, VirtConfig, ARCHITECTURE};

use crate::replay;

/// The largest guest a fuzz input may make the target build (a bigger one is refused
/// like any other mismatch, without allocating it).
pub const LARGEST_FUZZ_MEMORY: u64 = 64 << 20;

/// Instructions a loaded snapshot runs.
pub const FUZZ_RUN: u64 = 10_000;

/// `data` as a snapshot file: parsed, then loaded into a blank machine of its memory size
/// and run for [`FUZZ_RUN`] instructions. Returns why it was refused, if it was.
pub fn snapshot_archive(data: &[u8]) -> Result<(), String> {
    let archive = Archive::from_bytes(data, archive::SNAPSHOT_KIND, "fuzz input")
        .map_err(|e| e.to_string())?;
    let snapshot = archive::snapshot_from_archive(&archive).map_err(|e| e.to_string())?;
    load_and_run(&snapshot)
}

/// `data` as a recording file: parsed and validated, then its starting snapshot loaded and
/// run as [`snapshot_archive`] does (replaying it whole could take as long as the recording
/// says, which is not a fuzzing question).
pub fn recording_archive(data: &[u8]) -> Result<(), String> {
    let archive =
        Archive::from_bytes(data, replay::ARCHIVE_KIND, "fuzz input").map_err(|e| e.to_string())?;
    let recording =
        replay::recording_from_archive(&archive, "fuzz input").map_err(|e| e.to_string())?;
    load_and_run(&recording.start)
}

fn load_and_run(snapshot: &pandare_core::Snapshot) -> Result<(), String> {
    if snapshot.architecture != ARCHITECTURE || snapshot.memory_bytes > LARGEST_FUZZ_MEMORY {
        return Err("not a small riscv64 machine".to_string());
    }
    let config = VirtConfig {
        ram_bytes: snapshot.memory_bytes,
        ..VirtConfig::default()
    };
    let mut machine = Virt::new_blank(config).map_err(|e| e.to_string())?;
    machine.load_snapshot(snapshot).map_err(|e| e.to_string())?;
    machine.run(FUZZ_RUN);
    Ok(())
}
