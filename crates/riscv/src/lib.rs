//! pandare-riscv: the RV64GC CPU and the RISC-V "virt" platform.
//!
//! The CPU ([`Hart`]) pre-decodes guest code into blocks of [`decode::Op`]s cached by
//! physical address, runs them against a software TLB, and counts retired instructions per
//! block so that events land at exact instruction counts. The platform ([`virt`]) wires the
//! hart to RAM, a PLIC, a CLINT, a 16550 UART and a test finisher, implements SBI itself
//! (no firmware blob) and loads a Linux `Image` with a device tree built at boot.

pub mod abi;
pub mod compressed;
pub mod csr;
pub mod decode;
pub mod disasm;
mod execute;
mod fp;
pub mod fpu;
pub mod fuzzing;
pub mod hart;
mod hooks;
mod mmu;
pub mod user;
pub mod virt;

pub use abi::{Riscv64Abi, ABI, DESCRIPTION};
pub use hart::{Hart, Privilege, Trap};
pub use virt::{Firmware, Virt, VirtConfig, VirtError, VirtMachine};
