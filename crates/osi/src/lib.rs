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
    Architecture, ArgumentKind, EnumeratorInfo, FieldInfo, MemberInfo, Profile, ProfileError,
    Symbol, SyscallArgument, SyscallInfo, TypeInfo, TypeKind,
};

/// Entry points for fuzzing the parsers with arbitrary bytes (tests and fuzz targets);
/// not part of the API.
#[doc(hidden)]
pub mod fuzzing {
    /// Parses `bytes` as a BTF blob and, if it parses, runs every kind of query on up to
    /// `queries` of its types. Returns the number of types, or the error.
    pub fn btf(bytes: &[u8], queries: usize) -> Result<usize, crate::ProfileError> {
        let btf = crate::btf::Btf::parse(bytes.to_vec())?;
        let count = btf.type_count();
        let step = (count / queries.max(1)).max(1);
        for id in (0..=count as u32 + 1).step_by(step) {
            let info = btf.type_info(id);
            let _ = btf.size_of(id);
            let _ = btf.resolve(id);
            let _ = btf.integer(id);
            if let Some(info) = info {
                if let Some(first) = info.members.first() {
                    let _ = btf.offset_of(id, &first.name);
                    let _ = btf.offset_of(id, &format!("{}[1].x", first.name));
                }
                if !info.name.is_empty() {
                    let _ = btf.find_type(&info.name);
                }
            }
        }
        let _ = btf.section_variables(".data..percpu");
        Ok(count)
    }
}
