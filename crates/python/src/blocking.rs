//! Serving the blocking thread: the jobs it posts ([`Job`]), starting them and polling the
//! ones that wait for guest output ([`Waiting`]), one run slice ([`step`]), and the run loop
//! that interleaves them ([`Core::machine_loop`], with [`Core::hold`] keeping runs that a
//! blocking function drives repeatable).

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pandare::console::{echo_length, strip_terminal_codes, UNITS_PER_SECOND};
use pandare::driver::{self, DriverError, Pacing};
use pandare::{Exit, Machine};
use pyo3::prelude::*;
use regex::bytes::Regex;

use crate::core::Core;
use crate::shared::{lock, AccessFn, Answer, Engine, Fail, Shared, Slot};

/// Virtual time per run slice between looks at the job queue (2 ms of guest time).
pub(crate) const SLICE: u64 = 2_000_000;
/// How long (host time) the guest waits for the blocking thread's next request after
/// answering one (see `Core::hold`).
pub(crate) const HOLD_LIMIT: Duration = Duration::from_millis(250);
/// How often a waiting run loop checks for Ctrl-C.
pub(crate) const SIGNAL_POLL: Duration = Duration::from_millis(20);

/// What the machine thread is asked to do.
pub(crate) enum Job {
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

/// A job waiting for guest output.
pub(crate) struct Waiting {
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

/// Runs a job to completion on a machine no run loop drives (see [`step`] for `hold_gil`).
pub(crate) fn run_job_now(engine: &mut Engine, job: Job, hold_gil: bool) -> Answer {
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
/// request arrives; the clock then moves on by the time waited; see
/// [`pandare::driver::idle`]).
///
/// With `hold_gil` (Python callbacks are registered), the slice runs attached to Python:
/// the GIL is taken once for the slice, so each callback's `Python::attach` is a nested
/// attach (a thread-local counter) instead of a GIL hand-over (`PyGILState_Ensure` and
/// `Release`, most of a call's cost). The GIL is free between slices, where the run loop
/// serves the blocking thread's requests and checks for Ctrl-C; Python code running in a
/// callback also lets other threads in at CPython's switch interval. Nothing in a slice
/// waits for another Python thread, so holding the GIL cannot deadlock.
pub(crate) fn step(engine: &mut Engine, hold_gil: bool, pace: Option<&Shared>) -> Result<(), Fail> {
    let exit = if hold_gil {
        Python::attach(|_| engine.console().run_slice(SLICE))
    } else {
        engine.console().run_slice(SLICE)
    };
    let console = engine.console();
    match exit {
        Exit::BudgetExhausted => Ok(()),
        Exit::Idle => {
            let pacing = match pace {
                Some(shared) => Pacing::RealTime {
                    most: SIGNAL_POLL,
                    wait: &mut |longest| shared.pace(longest),
                },
                None => Pacing::Skip,
            };
            if driver::idle(console, pacing) {
                Ok(())
            } else {
                Err(Fail::Runtime(
                    "the guest is idle with no timer armed and no input: it can never wake up"
                        .into(),
                ))
            }
        }
        Exit::Shutdown(kind) => Err(Fail::Runtime(format!("the guest stopped ({kind:?})"))),
        Exit::UnhandledTrap { cause, pc, value } => Err(Fail::Runtime(format!(
            "the guest crashed: unhandled trap, cause {cause:#x} at pc {pc:#x} (value {value:#x})"
        ))),
    }
}

pub(crate) fn prompt_wait(
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
pub(crate) fn start_job(engine: &mut Engine, job: Job, slot: &Arc<Slot>) -> Option<Waiting> {
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
pub(crate) fn poll_waiting(engine: &mut Engine, waiting: &mut Waiting) -> Option<Answer> {
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
pub(crate) fn revert(engine: &mut Engine, name: &str) -> Result<(), Fail> {
    let Engine {
        session,
        config,
        generic,
    } = engine;
    driver::revert(
        &mut session.console,
        &mut session.store,
        config,
        generic.is_some(),
        name,
    )
    .map_err(|error| match error {
        DriverError::Boot(_) | DriverError::Build(_) => Fail::Runtime(error.to_string()),
        _ => Fail::Value(error.to_string()),
    })
}

/// Runs `access` with the machine's CPU between slices ([`Machine::with_cpu`]): nothing
/// runs and no callback fires.
pub(crate) fn with_cpu(machine: &mut dyn Machine, access: AccessFn) -> Answer {
    let mut access = Some(access);
    let mut answer = None;
    machine.with_cpu(&mut |cpu| {
        if let Some(access) = access.take() {
            answer = Some(access(cpu));
        }
    });
    answer.unwrap_or_else(|| Err(Fail::Runtime("the machine did not lend its CPU".into())))
}

impl Core {
    /// The run loop (GIL released).
    pub(crate) fn machine_loop(&self, engine: &mut Engine) {
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
}
