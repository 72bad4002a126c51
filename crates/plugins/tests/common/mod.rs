//! What the plugins' guest tests share.

/// A static riscv64 Linux executable of one read-execute segment at 0x10000 holding `code`,
/// entered at its first instruction.
pub fn static_riscv64_elf(code: &[u32]) -> Vec<u8> {
    let base = 0x10000u64;
    let size = 64 + 56 + 4 * code.len() as u64;
    let mut elf = Vec::new();
    elf.extend_from_slice(b"\x7fELF\x02\x01\x01\x00");
    elf.extend_from_slice(&[0; 8]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&243u16.to_le_bytes()); // EM_RISCV
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(base + 120).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no sections
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 64, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R X
    for value in [0, base, base, size, size, 0x1000] {
        elf.extend_from_slice(&value.to_le_bytes());
    }
    for word in code {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(elf.len() as u64, size);
    elf
}
