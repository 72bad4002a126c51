//! A profile as bytes, for the profile cache and for recordings.
//!
//! Layout: the magic `pandare-profile\0` (16 bytes), the format version (u32 LE), the
//! body's length before compression (u64 LE), the SHA-256 of the compressed body (32
//! bytes), then the body as one ZSTD frame (with its own content checksum). The body is little-endian: the architecture (u8: 0 none, 1 riscv64,
//! 2 x86_64, 3 aarch64), the raw BTF blob (u32 length, 0 for none), the symbols, the
//! per-CPU variables, the explicit offsets and sizes, the system calls and which of them
//! have prototypes. Strings are u32 length + UTF-8. Every count is checked against the
//! bytes left before anything is allocated, and the body is capped, so damaged input is
//! an error, never a panic or a huge allocation.

use std::collections::HashMap;
use std::io::Read;

use sha2::Digest;

use crate::btf::Btf;
use crate::kernel_image::Architecture;
use crate::profile::{
    ArgumentKind, OwnedParts, Profile, ProfileError, Symbol, SyscallArgument, SyscallInfo,
};

const MAGIC: &[u8; 16] = b"pandare-profile\0";
/// Bumped whenever the body's layout changes; other versions are refused.
const VERSION: u32 = 1;
/// Magic, version, body length, SHA-256.
const HEADER: usize = 16 + 4 + 8 + 32;
/// Larger than any kernel's profile (BTF 5 MB, symbols 10 MB).
const MAX_BODY: u64 = 512 << 20;

fn bad(what: impl Into<String>) -> ProfileError {
    ProfileError::BadSerialized(what.into())
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).expect("profile parts are far below 4 GiB"));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.len(b.len());
        self.0.extend_from_slice(b);
    }
    fn str(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProfileError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| bad("it is truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, ProfileError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ProfileError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, ProfileError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    /// A count of records of at least `min_size` bytes each, checked against the rest.
    fn count(&mut self, min_size: usize) -> Result<usize, ProfileError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.at {
            return Err(bad(format!(
                "a count of {n} does not fit in the bytes left"
            )));
        }
        Ok(n)
    }
    fn bytes(&mut self) -> Result<&'a [u8], ProfileError> {
        let n = self.count(1)?;
        self.take(n)
    }
    fn string(&mut self) -> Result<String, ProfileError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| bad("a name is not UTF-8"))
    }
}

fn arch_code(arch: Option<Architecture>) -> u8 {
    match arch {
        None => 0,
        Some(Architecture::Riscv64) => 1,
        Some(Architecture::X86_64) => 2,
        Some(Architecture::Aarch64) => 3,
    }
}

fn kind_code(kind: ArgumentKind) -> (u8, u32) {
    match kind {
        ArgumentKind::Signed(bits) => (0, bits),
        ArgumentKind::Unsigned(bits) => (1, bits),
        ArgumentKind::String => (2, 0),
        ArgumentKind::Pointer => (3, 0),
    }
}

/// The profile as bytes.
pub(crate) fn to_bytes(profile: &Profile) -> Vec<u8> {
    let p = profile.parts();
    let mut w = Writer(Vec::with_capacity(16 << 20));
    w.u8(arch_code(p.arch));
    w.bytes(p.btf.unwrap_or(&[]));
    w.len(p.symbols.len());
    for s in p.symbols {
        w.u64(s.address);
        w.u8(u8::try_from(u32::from(s.kind)).unwrap_or(b'?'));
        w.str(&s.name);
    }
    // Sorted, so equal profiles give equal bytes.
    let mut per_cpu: Vec<_> = p.per_cpu.iter().collect();
    per_cpu.sort();
    w.len(per_cpu.len());
    for (name, offset) in per_cpu {
        w.str(name);
        w.u64(*offset);
    }
    let mut offsets: Vec<_> = p.offsets.iter().collect();
    offsets.sort();
    w.len(offsets.len());
    for ((structure, field), offset) in offsets {
        w.str(structure);
        w.str(field);
        w.u64(*offset);
    }
    let mut sizes: Vec<_> = p.sizes.iter().collect();
    sizes.sort();
    w.len(sizes.len());
    for (name, size) in sizes {
        w.str(name);
        w.u64(*size);
    }
    w.len(p.syscalls.len());
    for s in p.syscalls {
        w.u64(s.number);
        w.str(&s.name);
        w.len(s.arguments.len());
        for a in &s.arguments {
            w.str(&a.name);
            w.str(&a.c_type);
            let (tag, bits) = kind_code(a.kind);
            w.u8(tag);
            w.u32(bits);
        }
    }
    w.len(p.prototyped.len());
    for &n in p.prototyped {
        w.u64(n);
    }
    let body = w.0;

    let mut compressed = Vec::with_capacity(body.len() / 3);
    let mut encoder = zstd::stream::write::Encoder::new(&mut compressed, 3)
        .expect("a ZSTD encoder over a Vec cannot fail to start");
    encoder
        .include_checksum(true)
        .expect("the checksum flag is always accepted");
    std::io::Write::write_all(&mut encoder, &body).expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail");
    let mut out = Vec::with_capacity(HEADER + compressed.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&sha2::Sha256::digest(&compressed));
    out.extend_from_slice(&compressed);
    out
}

/// A profile from its bytes.
pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Profile, ProfileError> {
    if bytes.len() < HEADER || &bytes[..16] != MAGIC {
        return Err(bad("it is not a pandare kernel profile"));
    }
    let version = u32::from_le_bytes(bytes[16..20].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(bad(format!(
            "it has format version {version}; this build reads version {VERSION}"
        )));
    }
    let body_len = u64::from_le_bytes(bytes[20..28].try_into().expect("8 bytes"));
    if body_len > MAX_BODY {
        return Err(bad(format!("it claims a body of {body_len} bytes")));
    }
    let compressed = &bytes[HEADER..];
    if sha2::Sha256::digest(compressed)[..] != bytes[28..HEADER] {
        return Err(bad(
            "its checksum does not match (the file is damaged or truncated)",
        ));
    }
    let mut body = Vec::with_capacity(body_len as usize);
    zstd::stream::read::Decoder::new(compressed)
        .and_then(|d| d.take(body_len + 1).read_to_end(&mut body))
        .map_err(|e| bad(format!("its compressed body is damaged ({e})")))?;
    if body.len() as u64 != body_len {
        return Err(bad("its body has the wrong length"));
    }

    let mut r = Reader {
        bytes: &body,
        at: 0,
    };
    let arch = match r.u8()? {
        0 => None,
        1 => Some(Architecture::Riscv64),
        2 => Some(Architecture::X86_64),
        3 => Some(Architecture::Aarch64),
        other => return Err(bad(format!("unknown architecture code {other}"))),
    };
    let btf_bytes = r.bytes()?;
    let btf = if btf_bytes.is_empty() {
        None
    } else {
        Some(Btf::parse(btf_bytes.to_vec()).map_err(|e| bad(format!("its BTF: {e}")))?)
    };
    let n = r.count(13)?;
    let mut symbols = Vec::with_capacity(n);
    for _ in 0..n {
        let address = r.u64()?;
        let kind = char::from(r.u8()?);
        let name = r.string()?;
        symbols.push(Symbol {
            name,
            address,
            kind,
        });
    }
    let n = r.count(12)?;
    let mut per_cpu = HashMap::with_capacity(n);
    for _ in 0..n {
        let name = r.string()?;
        per_cpu.insert(name, r.u64()?);
    }
    let n = r.count(16)?;
    let mut offsets = HashMap::with_capacity(n);
    for _ in 0..n {
        let structure = r.string()?;
        let field = r.string()?;
        offsets.insert((structure, field), r.u64()?);
    }
    let n = r.count(12)?;
    let mut sizes = HashMap::with_capacity(n);
    for _ in 0..n {
        let name = r.string()?;
        sizes.insert(name, r.u64()?);
    }
    let n = r.count(16)?;
    let mut syscalls = Vec::with_capacity(n);
    for _ in 0..n {
        let number = r.u64()?;
        let name = r.string()?;
        let count = r.count(13)?;
        let mut arguments = Vec::with_capacity(count);
        for _ in 0..count {
            let name = r.string()?;
            let c_type = r.string()?;
            let tag = r.u8()?;
            let bits = r.u32()?;
            let kind = match tag {
                0 => ArgumentKind::Signed(bits),
                1 => ArgumentKind::Unsigned(bits),
                2 => ArgumentKind::String,
                3 => ArgumentKind::Pointer,
                other => return Err(bad(format!("unknown argument kind {other}"))),
            };
            arguments.push(SyscallArgument { name, c_type, kind });
        }
        syscalls.push(SyscallInfo {
            number,
            name,
            arguments,
        });
    }
    let n = r.count(8)?;
    let mut prototyped = Vec::with_capacity(n);
    for _ in 0..n {
        prototyped.push(r.u64()?);
    }
    if r.at != body.len() {
        return Err(bad("it has bytes after its last part"));
    }
    Ok(Profile::assemble(OwnedParts {
        arch,
        btf,
        symbols,
        per_cpu,
        offsets,
        sizes,
        syscalls,
        prototyped,
    }))
}
