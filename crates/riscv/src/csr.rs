//! Control and status registers: numbers, access rules and WARL behaviour.
//!
//! A CSR's privilege is bits 9:8 of its number and bits 11:10 == 0b11 mark it read-only
//! (privileged spec 2.1). Unimplemented CSRs raise illegal-instruction.

use crate::hart::{counter, irq, mstatus, Hart, Privilege, Trap};

#[allow(missing_docs)]
pub mod number {
    pub const FFLAGS: u16 = 0x001;
    pub const FRM: u16 = 0x002;
    pub const FCSR: u16 = 0x003;
    pub const CYCLE: u16 = 0xc00;
    pub const TIME: u16 = 0xc01;
    pub const INSTRET: u16 = 0xc02;
    pub const SSTATUS: u16 = 0x100;
    pub const SIE: u16 = 0x104;
    pub const STVEC: u16 = 0x105;
    pub const SCOUNTEREN: u16 = 0x106;
    pub const SENVCFG: u16 = 0x10a;
    pub const SSCRATCH: u16 = 0x140;
    pub const SEPC: u16 = 0x141;
    pub const SCAUSE: u16 = 0x142;
    pub const STVAL: u16 = 0x143;
    pub const SIP: u16 = 0x144;
    pub const SATP: u16 = 0x180;
    pub const MVENDORID: u16 = 0xf11;
    pub const MARCHID: u16 = 0xf12;
    pub const MIMPID: u16 = 0xf13;
    pub const MHARTID: u16 = 0xf14;
    pub const MCONFIGPTR: u16 = 0xf15;
    pub const MSTATUS: u16 = 0x300;
    pub const MISA: u16 = 0x301;
    pub const MEDELEG: u16 = 0x302;
    pub const MIDELEG: u16 = 0x303;
    pub const MIE: u16 = 0x304;
    pub const MTVEC: u16 = 0x305;
    pub const MCOUNTEREN: u16 = 0x306;
    pub const MENVCFG: u16 = 0x30a;
    pub const MCOUNTINHIBIT: u16 = 0x320;
    pub const MSCRATCH: u16 = 0x340;
    pub const MEPC: u16 = 0x341;
    pub const MCAUSE: u16 = 0x342;
    pub const MTVAL: u16 = 0x343;
    pub const MIP: u16 = 0x344;
    pub const PMPCFG0: u16 = 0x3a0;
    pub const PMPCFG2: u16 = 0x3a2;
    pub const PMPADDR0: u16 = 0x3b0;
    pub const PMPADDR15: u16 = 0x3bf;
    pub const MCYCLE: u16 = 0xb00;
    pub const MINSTRET: u16 = 0xb02;
    pub const MHPMCOUNTER3: u16 = 0xb03;
    pub const MHPMCOUNTER31: u16 = 0xb1f;
    pub const HPMCOUNTER3: u16 = 0xc03;
    pub const HPMCOUNTER31: u16 = 0xc1f;
    pub const MHPMEVENT3: u16 = 0x323;
    pub const MHPMEVENT31: u16 = 0x33f;
}

use number::*;

/// `misa`: RV64 with A, C, D, F, I, M, S, U.
pub const MISA_VALUE: u64 = (2 << 62)
    | 1 // A
    | 1 << 2 // C
    | 1 << 3 // D
    | 1 << 5 // F
    | 1 << 8 // I
    | 1 << 12 // M
    | 1 << 18 // S
    | 1 << 20; // U

/// Exceptions that `medeleg` can delegate (all but ecall from M).
const MEDELEG_WRITABLE: u64 = 0xb3ff;
/// `satp` ASID width implemented: 16 bits.
const SATP_ASID_MASK: u64 = 0xffff << 44;
const SATP_PPN_MASK: u64 = (1 << 44) - 1;

/// What a CSR write changed beyond the register itself, so the executor can react.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CsrEffect {
    /// Nothing else changed.
    None,
    /// Translation changed: the TLB was flushed.
    Translation,
}

impl Hart {
    fn counter_allowed(&self, privilege: Privilege, csr: u16) -> bool {
        let bit = 1u64 << (csr & 31);
        match privilege {
            Privilege::Machine => true,
            Privilege::Supervisor => self.mcounteren & bit != 0,
            Privilege::User => self.mcounteren & bit != 0 && self.scounteren & bit != 0,
        }
    }

    /// Reads a CSR as the current privilege; illegal-instruction when it does not exist or
    /// is not accessible.
    pub(crate) fn read_csr(&self, csr: u16, bits: u32) -> Result<u64, Trap> {
        self.read_csr_as(self.privilege, csr, bits)
    }

    /// Reads a CSR the way M-mode would, for debuggers and test harnesses: no side
    /// effects, `None` when the CSR does not exist (or is off, like `fcsr` with FS = 0).
    pub fn peek_csr(&self, csr: u16) -> Option<u64> {
        self.read_csr_as(Privilege::Machine, csr, 0).ok()
    }

    fn read_csr_as(&self, privilege: Privilege, csr: u16, bits: u32) -> Result<u64, Trap> {
        let illegal = Trap::illegal(u64::from(bits));
        if (csr >> 8) & 3 > privilege as u16 {
            return Err(illegal);
        }
        let value = match csr {
            FFLAGS | FRM | FCSR if !self.fp_enabled() => return Err(illegal),
            FFLAGS => u64::from(self.fflags),
            FRM => u64::from(self.frm),
            FCSR => u64::from(self.fflags) | u64::from(self.frm) << 5,
            CYCLE | TIME | INSTRET | HPMCOUNTER3..=HPMCOUNTER31 => {
                if !self.counter_allowed(privilege, csr) {
                    return Err(illegal);
                }
                match csr {
                    CYCLE => self.counter(counter::CYCLE),
                    TIME => self.time().wrapping_add(self.mtime_offset),
                    INSTRET => self.counter(counter::INSTRET),
                    // Zihpm: the programmable counters are not implemented, so they
                    // read as zero where the counter-enable bits allow them.
                    _ => 0,
                }
            }
            SSTATUS => self.mstatus() & mstatus::SSTATUS,
            SIE => self.mie & self.mideleg,
            STVEC => self.stvec,
            SCOUNTEREN => self.scounteren,
            SENVCFG => self.senvcfg,
            SSCRATCH => self.sscratch,
            SEPC => self.sepc,
            SCAUSE => self.scause,
            STVAL => self.stval,
            SIP => self.mip & self.mideleg,
            SATP => {
                if privilege == Privilege::Supervisor && self.mstatus & mstatus::TVM != 0 {
                    return Err(illegal);
                }
                self.satp
            }
            MVENDORID | MARCHID | MIMPID | MCONFIGPTR => 0,
            MHARTID => self.hart_id,
            MSTATUS => self.mstatus(),
            MISA => MISA_VALUE,
            MEDELEG => self.medeleg,
            MIDELEG => self.mideleg,
            MIE => self.mie,
            MTVEC => self.mtvec,
            MCOUNTEREN => self.mcounteren,
            MENVCFG => self.menvcfg,
            MCOUNTINHIBIT => self.mcountinhibit,
            MSCRATCH => self.mscratch,
            MEPC => self.mepc,
            MCAUSE => self.mcause,
            MTVAL => self.mtval,
            MIP => self.mip,
            PMPCFG0 => self.pmpcfg[0],
            PMPCFG2 => self.pmpcfg[1],
            PMPADDR0..=PMPADDR15 => self.pmpaddr[usize::from(csr - PMPADDR0)],
            MCYCLE => self.counter(counter::CYCLE),
            MINSTRET => self.counter(counter::INSTRET),
            MHPMCOUNTER3..=MHPMCOUNTER31 | MHPMEVENT3..=MHPMEVENT31 => 0,
            _ => return Err(illegal),
        };
        Ok(value)
    }

    /// Writes a CSR as the current privilege. The caller has already checked that the
    /// register is readable (so it exists and the privilege suffices).
    pub(crate) fn write_csr(&mut self, csr: u16, value: u64, bits: u32) -> Result<CsrEffect, Trap> {
        let illegal = Trap::illegal(u64::from(bits));
        if csr >> 10 == 3 {
            return Err(illegal);
        }
        match csr {
            FFLAGS => {
                self.fflags = (value & 0x1f) as u8;
                self.fp_dirty();
            }
            FRM => {
                self.frm = (value & 7) as u8;
                self.fp_dirty();
            }
            FCSR => {
                self.fflags = (value & 0x1f) as u8;
                self.frm = ((value >> 5) & 7) as u8;
                self.fp_dirty();
            }
            SSTATUS => {
                let merged =
                    self.mstatus & !mstatus::SSTATUS_WRITABLE | value & mstatus::SSTATUS_WRITABLE;
                return Ok(self.set_mstatus(merged));
            }
            SIE => self.mie = self.mie & !self.mideleg | value & self.mideleg,
            STVEC => self.stvec = legal_tvec(value, self.stvec),
            SCOUNTEREN => self.scounteren = value & 0xffff_ffff,
            SENVCFG => self.senvcfg = 0,
            SSCRATCH => self.sscratch = value,
            SEPC => self.sepc = value & !1,
            SCAUSE => self.scause = value,
            STVAL => self.stval = value,
            SIP => {
                let writable = irq::SSI & self.mideleg;
                self.mip = self.mip & !writable | value & writable;
            }
            SATP => {
                if self.privilege == Privilege::Supervisor && self.mstatus & mstatus::TVM != 0 {
                    return Err(illegal);
                }
                // WARL: a write with an unsupported mode has no effect at all.
                let mode = value >> 60;
                if !matches!(mode, 0 | 8 | 9) {
                    return Ok(CsrEffect::None);
                }
                self.satp = value & (0xf << 60 | SATP_ASID_MASK | SATP_PPN_MASK);
                self.flush_tlb();
                return Ok(CsrEffect::Translation);
            }
            MSTATUS => {
                let merged = self.mstatus & !mstatus::WRITABLE | value & mstatus::WRITABLE;
                return Ok(self.set_mstatus(merged));
            }
            MISA | MCONFIGPTR | MVENDORID | MARCHID | MIMPID | MHARTID => {}
            MEDELEG => self.medeleg = value & MEDELEG_WRITABLE,
            MIDELEG => self.mideleg = value & irq::SUPERVISOR,
            MIE => self.mie = value & irq::ALL,
            MTVEC => self.mtvec = legal_tvec(value, self.mtvec),
            MCOUNTEREN => self.mcounteren = value & 0xffff_ffff,
            MENVCFG => self.menvcfg = 0,
            MCOUNTINHIBIT => self.set_mcountinhibit(value),
            MSCRATCH => self.mscratch = value,
            MEPC => self.mepc = value & !1,
            MCAUSE => self.mcause = value,
            MTVAL => self.mtval = value,
            MIP => {
                // SSIP, STIP and SEIP are writable by M-mode; the rest come from devices.
                // SEIP reads as the written bit OR the interrupt controller's line.
                let writable = irq::SSI | irq::STI;
                self.mip = self.mip & !writable | value & writable;
                self.seip_software = value & irq::SEI != 0;
                self.set_seip_line(self.seip_line);
            }
            PMPCFG0 => self.pmpcfg[0] = value,
            PMPCFG2 => self.pmpcfg[1] = value,
            PMPADDR0..=PMPADDR15 => {
                self.pmpaddr[usize::from(csr - PMPADDR0)] = value & ((1 << 54) - 1);
            }
            // This instruction's cycle still counts after the write.
            MCYCLE => self.set_counter(counter::CYCLE, value),
            MINSTRET => {
                // The write takes the place of this instruction's own increment, which a
                // running counter adds when the instruction retires.
                let stopped = self.mcountinhibit >> counter::INSTRET & 1 != 0;
                let value = if stopped {
                    value
                } else {
                    value.wrapping_sub(1)
                };
                self.set_counter(counter::INSTRET, value);
            }
            MHPMCOUNTER3..=MHPMCOUNTER31 | MHPMEVENT3..=MHPMEVENT31 => {}
            _ => return Err(illegal),
        }
        Ok(CsrEffect::None)
    }

    /// The value a CSRRS/CSRRC instruction modifies, given what it read: for `mip`,
    /// only the software-written SEIP takes part, not the interrupt controller's line.
    pub(crate) fn csr_modify_base(&self, csr: u16, read: u64) -> u64 {
        if csr == MIP {
            read & !irq::SEI | if self.seip_software { irq::SEI } else { 0 }
        } else {
            read
        }
    }

    fn set_mstatus(&mut self, value: u64) -> CsrEffect {
        let mut value = value;
        // MPP is WARL: the reserved encoding 2 becomes User.
        if (value & mstatus::MPP) >> mstatus::MPP_SHIFT == 2 {
            value &= !mstatus::MPP;
        }
        let old = self.mstatus;
        self.mstatus = value & !mstatus::SD;
        let translation = mstatus::MPRV | mstatus::MPP | mstatus::SUM | mstatus::MXR;
        if (old ^ self.mstatus) & translation != 0 {
            if (old ^ self.mstatus) & mstatus::MXR != 0 {
                self.flush_tlb();
            }
            self.update_tlb_sets();
            return CsrEffect::Translation;
        }
        CsrEffect::None
    }
}

/// `xtvec` is WARL: modes 2 and 3 are reserved, so such a write keeps the old mode.
fn legal_tvec(value: u64, old: u64) -> u64 {
    match value & 3 {
        0 | 1 => value,
        _ => value & !3 | old & 3,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hart_in(privilege: Privilege) -> Hart {
        let mut hart = Hart::new(0, 100);
        hart.set_privilege(privilege);
        hart
    }

    #[test]
    fn supervisor_cannot_touch_machine_csrs() {
        let hart = hart_in(Privilege::Supervisor);
        assert_eq!(hart.read_csr(MSTATUS, 7).unwrap_err(), Trap::illegal(7));
    }

    #[test]
    fn writes_to_read_only_csrs_are_illegal() {
        let mut hart = hart_in(Privilege::Machine);
        assert!(hart.write_csr(MHARTID, 1, 9).is_err());
        assert!(hart.write_csr(CYCLE, 1, 9).is_err());
    }

    #[test]
    fn satp_write_with_unsupported_mode_is_ignored() {
        let mut hart = hart_in(Privilege::Supervisor);
        hart.write_csr(SATP, 8 << 60 | 0x1234, 0).unwrap();
        hart.write_csr(SATP, 10 << 60 | 0x5678, 0).unwrap();
        assert_eq!(hart.read_csr(SATP, 0).unwrap(), 8 << 60 | 0x1234);
    }

    #[test]
    fn sstatus_is_a_view_of_mstatus() {
        let mut hart = hart_in(Privilege::Machine);
        hart.write_csr(SSTATUS, !0, 0).unwrap();
        let status = hart.read_csr(MSTATUS, 0).unwrap();
        assert_ne!(status & mstatus::SUM, 0);
        assert_eq!(status & mstatus::MIE, 0);
        assert_ne!(status & mstatus::SD, 0, "FS dirty implies SD");
    }

    #[test]
    fn stopped_counters_keep_their_value_and_restart_from_it() {
        let mut hart = hart_in(Privilege::Machine);
        hart.clock.retired = 100;
        hart.clock.idle = 50;
        // mcycle counts virtual time (instructions and idle time), minstret instructions.
        assert_eq!(hart.read_csr(MCYCLE, 0).unwrap(), 150);
        assert_eq!(hart.read_csr(MINSTRET, 0).unwrap(), 100);
        hart.write_csr(MCOUNTINHIBIT, 0b101, 0).unwrap();
        hart.clock.retired += 1000;
        assert_eq!(hart.read_csr(CYCLE, 0).unwrap(), 150);
        assert_eq!(hart.read_csr(INSTRET, 0).unwrap(), 100);
        // A write to a stopped counter is what it reads; restarted, it counts on.
        hart.write_csr(MINSTRET, 7, 0).unwrap();
        assert_eq!(hart.read_csr(MINSTRET, 0).unwrap(), 7);
        hart.write_csr(MCOUNTINHIBIT, 0, 0).unwrap();
        hart.clock.retired += 3;
        assert_eq!(hart.read_csr(MCYCLE, 0).unwrap(), 153);
        assert_eq!(hart.read_csr(MINSTRET, 0).unwrap(), 10);
    }

    #[test]
    fn time_cannot_be_stopped() {
        let mut hart = hart_in(Privilege::Machine);
        hart.write_csr(MCOUNTINHIBIT, !0, 0).unwrap();
        assert_eq!(hart.read_csr(MCOUNTINHIBIT, 0).unwrap(), 0xffff_fffd);
        hart.clock.retired = 1000;
        assert_eq!(hart.read_csr(TIME, 0).unwrap(), 10);
    }

    #[test]
    fn a_running_minstret_write_replaces_the_writing_instructions_increment() {
        let mut hart = hart_in(Privilege::Machine);
        hart.clock.retired = 40;
        hart.write_csr(MINSTRET, 500, 0).unwrap();
        hart.clock.retired += 1; // the csrw retires
        assert_eq!(hart.read_csr(MINSTRET, 0).unwrap(), 500);
        hart.write_csr(MCYCLE, 500, 0).unwrap();
        hart.clock.retired += 1;
        assert_eq!(hart.read_csr(MCYCLE, 0).unwrap(), 501);
    }

    #[test]
    fn programmable_counters_read_zero_where_counteren_allows_them() {
        let mut hart = hart_in(Privilege::Supervisor);
        assert!(hart.read_csr(HPMCOUNTER3, 0).is_err());
        hart.mcounteren = 0xffff_ffff;
        hart.scounteren = 0x2;
        assert_eq!(hart.read_csr(HPMCOUNTER3, 0).unwrap(), 0);
        assert_eq!(hart.read_csr(HPMCOUNTER31, 0).unwrap(), 0);
        hart.set_privilege(Privilege::User);
        assert!(hart.read_csr(HPMCOUNTER3, 0).is_err());
        assert!(hart.read_csr(CYCLE, 0).is_err());
        assert!(hart.read_csr(TIME, 0).is_ok());
        hart.scounteren = 1 << 3;
        assert_eq!(hart.read_csr(HPMCOUNTER3, 0).unwrap(), 0);
        // Machine counters stay out of reach below M-mode.
        assert!(hart.read_csr(MCYCLE, 0).is_err());
    }

    #[test]
    fn counters_follow_counteren_in_user_mode() {
        let mut hart = hart_in(Privilege::User);
        assert!(hart.read_csr(TIME, 0).is_err());
        hart.mcounteren = 7;
        hart.scounteren = 2;
        assert!(hart.read_csr(TIME, 0).is_ok());
        assert!(hart.read_csr(CYCLE, 0).is_err());
    }

    #[test]
    fn software_seip_is_ored_with_the_line_and_alone_in_read_modify_writes() {
        let mut hart = hart_in(Privilege::Machine);
        hart.set_seip_line(true);
        let read = hart.read_csr(MIP, 0).unwrap();
        assert_eq!(read & irq::SEI, irq::SEI);
        // csrrs mip, SSIP while the line is high must not latch SEIP as written.
        hart.write_csr(MIP, hart.csr_modify_base(MIP, read) | irq::SSI, 0)
            .unwrap();
        hart.set_seip_line(false);
        assert_eq!(
            hart.read_csr(MIP, 0).unwrap() & (irq::SEI | irq::SSI),
            irq::SSI
        );
        // A written SEIP survives the line's updates.
        hart.write_csr(MIP, irq::SEI, 0).unwrap();
        hart.set_seip_line(false);
        assert_eq!(hart.read_csr(MIP, 0).unwrap() & irq::SEI, irq::SEI);
    }

    #[test]
    fn fp_csrs_are_illegal_while_fs_is_off() {
        let hart = hart_in(Privilege::Machine);
        assert!(hart.read_csr(FCSR, 0).is_err());
    }
}
