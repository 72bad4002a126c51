//! `pandare._core`: the machine behind the Python package's `Panda` class.
//!
//! Where things are: `core.rs` (the `Core` object and its methods), `shared.rs` (state
//! shared between threads, requests, errors), `blocking.rs` (the blocking thread's jobs and
//! the run loop), `replay.rs` (the replay loop), `callbacks.rs` (Python functions as PANDA
//! callbacks), `cpu_state.rs` (`CPUState`, `TranslationBlock`), `arch.rs` (the guest ABI
//! for `panda.arch`), `plugins.rs` (built-in plugins and PPP).
//!
//! One machine thread (DESIGN.md, principle 5): `Core.run()` releases the GIL and runs the
//! guest on the calling thread in virtual-time slices. Other Python threads (the
//! `queue_blocking` thread) post jobs to a queue and wait on a condition variable; the
//! machine loop takes one job at a time between slices, so nothing on the hot path locks.
//! Jobs that wait for guest output (a command's prompt) stay active while the guest runs.
//! When no run is in progress, a job runs to completion on the caller's thread instead.
//!
//! Between two requests of the blocking thread the guest waits for the next one (up to
//! `HOLD_LIMIT`), so runs driven by a blocking function are repeatable (`Core::hold`).
//!
//! Python callbacks are ordinary entries of the machine's callback registry
//! (`Instrumentation`), handed the same reusable `CPUState` and `TranslationBlock` objects
//! (valid during the call) and argument tuples. While Python callbacks exist, each run slice
//! holds the GIL from start to end, so a call's GIL attach is a nested one; the GIL is free
//! between slices (see `step`).

mod arch;
mod blocking;
mod callbacks;
mod core;
mod cosi;
mod cpu_state;
mod osi;
mod plugins;
mod replay;
mod shared;

use pandare::console::UNITS_PER_SECOND;
use pyo3::prelude::*;

#[pymodule]
fn _core(module: &Bound<'_, PyModule>) -> PyResult<()> {
    plugins::add_to(module)?;
    osi::add_to(module)?;
    cosi::add_to(module)?;
    arch::add_to(module)?;
    module.add_class::<core::Core>()?;
    module.add_class::<cpu_state::CpuState>()?;
    module.add_class::<cpu_state::TranslationBlock>()?;
    module.add("UNITS_PER_SECOND", UNITS_PER_SECOND)?;
    module.add("DEFAULT_PROMPT", pandare::DEFAULT_PROMPT)?;
    Ok(())
}
