//! pandare's plugins: analyses with PANDA's names and arguments, loaded into a machine's
//! callback registry by name (`-panda coverage:filename=blocks.csv`), and the PPP
//! ("plugin-to-plugin") callbacks they offer other code.
//!
//! ```no_run
//! use pandare_plugins::Plugins;
//! # fn demo(machine: &mut dyn pandare_core::Machine) -> Result<(), pandare_plugins::PluginError> {
//! let mut plugins = Plugins::new();
//! plugins.load_spec(machine.instrumentation(), "coverage:filename=blocks.csv")?;
//! // ... run the machine ...
//! for report in plugins.unload_all(machine.instrumentation())? {
//!     eprintln!("{report}");
//! }
//! # Ok(()) }
//! ```
//!
//! A plugin registers its callbacks through a [`LoadContext`] under names prefixed with
//! its own (`coverage:blocks`), so unloading removes exactly those; then its
//! [`Plugin::unload`] flushes its outputs (files are written atomically) and returns a
//! one-paragraph report. `docs/plugins.md` describes each plugin and how to write one.
#![warn(missing_docs)]

pub mod args;
pub mod asid_instr_count;
pub mod coverage;
pub mod hooks2;
pub mod hypercaller;
pub mod osi;
mod output;
pub mod pc_search;
pub mod ppp;
pub mod proc_start_linux;
pub mod stringsearch;
pub mod syscalls2;
pub mod syscalls_logger;

use pandare_core::instrument::{
    AddressHook, Callback, Controller, GuestCpu, HookFn, InstrumentError, Instrumentation,
};

pub use args::{parse_spec, ArgInfo, Args};

/// Locks a plugin's state. A panic in another callback (the run then ends with an error)
/// does not make the state unreadable: a plugin's unload still writes what it gathered.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
pub use ppp::{Ppp, PppEvent, PppInfo, PppPoint, PppValue};

/// Errors loading, unloading and using plugins.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// No plugin has this name.
    #[error("there is no plugin called {name:?}; the plugins are: {available}")]
    UnknownPlugin {
        /// The name asked for.
        name: String,
        /// The plugins that exist.
        available: String,
    },
    /// A file an argument names could not be read.
    #[error("plugin {plugin}: {source}")]
    File {
        /// The plugin.
        plugin: &'static str,
        /// Why.
        source: pandare_core::files::ReadError,
    },
    /// A `-panda` specification that cannot be read.
    #[error("cannot read the plugin specification {spec:?}: {why}")]
    Malformed {
        /// The specification.
        spec: String,
        /// What is wrong.
        why: String,
    },
    /// An argument the plugin does not take.
    #[error("plugin {plugin} has no argument {argument:?}: {accepted}")]
    UnknownArgument {
        /// The plugin.
        plugin: &'static str,
        /// The argument given.
        argument: String,
        /// What it accepts.
        accepted: String,
    },
    /// An argument with a value the plugin cannot use, or one that is missing.
    #[error("plugin {plugin}, argument {argument}: {why}")]
    BadArgument {
        /// The plugin.
        plugin: &'static str,
        /// The argument.
        argument: String,
        /// What is wrong.
        why: String,
    },
    /// The plugin is loaded already.
    #[error("plugin {name} is already loaded (unload it first to load it with other arguments)")]
    AlreadyLoaded {
        /// The plugin.
        name: String,
    },
    /// The plugin is not loaded.
    #[error("plugin {name:?} is not loaded (loaded: {loaded})")]
    NotLoaded {
        /// The plugin.
        name: String,
        /// The plugins that are.
        loaded: String,
    },
    /// A PPP callback the plugin does not offer.
    #[error("plugin {plugin} has no PPP callback {name:?}; it offers: {available}")]
    UnknownPpp {
        /// The plugin.
        plugin: String,
        /// The PPP name asked for.
        name: String,
        /// What it offers.
        available: String,
    },
    /// A typed PPP registration whose event type is not the declared one.
    #[error("PPP callback {plugin}:{name} passes a {expected}, not the type asked for")]
    PppType {
        /// The plugin.
        plugin: String,
        /// The PPP name.
        name: String,
        /// The type it passes.
        expected: &'static str,
    },
    /// The plugin offers no API of the type asked for.
    #[error("plugin {plugin} offers no API of type {wanted}")]
    NoApi {
        /// The plugin.
        plugin: String,
        /// The type asked for.
        wanted: &'static str,
    },
    /// A PPP callback name already registered.
    #[error(
        "a PPP callback named {name:?} is already registered; remove it first or pick another name"
    )]
    DuplicatePpp {
        /// The name.
        name: String,
    },
    /// An OS-introspecting plugin has no kernel profile.
    #[error("no kernel profile for OS introspection: {why}")]
    NoKernelProfile {
        /// Why.
        why: String,
    },
    /// A plugin another loaded plugin needs.
    #[error("plugin {name} is needed by plugin {by}: unload {by} first")]
    Required {
        /// The plugin.
        name: String,
        /// The plugin that needs it.
        by: String,
    },
    /// The callback registry refused a registration.
    #[error(transparent)]
    Instrument(#[from] InstrumentError),
    /// A file could not be read or written.
    #[error("plugin {plugin}: cannot {action} {path}: {source}")]
    Io {
        /// The plugin.
        plugin: &'static str,
        /// `read` or `write`.
        action: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// A loaded plugin: what stays with the manager after its callbacks were registered.
pub trait Plugin: Send {
    /// Called once its callbacks have been removed from the registry: writes its outputs
    /// and returns a short report of what it found and wrote.
    fn unload(&mut self) -> Result<String, PluginError>;

    /// The functions the plugin offers other code (PANDA's plugin exports), as a handle of
    /// the plugin's own type, which [`Plugins::api`] hands out. Most plugins offer none.
    fn api(&self) -> Option<Box<dyn std::any::Any>> {
        None
    }
}

/// Creates a plugin: reads its arguments and registers its callbacks.
pub type CreateFn = fn(&Args, &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError>;

/// What the manager knows about a plugin before it is loaded.
#[derive(Clone, Copy, Debug)]
pub struct PluginInfo {
    /// Its name (PANDA's where PANDA has the plugin).
    pub name: &'static str,
    /// One line: what it does.
    pub description: &'static str,
    /// The arguments it accepts.
    pub arguments: &'static [ArgInfo],
    /// The PPP callbacks it runs.
    pub ppp: &'static [PppInfo],
    /// Loads it.
    pub create: CreateFn,
}

/// The built-in plugins.
pub const BUILTIN: &[PluginInfo] = &[
    asid_instr_count::INFO,
    coverage::INFO,
    hooks2::INFO,
    hypercaller::INFO,
    osi::INFO,
    osi::LINUX_INFO,
    pc_search::INFO,
    proc_start_linux::INFO,
    stringsearch::INFO,
    syscalls2::INFO,
    syscalls_logger::INFO,
];

/// The plugins a plugin needs loaded before it (PANDA's `panda_require`): loading it loads
/// them first (with no arguments) when they are not loaded yet, and they cannot be
/// unloaded while it is.
const REQUIRES: &[(&str, &[&str])] = &[
    ("hooks2", &["syscalls2"]),
    ("proc_start_linux", &["syscalls2"]),
    ("syscalls_logger", &["syscalls2"]),
];

/// Plugins whose PPP callbacks depend on the guest's kernel and are declared from its
/// profile: front ends may register on them before the plugin loads.
type DeclareFn = fn(&pandare_osi::Profile) -> Vec<PppPoint>;
const PPP_FROM_PROFILE: &[(&str, DeclareFn)] = &[("syscalls2", syscalls2::ppp_points)];

fn requires(name: &str) -> &'static [&'static str] {
    REQUIRES
        .iter()
        .find(|(plugin, _)| *plugin == name)
        .map_or(&[], |(_, needed)| needed)
}

/// Where plugins register and remove their callbacks: a machine's registry directly, or
/// through a [`Controller`] while the machine runs (the changes then take effect at the
/// next block boundary, and registration errors are reported by
/// [`Instrumentation::take_errors`]).
#[derive(Debug)]
pub enum Target<'a> {
    /// The registry itself.
    Now(&'a mut Instrumentation),
    /// A controller of the registry.
    Queued(&'a Controller),
}

impl<'a> From<&'a mut Instrumentation> for Target<'a> {
    fn from(instrumentation: &'a mut Instrumentation) -> Target<'a> {
        Target::Now(instrumentation)
    }
}

impl<'a> From<&'a Controller> for Target<'a> {
    fn from(controller: &'a Controller) -> Target<'a> {
        Target::Queued(controller)
    }
}

impl Target<'_> {
    fn reborrow(&mut self) -> Target<'_> {
        match self {
            Target::Now(instrumentation) => Target::Now(instrumentation),
            Target::Queued(controller) => Target::Queued(controller),
        }
    }

    fn register(&mut self, name: &str, callback: Callback) -> Result<(), PluginError> {
        match self {
            Target::Now(instrumentation) => Ok(instrumentation.register(name, callback)?),
            Target::Queued(controller) => {
                controller.register(name, callback);
                Ok(())
            }
        }
    }

    fn add_hook(
        &mut self,
        name: &str,
        hook: pandare_core::instrument::AddressHook,
        callback: pandare_core::instrument::HookFn,
    ) -> Result<(), PluginError> {
        match self {
            Target::Now(instrumentation) => Ok(instrumentation.add_hook(name, hook, callback)?),
            Target::Queued(controller) => {
                controller.add_hook(name, hook, callback);
                Ok(())
            }
        }
    }

    fn delete(&mut self, name: &str) {
        // A front end may have deleted it by name already.
        match self {
            Target::Now(instrumentation) => {
                let _ = instrumentation.delete(name);
            }
            Target::Queued(controller) => controller.delete(name),
        }
    }
}

/// What a plugin registers its callbacks through while it loads.
pub struct LoadContext<'a> {
    plugin: &'static str,
    target: Target<'a>,
    ppp: &'a Ppp,
    kernel: &'a KernelSource,
    names: Vec<String>,
    loaded: Vec<&'static str>,
    ppp_names: Vec<String>,
    runtime: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

/// Adds address hooks while the machine runs (through a [`Controller`], so they take
/// effect at the next block boundary), under the plugin's name prefix; the manager removes
/// them when the plugin unloads.
#[derive(Clone)]
pub struct RuntimeRegistry {
    plugin: &'static str,
    controller: Controller,
    names: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl std::fmt::Debug for RuntimeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeRegistry")
            .field("plugin", &self.plugin)
            .finish_non_exhaustive()
    }
}

impl RuntimeRegistry {
    /// Adds `hook` as `PLUGIN:name` (the name must be new).
    pub fn add_hook(&self, name: &str, hook: AddressHook, callback: HookFn) {
        let full = format!("{}:{name}", self.plugin);
        self.controller.add_hook(&full, hook, callback);
        lock(&self.names).push(full);
    }

    /// Enables the plugin's callback or hook `PLUGIN:name`.
    pub fn enable(&self, name: &str) {
        self.controller.enable(&format!("{}:{name}", self.plugin));
    }

    /// Disables the plugin's callback or hook `PLUGIN:name`.
    pub fn disable(&self, name: &str) {
        self.controller.disable(&format!("{}:{name}", self.plugin));
    }
}

/// Where the plugins' kernel profile comes from: derived from the kernel image the
/// machine booted (once, when a plugin first asks), or given (a recording's).
#[derive(Debug, Default)]
pub struct KernelSource {
    image: Option<std::path::PathBuf>,
    profile: std::sync::OnceLock<Result<std::sync::Arc<pandare_osi::Profile>, String>>,
}

impl KernelSource {
    /// The profile, derived on the first call.
    pub fn profile(&self) -> Result<std::sync::Arc<pandare_osi::Profile>, PluginError> {
        self.profile
            .get_or_init(|| {
                let image = self.image.as_ref().ok_or_else(|| {
                    "the machine was not given a kernel image to derive a profile from".to_string()
                })?;
                pandare_osi::Profile::load_or_derive_cached(image)
                    .map(std::sync::Arc::new)
                    .map_err(|error| format!("kernel {}: {error}", image.display()))
            })
            .clone()
            .map_err(|why| PluginError::NoKernelProfile { why })
    }
}

impl std::fmt::Debug for LoadContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadContext")
            .field("plugin", &self.plugin)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl LoadContext<'_> {
    /// Registers `callback` as `PLUGIN:name`, removed when the plugin unloads.
    pub fn register(&mut self, name: &str, callback: Callback) -> Result<(), PluginError> {
        let full = format!("{}:{name}", self.plugin);
        self.target.register(&full, callback)?;
        self.names.push(full);
        Ok(())
    }

    /// Adds an address hook as `PLUGIN:name`, removed when the plugin unloads.
    pub fn add_hook(
        &mut self,
        name: &str,
        hook: pandare_core::instrument::AddressHook,
        callback: pandare_core::instrument::HookFn,
    ) -> Result<(), PluginError> {
        let full = format!("{}:{name}", self.plugin);
        self.target.add_hook(&full, hook, callback)?;
        self.names.push(full);
        Ok(())
    }

    /// The manager's PPP lists, for the plugin to run its PPP callbacks from its callbacks.
    pub fn ppp(&self) -> Ppp {
        self.ppp.clone()
    }

    /// Whether plugin `name` is loaded already (for plugins known under two names).
    pub fn is_loaded(&self, name: &str) -> bool {
        self.loaded.contains(&name)
    }

    /// The plugin's name.
    pub fn plugin(&self) -> &'static str {
        self.plugin
    }

    /// The guest kernel's profile, for plugins that introspect the OS.
    pub fn kernel_profile(&self) -> Result<std::sync::Arc<pandare_osi::Profile>, PluginError> {
        self.kernel.profile()
    }

    /// Declares the PPP callbacks the plugin runs that are known only now (from the
    /// guest's kernel), besides its static [`PluginInfo::ppp`].
    pub fn declare_ppp(&mut self, points: Vec<PppPoint>) {
        self.ppp.declare(self.plugin, points);
    }

    /// Registers a typed closure on another plugin's PPP callback `point` (a plugin this one
    /// requires), removed when this plugin unloads.
    pub fn listen_ppp<E: PppEvent>(
        &mut self,
        plugin: &str,
        point: &str,
        callback: impl FnMut(&mut dyn GuestCpu, &E) + Send + 'static,
    ) -> Result<(), PluginError> {
        let name = format!("{}:{plugin}:{point}", self.plugin);
        self.ppp
            .add_typed(plugin, point, &name, callback)
            .map_err(|ppp::DuplicatePppName(name)| PluginError::DuplicatePpp { name })?;
        self.ppp_names.push(name);
        Ok(())
    }

    /// A handle for adding hooks from the plugin's callbacks while the machine runs.
    pub fn runtime(&mut self) -> RuntimeRegistry {
        let controller = match &mut self.target {
            Target::Now(instrumentation) => instrumentation.controller(),
            Target::Queued(controller) => (*controller).clone(),
        };
        RuntimeRegistry {
            plugin: self.plugin,
            controller,
            names: std::sync::Arc::clone(&self.runtime),
        }
    }
}

struct Loaded {
    name: &'static str,
    callbacks: Vec<String>,
    ppp_names: Vec<String>,
    runtime: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    plugin: Box<dyn Plugin>,
}

/// The plugins available to one machine, the loaded ones, and their PPP callbacks.
pub struct Plugins {
    available: Vec<PluginInfo>,
    loaded: Vec<Loaded>,
    ppp: Ppp,
    kernel: KernelSource,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins")
            .field("loaded", &self.loaded())
            .finish_non_exhaustive()
    }
}

impl Default for Plugins {
    fn default() -> Self {
        Plugins::new()
    }
}

impl Plugins {
    /// A manager offering the built-in plugins, none loaded.
    pub fn new() -> Plugins {
        Plugins {
            available: BUILTIN.to_vec(),
            loaded: Vec::new(),
            ppp: Ppp::default(),
            kernel: KernelSource::default(),
        }
    }

    /// Says which kernel image the machine booted: OS-introspecting plugins derive their
    /// profile from it when they first need it.
    pub fn set_kernel_image(&mut self, image: impl Into<std::path::PathBuf>) {
        self.kernel = KernelSource {
            image: Some(image.into()),
            profile: std::sync::OnceLock::new(),
        };
    }

    /// Gives the kernel profile directly (a recording's).
    pub fn set_kernel_profile(&mut self, profile: std::sync::Arc<pandare_osi::Profile>) {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(Ok(profile));
        self.kernel = KernelSource {
            image: None,
            profile: cell,
        };
    }

    /// Says there is no kernel profile to be had, and why (a recording made without
    /// one): OS-introspecting plugins then fail to load with `why`.
    pub fn set_kernel_unavailable(&mut self, why: impl Into<String>) {
        let cell = std::sync::OnceLock::new();
        let _ = cell.set(Err(why.into()));
        self.kernel = KernelSource {
            image: None,
            profile: cell,
        };
    }

    /// The kernel profile, derived on first use.
    pub fn kernel_profile(&self) -> Result<std::sync::Arc<pandare_osi::Profile>, PluginError> {
        self.kernel.profile()
    }

    /// Offers one's own plugin (replacing a plugin of the same name).
    pub fn add_plugin(&mut self, info: PluginInfo) {
        self.available.retain(|known| known.name != info.name);
        self.available.push(info);
    }

    /// The plugins that can be loaded, by name.
    pub fn available(&self) -> Vec<PluginInfo> {
        let mut list = self.available.clone();
        list.sort_by_key(|info| info.name);
        list
    }

    /// The plugin called `name`.
    pub fn info(&self, name: &str) -> Result<PluginInfo, PluginError> {
        self.available
            .iter()
            .find(|info| info.name == name)
            .copied()
            .ok_or_else(|| PluginError::UnknownPlugin {
                name: name.to_string(),
                available: self.names(),
            })
    }

    fn names(&self) -> String {
        self.available()
            .iter()
            .map(|info| info.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The names of the loaded plugins, in load order.
    pub fn loaded(&self) -> Vec<&'static str> {
        self.loaded.iter().map(|loaded| loaded.name).collect()
    }

    /// The names of the callbacks the loaded plugins registered (`PLUGIN:name`).
    pub fn callback_names(&self) -> Vec<String> {
        self.loaded
            .iter()
            .flat_map(|loaded| loaded.callbacks.iter().cloned())
            .collect()
    }

    /// Whether plugin `name` is loaded.
    pub fn is_loaded(&self, name: &str) -> bool {
        self.loaded.iter().any(|loaded| loaded.name == name)
    }

    /// Loads a plugin from PANDA's `name:key=value,...` syntax.
    pub fn load_spec<'t>(
        &mut self,
        target: impl Into<Target<'t>>,
        spec: &str,
    ) -> Result<(), PluginError> {
        let (name, pairs) = parse_spec(spec)?;
        self.load(target, &name, pairs)
    }

    /// Checks that plugin `name` would load with `arguments`, values included (numbers,
    /// files it reads, ...), without loading it: its constructor runs against a scratch
    /// registry and the plugin is dropped without unloading, so it writes no output.
    pub fn check(
        &self,
        name: &str,
        arguments: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), PluginError> {
        let info = self.info(name)?;
        let args = Args::new(&info, arguments)?;
        let mut scratch = Instrumentation::new();
        let ppp = Ppp::default();
        let mut context = LoadContext {
            plugin: info.name,
            target: Target::Now(&mut scratch),
            ppp: &ppp,
            kernel: &self.kernel,
            names: Vec::new(),
            loaded: self.loaded(),
            ppp_names: Vec::new(),
            runtime: std::sync::Arc::default(),
        };
        (info.create)(&args, &mut context).map(drop)
    }

    /// Loads plugin `name` with `arguments` (key, value) into a registry (or through its
    /// controller).
    pub fn load<'t>(
        &mut self,
        target: impl Into<Target<'t>>,
        name: &str,
        arguments: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), PluginError> {
        let info = self.info(name)?;
        if self.is_loaded(info.name) {
            return Err(PluginError::AlreadyLoaded {
                name: info.name.to_string(),
            });
        }
        let args = Args::new(&info, arguments)?;
        let mut target = target.into();
        for needed in requires(info.name) {
            if !self.is_loaded(needed) {
                self.load(target.reborrow(), needed, Vec::new())?;
            }
        }
        let mut context = LoadContext {
            plugin: info.name,
            target,
            ppp: &self.ppp,
            kernel: &self.kernel,
            names: Vec::new(),
            loaded: self.loaded(),
            ppp_names: Vec::new(),
            runtime: std::sync::Arc::default(),
        };
        match (info.create)(&args, &mut context) {
            Ok(plugin) => {
                self.loaded.push(Loaded {
                    name: info.name,
                    callbacks: context.names,
                    ppp_names: context.ppp_names,
                    runtime: context.runtime,
                    plugin,
                });
                Ok(())
            }
            Err(error) => {
                for callback in &context.names {
                    context.target.delete(callback);
                }
                for callback in lock(&context.runtime).iter() {
                    context.target.delete(callback);
                }
                for name in &context.ppp_names {
                    self.ppp.remove(name);
                }
                Err(error)
            }
        }
    }

    /// Unloads plugin `name`: removes its callbacks, then lets it write its outputs.
    /// Returns its report.
    pub fn unload<'t>(
        &mut self,
        target: impl Into<Target<'t>>,
        name: &str,
    ) -> Result<String, PluginError> {
        let mut target = target.into();
        let Some(index) = self.loaded.iter().position(|loaded| loaded.name == name) else {
            self.info(name)?;
            return Err(PluginError::NotLoaded {
                name: name.to_string(),
                loaded: self.loaded_list(),
            });
        };
        if let Some(user) = self
            .loaded
            .iter()
            .find(|loaded| requires(loaded.name).contains(&name))
        {
            return Err(PluginError::Required {
                name: name.to_string(),
                by: user.name.to_string(),
            });
        }
        let mut loaded = self.loaded.remove(index);
        for callback in &loaded.callbacks {
            target.delete(callback);
        }
        for callback in lock(&loaded.runtime).iter() {
            target.delete(callback);
        }
        for name in &loaded.ppp_names {
            self.ppp.remove(name);
        }
        loaded.plugin.unload()
    }

    fn loaded_list(&self) -> String {
        if self.loaded.is_empty() {
            "none".to_string()
        } else {
            self.loaded().join(", ")
        }
    }

    /// Unloads every plugin, last loaded first; returns their reports. Every plugin is
    /// unloaded even when one fails to write its outputs; the first error is returned.
    pub fn unload_all<'t>(
        &mut self,
        target: impl Into<Target<'t>>,
    ) -> Result<Vec<String>, PluginError> {
        let mut target = target.into();
        let mut reports = Vec::new();
        let mut first_error = None;
        while let Some(loaded) = self.loaded.last() {
            let name = loaded.name;
            match self.unload(target.reborrow(), name) {
                Ok(report) => reports.push(report),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(reports),
        }
    }

    /// The PPP callback `name` of `plugin`: declared statically, declared by the loaded
    /// plugin, or (for plugins that declare theirs from the kernel) from the profile.
    fn ppp_info(&self, plugin: &str, name: &str) -> Result<(PluginInfo, PppPoint), PluginError> {
        let info = self.info(plugin)?;
        if let Some(point) = info.ppp.iter().find(|point| point.name == name) {
            return Ok((info, PppPoint::from(point)));
        }
        if let Some(point) = self.ppp.declared(info.name, name) {
            return Ok((info, point));
        }
        let from_profile = PPP_FROM_PROFILE
            .iter()
            .find(|(known, _)| *known == info.name)
            .map(|(_, declare)| declare);
        let mut declared = 0;
        if let Some(declare) = from_profile {
            if self.ppp.declared_count(info.name) == 0 {
                let profile = self.kernel.profile()?;
                let points = declare(&profile);
                let found = points.iter().find(|point| point.name == name).cloned();
                declared = points.len();
                self.ppp.declare(info.name, points);
                if let Some(point) = found {
                    return Ok((info, point));
                }
            } else {
                declared = self.ppp.declared_count(info.name);
            }
        }
        let mut available: Vec<&str> = info.ppp.iter().map(|point| point.name).collect();
        let more;
        if declared > 0 {
            more = format!("and {declared} declared from the guest's kernel");
            available.push(&more);
        }
        Err(PluginError::UnknownPpp {
            plugin: plugin.to_string(),
            name: name.to_string(),
            available: if available.is_empty() {
                "none".to_string()
            } else {
                available.join(", ")
            },
        })
    }

    /// Registers a typed closure as `callback_name` on `plugin`'s PPP callback `name`
    /// (PANDA's `PPP_REG_CB`). The plugin need not be loaded yet.
    pub fn register_ppp<E: PppEvent>(
        &mut self,
        plugin: &str,
        name: &str,
        callback_name: &str,
        callback: impl FnMut(&mut dyn GuestCpu, &E) + Send + 'static,
    ) -> Result<(), PluginError> {
        let (info, point) = self.ppp_info(plugin, name)?;
        if point.event_type != std::any::TypeId::of::<E>() {
            return Err(PluginError::PppType {
                plugin: info.name.to_string(),
                name: point.name.clone(),
                expected: point.event_type_name,
            });
        }
        self.ppp
            .add(info.name, &point.name, callback_name, ppp::typed(callback))
            .map_err(|ppp::DuplicatePppName(name)| PluginError::DuplicatePpp { name })
    }

    /// Registers a closure over the event's plain values (for front ends such as Python's
    /// `@panda.ppp`). Returns the PPP callback's declared signature.
    pub fn register_ppp_values(
        &mut self,
        plugin: &str,
        name: &str,
        callback_name: &str,
        callback: impl FnMut(&mut dyn GuestCpu, &[PppValue]) + Send + 'static,
    ) -> Result<&'static str, PluginError> {
        let (info, point) = self.ppp_info(plugin, name)?;
        self.ppp
            .add(info.name, &point.name, callback_name, ppp::plain(callback))
            .map_err(|ppp::DuplicatePppName(name)| PluginError::DuplicatePpp { name })?;
        Ok(point.signature)
    }

    /// Removes the PPP callback registered as `callback_name` (PyPANDA's `disable_ppp`);
    /// whether there was one.
    pub fn remove_ppp(&mut self, callback_name: &str) -> bool {
        self.ppp.remove(callback_name)
    }

    /// The API handle loaded plugin `name` offers (e.g. `hypercaller`'s
    /// [`hypercaller::Hypercalls`]).
    pub fn api<T: 'static>(&self, name: &str) -> Result<T, PluginError> {
        let Some(loaded) = self.loaded.iter().find(|loaded| loaded.name == name) else {
            self.info(name)?;
            return Err(PluginError::NotLoaded {
                name: name.to_string(),
                loaded: self.loaded_list(),
            });
        };
        loaded
            .plugin
            .api()
            .and_then(|api| api.downcast::<T>().ok())
            .map(|api| *api)
            .ok_or_else(|| PluginError::NoApi {
                plugin: name.to_string(),
                wanted: std::any::type_name::<T>(),
            })
    }

    /// The PPP lists, for plugins added with [`Plugins::add_plugin`] and for tests.
    pub fn ppp(&self) -> &Ppp {
        &self.ppp
    }
}
