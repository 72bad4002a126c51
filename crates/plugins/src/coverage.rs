//! `coverage`: the blocks executed, to a CSV file (PANDA's `coverage` plugin, `asid-block`
//! mode).
//!
//! The file starts with the mode (`asid-block`), then a header line, then one record per
//! block: `asid,pc,size,in_kernel` (the ASID as [`GuestCpu::asid`] reports it, hexadecimal;
//! the block's virtual address; its size in bytes; 1 when it ran in kernel mode). By default
//! a record is written the first time it occurs; `full=true` writes one per execution.
//! The file is written under a temporary name and renamed when collection stops (unload or
//! `plugin_cmd coverage_disable`).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::{BlockInfo, Callback, GuestCpu};
use rustc_hash::FxBuildHasher;

use crate::output::AtomicFile;
use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "coverage",
    description: "executed blocks (asid, pc, size, kernel mode) to a CSV file",
    arguments: &[
        ArgInfo {
            name: "filename",
            help: "the CSV file to write (default coverage.csv)",
        },
        ArgInfo {
            name: "mode",
            help:
                "asid-block (the default and only mode: osi-block and edge need OS introspection)",
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
    ],
    ppp: &[],
    create,
};

const MONITOR_HELP: &str = "\
coverage_enable[=FILE]  start collecting coverage into FILE (default: the filename argument)
coverage_disable        stop collecting and write the file";

struct State {
    default_file: PathBuf,
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
        let header = file.write(b"asid-block\nasid,pc,size,in_kernel\n");
        self.write_error = header.err();
        self.file = Some(file);
        self.records = 0;
        self.seen.clear();
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
        let asid = cpu.asid();
        if !self.full && !self.seen.insert((asid, block.pc, block.size, in_kernel)) {
            return;
        }
        let line = format!(
            "{asid:#x},{:#x},{},{}\n",
            block.pc,
            block.size,
            u8::from(in_kernel)
        );
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
    match args.string("mode").unwrap_or("asid-block") {
        "asid-block" => {}
        "osi-block" | "edge" => {
            return Err(args.bad(
                "mode",
                "osi-block and edge need OS introspection, which pandare does not have yet; \
                 use mode=asid-block",
            ))
        }
        other => {
            return Err(args.bad(
                "mode",
                format!("{other:?} is not a mode (asid-block, osi-block or edge)"),
            ))
        }
    }
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
