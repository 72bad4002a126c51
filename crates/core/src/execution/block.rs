//! A block's firing order, and the instruction-level and translate-time callbacks.
//!
//! PANDA's order around a block is: `before_block_exec_invalidate_opt` (which may have the
//! block translated again) → address hooks at its start (blocks are split at hooked
//! addresses, so one starts at each) → `before_block_exec` then `start_block_exec` → the
//! body (instruction and memory callbacks, exceptions) → `after_block_exec` then
//! `end_block_exec` → the address hooks that fire at the block's end. A callback that
//! moves the pc or changes code before the body runs cancels the block: `after_block_exec`
//! reports it as left early and the executor starts over where the pc now is. A stop takes
//! effect at the next block boundary.

use crate::instrument::{
    BlockInfo, CallbackKind, GuestCpu, HookPoint, ADDRESS_HOOKS, EXIT_EARLY, EXIT_RAN_TO_END,
    HOOKS_AT_END, HOOKS_AT_START, MEMORY_KINDS,
};

use super::{fire, CpuView, Hooks, TranslatedCode};

/// Kinds that fire before a block runs (and may move the pc away from it).
pub const BEFORE_BLOCK_KINDS: u64 = CallbackKind::BeforeBlockExecInvalidateOpt.bit()
    | CallbackKind::BeforeBlockExec.bit()
    | CallbackKind::StartBlockExec.bit();
/// Kinds that fire after a block ran.
pub const AFTER_BLOCK_KINDS: u64 =
    CallbackKind::AfterBlockExec.bit() | CallbackKind::EndBlockExec.bit() | HOOKS_AT_END;
/// Kinds that fire inside a block's body: with none of them enabled, the executor runs the
/// uninstrumented body, which behaves identically otherwise.
pub const BODY_KINDS: u64 = CallbackKind::InsnExec.bit()
    | CallbackKind::AfterInsnExec.bit()
    | CallbackKind::GuestHypercall.bit()
    | CallbackKind::AsidChanged.bit()
    | CallbackKind::CpuRestoreState.bit()
    | CallbackKind::BeforeHandleException.bit()
    | MEMORY_KINDS;

/// How a block's run ended, as the protocol needs to know it.
pub trait BlockOutcome {
    /// Nothing ran: the executor starts over where the pc is (a callback moved it or changed
    /// code before the block).
    fn cancelled() -> Self;
    /// Whether the block was left by a trap (then it did not run to its end).
    fn trapped(&self) -> bool;
}

/// A decoded block's shape, as [`run_block`] needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockFacts {
    /// Number of instructions.
    pub len: usize,
    /// Size of its code in bytes.
    pub size: u64,
    /// The virtual address it was translated at. (Translation ends a block before a hooked
    /// address, which is only right for that virtual address.)
    pub translated_at: u64,
    /// Whether a hook was registered at `translated_at` when it was translated.
    pub hooked: bool,
}

/// An executor seen from one block at a time: the block cache and the CPU.
pub trait BlockExecutor: TranslatedCode {
    /// Names a decoded block while it stays cached.
    type Index: Copy;
    /// How a block's run ended.
    type End: BlockOutcome;
    /// The CPU view callbacks get.
    type View<'v>: CpuView
    where
        Self: 'v;
    /// The CPU as callbacks see it.
    fn view(&mut self) -> Self::View<'_>;
    /// Instructions retired so far.
    fn retired(&self) -> u64;
    /// The block's first `count` instructions (all of them when `count` is at least its
    /// length), about to run at virtual address `pc`.
    fn info(&self, block: Self::Index, pc: u64, count: usize) -> BlockInfo;
    /// What the protocol needs to know of a block before it runs (one lookup per block).
    fn facts(&self, block: Self::Index) -> BlockFacts;
    /// How many of the block's instructions lie before virtual address `address` when it
    /// runs at `pc`.
    fn count_before(&self, block: Self::Index, pc: u64, address: u64) -> usize;
    /// The block is about to run at `pc`, another virtual address than it was translated
    /// at: when no hooked address lies inside it there, it may count as translated at `pc`
    /// from now on (so that the next runs there need no split).
    fn relocate(&mut self, block: Self::Index, pc: u64, hooks: &Hooks);
    /// Drops the block at `pc` and translates it again (firing the translate-time
    /// callbacks); `None` when that faults (the executor starts over and takes the fault).
    fn retranslate(&mut self, hooks: &mut Hooks, pc: u64) -> Option<Self::Index>;
    /// Runs the block's first `count` instructions; with `body_hooks`, the body fires the
    /// instruction, memory and trap callbacks.
    fn execute(
        &mut self,
        hooks: &mut Hooks,
        block: Self::Index,
        count: usize,
        body_hooks: bool,
    ) -> Self::End;
}

/// Runs one block with the block-level callbacks around it, in PANDA's order. Inline, and
/// each group of kinds costs one mask test when none of it is enabled: with only
/// block-level callbacks, the block runs the uninstrumented body.
#[inline(always)]
pub fn run_block<E: BlockExecutor>(
    executor: &mut E,
    hooks: &mut Hooks,
    mut block: E::Index,
    pc: u64,
    remaining: u64,
) -> E::End {
    let mask = hooks.mask();
    if mask & CallbackKind::BeforeBlockExecInvalidateOpt.bit() != 0 {
        match invalidate_opt(executor, hooks, block, pc) {
            Some(index) => block = index,
            None => return E::End::cancelled(),
        }
    }
    let facts = executor.facts(block);
    let mut count = facts.len;
    let mut hooked = false;
    if mask & ADDRESS_HOOKS != 0 && (facts.translated_at != pc || facts.hooked) {
        if facts.translated_at != pc {
            executor.relocate(block, pc, hooks);
        }
        match address_hooks(executor, hooks, block, pc) {
            Some(split) => (count, hooked) = split,
            None => return E::End::cancelled(),
        }
    }
    if mask & BEFORE_BLOCK_KINDS != 0 && !before_block(executor, hooks, block, pc, count) {
        return E::End::cancelled();
    }
    let before = executor.retired();
    let run = count.min(remaining as usize);
    let end = executor.execute(hooks, block, run, mask & BODY_KINDS != 0);
    if mask & AFTER_BLOCK_KINDS != 0 {
        after_block(
            executor,
            hooks,
            block,
            pc,
            count,
            before,
            end.trapped(),
            hooked,
        );
    }
    end
}

/// `before_block_exec_invalidate_opt`: the block to run, translated again if a callback
/// asked for it.
#[cold]
#[inline(never)]
fn invalidate_opt<E: BlockExecutor>(
    executor: &mut E,
    hooks: &mut Hooks,
    block: E::Index,
    pc: u64,
) -> Option<E::Index> {
    let info = executor.info(block, pc, usize::MAX);
    let mut invalidate = false;
    fire!(
        &mut hooks.instr,
        &mut executor.view(),
        BeforeBlockExecInvalidateOpt,
        |callback, view| {
            invalidate |= callback(view, &info);
        }
    );
    if !invalidate {
        return Some(block);
    }
    executor.retranslate(hooks, pc)
}

/// The address hooks of a block about to run at `pc`, which either starts at a hooked
/// address or was translated at another virtual address than `pc` (so hooked addresses
/// may lie inside it). Fires the [`HookPoint::Start`] hooks at `pc` (once per arrival:
/// when the executor starts over at the same place without running anything, they do not
/// fire again), and returns how many instructions of the block may run (up to the next
/// hooked address) and whether `pc` is hooked; `None` when a hook moved the pc or changed
/// code.
#[cold]
#[inline(never)]
fn address_hooks<E: BlockExecutor>(
    executor: &mut E,
    hooks: &mut Hooks,
    block: E::Index,
    pc: u64,
) -> Option<(usize, bool)> {
    // After `relocate`: the block may count as translated at `pc` now.
    let facts = executor.facts(block);
    let mut count = facts.len;
    let hooked = if facts.translated_at == pc {
        facts.hooked
    } else {
        // Translated at another virtual address: split it here as translation would have.
        let end = pc.saturating_add(facts.size);
        if let Some(inside) = hooks.first_hook_in(pc.saturating_add(1), end) {
            count = executor.count_before(block, pc, inside);
        }
        hooks.is_hooked(pc)
    };
    let arrival = (pc, executor.retired());
    if hooked
        && hooks.mask() & HOOKS_AT_START != 0
        && hooks.instr.last_hook_arrival != Some(arrival)
    {
        hooks.instr.last_hook_arrival = Some(arrival);
        let info = executor.info(block, pc, count);
        let mut view = executor.view();
        hooks
            .instr
            .fire_hooks(HookPoint::Start, &mut view, pc, &info, EXIT_RAN_TO_END);
        if view.take_stop() {
            hooks.request_stop();
        }
        if view.pc() != pc || view.code_modified() {
            return None;
        }
    }
    Some((count, hooked))
}

/// `before_block_exec` and `start_block_exec` for the block described by `info`, about to
/// run at `pc`. False when a callback moved the pc or changed code: the block does not
/// run. (A stop is taken at the next block boundary.) The block-start loop calls this
/// alone; the instrumented loop through [`run_block`].
#[inline(always)]
pub fn block_start<C: CpuView>(hooks: &mut Hooks, cpu: &mut C, info: &BlockInfo, pc: u64) -> bool {
    hooks.instr.fire_block_start(cpu, info);
    if cpu.take_stop() {
        hooks.request_stop();
    }
    cpu.pc() == pc && !cpu.code_modified()
}

/// [`block_start`] for the first `count` instructions of `block`; when the block does not
/// run, `after_block_exec` reports it as left early.
#[inline(always)]
fn before_block<E: BlockExecutor>(
    executor: &mut E,
    hooks: &mut Hooks,
    block: E::Index,
    pc: u64,
    count: usize,
) -> bool {
    let info = executor.info(block, pc, count);
    let mut view = executor.view();
    if block_start(hooks, &mut view, &info, pc) {
        return true;
    }
    fire!(
        &mut hooks.instr,
        &mut view,
        AfterBlockExec,
        |callback, view| {
            callback(view, &info, EXIT_EARLY);
        }
    );
    false
}

/// `after_block_exec`, `end_block_exec` and the [`HookPoint::End`] hooks (when `hooked`),
/// for the first `count` instructions of a block that started at `pc` with `before`
/// instructions retired.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn after_block<E: BlockExecutor>(
    executor: &mut E,
    hooks: &mut Hooks,
    block: E::Index,
    pc: u64,
    count: usize,
    before: u64,
    trapped: bool,
    hooked: bool,
) {
    let info = executor.info(block, pc, count);
    let ran_to_end = executor.retired() - before == count as u64 && !trapped;
    let code = if ran_to_end {
        EXIT_RAN_TO_END
    } else {
        EXIT_EARLY
    };
    let mut view = executor.view();
    fire!(
        &mut hooks.instr,
        &mut view,
        AfterBlockExec,
        |callback, view| {
            callback(view, &info, code);
        }
    );
    hooks.fire_block(&mut view, CallbackKind::EndBlockExec, &info);
    if hooked && hooks.mask() & HOOKS_AT_END != 0 {
        hooks
            .instr
            .fire_hooks(HookPoint::End, &mut view, pc, &info, code);
        if view.take_stop() {
            hooks.request_stop();
        }
    }
}

/// What the instruction-level callbacks see before one instruction of a block runs.
#[derive(Clone, Copy, Debug)]
pub struct InstructionPoint {
    /// The previous instruction of the block, if `after_insn_exec` was selected for it.
    pub after_previous: Option<u64>,
    /// Whether `insn_exec` was selected for this instruction.
    pub insn_exec: bool,
    /// Whether this instruction is the architecture's guest hypercall.
    pub hypercall: bool,
}

impl Hooks {
    /// The instruction-level callbacks before an instruction runs (the view's pc and count
    /// are at it): `after_insn_exec` for the previous one, then `insn_exec` and
    /// `guest_hypercall`. Returns where to continue when a callback moved the pc or changed
    /// code, which ends the block before the instruction runs. (Inline: the executor calls
    /// it from a function of its own, out of its loop.)
    #[inline]
    pub fn instruction<C: CpuView>(&mut self, cpu: &mut C, point: InstructionPoint) -> Option<u64> {
        let pc = cpu.pc();
        if let Some(previous) = point.after_previous {
            self.after_instruction(cpu, previous);
        }
        if point.insn_exec {
            fire!(&mut self.instr, &mut *cpu, InsnExec, |callback, view| {
                callback(view, pc);
            });
        }
        if point.hypercall {
            // The instruction does nothing either way, so "handled" changes nothing.
            fire!(
                &mut self.instr,
                &mut *cpu,
                GuestHypercall,
                |callback, view| {
                    callback(view);
                }
            );
        }
        (cpu.pc() != pc || cpu.code_modified()).then(|| cpu.pc())
    }

    /// `guest_hypercall` for a hypercall instruction that has an effect of its own (x86's
    /// CPUID, as in PANDA): true when a callback returned true (handled it), and the
    /// instruction's own effect is to be skipped. The view's pc and count are at it. (An
    /// architecture whose hypercall does nothing passes it through
    /// [`InstructionPoint::hypercall`] instead.)
    #[cold]
    #[inline(never)]
    pub fn handled_hypercall<C: CpuView>(&mut self, cpu: &mut C) -> bool {
        let mut handled = false;
        fire!(
            &mut self.instr,
            &mut *cpu,
            GuestHypercall,
            |callback, view| {
                handled |= callback(view);
            }
        );
        handled
    }

    /// A trap inside an instrumented block (the view's pc at the faulting instruction):
    /// `cpu_restore_state` for the block, then [`Hooks::exception`].
    #[cold]
    #[inline(never)]
    pub fn trap_in_block<C: CpuView>(
        &mut self,
        cpu: &mut C,
        block: &BlockInfo,
        cause: u64,
        pc: u64,
    ) -> Option<(u64, u64)> {
        self.fire_block(cpu, CallbackKind::CpuRestoreState, block);
        self.exception(cpu, cause, pc)
    }

    /// `before_block_translate` for a block about to be translated at `pc`.
    #[cold]
    pub fn before_translate<C: CpuView>(&mut self, cpu: &mut C, pc: u64) {
        fire!(
            &mut self.instr,
            cpu,
            BeforeBlockTranslate,
            |callback, view| {
                callback(view, pc);
            }
        );
    }

    /// `insn_translate` and `after_insn_translate` for an instruction of a block being
    /// translated: whether `insn_exec` and `after_insn_exec` are to fire for it.
    #[cold]
    pub fn select_instruction<C: CpuView>(&mut self, cpu: &mut C, pc: u64) -> (bool, bool) {
        let mut insn_exec = false;
        fire!(
            &mut self.instr,
            &mut *cpu,
            InsnTranslate,
            |callback, view| {
                insn_exec |= callback(view, pc);
            }
        );
        let mut after_insn_exec = false;
        fire!(
            &mut self.instr,
            &mut *cpu,
            AfterInsnTranslate,
            |callback, view| {
                after_insn_exec |= callback(view, pc);
            }
        );
        (insn_exec, after_insn_exec)
    }

    /// `after_block_translate` for a freshly translated block.
    #[cold]
    pub fn after_translate<C: CpuView>(&mut self, cpu: &mut C, block: &BlockInfo) {
        self.fire_block(cpu, CallbackKind::AfterBlockTranslate, block);
    }
}
