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

use crate::profile::ProfileError;

/// More symbols than any kernel has; bounds the decoding of a garbage count.
const MAX_SYMBOLS: u32 = 4_000_000;
/// The most name bytes walked over all attempts to find the count.
const MAX_DECODE_WORK: usize = 256 << 20;
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
    /// Indices sorted by name, for prefix queries (made on the first such query).
    sorted_by_name: std::sync::OnceLock<Vec<u32>>,
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
        SymbolTable {
            symbols,
            by_name,
            sorted_by_name: std::sync::OnceLock::new(),
        }
    }

    fn sorted_by_name(&self) -> &[u32] {
        self.sorted_by_name.get_or_init(|| {
            let mut sorted: Vec<u32> = (0..self.symbols.len() as u32).collect();
            sorted.sort_unstable_by(|&a, &b| {
                self.symbols[a as usize]
                    .name
                    .cmp(&self.symbols[b as usize].name)
                    .then(a.cmp(&b))
            });
            sorted
        })
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
        let sorted = self.sorted_by_name();
        let start = sorted.partition_point(|i| name(i) < prefix);
        let rest = &sorted[start..];
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
    // Real kernels have one or two such runs; each candidate costs up to 64 KiB of
    // scanning, so a crafted image full of them is cut short.
    for digits in memchr::memmem::find_iter(bytes, DIGITS).take(4096) {
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
fn decode_names(
    bytes: &[u8],
    start: usize,
    count: u32,
    limit: usize,
    budget: &mut usize,
) -> Option<Names> {
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
        *budget = budget.checked_sub(header + len)?;
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
    // Real kernels need one attempt (the first small count below the token table is
    // kallsyms_num_syms); the budget bounds the work a crafted image can cause.
    let mut budget = MAX_DECODE_WORK;
    while candidate >= lowest + 8 && budget > 0 {
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
        if let Some(names) = decode_names(bytes, candidate + 8, count, tokens.table, &mut budget) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A kernel-like blob of kallsyms tables for `symbols` (names with their type
    /// letter, already in address order), in the 6.4+ order or the older one. Each
    /// character is its own token (token `c` is the string `c`), as for a kernel whose
    /// names compress no further.
    fn tables(symbols: &[(String, u32)], base: u64, new_order: bool) -> Vec<u8> {
        let pad = |out: &mut Vec<u8>| {
            while !out.len().is_multiple_of(8) {
                out.push(0);
            }
        };
        let mut names = Vec::new();
        let mut markers = Vec::new();
        for (i, (name, _)) in symbols.iter().enumerate() {
            if i % 256 == 0 {
                markers.push(names.len() as u32);
            }
            let len = name.len();
            if len >= 0x80 {
                names.push((len & 0x7f) as u8 | 0x80);
                names.push((len >> 7) as u8);
            } else {
                names.push(len as u8);
            }
            names.extend_from_slice(name.as_bytes());
        }
        let mut tokens = Vec::new();
        let mut index = Vec::new();
        for i in 0..256u32 {
            index.push(tokens.len() as u16);
            if i == 0 {
                tokens.extend_from_slice(b"zz");
            } else {
                tokens.push(i as u8);
            }
            tokens.push(0);
        }
        let mut out = vec![0xaa; 64]; // unrelated data before
        pad(&mut out);
        let offsets = |out: &mut Vec<u8>| {
            for (_, off) in symbols {
                out.extend_from_slice(&off.to_le_bytes());
            }
            pad(out);
            out.extend_from_slice(&base.to_le_bytes());
        };
        if !new_order {
            offsets(&mut out);
        }
        out.extend_from_slice(&(symbols.len() as u64).to_le_bytes());
        out.extend_from_slice(&names);
        pad(&mut out);
        for m in &markers {
            out.extend_from_slice(&m.to_le_bytes());
        }
        pad(&mut out);
        if !new_order {
            // seqs_of_names (6.2+): three bytes per symbol.
            out.extend(std::iter::repeat_n(0u8, 3 * symbols.len()));
            pad(&mut out);
        }
        out.extend_from_slice(&tokens);
        pad(&mut out);
        for i in &index {
            out.extend_from_slice(&i.to_le_bytes());
        }
        pad(&mut out);
        if new_order {
            offsets(&mut out);
        }
        out.extend_from_slice(&[0x55; 64]);
        out
    }

    fn sample_symbols() -> Vec<(String, u32)> {
        (0..600u32)
            .map(|i| {
                let name = if i == 300 {
                    format!("T{}", "long_name_".repeat(20))
                } else {
                    format!("tsym_{i}")
                };
                (name, 0x1000 + 16 * i)
            })
            .collect()
    }

    #[test]
    fn both_table_orders_decode_to_the_same_symbols() {
        let base = 0xffff_ffff_8000_0000;
        for new_order in [true, false] {
            let symbols = decode(&tables(&sample_symbols(), base, new_order)).expect("decodes");
            assert_eq!(symbols.len(), 600, "new order: {new_order}");
            assert_eq!(symbols[0].name, "sym_0");
            assert_eq!(symbols[0].kind, 't');
            assert_eq!(symbols[0].address, base + 0x1000);
            assert_eq!(
                symbols[300].name,
                "long_name_".repeat(20),
                "a two-byte length"
            );
            assert_eq!(symbols[300].kind, 'T');
            assert_eq!(symbols[599].address, base + 0x1000 + 16 * 599);
        }
    }

    #[test]
    fn absolute_per_cpu_offsets_are_told_from_relative_ones() {
        let base = 0xffff_ffff_8100_0000;
        // Most symbols relative (negative: base - 1 - off), a few per-CPU (absolute).
        let mut symbols = sample_symbols();
        for (i, (_, off)) in symbols.iter_mut().enumerate() {
            *off = if i < 10 {
                0x40 * i as u32
            } else {
                (-(0x1000 + 16 * i as i32) - 1) as u32
            };
        }
        let decoded = decode(&tables(&symbols, base, false)).expect("decodes");
        assert_eq!(decoded[3].address, 0xc0, "absolute per-CPU offset");
        assert_eq!(decoded[20].address, base + 0x1000 + 16 * 20);
    }

    #[test]
    fn a_table_without_matching_markers_is_malformed() {
        let mut blob = tables(&sample_symbols(), 0xffff_ffff_8000_0000, true);
        // The count says one more symbol than there are names before the markers.
        let at = 64;
        blob[at..at + 8].copy_from_slice(&601u64.to_le_bytes());
        assert!(matches!(decode(&blob), Err(ProfileError::Malformed(_))));
        assert!(matches!(
            decode(&[0u8; 4096]),
            Err(ProfileError::NoKallsyms)
        ));
    }

    #[test]
    fn lookups_by_name_prefix_and_address() {
        let table = SymbolTable::new(vec![
            Symbol {
                name: "b".into(),
                address: 0x20,
                kind: 't',
            },
            Symbol {
                name: "a.isra.0".into(),
                address: 0x10,
                kind: 't',
            },
            Symbol {
                name: "b".into(),
                address: 0x30,
                kind: 'T',
            },
            Symbol {
                name: "c".into(),
                address: 0x30,
                kind: 't',
            },
        ]);
        assert_eq!(
            table.get("b").map(|s| s.address),
            Some(0x30),
            "the global one"
        );
        assert_eq!(table.with_prefix("a.").count(), 1);
        assert_eq!(table.at(0x30).len(), 2);
        assert_eq!(table.containing(0x35).map(|s| s.name.as_str()), Some("b"));
        assert_eq!(table.containing(0x5), None);
        assert_eq!(table.next_address_after(0x20), Some(0x30));
    }
}
