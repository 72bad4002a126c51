//! OS introspection from Python: what `panda.get_current_process`, `get_processes`,
//! `get_mappings`, `panda.plugins['osi']` and the `procname=` filters read, through the
//! walks of `pandare-osi` over the kernel profile the plugin manager holds (derived from
//! the booted kernel, or a replay's recorded one).
//!
//! Each function takes the `CPUState` of a callback (the CPU lent to it) or of
//! `panda.get_cpu()` (then the walk runs on the machine thread between slices). Records
//! cross to Python as tuples; `pandare/osi.py` turns them into PANDA's `OsiProc`,
//! `OsiModule` and `OsiThread`.

use std::sync::Arc;

use pandare_core::instrument::GuestCpu;
use pandare_osi::kernel::{Mapping, Process, Thread};
use pandare_osi::{Kernel, Profile, WalkError};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::core::Core;
use crate::cpu_state::CpuState;
use crate::shared::{lock, Fail};

/// The kernel profile, or a `ValueError` saying why there is none.
pub(crate) fn profile(core: &Core) -> PyResult<Arc<Profile>> {
    lock(&core.shared.plugins)
        .kernel_profile()
        .map_err(|error| PyValueError::new_err(error.to_string()))
}

/// The walks' view of the kernel (built once per profile), if built already, and the
/// profile.
fn cached_kernel(core: &Core) -> PyResult<(Arc<Profile>, Option<Arc<Kernel>>)> {
    let state = lock(&core.shared.plugins);
    let profile = state
        .kernel_profile()
        .map_err(|error| PyValueError::new_err(error.to_string()))?;
    let kernel = match &state.walker {
        Some((built_for, kernel)) if Arc::ptr_eq(built_for, &profile) => Some(Arc::clone(kernel)),
        _ => None,
    };
    Ok((profile, kernel))
}

/// Runs `walk` over the kernel on `cpu`.
pub(crate) fn with_kernel<R: Send + 'static>(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
    walk: impl FnOnce(&Kernel, &mut dyn GuestCpu) -> Result<R, WalkError> + Send + 'static,
) -> PyResult<Result<R, WalkError>> {
    let (profile, kernel) = cached_kernel(core)?;
    let shared = Arc::clone(&core.shared);
    cpu.access(py, move |cpu| {
        let kernel = match kernel {
            Some(kernel) => kernel,
            None => {
                let kernel = Arc::new(
                    Kernel::new(Arc::clone(&profile), cpu)
                        .map_err(|error| Fail::Value(error.to_string()))?,
                );
                lock(&shared.plugins).walker = Some((profile, Arc::clone(&kernel)));
                kernel
            }
        };
        Ok(walk(&kernel, cpu))
    })
}

/// A list walk's result, or a `RuntimeError` saying why it stopped.
fn listed<R>(result: Result<R, WalkError>) -> PyResult<R> {
    result.map_err(|error| PyRuntimeError::new_err(format!("OS introspection: {error}")))
}

/// `(taskd, asid, page_table, pid, ppid, name, pages, create_time)`.
type ProcessTuple<'py> = (u64, u64, u64, u32, u32, Bound<'py, PyBytes>, u64, u64);

fn process_tuple<'py>(py: Python<'py>, process: &Process) -> ProcessTuple<'py> {
    (
        process.task,
        process.asid,
        process.page_table,
        process.pid,
        process.ppid,
        PyBytes::new(py, &process.name),
        process.pages,
        process.create_time,
    )
}

/// `(modd, base, size, file, name, offset, flags)`; `file` and `name` are `None` for
/// anonymous memory.
type MappingTuple = (u64, u64, u64, Option<String>, Option<String>, u64, u64);

fn mapping_tuple(mapping: &Mapping) -> MappingTuple {
    (
        mapping.area,
        mapping.base,
        mapping.size,
        mapping.file.clone(),
        mapping.name.clone(),
        mapping.offset,
        mapping.flags,
    )
}

fn thread_tuple(thread: &Thread) -> (u32, u32, u64) {
    (thread.pid, thread.tid, thread.task)
}

/// The current process, `None` when the kernel has none yet (early boot) or its
/// structures cannot be read.
#[pyfunction]
pub(crate) fn osi_current_process<'py>(
    py: Python<'py>,
    core: &Core,
    cpu: &CpuState,
) -> PyResult<Option<ProcessTuple<'py>>> {
    let result = with_kernel(py, core, cpu, |kernel, cpu| kernel.current_process(cpu))?;
    Ok(result.ok().map(|process| process_tuple(py, &process)))
}

/// Every process (thread-group leaders), in the kernel's task-list order.
#[pyfunction]
pub(crate) fn osi_processes<'py>(
    py: Python<'py>,
    core: &Core,
    cpu: &CpuState,
) -> PyResult<Vec<ProcessTuple<'py>>> {
    let processes = listed(with_kernel(py, core, cpu, |kernel, cpu| {
        kernel.processes(cpu)
    })?)?;
    Ok(processes
        .iter()
        .map(|process| process_tuple(py, process))
        .collect())
}

/// The current thread `(pid, tid, task)`, `None` when it cannot be read.
#[pyfunction]
pub(crate) fn osi_current_thread(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
) -> PyResult<Option<(u32, u32, u64)>> {
    let result = with_kernel(py, core, cpu, |kernel, cpu| kernel.current_thread(cpu))?;
    Ok(result.ok().map(|thread| thread_tuple(&thread)))
}

/// The threads of the process whose `task_struct` is at `task` (the current one when
/// `None`).
#[pyfunction]
#[pyo3(signature = (core, cpu, task=None))]
pub(crate) fn osi_threads(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
    task: Option<u64>,
) -> PyResult<Vec<(u32, u32, u64)>> {
    let threads = listed(with_kernel(py, core, cpu, move |kernel, cpu| {
        let task = match task {
            Some(task) => task,
            None => kernel.current_process(cpu)?.task,
        };
        kernel.threads(cpu, task)
    })?)?;
    Ok(threads.iter().map(thread_tuple).collect())
}

/// The mappings of the process at `task` (the current one when `None`), by address.
#[pyfunction]
#[pyo3(signature = (core, cpu, task=None))]
pub(crate) fn osi_mappings(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
    task: Option<u64>,
) -> PyResult<Vec<MappingTuple>> {
    let mappings = listed(with_kernel(py, core, cpu, move |kernel, cpu| {
        let task = match task {
            Some(task) => task,
            None => kernel.current_process(cpu)?.task,
        };
        kernel.mappings(cpu, task)
    })?)?;
    Ok(mappings.iter().map(mapping_tuple).collect())
}

/// The current process's mapping that contains `address`, if any.
#[pyfunction]
pub(crate) fn osi_mapping_by_address(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
    address: u64,
) -> PyResult<Option<MappingTuple>> {
    let mapping = listed(with_kernel(py, core, cpu, move |kernel, cpu| {
        let task = kernel.current_process(cpu)?.task;
        kernel.mapping_by_address(cpu, task, address)
    })?)?;
    Ok(mapping.as_ref().map(mapping_tuple))
}

/// The path of file descriptor `fd` of the process at `task` (the current one when
/// `None`); `None` when the fd is not open or cannot be read.
#[pyfunction]
#[pyo3(signature = (core, cpu, fd, task=None))]
pub(crate) fn osi_fd_path(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
    fd: i64,
    task: Option<u64>,
) -> PyResult<Option<String>> {
    let Ok(fd) = u32::try_from(fd) else {
        return Ok(None);
    };
    let path = with_kernel(py, core, cpu, move |kernel, cpu| {
        let task = match task {
            Some(task) => task,
            None => kernel.current_process(cpu)?.task,
        };
        kernel.fd_path(cpu, task, fd)
    })?;
    Ok(path.ok().flatten())
}

/// The open file descriptors `(fd, path)` of the process at `task` (current when `None`).
#[pyfunction]
#[pyo3(signature = (core, cpu, task=None))]
pub(crate) fn osi_fds(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
    task: Option<u64>,
) -> PyResult<Vec<(u32, String)>> {
    listed(with_kernel(py, core, cpu, move |kernel, cpu| {
        let task = match task {
            Some(task) => task,
            None => kernel.current_process(cpu)?.task,
        };
        kernel.fds(cpu, task)
    })?)
}

/// The name of the running task (`comm`), `None` when it cannot be read. Cheaper than
/// the current process: no walk beyond the task itself.
#[pyfunction]
pub(crate) fn osi_current_name<'py>(
    py: Python<'py>,
    core: &Core,
    cpu: &CpuState,
) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let name = with_kernel(py, core, cpu, |kernel, cpu| {
        let task = kernel.current_task(cpu)?;
        kernel.task_name(cpu, task)
    })?;
    Ok(name.ok().map(|name| PyBytes::new(py, &name)))
}

/// Adds the functions to the extension module.
pub(crate) fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(osi_current_process, module)?)?;
    module.add_function(wrap_pyfunction!(osi_processes, module)?)?;
    module.add_function(wrap_pyfunction!(osi_current_thread, module)?)?;
    module.add_function(wrap_pyfunction!(osi_threads, module)?)?;
    module.add_function(wrap_pyfunction!(osi_mappings, module)?)?;
    module.add_function(wrap_pyfunction!(osi_mapping_by_address, module)?)?;
    module.add_function(wrap_pyfunction!(osi_fd_path, module)?)?;
    module.add_function(wrap_pyfunction!(osi_fds, module)?)?;
    module.add_function(wrap_pyfunction!(osi_current_name, module)?)?;
    Ok(())
}
