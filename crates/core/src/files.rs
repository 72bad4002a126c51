//! Reading the files a user names (kernels, initrds, plugin argument files) with a size
//! bound: a device such as `/dev/zero`, a pipe or a huge file is refused with an error
//! that says so, instead of being read until the host runs out of memory.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("cannot read the {what} {path}: {source}")]
    Io {
        /// What the file is for (`kernel`, `initrd`, ...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A device, pipe, socket or directory.
    #[error("the {what} {path} is not a regular file (a device, pipe or directory cannot be read as one); give a file")]
    NotAFile {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// Larger than the bound.
    #[error("the {what} {path} is larger than {limit} bytes, the most it can be{hint}")]
    TooLarge {
        /// What the file is for.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The bound in bytes.
        limit: u64,
        /// What to do about it (may be empty).
        hint: &'static str,
    },
}

/// Reads the regular file at `path`, of at most `limit` bytes. `what` names the file in
/// errors; `hint` is appended to the too-large error (e.g. "; give more memory with
/// --mem"). The size is checked before reading, and the read itself is bounded too, so a
/// file that grows meanwhile cannot make it read more.
pub fn read_limited(
    what: &'static str,
    path: &Path,
    limit: u64,
    hint: &'static str,
) -> Result<Vec<u8>, ReadError> {
    let io = |source| ReadError::Io {
        what,
        path: path.to_path_buf(),
        source,
    };
    let too_large = || ReadError::TooLarge {
        what,
        path: path.to_path_buf(),
        limit,
        hint,
    };
    let file = File::open(path).map_err(io)?;
    let metadata = file.metadata().map_err(io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotAFile {
            what,
            path: path.to_path_buf(),
        });
    }
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    bytes
        .try_reserve_exact(metadata.len() as usize)
        .map_err(|_| too_large())?;
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// [`read_limited`] for a UTF-8 text file.
pub fn read_text_limited(
    what: &'static str,
    path: &Path,
    limit: u64,
    hint: &'static str,
) -> Result<String, ReadError> {
    let bytes = read_limited(what, path, limit, hint)?;
    String::from_utf8(bytes).map_err(|_| ReadError::Io {
        what,
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "it is not UTF-8 text"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("pandare-files-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        for path in ["/dev/zero", "/dev/null", "/"] {
            let error = read_limited("kernel", Path::new(path), 1 << 20, "").unwrap_err();
            assert!(
                matches!(error, ReadError::NotAFile { .. }),
                "{path}: {error}"
            );
            assert!(error.to_string().contains("not a regular file"), "{error}");
        }
    }

    #[test]
    fn a_file_over_the_bound_is_refused_and_one_at_it_is_read() {
        let path = scratch("bound");
        std::fs::write(&path, [7u8; 100]).unwrap();
        assert_eq!(read_limited("initrd", &path, 100, "").unwrap(), [7u8; 100]);
        let error = read_limited("initrd", &path, 99, "; give more memory").unwrap_err();
        assert!(
            matches!(error, ReadError::TooLarge { limit: 99, .. }),
            "{error}"
        );
        assert!(error.to_string().ends_with("; give more memory"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn missing_files_and_non_text_say_why() {
        let path = scratch("missing");
        assert!(matches!(
            read_limited("kernel", &path, 10, ""),
            Err(ReadError::Io { .. })
        ));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        let error = read_text_limited("argument file", &path, 10, "").unwrap_err();
        assert!(error.to_string().contains("not UTF-8"), "{error}");
        std::fs::remove_file(&path).unwrap();
    }
}
