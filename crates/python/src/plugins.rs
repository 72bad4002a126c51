//! Plugins from Python: `Panda.load_plugin`, `unload_plugin`, `unload_plugins` and
//! `@panda.ppp`, over `pandare-plugins`.
//!
//! As in PyPANDA, plugins belong to a run: `load_plugin` before `run()` (or
//! `run_replay()`) checks the plugin and its arguments at once (an unknown name is a
//! `ValueError` listing the plugins) and the plugin is loaded into the run's machine when
//! the run starts; when the run ends every plugin unloads, writing its files and printing
//! its report to stderr. During a run, loading and unloading go through the registry's
//! controller and take effect at the next block boundary. PPP callbacks stay registered
//! across runs until `disable_ppp`.

use std::sync::{Arc, Weak};

use pandare_core::instrument::Instrumentation;
use pandare_plugins::{PluginError, Plugins, PppValue};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

use crate::core::Core;
use crate::shared::{lock, Shared};

/// The plugins of one `Core`.
#[derive(Default)]
pub(crate) struct PluginState {
    pub(crate) plugins: Plugins,
    /// Plugins asked for, with their arguments, in order: loaded into each run's machine.
    wanted: Vec<(String, Vec<(String, String)>)>,
    /// The kernel image the live machine boots (what OS introspection derives its profile
    /// from; a replay uses its recording's profile meanwhile).
    kernel: Option<std::path::PathBuf>,
    /// Whether a replay's profile replaced the live kernel's.
    replay_profile: bool,
    /// The walks' view of the kernel for the current profile (building one resolves
    /// every offset the walks use, too slow to do per call).
    pub(crate) walker: Option<(Arc<pandare_osi::Profile>, Arc<pandare_osi::Kernel>)>,
}

impl PluginState {
    /// Plugins for a machine booting `kernel`.
    pub(crate) fn for_kernel(kernel: &std::path::Path) -> PluginState {
        let mut plugins = Plugins::new();
        plugins.set_kernel_image(kernel);
        PluginState {
            plugins,
            wanted: Vec::new(),
            kernel: Some(kernel.to_path_buf()),
            replay_profile: false,
            walker: None,
        }
    }

    /// Uses a recording's kernel profile during its replay (`Err`: why it has none).
    pub(crate) fn use_recorded_profile(
        &mut self,
        profile: Result<Arc<pandare_osi::Profile>, String>,
    ) {
        self.replay_profile = true;
        match profile {
            Ok(profile) => self.plugins.set_kernel_profile(profile),
            Err(why) => self.plugins.set_kernel_unavailable(why),
        }
    }

    /// Back to the live machine's kernel after a replay (nothing to do after a live run).
    pub(crate) fn use_live_kernel(&mut self) {
        if !std::mem::take(&mut self.replay_profile) {
            return;
        }
        match &self.kernel {
            Some(kernel) => self.plugins.set_kernel_image(kernel.clone()),
            None => self
                .plugins
                .set_kernel_unavailable("the machine was not given a kernel image"),
        }
    }

    /// The kernel profile: derived from the live kernel (once), or a replay's.
    pub(crate) fn kernel_profile(&self) -> Result<Arc<pandare_osi::Profile>, PluginError> {
        self.plugins.kernel_profile()
    }
}

fn value_error(error: PluginError) -> PyErr {
    PyValueError::new_err(error.to_string())
}

/// Loads the plugins asked for into the machine of the run that starts.
pub(crate) fn attach(shared: &Shared, instrumentation: &mut Instrumentation) -> PyResult<()> {
    let mut state = lock(&shared.plugins);
    let state = &mut *state;
    for (name, arguments) in &state.wanted {
        if !state.plugins.is_loaded(name) {
            state
                .plugins
                .load(&mut *instrumentation, name, arguments.clone())
                .map_err(value_error)?;
        }
    }
    Ok(())
}

/// Unloads every plugin when a run ends: they write their files, and their reports go to
/// stderr (PyPANDA's `run()` unloads its plugins when it returns).
pub(crate) fn detach(shared: &Shared, instrumentation: &mut Instrumentation) -> PyResult<()> {
    let mut state = lock(&shared.plugins);
    state.wanted.clear();
    let reports = state
        .plugins
        .unload_all(instrumentation)
        .map_err(|error| PyRuntimeError::new_err(error.to_string()));
    state.use_live_kernel();
    for report in reports? {
        eprintln!("{report}");
    }
    Ok(())
}

/// `Panda.load_plugin(name, args)`: `arguments` are (key, value) pairs.
#[pyfunction]
pub(crate) fn load_plugin(
    core: &Core,
    name: &str,
    arguments: Vec<(String, String)>,
) -> PyResult<()> {
    let shared = &core.shared;
    let mut state = lock(&shared.plugins);
    state
        .plugins
        .check(name, arguments.clone())
        .map_err(value_error)?;
    if state.wanted.iter().any(|(wanted, _)| wanted == name) {
        return Err(value_error(PluginError::AlreadyLoaded {
            name: name.to_string(),
        }));
    }
    let controller = lock(&shared.controller).clone();
    if let Some(controller) = controller {
        state
            .plugins
            .load(&controller, name, arguments.clone())
            .map_err(value_error)?;
    }
    state.wanted.push((name.to_string(), arguments));
    Ok(())
}

/// `Panda.unload_plugin(name)`: returns the plugin's report ("" when it was only asked
/// for, not loaded into a running machine yet).
#[pyfunction]
pub(crate) fn unload_plugin(core: &Core, name: &str) -> PyResult<String> {
    let shared = &core.shared;
    let mut state = lock(&shared.plugins);
    let Some(index) = state.wanted.iter().position(|(wanted, _)| wanted == name) else {
        state.plugins.info(name).map_err(value_error)?;
        let loaded: Vec<&str> = state.wanted.iter().map(|(name, _)| name.as_str()).collect();
        return Err(value_error(PluginError::NotLoaded {
            name: name.to_string(),
            loaded: if loaded.is_empty() {
                "none".to_string()
            } else {
                loaded.join(", ")
            },
        }));
    };
    state.wanted.remove(index);
    if !state.plugins.is_loaded(name) {
        return Ok(String::new());
    }
    let controller = lock(&shared.controller).clone();
    let Some(controller) = controller else {
        return Err(PyRuntimeError::new_err(format!(
            "plugin {name} is loaded but no run is in progress"
        )));
    };
    state
        .plugins
        .unload(&controller, name)
        .map_err(|error| PyRuntimeError::new_err(error.to_string()))
}

/// The plugins asked for (loaded, or to be loaded when the run starts).
#[pyfunction]
pub(crate) fn loaded_plugins(core: &Core) -> Vec<String> {
    lock(&core.shared.plugins)
        .wanted
        .iter()
        .map(|(name, _)| name.clone())
        .collect()
}

/// `(name, description)` of every plugin that exists.
#[pyfunction]
pub(crate) fn available_plugins() -> Vec<(&'static str, &'static str)> {
    Plugins::new()
        .available()
        .iter()
        .map(|info| (info.name, info.description))
        .collect()
}

/// `@panda.ppp(plugin, name)`: calls `function(cpu, values...)` for each event of PPP
/// callback `name` of `plugin`. Returns its signature.
#[pyfunction]
pub(crate) fn register_ppp(
    core: &Core,
    plugin: &str,
    name: &str,
    callback_name: &str,
    function: Py<PyAny>,
) -> PyResult<&'static str> {
    // Weak: the PPP lists live in `Shared`, so a strong reference would be a cycle.
    let shared: Weak<Shared> = Arc::downgrade(&core.shared);
    let mut state = lock(&core.shared.plugins);
    state
        .plugins
        .register_ppp_values(plugin, name, callback_name, move |cpu, values| {
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let Some(context) = lock(&shared.context).clone() else {
                return;
            };
            context.call(cpu, |py, cpu_object, _| {
                let mut arguments: Vec<Bound<'_, PyAny>> =
                    vec![cpu_object.bind(py).clone().into_any()];
                for value in values {
                    arguments.push(match value {
                        PppValue::U64(number) => number.into_pyobject(py)?.into_any(),
                        PppValue::I64(number) => number.into_pyobject(py)?.into_any(),
                        PppValue::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
                        PppValue::Bytes(bytes) => PyBytes::new(py, bytes).into_any(),
                    });
                }
                function.call1(py, PyTuple::new(py, arguments)?).map(drop)
            });
        })
        .map_err(value_error)
}

/// `panda.disable_ppp(name)`: whether a PPP callback by that name was registered.
#[pyfunction]
pub(crate) fn remove_ppp(core: &Core, callback_name: &str) -> bool {
    lock(&core.shared.plugins).plugins.remove_ppp(callback_name)
}

/// Adds the functions to the extension module.
pub(crate) fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(load_plugin, module)?)?;
    module.add_function(wrap_pyfunction!(unload_plugin, module)?)?;
    module.add_function(wrap_pyfunction!(loaded_plugins, module)?)?;
    module.add_function(wrap_pyfunction!(available_plugins, module)?)?;
    module.add_function(wrap_pyfunction!(register_ppp, module)?)?;
    module.add_function(wrap_pyfunction!(remove_ppp, module)?)?;
    Ok(())
}
