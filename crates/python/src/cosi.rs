//! `panda.cosi` from Python: the kernel's symbols and BTF types, for `pandare/cosi.py`'s
//! typed navigation of kernel memory (PyPANDA's `cosi`, without a Volatility profile).
//! Types cross as dictionaries keyed by BTF type id; Python caches them.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::core::Core;
use crate::cpu_state::CpuState;
use crate::osi::{profile, with_kernel};

fn kind_name(kind: pandare_osi::TypeKind) -> (&'static str, Option<bool>, Option<u32>) {
    use pandare_osi::TypeKind as K;
    match kind {
        K::Void => ("void", None, None),
        K::Int { signed, bits } => ("int", Some(signed), Some(bits)),
        K::Pointer => ("pointer", None, None),
        K::Array => ("array", None, None),
        K::Struct => ("struct", None, None),
        K::Union => ("union", None, None),
        K::Enum { signed } => ("enum", Some(signed), None),
        K::Forward { union } => (if union { "union" } else { "struct" }, None, None),
        K::Typedef => ("typedef", None, None),
        K::Volatile => ("volatile", None, None),
        K::Const => ("const", None, None),
        K::Restrict => ("restrict", None, None),
        K::Function => ("function", None, None),
        K::FunctionProto => ("function_proto", None, None),
        K::Variable => ("variable", None, None),
        K::DataSection => ("datasec", None, None),
        K::Float => ("float", None, None),
        K::DeclTag => ("decl_tag", None, None),
        K::TypeTag => ("type_tag", None, None),
    }
}

fn type_dict<'py>(py: Python<'py>, info: &pandare_osi::TypeInfo) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    let (kind, signed, bits) = kind_name(info.kind);
    dict.set_item("id", info.id)?;
    dict.set_item("kind", kind)?;
    dict.set_item(
        "forward",
        matches!(info.kind, pandare_osi::TypeKind::Forward { .. }),
    )?;
    dict.set_item("signed", signed)?;
    dict.set_item("bits", bits)?;
    dict.set_item("name", &info.name)?;
    dict.set_item("size", info.size)?;
    dict.set_item("target", info.target)?;
    dict.set_item("length", info.length)?;
    let members = PyList::empty(py);
    for member in &info.members {
        members.append((
            &member.name,
            member.type_id,
            member.offset,
            member.bit_offset,
            member.bit_size,
        ))?;
    }
    dict.set_item("members", members)?;
    let enumerators = PyList::empty(py);
    for enumerator in &info.enumerators {
        enumerators.append((&enumerator.name, enumerator.value))?;
    }
    dict.set_item("enumerators", enumerators)?;
    Ok(dict)
}

/// The kernel type `name` (`task_struct`, `struct file`, `pid_t`), or `None`.
#[pyfunction]
pub(crate) fn cosi_type_by_name<'py>(
    py: Python<'py>,
    core: &Core,
    name: &str,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let profile = profile(core)?;
    profile
        .type_by_name(name)
        .map(|info| type_dict(py, &info))
        .transpose()
}

/// The kernel type with BTF id `id`, or `None`.
#[pyfunction]
pub(crate) fn cosi_type_by_id<'py>(
    py: Python<'py>,
    core: &Core,
    id: u32,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let profile = profile(core)?;
    profile
        .type_by_id(id)
        .map(|info| type_dict(py, &info))
        .transpose()
}

/// The address of kernel symbol `name` (kallsyms), or `None`.
#[pyfunction]
pub(crate) fn cosi_symbol(core: &Core, name: &str) -> PyResult<Option<u64>> {
    Ok(profile(core)?.symbol(name))
}

/// The offset of per-CPU variable `name` in a CPU's per-CPU area, or `None`.
#[pyfunction]
pub(crate) fn cosi_per_cpu(core: &Core, name: &str) -> PyResult<Option<u64>> {
    Ok(profile(core)?.per_cpu(name))
}

/// The address of the running `task_struct`, or `None` (early boot).
#[pyfunction]
pub(crate) fn cosi_current_task(
    py: Python<'_>,
    core: &Core,
    cpu: &CpuState,
) -> PyResult<Option<u64>> {
    Ok(with_kernel(py, core, cpu, |kernel, cpu| kernel.current_task(cpu))?.ok())
}

/// Adds the functions to the extension module.
pub(crate) fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(cosi_type_by_name, module)?)?;
    module.add_function(wrap_pyfunction!(cosi_type_by_id, module)?)?;
    module.add_function(wrap_pyfunction!(cosi_symbol, module)?)?;
    module.add_function(wrap_pyfunction!(cosi_per_cpu, module)?)?;
    module.add_function(wrap_pyfunction!(cosi_current_task, module)?)?;
    Ok(())
}
