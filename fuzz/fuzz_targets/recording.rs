//! Recording files: the archive parser, the event-log decoder and its validation, and the
//! recording's starting snapshot loaded and run briefly. Refusals are expected; a panic is
//! a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pandare::fuzzing::recording_archive(data);
});
