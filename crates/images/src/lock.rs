//! A lock file that keeps two processes from building the same image at once.
//!
//! The file is created exclusively and holds the owner's process id. A lock whose process
//! no longer exists (an interrupted build) is broken; a live one is waited for.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{ImageError, IoContext};

/// Held while an image is being built; removes its file when dropped.
#[derive(Debug)]
pub(crate) struct Lock {
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path`, waiting up to `timeout` for a live holder to finish.
    pub(crate) fn acquire(
        path: &Path,
        name: &str,
        timeout: Duration,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Lock, ImageError> {
        let start = Instant::now();
        let mut told = false;
        loop {
            match OpenOptions::new().write(true).create_new(true).open(path) {
                Ok(mut file) => {
                    writeln!(file, "{}", std::process::id())
                        .ctx(|| format!("write lock file {}", path.display()))?;
                    return Ok(Lock {
                        path: path.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(ImageError::io(
                        format!("create lock file {}", path.display()),
                        e,
                    ))
                }
            }
            let content = fs::read_to_string(path).unwrap_or_default();
            match content.trim().parse::<u32>() {
                Ok(pid) if process_alive(pid) => {
                    if start.elapsed() > timeout {
                        return Err(ImageError::Locked {
                            name: name.to_string(),
                            pid,
                            lock: path.to_path_buf(),
                            waited_secs: start.elapsed().as_secs(),
                        });
                    }
                    if !told {
                        progress(&format!(
                            "waiting for another build of image {name} (process {pid}) to finish"
                        ));
                        told = true;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
                Ok(pid) => {
                    progress(&format!(
                        "removing the lock left by an interrupted build (process {pid})"
                    ));
                    break_stale(path, &content);
                }
                Err(_) => {
                    // Empty or garbled: either its creator has not written its id yet, or
                    // it died in between. Break it once it is clearly old.
                    let old = fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > Duration::from_secs(10));
                    if old {
                        break_stale(path, &content);
                    } else {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                }
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Removes a stale lock file whose content was `seen`, taking care not to remove a fresh
/// lock that another process created in the meantime.
fn break_stale(path: &Path, seen: &str) {
    let aside = path.with_extension(format!("stale-{}", std::process::id()));
    if fs::rename(path, &aside).is_err() {
        return; // already gone: someone else broke it
    }
    if fs::read_to_string(&aside).unwrap_or_default() != seen {
        // It was a new lock; put it back (hard_link fails if yet another one appeared).
        let _ = fs::hard_link(&aside, path);
    }
    let _ = fs::remove_file(&aside);
}

/// Whether process `pid` exists. Without /proc this cannot be known, so it is assumed to.
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true; // another thread of this process holds it
    }
    if !Path::new("/proc/self").exists() {
        return true;
    }
    Path::new("/proc").join(pid.to_string()).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("pandare-images-lock-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn takes_releases_and_breaks_stale_locks() {
        let dir = temp("a");
        let path = dir.join(".x.lock");
        let mut messages = Vec::new();
        {
            let _lock = Lock::acquire(&path, "x", Duration::ZERO, &mut |m| {
                messages.push(m.to_string());
            })
            .unwrap();
            assert_eq!(
                fs::read_to_string(&path).unwrap().trim(),
                std::process::id().to_string()
            );
            // Held by this process: a second attempt waits and then times out.
            let err = Lock::acquire(&path, "x", Duration::ZERO, &mut |_| {}).unwrap_err();
            assert!(matches!(err, ImageError::Locked { .. }), "{err}");
        }
        assert!(!path.exists());
        // A lock left by a process that no longer exists is broken.
        fs::write(&path, "4294967295\n").unwrap();
        let lock = Lock::acquire(&path, "x", Duration::ZERO, &mut |m| {
            messages.push(m.to_string());
        })
        .unwrap();
        assert!(
            messages.iter().any(|m| m.contains("interrupted")),
            "{messages:?}"
        );
        drop(lock);
        let _ = fs::remove_dir_all(&dir);
    }
}
