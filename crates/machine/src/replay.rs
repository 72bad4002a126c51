//! Record and replay.
//!
//! A recording is the machine's starting snapshot plus an ordered log of everything that
//! came from outside, each stamped with the virtual time at which it took effect: bytes
//! typed on the console, and idle skips (the run loop moving the clock forward while the
//! guest waited, which depends on the host for an interactive console). Checkpoints of
//! (instructions, pc, register hash) every [`CHECKPOINT_INTERVAL`] let a replay that
//! diverges stop at the first checkpoint that differs and say what differed.
//!
//! Replay restores the snapshot and re-applies the log at the same virtual times, so it
//! reproduces the same instruction count, blocks and console output whatever callbacks
//! are enabled: callbacks never change where a run slice ends.

use std::path::Path;

use pandare_core::archive::{self, Archive};
use pandare_core::{Exit, Fnv64, Machine, Snapshot, SnapshotError};
use serde::{Deserialize, Serialize};

/// Virtual time between checkpoints.
pub const CHECKPOINT_INTERVAL: u64 = 100_000_000;

/// One entry of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// Bytes typed on the console at `time`.
    Input {
        /// Virtual time.
        time: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The guest was idle at `time` and the clock moved to `to`.
    Skip {
        /// Virtual time the guest went idle.
        time: u64,
        /// Virtual time the clock moved to.
        to: u64,
    },
    /// What the machine looked like at `time`.
    Checkpoint(Checkpoint),
}

impl Event {
    /// When the event takes effect.
    pub fn time(&self) -> u64 {
        match self {
            Event::Input { time, .. } | Event::Skip { time, .. } => *time,
            Event::Checkpoint(checkpoint) => checkpoint.time,
        }
    }
}

/// The machine's state at one moment, cheaply summarised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Virtual time.
    pub time: u64,
    /// Instructions retired.
    pub instructions: u64,
    /// Program counter.
    pub pc: u64,
    /// Hash of the architectural registers.
    pub state_hash: u64,
}

impl Checkpoint {
    /// Summarises `machine` now.
    pub fn of(machine: &dyn Machine) -> Checkpoint {
        Checkpoint {
            time: machine.now(),
            instructions: machine.instruction_count(),
            pc: machine.pc(),
            state_hash: machine.state_hash(),
        }
    }

    /// What differs from `expected`, in words.
    fn difference(&self, expected: &Checkpoint) -> String {
        let mut parts = Vec::new();
        if self.instructions != expected.instructions {
            parts.push(format!(
                "instructions {} instead of {}",
                self.instructions, expected.instructions
            ));
        }
        if self.pc != expected.pc {
            parts.push(format!("pc {:#x} instead of {:#x}", self.pc, expected.pc));
        }
        if self.state_hash != expected.state_hash {
            parts.push("register state differs".to_string());
        }
        parts.join(", ")
    }
}

/// A complete recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recording {
    /// Architecture.
    pub architecture: String,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// Kernel command line the machine was built with (informational).
    pub append: String,
    /// Where it starts.
    pub start: Snapshot,
    /// The log, in order; the last entry is the final checkpoint.
    pub events: Vec<Event>,
    /// Hash of everything the guest printed during the recording.
    pub output_hash: u64,
    /// Bytes the guest printed during the recording.
    pub output_length: u64,
    /// The guest kernel's OS-introspection profile (`pandare_osi::Profile::to_bytes`), when
    /// one was available while recording: a replay elsewhere needs nothing else for OSI.
    /// Opaque here; the front ends decode it.
    pub kernel_profile: Option<Vec<u8>>,
}

impl Recording {
    /// The final checkpoint.
    pub fn end(&self) -> Option<Checkpoint> {
        self.events.iter().rev().find_map(|event| match event {
            Event::Checkpoint(checkpoint) => Some(*checkpoint),
            _ => None,
        })
    }
}

/// Collects the log while a console records.
#[derive(Debug)]
pub struct Recorder {
    start: Snapshot,
    events: Vec<Event>,
    output: Fnv64,
    output_length: u64,
    next_checkpoint: u64,
}

impl Recorder {
    /// Starts recording `machine` from now.
    pub fn start(machine: &mut dyn Machine) -> Recorder {
        let start = machine.save_snapshot();
        let now = machine.now();
        Recorder {
            start,
            events: vec![Event::Checkpoint(Checkpoint::of(machine))],
            output: Fnv64::default(),
            output_length: 0,
            next_checkpoint: (now / CHECKPOINT_INTERVAL + 1) * CHECKPOINT_INTERVAL,
        }
    }

    /// Logs typed bytes.
    pub fn input(&mut self, time: u64, bytes: &[u8]) {
        self.events.push(Event::Input {
            time,
            bytes: bytes.to_vec(),
        });
    }

    /// Logs an idle skip.
    pub fn skip(&mut self, time: u64, to: u64) {
        self.events.push(Event::Skip { time, to });
    }

    /// Logs console output.
    pub fn output(&mut self, bytes: &[u8]) {
        self.output.bytes(bytes);
        self.output_length += bytes.len() as u64;
    }

    /// The largest budget that does not run past the next checkpoint.
    pub fn limit_budget(&self, now: u64, budget: u64) -> u64 {
        budget.min(self.next_checkpoint.saturating_sub(now)).max(1)
    }

    /// Takes a checkpoint if the machine has reached the next one.
    pub fn maybe_checkpoint(&mut self, machine: &dyn Machine) {
        let now = machine.now();
        if now >= self.next_checkpoint {
            self.events.push(Event::Checkpoint(Checkpoint::of(machine)));
            self.next_checkpoint = (now / CHECKPOINT_INTERVAL + 1) * CHECKPOINT_INTERVAL;
        }
    }

    /// Ends the recording with a final checkpoint.
    pub fn finish(mut self, machine: &dyn Machine, memory_mib: u64, append: &str) -> Recording {
        let last = Checkpoint::of(machine);
        if self.events.last() != Some(&Event::Checkpoint(last)) {
            self.events.push(Event::Checkpoint(last));
        }
        Recording {
            architecture: machine.architecture().to_string(),
            memory_mib,
            append: append.to_string(),
            start: self.start,
            events: self.events,
            output_hash: self.output.finish(),
            output_length: self.output_length,
            kernel_profile: None,
        }
    }
}

/// Why a replay failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The recording's snapshot does not fit the machine.
    #[error(transparent)]
    Snapshot(#[from] pandare_core::SnapshotError),
    /// The replay went a different way than the recording.
    #[error("replay diverged at checkpoint {index} (virtual time {time}): {what}")]
    Diverged {
        /// Index of the checkpoint among the recording's checkpoints.
        index: usize,
        /// Its virtual time.
        time: u64,
        /// What differed.
        what: String,
    },
    /// The guest stopped or idled where the recording says it ran on.
    #[error("replay diverged at virtual time {time}: {what}")]
    Unexpected {
        /// Virtual time.
        time: u64,
        /// What happened.
        what: String,
    },
}

/// What a replay did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayReport {
    /// Instructions retired at the end (from the snapshot's count on).
    pub instructions: u64,
    /// Instructions executed during the replay.
    pub instructions_replayed: u64,
    /// Checkpoints compared (all matched, or the replay would have failed).
    pub checkpoints: usize,
    /// Whether the console output matched the recording's.
    pub output_matches: bool,
}

/// Replays `recording` on `machine` (built for the same architecture and memory),
/// passing console output to `on_output`. Every checkpoint is compared; the first that
/// differs ends the replay with [`ReplayError::Diverged`]. Stops that callbacks ask for
/// are ignored: use a [`Replayer`] to be able to stop a replay before its end.
pub fn replay(
    recording: &Recording,
    machine: &mut dyn Machine,
    on_output: &mut dyn FnMut(&[u8]),
) -> Result<ReplayReport, ReplayError> {
    let mut replayer = Replayer::start(recording, machine)?;
    loop {
        if let Progress::Finished(report) = replayer.run(machine, u64::MAX, on_output)? {
            return Ok(report);
        }
    }
}

/// How far a [`Replayer::run`] call got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The replay goes on: the budget ran out, or a callback asked the machine to stop.
    Running,
    /// The replay reached the recording's end.
    Finished(ReplayReport),
}

/// A replay in progress, driven a slice at a time, so that its driver can stop it early
/// (PANDA's `end_replay`), serve other requests or check for Ctrl-C between slices. It
/// checks everything [`replay`] checks: a replay run in slices of any size is the same
/// replay, because the machine's behaviour does not depend on where run slices end.
#[derive(Debug)]
pub struct Replayer<'r> {
    recording: &'r Recording,
    /// Index of the next event to apply.
    next: usize,
    start_instructions: u64,
    output: Fnv64,
    output_length: u64,
    checkpoints: usize,
}

impl<'r> Replayer<'r> {
    /// Loads the recording's starting snapshot into `machine`.
    pub fn start(
        recording: &'r Recording,
        machine: &mut dyn Machine,
    ) -> Result<Replayer<'r>, ReplayError> {
        machine.load_snapshot(&recording.start)?;
        Ok(Replayer {
            recording,
            next: 0,
            start_instructions: machine.instruction_count(),
            output: Fnv64::default(),
            output_length: 0,
            checkpoints: 0,
        })
    }

    /// Instructions executed since the replay started.
    pub fn instructions_replayed(&self, machine: &dyn Machine) -> u64 {
        machine.instruction_count() - self.start_instructions
    }

    /// Replays on from where the last call ended, for at most `budget` of virtual time,
    /// and less when a callback asks the machine to stop (the call then returns after that
    /// block). Console output goes to `on_output`. The machine's instrumentation says it is
    /// replaying for the length of the call (PANDA's `replay_*` callbacks fire only then).
    pub fn run(
        &mut self,
        machine: &mut dyn Machine,
        budget: u64,
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, ReplayError> {
        machine.instrumentation().set_replaying(true);
        let progress = self.run_slice(machine, budget, on_output);
        machine.instrumentation().set_replaying(false);
        progress
    }

    fn run_slice(
        &mut self,
        machine: &mut dyn Machine,
        budget: u64,
        on_output: &mut dyn FnMut(&[u8]),
    ) -> Result<Progress, ReplayError> {
        let deadline = machine.now().saturating_add(budget);
        while let Some(event) = self.recording.events.get(self.next) {
            let target = event.time();
            // Run exactly to the event's time.
            while machine.now() < target {
                let now = machine.now();
                if now >= deadline {
                    return Ok(Progress::Running);
                }
                let exit = machine.run((target - now).min(deadline - now));
                self.collect(machine, on_output);
                match exit {
                    Exit::BudgetExhausted => {
                        if machine.instrumentation().take_stopped() {
                            return Ok(Progress::Running);
                        }
                    }
                    Exit::Idle if matches!(event, Event::Skip { time, .. } if *time == machine.now()) =>
                    {
                        break;
                    }
                    // The guest powered off exactly when the next event is due (the
                    // recording's end).
                    Exit::Shutdown(_) if machine.now() == target => break,
                    other => {
                        return Err(ReplayError::Unexpected {
                            time: machine.now(),
                            what: format!(
                                "the guest {other:?} before the recorded event at {target}"
                            ),
                        })
                    }
                }
            }
            self.next += 1;
            match event {
                Event::Input { bytes, .. } => machine.console_input(bytes),
                Event::Skip { to, .. } => {
                    machine.skip_to(*to);
                    if machine.now() != *to {
                        return Err(ReplayError::Unexpected {
                            time: machine.now(),
                            what: format!(
                                "the clock could not move to {to}: a timer fires earlier than \
                                 recorded"
                            ),
                        });
                    }
                }
                Event::Checkpoint(expected) => {
                    let actual = Checkpoint::of(machine);
                    if actual != *expected {
                        return Err(ReplayError::Diverged {
                            index: self.checkpoints,
                            time: expected.time,
                            what: actual.difference(expected),
                        });
                    }
                    self.checkpoints += 1;
                }
            }
        }
        self.collect(machine, on_output);
        Ok(Progress::Finished(ReplayReport {
            instructions: machine.instruction_count(),
            instructions_replayed: self.instructions_replayed(machine),
            checkpoints: self.checkpoints,
            output_matches: self.output.finish() == self.recording.output_hash
                && self.output_length == self.recording.output_length,
        }))
    }

    fn collect(&mut self, machine: &mut dyn Machine, on_output: &mut dyn FnMut(&[u8])) {
        let bytes = machine.take_console_output();
        if !bytes.is_empty() {
            self.output.bytes(&bytes);
            self.output_length += bytes.len() as u64;
            on_output(&bytes);
        }
    }
}

/// File name extension of recordings.
pub const EXTENSION: &str = "recording";
/// The archive kind of recording files.
pub const ARCHIVE_KIND: &str = "recording";
const LOG_SECTION: &str = "log";
/// The optional section holding the kernel profile (`Recording::kernel_profile`).
pub const PROFILE_SECTION: &str = "profile";
/// Bumped when the log layout changes incompatibly.
const LOG_VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct Log {
    version: u32,
    architecture: String,
    memory_mib: u64,
    append: String,
    output_hash: u64,
    output_length: u64,
    events: Vec<Event>,
}

/// The file a recording named `name` lives in: `name.recording`, relative to the current
/// directory unless `name` is a path.
pub fn recording_path(name: &str) -> std::path::PathBuf {
    if name.ends_with(&format!(".{EXTENSION}")) {
        name.into()
    } else {
        format!("{name}.{EXTENSION}").into()
    }
}

/// Writes a recording (atomically): its log and its starting snapshot in one archive.
pub fn write_recording(path: &Path, recording: &Recording) -> Result<(), SnapshotError> {
    let log = Log {
        version: LOG_VERSION,
        architecture: recording.architecture.clone(),
        memory_mib: recording.memory_mib,
        append: recording.append.clone(),
        output_hash: recording.output_hash,
        output_length: recording.output_length,
        events: recording.events.clone(),
    };
    let mut archive = Archive::new(ARCHIVE_KIND);
    archive.push(
        LOG_SECTION,
        serde_json::to_vec(&log).expect("plain data always serializes"),
    );
    archive::snapshot_into(&mut archive, &recording.start);
    if let Some(profile) = &recording.kernel_profile {
        archive.push(PROFILE_SECTION, profile.clone());
    }
    archive.write(path)
}

/// Reads a recording written by [`write_recording`], validating it.
pub fn read_recording(path: &Path) -> Result<Recording, SnapshotError> {
    let archive = Archive::read(path, ARCHIVE_KIND)?;
    recording_from_archive(&archive, &path.display().to_string())
}

/// A recording from an archive already read and checked, validating it; `shown` names the
/// file in errors.
pub fn recording_from_archive(archive: &Archive, shown: &str) -> Result<Recording, SnapshotError> {
    let bad = |problem: String| SnapshotError::BadFile {
        path: shown.to_string(),
        problem,
    };
    let log_bytes = archive
        .section(LOG_SECTION)
        .ok_or_else(|| bad("the recording has no log section; it is damaged".to_string()))?;
    let log: Log = serde_json::from_slice(log_bytes)
        .map_err(|error| bad(format!("the recording's log is damaged: {error}")))?;
    if log.version != LOG_VERSION {
        return Err(bad(format!(
            "the log has version {}, this build reads {LOG_VERSION}; record it again",
            log.version
        )));
    }
    let ordered = log
        .events
        .windows(2)
        .all(|pair| pair[0].time() <= pair[1].time());
    if !ordered || !matches!(log.events.last(), Some(Event::Checkpoint(_))) {
        return Err(bad(
            "the recording's log is out of order or incomplete".to_string()
        ));
    }
    let start = archive::snapshot_from_archive(archive)?;
    if start.architecture != log.architecture || start.memory_bytes != log.memory_mib << 20 {
        return Err(bad(
            "the log and the snapshot describe different machines".to_string()
        ));
    }
    Ok(Recording {
        architecture: log.architecture,
        memory_mib: log.memory_mib,
        append: log.append,
        start,
        events: log.events,
        output_hash: log.output_hash,
        output_length: log.output_length,
        kernel_profile: archive.section(PROFILE_SECTION).map(<[u8]>::to_vec),
    })
}
