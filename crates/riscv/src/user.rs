//! The RISC-V side of `panda exec`: a hart running one Linux program in U-mode
//! ([`RiscvUser`], which implements [`UserCpu`]) and RV64's Linux facts ([`RISCV64`]).
//!
//! The hart runs with the emulator as firmware and nothing delegated, so every trap from
//! U-mode goes to M-mode, where no handler exists: the executor stops there (after
//! `before_handle_exception` fired, as in a whole system) and hands the trap to the
//! process. An `ecall` (cause 8) is a system call: the hart is put back in U-mode on the
//! `ecall`, the layer reads `a7` and `a0`–`a5` and writes `a0`, and the hart resumes after
//! it. Any other trap is a fault that ends the program with Linux's signal for it.
//!
//! Memory is real: the program's pages are frames of guest RAM mapped by Sv39 page tables
//! in RAM, so the MMU, the TLB and the memory callbacks work as they do under a kernel.

use pandare_core::execution::CpuView;
use pandare_core::instrument::Instrumentation;
use pandare_core::{Fnv64, RamImage};
use pandare_user::arch::{encode_generic_stat64, signal};
use pandare_user::syscall::GENERIC_TABLE;
use pandare_user::{CpuExit, Fault, OutOfMemory, Prot, Stat, Syscall, UserArch, UserCpu};

use crate::execute::{Cpu, HartExit};
use crate::hart::{mstatus, Hart, Trap};
use crate::hooks::RiscvCpu;
use crate::mmu::PAGE_SIZE;
use crate::virt::{Bus, DEFAULT_TIME_DIVISOR, RAM_BASE};

/// RV64 Linux's facts for user programs.
#[derive(Debug)]
pub struct Riscv64User;

/// The one instance.
pub static RISCV64: Riscv64User = Riscv64User;

/// One past the highest user address under Sv39 (Linux's `TASK_SIZE`).
const TASK_SIZE: u64 = 0x40_0000_0000;

/// The RISC-V-only calls of the generic table's architecture range.
const RISCV_TABLE: &[(u64, &str, Option<Syscall>)] = &[
    (258, "riscv_hwprobe", Some(Syscall::RiscvHwprobe)),
    (259, "riscv_flush_icache", Some(Syscall::RiscvFlushIcache)),
];

impl Riscv64User {
    fn entry(number: u64) -> Option<&'static (u64, &'static str, Option<Syscall>)> {
        pandare_user::table_lookup(RISCV_TABLE, number)
            .or_else(|| pandare_user::table_lookup(GENERIC_TABLE, number))
    }
}

impl UserArch for Riscv64User {
    fn name(&self) -> &'static str {
        crate::virt::ARCHITECTURE
    }

    fn uname_machine(&self) -> &'static str {
        "riscv64"
    }

    fn elf_machine(&self) -> u16 {
        243 // EM_RISCV
    }

    fn elf_64(&self) -> bool {
        true
    }

    fn syscall(&self, number: u64) -> Option<Syscall> {
        Riscv64User::entry(number).and_then(|entry| entry.2)
    }

    fn syscall_name(&self, number: u64) -> Option<&'static str> {
        Riscv64User::entry(number).map(|entry| entry.1)
    }

    /// The single-letter extensions of RV64GC: I, M, A, F, D, C (bit = letter - 'a').
    fn hwcap(&self) -> u64 {
        [b'i', b'm', b'a', b'f', b'd', b'c']
            .iter()
            .fold(0, |bits, letter| bits | 1 << (letter - b'a'))
    }

    /// Linux passes no `AT_PLATFORM` on RISC-V.
    fn platform(&self) -> Option<&'static str> {
        None
    }

    fn stack_top(&self) -> u64 {
        TASK_SIZE
    }

    /// Linux's `ELF_ET_DYN_BASE`: two thirds of the user address space.
    fn pie_base(&self) -> u64 {
        (TASK_SIZE / 3 * 2) & !(PAGE_SIZE - 1)
    }

    fn encode_stat(&self, stat: &Stat) -> Vec<u8> {
        encode_generic_stat64(stat)
    }

    /// handler, flags, mask: RISC-V has no `sa_restorer`.
    fn sigaction_bytes(&self) -> usize {
        24
    }
}

/// Page-table entry bits.
mod pte {
    pub const V: u64 = 1;
    pub const R: u64 = 1 << 1;
    pub const W: u64 = 1 << 2;
    pub const X: u64 = 1 << 3;
    pub const U: u64 = 1 << 4;
    pub const A: u64 = 1 << 6;
    pub const D: u64 = 1 << 7;
    pub const PPN_SHIFT: u64 = 10;
}

/// Default guest memory for a process: 1 GiB (host memory is only used as pages are).
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// A hart running one user-mode program over Sv39 page tables in its RAM.
#[derive(Debug)]
pub struct RiscvUser {
    /// The CPU.
    pub cpu: Cpu,
    /// RAM (no devices are mapped for the program).
    pub bus: Bus,
    /// Physical address of the root page table.
    root: u64,
    /// Next never-used frame.
    next_frame: u64,
    /// Frames given back by unmapped pages.
    free_frames: Vec<u64>,
    ram_bytes: u64,
}

impl RiscvUser {
    /// A hart with `ram_bytes` of RAM (a whole number of MiB, at least 16 MiB) for the
    /// program's pages and the page tables.
    pub fn new(ram_bytes: u64) -> Result<RiscvUser, crate::VirtError> {
        // The virt board's checks: a usable size the host can provide.
        crate::virt::check_memory(ram_bytes)?;
        let mut hart = Hart::new(RAM_BASE, DEFAULT_TIME_DIVISOR);
        // The emulator is the firmware and the kernel: traps stop the executor in M-mode.
        hart.sbi = true;
        hart.mcounteren = 7;
        hart.scounteren = 7;
        let mut user = RiscvUser {
            cpu: Cpu::new(hart),
            bus: Bus::new(ram_bytes),
            root: RAM_BASE,
            next_frame: RAM_BASE + PAGE_SIZE,
            free_frames: Vec::new(),
            ram_bytes,
        };
        let hart = &mut user.cpu.hart;
        hart.satp = 8 << 60 | user.root >> 12;
        // U-mode from the start (so the loader's writes go through the page tables), with
        // the FPU on (FS = Initial), as Linux starts a program.
        hart.mstatus &= !(mstatus::MPP | mstatus::FS);
        hart.mstatus |= 1 << mstatus::FS_SHIFT;
        hart.mret();
        hart.sfence_vma(None);
        Ok(user)
    }

    fn alloc_frame(&mut self) -> Result<u64, OutOfMemory> {
        if let Some(frame) = self.free_frames.pop() {
            // A reused frame may hold translated code and old data.
            self.cpu.forget_code_pages(&mut self.bus, &[frame]);
            self.bus.ram.write_bytes(frame, &[0u8; PAGE_SIZE as usize]);
            return Ok(frame);
        }
        if self.next_frame + PAGE_SIZE > RAM_BASE + self.ram_bytes {
            return Err(OutOfMemory);
        }
        let frame = self.next_frame;
        self.next_frame += PAGE_SIZE;
        Ok(frame)
    }

    /// Physical address of the leaf entry for `vaddr`, creating tables when `create`.
    fn leaf(&mut self, vaddr: u64, create: bool) -> Result<Option<u64>, OutOfMemory> {
        let mut table = self.root;
        for level in [2u64, 1] {
            let slot = table + ((vaddr >> (12 + 9 * level)) & 0x1ff) * 8;
            let entry = self.bus.read_ram_u64(slot).unwrap_or(0);
            if entry & pte::V != 0 {
                table = (entry >> pte::PPN_SHIFT) << 12;
                continue;
            }
            if !create {
                return Ok(None);
            }
            let next = self.alloc_frame()?;
            self.bus
                .write_ram_u64(slot, (next >> 12) << pte::PPN_SHIFT | pte::V);
            table = next;
        }
        Ok(Some(table + ((vaddr >> 12) & 0x1ff) * 8))
    }

    fn flags(prot: Prot) -> u64 {
        let mut flags = 0;
        if prot.read() || prot.write() {
            flags |= pte::R;
        }
        if prot.write() {
            flags |= pte::W;
        }
        if prot.exec() {
            flags |= pte::X;
        }
        if flags != 0 {
            // Accessed and dirty up front: the walker would set them anyway.
            flags |= pte::V | pte::U | pte::A | pte::D;
        }
        flags
    }

    fn hart_view(&mut self) -> RiscvCpu<'_> {
        RiscvCpu::new(&mut self.cpu.hart, &mut self.bus)
    }
}

/// Linux's signal and a description for a trap the program took.
fn fault_of(cause: u64) -> (u32, &'static str) {
    match cause {
        Trap::INSTRUCTION_MISALIGNED => (signal::SIGBUS, "misaligned instruction fetch"),
        Trap::INSTRUCTION_ACCESS => (signal::SIGSEGV, "instruction access fault"),
        Trap::ILLEGAL_INSTRUCTION => (signal::SIGILL, "illegal instruction"),
        Trap::BREAKPOINT => (signal::SIGTRAP, "breakpoint (ebreak)"),
        Trap::LOAD_MISALIGNED => (signal::SIGBUS, "misaligned load"),
        Trap::LOAD_ACCESS => (signal::SIGSEGV, "load access fault"),
        Trap::STORE_MISALIGNED => (signal::SIGBUS, "misaligned store or atomic"),
        Trap::STORE_ACCESS => (signal::SIGSEGV, "store access fault"),
        Trap::INSTRUCTION_PAGE_FAULT => (signal::SIGSEGV, "instruction page fault"),
        Trap::LOAD_PAGE_FAULT => (signal::SIGSEGV, "load page fault"),
        Trap::STORE_PAGE_FAULT => (signal::SIGSEGV, "store page fault"),
        _ => (signal::SIGILL, "unexpected trap"),
    }
}

impl UserCpu for RiscvUser {
    fn arch(&self) -> &'static dyn UserArch {
        &RISCV64
    }

    fn map_page(&mut self, vaddr: u64, prot: Prot) -> Result<(), OutOfMemory> {
        let slot = self.leaf(vaddr, true)?.expect("tables were created");
        let frame = self.alloc_frame()?;
        self.bus.write_ram_u64(
            slot,
            (frame >> 12) << pte::PPN_SHIFT | RiscvUser::flags(prot),
        );
        Ok(())
    }

    fn unmap_page(&mut self, vaddr: u64) {
        if let Ok(Some(slot)) = self.leaf(vaddr, false) {
            let entry = self.bus.read_ram_u64(slot).unwrap_or(0);
            let frame = (entry >> pte::PPN_SHIFT) << 12;
            if frame != 0 {
                self.free_frames.push(frame);
            }
            self.bus.write_ram_u64(slot, 0);
        }
    }

    fn protect_page(&mut self, vaddr: u64, prot: Prot) {
        if let Ok(Some(slot)) = self.leaf(vaddr, false) {
            let entry = self.bus.read_ram_u64(slot).unwrap_or(0);
            let ppn = entry >> pte::PPN_SHIFT;
            self.bus
                .write_ram_u64(slot, ppn << pte::PPN_SHIFT | RiscvUser::flags(prot));
        }
    }

    fn flush_mappings(&mut self) {
        self.cpu.hart.sfence_vma(None);
    }

    fn enter_user(&mut self, pc: u64, sp: u64) {
        let hart = &mut self.cpu.hart;
        hart.set_reg(2, sp);
        hart.pc = pc;
        hart.sfence_vma(None);
    }

    fn run(&mut self, instr: &mut Instrumentation, budget: u64) -> CpuExit {
        match self.cpu.run_with(&mut self.bus, instr, budget) {
            HartExit::Budget | HartExit::Device | HartExit::Wfi => CpuExit::Budget,
            HartExit::Stopped => CpuExit::Stopped,
            // Not reachable from U-mode; treated as a stray trap.
            HartExit::SupervisorCall => CpuExit::Fault(Fault {
                signal: signal::SIGILL,
                cause: Trap::ECALL_FROM_S,
                pc: self.cpu.hart.pc,
                address: 0,
                description: "environment call outside user mode".to_string(),
            }),
            HartExit::MachineTrap { cause, pc, tval } => {
                // Back to the program's state at the trapping instruction.
                self.cpu.hart.mret();
                if cause == Trap::ECALL_FROM_U {
                    return CpuExit::Syscall;
                }
                let (signal, description) = fault_of(cause);
                CpuExit::Fault(Fault {
                    signal,
                    cause,
                    pc,
                    address: tval,
                    description: description.to_string(),
                })
            }
        }
    }

    fn syscall_arguments(&self) -> (u64, [u64; 6]) {
        let hart = &self.cpu.hart;
        (
            hart.reg(17),
            [10, 11, 12, 13, 14, 15].map(|index| hart.reg(index)),
        )
    }

    fn finish_syscall(&mut self, result: u64) {
        let hart = &mut self.cpu.hart;
        hart.set_reg(10, result);
        hart.pc = hart.pc.wrapping_add(4); // ecall has no compressed form
    }

    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R {
        f(&mut self.hart_view())
    }

    fn now(&self) -> u64 {
        self.cpu.hart.clock.now()
    }

    fn idle_to(&mut self, time: u64) {
        self.cpu.hart.clock.skip_to(time);
    }

    fn instruction_count(&self) -> u64 {
        self.cpu.hart.clock.retired
    }

    fn pc(&self) -> u64 {
        self.cpu.hart.pc
    }

    fn state_hash(&self) -> u64 {
        let hart = &self.cpu.hart;
        let mut hash = Fnv64::default();
        hart.x[..32].iter().for_each(|&value| hash.word(value));
        hart.f.iter().for_each(|&value| hash.word(value));
        hash.word(hart.pc);
        hash.word(hart.clock.retired);
        hash.finish()
    }

    fn memory_bytes(&self) -> u64 {
        self.ram_bytes
    }

    fn capture_ram(&mut self) -> RamImage {
        let image = self.bus.ram.capture();
        self.cpu.hart.flush_tlb();
        image
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hwcap_is_rv64gc() {
        assert_eq!(RISCV64.hwcap(), 0x112d);
        assert_eq!(RISCV64.syscall(64), Some(Syscall::Write));
        assert_eq!(RISCV64.syscall_name(258), Some("riscv_hwprobe"));
        assert_eq!(RISCV64.syscall(220), None);
        assert_eq!(RISCV64.syscall_name(220), Some("clone"));
    }
}
