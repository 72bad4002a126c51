//! The run loops: blocks from the decoded-block cache, one instruction at a time, with
//! exceptions delivered through the IDT (or returned, in user mode) and the single-step
//! trap, under PANDA's firing protocol (`pandare_core::execution`).
//!
//! [`X86Cpu::run_with`] is the entry the machine and `panda exec` use. It hands the CPU to
//! [`execution::run`], which picks one of three copies of the same loop
//! ([`X86Cpu::run_loop`]) once per call: the uninstrumented loop (nothing enabled: no
//! callback code at all, no test of the registry per block), the block-start loop (only
//! `before_block_exec`, `start_block_exec` and `before_handle_exception`: the uninstrumented
//! body plus those calls), and the instrumented loop (everything: instruction, memory and
//! translate-time callbacks, address hooks, `asid_changed`, the hypercall).
//!
//! x86 firing points:
//! - **Exceptions** (`before_handle_exception`, with the vector as the index): faults raised
//!   by an instruction or its fetch, with the pc at the faulting instruction; INT n, INT3,
//!   INTO and INT1, before they run, with the pc at them (QEMU raises them as exceptions
//!   too); the single-step trap (1) after an instruction. SYSCALL and SYSENTER from CPL 3
//!   are reported as the pseudo exception [`crate::SYSCALL_EXCEPTION`] (0x100) before they
//!   run, with the pc at them: no IDT vector exists for them, and `syscalls2` keys on it;
//!   in user mode (`panda exec`) INT 0x80 is reported as 0x80 where it stops. Returning -1
//!   cancels: nothing is delivered and execution goes on where the callback left the pc
//!   (without moving it, at the same instruction again). Returning another index delivers
//!   that vector instead as a fault at the instruction (vectors that push an error code
//!   push 0); an index above 255 cancels.
//! - **Interrupts**: the platform delivers them through [`X86Cpu::interrupt_with`], which
//!   fires `before_handle_interrupt` (a cancelled interrupt stays pending: it returns false).
//! - **CR3 writes** fire `asid_changed` (instrumented loop) before CR3 changes, when the
//!   value changes; a refusal keeps CR3 and the TLB. (No hardware task switches exist.)
//! - **The hypercall** is CPUID: `guest_hypercall` fires before every CPUID in the
//!   instrumented loop; if a callback returns true, the CPUID retires without its own effect.

use std::rc::{Rc, Weak};

use pandare_core::execution::block::{
    self as protocol, BlockExecutor, BlockFacts, BlockOutcome, InstructionPoint,
};
use pandare_core::execution::{self, CpuView, Executor, Hooks, TranslatedCode};
use pandare_core::instrument::{BlockInfo, CallbackKind, GuestCpu, Instrumentation, MEMORY_KINDS};

use crate::cpu::{Block, Event, Exit, X86Cpu};
use crate::hooks::X86View;
use crate::mmu::Access;
use crate::state::flags;
use crate::Fault;

/// Turns of a hooked loop in a row without a retired instruction after which the CPU counts
/// as stuck (a callback cancelling the same exception again and again).
const MAX_STALLED: u32 = 64;

/// Selection bit: `insn_exec` fires before the instruction.
const INSN_EXEC: u8 = 1;
/// Selection bit: `after_insn_exec` fires after it.
const AFTER_INSN_EXEC: u8 = 2;

/// What the instrumented loop knows of a cached block beyond its instructions.
#[derive(Debug)]
pub(crate) struct BlockMeta {
    /// The block it describes (the entry is stale once that block is dropped).
    block: Weak<Block>,
    /// The linear address it was translated at (`u64::MAX`: unknown, decoded by another
    /// loop: not split at hooked addresses, so the protocol looks for hooks inside it).
    translated_at: u64,
    /// Whether an address hook was registered at `translated_at` then.
    hooked: bool,
    /// Per instruction, the `INSN_EXEC`/`AFTER_INSN_EXEC` bits translate-time callbacks chose.
    selected: Rc<[u8]>,
}

/// Kinds that fire at translation.
const TRANSLATE_KINDS: u64 = CallbackKind::BeforeBlockTranslate.bit()
    | CallbackKind::AfterBlockTranslate.bit()
    | CallbackKind::InsnTranslate.bit()
    | CallbackKind::AfterInsnTranslate.bit();

/// How a block ended, for the run loop.
pub(crate) enum BlockEnd {
    /// Carry on with the next block.
    Continue,
    /// An exception was taken (or cancelled) in it.
    Trapped,
    /// Stop and report.
    Exit(Exit),
}

impl BlockOutcome for BlockEnd {
    #[inline]
    fn cancelled() -> BlockEnd {
        BlockEnd::Continue
    }

    #[inline]
    fn trapped(&self) -> bool {
        matches!(self, BlockEnd::Trapped)
    }
}

/// The linear address of instruction `n` of `block`, which starts at linear `pc`.
#[inline]
fn instruction_pc(cpu: &X86Cpu, block: &Block, pc: u64, n: usize) -> u64 {
    let offset = block.ip(n).wrapping_sub(block.ip(0));
    match cpu.state.mode() {
        crate::state::Mode::Long64 => pc.wrapping_add(offset),
        _ => pc.wrapping_add(offset) & 0xffff_ffff,
    }
}

/// The block's first `count` instructions (all when `count` is at least its length), at `pc`.
fn block_info(block: &Block, pc: u64, count: usize) -> BlockInfo {
    let count = count.min(block.len());
    BlockInfo {
        pc,
        size: (0..count).map(|n| block.size(n)).sum(),
        instruction_count: count as u32,
    }
}

/// The vector `before_handle_exception` gets for a software interrupt instruction, or
/// `None` when it raises nothing (INTO with OF clear).
fn software_vector(cpu: &X86Cpu, block: &Block, n: usize) -> Option<u32> {
    use iced_x86::Mnemonic as M;
    let instruction = block.instruction(n);
    match instruction.mnemonic() {
        M::Int => Some(u32::from(instruction.immediate(0) as u8)),
        M::Int3 => Some(3),
        M::Int1 => Some(1),
        M::Into => (cpu.state.rflags & flags::OF != 0).then_some(4),
        _ => None,
    }
}

/// Vectors whose delivery pushes an error code.
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21)
}

/// What a callback's answer makes of exception `vector`: the fault to deliver, or `None`
/// when it is cancelled.
fn replaced(original: Fault, answer: Option<(u64, u64)>) -> Option<Fault> {
    let (index, _) = answer?;
    if index == u64::from(original.vector) {
        return Some(original);
    }
    let vector = u8::try_from(index).ok()?;
    Some(Fault {
        vector,
        error_code: has_error_code(vector).then_some(0),
        address: None,
    })
}

/// What to do at an instruction where an exception was offered to the callbacks.
enum Offer {
    /// Run the instruction as it is.
    Proceed,
    /// Leave the block (cancelled, delivered, or the run ends).
    End(BlockEnd),
}

impl X86Cpu {
    /// Runs up to `budget` instructions from pre-decoded blocks, delivering exceptions
    /// through the IDT, with no callbacks. (Blocks decoded here are not split at hooked
    /// addresses: a machine with address hooks runs through [`X86Cpu::run_with`].)
    pub fn run(&mut self, budget: u64) -> Exit {
        let mut instr = Instrumentation::default();
        self.run_loop::<false, false>(Hooks::new(&mut instr), budget)
    }

    /// Runs up to `budget` instructions, firing the callbacks `instr` enables, as
    /// [`execution::run`] decides (with nothing enabled this is [`X86Cpu::run`]). In user
    /// mode it stops at system calls ([`Exit::Syscall`]) and returns faults, as `run` does;
    /// [`Exit::Stopped`] when a callback asked to stop.
    // Not inline: the executor's code stays compiled once, here.
    #[inline(never)]
    pub fn run_with(&mut self, instr: &mut Instrumentation, budget: u64) -> Exit {
        execution::run(&mut Exec::new(self), instr, budget)
    }

    /// Delivers external interrupt `vector` (the platform's entry point) like
    /// [`X86Cpu::interrupt`], firing `before_handle_interrupt` first when the CPU would take
    /// it: a callback may replace the vector, or cancel it (returning -1; then nothing is
    /// delivered and this returns false, so the interrupt stays pending).
    pub fn interrupt_with(&mut self, instr: &mut Instrumentation, vector: u8) -> bool {
        if self.state.rflags & flags::IF == 0 || self.state.interrupt_shadow {
            return false;
        }
        if !instr.has(CallbackKind::BeforeHandleInterrupt) {
            return self.interrupt(vector);
        }
        let answer = Hooks::new(instr).interrupt(&mut X86View::new(self), u64::from(vector));
        match answer.and_then(|index| u8::try_from(index).ok()) {
            Some(vector) => self.interrupt(vector),
            None => false,
        }
    }

    /// The run loop. `HOOKS`: every callback kind and address hooks. `BLOCK_START` (without
    /// `HOOKS`): the uninstrumented loop plus `before_block_exec`/`start_block_exec` at
    /// every block and `before_handle_exception`; it returns with `self.attention` set when
    /// the registry needs attention.
    fn run_loop<const HOOKS: bool, const BLOCK_START: bool>(
        &mut self,
        hooks: &mut Hooks,
        budget: u64,
    ) -> Exit {
        self.instrument.clear();
        let end = self.icount.saturating_add(budget);
        let (mut progress, mut stalled) = (self.icount, 0u32);
        let exit = loop {
            if (HOOKS || BLOCK_START) && hooks.needs_attention() {
                self.instrument.clear();
                if BLOCK_START {
                    self.attention = true;
                    break Exit::Budget;
                }
                if hooks.attend(&mut Exec::new(self)) {
                    break Exit::Stopped;
                }
            }
            if self.icount >= end {
                break Exit::Budget;
            }
            if self.state.halted {
                break Exit::Halted;
            }
            if HOOKS || BLOCK_START {
                if self.icount != progress {
                    (progress, stalled) = (self.icount, 0);
                } else if stalled == MAX_STALLED {
                    // Callbacks keep cancelling what would let the CPU go on: wait for an
                    // interrupt, as a halted CPU does.
                    break Exit::Halted;
                } else {
                    stalled += 1;
                }
            }
            if HOOKS {
                let mask = hooks.mask();
                let pc = self.linear_pc();
                self.instrument.rip = self.state.rip;
                self.instrument.pc = pc;
                let block = match self.translated_block(hooks, pc, mask) {
                    Ok(block) => block,
                    Err(fault) => match self.take_fault::<true>(hooks, fault, None) {
                        Some(exit) => break exit,
                        None => continue,
                    },
                };
                self.code_written = false;
                let remaining = end - self.icount;
                let mut exec = Exec {
                    cpu: &mut *self,
                    block: Some(block),
                };
                let outcome = protocol::run_block(&mut exec, hooks, (), pc, remaining);
                if let BlockEnd::Exit(exit) = outcome {
                    break exit;
                }
                continue;
            }
            let block = match self.block_here() {
                Ok(block) => block,
                Err(fault) => match self.take_fault::<false>(hooks, fault, None) {
                    Some(exit) => break exit,
                    None => continue,
                },
            };
            self.code_written = false;
            if BLOCK_START && hooks.fires_block_start() {
                let pc = self.linear_pc();
                let info = block_info(&block, pc, usize::MAX);
                if !protocol::block_start(hooks, &mut X86View::new(self), &info, pc) {
                    continue;
                }
            }
            let count = block.len().min((end - self.icount) as usize);
            if let BlockEnd::Exit(exit) =
                self.execute_block::<false, BLOCK_START>(hooks, &block, count, 0, None)
            {
                break exit;
            }
        };
        self.instrument.clear();
        exit
    }

    /// The block at the current RIP for the instrumented loop, with the translate-time
    /// callbacks when it is translated now: `before_block_translate` before, and
    /// `insn_translate`/`after_insn_translate` for each instruction and
    /// `after_block_translate` after. `Err` when the fetch faults.
    fn translated_block(
        &mut self,
        hooks: &mut Hooks,
        pc: u64,
        mask: u64,
    ) -> Result<Rc<Block>, Fault> {
        if mask & CallbackKind::BeforeBlockTranslate.bit() != 0 && !self.is_cached_here() {
            hooks.before_translate(&mut X86View::new(self), pc);
        }
        // Decoding ends blocks before hooked addresses: it looks them up in the registry.
        self.lend(hooks);
        let decoded = self.decoded_blocks;
        let block = self.block_here()?;
        let fresh = self.decoded_blocks != decoded;
        let key = block.key;
        let known = self
            .block_meta
            .get(&key)
            .is_some_and(|meta| meta.block.ptr_eq(&Rc::downgrade(&block)));
        if !known {
            // Decoded just now (or by another loop, in which case `translated_at` is not
            // known to have split it at hooks; but then translate-time callbacks were not
            // enabled when it was decoded, or the code would have been flushed since).
            let selected = if fresh && mask & TRANSLATE_KINDS != 0 {
                self.translate_hooks(hooks, &block, pc)
            } else {
                Rc::from(Vec::new())
            };
            self.block_meta.insert(
                key,
                BlockMeta {
                    block: Rc::downgrade(&block),
                    translated_at: if fresh { pc } else { u64::MAX },
                    hooked: fresh && hooks.is_hooked(pc),
                    selected,
                },
            );
        }
        Ok(block)
    }

    /// Lends the registry to the access functions (memory callbacks, `asid_changed`, hook
    /// splits) for what runs next; done again before each use, after the loop used `hooks`.
    #[inline]
    fn lend(&mut self, hooks: &mut Hooks) {
        let memory = hooks.mask() & MEMORY_KINDS != 0;
        self.instrument.lend(hooks, memory);
    }

    /// Whether the block at the current RIP is cached (its fetch translation succeeds and
    /// the cache holds its physical address in this mode).
    fn is_cached_here(&mut self) -> bool {
        let Ok(linear) = self.linear_ip() else {
            return false;
        };
        match self.translate(linear, Access::Fetch, false) {
            Ok(physical) => self
                .blocks
                .get(&(physical, self.state.mode()))
                .is_some_and(|block| block.ip(0) == self.state.rip),
            Err(_) => false,
        }
    }

    /// `insn_translate`/`after_insn_translate` for each instruction of a freshly decoded
    /// block and `after_block_translate` for it: the selection bits.
    #[cold]
    fn translate_hooks(&mut self, hooks: &mut Hooks, block: &Block, pc: u64) -> Rc<[u8]> {
        let mut selected = Vec::with_capacity(block.len());
        for n in 0..block.len() {
            let insn_pc = instruction_pc(self, block, pc, n);
            let (insn_exec, after_insn_exec) =
                hooks.select_instruction(&mut X86View::new(self), insn_pc);
            selected.push(
                if insn_exec { INSN_EXEC } else { 0 }
                    | if after_insn_exec { AFTER_INSN_EXEC } else { 0 },
            );
        }
        hooks.after_translate(&mut X86View::new(self), &block_info(block, pc, usize::MAX));
        Rc::from(selected)
    }

    /// Takes `fault` (raised at RIP, by the instruction there or its fetch): through
    /// `before_handle_exception` when `HOOKS` or exceptions are watched (`in_block`: the
    /// instrumented block it happened in, for `cpu_restore_state`), then delivered, or
    /// returned in user mode. `Some` when the run ends.
    #[inline(always)]
    fn take_fault<const HOOKS: bool>(
        &mut self,
        hooks: &mut Hooks,
        fault: Fault,
        in_block: Option<&BlockInfo>,
    ) -> Option<Exit> {
        let fault = if HOOKS || hooks.fires_exceptions() {
            self.offer_fault(hooks, fault, in_block)?
        } else {
            fault
        };
        if self.user_mode {
            return Some(Exit::Fault(fault));
        }
        if HOOKS {
            self.lend(hooks);
        }
        if self.deliver_fault(fault).is_err() {
            return Some(Exit::TripleFault);
        }
        None
    }

    /// `before_handle_exception` for `fault`: what to deliver, or `None` when cancelled.
    #[cold]
    #[inline(never)]
    fn offer_fault(
        &mut self,
        hooks: &mut Hooks,
        fault: Fault,
        in_block: Option<&BlockInfo>,
    ) -> Option<Fault> {
        let pc = self.linear_pc();
        let mut view = X86View::new(self);
        let answer = match in_block {
            Some(info) => hooks.trap_in_block(&mut view, info, u64::from(fault.vector), pc),
            None => hooks.exception(&mut view, u64::from(fault.vector), pc),
        };
        replaced(fault, answer)
    }

    /// An exception offered before the instruction at RIP runs (a system call or software
    /// interrupt, `index`): whether it runs, or what happened instead.
    #[cold]
    #[inline(never)]
    fn offer_exception(
        &mut self,
        hooks: &mut Hooks,
        index: u32,
        pass: Option<Exit>,
        lend: bool,
    ) -> Offer {
        let pc = self.linear_pc();
        let answer = hooks.exception(&mut X86View::new(self), u64::from(index), pc);
        match answer {
            None => Offer::End(BlockEnd::Trapped),
            Some((given, _)) if given == u64::from(index) => match pass {
                Some(exit) => Offer::End(BlockEnd::Exit(exit)),
                None => Offer::Proceed,
            },
            Some((given, _)) => {
                let Ok(vector) = u8::try_from(given) else {
                    return Offer::End(BlockEnd::Trapped);
                };
                let fault = Fault {
                    vector,
                    error_code: has_error_code(vector).then_some(0),
                    address: None,
                };
                if self.user_mode {
                    return Offer::End(BlockEnd::Exit(Exit::Fault(fault)));
                }
                if lend {
                    self.lend(hooks);
                }
                if self.deliver_fault(fault).is_err() {
                    return Offer::End(BlockEnd::Exit(Exit::TripleFault));
                }
                Offer::End(BlockEnd::Trapped)
            }
        }
    }

    /// Runs the first `count` instructions of `block` from RIP. `HOOKS`: the instrumented
    /// body (instruction callbacks, the hypercall, memory callbacks through the lent
    /// registry; `pc` is the block's linear address, `meta` its selections); `WATCH`: the
    /// block-start loop's body (system calls and software interrupts offered to
    /// `before_handle_exception` when it is enabled). Neither: the uninstrumented body.
    fn execute_block<const HOOKS: bool, const WATCH: bool>(
        &mut self,
        hooks: &mut Hooks,
        block: &Block,
        count: usize,
        pc: u64,
        selected: Option<&[u8]>,
    ) -> BlockEnd {
        let last = block.len() - 1;
        // The previous instruction, when `after_insn_exec` is to fire for it.
        let mut after_previous: Option<u64> = None;
        let mut end = BlockEnd::Continue;
        // Uninstrumented: the leading run of pre-decoded ops in one go (see
        // `X86Cpu::execute_ops`); the loop below takes over from the first other one.
        let mut start = 0;
        if !HOOKS {
            let (done, fault) = self.execute_ops(block, count);
            if let Some(fault) = fault {
                return match self.take_fault::<false>(hooks, fault, None) {
                    Some(exit) => BlockEnd::Exit(exit),
                    None => BlockEnd::Trapped,
                };
            }
            if self.code_written {
                return self.stale_block_end(end);
            }
            start = done;
        }
        for n in start..count {
            if block.ip(n) != self.state.rip {
                break;
            }
            let mut select = 0u8;
            let mut insn_pc = 0;
            if HOOKS {
                insn_pc = instruction_pc(self, block, pc, n);
                select = selected.and_then(|s| s.get(n).copied()).unwrap_or(0);
                self.instrument.rip = self.state.rip;
                self.instrument.pc = insn_pc;
                if after_previous.is_some() || select & INSN_EXEC != 0 {
                    let point = InstructionPoint {
                        after_previous: after_previous.take(),
                        insn_exec: select & INSN_EXEC != 0,
                        hypercall: false,
                    };
                    if self.instruction_hooks(hooks, point) {
                        return end;
                    }
                }
                if hooks.has(CallbackKind::GuestHypercall)
                    && block.instruction(n).mnemonic() == iced_x86::Mnemonic::Cpuid
                {
                    match self.hypercall(hooks, block, n, insn_pc) {
                        Some(true) => {
                            if select & AFTER_INSN_EXEC != 0 {
                                after_previous = Some(insn_pc);
                            }
                            continue;
                        }
                        Some(false) => {}
                        None => return end,
                    }
                }
            }
            if n == last {
                if let Some(frame) = block.crossing {
                    // The instruction's second page: still mapped, executable, the same
                    // frame? Otherwise fault, or decode afresh.
                    let second_page = self
                        .linear_ip()
                        .map(|l| l.wrapping_add(block.size(n) - 1) & !0xfff);
                    match second_page.and_then(|l| self.translate(l, Access::Fetch, false)) {
                        Err(fault) => {
                            end = match self.take_fault::<HOOKS>(hooks, fault, None) {
                                Some(exit) => BlockEnd::Exit(exit),
                                None => BlockEnd::Trapped,
                            };
                            break;
                        }
                        Ok(p) if p >> 12 != frame => {
                            self.blocks.remove(&block.key);
                            break;
                        }
                        Ok(_) => {}
                    }
                }
                if (self.user_mode || HOOKS || WATCH) && block.is_system_call(n) {
                    if let Offer::End(stop) = self.system_call::<HOOKS>(hooks, block, n) {
                        end = stop;
                        break;
                    }
                } else if (HOOKS || WATCH) && !self.user_mode && block.is_software_interrupt(n) {
                    if let Some(vector) = software_vector(self, block, n) {
                        if HOOKS || hooks.fires_exceptions() {
                            if let Offer::End(stop) =
                                self.offer_exception(hooks, vector, None, HOOKS)
                            {
                                end = stop;
                                break;
                            }
                        }
                    }
                }
            }
            let single_step = self.state.rflags & flags::TF != 0;
            if HOOKS {
                self.lend(hooks);
            }
            match self.execute_in_block(block, n) {
                Err(fault) => {
                    let info = if HOOKS {
                        Some(block_info(block, pc, count))
                    } else {
                        None
                    };
                    end = match self.take_fault::<HOOKS>(hooks, fault, info.as_ref()) {
                        Some(exit) => BlockEnd::Exit(exit),
                        None => BlockEnd::Trapped,
                    };
                    break;
                }
                Ok(Event::Halted) => {
                    if HOOKS && select & AFTER_INSN_EXEC != 0 {
                        after_previous = Some(insn_pc);
                    }
                    end = BlockEnd::Exit(Exit::Halted);
                    break;
                }
                Ok(_) if single_step && !block.is_software_interrupt(n) => {
                    if HOOKS && select & AFTER_INSN_EXEC != 0 {
                        after_previous = Some(insn_pc);
                    }
                    end = self.single_step_trap::<HOOKS>(hooks);
                    break;
                }
                Ok(_) => {}
            }
            if HOOKS && select & AFTER_INSN_EXEC != 0 {
                after_previous = Some(insn_pc);
            }
            if self.code_written {
                end = self.stale_block_end(end);
                break;
            }
        }
        if HOOKS {
            if let Some(previous) = after_previous {
                hooks.after_instruction(&mut X86View::new(self), previous);
            }
        }
        end
    }

    /// How a block ends that an instruction left stale (`code_written`): a store to code, or
    /// a device access (see `mmio.rs`), which ends the run slice too. Out of the loops' way:
    /// they test only `code_written` per instruction.
    #[cold]
    #[inline(never)]
    fn stale_block_end(&mut self, end: BlockEnd) -> BlockEnd {
        if std::mem::take(&mut self.device_accessed) {
            return BlockEnd::Exit(Exit::Budget);
        }
        end
    }

    /// The single-step trap after an instruction (DR6.BS), offered to the callbacks when
    /// they watch exceptions.
    fn single_step_trap<const HOOKS: bool>(&mut self, hooks: &mut Hooks) -> BlockEnd {
        self.state.dr[6] |= 1 << 14;
        let trap = Fault {
            vector: 1,
            error_code: None,
            address: None,
        };
        let trap = if HOOKS || hooks.fires_exceptions() {
            match self.offer_fault(hooks, trap, None) {
                Some(trap) => trap,
                None => return BlockEnd::Trapped,
            }
        } else {
            trap
        };
        if self.user_mode {
            return BlockEnd::Exit(Exit::Fault(trap));
        }
        if HOOKS {
            self.lend(hooks);
        }
        let rip = self.state.rip;
        if self
            .deliver(trap.vector, trap.error_code, rip, false)
            .is_err()
            && self.deliver(8, Some(0), rip, false).is_err()
        {
            return BlockEnd::Exit(Exit::TripleFault);
        }
        BlockEnd::Trapped
    }

    /// A system call instruction (the last of its block) about to run: in user mode it
    /// stops the run ([`Exit::Syscall`]); SYSCALL and SYSENTER from CPL 3 are offered to
    /// `before_handle_exception` as [`crate::SYSCALL_EXCEPTION`] first, and in user mode
    /// INT 0x80 as 0x80. (In a whole system INT 0x80 is a software interrupt like any.)
    #[inline(always)]
    fn system_call<const HOOKS: bool>(
        &mut self,
        hooks: &mut Hooks,
        block: &Block,
        n: usize,
    ) -> Offer {
        let int80 = block.instruction(n).mnemonic() == iced_x86::Mnemonic::Int;
        let pass = self.user_mode.then_some(Exit::Syscall);
        let fires = HOOKS || hooks.fires_exceptions();
        if int80 && !self.user_mode {
            // A software interrupt in a whole system.
            return match software_vector(self, block, n) {
                Some(vector) if fires => self.offer_exception(hooks, vector, None, HOOKS),
                _ => Offer::Proceed,
            };
        }
        if fires && self.state.cpl == 3 {
            let index = if int80 {
                0x80
            } else {
                crate::SYSCALL_EXCEPTION as u32
            };
            return self.offer_exception(hooks, index, pass, HOOKS);
        }
        match pass {
            Some(exit) => Offer::End(BlockEnd::Exit(exit)),
            None => Offer::Proceed,
        }
    }

    /// `after_insn_exec` for the previous instruction, `insn_exec` for this one: true when
    /// a callback moved the pc or changed code (the block ends before the instruction).
    #[inline(never)]
    fn instruction_hooks(&mut self, hooks: &mut Hooks, point: InstructionPoint) -> bool {
        hooks.instruction(&mut X86View::new(self), point).is_some()
    }

    /// `guest_hypercall` before the CPUID that is instruction `n` of `block` (at linear
    /// `pc`): `Some(true)` when a callback handled it (the CPUID retired without its own
    /// effect), `Some(false)` when it is to run, `None` when a callback moved the pc or
    /// changed code (the block ends before it).
    #[cold]
    #[inline(never)]
    fn hypercall(&mut self, hooks: &mut Hooks, block: &Block, n: usize, pc: u64) -> Option<bool> {
        let mut view = X86View::new(self);
        let handled = hooks.handled_hypercall(&mut view);
        let moved = view.pc() != pc || view.code_modified();
        if moved {
            return None;
        }
        if handled {
            let next = block.instruction(n).next_ip();
            self.state.rip = match self.state.mode() {
                crate::state::Mode::Long64 => next,
                crate::state::Mode::Protected32 => next & 0xffff_ffff,
                _ => next & 0xffff,
            };
            self.icount += 1;
        }
        Some(handled)
    }
}

/// The CPU as the arch-neutral firing protocol drives it ([`execution::run`],
/// [`protocol::run_block`]), with the block `run_block` is running.
pub(crate) struct Exec<'a> {
    cpu: &'a mut X86Cpu,
    block: Option<Rc<Block>>,
}

impl<'a> Exec<'a> {
    fn new(cpu: &'a mut X86Cpu) -> Exec<'a> {
        Exec { cpu, block: None }
    }

    fn block(&self) -> &Rc<Block> {
        self.block
            .as_ref()
            .expect("the protocol asks about a block only while one runs")
    }

    fn meta(&self) -> Option<&BlockMeta> {
        let block = self.block();
        self.cpu
            .block_meta
            .get(&block.key)
            .filter(|meta| meta.block.ptr_eq(&Rc::downgrade(block)))
    }
}

impl TranslatedCode for Exec<'_> {
    fn flush_code(&mut self) {
        // Only the blocks: the TLB stays, so the guest sees no difference.
        self.cpu.flush_blocks();
    }

    fn invalidate_virtual(&mut self, addresses: &mut [u64]) {
        // Blocks are cached by physical address and do not remember every linear address
        // they ran at: drop them all (hooks are added rarely), so that the next translation
        // at a hooked address starts a block there.
        if !addresses.is_empty() {
            self.cpu.flush_blocks();
        }
    }
}

impl Executor for Exec<'_> {
    type Exit = Exit;
    type View<'v>
        = X86View<'v>
    where
        Self: 'v;

    fn view(&mut self) -> X86View<'_> {
        X86View::new(self.cpu)
    }

    fn retired(&self) -> u64 {
        self.cpu.icount
    }

    fn stopped(&self) -> Exit {
        Exit::Stopped
    }

    fn run_plain(&mut self, hooks: &mut Hooks, budget: u64) -> Exit {
        self.cpu.run_loop::<false, false>(hooks, budget)
    }

    fn run_block_start(&mut self, hooks: &mut Hooks, budget: u64) -> Option<Exit> {
        let exit = self.cpu.run_loop::<false, true>(hooks, budget);
        (!std::mem::take(&mut self.cpu.attention)).then_some(exit)
    }

    fn run_instrumented(&mut self, hooks: &mut Hooks, budget: u64) -> Exit {
        self.cpu.run_loop::<true, false>(hooks, budget)
    }
}

impl BlockExecutor for Exec<'_> {
    type Index = ();
    type End = BlockEnd;
    type View<'v>
        = X86View<'v>
    where
        Self: 'v;

    fn view(&mut self) -> X86View<'_> {
        X86View::new(self.cpu)
    }

    fn retired(&self) -> u64 {
        self.cpu.icount
    }

    fn info(&self, _: (), pc: u64, count: usize) -> BlockInfo {
        block_info(self.block(), pc, count)
    }

    fn facts(&self, _: ()) -> BlockFacts {
        let block = self.block();
        let (translated_at, hooked) = self
            .meta()
            .map_or((u64::MAX, false), |meta| (meta.translated_at, meta.hooked));
        BlockFacts {
            len: block.len(),
            size: (0..block.len()).map(|n| block.size(n)).sum(),
            translated_at,
            hooked,
        }
    }

    fn count_before(&self, _: (), pc: u64, address: u64) -> usize {
        let block = self.block();
        (0..block.len())
            .take_while(|&n| instruction_pc(self.cpu, block, pc, n) < address)
            .count()
    }

    fn relocate(&mut self, _: (), pc: u64, hooks: &Hooks) {
        let block = Rc::clone(self.block());
        let size: u64 = (0..block.len()).map(|n| block.size(n)).sum();
        if hooks
            .first_hook_in(pc.saturating_add(1), pc.saturating_add(size))
            .is_some()
        {
            return;
        }
        let hooked = hooks.is_hooked(pc);
        let selected = self
            .meta()
            .map_or_else(|| Rc::from(Vec::new()), |meta| Rc::clone(&meta.selected));
        self.cpu.block_meta.insert(
            block.key,
            BlockMeta {
                block: Rc::downgrade(&block),
                translated_at: pc,
                hooked,
                selected,
            },
        );
    }

    fn retranslate(&mut self, hooks: &mut Hooks, pc: u64) -> Option<()> {
        let key = self.block().key;
        self.cpu.blocks.remove(&key);
        self.cpu.block_meta.remove(&key);
        // Let go of it too: a block nothing else holds is gone for the jump cache as well.
        self.block = None;
        let mask = hooks.mask();
        let block = self.cpu.translated_block(hooks, pc, mask).ok()?;
        self.block = Some(block);
        Some(())
    }

    fn execute(&mut self, hooks: &mut Hooks, _: (), count: usize, body_hooks: bool) -> BlockEnd {
        let block = Rc::clone(self.block());
        let pc = self.cpu.linear_pc();
        if body_hooks {
            let selected = self.meta().map(|meta| Rc::clone(&meta.selected));
            self.cpu
                .execute_block::<true, false>(hooks, &block, count, pc, selected.as_deref())
        } else {
            // Nothing fires inside the block: accesses take the plain path, and the CPU
            // holds no loan of the registry while it runs.
            self.cpu.instrument.clear();
            self.cpu
                .execute_block::<false, false>(hooks, &block, count, pc, None)
        }
    }
}
