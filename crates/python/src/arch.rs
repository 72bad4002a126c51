//! What `panda.arch` knows about the guest architecture, from the architecture crate's
//! guest ABI (`pandare_core::abi`): register names and numbers, the program counter, stack
//! pointer and return-address registers, the calling conventions, pointer width and byte
//! order. The Python side (`pandare/arch.py`) builds PyPANDA's tables from this; no
//! register name is written in the package.

use pandare::{Architecture, Convention};
use pandare_core::abi::RegisterClass;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Names of the architectures this build knows.
#[pyfunction]
fn architectures() -> Vec<&'static str> {
    Architecture::ALL.iter().map(|arch| arch.name()).collect()
}

/// The names of the generic images this build knows.
#[pyfunction]
fn generic_images() -> Vec<&'static str> {
    pandare::driver::generic_images().to_vec()
}

/// The description of architecture `name` as a dict: `name`, `pointer_bits`, `endianness`,
/// `registers` (a list of `(name, aliases, class, number, bits)`, class one of `general`,
/// `program_counter`, `system`), `program_counter`, `stack_pointer`, `return_address` (None where calls push it), `conventions`
/// (`{name: {"arguments": [...], "return_value": r, "number": r or None}}`),
/// `asid_register`, `console_arguments` and `default_memory_mib`.
#[pyfunction]
fn architecture<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let arch = Architecture::from_name(name).ok_or_else(|| {
        PyValueError::new_err(format!(
            "architecture {name:?} is not supported (supported: {})",
            Architecture::names()
        ))
    })?;
    let description = arch.description();
    let abi = description.abi;
    let info = PyDict::new(py);
    info.set_item("name", description.name)?;
    info.set_item("pointer_bits", abi.pointer_bits())?;
    info.set_item("endianness", abi.endianness().name())?;
    let registers: Vec<_> = abi
        .registers()
        .iter()
        .map(|register| {
            let class = match register.class {
                RegisterClass::General => "general",
                RegisterClass::ProgramCounter => "program_counter",
                RegisterClass::System => "system",
            };
            (
                register.name,
                register.aliases.to_vec(),
                class,
                register.number,
                register.bits,
            )
        })
        .collect();
    info.set_item("registers", registers)?;
    info.set_item("program_counter", abi.program_counter())?;
    info.set_item("stack_pointer", abi.stack_pointer())?;
    info.set_item("return_address", abi.return_address())?;
    let conventions = PyDict::new(py);
    for convention in Convention::ALL {
        let registers = abi.convention(convention);
        let entry = PyDict::new(py);
        entry.set_item("arguments", registers.arguments.to_vec())?;
        entry.set_item("return_value", registers.return_value)?;
        entry.set_item("number", registers.number)?;
        conventions.set_item(convention.name(), entry)?;
    }
    info.set_item("conventions", conventions)?;
    info.set_item("asid_register", abi.asid_register())?;
    info.set_item("console_arguments", description.console_arguments)?;
    info.set_item("default_memory_mib", description.default_memory_mib)?;
    Ok(info)
}

/// Adds the functions to the extension module.
pub(crate) fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_function(wrap_pyfunction!(architectures, module)?)?;
    module.add_function(wrap_pyfunction!(generic_images, module)?)?;
    module.add_function(wrap_pyfunction!(architecture, module)?)?;
    Ok(())
}
