//! What machine to build, and building it.

use std::path::PathBuf;

use pandare_core::Machine;
use pandare_riscv::{VirtConfig, VirtMachine};

/// Guest architectures pandare can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// 64-bit RISC-V (RV64GC) on the "virt" board.
    Riscv64,
}

impl Architecture {
    /// Parses an architecture name as images and users write it.
    pub fn from_name(name: &str) -> Option<Architecture> {
        match name {
            "riscv64" => Some(Architecture::Riscv64),
            _ => None,
        }
    }

    /// The canonical name.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Riscv64 => "riscv64",
        }
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
    /// The image names an architecture this build does not know.
    #[error(
        "image architecture '{0}' is not supported by this build of pandare (supported: riscv64)"
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
                let machine = VirtMachine::new_linux(config, &kernel, initrd.as_deref())?;
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
                Ok(Box::new(VirtMachine::new_blank(config)?))
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
