//! kallsyms, the kernel's own symbol table (`CONFIG_KALLSYMS`, `CONFIG_KALLSYMS_ALL`),
//! decoded from the kernel's file image.
//!
//! `scripts/kallsyms.c` emits these arrays, each at an 8-aligned label, into `.rodata`:
//! `kallsyms_num_syms` (a 32-bit count), `kallsyms_names` (per symbol: a length — one
//! byte, or two as ULEB128 when ≥ 0x80 — then that many indices into the token table;
//! the expansion's first character is the symbol's type letter), `kallsyms_markers`,
//! `kallsyms_token_table` (256 NUL-terminated tokens), `kallsyms_token_index` (256
//! 16-bit offsets into it), `kallsyms_offsets` (32-bit, relative to
//! `kallsyms_relative_base`, a 64-bit address) and, since 6.2, `kallsyms_seqs_of_names`.
//! Linux 6.4 moved the offsets and base after the token index; before, they came first.
//!
//! The decoder anchors on the token table (the single-character tokens "0" … "9" sit
//! next to each other) checked against the token index that follows it, then finds the
//! count whose names decode exactly up to the markers, and reads the offsets in
//! whichever order the kernel has. With `KALLSYMS_ABSOLUTE_PERCPU` (x86_64 before 6.15),
//! a non-negative offset is an absolute per-CPU address and a negative one is
//! `relative_base - 1 - offset`.

use rustc_hash::FxHashMap;

use crate::btf::memmem;
use crate::profile::ProfileError;

/// More symbols than any kernel has; bounds the decoding of a garbage count.
const MAX_SYMBOLS: u32 = 4_000_000;
/// The farthest before the token table the count is searched for: the names of the
/// largest kernels take a few MiB.
const MAX_NAMES_BYTES: usize = 32 << 20;

/// One kernel symbol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Its name (`init_task`, `finish_task_switch.isra.0`).
    pub name: String,
    /// Its address.
    pub address: u64,
    /// Its `nm`-style type letter (`T` global text, `t` local text, `D`, `d`, `B`, `R`, ...).
    pub kind: char,
}

/// All symbols of a kernel, by name and by address.
#[derive(Clone, Debug, Default)]
pub(crate) struct SymbolTable {
    /// In address order (stable: the kernel's order for equal addresses).
    symbols: Vec<Symbol>,
    /// Name → index of the preferred symbol of that name (a global one if any, else the
    /// first).
    by_name: FxHashMap<String, u32>,
    /// Indices sorted by name, for prefix queries.
    sorted_by_name: Vec<u32>,
}

impl SymbolTable {
    /// A table of `symbols` (any order).
    pub(crate) fn new(mut symbols: Vec<Symbol>) -> SymbolTable {
        symbols.sort_by_key(|s| s.address);
        let mut by_name: FxHashMap<String, u32> = FxHashMap::default();
        by_name.reserve(symbols.len());
        for (i, s) in symbols.iter().enumerate() {
            match by_name.get_mut(s.name.as_str()) {
                Some(prev) => {
                    let previous_global = symbols[*prev as usize].kind.is_ascii_uppercase();
                    if !previous_global && s.kind.is_ascii_uppercase() {
                        *prev = i as u32;
                    }
                }
                None => {
                    by_name.insert(s.name.clone(), i as u32);
                }
            }
        }
        let mut sorted_by_name: Vec<u32> = (0..symbols.len() as u32).collect();
        sorted_by_name.sort_unstable_by(|&a, &b| {
            symbols[a as usize]
                .name
                .cmp(&symbols[b as usize].name)
                .then(a.cmp(&b))
        });
        SymbolTable {
            symbols,
            by_name,
            sorted_by_name,
        }
    }

    pub(crate) fn all(&self) -> &[Symbol] {
        &self.symbols
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Symbol> {
        self.by_name.get(name).map(|&i| &self.symbols[i as usize])
    }

    /// Symbols whose names start with `prefix`, in name order.
    pub(crate) fn with_prefix<'a>(&'a self, prefix: &str) -> impl Iterator<Item = &'a Symbol> {
        let name = |i: &u32| self.symbols[*i as usize].name.as_str();
        let start = self.sorted_by_name.partition_point(|i| name(i) < prefix);
        let rest = &self.sorted_by_name[start..];
        let len = rest.partition_point(|i| name(i).starts_with(prefix));
        rest[..len].iter().map(|&i| &self.symbols[i as usize])
    }

    /// The symbols at exactly `address`.
    pub(crate) fn at(&self, address: u64) -> &[Symbol] {
        let start = self.symbols.partition_point(|s| s.address < address);
        let end = self.symbols.partition_point(|s| s.address <= address);
        &self.symbols[start..end]
    }

    /// The last symbol at or below `address` (the one `address` is most likely in).
    pub(crate) fn containing(&self, address: u64) -> Option<&Symbol> {
        let end = self.symbols.partition_point(|s| s.address <= address);
        let candidates = &self.symbols[..end];
        let last = candidates.last()?;
        // Of several symbols at that address, prefer a global one.
        let first_same = candidates.partition_point(|s| s.address < last.address);
        candidates[first_same..]
            .iter()
            .find(|s| s.kind.is_ascii_uppercase())
            .or(Some(&candidates[first_same]))
    }

    /// The address of the first symbol after `address`.
    pub(crate) fn next_address_after(&self, address: u64) -> Option<u64> {
        let i = self.symbols.partition_point(|s| s.address <= address);
        self.symbols.get(i).map(|s| s.address)
    }
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn align8(at: usize) -> usize {
    (at + 7) & !7
}

/// The token table at `start`: its 256 tokens' offsets and its end, if 256 non-empty
/// NUL-terminated tokens fit.
fn token_offsets(bytes: &[u8], start: usize) -> Option<([u16; 256], usize)> {
    let mut offsets = [0u16; 256];
    let mut at = start;
    for slot in offsets.iter_mut() {
        *slot = u16::try_from(at - start).ok()?;
        let len = bytes.get(at..)?.iter().take(256).position(|&b| b == 0)?;
        if len == 0 {
            return None;
        }
        at += len + 1;
    }
    Some((offsets, at))
}

/// Where the token table and index are.
#[derive(Clone, Copy, Debug)]
struct Tokens {
    table: usize,
    index: usize,
}

/// Finds the token table: the tokens "0" … "9" in a row, 0x30 tokens after the
/// table's start, and a token index matching the table right after it.
fn find_tokens(bytes: &[u8]) -> Option<Tokens> {
    const DIGITS: &[u8] = b"0\x001\x002\x003\x004\x005\x006\x007\x008\x009\x00";
    let mut from = 0;
    while let Some(hit) = memmem(&bytes[from..], DIGITS) {
        let digits = from + hit;
        from = digits + 1;
        // Walk back over 0x30 tokens: each ends with the NUL before the next.
        let mut start = digits;
        let mut ok = true;
        for _ in 0..0x30 {
            if start < 2 || bytes[start - 1] != 0 {
                ok = false;
                break;
            }
            let before = &bytes[..start - 1];
            let token_start = before
                .iter()
                .rev()
                .take(256)
                .position(|&b| b == 0)
                .map(|n| start - 1 - n);
            match token_start {
                Some(s) if s < start - 1 => start = s,
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            continue;
        }
        let Some((offsets, end)) = token_offsets(bytes, start) else {
            continue;
        };
        // The index follows at the next 8-aligned (older: 4- or 2-aligned) position.
        for index in [align8(end), (end + 3) & !3, (end + 1) & !1, end] {
            let matches = (0..256).all(|i| u16_at(bytes, index + 2 * i) == Some(offsets[i]));
            if matches {
                return Some(Tokens {
                    table: start,
                    index,
                });
            }
        }
    }
    None
}

/// The decoded names and where they end.
struct Names {
    /// Per symbol: the range of its compressed bytes.
    ranges: Vec<(u32, u32)>,
}

/// Decodes `count` names starting at `start`, checking the markers that follow (every
/// 256th name's offset).
fn decode_names(bytes: &[u8], start: usize, count: u32, limit: usize) -> Option<Names> {
    let mut ranges = Vec::with_capacity(count.min(1 << 20) as usize);
    let mut marks = Vec::with_capacity((count as usize).div_ceil(256));
    let mut at = start;
    for i in 0..count {
        if i % 256 == 0 {
            marks.push(at - start);
        }
        let first = *bytes.get(at)?;
        let (len, header) = if first & 0x80 != 0 {
            let second = *bytes.get(at + 1)?;
            ((usize::from(first & 0x7f)) | (usize::from(second) << 7), 2)
        } else {
            (usize::from(first), 1)
        };
        if len == 0 {
            return None;
        }
        let data = at + header;
        at = data + len;
        if at > limit {
            return None;
        }
        ranges.push((u32::try_from(data).ok()?, u32::try_from(len).ok()?));
    }
    // kallsyms_markers: the offset of names 0, 256, 512, ... from the first.
    let markers = align8(at);
    for (k, &mark) in marks.iter().enumerate() {
        if u32_at(bytes, markers + 4 * k)? as usize != mark {
            return None;
        }
    }
    Some(Names { ranges })
}

/// Decodes the kallsyms tables of a kernel image into all its symbols.
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Symbol>, ProfileError> {
    let tokens = find_tokens(bytes).ok_or(ProfileError::NoKallsyms)?;
    let mut token_strings: Vec<&[u8]> = Vec::with_capacity(256);
    for i in 0..256 {
        let start = tokens.table + usize::from(u16_at(bytes, tokens.index + 2 * i).unwrap_or(0));
        let len = bytes[start..].iter().position(|&b| b == 0).unwrap_or(0);
        token_strings.push(&bytes[start..start + len]);
    }

    // kallsyms_num_syms sits 8 bytes before the names, the names before the markers,
    // the markers (and in 6.2+ kernels of the old order, seqs_of_names) before the
    // token table. Search back from the token table for a count whose names decode
    // exactly into matching markers.
    let lowest = tokens.table.saturating_sub(MAX_NAMES_BYTES);
    let mut candidate = tokens.table & !7;
    let mut found = None;
    while candidate >= lowest + 8 {
        candidate -= 8;
        let Some(value) = u64_at(bytes, candidate) else {
            continue;
        };
        if value == 0 || value > u64::from(MAX_SYMBOLS) {
            continue;
        }
        let count = value as u32;
        // The names take at least two bytes each.
        if candidate + 8 + 2 * count as usize > tokens.table {
            continue;
        }
        if let Some(names) = decode_names(bytes, candidate + 8, count, tokens.table) {
            found = Some((candidate, count, names));
            break;
        }
    }
    let (num_syms_at, count, names) = found.ok_or_else(|| {
        ProfileError::Malformed(
            "kallsyms: found the token table but no symbol count and names before it".into(),
        )
    })?;

    // The offsets and base: before the count (before 6.4) or after the token index.
    let n = count as usize;
    let looks_like_base = |v: u64| v >= 0xffff_0000_0000_0000;
    let old_base_at = num_syms_at.checked_sub(8);
    let (offsets_at, base) = match old_base_at.and_then(|at| u64_at(bytes, at)) {
        Some(base) if looks_like_base(base) => {
            let base_at = old_base_at.expect("checked above");
            let offsets_at = base_at
                .checked_sub(align8(4 * n))
                .ok_or_else(|| ProfileError::Malformed("kallsyms: offsets out of bounds".into()))?;
            (offsets_at, base)
        }
        _ => {
            let offsets_at = align8(tokens.index + 512);
            let base = u64_at(bytes, align8(offsets_at + 4 * n))
                .filter(|&b| looks_like_base(b))
                .ok_or_else(|| {
                    ProfileError::Malformed("kallsyms: no relative base after the offsets".into())
                })?;
            (offsets_at, base)
        }
    };
    let offsets = bytes
        .get(offsets_at..offsets_at + 4 * n)
        .ok_or_else(|| ProfileError::Malformed("kallsyms: offsets out of bounds".into()))?;
    let raw_offset = |i: usize| {
        u32::from_le_bytes([
            offsets[4 * i],
            offsets[4 * i + 1],
            offsets[4 * i + 2],
            offsets[4 * i + 3],
        ])
    };
    // KALLSYMS_ABSOLUTE_PERCPU: most (text, data) offsets are negative there.
    let negative = (0..n).filter(|&i| raw_offset(i) & 0x8000_0000 != 0).count();
    let absolute_percpu = negative * 2 > n;

    let mut symbols = Vec::with_capacity(n);
    let mut name = Vec::with_capacity(128);
    for (i, &(data, len)) in names.ranges.iter().enumerate() {
        name.clear();
        for &token in &bytes[data as usize..(data + len) as usize] {
            name.extend_from_slice(token_strings[token as usize]);
        }
        let Some((&kind, rest)) = name.split_first() else {
            continue;
        };
        let off = raw_offset(i);
        let address = if absolute_percpu {
            if off & 0x8000_0000 == 0 {
                u64::from(off)
            } else {
                base.wrapping_sub(1)
                    .wrapping_sub(i64::from(off as i32) as u64)
            }
        } else {
            base.wrapping_add(u64::from(off))
        };
        symbols.push(Symbol {
            name: String::from_utf8_lossy(rest).into_owned(),
            address,
            kind: char::from(kind),
        });
    }
    Ok(symbols)
}
