//! pandare-user: runs a static Linux program in user mode on an emulated CPU
//! (`panda exec`), with PANDA's callbacks.
//!
//! The crate is architecture-neutral. An architecture supplies its facts ([`UserArch`]:
//! ELF machine, system call numbers, auxiliary vector values, structure layouts) and its
//! CPU ([`UserCpu`]: page mappings, entering user mode, running until a system call or a
//! fault). This crate loads the ELF program ([`elf`]), lays out the address space and the
//! initial stack ([`Process`]), answers the program's system calls deterministically
//! ([`syscall`]: I/O on the host's standard streams, memory, clocks from virtual time,
//! fixed random bytes) and wraps it all in a [`pandare_core::Board`] ([`UserBoard`]), so
//! that the arch-neutral [`pandare_core::Shell`] runs a process as it runs a machine.
#![warn(missing_docs)]

pub mod arch;
pub mod board;
pub mod elf;
pub mod memory;
pub mod process;
pub mod syscall;
pub mod x86;

pub use arch::{CpuExit, Fault, OutOfMemory, Prot, Stat, UserArch, UserCpu, PAGE_SIZE};
pub use board::{run_to_end, Outcome, ProcessMachine, UserBoard, UserMachine};
pub use elf::{Elf, ElfError};
pub use process::{BadAddress, Io, LoadError, Process, Program, UserError};
pub use syscall::Syscall;

/// The system call `number` in a `(number, name, call)` table such as
/// [`syscall::GENERIC_TABLE`].
pub fn table_lookup(
    table: &'static [(u64, &'static str, Option<Syscall>)],
    number: u64,
) -> Option<&'static (u64, &'static str, Option<Syscall>)> {
    table
        .binary_search_by_key(&number, |entry| entry.0)
        .ok()
        .map(|index| &table[index])
}
