//! The fuzz target's logic ([`pandare_x86::fuzzing::execute_bytes`]) as ordinary tests: over
//! the committed seed corpus in `fuzz/corpus/x86_execute` and over random byte strings in
//! every privilege/mode/run combination. None of it may panic or leave an invalid state.
//! `PANDARE_FUZZ_SEED` and `PANDARE_FUZZ_PROGRAMS` make the random test longer or different.

use std::path::Path;

use pandare_x86::fuzzing::execute_bytes;

#[test]
fn execute_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/x86_execute");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{} has {} files",
        dir.display(),
        files.len()
    );
    for path in files {
        let data = std::fs::read(&path).unwrap();
        std::panic::catch_unwind(|| execute_bytes(&data))
            .unwrap_or_else(|_| panic!("{} panicked", path.display()));
    }
}

#[test]
fn execute_random_code() {
    let mut seed: u64 = std::env::var("PANDARE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x0123_4567_89ab_cdef);
    let programs: usize = std::env::var("PANDARE_FUZZ_PROGRAMS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3000);
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for n in 0..programs {
        let len = 2 + (next() % 48) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        data[0] = (n % 8) as u8;
        if std::panic::catch_unwind(|| execute_bytes(&data)).is_err() {
            panic!("input {data:02x?} panicked");
        }
    }
}
