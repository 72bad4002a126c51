//! The running kernel, seen through a [`Profile`]: reads of kernel memory, the layouts the
//! walks use, and the records they return.
//!
//! The walks themselves live in [`crate::processes`] (tasks, threads, modules),
//! [`crate::mappings`] (the maple tree of memory areas) and [`crate::files`] (paths and file
//! descriptors); they are all methods of [`Kernel`]. Every walk reads guest memory through
//! [`GuestCpu::read_memory`] (the current page table: Linux maps itself in every address
//! space), bounds every loop, and ends with a [`WalkError`] on anything a real kernel does
//! not hold (an unmapped pointer, a cycle, a list changed under it), never a panic.

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

/// Declares a group of struct offsets one walk needs, resolved from the profile once when
/// the [`Kernel`] is made. A field lists the names it has had across kernel versions.
macro_rules! layout {
    ($(#[$meta:meta])* $name:ident { $($field:ident : $structure:literal [$($path:literal),+]),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        pub(crate) struct $name {
            $(pub(crate) $field: u64,)*
        }

        impl $name {
            /// `(struct, field names)` of every offset of the group.
            pub(crate) const FIELDS: &'static [(&'static str, &'static [&'static str])] =
                &[$(($structure, &[$($path),+]),)*];

            fn resolve(profile: &Profile) -> Result<$name, Missing> {
                Ok($name {
                    $($field: profile
                        .offset_any($structure, &[$($path),+])
                        .map_err(|error| Missing::from(&error))?,)*
                })
            }
        }
    };
}

layout! {
    /// `task_struct`: the process and thread walks.
    TaskLayout {
        tasks: "task_struct" ["tasks"],
        pid: "task_struct" ["pid"],
        tgid: "task_struct" ["tgid"],
        comm: "task_struct" ["comm"],
        real_parent: "task_struct" ["real_parent"],
        group_leader: "task_struct" ["group_leader"],
        mm: "task_struct" ["mm"],
        start_time: "task_struct" ["start_time"],
        signal: "task_struct" ["signal"],
        thread_node: "task_struct" ["thread_node"],
        thread_head: "signal_struct" ["thread_head"],
    }
}

layout! {
    /// `mm_struct`: address spaces.
    MmLayout {
        pgd: "mm_struct" ["pgd"],
        total_vm: "mm_struct" ["total_vm"],
        mm_mt: "mm_struct" ["mm_mt"],
        ma_root: "maple_tree" ["ma_root"],
        start_brk: "mm_struct" ["start_brk"],
        brk: "mm_struct" ["brk"],
        start_stack: "mm_struct" ["start_stack"],
        exe_file: "mm_struct" ["exe_file"],
    }
}

layout! {
    /// `vm_area_struct`: mappings.
    VmaLayout {
        vm_start: "vm_area_struct" ["vm_start"],
        vm_end: "vm_area_struct" ["vm_end"],
        vm_flags: "vm_area_struct" ["vm_flags", "__vm_flags"],
        vm_pgoff: "vm_area_struct" ["vm_pgoff"],
        vm_file: "vm_area_struct" ["vm_file"],
        vm_ops: "vm_area_struct" ["vm_ops"],
        vm_private_data: "vm_area_struct" ["vm_private_data"],
        ops_name: "vm_operations_struct" ["name"],
        special_name: "vm_special_mapping" ["name"],
    }
}

layout! {
    /// `file`, `dentry`, `mount`: paths.
    PathLayout {
        f_mnt: "file" ["f_path.mnt"],
        f_dentry: "file" ["f_path.dentry"],
        d_parent: "dentry" ["d_parent"],
        d_name: "dentry" ["d_name.name"],
        d_op: "dentry" ["d_op"],
        d_inode: "dentry" ["d_inode"],
        d_dname: "dentry_operations" ["d_dname"],
        i_ino: "inode" ["i_ino"],
        mnt: "mount" ["mnt"],
        mnt_parent: "mount" ["mnt_parent"],
        mnt_mountpoint: "mount" ["mnt_mountpoint"],
        mnt_root: "vfsmount" ["mnt_root"],
    }
}

layout! {
    /// `files_struct`, `fdtable`: file descriptors.
    FdLayout {
        files: "task_struct" ["files"],
        fdt: "files_struct" ["fdt"],
        max_fds: "fdtable" ["max_fds"],
        fd: "fdtable" ["fd"],
    }
}

layout! {
    /// `module` (6.4+: `mem[]` of `module_memory`).
    ModuleLayout {
        list: "module" ["list"],
        name: "module" ["name"],
        mem: "module" ["mem"],
        base: "module_memory" ["base"],
        size: "module_memory" ["size"],
    }
}

layout! {
    /// `module` before 6.4 (`core_layout` of `module_layout`).
    OldModuleLayout {
        list: "module" ["list"],
        name: "module" ["name"],
        core_layout: "module" ["core_layout"],
        base: "module_layout" ["base"],
        size: "module_layout" ["size"],
    }
}

/// A field the profile lacks (kept to report it when a walk needs it).
#[derive(Clone, Debug)]
pub(crate) struct Missing(String, String);

impl From<&ProfileError> for Missing {
    fn from(error: &ProfileError) -> Missing {
        match error {
            ProfileError::MissingField { structure, field } => {
                Missing(structure.clone(), field.clone())
            }
            other => Missing(String::new(), other.to_string()),
        }
    }
}

impl From<&Missing> for WalkError {
    fn from(missing: &Missing) -> WalkError {
        if missing.0.is_empty() {
            return WalkError::Inconsistent(missing.1.clone());
        }
        WalkError::Profile(ProfileError::MissingField {
            structure: missing.0.clone(),
            field: missing.1.clone(),
        })
    }
}

/// The layouts, each resolved or the first field it lacks.
#[derive(Clone, Debug)]
pub(crate) struct Layouts {
    pub(crate) task: Result<TaskLayout, Missing>,
    pub(crate) mm: Result<MmLayout, Missing>,
    /// Offset of the architecture's address-space context in `mm_struct`, if it has one.
    pub(crate) mm_context: Option<Result<u64, Missing>>,
    pub(crate) vma: Result<VmaLayout, Missing>,
    pub(crate) path: Result<PathLayout, Missing>,
    pub(crate) fd: Result<FdLayout, Missing>,
    pub(crate) module: Result<ModuleLayout, Missing>,
    pub(crate) old_module: Result<OldModuleLayout, Missing>,
}

/// Kernel symbols the walks use (kallsyms): the first two are required by the process
/// walk and the module walk; the others name special files and mappings.
pub const SYMBOLS: &[&str] = &[
    "init_task",
    "modules",
    "special_mapping_name",
    "pipefs_dname",
    "sockfs_dname",
    "anon_inodefs_dname",
    "simple_dname",
];

/// Symbols the walks resolved once.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Symbols {
    pub(crate) init_task: Option<u64>,
    pub(crate) modules: Option<u64>,
    pub(crate) special_mapping_name: Option<u64>,
    pub(crate) pipefs_dname: Option<u64>,
    pub(crate) sockfs_dname: Option<u64>,
    pub(crate) anon_inodefs_dname: Option<u64>,
    pub(crate) simple_dname: Option<u64>,
}

/// Bounds of the walks: far above what a real kernel holds, so hitting one means a cycle,
/// garbage, or a structure changed under the walk.
pub(crate) mod limits {
    /// Tasks in the process list, threads of a process.
    pub const TASKS: usize = 1 << 16;
    /// Maple tree nodes visited for one address space.
    pub const NODES: usize = 1 << 17;
    /// Depth of a maple tree (Linux's `MAPLE_HEIGHT_MAX` is 31).
    pub const DEPTH: usize = 31;
    /// Path components of one file name.
    pub const PATH_COMPONENTS: usize = 256;
    /// Bytes of one name read from the guest.
    pub const NAME: usize = 256;
    /// File descriptors of one table (Linux's default `fs.nr_open` is 2^20).
    pub const FDS: u64 = 1 << 20;
    /// Loaded kernel modules.
    pub const MODULES: usize = 1 << 14;
}

/// A Linux kernel: its profile and its architecture's facts.
#[derive(Clone, Debug)]
pub struct Kernel {
    profile: Arc<Profile>,
    linux: &'static dyn LinuxAbi,
    pub(crate) layouts: Layouts,
    pub(crate) symbols: Symbols,
    pub(crate) pointer_size: usize,
    pub(crate) little_endian: bool,
}

impl Kernel {
    /// The kernel described by `profile`, on the architecture `cpu` emulates. The offsets
    /// and symbols the walks use are looked up once, here; a walk whose part of the profile
    /// is missing fails with [`WalkError::Profile`] naming the field, the others work.
    pub fn new(profile: Arc<Profile>, cpu: &dyn GuestCpu) -> Result<Kernel, WalkError> {
        let linux = cpu
            .abi()
            .linux()
            .ok_or(WalkError::NoLinux(cpu.architecture()))?;
        let layouts = Layouts {
            task: TaskLayout::resolve(&profile),
            mm: MmLayout::resolve(&profile),
            mm_context: linux.mm_context_field().map(|field| {
                profile
                    .offset("mm_struct", field)
                    .map_err(|error| Missing::from(&error))
            }),
            vma: VmaLayout::resolve(&profile),
            path: PathLayout::resolve(&profile),
            fd: FdLayout::resolve(&profile),
            module: ModuleLayout::resolve(&profile),
            old_module: OldModuleLayout::resolve(&profile),
        };
        let symbols = Symbols {
            init_task: profile.symbol("init_task"),
            modules: profile.symbol("modules"),
            special_mapping_name: profile.symbol("special_mapping_name"),
            pipefs_dname: profile.symbol("pipefs_dname"),
            sockfs_dname: profile.symbol("sockfs_dname"),
            anon_inodefs_dname: profile.symbol("anon_inodefs_dname"),
            simple_dname: profile.symbol("simple_dname"),
        };
        Ok(Kernel {
            profile,
            linux,
            layouts,
            symbols,
            pointer_size: (cpu.abi().pointer_bits() / 8) as usize,
            little_endian: cpu.abi().endianness() == pandare_core::Endianness::Little,
        })
    }

    /// Every `(struct, field names)` offset the walks use (a field may have had several
    /// names across kernel versions; one suffices), for a profile to provide.
    pub fn needed_fields() -> Vec<(&'static str, &'static [&'static str])> {
        [
            TaskLayout::FIELDS,
            MmLayout::FIELDS,
            VmaLayout::FIELDS,
            PathLayout::FIELDS,
            FdLayout::FIELDS,
            ModuleLayout::FIELDS,
            OldModuleLayout::FIELDS,
        ]
        .concat()
    }

    /// Checks that the profile has everything the process, mapping, file and fd walks
    /// need (modules are optional: their layout changed in 6.4): the first thing missing.
    pub fn check(&self) -> Result<(), WalkError> {
        self.task_layout()?;
        self.mm_layout()?;
        self.vma_layout()?;
        self.path_layout()?;
        self.fd_layout()?;
        self.init_task()?;
        Ok(())
    }

    /// The profile.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.profile
    }

    /// The architecture's Linux facts.
    pub fn linux(&self) -> &'static dyn LinuxAbi {
        self.linux
    }

    pub(crate) fn task_layout(&self) -> Result<&TaskLayout, WalkError> {
        self.layouts.task.as_ref().map_err(WalkError::from)
    }

    pub(crate) fn mm_layout(&self) -> Result<&MmLayout, WalkError> {
        self.layouts.mm.as_ref().map_err(WalkError::from)
    }

    pub(crate) fn vma_layout(&self) -> Result<&VmaLayout, WalkError> {
        self.layouts.vma.as_ref().map_err(WalkError::from)
    }

    pub(crate) fn path_layout(&self) -> Result<&PathLayout, WalkError> {
        self.layouts.path.as_ref().map_err(WalkError::from)
    }

    pub(crate) fn fd_layout(&self) -> Result<&FdLayout, WalkError> {
        self.layouts.fd.as_ref().map_err(WalkError::from)
    }

    pub(crate) fn init_task(&self) -> Result<u64, WalkError> {
        self.symbols.init_task.ok_or_else(|| {
            WalkError::Profile(ProfileError::MissingType(
                "kernel symbol init_task (kallsyms)".to_string(),
            ))
        })
    }

    /// The address of the running `task_struct` (Linux's `current`): a few register reads
    /// (riscv64: `sscratch`, `tp`), no memory read.
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

    /// Decodes an unsigned integer of `bytes.len()` (at most 8) bytes in the guest's order.
    pub(crate) fn decode(&self, bytes: &[u8]) -> u64 {
        if self.little_endian {
            bytes
                .iter()
                .rev()
                .fold(0u64, |value, &byte| value << 8 | u64::from(byte))
        } else {
            bytes
                .iter()
                .fold(0u64, |value, &byte| value << 8 | u64::from(byte))
        }
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
        let size = size.min(8);
        self.read(cpu, address, &mut bytes[..size], what)?;
        Ok(self.decode(&bytes[..size]))
    }

    /// Reads a guest pointer.
    pub fn read_pointer(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        what: &'static str,
    ) -> Result<u64, WalkError> {
        self.read_uint(cpu, address, self.pointer_size, what)
    }

    /// Reads a pointer that must be a kernel address (or null when `nullable`): anything
    /// else is garbage.
    pub(crate) fn read_kernel_pointer(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        what: &'static str,
    ) -> Result<u64, WalkError> {
        let value = self.read_pointer(cpu, address, what)?;
        if value != 0 && !cpu.abi().is_kernel_address(value) {
            return Err(WalkError::Inconsistent(format!(
                "{what} at {address:#x} is {value:#x}, not a kernel address"
            )));
        }
        Ok(value)
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

    /// Reads a NUL-terminated string of at most `limit` bytes (without the NUL); a string
    /// without NUL within the limit is cut there. Reads stop at page boundaries so that a
    /// short string at the end of a page needs only that page.
    pub(crate) fn read_c_string(
        &self,
        cpu: &mut dyn GuestCpu,
        address: u64,
        limit: usize,
        what: &'static str,
    ) -> Result<Vec<u8>, WalkError> {
        let mut text = Vec::new();
        let mut at = address;
        while text.len() < limit {
            let to_page_end = (0x1000 - (at & 0xfff)) as usize;
            let chunk = to_page_end.min(64).min(limit - text.len());
            let mut buffer = [0u8; 64];
            self.read(cpu, at, &mut buffer[..chunk], what)?;
            if let Some(end) = buffer[..chunk].iter().position(|&byte| byte == 0) {
                text.extend_from_slice(&buffer[..end]);
                return Ok(text);
            }
            text.extend_from_slice(&buffer[..chunk]);
            at = at.wrapping_add(chunk as u64);
        }
        Ok(text)
    }

    /// A task's thread id (`task_struct.pid`) and process id (`task_struct.tgid`).
    pub fn task_ids(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<(u32, u32), WalkError> {
        let layout = self.task_layout()?;
        let tid = self.read_uint(cpu, task.wrapping_add(layout.pid), 4, "task_struct.pid")?;
        let pid = self.read_uint(cpu, task.wrapping_add(layout.tgid), 4, "task_struct.tgid")?;
        Ok((tid as u32, pid as u32))
    }

    /// A task's name (`task_struct.comm`, at most 16 bytes, up to its NUL).
    pub fn task_name(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<u8>, WalkError> {
        let offset = self.task_layout()?.comm;
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
    /// Offset in the file, in bytes (`vm_pgoff` × page size); 0 for anonymous memory, as
    /// `/proc/PID/maps` shows it.
    pub offset: u64,
    /// `vm_flags`.
    pub flags: u64,
}
