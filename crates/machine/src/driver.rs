//! What every front end (the `panda` CLI, the Python package, tests) does the same way
//! around a machine, written once so they cannot disagree: which guest a set of options
//! names and its defaults ([`GuestOptions`]), where a run starts and the generic images'
//! `root` snapshot ([`start`], [`revert`], [`make_root`]), and how an idle guest's clock
//! moves on ([`idle`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{Architecture, BuildError, MachineConfig};
use crate::console::{Console, ConsoleError, UNITS_PER_SECOND};
use crate::store::{SnapshotStore, StoreError};
use pandare_core::SnapshotError;

/// The snapshot every generic image keeps, taken at its first shell prompt.
pub const ROOT_SNAPSHOT: &str = "root";
/// How much virtual time booting to the prompt may take.
pub const BOOT_LIMIT: u64 = 300 * UNITS_PER_SECOND;

/// Why a guest could not be set up or started.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// Neither a generic image nor a kernel was named.
    #[error(
        "say which guest to boot: a generic image ({images}) or one's own kernel (and initrd)"
    )]
    NoGuest {
        /// The generic images this build knows.
        images: String,
    },
    /// A memory size of zero.
    #[error("the guest needs memory: give a size in MiB, e.g. 512")]
    NoMemory,
    /// The machine could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// A named snapshot could not be had.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A snapshot does not fit the machine.
    #[error("loading snapshot '{name}': {source}")]
    Load {
        /// The snapshot.
        name: String,
        /// Why.
        source: SnapshotError,
    },
    /// Booting to the prompt (to make the `root` snapshot) failed.
    #[error("booting to make the root snapshot: {0}")]
    Boot(#[source] ConsoleError),
}

/// The names of the generic images this build knows.
pub fn generic_images() -> &'static [&'static str] {
    pandare_images::AVAILABLE
}

/// A guest as a front end's options name it: a generic image, or one's own kernel, with
/// overrides. Options left `None` take the image's or the architecture's defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GuestOptions {
    /// A generic image (`riscv64`), built on first use.
    pub generic: Option<String>,
    /// One's own kernel image (used when `generic` is `None`).
    pub kernel: Option<PathBuf>,
    /// One's own initial RAM disk.
    pub initrd: Option<PathBuf>,
    /// The architecture of one's own kernel (default: the first this build knows).
    pub architecture: Option<String>,
    /// Kernel command line, replacing the default.
    pub append: Option<String>,
    /// Guest RAM in MiB.
    pub memory_mib: Option<u64>,
    /// Regular expression matching the shell prompt.
    pub prompt: Option<String>,
}

impl GuestOptions {
    /// The machine these options name. Building a generic image the first time reports
    /// progress through `progress`.
    pub fn config(&self, progress: &mut dyn FnMut(&str)) -> Result<MachineConfig, DriverError> {
        // Checked first: a bad option must not wait for an image build.
        if self.memory_mib == Some(0) {
            return Err(DriverError::NoMemory);
        }
        let mut config = match (&self.generic, &self.kernel) {
            (Some(name), _) => MachineConfig::generic(name, progress)?,
            (None, Some(kernel)) => {
                let architecture = match &self.architecture {
                    Some(name) => Architecture::from_name(name)
                        .ok_or_else(|| BuildError::UnknownArchitecture(name.clone()))?,
                    None => Architecture::ALL[0],
                };
                MachineConfig::own_kernel(architecture, kernel.clone(), self.initrd.clone())
            }
            (None, None) => {
                return Err(DriverError::NoGuest {
                    images: pandare_images::AVAILABLE.join(", "),
                })
            }
        };
        if let Some(initrd) = &self.initrd {
            config.initrd = Some(initrd.clone());
        }
        if let Some(append) = &self.append {
            config.append = append.clone();
        }
        if let Some(memory_mib) = self.memory_mib {
            config.memory_mib = memory_mib;
        }
        if let Some(prompt) = &self.prompt {
            config.prompt = prompt.clone();
        }
        Ok(config)
    }
}

/// Where a run starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start<'a> {
    /// Boot the kernel.
    Boot,
    /// Load this named snapshot.
    Snapshot(&'a str),
    /// The image's `root` snapshot when it has been saved, a boot otherwise.
    RootOrBoot,
}

/// A console over a machine of `config`, started as `start` says; also returns the
/// snapshot it was started from, if any.
pub fn start(
    config: &MachineConfig,
    store: &mut SnapshotStore,
    start: Start<'_>,
) -> Result<(Console, Option<String>), DriverError> {
    let prompt = config.prompt_regex()?;
    let name = match start {
        Start::Boot => None,
        Start::Snapshot(name) => Some(name),
        Start::RootOrBoot => store.exists(ROOT_SNAPSHOT).then_some(ROOT_SNAPSHOT),
    };
    let Some(name) = name else {
        return Ok((Console::new(config.build()?, prompt), None));
    };
    let snapshot = store.load(name)?;
    let mut machine = config.build_blank()?;
    match machine.load_snapshot(&snapshot) {
        Ok(()) => Ok((Console::new(machine, prompt), Some(name.to_string()))),
        // A generic image's root snapshot made by another version of pandare is made again
        // (by booting), rather than refused: users never made it themselves.
        Err(SnapshotError::StateVersion { .. })
            if start == Start::RootOrBoot && name == ROOT_SNAPSHOT =>
        {
            eprintln!(
                "panda: the image's root snapshot was made by another version of pandare; \
                 booting to make it again"
            );
            store.delete(ROOT_SNAPSHOT)?;
            Ok((Console::new(config.build()?, prompt), None))
        }
        Err(source) => Err(DriverError::Load {
            name: name.to_string(),
            source,
        }),
    }
}

/// Boots a fresh machine of `config` to its prompt and saves it in `store` as
/// [`ROOT_SNAPSHOT`].
pub fn make_root(config: &MachineConfig, store: &mut SnapshotStore) -> Result<(), DriverError> {
    let mut console = Console::new(config.build()?, config.prompt_regex()?);
    console
        .wait_for_prompt(BOOT_LIMIT)
        .map_err(DriverError::Boot)?;
    save_root(&mut console, store)
}

/// Saves `console`'s machine (at its prompt) as [`ROOT_SNAPSHOT`].
pub fn save_root(console: &mut Console, store: &mut SnapshotStore) -> Result<(), DriverError> {
    Ok(store.save(ROOT_SNAPSHOT, console.save_snapshot())?)
}

/// Puts `console`'s machine back to snapshot `name`. A generic image's `root` is made first
/// when it is missing (`generic`: `config` is a generic image's).
pub fn revert(
    console: &mut Console,
    store: &mut SnapshotStore,
    config: &MachineConfig,
    generic: bool,
    name: &str,
) -> Result<(), DriverError> {
    let root = name == ROOT_SNAPSHOT && generic;
    if root && !store.exists(name) {
        make_root(config, store)?;
    }
    let snapshot = store.load(name)?;
    match console.load_snapshot(&snapshot) {
        // A generic image's root snapshot made by another version of pandare is made again.
        Err(SnapshotError::StateVersion { .. }) if root => {
            make_root(config, store)?;
            let snapshot = store.load(name)?;
            console.load_snapshot(&snapshot)
        }
        result => result,
    }
    .map_err(|source| DriverError::Load {
        name: name.to_string(),
        source,
    })
}

/// How an idle guest's clock moves on.
pub enum Pacing<'a> {
    /// Straight to the next timer event: batch runs, deterministic and fast.
    Skip,
    /// In real time, for an interactive console: `wait(longest)` waits at most `longest`
    /// of host time (less when input arrives) and returns the time it waited; the clock
    /// then moves on by as much (at least one unit, at most to the next event).
    RealTime {
        /// The longest one wait may take (so the front end stays responsive).
        most: Duration,
        /// Waits; returns the time waited.
        wait: &'a mut dyn FnMut(Duration) -> Duration,
    },
}

impl std::fmt::Debug for Pacing<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pacing::Skip => f.write_str("Skip"),
            Pacing::RealTime { most, .. } => write!(f, "RealTime {{ most: {most:?} }}"),
        }
    }
}

/// Moves the clock of a guest whose last slice ended idle. Returns false when no timer is
/// armed: then only input can wake the guest (with [`Pacing::RealTime`], the wait for it
/// has happened).
pub fn idle(console: &mut Console, pacing: Pacing<'_>) -> bool {
    let now = console.machine().now();
    let next = console.machine().next_event();
    match pacing {
        Pacing::Skip => {
            if let Some(time) = next {
                console.skip_to(time);
            }
        }
        Pacing::RealTime { most, wait } => {
            let gap = next.map(|time| time.saturating_sub(now));
            let longest = match gap {
                Some(gap) => most.min(Duration::from_nanos(gap.saturating_mul(NANOS_PER_UNIT))),
                None => most,
            };
            let waited = wait(longest).as_nanos();
            if let Some(gap) = gap {
                let advance =
                    u64::try_from(waited / u128::from(NANOS_PER_UNIT)).unwrap_or(u64::MAX);
                console.skip_to(now + advance.clamp(1, gap.max(1)));
            }
        }
    }
    next.is_some()
}

/// Host nanoseconds per unit of virtual time.
const NANOS_PER_UNIT: u64 = 1_000_000_000 / UNITS_PER_SECOND;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_kernel_options_take_the_architecture_defaults() {
        let options = GuestOptions {
            kernel: Some("/k".into()),
            ..GuestOptions::default()
        };
        let config = options.config(&mut |_| {}).unwrap();
        let description = Architecture::ALL[0].description();
        assert_eq!(config.append, description.console_arguments);
        assert_eq!(config.memory_mib, description.default_memory_mib);
        assert_eq!(config.prompt, crate::config::DEFAULT_PROMPT);
    }

    #[test]
    fn overrides_replace_defaults() {
        let options = GuestOptions {
            kernel: Some("/k".into()),
            initrd: Some("/i".into()),
            append: Some("quiet".into()),
            memory_mib: Some(64),
            prompt: Some("> ".into()),
            ..GuestOptions::default()
        };
        let config = options.config(&mut |_| {}).unwrap();
        assert_eq!(config.initrd, Some("/i".into()));
        assert_eq!(config.append, "quiet");
        assert_eq!(config.memory_mib, 64);
        assert_eq!(config.prompt, "> ");
    }

    #[test]
    fn bad_options_are_refused_before_anything_slow() {
        let none = GuestOptions::default().config(&mut |_| {});
        assert!(matches!(none, Err(DriverError::NoGuest { .. })));
        let zero = GuestOptions {
            generic: Some(generic_images()[0].into()),
            memory_mib: Some(0),
            ..GuestOptions::default()
        };
        let mut progressed = false;
        let result = zero.config(&mut |_| progressed = true);
        assert!(matches!(result, Err(DriverError::NoMemory)));
        assert!(!progressed);
        let arch = GuestOptions {
            kernel: Some("/k".into()),
            architecture: Some("vax".into()),
            ..GuestOptions::default()
        };
        let error = arch.config(&mut |_| {}).unwrap_err().to_string();
        assert!(
            error.contains("'vax'") && error.contains(&Architecture::names()),
            "{error}"
        );
    }

    #[test]
    fn the_default_prompt_matches_a_whole_last_line_only() {
        let prompt = regex::bytes::Regex::new(crate::config::DEFAULT_PROMPT).unwrap();
        assert!(prompt.is_match(b"boot\n~ # "));
        assert!(prompt.is_match(b"boot\n$ \x1b[6n"));
        assert!(!prompt.is_match(b"~ # \nmore output"));
    }
}
