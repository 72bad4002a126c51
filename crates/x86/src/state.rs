//! Architectural state of one x86 CPU: general registers, RIP, RFLAGS, segment registers
//! with their hidden descriptor caches, descriptor-table registers, control registers,
//! EFER and the model-specific registers Linux touches, and the x87/MMX/SSE register state
//! (`pandare-x86-float`'s [`X87State`] and [`SseState`]; MMi alias the x87 registers' significands).

pub use pandare_x86_float::sse::SseState;
pub use pandare_x86_float::x87::{F80Bits, X87State};

/// RFLAGS bits.
pub mod flags {
    /// Carry.
    pub const CF: u64 = 1 << 0;
    /// Always one.
    pub const FIXED: u64 = 1 << 1;
    /// Parity of the low result byte.
    pub const PF: u64 = 1 << 2;
    /// Auxiliary carry (out of bit 3).
    pub const AF: u64 = 1 << 4;
    /// Zero.
    pub const ZF: u64 = 1 << 6;
    /// Sign.
    pub const SF: u64 = 1 << 7;
    /// Trap (single step).
    pub const TF: u64 = 1 << 8;
    /// Interrupt enable.
    pub const IF: u64 = 1 << 9;
    /// Direction.
    pub const DF: u64 = 1 << 10;
    /// Overflow.
    pub const OF: u64 = 1 << 11;
    /// I/O privilege level (two bits).
    pub const IOPL: u64 = 3 << 12;
    /// Nested task.
    pub const NT: u64 = 1 << 14;
    /// Resume.
    pub const RF: u64 = 1 << 16;
    /// Virtual-8086 mode.
    pub const VM: u64 = 1 << 17;
    /// Alignment check / access control.
    pub const AC: u64 = 1 << 18;
    /// Virtual interrupt flag.
    pub const VIF: u64 = 1 << 19;
    /// Virtual interrupt pending.
    pub const VIP: u64 = 1 << 20;
    /// CPUID available (writable).
    pub const ID: u64 = 1 << 21;
    /// The six arithmetic flags.
    pub const ARITH: u64 = CF | PF | AF | ZF | SF | OF;
    /// Every bit software can change (the rest read as 0, bit 1 as 1).
    pub const WRITABLE: u64 = ARITH | TF | IF | DF | IOPL | NT | RF | AC | ID | VIF | VIP | VM;
}

/// Control-register bits.
pub mod cr {
    /// CR0: protection enable.
    pub const CR0_PE: u64 = 1 << 0;
    /// CR0: monitor coprocessor.
    pub const CR0_MP: u64 = 1 << 1;
    /// CR0: emulation (no x87).
    pub const CR0_EM: u64 = 1 << 2;
    /// CR0: task switched.
    pub const CR0_TS: u64 = 1 << 3;
    /// CR0: extension type (reads as 1).
    pub const CR0_ET: u64 = 1 << 4;
    /// CR0: numeric error.
    pub const CR0_NE: u64 = 1 << 5;
    /// CR0: write protect (supervisor writes honour read-only pages).
    pub const CR0_WP: u64 = 1 << 16;
    /// CR0: alignment mask.
    pub const CR0_AM: u64 = 1 << 18;
    /// CR0: not write-through.
    pub const CR0_NW: u64 = 1 << 29;
    /// CR0: cache disable.
    pub const CR0_CD: u64 = 1 << 30;
    /// CR0: paging.
    pub const CR0_PG: u64 = 1 << 31;
    /// CR4: virtual-8086 mode extensions.
    pub const CR4_VME: u64 = 1 << 0;
    /// CR4: protected-mode virtual interrupts.
    pub const CR4_PVI: u64 = 1 << 1;
    /// CR4: time stamp disable (RDTSC privileged).
    pub const CR4_TSD: u64 = 1 << 2;
    /// CR4: debugging extensions.
    pub const CR4_DE: u64 = 1 << 3;
    /// CR4: 4 MiB pages in 32-bit paging.
    pub const CR4_PSE: u64 = 1 << 4;
    /// CR4: physical address extension.
    pub const CR4_PAE: u64 = 1 << 5;
    /// CR4: machine-check enable.
    pub const CR4_MCE: u64 = 1 << 6;
    /// CR4: global pages.
    pub const CR4_PGE: u64 = 1 << 7;
    /// CR4: performance-counter enable.
    pub const CR4_PCE: u64 = 1 << 8;
    /// CR4: FXSAVE/FXRSTOR and SSE enabled by the OS.
    pub const CR4_OSFXSR: u64 = 1 << 9;
    /// CR4: unmasked SIMD floating-point exceptions.
    pub const CR4_OSXMMEXCPT: u64 = 1 << 10;
    /// The CR4 bits this CPU implements; setting another raises #GP.
    pub const CR4_SUPPORTED: u64 = CR4_VME
        | CR4_PVI
        | CR4_TSD
        | CR4_DE
        | CR4_PSE
        | CR4_PAE
        | CR4_MCE
        | CR4_PGE
        | CR4_PCE
        | CR4_OSFXSR
        | CR4_OSXMMEXCPT;
}

/// Model-specific register numbers and EFER bits.
pub mod msr {
    /// Time-stamp counter.
    pub const TSC: u32 = 0x10;
    /// Local APIC base.
    pub const APIC_BASE: u32 = 0x1b;
    /// SYSENTER CS.
    pub const SYSENTER_CS: u32 = 0x174;
    /// SYSENTER ESP.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// SYSENTER EIP.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// Miscellaneous features enable.
    pub const MISC_ENABLE: u32 = 0x1a0;
    /// Page attribute table.
    pub const PAT: u32 = 0x277;
    /// TSC deadline (local APIC timer).
    pub const TSC_DEADLINE: u32 = 0x6e0;
    /// Extended feature enables.
    pub const EFER: u32 = 0xc000_0080;
    /// SYSCALL/SYSRET selectors.
    pub const STAR: u32 = 0xc000_0081;
    /// SYSCALL target in 64-bit mode.
    pub const LSTAR: u32 = 0xc000_0082;
    /// SYSCALL target in compatibility mode.
    pub const CSTAR: u32 = 0xc000_0083;
    /// RFLAGS bits SYSCALL clears.
    pub const SFMASK: u32 = 0xc000_0084;
    /// FS base.
    pub const FS_BASE: u32 = 0xc000_0100;
    /// GS base.
    pub const GS_BASE: u32 = 0xc000_0101;
    /// The GS base SWAPGS exchanges with GS_BASE.
    pub const KERNEL_GS_BASE: u32 = 0xc000_0102;
    /// EFER: SYSCALL enable.
    pub const EFER_SCE: u64 = 1 << 0;
    /// EFER: long mode enable.
    pub const EFER_LME: u64 = 1 << 8;
    /// EFER: long mode active (read-only, set by the CPU).
    pub const EFER_LMA: u64 = 1 << 10;
    /// EFER: no-execute enable.
    pub const EFER_NXE: u64 = 1 << 11;
}

/// A segment register with its hidden descriptor cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// The visible selector.
    pub selector: u16,
    /// Cached base address.
    pub base: u64,
    /// Cached limit, in bytes (already scaled by the granularity bit).
    pub limit: u32,
    /// Cached attributes in the VMX "access rights" layout: type (bits 0–3), S (4),
    /// DPL (5–6), P (7), AVL (12), L (13), D/B (14), G (15).
    pub attributes: u16,
}

impl Segment {
    /// Attribute bit: present.
    pub const PRESENT: u16 = 1 << 7;
    /// Attribute bit: code or data (not system).
    pub const S: u16 = 1 << 4;
    /// Attribute bit: 64-bit code.
    pub const L: u16 = 1 << 13;
    /// Attribute bit: default operation size 32 bits / big stack.
    pub const DB: u16 = 1 << 14;
    /// Attribute bit: 4 KiB granularity.
    pub const G: u16 = 1 << 15;

    /// A flat 4 GiB segment with the given selector and attributes.
    pub const fn flat(selector: u16, attributes: u16) -> Segment {
        Segment {
            selector,
            base: 0,
            limit: 0xffff_ffff,
            attributes,
        }
    }

    /// The cache a descriptor's 8 bytes (`low` holding bytes 0–3, `high` bytes 4–7) load.
    pub fn from_descriptor(selector: u16, low: u32, high: u32) -> Segment {
        let base = (low >> 16) | ((high & 0xff) << 16) | (high & 0xff00_0000);
        let raw_limit = (low & 0xffff) | (high & 0x000f_0000);
        let attributes = ((high >> 8) & 0xf0ff) as u16;
        let limit = if attributes & Segment::G != 0 {
            (raw_limit << 12) | 0xfff
        } else {
            raw_limit
        };
        Segment {
            selector,
            base: base as u64,
            limit,
            attributes,
        }
    }

    /// Descriptor privilege level.
    pub fn dpl(&self) -> u8 {
        ((self.attributes >> 5) & 3) as u8
    }

    /// The type field (bits 0–3).
    pub fn kind(&self) -> u8 {
        (self.attributes & 0xf) as u8
    }

    /// Whether the segment is usable (present, non-null).
    pub fn present(&self) -> bool {
        self.attributes & Segment::PRESENT != 0
    }
}

/// Segment register indices (the hardware's encoding order).
pub mod seg {
    /// ES.
    pub const ES: usize = 0;
    /// CS.
    pub const CS: usize = 1;
    /// SS.
    pub const SS: usize = 2;
    /// DS.
    pub const DS: usize = 3;
    /// FS.
    pub const FS: usize = 4;
    /// GS.
    pub const GS: usize = 5;
}

/// GDTR or IDTR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableRegister {
    /// Linear base address.
    pub base: u64,
    /// Limit (last valid byte offset).
    pub limit: u16,
}

/// The execution mode, from CR0.PE, EFER.LMA, CS.L and CS.D.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Real-address mode (16-bit).
    Real,
    /// 16-bit protected or compatibility mode.
    Protected16,
    /// 32-bit protected mode or compatibility mode.
    Protected32,
    /// 64-bit mode.
    Long64,
}

impl Mode {
    /// The decoder's bitness.
    pub fn bitness(self) -> u32 {
        match self {
            Mode::Real | Mode::Protected16 => 16,
            Mode::Protected32 => 32,
            Mode::Long64 => 64,
        }
    }
}

/// The general registers, in the hardware's numbering (RAX = 0 … R15 = 15).
pub mod gpr {
    /// RAX.
    pub const RAX: usize = 0;
    /// RCX.
    pub const RCX: usize = 1;
    /// RDX.
    pub const RDX: usize = 2;
    /// RBX.
    pub const RBX: usize = 3;
    /// RSP.
    pub const RSP: usize = 4;
    /// RBP.
    pub const RBP: usize = 5;
    /// RSI.
    pub const RSI: usize = 6;
    /// RDI.
    pub const RDI: usize = 7;
    /// R8.
    pub const R8: usize = 8;
    /// R9.
    pub const R9: usize = 9;
    /// R10.
    pub const R10: usize = 10;
    /// R11.
    pub const R11: usize = 11;
}

/// Everything the CPU's architecture defines, apart from memory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    /// RAX … R15.
    pub gpr: [u64; 16],
    /// Instruction pointer.
    pub rip: u64,
    /// Flags (bit 1 always set).
    pub rflags: u64,
    /// ES, CS, SS, DS, FS, GS.
    pub segments: [Segment; 6],
    /// Local descriptor table register.
    pub ldtr: Segment,
    /// Task register.
    pub tr: Segment,
    /// Global descriptor table register.
    pub gdtr: TableRegister,
    /// Interrupt descriptor table register.
    pub idtr: TableRegister,
    /// Current privilege level.
    pub cpl: u8,
    /// CR0.
    pub cr0: u64,
    /// CR2 (last page-fault address).
    pub cr2: u64,
    /// CR3.
    pub cr3: u64,
    /// CR4.
    pub cr4: u64,
    /// CR8 (task priority).
    pub cr8: u64,
    /// EFER.
    pub efer: u64,
    /// STAR.
    pub star: u64,
    /// LSTAR.
    pub lstar: u64,
    /// CSTAR.
    pub cstar: u64,
    /// SFMASK.
    pub sfmask: u64,
    /// KERNEL_GS_BASE.
    pub kernel_gs_base: u64,
    /// SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP.
    pub sysenter: [u64; 3],
    /// Offset of the TSC from the retired-instruction count.
    pub tsc_offset: u64,
    /// TSC_DEADLINE.
    pub tsc_deadline: u64,
    /// APIC_BASE.
    pub apic_base: u64,
    /// PAT.
    pub pat: u64,
    /// MISC_ENABLE.
    pub misc_enable: u64,
    /// Debug registers DR0–DR7 (DR4/DR5 unused: they alias DR6/DR7). Values only:
    /// breakpoints through them are not implemented yet.
    pub dr: [u64; 8],
    /// Whether the CPU is halted (HLT) until an interrupt.
    pub halted: bool,
    /// Interrupts are inhibited for one instruction (after STI or MOV SS).
    pub interrupt_shadow: bool,
    /// The x87 FPU: R0–R7 (MM0–MM7 are their significands), control/status/tag words and
    /// the last-instruction pointers.
    pub x87: X87State,
    /// XMM0–XMM15 and MXCSR.
    pub sse: SseState,
}

impl State {
    /// The state at RESET: real mode at F000:FFF0 (the reset vector), as the manuals list it.
    pub fn reset() -> State {
        let data = Segment {
            selector: 0,
            base: 0,
            limit: 0xffff,
            attributes: Segment::PRESENT | Segment::S | 0x3,
        };
        let mut segments = [data; 6];
        segments[seg::CS] = Segment {
            selector: 0xf000,
            base: 0xffff_0000,
            limit: 0xffff,
            attributes: Segment::PRESENT | Segment::S | 0xb,
        };
        State {
            gpr: [0; 16],
            rip: 0xfff0,
            rflags: flags::FIXED,
            segments,
            ldtr: Segment {
                attributes: Segment::PRESENT | 0x2,
                limit: 0xffff,
                ..Segment::default()
            },
            tr: Segment {
                attributes: Segment::PRESENT | 0xb,
                limit: 0xffff,
                ..Segment::default()
            },
            gdtr: TableRegister {
                base: 0,
                limit: 0xffff,
            },
            idtr: TableRegister {
                base: 0,
                limit: 0xffff,
            },
            cpl: 0,
            cr0: cr::CR0_ET | cr::CR0_CD | cr::CR0_NW,
            cr2: 0,
            cr3: 0,
            cr4: 0,
            cr8: 0,
            efer: 0,
            star: 0,
            lstar: 0,
            cstar: 0,
            sfmask: 0,
            kernel_gs_base: 0,
            sysenter: [0; 3],
            tsc_offset: 0,
            tsc_deadline: 0,
            apic_base: 0xfee0_0000 | (1 << 11) | (1 << 8),
            pat: 0x0007_0406_0007_0406,
            misc_enable: 1,
            dr: [0, 0, 0, 0, 0, 0, 0xffff_0ff0, 0x400],
            halted: false,
            interrupt_shadow: false,
            x87: X87State {
                // RESET: FCW 0x0040, all registers +0.0 and tagged valid (FTW 0x5555).
                fcw: 0x0040,
                tags: 0xff,
                ..X87State::default()
            },
            sse: SseState::default(),
        }
    }

    /// The state the Linux x86-64 boot protocol's 64-bit entry expects, and what a user-mode
    /// runner starts from: long mode with paging (CR3 = `cr3`), flat 64-bit code and data
    /// segments at privilege `cpl` (0 or 3), NXE and SCE set, interrupts off.
    pub fn long_mode(cr3: u64, cpl: u8) -> State {
        let mut state = State::reset();
        let rpl = u16::from(cpl & 3);
        let dpl = u16::from(cpl & 3) << 5;
        let code = Segment::flat(
            if cpl == 0 { 0x10 } else { 0x33 },
            Segment::PRESENT | Segment::S | Segment::L | Segment::G | dpl | 0xb,
        );
        let data = Segment::flat(
            if cpl == 0 { 0x18 } else { 0x2b },
            Segment::PRESENT | Segment::S | Segment::DB | Segment::G | dpl | 0x3,
        );
        state.segments = [data; 6];
        state.segments[seg::CS] = code;
        for segment in &mut state.segments {
            segment.selector = (segment.selector & !3) | rpl;
        }
        state.segments[seg::FS] = Segment::flat(0, data.attributes);
        state.segments[seg::GS] = Segment::flat(0, data.attributes);
        state.cpl = cpl & 3;
        state.cr0 = cr::CR0_PE | cr::CR0_ET | cr::CR0_NE | cr::CR0_WP | cr::CR0_PG | cr::CR0_MP;
        state.cr3 = cr3;
        state.cr4 = cr::CR4_PAE | cr::CR4_PGE | cr::CR4_OSFXSR | cr::CR4_OSXMMEXCPT;
        state.efer = msr::EFER_LME | msr::EFER_LMA | msr::EFER_NXE | msr::EFER_SCE;
        state.rip = 0;
        // The FPU as Linux hands it to a new process: FNINIT (FCW 0x037F, all empty) and
        // MXCSR 0x1F80.
        state.x87 = X87State::default();
        state.sse = SseState::default();
        state
    }

    /// The current execution mode.
    pub fn mode(&self) -> Mode {
        if self.cr0 & cr::CR0_PE == 0 {
            return Mode::Real;
        }
        let cs = &self.segments[seg::CS];
        if self.efer & msr::EFER_LMA != 0 && cs.attributes & Segment::L != 0 {
            Mode::Long64
        } else if cs.attributes & Segment::DB != 0 {
            Mode::Protected32
        } else {
            Mode::Protected16
        }
    }

    /// Whether long mode is active (64-bit or compatibility mode).
    pub fn long_mode_active(&self) -> bool {
        self.efer & msr::EFER_LMA != 0
    }

    /// Whether paging is on.
    pub fn paging(&self) -> bool {
        self.cr0 & cr::CR0_PG != 0
    }

    /// Checks the invariants a loaded or hand-built state must hold, so that a corrupt
    /// state is an error rather than undefined behaviour in the executor.
    pub fn validate(&self) -> Result<(), StateError> {
        if self.cpl > 3 {
            return Err(StateError::Invalid("CPL above 3"));
        }
        if self.rflags & flags::FIXED == 0 || self.rflags & !(flags::WRITABLE | flags::FIXED) != 0 {
            return Err(StateError::Invalid(
                "RFLAGS has reserved bits wrong (bit 1 must be set, bits 3, 5, 15 and 22–63 clear)",
            ));
        }
        if self.cr4 & !cr::CR4_SUPPORTED != 0 {
            return Err(StateError::Invalid(
                "CR4 enables a feature this CPU does not have",
            ));
        }
        if self.cr0 & cr::CR0_PG != 0 && self.cr0 & cr::CR0_PE == 0 {
            return Err(StateError::Invalid("CR0.PG set without CR0.PE"));
        }
        if self.efer & msr::EFER_LMA != 0
            && (self.cr0 & cr::CR0_PG == 0 || self.cr4 & cr::CR4_PAE == 0)
        {
            return Err(StateError::Invalid(
                "EFER.LMA set but paging or PAE is off (long mode needs both)",
            ));
        }
        let cs = &self.segments[seg::CS];
        if cs.attributes & Segment::L != 0 && cs.attributes & Segment::DB != 0 {
            return Err(StateError::Invalid("CS has both L and D set (reserved)"));
        }
        if self.cr8 > 15 {
            return Err(StateError::Invalid("CR8 above 15"));
        }
        let efer_known = msr::EFER_SCE | msr::EFER_LME | msr::EFER_LMA | msr::EFER_NXE;
        if self.efer & !efer_known != 0 {
            return Err(StateError::Invalid(
                "EFER has bits this CPU does not implement",
            ));
        }
        if self.cr0 >> 32 != 0 {
            return Err(StateError::Invalid("CR0 bits 32–63 are reserved"));
        }
        if self.sse.validate().is_err() {
            return Err(StateError::Invalid(
                "MXCSR sets reserved bits (only bits 0–15 exist)",
            ));
        }
        if self.x87.fop > 0x7ff {
            return Err(StateError::Invalid("x87 FOP wider than 11 bits"));
        }
        Ok(())
    }
}

/// Why a CPU state cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    /// The state breaks an architectural invariant.
    #[error("invalid x86 CPU state: {0}")]
    Invalid(&'static str),
    /// The serialized state is not one this build reads.
    #[error("x86 CPU state: {0}; the snapshot was made by another pandare build or is damaged")]
    Format(&'static str),
}

/// Magic and version of the serialized state ([`State::to_bytes`]).
const STATE_MAGIC: &[u8; 4] = b"PX86";
/// Version 2: the field order of [`State::to_bytes`], the x87 and SSE state last. Version 1
/// (no FPU state) is refused: its FPU contents cannot be reconstructed.
pub const STATE_VERSION: u32 = 2;

struct Writer(Vec<u8>);
impl Writer {
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn segment(&mut self, s: &Segment) {
        self.u64(
            u64::from(s.selector) | (u64::from(s.attributes) << 16) | (u64::from(s.limit) << 32),
        );
        self.u64(s.base);
    }
    fn table(&mut self, t: &TableRegister) {
        self.u64(t.base);
        self.u64(u64::from(t.limit));
    }
}

struct Reader<'a>(&'a [u8]);
impl Reader<'_> {
    fn u64(&mut self) -> Result<u64, StateError> {
        let (head, rest) = self
            .0
            .split_first_chunk::<8>()
            .ok_or(StateError::Format("truncated"))?;
        self.0 = rest;
        Ok(u64::from_le_bytes(*head))
    }
    fn segment(&mut self) -> Result<Segment, StateError> {
        let packed = self.u64()?;
        Ok(Segment {
            selector: packed as u16,
            attributes: (packed >> 16) as u16,
            limit: (packed >> 32) as u32,
            base: self.u64()?,
        })
    }
    fn table(&mut self) -> Result<TableRegister, StateError> {
        let base = self.u64()?;
        let limit = self.u64()?;
        if limit > 0xffff {
            return Err(StateError::Format("descriptor-table limit above 0xffff"));
        }
        Ok(TableRegister {
            base,
            limit: limit as u16,
        })
    }
}

impl State {
    /// Serializes the state: magic, version, then every field little-endian in a fixed order.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(512));
        w.0.extend_from_slice(STATE_MAGIC);
        w.0.extend_from_slice(&STATE_VERSION.to_le_bytes());
        for g in self.gpr {
            w.u64(g);
        }
        w.u64(self.rip);
        w.u64(self.rflags);
        for s in &self.segments {
            w.segment(s);
        }
        w.segment(&self.ldtr);
        w.segment(&self.tr);
        w.table(&self.gdtr);
        w.table(&self.idtr);
        w.u64(u64::from(self.cpl));
        for v in [
            self.cr0,
            self.cr2,
            self.cr3,
            self.cr4,
            self.cr8,
            self.efer,
            self.star,
            self.lstar,
            self.cstar,
            self.sfmask,
            self.kernel_gs_base,
            self.sysenter[0],
            self.sysenter[1],
            self.sysenter[2],
            self.tsc_offset,
            self.tsc_deadline,
            self.apic_base,
            self.pat,
            self.misc_enable,
        ] {
            w.u64(v);
        }
        for d in self.dr {
            w.u64(d);
        }
        w.u64(u64::from(self.halted) | (u64::from(self.interrupt_shadow) << 1));
        let x = &self.x87;
        for r in x.regs {
            w.u64(r.m);
            w.u64(u64::from(r.se));
        }
        w.u64(
            u64::from(x.fcw)
                | (u64::from(x.fsw) << 16)
                | (u64::from(x.tags) << 32)
                | (u64::from(x.fop) << 40),
        );
        w.u64(x.fip);
        w.u64(x.fdp);
        w.u64(u64::from(x.fcs) | (u64::from(x.fds) << 16));
        for v in self.sse.xmm {
            w.u64(v as u64);
            w.u64((v >> 64) as u64);
        }
        w.u64(u64::from(self.sse.mxcsr));
        w.0
    }

    /// Reads a state [`State::to_bytes`] wrote, checking the format and then the
    /// architectural invariants ([`State::validate`]): bad input is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<State, StateError> {
        let rest = bytes
            .strip_prefix(STATE_MAGIC.as_slice())
            .ok_or(StateError::Format("not an x86 CPU state (bad magic)"))?;
        let (version, rest) = rest
            .split_first_chunk::<4>()
            .ok_or(StateError::Format("truncated"))?;
        match u32::from_le_bytes(*version) {
            STATE_VERSION => {}
            1 => {
                return Err(StateError::Format(
                    "version 1 (before the x87/SSE state was saved) is no longer read",
                ))
            }
            _ => return Err(StateError::Format("unknown version")),
        }
        let mut r = Reader(rest);
        let mut state = State::reset();
        for g in state.gpr.iter_mut() {
            *g = r.u64()?;
        }
        state.rip = r.u64()?;
        state.rflags = r.u64()?;
        for s in state.segments.iter_mut() {
            *s = r.segment()?;
        }
        state.ldtr = r.segment()?;
        state.tr = r.segment()?;
        state.gdtr = r.table()?;
        state.idtr = r.table()?;
        let cpl = r.u64()?;
        if cpl > 3 {
            return Err(StateError::Invalid("CPL above 3"));
        }
        state.cpl = cpl as u8;
        for field in [
            &mut state.cr0,
            &mut state.cr2,
            &mut state.cr3,
            &mut state.cr4,
            &mut state.cr8,
            &mut state.efer,
            &mut state.star,
            &mut state.lstar,
            &mut state.cstar,
            &mut state.sfmask,
            &mut state.kernel_gs_base,
        ] {
            *field = r.u64()?;
        }
        for v in state.sysenter.iter_mut() {
            *v = r.u64()?;
        }
        for field in [
            &mut state.tsc_offset,
            &mut state.tsc_deadline,
            &mut state.apic_base,
            &mut state.pat,
            &mut state.misc_enable,
        ] {
            *field = r.u64()?;
        }
        for d in state.dr.iter_mut() {
            *d = r.u64()?;
        }
        let bits = r.u64()?;
        if bits > 3 {
            return Err(StateError::Format("unknown run-state bits"));
        }
        state.halted = bits & 1 != 0;
        state.interrupt_shadow = bits & 2 != 0;
        for reg in state.x87.regs.iter_mut() {
            let m = r.u64()?;
            let se = r.u64()?;
            if se > 0xffff {
                return Err(StateError::Format(
                    "x87 register exponent wider than 16 bits",
                ));
            }
            *reg = F80Bits { m, se: se as u16 };
        }
        let words = r.u64()?;
        if words >> 51 != 0 {
            return Err(StateError::Format("x87 control words have unknown bits"));
        }
        state.x87.fcw = words as u16;
        state.x87.fsw = (words >> 16) as u16;
        state.x87.tags = (words >> 32) as u8;
        state.x87.fop = (words >> 40) as u16;
        state.x87.fip = r.u64()?;
        state.x87.fdp = r.u64()?;
        let selectors = r.u64()?;
        if selectors >> 32 != 0 {
            return Err(StateError::Format("x87 selectors wider than 16 bits"));
        }
        state.x87.fcs = selectors as u16;
        state.x87.fds = (selectors >> 16) as u16;
        for v in state.sse.xmm.iter_mut() {
            let low = r.u64()?;
            let high = r.u64()?;
            *v = u128::from(low) | (u128::from(high) << 64);
        }
        let mxcsr = r.u64()?;
        if mxcsr > 0xffff_ffff {
            return Err(StateError::Format("MXCSR wider than 32 bits"));
        }
        state.sse.mxcsr = mxcsr as u32;
        if !r.0.is_empty() {
            return Err(StateError::Format("trailing bytes"));
        }
        state.validate()?;
        Ok(state)
    }
}
