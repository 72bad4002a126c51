//! The CPUID model: what this CPU tells software it implements.
//!
//! Vendor "AuthenticAMD", family 0xF model 0x6B stepping 1 (the identity of QEMU's `qemu64`),
//! so that Linux chooses the same paths as under `-cpu qemu64` and does not turn on page-table
//! isolation (it does for an Intel vendor without `ARCH_CAPABILITIES.RDCL_NO`).
//!
//! Every bit set is implemented, checked against the executor (`exec.rs` for the integer
//! and system instructions, `float.rs` for x87/MMX/SSE/SSE2):
//! - leaf 1 EDX: fpu (x87, `float.rs`), pse (4 MiB pages, `mmu.rs`), tsc (RDTSC from virtual
//!   time), msr (RDMSR/WRMSR), pae, cx8 (CMPXCHG8B), sep (SYSENTER/SYSEXIT), pge (global
//!   pages), cmov, pat (the PAT MSR), clflush, mmx, fxsr (FXSAVE/FXRSTOR, CR4.OSFXSR), sse,
//!   sse2;
//! - leaf 1 ECX: cx16 (CMPXCHG16B with its alignment #GP), popcnt;
//! - leaf 0x8000_0001 EDX: syscall (SYSCALL/SYSRET), nx, lm; ECX: lahf_lm (LAHF/SAHF in
//!   64-bit mode).
//!
//! Not advertised, and raising #UD where an instruction exists: sse3 and later (FISTTP,
//! MOVDDUP, the 0F 38/0F 3A maps…), AVX, XSAVE, RDRAND, RDTSCP, BMI1/ABM (so TZCNT/LZCNT
//! execute as BSF/BSR, as on processors without them). Not advertised although partly
//! present: apic (comes with the PC platform), de/vme/mce (CR4 bits accepted, no
//! machinery), mtrr, mca, pse36, 1 GiB pages, the hypervisor bit, leaves 0x15/0x16 (Linux
//! calibrates the TSC against the PIT).

/// LAHF/SAHF are available in 64-bit mode (CPUID 0x8000_0001 ECX bit 0).
pub const LAHF_LM: bool = true;

const VENDOR: [u32; 3] = [
    u32::from_le_bytes(*b"Auth"),
    u32::from_le_bytes(*b"enti"),
    u32::from_le_bytes(*b"cAMD"),
];

/// CPUID.1 EDX.
pub const LEAF1_EDX: u32 = (1 << 0) // fpu
    | (1 << 3) // pse
    | (1 << 4) // tsc
    | (1 << 5) // msr
    | (1 << 6) // pae
    | (1 << 8) // cx8
    | (1 << 11) // sep
    | (1 << 13) // pge
    | (1 << 15) // cmov
    | (1 << 16) // pat
    | (1 << 19) // clflush
    | (1 << 23) // mmx
    | (1 << 24) // fxsr
    | (1 << 25) // sse
    | (1 << 26); // sse2

/// CPUID.1 ECX.
pub const LEAF1_ECX: u32 = (1 << 13) // cx16
    | (1 << 23); // popcnt

/// The CPUID.1 EDX bits AMD processors repeat in CPUID.8000_0001 EDX (bits 0–9, 12–17,
/// 23 and 24; AMD APM vol. 3, CPUID Fn8000_0001_EDX), as `qemu64` does.
const AMD_ALIASES: u32 = 0x0183_f3ff;

/// CPUID.8000_0001 EDX.
pub const EXT1_EDX: u32 = (LEAF1_EDX & AMD_ALIASES)
    | (1 << 11) // syscall
    | (1 << 20) // nx
    | (1 << 29); // lm

/// CPUID.8000_0001 ECX.
pub const EXT1_ECX: u32 = 1; // lahf_lm

/// CPUID for `leaf` (EAX) and `subleaf` (ECX): `[eax, ebx, ecx, edx]`. Leaves outside the
/// model return zeros (as AMD processors do).
pub fn cpuid(leaf: u32, _subleaf: u32) -> [u32; 4] {
    match leaf {
        0 => [1, VENDOR[0], VENDOR[2], VENDOR[1]],
        1 => [
            0x0006_0fb1,
            (8 << 8) | (1 << 16), // CLFLUSH line 64 bytes, one logical processor, APIC ID 0
            LEAF1_ECX,
            LEAF1_EDX,
        ],
        0x8000_0000 => [0x8000_0008, VENDOR[0], VENDOR[2], VENDOR[1]],
        0x8000_0001 => [0x0006_0fb1, 0, EXT1_ECX, EXT1_EDX],
        0x8000_0008 => [crate::mmu::PHYS_BITS | (48 << 8), 0, 0, 0],
        _ => [0; 4],
    }
}
