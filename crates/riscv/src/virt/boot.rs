//! Loading a RISC-V Linux `Image` (Documentation/arch/riscv/boot-image-header.rst).

use super::VirtError;

/// What the `Image` header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// Offset from the start of RAM at which the image wants to be loaded.
    pub text_offset: u64,
    /// Memory the image occupies once running (at least the file size).
    pub image_size: u64,
}

const MAGIC_OFFSET: usize = 48;
const MAGIC: &[u8; 8] = b"RISCV\0\0\0";
const MAGIC2_OFFSET: usize = 56;
const MAGIC2: &[u8; 4] = b"RSC\x05";
const HEADER_SIZE: usize = 64;

/// Parses and checks the header of a kernel `Image`.
pub fn parse_header(image: &[u8]) -> Result<ImageHeader, VirtError> {
    if image.len() < HEADER_SIZE {
        return Err(VirtError::KernelTooShort { size: image.len() });
    }
    if &image[MAGIC2_OFFSET..MAGIC2_OFFSET + 4] != MAGIC2
        && &image[MAGIC_OFFSET..MAGIC_OFFSET + 8] != MAGIC
    {
        return Err(VirtError::NotAnImage);
    }
    let word = |offset: usize| {
        u64::from_le_bytes(image[offset..offset + 8].try_into().expect("8-byte slice"))
    };
    let text_offset = word(8);
    let image_size = word(16).max(image.len() as u64);
    if text_offset % 4096 != 0 {
        return Err(VirtError::NotAnImage);
    }
    Ok(ImageHeader {
        text_offset,
        image_size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(text_offset: u64, image_size: u64) -> Vec<u8> {
        let mut image = vec![0u8; 128];
        image[8..16].copy_from_slice(&text_offset.to_le_bytes());
        image[16..24].copy_from_slice(&image_size.to_le_bytes());
        image[48..56].copy_from_slice(MAGIC);
        image[56..60].copy_from_slice(MAGIC2);
        image
    }

    #[test]
    fn reads_text_offset_and_size() {
        let parsed = parse_header(&header(0x20_0000, 0x1000)).unwrap();
        assert_eq!(parsed.text_offset, 0x20_0000);
        assert_eq!(parsed.image_size, 0x1000);
    }

    #[test]
    fn rejects_short_files_and_missing_magic() {
        assert!(matches!(
            parse_header(&[0; 10]),
            Err(VirtError::KernelTooShort { .. })
        ));
        assert!(matches!(
            parse_header(&[0; 128]),
            Err(VirtError::NotAnImage)
        ));
    }
}
