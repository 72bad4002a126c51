//! Derives a kernel profile and prints what it found, or times the derivation.
//!
//! ```text
//! cargo run --release -p pandare-osi --example profile -- summary KERNEL
//! cargo run --release -p pandare-osi --example profile -- bench KERNEL [RUNS]
//! cargo run --release -p pandare-osi --example profile -- syscalls KERNEL
//! cargo run --release -p pandare-osi --example profile -- offset KERNEL STRUCT FIELD
//! cargo run --release -p pandare-osi --example profile -- fields KERNEL
//! ```
//!
//! `fields` prints the offset of every field the OSI walks read (alternatives of renamed
//! fields separated by `|`) and the sizes of their structs, and fails if one is missing.

use std::time::Instant;

use pandare_osi::Profile;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: profile summary|bench|syscalls|fields|offset KERNEL [RUNS | STRUCT FIELD]";
    let (command, path) = match (args.first(), args.get(1)) {
        (Some(c), Some(p)) => (c.as_str(), p.as_str()),
        _ => anyhow::bail!(usage),
    };
    let image = std::fs::read(path)?;
    match command {
        "summary" => {
            let start = Instant::now();
            let profile = Profile::derive(&image)?;
            let elapsed = start.elapsed();
            println!("derived in {:.1} ms", elapsed.as_secs_f64() * 1e3);
            println!("architecture: {:?}", profile.architecture());
            println!("types: {}", profile.type_count());
            println!("symbols: {}", profile.symbols().len());
            println!("per-CPU variables: {}", profile.per_cpu_variables().len());
            let with = profile
                .syscalls()
                .iter()
                .filter(|s| profile.syscall_has_prototype(s.number))
                .count();
            println!(
                "system calls: {} ({} with prototypes)",
                profile.syscalls().len(),
                with
            );
            println!("serialized: {} bytes", profile.to_bytes().len());
        }
        "bench" => {
            let runs: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                let profile = Profile::derive(&image)?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(profile);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "derive {path}: {} runs, min {:.1} ms, median {:.1} ms, max {:.1} ms",
                times.len(),
                times[0],
                times[times.len() / 2],
                times[times.len() - 1]
            );
            let profile = Profile::derive(&image)?;
            let bytes = profile.to_bytes();
            let mut loads = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                std::hint::black_box(Profile::from_bytes(&bytes)?);
                loads.push(start.elapsed().as_secs_f64() * 1e3);
            }
            loads.sort_by(f64::total_cmp);
            println!(
                "from_bytes ({} bytes): min {:.1} ms, median {:.1} ms, max {:.1} ms",
                bytes.len(),
                loads[0],
                loads[loads.len() / 2],
                loads[loads.len() - 1]
            );
            let queries = 100_000;
            let start = Instant::now();
            for _ in 0..queries {
                std::hint::black_box(profile.offset("task_struct", "comm")?);
                std::hint::black_box(profile.offset("dentry", "d_name.len")?);
            }
            println!(
                "offset query: {:.0} ns (task_struct.comm, dentry.d_name.len)",
                start.elapsed().as_secs_f64() * 1e9 / (2 * queries) as f64
            );
            // The whole cached path: read the kernel, hash it, read and check the profile.
            let cache =
                std::env::temp_dir().join(format!("pandare-profile-bench-{}", std::process::id()));
            Profile::load_or_derive(std::path::Path::new(path), &cache)?;
            let mut cached = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                std::hint::black_box(Profile::load_or_derive(std::path::Path::new(path), &cache)?);
                cached.push(start.elapsed().as_secs_f64() * 1e3);
            }
            let _ = std::fs::remove_dir_all(&cache);
            cached.sort_by(f64::total_cmp);
            println!(
                "load_or_derive from the cache: min {:.1} ms, median {:.1} ms, max {:.1} ms",
                cached[0],
                cached[cached.len() / 2],
                cached[cached.len() - 1]
            );
        }
        "syscalls" => {
            let profile = Profile::derive(&image)?;
            for s in profile.syscalls() {
                let args: Vec<String> = s
                    .arguments
                    .iter()
                    .map(|a| format!("{} {} [{:?}]", a.c_type, a.name, a.kind))
                    .collect();
                let mark = if profile.syscall_has_prototype(s.number) {
                    ""
                } else {
                    "  (no prototype)"
                };
                println!("{:4} {}({}){mark}", s.number, s.name, args.join(", "));
            }
        }
        "fields" => {
            let profile = Profile::derive(&image)?;
            let mut missing = 0;
            for (structure, fields) in WALK_FIELDS {
                let size = profile
                    .size_of(structure)
                    .map_or_else(|e| e.to_string(), |s| s.to_string());
                println!("struct {structure} (size {size})");
                for field in *fields {
                    let alternatives: Vec<&str> = field.split('|').collect();
                    match profile.offset_any(structure, &alternatives) {
                        Ok(offset) => println!("  {field:24} {offset}"),
                        Err(error) => {
                            missing += 1;
                            println!("  {field:24} MISSING: {error}");
                        }
                    }
                }
            }
            for name in [
                "init_task",
                "__per_cpu_offset",
                "sys_call_table",
                "modules",
                "special_mapping_vmops",
                "entry_SYSCALL_64",
                "handle_exception",
            ] {
                println!("symbol {name}: {:x?}", profile.symbol(name));
            }
            for name in ["current_task", "pcpu_hot", "runqueues"] {
                println!("per-CPU {name}: {:x?}", profile.per_cpu(name));
            }
            anyhow::ensure!(missing == 0, "{missing} fields are missing");
        }
        "offset" => {
            let profile = Profile::derive(&image)?;
            let (structure, field) = match (args.get(2), args.get(3)) {
                (Some(s), Some(f)) => (s, f),
                _ => anyhow::bail!(usage),
            };
            println!("{}", profile.offset(structure, field)?);
        }
        _ => anyhow::bail!(usage),
    }
    Ok(())
}

/// The fields the OSI walks read; `a|b` are the names of a field renamed across versions.
const WALK_FIELDS: &[(&str, &[&str])] = &[
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
        &["d_parent", "d_name.name", "d_name.len", "d_op", "d_inode"],
    ),
    ("dentry_operations", &["d_dname"]),
    ("mount", &["mnt", "mnt_parent", "mnt_mountpoint"]),
    ("vfsmount", &["mnt_root"]),
    ("inode", &["i_ino"]),
    ("files_struct", &["fdt"]),
    ("fdtable", &["max_fds", "fd"]),
    (
        "module",
        &[
            "list",
            "name",
            "mem[0].base|core_layout.base",
            "mem[0].size|core_layout.size",
        ],
    ),
    ("vm_special_mapping", &["name"]),
    ("list_head", &["next"]),
    ("qstr", &["name"]),
];
