//! The hart's architectural state, trap entry and return, and interrupt selection.
//!
//! Privileged architecture 1.12: M, S and U modes; synchronous traps and interrupts go to
//! M-mode unless delegated by `medeleg`/`mideleg` while below M; `stvec`/`mtvec` vectored
//! mode applies to interrupts only.

use crate::mmu::Tlb;
use pandare_core::VirtualClock;

/// Privilege levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Privilege {
    /// User mode.
    User = 0,
    /// Supervisor mode.
    Supervisor = 1,
    /// Machine mode.
    Machine = 3,
}

impl Privilege {
    /// The privilege encoded in `mstatus.MPP`; the reserved value 2 reads as User.
    pub fn from_bits(bits: u64) -> Privilege {
        match bits & 3 {
            3 => Privilege::Machine,
            1 => Privilege::Supervisor,
            _ => Privilege::User,
        }
    }
}

/// A synchronous exception about to be taken: cause code and trap value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Trap {
    /// Exception code (`mcause` without the interrupt bit).
    pub cause: u64,
    /// Value for `mtval`/`stval`.
    pub tval: u64,
}

#[allow(missing_docs)]
impl Trap {
    pub const INSTRUCTION_MISALIGNED: u64 = 0;
    pub const INSTRUCTION_ACCESS: u64 = 1;
    pub const ILLEGAL_INSTRUCTION: u64 = 2;
    pub const BREAKPOINT: u64 = 3;
    pub const LOAD_MISALIGNED: u64 = 4;
    pub const LOAD_ACCESS: u64 = 5;
    pub const STORE_MISALIGNED: u64 = 6;
    pub const STORE_ACCESS: u64 = 7;
    pub const ECALL_FROM_U: u64 = 8;
    pub const ECALL_FROM_S: u64 = 9;
    pub const ECALL_FROM_M: u64 = 11;
    pub const INSTRUCTION_PAGE_FAULT: u64 = 12;
    pub const LOAD_PAGE_FAULT: u64 = 13;
    pub const STORE_PAGE_FAULT: u64 = 15;

    /// A trap with cause and value.
    pub fn new(cause: u64, tval: u64) -> Trap {
        Trap { cause, tval }
    }

    /// An illegal-instruction trap carrying the instruction bits.
    pub fn illegal(bits: u64) -> Trap {
        Trap::new(Trap::ILLEGAL_INSTRUCTION, bits)
    }
}

/// `mstatus` bits.
#[allow(missing_docs)]
pub mod mstatus {
    pub const SIE: u64 = 1 << 1;
    pub const MIE: u64 = 1 << 3;
    pub const SPIE: u64 = 1 << 5;
    pub const MPIE: u64 = 1 << 7;
    pub const SPP: u64 = 1 << 8;
    pub const MPP_SHIFT: u64 = 11;
    pub const MPP: u64 = 3 << MPP_SHIFT;
    pub const FS_SHIFT: u64 = 13;
    pub const FS: u64 = 3 << FS_SHIFT;
    pub const MPRV: u64 = 1 << 17;
    pub const SUM: u64 = 1 << 18;
    pub const MXR: u64 = 1 << 19;
    pub const TVM: u64 = 1 << 20;
    pub const TW: u64 = 1 << 21;
    pub const TSR: u64 = 1 << 22;
    pub const UXL: u64 = 3 << 32;
    pub const SXL: u64 = 3 << 34;
    pub const SD: u64 = 1 << 63;
    /// Bits M-mode can write.
    pub const WRITABLE: u64 =
        SIE | MIE | SPIE | MPIE | SPP | MPP | FS | MPRV | SUM | MXR | TVM | TW | TSR;
    /// Bits visible through `sstatus`.
    pub const SSTATUS: u64 = SIE | SPIE | SPP | FS | SUM | MXR | UXL | SD;
    /// Bits S-mode can write through `sstatus`.
    pub const SSTATUS_WRITABLE: u64 = SIE | SPIE | SPP | FS | SUM | MXR;
}

/// Interrupt bits of `mip`/`mie`.
#[allow(missing_docs)]
pub mod irq {
    pub const SSI: u64 = 1 << 1;
    pub const MSI: u64 = 1 << 3;
    pub const STI: u64 = 1 << 5;
    pub const MTI: u64 = 1 << 7;
    pub const SEI: u64 = 1 << 9;
    pub const MEI: u64 = 1 << 11;
    /// Interrupts S-mode may own when delegated.
    pub const SUPERVISOR: u64 = SSI | STI | SEI;
    /// All implemented interrupts.
    pub const ALL: u64 = SSI | MSI | STI | MTI | SEI | MEI;
    /// Priority order for taking interrupts (privileged spec 3.1.9).
    pub const PRIORITY: [u64; 6] = [MEI, MSI, MTI, SEI, SSI, STI];
}

/// The counters of `mcountinhibit`, `mcounteren` and `scounteren`: bit `n` is
/// `hpmcounter`/`cycle`/`time`/`instret` number `n`, CSR `0xc00 + n`.
#[allow(missing_docs)]
pub mod counter {
    pub const CYCLE: u32 = 0;
    pub const TIME: u32 = 1;
    pub const INSTRET: u32 = 2;
    /// `mcountinhibit` bits that exist: every counter but `time`.
    pub const INHIBITABLE: u64 = 0xffff_fffd;
}

/// Number of TLB sets: user, supervisor, supervisor with SUM, machine.
pub(crate) const TLB_SETS: usize = 4;

/// A RISC-V hart: registers, CSRs, the software TLB and virtual time.
///
/// Hot fields come first. Integer register 32 is the sink for writes to `x0`.
pub struct Hart {
    /// Integer registers; `x[32]` absorbs writes to `x0`.
    pub x: [u64; 33],
    /// Program counter.
    pub pc: u64,
    /// Virtual time and retired-instruction count.
    pub clock: VirtualClock,
    pub(crate) tlb: Box<[Tlb; TLB_SETS]>,
    /// TLB set used by instruction fetch and by data accesses (they differ under MPRV).
    pub(crate) fetch_set: usize,
    pub(crate) data_set: usize,
    /// Floating-point registers (raw bits; singles NaN-boxed).
    pub f: [u64; 32],
    /// Current privilege.
    pub privilege: Privilege,
    /// Accrued FP exception flags (`fflags`).
    pub fflags: u8,
    /// Dynamic rounding mode (`frm`).
    pub frm: u8,
    pub(crate) mstatus: u64,
    pub(crate) mip: u64,
    pub(crate) mie: u64,
    pub(crate) medeleg: u64,
    pub(crate) mideleg: u64,
    pub(crate) mtvec: u64,
    pub(crate) stvec: u64,
    pub(crate) mepc: u64,
    pub(crate) sepc: u64,
    pub(crate) mcause: u64,
    pub(crate) scause: u64,
    pub(crate) mtval: u64,
    pub(crate) stval: u64,
    pub(crate) mscratch: u64,
    pub(crate) sscratch: u64,
    pub(crate) satp: u64,
    pub(crate) mcounteren: u64,
    pub(crate) scounteren: u64,
    pub(crate) menvcfg: u64,
    pub(crate) senvcfg: u64,
    /// Which counters are stopped ([`counter`] bits; `time` cannot be).
    pub(crate) mcountinhibit: u64,
    pub(crate) pmpcfg: [u64; 2],
    pub(crate) pmpaddr: [u64; 16],
    /// `mcycle` and `minstret`, as [`Hart::counter`] reads them: while a counter runs,
    /// its value minus its source (virtual time for `mcycle`, retired instructions for
    /// `minstret`); while `mcountinhibit` stops it, the value itself.
    pub(crate) cycle_base: u64,
    pub(crate) instret_base: u64,
    /// Reservation set by LR (physical address), cleared by SC and traps.
    pub(crate) reservation: Option<u64>,
    /// Virtual time units per `time` tick.
    pub(crate) time_divisor: u64,
    /// Added to [`Hart::time`] to give the `time` CSR: the CLINT's `mtime` offset (set by
    /// writes to `mtime`), which the platform copies here before every run slice, so that
    /// `time` keeps shadowing `mtime`.
    pub(crate) mtime_offset: u64,
    /// `mip.SEIP` as software wrote it; the bit reads as this OR the interrupt
    /// controller's line ([`Hart::set_seip_line`]).
    pub(crate) seip_software: bool,
    /// The interrupt controller's supervisor external interrupt line.
    pub(crate) seip_line: bool,
    /// Supervisor timer compare (SBI `set_timer`), in `time` ticks.
    pub stimecmp: u64,
    /// Whether an SBI implementation in the emulator answers `ecall` from S-mode.
    pub(crate) sbi: bool,
    /// Hart id (`mhartid`).
    pub hart_id: u64,
    /// Physical pages holding translated code that stores modified since the executor
    /// last looked; their blocks must be dropped.
    pub(crate) modified_code_pages: Vec<u64>,
}

impl std::fmt::Debug for Hart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hart")
            .field("pc", &format_args!("{:#x}", self.pc))
            .field("privilege", &self.privilege)
            .field("retired", &self.clock.retired)
            .finish_non_exhaustive()
    }
}

impl Hart {
    /// A hart in reset state: M-mode at `pc`, everything else zero.
    pub fn new(pc: u64, time_divisor: u64) -> Hart {
        let mut hart = Hart {
            x: [0; 33],
            pc,
            clock: VirtualClock::default(),
            tlb: Box::new([Tlb::new(), Tlb::new(), Tlb::new(), Tlb::new()]),
            fetch_set: 3,
            data_set: 3,
            f: [0; 32],
            privilege: Privilege::Machine,
            fflags: 0,
            frm: 0,
            mstatus: mstatus::UXL & (2 << 32) | mstatus::SXL & (2 << 34),
            mip: 0,
            mie: 0,
            medeleg: 0,
            mideleg: 0,
            mtvec: 0,
            stvec: 0,
            mepc: 0,
            sepc: 0,
            mcause: 0,
            scause: 0,
            mtval: 0,
            stval: 0,
            mscratch: 0,
            sscratch: 0,
            satp: 0,
            mcounteren: 0,
            scounteren: 0,
            menvcfg: 0,
            senvcfg: 0,
            mcountinhibit: 0,
            pmpcfg: [0; 2],
            pmpaddr: [0; 16],
            cycle_base: 0,
            instret_base: 0,
            reservation: None,
            time_divisor: time_divisor.max(1),
            mtime_offset: 0,
            seip_software: false,
            seip_line: false,
            stimecmp: u64::MAX,
            sbi: false,
            hart_id: 0,
            modified_code_pages: Vec::new(),
        };
        hart.update_tlb_sets();
        hart
    }

    /// Integer register `index` (0–31).
    #[inline]
    pub fn reg(&self, index: usize) -> u64 {
        self.x[index]
    }

    /// Sets integer register `index` (0–31); writes to x0 are ignored.
    #[inline]
    pub fn set_reg(&mut self, index: usize, value: u64) {
        if index != 0 && index < 32 {
            self.x[index] = value;
        }
    }

    /// `mstatus` as software reads it (with SD derived from FS).
    pub fn mstatus(&self) -> u64 {
        let mut value = self.mstatus;
        if value & mstatus::FS == mstatus::FS {
            value |= mstatus::SD;
        }
        value
    }

    /// `satp`.
    pub fn satp(&self) -> u64 {
        self.satp
    }

    /// Pending interrupt bits (`mip`).
    pub fn mip(&self) -> u64 {
        self.mip
    }

    /// Sets or clears interrupt-pending bits driven by devices and timers.
    #[inline]
    pub fn set_pending(&mut self, bits: u64, level: bool) {
        if level {
            self.mip |= bits;
        } else {
            self.mip &= !bits;
        }
    }

    /// Drives the supervisor external interrupt line from the interrupt controller:
    /// `mip.SEIP` is this line OR the bit software wrote (privileged spec 3.1.9).
    #[inline]
    pub fn set_seip_line(&mut self, level: bool) {
        self.seip_line = level;
        self.set_pending(irq::SEI, level || self.seip_software);
    }

    /// The guest-visible `time` value.
    #[inline]
    pub fn time(&self) -> u64 {
        self.clock.now() / self.time_divisor
    }

    /// Virtual time units per `time` tick.
    pub fn time_divisor(&self) -> u64 {
        self.time_divisor
    }

    /// What a counter counts: virtual time for `mcycle` (one unit per instruction, plus
    /// the time skipped while idle: the cycles of a 1 GHz hart that retires one
    /// instruction per cycle), retired instructions for `minstret`.
    fn counter_source(&self, index: u32) -> u64 {
        if index == counter::CYCLE {
            self.clock.now()
        } else {
            self.clock.retired
        }
    }

    fn counter_base(&mut self, index: u32) -> &mut u64 {
        if index == counter::CYCLE {
            &mut self.cycle_base
        } else {
            &mut self.instret_base
        }
    }

    pub(crate) fn counter_stopped(&self, index: u32) -> bool {
        self.mcountinhibit >> index & 1 != 0
    }

    /// `mcycle` ([`counter::CYCLE`]) or `minstret` ([`counter::INSTRET`]) now: the
    /// instructions before this point have counted, the current one has not.
    pub fn counter(&self, index: u32) -> u64 {
        let base = if index == counter::CYCLE {
            self.cycle_base
        } else {
            self.instret_base
        };
        if self.counter_stopped(index) {
            base
        } else {
            base.wrapping_add(self.counter_source(index))
        }
    }

    /// Sets `mcycle` or `minstret` so that it reads `value` now.
    pub(crate) fn set_counter(&mut self, index: u32, value: u64) {
        let base = if self.counter_stopped(index) {
            value
        } else {
            value.wrapping_sub(self.counter_source(index))
        };
        *self.counter_base(index) = base;
    }

    /// Writes `mcountinhibit` (WARL: `time` cannot be stopped): a stopped counter keeps
    /// its value, a restarted one counts on from it.
    pub(crate) fn set_mcountinhibit(&mut self, value: u64) {
        let values = [counter::CYCLE, counter::INSTRET].map(|index| self.counter(index));
        self.mcountinhibit = value & counter::INHIBITABLE;
        for (index, value) in [counter::CYCLE, counter::INSTRET].into_iter().zip(values) {
            self.set_counter(index, value);
        }
    }

    /// Whether the hart is in a state where FP instructions are enabled.
    #[inline]
    pub(crate) fn fp_enabled(&self) -> bool {
        self.mstatus & mstatus::FS != 0
    }

    /// Marks FP state dirty after an FP register or `fcsr` write.
    #[inline]
    pub(crate) fn fp_dirty(&mut self) {
        self.mstatus |= mstatus::FS;
    }

    /// Recomputes which TLB sets fetches and data accesses use, after a privilege or
    /// `mstatus` change.
    pub(crate) fn update_tlb_sets(&mut self) {
        let set_for = |privilege: Privilege, sum: bool| match privilege {
            Privilege::User => 0,
            Privilege::Supervisor if sum => 2,
            Privilege::Supervisor => 1,
            Privilege::Machine => 3,
        };
        let sum = self.mstatus & mstatus::SUM != 0;
        self.fetch_set = set_for(self.privilege, sum);
        let data_privilege =
            if self.privilege == Privilege::Machine && self.mstatus & mstatus::MPRV != 0 {
                Privilege::from_bits(self.mstatus >> mstatus::MPP_SHIFT)
            } else {
                self.privilege
            };
        self.data_set = set_for(data_privilege, sum);
    }

    /// Privilege used for data accesses (MPRV applies MPP to M-mode loads and stores).
    pub(crate) fn data_privilege(&self) -> Privilege {
        match self.data_set {
            0 => Privilege::User,
            1 | 2 => Privilege::Supervisor,
            _ => Privilege::Machine,
        }
    }

    /// Flushes every TLB entry.
    pub(crate) fn flush_tlb(&mut self) {
        for set in self.tlb.iter_mut() {
            set.flush();
        }
    }

    pub(crate) fn set_privilege(&mut self, privilege: Privilege) {
        self.privilege = privilege;
        self.update_tlb_sets();
    }

    /// Takes a synchronous exception at `pc`.
    pub fn take_trap(&mut self, trap: Trap, pc: u64) {
        self.enter_trap(trap.cause, false, trap.tval, pc);
    }

    /// Enters the trap handler for `cause` (an interrupt when `interrupt`). Returns the
    /// privilege the trap went to.
    pub(crate) fn enter_trap(&mut self, cause: u64, interrupt: bool, tval: u64, pc: u64) {
        self.reservation = None;
        let delegated = if interrupt {
            self.mideleg >> cause & 1 != 0
        } else {
            self.medeleg >> cause & 1 != 0
        };
        let cause_value = cause | if interrupt { 1 << 63 } else { 0 };
        if self.privilege <= Privilege::Supervisor && delegated {
            self.scause = cause_value;
            self.sepc = pc;
            self.stval = tval;
            let sie = self.mstatus & mstatus::SIE != 0;
            self.mstatus &= !(mstatus::SPIE | mstatus::SPP | mstatus::SIE);
            if sie {
                self.mstatus |= mstatus::SPIE;
            }
            if self.privilege == Privilege::Supervisor {
                self.mstatus |= mstatus::SPP;
            }
            self.pc = trap_vector(self.stvec, cause, interrupt);
            self.set_privilege(Privilege::Supervisor);
        } else {
            self.mcause = cause_value;
            self.mepc = pc;
            self.mtval = tval;
            let mie = self.mstatus & mstatus::MIE != 0;
            self.mstatus &= !(mstatus::MPIE | mstatus::MPP | mstatus::MIE);
            if mie {
                self.mstatus |= mstatus::MPIE;
            }
            self.mstatus |= (self.privilege as u64) << mstatus::MPP_SHIFT;
            self.pc = trap_vector(self.mtvec, cause, interrupt);
            self.set_privilege(Privilege::Machine);
        }
    }

    /// The interrupt to take now, if any: pending, enabled, and allowed by the current
    /// privilege and global enables.
    #[inline]
    pub fn pending_interrupt(&self) -> Option<u64> {
        let pending = self.mip & self.mie;
        if pending == 0 {
            return None;
        }
        self.select_interrupt(pending)
    }

    #[cold]
    fn select_interrupt(&self, pending: u64) -> Option<u64> {
        let machine_enabled =
            self.privilege < Privilege::Machine || self.mstatus & mstatus::MIE != 0;
        let supervisor_enabled = self.privilege < Privilege::Supervisor
            || self.privilege == Privilege::Supervisor && self.mstatus & mstatus::SIE != 0;
        let mut takeable = 0;
        if machine_enabled {
            takeable |= pending & !self.mideleg;
        }
        if supervisor_enabled {
            takeable |= pending & self.mideleg;
        }
        irq::PRIORITY
            .iter()
            .find(|&&bit| takeable & bit != 0)
            .map(|bit| u64::from(bit.trailing_zeros()))
    }

    /// Whether any enabled interrupt is pending, whatever the global enables say (WFI
    /// wakes on this).
    #[inline]
    pub fn wants_wakeup(&self) -> bool {
        self.mip & self.mie != 0
    }

    /// Returns from an M-mode trap (`mret`).
    pub(crate) fn mret(&mut self) {
        let previous = Privilege::from_bits(self.mstatus >> mstatus::MPP_SHIFT);
        let mpie = self.mstatus & mstatus::MPIE != 0;
        self.mstatus &= !(mstatus::MIE | mstatus::MPP);
        if mpie {
            self.mstatus |= mstatus::MIE;
        }
        self.mstatus |= mstatus::MPIE;
        if previous != Privilege::Machine {
            self.mstatus &= !mstatus::MPRV;
        }
        self.pc = self.mepc;
        self.set_privilege(previous);
    }

    /// Returns from an S-mode trap (`sret`).
    pub(crate) fn sret(&mut self) {
        let previous = if self.mstatus & mstatus::SPP != 0 {
            Privilege::Supervisor
        } else {
            Privilege::User
        };
        let spie = self.mstatus & mstatus::SPIE != 0;
        self.mstatus &= !(mstatus::SIE | mstatus::SPP);
        if spie {
            self.mstatus |= mstatus::SIE;
        }
        self.mstatus |= mstatus::SPIE;
        self.mstatus &= !mstatus::MPRV;
        self.pc = self.sepc;
        self.set_privilege(previous);
    }
}

fn trap_vector(tvec: u64, cause: u64, interrupt: bool) -> u64 {
    let base = tvec & !3;
    if interrupt && tvec & 3 == 1 {
        base.wrapping_add(4 * cause)
    } else {
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delegated_exception_from_user_goes_to_supervisor_and_saves_state() {
        let mut hart = Hart::new(0x8000_0000, 100);
        hart.medeleg = 1 << Trap::ECALL_FROM_U;
        hart.stvec = 0x8000_1000;
        hart.mstatus |= mstatus::SIE;
        hart.set_privilege(Privilege::User);
        hart.take_trap(Trap::new(Trap::ECALL_FROM_U, 0), 0x1234);
        assert_eq!(hart.privilege, Privilege::Supervisor);
        assert_eq!((hart.pc, hart.sepc, hart.scause), (0x8000_1000, 0x1234, 8));
        assert_eq!(hart.mstatus & mstatus::SPP, 0);
        assert_ne!(hart.mstatus & mstatus::SPIE, 0);
        assert_eq!(hart.mstatus & mstatus::SIE, 0);
    }

    #[test]
    fn exceptions_in_machine_mode_are_never_delegated() {
        let mut hart = Hart::new(0x8000_0000, 100);
        hart.medeleg = !0;
        hart.mtvec = 0x100;
        hart.take_trap(Trap::illegal(0), 0x200);
        assert_eq!(hart.privilege, Privilege::Machine);
        assert_eq!((hart.pc, hart.mepc, hart.mcause), (0x100, 0x200, 2));
    }

    #[test]
    fn vectored_tvec_applies_to_interrupts_only() {
        assert_eq!(trap_vector(0x1001, 5, true), 0x1014);
        assert_eq!(trap_vector(0x1001, 5, false), 0x1000);
    }

    #[test]
    fn supervisor_interrupts_wait_for_sie_in_supervisor_mode() {
        let mut hart = Hart::new(0, 100);
        hart.mideleg = irq::SUPERVISOR;
        hart.mie = irq::STI;
        hart.mip = irq::STI;
        hart.set_privilege(Privilege::Supervisor);
        assert_eq!(hart.pending_interrupt(), None);
        hart.mstatus |= mstatus::SIE;
        assert_eq!(hart.pending_interrupt(), Some(5));
        hart.set_privilege(Privilege::User);
        hart.mstatus &= !mstatus::SIE;
        assert_eq!(hart.pending_interrupt(), Some(5));
    }
}
