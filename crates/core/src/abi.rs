//! The guest ABI: what an architecture-neutral analysis needs to know about a guest
//! architecture's registers and conventions, and what a front end needs to know to boot
//! and compare it.
//!
//! Each architecture crate implements [`GuestAbi`] once (one register table, with its
//! aliases) and describes itself in an [`ArchDescription`]. The arch-neutral crates
//! (plugins, the Python extension, the monitor's `info registers`, the benchmarks) never
//! name a register, a calling convention or a QEMU binary: they ask the ABI, which a
//! callback reaches through [`GuestCpu::abi`] and a front end through the architecture's
//! description. Registers are then read and written by name with
//! [`GuestCpu::register`]/[`GuestCpu::set_register`], which accept every name and alias the
//! table lists.
//!
//! The helpers on `dyn GuestAbi` (`argument`, `return_value`, `syscall_number`, `dump`...)
//! are written once here from the tables.

use crate::instrument::{GuestCpu, InstrumentError};

/// Byte order of guest memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endianness {
    /// Least significant byte first.
    Little,
    /// Most significant byte first.
    Big,
}

impl Endianness {
    /// `"little"` or `"big"` (Python's `sys.byteorder` spelling, which PyPANDA uses).
    pub fn name(self) -> &'static str {
        match self {
            Endianness::Little => "little",
            Endianness::Big => "big",
        }
    }
}

/// What kind of register an entry of the register table is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegisterClass {
    /// A general-purpose integer register: readable and writable by name.
    General,
    /// The program counter.
    ProgramCounter,
    /// A system (control and status) register an OS-aware analysis reads, such as the
    /// page-table base or the trap vector. Readable by name; not writable through the ABI
    /// (writing one behind the CPU's back would bypass what the CPU does on such a write,
    /// such as flushing its TLB).
    System,
}

/// One register of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterInfo {
    /// Canonical name, lower case (`a0`, `rax`, `satp`).
    pub name: &'static str,
    /// Other names accepted for it, lower case (`x10`; `fp` for `s0`).
    pub aliases: &'static [&'static str],
    /// Its kind.
    pub class: RegisterClass,
    /// The architecture's number for it: the register number for general registers
    /// (PyPANDA's `arch.registers` values), the CSR or MSR address for system registers.
    pub number: u32,
    /// Width in bits.
    pub bits: u32,
}

impl RegisterInfo {
    /// Whether `name` (any case) is this register's name or one of its aliases.
    pub fn is_called(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
            || self
                .aliases
                .iter()
                .any(|alias| alias.eq_ignore_ascii_case(name))
    }
}

/// The calling conventions every architecture describes (PyPANDA's `convention=` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Convention {
    /// Function calls in user space (`default`).
    Default,
    /// System calls (`syscall`): a number register, then the arguments.
    Syscall,
    /// Calls between the Linux kernel's own functions (`linux_kernel`).
    LinuxKernel,
    /// pandare's guest hypercall (`hypercall`): the magic number in the first argument
    /// register (see `docs/callbacks.md`).
    Hypercall,
}

impl Convention {
    /// Every convention.
    pub const ALL: [Convention; 4] = [
        Convention::Default,
        Convention::Syscall,
        Convention::LinuxKernel,
        Convention::Hypercall,
    ];

    /// PyPANDA's name.
    pub fn name(self) -> &'static str {
        match self {
            Convention::Default => "default",
            Convention::Syscall => "syscall",
            Convention::LinuxKernel => "linux_kernel",
            Convention::Hypercall => "hypercall",
        }
    }

    /// The convention called `name`.
    pub fn from_name(name: &str) -> Option<Convention> {
        Convention::ALL
            .into_iter()
            .find(|convention| convention.name() == name)
    }
}

/// The registers of one calling convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallingConvention {
    /// Argument registers, in order. Arguments past these are not in registers.
    pub arguments: &'static [&'static str],
    /// Where the result is returned.
    pub return_value: &'static str,
    /// For system calls: the register holding the call number on entry.
    pub number: Option<&'static str>,
}

/// Why an ABI-level access failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AbiError {
    /// The argument is not passed in a register under this convention.
    #[error("argument {index} is not in a register under the {architecture} {convention} convention (it has {count} register arguments)")]
    ArgumentNotInRegister {
        /// The architecture.
        architecture: &'static str,
        /// The convention's name.
        convention: &'static str,
        /// The argument asked for.
        index: usize,
        /// How many register arguments the convention has.
        count: usize,
    },
    /// The convention has no call-number register (only `syscall` has one).
    #[error("the {architecture} {convention} convention has no call-number register")]
    NoNumber {
        /// The architecture.
        architecture: &'static str,
        /// The convention's name.
        convention: &'static str,
    },
    /// The CPU refused the register access.
    #[error(transparent)]
    Register(#[from] InstrumentError),
}

/// A guest architecture's registers and conventions, implemented once per architecture.
///
/// Every method is required: an architecture that leaves one out does not compile.
pub trait GuestAbi: Send + Sync + std::fmt::Debug {
    /// Architecture name (`riscv64`), as snapshots, recordings and images spell it.
    fn architecture(&self) -> &'static str;
    /// Width of a guest pointer in bits.
    fn pointer_bits(&self) -> u32;
    /// Byte order of guest memory.
    fn endianness(&self) -> Endianness;
    /// The register table: general registers in the architecture's numbering order, then
    /// the program counter, then the system registers. The only copy of the names.
    fn registers(&self) -> &'static [RegisterInfo];
    /// Canonical name of the program counter.
    fn program_counter(&self) -> &'static str;
    /// Canonical name of the stack pointer.
    fn stack_pointer(&self) -> &'static str;
    /// The register that holds the return address of a call, when there is one (`ra`);
    /// `None` where calls push it on the stack (x86).
    fn return_address(&self) -> Option<&'static str>;
    /// The registers of `convention`.
    fn convention(&self, convention: Convention) -> &'static CallingConvention;
    /// The system register whose value [`GuestCpu::asid`] reports (`satp`; x86: `cr3`).
    fn asid_register(&self) -> &'static str;
    /// Whether `address` lies in the kernel's half of the address space under Linux.
    fn is_kernel_address(&self, address: u64) -> bool;
    /// What Linux introspection needs to know of this architecture (`None` when it has
    /// no Linux guests).
    fn linux(&self) -> Option<&'static dyn LinuxAbi>;
}

/// Kernel symbols and per-CPU variables, as a kernel profile knows them: what
/// [`LinuxAbi::current_task`] may need to find `current`.
pub trait KernelSymbols {
    /// The address of a kernel symbol (kallsyms).
    fn symbol(&self, name: &str) -> Option<u64>;
    /// The offset of a per-CPU variable in a CPU's per-CPU area.
    fn per_cpu_variable(&self, name: &str) -> Option<u64>;
}

/// The architecture facts of Linux introspection: how a system call is entered and
/// returned from, and where the running task is found. The OS introspection crate is
/// written once over these; an architecture plugs in by implementing them.
pub trait LinuxAbi: Send + Sync + std::fmt::Debug {
    /// The exception index `before_handle_exception` reports for a system call made from
    /// user mode (riscv64: 8, environment call from U-mode), with the pc at the system
    /// call instruction.
    fn syscall_exception(&self) -> i32;
    /// Where a system call made by the instruction at `pc` returns to (the next
    /// instruction), read at its entry.
    fn syscall_return_address(&self, cpu: &dyn GuestCpu, pc: u64) -> u64;
    /// The prefix of the system call wrappers' symbols that `sys_call_table` points at
    /// (`__riscv_sys_`, `__x64_sys_`).
    fn syscall_symbol_prefix(&self) -> &'static str;
    /// The address of the running `task_struct` (Linux's `current`), read from the CPU
    /// (and, where the architecture keeps it in per-CPU memory, from the kernel's memory
    /// through `kernel`), valid in user and kernel mode. `None` when the CPU's state does
    /// not name one (before the kernel set it up).
    fn current_task(&self, cpu: &mut dyn GuestCpu, kernel: &dyn KernelSymbols) -> Option<u64>;
    /// The physical address of the top-level page table that an [`GuestCpu::asid`] value
    /// designates (riscv64: `satp`'s PPN × 4096), to compare with a process's `mm->pgd`.
    fn page_table_of_asid(&self, asid: u64) -> u64;
    /// The dotted field of `struct mm_struct` holding what, besides the page table, goes
    /// into the [`GuestCpu::asid`] value while that address space runs (riscv64:
    /// `context.id`, whose low bits are the hardware ASID), if anything does.
    fn mm_context_field(&self) -> Option<&'static str> {
        None
    }
    /// The [`GuestCpu::asid`] value while the address space whose top-level page table is
    /// at physical address `page_table` runs, given the value of its
    /// [`LinuxAbi::mm_context_field`] (0 when there is none). The default is the page
    /// table's address.
    fn asid_of_address_space(&self, cpu: &dyn GuestCpu, page_table: u64, context: u64) -> u64 {
        let _ = (cpu, context);
        page_table
    }
}

impl dyn GuestAbi {
    /// The register called `name` (or one of its aliases, any case).
    pub fn find_register(&self, name: &str) -> Option<&'static RegisterInfo> {
        self.registers().iter().find(|info| info.is_called(name))
    }

    /// The system registers' canonical names.
    pub fn system_registers(&self) -> impl Iterator<Item = &'static str> {
        self.registers()
            .iter()
            .filter(|info| info.class == RegisterClass::System)
            .map(|info| info.name)
    }

    /// The register holding argument `index` of `convention` (for `syscall`, index 0 is
    /// the first argument, not the number).
    pub fn argument_register(
        &self,
        convention: Convention,
        index: usize,
    ) -> Result<&'static str, AbiError> {
        let registers = self.convention(convention).arguments;
        registers
            .get(index)
            .copied()
            .ok_or(AbiError::ArgumentNotInRegister {
                architecture: self.architecture(),
                convention: convention.name(),
                index,
                count: registers.len(),
            })
    }

    /// Argument `index` of the call `cpu` is at (entry of a function or a system call).
    pub fn argument(
        &self,
        cpu: &dyn GuestCpu,
        convention: Convention,
        index: usize,
    ) -> Result<u64, AbiError> {
        Ok(cpu.register(self.argument_register(convention, index)?)?)
    }

    /// Sets argument `index`.
    pub fn set_argument(
        &self,
        cpu: &mut dyn GuestCpu,
        convention: Convention,
        index: usize,
        value: u64,
    ) -> Result<(), AbiError> {
        Ok(cpu.set_register(self.argument_register(convention, index)?, value)?)
    }

    /// The return value register's contents (raw; callers sign-extend as they need).
    pub fn return_value(
        &self,
        cpu: &dyn GuestCpu,
        convention: Convention,
    ) -> Result<u64, AbiError> {
        Ok(cpu.register(self.convention(convention).return_value)?)
    }

    /// Sets the return value.
    pub fn set_return_value(
        &self,
        cpu: &mut dyn GuestCpu,
        convention: Convention,
        value: u64,
    ) -> Result<(), AbiError> {
        Ok(cpu.set_register(self.convention(convention).return_value, value)?)
    }

    /// The system call number (at the system call instruction).
    pub fn syscall_number(&self, cpu: &dyn GuestCpu) -> Result<u64, AbiError> {
        let number = self
            .convention(Convention::Syscall)
            .number
            .ok_or(AbiError::NoNumber {
                architecture: self.architecture(),
                convention: Convention::Syscall.name(),
            })?;
        Ok(cpu.register(number)?)
    }

    /// The stack pointer's value.
    pub fn stack_pointer_value(&self, cpu: &dyn GuestCpu) -> Result<u64, InstrumentError> {
        cpu.register(self.stack_pointer())
    }

    /// Every register of the table as text (the monitor's `info registers`): a header line
    /// with the pc, the privilege (kernel or user) and the instruction count, then
    /// `name value` pairs, four to a line, in table order. Values are 16 hex digits.
    pub fn dump(&self, cpu: &dyn GuestCpu) -> String {
        let mut text = format!(
            "{:<8} {:016x}  {}  instructions {}\n",
            self.program_counter(),
            cpu.pc(),
            if cpu.in_kernel_mode() {
                "kernel"
            } else {
                "user"
            },
            cpu.instruction_count()
        );
        let shown = self
            .registers()
            .iter()
            .filter(|info| info.class != RegisterClass::ProgramCounter);
        for (position, info) in shown.enumerate() {
            if position > 0 {
                text += if position % 4 == 0 { "\n" } else { "  " };
            }
            match cpu.register(info.name) {
                Ok(value) => text += &format!("{:<8} {value:016x}", info.name),
                Err(_) => text += &format!("{:<8} {:>16}", info.name, "-"),
            }
        }
        text.push('\n');
        text
    }
}

/// How to run the same guest under QEMU (for the boot benchmark and differential tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QemuCommand {
    /// The system emulator binary (looked up on `PATH`).
    pub binary: &'static str,
    /// Arguments that make QEMU's machine match pandare's (board, CPU features,
    /// firmware, console); memory, kernel, initrd and command line are added by the caller.
    pub arguments: &'static [&'static str],
    /// The package that installs the binary, for the error message when it is missing.
    pub package: &'static str,
}

/// An architecture as the front ends (CLI, Python, benchmarks) see it: its ABI and the
/// facts needed to boot one's own kernel on it or to compare it with QEMU. Each
/// architecture crate provides one.
#[derive(Clone, Copy, Debug)]
pub struct ArchDescription {
    /// Architecture name (`riscv64`).
    pub name: &'static str,
    /// Its registers and conventions.
    pub abi: &'static dyn GuestAbi,
    /// Kernel command-line arguments that put the kernel's console (and its early console)
    /// on the board's serial port.
    pub console_arguments: &'static str,
    /// Guest RAM when nobody says otherwise, in MiB.
    pub default_memory_mib: u64,
    /// QEMU's equivalent machine.
    pub qemu: QemuCommand,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convention_names_round_trip() {
        for convention in Convention::ALL {
            assert_eq!(Convention::from_name(convention.name()), Some(convention));
        }
        assert_eq!(Convention::from_name("cdecl"), None);
    }

    #[test]
    fn register_names_match_any_case_and_aliases() {
        let info = RegisterInfo {
            name: "s0",
            aliases: &["x8", "fp"],
            class: RegisterClass::General,
            number: 8,
            bits: 64,
        };
        assert!(info.is_called("S0"));
        assert!(info.is_called("fp"));
        assert!(info.is_called("X8"));
        assert!(!info.is_called("s1"));
    }
}
