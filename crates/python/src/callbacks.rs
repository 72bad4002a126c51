//! Python functions as PANDA callbacks: how each callback type's arguments become a
//! Python call and its return value comes back ([`make_callback`], [`make_hook`]), the
//! reusable argument objects every call shares ([`CallContext`]), and putting the
//! registered functions into a machine's registry ([`install`]).

use std::cell::{Cell, OnceCell};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;

use pandare_osi::{Kernel, Profile};

use pandare_core::instrument::{
    AddressHook, BlockInfo, Callback, CallbackKind, GuestCpu, HookFn, HookPoint, Instrumentation,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::cpu_state::{CpuState, TranslationBlock};
use crate::plugins;
use crate::shared::{lock, Shared};
/// A registered Python callback.
pub(crate) struct Spec {
    pub(crate) name: String,
    pub(crate) kind: CallbackKind,
    pub(crate) function: Py<PyAny>,
    pub(crate) enabled: bool,
    pub(crate) forever: bool,
    pub(crate) hook: Option<HookFilter>,
    /// PyPANDA's `procname=`: fire only while the process of this name runs.
    pub(crate) procname: Option<Vec<u8>>,
}

/// Whether the running process is the one a `procname=` callback waits for. Checked in
/// Rust before any Python runs: the running task is read from the CPU, and its name
/// (`comm`) from kernel memory. In user mode the answer is kept for the (task, address
/// space) pair, which only an `execve` (a new address space) or a task switch changes;
/// in kernel mode the name is read each time (`execve` renames the task after switching
/// address spaces).
pub(crate) struct ProcFilter {
    /// The name as the kernel keeps it: at most 15 bytes.
    name: Vec<u8>,
    profile: Arc<Profile>,
    /// Built at the first call (it needs the CPU's architecture); `None` when the guest
    /// has no Linux facts or the profile no `task_struct.comm`.
    kernel: OnceCell<Option<(Kernel, u64)>>,
    /// `(task, asid)` → matched, for user mode.
    cached: Cell<Option<(u64, u64, bool)>>,
}

impl ProcFilter {
    pub(crate) fn new(name: &[u8], profile: Arc<Profile>) -> ProcFilter {
        ProcFilter {
            name: name[..name.len().min(15)].to_vec(),
            profile,
            kernel: OnceCell::new(),
            cached: Cell::new(None),
        }
    }

    /// Whether the process named `self.name` runs on `cpu` now.
    pub(crate) fn allows(&self, cpu: &mut dyn GuestCpu) -> bool {
        let Some((kernel, comm)) = self
            .kernel
            .get_or_init(|| {
                let kernel = Kernel::new(Arc::clone(&self.profile), &*cpu).ok()?;
                let comm = self.profile.offset("task_struct", "comm").ok()?;
                Some((kernel, comm))
            })
            .as_ref()
        else {
            return false;
        };
        let Ok(task) = kernel.current_task(cpu) else {
            return false;
        };
        let user = !cpu.in_kernel_mode();
        let asid = cpu.asid();
        if user {
            if let Some((cached_task, cached_asid, matched)) = self.cached.get() {
                if cached_task == task && cached_asid == asid {
                    return matched;
                }
            }
        }
        let mut name = [0u8; 16];
        if cpu
            .read_memory(task.wrapping_add(*comm), &mut name)
            .is_err()
        {
            return false;
        }
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        let matched = name[..end] == self.name[..];
        if user {
            self.cached.set(Some((task, asid, matched)));
        }
        matched
    }
}

/// A callback's view of its run's [`CallContext`], with its `procname=` filter: `call`
/// does nothing (and returns `None`, the "no opinion" answer) while another process runs.
pub(crate) struct Gate {
    ctx: Arc<CallContext>,
    filter: Option<ProcFilter>,
}

impl std::ops::Deref for Gate {
    type Target = CallContext;

    fn deref(&self) -> &CallContext {
        &self.ctx
    }
}

impl Gate {
    pub(crate) fn new(ctx: Arc<CallContext>, filter: Option<ProcFilter>) -> Gate {
        Gate { ctx, filter }
    }

    /// [`CallContext::call`], when the filter allows it.
    pub(crate) fn call<R>(
        &self,
        cpu: &mut dyn GuestCpu,
        f: impl FnOnce(Python<'_>, &Py<CpuState>, &Py<TranslationBlock>) -> PyResult<R>,
    ) -> Option<R> {
        if let Some(filter) = &self.filter {
            if !filter.allows(cpu) {
                return None;
            }
        }
        self.ctx.call(cpu, f)
    }
}

/// Which blocks a `@panda.hook` fires for.
#[derive(Clone, Copy)]
pub(crate) struct HookFilter {
    pub(crate) address: u64,
    pub(crate) kernel: Option<bool>,
    pub(crate) asid: Option<u64>,
}

/// What every Python callback of a run shares: the reusable argument objects.
pub(crate) struct CallContext {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cpu: Py<CpuState>,
    pub(crate) tb: Py<TranslationBlock>,
    /// `(cpu, tb)`, the arguments of every block-level call: made once, so a call
    /// allocates nothing (a tuple is immutable, so a callee that keeps it sees no change).
    pub(crate) block_args: Py<PyTuple>,
    /// `(cpu, pc)`, reused by the calls that take a pc while nobody else holds it (see
    /// [`CallContext::call_with_pc`]).
    pub(crate) pc_args: Py<PyTuple>,
}

impl CallContext {
    pub(crate) fn new(
        py: Python<'_>,
        shared: &Arc<Shared>,
        cpu: Py<CpuState>,
    ) -> PyResult<Arc<Self>> {
        let tb = Py::new(py, TranslationBlock::default())?;
        let block_args = PyTuple::new(
            py,
            [cpu.clone_ref(py).into_any(), tb.clone_ref(py).into_any()],
        )?
        .unbind();
        let pc_args = PyTuple::new(py, [cpu.clone_ref(py).into_any(), py.None()])?.unbind();
        Ok(Arc::new(CallContext {
            shared: Arc::clone(shared),
            cpu,
            tb,
            block_args,
            pc_args,
        }))
    }

    /// Calls `f(cpu, pc)`. While this context holds the only reference to its `(cpu, pc)`
    /// tuple, the tuple is reused with the new pc (CPython allows changing a tuple nobody
    /// else can see, and a call does not keep its argument tuple: the callee's frame has
    /// its own references), which saves an allocation per call; a callee that kept the
    /// tuple (`*args`) is never shown a change, as later calls then build their own.
    pub(crate) fn call_with_pc<'py>(
        &self,
        py: Python<'py>,
        f: &Py<PyAny>,
        pc: u64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let args = self.pc_args.bind(py);
        // SAFETY: we hold the GIL; `args` is a live tuple of length 2. `PyTuple_SetItem`
        // steals the new int and releases the old item; it is only called while the
        // reference count shows no other holder.
        unsafe {
            if pyo3::ffi::Py_REFCNT(args.as_ptr()) == 1 {
                let int = pyo3::ffi::PyLong_FromUnsignedLongLong(pc);
                if int.is_null() {
                    return Err(PyErr::fetch(py));
                }
                if pyo3::ffi::PyTuple_SetItem(args.as_ptr(), 1, int) != 0 {
                    return Err(PyErr::fetch(py));
                }
                return f.bind(py).call1(args);
            }
        }
        f.bind(py).call1((self.cpu.bind(py), pc))
    }

    /// Calls into Python with `cpu` lent to the `CPUState` object. An exception stops the
    /// run and is kept for `run()` to raise; later calls are skipped.
    pub(crate) fn call<R>(
        &self,
        cpu: &mut dyn GuestCpu,
        f: impl FnOnce(Python<'_>, &Py<CpuState>, &Py<TranslationBlock>) -> PyResult<R>,
    ) -> Option<R> {
        if self.shared.failed.load(Ordering::Acquire) {
            return None;
        }
        let result = Python::attach(|py| {
            let state = self.cpu.get();
            // SAFETY: only the lifetime is erased; the pointer is withdrawn below, before
            // `cpu` goes out of scope (see `CpuState::lent`).
            let mut pointer: *mut (dyn GuestCpu + 'static) =
                unsafe { std::mem::transmute::<*mut (dyn GuestCpu + '_), _>(cpu as *mut _) };
            // A callback nested in this one (through a CPU access) restores this one's.
            // Load and store, not `swap`: only this thread writes, and a swap is a locked
            // instruction (a few ns per call).
            let outer = state.lent.load(Ordering::Relaxed);
            state.lent.store(&mut pointer, Ordering::Relaxed);
            let result = f(py, &self.cpu, &self.tb);
            state.lent.store(outer, Ordering::Relaxed);
            result.map_err(|error| {
                self.shared.fail(error);
            })
        });
        match result {
            Ok(value) => Some(value),
            Err(()) => {
                cpu.request_stop();
                None
            }
        }
    }

    pub(crate) fn block(&self, block: &BlockInfo) {
        let tb = self.tb.get();
        tb.pc.store(block.pc, Ordering::Relaxed);
        tb.size.store(block.size, Ordering::Relaxed);
        tb.icount.store(block.instruction_count, Ordering::Relaxed);
    }
}

pub(crate) fn truthy(value: &Bound<'_, PyAny>) -> bool {
    !value.is_none() && value.is_truthy().unwrap_or(false)
}

pub(crate) fn int_or(value: &Bound<'_, PyAny>, default: u64) -> u64 {
    if value.is_none() {
        return default;
    }
    value
        .extract::<u64>()
        .or_else(|_| value.extract::<i64>().map(|v| v as u64))
        .unwrap_or(default)
}

/// The core address hook behind a `@panda.hook`: `f(cpu, tb)` (the Python side adds the
/// hook object) each time execution reaches the address, mid-block addresses included.
pub(crate) fn make_hook(
    kind: CallbackKind,
    filter: HookFilter,
    f: Py<PyAny>,
    ctx: Gate,
) -> Result<(AddressHook, HookFn), String> {
    let point = HookPoint::from_kind(kind).map_err(|error| error.to_string())?;
    let hook = AddressHook {
        address: filter.address,
        asid: filter.asid,
        kernel: filter.kernel,
        point,
    };
    let callback: HookFn = Box::new(move |cpu, call| {
        ctx.block(&call.block);
        ctx.call(cpu, |py, _, _| f.call1(py, &ctx.block_args).map(drop));
    });
    Ok((hook, callback))
}

/// The `procname=` filter for `procname` (none without one), or why it cannot be had (no
/// kernel profile).
pub(crate) fn proc_filter(
    shared: &Shared,
    procname: Option<&[u8]>,
) -> PyResult<Option<ProcFilter>> {
    let Some(name) = procname else {
        return Ok(None);
    };
    let profile = lock(&shared.plugins).kernel_profile().map_err(|error| {
        PyValueError::new_err(format!("procname= needs OS introspection: {error}"))
    })?;
    Ok(Some(ProcFilter::new(name, profile)))
}

/// Registers spec-like `(name, kind, hook, function)` in `instrumentation`: an address hook
/// when `hook` is set, a callback otherwise; `procname` filters it to one process.
#[allow(clippy::too_many_arguments)]
pub(crate) fn register_in(
    instrumentation: &mut Instrumentation,
    name: &str,
    kind: CallbackKind,
    hook: Option<HookFilter>,
    procname: Option<&[u8]>,
    f: Py<PyAny>,
    ctx: Arc<CallContext>,
) -> PyResult<()> {
    let gate = Gate::new(Arc::clone(&ctx), proc_filter(&ctx.shared, procname)?);
    let result = match hook {
        Some(filter) => {
            let (hook, callback) =
                make_hook(kind, filter, f, gate).map_err(PyValueError::new_err)?;
            instrumentation.add_hook(name, hook, callback)
        }
        None => {
            let callback = make_callback(kind, f, gate).map_err(PyValueError::new_err)?;
            instrumentation.register(name, callback)
        }
    };
    result.map_err(|error| PyValueError::new_err(error.to_string()))
}

/// Wraps Python function `f` as a callback of `kind`, with PANDA's arguments and return
/// meaning.
pub(crate) fn make_callback(
    kind: CallbackKind,
    f: Py<PyAny>,
    ctx: Gate,
) -> Result<Callback, String> {
    use CallbackKind as K;
    if ctx.filter.is_some()
        && matches!(
            kind,
            K::BeforeLoadvm | K::MainLoopWait | K::PreShutdown | K::Monitor
        )
    {
        return Err(format!(
            "callback type {} has no CPU, so procname= cannot apply to it",
            kind.name()
        ));
    }
    macro_rules! block_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, block| {
                ctx.block(block);
                ctx.call(cpu, |py, _, _| f.call1(py, &ctx.block_args).map(drop));
            }))
        };
    }
    macro_rules! pc_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, pc| {
                ctx.call(cpu, |py, _, _| ctx.call_with_pc(py, &f, pc).map(drop));
            }))
        };
    }
    macro_rules! pc_bool_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, pc| {
                ctx.call(cpu, |py, _, _| Ok(truthy(&ctx.call_with_pc(py, &f, pc)?)))
                    .unwrap_or(false)
            }))
        };
    }
    macro_rules! mem_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, pc, addr, size| {
                ctx.call(cpu, |py, c, _| f.call1(py, (c, pc, addr, size)).map(drop));
            }))
        };
    }
    macro_rules! mem_data_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, pc, addr, size, data| {
                ctx.call(cpu, |py, c, _| {
                    let buf = PyBytes::new(py, data);
                    f.call1(py, (c, pc, addr, size, buf)).map(drop)
                });
            }))
        };
    }
    macro_rules! mmio_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, paddr, vaddr, size, value| {
                let old = *value;
                if let Some(new) = ctx.call(cpu, |py, c, _| {
                    Ok(int_or(
                        f.call1(py, (c, paddr, vaddr, size, old))?.bind(py),
                        old,
                    ))
                }) {
                    *value = new;
                }
            }))
        };
    }
    macro_rules! serial_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, fifo, value| {
                ctx.call(cpu, |py, c, _| f.call1(py, (c, fifo, value)).map(drop));
            }))
        };
    }
    macro_rules! serial_port_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu, fifo, port, value| {
                ctx.call(cpu, |py, c, _| {
                    f.call1(py, (c, fifo, port, value)).map(drop)
                });
            }))
        };
    }
    macro_rules! cpu_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move |cpu| {
                ctx.call(cpu, |py, c, _| f.call1(py, (c,)).map(drop));
            }))
        };
    }
    macro_rules! plain_cb {
        ($variant:ident) => {
            Callback::$variant(Box::new(move || {
                if ctx.shared.failed.load(Ordering::Acquire) {
                    return;
                }
                Python::attach(|py| {
                    if let Err(error) = f.call0(py) {
                        ctx.shared.fail(error);
                    }
                });
            }))
        };
    }
    Ok(match kind {
        K::BeforeBlockTranslate => pc_cb!(BeforeBlockTranslate),
        K::AfterBlockTranslate => block_cb!(AfterBlockTranslate),
        K::BeforeBlockExecInvalidateOpt => {
            Callback::BeforeBlockExecInvalidateOpt(Box::new(move |cpu, block| {
                ctx.block(block);
                ctx.call(cpu, |py, c, t| Ok(truthy(f.call1(py, (c, t))?.bind(py))))
                    .unwrap_or(false)
            }))
        }
        K::BeforeBlockExec => block_cb!(BeforeBlockExec),
        K::AfterBlockExec => Callback::AfterBlockExec(Box::new(move |cpu, block, exit| {
            ctx.block(block);
            ctx.call(cpu, |py, c, t| f.call1(py, (c, t, exit)).map(drop));
        })),
        K::InsnTranslate => pc_bool_cb!(InsnTranslate),
        K::InsnExec => pc_cb!(InsnExec),
        K::AfterInsnTranslate => pc_bool_cb!(AfterInsnTranslate),
        K::AfterInsnExec => pc_cb!(AfterInsnExec),
        K::VirtMemBeforeRead => mem_cb!(VirtMemBeforeRead),
        K::PhysMemBeforeRead => mem_cb!(PhysMemBeforeRead),
        K::VirtMemBeforeWrite => mem_data_cb!(VirtMemBeforeWrite),
        K::PhysMemBeforeWrite => mem_data_cb!(PhysMemBeforeWrite),
        K::VirtMemAfterRead => mem_data_cb!(VirtMemAfterRead),
        K::VirtMemAfterWrite => mem_data_cb!(VirtMemAfterWrite),
        K::PhysMemAfterRead => mem_data_cb!(PhysMemAfterRead),
        K::PhysMemAfterWrite => mem_data_cb!(PhysMemAfterWrite),
        K::MmioAfterRead => mmio_cb!(MmioAfterRead),
        K::MmioBeforeWrite => mmio_cb!(MmioBeforeWrite),
        K::GuestHypercall => Callback::GuestHypercall(Box::new(move |cpu| {
            ctx.call(cpu, |py, c, _| Ok(truthy(f.call1(py, (c,))?.bind(py))))
                .unwrap_or(false)
        })),
        K::CpuRestoreState => block_cb!(CpuRestoreState),
        K::BeforeLoadvm => plain_cb!(BeforeLoadvm),
        K::AsidChanged => Callback::AsidChanged(Box::new(move |cpu, old, new| {
            ctx.call(cpu, |py, c, _| {
                Ok(truthy(f.call1(py, (c, old, new))?.bind(py)))
            })
            .unwrap_or(false)
        })),
        K::AfterCpuExecEnter => cpu_cb!(AfterCpuExecEnter),
        K::BeforeCpuExecExit => Callback::BeforeCpuExecExit(Box::new(move |cpu, ran| {
            ctx.call(cpu, |py, c, _| f.call1(py, (c, ran)).map(drop));
        })),
        K::AfterMachineInit => cpu_cb!(AfterMachineInit),
        K::AfterLoadvm => cpu_cb!(AfterLoadvm),
        K::TopLoop => cpu_cb!(TopLoop),
        K::MainLoopWait => plain_cb!(MainLoopWait),
        K::PreShutdown => plain_cb!(PreShutdown),
        K::UnassignedIoRead => {
            Callback::UnassignedIoRead(Box::new(move |cpu, pc, addr, size, value| {
                let old = *value;
                match ctx.call(cpu, |py, c, _| {
                    let result = f.call1(py, (c, pc, addr, size, old))?;
                    let result = result.bind(py);
                    Ok(
                        if result.is_none() || result.extract::<bool>().is_ok_and(|b| !b) {
                            None
                        } else {
                            Some(int_or(result, old))
                        },
                    )
                }) {
                    Some(Some(new)) => {
                        *value = new;
                        true
                    }
                    _ => false,
                }
            }))
        }
        K::UnassignedIoWrite => {
            Callback::UnassignedIoWrite(Box::new(move |cpu, pc, addr, size, value| {
                ctx.call(cpu, |py, c, _| {
                    Ok(truthy(f.call1(py, (c, pc, addr, size, value))?.bind(py)))
                })
                .unwrap_or(false)
            }))
        }
        K::BeforeHandleException | K::BeforeHandleInterrupt => {
            let wrap = move |cpu: &mut dyn GuestCpu, index: i32| -> i32 {
                ctx.call(cpu, |py, c, _| {
                    let result = f.call1(py, (c, index))?;
                    let result = result.bind(py);
                    Ok(if result.is_none() {
                        index
                    } else {
                        result.extract::<i32>().unwrap_or(index)
                    })
                })
                .unwrap_or(index)
            };
            if kind == K::BeforeHandleException {
                Callback::BeforeHandleException(Box::new(wrap))
            } else {
                Callback::BeforeHandleInterrupt(Box::new(wrap))
            }
        }
        K::Monitor => Callback::Monitor(Box::new(move |command| {
            if ctx.shared.failed.load(Ordering::Acquire) {
                return None;
            }
            // PANDA's `(Monitor *mon, const char *cmd)`: there is no monitor object, so
            // `mon` is None. A string return is printed; another true value handles the
            // command silently.
            Python::attach(|py| match f.call1(py, (py.None(), command)) {
                Ok(result) => {
                    let result = result.bind(py);
                    match result.extract::<String>() {
                        Ok(text) => Some(text),
                        Err(_) => truthy(result).then(String::new),
                    }
                }
                Err(error) => {
                    ctx.shared.fail(error);
                    None
                }
            })
        })),
        K::StartBlockExec => block_cb!(StartBlockExec),
        K::EndBlockExec => block_cb!(EndBlockExec),
        K::ReplaySerialReceive => serial_cb!(ReplaySerialReceive),
        K::ReplaySerialSend => serial_cb!(ReplaySerialSend),
        K::ReplaySerialRead => serial_port_cb!(ReplaySerialRead),
        K::ReplaySerialWrite => serial_port_cb!(ReplaySerialWrite),
        other => {
            return Err(match other.refusal() {
                Some(reason) => {
                    format!("callback type {} is not available: {reason}", other.name())
                }
                None => format!(
                    "callback type {} is not available from Python yet",
                    other.name()
                ),
            })
        }
    })
}

/// Puts every registered Python callback into `instrumentation` (replacing what was
/// there), and makes it the target of changes during the run.
pub(crate) fn install(
    shared: &Arc<Shared>,
    py: Python<'_>,
    instrumentation: &mut Instrumentation,
) -> PyResult<()> {
    let cpu = Py::new(
        py,
        CpuState {
            lent: AtomicPtr::new(std::ptr::null_mut()),
            shared: Arc::clone(shared),
        },
    )?;
    let ctx = CallContext::new(py, shared, cpu)?;
    for (name, _, _) in instrumentation.list() {
        let _ = instrumentation.delete(&name);
    }
    for spec in lock(&shared.callbacks).iter() {
        register_in(
            instrumentation,
            &spec.name,
            spec.kind,
            spec.hook,
            spec.procname.as_deref(),
            spec.function.clone_ref(py),
            Arc::clone(&ctx),
        )?;
        if spec.forever {
            let _ = instrumentation.disable_forever(&spec.name);
        } else if !spec.enabled {
            let _ = instrumentation.disable(&spec.name);
        }
    }
    *lock(&shared.controller) = Some(instrumentation.controller());
    *lock(&shared.context) = Some(ctx);
    plugins::attach(shared, instrumentation)
}
