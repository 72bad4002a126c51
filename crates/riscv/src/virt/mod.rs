//! The RISC-V "virt" platform: memory map, devices, SBI, boot, and the [`Machine`] impl.
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
pub mod uart;

use pandare_core::instrument::{Callback, CallbackKind, Instrumentation};
use pandare_core::{Exit, Fnv64, Machine, Ram, ShutdownKind, Snapshot, SnapshotError};

use crate::execute::{Cpu, HartExit};
use crate::hart::{irq, Hart, Privilege};
use crate::mmu::PAGE_SIZE;
use uart::SerialEvent;

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
/// The UART's PLIC source.
pub const UART_IRQ: usize = 10;
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
    pub uart: uart::Uart,
    /// Interrupt controller.
    pub plic: plic::Plic,
    /// Timer and software interrupts.
    pub clint: clint::Clint,
    /// Set when the guest wrote the test finisher.
    pub shutdown: Option<ShutdownKind>,
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
    fn new(ram_bytes: u64) -> Bus {
        Bus {
            ram: Ram::new(RAM_BASE, ram_bytes as usize),
            code_pages: vec![false; (ram_bytes / PAGE_SIZE) as usize],
            uart: uart::Uart::default(),
            plic: plic::Plic::new(),
            clint: clint::Clint::default(),
            shutdown: None,
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

    /// A device read; `None` when nothing answers at `paddr` (an access fault).
    pub(crate) fn mmio_read(&mut self, paddr: u64, size: u8, time: u64) -> Option<u64> {
        match paddr {
            UART_BASE..0x1000_0100 => Some(u64::from(self.uart.read(paddr - UART_BASE))),
            CLINT_BASE..0x201_0000 => Some(self.clint.read(paddr - CLINT_BASE, size, time)),
            PLIC_BASE..0xc60_0000 => Some(u64::from(self.plic.read(paddr - PLIC_BASE))),
            TEST_BASE..0x10_1000 => Some(0),
            _ => None,
        }
    }

    /// A device write; false when nothing answers at `paddr` (an access fault).
    pub(crate) fn mmio_write(&mut self, paddr: u64, size: u8, value: u64, time: u64) -> bool {
        match paddr {
            UART_BASE..0x1000_0100 => self.uart.write(paddr - UART_BASE, value as u8),
            CLINT_BASE..0x201_0000 => self.clint.write(paddr - CLINT_BASE, size, value, time),
            PLIC_BASE..0xc60_0000 => self.plic.write(paddr - PLIC_BASE, value as u32),
            TEST_BASE..0x10_1000 => {
                if paddr == TEST_BASE {
                    self.shutdown = match value & 0xffff {
                        0x5555 => Some(ShutdownKind::PowerOff),
                        0x3333 => Some(ShutdownKind::Failure((value >> 16) as u32 & 0xffff)),
                        0x7777 => Some(ShutdownKind::Reboot),
                        _ => self.shutdown,
                    };
                }
            }
            _ => return false,
        }
        true
    }
}

/// A whole RISC-V virt machine: one hart and its bus.
#[derive(Debug)]
pub struct VirtMachine {
    /// The CPU.
    pub cpu: Cpu,
    /// RAM and devices.
    pub bus: Bus,
    config: VirtConfig,
    /// Set once the guest has asked to stop or crashed; later runs return it again.
    stopped: Option<Exit>,
    /// PANDA's callbacks (see `docs/callbacks.md`).
    pub instrumentation: Instrumentation,
}

fn check_memory(bytes: u64) -> Result<(), VirtError> {
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

impl VirtMachine {
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
        Ok(VirtMachine {
            cpu: Cpu::new(hart),
            bus,
            config,
            stopped: None,
            instrumentation: Instrumentation::default(),
        })
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
        Ok(VirtMachine {
            cpu: Cpu::new(hart),
            bus,
            config,
            stopped: None,
            instrumentation: Instrumentation::default(),
        })
    }

    /// Builds a machine with empty RAM and a hart in reset state, to be filled by
    /// [`Machine::load_snapshot`] (replays rebuild their machine this way: the recording's
    /// snapshot holds everything, the kernel included).
    pub fn new_blank(config: VirtConfig) -> Result<VirtMachine, VirtError> {
        check_memory(config.ram_bytes)?;
        let hart = Hart::new(RAM_BASE, config.time_divisor);
        Ok(VirtMachine {
            cpu: Cpu::new(hart),
            bus: Bus::new(config.ram_bytes),
            config,
            stopped: None,
            instrumentation: Instrumentation::default(),
        })
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

    /// `after_machine_init` (first run only), `top_loop` and `main_loop_wait`, at the start
    /// of a run slice.
    #[cold]
    fn machine_level_hooks(&mut self, first_run: bool) {
        let instr = &mut self.instrumentation;
        instr.apply_pending();
        let (hart, bus) = (&mut self.cpu.hart, &mut self.bus);
        if first_run {
            crate::hooks::fire!(instr, hart, bus, AfterMachineInit, |cb, cpu| cb(cpu));
        }
        crate::hooks::fire!(instr, hart, bus, TopLoop, |cb, cpu| cb(cpu));
        if instr.has(CallbackKind::MainLoopWait) {
            for callback in instr.enabled(CallbackKind::MainLoopWait) {
                if let Callback::MainLoopWait(f) = callback {
                    f();
                }
            }
        }
    }

    /// The replay-time serial callbacks for what the UART did since they last fired: right
    /// after the access that caused it (a device access ends the executor's slice), or
    /// after recorded input was queued. The FIFO address they get is the UART's base, the
    /// port address its data register's.
    #[cold]
    fn fire_serial_events(&mut self) {
        use crate::hooks::fire;
        let events = self.bus.uart.take_events();
        let instr = &mut self.instrumentation;
        let (hart, bus) = (&mut self.cpu.hart, &mut self.bus);
        const FIFO: u64 = UART_BASE;
        const DATA_REGISTER: u64 = UART_BASE;
        for event in events {
            match event {
                SerialEvent::Receive(value) => {
                    fire!(instr, hart, bus, ReplaySerialReceive, |cb, cpu| cb(
                        cpu, FIFO, value
                    ));
                }
                SerialEvent::Read(value) => {
                    fire!(instr, hart, bus, ReplaySerialRead, |cb, cpu| cb(
                        cpu,
                        FIFO,
                        DATA_REGISTER,
                        value
                    ));
                }
                SerialEvent::Write(value) => {
                    fire!(instr, hart, bus, ReplaySerialWrite, |cb, cpu| cb(
                        cpu,
                        FIFO,
                        DATA_REGISTER,
                        value
                    ));
                }
                SerialEvent::Send(value) => {
                    fire!(instr, hart, bus, ReplaySerialSend, |cb, cpu| cb(
                        cpu, FIFO, value
                    ));
                }
            }
        }
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

impl Machine for VirtMachine {
    fn run(&mut self, budget: u64) -> Exit {
        if let Some(exit) = self.stopped {
            return exit;
        }
        let end = self.now().saturating_add(budget);
        let first_run = self.instrumentation.take_machine_init();
        if self.instrumentation.active() {
            self.machine_level_hooks(first_run);
        }
        loop {
            self.sync_interrupts();
            let now = self.now();
            if now >= end {
                return Exit::BudgetExhausted;
            }
            let slice_end = match self.next_event() {
                Some(event) if event > now => event.min(end),
                _ => end,
            };
            let instrumentation = &mut self.instrumentation;
            let serial_events = instrumentation.wants_serial_events();
            self.bus.uart.collect_events(serial_events);
            let exit = self
                .cpu
                .run_with(&mut self.bus, instrumentation, slice_end - now);
            if serial_events {
                self.fire_serial_events();
            }
            match exit {
                HartExit::Budget | HartExit::Device => {}
                // `Instrumentation::take_stopped` tells the caller why the slice ended.
                HartExit::Stopped => return Exit::BudgetExhausted,
                HartExit::Wfi => {
                    self.sync_interrupts();
                    if !self.cpu.hart.wants_wakeup() {
                        return Exit::Idle;
                    }
                }
                HartExit::SupervisorCall => match sbi::handle(&mut self.cpu.hart, &mut self.bus) {
                    sbi::Outcome::Shutdown(kind) => self.bus.shutdown = Some(kind),
                    sbi::Outcome::FlushTranslations => self.cpu.hart.sfence_vma(None),
                    sbi::Outcome::TimerChanged | sbi::Outcome::Continue => {}
                },
                HartExit::MachineTrap { cause, pc, tval } => {
                    let exit = Exit::UnhandledTrap {
                        cause,
                        pc,
                        value: tval,
                    };
                    self.stopped = Some(exit);
                    return exit;
                }
            }
            if let Some(kind) = self.bus.shutdown {
                if self.instrumentation.has(CallbackKind::PreShutdown) {
                    for callback in self.instrumentation.enabled(CallbackKind::PreShutdown) {
                        if let Callback::PreShutdown(f) = callback {
                            f();
                        }
                    }
                }
                let exit = Exit::Shutdown(kind);
                self.stopped = Some(exit);
                return exit;
            }
            // A stop asked for in the slice's last block ends the run here.
            if self.instrumentation.take_stop() {
                return Exit::BudgetExhausted;
            }
        }
    }

    fn now(&self) -> u64 {
        self.cpu.hart.clock.now()
    }

    fn instrumentation(&mut self) -> &mut Instrumentation {
        &mut self.instrumentation
    }

    fn instruction_count(&self) -> u64 {
        self.cpu.hart.clock.retired
    }

    fn next_event(&self) -> Option<u64> {
        let now = self.now();
        self.timer_deadlines()
            .into_iter()
            .flatten()
            .filter(|&t| t > now)
            .min()
    }

    fn skip_to(&mut self, time: u64) {
        let limit = self.next_event().unwrap_or(time);
        self.cpu.hart.clock.skip_to(time.min(limit));
    }

    fn console_input(&mut self, bytes: &[u8]) {
        let serial_events = self.instrumentation.wants_serial_events();
        self.bus.uart.collect_events(serial_events);
        self.bus.uart.input(bytes);
        if serial_events {
            self.fire_serial_events();
        }
    }

    fn take_console_output(&mut self) -> Vec<u8> {
        self.bus.uart.take_output()
    }

    fn architecture(&self) -> &'static str {
        ARCHITECTURE
    }

    fn memory_bytes(&self) -> u64 {
        self.config.ram_bytes
    }

    fn pc(&self) -> u64 {
        self.cpu.hart.pc
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

    fn register_dump(&self) -> String {
        const NAMES: [&str; 32] = [
            "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3",
            "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11",
            "t3", "t4", "t5", "t6",
        ];
        let hart = &self.cpu.hart;
        let mut text = format!(
            "pc       {:016x}  priv {:?}  instructions {}\n",
            hart.pc, hart.privilege, hart.clock.retired
        );
        for (index, name) in NAMES.iter().enumerate() {
            text += &format!("x{index:<2} {name:<4} {:016x}", hart.x[index]);
            text += if index % 4 == 3 { "\n" } else { "  " };
        }
        text += &format!(
            "mstatus  {:016x}  satp {:016x}  stvec {:016x}  sepc {:016x}\n",
            hart.mstatus(),
            hart.satp,
            hart.stvec,
            hart.sepc
        );
        text += &format!(
            "mcounteren {:016x}  scounteren {:016x}  mcountinhibit {:016x}\n",
            hart.mcounteren, hart.scounteren, hart.mcountinhibit
        );
        text
    }

    fn save_snapshot(&mut self) -> Snapshot {
        let ram = self.bus.ram.capture();
        // Dirty marks were cleared: writes must take the slow path again to set them.
        self.cpu.hart.flush_tlb();
        Snapshot {
            architecture: ARCHITECTURE.to_string(),
            memory_bytes: self.config.ram_bytes,
            state: self.save_state(),
            ram,
        }
    }

    fn load_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), SnapshotError> {
        if self.instrumentation.has(CallbackKind::BeforeLoadvm) {
            for callback in self.instrumentation.enabled(CallbackKind::BeforeLoadvm) {
                if let Callback::BeforeLoadvm(f) = callback {
                    f();
                }
            }
        }
        if snapshot.architecture != ARCHITECTURE {
            return Err(SnapshotError::WrongArchitecture {
                expected: ARCHITECTURE.to_string(),
                found: snapshot.architecture.clone(),
            });
        }
        if snapshot.memory_bytes != self.config.ram_bytes
            || snapshot.ram.page_count() as u64 * PAGE_SIZE != self.config.ram_bytes
        {
            return Err(SnapshotError::WrongMemorySize {
                expected: self.config.ram_bytes >> 20,
                found: snapshot.memory_bytes >> 20,
            });
        }
        // Validate and apply the state first: it can fail, RAM restore (sizes checked) cannot.
        self.restore_state(&snapshot.state)
            .map_err(|error| match error {
                state::StateError::Version { found, expected } => {
                    SnapshotError::StateVersion { found, expected }
                }
                other => SnapshotError::InvalidState(other.to_string()),
            })?;
        let changed = self
            .bus
            .ram
            .restore(&snapshot.ram)
            .map_err(|e| SnapshotError::InvalidState(e.to_string()))?;
        self.cpu.forget_code_pages(&mut self.bus, &changed);
        self.cpu.hart.flush_tlb();
        let _ = self.bus.uart.take_output();
        crate::hooks::fire!(
            &mut self.instrumentation,
            &mut self.cpu.hart,
            &mut self.bus,
            AfterLoadvm,
            |cb, cpu| cb(cpu)
        );
        Ok(())
    }
}

/// The architecture name snapshots and images use.
pub const ARCHITECTURE: &str = "riscv64";

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut machine = VirtMachine::new_bare_metal(config, &image).unwrap();
        machine.cpu.hart.clock.idle = 1_000_000; // time is well past 0
        machine.run(8);
        let x = &machine.cpu.hart.x;
        assert!((1 << 40..(1 << 40) + 10).contains(&x[10]), "{:#x}", x[10]);
        assert!(x[11] < 10, "{:#x}", x[11]);
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
