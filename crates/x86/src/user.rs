//! The x86 side of `panda exec`: a CPU running one Linux program at CPL 3 ([`X86User`],
//! which implements [`UserCpu`]) and the Linux facts of x86_64 and i386 programs
//! ([`X86_64`], [`I386`]).
//!
//! The CPU runs with [`X86Cpu::user_mode`] set: there is no kernel and no IDT, so it stops
//! at a system call instruction (SYSCALL on x86_64, `int $0x80` on i386) and returns
//! faults instead of delivering them. The layer reads the call's registers (x86_64: RAX;
//! RDI RSI RDX R10 R8 R9 — i386: EAX; EBX ECX EDX ESI EDI EBP), writes the result to
//! RAX/EAX and resumes after the instruction (SYSCALL also loads RCX with the return
//! address and R11 with RFLAGS, as the instruction does). A fault ends the program with
//! Linux's signal for its vector.
//!
//! Memory is real: the program's pages are frames of guest RAM mapped by page tables in
//! RAM that the CPU walks — 4-level paging for x86_64, PAE paging in 32-bit protected mode
//! for i386 (so that non-executable pages are NX) — so the MMU, the TLB, permission faults
//! and memory callbacks are the CPU's own. A GDT, mapped supervisor-only at the top of the
//! address space, holds Linux's flat user segments (x86_64's layout: `__USER32_CS` 0x23,
//! `__USER_DS` 0x2b, `__USER_CS` 0x33) and the three TLS entries 12–14 `set_thread_area`
//! fills; x86_64's TLS is the FS base `arch_prctl` sets.

use iced_x86::Mnemonic;
use pandare_core::execution::CpuView;
use pandare_core::instrument::{GuestCpu, InstrumentError, Instrumentation};
use pandare_core::memory::Ram;
use pandare_core::{Fnv64, RamImage};
use pandare_user::arch::signal;
use pandare_user::syscall::errno;
use pandare_user::x86::{encode_i386_stat64, encode_x86_64_stat, I386_TABLE, X86_64_TABLE};
use pandare_user::{CpuExit, Fault, OutOfMemory, Prot, Stat, Syscall, UserArch, UserCpu};

use crate::abi::Architecture;
use crate::cpu::{Exit, X86Cpu};
use crate::state::{cr, flags, msr, seg, Segment, State};

const PAGE_SIZE: u64 = 4096;

/// Linux's facts for x86_64 or i386 user programs.
#[derive(Debug)]
pub struct X86Linux {
    bits64: bool,
}

/// x86_64 programs.
pub static X86_64: X86Linux = X86Linux { bits64: true };
/// i386 programs.
pub static I386: X86Linux = X86Linux { bits64: false };

/// One past the highest x86_64 user address (Linux's `TASK_SIZE` with 4-level paging: the
/// top page of the lower half stays unmapped).
const TASK_SIZE_64: u64 = 0x7fff_ffff_f000;
/// One past the highest user address of a 32-bit program (Linux's `IA32_PAGE_OFFSET`,
/// what a 32-bit program gets under a 64-bit kernel): the top 8 KiB hold the GDT.
const TASK_SIZE_32: u64 = 0xffff_e000;
/// Where the GDT is mapped (supervisor-only): x86_64 in the kernel half, i386 in the last
/// page.
const GDT_64: u64 = 0xffff_ffff_ffff_f000;
const GDT_32: u64 = 0xffff_f000;
/// GDT slots (Linux x86_64's): user code 32-bit, user data, user code 64-bit; TLS 12–14.
const USER32_CS: u16 = 4 << 3 | 3;
const USER_DS: u16 = 5 << 3 | 3;
const USER_CS: u16 = 6 << 3 | 3;
const TLS_FIRST: u32 = 12;
const TLS_LAST: u32 = 14;
const GDT_ENTRIES: u64 = 16;

impl X86Linux {
    fn table(&self) -> &'static [(u64, &'static str, Option<Syscall>)] {
        if self.bits64 {
            X86_64_TABLE
        } else {
            I386_TABLE
        }
    }
}

impl UserArch for X86Linux {
    fn name(&self) -> &'static str {
        if self.bits64 {
            "x86_64"
        } else {
            "i386"
        }
    }

    fn uname_machine(&self) -> &'static str {
        if self.bits64 {
            "x86_64"
        } else {
            "i686"
        }
    }

    fn elf_machine(&self) -> u16 {
        if self.bits64 {
            62 // EM_X86_64
        } else {
            3 // EM_386
        }
    }

    fn elf_64(&self) -> bool {
        self.bits64
    }

    fn syscall(&self, number: u64) -> Option<Syscall> {
        pandare_user::table_lookup(self.table(), number).and_then(|entry| entry.2)
    }

    fn syscall_name(&self, number: u64) -> Option<&'static str> {
        pandare_user::table_lookup(self.table(), number).map(|entry| entry.1)
    }

    /// CPUID.1:EDX, as Linux passes it.
    fn hwcap(&self) -> u64 {
        u64::from(crate::cpuid::cpuid(1, 0)[3])
    }

    fn platform(&self) -> Option<&'static str> {
        Some(if self.bits64 { "x86_64" } else { "i686" })
    }

    fn stack_top(&self) -> u64 {
        if self.bits64 {
            TASK_SIZE_64
        } else {
            TASK_SIZE_32
        }
    }

    /// Linux's `ELF_ET_DYN_BASE`: two thirds of the address space for x86_64, 4 MiB for
    /// 32-bit programs.
    fn pie_base(&self) -> u64 {
        if self.bits64 {
            (TASK_SIZE_64 / 3 * 2) & !(PAGE_SIZE - 1)
        } else {
            0x40_0000
        }
    }

    fn encode_stat(&self, stat: &Stat) -> Vec<u8> {
        if self.bits64 {
            encode_x86_64_stat(stat)
        } else {
            encode_i386_stat64(stat)
        }
    }

    /// handler, flags, restorer, mask.
    fn sigaction_bytes(&self) -> usize {
        if self.bits64 {
            32
        } else {
            20
        }
    }
}

/// Page-table entry bits (the same in 4-level and PAE tables).
mod pte {
    pub const P: u64 = 1;
    pub const RW: u64 = 1 << 1;
    pub const US: u64 = 1 << 2;
    pub const A: u64 = 1 << 5;
    pub const D: u64 = 1 << 6;
    pub const NX: u64 = 1 << 63;
    pub const FRAME: u64 = 0x000f_ffff_ffff_f000;
}

/// Default guest memory for a process: 1 GiB (host memory is only used as pages are).
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// Why a user-mode CPU could not be made.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserCpuError {
    /// The memory size is not usable.
    #[error("guest memory of {bytes} bytes: give a whole number of MiB from 16 MiB to 64 GiB")]
    BadMemorySize {
        /// The size asked for.
        bytes: u64,
    },
    /// The host refused the memory.
    #[error("the host cannot provide {mib} MiB of guest memory; give less with --mem")]
    HostMemory {
        /// The size asked for.
        mib: u64,
    },
}

/// Which system call instruction the CPU stopped on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Syscall,
    Int80,
}

/// An x86 CPU running one user-mode program over page tables in its RAM.
#[derive(Debug)]
pub struct X86User {
    /// The CPU (RAM at physical 0).
    pub cpu: X86Cpu,
    arch: &'static X86Linux,
    /// Physical address of the root table (PML4, or the PAE PDPT).
    root: u64,
    /// Physical address of the GDT's frame.
    gdt: u64,
    next_frame: u64,
    free_frames: Vec<u64>,
    ram_bytes: u64,
    /// The system call instruction the CPU stopped on, and its length.
    pending: Option<(Gate, u64)>,
    /// Virtual time that passed without instructions (sleeps).
    idle: u64,
}

// SAFETY: `X86Cpu` is not `Send` only because its decoded-block cache uses `Rc`/`Weak`
// (the executor's choice: no atomic reference counts on the hot path). Every `Rc` and
// `Weak` it holds points at allocations referenced from inside that same `X86Cpu` and
// nowhere else: blocks and their metadata are crate-private, no public function returns
// one, and the run loops drop the clones they take before returning. Moving an `X86User`
// (and with it the whole `X86Cpu`) to another thread therefore moves every reference to
// those allocations together, and no two threads can ever touch the counts at once.
unsafe impl Send for X86User {}

/// A flat descriptor: base 0, limit 4 GiB, with the access byte and the flags nibble.
const fn flat_descriptor(access: u64, flags: u64) -> u64 {
    0xffff | (access << 40) | (0xf << 48) | (flags << 52)
}

impl X86User {
    /// A CPU for `arch`'s programs ([`X86_64`] or [`I386`]) with `ram_bytes` of RAM (a
    /// whole number of MiB, at least 16 MiB) for the program's pages and the page tables.
    pub fn new(arch: &'static X86Linux, ram_bytes: u64) -> Result<X86User, UserCpuError> {
        if !(16 << 20..=64 << 30).contains(&ram_bytes) || !ram_bytes.is_multiple_of(1 << 20) {
            return Err(UserCpuError::BadMemorySize { bytes: ram_bytes });
        }
        let size = usize::try_from(ram_bytes).map_err(|_| UserCpuError::HostMemory {
            mib: ram_bytes >> 20,
        })?;
        let mut probe: Vec<u8> = Vec::new();
        if probe.try_reserve_exact(size).is_err() {
            return Err(UserCpuError::HostMemory {
                mib: ram_bytes >> 20,
            });
        }
        drop(probe);
        // Frame 0 stays unused (a null physical address is never a table).
        let root = PAGE_SIZE;
        let gdt = 2 * PAGE_SIZE;
        let state = if arch.bits64 {
            State::long_mode(root, 3)
        } else {
            // 32-bit protected mode with PAE paging and NX, as Linux's 686-pae kernels run
            // their programs.
            let mut state = State::reset();
            state.cr0 = cr::CR0_PE | cr::CR0_MP | cr::CR0_ET | cr::CR0_NE | cr::CR0_WP | cr::CR0_PG;
            state.cr3 = root;
            state.cr4 = cr::CR4_PAE | cr::CR4_PGE | cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
            state.efer = msr::EFER_NXE;
            let attributes = |kind: u16| {
                Segment::PRESENT | Segment::S | Segment::DB | Segment::G | 3 << 5 | kind
            };
            let data = Segment::flat(USER_DS, attributes(0x3));
            state.segments = [data; 6];
            state.segments[seg::CS] = Segment::flat(USER32_CS, attributes(0xb));
            state.segments[seg::FS] = Segment::default();
            state.segments[seg::GS] = Segment::default();
            state.cpl = 3;
            // The FPU as Linux hands it to a new process (FNINIT, MXCSR 0x1F80).
            state.x87 = crate::state::X87State::default();
            state.sse = crate::state::SseState::default();
            state
        };
        let mut state = state;
        // Linux starts a program with interrupts enabled and nothing else in RFLAGS.
        state.rflags = flags::FIXED | flags::IF;
        state.gdtr.base = if arch.bits64 { GDT_64 } else { GDT_32 };
        state.gdtr.limit = (GDT_ENTRIES * 8 - 1) as u16;
        state.idtr.limit = 0;
        let ram = Ram::new(0, size);
        let mut cpu = X86Cpu::new(state, ram).expect("the user-mode state is valid");
        cpu.user_mode = true;
        cpu.architecture = if arch.bits64 {
            Architecture::X86_64
        } else {
            Architecture::I386
        };
        let mut user = X86User {
            cpu,
            arch,
            root,
            gdt,
            next_frame: 3 * PAGE_SIZE,
            free_frames: Vec::new(),
            ram_bytes,
            pending: None,
            idle: 0,
        };
        let descriptors = [
            (2, flat_descriptor(0x9b, 0xa)), // kernel code, 64-bit
            (3, flat_descriptor(0x93, 0xc)), // kernel data
            (4, flat_descriptor(0xfb, 0xc)), // user code, 32-bit
            (5, flat_descriptor(0xf3, 0xc)), // user data
            (6, flat_descriptor(0xfb, 0xa)), // user code, 64-bit
        ];
        for (index, descriptor) in descriptors {
            user.write_phys_u64(gdt + index * 8, descriptor);
        }
        if !arch.bits64 {
            // PAE: the four PDPT entries hold only P (their other low bits are reserved).
            for index in 0..4 {
                let table = user.alloc_frame().expect("RAM holds the page directories");
                user.write_phys_u64(root + index * 8, table | pte::P);
            }
        }
        let gdt_linear = user.cpu.state.gdtr.base;
        let slot = user
            .leaf(gdt_linear, true)
            .expect("RAM holds the GDT's tables")
            .expect("tables were created");
        let nx = if arch.bits64 { pte::NX } else { 0 };
        user.write_phys_u64(slot, gdt | pte::P | pte::RW | pte::A | pte::D | nx);
        Ok(user)
    }

    fn write_phys_u64(&mut self, address: u64, value: u64) {
        GuestCpu::write_physical(&mut self.cpu, address, &value.to_le_bytes())
            .expect("page tables lie in RAM");
    }

    fn read_phys_u64(&mut self, address: u64) -> u64 {
        let mut bytes = [0u8; 8];
        GuestCpu::read_physical(&mut self.cpu, address, &mut bytes)
            .expect("page tables lie in RAM");
        u64::from_le_bytes(bytes)
    }

    fn alloc_frame(&mut self) -> Result<u64, OutOfMemory> {
        if let Some(frame) = self.free_frames.pop() {
            // Zeroing through the CPU also drops the code it decoded from the frame.
            GuestCpu::write_physical(&mut self.cpu, frame, &[0u8; PAGE_SIZE as usize])
                .expect("frames lie in RAM");
            return Ok(frame);
        }
        if self.next_frame + PAGE_SIZE > self.ram_bytes {
            return Err(OutOfMemory);
        }
        let frame = self.next_frame;
        self.next_frame += PAGE_SIZE;
        Ok(frame)
    }

    /// Physical address of the leaf entry for `vaddr`, creating tables when `create`.
    fn leaf(&mut self, vaddr: u64, create: bool) -> Result<Option<u64>, OutOfMemory> {
        let mut table = self.root;
        let shifts: &[u64] = if self.arch.bits64 {
            &[39, 30, 21]
        } else {
            // The PDPT's entries always exist (made with the CPU).
            let entry = self.read_phys_u64(self.root + ((vaddr >> 30) & 3) * 8);
            table = entry & pte::FRAME;
            &[21]
        };
        for &shift in shifts {
            let slot = table + ((vaddr >> shift) & 0x1ff) * 8;
            let entry = self.read_phys_u64(slot);
            if entry & pte::P != 0 {
                table = entry & pte::FRAME;
                continue;
            }
            if !create {
                return Ok(None);
            }
            let next = self.alloc_frame()?;
            // User and writable at every upper level: the leaf decides.
            self.write_phys_u64(slot, next | pte::P | pte::RW | pte::US);
            table = next;
        }
        Ok(Some(table + ((vaddr >> 12) & 0x1ff) * 8))
    }

    /// A leaf entry's permission bits for `prot` (no access: not present; the frame stays
    /// in the entry).
    fn bits(prot: Prot) -> u64 {
        if !prot.read() && !prot.write() && !prot.exec() {
            return 0;
        }
        let mut bits = pte::P | pte::US | pte::A | pte::D;
        if prot.write() {
            bits |= pte::RW;
        }
        if !prot.exec() {
            bits |= pte::NX;
        }
        bits
    }

    /// The GDT descriptor of TLS entry `entry` (12–14).
    fn tls_descriptor(&mut self, entry: u32) -> u64 {
        self.read_phys_u64(self.gdt + u64::from(entry) * 8)
    }

    /// Reloads the segment registers holding `selector`'s entry (Linux does so for the
    /// current task after `set_thread_area`).
    fn reload_segments(&mut self, entry: u32) {
        let raw = self.tls_descriptor(entry);
        for index in [seg::ES, seg::DS, seg::FS, seg::GS] {
            let selector = self.cpu.state.segments[index].selector;
            if u32::from(selector >> 3) == entry && selector & 4 == 0 {
                let fresh = Segment::from_descriptor(selector, raw as u32, (raw >> 32) as u32);
                self.cpu.state.segments[index] = if fresh.present() {
                    fresh
                } else {
                    Segment {
                        selector,
                        ..Segment::default()
                    }
                };
            }
        }
    }

    fn view(&mut self) -> UserView<'_> {
        UserView { cpu: &mut self.cpu }
    }
}

/// Linux's signal and a description for a fault the program took.
fn fault_of(fault: &crate::Fault) -> (u32, String) {
    let (signal, what) = match fault.vector {
        0 => (signal::SIGFPE, "divide error (#DE)"),
        1 => (signal::SIGTRAP, "debug exception (#DB)"),
        3 => (signal::SIGTRAP, "breakpoint (int3)"),
        4 => (signal::SIGSEGV, "overflow (into)"),
        5 => (signal::SIGSEGV, "bound range exceeded (#BR)"),
        6 => (signal::SIGILL, "invalid opcode (#UD)"),
        7 => (signal::SIGILL, "device not available (#NM)"),
        11 => (signal::SIGBUS, "segment not present (#NP)"),
        12 => (signal::SIGBUS, "stack segment fault (#SS)"),
        13 => (signal::SIGSEGV, "general protection fault (#GP)"),
        14 => {
            let code = fault.error_code.unwrap_or(0);
            let access = if code & 0x10 != 0 {
                "instruction fetch from"
            } else if code & 2 != 0 {
                "write to"
            } else {
                "read of"
            };
            let page = if code & 1 == 0 {
                "an unmapped page"
            } else if code & 0x10 != 0 {
                "a non-executable page"
            } else if code & 2 != 0 {
                "a read-only page"
            } else {
                "a protected page"
            };
            return (signal::SIGSEGV, format!("page fault: {access} {page}"));
        }
        16 => (signal::SIGFPE, "x87 floating-point error (#MF)"),
        17 => (signal::SIGBUS, "alignment check (#AC)"),
        19 => (signal::SIGFPE, "SIMD floating-point exception (#XM)"),
        _ => (signal::SIGSEGV, "unexpected exception"),
    };
    (signal, what.to_string())
}

impl UserCpu for X86User {
    fn arch(&self) -> &'static dyn UserArch {
        self.arch
    }

    fn map_page(&mut self, vaddr: u64, prot: Prot) -> Result<(), OutOfMemory> {
        let slot = self.leaf(vaddr, true)?.expect("tables were created");
        let frame = self.alloc_frame()?;
        self.write_phys_u64(slot, frame | X86User::bits(prot));
        Ok(())
    }

    fn unmap_page(&mut self, vaddr: u64) {
        if let Ok(Some(slot)) = self.leaf(vaddr, false) {
            let frame = self.read_phys_u64(slot) & pte::FRAME;
            if frame != 0 {
                self.free_frames.push(frame);
            }
            self.write_phys_u64(slot, 0);
        }
    }

    fn protect_page(&mut self, vaddr: u64, prot: Prot) {
        if let Ok(Some(slot)) = self.leaf(vaddr, false) {
            let frame = self.read_phys_u64(slot) & pte::FRAME;
            self.write_phys_u64(slot, frame | X86User::bits(prot));
        }
    }

    fn flush_mappings(&mut self) {
        self.cpu.flush_tlb();
    }

    fn enter_user(&mut self, pc: u64, sp: u64) {
        let state = &mut self.cpu.state;
        state.gpr = [0; 16];
        state.gpr[4] = sp;
        state.rip = pc;
        if self.arch.bits64 {
            state.segments[seg::CS].selector = USER_CS;
        }
        self.cpu.flush_tlb();
    }

    fn run(&mut self, instr: &mut Instrumentation, budget: u64) -> CpuExit {
        self.pending = None;
        let exit = self.cpu.run_with(instr, budget);
        let pc = self.cpu.state.rip;
        match exit {
            Exit::Budget => CpuExit::Budget,
            Exit::Stopped => CpuExit::Stopped,
            Exit::Syscall => {
                let gate = self.cpu.decode_current().ok().and_then(|i| {
                    let length = i.len() as u64;
                    match i.mnemonic() {
                        Mnemonic::Syscall if self.arch.bits64 => Some((Gate::Syscall, length)),
                        Mnemonic::Int if !self.arch.bits64 => Some((Gate::Int80, length)),
                        _ => None,
                    }
                });
                match gate {
                    Some(gate) => {
                        self.pending = Some(gate);
                        CpuExit::Syscall
                    }
                    // SYSENTER (not offered: no AT_SYSINFO), `int $0x80` in a 64-bit
                    // program, SYSCALL in a 32-bit one: not this ABI's system call.
                    None => CpuExit::Fault(Fault {
                        signal: signal::SIGSEGV,
                        cause: 13,
                        pc,
                        address: 0,
                        description: format!(
                            "a system call instruction that is not the {} system call ABI",
                            self.arch.name()
                        ),
                    }),
                }
            }
            Exit::Fault(fault) => {
                let (signal, description) = fault_of(&fault);
                CpuExit::Fault(Fault {
                    signal,
                    cause: u64::from(fault.vector),
                    pc,
                    address: fault.address.unwrap_or(0),
                    description,
                })
            }
            // Neither is reachable at CPL 3 without a kernel (HLT raises #GP there).
            Exit::Halted | Exit::TripleFault => CpuExit::Fault(Fault {
                signal: signal::SIGSEGV,
                cause: 13,
                pc,
                address: 0,
                description: "the CPU halted".to_string(),
            }),
        }
    }

    fn syscall_arguments(&self) -> (u64, [u64; 6]) {
        let gpr = &self.cpu.state.gpr;
        if self.arch.bits64 {
            (gpr[0], [gpr[7], gpr[6], gpr[2], gpr[10], gpr[8], gpr[9]])
        } else {
            let low = |index: usize| gpr[index] & 0xffff_ffff;
            (low(0), [low(3), low(1), low(2), low(6), low(7), low(5)])
        }
    }

    fn finish_syscall(&mut self, result: u64) {
        let (gate, length) = self.pending.take().unwrap_or((
            if self.arch.bits64 {
                Gate::Syscall
            } else {
                Gate::Int80
            },
            2,
        ));
        let state = &mut self.cpu.state;
        state.rip = state.rip.wrapping_add(length);
        match gate {
            Gate::Syscall => {
                state.gpr[0] = result;
                // What SYSCALL leaves: the return address in RCX, RFLAGS in R11 (SYSRET
                // restores RFLAGS from R11).
                state.gpr[1] = state.rip;
                state.gpr[11] = state.rflags;
            }
            Gate::Int80 => {
                state.rip &= 0xffff_ffff;
                state.gpr[0] = result & 0xffff_ffff;
            }
        }
    }

    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R {
        f(&mut self.view())
    }

    fn now(&self) -> u64 {
        self.cpu.instruction_count() + self.idle
    }

    fn idle_to(&mut self, time: u64) {
        let now = self.now();
        if time > now {
            self.idle += time - now;
            // RDTSC counts virtual time.
            self.cpu.state.tsc_offset = self.cpu.state.tsc_offset.wrapping_add(time - now);
        }
    }

    fn instruction_count(&self) -> u64 {
        self.cpu.instruction_count()
    }

    fn pc(&self) -> u64 {
        self.cpu.state.rip
    }

    fn state_hash(&self) -> u64 {
        let state = &self.cpu.state;
        let mut hash = Fnv64::default();
        state.gpr.iter().for_each(|&value| hash.word(value));
        hash.word(state.rip);
        hash.word(state.rflags);
        state
            .segments
            .iter()
            .for_each(|segment| hash.word(segment.base));
        hash.word(self.cpu.instruction_count());
        hash.finish()
    }

    fn memory_bytes(&self) -> u64 {
        self.ram_bytes
    }

    fn capture_ram(&mut self) -> RamImage {
        let image = self.cpu.ram.capture();
        self.cpu.flush_tlb();
        image
    }

    fn set_segment_base(&mut self, gs: bool, base: u64) -> Result<(), u64> {
        if base >= TASK_SIZE_64 {
            return Err(errno::EPERM);
        }
        let index = if gs { seg::GS } else { seg::FS };
        self.cpu.state.segments[index].base = base;
        Ok(())
    }

    fn segment_base(&self, gs: bool) -> Result<u64, u64> {
        let index = if gs { seg::GS } else { seg::FS };
        Ok(self.cpu.state.segments[index].base)
    }

    /// Linux's `set_thread_area`: entry -1 takes the first free TLS slot (12–14); an
    /// "empty" descriptor (`read_exec_only` and `seg_not_present` set, or all zero) clears
    /// the entry.
    fn set_thread_area(&mut self, desc: [u8; 16]) -> Result<u32, u64> {
        let word = |at: usize| u32::from_le_bytes(desc[at..at + 4].try_into().expect("4 bytes"));
        let (mut entry, base, limit, bits) = (word(0), word(4), word(8), word(12));
        if entry == u32::MAX {
            entry = (TLS_FIRST..=TLS_LAST)
                .find(|&slot| self.tls_descriptor(slot) == 0)
                .ok_or(errno::ESRCH)?;
        }
        if !(TLS_FIRST..=TLS_LAST).contains(&entry) {
            return Err(errno::EINVAL);
        }
        let seg_32bit = bits & 1;
        let contents = (bits >> 1) & 3;
        let read_exec_only = (bits >> 3) & 1;
        let limit_in_pages = (bits >> 4) & 1;
        let seg_not_present = (bits >> 5) & 1;
        let useable = (bits >> 6) & 1;
        // 64-bit code segments (lm, bit 7) are refused for a 32-bit program's TLS.
        if contents == 3 && seg_not_present == 0 {
            return Err(errno::EINVAL);
        }
        let empty = (base == 0
            && limit == 0
            && contents == 0
            && read_exec_only == 1
            && seg_32bit == 0
            && limit_in_pages == 0
            && seg_not_present == 1
            && useable == 0)
            || desc[4..].iter().all(|&b| b == 0);
        let descriptor = if empty {
            0
        } else {
            let kind = u64::from((read_exec_only ^ 1) << 1 | contents << 2 | 1);
            let access = kind | 1 << 4 | 3 << 5 | u64::from(seg_not_present ^ 1) << 7;
            let flags = u64::from(useable | seg_32bit << 2 | limit_in_pages << 3);
            let (base, limit) = (u64::from(base), u64::from(limit));
            (limit & 0xffff)
                | (base & 0xff_ffff) << 16
                | access << 40
                | (limit >> 16 & 0xf) << 48
                | flags << 52
                | (base >> 24 & 0xff) << 56
        };
        let address = self.gdt + u64::from(entry) * 8;
        self.write_phys_u64(address, descriptor);
        self.reload_segments(entry);
        Ok(entry)
    }

    fn get_thread_area(&mut self, entry: u32) -> Result<[u8; 16], u64> {
        if !(TLS_FIRST..=TLS_LAST).contains(&entry) {
            return Err(errno::EINVAL);
        }
        let raw = self.tls_descriptor(entry);
        let base = (raw >> 16 & 0xff_ffff) | (raw >> 56 & 0xff) << 24;
        let limit = (raw & 0xffff) | (raw >> 48 & 0xf) << 16;
        let access = raw >> 40 & 0xff;
        let flags = raw >> 52 & 0xf;
        let bits = if raw == 0 {
            // An empty entry reads back as read_exec_only and seg_not_present.
            1 << 3 | 1 << 5
        } else {
            (flags >> 2 & 1)
                | (access >> 2 & 3) << 1
                | ((access >> 1 & 1) ^ 1) << 3
                | (flags >> 3 & 1) << 4
                | ((access >> 7) ^ 1) << 5
                | (flags & 1) << 6
        };
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&entry.to_le_bytes());
        out[4..8].copy_from_slice(&(base as u32).to_le_bytes());
        out[8..12].copy_from_slice(&(limit as u32).to_le_bytes());
        out[12..].copy_from_slice(&(bits as u32).to_le_bytes());
        Ok(out)
    }
}

/// The CPU as callbacks and the system call layer see it: registers by name, memory by
/// virtual address without permission checks (page by page, one walk per page).
#[derive(Debug)]
pub struct UserView<'a> {
    cpu: &'a mut X86Cpu,
}

impl UserView<'_> {
    /// Runs `f` on each piece of `[vaddr, vaddr + len)` within one page with its physical
    /// address, after translating every page (nothing happens unless all are mapped).
    fn pages(
        &mut self,
        vaddr: u64,
        len: usize,
        mut f: impl FnMut(&mut X86Cpu, u64, std::ops::Range<usize>),
    ) -> Result<(), InstrumentError> {
        let mut pieces = Vec::new();
        let mut done = 0usize;
        while done < len {
            let address = vaddr.wrapping_add(done as u64);
            let in_page = (PAGE_SIZE - (address & (PAGE_SIZE - 1))) as usize;
            let take = in_page.min(len - done);
            let physical = self
                .cpu
                .virt_to_phys(address)
                .filter(|&p| self.cpu.ram.contains(p, take as u64))
                .ok_or(InstrumentError::Unmapped { address })?;
            pieces.push((physical, done..done + take));
            done += take;
        }
        for (physical, range) in pieces {
            f(self.cpu, physical, range);
        }
        Ok(())
    }
}

impl GuestCpu for UserView<'_> {
    fn architecture(&self) -> &'static str {
        self.cpu.architecture()
    }
    fn abi(&self) -> &'static dyn pandare_core::abi::GuestAbi {
        GuestCpu::abi(self.cpu)
    }
    fn pc(&self) -> u64 {
        self.cpu.state.rip
    }
    fn set_pc(&mut self, pc: u64) {
        self.cpu.state.rip = pc;
    }
    fn register(&self, name: &str) -> Result<u64, InstrumentError> {
        self.cpu.register(name)
    }
    fn set_register(&mut self, name: &str, value: u64) -> Result<(), InstrumentError> {
        self.cpu.set_register(name, value)
    }
    fn read_memory(&mut self, vaddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        self.pages(vaddr, buffer.len(), |cpu, physical, range| {
            cpu.ram.read_bytes(physical, &mut buffer[range]);
        })
    }
    fn write_memory(&mut self, vaddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        self.pages(vaddr, data.len(), |cpu, physical, range| {
            // Through the CPU, so that code decoded from the page is dropped.
            let _ = cpu.write_physical(physical, &data[range]);
        })
    }
    fn read_physical(&mut self, paddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        self.cpu.read_physical(paddr, buffer)
    }
    fn write_physical(&mut self, paddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        self.cpu.write_physical(paddr, data)
    }
    fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64> {
        self.cpu.virt_to_phys(vaddr)
    }
    fn asid(&self) -> u64 {
        self.cpu.state.cr3
    }
    fn in_kernel_mode(&self) -> bool {
        false
    }
    fn instruction_count(&self) -> u64 {
        self.cpu.instruction_count()
    }
    fn request_stop(&mut self) {
        self.cpu.stop_requested = true;
    }
}

impl CpuView for UserView<'_> {
    fn take_stop(&mut self) -> bool {
        std::mem::take(&mut self.cpu.stop_requested)
    }
    /// Stores through this view drop the decoded code they overwrite at once; the flag
    /// says the block about to run may have been one of them.
    fn code_modified(&self) -> bool {
        self.cpu.code_written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts() {
        assert_eq!(X86_64.syscall(1), Some(Syscall::Write));
        assert_eq!(X86_64.syscall_name(56), Some("clone"));
        assert_eq!(I386.syscall(4), Some(Syscall::Write));
        assert_eq!(I386.syscall_name(2), Some("fork"));
        assert_eq!(X86_64.pie_base(), 0x5555_5555_4000);
        assert_eq!(X86_64.hwcap() & 1 << 26, 1 << 26); // sse2
    }

    #[test]
    fn thread_area_round_trips_and_takes_the_first_free_slot() {
        let mut user = X86User::new(&I386, 16 << 20).unwrap();
        // entry -1, base 0x1234_5678, limit 0xfffff, seg_32bit, limit_in_pages, useable.
        let mut desc = [0u8; 16];
        desc[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        desc[4..8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        desc[8..12].copy_from_slice(&0xf_ffffu32.to_le_bytes());
        desc[12..].copy_from_slice(&0x51u32.to_le_bytes());
        assert_eq!(user.set_thread_area(desc), Ok(12));
        assert_eq!(user.set_thread_area(desc), Ok(13));
        let back = user.get_thread_area(12).unwrap();
        assert_eq!(back[4..], desc[4..]);
        let segment = Segment::from_descriptor(
            12 << 3 | 3,
            user.tls_descriptor(12) as u32,
            (user.tls_descriptor(12) >> 32) as u32,
        );
        assert_eq!(segment.base, 0x1234_5678);
        assert_eq!(segment.limit, 0xffff_ffff);
        assert_eq!(segment.dpl(), 3);
        assert!(segment.present());
        assert_eq!(user.get_thread_area(3), Err(errno::EINVAL));
    }
}
