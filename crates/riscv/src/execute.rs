//! The block cache and the executor.
//!
//! Blocks are runs of pre-decoded ops inside one physical page, ending at the first
//! control-transfer or system instruction. They are cached by physical address and kept
//! coherent with memory: a store to a page holding code drops that page's blocks (see
//! `mmu.rs`), so `fence.i` needs no flush.
//!
//! The executor counts retired instructions per block, not per instruction: a block of
//! `n` ops adds `n` at its end, and a trap or device access in the middle records its own
//! index. When the budget is shorter than a block, only a prefix runs, so an event always
//! lands at its exact instruction count whatever the block boundaries are.
//!
//! PANDA's callbacks are not decided here: the run driver, the order around a block and
//! the instruction, memory and trap callbacks are `pandare_core::execution`'s, generic over
//! this executor ([`Executor`], [`BlockExecutor`]) and the riscv64 view of the CPU
//! (`hooks::RiscvCpu`). The loop below calls in at its firing points through a
//! [`Hooks`] handle; the uninstrumented copy of the loop calls nothing.

use std::collections::HashMap;

use pandare_core::execution::block::{
    self as protocol, BlockExecutor, BlockFacts, BlockOutcome, InstructionPoint,
};
use pandare_core::execution::memory;
use pandare_core::execution::{self, Executor, Hooks, TranslatedCode};
use pandare_core::instrument::{BlockInfo, Instrumentation, MEMORY_KINDS};

use crate::decode::{self, Kind, Op};
use crate::hart::{Hart, Privilege, Trap};
use crate::hooks::{self, RiscvCpu};
use crate::mmu::{self, Access, MemStop, PAGE_SIZE};
use crate::virt::Bus;

/// Longest block, in instructions.
const MAX_BLOCK_OPS: usize = 64;
/// Direct-mapped lookup slots (by physical pc).
const FAST_SLOTS: usize = 1 << 15;
/// Above this many blocks the cache starts over (dead blocks are not reclaimed singly).
const MAX_BLOCKS: usize = 1 << 18;
/// Traps in a row without a retired instruction after which the hart counts as stuck in a
/// trap loop (the loop reaches a fixed point after a few traps: privilege only rises).
const MAX_STALLED_TRAPS: u32 = 32;

/// Why the hart stopped running blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HartExit {
    /// The budget ran out.
    Budget,
    /// `wfi` with no enabled interrupt pending; the pc is after the `wfi`.
    Wfi,
    /// A device register was accessed: interrupt lines and timers may have changed.
    Device,
    /// `ecall` from S-mode with the emulator's SBI: the platform answers it.
    SupervisorCall,
    /// A trap went to M-mode while the emulator plays the firmware: nothing there can
    /// handle it.
    MachineTrap {
        /// `mcause`.
        cause: u64,
        /// `mepc`.
        pc: u64,
        /// `mtval`.
        tval: u64,
    },
    /// A callback asked to stop (PANDA's `end_analysis`); the pc is at a block boundary.
    Stopped,
}

#[derive(Debug)]
pub(crate) struct Block {
    ops: Box<[Op]>,
    byte_len: u64,
    /// Physical address of the first op.
    paddr: u64,
    /// The virtual address the block was decoded at. Decoding ends a block before an
    /// address that has a hook, which is only right for this virtual address: where the
    /// block runs at another one, the executor looks for hooks inside it then.
    vpc: u64,
    /// Whether a hook was registered at `vpc` when the block was decoded.
    hooked: bool,
    /// Ops selected by `insn_translate` (bit i = op i).
    insn_exec: u64,
    /// Ops selected by `after_insn_translate`.
    after_insn_exec: u64,
    /// Ops that are the guest hypercall instruction.
    hypercalls: u64,
}

impl Block {
    fn info(&self, pc: u64) -> BlockInfo {
        self.prefix_info(pc, self.ops.len())
    }

    /// The block as far as its first `count` ops (all of them or fewer).
    #[inline]
    fn prefix_info(&self, pc: u64, count: usize) -> BlockInfo {
        if count >= self.ops.len() {
            return BlockInfo {
                pc,
                size: self.byte_len,
                instruction_count: self.ops.len() as u32,
            };
        }
        BlockInfo {
            pc,
            size: u64::from(self.ops[count].offset),
            instruction_count: count as u32,
        }
    }
}

/// Decoded blocks by physical address.
#[derive(Debug)]
pub(crate) struct BlockCache {
    blocks: Vec<Option<Block>>,
    by_address: HashMap<u64, u32>,
    fast: Box<[(u64, u32)]>,
    page_blocks: HashMap<u64, Vec<u32>>,
    /// A block that must not be cached (an instruction straddling a page boundary).
    uncached: Option<Block>,
}

const UNCACHED: u32 = u32::MAX;

impl BlockCache {
    pub fn new() -> BlockCache {
        BlockCache {
            blocks: Vec::new(),
            by_address: HashMap::new(),
            fast: vec![(1, 0); FAST_SLOTS].into_boxed_slice(),
            page_blocks: HashMap::new(),
            uncached: None,
        }
    }

    /// Drops every block.
    pub fn flush(&mut self, bus: &mut Bus) {
        self.blocks.clear();
        self.by_address.clear();
        self.page_blocks.clear();
        self.fast.fill((1, 0));
        bus.clear_code_pages();
    }

    /// Drops the blocks decoded at a virtual address range that holds one of `vaddrs`
    /// (newly hooked addresses: they must be decoded again, split there). One pass over
    /// the blocks, whatever the number of addresses.
    fn invalidate_virtual(&mut self, vaddrs: &mut [u64]) {
        if vaddrs.is_empty() {
            return;
        }
        vaddrs.sort_unstable();
        for block_slot in &mut self.blocks {
            let Some(block) = block_slot else { continue };
            let first = vaddrs.partition_point(|&vaddr| vaddr < block.vpc);
            let covered = vaddrs
                .get(first)
                .is_some_and(|&vaddr| vaddr - block.vpc < block.byte_len);
            if !covered {
                continue;
            }
            let paddr = block.paddr;
            *block_slot = None;
            // `page_blocks` may keep the index: dropping a page skips dead blocks.
            self.by_address.remove(&paddr);
            let fast = &mut self.fast[(paddr >> 1) as usize & (FAST_SLOTS - 1)];
            if fast.0 == paddr {
                *fast = (1, 0);
            }
        }
    }

    /// Drops the blocks of one physical page.
    fn invalidate_page(&mut self, page: u64) {
        let Some(indices) = self.page_blocks.remove(&page) else {
            return;
        };
        for index in indices {
            if let Some(block_slot) = self.blocks.get_mut(index as usize) {
                *block_slot = None;
            }
        }
        self.by_address
            .retain(|address, _| address & !(PAGE_SIZE - 1) != page);
        // The page's addresses map to one run of consecutive fast slots: scan only those.
        let first = (page >> 1) as usize & (FAST_SLOTS - 1);
        for slot in &mut self.fast[first..first + (PAGE_SIZE >> 1) as usize] {
            if slot.0 & !(PAGE_SIZE - 1) == page {
                *slot = (1, 0);
            }
        }
    }

    fn get(&self, index: u32) -> &Block {
        if index == UNCACHED {
            return self
                .uncached
                .as_ref()
                .expect("uncached block was just built");
        }
        self.blocks[index as usize]
            .as_ref()
            .expect("lookup tables only name live blocks")
    }

    /// A block about to run at `pc`, another virtual address than the one it was decoded
    /// at: when no hooked address lies inside it there, it now counts as decoded at `pc`
    /// (where it ends early for an old hook is harmless), so that the next runs there take
    /// the fast path. Otherwise the executor splits it at run time.
    #[cold]
    #[inline(never)]
    fn rekey(&mut self, index: u32, pc: u64, hooks: &Hooks) {
        let block = if index == UNCACHED {
            self.uncached.as_mut()
        } else {
            self.blocks[index as usize].as_mut()
        }
        .expect("lookup tables only name live blocks");
        let end = pc.saturating_add(block.byte_len);
        if hooks.first_hook_in(pc.saturating_add(1), end).is_none() {
            block.vpc = pc;
            block.hooked = hooks.is_hooked(pc);
        }
    }

    #[inline]
    fn lookup(&self, paddr: u64) -> Option<u32> {
        let slot = self.fast[(paddr >> 1) as usize & (FAST_SLOTS - 1)];
        (slot.0 == paddr).then_some(slot.1)
    }

    /// Finds or decodes the block at `pc` (physical `paddr`). With `hooked`, decoding
    /// fires the translate-time callbacks.
    fn find_or_build(
        &mut self,
        hart: &mut Hart,
        bus: &mut Bus,
        hooks: &mut Hooks,
        hooked: bool,
        pc: u64,
        paddr: u64,
    ) -> Result<u32, Trap> {
        if let Some(&index) = self.by_address.get(&paddr) {
            self.fast[(paddr >> 1) as usize & (FAST_SLOTS - 1)] = (paddr, index);
            return Ok(index);
        }
        if hooked {
            hooks.before_translate(&mut RiscvCpu::new(hart, bus), pc);
        }
        let (mut block, cacheable) = decode_block(hart, bus, hooks, pc, paddr)?;
        if hooked {
            translate_hooks(hart, bus, hooks, &mut block, pc);
        }
        if !cacheable {
            self.uncached = Some(block);
            return Ok(UNCACHED);
        }
        if self.blocks.len() >= MAX_BLOCKS {
            self.flush(bus);
        }
        let page = paddr & !(PAGE_SIZE - 1);
        if bus.mark_code_page(page) {
            hart.forget_writable(bus, page);
        }
        let index = self.blocks.len() as u32;
        self.blocks.push(Some(block));
        self.by_address.insert(paddr, index);
        self.page_blocks.entry(page).or_default().push(index);
        self.fast[(paddr >> 1) as usize & (FAST_SLOTS - 1)] = (paddr, index);
        Ok(index)
    }
}

/// Decodes a block at `pc`/`paddr`. The bool says whether it may be cached. The block ends
/// before an address that has a hook (so that a block starts there).
fn decode_block(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &Hooks,
    pc: u64,
    paddr: u64,
) -> Result<(Block, bool), Trap> {
    let split = hooks.has_hooks();
    let mut ops = Vec::with_capacity(16);
    let page_end = (paddr & !(PAGE_SIZE - 1)) + PAGE_SIZE;
    let mut address = paddr;
    let mut cacheable = true;
    let mut hypercalls = 0u64;
    while ops.len() < MAX_BLOCK_OPS && address < page_end {
        if split && !ops.is_empty() && hooks.is_hooked(pc.wrapping_add(address - paddr)) {
            break;
        }
        let low = bus.read_ram(address, 2) as u32;
        let bits = if low & 3 != 3 {
            low
        } else if address + 4 <= page_end {
            bus.read_ram(address, 4) as u32
        } else if ops.is_empty() {
            // The instruction straddles two pages: fetch its upper half through the MMU.
            let next_page_vaddr = pc.wrapping_add(address - paddr + 2);
            let upper_paddr = hart
                .translate(bus, next_page_vaddr, Access::Fetch)
                .map_err(|trap| Trap::new(trap.cause, next_page_vaddr))?;
            if !bus.ram.contains(upper_paddr, 2) {
                return Err(Trap::new(Trap::INSTRUCTION_ACCESS, next_page_vaddr));
            }
            cacheable = false;
            low | (bus.read_ram(upper_paddr, 2) as u32) << 16
        } else {
            break;
        };
        let mut op = decode::decode(bits);
        if bits == hooks::HYPERCALL {
            hypercalls |= 1 << ops.len();
        }
        op.offset = (address - paddr) as u16;
        address += u64::from(op.len);
        ops.push(op);
        if op.ends_block() || !cacheable {
            break;
        }
    }
    let byte_len = address - paddr;
    Ok((
        Block {
            ops: ops.into_boxed_slice(),
            byte_len,
            paddr,
            vpc: pc,
            hooked: split && hooks.is_hooked(pc),
            insn_exec: 0,
            after_insn_exec: 0,
            hypercalls,
        },
        cacheable,
    ))
}

/// Fires `after_block_translate` and lets `insn_translate`/`after_insn_translate` select
/// the instructions of a freshly decoded block.
#[cold]
fn translate_hooks(hart: &mut Hart, bus: &mut Bus, hooks: &mut Hooks, block: &mut Block, pc: u64) {
    let mut view = RiscvCpu::new(hart, bus);
    for i in 0..block.ops.len() {
        let insn_pc = pc.wrapping_add(u64::from(block.ops[i].offset));
        let (insn_exec, after_insn_exec) = hooks.select_instruction(&mut view, insn_pc);
        block.insn_exec |= u64::from(insn_exec) << i;
        block.after_insn_exec |= u64::from(after_insn_exec) << i;
    }
    hooks.after_translate(&mut view, &block.info(pc));
}

/// How a block ended, for the run loop.
enum BlockEnd {
    /// Carry on with the next block.
    Continue,
    /// A trap was taken.
    Trapped,
    /// Stop and report to the platform.
    Exit(HartExit),
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

/// The CPU: a hart and its block cache.
#[derive(Debug)]
pub struct Cpu {
    /// Architectural state.
    pub hart: Hart,
    blocks: BlockCache,
    /// Set when the block-start loop returned because the registry needs attention.
    attention: bool,
}

impl Cpu {
    /// A CPU around `hart` with an empty block cache.
    pub fn new(hart: Hart) -> Cpu {
        Cpu {
            hart,
            blocks: BlockCache::new(),
            attention: false,
        }
    }

    /// Drops all translated code (after RAM was replaced wholesale, e.g. a snapshot load).
    pub fn flush_code(&mut self, bus: &mut Bus) {
        self.blocks.flush(bus);
        self.hart.flush_tlb();
    }

    /// Drops the translations of RAM pages whose contents were replaced (a snapshot load).
    pub fn forget_code_pages(&mut self, bus: &mut Bus, pages: &[u64]) {
        for &page in pages {
            if bus.take_code_page(page) {
                self.blocks.invalidate_page(page);
            }
        }
    }

    /// Runs for at most `budget` instructions, with no callbacks. (Blocks decoded here are
    /// not split at hooked addresses: a machine with address hooks runs through
    /// [`Cpu::run_with`].)
    pub fn run(&mut self, bus: &mut Bus, budget: u64) -> HartExit {
        let mut instr = Instrumentation::default();
        self.run_loop::<false, false>(bus, Hooks::new(&mut instr), budget)
    }

    /// Runs for at most `budget` instructions, firing the callbacks `instr` has enabled, as
    /// [`execution::run`] decides. With nothing enabled this is [`Cpu::run`]: the
    /// instrumented loop is chosen once per call, not per block.
    // Not inline: the executor's code stays compiled once, here.
    #[inline(never)]
    pub fn run_with(
        &mut self,
        bus: &mut Bus,
        instr: &mut Instrumentation,
        budget: u64,
    ) -> HartExit {
        execution::run(&mut Exec { cpu: self, bus }, instr, budget)
    }

    /// The run loop. `HOOKS`: every callback kind and address hooks. `BLOCK_START`
    /// (without `HOOKS`): the uninstrumented loop plus `before_block_exec` and
    /// `start_block_exec` ([`Executor::run_block_start`]); it returns with
    /// `self.attention` set when the registry needs attention.
    fn run_loop<const HOOKS: bool, const BLOCK_START: bool>(
        &mut self,
        bus: &mut Bus,
        hooks: &mut Hooks,
        budget: u64,
    ) -> HartExit {
        let end = self.hart.clock.retired + budget;
        // Turns of this loop since an instruction last retired: each of them took a trap.
        let (mut progress, mut stalled) = (self.hart.clock.retired, 0u32);
        loop {
            if (HOOKS || BLOCK_START) && hooks.needs_attention() {
                if BLOCK_START {
                    self.attention = true;
                    return HartExit::Budget;
                }
                if hooks.attend(&mut Exec { cpu: self, bus }) {
                    return HartExit::Stopped;
                }
            }
            let hart = &mut self.hart;
            if !hart.modified_code_pages.is_empty() {
                for page in std::mem::take(&mut hart.modified_code_pages) {
                    self.blocks.invalidate_page(page);
                }
            }
            let remaining = end - hart.clock.retired;
            if remaining == 0 {
                return HartExit::Budget;
            }
            if hart.clock.retired != progress {
                (progress, stalled) = (hart.clock.retired, 0);
            } else if stalled == MAX_STALLED_TRAPS {
                // The trap handler itself traps without retiring anything (for example an
                // unmapped `mtvec`): the hart is stuck until an interrupt is taken. Let the
                // rest of the slice pass as idle time so timer events can still arrive,
                // rather than spinning forever in zero virtual time.
                hart.clock.idle += remaining;
                return HartExit::Budget;
            } else {
                stalled += 1;
            }
            if let Some(cause) = hart.pending_interrupt() {
                let cause = if HOOKS {
                    hooks.interrupt(&mut RiscvCpu::new(hart, bus), cause)
                } else {
                    Some(cause)
                };
                if let Some(cause) = cause {
                    let pc = hart.pc;
                    hart.enter_trap(cause, true, 0, pc);
                    if let Some(exit) = machine_trap_exit(hart) {
                        return exit;
                    }
                }
            }
            let pc = hart.pc;
            let index = match hart.fetch_physical(bus, pc) {
                Ok(paddr) => match self.blocks.lookup(paddr) {
                    Some(index) => index,
                    None => match self
                        .blocks
                        .find_or_build(hart, bus, hooks, HOOKS, pc, paddr)
                    {
                        Ok(index) => index,
                        Err(trap) => {
                            deliver::<HOOKS>(hart, bus, hooks, trap, pc);
                            if let Some(exit) = machine_trap_exit(hart) {
                                return exit;
                            }
                            continue;
                        }
                    },
                },
                Err(trap) => {
                    deliver::<HOOKS>(hart, bus, hooks, trap, pc);
                    if let Some(exit) = machine_trap_exit(hart) {
                        return exit;
                    }
                    continue;
                }
            };
            let end_of_block = if HOOKS {
                protocol::run_block(&mut Exec { cpu: self, bus }, hooks, index, pc, remaining)
            } else {
                let block = self.blocks.get(index);
                if BLOCK_START
                    && hooks.fires_block_start()
                    && !protocol::block_start(
                        hooks,
                        &mut RiscvCpu::new(hart, bus),
                        &block.prefix_info(pc, usize::MAX),
                        pc,
                    )
                {
                    continue;
                }
                let count = block.ops.len().min(remaining as usize);
                execute_block::<false>(hart, bus, hooks, block, count)
            };
            match end_of_block {
                BlockEnd::Continue => {}
                BlockEnd::Trapped => {
                    if let Some(exit) = machine_trap_exit(&self.hart) {
                        return exit;
                    }
                }
                BlockEnd::Exit(exit) => return exit,
            }
        }
    }
}

/// The CPU and its bus, as the arch-neutral firing protocol drives them
/// ([`execution::run`], [`protocol::run_block`]).
struct Exec<'a> {
    cpu: &'a mut Cpu,
    bus: &'a mut Bus,
}

impl TranslatedCode for Exec<'_> {
    fn flush_code(&mut self) {
        // Only the blocks: the TLB stays, so the guest sees no difference.
        self.cpu.blocks.flush(self.bus);
    }

    fn invalidate_virtual(&mut self, addresses: &mut [u64]) {
        self.cpu.blocks.invalidate_virtual(addresses);
    }
}

impl Executor for Exec<'_> {
    type Exit = HartExit;
    type View<'v>
        = RiscvCpu<'v>
    where
        Self: 'v;

    fn view(&mut self) -> RiscvCpu<'_> {
        RiscvCpu::new(&mut self.cpu.hart, self.bus)
    }

    fn retired(&self) -> u64 {
        self.cpu.hart.clock.retired
    }

    fn stopped(&self) -> HartExit {
        HartExit::Stopped
    }

    fn run_plain(&mut self, hooks: &mut Hooks, budget: u64) -> HartExit {
        self.cpu.run_loop::<false, false>(self.bus, hooks, budget)
    }

    fn run_block_start(&mut self, hooks: &mut Hooks, budget: u64) -> Option<HartExit> {
        let exit = self.cpu.run_loop::<false, true>(self.bus, hooks, budget);
        (!std::mem::take(&mut self.cpu.attention)).then_some(exit)
    }

    fn run_instrumented(&mut self, hooks: &mut Hooks, budget: u64) -> HartExit {
        self.cpu.run_loop::<true, false>(self.bus, hooks, budget)
    }
}

impl BlockExecutor for Exec<'_> {
    type Index = u32;
    type End = BlockEnd;
    type View<'v>
        = RiscvCpu<'v>
    where
        Self: 'v;

    #[inline]
    fn view(&mut self) -> RiscvCpu<'_> {
        RiscvCpu::new(&mut self.cpu.hart, self.bus)
    }

    #[inline]
    fn retired(&self) -> u64 {
        self.cpu.hart.clock.retired
    }

    #[inline]
    fn info(&self, block: u32, pc: u64, count: usize) -> BlockInfo {
        self.cpu.blocks.get(block).prefix_info(pc, count)
    }

    #[inline]
    fn facts(&self, block: u32) -> BlockFacts {
        let block = self.cpu.blocks.get(block);
        BlockFacts {
            len: block.ops.len(),
            size: block.byte_len,
            translated_at: block.vpc,
            hooked: block.hooked,
        }
    }

    fn count_before(&self, block: u32, pc: u64, address: u64) -> usize {
        self.cpu
            .blocks
            .get(block)
            .ops
            .iter()
            .take_while(|op| pc + u64::from(op.offset) < address)
            .count()
    }

    fn relocate(&mut self, block: u32, pc: u64, hooks: &Hooks) {
        self.cpu.blocks.rekey(block, pc, hooks);
    }

    fn retranslate(&mut self, hooks: &mut Hooks, pc: u64) -> Option<u32> {
        let (hart, bus) = (&mut self.cpu.hart, &mut *self.bus);
        let paddr = hart.fetch_physical(bus, pc).ok()?;
        self.cpu.blocks.invalidate_page(paddr & !(PAGE_SIZE - 1));
        self.cpu
            .blocks
            .find_or_build(hart, bus, hooks, true, pc, paddr)
            .ok()
    }

    #[inline]
    fn execute(
        &mut self,
        hooks: &mut Hooks,
        block: u32,
        count: usize,
        body_hooks: bool,
    ) -> BlockEnd {
        let (hart, bus) = (&mut self.cpu.hart, &mut *self.bus);
        let block = self.cpu.blocks.get(block);
        if body_hooks {
            execute_block::<true>(hart, bus, hooks, block, count)
        } else {
            execute_block::<false>(hart, bus, hooks, block, count)
        }
    }
}

/// Takes an exception, through `before_handle_exception` when instrumented.
#[inline(always)]
fn deliver<const HOOKS: bool>(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    trap: Trap,
    pc: u64,
) {
    if HOOKS || hooks.fires_exceptions() {
        hooks::take_exception(hart, bus, hooks, trap, pc);
    } else {
        hart.take_trap(trap, pc);
    }
}

/// A trap inside an uninstrumented block: `before_handle_exception` when enabled (the
/// block-start loop runs this body with only block-start and exception callbacks).
#[inline(always)]
fn plain_trap(hart: &mut Hart, bus: &mut Bus, hooks: &mut Hooks, trap: Trap, pc: u64) {
    if hooks.fires_exceptions() {
        exception_in_plain_block(hart, bus, hooks, trap, pc);
    } else {
        hart.take_trap(trap, pc);
    }
}

#[cold]
#[inline(never)]
fn exception_in_plain_block(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    trap: Trap,
    pc: u64,
) {
    hart.pc = pc;
    hooks::take_exception(hart, bus, hooks, trap, pc);
}

/// With the emulator as firmware, a trap into M-mode has no handler: report it.
fn machine_trap_exit(hart: &Hart) -> Option<HartExit> {
    (hart.sbi && hart.privilege == Privilege::Machine).then_some(HartExit::MachineTrap {
        cause: hart.mcause,
        pc: hart.mepc,
        tval: hart.mtval,
    })
}

/// Result of an instruction run through the cold path.
pub(crate) enum Flow {
    /// Retired; carry on with the next op.
    Next,
    /// Retired; end the block and continue at the next instruction.
    EndBlock,
    /// Retired; continue at this pc.
    Jump(u64),
    /// Retired; stop and report to the platform.
    Exit(HartExit),
}

#[inline(always)]
fn sext32(value: u64) -> u64 {
    value as i32 as i64 as u64
}

/// Runs the first `count` ops of `block`, starting at `hart.pc`.
#[inline(never)]
fn execute_block<const HOOKS: bool>(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    block: &Block,
    count: usize,
) -> BlockEnd {
    let base_pc = hart.pc;
    let base_retired = hart.clock.retired;
    let ops = &block.ops[..count];
    let mut next_pc = match block.ops.get(count) {
        Some(op) => base_pc.wrapping_add(u64::from(op.offset)),
        None => base_pc.wrapping_add(block.byte_len),
    };
    let mut retired = count;
    let mut end = BlockEnd::Continue;
    // Set when instruction callbacks ended the block before op `retired` ran.
    let mut hooks_ended_block = false;
    let op_hooks = if HOOKS {
        block.insn_exec | block.after_insn_exec | block.hypercalls
    } else {
        0
    };

    macro_rules! x {
        ($r:expr) => {
            hart.x[($r as usize) & 63]
        };
    }
    // Takes a trap for the op at index $i (not retired) and leaves the block.
    macro_rules! trap {
        ($i:expr, $trap:expr, $pc:expr) => {{
            hart.clock.retired = base_retired + $i as u64;
            if HOOKS {
                hooked_trap(hart, bus, hooks, block, base_pc, $trap, $pc);
            } else {
                plain_trap(hart, bus, hooks, $trap, $pc);
            }
            return BlockEnd::Trapped;
        }};
    }
    macro_rules! load {
        ($i:expr, $op:expr, $pc:expr, $ty:ty, $conv:expr) => {{
            let address = x!($op.rs1).wrapping_add($op.imm as i64 as u64);
            const SIZE: u64 = std::mem::size_of::<$ty>() as u64;
            let entry = hart.tlb[hart.data_set & 3].read[mmu::index(address)];
            if HOOKS && hooks.mask() & MEMORY_KINDS != 0 {
                hart.clock.retired = base_retired + $i as u64;
                hart.pc = $pc;
                match hooks.load(&mut RiscvCpu::new(hart, bus), $pc, address, SIZE) {
                    Ok(value) => x!($op.rd) = $conv(value),
                    Err(MemStop::Trap(trap)) => trap!($i, trap, $pc),
                    Err(MemStop::Device(value)) => {
                        x!($op.rd) = $conv(value);
                        retired = $i + 1;
                        next_pc = $pc.wrapping_add(u64::from($op.len));
                        end = BlockEnd::Exit(HartExit::Device);
                        break;
                    }
                    Err(MemStop::CodeModified) => unreachable!("loads never modify code"),
                }
                if hart.pc != $pc || !hart.modified_code_pages.is_empty() {
                    retired = $i + 1;
                    next_pc = if hart.pc != $pc {
                        hart.pc
                    } else {
                        $pc.wrapping_add(u64::from($op.len))
                    };
                    break;
                }
            } else if entry.tag == address & !(PAGE_SIZE - 1) && mmu::fits_in_page(address, SIZE) {
                // SAFETY: read entries only exist for RAM pages, whose host memory lives as
                // long as the bus; the check above keeps the access inside the page.
                let raw = unsafe {
                    std::ptr::read_unaligned(
                        address.wrapping_add(entry.addend) as usize as *const $ty
                    )
                };
                x!($op.rd) = $conv(<$ty>::from_le(raw) as u64);
            } else {
                hart.clock.retired = base_retired + $i as u64;
                match hart.load_slow(bus, address, SIZE) {
                    Ok(value) => x!($op.rd) = $conv(value),
                    Err(MemStop::Trap(trap)) => trap!($i, trap, $pc),
                    Err(MemStop::Device(value)) => {
                        x!($op.rd) = $conv(value);
                        retired = $i + 1;
                        next_pc = $pc.wrapping_add(u64::from($op.len));
                        end = BlockEnd::Exit(HartExit::Device);
                        break;
                    }
                    Err(MemStop::CodeModified) => unreachable!("loads never modify code"),
                }
            }
        }};
    }
    macro_rules! store {
        ($i:expr, $op:expr, $pc:expr, $ty:ty) => {{
            let address = x!($op.rs1).wrapping_add($op.imm as i64 as u64);
            let value = x!($op.rs2);
            const SIZE: u64 = std::mem::size_of::<$ty>() as u64;
            let entry = hart.tlb[hart.data_set & 3].write[mmu::index(address)];
            if HOOKS && hooks.mask() & MEMORY_KINDS != 0 {
                hart.clock.retired = base_retired + $i as u64;
                hart.pc = $pc;
                let result = hooks.store(&mut RiscvCpu::new(hart, bus), $pc, address, SIZE, value);
                if let Err(MemStop::Trap(trap)) = result {
                    trap!($i, trap, $pc);
                }
                if result.is_err() || hart.pc != $pc || !hart.modified_code_pages.is_empty() {
                    retired = $i + 1;
                    next_pc = if hart.pc != $pc {
                        hart.pc
                    } else {
                        $pc.wrapping_add(u64::from($op.len))
                    };
                    if matches!(result, Err(MemStop::Device(_))) {
                        end = BlockEnd::Exit(HartExit::Device);
                    }
                    break;
                }
            } else if entry.tag == address & !(PAGE_SIZE - 1) && mmu::fits_in_page(address, SIZE) {
                // SAFETY: write entries only exist for RAM pages without translated code,
                // whose host memory lives as long as the bus; the access stays in the page.
                unsafe {
                    std::ptr::write_unaligned(
                        address.wrapping_add(entry.addend) as usize as *mut $ty,
                        (value as $ty).to_le(),
                    )
                };
            } else {
                hart.clock.retired = base_retired + $i as u64;
                match hart.store_slow(bus, address, SIZE, value) {
                    Ok(()) => {}
                    Err(MemStop::Trap(trap)) => trap!($i, trap, $pc),
                    Err(stop) => {
                        retired = $i + 1;
                        next_pc = $pc.wrapping_add(u64::from($op.len));
                        if matches!(stop, MemStop::Device(_)) {
                            end = BlockEnd::Exit(HartExit::Device);
                        }
                        break;
                    }
                }
            }
        }};
    }
    macro_rules! branch {
        ($i:expr, $op:expr, $pc:expr, $taken:expr) => {{
            next_pc = if $taken {
                $pc.wrapping_add($op.imm as i64 as u64)
            } else {
                $pc.wrapping_add(u64::from($op.len))
            };
            retired = $i + 1;
            break;
        }};
    }

    for (i, op) in ops.iter().enumerate() {
        let pc = base_pc.wrapping_add(u64::from(op.offset));
        let imm = op.imm as i64 as u64;
        if HOOKS && op_hooks != 0 {
            hart.clock.retired = base_retired + i as u64;
            hart.pc = pc;
            if let Some(target) = instruction_hooks(hart, bus, hooks, block, base_pc, i) {
                retired = i;
                next_pc = target;
                hooks_ended_block = true;
                break;
            }
        }
        match op.kind {
            Kind::Lui => x!(op.rd) = imm,
            Kind::Auipc => x!(op.rd) = pc.wrapping_add(imm),
            Kind::Jal => {
                x!(op.rd) = pc.wrapping_add(u64::from(op.len));
                next_pc = pc.wrapping_add(imm);
                retired = i + 1;
                break;
            }
            Kind::Jalr => {
                let target = x!(op.rs1).wrapping_add(imm) & !1;
                x!(op.rd) = pc.wrapping_add(u64::from(op.len));
                next_pc = target;
                retired = i + 1;
                break;
            }
            Kind::Beq => branch!(i, op, pc, x!(op.rs1) == x!(op.rs2)),
            Kind::Bne => branch!(i, op, pc, x!(op.rs1) != x!(op.rs2)),
            Kind::Blt => branch!(i, op, pc, (x!(op.rs1) as i64) < (x!(op.rs2) as i64)),
            Kind::Bge => branch!(i, op, pc, (x!(op.rs1) as i64) >= (x!(op.rs2) as i64)),
            Kind::Bltu => branch!(i, op, pc, x!(op.rs1) < x!(op.rs2)),
            Kind::Bgeu => branch!(i, op, pc, x!(op.rs1) >= x!(op.rs2)),
            Kind::Lb => load!(i, op, pc, u8, |v: u64| v as i8 as i64 as u64),
            Kind::Lh => load!(i, op, pc, u16, |v: u64| v as i16 as i64 as u64),
            Kind::Lw => load!(i, op, pc, u32, |v: u64| v as i32 as i64 as u64),
            Kind::Ld => load!(i, op, pc, u64, |v: u64| v),
            Kind::Lbu => load!(i, op, pc, u8, |v: u64| v & 0xff),
            Kind::Lhu => load!(i, op, pc, u16, |v: u64| v & 0xffff),
            Kind::Lwu => load!(i, op, pc, u32, |v: u64| v & 0xffff_ffff),
            Kind::Sb => store!(i, op, pc, u8),
            Kind::Sh => store!(i, op, pc, u16),
            Kind::Sw => store!(i, op, pc, u32),
            Kind::Sd => store!(i, op, pc, u64),
            Kind::Addi => x!(op.rd) = x!(op.rs1).wrapping_add(imm),
            Kind::Slti => x!(op.rd) = u64::from((x!(op.rs1) as i64) < op.imm as i64),
            Kind::Sltiu => x!(op.rd) = u64::from(x!(op.rs1) < imm),
            Kind::Xori => x!(op.rd) = x!(op.rs1) ^ imm,
            Kind::Ori => x!(op.rd) = x!(op.rs1) | imm,
            Kind::Andi => x!(op.rd) = x!(op.rs1) & imm,
            Kind::Slli => x!(op.rd) = x!(op.rs1) << (op.imm & 63),
            Kind::Srli => x!(op.rd) = x!(op.rs1) >> (op.imm & 63),
            Kind::Srai => x!(op.rd) = ((x!(op.rs1) as i64) >> (op.imm & 63)) as u64,
            Kind::Add => x!(op.rd) = x!(op.rs1).wrapping_add(x!(op.rs2)),
            Kind::Sub => x!(op.rd) = x!(op.rs1).wrapping_sub(x!(op.rs2)),
            Kind::Sll => x!(op.rd) = x!(op.rs1) << (x!(op.rs2) & 63),
            Kind::Slt => x!(op.rd) = u64::from((x!(op.rs1) as i64) < (x!(op.rs2) as i64)),
            Kind::Sltu => x!(op.rd) = u64::from(x!(op.rs1) < x!(op.rs2)),
            Kind::Xor => x!(op.rd) = x!(op.rs1) ^ x!(op.rs2),
            Kind::Srl => x!(op.rd) = x!(op.rs1) >> (x!(op.rs2) & 63),
            Kind::Sra => x!(op.rd) = ((x!(op.rs1) as i64) >> (x!(op.rs2) & 63)) as u64,
            Kind::Or => x!(op.rd) = x!(op.rs1) | x!(op.rs2),
            Kind::And => x!(op.rd) = x!(op.rs1) & x!(op.rs2),
            Kind::Addiw => x!(op.rd) = sext32(x!(op.rs1).wrapping_add(imm)),
            Kind::Slliw => x!(op.rd) = sext32(x!(op.rs1) << (op.imm & 31)),
            Kind::Srliw => x!(op.rd) = sext32((x!(op.rs1) as u32 >> (op.imm & 31)) as u64),
            Kind::Sraiw => x!(op.rd) = ((x!(op.rs1) as i32) >> (op.imm & 31)) as i64 as u64,
            Kind::Addw => x!(op.rd) = sext32(x!(op.rs1).wrapping_add(x!(op.rs2))),
            Kind::Subw => x!(op.rd) = sext32(x!(op.rs1).wrapping_sub(x!(op.rs2))),
            Kind::Sllw => x!(op.rd) = sext32(x!(op.rs1) << (x!(op.rs2) & 31)),
            Kind::Srlw => x!(op.rd) = sext32((x!(op.rs1) as u32 >> (x!(op.rs2) & 31)) as u64),
            Kind::Sraw => {
                x!(op.rd) = ((x!(op.rs1) as i32) >> (x!(op.rs2) & 31)) as i64 as u64;
            }
            Kind::Mul => x!(op.rd) = x!(op.rs1).wrapping_mul(x!(op.rs2)),
            Kind::Mulh => {
                let product = i128::from(x!(op.rs1) as i64) * i128::from(x!(op.rs2) as i64);
                x!(op.rd) = (product >> 64) as u64;
            }
            Kind::Mulhsu => {
                let product = i128::from(x!(op.rs1) as i64).wrapping_mul(i128::from(x!(op.rs2)));
                x!(op.rd) = (product >> 64) as u64;
            }
            Kind::Mulhu => {
                let product = u128::from(x!(op.rs1)) * u128::from(x!(op.rs2));
                x!(op.rd) = (product >> 64) as u64;
            }
            Kind::Div => {
                let (a, b) = (x!(op.rs1) as i64, x!(op.rs2) as i64);
                x!(op.rd) = if b == 0 {
                    u64::MAX
                } else {
                    a.wrapping_div(b) as u64
                };
            }
            Kind::Divu => {
                let (a, b) = (x!(op.rs1), x!(op.rs2));
                x!(op.rd) = a.checked_div(b).unwrap_or(u64::MAX);
            }
            Kind::Rem => {
                let (a, b) = (x!(op.rs1) as i64, x!(op.rs2) as i64);
                x!(op.rd) = if b == 0 {
                    a as u64
                } else {
                    a.wrapping_rem(b) as u64
                };
            }
            Kind::Remu => {
                let (a, b) = (x!(op.rs1), x!(op.rs2));
                x!(op.rd) = if b == 0 { a } else { a % b };
            }
            Kind::Mulw => x!(op.rd) = sext32(x!(op.rs1).wrapping_mul(x!(op.rs2))),
            Kind::Divw => {
                let (a, b) = (x!(op.rs1) as i32, x!(op.rs2) as i32);
                x!(op.rd) = if b == 0 {
                    u64::MAX
                } else {
                    a.wrapping_div(b) as i64 as u64
                };
            }
            Kind::Divuw => {
                let (a, b) = (x!(op.rs1) as u32, x!(op.rs2) as u32);
                x!(op.rd) = a.checked_div(b).map_or(u64::MAX, |q| sext32(u64::from(q)));
            }
            Kind::Remw => {
                let (a, b) = (x!(op.rs1) as i32, x!(op.rs2) as i32);
                x!(op.rd) = if b == 0 {
                    a as i64 as u64
                } else {
                    a.wrapping_rem(b) as i64 as u64
                };
            }
            Kind::Remuw => {
                let (a, b) = (x!(op.rs1) as u32, x!(op.rs2) as u32);
                x!(op.rd) = if b == 0 {
                    sext32(u64::from(a))
                } else {
                    sext32(u64::from(a % b))
                };
            }
            Kind::Fence => {}
            Kind::Illegal => trap!(i, Trap::illegal(u64::from(op.imm as u32)), pc),
            _ => {
                hart.clock.retired = base_retired + i as u64;
                let old_satp = hart.satp;
                let result = if HOOKS && hooks.mask() & MEMORY_KINDS != 0 {
                    hooked_cold(hart, bus, hooks, op, pc)
                } else {
                    hart.execute_cold(bus, op, pc)
                };
                if HOOKS && hart.satp != old_satp {
                    satp_changed(hart, bus, hooks, old_satp, pc);
                }
                match result {
                    Ok(Flow::Next) => {}
                    Ok(Flow::EndBlock) => {
                        retired = i + 1;
                        next_pc = pc.wrapping_add(u64::from(op.len));
                        break;
                    }
                    Ok(Flow::Jump(target)) => {
                        retired = i + 1;
                        next_pc = target;
                        break;
                    }
                    Ok(Flow::Exit(exit)) => {
                        retired = i + 1;
                        next_pc = pc.wrapping_add(u64::from(op.len));
                        end = BlockEnd::Exit(exit);
                        break;
                    }
                    Err(MemStop::Trap(trap)) => trap!(i, trap, pc),
                    Err(MemStop::Device(_)) | Err(MemStop::CodeModified) => {
                        retired = i + 1;
                        next_pc = pc.wrapping_add(u64::from(op.len));
                        break;
                    }
                }
            }
        }
    }
    hart.clock.retired = base_retired + retired as u64;
    hart.pc = next_pc;
    if HOOKS && retired > 0 && !hooks_ended_block && block.after_insn_exec >> (retired - 1) & 1 != 0
    {
        let insn_pc = base_pc.wrapping_add(u64::from(block.ops[retired - 1].offset));
        hooks.after_instruction(&mut RiscvCpu::new(hart, bus), insn_pc);
    }
    end
}

/// The instruction-level callbacks before op `i` of `block` (the hart's pc and count are
/// already at op `i`), as [`Hooks::instruction`] fires them. Returns where to continue when
/// a callback moved the pc or changed code, which ends the block before op `i` runs.
#[inline(never)]
fn instruction_hooks(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    block: &Block,
    base_pc: u64,
    i: usize,
) -> Option<u64> {
    let point = InstructionPoint {
        after_previous: (i > 0 && block.after_insn_exec >> (i - 1) & 1 != 0)
            .then(|| base_pc.wrapping_add(u64::from(block.ops[i - 1].offset))),
        insn_exec: block.insn_exec >> i & 1 != 0,
        hypercall: block.hypercalls >> i & 1 != 0,
    };
    hooks.instruction(&mut RiscvCpu::new(hart, bus), point)
}

/// A trap inside an instrumented block: [`Hooks::trap_in_block`] decides what is taken.
#[cold]
#[inline(never)]
fn hooked_trap(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    block: &Block,
    base_pc: u64,
    trap: Trap,
    pc: u64,
) {
    hart.pc = pc;
    let info = block.info(base_pc);
    let decision = hooks.trap_in_block(&mut RiscvCpu::new(hart, bus), &info, trap.cause, pc);
    if let Some((cause, epc)) = decision {
        hart.take_trap(Trap::new(cause, trap.tval), epc);
    }
}

/// `satp` changed: `asid_changed`, whose callbacks may refuse the change.
#[cold]
#[inline(never)]
fn satp_changed(hart: &mut Hart, bus: &mut Bus, hooks: &mut Hooks, old: u64, pc: u64) {
    // The callbacks run before the change, as in PANDA: they see the old `satp`, and the pc
    // of the instruction that changes it.
    let new = std::mem::replace(&mut hart.satp, old);
    let saved_pc = hart.pc;
    hart.pc = pc;
    let refused = hooks.asid_changed(&mut RiscvCpu::new(hart, bus), old, new);
    hart.pc = saved_pc;
    if !refused {
        hart.satp = new;
    }
}

/// A cold-path instruction with memory callbacks around its access (floating-point loads
/// and stores, atomics), through [`Hooks::around_access`]. The callbacks see the data the
/// instruction read or wrote.
#[cold]
#[inline(never)]
fn hooked_cold(
    hart: &mut Hart,
    bus: &mut Bus,
    hooks: &mut Hooks,
    op: &Op,
    pc: u64,
) -> Result<Flow, MemStop> {
    let address = hart.x[op.rs1 as usize & 63];
    let (vaddr, size, reads, writes) = match op.kind {
        Kind::Flw | Kind::Fsw | Kind::Fld | Kind::Fsd if !hart.fp_enabled() => {
            return hart.execute_cold(bus, op, pc)
        }
        Kind::Flw => (address.wrapping_add(op.imm as i64 as u64), 4, true, false),
        Kind::Fld => (address.wrapping_add(op.imm as i64 as u64), 8, true, false),
        Kind::Fsw => (address.wrapping_add(op.imm as i64 as u64), 4, false, true),
        Kind::Fsd => (address.wrapping_add(op.imm as i64 as u64), 8, false, true),
        Kind::LrW => (address, 4, true, false),
        Kind::LrD => (address, 8, true, false),
        Kind::ScW => (address, 4, false, true),
        Kind::ScD => (address, 8, false, true),
        Kind::Amo => (address, if op.imm == 1 { 8 } else { 4 }, true, true),
        _ => return hart.execute_cold(bus, op, pc),
    };
    hart.pc = pc;
    let access = if writes { Access::Write } else { Access::Read };
    let paddr = hooks::tlb_physical(hart, bus, vaddr, size, access)
        .or_else(|| hooks::debug_translate(hart, bus, vaddr));
    // The value a store or AMO is about to write: the source register (for an AMO, its
    // operand; the result is only known afterwards).
    let source = match op.kind {
        Kind::Fsw | Kind::Fsd => hart.f[op.rs2 as usize & 31],
        _ => hart.x[op.rs2 as usize & 63],
    };
    let access = memory::Access {
        pc,
        vaddr,
        size,
        reads,
        writes,
        source: source.to_le_bytes(),
    };
    hooks.around_access(&mut RiscvCpu::new(hart, bus), access, paddr, |cpu| {
        let result = cpu.hart.execute_cold(cpu.bus, op, pc);
        // A store-conditional that failed wrote nothing.
        let failed_sc =
            matches!(op.kind, Kind::ScW | Kind::ScD) && cpu.hart.x[op.rd as usize & 63] != 0;
        (result, !failed_sc)
    })
}

impl Hart {
    /// The illegal-instruction trap for the instruction at `pc`, with its bits in the trap
    /// value (re-read from memory: ops do not keep their encoding).
    pub(crate) fn illegal_at(&mut self, bus: &mut Bus, pc: u64, len: u8) -> MemStop {
        let bits = match self.fetch_physical(bus, pc) {
            Ok(paddr) if len == 2 || (paddr & (PAGE_SIZE - 1)) <= PAGE_SIZE - 4 => {
                bus.read_ram(paddr, u64::from(len))
            }
            _ => 0,
        };
        MemStop::Trap(Trap::illegal(bits))
    }

    /// System, atomic and floating-point instructions: rarer, so kept out of the hot loop.
    #[inline(never)]
    fn execute_cold(&mut self, bus: &mut Bus, op: &Op, pc: u64) -> Result<Flow, MemStop> {
        match op.kind {
            Kind::Ecall => {
                let cause = match self.privilege {
                    Privilege::User => Trap::ECALL_FROM_U,
                    Privilege::Supervisor if self.sbi => {
                        return Ok(Flow::Exit(HartExit::SupervisorCall));
                    }
                    Privilege::Supervisor => Trap::ECALL_FROM_S,
                    Privilege::Machine => Trap::ECALL_FROM_M,
                };
                Err(MemStop::Trap(Trap::new(cause, 0)))
            }
            Kind::Ebreak => Err(MemStop::Trap(Trap::new(Trap::BREAKPOINT, pc))),
            // Translations are kept coherent with stores, so there is nothing to flush.
            Kind::FenceI => Ok(Flow::EndBlock),
            Kind::Mret => {
                if self.privilege != Privilege::Machine {
                    return Err(self.illegal_at(bus, pc, op.len));
                }
                self.mret();
                Ok(Flow::Jump(self.pc))
            }
            Kind::Sret => {
                let trapped = self.privilege == Privilege::Supervisor
                    && self.mstatus & crate::hart::mstatus::TSR != 0;
                if self.privilege == Privilege::User || trapped {
                    return Err(self.illegal_at(bus, pc, op.len));
                }
                self.sret();
                Ok(Flow::Jump(self.pc))
            }
            Kind::Wfi => {
                let trapped = self.privilege == Privilege::Supervisor
                    && self.mstatus & crate::hart::mstatus::TW != 0;
                if self.privilege == Privilege::User || trapped {
                    return Err(self.illegal_at(bus, pc, op.len));
                }
                if self.wants_wakeup() {
                    Ok(Flow::EndBlock)
                } else {
                    Ok(Flow::Exit(HartExit::Wfi))
                }
            }
            Kind::SfenceVma => {
                let trapped = self.privilege == Privilege::Supervisor
                    && self.mstatus & crate::hart::mstatus::TVM != 0;
                if self.privilege == Privilege::User || trapped {
                    return Err(self.illegal_at(bus, pc, op.len));
                }
                let address = (op.rs1 != 0).then(|| self.x[op.rs1 as usize & 63]);
                self.sfence_vma(address);
                Ok(Flow::EndBlock)
            }
            Kind::Csrrw
            | Kind::Csrrs
            | Kind::Csrrc
            | Kind::Csrrwi
            | Kind::Csrrsi
            | Kind::Csrrci => self.execute_csr(op).map_err(MemStop::Trap),
            Kind::LrW | Kind::LrD | Kind::ScW | Kind::ScD | Kind::Amo => {
                self.execute_atomic(bus, op)
            }
            _ => self.execute_fp(bus, op, pc),
        }
    }

    fn execute_csr(&mut self, op: &Op) -> Result<Flow, Trap> {
        let csr = (op.imm & 0xfff) as u16;
        let bits = csr_bits(op);
        let operand = match op.kind {
            Kind::Csrrwi | Kind::Csrrsi | Kind::Csrrci => u64::from(op.rs1),
            _ => self.x[op.rs1 as usize & 63],
        };
        let writes = match op.kind {
            Kind::Csrrw | Kind::Csrrwi => true,
            _ => op.rs1 != 0,
        };
        let reads = !matches!(op.kind, Kind::Csrrw | Kind::Csrrwi) || op.rd != decode::ZERO_SINK;
        let old = if reads || writes {
            self.read_csr(csr, bits)?
        } else {
            0
        };
        if writes {
            let new = match op.kind {
                Kind::Csrrw | Kind::Csrrwi => operand,
                Kind::Csrrs | Kind::Csrrsi => self.csr_modify_base(csr, old) | operand,
                _ => self.csr_modify_base(csr, old) & !operand,
            };
            self.write_csr(csr, new, bits)?;
        }
        self.x[op.rd as usize & 63] = old;
        Ok(Flow::EndBlock)
    }

    fn execute_atomic(&mut self, bus: &mut Bus, op: &Op) -> Result<Flow, MemStop> {
        let address = self.x[op.rs1 as usize & 63];
        let value = self.x[op.rs2 as usize & 63];
        let double =
            matches!(op.kind, Kind::LrD | Kind::ScD) || op.kind == Kind::Amo && op.imm == 1;
        let size = if double { 8 } else { 4 };
        let widen = |raw: u64| if double { raw } else { sext32(raw) };
        match op.kind {
            Kind::LrW | Kind::LrD => {
                let paddr = self.atomic_address(bus, address, size, Access::Read)?;
                self.x[op.rd as usize & 63] = widen(bus.read_ram(paddr, size));
                self.reservation = Some(paddr);
            }
            Kind::ScW | Kind::ScD => {
                let paddr = self.atomic_address(bus, address, size, Access::Write)?;
                let success = self.reservation.take() == Some(paddr);
                if success {
                    bus.write_ram(paddr, size, value);
                }
                self.x[op.rd as usize & 63] = u64::from(!success);
            }
            _ => {
                let paddr = self.atomic_address(bus, address, size, Access::Write)?;
                let old = widen(bus.read_ram(paddr, size));
                let operand = widen(value);
                let new = match op.aux {
                    decode::amo::SWAP => operand,
                    decode::amo::ADD => old.wrapping_add(operand),
                    decode::amo::XOR => old ^ operand,
                    decode::amo::AND => old & operand,
                    decode::amo::OR => old | operand,
                    decode::amo::MIN => (old as i64).min(operand as i64) as u64,
                    decode::amo::MAX => (old as i64).max(operand as i64) as u64,
                    decode::amo::MINU => old.min(operand),
                    _ => old.max(operand),
                };
                bus.write_ram(paddr, size, new);
                self.x[op.rd as usize & 63] = old;
            }
        }
        if self.modified_code_pages.is_empty() {
            Ok(Flow::Next)
        } else {
            Err(MemStop::CodeModified)
        }
    }
}

/// Re-encodes a CSR instruction's bits for `mtval` on an illegal access.
fn csr_bits(op: &Op) -> u32 {
    let funct3 = match op.kind {
        Kind::Csrrw => 1,
        Kind::Csrrs => 2,
        Kind::Csrrc => 3,
        Kind::Csrrwi => 5,
        Kind::Csrrsi => 6,
        _ => 7,
    };
    let rd = if op.rd == decode::ZERO_SINK {
        0
    } else {
        u32::from(op.rd)
    };
    (op.imm as u32 & 0xfff) << 20 | u32::from(op.rs1) << 15 | funct3 << 12 | rd << 7 | 0x73
}
