//! A writer for "newc" cpio archives, the format Linux unpacks as an initramfs.
//!
//! Every entry is a 110-byte ASCII header (`070701` followed by thirteen 8-digit hex
//! fields), the NUL-terminated path padded to a multiple of four bytes, then the data
//! padded the same way. The archive ends with an entry named `TRAILER!!!`. Linux accepts
//! such an archive uncompressed, so no compression is applied here.
//!
//! ```
//! use pandare_images::cpio::CpioWriter;
//!
//! let mut w = CpioWriter::new(Vec::new());
//! w.directory("bin", 0o755)?;
//! w.file("bin/hello", 0o755, b"#!/bin/sh\necho hello\n")?;
//! w.symlink("bin/hi", "hello")?;
//! w.char_device("dev/console", 0o600, 5, 1)?;
//! let archive: Vec<u8> = w.finish()?;
//! assert!(archive.starts_with(b"070701"));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, Write};

/// File type bits of `st_mode` as stored in a newc header.
pub const S_IFMT: u32 = 0o170_000;
/// Regular file.
pub const S_IFREG: u32 = 0o100_000;
/// Directory.
pub const S_IFDIR: u32 = 0o040_000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120_000;
/// Character device.
pub const S_IFCHR: u32 = 0o020_000;
/// Block device.
pub const S_IFBLK: u32 = 0o060_000;

/// The magic number that starts every newc header (no checksum variant).
pub const NEWC_MAGIC: &[u8; 6] = b"070701";
/// The name of the entry that ends an archive.
pub const TRAILER: &str = "TRAILER!!!";

/// Streams a newc cpio archive into `W`.
///
/// Paths are given relative to the archive root (a leading `/` is removed); parent
/// directories must be added before their children, as Linux's unpacker does not create
/// missing parents. All entries belong to uid 0 / gid 0 and carry the modification time
/// set with [`CpioWriter::set_mtime`] (0 by default, which keeps archives reproducible).
/// Inode numbers are assigned in order starting at 1; every entry has its own inode.
pub struct CpioWriter<W: Write> {
    out: W,
    offset: u64,
    next_ino: u32,
    mtime: u32,
}

impl<W: Write> fmt::Debug for CpioWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CpioWriter")
            .field("offset", &self.offset)
            .field("next_ino", &self.next_ino)
            .field("mtime", &self.mtime)
            .finish_non_exhaustive()
    }
}

/// One header's fields, in the order newc stores them (magic and `check` aside).
struct Header {
    mode: u32,
    nlink: u32,
    filesize: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

impl<W: Write> CpioWriter<W> {
    /// Starts an archive that is written to `out`.
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            offset: 0,
            next_ino: 1,
            mtime: 0,
        }
    }

    /// Sets the modification time (seconds since the epoch) of the entries added next.
    pub fn set_mtime(&mut self, mtime: u32) {
        self.mtime = mtime;
    }

    /// How many bytes have been written so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Adds a directory with permission bits `perm` (e.g. `0o755`).
    pub fn directory(&mut self, path: &str, perm: u32) -> io::Result<()> {
        self.entry(
            path,
            Header {
                mode: S_IFDIR | (perm & 0o7777),
                nlink: 2,
                filesize: 0,
                rdev_major: 0,
                rdev_minor: 0,
            },
            &[],
        )
    }

    /// Adds a regular file holding `data`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let filesize = u32::try_from(data.len()).map_err(|_| {
            invalid(format!(
                "{path}: {} bytes is too large for a newc archive (limit 4 GiB)",
                data.len()
            ))
        })?;
        self.entry(
            path,
            Header {
                mode: S_IFREG | (perm & 0o7777),
                nlink: 1,
                filesize,
                rdev_major: 0,
                rdev_minor: 0,
            },
            data,
        )
    }

    /// Adds a symbolic link at `path` that points to `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        if target.is_empty() || target.contains('\0') {
            return Err(invalid(format!(
                "{path}: symlink target {target:?} is empty or holds a NUL byte"
            )));
        }
        let filesize = u32::try_from(target.len())
            .map_err(|_| invalid(format!("{path}: symlink target is too long")))?;
        self.entry(
            path,
            Header {
                mode: S_IFLNK | 0o777,
                nlink: 1,
                filesize,
                rdev_major: 0,
                rdev_minor: 0,
            },
            target.as_bytes(),
        )
    }

    /// Adds a character device node with the given device numbers.
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        self.device(path, S_IFCHR | (perm & 0o7777), major, minor)
    }

    /// Adds a block device node with the given device numbers.
    pub fn block_device(
        &mut self,
        path: &str,
        perm: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        self.device(path, S_IFBLK | (perm & 0o7777), major, minor)
    }

    /// Writes the trailer, pads the archive to a multiple of 512 bytes (as GNU cpio does;
    /// Linux skips the zeros) and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_entry(
            TRAILER,
            Header {
                mode: 0,
                nlink: 1,
                filesize: 0,
                rdev_major: 0,
                rdev_minor: 0,
            },
            0,
            &[],
        )?;
        let rem = self.offset % 512;
        if rem != 0 {
            self.write_zeros(512 - rem)?;
        }
        self.out.flush()?;
        Ok(self.out)
    }

    fn device(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.entry(
            path,
            Header {
                mode,
                nlink: 1,
                filesize: 0,
                rdev_major: major,
                rdev_minor: minor,
            },
            &[],
        )
    }

    fn entry(&mut self, path: &str, header: Header, data: &[u8]) -> io::Result<()> {
        let name = normalize(path)?;
        let ino = self.next_ino;
        self.next_ino = self
            .next_ino
            .checked_add(1)
            .ok_or_else(|| invalid("too many entries for one archive".to_string()))?;
        self.write_entry(name, header, ino, data)
    }

    fn write_entry(&mut self, name: &str, h: Header, ino: u32, data: &[u8]) -> io::Result<()> {
        // The name size counts the terminating NUL.
        let namesize =
            u32::try_from(name.len() + 1).map_err(|_| invalid(format!("{name}: path too long")))?;
        let fields: [u32; 13] = [
            ino,
            h.mode,
            0, // uid
            0, // gid
            h.nlink,
            self.mtime,
            h.filesize,
            0, // devmajor: the device holding the file, meaningless here
            0, // devminor
            h.rdev_major,
            h.rdev_minor,
            namesize,
            0, // check: only used by the "070702" variant
        ];
        let mut header = Vec::with_capacity(110 + name.len() + 4);
        header.extend_from_slice(NEWC_MAGIC);
        for field in fields {
            header.extend_from_slice(format!("{field:08X}").as_bytes());
        }
        header.extend_from_slice(name.as_bytes());
        header.push(0);
        self.write_all(&header)?;
        self.pad4()?;
        self.write_all(data)?;
        self.pad4()
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.offset += bytes.len() as u64;
        Ok(())
    }

    fn pad4(&mut self) -> io::Result<()> {
        let rem = self.offset % 4;
        if rem == 0 {
            Ok(())
        } else {
            self.write_zeros(4 - rem)
        }
    }

    fn write_zeros(&mut self, count: u64) -> io::Result<()> {
        const ZEROS: [u8; 512] = [0; 512];
        let mut left = count;
        while left > 0 {
            let n = left.min(ZEROS.len() as u64);
            // n <= 512, so the cast cannot truncate.
            self.write_all(&ZEROS[..n as usize])?;
            left -= n;
        }
        Ok(())
    }
}

/// Removes leading `/` and `./`, and rejects paths that cannot be stored or unpacked safely.
fn normalize(path: &str) -> io::Result<&str> {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else {
            break;
        }
    }
    let p = p.trim_end_matches('/');
    if p.is_empty() || p == "." {
        return Err(invalid(format!(
            "{path:?}: the archive root needs no entry; give a path below it"
        )));
    }
    if p.contains('\0') {
        return Err(invalid(format!("{path:?}: path holds a NUL byte")));
    }
    if p.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
        return Err(invalid(format!(
            "{path:?}: path has an empty, `.` or `..` component"
        )));
    }
    if p == TRAILER {
        return Err(invalid(format!(
            "{path:?}: this name marks the archive's end"
        )));
    }
    Ok(p)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// One entry as read back by the independent reader below.
    #[derive(Debug, PartialEq, Eq)]
    struct Parsed {
        name: String,
        ino: u32,
        mode: u32,
        nlink: u32,
        mtime: u32,
        rdev: (u32, u32),
        data: Vec<u8>,
    }

    /// A minimal newc reader, written from the format description, not from the writer.
    fn parse(archive: &[u8]) -> Vec<Parsed> {
        fn hex(b: &[u8]) -> u32 {
            u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap()
        }
        fn align4(x: usize) -> usize {
            (x + 3) & !3
        }
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let h = &archive[pos..pos + 110];
            assert_eq!(&h[..6], b"070701", "bad magic at offset {pos}");
            let field = |i: usize| hex(&h[6 + 8 * i..14 + 8 * i]);
            let namesize = field(11) as usize;
            let filesize = field(6) as usize;
            let name_bytes = &archive[pos + 110..pos + 110 + namesize];
            assert_eq!(name_bytes.last(), Some(&0), "name not NUL-terminated");
            let name = String::from_utf8(name_bytes[..namesize - 1].to_vec()).unwrap();
            let data_start = align4(pos + 110 + namesize);
            let data = archive[data_start..data_start + filesize].to_vec();
            pos = align4(data_start + filesize);
            if name == "TRAILER!!!" {
                assert!(archive[pos..].iter().all(|&b| b == 0));
                assert_eq!(archive.len() % 512, 0);
                break;
            }
            assert_eq!(field(2), 0, "uid");
            assert_eq!(field(3), 0, "gid");
            assert_eq!(field(12), 0, "check");
            out.push(Parsed {
                name,
                ino: field(0),
                mode: field(1),
                nlink: field(4),
                mtime: field(5),
                rdev: (field(9), field(10)),
                data,
            });
        }
        out
    }

    fn sample() -> Vec<u8> {
        let mut w = CpioWriter::new(Vec::new());
        w.directory("/bin", 0o755).unwrap();
        w.directory("dev/", 0o755).unwrap();
        w.file("/bin/tool", 0o755, b"abcde").unwrap();
        w.set_mtime(1_700_000_000);
        w.file("./bin/empty", 0o644, b"").unwrap();
        w.symlink("bin/sh", "tool").unwrap();
        w.char_device("dev/console", 0o600, 5, 1).unwrap();
        w.block_device("dev/vda", 0o660, 254, 0).unwrap();
        assert!(w.bytes_written() > 0);
        w.finish().unwrap()
    }

    #[test]
    fn writes_newc_that_reads_back() {
        let entries = parse(&sample());
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "bin",
                "dev",
                "bin/tool",
                "bin/empty",
                "bin/sh",
                "dev/console",
                "dev/vda"
            ]
        );
        assert_eq!(entries[0].mode, 0o040_755);
        assert_eq!(entries[0].nlink, 2);
        assert_eq!(entries[2].mode, 0o100_755);
        assert_eq!(entries[2].data, b"abcde");
        assert_eq!(entries[2].mtime, 0);
        assert_eq!(entries[3].data, b"");
        assert_eq!(entries[3].mtime, 1_700_000_000);
        assert_eq!(entries[4].mode, 0o120_777);
        assert_eq!(entries[4].data, b"tool");
        assert_eq!(entries[5].mode, 0o020_600);
        assert_eq!(entries[5].rdev, (5, 1));
        assert_eq!(entries[6].mode, 0o060_660);
        assert_eq!(entries[6].rdev, (254, 0));
        let inos: Vec<u32> = entries.iter().map(|e| e.ino).collect();
        assert_eq!(inos, [1, 2, 3, 4, 5, 6, 7]);
    }

    #[test]
    fn data_of_every_length_is_padded() {
        for len in 0..9 {
            let data = vec![0xAB; len];
            let mut w = CpioWriter::new(Vec::new());
            w.file("f", 0o644, &data).unwrap();
            w.file("gg", 0o644, &data).unwrap();
            let entries = parse(&w.finish().unwrap());
            assert_eq!(entries.len(), 2);
            assert!(entries.iter().all(|e| e.data == data));
        }
    }

    #[test]
    fn rejects_bad_paths() {
        let mut w = CpioWriter::new(Vec::new());
        for bad in ["", "/", ".", "a/../b", "a//b", "TRAILER!!!", "a\0b"] {
            let err = w.file(bad, 0o644, b"").unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(w.symlink("l", "").is_err());
        // Nothing was written for the rejected entries.
        assert_eq!(w.bytes_written(), 0);
    }

    /// Checks the archive with GNU cpio when it is installed (Debian package `cpio`).
    #[test]
    fn gnu_cpio_lists_the_archive() {
        let spawned = Command::new("cpio")
            .args(["-itv", "--quiet"])
            .env("LC_ALL", "C")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("skipping the GNU cpio cross-check: cannot run `cpio` ({e}); install the `cpio` package to enable it");
                return;
            }
        };
        let archive = sample();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&archive));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "cpio failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), 7, "{stdout}");
        assert!(lines[0].starts_with("drwxr-xr-x") && lines[0].ends_with(" bin"));
        assert!(
            lines[2].starts_with("-rwxr-xr-x")
                && lines[2].contains(" 5 ")
                && lines[2].ends_with(" bin/tool")
        );
        assert!(lines[4].starts_with("lrwxrwxrwx") && lines[4].ends_with(" bin/sh -> tool"));
        assert!(
            lines[5].starts_with("crw-------")
                && lines[5].contains("5,")
                && lines[5].ends_with(" dev/console")
        );
        assert!(
            lines[6].starts_with("brw-rw----")
                && lines[6].contains("254,")
                && lines[6].ends_with(" dev/vda")
        );
    }
}
