//! A kernel image as a file: which architecture it is for, where its BTF is, and how
//! kernel virtual addresses map to bytes of the file.
//!
//! Three shapes are read: a flat `Image` (riscv64 and arm64: the header names the
//! architecture; file offset 0 is the kernel's `_start`), an ELF `vmlinux` (section
//! headers give `.BTF`, program headers the address map), and an x86 `bzImage`, whose
//! payload (`setup_sects`, `payload_offset`, `payload_length` in the boot protocol
//! header) is a compressed `vmlinux` ELF: ZSTD or XZ (with the x86 BCJ filter, which
//! liblzma applies from the stream's own filter chain).

use std::borrow::Cow;
use std::io::Read;
use std::ops::Range;

use crate::profile::ProfileError;

/// The largest decompressed kernel accepted (real ones are 30–80 MiB).
const MAX_DECOMPRESSED: u64 = 512 << 20;

/// The architectures whose kernels are recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// RISC-V, 64-bit.
    Riscv64,
    /// x86_64.
    X86_64,
    /// AArch64.
    Aarch64,
}

impl Architecture {
    /// The prefix of the system call entry points' symbols (`SYSCALL_DEFINE` wrappers
    /// taking `struct pt_regs *`), as the architecture's `LinuxAbi::syscall_symbol_prefix`
    /// also says.
    pub fn syscall_symbol_prefix(self) -> &'static str {
        match self {
            Architecture::Riscv64 => "__riscv_sys_",
            Architecture::X86_64 => "__x64_sys_",
            Architecture::Aarch64 => "__arm64_sys_",
        }
    }

    /// The name pandare uses for it (as `GuestCpu::architecture`).
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Riscv64 => "riscv64",
            Architecture::X86_64 => "x86_64",
            Architecture::Aarch64 => "aarch64",
        }
    }

    /// The architecture pandare calls `name` (`riscv64`, `x86_64`, `aarch64`).
    pub fn from_name(name: &str) -> Option<Architecture> {
        match name {
            "riscv64" => Some(Architecture::Riscv64),
            "x86_64" => Some(Architecture::X86_64),
            "aarch64" => Some(Architecture::Aarch64),
            _ => None,
        }
    }

    fn from_elf_machine(machine: u16) -> Option<Architecture> {
        match machine {
            0xf3 => Some(Architecture::Riscv64),
            0x3e => Some(Architecture::X86_64),
            0xb7 => Some(Architecture::Aarch64),
            _ => None,
        }
    }
}

/// A loadable piece of an ELF: `[va, va + len)` is at `file_offset` in the file.
#[derive(Clone, Copy, Debug)]
struct Segment {
    va: u64,
    file_offset: u64,
    len: u64,
}

/// A kernel image, decompressed if it was compressed.
#[derive(Debug)]
pub(crate) struct KernelImage<'a> {
    bytes: Cow<'a, [u8]>,
    arch: Architecture,
    /// ELF program headers; empty for a flat image.
    segments: Vec<Segment>,
    /// The ELF's `.BTF` section, if it has one.
    btf_section: Option<Range<usize>>,
    /// For a flat image: the address of file offset 0, once known.
    flat_base: Option<u64>,
}

fn malformed(what: impl Into<String>) -> ProfileError {
    ProfileError::Malformed(what.into())
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        bytes.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        bytes.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        bytes.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

impl<'a> KernelImage<'a> {
    /// Recognises `bytes` as a flat Image, an ELF or a bzImage.
    pub(crate) fn open(bytes: &'a [u8]) -> Result<KernelImage<'a>, ProfileError> {
        if bytes.starts_with(b"\x7fELF") {
            return KernelImage::elf(Cow::Borrowed(bytes));
        }
        // RISC-V `Image` header: magic "RISCV\0\0\0" at 0x30 (deprecated) and "RSC\x05"
        // at 0x38; arm64: "ARM\x64" at 0x38.
        if bytes.get(0x38..0x3c) == Some(b"RSC\x05")
            || bytes.get(0x30..0x38) == Some(b"RISCV\0\0\0")
        {
            return Ok(KernelImage::flat(bytes, Architecture::Riscv64));
        }
        if bytes.get(0x38..0x3c) == Some(b"ARM\x64") {
            return Ok(KernelImage::flat(bytes, Architecture::Aarch64));
        }
        if bytes.get(0x202..0x206) == Some(b"HdrS") {
            let elf = decompress_bzimage(bytes)?;
            return KernelImage::elf(Cow::Owned(elf));
        }
        Err(malformed(
            "not a kernel image pandare knows: expected a RISC-V or arm64 Image, an x86 bzImage or an ELF vmlinux",
        ))
    }

    fn flat(bytes: &'a [u8], arch: Architecture) -> KernelImage<'a> {
        KernelImage {
            bytes: Cow::Borrowed(bytes),
            arch,
            segments: Vec::new(),
            btf_section: None,
            flat_base: None,
        }
    }

    fn elf(bytes: Cow<'a, [u8]>) -> Result<KernelImage<'a>, ProfileError> {
        let b: &[u8] = &bytes;
        let bad = |what: &str| malformed(format!("ELF kernel: {what}"));
        if b.get(4) != Some(&2) || b.get(5) != Some(&1) {
            return Err(bad("only 64-bit little-endian kernels are supported"));
        }
        let machine = u16_at(b, 0x12).ok_or_else(|| bad("truncated header"))?;
        let arch = Architecture::from_elf_machine(machine)
            .ok_or_else(|| bad(&format!("unknown machine {machine:#x}")))?;
        let field64 = |at| u64_at(b, at).ok_or_else(|| bad("truncated header"));
        let field16 = |at| u16_at(b, at).ok_or_else(|| bad("truncated header"));
        let (phoff, shoff) = (field64(0x20)?, field64(0x28)?);
        let (phentsize, phnum) = (field16(0x36)?, field16(0x38)?);
        let (shentsize, shnum, shstrndx) = (field16(0x3a)?, field16(0x3c)?, field16(0x3e)?);

        let mut segments = Vec::new();
        for i in 0..u64::from(phnum) {
            let at = i
                .checked_mul(u64::from(phentsize))
                .and_then(|o| o.checked_add(phoff))
                .and_then(|at| usize::try_from(at).ok())
                .ok_or_else(|| bad("program headers out of bounds"))?;
            let p_type = u32_at(b, at).ok_or_else(|| bad("program headers out of bounds"))?;
            if p_type != 1 {
                continue;
            }
            let read =
                |off| u64_at(b, at + off).ok_or_else(|| bad("program headers out of bounds"));
            segments.push(Segment {
                file_offset: read(8)?,
                va: read(16)?,
                len: read(32)?,
            });
        }

        let mut btf_section = None;
        if shnum > 0 && shoff != 0 {
            let header = |i: u64| -> Result<usize, ProfileError> {
                i.checked_mul(u64::from(shentsize))
                    .and_then(|o| o.checked_add(shoff))
                    .and_then(|at| usize::try_from(at).ok())
                    .filter(|&at| at.checked_add(64).is_some_and(|end| end <= b.len()))
                    .ok_or_else(|| bad("section headers out of bounds"))
            };
            let strtab = header(u64::from(shstrndx))?;
            let strtab_off = u64_at(b, strtab + 24).unwrap_or(0) as usize;
            for i in 0..u64::from(shnum) {
                let at = header(i)?;
                let name_off = u32_at(b, at).unwrap_or(0) as usize;
                let name_at = strtab_off.saturating_add(name_off);
                if b.get(name_at..name_at.saturating_add(5)) == Some(b".BTF\0") {
                    let off = u64_at(b, at + 24).unwrap_or(0) as usize;
                    let size = u64_at(b, at + 32).unwrap_or(0) as usize;
                    let end = off
                        .checked_add(size)
                        .filter(|&e| e <= b.len())
                        .ok_or_else(|| bad(".BTF section out of bounds"))?;
                    btf_section = Some(off..end);
                }
            }
        }
        Ok(KernelImage {
            bytes,
            arch,
            segments,
            btf_section,
            flat_base: None,
        })
    }

    /// The file's bytes (decompressed).
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The kernel's architecture.
    pub(crate) fn arch(&self) -> Architecture {
        self.arch
    }

    /// Where the BTF blob is: the ELF's `.BTF`, else wherever its magic is.
    pub(crate) fn btf(&self) -> Result<Option<Range<usize>>, ProfileError> {
        if let Some(section) = &self.btf_section {
            let start = section.start;
            let len = crate::btf::blob_len(&self.bytes[start..section.end])?;
            return Ok(Some(start..start + len));
        }
        crate::btf::find_blob(&self.bytes)
    }

    /// Sets the address of a flat image's first byte (its `_start`).
    pub(crate) fn set_flat_base(&mut self, base: u64) {
        self.flat_base = Some(base);
    }

    /// The file range holding `len` bytes at kernel address `va`.
    pub(crate) fn range_of(&self, va: u64, len: u64) -> Option<Range<usize>> {
        let offset = if self.segments.is_empty() {
            va.checked_sub(self.flat_base?)?
        } else {
            let s = self.segments.iter().find(|s| {
                va >= s.va
                    && va
                        .checked_add(len)
                        .zip(s.va.checked_add(s.len))
                        .is_some_and(|(end, segment_end)| end <= segment_end)
            })?;
            s.file_offset.checked_add(va - s.va)?
        };
        let start = usize::try_from(offset).ok()?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        (end <= self.bytes.len()).then_some(start..end)
    }

    /// The 64-bit little-endian word at kernel address `va`.
    pub(crate) fn read_u64(&self, va: u64) -> Option<u64> {
        let r = self.range_of(va, 8)?;
        u64_at(&self.bytes, r.start)
    }

    /// The 32-bit little-endian word at kernel address `va`.
    pub(crate) fn read_u32(&self, va: u64) -> Option<u32> {
        let r = self.range_of(va, 4)?;
        u32_at(&self.bytes, r.start)
    }

    /// The NUL-terminated string at kernel address `va` (at most `max` bytes).
    pub(crate) fn read_cstr(&self, va: u64, max: usize) -> Option<String> {
        let r = self.range_of(va, 1)?;
        let rest = &self.bytes[r.start..];
        let len = rest.iter().take(max).position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..len]).into_owned())
    }
}

/// Decompresses a bzImage's payload into the kernel's ELF.
fn decompress_bzimage(bytes: &[u8]) -> Result<Vec<u8>, ProfileError> {
    let bad = |what: &str| malformed(format!("bzImage: {what}"));
    let setup_sects = match bytes.get(0x1f1).copied().unwrap_or(0) {
        0 => 4,
        n => usize::from(n),
    };
    let payload_offset = u32_at(bytes, 0x248).ok_or_else(|| bad("truncated header"))? as usize;
    let payload_length = u32_at(bytes, 0x24c).ok_or_else(|| bad("truncated header"))? as usize;
    let start = (setup_sects + 1) * 512 + payload_offset; // ≤ 256·512 + 4 GiB: no overflow
    let payload = start
        .checked_add(payload_length)
        .and_then(|end| bytes.get(start..end))
        .filter(|p| p.len() > 4)
        .ok_or_else(|| bad("the payload lies outside the file (truncated image?)"))?;
    // The build appends the decompressed size (32-bit little-endian).
    let declared = u32_at(payload, payload.len() - 4).unwrap_or(0);
    let data = &payload[..payload.len() - 4];
    // The declared size is only a hint: capacity is capped, the output bounded.
    let mut out = Vec::with_capacity((declared as usize).min(128 << 20));
    let result = if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(data)
            .and_then(|d| d.take(MAX_DECOMPRESSED).read_to_end(&mut out))
            .map_err(|e| bad(&format!("the ZSTD payload does not decompress: {e}")))
    } else if data.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        liblzma::read::XzDecoder::new(data)
            .take(MAX_DECOMPRESSED)
            .read_to_end(&mut out)
            .map_err(|e| bad(&format!("the XZ payload does not decompress: {e}")))
    } else {
        let name = if data.starts_with(&[0x1f, 0x8b]) {
            "gzip"
        } else if data.starts_with(b"BZh") {
            "bzip2"
        } else if data.starts_with(&[0x02, 0x21, 0x4c, 0x18]) {
            "LZ4"
        } else if data.starts_with(&[0x89, b'L', b'Z', b'O']) {
            "LZO"
        } else {
            "LZMA or unknown"
        };
        return Err(ProfileError::Malformed(format!(
            "bzImage: the payload is {name}-compressed; pandare reads ZSTD and XZ kernels (or give it the uncompressed vmlinux, e.g. from scripts/extract-vmlinux)"
        )));
    };
    result?;
    if !out.starts_with(b"\x7fELF") {
        return Err(bad("the decompressed payload is not an ELF"));
    }
    Ok(out)
}
