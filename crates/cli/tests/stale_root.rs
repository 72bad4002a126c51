//! A generic image's `root` snapshot made by a pandare with another machine-state version
//! (for instance before the counters of issue 15) is made again by `panda run`, rather
//! than refused or, worse, used: the guest in it would keep the old machine's setup.

mod common;

use common::{generic_image, panda, run, TempDir, BOOT_LIMIT};
use pandare::store::SnapshotStore;
use pandare::{Architecture, MachineConfig};

#[test]
fn a_root_snapshot_of_another_state_version_is_made_again() {
    let image = generic_image();
    let cache = TempDir::new("stale-root");
    // The image, linked into a cache of its own.
    let images = cache.path("images/riscv64");
    std::fs::create_dir_all(&images).unwrap();
    std::os::unix::fs::symlink(&image.kernel, images.join("kernel")).unwrap();
    std::os::unix::fs::symlink(&image.initrd, images.join("initrd")).unwrap();
    std::fs::copy(
        image.directory.join("image.json"),
        images.join("image.json"),
    )
    .unwrap();

    // A root snapshot whose machine state says version 1.
    let config = MachineConfig {
        architecture: Architecture::Riscv64,
        memory_mib: image.memory_mib,
        kernel: image.kernel.clone(),
        initrd: Some(image.initrd.clone()),
        append: image.append.clone(),
        prompt: image.prompt.clone(),
    };
    let mut snapshot = config.build_blank().unwrap().save_snapshot();
    let state = String::from_utf8(snapshot.state.clone()).unwrap();
    assert!(state.starts_with("{\"version\":2,"), "{state}");
    snapshot.state = state
        .replacen("{\"version\":2,", "{\"version\":1,", 1)
        .into_bytes();
    SnapshotStore::in_directory(cache.path("snapshots/riscv64"))
        .save("root", snapshot)
        .unwrap();

    let run_time = || {
        let mut command = panda();
        command.env("PANDARE_CACHE_DIR", &cache.0).args([
            "run",
            "--generic",
            "riscv64",
            "--cmd",
            "time true; echo rc=$?",
        ]);
        run(command, BOOT_LIMIT)
    };
    let first = run_time();
    assert!(first.status.success(), "{first:?}");
    assert!(
        first.stderr.contains("made by another version of pandare"),
        "{first:?}"
    );
    assert!(
        first.stdout.contains("real") && first.stdout.contains("rc=0"),
        "{first:?}"
    );
    // The snapshot made again is of this version: used as it is the next time.
    let second = run_time();
    assert!(second.status.success(), "{second:?}");
    assert!(!second.stderr.contains("another version"), "{second:?}");
    assert!(second.stdout.contains("rc=0"), "{second:?}");
}
