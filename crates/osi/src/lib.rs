//! Linux introspection ("OSI") derived from the kernel itself.
//!
//! Debian's kernels carry BTF (the layout of every kernel type) and kallsyms (the address
//! of every symbol), and `CONFIG_FTRACE_SYSCALLS` records each system call's prototype.
//! [`Profile::derive`] reads all three out of a kernel image and keeps what introspection
//! needs; [`Kernel`] walks the running guest's structures with it: the current task,
//! processes, threads, mappings, files. Nothing here is architecture-specific: what
//! differs per architecture (how `current` is found, how a system call is entered) comes
//! from the guest's [`pandare_core::LinuxAbi`].
//!
//! `docs/osi.md` describes how the profile is derived, what each call returns, and the
//! limits.
#![warn(missing_docs)]

mod btf;
mod files;
mod kallsyms;
pub mod kernel;
mod kernel_image;
mod mappings;
mod processes;
pub mod profile;
mod serialize;
mod syscall_table;

pub use kernel::{Kernel, Mapping, Process, Thread, WalkError};
pub use profile::{
    Architecture, ArgumentKind, EnumeratorInfo, MemberInfo, Profile, ProfileError, Symbol,
    SyscallArgument, SyscallInfo, TypeInfo, TypeKind,
};
