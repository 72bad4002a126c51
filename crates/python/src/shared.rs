//! What the Python objects, the machine thread and the callbacks share: the guest when no
//! run owns it ([`Engine`]), the request queue of the blocking thread ([`Request`], [`Slot`]),
//! run state flags, the registered callbacks, and how a failure becomes a Python exception
//! ([`Fail`]).

use std::any::Any;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use pandare::monitor::Session;
use pandare::{Console, MachineConfig};
use pandare_core::instrument::{Controller, GuestCpu, InstrumentError};
use pyo3::exceptions::{PyRuntimeError, PyTimeoutError, PyValueError};
use pyo3::prelude::*;

use crate::blocking::{run_job_now, Job};
use crate::callbacks::{CallContext, Spec};
use crate::plugins;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why a job failed, mapped to a Python exception class.
#[derive(Debug)]
pub(crate) enum Fail {
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

pub(crate) type Answer = Result<Box<dyn Any + Send>, Fail>;
pub(crate) type AccessFn = Box<dyn FnOnce(&mut dyn GuestCpu) -> Answer + Send>;

/// What the machine thread is asked to do.

#[derive(Default)]
pub(crate) struct Slot {
    pub(crate) answer: Mutex<Option<Answer>>,
    pub(crate) ready: Condvar,
}

impl Slot {
    pub(crate) fn put(&self, answer: Answer) {
        *lock(&self.answer) = Some(answer);
        self.ready.notify_all();
    }

    pub(crate) fn wait(&self) -> Answer {
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

pub(crate) struct Request {
    pub(crate) job: Job,
    pub(crate) slot: Arc<Slot>,
}

/// The guest and everything needed to drive it. `Send`, as every `Machine` is: built on the
/// Python thread, driven by whichever thread runs it (one at a time: the run loop, or a
/// caller holding [`Shared::engine`]'s lock).
pub(crate) struct Engine {
    pub(crate) session: Session,
    pub(crate) config: MachineConfig,
    pub(crate) generic: Option<String>,
}

impl Engine {
    pub(crate) fn console(&mut self) -> &mut Console {
        &mut self.session.console
    }
}

/// State shared by the Python objects, the machine thread and the callbacks.
pub(crate) struct Shared {
    /// The guest when no run is in progress (a run owns it meanwhile).
    pub(crate) engine: Mutex<Option<Engine>>,
    pub(crate) requests: Mutex<VecDeque<Request>>,
    /// Signalled (with `requests` locked) when a request is queued, a stop is asked for,
    /// or the blocking thread finishes: what a holding run loop waits for.
    pub(crate) wake: Condvar,
    /// A snapshot `revert_async` asked for, loaded by the run loop between slices.
    pub(crate) pending_revert: Mutex<Option<String>>,
    /// Whether the blocking thread of the current run is still working through its
    /// functions (set by `arm(blocking=True)`, cleared by `blocking_finished()`).
    pub(crate) blocking_alive: AtomicBool,
    pub(crate) running: AtomicBool,
    /// Set by `arm()` just before a run starts, cleared when it ends.
    pub(crate) armed: AtomicBool,
    pub(crate) run_thread: Mutex<Option<ThreadId>>,
    pub(crate) stop: AtomicBool,
    /// A Python exception from a callback (or Ctrl-C) that ends the run.
    pub(crate) failure: Mutex<Option<PyErr>>,
    pub(crate) failed: AtomicBool,
    pub(crate) callbacks: Mutex<Vec<Spec>>,
    /// Whether `callbacks` is non-empty (read by the run loop without the lock).
    pub(crate) python_callbacks: AtomicBool,
    /// During a run: the registry's controller and the callback context.
    pub(crate) controller: Mutex<Option<Controller>>,
    pub(crate) context: Mutex<Option<Arc<CallContext>>>,
    /// Instruction count where the current replay (or recording) started.
    pub(crate) rr_base: AtomicU64,
    /// Last known instruction count (updated between slices).
    pub(crate) instructions: AtomicU64,
    pub(crate) replaying: AtomicBool,
    /// Plugins asked for and loaded (`plugins.rs`).
    pub(crate) plugins: Mutex<plugins::PluginState>,
}

impl Shared {
    pub(crate) fn fail(&self, error: PyErr) {
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            *failure = Some(error);
        }
        self.failed.store(true, Ordering::Release);
    }

    pub(crate) fn on_machine_thread(&self) -> bool {
        self.running.load(Ordering::Acquire)
            && *lock(&self.run_thread) == Some(std::thread::current().id())
    }

    /// Runs `job`: posted to the machine thread during a run, otherwise right here.
    pub(crate) fn request(&self, py: Python<'_>, job: Job) -> PyResult<Box<dyn Any + Send>> {
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
    pub(crate) fn pace(&self, most: Duration) -> Duration {
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
    pub(crate) fn wake(&self) {
        let _requests = lock(&self.requests);
        self.wake.notify_all();
    }

    /// Whether run slices hold the GIL (see [`step`]): while Python callbacks exist.
    pub(crate) fn holds_gil(&self) -> bool {
        self.python_callbacks.load(Ordering::Relaxed)
    }

    /// Records whether Python callbacks exist (after `callbacks` changed).
    pub(crate) fn note_callbacks(&self, callbacks: &[Spec]) {
        self.python_callbacks
            .store(!callbacks.is_empty(), Ordering::Relaxed);
    }

    /// Whether a run is in progress or about to start (requests go to its queue).
    pub(crate) fn live(&self) -> bool {
        self.running.load(Ordering::Acquire) || self.armed.load(Ordering::Acquire)
    }

    pub(crate) fn drain_requests(&self, why: &str) {
        let leftovers: Vec<Request> = lock(&self.requests).drain(..).collect();
        for request in leftovers {
            request.slot.put(Err(Fail::Runtime(format!(
                "{why} before this request was served"
            ))));
        }
    }
}
