//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, building or loading a generic image.
///
/// Each message says what happened and, where the user can do something about it, what to
/// do. Messages that quote a tool's output end with the last lines of that output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The name passed to [`crate::ensure`], [`crate::build`] or [`crate::cached`] is not
    /// one of [`crate::AVAILABLE`].
    #[error("unknown image `{name}`; the available images are: {available}")]
    UnknownImage {
        /// The name that was asked for.
        name: String,
        /// The names that exist, comma separated.
        available: String,
    },

    /// A program that the build runs (apt-get, apt-cache, dpkg-deb) is not installed.
    #[error(
        "`{tool}` was not found on PATH; building a guest image uses Debian's packaging tools, \
         install the `{package}` package (building works on Debian and its derivatives only)"
    )]
    ToolMissing {
        /// The program that is missing.
        tool: String,
        /// The Debian package that provides it.
        package: String,
    },

    /// The keyring that authenticates Debian's archive is missing.
    #[error(
        "the Debian archive keyring {} is missing; install the `debian-archive-keyring` package \
         (apt needs it to check the downloaded package lists)",
        path.display()
    )]
    KeyringMissing {
        /// Where the keyring was expected.
        path: PathBuf,
    },

    /// No Debian mirror could be read from the host's apt configuration.
    #[error(
        "could not find a Debian mirror in {searched}; set PANDARE_DEBIAN_MIRROR to the URL of a \
         Debian mirror (the directory that holds dists/ and pool/)"
    )]
    NoMirror {
        /// The files that were looked at.
        searched: String,
    },

    /// `PANDARE_DEBIAN_MIRROR` is set to something that is not a URL.
    #[error(
        "PANDARE_DEBIAN_MIRROR is set to {value:?}, which is not a URL; set it to the URL of a \
         Debian mirror (the directory that holds dists/ and pool/), or unset it to use the \
         host's apt configuration"
    )]
    BadMirror {
        /// The value of the variable.
        value: String,
    },

    /// `apt-get update` could not fetch the package lists.
    #[error(
        "could not fetch Debian's `{suite}` package lists for {arch} from {mirror}; check the \
         network, or set PANDARE_DEBIAN_MIRROR to a reachable Debian mirror. apt-get said:\n{detail}"
    )]
    MirrorUnreachable {
        /// The mirror URL that was used.
        mirror: String,
        /// The Debian suite (e.g. `trixie`).
        suite: String,
        /// The Debian architecture (e.g. `riscv64`).
        arch: String,
        /// The last lines of apt-get's output.
        detail: String,
    },

    /// A package the image needs is not in the downloaded package lists.
    #[error(
        "Debian package `{package}` was not found for {arch} in `{suite}` at {mirror}; the mirror \
         may be incomplete (set PANDARE_DEBIAN_MIRROR to another one) or Debian may have renamed \
         the package. {detail}"
    )]
    PackageNotFound {
        /// The package name.
        package: String,
        /// The Debian architecture.
        arch: String,
        /// The Debian suite.
        suite: String,
        /// The mirror URL.
        mirror: String,
        /// What apt said.
        detail: String,
    },

    /// `apt-get download` failed.
    #[error(
        "could not download Debian package `{package}`; check the network, or set \
         PANDARE_DEBIAN_MIRROR to another Debian mirror. apt-get said:\n{detail}"
    )]
    DownloadFailed {
        /// The package name.
        package: String,
        /// The last lines of apt-get's output.
        detail: String,
    },

    /// A helper program failed in an unexpected way.
    #[error("`{command}` failed ({status}); its last output was:\n{detail}")]
    CommandFailed {
        /// The command line, shortened.
        command: String,
        /// The exit status.
        status: String,
        /// The last lines of its output.
        detail: String,
    },

    /// A downloaded package does not contain the file the image needs.
    #[error(
        "Debian package `{package}` contains no {what}; Debian may have changed the package's \
         layout, please report this to pandare's developers"
    )]
    MissingInPackage {
        /// The package name.
        package: String,
        /// The file that was looked for.
        what: String,
    },

    /// The kernel file is not a flat RISC-V `Image`.
    #[error(
        "{file} is not a RISC-V Linux kernel Image ({detail}); Debian may have changed the \
         kernel's format, please report this to pandare's developers"
    )]
    BadKernel {
        /// The file that was checked (archive member and package file).
        file: String,
        /// What is wrong with it.
        detail: String,
    },

    /// The busybox binary is not a static executable for the image's architecture.
    #[error(
        "{file} is not a static {arch} executable ({detail}); Debian may have changed the \
         package, please report this to pandare's developers"
    )]
    BadBusybox {
        /// The file that was checked (archive member and package file).
        file: String,
        /// The expected architecture.
        arch: String,
        /// What is wrong with it.
        detail: String,
    },

    /// Another process has been building the same image for too long.
    #[error(
        "another build of image `{name}` (process {pid}) has held {} for {waited_secs} s; wait \
         for it to finish, or delete that file if the process is gone",
        lock.display()
    )]
    Locked {
        /// The image name.
        name: String,
        /// The process that holds the lock.
        pid: u32,
        /// The lock file.
        lock: PathBuf,
        /// How long this process waited.
        waited_secs: u64,
    },

    /// A file-system operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done, with the path, e.g. "create directory /x".
        action: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

impl ImageError {
    /// Wraps an I/O error with a description of what was being done.
    pub(crate) fn io(action: impl Into<String>, source: io::Error) -> Self {
        ImageError::Io {
            action: action.into(),
            source,
        }
    }
}

/// `result.ctx(|| "create directory /x")?` turns an `io::Error` into [`ImageError::Io`].
pub(crate) trait IoContext<T> {
    fn ctx<S: Into<String>>(self, action: impl FnOnce() -> S) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx<S: Into<String>>(self, action: impl FnOnce() -> S) -> Result<T, ImageError> {
        self.map_err(|e| ImageError::io(action(), e))
    }
}
