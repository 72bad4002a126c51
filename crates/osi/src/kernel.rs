//! The running kernel, seen through a [`Profile`]: reads of kernel memory and the walks
//! over its structures.

use std::sync::Arc;

use pandare_core::instrument::GuestCpu;
use pandare_core::LinuxAbi;

use crate::profile::{Profile, ProfileError};

/// Why a walk over guest structures stopped.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The architecture has no Linux facts.
    #[error("the {0} architecture has no Linux introspection")]
    NoLinux(&'static str),
    /// The CPU does not name a current task yet (early boot).
    #[error("no current task: the kernel has not set one up yet")]
    NoCurrentTask,
    /// Guest memory the walk needed is not mapped.
    #[error("guest address {address:#x} ({what}) is not mapped")]
    Unmapped {
        /// The address.
        address: u64,
        /// What was being read.
        what: &'static str,
    },
    /// A structure is inconsistent (a garbage pointer, a list modified under the walk).
    #[error("inconsistent kernel structure: {0}")]
    Inconsistent(String),
    /// The walk went on longer than any real kernel structure does.
    #[error("walk of {what} stopped after {limit} steps (a cycle or a list being modified)")]
    TooLong {
        /// What was walked.
        what: &'static str,
        /// The bound.
        limit: usize,
    },
    /// The profile lacks something the walk needs.
    #[error(transparent)]
    Profile(#[from] ProfileError),
}

/// A Linux kernel: its profile and its architecture's facts.
#[derive(Clone, Debug)]
pub struct Kernel {
    profile: Arc<Profile>,
    linux: &'static dyn LinuxAbi,
}

impl Kernel {
    /// The kernel described by `profile`, on the architecture `cpu` emulates.
    pub fn new(profile: Arc<Profile>, cpu: &dyn GuestCpu) -> Result<Kernel, WalkError> {
        let linux = cpu
            .abi()
            .linux()
            .ok_or(WalkError::NoLinux(cpu.architecture()))?;
        Ok(Kernel { profile, linux })
    }

    /// The profile.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The architecture's Linux facts.
    pub fn linux(&self) -> &'static dyn LinuxAbi {
        self.linux
    }

    /// The address of the running `task_struct`.
    pub fn current_task(&self, cpu: &mut dyn GuestCpu) -> Result<u64, WalkError> {
        self.linux
            .current_task(cpu, self.profile.as_ref())
            .ok_or(WalkError::NoCurrentTask)
    }

    /// Reads `buffer.len()` bytes of kernel memory at `address`.
    pub fn read(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        buffer: &mut [u8],
        what: &'static str,
    ) -> Result<(), WalkError> {
        cpu.read_memory(address, buffer)
            .map_err(|_| WalkError::Unmapped { address, what })
    }

    /// Reads a little- or big-endian unsigned integer of `size` bytes (1, 2, 4 or 8).
    pub fn read_uint(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        size: usize,
        what: &'static str,
    ) -> Result<u64, WalkError> {
        let mut bytes = [0u8; 8];
        self.read(cpu, address, &mut bytes[..size], what)?;
        Ok(match cpu.abi().endianness() {
            pandare_core::Endianness::Little => {
                u64::from_le_bytes(bytes) // the unread high bytes are zero
            }
            pandare_core::Endianness::Big => {
                let mut value = 0u64;
                for byte in &bytes[..size] {
                    value = value << 8 | u64::from(*byte);
                }
                value
            }
        })
    }

    /// Reads a guest pointer.
    pub fn read_pointer(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        what: &'static str,
    ) -> Result<u64, WalkError> {
        let size = (cpu.abi().pointer_bits() / 8) as usize;
        self.read_uint(cpu, address, size, what)
    }

    /// Reads the 32-bit field `field` of the `structure` at `address`.
    pub fn read_u32_field(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        structure: &str,
        field: &str,
        what: &'static str,
    ) -> Result<u32, WalkError> {
        let offset = self.profile.offset(structure, field)?;
        Ok(self.read_uint(cpu, address.wrapping_add(offset), 4, what)? as u32)
    }

    /// A task's thread id (`task_struct.pid`) and process id (`task_struct.tgid`).
    pub fn task_ids(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<(u32, u32), WalkError> {
        let tid = self.read_u32_field(cpu, task, "task_struct", "pid", "task_struct.pid")?;
        let pid = self.read_u32_field(cpu, task, "task_struct", "tgid", "task_struct.tgid")?;
        Ok((tid, pid))
    }

    /// A task's name (`task_struct.comm`, at most 16 bytes, up to its NUL).
    pub fn task_name(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<u8>, WalkError> {
        let offset = self.profile.offset("task_struct", "comm")?;
        let mut comm = [0u8; 16];
        self.read(
            cpu,
            task.wrapping_add(offset),
            &mut comm,
            "task_struct.comm",
        )?;
        let end = comm
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(comm.len());
        Ok(comm[..end].to_vec())
    }
}

/// A process as PANDA's OSI reports it (`OsiProc`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Process {
    /// Address of its (group leader's) `task_struct` (PANDA's `taskd`).
    pub task: u64,
    /// Its address space, as [`GuestCpu::asid`] reports it while it runs (0 for kernel
    /// threads, which have no `mm`).
    pub asid: u64,
    /// Physical address of its top-level page table (`mm->pgd`), 0 for kernel threads.
    pub page_table: u64,
    /// Process id (`tgid`).
    pub pid: u32,
    /// Parent's process id (`real_parent->tgid`).
    pub ppid: u32,
    /// Name (`comm`, at most 15 bytes).
    pub name: Vec<u8>,
    /// Pages mapped (`mm->total_vm`), 0 for kernel threads.
    pub pages: u64,
    /// Start time in nanoseconds since boot (`start_time`).
    pub create_time: u64,
}

/// A thread (`OsiThread`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Thread {
    /// Its process id (`tgid`).
    pub pid: u32,
    /// Its thread id (`pid`).
    pub tid: u32,
    /// Address of its `task_struct`.
    pub task: u64,
}

/// A memory mapping of a process (`OsiModule`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Mapping {
    /// Address of its `vm_area_struct` (PANDA's `modd`).
    pub area: u64,
    /// First address.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// Full path of the mapped file, or the special name (`[heap]`, `[stack]`, `[vdso]`)
    /// as `/proc/PID/maps` shows it; `None` for anonymous memory.
    pub file: Option<String>,
    /// The file's last path component (or the special name).
    pub name: Option<String>,
    /// Offset in the file, in bytes (`vm_pgoff` × page size).
    pub offset: u64,
    /// `vm_flags`.
    pub flags: u64,
}
