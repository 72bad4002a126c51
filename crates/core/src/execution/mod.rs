//! PANDA's firing protocol, written once for every architecture.
//!
//! An architecture's executor decodes and runs guest code; this module decides everything
//! PANDA-specific around it: which callbacks fire at each point, in which order, what their
//! return values mean, and when a stop, a cancelled exception or a moved pc takes effect.
//! The executor calls in at its firing points through a [`Hooks`] handle (a narrow view of
//! the registry, not the user-facing [`Instrumentation`] API), handing over a view of its
//! CPU ([`CpuView`]); everything is generic over the architecture's types (monomorphized,
//! and inlined where it sits on a loop's path, no `dyn` until a callback is called), and
//! nothing here runs unless a callback is enabled: the uninstrumented loop calls none of it.
//!
//! - [`run`]: one run of the executor: `after_cpu_exec_enter`, the choice between the
//!   uninstrumented loop, the block-start loop and the instrumented loop, queued registry
//!   changes, code flushes and stops at block boundaries, `before_cpu_exec_exit`.
//! - [`block`]: a block's order (`before_block_exec_invalidate_opt` → address hooks, which
//!   split blocks → `before_block_exec`/`start_block_exec` → body → `after_block_exec`/
//!   `end_block_exec` → end hooks), instruction-level callbacks and translate-time ones.
//! - [`memory`]: a data access's order (virtual then physical, before then after, MMIO,
//!   unassigned I/O).
//! - [`Hooks::exception`], [`Hooks::interrupt`], [`Hooks::asid_changed`]: traps and
//!   address-space switches.
//!
//! `docs/callbacks.md` says where each callback fires; the machine-level ones are fired by
//! [`crate::board::Shell`].

pub mod block;
pub mod memory;

use crate::board::{SerialAddresses, SerialEvent};
use crate::instrument::{BlockInfo, Callback, CallbackKind, GuestCpu, Instrumentation};

/// Calls every enabled callback of one kind with the CPU view `$cpu` (a `&mut` to a
/// [`CpuView`]), then turns a stop asked for through the view into a stop request:
/// `fire!(instr, cpu, Kind, |callback, cpu| expression)`.
macro_rules! fire {
    ($instr:expr, $cpu:expr, $kind:ident, |$cb:ident, $view:ident| $body:expr) => {{
        let instr: &mut $crate::instrument::Instrumentation = $instr;
        if instr.has($crate::instrument::CallbackKind::$kind) {
            let cpu = $cpu;
            for callback in instr.enabled($crate::instrument::CallbackKind::$kind) {
                if let $crate::instrument::Callback::$kind($cb) = callback {
                    let $view: &mut dyn $crate::instrument::GuestCpu = &mut *cpu;
                    $body;
                }
            }
            if $crate::execution::CpuView::take_stop(&mut *cpu) {
                instr.request_stop();
            }
        }
    }};
}
pub(crate) use fire;

/// The view of an architecture's CPU that the firing protocol hands to callbacks, with
/// the two things it needs to know after they ran.
pub trait CpuView: GuestCpu {
    /// Whether a callback asked to stop through this view ([`GuestCpu::request_stop`])
    /// since the last call; clears the request.
    fn take_stop(&mut self) -> bool;
    /// Whether translated code was written (by a callback) and is still to be dropped: the
    /// executor must not run anything before it has dropped it.
    fn code_modified(&self) -> bool;
}

/// An architecture's translated-code cache, as the protocol needs to manage it.
pub trait TranslatedCode {
    /// Drops all translated code (translate-time callbacks were enabled: they must see every
    /// translation). The guest must see no difference.
    fn flush_code(&mut self);
    /// Drops the code translated at virtual addresses covering one of `addresses` (newly
    /// hooked: a block must start at each).
    fn invalidate_virtual(&mut self, addresses: &mut [u64]);
}

/// The executor's handle on the callback registry: the tests and firing points an executor
/// needs, and nothing of the user-facing registration API. It is the registry itself seen
/// through a narrower type (`&mut Hooks` is a `&mut Instrumentation`), so using it costs
/// exactly what using the registry directly would.
#[derive(Debug)]
#[repr(transparent)]
pub struct Hooks {
    instr: Instrumentation,
}

impl Hooks {
    /// The executor's view of `instr`.
    #[inline]
    pub fn new(instr: &mut Instrumentation) -> &mut Hooks {
        // SAFETY: `Hooks` is `repr(transparent)` over `Instrumentation`, so both have the
        // same layout and alignment; the result borrows `instr` exclusively for as long as
        // `instr` was borrowed, exactly like the reference it is made from.
        unsafe { &mut *(instr as *mut Instrumentation).cast::<Hooks>() }
    }

    /// The enabled kinds, one bit per [`CallbackKind::bit`] (with
    /// [`crate::instrument::HOOKS_AT_START`] and [`crate::instrument::HOOKS_AT_END`]).
    #[inline]
    pub fn mask(&self) -> u64 {
        self.instr.mask()
    }

    /// Whether a callback of `kind` is enabled.
    #[inline]
    pub fn has(&self, kind: CallbackKind) -> bool {
        self.instr.has(kind)
    }

    /// Whether an address hook is registered at `address` (enabled or not): translation ends
    /// a block before such an address, so that a block starts there.
    #[inline]
    pub fn is_hooked(&self, address: u64) -> bool {
        self.instr.is_hooked(address)
    }

    /// Whether any address hook is registered.
    #[inline]
    pub fn has_hooks(&self) -> bool {
        self.instr.has_hooks()
    }

    /// The lowest hooked address in `start..end`.
    #[inline]
    pub fn first_hook_in(&self, start: u64, end: u64) -> Option<u64> {
        self.instr.first_hook_in(start, end)
    }

    /// Whether the registry needs [`Hooks::attend`] at the next block boundary. The
    /// instrumented loops test it before every block.
    #[inline]
    pub fn needs_attention(&self) -> bool {
        self.instr.needs_attention()
    }

    /// Whether `before_block_exec` or `start_block_exec` callbacks are enabled: the
    /// block-start loop skips [`block::block_start`] (and building the block's
    /// [`BlockInfo`]) when it runs only for `before_handle_exception`.
    #[inline]
    pub fn fires_block_start(&self) -> bool {
        self.instr.mask()
            & (CallbackKind::BeforeBlockExec.bit() | CallbackKind::StartBlockExec.bit())
            != 0
    }

    /// Whether `before_handle_exception` callbacks are enabled: the uninstrumented body
    /// tests this where it takes an exception (see [`Executor::run_block_start`]).
    #[inline]
    pub fn fires_exceptions(&self) -> bool {
        self.instr.mask() & CallbackKind::BeforeHandleException.bit() != 0
    }

    /// What the registry asks of the executor at a block boundary: queued changes are
    /// applied, translated code is flushed when translate-time callbacks were enabled (the
    /// TLB stays), code covering newly hooked addresses is dropped. True when a stop was
    /// asked for: the executor returns now.
    #[cold]
    pub fn attend(&mut self, code: &mut impl TranslatedCode) -> bool {
        self.instr.apply_pending();
        if self.instr.take_code_flush() {
            code.flush_code();
        }
        code.invalidate_virtual(&mut self.instr.take_new_hook_addresses());
        self.instr.take_stop()
    }

    /// Asks the executor's caller to end the run at the next block boundary.
    #[inline]
    pub fn request_stop(&mut self) {
        self.instr.request_stop();
    }

    /// `before_handle_exception` for exception `cause` raised by the instruction at `pc`:
    /// the exception to take and the pc to report as faulting, or `None` when a callback
    /// cancelled it (returned -1). The first callback that answers another index decides;
    /// a callback that moved the pc moves the exception there.
    #[inline]
    pub fn exception<C: CpuView>(
        &mut self,
        cpu: &mut C,
        cause: u64,
        pc: u64,
    ) -> Option<(u64, u64)> {
        let original = cause as i32;
        let mut index = original;
        fire!(
            &mut self.instr,
            &mut *cpu,
            BeforeHandleException,
            |callback, view| {
                let answer = callback(view, original);
                if index == original && answer != original {
                    index = answer;
                }
            }
        );
        if index < 0 {
            return None;
        }
        let now = cpu.pc();
        Some((index as u64, if now == pc { pc } else { now }))
    }

    /// `before_handle_interrupt` for interrupt `cause` about to be taken: the interrupt to
    /// take, or `None` when a callback cancelled it (for now: it stays pending).
    #[inline]
    pub fn interrupt<C: CpuView>(&mut self, cpu: &mut C, cause: u64) -> Option<u64> {
        let original = cause as i32;
        let mut index = original;
        fire!(
            &mut self.instr,
            cpu,
            BeforeHandleInterrupt,
            |callback, view| {
                let answer = callback(view, original);
                if index == original && answer != original {
                    index = answer;
                }
            }
        );
        (index >= 0).then_some(index as u64)
    }

    /// `asid_changed` before the address space changes from `old` to `new` (the view must
    /// still show `old`): true when a callback refused the change.
    pub fn asid_changed<C: CpuView>(&mut self, cpu: &mut C, old: u64, new: u64) -> bool {
        let mut refused = false;
        fire!(&mut self.instr, cpu, AsidChanged, |callback, view| {
            refused |= callback(view, old, new);
        });
        refused
    }

    /// `after_insn_exec` for the instruction at `pc`, which just retired.
    #[inline]
    pub fn after_instruction<C: CpuView>(&mut self, cpu: &mut C, pc: u64) {
        fire!(&mut self.instr, cpu, AfterInsnExec, |callback, view| {
            callback(view, pc);
        });
    }

    /// Fires a kind whose callbacks take the CPU and a block.
    #[inline]
    fn fire_block<C: CpuView>(&mut self, cpu: &mut C, kind: CallbackKind, info: &BlockInfo) {
        if !self.instr.has(kind) {
            return;
        }
        for callback in self.instr.enabled(kind) {
            match callback {
                Callback::BeforeBlockExec(f)
                | Callback::StartBlockExec(f)
                | Callback::EndBlockExec(f)
                | Callback::AfterBlockTranslate(f)
                | Callback::CpuRestoreState(f) => f(cpu, info),
                _ => {}
            }
        }
        if cpu.take_stop() {
            self.instr.request_stop();
        }
    }
}

/// An architecture's executor, as [`run`] drives it: three loops over the same block
/// bodies, chosen once per run from what the registry has enabled.
pub trait Executor: TranslatedCode {
    /// Why the executor stopped (the architecture's exit reasons).
    type Exit;
    /// The CPU view callbacks get.
    type View<'v>: CpuView
    where
        Self: 'v;
    /// The CPU as callbacks see it.
    fn view(&mut self) -> Self::View<'_>;
    /// Instructions retired so far.
    fn retired(&self) -> u64;
    /// The exit that says a callback asked to stop.
    fn stopped(&self) -> Self::Exit;
    /// The uninstrumented loop: no callbacks, no test of the registry per block.
    fn run_plain(&mut self, hooks: &mut Hooks, budget: u64) -> Self::Exit;
    /// The uninstrumented loop plus [`block::block_start`] at every block, for a registry
    /// where `before_block_exec`, `start_block_exec` and `before_handle_exception` are the
    /// only kinds enabled inside the loop. Where the uninstrumented body takes an
    /// exception it fires [`Hooks::exception`] when [`Hooks::fires_exceptions`] says so
    /// (with the pc at the faulting instruction), and takes what that answers. Returns
    /// `None` at the first block boundary where [`Hooks::needs_attention`] holds (before
    /// running that block).
    fn run_block_start(&mut self, hooks: &mut Hooks, budget: u64) -> Option<Self::Exit>;
    /// The instrumented loop: every kind, address hooks, [`Hooks::attend`] before every
    /// block that needs it.
    fn run_instrumented(&mut self, hooks: &mut Hooks, budget: u64) -> Self::Exit;
}

/// Runs `executor` for at most `budget` instructions, firing what `instr` has enabled.
/// With nothing enabled (or queued) this is the uninstrumented loop, chosen once per call.
pub fn run<E: Executor>(executor: &mut E, instr: &mut Instrumentation, budget: u64) -> E::Exit {
    if !instr.active() {
        return executor.run_plain(Hooks::new(instr), budget);
    }
    instr.apply_pending();
    let start = executor.retired();
    fire!(
        instr,
        &mut executor.view(),
        AfterCpuExecEnter,
        |callback, view| { callback(view) }
    );
    let end = start + budget;
    let hooks = Hooks::new(instr);
    let exit = loop {
        let left = end - executor.retired();
        if !hooks.instr.only_block_start() {
            break executor.run_instrumented(hooks, left);
        }
        // Only block-start callbacks: the uninstrumented loop firing them at each block. It
        // returns at the first block boundary where the registry needs attention, which is
        // taken here before the loop is chosen again.
        if let Some(exit) = executor.run_block_start(hooks, left) {
            break exit;
        }
        if hooks.attend(executor) {
            break executor.stopped();
        }
    };
    let ran = executor.retired() != start;
    fire!(
        &mut hooks.instr,
        &mut executor.view(),
        BeforeCpuExecExit,
        |callback, view| { callback(view, ran) }
    );
    exit
}

/// Fires a machine-level kind whose callbacks take only the CPU (`after_machine_init`,
/// `top_loop`, `after_loadvm`).
pub(crate) fn fire_cpu(instr: &mut Instrumentation, cpu: &mut dyn CpuView, kind: CallbackKind) {
    if !instr.has(kind) {
        return;
    }
    for callback in instr.enabled(kind) {
        match callback {
            Callback::AfterMachineInit(f) | Callback::TopLoop(f) | Callback::AfterLoadvm(f) => {
                f(&mut *cpu);
            }
            _ => {}
        }
    }
    if cpu.take_stop() {
        instr.request_stop();
    }
}

/// Fires a kind whose callbacks take nothing (`main_loop_wait`, `pre_shutdown`,
/// `before_loadvm`).
pub(crate) fn fire_plain(instr: &mut Instrumentation, kind: CallbackKind) {
    if !instr.has(kind) {
        return;
    }
    for callback in instr.enabled(kind) {
        match callback {
            Callback::MainLoopWait(f) | Callback::PreShutdown(f) | Callback::BeforeLoadvm(f) => f(),
            _ => {}
        }
    }
}

/// The replay-time serial callbacks for `events`, in order.
pub(crate) fn fire_serial(
    instr: &mut Instrumentation,
    cpu: &mut dyn CpuView,
    at: SerialAddresses,
    events: &[SerialEvent],
) {
    for &event in events {
        match event {
            SerialEvent::Receive(value) => {
                fire!(instr, &mut *cpu, ReplaySerialReceive, |cb, view| cb(
                    view, at.fifo, value
                ));
            }
            SerialEvent::Read(value) => {
                fire!(instr, &mut *cpu, ReplaySerialRead, |cb, view| cb(
                    view,
                    at.fifo,
                    at.data_register,
                    value
                ));
            }
            SerialEvent::Write(value) => {
                fire!(instr, &mut *cpu, ReplaySerialWrite, |cb, view| cb(
                    view,
                    at.fifo,
                    at.data_register,
                    value
                ));
            }
            SerialEvent::Send(value) => {
                fire!(instr, &mut *cpu, ReplaySerialSend, |cb, view| cb(
                    view, at.fifo, value
                ));
            }
        }
    }
}
