//! `syscalls_logger`: an strace-like log of every system call, with its arguments decoded
//! per the kernel's prototypes (strings read from user memory, bounded), its return value,
//! and the process that made it (pid, tid and name, read from the kernel's task).
//!
//! Built on `syscalls2` (loaded with it). A call's line is written when it returns; calls
//! that never return (`exit_group`, `rt_sigreturn`, a successful `execve`...) are written
//! at entry or, still pending at unload, marked `unfinished`. The log is written
//! atomically when the plugin unloads: `format=json` writes one JSON object per line,
//! `format=table` (the default) one strace-like line per call:
//!
//! ```text
//!   pid   tid process          call
//!    71    71 cat              openat(dfd=-100, filename="/etc/hostname", flags=0, mode=0) = 3
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::GuestCpu;
use pandare_osi::{ArgumentKind, Kernel};

use crate::output::write_atomic;
use crate::syscalls2::{DescribedSyscall, Syscall};
use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo, PppValue};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "syscalls_logger",
    description: "an strace-like log of every system call with decoded arguments and return values, per process",
    arguments: &[
        ArgInfo {
            name: "file",
            help: "where to write the log (default syscalls.log)",
        },
        ArgInfo {
            name: "format",
            help: "table (strace-like lines, the default) or json (one object per line)",
        },
        ArgInfo {
            name: "string_limit",
            help: "most bytes of a string argument read from guest memory (default 256)",
        },
    ],
    ppp: &[],
    create,
};

/// The most calls awaiting their return that the log keeps open; older ones are written
/// as unfinished.
const OPEN_LIMIT: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Table,
    Json,
}

/// One decoded argument.
#[derive(Clone, Debug)]
struct Argument {
    name: String,
    c_type: String,
    value: PppValue,
    /// The string it points at, when it is one.
    string: Option<Vec<u8>>,
}

/// A call being logged.
#[derive(Clone, Debug)]
struct Record {
    id: u64,
    pid: Option<u32>,
    tid: Option<u32>,
    process: String,
    name: String,
    number: u64,
    pc: u64,
    arguments: Vec<Argument>,
}

struct Log {
    format: Format,
    string_limit: usize,
    kernel: Option<Kernel>,
    open: BTreeMap<u64, Record>,
    /// Finished lines, by entry id (so the log is in entry order).
    lines: BTreeMap<u64, String>,
    returned: u64,
    unfinished: u64,
}

/// Reads a NUL-terminated string at `address`, at most `limit` bytes, stopping at
/// unmapped memory.
pub(crate) fn read_string(cpu: &mut dyn GuestCpu, address: u64, limit: usize) -> Option<Vec<u8>> {
    if address == 0 {
        return None;
    }
    let mut bytes = Vec::new();
    let mut at = address;
    while bytes.len() < limit {
        let to_page_end = (4096 - (at & 4095)) as usize;
        let mut chunk = vec![0u8; to_page_end.min(limit - bytes.len()).min(256)];
        if cpu.read_memory(at, &mut chunk).is_err() {
            break;
        }
        if let Some(end) = chunk.iter().position(|&byte| byte == 0) {
            bytes.extend_from_slice(&chunk[..end]);
            return Some(bytes);
        }
        at = at.wrapping_add(chunk.len() as u64);
        bytes.extend_from_slice(&chunk);
    }
    if bytes.is_empty() && cpu.read_memory(address, &mut [0u8]).is_err() {
        return None;
    }
    Some(bytes)
}

/// `bytes` as a C-style quoted string.
fn quoted(bytes: &[u8]) -> String {
    let mut text = String::from("\"");
    for &byte in bytes {
        match byte {
            b'"' => text.push_str("\\\""),
            b'\\' => text.push_str("\\\\"),
            b'\n' => text.push_str("\\n"),
            b'\t' => text.push_str("\\t"),
            0x20..=0x7e => text.push(byte as char),
            _ => text.push_str(&format!("\\x{byte:02x}")),
        }
    }
    text.push('"');
    text
}

fn value_text(value: &PppValue) -> String {
    match value {
        PppValue::U64(number) if *number >= 4096 => format!("{number:#x}"),
        PppValue::U64(number) => number.to_string(),
        PppValue::I64(number) => number.to_string(),
        PppValue::Bool(flag) => flag.to_string(),
        PppValue::Bytes(bytes) => quoted(bytes),
    }
}

fn value_json(value: &PppValue) -> serde_json::Value {
    match value {
        PppValue::U64(number) => (*number).into(),
        PppValue::I64(number) => (*number).into(),
        PppValue::Bool(flag) => (*flag).into(),
        PppValue::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned().into(),
    }
}

impl Log {
    fn line(&self, record: &Record, retval: Option<i64>, unfinished: bool) -> String {
        match self.format {
            Format::Table => {
                let arguments: Vec<String> = record
                    .arguments
                    .iter()
                    .map(|argument| match &argument.string {
                        Some(string) => format!("{}={}", argument.name, quoted(string)),
                        None => format!("{}={}", argument.name, value_text(&argument.value)),
                    })
                    .collect();
                let result = match (retval, unfinished) {
                    (Some(value), _) => format!(" = {value}"),
                    (None, true) => " <unfinished>".to_string(),
                    (None, false) => " = ?".to_string(),
                };
                format!(
                    "{:>6} {:>6} {:<16} {}({}){result}",
                    record.pid.map_or("?".to_string(), |pid| pid.to_string()),
                    record.tid.map_or("?".to_string(), |tid| tid.to_string()),
                    record.process,
                    record.name,
                    arguments.join(", "),
                )
            }
            Format::Json => {
                let arguments: Vec<serde_json::Value> = record
                    .arguments
                    .iter()
                    .map(|argument| {
                        let mut object = serde_json::json!({
                            "name": argument.name,
                            "type": argument.c_type,
                            "value": value_json(&argument.value),
                        });
                        if let Some(string) = &argument.string {
                            object["string"] = String::from_utf8_lossy(string).into_owned().into();
                        }
                        object
                    })
                    .collect();
                let mut object = serde_json::json!({
                    "id": record.id,
                    "pid": record.pid,
                    "tid": record.tid,
                    "process": record.process,
                    "syscall": record.name,
                    "number": record.number,
                    "pc": record.pc,
                    "args": arguments,
                    "return": retval,
                });
                if unfinished {
                    object["unfinished"] = true.into();
                }
                object.to_string()
            }
        }
    }

    fn enter(
        &mut self,
        cpu: &mut dyn GuestCpu,
        event: &Syscall,
        profile: &Arc<pandare_osi::Profile>,
    ) {
        if self.kernel.is_none() {
            self.kernel = Kernel::new(Arc::clone(profile), cpu).ok();
        }
        let (mut pid, mut tid, mut process) = (None, None, String::new());
        if let Some(kernel) = &self.kernel {
            if let Ok((thread, group)) = kernel.task_ids(cpu, event.task) {
                tid = Some(thread);
                pid = Some(group);
            }
            if let Ok(name) = kernel.task_name(cpu, event.task) {
                process = String::from_utf8_lossy(&name).into_owned();
            }
        }
        let mut arguments = Vec::new();
        for index in 0..event.raw.len() {
            let described = event
                .info
                .as_ref()
                .and_then(|info| info.arguments.get(index));
            let value = event.argument(index).unwrap_or(PppValue::U64(0));
            let string = match described.map(|argument| argument.kind) {
                Some(ArgumentKind::String) => read_string(cpu, event.raw[index], self.string_limit),
                _ => None,
            };
            arguments.push(Argument {
                name: described.map_or(format!("arg{index}"), |argument| argument.name.clone()),
                c_type: described.map_or(String::new(), |argument| argument.c_type.clone()),
                value,
                string,
            });
        }
        let record = Record {
            id: event.id,
            pid,
            tid,
            process,
            name: event
                .name()
                .map_or(format!("syscall_{}", event.number), str::to_string),
            number: event.number,
            pc: event.pc,
            arguments,
        };
        if matches!(
            event.name(),
            Some("exit" | "exit_group" | "rt_sigreturn" | "sigreturn")
        ) {
            let line = self.line(&record, None, false);
            self.lines.insert(record.id, line);
            return;
        }
        self.open.insert(record.id, record);
        while self.open.len() > OPEN_LIMIT {
            if let Some((_, oldest)) = self.open.pop_first() {
                let line = self.line(&oldest, None, true);
                self.lines.insert(oldest.id, line);
                self.unfinished += 1;
            }
        }
    }

    fn leave(&mut self, event: &Syscall) {
        if let Some(record) = self.open.remove(&event.id) {
            let line = self.line(&record, event.signed_retval(), false);
            self.lines.insert(record.id, line);
            self.returned += 1;
        }
    }
}

struct Logger {
    log: Arc<Mutex<Log>>,
    path: PathBuf,
}

impl Plugin for Logger {
    fn unload(&mut self) -> Result<String, PluginError> {
        let mut log = lock(&self.log);
        let open = std::mem::take(&mut log.open);
        for (id, record) in open {
            let line = log.line(&record, None, true);
            log.lines.insert(id, line);
            log.unfinished += 1;
        }
        let mut text = String::new();
        if log.format == Format::Table {
            text.push_str(&format!(
                "{:>6} {:>6} {:<16} call\n",
                "pid", "tid", "process"
            ));
        }
        for line in log.lines.values() {
            text.push_str(line);
            text.push('\n');
        }
        write_atomic("syscalls_logger", &self.path, text.as_bytes())?;
        Ok(format!(
            "syscalls_logger: wrote {} system calls to {} ({} returned, {} unfinished)",
            log.lines.len(),
            self.path.display(),
            log.returned,
            log.unfinished,
        ))
    }
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let path = PathBuf::from(args.string_or("file", "syscalls.log"));
    let format = match args.string_or("format", "table").as_str() {
        "table" => Format::Table,
        "json" => Format::Json,
        other => {
            return Err(args.bad(
                "format",
                format!("{other:?} is not a format: write table or json"),
            ))
        }
    };
    let string_limit = match args.u64("string_limit")? {
        Some(limit) if (1..=65536).contains(&limit) => limit as usize,
        Some(_) => return Err(args.bad("string_limit", "must be between 1 and 65536")),
        None => 256,
    };
    let profile = context.kernel_profile()?;
    let log = Arc::new(Mutex::new(Log {
        format,
        string_limit,
        kernel: None,
        open: BTreeMap::new(),
        lines: BTreeMap::new(),
        returned: 0,
        unfinished: 0,
    }));
    let entries = Arc::clone(&log);
    context.listen_ppp(
        crate::syscalls2::NAME,
        "on_all_sys_enter2",
        move |cpu, event: &DescribedSyscall| {
            lock(&entries).enter(cpu, &event.0, &profile);
        },
    )?;
    let returns = Arc::clone(&log);
    context.listen_ppp(
        crate::syscalls2::NAME,
        "on_all_sys_return2",
        move |_, event: &DescribedSyscall| {
            lock(&returns).leave(&event.0);
        },
    )?;
    Ok(Box::new(Logger { log, path }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_like_strace() {
        assert_eq!(quoted(b"a\"b\n\x01"), "\"a\\\"b\\n\\x01\"");
        assert_eq!(value_text(&PppValue::I64(-100)), "-100");
        assert_eq!(value_text(&PppValue::U64(0x4000)), "0x4000");
    }
}
