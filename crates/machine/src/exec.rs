//! `panda exec`'s architecture choice: loads a static Linux program on the CPU of the
//! architecture its ELF header names (or the one asked for), as a process the
//! arch-neutral shell runs ([`pandare_user`]).

use pandare_user::{Elf, Io, LoadError, ProcessMachine, Program};

/// The architectures `panda exec` runs.
pub const ARCHITECTURES: &[&str] = &["riscv64", "x86_64", "i386"];

/// Why a program could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The program file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a program for a supported architecture.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// An architecture `panda exec` does not run (yet).
    #[error("panda exec cannot run {arch} programs yet; it runs {}", ARCHITECTURES.join(", "))]
    Architecture {
        /// The architecture.
        arch: String,
    },
    /// The guest memory size was refused.
    #[error("{0}")]
    Memory(String),
}

/// Loads `program` for `arch` (from the ELF header when `None`) with `memory_bytes` of
/// guest RAM.
pub fn load(
    arch: Option<&str>,
    program: &Program,
    io: Io,
    memory_bytes: u64,
) -> Result<Box<dyn ProcessMachine>, ExecError> {
    let file = std::fs::read(&program.path).map_err(|source| ExecError::Read {
        path: program.path.clone(),
        source,
    })?;
    let arch = match arch {
        Some(arch) => arch.to_string(),
        None => {
            let elf = Elf::parse(&file, &program.path).map_err(LoadError::from)?;
            match (elf.machine, elf.is_64) {
                (243, true) => "riscv64".to_string(),
                (62, true) => "x86_64".to_string(),
                (3, false) => "i386".to_string(),
                (machine, _) => pandare_user::elf::machine_name(machine).to_string(),
            }
        }
    };
    match arch.as_str() {
        "riscv64" => {
            let cpu = pandare_riscv::user::RiscvUser::new(memory_bytes)
                .map_err(|e| ExecError::Memory(e.to_string()))?;
            Ok(Box::new(pandare_user::UserBoard::load(
                cpu, &file, program, io,
            )?))
        }
        "x86_64" | "i386" => {
            use pandare_x86::user::{X86User, I386, X86_64};
            let facts = if arch == "x86_64" { &X86_64 } else { &I386 };
            let cpu =
                X86User::new(facts, memory_bytes).map_err(|e| ExecError::Memory(e.to_string()))?;
            Ok(Box::new(pandare_user::UserBoard::load(
                cpu, &file, program, io,
            )?))
        }
        _ => Err(ExecError::Architecture { arch }),
    }
}
