//! Driving a guest's serial console: wait for the prompt, type commands, collect output.
//!
//! Everything here is deterministic: input is typed at the virtual time the prompt
//! appears, and time limits are in virtual time (instruction units), so the same
//! commands give the same instruction counts on any host, however loaded.

use pandare_core::{Exit, Machine, ShutdownKind};

use crate::replay::{Recorder, Recording};
use regex::bytes::Regex;

/// Virtual-time slice per `run` call: long enough to amortise the call, short enough to
/// notice the prompt promptly.
const SLICE: u64 = 2_000_000;
/// Virtual time units per virtual second (the hart models 1 GHz).
pub const UNITS_PER_SECOND: u64 = 1_000_000_000;

/// Why the console could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The expected output did not appear in time.
    #[error("the guest did not print {waiting_for} within {seconds} s of virtual time; output so far ends with: {tail:?}")]
    Timeout {
        /// What was awaited.
        waiting_for: String,
        /// The limit, in virtual seconds.
        seconds: u64,
        /// The last bytes the guest printed.
        tail: String,
    },
    /// The guest stopped while output was still awaited.
    #[error("the guest stopped ({kind:?}) while waiting for {waiting_for}")]
    Stopped {
        /// How it stopped.
        kind: ShutdownKind,
        /// What was awaited.
        waiting_for: String,
    },
    /// The guest waits for an interrupt that can never come.
    #[error("the guest is idle with no timer armed and no input, so it can never wake up (waiting for {waiting_for})")]
    Idle {
        /// What was awaited.
        waiting_for: String,
    },
    /// The guest's Linux kernel panicked (it would spin until the time limit).
    #[error("the guest kernel panicked while waiting for {waiting_for}: {message}")]
    KernelPanic {
        /// The panic message (what follows "Kernel panic - not syncing: ").
        message: String,
        /// What was awaited.
        waiting_for: String,
    },
    /// The guest took a trap nothing can handle.
    #[error(
        "the guest crashed: unhandled trap, cause {cause:#x} at pc {pc:#x} (value {value:#x})"
    )]
    Crashed {
        /// Cause code.
        cause: u64,
        /// Program counter.
        pc: u64,
        /// Trap value.
        value: u64,
    },
}

/// Receives every byte the guest prints, as it is printed.
pub type EchoSink = Box<dyn FnMut(&[u8]) + Send>;

/// A machine with its console, as a user at a terminal sees it.
pub struct Console {
    machine: Box<dyn Machine>,
    prompt: Regex,
    /// Output not yet consumed by a wait.
    pending: Vec<u8>,
    /// Called with every byte the guest prints, as it is printed (e.g. to show the boot).
    echo: Option<EchoSink>,
    /// Set while recording.
    recorder: Option<Recorder>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("prompt", &self.prompt.as_str())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Wraps a machine whose shell prints prompts matching `prompt`.
    pub fn new(machine: Box<dyn Machine>, prompt: Regex) -> Console {
        Console {
            machine,
            prompt,
            pending: Vec::new(),
            echo: None,
            recorder: None,
        }
    }

    /// Sends every byte the guest prints to `echo` as well.
    pub fn set_echo(&mut self, echo: EchoSink) {
        self.echo = Some(echo);
    }

    /// The machine.
    pub fn machine(&mut self) -> &mut dyn Machine {
        self.machine.as_mut()
    }

    /// Runs one slice of at most `budget` virtual time (less when a recording needs a
    /// checkpoint sooner), collecting and echoing output. Idle exits are returned, not
    /// handled.
    pub fn run_slice(&mut self, budget: u64) -> Exit {
        let budget = match &self.recorder {
            Some(recorder) => recorder.limit_budget(self.machine.now(), budget),
            None => budget,
        };
        let exit = self.machine.run(budget);
        let output = self.machine.take_console_output();
        if !output.is_empty() {
            if let Some(echo) = self.echo.as_mut() {
                echo(&output);
            }
            if let Some(recorder) = self.recorder.as_mut() {
                recorder.output(&output);
            }
            self.pending.extend_from_slice(&output);
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.maybe_checkpoint(self.machine.as_ref());
        }
        exit
    }

    /// Moves the clock of an idle guest forward to `time` (no further than its next
    /// event), logging the skip when recording.
    pub fn skip_to(&mut self, time: u64) {
        let now = self.machine.now();
        self.machine.skip_to(time);
        let to = self.machine.now();
        if let Some(recorder) = self.recorder.as_mut() {
            if to != now {
                recorder.skip(now, to);
            }
            recorder.maybe_checkpoint(self.machine.as_ref());
        }
    }

    /// Runs one slice of at most `budget` virtual time. Returns how the guest stopped, if it
    /// did. Idle time is skipped to the next timer event.
    pub fn step(
        &mut self,
        budget: u64,
        waiting_for: &str,
    ) -> Result<Option<ShutdownKind>, ConsoleError> {
        match self.run_slice(budget) {
            Exit::BudgetExhausted => Ok(None),
            Exit::Idle => {
                if crate::driver::idle(self, crate::driver::Pacing::Skip) {
                    Ok(None)
                } else {
                    Err(ConsoleError::Idle {
                        waiting_for: waiting_for.to_string(),
                    })
                }
            }
            Exit::Shutdown(kind) => Ok(Some(kind)),
            Exit::UnhandledTrap { cause, pc, value } => {
                Err(ConsoleError::Crashed { cause, pc, value })
            }
        }
    }

    /// Forgets output not yet consumed by a wait (an interactive console shows output as it
    /// comes instead).
    pub fn discard_output(&mut self) {
        self.pending.clear();
    }

    /// Starts recording from now (see [`crate::replay`]). A recording already running is
    /// replaced.
    pub fn start_recording(&mut self) {
        self.recorder = Some(Recorder::start(self.machine.as_mut()));
    }

    /// Whether a recording is running.
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// Ends the recording, if one is running.
    pub fn finish_recording(&mut self, memory_mib: u64, append: &str) -> Option<Recording> {
        let recorder = self.recorder.take()?;
        Some(recorder.finish(self.machine.as_ref(), memory_mib, append))
    }

    /// Runs until the output matches `pattern`; returns the output before the match and
    /// consumes it and the match.
    pub fn wait_for(
        &mut self,
        pattern: &Regex,
        limit: u64,
        waiting_for: &str,
    ) -> Result<Vec<u8>, ConsoleError> {
        let deadline = self.machine.now().saturating_add(limit);
        let mut searched_from = 0;
        loop {
            if let Some(found) = self.prompt_search(pattern, searched_from) {
                let before = self.pending[..found.0].to_vec();
                self.pending.drain(..found.1);
                return Ok(before);
            }
            if let Some(message) = kernel_panic(&self.pending[searched_from..]) {
                return Err(ConsoleError::KernelPanic {
                    message,
                    waiting_for: waiting_for.to_string(),
                });
            }
            // Matches cannot start before the last line already searched.
            searched_from = self.pending.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            let now = self.machine.now();
            if now >= deadline {
                let tail_start = self.pending.len().saturating_sub(200);
                return Err(ConsoleError::Timeout {
                    waiting_for: waiting_for.to_string(),
                    seconds: limit / UNITS_PER_SECOND,
                    tail: String::from_utf8_lossy(&self.pending[tail_start..]).into_owned(),
                });
            }
            if let Some(kind) = self.step(SLICE.min(deadline - now), waiting_for)? {
                // A kernel booted with `panic=-1` resets as soon as it has said why.
                if let Some(message) = kernel_panic(&self.pending[searched_from..]) {
                    return Err(ConsoleError::KernelPanic {
                        message,
                        waiting_for: waiting_for.to_string(),
                    });
                }
                return Err(ConsoleError::Stopped {
                    kind,
                    waiting_for: waiting_for.to_string(),
                });
            }
        }
    }

    /// Without running the guest: if the output collected so far matches `pattern`,
    /// consumes it through the match and returns the output before the match (for run
    /// loops that interleave other work with waiting, like the Python package's).
    pub fn poll_for(&mut self, pattern: &Regex) -> Option<Vec<u8>> {
        let (start, end) = self.prompt_search(pattern, 0)?;
        let before = self.pending[..start].to_vec();
        self.pending.drain(..end);
        Some(before)
    }

    /// The shell prompt pattern.
    pub fn prompt(&self) -> &Regex {
        &self.prompt
    }

    fn prompt_search(&self, pattern: &Regex, from: usize) -> Option<(usize, usize)> {
        pattern
            .find_at(&self.pending, from)
            .map(|found| (found.start(), found.end()))
    }

    /// Waits for the shell prompt.
    pub fn wait_for_prompt(&mut self, limit: u64) -> Result<Vec<u8>, ConsoleError> {
        let prompt = self.prompt.clone();
        self.wait_for(&prompt, limit, "the shell prompt")
    }

    /// Captures the machine (see [`Machine::save_snapshot`]).
    pub fn save_snapshot(&mut self) -> pandare_core::Snapshot {
        self.machine.save_snapshot()
    }

    /// Puts the machine back to `snapshot` and forgets output not yet consumed. A running
    /// recording ends (it cannot span a jump in the machine's history).
    pub fn load_snapshot(
        &mut self,
        snapshot: &pandare_core::Snapshot,
    ) -> Result<(), pandare_core::SnapshotError> {
        self.machine.load_snapshot(snapshot)?;
        self.recorder = None;
        self.pending.clear();
        Ok(())
    }

    /// Types bytes on the console now.
    pub fn type_bytes(&mut self, bytes: &[u8]) {
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.input(self.machine.now(), bytes);
        }
        self.machine.console_input(bytes);
    }

    /// Types `command` and a newline at the prompt, waits for the next prompt, and returns
    /// the command's output: without the echoed command line, the prompt, carriage returns
    /// or terminal escape sequences.
    pub fn run_command(&mut self, command: &str, limit: u64) -> Result<String, ConsoleError> {
        self.type_bytes(command.as_bytes());
        self.type_bytes(b"\n");
        let raw = self.wait_for_prompt(limit)?;
        let text = strip_terminal_codes(&raw);
        Ok(text[echo_length(&text, command)..].to_string())
    }

    /// Types `poweroff -f` and runs until the guest stops.
    pub fn power_off(&mut self, limit: u64) -> Result<ShutdownKind, ConsoleError> {
        self.type_bytes(b"poweroff -f\n");
        let deadline = self.machine.now().saturating_add(limit);
        loop {
            let now = self.machine.now();
            if now >= deadline {
                return Err(ConsoleError::Timeout {
                    waiting_for: "the guest to power off".to_string(),
                    seconds: limit / UNITS_PER_SECOND,
                    tail: String::new(),
                });
            }
            if let Some(kind) = self.step(SLICE.min(deadline - now), "the guest to power off")? {
                return Ok(kind);
            }
        }
    }
}

/// Length of the shell's echo of `command` at the start of `text`, with its newline.
///
/// Line editors wrap long command lines at the terminal width by inserting line breaks
/// (and sometimes spaces) into the echo, so those are skipped while matching. When the text
/// does not start with the echo, everything up to the first newline is taken as the echo.
pub fn echo_length(text: &str, command: &str) -> usize {
    let mut expected = command.chars().peekable();
    for (index, character) in text.char_indices() {
        match expected.peek() {
            Some(&wanted) if wanted == character => {
                expected.next();
            }
            Some(_) if character == '\n' || character == ' ' => {}
            Some(_) => break,
            None if character == '\n' => return index + 1,
            None => break,
        }
    }
    text.find('\n').map_or(text.len(), |newline| newline + 1)
}

/// What Linux prints when it panics; the rest of the line is the reason.
const PANIC_MARKER: &[u8] = b"Kernel panic - not syncing: ";

/// The reason of the first complete Linux panic line in `output`, if there is one.
fn kernel_panic(output: &[u8]) -> Option<String> {
    let start = output
        .windows(PANIC_MARKER.len())
        .position(|window| window == PANIC_MARKER)?
        + PANIC_MARKER.len();
    let length = output[start..].iter().position(|&b| b == b'\n')?;
    let line = strip_terminal_codes(&output[start..start + length]);
    Some(line.trim().to_string())
}

/// Removes carriage returns and ANSI/VT100 escape sequences (CSI `ESC [ ... final`, and
/// two-byte `ESC x`), and decodes the rest as UTF-8 (lossily).
pub fn strip_terminal_codes(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut index = 0;
    while index < raw.len() {
        match raw[index] {
            0x1b => {
                index += 1;
                if raw.get(index) == Some(&b'[') {
                    index += 1;
                    while index < raw.len() && !(0x40..=0x7e).contains(&raw[index]) {
                        index += 1;
                    }
                }
                index += 1;
            }
            b'\r' => index += 1,
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_cursor_queries_colours_and_carriage_returns() {
        let raw = b"\x1b[6nLinux x\r\n\x1b[1;32mok\x1b[0m\r\n";
        assert_eq!(strip_terminal_codes(raw), "Linux x\nok\n");
    }

    #[test]
    fn the_echo_is_removed_even_when_wrapped() {
        assert_eq!(echo_length("ls\nbin\n", "ls"), 3);
        let wrapped = "echo aaaa bb\nbb | cat\nout\n";
        assert_eq!(
            &wrapped[echo_length(wrapped, "echo aaaa bbbb | cat")..],
            "out\n"
        );
        assert_eq!(&"odd\nout\n"[echo_length("odd\nout\n", "ls")..], "out\n");
    }

    #[test]
    fn finds_complete_kernel_panic_lines() {
        let log = b"[    0.8] Kernel panic - not syncing: VFS: Unable to mount root fs\r\n";
        assert_eq!(
            kernel_panic(log).as_deref(),
            Some("VFS: Unable to mount root fs")
        );
        assert_eq!(kernel_panic(&log[..40]), None);
        assert_eq!(kernel_panic(b"Linux version 6.12\n"), None);
    }

    #[test]
    fn a_lone_escape_at_the_end_is_dropped() {
        assert_eq!(strip_terminal_codes(b"a\x1b"), "a");
    }
}
