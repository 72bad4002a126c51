//! Entry points for fuzzing, shared by the cargo-fuzz target `x86_execute` in `fuzz/` and by
//! the corpus and random-input test `tests/fuzz_corpus.rs`, so both run the same checks.
//!
//! [`execute_bytes`] takes arbitrary bytes and must return normally for every input: a panic
//! (index out of bounds, overflow in a debug build, a failed invariant) is a bug in the CPU.

use pandare_core::memory::Ram;

use crate::state::{flags, seg, Segment, State};
use crate::X86Cpu;

/// Physical (and, identity-mapped, virtual) layout of [`machine`].
pub mod layout {
    /// PML4.
    pub const PML4: u64 = 0x1000;
    /// PDPT.
    pub const PDPT: u64 = 0x2000;
    /// Page directory.
    pub const PD: u64 = 0x3000;
    /// Page table for the first 2 MiB.
    pub const PT: u64 = 0x4000;
    /// GDT (Linux's selectors: 0x10 kernel code, 0x18 kernel data, 0x23 user code32,
    /// 0x2b user data, 0x33 user code64, 0x40 TSS).
    pub const GDT: u64 = 0x5000;
    /// IDT (256 interrupt gates).
    pub const IDT: u64 = 0x6000;
    /// 64-bit TSS.
    pub const TSS: u64 = 0x7000;
    /// Handlers: HLT at `HANDLERS + 16 × vector`.
    pub const HANDLERS: u64 = 0x10000;
    /// Where the code starts.
    pub const CODE: u64 = 0x20000;
    /// Initial stack pointer.
    pub const STACK: u64 = 0x31000;
    /// A data area the initial registers point into.
    pub const DATA: u64 = 0x40000;
    /// SYSCALL entry.
    pub const LSTAR: u64 = 0x50000;
    /// Kernel stack (TSS.RSP0).
    pub const RSP0: u64 = 0x90000;
    /// IST 1 stack (used by #DE).
    pub const IST1: u64 = 0xa0000;
}

fn put(ram: &mut Ram, address: u64, value: u64) {
    let _ = ram.write_bytes(address, &value.to_le_bytes());
}

/// The CPU modes [`machine`] can start in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartMode {
    /// 64-bit mode.
    Long64,
    /// Compatibility mode (32-bit code segment under long mode).
    Compat32,
}

/// A machine with 4 MiB of RAM, the first 2 MiB identity-mapped (user, writable), Linux's
/// GDT layout, an IDT whose handlers are HLT (vector 0x80 and 3 with DPL 3, #DE on IST 1), a
/// TSS, SYSCALL configured, and `code` at [`layout::CODE`] run at privilege `cpl`.
pub fn machine(code: &[u8], cpl: u8, mode: StartMode) -> X86Cpu {
    use layout::*;
    let mut ram = Ram::new(0, 4 << 20);
    put(&mut ram, PML4, PDPT | 7);
    put(&mut ram, PDPT, PD | 7);
    put(&mut ram, PD, PT | 7);
    for page in 0..512u64 {
        put(&mut ram, PT + page * 8, (page << 12) | 7);
    }
    for (index, descriptor) in [
        (2u64, 0x00af_9b00_0000_ffffu64),
        (3, 0x00cf_9300_0000_ffff),
        (4, 0x00cf_fb00_0000_ffff),
        (5, 0x00cf_f300_0000_ffff),
        (6, 0x00af_fb00_0000_ffff),
    ] {
        put(&mut ram, GDT + index * 8, descriptor);
    }
    put(
        &mut ram,
        GDT + 0x40,
        0x67 | ((TSS & 0xff_ffff) << 16) | (0x89 << 40) | ((TSS >> 24) << 56),
    );
    put(&mut ram, GDT + 0x48, TSS >> 32);
    let _ = ram.write_bytes(TSS + 4, &RSP0.to_le_bytes());
    let _ = ram.write_bytes(TSS + 0x24, &IST1.to_le_bytes());
    for vector in 0..256u64 {
        let offset = HANDLERS + vector * 16;
        let dpl = if vector == 0x80 || vector == 3 { 3 } else { 0 };
        let ist = if vector == 0 { 1 } else { 0 };
        let low = (offset & 0xffff)
            | (0x10 << 16)
            | (ist << 32)
            | (0xe << 40)
            | (dpl << 45)
            | (1 << 47)
            | (((offset >> 16) & 0xffff) << 48);
        put(&mut ram, IDT + vector * 16, low);
        put(&mut ram, IDT + vector * 16 + 8, offset >> 32);
        let _ = ram.write_bytes(offset, &[0xf4]);
    }
    let _ = ram.write_bytes(CODE, &code[..code.len().min(0x10000)]);
    let mut state = State::long_mode(PML4, cpl);
    state.gdtr.base = GDT;
    state.gdtr.limit = 0x4f;
    state.idtr.base = IDT;
    state.idtr.limit = 0xfff;
    state.tr = Segment {
        selector: 0x40,
        base: TSS,
        limit: 0x67,
        attributes: 0x8b,
    };
    if mode == StartMode::Compat32 {
        let dpl = u16::from(cpl & 3) << 5;
        state.segments[seg::CS] = Segment::flat(
            if cpl == 3 { 0x23 } else { 0x10 },
            Segment::PRESENT | Segment::S | Segment::DB | Segment::G | dpl | 0xb,
        );
    }
    state.rip = CODE;
    state.gpr = [
        0,
        DATA + 0x100,
        0x10,
        DATA + 0x800,
        STACK,
        STACK + 0x100,
        DATA + 0x400,
        DATA + 0x600,
        1,
        2,
        3,
        4,
        5,
        6,
        7,
        8,
    ];
    state.rflags = flags::FIXED | flags::IF;
    state.star = (0x23u64 << 48) | (0x10u64 << 32);
    state.lstar = LSTAR;
    state.sfmask = flags::IF | flags::DF | flags::TF;
    X86Cpu::new(state, ram).expect("the fuzzing machine's state is valid")
}

/// Runs `data` as machine code: the first byte picks the privilege (bit 0: user), the mode
/// (bit 1: compatibility mode) and how to run (bit 2: pre-decoded blocks with exceptions
/// delivered; otherwise single steps, skipping each faulting instruction so every byte is
/// reached). After every step the state must still be valid.
pub fn execute_bytes(data: &[u8]) {
    let Some((&selector, code)) = data.split_first() else {
        return;
    };
    let cpl = if selector & 1 != 0 { 3 } else { 0 };
    let mode = if selector & 2 != 0 {
        StartMode::Compat32
    } else {
        StartMode::Long64
    };
    let mut cpu = machine(code, cpl, mode);
    if selector & 4 != 0 {
        let _ = cpu.run(2_000);
        check(&cpu);
        return;
    }
    let end = layout::CODE + code.len() as u64;
    for _ in 0..2_000 {
        if cpu.state.halted {
            break;
        }
        if let Err(fault) = cpu.step() {
            // Skip one byte past a faulting instruction (in the code area); elsewhere stop.
            let rip = cpu.state.rip;
            if !(layout::CODE..end).contains(&rip)
                || fault.vector == 14 && fault.address == Some(rip)
            {
                break;
            }
            cpu.state.rip = rip + 1;
        }
        check(&cpu);
        if !(layout::CODE..end).contains(&cpu.state.rip) {
            break;
        }
    }
}

fn check(cpu: &X86Cpu) {
    if let Err(error) = cpu.state.validate() {
        panic!(
            "the CPU reached an invalid state: {error} at rip {:#x}",
            cpu.state.rip
        );
    }
}
