//! Reading the parts of an ELF file a static program's loader needs: the header and the
//! program headers (ELF32 and ELF64, little-endian).

/// `e_type` of a fixed-address executable.
const ET_EXEC: u16 = 2;
/// `e_type` of a position-independent executable (static-pie) or shared object.
const ET_DYN: u16 = 3;
/// Loadable segment.
pub const PT_LOAD: u32 = 1;
/// Program interpreter (a dynamically linked program).
const PT_INTERP: u32 = 3;
/// The program headers' own segment.
const PT_PHDR: u32 = 6;

/// Segment permission bits (`p_flags`).
pub const PF_X: u32 = 1;
/// Writable.
pub const PF_W: u32 = 2;
/// Readable.
pub const PF_R: u32 = 4;

/// Why a file is not a program `panda exec` can run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ElfError {
    /// No ELF magic.
    #[error("{path} is not an ELF program (no \\x7fELF magic); give a statically linked Linux executable")]
    NotElf {
        /// The file.
        path: String,
    },
    /// Header or program headers cut short or out of range.
    #[error("{path} is a damaged ELF file: {what}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// Big-endian or an unknown class.
    #[error("{path} is a {what} ELF file; panda exec runs little-endian ELF32 and ELF64 programs")]
    Unsupported {
        /// The file.
        path: String,
        /// Its class and data encoding.
        what: String,
    },
    /// Not an executable.
    #[error("{path} is an ELF file of type {e_type} (not an executable); give a program (ET_EXEC or static-pie ET_DYN)")]
    NotExecutable {
        /// The file.
        path: String,
        /// `e_type`.
        e_type: u16,
    },
    /// Dynamically linked.
    #[error("{path} is dynamically linked (it asks for the interpreter {interpreter}); panda exec runs statically linked programs only (link with -static)")]
    Dynamic {
        /// The file.
        path: String,
        /// `PT_INTERP`'s contents.
        interpreter: String,
    },
    /// The machine is not one pandare runs.
    #[error("{path} is built for {machine} (ELF e_machine {e_machine}), which panda exec cannot run{expected}")]
    WrongMachine {
        /// The file.
        path: String,
        /// A name for `e_machine`.
        machine: &'static str,
        /// `e_machine`.
        e_machine: u16,
        /// ", but --arch riscv64 was asked for" and the like, or empty.
        expected: String,
    },
}

/// A loadable segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Offset in the file.
    pub offset: u64,
    /// Virtual address (before a static-pie's load bias).
    pub vaddr: u64,
    /// Bytes from the file.
    pub file_size: u64,
    /// Bytes in memory (the rest zeroed).
    pub mem_size: u64,
    /// `PF_R | PF_W | PF_X`.
    pub flags: u32,
}

/// An ELF executable's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Elf {
    /// 64-bit (ELFCLASS64) or 32-bit.
    pub is_64: bool,
    /// `e_machine`.
    pub machine: u16,
    /// Position-independent (ET_DYN): loaded at a base of the loader's choosing.
    pub position_independent: bool,
    /// Entry point (before the load bias).
    pub entry: u64,
    /// Where the program headers are in the file.
    pub phoff: u64,
    /// Their entry size.
    pub phentsize: u16,
    /// Their count.
    pub phnum: u16,
    /// `PT_PHDR`'s address, when the program has one.
    pub phdr_vaddr: Option<u64>,
    /// `PT_INTERP`: the dynamic loader a dynamically linked program asks for.
    pub interpreter: Option<String>,
    /// The loadable segments, in file order.
    pub segments: Vec<Segment>,
}

/// A name for an `e_machine` value, for messages.
pub fn machine_name(e_machine: u16) -> &'static str {
    match e_machine {
        3 => "i386",
        8 => "MIPS",
        20 => "PowerPC",
        21 => "PowerPC64",
        22 => "s390",
        40 => "ARM",
        62 => "x86_64",
        183 => "AArch64",
        243 => "RISC-V",
        258 => "LoongArch",
        _ => "an unknown machine",
    }
}

struct Reader<'a> {
    data: &'a [u8],
    path: &'a str,
}

impl Reader<'_> {
    fn bytes(&self, offset: u64, len: u64, what: &str) -> Result<&[u8], ElfError> {
        let end = offset.checked_add(len);
        match end {
            Some(end) if end <= self.data.len() as u64 => {
                Ok(&self.data[offset as usize..end as usize])
            }
            _ => Err(ElfError::Damaged {
                path: self.path.to_string(),
                what: format!(
                    "{what} at byte {offset} ({len} bytes) runs past the end of the file ({} bytes)",
                    self.data.len()
                ),
            }),
        }
    }

    fn u16(&self, offset: u64) -> Result<u16, ElfError> {
        let b = self.bytes(offset, 2, "a header field")?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&self, offset: u64) -> Result<u32, ElfError> {
        let b = self.bytes(offset, 4, "a header field")?;
        Ok(u32::from_le_bytes(b.try_into().expect("4 bytes")))
    }

    fn u64(&self, offset: u64) -> Result<u64, ElfError> {
        let b = self.bytes(offset, 8, "a header field")?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    /// A word of the file's class.
    fn word(&self, offset: u64, is_64: bool) -> Result<u64, ElfError> {
        if is_64 {
            self.u64(offset)
        } else {
            self.u32(offset).map(u64::from)
        }
    }
}

impl Elf {
    /// Parses `data` (the file `path`, named in errors).
    pub fn parse(data: &[u8], path: &str) -> Result<Elf, ElfError> {
        if data.len() < 4 || &data[..4] != b"\x7fELF" {
            return Err(ElfError::NotElf {
                path: path.to_string(),
            });
        }
        let r = Reader { data, path };
        let ident = r.bytes(0, 16, "the identification")?;
        let is_64 = match (ident[4], ident[5]) {
            (1, 1) => false,
            (2, 1) => true,
            (class, encoding) => {
                return Err(ElfError::Unsupported {
                    path: path.to_string(),
                    what: format!(
                        "{} {}",
                        match class {
                            1 => "32-bit",
                            2 => "64-bit",
                            _ => "unknown-class",
                        },
                        match encoding {
                            2 => "big-endian",
                            _ => "unknown-encoding",
                        }
                    ),
                })
            }
        };
        let header_size = if is_64 { 64 } else { 52 };
        r.bytes(0, header_size, "the ELF header")?;
        let e_type = r.u16(16)?;
        let machine = r.u16(18)?;
        let (entry, phoff, phentsize_at, phnum_at) = if is_64 {
            (r.u64(24)?, r.u64(32)?, 54, 56)
        } else {
            (u64::from(r.u32(24)?), u64::from(r.u32(28)?), 42, 44)
        };
        let phentsize = r.u16(phentsize_at)?;
        let phnum = r.u16(phnum_at)?;
        let position_independent = match e_type {
            ET_EXEC => false,
            ET_DYN => true,
            other => {
                return Err(ElfError::NotExecutable {
                    path: path.to_string(),
                    e_type: other,
                })
            }
        };
        let min_entsize = if is_64 { 56 } else { 32 };
        if phnum == 0 || u64::from(phentsize) < min_entsize {
            return Err(ElfError::Damaged {
                path: path.to_string(),
                what: format!(
                    "{phnum} program headers of {phentsize} bytes (a program needs at least one, of {min_entsize} bytes or more)"
                ),
            });
        }
        let mut segments = Vec::new();
        let mut phdr_vaddr = None;
        let mut interpreter = None;
        for index in 0..u64::from(phnum) {
            let at = phoff.saturating_add(index * u64::from(phentsize));
            r.bytes(at, u64::from(phentsize), "a program header")?;
            let p_type = r.u32(at)?;
            let (flags, offset, vaddr, file_size, mem_size) = if is_64 {
                (
                    r.u32(at + 4)?,
                    r.u64(at + 8)?,
                    r.u64(at + 16)?,
                    r.u64(at + 32)?,
                    r.u64(at + 40)?,
                )
            } else {
                (
                    r.u32(at + 24)?,
                    r.word(at + 4, false)?,
                    r.word(at + 8, false)?,
                    r.word(at + 16, false)?,
                    r.word(at + 20, false)?,
                )
            };
            match p_type {
                PT_LOAD => {
                    if file_size > mem_size {
                        return Err(ElfError::Damaged {
                            path: path.to_string(),
                            what: format!("a segment at {vaddr:#x} has more file bytes ({file_size}) than memory bytes ({mem_size})"),
                        });
                    }
                    r.bytes(offset, file_size, "a segment's contents")?;
                    if vaddr.checked_add(mem_size).is_none() {
                        return Err(ElfError::Damaged {
                            path: path.to_string(),
                            what: format!("a segment at {vaddr:#x} wraps around the address space"),
                        });
                    }
                    segments.push(Segment {
                        offset,
                        vaddr,
                        file_size,
                        mem_size,
                        flags,
                    });
                }
                PT_INTERP => {
                    let bytes = r.bytes(offset, file_size, "the interpreter's name")?;
                    interpreter = Some(
                        String::from_utf8_lossy(bytes)
                            .trim_end_matches('\0')
                            .to_string(),
                    );
                }
                PT_PHDR => phdr_vaddr = Some(vaddr),
                _ => {}
            }
        }
        if segments.is_empty() {
            return Err(ElfError::Damaged {
                path: path.to_string(),
                what: "no loadable segment".to_string(),
            });
        }
        Ok(Elf {
            is_64,
            machine,
            position_independent,
            entry,
            phoff,
            phentsize,
            phnum,
            phdr_vaddr,
            interpreter,
            segments,
        })
    }

    /// Where the program headers are in memory (before the load bias): `PT_PHDR`, or the
    /// loadable segment whose file bytes hold them.
    pub fn phdr_address(&self) -> Option<u64> {
        self.phdr_vaddr.or_else(|| {
            self.segments.iter().find_map(|s| {
                (s.offset <= self.phoff && self.phoff < s.offset + s.file_size)
                    .then(|| s.vaddr + (self.phoff - s.offset))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 executable with one segment.
    pub(crate) fn tiny_elf64(machine: u16, e_type: u16) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56 + 8];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&e_type.to_le_bytes());
        f[18..20].copy_from_slice(&machine.to_le_bytes());
        f[24..32].copy_from_slice(&0x10078u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&1u16.to_le_bytes());
        let p = 64;
        f[p..p + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        f[p + 4..p + 8].copy_from_slice(&(PF_R | PF_X).to_le_bytes());
        f[p + 16..p + 24].copy_from_slice(&0x10000u64.to_le_bytes());
        f[p + 32..p + 40].copy_from_slice(&128u64.to_le_bytes());
        f[p + 40..p + 48].copy_from_slice(&128u64.to_le_bytes());
        f
    }

    #[test]
    fn a_static_executable_parses() {
        let elf = Elf::parse(&tiny_elf64(243, ET_EXEC), "t").unwrap();
        assert!(elf.is_64 && !elf.position_independent);
        assert_eq!(elf.machine, 243);
        assert_eq!(elf.entry, 0x10078);
        assert_eq!(elf.segments.len(), 1);
        assert_eq!(elf.phdr_address(), Some(0x10040));
    }

    #[test]
    fn bad_files_get_clear_errors() {
        assert!(matches!(
            Elf::parse(b"#!/bin/sh\n", "s"),
            Err(ElfError::NotElf { .. })
        ));
        let mut core = tiny_elf64(243, 4);
        assert!(matches!(
            Elf::parse(&core, "c"),
            Err(ElfError::NotExecutable { e_type: 4, .. })
        ));
        core = tiny_elf64(243, ET_EXEC);
        core.truncate(100);
        let error = Elf::parse(&core, "c").unwrap_err();
        assert!(error.to_string().contains("runs past the end"), "{error}");
        let mut big = tiny_elf64(243, ET_EXEC);
        big[5] = 2;
        assert!(Elf::parse(&big, "b")
            .unwrap_err()
            .to_string()
            .contains("big-endian"));
    }
}
