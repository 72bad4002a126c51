//! Named snapshots of one guest, kept in memory for fast reverts and on disk (atomically
//! written archives) so they outlive the process: `savevm`, `loadvm`, `delvm`,
//! `panda snapshot list|delete`, and the generic images' `root` snapshot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pandare_core::archive;
use pandare_core::{Fnv64, Snapshot, SnapshotError};

use crate::config::MachineConfig;

/// File name extension of snapshot files.
pub const EXTENSION: &str = "snapshot";

/// Why a named snapshot could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No snapshot has that name.
    #[error("there is no snapshot named '{name}' (see `panda snapshot list`)")]
    NotFound {
        /// The name.
        name: String,
    },
    /// The name cannot be a file name.
    #[error("'{name}' is not a valid snapshot name: use letters, digits, '-', '_' and '.'")]
    BadName {
        /// The name.
        name: String,
    },
    /// The file is bad or could not be written.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
}

/// The snapshots of one guest configuration.
#[derive(Debug)]
pub struct SnapshotStore {
    directory: PathBuf,
    cached: HashMap<String, Snapshot>,
}

fn check_name(name: &str) -> Result<(), StoreError> {
    let valid = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if valid {
        Ok(())
    } else {
        Err(StoreError::BadName {
            name: name.to_string(),
        })
    }
}

impl SnapshotStore {
    /// The store in `directory` (created when the first snapshot is saved).
    pub fn in_directory(directory: PathBuf) -> SnapshotStore {
        SnapshotStore {
            directory,
            cached: HashMap::new(),
        }
    }

    /// The store of a guest: per generic image by name, otherwise per (kernel, initrd,
    /// memory, command line).
    pub fn for_guest(config: &MachineConfig, generic: Option<&str>) -> SnapshotStore {
        let key = match generic {
            Some(name) => name.to_string(),
            None => {
                let mut hash = Fnv64::default();
                hash.bytes(config.kernel.as_os_str().as_encoded_bytes());
                if let Some(initrd) = &config.initrd {
                    hash.bytes(initrd.as_os_str().as_encoded_bytes());
                }
                hash.word(config.memory_mib);
                hash.bytes(config.append.as_bytes());
                format!("custom-{:016x}", hash.finish())
            }
        };
        SnapshotStore::in_directory(pandare_images::cache_root().join("snapshots").join(key))
    }

    /// Where the snapshots live.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn path(&self, name: &str) -> PathBuf {
        self.directory.join(format!("{name}.{EXTENSION}"))
    }

    /// Saves `snapshot` as `name`, replacing any older one (atomically).
    pub fn save(&mut self, name: &str, snapshot: Snapshot) -> Result<(), StoreError> {
        check_name(name)?;
        std::fs::create_dir_all(&self.directory).map_err(|source| SnapshotError::Io {
            path: self.directory.display().to_string(),
            source,
        })?;
        archive::write_snapshot(&self.path(name), &snapshot)?;
        self.cached.insert(name.to_string(), snapshot);
        Ok(())
    }

    /// The snapshot named `name`, from memory or disk.
    pub fn load(&mut self, name: &str) -> Result<Snapshot, StoreError> {
        check_name(name)?;
        if let Some(snapshot) = self.cached.get(name) {
            return Ok(snapshot.clone());
        }
        let path = self.path(name);
        if !path.exists() {
            return Err(StoreError::NotFound {
                name: name.to_string(),
            });
        }
        let snapshot = archive::read_snapshot(&path)?;
        self.cached.insert(name.to_string(), snapshot.clone());
        Ok(snapshot)
    }

    /// Whether a snapshot named `name` exists.
    pub fn exists(&self, name: &str) -> bool {
        self.cached.contains_key(name) || check_name(name).is_ok() && self.path(name).exists()
    }

    /// Deletes `name`; false when there was none.
    pub fn delete(&mut self, name: &str) -> Result<bool, StoreError> {
        check_name(name)?;
        let in_memory = self.cached.remove(name).is_some();
        let path = self.path(name);
        let on_disk = match std::fs::remove_file(&path) {
            Ok(()) => true,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(SnapshotError::Io {
                    path: path.display().to_string(),
                    source,
                }
                .into())
            }
        };
        Ok(in_memory || on_disk)
    }

    /// Names and file sizes of the snapshots on disk, sorted by name.
    pub fn list(&self) -> Vec<(String, u64)> {
        let mut found = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&self.directory) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                    continue;
                }
                if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    found.push((stem.to_string(), size));
                }
            }
        }
        found.sort();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_the_directory_are_refused() {
        for name in ["", "../x", "a/b", ".hidden", "sp ace"] {
            assert!(check_name(name).is_err(), "{name:?}");
        }
        assert!(check_name("root").is_ok());
        assert!(check_name("before-exploit_2.1").is_ok());
    }
}
