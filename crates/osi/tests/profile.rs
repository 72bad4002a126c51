//! The profile derived from the real riscv64 kernel (Debian 6.12, the generic image's):
//! symbols, per-CPU variables, every offset and size the walks use, types, system
//! calls, serialization, and refusal of damaged images.

use std::sync::OnceLock;

use pandare_osi::{ArgumentKind, Profile, ProfileError, TypeKind};
use pandare_test_support::unavailable;

/// The riscv64 kernel's path, or `None` (after reporting why) when the image is absent.
fn kernel_path() -> Option<std::path::PathBuf> {
    let image = pandare_images::cached("riscv64");
    if image.is_none() {
        unavailable("the riscv64 generic image is not built: run `panda image build riscv64`");
    }
    image.map(|image| image.kernel)
}

/// The riscv64 kernel's bytes, or `None` (after reporting why) when the image is absent.
fn kernel() -> Option<&'static [u8]> {
    static KERNEL: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    let bytes = KERNEL.get_or_init(|| {
        let image = pandare_images::cached("riscv64")?;
        std::fs::read(image.kernel).ok()
    });
    if bytes.is_none() {
        unavailable("the riscv64 generic image is not built: run `panda image build riscv64`");
    }
    bytes.as_deref()
}

fn profile() -> Option<&'static Profile> {
    static PROFILE: OnceLock<Profile> = OnceLock::new();
    let bytes = kernel()?;
    Some(PROFILE.get_or_init(|| Profile::derive(bytes).expect("the riscv64 kernel derives")))
}

#[test]
fn riscv_kernel_symbols_and_per_cpu_variables() {
    let Some(p) = profile() else { return };
    assert_eq!(p.architecture().map(|a| a.name()), Some("riscv64"));
    assert_eq!(p.symbols().len(), 94_963);
    assert_eq!(p.per_cpu_variables().len(), 255);
    assert_eq!(p.type_count(), 100_733);
    // The Image is linked at 0xffffffff80000000; `_start` is its first byte.
    assert_eq!(p.symbol("_start"), Some(0xffff_ffff_8000_0000));
    for name in [
        "init_task",
        "__per_cpu_offset",
        "sys_call_table",
        "modules",
        "handle_exception",
        "special_mapping_vmops",
        "pipefs_dname",
    ] {
        let address = p.symbol(name).unwrap_or_else(|| panic!("no symbol {name}"));
        assert!(address >= 0xffff_ffff_8000_0000, "{name} at {address:#x}");
        let at = p.symbols_at(address);
        assert!(
            at.iter().any(|s| s.name == name),
            "{name} is not at its own address"
        );
        let (containing, distance) = p.symbol_containing(address + 1).expect("containing");
        assert_eq!(containing.address, address);
        assert_eq!(distance, 1);
    }
    // Compiler-made copies are found by their base name.
    let (name, _) = p
        .symbol_or_variant("finish_task_switch")
        .expect("finish_task_switch");
    assert!(name.starts_with("finish_task_switch"), "{name}");
    assert!(p.symbols_with_prefix("__riscv_sys_").count() > 300);
    // Per-CPU: offsets inside the per-CPU area.
    for name in ["runqueues", "current_task", "irq_stat", "cpu_number"] {
        if let Some(offset) = p.per_cpu(name) {
            assert!(offset < 1 << 20, "{name} at {offset:#x}");
        }
    }
    assert!(p.per_cpu("runqueues").is_some());
    assert_eq!(p.per_cpu("init_task"), None, "init_task is not per-CPU");
}

/// Every field the walks read, with the offsets measured on this kernel.
#[test]
fn riscv_kernel_offsets_the_walks_need() {
    let Some(p) = profile() else { return };
    let fields: &[(&str, &[&str])] = &[
        (
            "task_struct",
            &[
                "tasks",
                "pid",
                "tgid",
                "real_parent",
                "group_leader",
                "comm",
                "mm",
                "files",
                "start_time",
                "signal",
                "thread_node",
                "stack",
            ],
        ),
        ("signal_struct", &["thread_head"]),
        (
            "mm_struct",
            &[
                "mm_mt",
                "pgd",
                "exe_file",
                "brk",
                "start_brk",
                "start_stack",
                "arg_start",
                "arg_end",
                "env_start",
                "env_end",
                "total_vm",
                "context.id",
            ],
        ),
        ("maple_tree", &["ma_root"]),
        (
            "vm_area_struct",
            &[
                "vm_start",
                "vm_end",
                "vm_flags",
                "vm_pgoff",
                "vm_file",
                "vm_ops",
                "vm_private_data",
                "vm_mm",
            ],
        ),
        ("file", &["f_path.mnt", "f_path.dentry", "f_inode", "f_pos"]),
        (
            "dentry",
            &[
                "d_parent",
                "d_name.name",
                "d_name.len",
                "d_name.hash_len",
                "d_op",
                "d_inode",
            ],
        ),
        ("dentry_operations", &["d_dname"]),
        ("mount", &["mnt", "mnt_parent", "mnt_mountpoint"]),
        ("vfsmount", &["mnt_root"]),
        ("inode", &["i_ino"]),
        ("files_struct", &["fdt"]),
        ("fdtable", &["max_fds", "fd"]),
        (
            "module",
            &["list", "name", "mem", "mem[0].base", "mem[0].size"],
        ),
        ("vm_special_mapping", &["name"]),
        ("list_head", &["next", "prev"]),
        ("qstr", &["name", "len"]),
    ];
    for (structure, names) in fields {
        assert!(p.size_of(structure).expect(structure) > 0);
        for field in *names {
            if let Err(error) = p.offset(structure, field) {
                panic!("{structure}.{field}: {error}");
            }
        }
    }
    // Measured facts (OSI.md) and the layout rules.
    assert_eq!(p.offset("task_struct", "comm").unwrap(), 1936);
    assert_eq!(p.offset("file", "f_path.dentry").unwrap(), 72);
    assert_eq!(p.offset("mm_struct", "mm_mt").unwrap(), 64);
    assert_eq!(p.offset("list_head", "next").unwrap(), 0);
    assert_eq!(p.offset("list_head", "prev").unwrap(), 8);
    assert_eq!(p.size_of("list_head").unwrap(), 16);
    assert_eq!(p.size_of("qstr").unwrap(), 16);
    // `len` sits in an anonymous struct inside an anonymous union with `hash_len`:
    // little-endian, hash first, then len.
    let qstr = p.offset("dentry", "d_name").unwrap();
    assert_eq!(p.offset("dentry", "d_name.hash_len").unwrap(), qstr);
    assert_eq!(p.offset("dentry", "d_name.len").unwrap(), qstr + 4);
    assert_eq!(p.offset("dentry", "d_name.name").unwrap(), qstr + 8);
    // Renamed fields: 6.4+ has `mem`, 6.1 `core_layout`.
    let module = p.offset_any("module", &["core_layout", "mem"]).unwrap();
    assert_eq!(module, p.offset("module", "mem").unwrap());
    let module_memory = p.size_of("module_memory").unwrap();
    assert_eq!(
        p.offset("module", "mem[1]").unwrap(),
        module + module_memory
    );
    assert!(matches!(
        p.offset("module", "core_layout"),
        Err(ProfileError::MissingField { .. })
    ));
    assert!(matches!(
        p.offset("no_such_struct", "x"),
        Err(ProfileError::MissingType(_))
    ));
    assert!(
        p.offset("module", "mem[99]").is_err(),
        "index past the array"
    );
    assert!(p.offset("task_struct", "comm.x").is_err());
}

#[test]
fn riscv_kernel_types_for_typed_navigation() {
    let Some(p) = profile() else { return };
    let task = p.type_by_name("task_struct").expect("task_struct");
    assert_eq!(task.kind, TypeKind::Struct);
    assert_eq!(task.size, Some(p.size_of("task_struct").unwrap()));
    let mm = task
        .members
        .iter()
        .find(|m| m.name == "mm")
        .expect("task_struct.mm");
    assert_eq!(mm.offset, p.offset("task_struct", "mm").unwrap());
    let mm_pointer = p.type_by_id(mm.type_id).expect("mm's type");
    assert_eq!(mm_pointer.kind, TypeKind::Pointer);
    let mm_struct = p
        .resolve_type(mm_pointer.target.expect("pointee"))
        .expect("mm_struct");
    assert_eq!(mm_struct.name, "mm_struct");
    assert_eq!(
        Some(mm_struct.id),
        p.type_by_name("struct mm_struct").map(|t| t.id)
    );

    let pid_t = p.type_by_name("pid_t").expect("pid_t");
    assert_eq!(pid_t.kind, TypeKind::Typedef);
    assert_eq!(pid_t.size, Some(4));
    let int = p.resolve_type(pid_t.id).expect("int");
    assert_eq!(
        int.kind,
        TypeKind::Int {
            signed: true,
            bits: 32
        }
    );

    let comm = task
        .members
        .iter()
        .find(|m| m.name == "comm")
        .expect("comm");
    let array = p.type_by_id(comm.type_id).expect("comm's type");
    assert_eq!(
        (array.kind, array.length, array.size),
        (TypeKind::Array, Some(16), Some(16))
    );

    let pid_type = p.type_by_name("enum pid_type").expect("enum pid_type");
    assert!(matches!(pid_type.kind, TypeKind::Enum { .. }));
    assert!(pid_type
        .enumerators
        .iter()
        .any(|e| e.name == "PIDTYPE_TGID"));

    // Bitfields carry their bit position and width.
    let bitfield = task
        .members
        .iter()
        .find(|m| m.bit_size.is_some())
        .expect("task_struct has bitfields");
    assert_eq!(bitfield.offset, bitfield.bit_offset / 8);

    assert_eq!(p.type_by_id(0).map(|t| t.kind), Some(TypeKind::Void));
    assert!(p.type_by_id(u32::MAX).is_none());
    assert!(p.type_by_name("no_such_type").is_none());
}

#[test]
fn riscv_kernel_system_calls() {
    let Some(p) = profile() else { return };
    let syscalls = p.syscalls();
    let with_prototypes = syscalls
        .iter()
        .filter(|s| p.syscall_has_prototype(s.number))
        .count();
    // OSI.md: 312 of the 317 real entries have metadata; the 5 others are ENOSYS stubs.
    assert_eq!((syscalls.len(), with_prototypes), (317, 312));
    assert!(syscalls.windows(2).all(|w| w[0].number < w[1].number));
    assert!(syscalls
        .iter()
        .all(|s| s.arguments.len() <= 6 && s.name != "ni_syscall"));
    let by_name = |name: &str| {
        syscalls
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"))
    };

    let openat = by_name("openat");
    assert_eq!(openat.number, 56);
    assert_eq!(p.syscall(56), Some(openat));
    assert_eq!(p.syscall_named("openat"), Some(openat));
    assert_eq!(p.syscall(1000), None);
    let described: Vec<(&str, &str, ArgumentKind)> = openat
        .arguments
        .iter()
        .map(|a| (a.name.as_str(), a.c_type.as_str(), a.kind))
        .collect();
    assert_eq!(
        described,
        [
            ("dfd", "int", ArgumentKind::Signed(32)),
            ("filename", "const char *", ArgumentKind::String),
            ("flags", "int", ArgumentKind::Signed(32)),
            ("mode", "umode_t", ArgumentKind::Unsigned(16)),
        ]
    );
    let write = by_name("write");
    assert_eq!(write.number, 64);
    let kinds: Vec<ArgumentKind> = write.arguments.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        [
            ArgumentKind::Unsigned(32),
            ArgumentKind::Pointer,
            ArgumentKind::Unsigned(64)
        ]
    );
    assert_eq!(by_name("execve").arguments[0].kind, ArgumentKind::String);
    assert_eq!(by_name("execve").arguments[1].kind, ArgumentKind::Pointer);
    assert_eq!(by_name("exit_group").number, 94);
    assert_eq!(by_name("getpid").arguments, []);
    assert!(p.syscall_has_prototype(by_name("getpid").number));
    assert_eq!(
        by_name("kill").arguments[0].kind,
        ArgumentKind::Signed(32),
        "pid_t through BTF"
    );
    // A sized `char *` is a buffer, not a string.
    assert_eq!(
        by_name("sethostname").arguments[0].kind,
        ArgumentKind::Pointer
    );
    assert_eq!(by_name("mount").arguments[2].kind, ArgumentKind::String);
}

#[test]
fn riscv_profile_survives_serialization() {
    let Some(p) = profile() else { return };
    let bytes = p.to_bytes();
    assert!(bytes.len() < 4 << 20, "{} bytes", bytes.len());
    let q = Profile::from_bytes(&bytes).expect("round trip");
    assert_eq!(q.architecture(), p.architecture());
    assert_eq!(q.symbols(), p.symbols());
    assert_eq!(q.per_cpu_variables(), p.per_cpu_variables());
    assert_eq!(q.syscalls(), p.syscalls());
    assert_eq!(q.type_count(), p.type_count());
    assert_eq!(q.offset("file", "f_path.dentry").unwrap(), 72);
    assert_eq!(q.type_by_name("task_struct"), p.type_by_name("task_struct"));
    assert!(q.syscall_has_prototype(56));
    assert_eq!(q.to_bytes(), bytes, "serialization is deterministic");
}

/// A fresh directory under the target directory, for cache tests.
fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("pandare-osi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

#[test]
fn riscv_profile_is_cached_per_kernel_hash() {
    let Some(kernel) = kernel_path() else { return };
    let cache = scratch_dir("cache");
    let first = Profile::load_or_derive(&kernel, &cache).expect("derived");
    let files: Vec<_> = std::fs::read_dir(cache.join("profiles"))
        .expect("the cache directory exists")
        .map(|e| e.expect("entry").path())
        .collect();
    assert_eq!(files.len(), 1, "one file, no temporary left: {files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.ends_with(".profile") && name.len() == 64 + 8, "{name}");
    let saved = std::fs::read(&files[0]).unwrap();
    assert_eq!(saved, first.to_bytes());

    // A second load reads the file (a damaged one is replaced by a fresh derivation).
    let second = Profile::load_or_derive(&kernel, &cache).expect("loaded");
    assert_eq!(second.symbols(), first.symbols());
    std::fs::write(&files[0], &saved[..saved.len() / 2]).unwrap();
    let third = Profile::load_or_derive(&kernel, &cache).expect("derived again");
    assert_eq!(third.syscalls(), first.syscalls());
    assert_eq!(
        std::fs::read(&files[0]).unwrap(),
        saved,
        "the damaged file was replaced"
    );
    let _ = std::fs::remove_dir_all(&cache);
}

#[test]
fn riscv_kernel_typed_navigation_by_field() {
    let Some(p) = profile() else { return };
    // task->mm->mm_mt, one field at a time, as cosi navigates.
    let task = p.type_by_name("task_struct").expect("task_struct").id;
    let mm = p.field_of(task, "mm").expect("task_struct.mm");
    assert_eq!(mm.offset, p.offset("task_struct", "mm").unwrap());
    let pointer = p.resolve_type(mm.type_id).expect("a pointer");
    assert_eq!(pointer.kind, TypeKind::Pointer);
    let mm_struct = pointer.target.expect("pointee");
    let mm_mt = p.field_of(mm_struct, "mm_mt").expect("mm_struct.mm_mt");
    assert_eq!(mm_mt.offset, 64);
    assert_eq!(
        p.resolve_type(mm_mt.type_id).map(|t| t.name),
        Some("maple_tree".to_string())
    );
    // Through an anonymous union inside d_name.
    let len = p.field("dentry", "d_name.len").expect("d_name.len");
    assert_eq!(len.offset, p.offset("dentry", "d_name").unwrap() + 4);
    assert_eq!(p.resolve_type(len.type_id).and_then(|t| t.size), Some(4));
    // A bitfield keeps its width.
    let info = p.type_by_name("task_struct").unwrap();
    let bitfield = info
        .members
        .iter()
        .find(|m| m.bit_size.is_some())
        .expect("a bitfield");
    let field = p
        .field_of(task, &bitfield.name)
        .expect("the bitfield by name");
    assert_eq!(
        (field.bit_offset, field.bit_size),
        (bitfield.bit_offset, bitfield.bit_size)
    );
    assert!(p.field_of(task, "no_such_field").is_none());
}

#[test]
fn concurrent_derivations_of_one_kernel_share_the_cache_safely() {
    let Some(kernel) = kernel_path() else { return };
    let cache = scratch_dir("concurrent");
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| scope.spawn(|| Profile::load_or_derive(&kernel, &cache)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    for result in results {
        assert_eq!(
            result
                .expect("every thread gets the profile")
                .syscalls()
                .len(),
            317
        );
    }
    let files = std::fs::read_dir(cache.join("profiles")).unwrap().count();
    assert_eq!(files, 1, "one profile, no temporary left");
    let _ = std::fs::remove_dir_all(&cache);
}
