//! What an architecture supplies to run a Linux program in user mode: its facts
//! ([`UserArch`]: ELF machine, syscall numbers, auxiliary vector values, structure layouts)
//! and its CPU ([`UserCpu`]: page mappings, entering user mode, running until a system call
//! or a fault, the system call's registers).

use pandare_core::execution::CpuView;
use pandare_core::instrument::Instrumentation;
use pandare_core::RamImage;

use crate::syscall::Syscall;

/// Page size of every supported architecture's user space.
pub const PAGE_SIZE: u64 = 4096;

/// Page permissions (Linux's `PROT_*` bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Prot(pub u32);

impl Prot {
    /// Readable.
    pub const READ: u32 = 1;
    /// Writable.
    pub const WRITE: u32 = 2;
    /// Executable.
    pub const EXEC: u32 = 4;
    /// No access.
    pub const NONE: Prot = Prot(0);
    /// Readable and writable.
    pub const RW: Prot = Prot(Prot::READ | Prot::WRITE);

    /// Whether reads are allowed.
    pub fn read(self) -> bool {
        self.0 & Prot::READ != 0
    }
    /// Whether writes are allowed.
    pub fn write(self) -> bool {
        self.0 & Prot::WRITE != 0
    }
    /// Whether instruction fetches are allowed.
    pub fn exec(self) -> bool {
        self.0 & Prot::EXEC != 0
    }
}

/// The CPU ran out of frames for a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfMemory;

/// Signals a fault ends the program with (exit status 128 + N, as a shell reports it).
pub mod signal {
    /// Illegal instruction.
    pub const SIGILL: u32 = 4;
    /// Breakpoint.
    pub const SIGTRAP: u32 = 5;
    /// Misaligned access or access to no memory.
    pub const SIGBUS: u32 = 7;
    /// Floating-point or division error.
    pub const SIGFPE: u32 = 8;
    /// Access to an unmapped page or against its permissions.
    pub const SIGSEGV: u32 = 11;
}

/// A fault the program took: Linux would kill it with `signal`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The signal Linux would send.
    pub signal: u32,
    /// The architecture's cause code.
    pub cause: u64,
    /// The faulting instruction.
    pub pc: u64,
    /// The faulting address (for memory faults) or instruction bits.
    pub address: u64,
    /// What happened, in words (`load page fault`).
    pub description: String,
}

/// Why [`UserCpu::run`] returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuExit {
    /// The budget ran out.
    Budget,
    /// A callback asked to stop (PANDA's `end_analysis`).
    Stopped,
    /// The program made a system call: the CPU stopped on it with its registers as the
    /// program set them; [`UserCpu::syscall_arguments`] reads them and
    /// [`UserCpu::finish_syscall`] resumes after the instruction.
    Syscall,
    /// The program faulted.
    Fault(Fault),
}

/// An architecture's CPU running one user-mode program. The arch-neutral process
/// ([`crate::Process`]) decides what is mapped where; the CPU keeps its page tables in
/// step and allocates the frames.
pub trait UserCpu: Send {
    /// The architecture's facts.
    fn arch(&self) -> &'static dyn UserArch;
    /// Maps the page at `vaddr` to a fresh zeroed frame with `prot`.
    fn map_page(&mut self, vaddr: u64, prot: Prot) -> Result<(), OutOfMemory>;
    /// Unmaps the page at `vaddr` and frees its frame.
    fn unmap_page(&mut self, vaddr: u64);
    /// Changes a mapped page's permissions.
    fn protect_page(&mut self, vaddr: u64, prot: Prot);
    /// Makes mapping changes visible to the next instruction (TLB flush).
    fn flush_mappings(&mut self);
    /// Puts the CPU in user mode at `pc` with stack pointer `sp`.
    fn enter_user(&mut self, pc: u64, sp: u64);
    /// Runs at most `budget` instructions, firing the callbacks `instr` enables.
    fn run(&mut self, instr: &mut Instrumentation, budget: u64) -> CpuExit;
    /// The pending system call's number and six arguments.
    fn syscall_arguments(&self) -> (u64, [u64; 6]);
    /// Returns `result` from the pending system call and resumes after it.
    fn finish_syscall(&mut self, result: u64);
    /// Calls `f` with the view of the CPU callbacks get (registers, memory by virtual
    /// address without permission checks).
    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R;
    /// Virtual time.
    fn now(&self) -> u64;
    /// Lets virtual time pass without instructions.
    fn idle_to(&mut self, time: u64);
    /// Instructions retired.
    fn instruction_count(&self) -> u64;
    /// Program counter.
    fn pc(&self) -> u64;
    /// A cheap hash of the registers.
    fn state_hash(&self) -> u64;
    /// Guest memory size in bytes (frames for pages and page tables).
    fn memory_bytes(&self) -> u64;
    /// Captures RAM as a snapshot image.
    fn capture_ram(&mut self) -> RamImage;
    /// x86_64's `arch_prctl(ARCH_SET_FS / ARCH_SET_GS)`: sets the FS (`gs` false) or GS
    /// base. `Err` is the errno (architectures without segment bases: ENOSYS).
    fn set_segment_base(&mut self, gs: bool, base: u64) -> Result<(), u64> {
        let _ = (gs, base);
        Err(crate::syscall::errno::ENOSYS)
    }
    /// x86_64's `arch_prctl(ARCH_GET_FS / ARCH_GET_GS)`.
    fn segment_base(&self, gs: bool) -> Result<u64, u64> {
        let _ = gs;
        Err(crate::syscall::errno::ENOSYS)
    }
    /// x86's `set_thread_area`: installs the TLS descriptor `desc` (a `struct user_desc`)
    /// and returns its entry number (the slot chosen for `entry_number` -1). `Err` is the
    /// errno.
    fn set_thread_area(&mut self, desc: [u8; 16]) -> Result<u32, u64> {
        let _ = desc;
        Err(crate::syscall::errno::ENOSYS)
    }
    /// x86's `get_thread_area`: the `struct user_desc` of TLS entry `entry`.
    fn get_thread_area(&mut self, entry: u32) -> Result<[u8; 16], u64> {
        let _ = entry;
        Err(crate::syscall::errno::ENOSYS)
    }
}

/// An architecture's facts for user-mode Linux programs.
pub trait UserArch: Sync + std::fmt::Debug {
    /// pandare's architecture name (`riscv64`).
    fn name(&self) -> &'static str;
    /// `uname -m`.
    fn uname_machine(&self) -> &'static str;
    /// The ELF `e_machine` the architecture runs.
    fn elf_machine(&self) -> u16;
    /// Whether its programs are ELF64.
    fn elf_64(&self) -> bool;
    /// Pointer size in bytes.
    fn pointer_bytes(&self) -> u64 {
        if self.elf_64() {
            8
        } else {
            4
        }
    }
    /// The system call `number` is, if the layer knows it.
    fn syscall(&self, number: u64) -> Option<Syscall>;
    /// Linux's name for system call `number`, for messages (also for calls the layer does
    /// not implement).
    fn syscall_name(&self, number: u64) -> Option<&'static str>;
    /// `AT_HWCAP`.
    fn hwcap(&self) -> u64;
    /// `AT_PLATFORM`'s string, if the architecture passes one.
    fn platform(&self) -> Option<&'static str>;
    /// One past the highest user address: the stack's top is just below.
    fn stack_top(&self) -> u64;
    /// Where a position-independent program is loaded.
    fn pie_base(&self) -> u64;
    /// Encodes a `struct stat` in the architecture's layout.
    fn encode_stat(&self, stat: &Stat) -> Vec<u8>;
    /// Size of the kernel's `struct sigaction` (what `rt_sigaction` copies).
    fn sigaction_bytes(&self) -> usize;
}

/// The fields of a `struct stat` the layer reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Type and permissions.
    pub mode: u32,
    /// Links.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number of a device file.
    pub rdev: u64,
    /// Size.
    pub size: i64,
    /// Preferred I/O size.
    pub blksize: i64,
    /// 512-byte blocks.
    pub blocks: i64,
    /// Access, modification and change time, seconds.
    pub time: i64,
}

/// `struct stat` in the layout of Linux's asm-generic headers (riscv64, aarch64,
/// loongarch64): 128 bytes.
pub fn encode_generic_stat64(stat: &Stat) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(&stat.dev.to_le_bytes());
    out.extend_from_slice(&stat.ino.to_le_bytes());
    out.extend_from_slice(&stat.mode.to_le_bytes());
    out.extend_from_slice(&stat.nlink.to_le_bytes());
    out.extend_from_slice(&stat.uid.to_le_bytes());
    out.extend_from_slice(&stat.gid.to_le_bytes());
    out.extend_from_slice(&stat.rdev.to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&stat.size.to_le_bytes());
    out.extend_from_slice(&(stat.blksize as i32).to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes());
    out.extend_from_slice(&stat.blocks.to_le_bytes());
    for _ in 0..3 {
        out.extend_from_slice(&stat.time.to_le_bytes());
        out.extend_from_slice(&0u64.to_le_bytes());
    }
    out.extend_from_slice(&[0u8; 8]);
    debug_assert_eq!(out.len(), 128);
    out
}
