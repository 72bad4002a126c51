//! The CPU: state, RAM, TLB and decoded-block cache; virtual memory access with segmentation
//! and paging; fetch and decode; the step and run loops; exception and interrupt delivery.

use rustc_hash::{FxHashMap, FxHashSet};
use std::rc::Rc;

use iced_x86::{Code, Decoder, DecoderOptions, Instruction};
use pandare_core::memory::Ram;

use crate::mmu::{self, Access, Tlb, Translation};
use crate::state::{cr, flags, msr, seg, Mode, Segment, State};
use crate::Fault;

/// What a single instruction did, when it did not fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// It retired normally.
    Retired,
    /// HLT: the CPU waits for an interrupt.
    Halted,
    /// SYSCALL from user mode retired (the CPU is now at the kernel's entry). The run loop
    /// reports it to `before_handle_exception` as [`crate::SYSCALL_EXCEPTION`].
    Syscall,
}

/// Why [`X86Cpu::run`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// The instruction budget ran out, or a device on the MMIO seam was accessed (the
    /// platform brings its timers and interrupt lines up to date and runs on).
    Budget,
    /// HLT with interrupts that can wake it.
    Halted,
    /// A fault occurred while delivering a double fault: the processor shuts down.
    TripleFault,
    /// [`X86Cpu::user_mode`]: the program reached a system call instruction (SYSCALL,
    /// SYSENTER or INT 0x80); RIP is at it and it has not retired.
    Syscall,
    /// [`X86Cpu::user_mode`]: the instruction at RIP faulted (not delivered: there is no
    /// kernel); the state is as before it.
    Fault(Fault),
    /// A callback asked to stop (PANDA's `end_analysis`); RIP is at a block boundary.
    Stopped,
}

/// A pre-decoded block: the instructions from a physical address to the first control
/// transfer or system instruction, the end of the page, or 32 instructions.
#[derive(Debug)]
pub(crate) struct Block {
    pub(crate) instructions: Vec<Instruction>,
    /// The instructions pre-decoded (same indices as `instructions`).
    pub(crate) ops: Vec<crate::ops::Op>,
    /// The cache key: physical address of the first byte and mode.
    pub(crate) key: (u64, Mode),
    /// When the last instruction crosses into the next page: that page's physical frame
    /// as decoded (the mapping is checked again before the instruction runs).
    pub(crate) crossing: Option<u64>,
}

impl Block {
    /// Number of instructions.
    pub(crate) fn len(&self) -> usize {
        self.instructions.len()
    }
    /// The IP (offset in CS) instruction `n` was decoded at.
    pub(crate) fn ip(&self, n: usize) -> u64 {
        self.instructions[n].ip()
    }
    /// Length of instruction `n` in bytes.
    pub(crate) fn size(&self, n: usize) -> u64 {
        self.instructions[n].len() as u64
    }
    /// Whether instruction `n` is a system call (SYSCALL, SYSENTER, INT 0x80).
    pub(crate) fn is_system_call(&self, n: usize) -> bool {
        crate::exec::is_system_call(&self.instructions[n])
    }
    /// Whether instruction `n` is INT n, INT3, INTO or INT1 (no single-step trap after it).
    pub(crate) fn is_software_interrupt(&self, n: usize) -> bool {
        crate::exec::is_software_interrupt(&self.instructions[n])
    }
    /// Instruction `n` as decoded (disassembly, the generic execution path).
    pub(crate) fn instruction(&self, n: usize) -> &Instruction {
        &self.instructions[n]
    }
}

const MAX_BLOCK: usize = 32;

/// Slots in the block jump cache.
const JUMP_SLOTS: usize = 1024;

/// A jump-cache slot: the block last entered at a linear IP, valid while the key (mode,
/// CPL, TLB generation) is the same and the block is still in the cache (`Rc` count above
/// one: every removal from [`X86Cpu::blocks`] is seen without being told).
#[derive(Debug, Default)]
pub(crate) struct JumpSlot {
    linear: u64,
    key: u64,
    block: Option<Rc<Block>>,
}

/// The device answering the whole port-I/O space (offset = port number).
pub struct PortSpace(pub Box<dyn pandare_core::memory::PortIoDevice + Send>);

impl std::fmt::Debug for PortSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortSpace")
    }
}

/// One x86 CPU with its RAM.
#[derive(Debug)]
pub struct X86Cpu {
    /// Architectural state.
    pub state: State,
    /// Guest physical memory (RAM at physical address 0).
    pub ram: Ram,
    pub(crate) tlb: Tlb,
    /// Blocks by (physical address, mode).
    pub(crate) blocks: FxHashMap<(u64, Mode), Rc<Block>>,
    /// Blocks by linear IP, in front of `blocks` (see [`JumpSlot`]).
    jump: Box<[JumpSlot]>,
    /// The fault of the op [`X86Cpu::execute_ops`] stopped at, on its way out.
    pub(crate) op_fault: Option<Fault>,
    /// Physical pages holding decoded code; a store to one drops its blocks.
    code_pages: FxHashSet<u64>,
    /// Retired instructions.
    pub(crate) icount: u64,
    /// The current instruction wrote a code page: the block it belongs to is stale.
    pub(crate) code_written: bool,
    /// Which guest ABI the CPU presents (x86_64 or i386).
    pub architecture: crate::abi::Architecture,
    /// A callback asked to end the run slice.
    pub stop_requested: bool,
    /// No kernel behind the CPU (`panda exec`): [`X86Cpu::run`] stops at system calls and
    /// returns faults instead of delivering them through the IDT.
    pub user_mode: bool,
    /// The port-I/O space (`in`/`out`): the whole 64 Ki ports as one device, offset = port.
    /// `None`: reads give all ones, writes are dropped (the PC platform plugs its bus here).
    pub ports: Option<PortSpace>,
    /// Physical addresses outside RAM (local APIC, IOAPIC, HPET, ...): see `mmio.rs`.
    /// `None`: reads give all ones, writes are dropped.
    pub mmio: Option<crate::mmio::MmioSpace>,
    /// What the instrumented run loop lends the access functions (see `hooks.rs`).
    pub(crate) instrument: crate::hooks::Instrumented,
    /// What the instrumented loop knows of cached blocks (see `run.rs`).
    pub(crate) block_meta: FxHashMap<(u64, Mode), crate::run::BlockMeta>,
    /// The block-start loop returned because the registry needs attention.
    pub(crate) attention: bool,
    /// Blocks decoded so far (the instrumented loop tells fresh translations by it).
    pub(crate) decoded_blocks: u64,
    /// A device on the MMIO seam was accessed: the run loop ends the slice after that
    /// instruction (timers and interrupt lines may have changed).
    pub(crate) device_accessed: bool,
}

impl X86Cpu {
    /// A CPU in `state` over `ram`, after checking the state.
    pub fn new(state: State, ram: Ram) -> Result<X86Cpu, crate::state::StateError> {
        state.validate()?;
        Ok(X86Cpu {
            state,
            ram,
            tlb: Tlb::default(),
            blocks: FxHashMap::default(),
            jump: (0..JUMP_SLOTS).map(|_| JumpSlot::default()).collect(),
            op_fault: None,
            code_pages: FxHashSet::default(),
            icount: 0,
            code_written: false,
            architecture: crate::abi::Architecture::X86_64,
            stop_requested: false,
            user_mode: false,
            ports: None,
            mmio: None,
            instrument: Default::default(),
            block_meta: FxHashMap::default(),
            attention: false,
            decoded_blocks: 0,
            device_accessed: false,
        })
    }

    /// Instructions retired so far.
    pub fn instruction_count(&self) -> u64 {
        self.icount
    }

    /// Replaces the state (a loaded snapshot, a test's setup): checked, and every cache
    /// dropped.
    pub fn set_state(&mut self, state: State) -> Result<(), crate::state::StateError> {
        state.validate()?;
        self.state = state;
        self.flush_all();
        Ok(())
    }

    /// Drops the TLB only (what INVLPG of every page or a CR3 write does), keeping decoded
    /// blocks.
    pub fn flush_tlb(&mut self) {
        self.tlb.flush(false);
    }

    /// Drops the TLB and every decoded block.
    pub fn flush_all(&mut self) {
        self.tlb.flush(false);
        self.flush_blocks();
    }

    /// Drops every decoded block, keeping the TLB (the guest sees no difference).
    pub(crate) fn flush_blocks(&mut self) {
        self.blocks.clear();
        self.code_pages.clear();
        self.block_meta.clear();
    }

    // ---- physical memory -------------------------------------------------------------

    /// Reads physical memory. Outside RAM the platform's [`X86Cpu::mmio`] answers (an
    /// access of 1, 2, 4 or 8 bytes wholly outside RAM goes to it whole, anything else byte
    /// by byte); where nothing answers, bytes read as 0xff.
    pub(crate) fn phys_read(&mut self, paddr: u64, out: &mut [u8]) {
        if !self.ram.read_bytes(paddr, out) {
            self.phys_read_outside_ram(paddr, out);
        }
    }

    #[cold]
    #[inline(never)]
    fn phys_read_outside_ram(&mut self, paddr: u64, out: &mut [u8]) {
        let size = out.len();
        if matches!(size, 1 | 2 | 4 | 8) && !self.ram.contains(paddr, 1) {
            let value = self.mmio_read(paddr, size as u8).unwrap_or(u64::MAX);
            out.copy_from_slice(&value.to_le_bytes()[..size]);
            return;
        }
        for (i, byte) in out.iter_mut().enumerate() {
            let address = paddr.wrapping_add(i as u64);
            let mut b = [0u8; 1];
            *byte = if self.ram.read_bytes(address, &mut b) {
                b[0]
            } else {
                self.mmio_read(address, 1).unwrap_or(0xff) as u8
            };
        }
    }

    /// Writes physical memory (outside RAM: dropped), keeping decoded code coherent.
    pub(crate) fn phys_write(&mut self, paddr: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let first = paddr >> 12;
        let last = (paddr + data.len() as u64 - 1) >> 12;
        let has_code = !self.code_pages.is_empty();
        for page in (first..=last).filter(|_| has_code) {
            if self.code_pages.remove(&page) {
                self.blocks.retain(|&(address, _), _| address >> 12 != page);
                self.code_written = true;
            }
        }
        if !self.ram.write_bytes(paddr, data) {
            self.phys_write_outside_ram(paddr, data);
        }
    }

    /// A write not wholly in RAM: the platform's [`X86Cpu::mmio`] takes what is outside RAM
    /// (whole for 1, 2, 4 or 8 bytes wholly outside, else byte by byte); where nothing
    /// answers, it is dropped.
    #[cold]
    #[inline(never)]
    fn phys_write_outside_ram(&mut self, paddr: u64, data: &[u8]) {
        let size = data.len();
        if matches!(size, 1 | 2 | 4 | 8) && !self.ram.contains(paddr, 1) {
            let mut bytes = [0u8; 8];
            bytes[..size].copy_from_slice(data);
            self.mmio_write(paddr, size as u8, u64::from_le_bytes(bytes));
            return;
        }
        for (i, &byte) in data.iter().enumerate() {
            let address = paddr.wrapping_add(i as u64);
            if !self.ram.write_bytes(address, &[byte]) {
                self.mmio_write(address, 1, u64::from(byte));
            }
        }
    }

    // ---- linear and virtual addresses ------------------------------------------------

    /// Translates a linear address for `access` at the current privilege (or as a
    /// supervisor access when `implicit_supervisor`).
    pub(crate) fn translate(
        &mut self,
        linear: u64,
        access: Access,
        implicit_supervisor: bool,
    ) -> Result<u64, Fault> {
        if !self.state.paging() {
            return Ok(linear & 0xffff_ffff);
        }
        let user = self.state.cpl == 3 && !implicit_supervisor;
        if let Some(t) = self.tlb.lookup(linear) {
            let ok = match access {
                Access::Read => !user || t.user,
                Access::Write => {
                    t.dirty
                        && if user {
                            t.user && t.writable
                        } else {
                            t.writable || self.state.cr0 & cr::CR0_WP == 0
                        }
                }
                Access::Fetch => (!user || t.user) && t.executable,
            };
            if ok {
                return Ok(t.physical);
            }
        }
        let t: Translation = mmu::walk(&self.state, &mut self.ram, linear, access, user, true)
            .inspect_err(|_| {
                self.tlb.flush_page(linear);
            })?;
        self.tlb.insert(linear, t);
        Ok(t.physical)
    }

    /// The linear address of `offset` in segment `segment` for a read (see
    /// [`X86Cpu::linear_for`]).
    pub(crate) fn linear(&self, segment: usize, offset: u64, size: u32) -> Result<u64, Fault> {
        self.linear_for(segment, offset, size, false)
    }

    /// The linear address of `offset` in segment `segment` for a read or a `write`: in
    /// 64-bit mode FS/GS bases and the canonical check; in protected and compatibility mode
    /// the segment's type (no writes to code segments or read-only data, no reads of
    /// execute-only code, nothing through a null selector) and limit (expand-up and
    /// expand-down).
    pub(crate) fn linear_for(
        &self,
        segment: usize,
        offset: u64,
        size: u32,
        write: bool,
    ) -> Result<u64, Fault> {
        let stack = segment == seg::SS;
        let fail = || Err(if stack { Fault::ss(0) } else { Fault::gp(0) });
        match self.state.mode() {
            Mode::Long64 => {
                let base = if segment == seg::FS || segment == seg::GS {
                    self.state.segments[segment].base
                } else {
                    0
                };
                let linear = base.wrapping_add(offset);
                if !mmu::canonical(linear) {
                    return fail();
                }
                Ok(linear)
            }
            Mode::Real => Ok((self.state.segments[segment].base + (offset & 0xffff)) & 0xf_ffff),
            _ => {
                let s = &self.state.segments[segment];
                // A flat writable data segment (base 0, 4 GiB, expand-up), as every 32-bit
                // OS loads: only the 4 GiB end to check.
                const FLAT_KIND: u16 = Segment::PRESENT | Segment::S | 0xe;
                if s.base == 0
                    && s.limit == 0xffff_ffff
                    && s.attributes & FLAT_KIND == Segment::PRESENT | Segment::S | 0x2
                {
                    let end = offset.wrapping_add(u64::from(size) - 1);
                    if end <= 0xffff_ffff && end >= offset {
                        return Ok(offset);
                    }
                    return fail();
                }
                if !s.present() || s.attributes & Segment::S == 0 {
                    return fail();
                }
                let code = s.kind() & 8 != 0;
                let rw = s.kind() & 2 != 0;
                let allowed = if write { !code && rw } else { !code || rw };
                if !allowed {
                    return fail();
                }
                let end = offset.wrapping_add(size as u64 - 1);
                let expand_down = !code && s.kind() & 4 != 0;
                let in_limit = if expand_down {
                    let top = if s.attributes & Segment::DB != 0 {
                        0xffff_ffff
                    } else {
                        0xffff
                    };
                    offset > u64::from(s.limit) && end <= top && end >= offset
                } else {
                    end <= u64::from(s.limit) && end >= offset
                };
                if !in_limit {
                    return fail();
                }
                Ok(s.base.wrapping_add(offset) & 0xffff_ffff)
            }
        }
    }

    /// Reads `size` (1–8) bytes at `offset` in `segment`.
    pub(crate) fn read(&mut self, segment: usize, offset: u64, size: u32) -> Result<u64, Fault> {
        let linear = self.linear(segment, offset, size)?;
        self.read_linear(linear, size, false)
    }

    /// Writes `size` (1–8) bytes at `offset` in `segment`.
    pub(crate) fn write(
        &mut self,
        segment: usize,
        offset: u64,
        size: u32,
        value: u64,
    ) -> Result<(), Fault> {
        let linear = self.linear_for(segment, offset, size, true)?;
        self.write_linear(linear, size, value, false)
    }

    /// Checks that a write of `size` bytes at `offset` would succeed, without writing (for
    /// instructions that must not change state before a later fault).
    pub(crate) fn probe_write(
        &mut self,
        segment: usize,
        offset: u64,
        size: u32,
    ) -> Result<(), Fault> {
        let linear = self.linear_for(segment, offset, size, true)?;
        self.translate(linear, Access::Write, false)?;
        let last = linear.wrapping_add(size as u64 - 1);
        if last >> 12 != linear >> 12 {
            self.translate(last, Access::Write, false)?;
        }
        Ok(())
    }

    /// A value of `size` (1, 2, 4 or 8) bytes in RAM at physical `paddr`, if all in RAM.
    #[inline(always)]
    fn ram_value(&self, paddr: u64, size: u32) -> Option<u64> {
        let offset = paddr.wrapping_sub(self.ram.base()) as usize;
        let bytes = self.ram.as_slice();
        Some(match size {
            1 => u64::from(*bytes.get(offset)?),
            2 => u64::from(u16::from_le_bytes(
                bytes.get(offset..offset.wrapping_add(2))?.try_into().ok()?,
            )),
            4 => u64::from(u32::from_le_bytes(
                bytes.get(offset..offset.wrapping_add(4))?.try_into().ok()?,
            )),
            8 => u64::from_le_bytes(bytes.get(offset..offset.wrapping_add(8))?.try_into().ok()?),
            _ => return None,
        })
    }

    /// Reads `size` bytes at a linear address (both pages translated before any read).
    /// The fast path: a page already checked for reads at this privilege, in RAM.
    #[inline]
    pub(crate) fn read_linear(
        &mut self,
        linear: u64,
        size: u32,
        supervisor: bool,
    ) -> Result<u64, Fault> {
        self.read_linear_inline(linear, size, supervisor)
    }

    /// [`X86Cpu::read_linear`], always inlined (the pre-decoded ops' loads).
    #[inline(always)]
    pub(crate) fn read_linear_inline(
        &mut self,
        linear: u64,
        size: u32,
        supervisor: bool,
    ) -> Result<u64, Fault> {
        let user = self.state.cpl == 3 && !supervisor;
        if let Some(paddr) = self.tlb.fast_read(linear, size, user) {
            // Memory callbacks divert every access (read_linear_bytes' cold branch).
            if !self.instrument.memory {
                if let Some(value) = self.ram_value(paddr, size) {
                    return Ok(value);
                }
            }
        }
        self.read_linear_slow(linear, size, supervisor)
    }

    #[inline(never)]
    fn read_linear_slow(&mut self, linear: u64, size: u32, supervisor: bool) -> Result<u64, Fault> {
        let mut bytes = [0u8; 8];
        let out = bytes.get_mut(..size as usize).ok_or_else(Fault::ud)?;
        self.read_linear_bytes(linear, out, supervisor)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Reads bytes at a linear address.
    pub(crate) fn read_linear_bytes(
        &mut self,
        linear: u64,
        out: &mut [u8],
        supervisor: bool,
    ) -> Result<(), Fault> {
        if self.instrument.memory {
            return crate::hooks::read_hooked(self, linear, out, supervisor);
        }
        let first = self.translate(linear, Access::Read, supervisor)?;
        let in_first = (0x1000 - (linear & 0xfff)) as usize;
        if self.ram.contains(first & !0xfff, 0x1000) {
            let user = self.state.cpl == 3 && !supervisor;
            self.tlb.fill_fast(linear, first, user, false);
        }
        if out.len() <= in_first {
            self.phys_read(first, out);
        } else {
            let second = self.translate(
                linear.wrapping_add(in_first as u64),
                Access::Read,
                supervisor,
            )?;
            let (a, b) = out.split_at_mut(in_first);
            self.phys_read(first, a);
            self.phys_read(second, b);
        }
        Ok(())
    }

    /// Writes `size` bytes at a linear address (both pages checked before any write).
    /// The fast path: a page already checked for writes at this privilege, in RAM, holding
    /// no decoded code.
    #[inline]
    pub(crate) fn write_linear(
        &mut self,
        linear: u64,
        size: u32,
        value: u64,
        supervisor: bool,
    ) -> Result<(), Fault> {
        self.write_linear_inline(linear, size, value, supervisor)
    }

    /// [`X86Cpu::write_linear`], always inlined (the pre-decoded ops' stores).
    #[inline(always)]
    pub(crate) fn write_linear_inline(
        &mut self,
        linear: u64,
        size: u32,
        value: u64,
        supervisor: bool,
    ) -> Result<(), Fault> {
        let user = self.state.cpl == 3 && !supervisor;
        if let Some(paddr) = self.tlb.fast_write(linear, size, user) {
            if matches!(size, 1 | 2 | 4 | 8)
                && !self.instrument.memory
                && self.ram.contains(paddr, u64::from(size))
            {
                self.ram.write_value(paddr, size as usize, value);
                return Ok(());
            }
        }
        self.write_linear_slow(linear, size, value, supervisor)
    }

    #[inline(never)]
    fn write_linear_slow(
        &mut self,
        linear: u64,
        size: u32,
        value: u64,
        supervisor: bool,
    ) -> Result<(), Fault> {
        let bytes = value.to_le_bytes();
        let bytes = bytes.get(..size as usize).ok_or_else(Fault::ud)?;
        self.write_linear_bytes(linear, bytes, supervisor)
    }

    /// Writes bytes at a linear address.
    pub(crate) fn write_linear_bytes(
        &mut self,
        linear: u64,
        data: &[u8],
        supervisor: bool,
    ) -> Result<(), Fault> {
        if self.instrument.memory {
            return crate::hooks::write_hooked(self, linear, data, supervisor);
        }
        let first = self.translate(linear, Access::Write, supervisor)?;
        let in_first = (0x1000 - (linear & 0xfff)) as usize;
        if data.len() <= in_first {
            self.phys_write(first, data);
            if self.ram.contains(first & !0xfff, 0x1000)
                && !self.code_pages.contains(&(first >> 12))
            {
                let user = self.state.cpl == 3 && !supervisor;
                self.tlb.fill_fast(linear, first, user, true);
            }
        } else {
            let second = self.translate(
                linear.wrapping_add(in_first as u64),
                Access::Write,
                supervisor,
            )?;
            self.phys_write(first, &data[..in_first]);
            self.phys_write(second, &data[in_first..]);
        }
        Ok(())
    }

    /// Translates a virtual (linear) address without side effects, for introspection.
    pub fn virt_to_phys(&mut self, vaddr: u64) -> Option<u64> {
        if !self.state.paging() {
            return Some(vaddr & 0xffff_ffff);
        }
        mmu::walk(
            &self.state,
            &mut self.ram,
            vaddr,
            Access::Read,
            false,
            false,
        )
        .ok()
        .map(|t| t.physical)
    }

    // ---- fetch and decode -------------------------------------------------------------

    /// Decodes the instruction at the current RIP (no cache), for tests and tools.
    pub fn decode_current(&mut self) -> Result<Instruction, Fault> {
        let linear = self.linear_ip()?;
        let (instruction, _) = self.decode_at(linear, self.state.rip)?;
        Ok(instruction)
    }

    pub(crate) fn linear_ip(&self) -> Result<u64, Fault> {
        let cs = &self.state.segments[seg::CS];
        match self.state.mode() {
            Mode::Long64 => {
                if !mmu::canonical(self.state.rip) {
                    return Err(Fault::gp(0));
                }
                Ok(self.state.rip)
            }
            Mode::Real => Ok((cs.base + (self.state.rip & 0xffff)) & 0xf_ffff),
            _ => {
                if self.state.rip > cs.limit as u64 {
                    return Err(Fault::gp(0));
                }
                Ok((cs.base + self.state.rip) & 0xffff_ffff)
            }
        }
    }

    /// Decodes one instruction at `linear` (whose IP is `ip`); returns it and the physical
    /// address of its first byte.
    fn decode_at(&mut self, linear: u64, ip: u64) -> Result<(Instruction, u64), Fault> {
        let physical = self.translate(linear, Access::Fetch, false)?;
        let in_page = (0x1000 - (linear & 0xfff)) as usize;
        let mut bytes = [0u8; 15];
        let first = in_page.min(15);
        self.phys_read(physical, &mut bytes[..first]);
        let bitness = self.state.mode().bitness();
        let mut instruction = Instruction::default();
        let mut decoder = Decoder::with_ip(bitness, &bytes[..first], ip, DecoderOptions::NONE);
        decoder.decode_out(&mut instruction);
        if instruction.code() == Code::INVALID
            && decoder.last_error() == iced_x86::DecoderError::NoMoreBytes
            && first < 15
        {
            let second = self.translate(linear.wrapping_add(first as u64), Access::Fetch, false)?;
            let rest = 15 - first;
            let mut tail = [0u8; 15];
            self.phys_read(second, &mut tail[..rest]);
            bytes[first..].copy_from_slice(&tail[..rest]);
            let mut decoder = Decoder::with_ip(bitness, &bytes, ip, DecoderOptions::NONE);
            decoder.decode_out(&mut instruction);
        }
        if instruction.code() == Code::INVALID {
            return Err(Fault::ud());
        }
        Ok((instruction, physical))
    }

    /// The decoded block starting at the current RIP (cached by physical address and mode).
    ///
    /// In front of the cache: a direct-mapped jump cache by linear IP, whose hits skip the
    /// fetch translation and the hash lookup while the TLB generation, mode and CPL are
    /// those it was filled under and the block is still cached.
    #[inline]
    pub(crate) fn block_here(&mut self) -> Result<Rc<Block>, Fault> {
        let linear = self.linear_ip()?;
        let mode = self.state.mode();
        let key = (self.tlb.generation() << 4) | ((mode as u64) << 2) | u64::from(self.state.cpl);
        let slot = &self.jump[(linear ^ (linear >> 10)) as usize % JUMP_SLOTS];
        if slot.linear == linear && slot.key == key {
            if let Some(block) = &slot.block {
                // Still cached, and entered at the IP it was decoded for (the same linear
                // address can be another IP under another CS base).
                if Rc::strong_count(block) > 1 && block.ip(0) == self.state.rip {
                    return Ok(block.clone());
                }
            }
        }
        self.block_here_slow(linear, mode, key)
    }

    #[inline(never)]
    fn block_here_slow(&mut self, linear: u64, mode: Mode, key: u64) -> Result<Rc<Block>, Fault> {
        let physical = self.translate(linear, Access::Fetch, false)?;
        let remember = |cpu: &mut X86Cpu, block: &Rc<Block>| {
            // Blocks whose last instruction crosses into another page are checked at that
            // instruction on every run: they stay out of the jump cache.
            if block.crossing.is_none() {
                cpu.jump[(linear ^ (linear >> 10)) as usize % JUMP_SLOTS] = JumpSlot {
                    linear,
                    key,
                    block: Some(block.clone()),
                };
            }
        };
        // Decoded instructions carry their IP (branch targets are absolute): a block decoded
        // where the same physical code is mapped at another address (a shared library in two
        // processes, an alias) is decoded again here, replacing it.
        if let Some(block) = self.blocks.get(&(physical, mode)) {
            if block.ip(0) == self.state.rip {
                let block = block.clone();
                remember(self, &block);
                return Ok(block);
            }
        }
        let mut instructions = Vec::new();
        let mut crossing = None;
        let mut ip = self.state.rip;
        let mut lin = linear;
        loop {
            // A block ends before an address hook (so that a block starts there).
            if !instructions.is_empty() && self.instrument.splits_at(lin) {
                break;
            }
            let result = self.decode_at(lin, ip);
            let (instruction, _) = match result {
                Ok(decoded) => decoded,
                // A later instruction that cannot be fetched or decoded ends the block; it
                // faults when it is reached.
                Err(fault) if instructions.is_empty() => return Err(fault),
                Err(_) => break,
            };
            let len = instruction.len() as u64;
            let ends = crate::exec::ends_block(&instruction);
            instructions.push(instruction);
            ip = ip.wrapping_add(len);
            let next = lin.wrapping_add(len);
            if ends || instructions.len() >= MAX_BLOCK || next >> 12 != linear >> 12 {
                // Instructions crossing into the next page also end the block (their second
                // page is not covered by the code mark).
                let last_end = lin.wrapping_add(len - 1);
                if last_end >> 12 != linear >> 12 {
                    if let Ok(p) = self.translate(last_end, Access::Fetch, false) {
                        if self.code_pages.insert(p >> 12) {
                            self.tlb.forget_fast_writes(p >> 12);
                        }
                        crossing = Some(p >> 12);
                    }
                }
                break;
            }
            lin = next;
        }
        if self.code_pages.insert(physical >> 12) {
            self.tlb.forget_fast_writes(physical >> 12);
        }
        let mut ops: Vec<crate::ops::Op> = instructions
            .iter()
            .map(|i| crate::ops::translate(self, i))
            .collect();
        crate::ops::analyse_flags(&mut ops, crossing.is_some());
        let block = Rc::new(Block {
            instructions,
            ops,
            key: (physical, mode),
            crossing,
        });
        self.blocks.insert((physical, mode), block.clone());
        self.decoded_blocks += 1;
        remember(self, &block);
        Ok(block)
    }

    // ---- execution ----------------------------------------------------------------------

    /// Executes one instruction at RIP (decoded afresh). A fault leaves the state as it was
    /// before the instruction (precise) and is returned, not delivered.
    pub fn step(&mut self) -> Result<Event, Fault> {
        let linear = self.linear_ip()?;
        let (instruction, _) = self.decode_at(linear, self.state.rip)?;
        let op = crate::ops::translate(self, &instruction);
        if op.kind != crate::ops::Kind::Generic {
            return self.execute_op(&op);
        }
        self.execute_one(&instruction)
    }

    /// Executes instruction `n` of `block` (at RIP). A fault leaves the state as it was
    /// before the instruction, except for the iterations a string instruction completed.
    #[inline]
    pub(crate) fn execute_in_block(&mut self, block: &Block, n: usize) -> Result<Event, Fault> {
        let op = &block.ops[n];
        if op.kind != crate::ops::Kind::Generic {
            return self.execute_op(op);
        }
        self.execute_one(block.instruction(n))
    }

    pub(crate) fn execute_one(&mut self, instruction: &Instruction) -> Result<Event, Fault> {
        let saved_gpr = self.state.gpr;
        let saved_rflags = self.state.rflags;
        // RF is cleared at the start of every instruction (SDM vol. 3 §17.3.1.1); IRET may
        // set it again. A fault restores it with the other flags.
        self.state.rflags &= !flags::RF;
        let result = crate::exec::execute(self, instruction);
        match result {
            Ok(event) => {
                self.icount += 1;
                Ok(event)
            }
            Err(fault) => {
                // String instructions commit per iteration and keep their progress; every
                // other instruction restores the registers it may have changed.
                if !crate::exec::is_string(instruction) {
                    self.state.gpr = saved_gpr;
                    self.state.rflags = saved_rflags;
                } else {
                    self.state.rflags |= saved_rflags & flags::RF;
                }
                Err(fault)
            }
        }
    }

    // ---- exceptions and interrupts --------------------------------------------------------

    /// Delivers a fault raised by the instruction at RIP. A fault while delivering becomes a
    /// double fault; a fault while delivering that, a triple fault (`Err`).
    pub fn deliver_fault(&mut self, fault: Fault) -> Result<(), Fault> {
        if let Some(address) = fault.address {
            self.state.cr2 = address;
        }
        // Fault-class exceptions push RF = 1 so that the handler's IRET does not trip an
        // instruction breakpoint again (SDM vol. 3 §17.3.1.1); traps and aborts (#DF) push
        // it as it was.
        let rf = self.state.rflags & flags::RF;
        let rip = self.state.rip;
        // A fault while delivering: #DF when both are contributory or the first is #PF and
        // the second contributory or #PF; after a benign first exception the second is
        // delivered in its place; a fault delivering #DF shuts down (SDM vol. 3 Table 6-5).
        let contributory = |vector: u8| matches!(vector, 0 | 10 | 11 | 12 | 13);
        let mut current = fault;
        loop {
            self.state.rflags = if matches!(current.vector, 1 | 3 | 4 | 8 | 18) {
                (self.state.rflags & !flags::RF) | rf
            } else {
                self.state.rflags | flags::RF
            };
            let second = match self.deliver(current.vector, current.error_code, rip, false) {
                Ok(()) => return Ok(()),
                Err(second) => second,
            };
            if let Some(address) = second.address {
                self.state.cr2 = address;
            }
            if current.vector == 8 {
                return Err(second);
            }
            let double = (contributory(current.vector) || current.vector == 14)
                && (contributory(second.vector) || (current.vector == 14 && second.vector == 14));
            current = if double {
                Fault {
                    vector: 8,
                    error_code: Some(0),
                    address: None,
                }
            } else {
                second
            };
        }
    }

    /// Delivers an external interrupt (the platform's entry point): when RFLAGS.IF is set
    /// and no interrupt shadow is active, enters the handler of `vector` and returns true.
    pub fn interrupt(&mut self, vector: u8) -> bool {
        if self.state.rflags & flags::IF == 0 || self.state.interrupt_shadow {
            return false;
        }
        self.state.halted = false;
        let rip = self.state.rip;
        if self.deliver(vector, None, rip, false).is_err() {
            let _ = self.deliver(8, Some(0), rip, false);
        }
        true
    }

    /// Enters the handler of `vector` through the IDT, pushing `return_rip`. `software`
    /// (INT n, INT3) checks the gate's DPL against CPL.
    pub(crate) fn deliver(
        &mut self,
        vector: u8,
        error_code: Option<u32>,
        return_rip: u64,
        software: bool,
    ) -> Result<(), Fault> {
        self.state.halted = false;
        // Error code of a fault on the IDT entry: the IDT bit, and EXT unless the event is a
        // software interrupt (SDM vol. 3 §6.13).
        let idt_error = u32::from(vector) * 8 + 2 + u32::from(!software);
        if self.state.long_mode_active() {
            let offset = u64::from(vector) * 16;
            if offset + 15 > u64::from(self.state.idtr.limit) {
                return Err(Fault::gp(idt_error));
            }
            let base = self.state.idtr.base + offset;
            let low = self.read_linear(base, 8, true)?;
            let high = self.read_linear(base + 8, 8, true)?;
            let kind = (low >> 40) & 0xf;
            let dpl = ((low >> 45) & 3) as u8;
            let present = (low >> 47) & 1 != 0;
            if kind != 0xe && kind != 0xf {
                return Err(Fault::gp(idt_error));
            }
            if software && dpl < self.state.cpl {
                return Err(Fault::gp(idt_error));
            }
            if !present {
                return Err(Fault::np(idt_error));
            }
            let target = (low & 0xffff) | ((low >> 32) & 0xffff_0000) | (high << 32);
            let selector = ((low >> 16) & 0xffff) as u16;
            let ist = (low >> 32) & 7;
            let code = self.load_descriptor(selector)?;
            if code.attributes & Segment::L == 0 || !code.present() {
                return Err(Fault::gp(u32::from(selector & !3)));
            }
            let new_cpl = code.dpl();
            let old_cpl = self.state.cpl;
            let old_ss = self.state.segments[seg::SS].selector;
            let old_rsp = self.state.gpr[4];
            let mut rsp = if ist != 0 {
                self.read_linear(self.state.tr.base + 0x24 + (ist - 1) * 8, 8, true)?
            } else if new_cpl < old_cpl {
                self.read_linear(self.state.tr.base + 4 + u64::from(new_cpl) * 8, 8, true)?
            } else {
                old_rsp
            };
            rsp &= !0xf;
            let mut frame = vec![
                u64::from(old_ss),
                old_rsp,
                self.state.rflags,
                u64::from(self.state.segments[seg::CS].selector),
                return_rip,
            ];
            if let Some(code) = error_code {
                frame.push(u64::from(code));
            }
            for value in &frame {
                rsp = rsp.wrapping_sub(8);
                self.write_linear(rsp, 8, *value, true)?;
            }
            self.state.gpr[4] = rsp;
            self.state.segments[seg::CS] = Segment {
                selector: (selector & !3) | u16::from(new_cpl),
                ..code
            };
            // A privilege change, or any IST stack, loads a null SS with RPL = new CPL
            // (SDM vol. 3 §6.14.4 and §6.14.5).
            if new_cpl != old_cpl || ist != 0 {
                self.state.segments[seg::SS] = Segment {
                    selector: u16::from(new_cpl),
                    base: 0,
                    limit: 0xffff_ffff,
                    attributes: Segment::S
                        | Segment::PRESENT
                        | Segment::DB
                        | 0x3
                        | (u16::from(new_cpl) << 5),
                };
            }
            self.state.cpl = new_cpl;
            self.state.rip = target;
            self.state.rflags &= !(flags::TF | flags::NT | flags::RF | flags::VM);
            if kind == 0xe {
                self.state.rflags &= !flags::IF;
            }
            return Ok(());
        }
        self.deliver_legacy(vector, error_code, return_rip, software)
    }

    /// Protected-mode (32-bit IDT gate) and real-mode (IVT) delivery.
    fn deliver_legacy(
        &mut self,
        vector: u8,
        error_code: Option<u32>,
        return_rip: u64,
        software: bool,
    ) -> Result<(), Fault> {
        let idt_error = u32::from(vector) * 8 + 2 + u32::from(!software);
        if self.state.mode() == Mode::Real {
            let entry = self.read_linear(self.state.idtr.base + u64::from(vector) * 4, 4, true)?;
            let mut sp = self.state.gpr[4] as u16;
            for value in [
                self.state.rflags & 0xffff,
                u64::from(self.state.segments[seg::CS].selector),
                return_rip & 0xffff,
            ] {
                sp = sp.wrapping_sub(2);
                let linear = self.state.segments[seg::SS].base + u64::from(sp);
                self.write_linear(linear, 2, value, true)?;
            }
            self.state.gpr[4] = (self.state.gpr[4] & !0xffff) | u64::from(sp);
            let selector = (entry >> 16) as u16;
            self.state.segments[seg::CS].selector = selector;
            self.state.segments[seg::CS].base = u64::from(selector) << 4;
            self.state.rip = entry & 0xffff;
            self.state.rflags &= !(flags::IF | flags::TF | flags::AC);
            return Ok(());
        }
        let offset = u64::from(vector) * 8;
        if offset + 7 > u64::from(self.state.idtr.limit) {
            return Err(Fault::gp(idt_error));
        }
        let gate = self.read_linear(self.state.idtr.base + offset, 8, true)?;
        let kind = (gate >> 40) & 0x1f;
        let dpl = ((gate >> 45) & 3) as u8;
        if !matches!(kind, 0xe | 0xf) {
            return Err(Fault::gp(idt_error));
        }
        if software && dpl < self.state.cpl {
            return Err(Fault::gp(idt_error));
        }
        if (gate >> 47) & 1 == 0 {
            return Err(Fault::np(idt_error));
        }
        let target = (gate & 0xffff) | ((gate >> 32) & 0xffff_0000);
        let selector = ((gate >> 16) & 0xffff) as u16;
        let code = self.load_descriptor(selector)?;
        let new_cpl = code.dpl();
        let old_cpl = self.state.cpl;
        let mut frame: Vec<u32> = Vec::new();
        let (mut esp, ss) = if new_cpl < old_cpl {
            let tss = self.state.tr.base;
            let esp0 = self.read_linear(tss + 4 + u64::from(new_cpl) * 8, 4, true)?;
            let ss0 = self.read_linear(tss + 8 + u64::from(new_cpl) * 8, 2, true)? as u16;
            frame.push(u32::from(self.state.segments[seg::SS].selector));
            frame.push(self.state.gpr[4] as u32);
            (esp0, Some(self.load_descriptor(ss0)?.with_selector(ss0)))
        } else {
            (self.state.gpr[4] & 0xffff_ffff, None)
        };
        frame.push(self.state.rflags as u32);
        frame.push(u32::from(self.state.segments[seg::CS].selector));
        frame.push(return_rip as u32);
        if let Some(code) = error_code {
            frame.push(code);
        }
        let ss_base = ss.map_or(self.state.segments[seg::SS].base, |s| s.base);
        for value in &frame {
            esp = esp.wrapping_sub(4) & 0xffff_ffff;
            self.write_linear((ss_base + esp) & 0xffff_ffff, 4, u64::from(*value), true)?;
        }
        if let Some(ss) = ss {
            self.state.segments[seg::SS] = ss;
        }
        self.state.gpr[4] = esp;
        self.state.segments[seg::CS] = code.with_selector((selector & !3) | u16::from(new_cpl));
        self.state.cpl = new_cpl;
        self.state.rip = target;
        self.state.rflags &= !(flags::TF | flags::NT | flags::RF | flags::VM);
        if kind == 0xe {
            self.state.rflags &= !flags::IF;
        }
        Ok(())
    }

    /// Reads the descriptor `selector` names from the GDT or LDT (null selectors: #GP(0)).
    pub(crate) fn load_descriptor(&mut self, selector: u16) -> Result<Segment, Fault> {
        let segment = self.read_descriptor(selector)?;
        if !segment.present() {
            return Err(Fault::np(u32::from(selector & !3)));
        }
        Ok(segment)
    }

    /// Reads the descriptor `selector` names, present or not (for loads that check its
    /// type and privilege before presence).
    pub(crate) fn read_descriptor(&mut self, selector: u16) -> Result<Segment, Fault> {
        let index = u64::from(selector & !7);
        if index == 0 && selector & 4 == 0 {
            return Err(Fault::gp(0));
        }
        let (base, limit) = if selector & 4 != 0 {
            (self.state.ldtr.base, u64::from(self.state.ldtr.limit))
        } else {
            (self.state.gdtr.base, u64::from(self.state.gdtr.limit))
        };
        if index + 7 > limit {
            return Err(Fault::gp(u32::from(selector & !3)));
        }
        let raw = self.read_linear(base + index, 8, true)?;
        Ok(Segment::from_descriptor(
            selector,
            raw as u32,
            (raw >> 32) as u32,
        ))
    }

    /// Reads the 16-byte system descriptor (LDT, TSS in long mode) at `selector`.
    pub(crate) fn load_system_descriptor(&mut self, selector: u16) -> Result<Segment, Fault> {
        let mut segment = self.load_descriptor(selector)?;
        if self.state.long_mode_active() {
            let high =
                self.read_linear(self.state.gdtr.base + u64::from(selector & !7) + 8, 4, true)?;
            segment.base |= high << 32;
        }
        Ok(segment)
    }

    /// Reads `size` bytes from I/O port `port`.
    pub(crate) fn port_read(&mut self, port: u16, size: u32) -> u32 {
        let now = self.icount;
        match self.ports.as_mut() {
            Some(ports) => ports.0.read(port, size as u8, now),
            None => crate::alu::mask(size) as u32,
        }
    }

    /// Writes `size` bytes to I/O port `port`.
    pub(crate) fn port_write(&mut self, port: u16, size: u32, value: u32) {
        let now = self.icount;
        if let Some(ports) = self.ports.as_mut() {
            ports.0.write(port, size as u8, value, now);
        }
    }

    /// The time-stamp counter: retired instructions plus the guest's offset.
    pub fn tsc(&self) -> u64 {
        self.icount.wrapping_add(self.state.tsc_offset)
    }

    /// Reads an MSR (`None`: not implemented, which raises #GP).
    pub fn read_msr(&self, number: u32) -> Option<u64> {
        let s = &self.state;
        Some(match number {
            msr::TSC => self.tsc(),
            msr::APIC_BASE => s.apic_base,
            msr::SYSENTER_CS => s.sysenter[0],
            msr::SYSENTER_ESP => s.sysenter[1],
            msr::SYSENTER_EIP => s.sysenter[2],
            msr::MISC_ENABLE => s.misc_enable,
            msr::PAT => s.pat,
            msr::TSC_DEADLINE => s.tsc_deadline,
            msr::EFER => s.efer,
            msr::STAR => s.star,
            msr::LSTAR => s.lstar,
            msr::CSTAR => s.cstar,
            msr::SFMASK => s.sfmask,
            msr::FS_BASE => s.segments[seg::FS].base,
            msr::GS_BASE => s.segments[seg::GS].base,
            msr::KERNEL_GS_BASE => s.kernel_gs_base,
            _ => return None,
        })
    }

    /// Writes an MSR; `Err` for an unknown MSR or a value with reserved bits (#GP).
    pub fn write_msr(&mut self, number: u32, value: u64) -> Result<(), Fault> {
        let canonical = |v: u64| {
            if mmu::canonical(v) {
                Ok(v)
            } else {
                Err(Fault::gp(0))
            }
        };
        match number {
            msr::TSC => self.state.tsc_offset = value.wrapping_sub(self.icount),
            msr::APIC_BASE => {
                if value & !(0xff_ffff_f000 | (1 << 11) | (1 << 8) | (1 << 10)) != 0 {
                    return Err(Fault::gp(0));
                }
                self.state.apic_base = value;
            }
            msr::SYSENTER_CS => self.state.sysenter[0] = value & 0xffff,
            msr::SYSENTER_ESP => self.state.sysenter[1] = canonical(value)?,
            msr::SYSENTER_EIP => self.state.sysenter[2] = canonical(value)?,
            msr::MISC_ENABLE => self.state.misc_enable = value,
            msr::PAT => {
                for byte in value.to_le_bytes() {
                    if !matches!(byte, 0 | 1 | 4 | 5 | 6 | 7) {
                        return Err(Fault::gp(0));
                    }
                }
                self.state.pat = value;
            }
            msr::TSC_DEADLINE => self.state.tsc_deadline = value,
            msr::EFER => {
                let writable = msr::EFER_SCE | msr::EFER_LME | msr::EFER_NXE;
                if value & !(writable | msr::EFER_LMA) != 0 {
                    return Err(Fault::gp(0));
                }
                if self.state.paging() && (value ^ self.state.efer) & msr::EFER_LME != 0 {
                    return Err(Fault::gp(0));
                }
                self.state.efer = (value & writable) | (self.state.efer & msr::EFER_LMA);
                self.tlb.flush(false);
            }
            msr::STAR => self.state.star = value,
            msr::LSTAR => self.state.lstar = canonical(value)?,
            msr::CSTAR => self.state.cstar = canonical(value)?,
            msr::SFMASK => self.state.sfmask = value & 0xffff_ffff,
            msr::FS_BASE => self.state.segments[seg::FS].base = canonical(value)?,
            msr::GS_BASE => self.state.segments[seg::GS].base = canonical(value)?,
            msr::KERNEL_GS_BASE => self.state.kernel_gs_base = canonical(value)?,
            _ => return Err(Fault::gp(0)),
        }
        Ok(())
    }
}

impl Segment {
    /// The same cache with another selector.
    pub fn with_selector(self, selector: u16) -> Segment {
        Segment { selector, ..self }
    }
}
