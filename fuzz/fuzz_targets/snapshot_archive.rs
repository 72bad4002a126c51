//! Snapshot files: the archive parser (header, checksum, sections, decompression), the
//! snapshot decoder, and the machine-state restore of a riscv64 machine of the snapshot's
//! size, which then runs briefly. Refusals are expected; a panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pandare::fuzzing::snapshot_archive(data);
});
