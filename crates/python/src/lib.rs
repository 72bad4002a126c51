//! `pandare._core`: the machine behind the Python package's `Panda` class.
//!
//! One machine thread (DESIGN.md, principle 5): `Core.run()` releases the GIL and runs the
//! guest on the calling thread in virtual-time slices. Other Python threads (the
//! `queue_blocking` thread) post [`Job`]s to a queue and wait on a condition variable; the
//! machine loop takes one job at a time between slices, so nothing on the hot path locks.
//! Jobs that wait for guest output (a command's prompt) stay active while the guest runs.
//! When no run is in progress, a job runs to completion on the caller's thread instead.
//!
//! Between two requests of the blocking thread the guest waits for the next one (up to
//! `HOLD_LIMIT`), so runs driven by a blocking function are repeatable (`Core::hold`).
//!
//! Python callbacks are ordinary entries of the machine's callback registry
//! ([`Instrumentation`]), handed the same reusable `CPUState` and `TranslationBlock` objects
//! (valid during the call) and argument tuples. While Python callbacks exist, each run slice
//! holds the GIL from start to end, so a call's GIL attach is a nested one; the GIL is free
//! between slices (see `step`).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pandare::console::{echo_length, strip_terminal_codes, UNITS_PER_SECOND};
use pandare::monitor::Session;
use pandare::replay;
use pandare::store::SnapshotStore;
use pandare::{Console, Exit, Machine, MachineConfig, SnapshotError};
use pandare_core::instrument::{
    AddressHook, BlockInfo, Callback, CallbackKind, Controller, GuestCpu, HookFn, HookPoint,
    InstrumentError, Instrumentation,
};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use regex::bytes::Regex;

/// Virtual time per run slice between looks at the job queue (2 ms of guest time).
const SLICE: u64 = 2_000_000;
/// How long (host time) the guest waits for the blocking thread's next request after
/// answering one (see `Core::hold`).
const HOLD_LIMIT: Duration = Duration::from_millis(250);
/// How often a waiting run loop checks for Ctrl-C.
const SIGNAL_POLL: Duration = Duration::from_millis(20);
/// How long booting to the prompt may take when the `root` snapshot is made.
const BOOT_LIMIT: u64 = 300 * UNITS_PER_SECOND;
/// Name of the transient callback used to reach the CPU outside callbacks.
const ACCESS_CALLBACK: &str = "__pandare_access";
/// The generic images' snapshot taken at the first prompt.
const ROOT_SNAPSHOT: &str = "root";

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a job failed, mapped to a Python exception class.
#[derive(Debug)]
enum Fail {
    Timeout(String),
    Value(String),
    Runtime(String),
}

impl From<Fail> for PyErr {
    fn from(fail: Fail) -> PyErr {
        match fail {
            Fail::Timeout(text) => PyTimeoutError::new_err(text),
            Fail::Value(text) => PyValueError::new_err(text),
            Fail::Runtime(text) => PyRuntimeError::new_err(text),
        }
    }
}

impl From<InstrumentError> for Fail {
    fn from(error: InstrumentError) -> Fail {
        Fail::Value(error.to_string())
    }
}

type Answer = Result<Box<dyn Any + Send>, Fail>;
type AccessFn = Box<dyn FnOnce(&mut dyn GuestCpu) -> Answer + Send>;

/// What the machine thread is asked to do.
enum Job {
    /// Type `command` and Enter, wait for the prompt, answer the output as text.
    Command {
        command: String,
        limit: Option<u64>,
    },
    /// Type bytes (no Enter).
    Type(Vec<u8>),
    /// Type bytes, keeping the output not yet read (`interact`).
    Input(Vec<u8>),
    /// Answer the guest's output as soon as there is some, or nothing after `limit`
    /// (`interact`).
    Output {
        limit: u64,
    },
    /// Press Enter after `typed`, wait for the prompt, answer the output.
    Finish {
        typed: String,
        limit: Option<u64>,
    },
    /// Wait until the output contains `bytes`; answer the output through them.
    ReadUntil {
        bytes: Vec<u8>,
        limit: Option<u64>,
    },
    Revert(String),
    Snap(String),
    Delvm(String),
    Monitor(String),
    BeginRecord(String),
    EndRecord,
    Access(AccessFn),
}

/// One answer slot: the asking thread waits on it.
#[derive(Default)]
struct Slot {
    answer: Mutex<Option<Answer>>,
    ready: Condvar,
}

impl Slot {
    fn put(&self, answer: Answer) {
        *lock(&self.answer) = Some(answer);
        self.ready.notify_all();
    }

    fn wait(&self) -> Answer {
        let mut answer = lock(&self.answer);
        loop {
            if let Some(answer) = answer.take() {
                return answer;
            }
            answer = self
                .ready
                .wait(answer)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

struct Request {
    job: Job,
    slot: Arc<Slot>,
}

/// A job waiting for guest output.
struct Waiting {
    pattern: Regex,
    /// For prompt waits: the typed command, whose echo is removed from the output.
    echo_of: Option<String>,
    /// Keep the match in the answer (`serial_read_until`).
    keep_match: Option<Vec<u8>>,
    deadline: Option<u64>,
    limit: Option<u64>,
    /// `read_output`: answer whatever output there is as soon as there is some, and
    /// nothing (not a timeout) at the deadline. Idle time then passes in real time.
    any_output: bool,
    slot: Arc<Slot>,
}

/// The guest and everything needed to drive it.
struct Engine {
    session: Session,
    config: MachineConfig,
    generic: Option<String>,
}

// SAFETY: `Box<dyn Machine>` is not `Send` only because the trait does not ask for it: the
// machines `MachineConfig` builds are (checked below), and no echo sink (the console's
// other non-`Send` part) is ever set here. An `Engine` is used by one thread at a time: the
// run loop, or a caller holding `Shared::engine`'s lock.
unsafe impl Send for Engine {}
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<pandare_riscv::VirtMachine>();
};

/// A machine handed to the thread that runs a replay.
struct SendMachine(Box<dyn Machine>);

// SAFETY: as for `Engine`: the machines `MachineConfig` builds are `Send`.
unsafe impl Send for SendMachine {}

impl SendMachine {
    fn machine(&mut self) -> &mut dyn Machine {
        self.0.as_mut()
    }
}

impl Engine {
    fn console(&mut self) -> &mut Console {
        &mut self.session.console
    }
}

/// A registered Python callback.
struct Spec {
    name: String,
    kind: CallbackKind,
    function: Py<PyAny>,
    enabled: bool,
    forever: bool,
    hook: Option<HookFilter>,
}

/// Which blocks a `@panda.hook` fires for.
#[derive(Clone, Copy)]
struct HookFilter {
    address: u64,
    kernel: Option<bool>,
    asid: Option<u64>,
}

/// State shared by the Python objects, the machine thread and the callbacks.
struct Shared {
    /// The guest when no run is in progress (a run owns it meanwhile).
    engine: Mutex<Option<Engine>>,
    requests: Mutex<VecDeque<Request>>,
    /// Signalled (with `requests` locked) when a request is queued, a stop is asked for,
    /// or the blocking thread finishes: what a holding run loop waits for.
    wake: Condvar,
    /// A snapshot `revert_async` asked for, loaded by the run loop between slices.
    pending_revert: Mutex<Option<String>>,
    /// Whether the blocking thread of the current run is still working through its
    /// functions (set by `arm(blocking=True)`, cleared by `blocking_finished()`).
    blocking_alive: AtomicBool,
    running: AtomicBool,
    /// Set by `arm()` just before a run starts, cleared when it ends.
    armed: AtomicBool,
    run_thread: Mutex<Option<ThreadId>>,
    stop: AtomicBool,
    /// A Python exception from a callback (or Ctrl-C) that ends the run.
    failure: Mutex<Option<PyErr>>,
    failed: AtomicBool,
    callbacks: Mutex<Vec<Spec>>,
    /// Whether `callbacks` is non-empty (read by the run loop without the lock).
    python_callbacks: AtomicBool,
    /// During a run: the registry's controller and the callback context.
    controller: Mutex<Option<Controller>>,
    context: Mutex<Option<Arc<CallContext>>>,
    /// Instruction count where the current replay (or recording) started.
    rr_base: AtomicU64,
    /// Last known instruction count (updated between slices).
    instructions: AtomicU64,
    replaying: AtomicBool,
    /// Plugins asked for and loaded (`plugins.rs`).
    plugins: Mutex<plugins::PluginState>,
}

impl Shared {
    fn fail(&self, error: PyErr) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    fn on_machine_thread(&self) -> bool {
        self.running.load(Ordering::Acquire)
            && *lock(&self.run_thread) == Some(std::thread::current().id())
    }

    /// Runs `job`: posted to the machine thread during a run, otherwise right here.
    fn request(&self, py: Python<'_>, job: Job) -> PyResult<Box<dyn Any + Send>> {
        if self.on_machine_thread() {
            return Err(PyRuntimeError::new_err(
                "this call waits for the guest, so it cannot be made from a callback (the \
                 machine would wait for itself); make it from a @panda.queue_blocking function",
            ));
        }
        let answer = py.detach(|| {
            if self.live() {
                let slot = Arc::new(Slot::default());
                lock(&self.requests).push_back(Request {
                    job,
                    slot: Arc::clone(&slot),
                });
                self.wake.notify_all();
                // The run may have ended between the check and the push: the loop answers
                // leftovers when it ends, and so do we here.
                if !self.live() {
                    self.drain_requests("run() has ended");
                }
                slot.wait()
            } else {
                let mut engine = match self.engine.try_lock() {
                    Ok(engine) => engine,
                    Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                    Err(std::sync::TryLockError::WouldBlock) => {
                        return Err(Fail::Runtime(
                            "the machine is busy with another request (a call that waits for \
                             the guest cannot be made from a callback)"
                                .into(),
                        ))
                    }
                };
                match engine.as_mut() {
                    Some(engine) => run_job_now(engine, job, self.holds_gil()),
                    None => Err(Fail::Runtime("the machine is busy".into())),
                }
            }
        });
        if !self.live() && self.failed.swap(false, Ordering::AcqRel) {
            // A callback raised while this job ran the guest outside `run()`.
            if let Some(error) = lock(&self.failure).take() {
                return Err(error);
            }
        }
        answer.map_err(PyErr::from)
    }

    /// Waits up to `most` of real time, less when a request arrives or a stop is asked
    /// for; returns the time waited.
    fn pace(&self, most: Duration) -> Duration {
        let started = Instant::now();
        let requests = lock(&self.requests);
        if requests.is_empty() && !self.stop.load(Ordering::Acquire) {
            let _ = self
                .wake
                .wait_timeout(requests, most)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        started.elapsed()
    }

    /// Wakes a holding run loop (after a stop or the blocking thread's end).
    fn wake(&self) {
        let _requests = lock(&self.requests);
        self.wake.notify_all();
    }

    /// Whether run slices hold the GIL (see [`step`]): while Python callbacks exist.
    fn holds_gil(&self) -> bool {
        self.python_callbacks.load(Ordering::Relaxed)
    }

    /// Records whether Python callbacks exist (after `callbacks` changed).
    fn note_callbacks(&self, callbacks: &[Spec]) {
        self.python_callbacks
            .store(!callbacks.is_empty(), Ordering::Relaxed);
    }

    /// Whether a run is in progress or about to start (requests go to its queue).
    fn live(&self) -> bool {
        self.running.load(Ordering::Acquire) || self.armed.load(Ordering::Acquire)
    }

    fn drain_requests(&self, why: &str) {
        let leftovers: Vec<Request> = lock(&self.requests).drain(..).collect();
        for request in leftovers {
            request.slot.put(Err(Fail::Runtime(format!(
                "{why} before this request was served"
            ))));
        }
    }
}

/// Runs a job to completion on a machine no run loop drives (see [`step`] for `hold_gil`).
fn run_job_now(engine: &mut Engine, job: Job, hold_gil: bool) -> Answer {
    let slot = Arc::new(Slot::default());
    if let Some(mut waiting) = start_job(engine, job, &slot) {
        loop {
            if let Some(answer) = poll_waiting(engine, &mut waiting) {
                return answer;
            }
            step(engine, hold_gil, None)?;
        }
    }
    slot.wait()
}

/// Runs one slice; idle time is skipped to the next timer event, or with `pace`, passes
/// in real time (an interactive console: at most [`SIGNAL_POLL`] per call, less when a
/// request arrives; the clock then moves on by the time waited).
///
/// With `hold_gil` (Python callbacks are registered), the slice runs attached to Python:
/// the GIL is taken once for the slice, so each callback's `Python::attach` is a nested
/// attach (a thread-local counter) instead of a GIL hand-over (`PyGILState_Ensure` and
/// `Release`, most of a call's cost). The GIL is free between slices, where the run loop
/// serves the blocking thread's requests and checks for Ctrl-C; Python code running in a
/// callback also lets other threads in at CPython's switch interval. Nothing in a slice
/// waits for another Python thread, so holding the GIL cannot deadlock.
fn step(engine: &mut Engine, hold_gil: bool, pace: Option<&Shared>) -> Result<(), Fail> {
    let exit = if hold_gil {
        Python::attach(|_| engine.console().run_slice(SLICE))
    } else {
        engine.console().run_slice(SLICE)
    };
    let console = engine.console();
    match exit {
        Exit::BudgetExhausted => Ok(()),
        Exit::Idle => match console.machine().next_event() {
            Some(time) => {
                let now = console.machine().now();
                match pace {
                    Some(shared) => {
                        let gap = time.saturating_sub(now);
                        let most = Duration::from_nanos(
                            gap.saturating_mul(1_000_000_000 / UNITS_PER_SECOND),
                        );
                        let waited = shared.pace(most.min(SIGNAL_POLL)).as_nanos() as u64;
                        let advance = waited.saturating_mul(UNITS_PER_SECOND / 1_000_000_000);
                        console.skip_to(now + advance.clamp(1, gap.max(1)));
                    }
                    None => console.skip_to(time),
                }
                Ok(())
            }
            None => Err(Fail::Runtime(
                "the guest is idle with no timer armed and no input: it can never wake up".into(),
            )),
        },
        Exit::Shutdown(kind) => Err(Fail::Runtime(format!("the guest stopped ({kind:?})"))),
        Exit::UnhandledTrap { cause, pc, value } => Err(Fail::Runtime(format!(
            "the guest crashed: unhandled trap, cause {cause:#x} at pc {pc:#x} (value {value:#x})"
        ))),
    }
}

fn prompt_wait(
    engine: &mut Engine,
    echo_of: String,
    limit: Option<u64>,
    slot: &Arc<Slot>,
) -> Waiting {
    let console = engine.console();
    let deadline = limit.map(|limit| console.machine().now().saturating_add(limit));
    Waiting {
        pattern: console.prompt().clone(),
        echo_of: Some(echo_of),
        keep_match: None,
        deadline,
        limit,
        any_output: false,
        slot: Arc::clone(slot),
    }
}

/// Starts a job: answers it at once, or returns what it waits for.
fn start_job(engine: &mut Engine, job: Job, slot: &Arc<Slot>) -> Option<Waiting> {
    let answer: Answer = match job {
        Job::Command { command, limit } => {
            let console = engine.console();
            console.discard_output();
            console.type_bytes(command.as_bytes());
            console.type_bytes(b"\n");
            return Some(prompt_wait(engine, command, limit, slot));
        }
        Job::Type(bytes) => {
            let console = engine.console();
            console.discard_output();
            console.type_bytes(&bytes);
            Ok(Box::new(()))
        }
        Job::Input(bytes) => {
            engine.console().type_bytes(&bytes);
            Ok(Box::new(()))
        }
        Job::Output { limit } => {
            let deadline = engine.console().machine().now().saturating_add(limit);
            return Some(Waiting {
                pattern: Regex::new(r"\z").expect("a valid pattern"),
                echo_of: None,
                keep_match: None,
                deadline: Some(deadline),
                limit: Some(limit),
                any_output: true,
                slot: Arc::clone(slot),
            });
        }
        Job::Finish { typed, limit } => {
            engine.console().type_bytes(b"\n");
            return Some(prompt_wait(engine, typed, limit, slot));
        }
        Job::ReadUntil { bytes, limit } => {
            let console = engine.console();
            let deadline = limit.map(|limit| console.machine().now().saturating_add(limit));
            return Some(Waiting {
                pattern: Regex::new(&regex::escape(&String::from_utf8_lossy(&bytes)))
                    .expect("an escaped pattern is valid"),
                echo_of: None,
                keep_match: Some(bytes),
                deadline,
                limit,
                any_output: false,
                slot: Arc::clone(slot),
            });
        }
        Job::Revert(name) => revert(engine, &name).map(|()| Box::new(()) as Box<dyn Any + Send>),
        Job::Snap(name) => {
            let snapshot = engine.console().save_snapshot();
            engine
                .session
                .store
                .save(&name, snapshot)
                .map(|()| Box::new(()) as Box<dyn Any + Send>)
                .map_err(|error| Fail::Value(error.to_string()))
        }
        Job::Delvm(name) => match engine.session.store.delete(&name) {
            Ok(true) => Ok(Box::new(())),
            Ok(false) => Err(Fail::Value(format!("there is no snapshot named '{name}'"))),
            Err(error) => Err(Fail::Value(error.to_string())),
        },
        Job::Monitor(command) => Ok(Box::new(engine.session.monitor(&command).0)),
        Job::BeginRecord(name) => {
            engine.session.begin_record(&name);
            Ok(Box::new(()))
        }
        Job::EndRecord => match engine.session.end_record() {
            Ok(Some(path)) => Ok(Box::new(path.display().to_string())),
            Ok(None) => Err(Fail::Runtime("no recording is running".into())),
            Err(error) => Err(Fail::Runtime(error.to_string())),
        },
        Job::Access(access) => with_cpu(engine.console().machine(), access),
    };
    slot.put(answer);
    None
}

/// Checks whether a waiting job is done (or out of time); answers it if so.
fn poll_waiting(engine: &mut Engine, waiting: &mut Waiting) -> Option<Answer> {
    let console = engine.console();
    if waiting.any_output {
        // `\z` matches at the end: everything pending is "before" it.
        let bytes = console.poll_for(&waiting.pattern).unwrap_or_default();
        let now = console.machine().now();
        return (!bytes.is_empty() || waiting.deadline.is_some_and(|deadline| now >= deadline))
            .then(|| Ok(Box::new(bytes) as Box<dyn Any + Send>));
    }
    if let Some(before) = console.poll_for(&waiting.pattern) {
        let answer: Answer = match (&waiting.echo_of, &waiting.keep_match) {
            (Some(command), _) => {
                let text = strip_terminal_codes(&before);
                let output = &text[echo_length(&text, command)..];
                Ok(Box::new(output.trim_end_matches('\n').to_string()))
            }
            (None, Some(matched)) => {
                let mut bytes = before;
                bytes.extend_from_slice(matched);
                Ok(Box::new(bytes))
            }
            (None, None) => Ok(Box::new(before)),
        };
        return Some(answer);
    }
    let now = console.machine().now();
    if waiting.deadline.is_some_and(|deadline| now >= deadline) {
        let seconds = waiting.limit.unwrap_or(0) as f64 / UNITS_PER_SECOND as f64;
        let what = match &waiting.echo_of {
            Some(command) => format!("{command:?} did not finish (no prompt)"),
            None => format!("{:?} did not appear", waiting.pattern.as_str()),
        };
        return Some(Err(Fail::Timeout(format!(
            "{what} within {seconds} s of virtual (guest) time; the guest is still running it"
        ))));
    }
    None
}

/// Loads snapshot `name`; `root` of a generic image is made first when missing.
fn revert(engine: &mut Engine, name: &str) -> Result<(), Fail> {
    if name == ROOT_SNAPSHOT && engine.generic.is_some() && !engine.session.store.exists(name) {
        make_root(engine)?;
    }
    let snapshot = engine
        .session
        .store
        .load(name)
        .map_err(|error| Fail::Value(error.to_string()))?;
    match engine.console().load_snapshot(&snapshot) {
        // A generic image's root snapshot from another pandare is made again.
        Err(SnapshotError::StateVersion { .. })
            if name == ROOT_SNAPSHOT && engine.generic.is_some() =>
        {
            make_root(engine)?;
            let snapshot = engine
                .session
                .store
                .load(name)
                .map_err(|error| Fail::Value(error.to_string()))?;
            engine.console().load_snapshot(&snapshot)
        }
        result => result,
    }
    .map_err(|error| Fail::Value(error.to_string()))
}

/// Boots a fresh machine to the prompt and saves it as `root`.
fn make_root(engine: &mut Engine) -> Result<(), Fail> {
    let machine = engine
        .config
        .build()
        .map_err(|error| Fail::Runtime(error.to_string()))?;
    let prompt = engine.console().prompt().clone();
    let mut console = Console::new(machine, prompt);
    console
        .wait_for_prompt(BOOT_LIMIT)
        .map_err(|error| Fail::Runtime(format!("booting to make the root snapshot: {error}")))?;
    let snapshot = console.save_snapshot();
    engine
        .session
        .store
        .save(ROOT_SNAPSHOT, snapshot)
        .map_err(|error| Fail::Runtime(error.to_string()))
}

/// Runs `access` with the machine's CPU, outside any callback: through a transient
/// `top_loop` callback and a run of zero instructions (the registry is the only way to the
/// CPU that the `Machine` trait offers).
fn with_cpu(machine: &mut dyn Machine, access: AccessFn) -> Answer {
    let cell: Arc<Mutex<(Option<AccessFn>, Option<Answer>)>> =
        Arc::new(Mutex::new((Some(access), None)));
    let inner = Arc::clone(&cell);
    let instrumentation = machine.instrumentation();
    let _ = instrumentation.delete(ACCESS_CALLBACK);
    instrumentation.register(
        ACCESS_CALLBACK,
        Callback::TopLoop(Box::new(move |cpu| {
            let mut cell = lock(&inner);
            if let Some(access) = cell.0.take() {
                cell.1 = Some(access(cpu));
            }
        })),
    )?;
    machine.run(0);
    let _ = machine.instrumentation().delete(ACCESS_CALLBACK);
    let answer = lock(&cell).1.take();
    answer.unwrap_or_else(|| Err(Fail::Runtime("the machine has stopped".into())))
}

/// What every Python callback of a run shares: the reusable argument objects.
struct CallContext {
    shared: Arc<Shared>,
    cpu: Py<CpuState>,
    tb: Py<TranslationBlock>,
    /// `(cpu, tb)`, the arguments of every block-level call: made once, so a call
    /// allocates nothing (a tuple is immutable, so a callee that keeps it sees no change).
    block_args: Py<PyTuple>,
    /// `(cpu, pc)`, reused by the calls that take a pc while nobody else holds it (see
    /// [`CallContext::call_with_pc`]).
    pc_args: Py<PyTuple>,
}

impl CallContext {
    fn new(py: Python<'_>, shared: &Arc<Shared>, cpu: Py<CpuState>) -> PyResult<Arc<Self>> {
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
    fn call_with_pc<'py>(
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
    fn call<R>(
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

    fn block(&self, block: &BlockInfo) {
        let tb = self.tb.get();
        tb.pc.store(block.pc, Ordering::Relaxed);
        tb.size.store(block.size, Ordering::Relaxed);
        tb.icount.store(block.instruction_count, Ordering::Relaxed);
    }
}

fn truthy(value: &Bound<'_, PyAny>) -> bool {
    !value.is_none() && value.is_truthy().unwrap_or(false)
}

fn int_or(value: &Bound<'_, PyAny>, default: u64) -> u64 {
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
fn make_hook(
    kind: CallbackKind,
    filter: HookFilter,
    f: Py<PyAny>,
    ctx: Arc<CallContext>,
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

/// Registers spec-like `(name, kind, hook, function)` in `instrumentation`: an address hook
/// when `hook` is set, a callback otherwise.
fn register_in(
    instrumentation: &mut Instrumentation,
    name: &str,
    kind: CallbackKind,
    hook: Option<HookFilter>,
    f: Py<PyAny>,
    ctx: Arc<CallContext>,
) -> PyResult<()> {
    let result = match hook {
        Some(filter) => {
            let (hook, callback) =
                make_hook(kind, filter, f, ctx).map_err(PyValueError::new_err)?;
            instrumentation.add_hook(name, hook, callback)
        }
        None => {
            let callback = make_callback(kind, f, ctx).map_err(PyValueError::new_err)?;
            instrumentation.register(name, callback)
        }
    };
    result.map_err(|error| PyValueError::new_err(error.to_string()))
}

/// Wraps Python function `f` as a callback of `kind`, with PANDA's arguments and return
/// meaning.
fn make_callback(
    kind: CallbackKind,
    f: Py<PyAny>,
    ctx: Arc<CallContext>,
) -> Result<Callback, String> {
    use CallbackKind as K;
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
fn install(
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

/// The CPU as callbacks see it (PANDA's `CPUState`). Valid during a callback; outside
/// callbacks (`panda.get_cpu()`), each access is a request to the machine thread.
#[pyclass(frozen, module = "pandare._core", name = "CPUState")]
struct CpuState {
    /// During a callback call: the `&mut dyn GuestCpu` lent to it, as a pointer to the
    /// call's (fat) CPU pointer on the machine thread's stack; null otherwise. Set
    /// and withdrawn only by the machine thread, around the Python call, with the GIL held;
    /// read only with the GIL held. So whoever reads it non-null runs while the machine
    /// thread is parked inside that call (it holds the GIL, or gave it up to the reader in
    /// the middle of Python code): no two threads use the CPU at once.
    lent: AtomicPtr<*mut (dyn GuestCpu + 'static)>,
    shared: Arc<Shared>,
}

impl CpuState {
    fn access<R: Send + 'static>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut dyn GuestCpu) -> Result<R, Fail> + Send + 'static,
    ) -> PyResult<R> {
        let mut lent = self.lent.load(Ordering::Relaxed);
        if lent.is_null() {
            // Another CPU object (`panda.get_cpu()`, which `physical_memory_read` uses, or
            // a callback's CPU kept from an earlier call) used while a callback runs: the
            // CPU lent to that call. Asking the machine thread would wait for itself.
            if let Some(ctx) = lock(&self.shared.context).as_ref() {
                lent = ctx.cpu.get().lent.load(Ordering::Relaxed);
            }
        }
        if !lent.is_null() {
            // SAFETY: non-null only during the callback call (see `CpuState::lent`), and we
            // hold the GIL (`py`), so the machine thread is parked in that call.
            let cpu = unsafe { &mut **lent };
            return f(cpu).map_err(PyErr::from);
        }
        let answer = self.shared.request(
            py,
            Job::Access(Box::new(move |cpu| {
                f(cpu).map(|r| Box::new(r) as Box<dyn Any + Send>)
            })),
        )?;
        Ok(*answer
            .downcast::<R>()
            .expect("the access answers its own type"))
    }
}

fn unmapped(error: InstrumentError) -> Fail {
    Fail::Value(error.to_string())
}

#[pymethods]
impl CpuState {
    /// Program counter.
    #[getter]
    fn pc(&self, py: Python<'_>) -> PyResult<u64> {
        self.access(py, |cpu| Ok(cpu.pc()))
    }

    /// Moves the program counter.
    fn set_pc(&self, py: Python<'_>, pc: u64) -> PyResult<()> {
        self.access(py, move |cpu| {
            cpu.set_pc(pc);
            Ok(())
        })
    }

    /// A register by name (`a0`, `x10`, `sp`, `pc`).
    fn get_reg(&self, py: Python<'_>, name: String) -> PyResult<u64> {
        self.access(py, move |cpu| {
            if name.eq_ignore_ascii_case("pc") {
                return Ok(cpu.pc());
            }
            cpu.register(&name).map_err(|e| Fail::Value(e.to_string()))
        })
    }

    /// Sets a register by name.
    fn set_reg(&self, py: Python<'_>, name: String, value: u64) -> PyResult<()> {
        self.access(py, move |cpu| {
            if name.eq_ignore_ascii_case("pc") {
                cpu.set_pc(value);
                return Ok(());
            }
            cpu.set_register(&name, value)
                .map_err(|e| Fail::Value(e.to_string()))
        })
    }

    /// Reads guest virtual memory.
    fn read_memory<'py>(
        &self,
        py: Python<'py>,
        addr: u64,
        length: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.access(py, move |cpu| {
            let mut buffer = vec![0; length];
            cpu.read_memory(addr, &mut buffer).map_err(unmapped)?;
            Ok(buffer)
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Writes guest virtual memory.
    fn write_memory(&self, py: Python<'_>, addr: u64, data: Vec<u8>) -> PyResult<()> {
        self.access(py, move |cpu| {
            cpu.write_memory(addr, &data).map_err(unmapped)
        })
    }

    /// Reads guest physical memory.
    fn read_physical<'py>(
        &self,
        py: Python<'py>,
        addr: u64,
        length: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.access(py, move |cpu| {
            let mut buffer = vec![0; length];
            cpu.read_physical(addr, &mut buffer).map_err(unmapped)?;
            Ok(buffer)
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Writes guest physical memory.
    fn write_physical(&self, py: Python<'_>, addr: u64, data: Vec<u8>) -> PyResult<()> {
        self.access(py, move |cpu| {
            cpu.write_physical(addr, &data).map_err(unmapped)
        })
    }

    /// The physical address of `addr`, or None when unmapped.
    fn virt_to_phys(&self, py: Python<'_>, addr: u64) -> PyResult<Option<u64>> {
        self.access(py, move |cpu| Ok(cpu.virt_to_phys(addr)))
    }

    /// The address-space identifier.
    fn asid(&self, py: Python<'_>) -> PyResult<u64> {
        self.access(py, |cpu| Ok(cpu.asid()))
    }

    /// Whether the CPU runs in the kernel.
    fn in_kernel_mode(&self, py: Python<'_>) -> PyResult<bool> {
        self.access(py, |cpu| Ok(cpu.in_kernel_mode()))
    }

    /// Instructions retired so far.
    fn instruction_count(&self, py: Python<'_>) -> PyResult<u64> {
        self.access(py, |cpu| Ok(cpu.instruction_count()))
    }

    /// Whether this object is the one lent to a running callback.
    #[getter]
    fn valid(&self) -> bool {
        !self.lent.load(Ordering::Relaxed).is_null()
    }
}

/// The block a callback is about (PANDA's `TranslationBlock`): `pc`, `size`, `icount`.
#[pyclass(frozen, module = "pandare._core", name = "TranslationBlock")]
#[derive(Default)]
struct TranslationBlock {
    pc: AtomicU64,
    size: AtomicU64,
    icount: AtomicU32,
}

#[pymethods]
impl TranslationBlock {
    /// Address of the block's first instruction.
    #[getter]
    fn pc(&self) -> u64 {
        self.pc.load(Ordering::Relaxed)
    }

    /// Size of the block's code in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.size.load(Ordering::Relaxed)
    }

    /// Number of instructions.
    #[getter]
    fn icount(&self) -> u32 {
        self.icount.load(Ordering::Relaxed)
    }

    fn __repr__(&self) -> String {
        format!(
            "TranslationBlock(pc={:#x}, size={}, icount={})",
            self.pc(),
            self.size(),
            self.icount()
        )
    }
}

fn seconds_to_units(seconds: Option<f64>) -> Option<u64> {
    seconds.map(|s| (s.max(0.0) * UNITS_PER_SECOND as f64) as u64)
}

/// The machine, its snapshots and callbacks: what `pandare.Panda` drives.
#[pyclass(frozen, module = "pandare._core")]
struct Core {
    shared: Arc<Shared>,
    blocking_cpu: Py<CpuState>,
}

impl Core {
    fn ask<T: 'static>(&self, py: Python<'_>, job: Job) -> PyResult<T> {
        let answer = self.shared.request(py, job)?;
        Ok(*answer.downcast::<T>().expect("jobs answer their own type"))
    }

    /// The run loop (GIL released).
    fn machine_loop(&self, engine: &mut Engine) {
        let shared = &self.shared;
        let mut waiting: Option<Waiting> = None;
        // After a request is answered, the guest waits for the blocking thread's next one
        // (see `hold`); `held_since` says since when.
        let start_hold = || {
            shared
                .blocking_alive
                .load(Ordering::Acquire)
                .then(Instant::now)
        };
        let mut held_since = start_hold();
        loop {
            if shared.stop.load(Ordering::Acquire) || shared.failed.load(Ordering::Acquire) {
                break;
            }
            let revert_to = lock(&shared.pending_revert).take();
            if let Some(name) = revert_to {
                if let Err(fail) = revert(engine, &name) {
                    shared.fail(fail.into());
                    continue;
                }
                // What a waiting call typed is gone with the guest's past.
                if let Some(current) = waiting.take() {
                    current.slot.put(Err(Fail::Runtime(format!(
                        "the guest was reverted to snapshot {name:?} (revert_async) while \
                         this call waited for its output"
                    ))));
                }
                held_since = start_hold();
                continue;
            }
            if waiting.is_none() {
                let next = lock(&shared.requests).pop_front();
                if let Some(request) = next {
                    held_since = None;
                    waiting = start_job(engine, request.job, &request.slot);
                    if waiting.is_none() {
                        held_since = start_hold();
                    }
                    continue;
                }
            }
            if let Some(current) = waiting.as_mut() {
                let mut answer = poll_waiting(engine, current);
                if answer.is_none() && current.any_output && !lock(&shared.requests).is_empty() {
                    // `read_output` gives way to input typed meanwhile.
                    answer = Some(Ok(Box::new(Vec::<u8>::new())));
                }
                if let Some(answer) = answer {
                    current.slot.put(answer);
                    waiting = None;
                    held_since = start_hold();
                    continue;
                }
            }
            if let Some(since) = held_since {
                if self.hold(since) {
                    continue;
                }
                held_since = None;
            }
            let pace = waiting.as_ref().is_some_and(|current| current.any_output);
            let result = step(engine, shared.holds_gil(), pace.then_some(&**shared));
            shared.instructions.store(
                engine.console().machine().instruction_count(),
                Ordering::Relaxed,
            );
            if let Err(fail) = result {
                if let Some(current) = waiting.take() {
                    current.slot.put(Err(fail));
                }
                // A stopped guest ends the run, as in PANDA.
                break;
            }
            if waiting.is_none() && lock(&shared.requests).is_empty() {
                // Nobody waits for output: don't let it pile up.
                engine.console().discard_output();
            }
            if let Err(error) = Python::attach(|py| py.check_signals()) {
                shared.fail(error);
            }
        }
        if let Some(current) = waiting.take() {
            current.slot.put(Err(Fail::Runtime(
                "run() ended while this request waited".into(),
            )));
        }
    }

    /// Between two requests of the blocking thread, the guest waits for the next one (up to
    /// [`HOLD_LIMIT`] of host time), so the virtual time at which the next command is
    /// typed does not depend on how fast the host wakes the thread up: a blocking function
    /// that only drives the guest gives the same instruction counts on every run. Waits a
    /// little; returns whether to keep holding (false once the limit has passed, or when
    /// the blocking thread has finished).
    fn hold(&self, since: Instant) -> bool {
        let shared = &self.shared;
        let remaining = match HOLD_LIMIT.checked_sub(since.elapsed()) {
            Some(remaining) if shared.blocking_alive.load(Ordering::Acquire) => remaining,
            _ => return false,
        };
        let requests = lock(&shared.requests);
        if requests.is_empty() && !shared.stop.load(Ordering::Acquire) {
            let _ = shared
                .wake
                .wait_timeout(requests, remaining.min(SIGNAL_POLL))
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        } else {
            return true;
        }
        // The lock is released: taking the GIL while holding it could deadlock with a
        // thread that holds the GIL and wants the lock (`end_analysis`).
        if let Err(error) = Python::attach(|py| py.check_signals()) {
            shared.fail(error);
        }
        true
    }

    /// Replays `recording` on `machine` a slice at a time (GIL released), until its end,
    /// `end_replay()`/`end_analysis()`, an exception in a callback, or Ctrl-C. Between
    /// slices it serves CPU and memory requests (`panda.get_cpu()` from another thread)
    /// with the replayed machine; requests that would drive the guest are refused, since a
    /// replay takes no input. Returns the report when the replay reached its end.
    fn replay_loop(
        &self,
        recording: &replay::Recording,
        machine: &mut dyn Machine,
        output: &mut Vec<u8>,
    ) -> Result<Option<replay::ReplayReport>, replay::ReplayError> {
        let shared = &self.shared;
        let mut replayer = replay::Replayer::start(recording, machine)?;
        loop {
            if shared.stop.load(Ordering::Acquire) || shared.failed.load(Ordering::Acquire) {
                return Ok(None);
            }
            if lock(&shared.pending_revert).take().is_some() {
                shared.fail(PyRuntimeError::new_err(
                    "revert_async cannot be used during a replay (a replay follows its recording)",
                ));
                continue;
            }
            let next = lock(&shared.requests).pop_front();
            if let Some(request) = next {
                let answer = match request.job {
                    Job::Access(access) => with_cpu(machine, access),
                    _ => Err(Fail::Runtime(
                        "a replay takes no input: this call cannot be made while a replay runs"
                            .into(),
                    )),
                };
                request.slot.put(answer);
                continue;
            }
            let mut slice = || {
                replayer.run(machine, SLICE, &mut |bytes| {
                    output.extend_from_slice(bytes);
                })
            };
            let progress = if shared.holds_gil() {
                Python::attach(|_| slice())
            } else {
                slice()
            }?;
            shared
                .instructions
                .store(machine.instruction_count(), Ordering::Relaxed);
            if let replay::Progress::Finished(report) = progress {
                return Ok(Some(report));
            }
            if let Err(error) = Python::attach(|py| py.check_signals()) {
                shared.fail(error);
            }
        }
    }

    fn begin_run(&self) -> PyResult<Engine> {
        if self.shared.running.swap(true, Ordering::AcqRel) {
            return Err(PyRuntimeError::new_err("the machine is already running"));
        }
        // Not `lock`: we hold the GIL, and a request running on another thread holds the
        // engine while its slices may wait for the GIL (Python callbacks).
        let engine = match self.shared.engine.try_lock() {
            Ok(mut engine) => engine.take(),
            Err(std::sync::TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        match engine {
            Some(engine) => {
                *lock(&self.shared.run_thread) = Some(std::thread::current().id());
                self.shared.failed.store(false, Ordering::Release);
                *lock(&self.shared.failure) = None;
                Ok(engine)
            }
            None => {
                self.shared.running.store(false, Ordering::Release);
                self.shared.armed.store(false, Ordering::Release);
                Err(PyRuntimeError::new_err(
                    "the machine is busy (a call from another thread is driving it)",
                ))
            }
        }
    }

    fn end_run(&self, mut engine: Engine) -> PyResult<()> {
        let machine = engine.console().machine();
        if let Err(error) = plugins::detach(&self.shared, machine.instrumentation()) {
            self.shared.fail(error);
        }
        self.shared.running.store(false, Ordering::Release);
        self.shared.armed.store(false, Ordering::Release);
        *lock(&self.shared.run_thread) = None;
        *lock(&self.shared.pending_revert) = None;
        *lock(&self.shared.controller) = None;
        *lock(&self.shared.context) = None;
        *lock(&self.shared.engine) = Some(engine);
        self.shared.drain_requests("run() ended");
        self.shared.failed.store(false, Ordering::Release);
        self.shared.stop.store(false, Ordering::Release);
        match lock(&self.shared.failure).take() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

#[pymethods]
impl Core {
    #[new]
    #[pyo3(signature = (generic=None, kernel=None, initrd=None, append=None, mem_mib=None, prompt=None, progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        generic: Option<String>,
        kernel: Option<String>,
        initrd: Option<String>,
        append: Option<String>,
        mem_mib: Option<u64>,
        prompt: Option<String>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Core> {
        let mut config = match (&generic, &kernel) {
            (Some(name), _) => {
                let mut report = |line: &str| {
                    if let Some(progress) = &progress {
                        Python::attach(|py| {
                            let _ = progress.call1(py, (line,));
                        });
                    }
                };
                let result = py.detach(|| MachineConfig::generic(name, &mut report));
                result.map_err(|error| PyValueError::new_err(error.to_string()))?
            }
            (None, Some(kernel)) => MachineConfig {
                architecture: pandare::Architecture::Riscv64,
                memory_mib: 512,
                kernel: kernel.into(),
                initrd: initrd.clone().map(Into::into),
                append: "console=ttyS0 earlycon=sbi".into(),
                prompt: r"[#$] (\x1b\[[0-9;?]*[A-Za-z])*$".into(),
            },
            (None, None) => {
                return Err(PyValueError::new_err(
                    "give generic= (an image name) or kernel= (and initrd=)",
                ))
            }
        };
        if let Some(append) = append {
            config.append = append;
        }
        if let Some(initrd) = initrd {
            config.initrd = Some(initrd.into());
        }
        if let Some(mem) = mem_mib {
            config.memory_mib = mem;
        }
        if let Some(prompt) = prompt {
            config.prompt = prompt;
        }
        let prompt = config
            .prompt_regex()
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let machine = config
            .build()
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let store = SnapshotStore::for_guest(&config, generic.as_deref());
        let session = Session::new(
            Console::new(machine, prompt),
            store,
            config.memory_mib,
            &config.append,
        );
        let shared = Arc::new(Shared {
            engine: Mutex::new(Some(Engine {
                session,
                config,
                generic,
            })),
            requests: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            blocking_alive: AtomicBool::new(false),
            pending_revert: Mutex::new(None),
            running: AtomicBool::new(false),
            armed: AtomicBool::new(false),
            run_thread: Mutex::new(None),
            stop: AtomicBool::new(false),
            failure: Mutex::new(None),
            failed: AtomicBool::new(false),
            callbacks: Mutex::new(Vec::new()),
            python_callbacks: AtomicBool::new(false),
            controller: Mutex::new(None),
            context: Mutex::new(None),
            rr_base: AtomicU64::new(0),
            instructions: AtomicU64::new(0),
            replaying: AtomicBool::new(false),
            plugins: Mutex::default(),
        });
        let blocking_cpu = Py::new(
            py,
            CpuState {
                lent: AtomicPtr::new(std::ptr::null_mut()),
                shared: Arc::clone(&shared),
            },
        )?;
        Ok(Core {
            shared,
            blocking_cpu,
        })
    }

    /// Runs the guest on this thread (GIL released) until `end_analysis()`, the guest
    /// stops, a callback raises, or Ctrl-C. Re-raises a callback's exception.
    fn run(&self, py: Python<'_>) -> PyResult<()> {
        let mut engine = self.begin_run()?;
        let installed = install(
            &self.shared,
            py,
            engine.console().machine().instrumentation(),
        );
        if let Err(error) = installed {
            return self.end_run(engine).and(Err(error));
        }
        self.shared.rr_base.store(0, Ordering::Relaxed);
        py.detach(|| self.machine_loop(&mut engine));
        self.end_run(engine)
    }

    /// Replays recording `name` on a fresh machine with the callbacks active. Returns the
    /// guest's console output during the replay.
    fn run_replay<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyBytes>> {
        let path = replay::recording_path(&name);
        if !path.exists() {
            return Err(PyValueError::new_err(format!(
                "there is no recording named {name:?} (looked for {})",
                path.display()
            )));
        }
        let recording = py
            .detach(|| replay::read_recording(&path))
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let engine = self.begin_run()?;
        let mut config = engine.config.clone();
        config.memory_mib = recording.memory_mib;
        let mut machine = match config.build_blank() {
            Ok(machine) => machine,
            Err(error) => {
                return self
                    .end_run(engine)
                    .and(Err(PyValueError::new_err(error.to_string())))
            }
        };
        if let Err(error) = install(&self.shared, py, machine.instrumentation()) {
            return self.end_run(engine).and(Err(error));
        }
        self.shared.replaying.store(true, Ordering::Release);
        self.shared.rr_base.store(
            match recording.events.first() {
                Some(replay::Event::Checkpoint(start)) => start.instructions,
                _ => 0,
            },
            Ordering::Relaxed,
        );
        let mut output = Vec::new();
        let mut sendable = SendMachine(machine);
        let result = py.detach(|| self.replay_loop(&recording, sendable.machine(), &mut output));
        let machine = sendable.0;
        self.shared.replaying.store(false, Ordering::Release);
        self.shared
            .instructions
            .store(machine.instruction_count(), Ordering::Relaxed);
        self.end_run(engine)?;
        result.map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
        Ok(PyBytes::new(py, &output))
    }

    /// Stops the run at the next block boundary (from any thread, or a callback).
    fn end_analysis(&self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(controller) = lock(&self.shared.controller).as_ref() {
            controller.request_stop();
        }
        self.shared.wake();
    }

    /// Forgets an `end_analysis()` made before the next run starts (the next run's
    /// blocking thread may end it before `run()` is entered, so arm first, then start it).
    /// `blocking`: a blocking thread will drive this run (the guest then waits for its
    /// requests between them, see `hold`); it calls `blocking_finished()` when done.
    #[pyo3(signature = (blocking=false))]
    fn arm(&self, blocking: bool) {
        self.shared.stop.store(false, Ordering::Release);
        self.shared
            .blocking_alive
            .store(blocking, Ordering::Release);
        self.shared.armed.store(true, Ordering::Release);
    }

    /// The blocking thread has run all its functions: the guest runs freely from now on.
    fn blocking_finished(&self) {
        self.shared.blocking_alive.store(false, Ordering::Release);
        self.shared.wake();
    }

    /// Whether a run is in progress.
    #[getter]
    fn running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Whether a replay is in progress.
    #[getter]
    fn replaying(&self) -> bool {
        self.shared.replaying.load(Ordering::Acquire)
    }

    #[pyo3(signature = (command, timeout=None))]
    fn run_serial_cmd(
        &self,
        py: Python<'_>,
        command: String,
        timeout: Option<f64>,
    ) -> PyResult<String> {
        self.ask(
            py,
            Job::Command {
                command,
                limit: seconds_to_units(timeout),
            },
        )
    }

    fn type_serial(&self, py: Python<'_>, text: String) -> PyResult<()> {
        self.ask(py, Job::Type(text.into_bytes()))
    }

    /// Types raw bytes on the serial console, keeping output not yet read (`interact`).
    fn type_input(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        self.ask(py, Job::Input(data))
    }

    /// Runs the guest until it prints something, at most `timeout` seconds of virtual
    /// time, idle time passing in real time; returns the output (maybe empty). For an
    /// interactive console.
    fn read_output<'py>(&self, py: Python<'py>, timeout: f64) -> PyResult<Bound<'py, PyBytes>> {
        let limit = seconds_to_units(Some(timeout)).unwrap_or(0);
        let data: Vec<u8> = self.ask(py, Job::Output { limit })?;
        Ok(PyBytes::new(py, &data))
    }

    #[pyo3(signature = (typed, timeout=None))]
    fn finish_serial(
        &self,
        py: Python<'_>,
        typed: String,
        timeout: Option<f64>,
    ) -> PyResult<String> {
        self.ask(
            py,
            Job::Finish {
                typed,
                limit: seconds_to_units(timeout),
            },
        )
    }

    #[pyo3(signature = (bytes, timeout=None))]
    fn serial_read_until<'py>(
        &self,
        py: Python<'py>,
        bytes: Vec<u8>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let data: Vec<u8> = self.ask(
            py,
            Job::ReadUntil {
                bytes,
                limit: seconds_to_units(timeout),
            },
        )?;
        Ok(PyBytes::new(py, &data))
    }

    fn revert(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.ask(py, Job::Revert(name))
    }

    /// PyPANDA's `revert_async`: during a run (from a callback or another thread), asks
    /// for snapshot `name` to be loaded at the next safe point, after the current block
    /// and callback, and returns at once; a revert that fails ends the run with its error.
    /// Outside a run, reverts now.
    fn revert_async(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let shared = &self.shared;
        if shared.replaying.load(Ordering::Acquire) {
            return Err(PyRuntimeError::new_err(
                "revert_async cannot be used during a replay (a replay follows its recording)",
            ));
        }
        if !shared.live() {
            return self.ask(py, Job::Revert(name));
        }
        *lock(&shared.pending_revert) = Some(name);
        if shared.on_machine_thread() {
            // From a callback: end the slice after this block.
            if let Some(controller) = lock(&shared.controller).as_ref() {
                controller.request_stop();
            }
        }
        shared.wake();
        Ok(())
    }

    fn snap(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.ask(py, Job::Snap(name))
    }

    fn delvm(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.ask(py, Job::Delvm(name))
    }

    fn monitor(&self, py: Python<'_>, command: String) -> PyResult<String> {
        self.ask(py, Job::Monitor(command))
    }

    fn begin_record(&self, py: Python<'_>, name: String) -> PyResult<()> {
        self.ask(py, Job::BeginRecord(name))
    }

    /// Ends the recording; returns the file written.
    fn end_record(&self, py: Python<'_>) -> PyResult<String> {
        self.ask(py, Job::EndRecord)
    }

    /// The CPU handle for use outside callbacks.
    fn get_cpu(&self, py: Python<'_>) -> Py<CpuState> {
        self.blocking_cpu.clone_ref(py)
    }

    /// Instruction count relative to the start of the current replay (or absolute).
    fn rr_instruction_count(&self, py: Python<'_>) -> u64 {
        let base = self.shared.rr_base.load(Ordering::Relaxed);
        let current = lock(&self.shared.context)
            .as_ref()
            .map(|ctx| ctx.cpu.clone_ref(py));
        let count = match current {
            Some(cpu) if cpu.get().valid() => cpu.get().instruction_count(py).ok(),
            _ => None,
        };
        count
            .unwrap_or_else(|| self.shared.instructions.load(Ordering::Relaxed))
            .saturating_sub(base)
    }

    /// Checks a callback type name; returns PANDA's name.
    #[staticmethod]
    fn check_kind(name: &str) -> PyResult<&'static str> {
        Instrumentation::check_kind(name)
            .map(CallbackKind::name)
            .map_err(|error| PyValueError::new_err(error.to_string()))
    }

    /// Every callback type name, in PANDA's order.
    #[staticmethod]
    fn kinds() -> Vec<&'static str> {
        CallbackKind::ALL.iter().map(|k| k.name()).collect()
    }

    /// Registers (or replaces) Python callback `name`.
    #[pyo3(signature = (kind, name, function, enabled=true, hook_address=None, hook_kernel=None, hook_asid=None))]
    #[allow(clippy::too_many_arguments)]
    fn register_callback(
        &self,
        py: Python<'_>,
        kind: &str,
        name: String,
        function: Py<PyAny>,
        enabled: bool,
        hook_address: Option<u64>,
        hook_kernel: Option<bool>,
        hook_asid: Option<u64>,
    ) -> PyResult<()> {
        let kind = Instrumentation::check_kind(kind)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let hook = hook_address.map(|address| HookFilter {
            address,
            kernel: hook_kernel,
            asid: hook_asid,
        });
        let context = lock(&self.shared.context).clone();
        let controller = lock(&self.shared.controller).clone();
        if let (Some(ctx), Some(controller)) = (context, controller) {
            controller.delete(&name);
            match hook {
                Some(filter) => {
                    let (hook, callback) = make_hook(kind, filter, function.clone_ref(py), ctx)
                        .map_err(PyValueError::new_err)?;
                    controller.add_hook(&name, hook, callback);
                }
                None => {
                    let callback = make_callback(kind, function.clone_ref(py), ctx)
                        .map_err(PyValueError::new_err)?;
                    controller.register(&name, callback);
                }
            }
            if !enabled {
                controller.disable(&name);
            }
        } else {
            // Check now that the kind can be wrapped, so the error comes at registration.
            let probe = CallContext::new(py, &self.shared, self.blocking_cpu.clone_ref(py))?;
            let checked = match hook {
                Some(filter) => make_hook(kind, filter, py.None(), probe).map(drop),
                None => make_callback(kind, py.None(), probe).map(drop),
            };
            checked.map_err(PyValueError::new_err)?;
        }
        let mut callbacks = lock(&self.shared.callbacks);
        // The replaced function is dropped after the lock is released: dropping it may run
        // Python code (`__del__`), which may let other threads in.
        let replaced = take_named(&mut callbacks, &name);
        callbacks.push(Spec {
            name,
            kind,
            function,
            enabled,
            forever: false,
            hook,
        });
        self.shared.note_callbacks(&callbacks);
        drop(callbacks);
        drop(replaced);
        Ok(())
    }

    fn enable_callback(&self, name: &str) -> PyResult<()> {
        let mut callbacks = lock(&self.shared.callbacks);
        let spec = find(&mut callbacks, name)?;
        if spec.forever {
            return Err(PyValueError::new_err(format!(
                "callback {name:?} was disabled forever"
            )));
        }
        spec.enabled = true;
        if let Some(controller) = lock(&self.shared.controller).as_ref() {
            controller.enable(name);
        }
        Ok(())
    }

    #[pyo3(signature = (name, forever=false))]
    fn disable_callback(&self, name: &str, forever: bool) -> PyResult<()> {
        let mut callbacks = lock(&self.shared.callbacks);
        let spec = find(&mut callbacks, name)?;
        spec.enabled = false;
        spec.forever |= forever;
        if let Some(controller) = lock(&self.shared.controller).as_ref() {
            if forever {
                controller.disable_forever(name);
            } else {
                controller.disable(name);
            }
        }
        Ok(())
    }

    fn delete_callback(&self, name: &str) -> PyResult<()> {
        let mut callbacks = lock(&self.shared.callbacks);
        find(&mut callbacks, name)?;
        let deleted = take_named(&mut callbacks, name);
        self.shared.note_callbacks(&callbacks);
        if let Some(controller) = lock(&self.shared.controller).as_ref() {
            controller.delete(name);
        }
        drop(callbacks);
        drop(deleted);
        Ok(())
    }

    fn is_callback_enabled(&self, name: &str) -> PyResult<bool> {
        let mut callbacks = lock(&self.shared.callbacks);
        Ok(find(&mut callbacks, name)?.enabled)
    }

    /// Names of the registered callbacks.
    fn callback_names(&self) -> Vec<String> {
        lock(&self.shared.callbacks)
            .iter()
            .map(|spec| spec.name.clone())
            .collect()
    }
}

/// Removes the callbacks named `name`; the caller drops them once its locks are released.
fn take_named(callbacks: &mut Vec<Spec>, name: &str) -> Vec<Spec> {
    let mut taken = Vec::new();
    let mut index = 0;
    while index < callbacks.len() {
        if callbacks[index].name == name {
            taken.push(callbacks.remove(index));
        } else {
            index += 1;
        }
    }
    taken
}

fn find<'a>(callbacks: &'a mut [Spec], name: &str) -> PyResult<&'a mut Spec> {
    callbacks
        .iter_mut()
        .find(|spec| spec.name == name)
        .ok_or_else(|| PyKeyError::new_err(format!("no callback named {name:?} is registered")))
}

/// Names of the generic images this build knows.
#[pyfunction]
fn generic_images() -> Vec<String> {
    vec!["riscv64".to_string()]
}

mod plugins;

#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    plugins::add_to(module)?;
    module.add_class::<Core>()?;
    module.add_class::<CpuState>()?;
    module.add_class::<TranslationBlock>()?;
    module.add_function(wrap_pyfunction!(generic_images, module)?)?;
    module.add("UNITS_PER_SECOND", UNITS_PER_SECOND)?;
    Ok(())
}
