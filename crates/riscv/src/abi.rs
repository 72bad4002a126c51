//! RISC-V 64's guest ABI ([`GuestAbi`]) and description ([`DESCRIPTION`]): the one register
//! table (ABI names, `xN` numbers, `fp`, the pc and the supervisor CSRs an OS-aware
//! analysis reads), the psABI and Linux calling conventions, and how QEMU runs the same
//! board. Everything outside this crate learns these facts from here.

use pandare_core::abi::{
    ArchDescription, CallingConvention, Convention, Endianness, GuestAbi, KernelSymbols, LinuxAbi,
    QemuCommand, RegisterClass, RegisterInfo,
};
use pandare_core::instrument::GuestCpu;

use crate::csr::number as csr;

const fn general(
    name: &'static str,
    aliases: &'static [&'static str],
    number: u32,
) -> RegisterInfo {
    RegisterInfo {
        name,
        aliases,
        class: RegisterClass::General,
        number,
        bits: 64,
    }
}

const fn system(name: &'static str, number: u16) -> RegisterInfo {
    RegisterInfo {
        name,
        aliases: &[],
        class: RegisterClass::System,
        number: number as u32,
        bits: 64,
    }
}

/// Index in [`REGISTERS`] of the first register after the 32 integer registers (the pc).
const PC_INDEX: usize = 32;

/// The register table: `x0`–`x31` by ABI name (RISC-V psABI, "Integer Register Convention"),
/// the pc, then the CSRs readable by name (numbers from the privileged specification).
static REGISTERS: [RegisterInfo; 51] = [
    general("zero", &["x0"], 0),
    general("ra", &["x1"], 1),
    general("sp", &["x2"], 2),
    general("gp", &["x3"], 3),
    general("tp", &["x4"], 4),
    general("t0", &["x5"], 5),
    general("t1", &["x6"], 6),
    general("t2", &["x7"], 7),
    general("s0", &["x8", "fp"], 8),
    general("s1", &["x9"], 9),
    general("a0", &["x10"], 10),
    general("a1", &["x11"], 11),
    general("a2", &["x12"], 12),
    general("a3", &["x13"], 13),
    general("a4", &["x14"], 14),
    general("a5", &["x15"], 15),
    general("a6", &["x16"], 16),
    general("a7", &["x17"], 17),
    general("s2", &["x18"], 18),
    general("s3", &["x19"], 19),
    general("s4", &["x20"], 20),
    general("s5", &["x21"], 21),
    general("s6", &["x22"], 22),
    general("s7", &["x23"], 23),
    general("s8", &["x24"], 24),
    general("s9", &["x25"], 25),
    general("s10", &["x26"], 26),
    general("s11", &["x27"], 27),
    general("t3", &["x28"], 28),
    general("t4", &["x29"], 29),
    general("t5", &["x30"], 30),
    general("t6", &["x31"], 31),
    RegisterInfo {
        name: "pc",
        aliases: &[],
        class: RegisterClass::ProgramCounter,
        number: 32,
        bits: 64,
    },
    system("sstatus", csr::SSTATUS),
    system("sie", csr::SIE),
    system("stvec", csr::STVEC),
    system("sscratch", csr::SSCRATCH),
    system("sepc", csr::SEPC),
    system("scause", csr::SCAUSE),
    system("stval", csr::STVAL),
    system("sip", csr::SIP),
    system("satp", csr::SATP),
    system("scounteren", csr::SCOUNTEREN),
    system("mcounteren", csr::MCOUNTEREN),
    system("mcountinhibit", csr::MCOUNTINHIBIT),
    system("mstatus", csr::MSTATUS),
    system("mtvec", csr::MTVEC),
    system("mscratch", csr::MSCRATCH),
    system("mepc", csr::MEPC),
    system("mcause", csr::MCAUSE),
    system("mtval", csr::MTVAL),
];

const ARGUMENTS: &[&str] = &["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"];

/// psABI calls (user space and the Linux kernel alike): a0–a7, result in a0.
static CALL: CallingConvention = CallingConvention {
    arguments: ARGUMENTS,
    return_value: "a0",
    number: None,
};

/// Linux system calls (`arch/riscv/kernel/entry.S`): number in a7, a0–a5, result in a0.
static SYSCALL: CallingConvention = CallingConvention {
    arguments: &["a0", "a1", "a2", "a3", "a4", "a5"],
    return_value: "a0",
    number: Some("a7"),
};

/// pandare's hypercall (`slti x0, x0, 0x7a5`): magic in a0, then a1–a7.
static HYPERCALL: CallingConvention = CallingConvention {
    arguments: ARGUMENTS,
    return_value: "a0",
    number: None,
};

/// Where a name of the register table lives in the hart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Location {
    /// Integer register `x<n>`.
    General(usize),
    /// The pc.
    ProgramCounter,
    /// A CSR, read without side effects as M-mode would.
    Csr(u16),
}

/// Where register `name` (any name or alias, any case) lives.
pub(crate) fn locate(name: &str) -> Option<Location> {
    let info = REGISTERS.iter().find(|info| info.is_called(name))?;
    Some(match info.class {
        RegisterClass::General => Location::General(info.number as usize),
        RegisterClass::ProgramCounter => Location::ProgramCounter,
        RegisterClass::System => Location::Csr(info.number as u16),
    })
}

/// RISC-V 64 (RV64GC, LP64D) under Linux.
#[derive(Debug)]
pub struct Riscv64Abi;

/// The one instance.
pub static ABI: Riscv64Abi = Riscv64Abi;

impl GuestAbi for Riscv64Abi {
    fn architecture(&self) -> &'static str {
        crate::virt::ARCHITECTURE
    }

    fn pointer_bits(&self) -> u32 {
        64
    }

    fn endianness(&self) -> Endianness {
        Endianness::Little
    }

    fn registers(&self) -> &'static [RegisterInfo] {
        &REGISTERS
    }

    fn program_counter(&self) -> &'static str {
        REGISTERS[PC_INDEX].name
    }

    fn stack_pointer(&self) -> &'static str {
        "sp"
    }

    fn return_address(&self) -> Option<&'static str> {
        Some("ra")
    }

    fn convention(&self, convention: Convention) -> &'static CallingConvention {
        match convention {
            Convention::Default | Convention::LinuxKernel => &CALL,
            Convention::Syscall => &SYSCALL,
            Convention::Hypercall => &HYPERCALL,
        }
    }

    fn asid_register(&self) -> &'static str {
        "satp"
    }

    /// Linux on RV64 maps the kernel in the upper half of every Sv39/Sv48/Sv57 space.
    fn is_kernel_address(&self, address: u64) -> bool {
        address >> 63 == 1
    }

    fn linux(&self) -> Option<&'static dyn LinuxAbi> {
        Some(&LINUX)
    }
}

/// Linux's facts on RV64.
#[derive(Debug)]
pub struct Riscv64Linux;

/// The one instance.
pub static LINUX: Riscv64Linux = Riscv64Linux;

/// `scause` of an environment call from U-mode.
const ECALL_FROM_USER: i32 = 8;

impl LinuxAbi for Riscv64Linux {
    fn syscall_exception(&self) -> i32 {
        ECALL_FROM_USER
    }

    /// `ecall` has no compressed form: the return is 4 bytes on.
    fn syscall_return_address(&self, _cpu: &dyn GuestCpu, pc: u64) -> u64 {
        pc.wrapping_add(4)
    }

    fn syscall_symbol_prefix(&self) -> &'static str {
        "__riscv_sys_"
    }

    /// In kernel mode `tp` holds `current`; in user mode the kernel parks it in `sscratch`
    /// (its trap entry swaps the two, and kernel-mode traps run with `sscratch` = 0). So
    /// `current` is `sscratch` when that is non-zero, else `tp`: right in every window,
    /// including the instructions of the entry and exit paths around the swap.
    fn current_task(&self, cpu: &mut dyn GuestCpu, _kernel: &dyn KernelSymbols) -> Option<u64> {
        let scratch = cpu.register("sscratch").ok()?;
        let task = if scratch != 0 {
            scratch
        } else {
            cpu.register("tp").ok()?
        };
        ABI.is_kernel_address(task).then_some(task)
    }

    fn page_table_of_asid(&self, asid: u64) -> u64 {
        (asid & ((1 << 44) - 1)) << 12
    }

    /// Linux keeps the ASID it gave an `mm` in the low bits of `mm->context.id` (above
    /// them, the allocator's generation) and runs it with
    /// `satp = mode | ASID << 44 | PPN(pgd)` (`arch/riscv/mm/context.c`).
    fn mm_context_field(&self) -> Option<&'static str> {
        Some("context.id")
    }

    /// `satp`'s mode (the same for every address space: the kernel picks it at boot) from
    /// the CPU, the ASID from the `mm`'s context (masked to the 16 bits `satp` holds), and
    /// the page table's PPN. Without an ASID allocator the kernel leaves the context 0, and
    /// so does this.
    fn asid_of_address_space(&self, cpu: &dyn GuestCpu, page_table: u64, context: u64) -> u64 {
        (cpu.asid() & (0xf << 60)) | (context & 0xffff) << 44 | (page_table >> 12) & ((1 << 44) - 1)
    }
}

/// QEMU CPU options that advertise the same ISA as pandare's hart.
pub const QEMU_CPU: &str = "rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false,svadu=false,zicbom=false,zicboz=false,zicbop=false,zawrs=false,zfa=false,sv57=false,sv48=true";
/// Where QEMU's OpenSBI firmware lives in Debian's package.
pub const QEMU_OPENSBI: &str = "/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin";

/// riscv64 as the front ends see it.
pub static DESCRIPTION: ArchDescription = ArchDescription {
    name: crate::virt::ARCHITECTURE,
    abi: &ABI,
    // The 16550 is ttyS0; `earlycon=sbi` prints through SBI's console before the UART
    // driver is up, so an early crash of one's own kernel is visible.
    console_arguments: "console=ttyS0 earlycon=sbi",
    default_memory_mib: 512,
    qemu: QemuCommand {
        binary: "qemu-system-riscv64",
        arguments: &[
            "-M",
            "virt",
            "-smp",
            "1",
            "-nographic",
            "-cpu",
            QEMU_CPU,
            "-bios",
            QEMU_OPENSBI,
        ],
        package: "qemu-system-misc",
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_numbers_locate_registers() {
        assert_eq!(locate("a0"), Some(Location::General(10)));
        assert_eq!(locate("X10"), Some(Location::General(10)));
        assert_eq!(locate("fp"), Some(Location::General(8)));
        assert_eq!(locate("S11"), Some(Location::General(27)));
        assert_eq!(locate("pc"), Some(Location::ProgramCounter));
        assert_eq!(locate("satp"), Some(Location::Csr(0x180)));
        assert_eq!(locate("x32"), None);
        assert_eq!(locate("x01"), None);
        assert_eq!(locate("eax"), None);
    }

    #[test]
    fn table_lists_the_general_registers_in_number_order() {
        for (index, info) in REGISTERS[..PC_INDEX].iter().enumerate() {
            assert_eq!(info.number as usize, index, "{}", info.name);
            assert_eq!(info.class, RegisterClass::General);
        }
        assert_eq!(REGISTERS[PC_INDEX].class, RegisterClass::ProgramCounter);
        assert!(REGISTERS[PC_INDEX + 1..]
            .iter()
            .all(|info| info.class == RegisterClass::System));
    }

    #[test]
    fn every_name_is_unique() {
        let mut names: Vec<&str> = REGISTERS
            .iter()
            .flat_map(|info| std::iter::once(info.name).chain(info.aliases.iter().copied()))
            .collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count);
    }

    #[test]
    fn conventions_name_registers_of_the_table() {
        let abi: &dyn GuestAbi = &ABI;
        for convention in Convention::ALL {
            let registers = abi.convention(convention);
            for name in registers
                .arguments
                .iter()
                .chain([&registers.return_value])
                .chain(registers.number.iter())
            {
                assert!(abi.find_register(name).is_some(), "{name}");
            }
        }
        assert!(abi.find_register(abi.stack_pointer()).is_some());
        assert!(abi.find_register(abi.asid_register()).is_some());
    }
}
