//! Debian's amd64 kernels (bzImage: 6.1 with an XZ + x86 BCJ payload, 6.12 with ZSTD).
//!
//! The test suite cannot fetch these (the image builder only fetches the riscv64 guest's
//! packages), so this test is ignored by default and run by hand:
//!
//! ```text
//! # any directory holding vmlinuz-6.1.* and vmlinuz-6.12.* from Debian's
//! # linux-image-6.1.0-*-amd64 (bookworm) and linux-image-6.12.*-amd64 (trixie) packages
//! PANDARE_AMD64_KERNELS=/path/to/boot cargo test --release -p pandare-osi \
//!     --test profile_amd64 -- --ignored
//! ```

use pandare_osi::{ArgumentKind, Profile};

fn kernel(prefix: &str) -> Vec<u8> {
    let dir = std::env::var_os("PANDARE_AMD64_KERNELS").expect(
        "set PANDARE_AMD64_KERNELS to a directory with Debian's vmlinuz-6.1.* and vmlinuz-6.12.*",
    );
    let path = std::fs::read_dir(&dir)
        .expect("PANDARE_AMD64_KERNELS is a directory")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.to_string_lossy()));
    std::fs::read(path).expect("readable kernel")
}

/// Fields the walks read, with renamed ones as alternatives.
const FIELDS: &[(&str, &[&[&str]])] = &[
    (
        "task_struct",
        &[
            &["tasks"],
            &["pid"],
            &["tgid"],
            &["real_parent"],
            &["group_leader"],
            &["comm"],
            &["mm"],
            &["files"],
            &["start_time"],
            &["signal"],
            &["thread_node"],
            &["stack"],
        ],
    ),
    ("signal_struct", &[&["thread_head"]]),
    (
        "mm_struct",
        &[
            &["mm_mt"],
            &["pgd"],
            &["exe_file"],
            &["brk"],
            &["start_brk"],
            &["start_stack"],
            &["arg_start"],
            &["arg_end"],
            &["env_start"],
            &["env_end"],
            &["total_vm"],
        ],
    ),
    ("maple_tree", &[&["ma_root"]]),
    (
        "vm_area_struct",
        &[
            &["vm_start"],
            &["vm_end"],
            &["vm_flags"],
            &["vm_pgoff"],
            &["vm_file"],
            &["vm_ops"],
            &["vm_private_data"],
            &["vm_mm"],
        ],
    ),
    (
        "file",
        &[
            &["f_path.mnt"],
            &["f_path.dentry"],
            &["f_inode"],
            &["f_pos"],
        ],
    ),
    (
        "dentry",
        &[
            &["d_parent"],
            &["d_name.name"],
            &["d_name.len"],
            &["d_op"],
            &["d_inode"],
        ],
    ),
    ("dentry_operations", &[&["d_dname"]]),
    ("mount", &[&["mnt"], &["mnt_parent"], &["mnt_mountpoint"]]),
    ("vfsmount", &[&["mnt_root"]]),
    ("inode", &[&["i_ino"]]),
    ("files_struct", &[&["fdt"]]),
    ("fdtable", &[&["max_fds"], &["fd"]]),
    (
        "module",
        &[
            &["list"],
            &["name"],
            &["mem[0].base", "core_layout.base"],
            &["mem[0].size", "core_layout.size"],
        ],
    ),
    ("vm_special_mapping", &[&["name"]]),
    ("list_head", &[&["next"]]),
    ("qstr", &[&["name"]]),
];

fn check(p: &Profile) {
    assert_eq!(p.architecture().map(|a| a.name()), Some("x86_64"));
    for (structure, fields) in FIELDS {
        assert!(p.size_of(structure).is_ok(), "{structure}");
        for alternatives in *fields {
            if let Err(error) = p.offset_any(structure, alternatives) {
                panic!("{structure}: {error}");
            }
        }
    }
    for name in [
        "init_task",
        "__per_cpu_offset",
        "sys_call_table",
        "modules",
        "entry_SYSCALL_64",
        "special_mapping_vmops",
    ] {
        assert!(
            p.symbol(name).is_some_and(|a| a >= 0xffff_ffff_8000_0000),
            "{name}"
        );
    }
    let openat = p
        .syscalls()
        .iter()
        .find(|s| s.number == 257)
        .expect("openat is 257");
    assert_eq!(openat.name, "openat");
    assert_eq!(openat.arguments[1].kind, ArgumentKind::String);
    assert_eq!(
        p.syscalls()
            .iter()
            .find(|s| s.number == 1)
            .map(|s| s.name.as_str()),
        Some("write")
    );
}

#[test]
#[ignore = "needs Debian's amd64 kernels: PANDARE_AMD64_KERNELS=dir (see the file's docs)"]
fn debian_amd64_6_1_xz_bzimage() {
    let p = Profile::derive(&kernel("vmlinuz-6.1.")).expect("derives");
    check(&p);
    assert_eq!((p.type_count(), p.symbols().len()), (100_642, 94_101));
    let prototyped = p
        .syscalls()
        .iter()
        .filter(|s| p.syscall_has_prototype(s.number))
        .count();
    assert_eq!((p.syscalls().len(), prototyped), (346, 345));
    // 6.1: current_task is a per-CPU variable; module.core_layout; mm_mt first.
    assert_eq!(p.per_cpu("current_task"), Some(0x1fb80));
    assert!(p.offset("module", "core_layout").is_ok());
    assert_eq!(p.offset("mm_struct", "mm_mt").unwrap(), 0);
    assert_eq!(p.offset("file", "f_path.dentry").unwrap(), 24);
    assert_eq!(p.offset("task_struct", "comm").unwrap(), 2976);
}

#[test]
#[ignore = "needs Debian's amd64 kernels: PANDARE_AMD64_KERNELS=dir (see the file's docs)"]
fn debian_amd64_6_12_zstd_bzimage() {
    let p = Profile::derive(&kernel("vmlinuz-6.12.")).expect("derives");
    check(&p);
    assert_eq!((p.type_count(), p.symbols().len()), (113_921, 166_932));
    let prototyped = p
        .syscalls()
        .iter()
        .filter(|s| p.syscall_has_prototype(s.number))
        .count();
    assert_eq!((p.syscalls().len(), prototyped), (358, 358));
    // 6.12: current is pcpu_hot.current_task; no current_task symbol.
    assert_eq!(p.per_cpu("pcpu_hot"), Some(0x351c0));
    assert_eq!(p.offset("pcpu_hot", "current_task").unwrap(), 0);
    assert_eq!(p.per_cpu("current_task"), None);
    assert!(p.offset("module", "mem").is_ok());
}
