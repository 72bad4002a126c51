//! The x86 side of the guest-ABI seam: register tables by PANDA's names for x86_64 and
//! i386, their calling conventions, Linux facts (x86_64), and [`GuestCpu`] for [`X86Cpu`].
//!
//! System-register numbers are MSR addresses for MSRs; control registers are numbered
//! `0x1_0000 + n` (CRn), segment selectors `0x2_0000 + index` (ES, CS, SS, DS, FS, GS) and
//! RFLAGS `0x3_0000`: x86 has no single numbering for them.
//!
//! The hypercall is CPUID, as in PANDA (`helper_cpuid`): `guest_hypercall` fires before
//! every CPUID the instrumented loop runs, and a callback returning true makes the CPUID do
//! nothing else (its registers stay as the callback left them). By convention RAX (EAX)
//! holds the magic number, which the `hypercaller` plugin dispatches on; the arguments
//! follow in RBX, RCX, RDX, RDI, RSI.

use pandare_core::abi::{
    CallingConvention, Convention, Endianness, GuestAbi, KernelSymbols, LinuxAbi, RegisterClass,
    RegisterInfo,
};
use pandare_core::instrument::{GuestCpu, InstrumentError};

use crate::state::msr;
use crate::X86Cpu;

const fn general(name: &'static str, number: u32, bits: u32) -> RegisterInfo {
    RegisterInfo {
        name,
        aliases: &[],
        class: RegisterClass::General,
        number,
        bits,
    }
}

const fn system(name: &'static str, number: u32, bits: u32) -> RegisterInfo {
    RegisterInfo {
        name,
        aliases: &[],
        class: RegisterClass::System,
        number,
        bits,
    }
}

const CR: u32 = 0x1_0000;
const SEG: u32 = 0x2_0000;
const RFLAGS: u32 = 0x3_0000;

/// x86_64: RAX … R15 (hardware numbering, PyPANDA's `arch.registers`), RIP, then system
/// registers.
static REGISTERS_64: [RegisterInfo; 37] = [
    general("rax", 0, 64),
    general("rcx", 1, 64),
    general("rdx", 2, 64),
    general("rbx", 3, 64),
    general("rsp", 4, 64),
    general("rbp", 5, 64),
    general("rsi", 6, 64),
    general("rdi", 7, 64),
    general("r8", 8, 64),
    general("r9", 9, 64),
    general("r10", 10, 64),
    general("r11", 11, 64),
    general("r12", 12, 64),
    general("r13", 13, 64),
    general("r14", 14, 64),
    general("r15", 15, 64),
    RegisterInfo {
        name: "rip",
        aliases: &["pc"],
        class: RegisterClass::ProgramCounter,
        number: 16,
        bits: 64,
    },
    system("rflags", RFLAGS, 64),
    system("cr0", CR, 64),
    system("cr2", CR + 2, 64),
    system("cr3", CR + 3, 64),
    system("cr4", CR + 4, 64),
    system("cr8", CR + 8, 64),
    system("es", SEG, 16),
    system("cs", SEG + 1, 16),
    system("ss", SEG + 2, 16),
    system("ds", SEG + 3, 16),
    system("fs", SEG + 4, 16),
    system("gs", SEG + 5, 16),
    system("efer", msr::EFER, 64),
    system("fs_base", msr::FS_BASE, 64),
    system("gs_base", msr::GS_BASE, 64),
    system("kernel_gs_base", msr::KERNEL_GS_BASE, 64),
    system("star", msr::STAR, 64),
    system("lstar", msr::LSTAR, 64),
    system("cstar", msr::CSTAR, 64),
    system("sfmask", msr::SFMASK, 64),
];

/// i386: EAX … EDI, EIP, then system registers.
static REGISTERS_32: [RegisterInfo; 22] = [
    general("eax", 0, 32),
    general("ecx", 1, 32),
    general("edx", 2, 32),
    general("ebx", 3, 32),
    general("esp", 4, 32),
    general("ebp", 5, 32),
    general("esi", 6, 32),
    general("edi", 7, 32),
    RegisterInfo {
        name: "eip",
        aliases: &["pc"],
        class: RegisterClass::ProgramCounter,
        number: 8,
        bits: 32,
    },
    system("eflags", RFLAGS, 32),
    system("cr0", CR, 32),
    system("cr2", CR + 2, 32),
    system("cr3", CR + 3, 32),
    system("cr4", CR + 4, 32),
    system("es", SEG, 16),
    system("cs", SEG + 1, 16),
    system("ss", SEG + 2, 16),
    system("ds", SEG + 3, 16),
    system("fs", SEG + 4, 16),
    system("gs", SEG + 5, 16),
    system("fs_base", msr::FS_BASE, 32),
    system("gs_base", msr::GS_BASE, 32),
];

static SYSV: CallingConvention = CallingConvention {
    arguments: &["rdi", "rsi", "rdx", "rcx", "r8", "r9"],
    return_value: "rax",
    number: None,
};
static SYSCALL_64: CallingConvention = CallingConvention {
    arguments: &["rdi", "rsi", "rdx", "r10", "r8", "r9"],
    return_value: "rax",
    number: Some("rax"),
};
static HYPERCALL_64: CallingConvention = CallingConvention {
    arguments: &["rax", "rbx", "rcx", "rdx", "rdi", "rsi"],
    return_value: "rax",
    number: None,
};
/// cdecl passes everything on the stack.
static CDECL: CallingConvention = CallingConvention {
    arguments: &[],
    return_value: "eax",
    number: None,
};
/// Linux i386 kernel functions are built with `-mregparm=3`.
static REGPARM3: CallingConvention = CallingConvention {
    arguments: &["eax", "edx", "ecx"],
    return_value: "eax",
    number: None,
};
static INT80: CallingConvention = CallingConvention {
    arguments: &["ebx", "ecx", "edx", "esi", "edi", "ebp"],
    return_value: "eax",
    number: Some("eax"),
};
static HYPERCALL_32: CallingConvention = CallingConvention {
    arguments: &["eax", "ebx", "ecx", "edx", "edi", "esi"],
    return_value: "eax",
    number: None,
};

/// The x86_64 ABI.
#[derive(Debug)]
pub struct X86_64Abi;
/// The x86_64 ABI's only value.
pub static X86_64: X86_64Abi = X86_64Abi;

/// The i386 ABI.
#[derive(Debug)]
pub struct I386Abi;
/// The i386 ABI's only value.
pub static I386: I386Abi = I386Abi;

impl GuestAbi for X86_64Abi {
    fn architecture(&self) -> &'static str {
        "x86_64"
    }
    fn pointer_bits(&self) -> u32 {
        64
    }
    fn endianness(&self) -> Endianness {
        Endianness::Little
    }
    fn registers(&self) -> &'static [RegisterInfo] {
        &REGISTERS_64
    }
    fn program_counter(&self) -> &'static str {
        "rip"
    }
    fn stack_pointer(&self) -> &'static str {
        "rsp"
    }
    fn return_address(&self) -> Option<&'static str> {
        None
    }
    fn convention(&self, convention: Convention) -> &'static CallingConvention {
        match convention {
            Convention::Default | Convention::LinuxKernel => &SYSV,
            Convention::Syscall => &SYSCALL_64,
            Convention::Hypercall => &HYPERCALL_64,
        }
    }
    fn asid_register(&self) -> &'static str {
        "cr3"
    }
    fn is_kernel_address(&self, address: u64) -> bool {
        address >> 63 == 1
    }
    fn linux(&self) -> Option<&'static dyn LinuxAbi> {
        Some(&LINUX_64)
    }
}

impl GuestAbi for I386Abi {
    fn architecture(&self) -> &'static str {
        "i386"
    }
    fn pointer_bits(&self) -> u32 {
        32
    }
    fn endianness(&self) -> Endianness {
        Endianness::Little
    }
    fn registers(&self) -> &'static [RegisterInfo] {
        &REGISTERS_32
    }
    fn program_counter(&self) -> &'static str {
        "eip"
    }
    fn stack_pointer(&self) -> &'static str {
        "esp"
    }
    fn return_address(&self) -> Option<&'static str> {
        None
    }
    fn convention(&self, convention: Convention) -> &'static CallingConvention {
        match convention {
            Convention::Default => &CDECL,
            Convention::LinuxKernel => &REGPARM3,
            Convention::Syscall => &INT80,
            Convention::Hypercall => &HYPERCALL_32,
        }
    }
    fn asid_register(&self) -> &'static str {
        "cr3"
    }
    fn is_kernel_address(&self, address: u64) -> bool {
        // Debian's 686-pae kernel: the default 3G/1G split (PAGE_OFFSET 0xC0000000).
        address & 0xffff_ffff >= 0xc000_0000
    }
    fn linux(&self) -> Option<&'static dyn LinuxAbi> {
        // i386 introspection needs a DWARF-derived profile (no BTF); not wired yet.
        None
    }
}

/// Linux facts for x86_64.
#[derive(Debug)]
pub struct X86_64Linux;
/// Its only value.
pub static LINUX_64: X86_64Linux = X86_64Linux;

impl LinuxAbi for X86_64Linux {
    fn syscall_exception(&self) -> i32 {
        crate::SYSCALL_EXCEPTION
    }
    fn syscall_return_address(&self, _cpu: &dyn GuestCpu, pc: u64) -> u64 {
        // SYSCALL is 0F 05.
        pc.wrapping_add(2)
    }
    fn syscall_symbol_prefix(&self) -> &'static str {
        "__x64_sys_"
    }
    fn current_task(&self, cpu: &mut dyn GuestCpu, kernel: &dyn KernelSymbols) -> Option<u64> {
        // The kernel's per-CPU base is GS_BASE in the kernel (after SWAPGS) and
        // KERNEL_GS_BASE in user mode: take whichever is a kernel address.
        let gs = cpu.register("gs_base").ok()?;
        let kgs = cpu.register("kernel_gs_base").ok()?;
        let base = [gs, kgs]
            .into_iter()
            .find(|&b| X86_64.is_kernel_address(b))?;
        // 6.2+: `pcpu_hot.current_task` (offset 0); older: the `current_task` variable.
        let offset = kernel
            .per_cpu_variable("pcpu_hot")
            .or_else(|| kernel.per_cpu_variable("current_task"))?;
        let mut bytes = [0u8; 8];
        cpu.read_memory(base.wrapping_add(offset), &mut bytes)
            .ok()?;
        let task = u64::from_le_bytes(bytes);
        X86_64.is_kernel_address(task).then_some(task)
    }
    fn page_table_of_asid(&self, asid: u64) -> u64 {
        // CR3 bits 12–51; the low bits hold PCID or PWT/PCD.
        asid & 0x000f_ffff_ffff_f000
    }
}

/// Which ABI an [`X86Cpu`] presents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// `x86_64`.
    X86_64,
    /// `i386`.
    I386,
}

impl X86Cpu {
    fn guest_abi(&self) -> &'static dyn GuestAbi {
        match self.architecture {
            Architecture::X86_64 => &X86_64,
            Architecture::I386 => &I386,
        }
    }

    fn system_register(&self, number: u32) -> Option<u64> {
        let s = &self.state;
        Some(match number {
            RFLAGS => s.rflags,
            n if (CR..CR + 9).contains(&n) => match n - CR {
                0 => s.cr0,
                2 => s.cr2,
                3 => s.cr3,
                4 => s.cr4,
                8 => s.cr8,
                _ => return None,
            },
            n if (SEG..SEG + 6).contains(&n) => u64::from(s.segments[(n - SEG) as usize].selector),
            n => self.read_msr(n)?,
        })
    }
}

fn unknown(architecture: &'static str, name: &str) -> InstrumentError {
    InstrumentError::UnknownRegister {
        architecture,
        name: name.to_string(),
    }
}

impl GuestCpu for X86Cpu {
    fn architecture(&self) -> &'static str {
        self.guest_abi().architecture()
    }
    fn abi(&self) -> &'static dyn GuestAbi {
        self.guest_abi()
    }
    /// The linear address `CS.base + RIP`, PANDA's pc on x86 (see `hooks.rs`).
    fn pc(&self) -> u64 {
        self.linear_pc()
    }
    fn set_pc(&mut self, pc: u64) {
        self.set_linear_pc(pc);
    }
    fn register(&self, name: &str) -> Result<u64, InstrumentError> {
        let info = self
            .guest_abi()
            .find_register(name)
            .ok_or_else(|| unknown(self.guest_abi().architecture(), name))?;
        let mask = if info.bits >= 64 {
            u64::MAX
        } else {
            (1 << info.bits) - 1
        };
        Ok(match info.class {
            RegisterClass::General => self.state.gpr[info.number as usize] & mask,
            RegisterClass::ProgramCounter => self.state.rip & mask,
            RegisterClass::System => {
                self.system_register(info.number)
                    .ok_or_else(|| unknown(self.guest_abi().architecture(), name))?
                    & mask
            }
        })
    }
    fn set_register(&mut self, name: &str, value: u64) -> Result<(), InstrumentError> {
        let info = self
            .guest_abi()
            .find_register(name)
            .ok_or_else(|| unknown(self.guest_abi().architecture(), name))?;
        let mask = if info.bits >= 64 {
            u64::MAX
        } else {
            (1 << info.bits) - 1
        };
        match info.class {
            RegisterClass::General => {
                let r = &mut self.state.gpr[info.number as usize];
                *r = (*r & !mask) | (value & mask);
            }
            RegisterClass::ProgramCounter => self.state.rip = value & mask,
            RegisterClass::System => {
                return Err(InstrumentError::ReadOnlyRegister {
                    architecture: self.guest_abi().architecture(),
                    name: info.name.to_string(),
                })
            }
        }
        Ok(())
    }
    fn read_memory(&mut self, vaddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        for (n, byte) in buffer.iter_mut().enumerate() {
            let address = vaddr.wrapping_add(n as u64);
            let physical = self
                .virt_to_phys(address)
                .ok_or(InstrumentError::Unmapped { address })?;
            let mut b = [0u8; 1];
            if !self.ram.read_bytes(physical, &mut b) {
                return Err(InstrumentError::Unmapped { address });
            }
            *byte = b[0];
        }
        Ok(())
    }
    fn write_memory(&mut self, vaddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        let mut physical = Vec::with_capacity(data.len());
        for n in 0..data.len() {
            let address = vaddr.wrapping_add(n as u64);
            let p = self
                .virt_to_phys(address)
                .filter(|&p| self.ram.contains(p, 1))
                .ok_or(InstrumentError::Unmapped { address })?;
            physical.push(p);
        }
        for (p, &byte) in physical.into_iter().zip(data) {
            self.phys_write(p, &[byte]);
        }
        Ok(())
    }
    fn read_physical(&mut self, paddr: u64, buffer: &mut [u8]) -> Result<(), InstrumentError> {
        if self.ram.read_bytes(paddr, buffer) {
            Ok(())
        } else {
            Err(InstrumentError::Unmapped { address: paddr })
        }
    }
    fn write_physical(&mut self, paddr: u64, data: &[u8]) -> Result<(), InstrumentError> {
        if !self.ram.contains(paddr, data.len() as u64) {
            return Err(InstrumentError::Unmapped { address: paddr });
        }
        self.phys_write(paddr, data);
        Ok(())
    }
    fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64> {
        X86Cpu::virt_to_phys(self, vaddr)
    }
    fn asid(&self) -> u64 {
        self.state.cr3
    }
    fn in_kernel_mode(&self) -> bool {
        self.state.cpl == 0
    }
    fn instruction_count(&self) -> u64 {
        self.icount
    }
    fn request_stop(&mut self) {
        self.stop_requested = true;
    }
}
