//! pandare's x86 CPU: x86-64 long mode, compatibility mode and 32-bit protected mode.
//!
//! Decoding is iced-x86's (`cpu.rs` keeps decoded blocks by physical address and mode,
//! coherent with stores); `exec.rs` gives the integer and system instructions their
//! semantics with the flags of `alu.rs`; `mmu.rs` walks 4-level, PAE and 32-bit page tables
//! behind a software TLB; `cpuid.rs` is the documented CPUID model; `abi.rs` is the guest-ABI
//! seam (register names, conventions, Linux facts); `float.rs` runs x87, MMX, SSE and SSE2
//! on the semantics of the `pandare-x86-float` crate.

pub mod abi;
pub mod alu;
pub mod bare;
pub mod cpu;
pub mod cpuid;
pub mod exec;
mod float;
pub mod fuzzing;
pub mod hooks;
pub mod mmio;
pub mod mmu;
mod ops;
mod run;
pub mod state;
pub mod user;

pub use cpu::{Event, Exit, X86Cpu};
pub use hooks::X86View;
pub use mmio::{MmioSpace, PhysicalDevices};
pub use state::{Mode, Segment, State};

/// The pseudo exception index pandare reports to `before_handle_exception` for a SYSCALL
/// executed in user mode (not an IDT vector: vectors are 0–255). syscalls2 keys on it, so it
/// needs no per-instruction hook.
pub const SYSCALL_EXCEPTION: i32 = 0x100;

/// An exception an instruction raised: vector, error code, and for #PF the faulting linear
/// address (CR2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The vector (0 #DE … 19 #XM).
    pub vector: u8,
    /// The error code pushed with it, for the vectors that have one.
    pub error_code: Option<u32>,
    /// For page faults: the linear address (goes to CR2).
    pub address: Option<u64>,
}

impl Fault {
    /// #DE.
    pub fn de() -> Fault {
        Fault {
            vector: 0,
            error_code: None,
            address: None,
        }
    }
    /// #BP (INT3).
    pub fn bp() -> Fault {
        Fault {
            vector: 3,
            error_code: None,
            address: None,
        }
    }
    /// #UD.
    pub fn ud() -> Fault {
        Fault {
            vector: 6,
            error_code: None,
            address: None,
        }
    }
    /// #NM.
    pub fn nm() -> Fault {
        Fault {
            vector: 7,
            error_code: None,
            address: None,
        }
    }
    /// #NP with an error code.
    pub fn np(code: u32) -> Fault {
        Fault {
            vector: 11,
            error_code: Some(code),
            address: None,
        }
    }
    /// #SS with an error code.
    pub fn ss(code: u32) -> Fault {
        Fault {
            vector: 12,
            error_code: Some(code),
            address: None,
        }
    }
    /// #GP with an error code.
    pub fn gp(code: u32) -> Fault {
        Fault {
            vector: 13,
            error_code: Some(code),
            address: None,
        }
    }
    /// #PF at `address` with an error code.
    pub fn page(address: u64, code: u32) -> Fault {
        Fault {
            vector: 14,
            error_code: Some(code),
            address: Some(address),
        }
    }
}
