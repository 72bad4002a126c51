//! What machine to build, and building it.

use std::path::PathBuf;

use pandare_core::{ArchDescription, Machine};
use pandare_riscv::{Virt, VirtConfig};

/// The prompt of one's own guest: the whole last line of output (so no part of the prompt
/// is taken for command output), ending in `# ` or `$ ` and perhaps terminal escape codes
/// (busybox's shell queries the cursor position with `ESC [6n` right after its prompt).
pub const DEFAULT_PROMPT: &str = r"(?m)^[^\n]*[#$] (?:\x1b\[[0-9;?]*[A-Za-z])*\z";

/// Guest architectures pandare can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// 64-bit RISC-V (RV64GC) on the "virt" board.
    Riscv64,
}

impl Architecture {
    /// Parses an architecture name as images and users write it.
    pub fn from_name(name: &str) -> Option<Architecture> {
        Architecture::ALL
            .into_iter()
            .find(|architecture| architecture.name() == name)
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        self.description().name
    }

    /// Every architecture this build knows.
    pub const ALL: [Architecture; 1] = [Architecture::Riscv64];

    /// The architecture crate's description: its guest ABI (registers, calling
    /// conventions), console arguments, default memory and QEMU equivalent.
    pub fn description(self) -> &'static ArchDescription {
        match self {
            Architecture::Riscv64 => &pandare_riscv::DESCRIPTION,
        }
    }

    /// The names of every architecture, for error messages (`riscv64, x86_64`).
    pub fn names() -> String {
        Architecture::ALL.map(Architecture::name).join(", ")
    }
}

/// Errors building a machine.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A file could not be read, is not a regular file, or is larger than the guest's RAM.
    #[error(transparent)]
    Read(#[from] pandare_core::files::ReadError),
    /// The generic image could not be had.
    #[error(transparent)]
    Image(#[from] pandare_images::ImageError),
    /// The image or the user names an architecture this build does not know.
    #[error(
        "architecture '{0}' is not supported by this build of pandare (supported: {names})",
        names = Architecture::names()
    )]
    UnknownArchitecture(String),
    /// The platform refused the configuration.
    #[error(transparent)]
    Platform(#[from] pandare_riscv::VirtError),
    /// The prompt pattern is not a valid regular expression.
    #[error(
        "the prompt pattern {pattern:?} is not a valid regular expression: {}",
        one_line(.error)
    )]
    BadPrompt {
        /// The pattern.
        pattern: String,
        /// Why (not a `source`: its text spans lines, and the message holds its gist).
        error: regex::Error,
    },
}

/// The gist of a regular expression error on one line: `regex` spells syntax errors over
/// several lines (the pattern, a caret, then `error: what`), and the pattern is known.
fn one_line(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().rev().find(|line| !line.trim().is_empty());
    let last = last.unwrap_or(&text).trim();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

/// A guest to boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineConfig {
    /// Guest architecture.
    pub architecture: Architecture,
    /// RAM in MiB.
    pub memory_mib: u64,
    /// Kernel image.
    pub kernel: PathBuf,
    /// Initial RAM disk, if any.
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    pub append: String,
    /// Regular expression matching the shell prompt.
    pub prompt: String,
}

impl MachineConfig {
    /// The configuration of generic image `name`, building the image first if needed.
    /// `progress` receives one-line messages while an image is built.
    pub fn generic(
        name: &str,
        progress: &mut dyn FnMut(&str),
    ) -> Result<MachineConfig, BuildError> {
        let image = pandare_images::ensure(name, progress)?;
        let architecture = Architecture::from_name(&image.arch)
            .ok_or_else(|| BuildError::UnknownArchitecture(image.arch.clone()))?;
        Ok(MachineConfig {
            architecture,
            memory_mib: image.memory_mib,
            kernel: image.kernel,
            initrd: Some(image.initrd),
            append: image.append,
            prompt: image.prompt,
        })
    }

    /// One's own kernel (and initrd) on `architecture`, with the defaults every front end
    /// shares: the architecture's default memory, a kernel command line that puts the
    /// console on the serial port, and [`DEFAULT_PROMPT`].
    pub fn own_kernel(
        architecture: Architecture,
        kernel: PathBuf,
        initrd: Option<PathBuf>,
    ) -> MachineConfig {
        let description = architecture.description();
        MachineConfig {
            architecture,
            memory_mib: description.default_memory_mib,
            kernel,
            initrd,
            append: description.console_arguments.to_string(),
            prompt: DEFAULT_PROMPT.to_string(),
        }
    }

    /// Builds the machine, ready to run from its first instruction.
    pub fn build(&self) -> Result<Box<dyn Machine>, BuildError> {
        // Both must fit in the guest's RAM: nothing larger is worth reading.
        let limit = self.memory_mib.saturating_mul(1 << 20);
        let read = |what, path| {
            pandare_core::files::read_limited(what, path, limit, "; give more memory with --mem")
        };
        let kernel = read("kernel", &self.kernel)?;
        let initrd = match &self.initrd {
            Some(path) => Some(read("initrd", path)?),
            None => None,
        };
        match self.architecture {
            Architecture::Riscv64 => {
                let config = VirtConfig {
                    ram_bytes: self.memory_mib.saturating_mul(1 << 20),
                    command_line: self.append.clone(),
                    ..VirtConfig::default()
                };
                let machine = Virt::new_linux(config, &kernel, initrd.as_deref())?;
                Ok(Box::new(machine))
            }
        }
    }

    /// Builds the machine with empty RAM, to be filled by loading a snapshot.
    pub fn build_blank(&self) -> Result<Box<dyn Machine>, BuildError> {
        match self.architecture {
            Architecture::Riscv64 => {
                let config = VirtConfig {
                    ram_bytes: self.memory_mib.saturating_mul(1 << 20),
                    command_line: self.append.clone(),
                    ..VirtConfig::default()
                };
                Ok(Box::new(Virt::new_blank(config)?))
            }
        }
    }

    /// The compiled prompt pattern.
    pub fn prompt_regex(&self) -> Result<regex::bytes::Regex, BuildError> {
        regex::bytes::Regex::new(&self.prompt).map_err(|error| BuildError::BadPrompt {
            pattern: self.prompt.clone(),
            error,
        })
    }
}
