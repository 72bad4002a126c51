//! Output files written atomically: to a temporary name beside the target, then renamed, so
//! a reader never sees half a file and an interrupted run leaves the previous one intact.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::PluginError;

/// A file being written; it appears under its name only when [`AtomicFile::commit`] is
/// called (dropping it removes the temporary file).
#[derive(Debug)]
pub(crate) struct AtomicFile {
    plugin: &'static str,
    path: PathBuf,
    temporary: PathBuf,
    writer: Option<BufWriter<File>>,
}

impl AtomicFile {
    pub(crate) fn create(plugin: &'static str, path: &Path) -> Result<AtomicFile, PluginError> {
        let mut name = path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".tmp-{}", std::process::id()));
        let temporary = path.with_file_name(name);
        let file = File::create(&temporary).map_err(|source| PluginError::Io {
            plugin,
            action: "write",
            path: path.to_path_buf(),
            source,
        })?;
        Ok(AtomicFile {
            plugin,
            path: path.to_path_buf(),
            temporary,
            writer: Some(BufWriter::new(file)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends bytes. A write error is kept and reported by [`AtomicFile::commit`].
    pub(crate) fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self.writer.as_mut() {
            Some(writer) => writer.write_all(bytes),
            None => Ok(()),
        }
    }

    /// Flushes, syncs and renames the file to its name.
    pub(crate) fn commit(mut self) -> Result<(), PluginError> {
        let error = |source| PluginError::Io {
            plugin: self.plugin,
            action: "write",
            path: self.path.clone(),
            source,
        };
        let writer = self.writer.take().expect("committed once");
        let file = writer.into_inner().map_err(|e| error(e.into_error()))?;
        file.sync_all().map_err(error)?;
        std::fs::rename(&self.temporary, &self.path).map_err(error)?;
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.writer.take().is_some() {
            let _ = std::fs::remove_file(&self.temporary);
        }
    }
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_atomic(
    plugin: &'static str,
    path: &Path,
    bytes: &[u8],
) -> Result<(), PluginError> {
    let mut file = AtomicFile::create(plugin, path)?;
    file.write(bytes).map_err(|source| PluginError::Io {
        plugin,
        action: "write",
        path: path.to_path_buf(),
        source,
    })?;
    file.commit()
}

/// The largest file a plugin argument may name: far more than any list of addresses or
/// symbols needs, far less than what would exhaust the host.
pub(crate) const ARGUMENT_FILE_LIMIT: u64 = 64 << 20;

/// Reads a text file an argument names (a regular file of at most
/// [`ARGUMENT_FILE_LIMIT`] bytes).
pub(crate) fn read_text(plugin: &'static str, path: &Path) -> Result<String, PluginError> {
    pandare_core::files::read_text_limited("argument file", path, ARGUMENT_FILE_LIMIT, "")
        .map_err(|source| PluginError::File { plugin, source })
}
