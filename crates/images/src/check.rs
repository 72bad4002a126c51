//! Sanity checks of the files taken from Debian's packages.

/// Fields of a RISC-V Linux `Image` header (Documentation/arch/riscv/boot-image-header.rst).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RiscvImageHeader {
    /// Offset from the start of RAM at which the kernel expects to be loaded.
    pub text_offset: u64,
    /// Memory the loaded kernel occupies, from its load address.
    pub image_size: u64,
}

/// The magic at byte 48 of a RISC-V `Image` (deprecated by the kernel, still written).
pub const RISCV_MAGIC: &[u8; 8] = b"RISCV\0\0\0";
/// The magic at byte 56 of a RISC-V `Image`.
pub const RISCV_MAGIC2: &[u8; 4] = b"RSC\x05";

/// Checks that `head` (at least the first 64 bytes of a file) starts a flat RISC-V `Image`
/// and returns its header fields.
pub fn riscv_image_header(head: &[u8]) -> Result<RiscvImageHeader, String> {
    if head.len() < 64 {
        return Err(format!(
            "only {} bytes long, a RISC-V Image header has 64",
            head.len()
        ));
    }
    if &head[48..56] != RISCV_MAGIC {
        return Err(format!(
            "bytes 48..56 are {:?}, expected \"RISCV\\0\\0\\0\"",
            String::from_utf8_lossy(&head[48..56])
        ));
    }
    if &head[56..60] != RISCV_MAGIC2 {
        return Err(format!(
            "bytes 56..60 are {:02x?}, expected \"RSC\\x05\"",
            &head[56..60]
        ));
    }
    let le64 = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&head[at..at + 8]);
        u64::from_le_bytes(b)
    };
    Ok(RiscvImageHeader {
        text_offset: le64(8),
        image_size: le64(16),
    })
}

/// ELF machine number of RISC-V.
pub const EM_RISCV: u16 = 243;

/// Checks that `bytes` is a 64-bit little-endian static ELF executable for `machine`.
pub fn static_elf(bytes: &[u8], machine: u16) -> Result<(), String> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err("not an ELF file".to_string());
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err("not a 64-bit little-endian ELF file".to_string());
    }
    let le16 = |at: usize| u16::from_le_bytes([bytes[at], bytes[at + 1]]);
    let found = le16(18);
    if found != machine {
        return Err(format!("ELF machine is {found}, expected {machine}"));
    }
    let le64 = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let phoff = usize::try_from(le64(32)).map_err(|_| "bad program header offset".to_string())?;
    let phentsize = usize::from(le16(54));
    let phnum = usize::from(le16(56));
    if phentsize < 4 {
        return Err("bad program header size".to_string());
    }
    for i in 0..phnum {
        let at = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .filter(|&at| at.checked_add(4).is_some_and(|end| end <= bytes.len()))
            .ok_or_else(|| "program headers run past the end of the file".to_string())?;
        let p_type = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        if p_type == 3 {
            return Err("dynamically linked (it has a PT_INTERP program header)".to_string());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_head() -> Vec<u8> {
        let mut h = vec![0u8; 64];
        h[8..16].copy_from_slice(&0x20_0000u64.to_le_bytes());
        h[16..24].copy_from_slice(&0x1e6_c000u64.to_le_bytes());
        h[48..56].copy_from_slice(RISCV_MAGIC);
        h[56..60].copy_from_slice(RISCV_MAGIC2);
        h
    }

    #[test]
    fn accepts_a_riscv_image_header() {
        let h = riscv_image_header(&image_head()).unwrap();
        assert_eq!(h.text_offset, 0x20_0000);
        assert_eq!(h.image_size, 0x1e6_c000);
    }

    #[test]
    fn rejects_wrong_magic_and_short_files() {
        let mut h = image_head();
        h[48] = b'X';
        assert!(riscv_image_header(&h).unwrap_err().contains("bytes 48..56"));
        let mut h = image_head();
        h[59] = 4;
        assert!(riscv_image_header(&h).unwrap_err().contains("bytes 56..60"));
        assert!(riscv_image_header(&[0; 10])
            .unwrap_err()
            .contains("10 bytes"));
    }

    fn elf(machine: u16, interp: bool) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 2 * 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[18..20].copy_from_slice(&machine.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&2u16.to_le_bytes());
        e[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        if interp {
            e[120..124].copy_from_slice(&3u32.to_le_bytes());
        }
        e
    }

    #[test]
    fn checks_elf_machine_and_linking() {
        assert_eq!(static_elf(&elf(EM_RISCV, false), EM_RISCV), Ok(()));
        assert!(static_elf(&elf(62, false), EM_RISCV)
            .unwrap_err()
            .contains("machine is 62"));
        assert!(static_elf(&elf(EM_RISCV, true), EM_RISCV)
            .unwrap_err()
            .contains("dynamically"));
        assert!(static_elf(b"#!/bin/sh\n", EM_RISCV).is_err());
        let mut truncated = elf(EM_RISCV, false);
        truncated.truncate(70);
        assert!(static_elf(&truncated, EM_RISCV).is_err());
    }
}
