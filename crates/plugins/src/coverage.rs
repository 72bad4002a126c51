//! `coverage`: the blocks executed, to a CSV file (PANDA's `coverage` plugin, `asid-block`
//! and `osi-block` modes).
//!
//! The file starts with the mode, then a header line, then one record per block. In
//! `asid-block` mode: `asid,pc,size,in_kernel` (the ASID as [`GuestCpu::asid`] reports it,
//! hexadecimal; the block's virtual address; its size in bytes; 1 when it ran in kernel
//! mode). In `osi-block` mode, PANDA's columns: `process name,process id,thread id,in
//! kernel,block address,block size`, the name being the running task's (`comm`) in user
//! mode and `(kernel)` in kernel mode, read through the kernel's profile (OS
//! introspection); `process_name=` keeps only the blocks run while that process runs. By
//! default a record is written the first time it occurs; `full=true` writes one per
//! execution.
//! The file is written under a temporary name and renamed when collection stops (unload or
//! `plugin_cmd coverage_disable`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::{BlockInfo, Callback, GuestCpu};
use pandare_osi::Kernel;
use rustc_hash::FxBuildHasher;

use crate::output::AtomicFile;
use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "coverage",
    description: "executed blocks (asid or process, pc, size, kernel mode) to a CSV file",
    arguments: &[
        ArgInfo {
            name: "filename",
            help: "the CSV file to write (default coverage.csv)",
        },
        ArgInfo {
            name: "mode",
            help: "asid-block (the default) or osi-block (process name, pid and tid, through OS introspection)",
        },
        ArgInfo {
            name: "full",
            help: "true: a record every time a block runs, not only the first (default false)",
        },
        ArgInfo {
            name: "start_disabled",
            help: "true: collect nothing until `plugin_cmd coverage_enable` (default false)",
        },
        ArgInfo {
            name: "pc",
            help: "only blocks starting in START-END (inclusive, decimal or 0x hex)",
        },
        ArgInfo {
            name: "privilege",
            help: "only blocks run in `user` or `kernel` mode (default both)",
        },
        ArgInfo {
            name: "process_name",
            help: "only blocks run while the process of this name runs (needs OS introspection)",
        },
    ],
    ppp: &[],
    create,
};

const MONITOR_HELP: &str = "\
coverage_enable[=FILE]  start collecting coverage into FILE (default: the filename argument)
coverage_disable        stop collecting and write the file";

/// The first lines of an `osi-block` file: the mode, then PANDA's column names.
const OSI_BLOCK_HEADER: &[u8] =
    b"osi-block\nprocess name,process id,thread id,in kernel,block address,block size\n";

/// What identifies a block's record in `osi-block` mode: (process name, pid, tid, in
/// kernel, pc, size).
type OsiKey = (Vec<u8>, u32, u32, bool, u64, u64);

/// The running task, read through the kernel's profile.
struct Osi {
    kernel: Option<Kernel>,
    profile: Arc<pandare_osi::Profile>,
    comm: u64,
    /// `(task, asid)` → name, for user mode (only `execve` or a task switch changes it).
    cached: Option<(u64, u64, Vec<u8>)>,
    /// `process_name=`, at most 15 bytes as the kernel keeps it.
    only: Option<Vec<u8>>,
    seen: HashSet<OsiKey, FxBuildHasher>,
}

impl Osi {
    /// `(name, pid, tid)` of the running task; the name is `(kernel)` in kernel mode, as
    /// PANDA writes it. `None` while no task can be read (early boot).
    fn current(
        &mut self,
        cpu: &mut dyn GuestCpu,
        in_kernel: bool,
    ) -> Option<(Vec<u8>, u32, u32, Vec<u8>)> {
        if self.kernel.is_none() {
            self.kernel = Kernel::new(Arc::clone(&self.profile), &*cpu).ok();
        }
        let kernel = self.kernel.as_ref()?;
        let task = kernel.current_task(cpu).ok()?;
        let (tid, pid) = kernel.task_ids(cpu, task).ok()?;
        let asid = cpu.asid();
        let name = match &self.cached {
            Some((cached_task, cached_asid, name))
                if !in_kernel && *cached_task == task && *cached_asid == asid =>
            {
                name.clone()
            }
            _ => {
                let mut comm = [0u8; 16];
                cpu.read_memory(task.wrapping_add(self.comm), &mut comm)
                    .ok()?;
                let end = comm.iter().position(|&b| b == 0).unwrap_or(comm.len());
                let name = comm[..end].to_vec();
                if !in_kernel {
                    self.cached = Some((task, asid, name.clone()));
                }
                name
            }
        };
        let shown = if in_kernel {
            b"(kernel)".to_vec()
        } else {
            name.clone()
        };
        Some((shown, pid, tid, name))
    }
}

struct State {
    default_file: PathBuf,
    /// Set in `osi-block` mode and with `process_name=`.
    osi: Option<Osi>,
    /// `osi-block` mode.
    osi_block: bool,
    full: bool,
    kernel: Option<bool>,
    range: Option<(u64, u64)>,
    seen: HashSet<(u64, u64, u64, bool), FxBuildHasher>,
    file: Option<AtomicFile>,
    records: u64,
    write_error: Option<std::io::Error>,
    /// Files completed so far: (path, records).
    written: Vec<(PathBuf, u64)>,
}

impl State {
    fn start(&mut self, path: PathBuf) -> Result<(), PluginError> {
        let mut file = AtomicFile::create(INFO.name, &path)?;
        let header = if self.osi_block {
            file.write(OSI_BLOCK_HEADER)
        } else {
            file.write(b"asid-block\nasid,pc,size,in_kernel\n")
        };
        self.write_error = header.err();
        self.file = Some(file);
        self.records = 0;
        self.seen.clear();
        if let Some(osi) = self.osi.as_mut() {
            osi.seen.clear();
        }
        Ok(())
    }

    fn block(&mut self, cpu: &mut dyn GuestCpu, block: &BlockInfo) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if self
            .range
            .is_some_and(|(start, end)| block.pc < start || block.pc > end)
        {
            return;
        }
        let in_kernel = cpu.in_kernel_mode();
        if self.kernel.is_some_and(|kernel| kernel != in_kernel) {
            return;
        }
        let running = match self.osi.as_mut() {
            Some(osi) => {
                let Some((shown, pid, tid, name)) = osi.current(cpu, in_kernel) else {
                    return;
                };
                if osi.only.as_ref().is_some_and(|only| *only != name) {
                    return;
                }
                Some((osi, shown, pid, tid))
            }
            None => None,
        };
        let line = if let (true, Some((osi, shown, pid, tid))) = (self.osi_block, running) {
            let key = (shown, pid, tid, in_kernel, block.pc, block.size);
            if !self.full && osi.seen.contains(&key) {
                return;
            }
            let line = format!(
                "{},{pid},{tid},{},{:#x},{}\n",
                String::from_utf8_lossy(&key.0),
                u8::from(in_kernel),
                block.pc,
                block.size
            );
            if !self.full {
                osi.seen.insert(key);
            }
            line
        } else {
            let asid = cpu.asid();
            if !self.full && !self.seen.insert((asid, block.pc, block.size, in_kernel)) {
                return;
            }
            format!(
                "{asid:#x},{:#x},{},{}\n",
                block.pc,
                block.size,
                u8::from(in_kernel)
            )
        };
        if let Err(error) = file.write(line.as_bytes()) {
            self.write_error.get_or_insert(error);
        }
        self.records += 1;
    }

    fn stop(&mut self) -> Result<Option<(PathBuf, u64)>, PluginError> {
        let Some(file) = self.file.take() else {
            return Ok(None);
        };
        let path = file.path().to_path_buf();
        if let Some(source) = self.write_error.take() {
            return Err(PluginError::Io {
                plugin: INFO.name,
                action: "write",
                path,
                source,
            });
        }
        file.commit()?;
        self.written.push((path.clone(), self.records));
        Ok(Some((path, self.records)))
    }

    fn monitor(&mut self, command: &str) -> Option<String> {
        let command = command.trim();
        if command == "help" {
            return Some(MONITOR_HELP.to_string());
        }
        if command == "coverage_disable" {
            return Some(match self.stop() {
                Ok(Some((path, records))) => {
                    format!("coverage: wrote {records} records to {}", path.display())
                }
                Ok(None) => "coverage: collection is not enabled".to_string(),
                Err(error) => format!("coverage: {error}"),
            });
        }
        let rest = command.strip_prefix("coverage_enable")?;
        let path = match rest.trim().strip_prefix('=') {
            Some(name) if !name.trim().is_empty() => PathBuf::from(name.trim()),
            Some(_) => return Some("coverage: usage: coverage_enable[=FILE]".to_string()),
            None if rest.trim().is_empty() => self.default_file.clone(),
            None => return None,
        };
        if let Some(file) = &self.file {
            return Some(format!(
                "coverage: already collecting into {} (coverage_disable first)",
                file.path().display()
            ));
        }
        Some(match self.start(path.clone()) {
            Ok(()) => format!("coverage: collecting into {}", path.display()),
            Err(error) => format!("coverage: {error}"),
        })
    }
}

struct Coverage {
    state: Arc<Mutex<State>>,
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let osi_mode = match args.string("mode").unwrap_or("asid-block") {
        "asid-block" => false,
        "osi-block" => true,
        "edge" => {
            return Err(args.bad(
                "mode",
                "edge mode is not available yet; use mode=asid-block or mode=osi-block",
            ))
        }
        other => {
            return Err(args.bad(
                "mode",
                format!("{other:?} is not a mode (asid-block or osi-block)"),
            ))
        }
    };
    let only = args.string("process_name").map(|name| {
        let name = name.as_bytes();
        name[..name.len().min(15)].to_vec()
    });
    let osi = if osi_mode || only.is_some() {
        let profile = context.kernel_profile()?;
        let comm = profile.offset("task_struct", "comm").map_err(|error| {
            PluginError::NoKernelProfile {
                why: error.to_string(),
            }
        })?;
        Some(Osi {
            kernel: None,
            profile,
            comm,
            cached: None,
            only,
            seen: HashSet::default(),
        })
    } else {
        None
    };
    let kernel = match args.string("privilege") {
        None | Some("all") => None,
        Some("kernel") => Some(true),
        Some("user") => Some(false),
        Some(other) => {
            return Err(args.bad("privilege", format!("{other:?} is neither user nor kernel")))
        }
    };
    let range = match args.string("pc") {
        None => None,
        Some(text) => {
            let Some((start, end)) = text.split_once('-') else {
                return Err(args.bad("pc", format!("{text:?} is not START-END")));
            };
            let start = crate::args::parse_u64(start).map_err(|why| args.bad("pc", why))?;
            let end = crate::args::parse_u64(end).map_err(|why| args.bad("pc", why))?;
            if start > end {
                return Err(args.bad("pc", format!("the range {text} is empty")));
            }
            Some((start, end))
        }
    };
    let mut state = State {
        default_file: PathBuf::from(args.string_or("filename", "coverage.csv")),
        osi,
        osi_block: osi_mode,
        full: args.bool_or("full", false)?,
        kernel,
        range,
        seen: HashSet::default(),
        file: None,
        records: 0,
        write_error: None,
        written: Vec::new(),
    };
    if !args.bool_or("start_disabled", false)? {
        let path = state.default_file.clone();
        state.start(path)?;
    }
    let state = Arc::new(Mutex::new(state));
    let blocks = Arc::clone(&state);
    context.register(
        "blocks",
        Callback::StartBlockExec(Box::new(move |cpu, block| {
            lock(&blocks).block(cpu, block);
        })),
    )?;
    let monitor = Arc::clone(&state);
    context.register(
        "monitor",
        Callback::Monitor(Box::new(move |command| lock(&monitor).monitor(command))),
    )?;
    Ok(Box::new(Coverage { state }))
}

impl Plugin for Coverage {
    fn unload(&mut self) -> Result<String, PluginError> {
        let mut state = lock(&self.state);
        state.stop()?;
        if state.written.is_empty() {
            return Ok("coverage: collection was never enabled; no file written".to_string());
        }
        let files: Vec<String> = state
            .written
            .iter()
            .map(|(path, records)| format!("{records} records to {}", path.display()))
            .collect();
        Ok(format!("coverage: wrote {}", files.join(", ")))
    }
}
