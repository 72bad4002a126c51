//! One Linux process: its address space, its standard streams, its signal dispositions
//! and the rest of the state the system call layer keeps; and loading a program into it
//! (segments, heap, stack with argc, argv, envp and the auxiliary vector).

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::arch::{Prot, UserArch, UserCpu, PAGE_SIZE};
use crate::elf::{Elf, ElfError, PF_R, PF_W, PF_X};
use crate::memory::{page_ceil, page_floor, Memory, STACK_BYTES};
use crate::syscall::{errno, Action, UID};

/// Why a run cannot go on (besides the program exiting or faulting).
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    /// A system call the layer does not implement.
    #[error("the program made system call {number}{} at pc {pc:#x}, which panda exec does not implement (docs/exec.md lists what it does)", match name { Some(name) => format!(" ({name})"), None => String::new() })]
    UnimplementedSyscall {
        /// Its number on the architecture.
        number: u64,
        /// Its name, when known.
        name: Option<&'static str>,
        /// Where the program made it.
        pc: u64,
    },
    /// A call the layer knows, used in a way it does not support.
    #[error("the program used {call} for {what}, which panda exec does not support (one process, one thread, no files)")]
    Unsupported {
        /// The call.
        call: &'static str,
        /// How it was used.
        what: String,
    },
    /// The only thread waits on a futex nobody can wake.
    #[error("the program's only thread waits on a futex at pc {pc:#x} with no timeout: it would wait forever")]
    Deadlock {
        /// Where.
        pc: u64,
    },
}

/// Guest memory the program could not access there (the kernel's `EFAULT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAddress;

/// Why a program could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file is not a runnable ELF program.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// The file is for another architecture than the CPU's.
    #[error("{path} is a {found} program but the CPU is {arch}; run it with --arch {found} (or leave --arch out)")]
    WrongArchitecture {
        /// The file.
        path: String,
        /// What the file is for.
        found: String,
        /// The CPU's architecture.
        arch: &'static str,
    },
    /// The program's segments lie where user space cannot hold them.
    #[error(
        "{path} has a segment at {address:#x}, outside the user address space (below {limit:#x})"
    )]
    BadAddress {
        /// The file.
        path: String,
        /// The segment's address.
        address: u64,
        /// The top of user space.
        limit: u64,
    },
    /// Guest memory ran out.
    #[error("guest memory ran out while loading {path}; give more with --mem")]
    OutOfMemory {
        /// The file.
        path: String,
    },
}

/// The program's standard streams on the host.
pub struct Io {
    /// What `read(0, ...)` reads.
    pub stdin: Box<dyn Read + Send>,
    /// Where `write(1, ...)` goes.
    pub stdout: Box<dyn Write + Send>,
    /// Where `write(2, ...)` goes (and the syscall trace).
    pub stderr: Box<dyn Write + Send>,
}

impl std::fmt::Debug for Io {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Io")
    }
}

impl Io {
    /// The host's own standard streams.
    pub fn host() -> Io {
        Io {
            stdin: Box::new(std::io::stdin()),
            stdout: Box::new(std::io::stdout()),
            stderr: Box::new(std::io::stderr()),
        }
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The path as given (`argv[0]` by default, AT_EXECFN and `/proc/self/exe`).
    pub path: String,
    /// `argv`, including `argv[0]`.
    pub argv: Vec<String>,
    /// `envp` (`KEY=VALUE`); nothing of the host's environment is passed unless given.
    pub envp: Vec<String>,
}

/// The process's state.
#[derive(Debug)]
pub struct Process {
    /// The address space.
    pub memory: Memory,
    /// The standard streams.
    pub io: Io,
    /// Which of fds 0, 1, 2 are still open.
    open: [bool; 3],
    /// Dispositions set with `rt_sigaction` (raw kernel structures; never delivered).
    pub sigactions: HashMap<u64, Vec<u8>>,
    /// Blocked signals.
    pub signal_mask: u64,
    /// Signals sent while blocked (bit N-1 for signal N): delivered when unblocked.
    pub pending_signals: u64,
    /// `set_tid_address`'s pointer.
    pub clear_child_tid: u64,
    /// `set_robust_list`'s head.
    pub robust_list: u64,
    /// The file mode creation mask.
    pub umask: u64,
    /// What `/proc/self/exe` names.
    pub exe_path: String,
    /// The thread's name (`prctl(PR_GET_NAME)`): the program's file name, at most 15 bytes.
    pub comm: Vec<u8>,
    /// Print each system call to stderr.
    pub trace_syscalls: bool,
    random_state: u64,
}

/// The seed of the deterministic random bytes (AT_RANDOM, getrandom).
const RANDOM_SEED: u64 = 0x7061_6e64_6172_6521;

impl Process {
    fn new(memory: Memory, io: Io, exe_path: String) -> Process {
        Process {
            memory,
            io,
            open: [true; 3],
            sigactions: HashMap::new(),
            signal_mask: 0,
            pending_signals: 0,
            clear_child_tid: 0,
            robust_list: 0,
            umask: 0o022,
            comm: std::path::Path::new(&exe_path)
                .file_name()
                .map(|name| name.as_encoded_bytes().iter().copied().take(15).collect())
                .unwrap_or_default(),
            exe_path,
            trace_syscalls: false,
            random_state: RANDOM_SEED,
        }
    }

    /// Whether `fd` is an open standard stream.
    pub fn fd_open(&self, fd: u64) -> bool {
        fd < 3 && self.open[fd as usize]
    }

    /// Closes a standard stream.
    pub fn close(&mut self, fd: u64) {
        if fd < 3 {
            self.open[fd as usize] = false;
        }
    }

    /// The next `len` deterministic random bytes (SplitMix64).
    pub fn random_bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            self.random_state = self.random_state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.random_state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        }
        out.truncate(len);
        out
    }

    /// Reads guest memory the program could read; `Err` where it could not (EFAULT).
    pub fn read_guest<C: UserCpu>(
        &self,
        cpu: &mut C,
        address: u64,
        len: u64,
    ) -> Result<Vec<u8>, BadAddress> {
        if !self.memory.accessible(address, len, false) {
            return Err(BadAddress);
        }
        let mut buffer = vec![0u8; len as usize];
        cpu.with_cpu(|view| view.read_memory(address, &mut buffer))
            .map_err(|_| BadAddress)?;
        Ok(buffer)
    }

    /// Writes guest memory the program could write; `Err` where it could not (EFAULT).
    pub fn write_guest<C: UserCpu>(
        &self,
        cpu: &mut C,
        address: u64,
        data: &[u8],
    ) -> Result<(), BadAddress> {
        if !self.memory.accessible(address, data.len() as u64, true) {
            return Err(BadAddress);
        }
        cpu.with_cpu(|view| view.write_memory(address, data))
            .map_err(|_| BadAddress)
    }

    /// Reads a NUL-terminated string (at most 4096 bytes, as `PATH_MAX`).
    pub fn read_string<C: UserCpu>(&self, cpu: &mut C, address: u64) -> Result<String, BadAddress> {
        let mut bytes = Vec::new();
        let mut at = address;
        while bytes.len() < 4096 {
            let chunk = (PAGE_SIZE - at % PAGE_SIZE).min(4096 - bytes.len() as u64);
            let data = self.read_guest(cpu, at, chunk)?;
            if let Some(end) = data.iter().position(|&b| b == 0) {
                bytes.extend_from_slice(&data[..end]);
                return Ok(String::from_utf8_lossy(&bytes).into_owned());
            }
            bytes.extend_from_slice(&data);
            at += chunk;
        }
        Err(BadAddress)
    }

    /// Writes a `timespec`/`timeval` of `value` in units of `1/per_second` s, with `long`
    /// fields.
    pub fn write_timespec<C: UserCpu>(
        &self,
        cpu: &mut C,
        address: u64,
        value: u64,
        per_second: u64,
    ) -> Action {
        let size = cpu.arch().pointer_bytes();
        self.write_time(cpu, address, value, per_second, size)
    }

    /// Writes a `timespec`/`timeval` of `value` in units of `1/per_second` s, with fields
    /// of `size` bytes (8 for the `*_time64` calls of 32-bit architectures).
    pub fn write_time<C: UserCpu>(
        &self,
        cpu: &mut C,
        address: u64,
        value: u64,
        per_second: u64,
        size: u64,
    ) -> Action {
        let size = size as usize;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(value / per_second).to_le_bytes()[..size]);
        bytes.extend_from_slice(&(value % per_second).to_le_bytes()[..size]);
        match self.write_guest(cpu, address, &bytes) {
            Ok(()) => Action::Return(0),
            Err(BadAddress) => Action::Return(errno::EFAULT.wrapping_neg()),
        }
    }

    /// Writes a line of the syscall trace to stderr.
    pub fn trace(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.io.stderr, "{line}");
    }

    /// Loads `program` (whose bytes are `file`) into a fresh process on `cpu` and puts the
    /// CPU at its entry point.
    pub fn load<C: UserCpu>(
        cpu: &mut C,
        file: &[u8],
        program: &Program,
        io: Io,
    ) -> Result<Process, LoadError> {
        let arch = cpu.arch();
        let elf = Elf::parse(file, &program.path)?;
        check_machine(&elf, arch, &program.path)?;
        if let Some(interpreter) = elf.interpreter {
            return Err(ElfError::Dynamic {
                path: program.path.clone(),
                interpreter,
            }
            .into());
        }
        let limit = arch.stack_top() - STACK_BYTES;
        let out_of_memory = || LoadError::OutOfMemory {
            path: program.path.clone(),
        };
        let base = if elf.position_independent {
            arch.pie_base()
        } else {
            0
        };
        let mut memory = Memory::new(arch.stack_top());
        // Segment pages: mapped writable to fill, then given their final permissions
        // (the union where two segments share a page).
        let mut final_prot: HashMap<u64, u32> = HashMap::new();
        let mut end = 0u64;
        for segment in &elf.segments {
            let start = base.wrapping_add(segment.vaddr);
            let seg_end = start.saturating_add(segment.mem_size);
            if seg_end > limit || start < PAGE_SIZE {
                return Err(LoadError::BadAddress {
                    path: program.path.clone(),
                    address: start,
                    limit,
                });
            }
            let mut prot = 0;
            if segment.flags & PF_R != 0 {
                prot |= Prot::READ;
            }
            if segment.flags & PF_W != 0 {
                prot |= Prot::WRITE;
            }
            if segment.flags & PF_X != 0 {
                prot |= Prot::EXEC;
            }
            let mut page = page_floor(start);
            while page < page_ceil(seg_end) {
                if memory.prot(page).is_none() {
                    memory
                        .map(cpu, page, PAGE_SIZE, Prot::RW)
                        .map_err(|_| out_of_memory())?;
                }
                *final_prot.entry(page).or_default() |= prot;
                page += PAGE_SIZE;
            }
            let bytes =
                &file[segment.offset as usize..(segment.offset + segment.file_size) as usize];
            cpu.with_cpu(|view| view.write_memory(start, bytes))
                .map_err(|_| out_of_memory())?;
            end = end.max(seg_end);
        }
        let mut pages: Vec<_> = final_prot.into_iter().collect();
        pages.sort_unstable();
        for (page, prot) in pages {
            memory.protect(cpu, page, PAGE_SIZE, Prot(prot));
        }
        memory.brk_start = page_ceil(end);
        memory.brk = memory.brk_start;
        memory
            .map(cpu, memory.stack_bottom, STACK_BYTES, Prot::RW)
            .map_err(|_| out_of_memory())?;
        // `/proc/self/exe` is absolute (glibc's static start-up asserts it).
        let exe_path = std::path::absolute(&program.path)
            .map(|path| path.to_string_lossy().into_owned())
            .unwrap_or_else(|_| program.path.clone());
        let mut process = Process::new(memory, io, exe_path);
        let entry = base.wrapping_add(elf.entry);
        let phdr = elf.phdr_address().map_or(0, |a| base.wrapping_add(a));
        let sp = process
            .build_stack(cpu, program, &elf, entry, phdr)
            .map_err(|_| out_of_memory())?;
        cpu.enter_user(entry, sp);
        Ok(process)
    }

    /// Writes argc, argv, envp and the auxiliary vector below the stack's top; returns the
    /// stack pointer (16-byte aligned, pointing at argc).
    fn build_stack<C: UserCpu>(
        &mut self,
        cpu: &mut C,
        program: &Program,
        elf: &Elf,
        entry: u64,
        phdr: u64,
    ) -> Result<u64, BadAddress> {
        let arch = cpu.arch();
        let word = arch.pointer_bytes();
        let mut top = arch.stack_top();
        let mut push_bytes = |cpu: &mut C, process: &Process, bytes: &[u8]| {
            top -= bytes.len() as u64;
            process.write_guest(cpu, top, bytes).map(|()| top)
        };
        let mut string = |cpu: &mut C, process: &Process, s: &str| {
            let mut bytes = s.as_bytes().to_vec();
            bytes.push(0);
            push_bytes(cpu, process, &bytes)
        };
        let execfn = string(cpu, self, &program.path)?;
        let platform = match arch.platform() {
            Some(name) => string(cpu, self, name)?,
            None => 0,
        };
        let envp: Vec<u64> = program
            .envp
            .iter()
            .rev()
            .map(|s| string(cpu, self, s))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .rev()
            .collect();
        let argv: Vec<u64> = program
            .argv
            .iter()
            .rev()
            .map(|s| string(cpu, self, s))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .rev()
            .collect();
        let random_bytes = self.random_bytes(16);
        top &= !15;
        top -= 16;
        let random = top;
        self.write_guest(cpu, random, &random_bytes)?;
        let uid = UID;
        let mut auxv = vec![
            (3, phdr),                     // AT_PHDR
            (4, u64::from(elf.phentsize)), // AT_PHENT
            (5, u64::from(elf.phnum)),     // AT_PHNUM
            (6, PAGE_SIZE),                // AT_PAGESZ
            (7, 0),                        // AT_BASE: no interpreter
            (8, 0),                        // AT_FLAGS
            (9, entry),                    // AT_ENTRY
            (11, uid),                     // AT_UID
            (12, uid),                     // AT_EUID
            (13, uid),                     // AT_GID
            (14, uid),                     // AT_EGID
            (16, arch.hwcap()),            // AT_HWCAP
            (17, 100),                     // AT_CLKTCK
            (23, 0),                       // AT_SECURE
            (25, random),                  // AT_RANDOM
            (26, 0),                       // AT_HWCAP2
            (31, execfn),                  // AT_EXECFN
        ];
        if platform != 0 {
            auxv.push((15, platform)); // AT_PLATFORM
        }
        auxv.push((0, 0)); // AT_NULL
        let mut words = vec![argv.len() as u64];
        words.extend(&argv);
        words.push(0);
        words.extend(&envp);
        words.push(0);
        for (key, value) in auxv {
            words.push(key);
            words.push(value);
        }
        let sp = (top - words.len() as u64 * word) & !15;
        let bytes: Vec<u8> = words
            .iter()
            .flat_map(|w| w.to_le_bytes()[..word as usize].to_vec())
            .collect();
        self.write_guest(cpu, sp, &bytes)?;
        Ok(sp)
    }
}

/// Refuses a program built for another machine or word size than the CPU's.
fn check_machine(elf: &Elf, arch: &dyn UserArch, path: &str) -> Result<(), LoadError> {
    if elf.machine == arch.elf_machine() && elf.is_64 == arch.elf_64() {
        return Ok(());
    }
    let found = match (elf.machine, elf.is_64) {
        (243, true) => "riscv64".to_string(),
        (243, false) => "riscv32".to_string(),
        (62, true) => "x86_64".to_string(),
        (3, false) => "i386".to_string(),
        (machine, is_64) => format!(
            "{} ({}-bit)",
            crate::elf::machine_name(machine),
            if is_64 { 64 } else { 32 }
        ),
    };
    Err(LoadError::WrongArchitecture {
        path: path.to_string(),
        found,
        arch: arch.name(),
    })
}
