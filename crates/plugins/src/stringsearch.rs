//! `stringsearch`: finds strings in the data read and written by each tap point (PANDA's
//! `stringsearch`), and runs the PPP callback `on_ssm` for every match.
//!
//! A tap point is (pc, asid, read or write): the bytes one instruction reads (or writes) in
//! one address space, in order, are one stream, so a string copied a byte or a word at a
//! time by a loop is found as well as one moved at once. (PANDA's tap points also include
//! the caller from `callstack_instr`, which pandare does not have yet.) Matching is exact
//! (Knuth–Morris–Pratt on each stream), on virtual memory accesses after they completed.
//!
//! Strings come from `str=TEXT`, or from `file=FILE` (else `NAME_search_strings.txt`):
//! one per line, either `"quoted text"` or hex bytes `de:ad:be:ef`. The matches per tap
//! point go to `NAME_string_matches.txt` when the plugin unloads.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::{Callback, GuestCpu};
use rustc_hash::FxBuildHasher;

use crate::output::{read_text, write_atomic};
use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo, Ppp, PppEvent};
use crate::{PppInfo, PppValue};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "stringsearch",
    description: "finds strings in the bytes each tap point (pc, asid) reads or writes; PPP on_ssm",
    arguments: &[
        ArgInfo {
            name: "str",
            help: "one string to search for",
        },
        ArgInfo {
            name: "file",
            help: "a file of strings: one per line, \"quoted text\" or hex bytes aa:bb:cc",
        },
        ArgInfo {
            name: "name",
            help: "prefix of the files: NAME_search_strings.txt (read when neither str nor file is given) and NAME_string_matches.txt (default stringsearch)",
        },
    ],
    ppp: &[PppInfo {
        name: "on_ssm",
        signature: "(cpu, pc, addr, matched: bytes, length, is_write, in_memory)",
        event_type: std::any::TypeId::of::<StringMatch>,
        event_type_name: "pandare_plugins::stringsearch::StringMatch",
    }],
    create,
};

/// A match, passed to `on_ssm` callbacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StringMatch {
    /// The instruction that read or wrote the last byte of the match.
    pub pc: u64,
    /// The virtual address of that access.
    pub addr: u64,
    /// The string that matched.
    pub matched: Vec<u8>,
    /// Its index among the strings searched for.
    pub index: usize,
    /// Whether the tap point writes (else it reads).
    pub is_write: bool,
    /// Always false: matches are found in the access stream, not by scanning memory.
    pub in_memory: bool,
}

impl PppEvent for StringMatch {
    fn values(&self) -> Vec<PppValue> {
        vec![
            PppValue::U64(self.pc),
            PppValue::U64(self.addr),
            PppValue::Bytes(self.matched.clone()),
            PppValue::U64(self.matched.len() as u64),
            PppValue::Bool(self.is_write),
            PppValue::Bool(self.in_memory),
        ]
    }
}

struct Pattern {
    bytes: Vec<u8>,
    /// Knuth–Morris–Pratt failure function.
    fail: Vec<usize>,
}

impl Pattern {
    fn new(bytes: Vec<u8>) -> Pattern {
        let mut fail = vec![0; bytes.len()];
        let mut k = 0;
        for i in 1..bytes.len() {
            while k > 0 && bytes[i] != bytes[k] {
                k = fail[k - 1];
            }
            if bytes[i] == bytes[k] {
                k += 1;
            }
            fail[i] = k;
        }
        Pattern { bytes, fail }
    }

    /// Advances `state` (bytes matched so far) by `byte`; true on a complete match.
    #[inline]
    fn step(&self, state: &mut usize, byte: u8) -> bool {
        while *state > 0 && self.bytes[*state] != byte {
            *state = self.fail[*state - 1];
        }
        if self.bytes[*state] == byte {
            *state += 1;
        }
        if *state == self.bytes.len() {
            *state = self.fail[*state - 1];
            return true;
        }
        false
    }
}

/// (pc, asid, is_write).
type Tap = (u64, u64, bool);

struct State {
    patterns: Vec<Pattern>,
    /// Whether some pattern starts with this byte.
    first: [bool; 256],
    /// Progress of each pattern at each tap point that has seen a first byte.
    progress: HashMap<Tap, Vec<usize>, FxBuildHasher>,
    /// Matches of each pattern at each tap point.
    matches: BTreeMap<Tap, Vec<u64>>,
    ppp: Ppp,
}

impl State {
    fn access(&mut self, cpu: &mut dyn GuestCpu, pc: u64, addr: u64, data: &[u8], is_write: bool) {
        let tap = (pc, cpu.asid(), is_write);
        let progress = match self.progress.get_mut(&tap) {
            Some(progress) => progress,
            None => {
                if !data.iter().any(|&byte| self.first[usize::from(byte)]) {
                    return;
                }
                self.progress
                    .entry(tap)
                    .or_insert_with(|| vec![0; self.patterns.len()])
            }
        };
        let mut found = Vec::new();
        for &byte in data {
            for (index, pattern) in self.patterns.iter().enumerate() {
                if pattern.step(&mut progress[index], byte) {
                    found.push(index);
                }
            }
        }
        for index in found {
            self.matches
                .entry(tap)
                .or_insert_with(|| vec![0; self.patterns.len()])[index] += 1;
            if self.ppp.has(INFO.name, "on_ssm") {
                let event = StringMatch {
                    pc,
                    addr,
                    matched: self.patterns[index].bytes.clone(),
                    index,
                    is_write,
                    in_memory: false,
                };
                self.ppp.run(INFO.name, "on_ssm", cpu, &event);
            }
        }
    }
}

struct StringSearch {
    out_file: PathBuf,
    state: Arc<Mutex<State>>,
}

/// Parses one line of a strings file: `"text"` or hex bytes `aa:bb:cc`.
fn parse_line(line: &str) -> Result<Vec<u8>, String> {
    if let Some(quoted) = line.strip_prefix('"') {
        let Some(text) = quoted.strip_suffix('"') else {
            return Err("a quoted string must end with '\"'".to_string());
        };
        return Ok(text.as_bytes().to_vec());
    }
    line.split(':')
        .map(|byte| {
            u8::from_str_radix(byte.trim(), 16).map_err(|_| {
                format!("{line:?} is neither \"quoted text\" nor hex bytes like de:ad:be:ef")
            })
        })
        .collect()
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let name = args.string_or("name", "stringsearch");
    let mut strings = Vec::new();
    if let Some(text) = args.string("str") {
        strings.push(text.as_bytes().to_vec());
    }
    let file = match args.string("file") {
        Some(file) => Some((PathBuf::from(file), "file")),
        None if strings.is_empty() => {
            let default = PathBuf::from(format!("{name}_search_strings.txt"));
            if !default.exists() {
                return Err(args.bad(
                    "str",
                    format!(
                        "nothing to search for: give str=TEXT or file=FILE (or create {})",
                        default.display()
                    ),
                ));
            }
            Some((default, "name"))
        }
        None => None,
    };
    if let Some((path, argument)) = file {
        let text = read_text(INFO.name, &path)?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bytes = parse_line(line).map_err(|why| {
                args.bad(
                    argument,
                    format!("{}, line {}: {why}", path.display(), number + 1),
                )
            })?;
            strings.push(bytes);
        }
    }
    if let Some(index) = strings.iter().position(Vec::is_empty) {
        return Err(args.bad(
            "str",
            format!("string {} is empty: there is nothing to find", index + 1),
        ));
    }
    if strings.is_empty() {
        return Err(args.bad("file", "the file holds no string to search for"));
    }
    let mut first = [false; 256];
    for string in &strings {
        first[usize::from(string[0])] = true;
    }
    let state = Arc::new(Mutex::new(State {
        patterns: strings.into_iter().map(Pattern::new).collect(),
        first,
        progress: HashMap::default(),
        matches: BTreeMap::new(),
        ppp: context.ppp(),
    }));
    let reads = Arc::clone(&state);
    context.register(
        "reads",
        Callback::VirtMemAfterRead(Box::new(move |cpu, pc, addr, _, data| {
            lock(&reads).access(cpu, pc, addr, data, false);
        })),
    )?;
    let writes = Arc::clone(&state);
    context.register(
        "writes",
        Callback::VirtMemAfterWrite(Box::new(move |cpu, pc, addr, _, data| {
            lock(&writes).access(cpu, pc, addr, data, true);
        })),
    )?;
    Ok(Box::new(StringSearch {
        out_file: PathBuf::from(format!("{name}_string_matches.txt")),
        state,
    }))
}

fn printable(bytes: &[u8]) -> String {
    if bytes
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"')
    {
        format!("\"{}\"", String::from_utf8_lossy(bytes))
    } else {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

impl Plugin for StringSearch {
    fn unload(&mut self) -> Result<String, PluginError> {
        let state = lock(&self.state);
        let mut text = String::from("pc,asid,access,string,matches\n");
        let mut totals = vec![0u64; state.patterns.len()];
        for (&(pc, asid, is_write), counts) in &state.matches {
            for (index, &count) in counts.iter().enumerate() {
                if count == 0 {
                    continue;
                }
                totals[index] += count;
                text += &format!(
                    "{pc:#x},{asid:#x},{},{},{count}\n",
                    if is_write { "write" } else { "read" },
                    printable(&state.patterns[index].bytes)
                );
            }
        }
        write_atomic(INFO.name, &self.out_file, text.as_bytes())?;
        let summary: Vec<String> = state
            .patterns
            .iter()
            .zip(&totals)
            .map(|(pattern, total)| format!("{}: {total}", printable(&pattern.bytes)))
            .collect();
        Ok(format!(
            "stringsearch: matches {} at {} tap points, written to {}",
            summary.join(", "),
            state.matches.len(),
            self.out_file.display()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmp_finds_overlapping_and_split_matches() {
        let pattern = Pattern::new(b"abab".to_vec());
        let mut state = 0;
        let hits: Vec<bool> = b"ababab"
            .iter()
            .map(|&b| pattern.step(&mut state, b))
            .collect();
        assert_eq!(hits, [false, false, false, true, false, true]);
        let pattern = Pattern::new(b"aab".to_vec());
        let mut state = 0;
        let found = b"aaab"
            .iter()
            .filter(|&&b| pattern.step(&mut state, b))
            .count();
        assert_eq!(found, 1);
    }

    #[test]
    fn strings_file_lines_are_quoted_text_or_hex() {
        assert_eq!(parse_line("\"hi there\"").unwrap(), b"hi there");
        assert_eq!(parse_line("de:ad:BE:ef").unwrap(), [0xde, 0xad, 0xbe, 0xef]);
        assert!(parse_line("hello").is_err());
        assert!(parse_line("\"open").is_err());
    }
}
