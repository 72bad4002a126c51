//! The snapshot-archive and recording fuzz targets' logic ([`pandare::fuzzing`]) as
//! ordinary tests, over the committed corpus in `fuzz/corpus/{snapshot_archive,recording}`
//! and mutations of each file: truncations, and bytes changed with the length and checksum
//! rewritten so that the change reaches the parser behind them. Nothing may panic, and a
//! seed file must load.
//!
//! `PANDARE_WRITE_FUZZ_SEEDS=1 cargo test -p pandare --test fuzz_corpus write_seeds --
//! --ignored` writes the seed files again (a bare-metal machine's snapshots and a
//! recording of it).

use std::path::{Path, PathBuf};

use pandare::fuzzing::{recording_archive, snapshot_archive};
use pandare_core::archive::reseal;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect()
}

/// The inputs derived from one file: itself, truncations, and single-byte changes at
/// positions spread over the file, each resealed.
fn mutations(data: &[u8]) -> Vec<Vec<u8>> {
    let mut inputs = vec![data.to_vec()];
    let length = data.len();
    for cut in [
        0,
        1,
        8,
        19,
        20,
        24,
        length / 3,
        length / 2,
        length.saturating_sub(1),
    ] {
        inputs.push(data[..cut.min(length)].to_vec());
    }
    for step in 0..64 {
        let at = step * length / 64;
        for change in [0x01u8, 0x80, 0xff] {
            let mut mutated = data.to_vec();
            if let Some(byte) = mutated.get_mut(at) {
                *byte ^= change;
            }
            reseal(&mut mutated);
            inputs.push(mutated);
        }
    }
    inputs
}

/// Inputs with one section's decoded content changed (a byte flipped at positions spread
/// over it, or the section cut short) and the archive rebuilt, so the change reaches the
/// state, RAM and log decoders rather than stopping at decompression.
fn section_mutations(data: &[u8], kind: &str) -> Vec<Vec<u8>> {
    use pandare_core::archive::{Archive, META_SECTION, RAM_SECTION, STATE_SECTION};
    let Ok(archive) = Archive::from_bytes(data, kind, "seed") else {
        return Vec::new();
    };
    let names = [META_SECTION, STATE_SECTION, RAM_SECTION, "log"];
    let present: Vec<&str> = names
        .into_iter()
        .filter(|name| archive.section(name).is_some())
        .collect();
    let rebuilt = |changed: &str, content: Vec<u8>| {
        let mut out = Archive::new(kind);
        for name in &present {
            let bytes = if *name == changed {
                content.clone()
            } else {
                archive.section(name).unwrap().to_vec()
            };
            out.push(name, bytes);
        }
        out.to_bytes()
    };
    let mut inputs = Vec::new();
    for name in &present {
        let content = archive.section(name).unwrap();
        for step in 0..48 {
            let at = step * content.len() / 48;
            let mut changed = content.to_vec();
            if let Some(byte) = changed.get_mut(at) {
                *byte ^= 0x41;
            }
            inputs.push(rebuilt(name, changed));
        }
        inputs.push(rebuilt(name, content[..content.len() / 2].to_vec()));
        inputs.push(rebuilt(name, Vec::new()));
    }
    inputs
}

fn check(target: &str, kind: &str, run: fn(&[u8]) -> Result<(), String>) {
    let files = corpus(target);
    assert!(
        files.len() >= 2,
        "fuzz/corpus/{target} has {} files",
        files.len()
    );
    for (path, data) in files {
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("seed-")
        {
            run(&data).unwrap_or_else(|e| panic!("{}: a seed must load: {e}", path.display()));
        }
        let inputs = mutations(&data)
            .into_iter()
            .chain(section_mutations(&data, kind));
        for (index, input) in inputs.enumerate() {
            let outcome = std::panic::catch_unwind(|| run(&input));
            assert!(
                outcome.is_ok(),
                "{} mutation {index} panicked",
                path.display()
            );
        }
    }
}

#[test]
fn snapshot_archive_corpus() {
    check("snapshot_archive", "snapshot", snapshot_archive);
}

#[test]
fn recording_corpus() {
    check("recording", "recording", recording_archive);
}

#[test]
#[ignore = "writes the seed files; run by hand"]
fn write_seeds() {
    use pandare::console::Console;
    use pandare_core::Machine;
    use pandare_riscv::virt::{Virt, VirtConfig};

    if std::env::var_os("PANDARE_WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    // A loop that stores a counter to RAM and reads the UART: addi t0,t0,1;
    // sd t0,256(zero+RAM); lbu t1,0(UART); j loop.
    let program: Vec<u8> = [
        0x8000_0537u32, // lui a0, 0x80000
        0x1000_05b7,    // lui a1, 0x10000
        0x0012_8293,    // addi t0, t0, 1
        0x1055_3023,    // sd t0, 256(a0)
        0x0005_c303,    // lbu t1, 0(a1)
        0xff5f_f06f,    // j -12
    ]
    .iter()
    .flat_map(|word| word.to_le_bytes())
    .collect();
    let config = VirtConfig {
        ram_bytes: 16 << 20,
        ..VirtConfig::default()
    };
    let mut machine = Virt::new_bare_metal(config, &program).unwrap();
    std::fs::create_dir_all(corpus_dir("snapshot_archive")).unwrap();
    std::fs::create_dir_all(corpus_dir("recording")).unwrap();
    let path = corpus_dir("snapshot_archive").join("seed-start");
    pandare_core::archive::write_snapshot(&path, &machine.save_snapshot()).unwrap();
    machine.run(5000);
    let path = corpus_dir("snapshot_archive").join("seed-running");
    pandare_core::archive::write_snapshot(&path, &machine.save_snapshot()).unwrap();

    let prompt = regex::bytes::Regex::new("never printed").unwrap();
    let mut console = Console::new(Box::new(machine), prompt);
    console.start_recording();
    console.run_slice(1000);
    console.type_bytes(b"input");
    console.run_slice(3000);
    let recording = console.finish_recording(16, "").unwrap();
    let path = corpus_dir("recording").join("seed-session");
    pandare::replay::write_recording(&path, &recording).unwrap();
}
