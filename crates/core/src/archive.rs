//! The on-disk container for snapshots and recordings: a kind (`snapshot`, `recording`) and
//! named sections of bytes, each zstd-compressed, behind a magic number, a format version and
//! a CRC-32 over the whole file. `docs/formats/archive.md` is the byte layout; this module is
//! its only reader and writer.
//!
//! Reading is defensive: the header is checked before anything else is read, every size is
//! checked against what the file holds and against a cap before anything is allocated for it,
//! and no input makes the reader panic. Writing is atomic: a temporary file in the same
//! directory, fsync, rename, fsync of the directory, so a crash or a failed write leaves
//! either the old file or the new one.
//!
//! ```
//! use pandare_core::archive::Archive;
//!
//! let mut archive = Archive::new("recording");
//! archive.push("log", b"events".to_vec());
//! let bytes = archive.to_bytes();
//! let back = Archive::from_bytes(&bytes, "recording", "example.rec").unwrap();
//! assert_eq!(back.section("log"), Some(&b"events"[..]));
//! ```
// A wrong cast in a parser is a bug: sizes go through `try_from`.
#![warn(clippy::cast_possible_truncation, clippy::cast_sign_loss)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::memory::{Page, RamImage, PAGE_SIZE};
use crate::snapshot::{Snapshot, SnapshotError};

/// First bytes of every archive: 0x89 (so no tool takes the file for text), then `PANDARE`.
pub const MAGIC: [u8; 8] = *b"\x89PANDARE";
/// Format major version this build writes and reads. A file of another major is refused.
pub const FORMAT_MAJOR: u16 = 1;
/// Format minor version this build writes. Files of this or an older minor are read;
/// a newer minor is refused, since it may hold something this build would silently drop.
pub const FORMAT_MINOR: u16 = 0;

/// Largest guest RAM a snapshot may describe (64 GiB).
pub const MAX_MEMORY_BYTES: u64 = 64 << 30;
/// Largest decompressed size of a RAM section: the page count, then an index and the
/// contents of every page of the largest RAM.
pub const MAX_RAM_SECTION_BYTES: u64 = 8 + (MAX_MEMORY_BYTES / PAGE_SIZE_U64) * (8 + PAGE_SIZE_U64);
/// Largest decompressed size of any other section (1 GiB: a long recording's log is large,
/// but nothing else comes near).
pub const MAX_SECTION_BYTES: u64 = 1 << 30;
/// Most sections an archive may have.
pub const MAX_SECTIONS: u32 = 1024;

/// Kind of a snapshot archive.
pub const SNAPSHOT_KIND: &str = "snapshot";
/// Name of the section holding a snapshot's architecture and memory size.
pub const META_SECTION: &str = "meta";
/// Name of the section holding a snapshot's serialized machine state.
pub const STATE_SECTION: &str = "state";
/// Name of the section holding a snapshot's RAM pages (the only one with the RAM size cap).
pub const RAM_SECTION: &str = "ram";

const PAGE_SIZE_U64: u64 = PAGE_SIZE as u64;
/// Magic, major, minor, file length.
const FIXED_HEADER_BYTES: usize = 8 + 2 + 2 + 8;
const CHECKSUM_BYTES: usize = 4;
/// Longest architecture name a snapshot may carry.
const MAX_ARCHITECTURE_BYTES: usize = 64;
/// zstd level 1: guest RAM compresses nearly as well as at level 3, about twice as fast.
const ZSTD_LEVEL: i32 = 1;

/// How a section's bytes are stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Codec {
    /// As they are (used when compressing would not make them smaller).
    Stored = 0,
    /// One or more zstd frames.
    Zstd = 1,
}

/// A pandare archive: a kind ("snapshot" or "recording"), and named sections of bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Archive {
    /// What the archive holds (`snapshot`, `recording`); readers say which kind they expect.
    pub kind: String,
    /// The sections in file order. Names are unique, at most 255 bytes and not empty
    /// ([`Archive::push`] keeps them so); an archive that breaks this writes a file that
    /// [`Archive::read`] refuses.
    pub sections: Vec<(String, Vec<u8>)>,
}

impl Archive {
    /// An empty archive of `kind`.
    pub fn new(kind: &str) -> Archive {
        Archive {
            kind: kind.to_string(),
            sections: Vec::new(),
        }
    }

    /// Adds a section at the end, or replaces the bytes of the section already named `name`.
    pub fn push(&mut self, name: &str, bytes: Vec<u8>) {
        match self
            .sections
            .iter_mut()
            .find(|(existing, _)| existing == name)
        {
            Some((_, existing)) => *existing = bytes,
            None => self.sections.push((name.to_string(), bytes)),
        }
    }

    /// The bytes of the section named `name`.
    pub fn section(&self, name: &str) -> Option<&[u8]> {
        self.sections
            .iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, bytes)| bytes.as_slice())
    }

    /// Writes atomically: temporary file in the same directory, fsync, rename, fsync the
    /// directory. A failed write never damages an existing file at `path`.
    pub fn write(&self, path: &Path) -> Result<(), SnapshotError> {
        write_atomically(path, &self.to_bytes())
    }

    /// Reads and validates the archive at `path`: magic, format version, length, checksum,
    /// kind (`expected_kind`), section table and sizes. Sizes are checked before anything is
    /// allocated for them; no input makes this panic.
    pub fn read(path: &Path, expected_kind: &str) -> Result<Archive, SnapshotError> {
        let shown = path.display().to_string();
        let io_error = |source| SnapshotError::Io {
            path: shown.clone(),
            source,
        };
        let mut file = File::open(path).map_err(io_error)?;
        let metadata = file.metadata().map_err(io_error)?;
        let bad = |problem| SnapshotError::Archive {
            path: shown.clone(),
            problem,
        };
        if !metadata.is_file() {
            return Err(bad(ArchiveError::NotAFile));
        }
        let actual_length = metadata.len();
        // Check the header before reading the rest, so a wrong or huge file is refused
        // without reading it.
        let mut header = Vec::with_capacity(FIXED_HEADER_BYTES);
        (&mut file)
            .take(FIXED_HEADER_BYTES as u64)
            .read_to_end(&mut header)
            .map_err(io_error)?;
        check_header(&header, actual_length, expected_kind).map_err(bad)?;
        let length =
            usize::try_from(actual_length).map_err(|_| bad(ArchiveError::TooLargeForHost))?;
        let mut bytes = Vec::new();
        bytes
            .try_reserve_exact(length)
            .map_err(|_| bad(ArchiveError::NoMemory(length)))?;
        bytes.extend_from_slice(&header);
        // Bounded by the length checked above, even if the file grows meanwhile.
        file.take(actual_length.saturating_sub(header.len() as u64))
            .read_to_end(&mut bytes)
            .map_err(io_error)?;
        Archive::from_bytes(&bytes, expected_kind, &shown)
    }

    /// The archive as the bytes of a file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut compressor =
            zstd::bulk::Compressor::new(ZSTD_LEVEL).expect("level 1 is a valid zstd level");
        let encoded: Vec<(Codec, Vec<u8>)> = self
            .sections
            .iter()
            .map(|(_, bytes)| match compressor.compress(bytes) {
                Ok(compressed) if compressed.len() < bytes.len() => (Codec::Zstd, compressed),
                // Incompressible or tiny (or zstd failed, which only an allocation failure
                // can cause): store the bytes as they are.
                _ => (Codec::Stored, bytes.clone()),
            })
            .collect();

        let mut out = Vec::with_capacity(
            FIXED_HEADER_BYTES
                + 256
                + encoded
                    .iter()
                    .map(|(_, data)| data.len() + 274)
                    .sum::<usize>(),
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
        out.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes()); // File length, filled in below.
        push_short_string(&mut out, &self.kind);
        let count = u32::try_from(self.sections.len()).expect("fewer than 2^32 sections");
        out.extend_from_slice(&count.to_le_bytes());
        for ((name, bytes), (codec, data)) in self.sections.iter().zip(&encoded) {
            push_short_string(&mut out, name);
            out.push(*codec as u8);
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        }
        for (_, data) in &encoded {
            out.extend_from_slice(data);
        }
        let length = (out.len() + CHECKSUM_BYTES) as u64;
        out[12..20].copy_from_slice(&length.to_le_bytes());
        let checksum = crc32fast::hash(&out);
        out.extend_from_slice(&checksum.to_le_bytes());
        out
    }

    /// Parses and validates archive `bytes` (see [`Archive::read`]); `path_for_messages`
    /// names the file in errors.
    pub fn from_bytes(
        bytes: &[u8],
        expected_kind: &str,
        path_for_messages: &str,
    ) -> Result<Archive, SnapshotError> {
        parse(bytes, expected_kind).map_err(|problem| SnapshotError::Archive {
            path: path_for_messages.to_string(),
            problem,
        })
    }
}

/// Rewrites the length field and the checksum of archive bytes after they were changed,
/// so that a fuzzer's mutations reach the checks behind the checksum. Bytes too short to
/// hold both are left as they are.
pub fn reseal(bytes: &mut [u8]) {
    if bytes.len() < FIXED_HEADER_BYTES + CHECKSUM_BYTES {
        return;
    }
    let length = bytes.len() as u64;
    bytes[12..20].copy_from_slice(&length.to_le_bytes());
    let body = bytes.len() - CHECKSUM_BYTES;
    let checksum = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&checksum.to_le_bytes());
}

/// Appends a length byte and the string; longer strings are cut to 255 bytes (and the
/// reader then refuses the file, or finds another name: names must be short).
fn push_short_string(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(255)];
    out.push(u8::try_from(bytes.len()).expect("at most 255"));
    out.extend_from_slice(bytes);
}

/// What to do with a file that cannot be used, by kind.
fn remedy(kind: &str) -> &'static str {
    match kind {
        "recording" => "record it again",
        SNAPSHOT_KIND => "take the snapshot again",
        _ => "make it again",
    }
}

/// What is wrong with an archive's bytes or with the snapshot inside it. Each message says
/// what to do; `remedy` is "take the snapshot again", "record it again" or the like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// A device, pipe or directory.
    #[error("it is not a regular file (a device, pipe or directory); give a file")]
    NotAFile,
    /// Larger than this host can address.
    #[error("the file is too large for this host")]
    TooLargeForHost,
    /// Not enough memory to read it.
    #[error("there is not enough memory to read its {0} bytes")]
    NoMemory(usize),
    /// Wrong magic.
    #[error("not a pandare {expected} (bad magic)")]
    BadMagic {
        /// The kind expected.
        expected: String,
    },
    /// Shorter than the fixed header.
    #[error("the file is truncated (expected at least {FIXED_HEADER_BYTES} bytes, found {found}); it cannot be used — {remedy}")]
    ShortHeader {
        /// The file's length.
        found: u64,
        /// What to do.
        remedy: &'static str,
    },
    /// Another format version.
    #[error("made by format {major}.{minor}, this build reads format {FORMAT_MAJOR}.{FORMAT_MINOR} and older {FORMAT_MAJOR}.x: {}", if *.newer { format!("use a newer pandare, or {remedy} with this build") } else { format!("{remedy} with this build") })]
    Version {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
        /// Whether it is newer than this build's.
        newer: bool,
        /// What to do.
        remedy: &'static str,
    },
    /// Shorter than its header says.
    #[error("the file is truncated (expected {declared} bytes, found {found}); it cannot be used — {remedy}")]
    Truncated {
        /// Length in the header.
        declared: u64,
        /// The file's length.
        found: u64,
        /// What to do.
        remedy: &'static str,
    },
    /// Longer than its header says.
    #[error("the file has {found} bytes but its header says {declared}: it is damaged — {remedy}")]
    LengthMismatch {
        /// Length in the header.
        declared: u64,
        /// The file's length.
        found: u64,
        /// What to do.
        remedy: &'static str,
    },
    /// A field runs past the end.
    #[error("the {0} runs past the end of its data: the file is damaged")]
    PastEnd(&'static str),
    /// A name is not UTF-8.
    #[error("the {0} is not UTF-8: the file is damaged")]
    NotUtf8(&'static str),
    /// No room for the checksum.
    #[error("the file is too short to hold a checksum: it is damaged — {0}")]
    NoChecksum(&'static str),
    /// The checksum does not match.
    #[error("checksum mismatch: the file is damaged — {0}")]
    Checksum(&'static str),
    /// Another kind of archive.
    #[error("it is a pandare {}, not a {expected}; give it where a {} is expected", .found.escape_debug(), .found.escape_debug())]
    WrongKind {
        /// The kind found.
        found: String,
        /// The kind expected.
        expected: String,
    },
    /// Too many sections.
    #[error("it declares {0} sections, more than the {MAX_SECTIONS} allowed: it is damaged")]
    TooManySections(u32),
    /// An empty or repeated section name.
    #[error("the section table has an empty or repeated name ({0:?}): the file is damaged")]
    BadSectionName(String),
    /// An unknown compression.
    #[error("section {name:?} uses compression {codec}, which this build does not know: use a newer pandare")]
    UnknownCodec {
        /// The section.
        name: String,
        /// The codec number.
        codec: u8,
    },
    /// A section larger than allowed.
    #[error("section {name:?} declares {size} bytes, more than the {cap} allowed: the file is damaged or not from pandare")]
    SectionTooLarge {
        /// The section.
        name: String,
        /// Its declared size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Stored sizes that differ.
    #[error("section {name:?} is stored uncompressed but its sizes differ ({stored} and {size}): the file is damaged")]
    StoredSizes {
        /// The section.
        name: String,
        /// Stored length.
        stored: u64,
        /// Decoded length.
        size: u64,
    },
    /// A section past the end of the file.
    #[error("section {name:?} declares {stored} bytes but only {remaining} remain in the file: it is damaged")]
    SectionPastEnd {
        /// The section.
        name: String,
        /// Its stored length.
        stored: u64,
        /// What remains.
        remaining: usize,
    },
    /// The section sizes do not cover the data exactly.
    #[error(
        "the section sizes do not add up to the {0} bytes after the table: the file is damaged"
    )]
    SizesDoNotAddUp(usize),
    /// A section that does not decompress to its size.
    #[error("section {name:?} {problem}: the file is damaged — {remedy}")]
    Decompress {
        /// The section.
        name: String,
        /// What happened.
        problem: DecompressProblem,
        /// What to do.
        remedy: &'static str,
    },
    /// The snapshot in the archive is inconsistent.
    #[error("the snapshot inside is invalid ({0}); take the snapshot again")]
    Snapshot(SnapshotProblem),
}

/// Why a compressed section could not be decompressed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecompressProblem {
    /// zstd refused the data.
    #[error("cannot be decompressed ({0})")]
    Corrupt(String),
    /// The declared size cannot be allocated.
    #[error("needs {0} bytes, more memory than there is")]
    NoMemory(u64),
    /// The data decompresses to another size than declared.
    #[error("decompresses to {found}{} bytes, not the {size} its table says", if *.found as u64 > *.size { " or more" } else { "" })]
    WrongSize {
        /// Bytes produced (at most one past `size`).
        found: usize,
        /// The declared size.
        size: u64,
    },
}

/// What is inconsistent in a snapshot's sections.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotProblem {
    /// A section is missing.
    #[error("the {0} section is missing")]
    MissingSection(&'static str),
    /// A section is too short.
    #[error("the {0} runs past the end of its data")]
    PastEnd(&'static str),
    /// The architecture name is unusable.
    #[error("the architecture name is empty, too long or not UTF-8")]
    Architecture,
    /// The memory size is not whole pages within bounds.
    #[error("the memory size {0} is not a whole number of pages up to {MAX_MEMORY_BYTES}")]
    MemorySize(u64),
    /// The page count does not match the memory size.
    #[error("the RAM section has {pages} pages but the memory size is {memory_bytes} bytes")]
    PageCount {
        /// Pages in the RAM section.
        pages: u64,
        /// The memory size.
        memory_bytes: u64,
    },
    /// The page count does not fit the host.
    #[error("{0} pages do not fit this host")]
    HostPages(u64),
    /// The RAM section is not whole pages.
    #[error("the RAM section does not hold whole pages")]
    PartialPage,
    /// Not enough host memory.
    #[error("there is not enough memory for {0} pages")]
    NoMemory(usize),
    /// A page index out of order.
    #[error("page {index} is out of order, repeated or beyond the {pages} pages")]
    PageOrder {
        /// The index.
        index: u64,
        /// The page count.
        pages: usize,
    },
}

/// Checks magic, version and length: everything that can be checked from the first
/// [`FIXED_HEADER_BYTES`] bytes and the file's length. `header` may be shorter.
fn check_header(
    header: &[u8],
    actual_length: u64,
    expected_kind: &str,
) -> Result<(), ArchiveError> {
    let remedy = remedy(expected_kind);
    let magic_seen = header.len().min(MAGIC.len());
    if header[..magic_seen] != MAGIC[..magic_seen] {
        return Err(ArchiveError::BadMagic {
            expected: expected_kind.to_string(),
        });
    }
    if header.len() < FIXED_HEADER_BYTES {
        return Err(ArchiveError::ShortHeader {
            found: actual_length,
            remedy,
        });
    }
    let major = u16::from_le_bytes([header[8], header[9]]);
    let minor = u16::from_le_bytes([header[10], header[11]]);
    if major != FORMAT_MAJOR || minor > FORMAT_MINOR {
        return Err(ArchiveError::Version {
            major,
            minor,
            newer: major > FORMAT_MAJOR || (major == FORMAT_MAJOR && minor > FORMAT_MINOR),
            remedy,
        });
    }
    let mut length = [0u8; 8];
    length.copy_from_slice(&header[12..20]);
    let declared = u64::from_le_bytes(length);
    if declared > actual_length {
        return Err(ArchiveError::Truncated {
            declared,
            found: actual_length,
            remedy,
        });
    }
    if declared < actual_length {
        return Err(ArchiveError::LengthMismatch {
            declared,
            found: actual_length,
            remedy,
        });
    }
    Ok(())
}

/// A cursor over the bytes being parsed; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize, what: &'static str) -> Result<&'a [u8], ArchiveError> {
        let end = self
            .position
            .checked_add(count)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(ArchiveError::PastEnd(what))?;
        let taken = &self.bytes[self.position..end];
        self.position = end;
        Ok(taken)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ArchiveError> {
        Ok(self.take(1, what)?[0])
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ArchiveError> {
        let mut bytes = [0u8; 4];
        bytes.copy_from_slice(self.take(4, what)?);
        Ok(u32::from_le_bytes(bytes))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ArchiveError> {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(self.take(8, what)?);
        Ok(u64::from_le_bytes(bytes))
    }

    fn short_string(&mut self, what: &'static str) -> Result<&'a str, ArchiveError> {
        let length = usize::from(self.u8(what)?);
        std::str::from_utf8(self.take(length, what)?).map_err(|_| ArchiveError::NotUtf8(what))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }
}

/// One entry of the section table.
struct Entry<'a> {
    name: &'a str,
    codec: Codec,
    stored: usize,
    size: u64,
}

fn parse(bytes: &[u8], expected_kind: &str) -> Result<Archive, ArchiveError> {
    check_header(bytes, bytes.len() as u64, expected_kind)?;
    if bytes.len() < FIXED_HEADER_BYTES + CHECKSUM_BYTES {
        return Err(ArchiveError::NoChecksum(remedy(expected_kind)));
    }
    let (body, checksum) = bytes.split_at(bytes.len() - CHECKSUM_BYTES);
    let mut stored_checksum = [0u8; 4];
    stored_checksum.copy_from_slice(checksum);
    if crc32fast::hash(body) != u32::from_le_bytes(stored_checksum) {
        return Err(ArchiveError::Checksum(remedy(expected_kind)));
    }

    let mut cursor = Cursor {
        bytes: body,
        position: FIXED_HEADER_BYTES,
    };
    let kind = cursor.short_string("kind")?;
    if kind != expected_kind {
        return Err(ArchiveError::WrongKind {
            found: kind.to_string(),
            expected: expected_kind.to_string(),
        });
    }
    let count = cursor.u32("section count")?;
    if count > MAX_SECTIONS {
        return Err(ArchiveError::TooManySections(count));
    }
    let mut entries: Vec<Entry<'_>> = Vec::new();
    for _ in 0..count {
        let name = cursor.short_string("section name")?;
        if name.is_empty() || entries.iter().any(|entry| entry.name == name) {
            return Err(ArchiveError::BadSectionName(name.to_string()));
        }
        let codec = match cursor.u8("section table")? {
            0 => Codec::Stored,
            1 => Codec::Zstd,
            other => {
                return Err(ArchiveError::UnknownCodec {
                    name: name.to_string(),
                    codec: other,
                })
            }
        };
        let stored = cursor.u64("section table")?;
        let size = cursor.u64("section table")?;
        let cap = if name == RAM_SECTION {
            MAX_RAM_SECTION_BYTES
        } else {
            MAX_SECTION_BYTES
        };
        if size > cap {
            return Err(ArchiveError::SectionTooLarge {
                name: name.to_string(),
                size,
                cap,
            });
        }
        if codec == Codec::Stored && stored != size {
            return Err(ArchiveError::StoredSizes {
                name: name.to_string(),
                stored,
                size,
            });
        }
        // Bounded by the file: no section may claim more than what follows the table.
        let stored = usize::try_from(stored)
            .ok()
            .filter(|&stored| stored <= cursor.remaining())
            .ok_or_else(|| ArchiveError::SectionPastEnd {
                name: name.to_string(),
                stored,
                remaining: cursor.remaining(),
            })?;
        entries.push(Entry {
            name,
            codec,
            stored,
            size,
        });
    }
    let data_bytes = entries
        .iter()
        .try_fold(0usize, |sum, entry| sum.checked_add(entry.stored));
    if data_bytes != Some(cursor.remaining()) {
        return Err(ArchiveError::SizesDoNotAddUp(cursor.remaining()));
    }

    let mut sections = Vec::with_capacity(entries.len());
    for entry in entries {
        let data = cursor.take(entry.stored, "section data")?;
        let bytes = match entry.codec {
            Codec::Stored => data.to_vec(),
            Codec::Zstd => {
                decompress(data, entry.size).map_err(|problem| ArchiveError::Decompress {
                    name: entry.name.to_string(),
                    problem,
                    remedy: remedy(expected_kind),
                })?
            }
        };
        sections.push((entry.name.to_string(), bytes));
    }
    Ok(Archive {
        kind: kind.to_string(),
        sections,
    })
}

/// Decompresses zstd `data` that should give exactly `size` bytes. Memory grows with what
/// the data really decompresses to, never past `size` plus a little, so a section that lies
/// about its size costs no more than its real contents.
fn decompress(data: &[u8], size: u64) -> Result<Vec<u8>, DecompressProblem> {
    let corrupt = |error: std::io::Error| DecompressProblem::Corrupt(error.to_string());
    let mut decoder = zstd::stream::read::Decoder::with_buffer(data).map_err(corrupt)?;
    let mut out = Vec::new();
    // Guest RAM rarely compresses more than 16:1; past that, grow as the data arrives.
    let first_guess = size.min((data.len() as u64).saturating_mul(16));
    out.try_reserve_exact(usize::try_from(first_guess).unwrap_or(usize::MAX))
        .map_err(|_| DecompressProblem::NoMemory(size))?;
    (&mut decoder)
        .take(size.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(corrupt)?;
    if out.len() as u64 != size {
        return Err(DecompressProblem::WrongSize {
            found: out.len(),
            size,
        });
    }
    Ok(out)
}

/// A name for the temporary file beside `path`, unique within this process and (by the
/// process id) across processes.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}.{unique}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file in the same directory, so that a reader
/// (or a crash) sees the old file or the new one, never a mixture.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SnapshotError> {
    let shown = path.display().to_string();
    let io_error = |source| SnapshotError::Io {
        path: shown.clone(),
        source,
    };
    if path.file_name().is_none() {
        return Err(io_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path names no file",
        )));
    }
    let temporary = temporary_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(io_error)?;
    let written = file
        .write_all(bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            drop(file);
            fs::rename(&temporary, path)
        });
    if let Err(error) = written {
        // The temporary file is ours and useless now; a failure to remove it changes nothing
        // about the error to report.
        let _ = fs::remove_file(&temporary);
        return Err(io_error(error));
    }
    // Make the rename itself durable: it lives in the directory.
    #[cfg(unix)]
    {
        let directory = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        File::open(directory)
            .and_then(|directory| directory.sync_all())
            .map_err(|source| SnapshotError::Io {
                path: directory.display().to_string(),
                source,
            })?;
    }
    Ok(())
}

/// A snapshot as an archive of kind `snapshot` (see [`snapshot_into`] for its sections).
pub fn snapshot_to_archive(snapshot: &Snapshot) -> Archive {
    let mut archive = Archive::new(SNAPSHOT_KIND);
    snapshot_into(&mut archive, snapshot);
    archive
}

/// Adds a snapshot's sections to `archive` (a recording embeds its starting snapshot):
/// `meta` (memory size as u64 LE, then the architecture name), `state` (the state bytes) and
/// `ram` (the page count as u64 LE, then for each page that is not all zero its index as u64
/// LE and its 4096 bytes, in increasing index order).
pub fn snapshot_into(archive: &mut Archive, snapshot: &Snapshot) {
    let mut meta = Vec::with_capacity(8 + snapshot.architecture.len());
    meta.extend_from_slice(&snapshot.memory_bytes.to_le_bytes());
    meta.extend_from_slice(snapshot.architecture.as_bytes());
    archive.push(META_SECTION, meta);
    archive.push(STATE_SECTION, snapshot.state.clone());

    let pages = snapshot.ram.pages();
    let stored: Vec<(usize, &Page)> = pages
        .iter()
        .enumerate()
        .filter_map(|(index, page)| Some((index, &**page.as_ref()?)))
        .filter(|(_, page)| page.iter().any(|&byte| byte != 0))
        .collect();
    let mut ram = Vec::with_capacity(8 + stored.len() * (8 + PAGE_SIZE));
    ram.extend_from_slice(&(pages.len() as u64).to_le_bytes());
    for (index, page) in stored {
        ram.extend_from_slice(&(index as u64).to_le_bytes());
        ram.extend_from_slice(page);
    }
    archive.push(RAM_SECTION, ram);
}

/// The snapshot held in `archive`'s `meta`, `state` and `ram` sections, validated: the memory
/// size is whole pages, at most [`MAX_MEMORY_BYTES`], and matches the page count; page indices
/// are below the page count and strictly increasing (so none repeats).
pub fn snapshot_from_archive(archive: &Archive) -> Result<Snapshot, SnapshotError> {
    decode_snapshot(archive).map_err(|problem| SnapshotError::InvalidState(problem.to_string()))
}

fn decode_snapshot(archive: &Archive) -> Result<Snapshot, SnapshotProblem> {
    let section = |name: &'static str| {
        archive
            .section(name)
            .ok_or(SnapshotProblem::MissingSection(name))
    };
    let past_end = |what| move |_| SnapshotProblem::PastEnd(what);
    let meta = section(META_SECTION)?;
    let state = section(STATE_SECTION)?;
    let ram = section(RAM_SECTION)?;

    let mut cursor = Cursor {
        bytes: meta,
        position: 0,
    };
    let memory_bytes = cursor
        .u64("meta section")
        .map_err(past_end("meta section"))?;
    let architecture = std::str::from_utf8(&meta[cursor.position..])
        .ok()
        .filter(|name| !name.is_empty() && name.len() <= MAX_ARCHITECTURE_BYTES)
        .ok_or(SnapshotProblem::Architecture)?;
    if memory_bytes > MAX_MEMORY_BYTES || !memory_bytes.is_multiple_of(PAGE_SIZE_U64) {
        return Err(SnapshotProblem::MemorySize(memory_bytes));
    }

    let mut cursor = Cursor {
        bytes: ram,
        position: 0,
    };
    let page_count = cursor.u64("RAM section").map_err(past_end("RAM section"))?;
    if page_count.checked_mul(PAGE_SIZE_U64) != Some(memory_bytes) {
        return Err(SnapshotProblem::PageCount {
            pages: page_count,
            memory_bytes,
        });
    }
    let page_count =
        usize::try_from(page_count).map_err(|_| SnapshotProblem::HostPages(page_count))?;
    if !cursor.remaining().is_multiple_of(8 + PAGE_SIZE) {
        return Err(SnapshotProblem::PartialPage);
    }
    let mut pages: Vec<Option<Arc<Page>>> = Vec::new();
    pages
        .try_reserve_exact(page_count)
        .map_err(|_| SnapshotProblem::NoMemory(page_count))?;
    pages.resize(page_count, None);
    let mut next_allowed = 0u64;
    while cursor.remaining() > 0 {
        let index = cursor.u64("RAM section").map_err(past_end("RAM section"))?;
        let contents = cursor
            .take(PAGE_SIZE, "RAM section")
            .map_err(past_end("RAM section"))?;
        let slot = usize::try_from(index)
            .ok()
            .filter(|_| index >= next_allowed)
            .and_then(|slot| pages.get_mut(slot))
            .ok_or(SnapshotProblem::PageOrder {
                index,
                pages: page_count,
            })?;
        next_allowed = index + 1;
        // Keep the in-memory rule that an all-zero page is not stored.
        if contents.iter().any(|&byte| byte != 0) {
            let mut page = Arc::new([0u8; PAGE_SIZE]);
            Arc::get_mut(&mut page)
                .expect("a new Arc has one owner")
                .copy_from_slice(contents);
            *slot = Some(page);
        }
    }
    Ok(Snapshot {
        architecture: architecture.to_string(),
        memory_bytes,
        state: state.to_vec(),
        ram: RamImage::from_pages(pages),
    })
}

/// Writes `snapshot` to `path` atomically as an archive of kind `snapshot`.
pub fn write_snapshot(path: &Path, snapshot: &Snapshot) -> Result<(), SnapshotError> {
    snapshot_to_archive(snapshot).write(path)
}

/// Reads and validates the snapshot archive at `path`.
pub fn read_snapshot(path: &Path) -> Result<Snapshot, SnapshotError> {
    let archive = Archive::read(path, SNAPSHOT_KIND)?;
    decode_snapshot(&archive).map_err(|problem| SnapshotError::Archive {
        path: path.display().to_string(),
        problem: ArchiveError::Snapshot(problem),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    /// Records the largest allocation made by each thread, so a test can show that a hostile
    /// size is refused before anything of that size is allocated.
    struct TrackingAllocator;

    thread_local! {
        static LARGEST_ALLOCATION: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        // `try_with`: the thread's slot may already be gone while the thread ends.
        let _ = LARGEST_ALLOCATION.try_with(|largest| largest.set(largest.get().max(size)));
    }

    // SAFETY: every call is forwarded unchanged to the system allocator, which implements
    // the `GlobalAlloc` contract; noting the size has no effect on the memory handed out.
    unsafe impl GlobalAlloc for TrackingAllocator {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: the caller upholds `alloc`'s contract, passed on as it is.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: as for `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: `ptr` came from `System` through this allocator, with `layout`.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    #[global_allocator]
    static ALLOCATOR: TrackingAllocator = TrackingAllocator;

    /// A fresh directory for one test.
    fn scratch_directory(test: &str) -> PathBuf {
        let directory =
            std::env::temp_dir().join(format!("pandare-archive-{test}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&directory);
        fs::create_dir_all(&directory).unwrap();
        directory
    }

    fn page(fill: u8) -> Arc<Page> {
        let mut contents = [fill; PAGE_SIZE];
        contents[7] = fill.wrapping_mul(31);
        Arc::new(contents)
    }

    /// Eight pages: two sharing one `Arc`, a stored all-zero page, zero pages, distinct pages.
    fn sample_snapshot() -> Snapshot {
        let shared = page(0x5a);
        let pages = vec![
            Some(page(1)),
            None,
            Some(shared.clone()),
            Some(Arc::new([0u8; PAGE_SIZE])),
            Some(shared),
            None,
            Some(page(0xff)),
            None,
        ];
        Snapshot {
            architecture: "riscv64".to_string(),
            memory_bytes: 8 * PAGE_SIZE_U64,
            state: (0..200u8).collect(),
            ram: RamImage::from_pages(pages),
        }
    }

    fn sample_archive_bytes() -> Vec<u8> {
        let mut archive = Archive::new("recording");
        archive.push("log", b"some events, some events, some events".to_vec());
        archive.push("empty", Vec::new());
        archive.push(
            "noise",
            (0..64u32)
                .map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[3])
                .collect(),
        );
        archive.to_bytes()
    }

    /// Recomputes the length field and checksum of hand-made archive bytes (which must
    /// already end with four checksum bytes).
    fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
        let length = bytes.len() as u64;
        bytes[12..20].copy_from_slice(&length.to_le_bytes());
        let body = bytes.len() - CHECKSUM_BYTES;
        let checksum = crc32fast::hash(&bytes[..body]);
        bytes[body..].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    fn problem(result: Result<Archive, SnapshotError>) -> String {
        match result {
            Err(SnapshotError::Archive { problem, .. }) => problem.to_string(),
            other => panic!("expected an Archive error, got {other:?}"),
        }
    }

    #[test]
    fn snapshot_round_trips_through_a_file() {
        let directory = scratch_directory("round-trip");
        let path = directory.join("one.snapshot");
        let snapshot = sample_snapshot();
        write_snapshot(&path, &snapshot).unwrap();
        let back = read_snapshot(&path).unwrap();

        assert_eq!(back.architecture, snapshot.architecture);
        assert_eq!(back.memory_bytes, snapshot.memory_bytes);
        assert_eq!(back.state, snapshot.state);
        assert_eq!(back.ram.page_count(), 8);
        for (index, (original, read)) in snapshot
            .ram
            .pages()
            .iter()
            .zip(back.ram.pages())
            .enumerate()
        {
            let original = original.as_deref().filter(|p| p.iter().any(|&b| b != 0));
            assert_eq!(original, read.as_deref(), "page {index}");
        }
        // The stored all-zero page comes back as a zero page, as `Ram::capture` would make it.
        assert_eq!(back.ram.stored_pages(), 4);
        fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn snapshot_sections_can_join_another_archive() {
        let mut archive = Archive::new("recording");
        archive.push("log", b"[]".to_vec());
        snapshot_into(&mut archive, &sample_snapshot());
        let bytes = archive.to_bytes();
        let back = Archive::from_bytes(&bytes, "recording", "test").unwrap();
        assert_eq!(back, archive);
        assert_eq!(back.section("log"), Some(&b"[]"[..]));
        let snapshot = snapshot_from_archive(&back).unwrap();
        assert_eq!(snapshot.state, sample_snapshot().state);
    }

    #[test]
    fn archive_round_trips_stored_and_compressed_sections() {
        let bytes = sample_archive_bytes();
        let archive = Archive::from_bytes(&bytes, "recording", "test").unwrap();
        assert_eq!(archive.kind, "recording");
        let names: Vec<&str> = archive
            .sections
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        assert_eq!(names, ["log", "empty", "noise"]);
        assert_eq!(archive.section("empty"), Some(&[][..]));
        assert_eq!(archive.section("absent"), None);
        assert_eq!(archive.to_bytes(), bytes);
    }

    #[test]
    fn push_replaces_a_section_of_the_same_name() {
        let mut archive = Archive::new("snapshot");
        archive.push("a", vec![1]);
        archive.push("b", vec![2]);
        archive.push("a", vec![3]);
        assert_eq!(
            archive.sections,
            [("a".to_string(), vec![3]), ("b".to_string(), vec![2])]
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = snapshot_to_archive(&sample_snapshot()).to_bytes();
        for length in 0..bytes.len() {
            let problem = problem(Archive::from_bytes(&bytes[..length], "snapshot", "test"));
            assert!(problem.contains("truncated"), "length {length}: {problem}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        problem(Archive::from_bytes(&longer, "snapshot", "test"));
    }

    #[test]
    fn every_bit_flip_is_an_error() {
        let bytes = sample_archive_bytes();
        for bit in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            problem(Archive::from_bytes(&damaged, "recording", "test"));
        }
        let mut damaged = bytes.clone();
        let middle = bytes.len() / 2;
        damaged[middle] ^= 0x10;
        let problem = problem(Archive::from_bytes(&damaged, "recording", "test"));
        assert!(
            problem.starts_with("checksum mismatch: the file is damaged"),
            "{problem}"
        );
    }

    #[test]
    fn wrong_kind_and_bad_magic_are_named() {
        let bytes = sample_archive_bytes();
        let problem_text = problem(Archive::from_bytes(&bytes, "snapshot", "test"));
        assert_eq!(
            problem_text,
            "it is a pandare recording, not a snapshot; give it where a recording is expected"
        );
        let problem_text = problem(Archive::from_bytes(
            b"#!/bin/sh\necho hello\n",
            "snapshot",
            "x",
        ));
        assert_eq!(problem_text, "not a pandare snapshot (bad magic)");

        let directory = scratch_directory("wrong-kind");
        let path = directory.join("a.rec");
        Archive::from_bytes(&bytes, "recording", "test")
            .unwrap()
            .write(&path)
            .unwrap();
        let error = read_snapshot(&path).unwrap_err().to_string();
        assert!(
            error.starts_with(&format!("{}: it is a pandare recording", path.display())),
            "{error}"
        );
        fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn other_versions_are_refused_with_advice() {
        let bytes = sample_archive_bytes();
        let with_version = |major: u16, minor: u16| {
            let mut changed = bytes.clone();
            changed[8..10].copy_from_slice(&major.to_le_bytes());
            changed[10..12].copy_from_slice(&minor.to_le_bytes());
            problem(Archive::from_bytes(&seal(changed), "recording", "test"))
        };
        assert_eq!(
            with_version(2, 0),
            "made by format 2.0, this build reads format 1.0 and older 1.x: use a newer pandare, or record it again with this build"
        );
        assert!(with_version(1, 1).starts_with("made by format 1.1,"));
        assert!(with_version(0, 7).ends_with(": record it again with this build"));
        Archive::from_bytes(&seal(bytes), "recording", "test").unwrap();
    }

    /// Hand-made archive bytes with one section whose table entry is given.
    fn one_section(name: &str, codec: u8, stored: u64, size: u64, data: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&MAGIC);
        bytes.extend_from_slice(&FORMAT_MAJOR.to_le_bytes());
        bytes.extend_from_slice(&FORMAT_MINOR.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]);
        push_short_string(&mut bytes, "snapshot");
        bytes.extend_from_slice(&1u32.to_le_bytes());
        push_short_string(&mut bytes, name);
        bytes.push(codec);
        bytes.extend_from_slice(&stored.to_le_bytes());
        bytes.extend_from_slice(&size.to_le_bytes());
        bytes.extend_from_slice(data);
        bytes.extend_from_slice(&[0; CHECKSUM_BYTES]);
        seal(bytes)
    }

    #[test]
    fn hostile_sizes_are_refused_before_allocating() {
        let zeros = zstd::bulk::compress(&[0u8; 1000], 1).unwrap();
        let cases = [
            // Stored size beyond the file.
            one_section("ram", 1, 1 << 60, 1000, &zeros),
            one_section("state", 0, 1 << 60, 1 << 60, &zeros),
            // Decompressed size beyond the caps.
            one_section("ram", 1, zeros.len() as u64, 1 << 60, &zeros),
            one_section(
                "state",
                1,
                zeros.len() as u64,
                MAX_SECTION_BYTES + 1,
                &zeros,
            ),
            // Decompressed size that the data does not reach, or exceeds.
            one_section("state", 1, zeros.len() as u64, MAX_SECTION_BYTES, &zeros),
            one_section("state", 1, zeros.len() as u64, 999, &zeros),
        ];
        for (case, bytes) in cases.iter().enumerate() {
            LARGEST_ALLOCATION.with(|largest| largest.set(0));
            let problem = problem(Archive::from_bytes(bytes, "snapshot", "test"));
            let largest = LARGEST_ALLOCATION.with(Cell::get);
            assert!(
                largest < 1 << 20,
                "case {case} allocated {largest} bytes: {problem}"
            );
        }
        let fine = one_section("state", 1, zeros.len() as u64, 1000, &zeros);
        let archive = Archive::from_bytes(&fine, "snapshot", "test").unwrap();
        assert_eq!(archive.section("state"), Some(&[0u8; 1000][..]));
    }

    #[test]
    fn inconsistent_snapshot_sections_are_refused() {
        let good = snapshot_to_archive(&sample_snapshot());
        let with_ram = |ram: Vec<u8>| {
            let mut archive = good.clone();
            archive.push(RAM_SECTION, ram);
            snapshot_from_archive(&archive)
        };
        let entry = |index: u64| {
            let mut bytes = index.to_le_bytes().to_vec();
            bytes.extend_from_slice(&[9; PAGE_SIZE]);
            bytes
        };
        let count = 8u64.to_le_bytes().to_vec();
        let bad_rams = [
            [count.clone(), entry(8)].concat(), // beyond the page count
            [count.clone(), entry(3), entry(3)].concat(), // repeated
            [count.clone(), entry(4), entry(2)].concat(), // out of order
            [count.clone(), entry(2), vec![1, 2, 3]].concat(), // partial page
            [9u64.to_le_bytes().to_vec(), entry(1)].concat(), // count disagrees with memory size
            vec![1, 2],
        ];
        for (case, ram) in bad_rams.into_iter().enumerate() {
            let result = with_ram(ram);
            assert!(
                matches!(result, Err(SnapshotError::InvalidState(_))),
                "case {case}: {result:?}"
            );
        }
        assert_eq!(
            with_ram([count, entry(0), entry(7)].concat())
                .unwrap()
                .ram
                .stored_pages(),
            2
        );

        let mut huge = good.clone();
        let mut meta = (MAX_MEMORY_BYTES + PAGE_SIZE_U64).to_le_bytes().to_vec();
        meta.extend_from_slice(b"riscv64");
        huge.push(META_SECTION, meta);
        snapshot_from_archive(&huge).unwrap_err();
        let mut missing = good;
        missing.sections.retain(|(name, _)| name != STATE_SECTION);
        let error = snapshot_from_archive(&missing).unwrap_err().to_string();
        assert!(error.contains("the state section is missing"), "{error}");
    }

    #[test]
    fn a_failed_rename_leaves_no_temporary_file_and_other_files_alone() {
        let directory = scratch_directory("failed-rename");
        let good = directory.join("good.snapshot");
        write_snapshot(&good, &sample_snapshot()).unwrap();
        let good_bytes = fs::read(&good).unwrap();
        let in_the_way = directory.join("in-the-way");
        fs::create_dir(&in_the_way).unwrap();

        let result = write_snapshot(&in_the_way, &sample_snapshot());
        assert!(
            matches!(result, Err(SnapshotError::Io { .. })),
            "{result:?}"
        );
        let mut names: Vec<String> = fs::read_dir(&directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["good.snapshot", "in-the-way"]);
        assert_eq!(fs::read(&good).unwrap(), good_bytes);
        assert!(in_the_way.is_dir());

        // Overwriting works, and replaces the file whole.
        let mut other = sample_snapshot();
        other.state = vec![1, 2, 3];
        write_snapshot(&good, &other).unwrap();
        assert_eq!(read_snapshot(&good).unwrap().state, [1, 2, 3]);
        fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn writing_to_an_impossible_path_is_an_error() {
        let directory = scratch_directory("impossible");
        let file = directory.join("a-file");
        fs::write(&file, b"not a directory").unwrap();
        // Even root cannot create a file under a regular file.
        let result = write_snapshot(&file.join("snapshot"), &sample_snapshot());
        assert!(
            matches!(result, Err(SnapshotError::Io { .. })),
            "{result:?}"
        );
        let result = read_snapshot(&directory.join("absent"));
        assert!(
            matches!(result, Err(SnapshotError::Io { .. })),
            "{result:?}"
        );
        assert_eq!(fs::read(&file).unwrap(), b"not a directory");
        fs::remove_dir_all(&directory).unwrap();
    }

    #[test]
    fn devices_and_directories_are_refused_without_reading_them() {
        for path in ["/dev/zero", "/dev/urandom", "/"] {
            let result = read_snapshot(Path::new(path));
            match result {
                Err(SnapshotError::Archive {
                    problem: ArchiveError::NotAFile,
                    ..
                }) => {}
                other => panic!("{path}: {other:?}"),
            }
        }
    }
}
