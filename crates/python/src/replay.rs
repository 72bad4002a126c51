//! The replay loop of `Core.run_replay`: a recording replayed a slice at a time on a fresh
//! machine with the callbacks active, serving CPU and memory requests between slices.

use std::sync::atomic::Ordering;

use pandare::replay;
use pandare::Machine;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::blocking::{with_cpu, Job, SLICE};
use crate::core::Core;
use crate::shared::{lock, Fail};

impl Core {
    /// Replays `recording` on `machine` a slice at a time (GIL released), until its end,
    /// `end_replay()`/`end_analysis()`, an exception in a callback, or Ctrl-C. Between
    /// slices it serves CPU and memory requests (`panda.get_cpu()` from another thread)
    /// with the replayed machine; requests that would drive the guest are refused, since a
    /// replay takes no input. Returns the report when the replay reached its end.
    pub(crate) fn replay_loop(
        &self,
        recording: &replay::Recording,
        machine: &mut dyn Machine,
        output: &mut Vec<u8>,
    ) -> Result<Option<replay::ReplayReport>, replay::ReplayError> {
        let shared = &self.shared;
        let mut replayer = replay::Replayer::start(recording, machine)?;
        loop {
            if shared.stop.load(Ordering::Acquire) || shared.failed.load(Ordering::Acquire) {
                return Ok(None);
            }
            if lock(&shared.pending_revert).take().is_some() {
                shared.fail(PyRuntimeError::new_err(
                    "revert_async cannot be used during a replay (a replay follows its recording)",
                ));
                continue;
            }
            let next = lock(&shared.requests).pop_front();
            if let Some(request) = next {
                let answer = match request.job {
                    Job::Access(access) => with_cpu(machine, access),
                    _ => Err(Fail::Runtime(
                        "a replay takes no input: this call cannot be made while a replay runs"
                            .into(),
                    )),
                };
                request.slot.put(answer);
                continue;
            }
            let mut slice = || {
                replayer.run(machine, SLICE, &mut |bytes| {
                    output.extend_from_slice(bytes);
                })
            };
            let progress = if shared.holds_gil() {
                Python::attach(|_| slice())
            } else {
                slice()
            }?;
            shared
                .instructions
                .store(machine.instruction_count(), Ordering::Relaxed);
            if let replay::Progress::Finished(report) = progress {
                return Ok(Some(report));
            }
            if let Err(error) = Python::attach(|py| py.check_signals()) {
                shared.fail(error);
            }
        }
    }
}
