//! The monitor: PANDA's text commands (`run_monitor_cmd`) over a console session.

use crate::console::Console;
use crate::replay::{self, recording_path};
use crate::store::SnapshotStore;
use pandare_core::instrument::{Callback, CallbackKind};
use pandare_core::Machine;

/// What the monitor's caller must do after a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing: carry on.
    Continue,
    /// `quit`: end the run.
    Quit,
}

const HELP: &str = "\
savevm NAME          save the machine as snapshot NAME
loadvm NAME          load snapshot NAME
delvm NAME           delete snapshot NAME
info snapshots       list snapshots
info registers       show the CPU registers
begin_record NAME    record from now into NAME.recording
end_record           finish the recording
plugin_cmd ARGS      pass ARGS to the plugins' and scripts' monitor callbacks
quit                 end the run
help                 this text
";

/// Monitor commands a front end adds (the CLI's `load_plugin`, ...): called with the
/// machine and the command line of any command the monitor does not know; returns the
/// text to print when the command is one of its own.
pub type Commands = Box<dyn FnMut(&mut dyn Machine, &str) -> Option<String> + Send>;

/// A console with its snapshot store and recording state: what the monitor acts on.
pub struct Session {
    /// The guest's console.
    pub console: Console,
    /// Its named snapshots.
    pub store: SnapshotStore,
    memory_mib: u64,
    append: String,
    recording: Option<String>,
    /// Added commands, with their help text.
    commands: Vec<(String, Commands)>,
    /// Gives the kernel profile a recording carries (see [`Session::set_profile_source`]).
    profile_source: Option<ProfileSource>,
    /// The profile of the recording in progress.
    recording_profile: Option<Vec<u8>>,
}

/// Gives the guest kernel's OS-introspection profile, serialized, when one can be had
/// (asked once when a recording starts).
pub type ProfileSource = Box<dyn FnMut() -> Option<Vec<u8>> + Send>;

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("console", &self.console)
            .field("store", &self.store)
            .field("recording", &self.recording)
            .field("added commands", &self.commands.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A session over `console`, with snapshots in `store`.
    pub fn new(console: Console, store: SnapshotStore, memory_mib: u64, append: &str) -> Session {
        Session {
            console,
            store,
            memory_mib,
            append: append.to_string(),
            recording: None,
            commands: Vec::new(),
            profile_source: None,
            recording_profile: None,
        }
    }

    /// Says where the kernel profile comes from: each recording started from now on
    /// carries what `source` returns when it starts.
    pub fn set_profile_source(&mut self, source: ProfileSource) {
        self.profile_source = Some(source);
    }

    /// Adds monitor commands: `commands` is offered every command line the monitor does
    /// not know, and `help` (one line per command, as in `help`'s text) is added to `help`.
    pub fn add_commands(&mut self, help: &str, commands: Commands) {
        self.commands.push((help.to_string(), commands));
    }

    /// Starts recording into `name` (a `.recording` file).
    pub fn begin_record(&mut self, name: &str) {
        self.console.start_recording();
        self.recording = Some(name.to_string());
        self.recording_profile = self.profile_source.as_mut().and_then(|source| source());
    }

    /// Finishes the running recording and writes it; returns its path.
    pub fn end_record(
        &mut self,
    ) -> Result<Option<std::path::PathBuf>, pandare_core::SnapshotError> {
        let Some(name) = self.recording.take() else {
            return Ok(None);
        };
        let Some(mut recording) = self.console.finish_recording(self.memory_mib, &self.append)
        else {
            return Ok(None);
        };
        recording.kernel_profile = self.recording_profile.take();
        let path = recording_path(&name);
        replay::write_recording(&path, &recording)?;
        Ok(Some(path))
    }

    /// Runs one monitor command and returns its text output (errors are text too, as in
    /// QEMU's monitor).
    pub fn monitor(&mut self, command: &str) -> (String, Action) {
        let words: Vec<&str> = command.split_whitespace().collect();
        let text = match words.as_slice() {
            ["savevm", name] => {
                let snapshot = self.console.save_snapshot();
                match self.store.save(name, snapshot) {
                    Ok(()) => String::new(),
                    Err(error) => format!("Error: {error}\n"),
                }
            }
            ["loadvm", name] => match self.store.load(name) {
                Ok(snapshot) => {
                    let was_recording = self.recording.take();
                    match self.console.load_snapshot(&snapshot) {
                        Ok(()) if was_recording.is_some() => {
                            "Loading a snapshot ended the recording (it was not saved)\n".into()
                        }
                        Ok(()) => String::new(),
                        Err(error) => format!("Error: {error}\n"),
                    }
                }
                Err(error) => format!("Error: {error}\n"),
            },
            ["delvm", name] => match self.store.delete(name) {
                Ok(true) => String::new(),
                Ok(false) => format!("Error: there is no snapshot named '{name}'\n"),
                Err(error) => format!("Error: {error}\n"),
            },
            ["info", "snapshots"] => {
                let list = self.store.list();
                if list.is_empty() {
                    "There is no snapshot available.\n".to_string()
                } else {
                    let mut text = format!("{:<24} {:>12}\n", "Name", "File size");
                    for (name, size) in list {
                        text += &format!("{name:<24} {size:>12}\n");
                    }
                    text
                }
            }
            ["info", "registers"] => {
                let mut text = String::new();
                self.console
                    .machine()
                    .with_cpu(&mut |cpu| text = cpu.abi().dump(cpu));
                text
            }
            ["begin_record", name] => {
                self.begin_record(name);
                String::new()
            }
            ["end_record"] => match self.end_record() {
                Ok(Some(path)) => format!("Recording written to {}\n", path.display()),
                Ok(None) => "Error: no recording is running\n".to_string(),
                Err(error) => format!("Error: {error}\n"),
            },
            ["plugin_cmd", ..] => self.plugin_cmd(plugin_cmd_arguments(command)),
            ["quit"] => return (String::new(), Action::Quit),
            ["help"] | ["?"] => {
                let mut help = HELP.to_string();
                for (text, _) in &self.commands {
                    help += text;
                    if !help.ends_with('\n') {
                        help.push('\n');
                    }
                }
                help
            }
            [] => String::new(),
            _ => {
                let machine = self.console.machine();
                let added = self
                    .commands
                    .iter_mut()
                    .find_map(|(_, commands)| commands(&mut *machine, command.trim()));
                match added {
                    Some(mut text) => {
                        if !text.is_empty() && !text.ends_with('\n') {
                            text.push('\n');
                        }
                        text
                    }
                    None => format!("unknown command: '{command}'; type 'help' for the list\n"),
                }
            }
        };
        (text, Action::Continue)
    }

    /// `plugin_cmd ARGS`: fires the `monitor` callbacks with `ARGS` (the raw rest of the
    /// line), in registration order, and prints what those that handled it returned.
    fn plugin_cmd(&mut self, arguments: &str) -> String {
        let instrumentation = self.console.machine().instrumentation();
        if !instrumentation.has(CallbackKind::Monitor) {
            return format!(
                "Error: no monitor callback is enabled, so nothing handles \
                 'plugin_cmd {arguments}' (load a plugin that takes monitor commands, or \
                 register a monitor callback)\n"
            );
        }
        let mut handled = false;
        let mut text = String::new();
        for callback in instrumentation.enabled(CallbackKind::Monitor) {
            if let Callback::Monitor(f) = callback {
                if let Some(output) = f(arguments) {
                    handled = true;
                    text += &output;
                    if !output.is_empty() && !output.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
        }
        if !handled {
            text = format!("Error: no monitor callback handled 'plugin_cmd {arguments}'\n");
        }
        text
    }
}

/// The raw text after `plugin_cmd` and the blanks that follow it.
fn plugin_cmd_arguments(command: &str) -> &str {
    let command = command.trim_start();
    command
        .strip_prefix("plugin_cmd")
        .unwrap_or(command)
        .trim_start()
        .trim_end_matches(['\r', '\n'])
}
