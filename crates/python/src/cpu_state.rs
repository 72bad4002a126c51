//! The objects callbacks receive: the CPU ([`CpuState`], PANDA's `CPUState`) and the block
//! ([`TranslationBlock`]). During a callback the CPU object uses the CPU lent to that call;
//! outside callbacks, each access is a request to the machine thread, served between
//! slices through `Machine::with_cpu`.

use std::any::Any;
use std::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use pandare_core::instrument::{GuestCpu, InstrumentError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::blocking::Job;
use crate::shared::{lock, Fail, Shared};
/// The CPU as callbacks see it (PANDA's `CPUState`). Valid during a callback; outside
/// callbacks (`panda.get_cpu()`), each access is a request to the machine thread.
#[pyclass(frozen, module = "pandare._core", name = "CPUState")]
pub(crate) struct CpuState {
    /// During a callback call: the `&mut dyn GuestCpu` lent to it, as a pointer to the
    /// call's (fat) CPU pointer on the machine thread's stack; null otherwise. Set
    /// and withdrawn only by the machine thread, around the Python call, with the GIL held;
    /// read only with the GIL held. So whoever reads it non-null runs while the machine
    /// thread is parked inside that call (it holds the GIL, or gave it up to the reader in
    /// the middle of Python code): no two threads use the CPU at once.
    pub(crate) lent: AtomicPtr<*mut (dyn GuestCpu + 'static)>,
    pub(crate) shared: Arc<Shared>,
}

impl CpuState {
    pub(crate) fn access<R: Send + 'static>(
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

    /// A register by any name or alias of the architecture's table (`panda.arch`), any
    /// case: general registers, the pc, and system registers.
    fn get_reg(&self, py: Python<'_>, name: String) -> PyResult<u64> {
        self.access(py, move |cpu| {
            cpu.register(&name).map_err(|e| Fail::Value(e.to_string()))
        })
    }

    /// Sets a register by name (general registers and the pc).
    fn set_reg(&self, py: Python<'_>, name: String, value: u64) -> PyResult<()> {
        self.access(py, move |cpu| {
            cpu.set_register(&name, value)
                .map_err(|e| Fail::Value(e.to_string()))
        })
    }

    /// Every register as text (what the monitor's `info registers` prints).
    fn dump(&self, py: Python<'_>) -> PyResult<String> {
        self.access(py, |cpu| Ok(cpu.abi().dump(cpu)))
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
    pub(crate) fn instruction_count(&self, py: Python<'_>) -> PyResult<u64> {
        self.access(py, |cpu| Ok(cpu.instruction_count()))
    }

    /// Whether this object is the one lent to a running callback.
    #[getter]
    pub(crate) fn valid(&self) -> bool {
        !self.lent.load(Ordering::Relaxed).is_null()
    }
}

/// The block a callback is about (PANDA's `TranslationBlock`): `pc`, `size`, `icount`.
#[pyclass(frozen, module = "pandare._core", name = "TranslationBlock")]
#[derive(Default)]
pub(crate) struct TranslationBlock {
    pub(crate) pc: AtomicU64,
    pub(crate) size: AtomicU64,
    pub(crate) icount: AtomicU32,
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
