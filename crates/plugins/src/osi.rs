//! `osi` (also loadable as `osi_linux`, PANDA's Linux provider): OS introspection of the
//! running Linux guest from its kernel profile, for other plugins and front ends, and the
//! PPP callback `on_task_change(cpu)`.
//!
//! The walks themselves are [`pandare_osi::Kernel`]'s; the plugin's API handle ([`OsiApi`],
//! from [`crate::Plugins::api`]) hands them out with the kernel set up on first use.
//!
//! `on_task_change` runs each time the CPU starts running another task. The kernel finishes
//! every switch (and every new task's first run, through `schedule_tail`) in
//! `finish_task_switch`, with `current` already the new task: an address hook there (kernel
//! mode only) compares `current` with the task seen last, so the callback costs nothing
//! between switches. The function's symbol may carry a compiler suffix
//! (`finish_task_switch.isra.0`); when the profile names none of its forms,
//! `task_change=blocks` (also selectable) compares `current` at the start of every block
//! instead, which is exact but costs a register read per block.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use pandare_core::instrument::{AddressHook, Callback, GuestCpu};
use pandare_osi::{Kernel, Mapping, Process, Profile, Thread, WalkError};

use crate::{ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo, Ppp, PppEvent};
use crate::{PppInfo, PppValue};

const ARGUMENTS: &[ArgInfo] = &[ArgInfo {
    name: "task_change",
    help: "how on_task_change finds switches: hook (an address hook on the kernel's finish_task_switch, the default) or blocks (compare the current task at every block start)",
}];

const PPP: &[PppInfo] = &[PppInfo {
    name: "on_task_change",
    signature: "(cpu)",
    event_type: std::any::TypeId::of::<TaskChange>,
    event_type_name: "pandare_plugins::osi::TaskChange",
}];

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "osi",
    description: "OS introspection of the Linux guest from its kernel's BTF and kallsyms (processes, threads, mappings, files); PPP on_task_change",
    arguments: ARGUMENTS,
    ppp: PPP,
    create,
};

/// The same plugin under the name of PANDA's Linux OSI provider.
pub const LINUX_INFO: PluginInfo = PluginInfo {
    name: "osi_linux",
    description:
        "the osi plugin under the name of PANDA's Linux provider (PyPANDA scripts load both)",
    arguments: ARGUMENTS,
    ppp: PPP,
    create,
};

/// The kernel function every task switch ends in, with `current` the new task.
pub const SWITCH_FUNCTION: &str = "finish_task_switch";

/// The event of `on_task_change`: the task that now runs and the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskChange {
    /// The `task_struct` that runs now.
    pub task: u64,
    /// The one that ran before (0 for the first change seen).
    pub previous: u64,
}

impl PppEvent for TaskChange {
    /// PANDA's `on_task_change` passes only the CPU.
    fn values(&self) -> Vec<PppValue> {
        Vec::new()
    }
}

/// What the plugin shares between its callbacks and its API handles.
#[derive(Debug)]
struct Shared {
    profile: Arc<Profile>,
    kernel: OnceLock<Result<Arc<Kernel>, String>>,
    /// The task seen running at the last change.
    last_task: AtomicU64,
    changes: AtomicU64,
}

impl Shared {
    fn kernel(&self, cpu: &dyn GuestCpu) -> Result<Arc<Kernel>, WalkError> {
        self.kernel
            .get_or_init(|| {
                Kernel::new(Arc::clone(&self.profile), cpu)
                    .map(Arc::new)
                    .map_err(|error| error.to_string())
            })
            .clone()
            .map_err(WalkError::Inconsistent)
    }

    /// Runs `on_task_change` if `task` is not the task seen last.
    fn observe(&self, cpu: &mut dyn GuestCpu, task: u64, ppp: &Ppp, plugin: &str) {
        let previous = self.last_task.swap(task, Ordering::Relaxed);
        if previous == task {
            return;
        }
        self.changes.fetch_add(1, Ordering::Relaxed);
        if ppp.has(plugin, "on_task_change") {
            ppp.run(
                plugin,
                "on_task_change",
                cpu,
                &TaskChange { task, previous },
            );
        }
    }
}

/// The `osi` plugin's API (PANDA's `osi` exports): the walks of the running kernel. Cheap to
/// clone; every call reads the guest through the CPU it is given (call it from a callback).
#[derive(Clone, Debug)]
pub struct OsiApi {
    shared: Arc<Shared>,
}

impl OsiApi {
    /// The kernel's walks, set up on the first call.
    pub fn kernel(&self, cpu: &dyn GuestCpu) -> Result<Arc<Kernel>, WalkError> {
        self.shared.kernel(cpu)
    }

    /// The kernel profile.
    pub fn profile(&self) -> &Arc<Profile> {
        &self.shared.profile
    }

    /// The running `task_struct` (register reads only: no memory is read).
    pub fn current_task(&self, cpu: &mut dyn GuestCpu) -> Result<u64, WalkError> {
        self.kernel(cpu)?.current_task(cpu)
    }

    /// The task `on_task_change` saw start running last (0 before the first change): free,
    /// and equal to [`OsiApi::current_task`] except inside the kernel's switch itself.
    pub fn last_task(&self) -> u64 {
        self.shared.last_task.load(Ordering::Relaxed)
    }

    /// How many task changes the plugin has seen.
    pub fn task_changes(&self) -> u64 {
        self.shared.changes.load(Ordering::Relaxed)
    }

    /// The running process.
    pub fn current_process(&self, cpu: &mut dyn GuestCpu) -> Result<Process, WalkError> {
        self.kernel(cpu)?.current_process(cpu)
    }

    /// The running thread.
    pub fn current_thread(&self, cpu: &mut dyn GuestCpu) -> Result<Thread, WalkError> {
        self.kernel(cpu)?.current_thread(cpu)
    }

    /// Every process.
    pub fn processes(&self, cpu: &mut dyn GuestCpu) -> Result<Vec<Process>, WalkError> {
        self.kernel(cpu)?.processes(cpu)
    }

    /// The threads of the process of `task`.
    pub fn threads(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<Thread>, WalkError> {
        self.kernel(cpu)?.threads(cpu, task)
    }

    /// The mappings of `task`'s address space.
    pub fn mappings(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<Mapping>, WalkError> {
        self.kernel(cpu)?.mappings(cpu, task)
    }

    /// The mapping of `task` holding `address`.
    pub fn mapping_by_address(
        &self,
        cpu: &mut dyn GuestCpu,
        task: u64,
        address: u64,
    ) -> Result<Option<Mapping>, WalkError> {
        self.kernel(cpu)?.mapping_by_address(cpu, task, address)
    }

    /// The loaded kernel modules.
    pub fn modules(&self, cpu: &mut dyn GuestCpu) -> Result<Vec<Mapping>, WalkError> {
        self.kernel(cpu)?.modules(cpu)
    }

    /// The path of `task`'s file descriptor `fd`.
    pub fn fd_path(
        &self,
        cpu: &mut dyn GuestCpu,
        task: u64,
        fd: u32,
    ) -> Result<Option<String>, WalkError> {
        self.kernel(cpu)?.fd_path(cpu, task, fd)
    }

    /// `task`'s open file descriptors and their paths.
    pub fn fds(&self, cpu: &mut dyn GuestCpu, task: u64) -> Result<Vec<(u32, String)>, WalkError> {
        self.kernel(cpu)?.fds(cpu, task)
    }

    /// The program `task` runs.
    pub fn program_path(
        &self,
        cpu: &mut dyn GuestCpu,
        task: u64,
    ) -> Result<Option<String>, WalkError> {
        self.kernel(cpu)?.program_path(cpu, task)
    }
}

/// How task changes are found.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Method {
    /// The symbol and its address.
    Hook(String, u64),
    Blocks,
}

struct Osi {
    name: &'static str,
    shared: Arc<Shared>,
    method: Method,
    errors: Arc<Mutex<Option<String>>>,
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let profile = context.kernel_profile()?;
    let switch = profile
        .symbol_or_variant(SWITCH_FUNCTION)
        .map(|(name, address)| (name.to_string(), address));
    let method = match (args.string("task_change"), switch) {
        (None | Some("hook"), Some((symbol, address))) => Method::Hook(symbol, address),
        (Some("hook"), None) => {
            return Err(args.bad(
                "task_change",
                format!(
                    "the kernel profile has no {SWITCH_FUNCTION} symbol (nor a compiler-made variant of it); use task_change=blocks"
                ),
            ))
        }
        (None | Some("blocks"), _) => Method::Blocks,
        (Some(other), _) => {
            return Err(args.bad(
                "task_change",
                format!("{other:?} is neither hook nor blocks"),
            ))
        }
    };
    let shared = Arc::new(Shared {
        profile,
        kernel: OnceLock::new(),
        last_task: AtomicU64::new(0),
        changes: AtomicU64::new(0),
    });
    let errors: Arc<Mutex<Option<String>>> = Arc::default();
    let plugin = context.plugin();
    let ppp = context.ppp();
    let state = Arc::clone(&shared);
    let failed = Arc::clone(&errors);
    let current = move |cpu: &mut dyn GuestCpu| match state.kernel(cpu) {
        Ok(kernel) => kernel.current_task(cpu).ok(),
        Err(error) => {
            crate::lock(&failed).get_or_insert(error.to_string());
            None
        }
    };
    match &method {
        &Method::Hook(_, address) => {
            let state = Arc::clone(&shared);
            context.add_hook(
                "task_switch",
                AddressHook {
                    kernel: Some(true),
                    ..AddressHook::at(address)
                },
                Box::new(move |cpu, _| {
                    if let Some(task) = current(cpu) {
                        state.observe(cpu, task, &ppp, plugin);
                    }
                }),
            )?;
        }
        Method::Blocks => {
            let state = Arc::clone(&shared);
            context.register(
                "task_change",
                Callback::StartBlockExec(Box::new(move |cpu, _| {
                    if let Some(task) = current(cpu) {
                        state.observe(cpu, task, &ppp, plugin);
                    }
                })),
            )?;
        }
    }
    Ok(Box::new(Osi {
        name: plugin,
        shared,
        method,
        errors,
    }))
}

impl Plugin for Osi {
    fn unload(&mut self) -> Result<String, PluginError> {
        let how = match &self.method {
            Method::Hook(symbol, address) => format!("hook on {symbol} at {address:#x}"),
            Method::Blocks => "current task compared at every block start".to_string(),
        };
        let mut report = format!(
            "{}: {} task changes seen ({how})",
            self.name,
            self.shared.changes.load(Ordering::Relaxed)
        );
        if let Some(error) = crate::lock(&self.errors).as_ref() {
            report += &format!("; introspection failed: {error}");
        }
        Ok(report)
    }

    fn api(&self) -> Option<Box<dyn std::any::Any>> {
        Some(Box::new(OsiApi {
            shared: Arc::clone(&self.shared),
        }))
    }
}
