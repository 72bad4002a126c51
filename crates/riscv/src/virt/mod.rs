//! The RISC-V "virt" platform: memory map, devices, SBI, boot, and the [`Board`] the
//! arch-neutral [`Shell`] turns into a [`pandare_core::Machine`] ([`VirtMachine`]).
//!
//! The memory map follows QEMU's `virt` board so guests and device trees look familiar:
//!
//! | address       | device                              |
//! |---------------|-------------------------------------|
//! | `0x0010_0000` | test finisher (`sifive,test0`)      |
//! | `0x0200_0000` | CLINT                               |
//! | `0x0c00_0000` | PLIC                                |
//! | `0x1000_0000` | 16550 UART, PLIC source 10          |
//! | `0x8000_0000` | RAM                                 |

pub mod boot;
pub mod clint;
pub mod fdt;
pub mod plic;
pub mod sbi;
mod state;

use pandare_core::board::{SerialAddresses, SerialEvent, SliceExit};
use pandare_core::execution::CpuView;
use pandare_core::instrument::Instrumentation;
use pandare_core::{
    Board, Exit, Fnv64, MmioDevice, Ram, RamImage, Shell, ShutdownKind, SnapshotError,
};
use pandare_devices::{MmioBus, Uart16550, Uart16550Config};

use crate::execute::{Cpu, HartExit};
use crate::hart::{irq, Hart, Privilege};
use crate::hooks::RiscvCpu;
use crate::mmu::PAGE_SIZE;

/// Start of RAM.
pub const RAM_BASE: u64 = 0x8000_0000;
/// Test finisher.
pub const TEST_BASE: u64 = 0x10_0000;
/// CLINT.
pub const CLINT_BASE: u64 = 0x200_0000;
/// PLIC.
pub const PLIC_BASE: u64 = 0xc00_0000;
/// Console UART.
pub const UART_BASE: u64 = 0x1000_0000;
/// Size of the UART's window (QEMU's); its registers are byte-spaced at the start.
pub const UART_SIZE: u64 = 0x100;
/// Test finisher window.
const TEST_SIZE: u64 = 0x1000;
/// The UART's PLIC source.
pub const UART_IRQ: usize = 10;
/// The console UART's configuration: byte-spaced registers, PLIC source [`UART_IRQ`].
pub const UART_CONFIG: Uart16550Config = Uart16550Config {
    reg_shift: 0,
    irq: UART_IRQ as u32,
};
/// Virtual time units (instructions) per `time` tick by default: with the 10 MHz
/// timebase this models a 1 GHz hart.
pub const DEFAULT_TIME_DIVISOR: u64 = 100;

/// Who answers the supervisor's environment calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Firmware {
    /// The emulator implements SBI and starts the kernel in S-mode.
    Sbi,
    /// No firmware: the program at the start of RAM runs in M-mode (bare-metal tests).
    None,
}

/// How to build a virt machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtConfig {
    /// RAM size in bytes.
    pub ram_bytes: u64,
    /// Firmware model.
    pub firmware: Firmware,
    /// Kernel command line (`/chosen/bootargs`).
    pub command_line: String,
    /// Virtual time units per `time` tick.
    pub time_divisor: u64,
}

impl Default for VirtConfig {
    fn default() -> Self {
        VirtConfig {
            ram_bytes: 512 << 20,
            firmware: Firmware::Sbi,
            command_line: "console=ttyS0".to_string(),
            time_divisor: DEFAULT_TIME_DIVISOR,
        }
    }
}

/// Errors building a virt machine.
#[derive(Debug, thiserror::Error)]
pub enum VirtError {
    /// RAM size out of range.
    #[error(
        "memory size {bytes} bytes is not usable: give between 16 MiB and 64 GiB, in whole MiB"
    )]
    BadMemorySize {
        /// The size asked for.
        bytes: u64,
    },
    /// The host refused the memory.
    #[error("the host cannot provide {mib} MiB of memory for the guest; give less with --mem")]
    HostMemory {
        /// The size asked for, in MiB.
        mib: u64,
    },
    /// The kernel file is shorter than an Image header.
    #[error("the kernel is only {size} bytes long, too short for a RISC-V Image (is the file truncated?)")]
    KernelTooShort {
        /// File size.
        size: usize,
    },
    /// The kernel file has no RISC-V Image header.
    #[error("the kernel is not a RISC-V Linux Image (no \"RISCV\" magic at byte 48); give the uncompressed Image (Debian's boot/vmlinux-*)")]
    NotAnImage,
    /// Something does not fit in RAM.
    #[error(
        "{what} ({size} bytes) does not fit in {ram_mib} MiB of RAM; give more memory with --mem"
    )]
    DoesNotFit {
        /// What did not fit.
        what: &'static str,
        /// Its size.
        size: u64,
        /// RAM size in MiB.
        ram_mib: u64,
    },
    /// vm-fdt refused the device tree.
    #[error("could not build the device tree: {0}")]
    DeviceTree(String),
}

/// RAM and devices, as the hart sees them.
pub struct Bus {
    /// Guest RAM.
    pub ram: Ram,
    code_pages: Vec<bool>,
    /// Console UART.
    pub uart: Uart16550,
    /// Interrupt controller.
    pub plic: plic::Plic,
    /// Timer and software interrupts.
    pub clint: clint::Clint,
    /// Set when the guest wrote the test finisher.
    pub shutdown: Option<ShutdownKind>,
    /// Which device answers at which physical address.
    mmio: MmioBus<VirtDevice>,
}

/// The devices on the virt board's MMIO bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum VirtDevice {
    TestFinisher,
    Clint,
    Plic,
    Uart,
}

/// The virt board's memory map (see the module documentation).
fn mmio_map() -> MmioBus<VirtDevice> {
    let mut bus = MmioBus::new();
    for (base, size, device) in [
        (TEST_BASE, TEST_SIZE, VirtDevice::TestFinisher),
        (CLINT_BASE, clint::SIZE, VirtDevice::Clint),
        (PLIC_BASE, plic::SIZE, VirtDevice::Plic),
        (UART_BASE, UART_SIZE, VirtDevice::Uart),
    ] {
        bus.insert(base, size, device)
            .expect("the virt board's windows do not overlap");
    }
    bus
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("ram", &format_args!("{} MiB", self.ram.size() >> 20))
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

impl Bus {
    pub(crate) fn new(ram_bytes: u64) -> Bus {
        Bus {
            ram: Ram::new(RAM_BASE, ram_bytes as usize),
            code_pages: vec![false; (ram_bytes / PAGE_SIZE) as usize],
            uart: Uart16550::new(UART_CONFIG),
            plic: plic::Plic::new(),
            clint: clint::Clint::default(),
            shutdown: None,
            mmio: mmio_map(),
        }
    }

    /// Host address of the RAM byte at physical `paddr` (which must be in RAM).
    #[inline]
    pub(crate) fn ram_host_address(&self, paddr: u64) -> u64 {
        self.ram.host_base() + (paddr - RAM_BASE)
    }

    /// Reads `size` bytes little-endian from RAM at `paddr` (in RAM, checked by caller).
    #[inline]
    pub(crate) fn read_ram(&self, paddr: u64, size: u64) -> u64 {
        let start = self.ram.offset(paddr);
        let bytes = &self.ram.as_slice()[start..start + size as usize];
        let mut buffer = [0u8; 8];
        buffer[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(buffer)
    }

    /// Reads `size` bytes at a host address taken from a TLB entry.
    #[inline]
    pub(crate) fn read_host(&self, host: u64, size: u64) -> u64 {
        self.read_ram(host - self.ram_host_address(RAM_BASE) + RAM_BASE, size)
    }

    /// Writes the low `size` bytes of `value` to RAM at `paddr` (in RAM, checked by caller).
    #[inline]
    pub(crate) fn write_ram(&mut self, paddr: u64, size: u64, value: u64) {
        self.ram.write_value(paddr, size as usize, value);
    }

    /// A page-table read: `None` when the address is not in RAM.
    pub(crate) fn read_ram_u64(&self, paddr: u64) -> Option<u64> {
        self.ram.contains(paddr, 8).then(|| self.read_ram(paddr, 8))
    }

    /// A page-table update: false when the address is not in RAM.
    pub(crate) fn write_ram_u64(&mut self, paddr: u64, value: u64) -> bool {
        if !self.ram.contains(paddr, 8) {
            return false;
        }
        self.write_ram(paddr, 8, value);
        true
    }

    /// Marks a RAM page as holding translated code; true when it did not before.
    pub(crate) fn mark_code_page(&mut self, page: u64) -> bool {
        let index = ((page - RAM_BASE) / PAGE_SIZE) as usize;
        !std::mem::replace(&mut self.code_pages[index], true)
    }

    /// Whether a RAM page holds translated code.
    pub(crate) fn is_code_page(&self, page: u64) -> bool {
        self.code_pages[((page - RAM_BASE) / PAGE_SIZE) as usize]
    }

    /// Clears a page's code mark; true when it had one.
    pub(crate) fn take_code_page(&mut self, page: u64) -> bool {
        let index = ((page - RAM_BASE) / PAGE_SIZE) as usize;
        std::mem::replace(&mut self.code_pages[index], false)
    }

    pub(crate) fn clear_code_pages(&mut self) {
        self.code_pages.fill(false);
    }

    /// A device read; `None` when no device's window holds the whole access (an access
    /// fault).
    pub(crate) fn mmio_read(&mut self, paddr: u64, size: u8, time: u64) -> Option<u64> {
        let (device, offset) = self.mmio.find(paddr, size)?;
        Some(match device {
            VirtDevice::Uart => self.uart.read(offset, size, time),
            VirtDevice::Clint => MmioDevice::read(&mut self.clint, offset, size, time),
            VirtDevice::Plic => MmioDevice::read(&mut self.plic, offset, size, time),
            VirtDevice::TestFinisher => 0,
        })
    }

    /// A device write; false when no device's window holds the whole access (an access
    /// fault).
    pub(crate) fn mmio_write(&mut self, paddr: u64, size: u8, value: u64, time: u64) -> bool {
        let Some((device, offset)) = self.mmio.find(paddr, size) else {
            return false;
        };
        match device {
            VirtDevice::Uart => self.uart.write(offset, size, value, time),
            VirtDevice::Clint => MmioDevice::write(&mut self.clint, offset, size, value, time),
            VirtDevice::Plic => MmioDevice::write(&mut self.plic, offset, size, value, time),
            VirtDevice::TestFinisher => {
                if offset == 0 {
                    self.shutdown = match value & 0xffff {
                        0x5555 => Some(ShutdownKind::PowerOff),
                        0x3333 => Some(ShutdownKind::Failure((value >> 16) as u32 & 0xffff)),
                        0x7777 => Some(ShutdownKind::Reboot),
                        _ => self.shutdown,
                    };
                }
            }
        }
        true
    }
}

/// The RISC-V virt board: one hart and its bus. [`VirtMachine`] wraps it in the
/// arch-neutral [`Shell`], which runs it and fires PANDA's callbacks.
#[derive(Debug)]
pub struct Virt {
    /// The CPU.
    pub cpu: Cpu,
    /// RAM and devices.
    pub bus: Bus,
    config: VirtConfig,
}

/// A whole RISC-V virt machine: the [`Virt`] board in the arch-neutral [`Shell`]. It
/// dereferences to the board (`machine.cpu`, `machine.bus`); its callbacks are
/// `machine.instrumentation`.
pub type VirtMachine = Shell<Virt>;

pub(crate) fn check_memory(bytes: u64) -> Result<(), VirtError> {
    if !(16 << 20..=64 << 30).contains(&bytes) || !bytes.is_multiple_of(1 << 20) {
        return Err(VirtError::BadMemorySize { bytes });
    }
    if !host_can_allocate(bytes) {
        return Err(VirtError::HostMemory { mib: bytes >> 20 });
    }
    Ok(())
}

/// Whether the host will hand out `bytes` of zeroed memory, asked the way RAM asks for it
/// (`calloc`, whose pages stay untouched until used) and released at once, so that a size
/// the host refuses is an error rather than an abort in the allocation of RAM.
fn host_can_allocate(bytes: u64) -> bool {
    let Ok(layout) = usize::try_from(bytes)
        .map_err(drop)
        .and_then(|size| std::alloc::Layout::from_size_align(size, 1).map_err(drop))
    else {
        return false;
    };
    // SAFETY: the layout has a non-zero size (`check_memory` asks for at least 16 MiB), and
    // the block, when there is one, is released with the layout it was allocated with.
    unsafe {
        // `black_box`: an allocation nobody looks at may be optimised away, and the probe
        // with it.
        let block = std::hint::black_box(std::alloc::alloc_zeroed(layout));
        if block.is_null() {
            return false;
        }
        std::alloc::dealloc(block, layout);
    }
    true
}

/// Virtual time at which `mtime` (virtual time / `divisor` + `offset`, the offset read as
/// signed: `mtime` may have been written backwards) reaches `compare`; `None` for never
/// (`compare` all ones, or beyond the end of virtual time).
fn timer_deadline(compare: u64, offset: u64, divisor: u64) -> Option<u64> {
    if compare == u64::MAX {
        return None;
    }
    let ticks = i128::from(compare) - i128::from(offset as i64);
    u64::try_from(ticks.max(0) * i128::from(divisor)).ok()
}

fn align_up(value: u64, alignment: u64) -> u64 {
    value.div_ceil(alignment) * alignment
}

impl Virt {
    fn machine(cpu: Cpu, bus: Bus, config: VirtConfig) -> VirtMachine {
        Shell::new(Virt { cpu, bus, config })
    }

    /// Builds a machine that boots a Linux `Image` in S-mode, with the emulator as SBI
    /// firmware.
    pub fn new_linux(
        config: VirtConfig,
        kernel: &[u8],
        initrd: Option<&[u8]>,
    ) -> Result<VirtMachine, VirtError> {
        check_memory(config.ram_bytes)?;
        let header = boot::parse_header(kernel)?;
        let ram_end = RAM_BASE + config.ram_bytes;
        let ram_mib = config.ram_bytes >> 20;
        let kernel_start = RAM_BASE + header.text_offset;
        let kernel_end = kernel_start + header.image_size;
        let fits = |what, size, end: u64| {
            if end > ram_end {
                Err(VirtError::DoesNotFit {
                    what,
                    size,
                    ram_mib,
                })
            } else {
                Ok(())
            }
        };
        fits("the kernel", header.image_size, kernel_end)?;
        // The device tree sits in the top 2 MiB; the initrd at half of RAM or right after
        // the kernel, whichever is higher.
        let dtb_address = (ram_end - 0x20_0000) & !0x1f_ffff;
        let initrd_range = match initrd {
            Some(data) => {
                let start = align_up(kernel_end, 0x20_0000).max(RAM_BASE + config.ram_bytes / 2);
                let end = start + data.len() as u64;
                if end > dtb_address {
                    return Err(VirtError::DoesNotFit {
                        what: "the kernel and initrd",
                        size: header.image_size + data.len() as u64,
                        ram_mib,
                    });
                }
                Some((start, end))
            }
            None => None,
        };
        let dtb =
            fdt::build(&config, initrd_range).map_err(|e| VirtError::DeviceTree(e.to_string()))?;
        fits(
            "the device tree",
            dtb.len() as u64,
            dtb_address + dtb.len() as u64,
        )?;

        let mut bus = Bus::new(config.ram_bytes);
        bus.ram.write_bytes(kernel_start, kernel);
        if let (Some(data), Some((start, _))) = (initrd, initrd_range) {
            bus.ram.write_bytes(start, data);
        }
        bus.ram.write_bytes(dtb_address, &dtb);

        let mut hart = Hart::new(kernel_start, config.time_divisor);
        hart.sbi = true;
        // What an SBI firmware leaves behind: everything delegable handed to S-mode,
        // entry in S-mode with a0 = hart id and a1 = device tree, and OpenSBI's counter
        // setup: every counter readable from S-mode, cycle, time and instret from U-mode
        // until the kernel says otherwise, the programmable counters stopped.
        hart.medeleg = 0xb1ff;
        hart.mideleg = irq::SUPERVISOR;
        hart.mcounteren = 0xffff_ffff;
        hart.scounteren = 7;
        hart.set_mcountinhibit(0xffff_fff8);
        hart.x[10] = 0;
        hart.x[11] = dtb_address;
        hart.set_privilege(Privilege::Supervisor);
        Ok(Virt::machine(Cpu::new(hart), bus, config))
    }

    /// Builds a machine that runs a raw bare-metal program loaded at the start of RAM,
    /// entered in M-mode with no firmware.
    pub fn new_bare_metal(config: VirtConfig, program: &[u8]) -> Result<VirtMachine, VirtError> {
        check_memory(config.ram_bytes)?;
        let config = VirtConfig {
            firmware: Firmware::None,
            ..config
        };
        if program.len() as u64 > config.ram_bytes {
            return Err(VirtError::DoesNotFit {
                what: "the program",
                size: program.len() as u64,
                ram_mib: config.ram_bytes >> 20,
            });
        }
        let mut bus = Bus::new(config.ram_bytes);
        bus.ram.write_bytes(RAM_BASE, program);
        let hart = Hart::new(RAM_BASE, config.time_divisor);
        Ok(Virt::machine(Cpu::new(hart), bus, config))
    }

    /// Builds a machine with empty RAM and a hart in reset state, to be filled by
    /// [`pandare_core::Machine::load_snapshot`] (replays rebuild their machine this way: the recording's
    /// snapshot holds everything, the kernel included).
    pub fn new_blank(config: VirtConfig) -> Result<VirtMachine, VirtError> {
        check_memory(config.ram_bytes)?;
        let hart = Hart::new(RAM_BASE, config.time_divisor);
        Ok(Virt::machine(
            Cpu::new(hart),
            Bus::new(config.ram_bytes),
            config,
        ))
    }

    /// The configuration the machine was built with.
    pub fn config(&self) -> &VirtConfig {
        &self.config
    }

    /// Virtual time at which a timer compare fires, if one is armed and still ahead.
    fn timer_deadlines(&self) -> [Option<u64>; 2] {
        let hart = &self.cpu.hart;
        let (divisor, offset) = (hart.time_divisor(), self.bus.clint.mtime_offset);
        let machine = timer_deadline(self.bus.clint.mtimecmp, offset, divisor);
        // `stimecmp` compares with `time`, which shadows `mtime`.
        let supervisor = if hart.sbi {
            timer_deadline(hart.stimecmp, offset, divisor)
        } else {
            None
        };
        [machine, supervisor]
    }

    /// Brings every interrupt line up to date with device and timer state.
    fn sync_interrupts(&mut self) {
        let now = self.cpu.hart.clock.now();
        let [machine_timer, supervisor_timer] = self.timer_deadlines();
        let bus = &mut self.bus;
        bus.plic.set_level(UART_IRQ, bus.uart.level());
        let hart = &mut self.cpu.hart;
        hart.mtime_offset = bus.clint.mtime_offset;
        hart.set_pending(irq::MEI, bus.plic.interrupt(0));
        hart.set_seip_line(bus.plic.interrupt(1));
        hart.set_pending(irq::MSI, bus.clint.msip);
        hart.set_pending(irq::MTI, machine_timer.is_some_and(|t| t <= now));
        if hart.sbi {
            hart.set_pending(irq::STI, supervisor_timer.is_some_and(|t| t <= now));
        }
    }
}

impl Board for Virt {
    fn architecture(&self) -> &'static str {
        ARCHITECTURE
    }

    fn memory_bytes(&self) -> u64 {
        self.config.ram_bytes
    }

    fn now(&self) -> u64 {
        self.cpu.hart.clock.now()
    }

    fn instruction_count(&self) -> u64 {
        self.cpu.hart.clock.retired
    }

    fn pc(&self) -> u64 {
        self.cpu.hart.pc
    }

    fn next_event(&self) -> Option<u64> {
        let now = self.now();
        self.timer_deadlines()
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
    }

    fn idle_to(&mut self, time: u64) {
        self.cpu.hart.clock.skip_to(time);
    }

    fn sync_interrupts(&mut self) {
        Virt::sync_interrupts(self);
    }

    fn wants_wakeup(&self) -> bool {
        self.cpu.hart.wants_wakeup()
    }

    // Not inline: the shell is generic, so it is compiled in the crate that uses the
    // machine; the executor behind this call stays compiled once, in this crate.
    #[inline(never)]
    fn run_cpu(&mut self, instr: &mut Instrumentation, budget: u64) -> SliceExit {
        match self.cpu.run_with(&mut self.bus, instr, budget) {
            HartExit::Budget | HartExit::Device => SliceExit::Continue,
            HartExit::Stopped => SliceExit::Stopped,
            HartExit::Wfi => SliceExit::WaitForInterrupt,
            HartExit::SupervisorCall => {
                match sbi::handle(&mut self.cpu.hart, &mut self.bus) {
                    sbi::Outcome::Shutdown(kind) => self.bus.shutdown = Some(kind),
                    sbi::Outcome::FlushTranslations => self.cpu.hart.sfence_vma(None),
                    sbi::Outcome::TimerChanged | sbi::Outcome::Continue => {}
                }
                SliceExit::Continue
            }
            HartExit::MachineTrap { cause, pc, tval } => SliceExit::Halt(Exit::UnhandledTrap {
                cause,
                pc,
                value: tval,
            }),
        }
    }

    fn shutdown_requested(&self) -> Option<ShutdownKind> {
        self.bus.shutdown
    }

    fn with_cpu<R>(&mut self, f: impl FnOnce(&mut dyn CpuView) -> R) -> R {
        f(&mut RiscvCpu::new(&mut self.cpu.hart, &mut self.bus))
    }

    fn collect_serial_events(&mut self, collect: bool) {
        self.bus.uart.collect_events(collect);
    }

    fn take_serial_events(&mut self) -> Vec<SerialEvent> {
        self.bus.uart.take_events()
    }

    fn serial_addresses(&self) -> SerialAddresses {
        // The 16550's FIFOs are reached through its data register at its base.
        SerialAddresses {
            fifo: UART_BASE,
            data_register: UART_BASE,
        }
    }

    fn console_input(&mut self, bytes: &[u8]) {
        self.bus.uart.input(bytes);
    }

    fn take_console_output(&mut self) -> Vec<u8> {
        self.bus.uart.take_output()
    }

    fn state_hash(&self) -> u64 {
        let hart = &self.cpu.hart;
        let mut hash = Fnv64::default();
        hart.x[..32].iter().for_each(|&value| hash.word(value));
        hart.f.iter().for_each(|&value| hash.word(value));
        for value in [
            hart.pc,
            hart.privilege as u64,
            hart.mstatus,
            hart.satp,
            hart.clock.retired,
            hart.clock.idle,
        ] {
            hash.word(value);
        }
        hash.finish()
    }

    fn save(&mut self, stopped: Option<Exit>) -> (Vec<u8>, RamImage) {
        let ram = self.bus.ram.capture();
        // Dirty marks were cleared: writes must take the slow path again to set them.
        self.cpu.hart.flush_tlb();
        (self.save_state(stopped), ram)
    }

    fn restore(&mut self, state: &[u8], ram: &RamImage) -> Result<Option<Exit>, SnapshotError> {
        // Validate and apply the state first: it can fail, RAM restore (sizes checked) cannot.
        let stopped = self.restore_state(state).map_err(|error| match error {
            state::StateError::Version { found, expected } => {
                SnapshotError::StateVersion { found, expected }
            }
            other => SnapshotError::InvalidState(other.to_string()),
        })?;
        let changed = self
            .bus
            .ram
            .restore(ram)
            .map_err(|e| SnapshotError::InvalidState(e.to_string()))?;
        self.cpu.forget_code_pages(&mut self.bus, &changed);
        self.cpu.hart.flush_tlb();
        let _ = self.bus.uart.take_output();
        Ok(stopped)
    }
}

/// The architecture name snapshots and images use.
pub const ARCHITECTURE: &str = "riscv64";

#[cfg(test)]
mod tests {
    use super::*;
    use pandare_core::Machine;

    fn program(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn time_csr_shadows_mtime_after_writes() {
        let image = program(&[
            0x0200_c2b7, // lui t0, 0x200c
            0xff82_829b, // addiw t0, t0, -8      (mtime)
            0x0010_0313, // li t1, 1
            0x0283_1313, // slli t1, t1, 40
            0x0062_b023, // sd t1, 0(t0)
            0xc010_2573, // rdtime a0
            0x0002_b023, // sd zero, 0(t0)
            0xc010_25f3, // rdtime a1
            0x0000_006f, // j .
        ]);
        let config = VirtConfig {
            ram_bytes: 16 << 20,
            ..VirtConfig::default()
        };
        let mut machine = Virt::new_bare_metal(config, &image).unwrap();
        machine.cpu.hart.clock.idle = 1_000_000; // time is well past 0
        machine.run(8);
        let x = &machine.cpu.hart.x;
        assert!((1 << 40..(1 << 40) + 10).contains(&x[10]), "{:#x}", x[10]);
        assert!(x[11] < 10, "{:#x}", x[11]);
    }

    #[test]
    fn the_machine_is_send_and_its_cpu_is_readable_between_runs_without_run_callbacks() {
        fn assert_send<T: Send>(_: &T) {}
        use pandare_core::instrument::Callback;
        use std::sync::{Arc, Mutex};

        // li a0, 5; addi a0, a0, 1; j .
        let image = program(&[0x0050_0513, 0x0015_0513, 0x0000_006f]);
        let config = VirtConfig {
            ram_bytes: 16 << 20,
            ..VirtConfig::default()
        };
        let mut machine = Virt::new_bare_metal(config, &image).unwrap();
        assert_send(&machine);
        let log = Arc::new(Mutex::new(Vec::new()));
        for (name, callback) in [
            ("init", {
                let log = Arc::clone(&log);
                Callback::AfterMachineInit(Box::new(move |cpu| {
                    log.lock().unwrap().push(("init", cpu.instruction_count()));
                }))
            }),
            ("top", {
                let log = Arc::clone(&log);
                Callback::TopLoop(Box::new(move |cpu| {
                    log.lock().unwrap().push(("top", cpu.instruction_count()));
                }))
            }),
            ("wait", {
                let log = Arc::clone(&log);
                Callback::MainLoopWait(Box::new(move || log.lock().unwrap().push(("wait", 0))))
            }),
        ] {
            machine.instrumentation.register(name, callback).unwrap();
        }
        // Reading the CPU first fires nothing: machine init stays due for the first run.
        let a0 = machine.with_cpu(|cpu| cpu.register("a0").unwrap());
        assert_eq!(a0, 0);
        assert!(log.lock().unwrap().is_empty());
        machine.run(2);
        let a0 = machine.with_cpu(|cpu| {
            cpu.set_register("a1", 7).unwrap();
            cpu.register("a0").unwrap()
        });
        assert_eq!(a0, 6);
        assert_eq!(machine.cpu.hart.reg(11), 7);
        assert_eq!(*log.lock().unwrap(), [("init", 0), ("top", 0), ("wait", 0)]);
        // A stop asked for through the view ends the next run before its first block.
        machine.with_cpu(|cpu| cpu.request_stop());
        let before = machine.instruction_count();
        assert_eq!(machine.run(100), Exit::BudgetExhausted);
        assert!(machine.instrumentation.take_stopped());
        assert_eq!(machine.instruction_count(), before);
    }

    #[test]
    fn timer_deadlines_follow_mtime_written_either_way() {
        // mtime = time + offset; the compare is reached at (compare - offset) ticks.
        assert_eq!(timer_deadline(u64::MAX, 0, 100), None);
        assert_eq!(timer_deadline(50, 0, 100), Some(5000));
        assert_eq!(timer_deadline(50, 40, 100), Some(1000));
        assert_eq!(timer_deadline(50, 60, 100), Some(0));
        // mtime written below the current time: the offset is negative.
        assert_eq!(timer_deadline(50, -1000i64 as u64, 100), Some(105_000));
        assert_eq!(timer_deadline(u64::MAX - 1, -1i64 as u64, 100), None);
    }
}
