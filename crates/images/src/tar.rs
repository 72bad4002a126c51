//! A streaming reader for the tar archives inside Debian packages.
//!
//! `dpkg-deb --fsys-tarfile` writes a package's file tree as an uncompressed tar stream.
//! Reading that stream here, instead of unpacking the whole package with `dpkg-deb -x`,
//! lets the build pick the two files it needs and stop early: the kernel package unpacks
//! to several hundred megabytes of modules, but `boot/vmlinux-*` comes first.
//!
//! Supported: ustar and GNU headers, GNU long names (`L`/`K`), pax `path`/`linkpath`/
//! `size` records, base-256 sizes. Headers are checksum-verified.

use std::io::{self, Read, Write};

const BLOCK: usize = 512;

/// The kind of a tar entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Directory,
    Symlink,
    HardLink,
    Other(u8),
}

/// One entry's header. Its data is read with [`TarReader::copy_data`] before the next call
/// to [`TarReader::next_entry`] (or skipped by that call).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path without a leading `./` or `/` and without a trailing `/`.
    pub path: String,
    pub kind: Kind,
    pub size: u64,
    pub mode: u32,
    pub link: String,
}

/// Reads entries one by one from a tar stream.
pub(crate) struct TarReader<R: Read> {
    inner: R,
    /// Data bytes of the current entry not yet consumed.
    remaining: u64,
    /// Padding after the current entry's data.
    padding: u64,
    finished: bool,
}

impl<R: Read> TarReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
            finished: false,
        }
    }

    /// Returns the next entry, or `None` at the end of the archive.
    pub(crate) fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        let mut long_name: Option<String> = None;
        let mut long_link: Option<String> = None;
        let mut pax_path: Option<String> = None;
        let mut pax_link: Option<String> = None;
        let mut pax_size: Option<u64> = None;
        loop {
            self.skip_rest()?;
            if self.finished {
                return Ok(None);
            }
            let mut header = [0u8; BLOCK];
            if !read_block_or_eof(&mut self.inner, &mut header)? || header.iter().all(|&b| b == 0) {
                // A zero block (or a clean end of stream) ends the archive.
                self.finished = true;
                return Ok(None);
            }
            verify_checksum(&header)?;
            let typeflag = header[156];
            let size = parse_number(&header[124..136])
                .ok_or_else(|| bad("unreadable size field in a tar header"))?;
            self.remaining = size;
            self.padding = (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64;
            match typeflag {
                b'L' => long_name = Some(self.read_small_string(size)?),
                b'K' => long_link = Some(self.read_small_string(size)?),
                b'x' => {
                    let records = self.read_small_string(size)?;
                    for (key, value) in parse_pax(&records) {
                        match key {
                            "path" => pax_path = Some(value.to_string()),
                            "linkpath" => pax_link = Some(value.to_string()),
                            "size" => pax_size = value.parse().ok(),
                            _ => {}
                        }
                    }
                }
                b'g' => {} // global pax header: nothing this reader needs
                _ => {
                    let mut path = cstr(&header[0..100]);
                    if &header[257..263] == b"ustar\0" {
                        let prefix = cstr(&header[345..500]);
                        if !prefix.is_empty() {
                            path = format!("{prefix}/{path}");
                        }
                    }
                    if let Some(p) = long_name.take().or(pax_path.take()) {
                        path = p;
                    }
                    let link = long_link
                        .take()
                        .or(pax_link.take())
                        .unwrap_or_else(|| cstr(&header[157..257]));
                    if let Some(s) = pax_size.take() {
                        self.remaining = s;
                        self.padding = (BLOCK as u64 - s % BLOCK as u64) % BLOCK as u64;
                    }
                    let kind = match typeflag {
                        b'0' | b'\0' | b'7' => Kind::File,
                        b'5' => Kind::Directory,
                        b'2' => Kind::Symlink,
                        b'1' => Kind::HardLink,
                        other => Kind::Other(other),
                    };
                    if kind != Kind::File {
                        // Only regular files carry data that callers may read.
                        self.padding += self.remaining;
                        self.remaining = 0;
                    }
                    let mode = u32::try_from(parse_number(&header[100..108]).unwrap_or(0))
                        .unwrap_or(0)
                        & 0o7777;
                    return Ok(Some(Entry {
                        path: normalize(&path),
                        kind,
                        size: self.remaining,
                        mode,
                        link,
                    }));
                }
            }
        }
    }

    /// Copies the current entry's data to `out` and returns the number of bytes copied.
    pub(crate) fn copy_data(&mut self, out: &mut dyn Write) -> io::Result<u64> {
        let want = self.remaining;
        let copied = io::copy(&mut (&mut self.inner).take(want), out)?;
        self.remaining -= copied;
        if copied != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the tar stream ended inside a file",
            ));
        }
        Ok(copied)
    }

    /// Skips what is left of the current entry's data and padding.
    fn skip_rest(&mut self) -> io::Result<()> {
        let want = self.remaining + self.padding;
        if want > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(want), &mut io::sink())?;
            if skipped != want {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ended inside an entry",
                ));
            }
        }
        self.remaining = 0;
        self.padding = 0;
        Ok(())
    }

    fn read_small_string(&mut self, size: u64) -> io::Result<String> {
        if size > 1 << 20 {
            return Err(bad("a tar extension header is implausibly large"));
        }
        let mut buf = Vec::new();
        self.copy_data(&mut buf)?;
        Ok(cstr(&buf))
    }
}

/// Reads one block; returns `false` when the stream ends exactly before it.
fn read_block_or_eof(r: &mut impl Read, block: &mut [u8; BLOCK]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < BLOCK {
        match r.read(&mut block[filled..]) {
            Ok(0) if filled == 0 => return Ok(false),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ended inside a header",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn verify_checksum(header: &[u8; BLOCK]) -> io::Result<()> {
    let stored = parse_number(&header[148..156])
        .ok_or_else(|| bad("unreadable checksum field in a tar header"))?;
    // The checksum is the sum of all header bytes with the checksum field read as spaces.
    let sum: u64 = header
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(b)
            }
        })
        .sum();
    if sum == stored {
        Ok(())
    } else {
        Err(bad("tar header checksum mismatch (corrupt package?)"))
    }
}

/// Parses an octal number field (NUL/space padded) or a GNU base-256 number.
fn parse_number(field: &[u8]) -> Option<u64> {
    if let Some((&first, rest)) = field.split_first() {
        if first & 0x80 != 0 {
            if first & 0x40 != 0 {
                return None; // negative
            }
            let mut value = u64::from(first & 0x3f);
            for &b in rest {
                value = value.checked_mul(256)?.checked_add(u64::from(b))?;
            }
            return Some(value);
        }
    }
    let text: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(text, 8).ok()
}

/// Splits pax extended-header records (`"LEN key=value\n"`).
fn parse_pax(records: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let Some((len, _)) = rest.split_once(' ') else {
            break;
        };
        let Ok(len) = len.parse::<usize>() else {
            break;
        };
        if len == 0 || len > rest.len() || !rest.is_char_boundary(len) {
            break;
        }
        let (record, tail) = rest.split_at(len);
        rest = tail;
        let body = record
            .split_once(' ')
            .map_or("", |(_, b)| b)
            .trim_end_matches('\n');
        if let Some((k, v)) = body.split_once('=') {
            out.push((k, v));
        }
    }
    out
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn normalize(path: &str) -> String {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else {
            break;
        }
    }
    p.trim_end_matches('/').to_string()
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// Builds one header block in GNU or ustar layout.
    fn header(name: &str, typeflag: u8, size: u64, ustar: bool, prefix: &str) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        h[..name.len()].copy_from_slice(name.as_bytes());
        h[100..108].copy_from_slice(b"0000755\0");
        h[108..116].copy_from_slice(b"0000000\0");
        h[116..124].copy_from_slice(b"0000000\0");
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
        h[136..148].copy_from_slice(b"00000000000\0");
        h[156] = typeflag;
        if ustar {
            h[257..263].copy_from_slice(b"ustar\0");
            h[263..265].copy_from_slice(b"00");
            h[345..345 + prefix.len()].copy_from_slice(prefix.as_bytes());
        } else {
            h[257..265].copy_from_slice(b"ustar  \0");
        }
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        h
    }

    fn push_entry(out: &mut Vec<u8>, h: [u8; BLOCK], data: &[u8]) {
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(BLOCK) * BLOCK, 0);
    }

    #[test]
    fn reads_gnu_ustar_longname_and_pax_entries() {
        let long = format!("./usr/lib/{}/module.ko", "x".repeat(150));
        let mut tar = Vec::new();
        push_entry(&mut tar, header("./", b'5', 0, false, ""), b"");
        push_entry(
            &mut tar,
            header("./boot/vmlinux-1", b'0', 3, false, ""),
            b"abc",
        );
        push_entry(
            &mut tar,
            header("././@LongLink", b'L', long.len() as u64 + 1, false, ""),
            format!("{long}\0").as_bytes(),
        );
        push_entry(
            &mut tar,
            header("./usr/lib/xxx", b'0', 600, false, ""),
            &[7; 600],
        );
        push_entry(&mut tar, header("busybox", b'0', 2, true, "usr/bin"), b"bb");
        let pax = "29 path=./bin/renamed-by-pax\n";
        push_entry(
            &mut tar,
            header("PaxHeaders/x", b'x', pax.len() as u64, true, ""),
            pax.as_bytes(),
        );
        push_entry(&mut tar, header("./bin/short", b'2', 0, false, ""), b"");
        tar.extend_from_slice(&[0; 2 * BLOCK]);

        let mut r = TarReader::new(&tar[..]);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!((e.path.as_str(), e.kind), ("", Kind::Directory));
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.path.as_str(), e.kind, e.size, e.mode),
            ("boot/vmlinux-1", Kind::File, 3, 0o755)
        );
        let mut data = Vec::new();
        assert_eq!(r.copy_data(&mut data).unwrap(), 3);
        assert_eq!(data, b"abc");
        // The next entry's data is skipped without being read.
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, long.trim_start_matches("./"));
        assert_eq!(e.size, 600);
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(e.path, "usr/bin/busybox");
        let mut data = Vec::new();
        r.copy_data(&mut data).unwrap();
        assert_eq!(data, b"bb");
        let e = r.next_entry().unwrap().unwrap();
        assert_eq!(
            (e.path.as_str(), e.kind),
            ("bin/renamed-by-pax", Kind::Symlink)
        );
        assert!(r.next_entry().unwrap().is_none());
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        let mut tar = Vec::new();
        push_entry(&mut tar, header("./a", b'0', 700, false, ""), &[1; 700]);
        let mut corrupt = tar.clone();
        corrupt[0] = b'b';
        assert!(TarReader::new(&corrupt[..]).next_entry().is_err());
        let truncated = &tar[..BLOCK + 100];
        let mut r = TarReader::new(truncated);
        r.next_entry().unwrap().unwrap();
        assert!(r.copy_data(&mut io::sink()).is_err());
        let mut r = TarReader::new(&tar[..300]);
        assert!(r.next_entry().is_err());
    }

    #[test]
    fn numbers_and_pax_records() {
        assert_eq!(parse_number(b"00000000017\0"), Some(15));
        assert_eq!(parse_number(b"     17 \0"), Some(15));
        assert_eq!(parse_number(b"\0\0\0"), Some(0));
        assert_eq!(parse_number(&[0x80, 0, 0, 1, 0]), Some(256));
        assert_eq!(parse_number(b"9"), None);
        assert_eq!(
            parse_pax("18 path=a/b/c.txt\n13 size=1234\n"),
            [("path", "a/b/c.txt"), ("size", "1234")]
        );
    }

    /// Reads an archive made by the host's GNU tar, when there is one.
    #[test]
    fn reads_what_gnu_tar_writes() {
        let dir = std::env::temp_dir().join(format!("pandare-images-tar-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tree/boot")).unwrap();
        std::fs::write(dir.join("tree/boot/vmlinux-9"), vec![42u8; 1500]).unwrap();
        let out = Command::new("tar")
            .args(["--format=gnu", "-cf", "-", "-C"])
            .arg(dir.join("tree"))
            .arg(".")
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let out = match out {
            Ok(out) if out.status.success() => out.stdout,
            _ => {
                eprintln!("skipping the GNU tar cross-check: `tar` is not usable here");
                return;
            }
        };
        let mut r = TarReader::new(&out[..]);
        let mut found = false;
        while let Some(e) = r.next_entry().unwrap() {
            if e.path == "boot/vmlinux-9" {
                let mut data = Vec::new();
                r.copy_data(&mut data).unwrap();
                assert_eq!(data, vec![42u8; 1500]);
                found = true;
            }
        }
        assert!(found);
    }
}
