//! Running apt with a private configuration: no root, no change to the host's apt setup.
//!
//! Everything apt writes lives under one directory (`<cache root>/apt-<arch>`): its package
//! lists (`state/`), its caches (`cache/`), an empty dpkg status file, the one-line
//! `sources.list`, and the downloaded `.deb` files (`debs/`). The host's apt.conf.d is
//! still read, so proxies configured there keep working.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::error::{ImageError, IoContext};

/// The keyring that authenticates Debian's archive.
pub(crate) const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// One package as apt-cache describes its candidate version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackageRecord {
    pub name: String,
    pub version: String,
    pub architecture: String,
    /// Size of the .deb in bytes (0 when apt does not say).
    pub size: u64,
}

/// A private apt installation for one Debian architecture and suite.
#[derive(Debug)]
pub(crate) struct Apt {
    pub dir: PathBuf,
    pub arch: String,
    pub suite: String,
    pub mirror: String,
}

impl Apt {
    /// Creates the directory layout and writes `sources.list` for `mirror`.
    pub(crate) fn prepare(&self) -> Result<(), ImageError> {
        for sub in ["state/lists/partial", "cache/archives/partial", "debs"] {
            let path = self.dir.join(sub);
            fs::create_dir_all(&path).ctx(|| format!("create directory {}", path.display()))?;
        }
        let status = self.dir.join("status");
        if !status.exists() {
            fs::write(&status, b"").ctx(|| format!("write {}", status.display()))?;
        }
        let list = self.dir.join("sources.list");
        fs::write(&list, sources_line(&self.arch, &self.mirror, &self.suite))
            .ctx(|| format!("write {}", list.display()))
    }

    /// The `-o` options that point apt at the private directory.
    pub(crate) fn options(&self) -> Vec<OsString> {
        let d = &self.dir;
        let mut pairs: Vec<(&str, OsString)> = vec![
            ("Dir::State", d.join("state").into()),
            ("Dir::State::status", d.join("status").into()),
            ("Dir::Cache", d.join("cache").into()),
            ("Dir::Etc::SourceList", d.join("sources.list").into()),
            ("Dir::Etc::SourceParts", "/dev/null".into()),
            ("Dir::Etc::Preferences", "/dev/null".into()),
            ("Dir::Etc::PreferencesParts", "/dev/null".into()),
            ("APT::Architecture", self.arch.clone().into()),
            ("APT::Architectures", self.arch.clone().into()),
            ("Debug::NoLocking", "1".into()),
            // Only the Packages index is needed: no translations, no AppStream metadata.
            ("Acquire::Languages", "none".into()),
            (
                "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled",
                "false".into(),
            ),
            (
                "Acquire::IndexTargets::deb::DEP-11-icons-hidpi::DefaultEnabled",
                "false".into(),
            ),
            // Make a failed index download an error (apt >= 2.1.16; ignored by older apt).
            ("APT::Update::Error-Mode", "any".into()),
        ];
        if running_as_root() {
            // apt would drop to the `_apt` user, who cannot enter a private cache under /root.
            pairs.push(("APT::Sandbox::User", "root".into()));
        }
        let mut out = Vec::with_capacity(pairs.len() * 2);
        for (key, value) in pairs {
            let mut opt = OsString::from(key);
            opt.push("=");
            opt.push(value);
            out.push("-o".into());
            out.push(opt);
        }
        out
    }

    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(self.options()).env("LC_ALL", "C");
        cmd
    }

    /// `apt-get update`.
    pub(crate) fn update(&self) -> Result<(), ImageError> {
        let mut cmd = self.command("apt-get");
        cmd.args(["-q", "update"]);
        let out = run(&mut cmd, "apt-get update")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let failed_fetch = stdout.lines().any(|l| l.starts_with("Err:"))
            || stderr.lines().any(|l| l.contains("Failed to fetch"));
        if !out.status.success() || failed_fetch {
            let errs: String = stdout
                .lines()
                .filter(|l| l.starts_with("Err:") || l.starts_with("  "))
                .map(|l| format!("{l}\n"))
                .collect();
            return Err(ImageError::MirrorUnreachable {
                mirror: self.mirror.clone(),
                suite: self.suite.clone(),
                arch: self.arch.clone(),
                detail: tail(&format!("{errs}{stderr}"), 12),
            });
        }
        Ok(())
    }

    /// Resolves a kernel metapackage (`linux-image-riscv64`) to the concrete package it
    /// depends on (`linux-image-6.12.…-riscv64`).
    pub(crate) fn resolve_kernel(&self, metapackage: &str) -> Result<String, ImageError> {
        let mut cmd = self.command("apt-cache");
        cmd.args(["depends", metapackage]);
        let out = run(&mut cmd, "apt-cache depends")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(self.not_found(metapackage, &String::from_utf8_lossy(&out.stderr)));
        }
        concrete_kernel(&stdout, &self.arch).ok_or_else(|| {
            self.not_found(
                metapackage,
                &format!(
                    "It depends on no linux-image-<version>-{} package:\n{stdout}",
                    self.arch
                ),
            )
        })
    }

    /// The candidate version of `package`.
    pub(crate) fn show(&self, package: &str) -> Result<PackageRecord, ImageError> {
        let mut cmd = self.command("apt-cache");
        cmd.args(["show", "--no-all-versions", package]);
        let out = run(&mut cmd, "apt-cache show")?;
        if !out.status.success() {
            return Err(self.not_found(package, &String::from_utf8_lossy(&out.stderr)));
        }
        parse_show(&String::from_utf8_lossy(&out.stdout))
            .filter(|r| r.name == package)
            .ok_or_else(|| self.not_found(package, "apt-cache show printed no record for it."))
    }

    /// Where `apt-get download` puts `record`'s .deb.
    pub(crate) fn deb_path(&self, record: &PackageRecord) -> PathBuf {
        self.dir.join("debs").join(deb_file_name(record))
    }

    /// Downloads `record` (that exact version) into `debs/`; apt skips the download when
    /// a file with the right checksum is already there.
    pub(crate) fn download(&self, record: &PackageRecord) -> Result<PathBuf, ImageError> {
        let mut cmd = self.command("apt-get");
        cmd.args(["-q", "download"])
            .arg(format!("{}={}", record.name, record.version))
            .current_dir(self.dir.join("debs"));
        let out = run(&mut cmd, "apt-get download")?;
        let path = self.deb_path(record);
        if !out.status.success() || !path.is_file() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut detail = tail(&stderr, 12);
            if out.status.success() {
                detail = format!(
                    "  (apt-get succeeded but {} is missing)\n{detail}",
                    path.display()
                );
            }
            return Err(ImageError::DownloadFailed {
                package: record.name.clone(),
                detail,
            });
        }
        Ok(path)
    }

    /// Deletes the .deb files in `debs/` other than `keep` (older versions).
    pub(crate) fn remove_other_debs(&self, keep: &[PathBuf]) {
        let Ok(entries) = fs::read_dir(self.dir.join("debs")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "deb") && !keep.contains(&path) {
                let _ = fs::remove_file(&path);
            }
        }
    }

    fn not_found(&self, package: &str, detail: &str) -> ImageError {
        ImageError::PackageNotFound {
            package: package.to_string(),
            arch: self.arch.clone(),
            suite: self.suite.clone(),
            mirror: self.mirror.clone(),
            detail: detail.trim().to_string(),
        }
    }
}

/// The one line of the private sources.list.
pub(crate) fn sources_line(arch: &str, mirror: &str, suite: &str) -> String {
    format!("deb [arch={arch} signed-by={KEYRING}] {mirror} {suite} main\n")
}

/// Picks `linux-image-<digit>…-<arch>` out of `apt-cache depends` output.
pub(crate) fn concrete_kernel(depends_output: &str, arch: &str) -> Option<String> {
    let suffix = format!("-{arch}");
    depends_output.lines().find_map(|line| {
        let line = line.trim().trim_start_matches('|');
        let name = line.strip_prefix("Depends:")?.trim();
        let version_part = name.strip_prefix("linux-image-")?;
        let ok = version_part.starts_with(|c: char| c.is_ascii_digit())
            && name.ends_with(&suffix)
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.~".contains(c));
        ok.then(|| name.to_string())
    })
}

/// Parses the first stanza of `apt-cache show` output.
pub(crate) fn parse_show(text: &str) -> Option<PackageRecord> {
    let mut name = None;
    let mut version = None;
    let mut architecture = None;
    let mut size = 0;
    for line in text.lines() {
        if line.trim().is_empty() {
            if name.is_some() {
                break;
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            let value = value.trim().to_string();
            match key {
                "Package" => name = Some(value),
                "Version" => version = Some(value),
                "Architecture" => architecture = Some(value),
                "Size" => size = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    Some(PackageRecord {
        name: name?,
        version: version?,
        architecture: architecture?,
        size,
    })
}

/// `apt-get download`'s file name: `name_version_arch.deb`, with the epoch's `:` as `%3a`.
pub(crate) fn deb_file_name(r: &PackageRecord) -> String {
    format!(
        "{}_{}_{}.deb",
        r.name,
        r.version.replace(':', "%3a"),
        r.architecture
    )
}

/// Runs `cmd` and collects its output; a missing program is [`ImageError::ToolMissing`].
pub(crate) fn run(cmd: &mut Command, what: &str) -> Result<Output, ImageError> {
    cmd.output().map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            let tool = cmd.get_program().to_string_lossy().into_owned();
            ImageError::ToolMissing {
                package: package_of_tool(&tool).to_string(),
                tool,
            }
        } else {
            ImageError::io(format!("run `{what}`"), e)
        }
    })
}

/// The Debian package that provides a tool this crate runs.
pub(crate) fn package_of_tool(tool: &str) -> &'static str {
    match tool {
        "dpkg-deb" => "dpkg",
        _ => "apt",
    }
}

/// Finds `tool` on `PATH`.
pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

/// Checks that apt-get, apt-cache and dpkg-deb are installed and that the archive keyring
/// exists.
pub(crate) fn check_tools() -> Result<(), ImageError> {
    for tool in ["apt-get", "apt-cache", "dpkg-deb"] {
        if which(tool).is_none() {
            return Err(ImageError::ToolMissing {
                tool: tool.to_string(),
                package: package_of_tool(tool).to_string(),
            });
        }
    }
    if !Path::new(KEYRING).is_file() {
        return Err(ImageError::KeyringMissing {
            path: PathBuf::from(KEYRING),
        });
    }
    Ok(())
}

/// The last `lines` non-empty lines of `text`, each indented by two spaces.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = all.len().saturating_sub(lines);
    let shown: Vec<String> = all[start..]
        .iter()
        .map(|l| format!("  {}", l.trim_end()))
        .collect();
    if shown.is_empty() {
        "  (no output)".to_string()
    } else {
        shown.join("\n")
    }
}

/// Whether this process runs with user id 0 (read from /proc; false when unknown).
fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_the_concrete_kernel_package() {
        let out = "linux-image-riscv64\n  Depends: linux-image-6.12.117+deb13-riscv64\n";
        assert_eq!(
            concrete_kernel(out, "riscv64").as_deref(),
            Some("linux-image-6.12.117+deb13-riscv64")
        );
        let alt = "linux-image-riscv64\n |Depends: <linux-image-virtual>\n  Depends: linux-image-7.1.0-3-riscv64\n";
        assert_eq!(
            concrete_kernel(alt, "riscv64").as_deref(),
            Some("linux-image-7.1.0-3-riscv64")
        );
        assert_eq!(
            concrete_kernel("linux-image-riscv64\n  Depends: linux-base\n", "riscv64"),
            None
        );
        assert_eq!(
            concrete_kernel("  Depends: linux-image-6.1.0-9-amd64\n", "riscv64"),
            None
        );
    }

    #[test]
    fn parses_apt_cache_show() {
        let text = "Package: busybox-static\nVersion: 1:1.37.0-6+b9\nArchitecture: riscv64\n\
                    Description: x\n continuation: not a field\nSize: 941532\n\n\
                    Package: busybox-static\nVersion: 1:1.36.0-1\nArchitecture: riscv64\n";
        let r = parse_show(text).unwrap();
        assert_eq!(r.name, "busybox-static");
        assert_eq!(r.version, "1:1.37.0-6+b9");
        assert_eq!(r.size, 941_532);
        assert_eq!(
            deb_file_name(&r),
            "busybox-static_1%3a1.37.0-6+b9_riscv64.deb"
        );
        assert_eq!(parse_show("E: nothing\n"), None);
    }

    #[test]
    fn private_options_and_sources_line() {
        let apt = Apt {
            dir: PathBuf::from("/c/apt-riscv64"),
            arch: "riscv64".into(),
            suite: "trixie".into(),
            mirror: "http://m.example/debian".into(),
        };
        let opts: Vec<String> = apt
            .options()
            .iter()
            .map(|o| o.to_string_lossy().into_owned())
            .collect();
        for want in [
            "Dir::State=/c/apt-riscv64/state",
            "Dir::Cache=/c/apt-riscv64/cache",
            "Dir::Etc::SourceList=/c/apt-riscv64/sources.list",
            "Dir::Etc::SourceParts=/dev/null",
            "Dir::Etc::Preferences=/dev/null",
            "Dir::Etc::PreferencesParts=/dev/null",
            "APT::Architecture=riscv64",
            "APT::Architectures=riscv64",
            "Debug::NoLocking=1",
        ] {
            assert!(opts.iter().any(|o| o == want), "missing {want}");
        }
        assert!(opts.chunks(2).all(|pair| pair[0] == "-o"));
        assert_eq!(
            sources_line("riscv64", "http://m.example/debian", "trixie"),
            "deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://m.example/debian trixie main\n"
        );
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\n\nb\nc\n", 2), "  b\n  c");
        assert_eq!(tail("", 2), "  (no output)");
    }
}
