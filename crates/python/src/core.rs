//! `Core`, the object behind `pandare.Panda`: building the guest, running it (`run`,
//! `run_replay`), the blocking thread's requests, and callback registration. The run loops
//! themselves are in `blocking.rs` and `replay.rs`.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use pandare::console::UNITS_PER_SECOND;
use pandare::driver::{self, Start};
use pandare::monitor::Session;
use pandare::replay;
use pandare::store::SnapshotStore;
use pandare::GuestOptions;
use pandare_core::instrument::{CallbackKind, Instrumentation};
use pyo3::exceptions::{PyKeyError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::blocking::Job;
use crate::callbacks::{
    install, make_callback, make_hook, proc_filter, CallContext, Gate, HookFilter, Spec,
};
use crate::cpu_state::CpuState;
use crate::plugins;
use crate::shared::{lock, Engine, Shared};

fn seconds_to_units(seconds: Option<f64>) -> Option<u64> {
    seconds.map(|s| (s.max(0.0) * UNITS_PER_SECOND as f64) as u64)
}

/// The machine, its snapshots and callbacks: what `pandare.Panda` drives.
#[pyclass(frozen, module = "pandare._core")]
pub(crate) struct Core {
    pub(crate) shared: Arc<Shared>,
    pub(crate) blocking_cpu: Py<CpuState>,
    /// The guest's architecture name.
    architecture: &'static str,
    /// The guest as built (for `config()`).
    config: pandare::MachineConfig,
}

impl Core {
    fn ask<T: 'static>(&self, py: Python<'_>, job: Job) -> PyResult<T> {
        let answer = self.shared.request(py, job)?;
        Ok(*answer.downcast::<T>().expect("jobs answer their own type"))
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
    #[pyo3(signature = (generic=None, kernel=None, initrd=None, append=None, mem_mib=None, prompt=None, progress=None, arch=None))]
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
        arch: Option<String>,
    ) -> PyResult<Core> {
        // The same defaults as the CLI's (`pandare::driver`).
        let options = GuestOptions {
            generic: generic.clone(),
            kernel: kernel.map(Into::into),
            initrd: initrd.map(Into::into),
            architecture: arch,
            append,
            memory_mib: mem_mib,
            prompt,
        };
        let mut report = |line: &str| {
            if let Some(progress) = &progress {
                Python::attach(|py| {
                    let _ = progress.call1(py, (line,));
                });
            }
        };
        let config = py
            .detach(|| options.config(&mut report))
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let mut store = SnapshotStore::for_guest(&config, generic.as_deref());
        let (console, _) = driver::start(&config, &mut store, Start::Boot)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let session = Session::new(console, store, config.memory_mib, &config.append);
        let architecture = config.architecture.name();
        let summary = config.clone();
        // OS-introspecting plugins and `panda.get_*` derive the kernel's profile from the
        // image booted.
        let plugin_state = plugins::PluginState::for_kernel(&config.kernel);
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
            plugins: Mutex::new(plugin_state),
        });
        // A recording carries the kernel's profile (derived when it starts, cached per
        // kernel): a replay elsewhere needs nothing else for OS introspection.
        let weak = Arc::downgrade(&shared);
        if let Some(engine) = lock(&shared.engine).as_mut() {
            engine.session.set_profile_source(Box::new(move || {
                let shared = weak.upgrade()?;
                let profile = lock(&shared.plugins).kernel_profile().ok()?;
                Some(profile.to_bytes())
            }));
        }
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
            architecture,
            config: summary,
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
        let recorded = match &recording.kernel_profile {
            Some(bytes) => match pandare_osi::Profile::from_bytes(bytes) {
                Ok(profile) => Ok(Arc::new(profile)),
                Err(error) => {
                    return Err(PyValueError::new_err(format!(
                        "the kernel profile in {} is damaged ({error}): record it again",
                        path.display()
                    )))
                }
            },
            None => Err(
                "the recording carries no kernel profile (it was made from a kernel \
                 without BTF or kallsyms, or by an older pandare): OS introspection is not \
                 available in its replay"
                    .to_string(),
            ),
        };
        let engine = self.begin_run()?;
        lock(&self.shared.plugins).use_recorded_profile(recorded);
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
        let result = py.detach(|| self.replay_loop(&recording, machine.as_mut(), &mut output));
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

    /// The guest's architecture name (its description: `_core.architecture(name)`).
    #[getter]
    fn architecture(&self) -> &'static str {
        self.architecture
    }

    /// The guest as configured: `architecture`, `memory_mib`, `kernel`, `initrd`, `append`
    /// (the kernel command line) and `prompt` (the regular expression of its shell prompt).
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        let config = &self.config;
        let dict = pyo3::types::PyDict::new(py);
        dict.set_item("architecture", config.architecture.name())?;
        dict.set_item("memory_mib", config.memory_mib)?;
        dict.set_item("kernel", config.kernel.display().to_string())?;
        dict.set_item(
            "initrd",
            config
                .initrd
                .as_ref()
                .map(|path| path.display().to_string()),
        )?;
        dict.set_item("append", &config.append)?;
        dict.set_item("prompt", &config.prompt)?;
        Ok(dict)
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
    #[pyo3(signature = (kind, name, function, enabled=true, hook_address=None, hook_kernel=None, hook_asid=None, procname=None))]
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
        procname: Option<String>,
    ) -> PyResult<()> {
        let kind = Instrumentation::check_kind(kind)
            .map_err(|error| PyValueError::new_err(error.to_string()))?;
        let procname = procname.map(String::into_bytes);
        if procname.as_ref().is_some_and(Vec::is_empty) {
            return Err(PyValueError::new_err(
                "procname= is empty: give the process name (as `ps` shows it)",
            ));
        }
        // Checked now, so a missing kernel profile is an error at registration.
        let filter = proc_filter(&self.shared, procname.as_deref())?;
        let hook = hook_address.map(|address| HookFilter {
            address,
            kernel: hook_kernel,
            asid: hook_asid,
        });
        let context = lock(&self.shared.context).clone();
        let controller = lock(&self.shared.controller).clone();
        if let (Some(ctx), Some(controller)) = (context, controller) {
            controller.delete(&name);
            let gate = Gate::new(ctx, filter);
            match hook {
                Some(filter) => {
                    let (hook, callback) = make_hook(kind, filter, function.clone_ref(py), gate)
                        .map_err(PyValueError::new_err)?;
                    controller.add_hook(&name, hook, callback);
                }
                None => {
                    let callback = make_callback(kind, function.clone_ref(py), gate)
                        .map_err(PyValueError::new_err)?;
                    controller.register(&name, callback);
                }
            }
            if !enabled {
                controller.disable(&name);
            }
        } else {
            // Check now that the kind can be wrapped, so the error comes at registration.
            let probe = Gate::new(
                CallContext::new(py, &self.shared, self.blocking_cpu.clone_ref(py))?,
                filter,
            );
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
            procname,
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
