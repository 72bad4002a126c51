//! The generic image's initramfs: busybox and an `/init` that starts a shell on the console.

use std::io::{self, Write};

use crate::cpio::CpioWriter;

/// The `PS1` the init script sets. Busybox expands `\w` to the working directory (`~` in
/// `/root`, the shell's start directory), so the first prompt reads `pandare:~# `.
pub const PS1: &str = r"pandare:\w# ";

/// A regular expression (Rust `regex` syntax) that matches the prompt printed for [`PS1`]:
/// `pandare:` then the directory (no newline, no `#`) then `# `. It is not anchored, so
/// callers can search a console buffer for it; busybox's shell writes the terminal query
/// `ESC [6n` just before each prompt, which callers may strip or ignore.
pub const PROMPT_REGEX: &str = r"pandare:[^\r\n#]*# ";

/// Directories created in the initramfs, parents first, with their permissions.
pub const DIRECTORIES: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("dev", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("tmp", 0o1777),
    ("root", 0o700),
    ("etc", 0o755),
    ("usr", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
];

/// The `/init` script. Linux runs it as process 1 with the console as stdin/stdout.
///
/// It mounts proc first (busybox's `--install` reads `/proc/self/exe`), installs the applet
/// symlinks into /bin, /sbin, /usr/bin and /usr/sbin, mounts sysfs and devtmpfs, and
/// replaces itself with a login shell that `cttyhack` attaches to the real console device
/// (ttyS0) as its controlling terminal, so job control and Ctrl-C work.
pub fn init_script() -> String {
    format!(
        "#!/bin/busybox sh
# /init of pandare's generic image (written by pandare-images)
/bin/busybox mount -t proc proc /proc
/bin/busybox --install -s
export PATH=/sbin:/usr/sbin:/bin:/usr/bin
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
export HOME=/root
export PS1='{PS1}'
cd /root
exec setsid cttyhack sh -l
"
    )
}

/// Writes the initramfs (an uncompressed newc cpio archive) holding `busybox` to `out`
/// and returns `out`.
pub fn write<W: Write>(busybox: &[u8], out: W) -> io::Result<W> {
    let mut w = CpioWriter::new(out);
    for &(dir, perm) in DIRECTORIES {
        w.directory(dir, perm)?;
    }
    w.file("bin/busybox", 0o755, busybox)?;
    // Present before devtmpfs is mounted: the kernel opens /dev/console for init's stdio.
    w.char_device("dev/console", 0o600, 5, 1)?;
    w.char_device("dev/null", 0o666, 1, 3)?;
    w.file("init", 0o755, init_script().as_bytes())?;
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_script_sets_the_documented_prompt() {
        let script = init_script();
        assert!(script.starts_with("#!/bin/busybox sh\n"));
        assert!(script.contains("export PS1='pandare:\\w# '\n"));
        assert!(script.contains("exec setsid cttyhack sh -l\n"));
        assert!(script.contains("mount -t devtmpfs devtmpfs /dev"));
    }

    #[test]
    fn prompt_regex_matches_the_prompt_only() {
        let re = regex::Regex::new(PROMPT_REGEX).unwrap();
        let matches = |text: &str| re.is_match(text);
        assert_eq!(PROMPT_REGEX, r"pandare:[^\r\n#]*# ");
        assert!(matches("\x1b[6npandare:~# "));
        assert!(matches("output\r\npandare:/tmp# "));
        assert!(!matches("pandare: starting\r\n# "));
        assert!(!matches("~ # "));
    }

    #[test]
    fn archive_starts_with_directories_and_ends_with_init() {
        let bytes = write(b"\x7fELF fake", Vec::new()).unwrap();
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        let order: Vec<usize> = [
            "usr/sbin\0",
            "bin/busybox\0",
            "dev/console\0",
            "dev/null\0",
            "init\0",
            "TRAILER!!!\0",
        ]
        .iter()
        .map(|n| text.find(n).unwrap_or_else(|| panic!("{n} missing")))
        .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    }
}
