//! `pandare-images` owns pandare's *generic guest images*: it builds them from Debian's
//! packages and keeps them in a cache.
//!
//! A generic image is a Linux kernel plus a small initramfs whose `/init` starts a busybox
//! shell on the serial console, and metadata that says how to boot it (architecture,
//! memory, kernel command line, the shell prompt to wait for). `panda image build riscv64`
//! and `Panda(generic="riscv64")` get it through [`ensure`] / [`build`] / [`cached`].
//!
//! # How an image is built
//!
//! Without root and without touching the host's apt setup:
//!
//! 1. The Debian mirror is `PANDARE_DEBIAN_MIRROR` if set, else the `URIs:` field of the
//!    host's `/etc/apt/sources.list.d/debian.sources`, else the first `deb` line of
//!    `/etc/apt/sources.list`.
//! 2. apt runs with a private configuration in `<cache root>/apt-riscv64/` (its own
//!    `sources.list` with the one line
//!    `deb [arch=riscv64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] MIRROR trixie main`,
//!    its own lists, caches and dpkg status): `apt-get update`, then `apt-cache depends`
//!    resolves `linux-image-riscv64` to the concrete `linux-image-<version>-riscv64`, and
//!    `apt-get download` fetches it and `busybox-static`. The `.deb` files stay there so a
//!    rebuild of the same versions downloads nothing.
//! 3. `dpkg-deb --fsys-tarfile` streams each package's files; this crate reads the stream
//!    and takes `boot/vmlinux-*` (a flat RISC-V `Image`, whose header magic is checked) and
//!    `usr/bin/busybox` (checked to be a static riscv64 ELF executable).
//! 4. The initramfs is an uncompressed newc cpio archive written by [`cpio::CpioWriter`]
//!    (see [`initramfs`] for its contents and the `/init` script).
//!
//! # The cache
//!
//! The cache root is `$PANDARE_CACHE_DIR` if set, else `$XDG_CACHE_HOME/pandare`, else
//! `~/.cache/pandare` (see [`cache_root`]). Image `NAME` lives in `<root>/images/NAME/`:
//! `kernel`, `initrd` and `image.json` ([`metadata::Metadata`]). It is built in a
//! temporary directory next to it and renamed into place at the end, so an interrupted
//! build never leaves a half-written image. A cached image is used only when `image.json`
//! parses, has the current [`FORMAT_VERSION`] and the right name, and both files exist with
//! the recorded sizes; otherwise it is rebuilt. A lock file (`<root>/images/.NAME.lock`)
//! keeps concurrent builds of one image apart.
//!
//! # The shell prompt
//!
//! `/init` sets `PS1` to [`PS1`] (`pandare:\w# `, which shows as `pandare:~# ` at first);
//! [`PROMPT_REGEX`] (`pandare:[^\r\n#]*# `) matches it, and `image.json` records both.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

mod apt;
pub mod check;
pub mod cpio;
mod error;
pub mod initramfs;
mod lock;
pub mod metadata;
mod mirror;
mod tar;

pub use error::ImageError;
pub use initramfs::{PROMPT_REGEX, PS1};
pub use metadata::{Metadata, FORMAT_VERSION, METADATA_FILE};
pub use mirror::MIRROR_ENV;

use error::IoContext;

/// The names of the images this version can build.
pub const AVAILABLE: &[&str] = &["riscv64"];

/// The environment variable that overrides the cache root.
pub const CACHE_DIR_ENV: &str = "PANDARE_CACHE_DIR";

/// How long a build waits for another process that is building the same image.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// A built generic image, ready to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenericImage {
    /// Image name (one of [`AVAILABLE`]).
    pub name: String,
    /// Guest architecture (`riscv64`).
    pub arch: String,
    /// The kernel (for riscv64 a flat `Image`, loaded at RAM start + its `text_offset`).
    pub kernel: PathBuf,
    /// The initramfs (uncompressed newc cpio).
    pub initrd: PathBuf,
    /// Kernel command line.
    pub append: String,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Regular expression (Rust `regex` syntax, also valid for Python's `re`) matching the
    /// shell prompt; see [`PROMPT_REGEX`].
    pub prompt: String,
    /// The image's cache directory (holds `kernel`, `initrd`, `image.json`).
    pub directory: PathBuf,
}

/// How one image is made.
#[derive(Debug)]
struct Spec {
    name: &'static str,
    arch: &'static str,
    /// Debian's name for the architecture.
    deb_arch: &'static str,
    suite: &'static str,
    kernel_metapackage: &'static str,
    /// Prefix of the kernel file inside the kernel package.
    kernel_member_prefix: &'static str,
    busybox_package: &'static str,
    elf_machine: u16,
    memory_mib: u64,
    append: &'static str,
}

const SPECS: &[Spec] = &[Spec {
    name: "riscv64",
    arch: "riscv64",
    deb_arch: "riscv64",
    suite: "trixie",
    kernel_metapackage: "linux-image-riscv64",
    kernel_member_prefix: "boot/vmlinux-",
    busybox_package: "busybox-static",
    elf_machine: check::EM_RISCV,
    memory_mib: 512,
    append: "console=ttyS0 quiet",
}];

fn spec(name: &str) -> Result<&'static Spec, ImageError> {
    SPECS
        .iter()
        .find(|s| s.name == name)
        .ok_or_else(|| ImageError::UnknownImage {
            name: name.to_string(),
            available: AVAILABLE.join(", "),
        })
}

/// The cache root: `$PANDARE_CACHE_DIR` if set, else `$XDG_CACHE_HOME/pandare` (when that
/// is an absolute path), else `$HOME/.cache/pandare`, else `pandare-cache` in the system's
/// temporary directory.
pub fn cache_root() -> PathBuf {
    let nonempty = |var: &str| std::env::var_os(var).filter(|v| !v.is_empty());
    let root = if let Some(dir) = nonempty(CACHE_DIR_ENV) {
        PathBuf::from(dir)
    } else if let Some(xdg) = nonempty("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        xdg.join("pandare")
    } else if let Some(home) = nonempty("HOME") {
        PathBuf::from(home).join(".cache").join("pandare")
    } else {
        std::env::temp_dir().join("pandare-cache")
    };
    std::path::absolute(&root).unwrap_or(root)
}

/// The directory that holds (or will hold) image `name`: `<cache root>/images/<name>`.
pub fn image_dir(name: &str) -> PathBuf {
    cache_root().join("images").join(name)
}

/// Returns the cached image, building it first when the cache is missing or invalid.
/// `progress` receives one-line human messages
/// (`downloading linux-image-6.12.…-riscv64 6.12.…-1 (113 MB)`).
pub fn ensure(name: &str, progress: &mut dyn FnMut(&str)) -> Result<GenericImage, ImageError> {
    build(name, false, progress)
}

/// Builds image `name`: unconditionally when `rebuild` is true, otherwise only when the
/// cache is missing or invalid (and then says so through `progress`).
pub fn build(
    name: &str,
    rebuild: bool,
    progress: &mut dyn FnMut(&str),
) -> Result<GenericImage, ImageError> {
    let spec = spec(name)?;
    let host = Host {
        root: cache_root(),
        etc_apt: PathBuf::from("/etc/apt"),
    };
    host.build(spec, rebuild, progress)
}

/// Returns the cached image without building (`None` when absent or invalid).
pub fn cached(name: &str) -> Option<GenericImage> {
    let spec = spec(name).ok()?;
    metadata::load_valid(&image_dir(spec.name), spec.name)
        .ok()
        .map(|(image, _)| image)
}

/// The metadata of the cached image `name` (`None` when absent or invalid).
pub fn cached_metadata(name: &str) -> Option<Metadata> {
    let spec = spec(name).ok()?;
    metadata::load_valid(&image_dir(spec.name), spec.name)
        .ok()
        .map(|(_, meta)| meta)
}

/// Why a cached image cannot be used, or `None` when it can (for "image info" commands).
pub fn cache_problem(name: &str) -> Result<Option<String>, ImageError> {
    let spec = spec(name)?;
    Ok(metadata::load_valid(&image_dir(spec.name), spec.name).err())
}

/// Where the build looks: the cache root and the host's apt configuration directory.
#[derive(Debug)]
struct Host {
    root: PathBuf,
    etc_apt: PathBuf,
}

impl Host {
    fn build(
        &self,
        spec: &Spec,
        rebuild: bool,
        progress: &mut dyn FnMut(&str),
    ) -> Result<GenericImage, ImageError> {
        let images = self.root.join("images");
        let dir = images.join(spec.name);
        if !rebuild {
            if let Ok((image, meta)) = metadata::load_valid(&dir, spec.name) {
                progress(&format!(
                    "image {} is already built in {} (kernel {}); nothing to do",
                    spec.name,
                    dir.display(),
                    meta.kernel_release
                ));
                return Ok(image);
            }
        }
        fs::create_dir_all(&images).ctx(|| format!("create directory {}", images.display()))?;
        let lock_path = images.join(format!(".{}.lock", spec.name));
        let _lock = lock::Lock::acquire(&lock_path, spec.name, LOCK_TIMEOUT, progress)?;

        // Check again: another process may have built it while this one waited.
        let problem = match metadata::load_valid(&dir, spec.name) {
            Ok((image, _)) if !rebuild => {
                progress(&format!(
                    "image {} was just built by another process in {}",
                    spec.name,
                    dir.display()
                ));
                return Ok(image);
            }
            Ok(_) => None,
            Err(problem) => Some(problem),
        };
        match problem {
            _ if rebuild => progress(&format!(
                "rebuilding image {} in {}",
                spec.name,
                dir.display()
            )),
            Some(p) if dir.exists() => progress(&format!(
                "the cached image {} is not usable ({p}); rebuilding it",
                spec.name
            )),
            _ => progress(&format!(
                "building image {} in {}",
                spec.name,
                dir.display()
            )),
        }

        remove_leftovers(&images, spec.name);
        let tmp = images.join(format!(".{}.build-{}", spec.name, std::process::id()));
        fs::create_dir(&tmp).ctx(|| format!("create directory {}", tmp.display()))?;
        let built = self
            .build_into(spec, &tmp, progress)
            .and_then(|meta| install(&tmp, &dir, &images, spec.name).map(|()| meta));
        let meta = match built {
            Ok(meta) => meta,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        progress(&format!(
            "image {} is ready in {} (kernel {}, busybox {})",
            spec.name,
            dir.display(),
            meta.kernel_release,
            meta.packages
                .iter()
                .find(|p| p.name == spec.busybox_package)
                .map_or("?", |p| p.version.as_str())
        ));
        Ok(GenericImage {
            name: meta.name.clone(),
            arch: meta.arch.clone(),
            kernel: dir.join(&meta.kernel.file),
            initrd: dir.join(&meta.initrd.file),
            append: meta.append.clone(),
            memory_mib: meta.memory_mib,
            prompt: meta.prompt.clone(),
            directory: dir,
        })
    }

    /// Downloads, extracts and writes everything into `tmp`; returns the metadata written.
    fn build_into(
        &self,
        spec: &Spec,
        tmp: &Path,
        progress: &mut dyn FnMut(&str),
    ) -> Result<Metadata, ImageError> {
        apt::check_tools()?;
        let mirror = mirror::find_mirror(&self.etc_apt)?;
        progress(&format!(
            "using the Debian mirror {} (from {})",
            mirror.url, mirror.source
        ));
        let apt = apt::Apt {
            dir: self.root.join(format!("apt-{}", spec.deb_arch)),
            arch: spec.deb_arch.to_string(),
            suite: spec.suite.to_string(),
            mirror: mirror.url,
        };
        apt.prepare()?;
        progress(&format!(
            "updating the {} package lists of Debian {} (private apt state in {})",
            spec.deb_arch,
            spec.suite,
            apt.dir.display()
        ));
        apt.update()?;
        let kernel_package = apt.resolve_kernel(spec.kernel_metapackage)?;
        progress(&format!("{} is {kernel_package}", spec.kernel_metapackage));
        let kernel_record = apt.show(&kernel_package)?;
        let busybox_record = apt.show(spec.busybox_package)?;
        let kernel_deb = fetch(&apt, &kernel_record, progress)?;
        let busybox_deb = fetch(&apt, &busybox_record, progress)?;
        apt.remove_other_debs(&[kernel_deb.clone(), busybox_deb.clone()]);

        // The kernel.
        progress(&format!(
            "extracting the kernel from {}",
            kernel_record.name
        ));
        let kernel_path = tmp.join("kernel");
        let mut kernel_file = BufWriter::new(
            File::create(&kernel_path).ctx(|| format!("create {}", kernel_path.display()))?,
        );
        let prefix = spec.kernel_member_prefix;
        let member = extract_first(&kernel_deb, &|p| p.starts_with(prefix), &mut kernel_file)?
            .ok_or_else(|| ImageError::MissingInPackage {
                package: kernel_record.name.clone(),
                what: format!("kernel file {prefix}*"),
            })?;
        finish_file(kernel_file, &kernel_path)?;
        let mut head = Vec::with_capacity(64);
        File::open(&kernel_path)
            .and_then(|f| f.take(64).read_to_end(&mut head))
            .ctx(|| format!("read {}", kernel_path.display()))?;
        let header = check::riscv_image_header(&head).map_err(|detail| ImageError::BadKernel {
            file: format!("{member} in {}", kernel_deb.display()),
            detail,
        })?;
        let kernel_release = member.trim_start_matches(prefix).to_string();

        // Busybox and the initramfs.
        progress(&format!("extracting busybox from {}", busybox_record.name));
        let mut busybox = Vec::new();
        let wanted = |p: &str| p == "usr/bin/busybox" || p == "bin/busybox";
        let busybox_member =
            extract_first(&busybox_deb, &wanted, &mut busybox)?.ok_or_else(|| {
                ImageError::MissingInPackage {
                    package: busybox_record.name.clone(),
                    what: "usr/bin/busybox or bin/busybox".to_string(),
                }
            })?;
        check::static_elf(&busybox, spec.elf_machine).map_err(|detail| ImageError::BadBusybox {
            file: format!("{busybox_member} in {}", busybox_deb.display()),
            arch: spec.arch.to_string(),
            detail,
        })?;
        let initrd_path = tmp.join("initrd");
        let initrd_file =
            File::create(&initrd_path).ctx(|| format!("create {}", initrd_path.display()))?;
        let initrd_file = initramfs::write(&busybox, BufWriter::new(initrd_file))
            .ctx(|| format!("write {}", initrd_path.display()))?;
        finish_file(initrd_file, &initrd_path)?;

        let kernel = file_record(&kernel_path)?;
        let initrd = file_record(&initrd_path)?;
        progress(&format!(
            "wrote the kernel ({}) and the initramfs ({})",
            human_size(kernel.size),
            human_size(initrd.size)
        ));
        let meta = Metadata {
            format_version: FORMAT_VERSION,
            name: spec.name.to_string(),
            arch: spec.arch.to_string(),
            memory_mib: spec.memory_mib,
            append: spec.append.to_string(),
            prompt: PROMPT_REGEX.to_string(),
            ps1: PS1.to_string(),
            suite: spec.suite.to_string(),
            kernel_release,
            kernel_text_offset: header.text_offset,
            kernel_image_size: header.image_size,
            packages: [&kernel_record, &busybox_record]
                .iter()
                .map(|r| metadata::PackageVersion {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    architecture: r.architecture.clone(),
                })
                .collect(),
            kernel,
            initrd,
            built_by: format!("pandare-images {}", env!("CARGO_PKG_VERSION")),
            built_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        let meta_path = tmp.join(METADATA_FILE);
        let mut meta_file =
            File::create(&meta_path).ctx(|| format!("create {}", meta_path.display()))?;
        meta_file
            .write_all(meta.to_json().as_bytes())
            .and_then(|()| meta_file.sync_all())
            .ctx(|| format!("write {}", meta_path.display()))?;
        Ok(meta)
    }
}

/// Downloads one package unless it is already there, with a progress message.
fn fetch(
    apt: &apt::Apt,
    record: &apt::PackageRecord,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, ImageError> {
    let path = apt.deb_path(record);
    let have = fs::metadata(&path).is_ok_and(|m| record.size != 0 && m.len() == record.size);
    if have {
        progress(&format!(
            "{} {} is already downloaded",
            record.name, record.version
        ));
    } else {
        progress(&format!(
            "downloading {} {} ({})",
            record.name,
            record.version,
            human_size(record.size)
        ));
    }
    // apt checks the checksum of a file that is already there and keeps it if it matches.
    apt.download(record)
}

/// Streams `deb`'s files through `dpkg-deb --fsys-tarfile` and copies the first regular
/// file whose path satisfies `wanted` to `out`. Returns that path, or `None` when no file
/// matched. Reading stops at the match, which makes `dpkg-deb` quit early.
fn extract_first(
    deb: &Path,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut dyn Write,
) -> Result<Option<String>, ImageError> {
    let command = format!("dpkg-deb --fsys-tarfile {}", deb.display());
    let mut child = std::process::Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ImageError::ToolMissing {
                    tool: "dpkg-deb".to_string(),
                    package: "dpkg".to_string(),
                }
            } else {
                ImageError::io(format!("run `{command}`"), e)
            }
        })?;
    let stderr_reader = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        })
    });
    let mut found = None;
    let mut failure: Option<std::io::Error> = None;
    if let Some(stdout) = child.stdout.take() {
        let mut reader = tar::TarReader::new(std::io::BufReader::with_capacity(1 << 16, stdout));
        loop {
            match reader.next_entry() {
                Ok(Some(entry)) if entry.kind == tar::Kind::File && wanted(&entry.path) => {
                    match reader.copy_data(out) {
                        Ok(_) => found = Some(entry.path),
                        Err(e) => {
                            return Err(ImageError::io(
                                format!("extract {} from {}", entry.path, deb.display()),
                                e,
                            ))
                        }
                    }
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        // Dropping the reader closes the pipe; dpkg-deb then stops with a broken pipe.
    }
    let status = child.wait().ctx(|| format!("wait for `{command}`"))?;
    let stderr = stderr_reader
        .and_then(|t| t.join().ok())
        .unwrap_or_default();
    if found.is_some() {
        return Ok(found);
    }
    if !status.success() || failure.is_some() {
        let mut detail = stderr;
        if let Some(e) = failure {
            detail.push_str(&format!("\nreading its output: {e}"));
        }
        return Err(ImageError::CommandFailed {
            command,
            status: status.to_string(),
            detail: apt::tail(&detail, 12),
        });
    }
    Ok(None)
}

/// Flushes a buffered file and syncs it to disk.
fn finish_file(writer: BufWriter<File>, path: &Path) -> Result<(), ImageError> {
    let file = writer
        .into_inner()
        .map_err(|e| ImageError::io(format!("write {}", path.display()), e.into_error()))?;
    file.sync_all().ctx(|| format!("write {}", path.display()))
}

/// Size and SHA-256 of a file.
fn file_record(path: &Path) -> Result<metadata::FileRecord, ImageError> {
    use sha2::{Digest, Sha256};
    let mut file = File::open(path).ctx(|| format!("read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .ctx(|| format!("read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(metadata::FileRecord {
        file: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        size,
        sha256,
    })
}

/// Moves the finished `tmp` directory to `dir`, replacing an older image.
fn install(tmp: &Path, dir: &Path, images: &Path, name: &str) -> Result<(), ImageError> {
    let old = images.join(format!(".{name}.old-{}", std::process::id()));
    let had_old = fs::symlink_metadata(dir).is_ok();
    if had_old {
        fs::rename(dir, &old).ctx(|| format!("move the old image {} aside", dir.display()))?;
    }
    if let Err(e) = fs::rename(tmp, dir) {
        if had_old {
            let _ = fs::rename(&old, dir);
        }
        return Err(ImageError::io(
            format!("move {} to {}", tmp.display(), dir.display()),
            e,
        ));
    }
    if had_old {
        let _ = fs::remove_dir_all(&old);
    }
    // Make the renames durable; failure here only risks redoing the build.
    if let Ok(d) = File::open(images) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes temporary directories left by interrupted builds of `name` (the caller holds
/// the lock, so no build of `name` is running).
fn remove_leftovers(images: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(images) else {
        return;
    };
    let build = format!(".{name}.build-");
    let old = format!(".{name}.old-");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&build) || file_name.starts_with(&old) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// `113 MB`, `942 kB`, `12 bytes` (decimal units, as apt prints them).
fn human_size(bytes: u64) -> String {
    if bytes >= 10_000_000 {
        format!("{} MB", (bytes + 500_000) / 1_000_000)
    } else if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else if bytes >= 1000 {
        format!("{} kB", (bytes + 500) / 1000)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir =
                std::env::temp_dir().join(format!("pandare-images-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Writes a fake but well-formed image directory for `name`.
    fn fake_image(dir: &Path, name: &str) -> Metadata {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join("kernel"), vec![1u8; 100]).unwrap();
        fs::write(dir.join("initrd"), vec![2u8; 50]).unwrap();
        let meta = metadata::tests::sample(name, 100, 50);
        fs::write(dir.join(METADATA_FILE), meta.to_json()).unwrap();
        meta
    }

    #[test]
    fn a_complete_cache_is_valid() {
        let t = TempDir::new("valid");
        let dir = t.0.join("riscv64");
        fake_image(&dir, "riscv64");
        let (image, meta) = metadata::load_valid(&dir, "riscv64").unwrap();
        assert_eq!(image.kernel, dir.join("kernel"));
        assert_eq!(image.initrd, dir.join("initrd"));
        assert_eq!(image.directory, dir);
        assert_eq!(image.memory_mib, 512);
        assert_eq!(image.append, "console=ttyS0 quiet");
        assert_eq!(image.prompt, PROMPT_REGEX);
        assert_eq!(meta.kernel.size, 100);
    }

    #[test]
    fn invalid_caches_are_rejected() {
        let t = TempDir::new("invalid");
        let dir = t.0.join("riscv64");

        let reason = metadata::load_valid(&dir, "riscv64").unwrap_err();
        assert!(reason.contains("does not exist"), "{reason}");

        fake_image(&dir, "riscv64");
        fs::remove_file(dir.join("initrd")).unwrap();
        let reason = metadata::load_valid(&dir, "riscv64").unwrap_err();
        assert!(reason.contains("initrd"), "{reason}");

        fake_image(&dir, "riscv64");
        fs::write(dir.join("kernel"), vec![1u8; 99]).unwrap();
        let reason = metadata::load_valid(&dir, "riscv64").unwrap_err();
        assert!(reason.contains("99 bytes"), "{reason}");

        let mut meta = fake_image(&dir, "riscv64");
        meta.format_version = 0;
        fs::write(dir.join(METADATA_FILE), meta.to_json()).unwrap();
        let reason = metadata::load_valid(&dir, "riscv64").unwrap_err();
        assert!(reason.contains("format version 0"), "{reason}");

        fake_image(&dir, "riscv64");
        fs::write(dir.join(METADATA_FILE), "{ truncated").unwrap();
        assert!(metadata::load_valid(&dir, "riscv64").is_err());

        fake_image(&dir, "other");
        let reason = metadata::load_valid(&dir, "riscv64").unwrap_err();
        assert!(reason.contains("`other`"), "{reason}");

        let mut meta = fake_image(&dir, "riscv64");
        meta.kernel.file = "../kernel".to_string();
        fs::write(dir.join(METADATA_FILE), meta.to_json()).unwrap();
        let reason = metadata::load_valid(&dir, "riscv64").unwrap_err();
        assert!(reason.contains("plain file name"), "{reason}");
    }

    #[test]
    fn a_valid_cache_is_not_rebuilt() {
        let t = TempDir::new("skip");
        let host = Host {
            root: t.0.clone(),
            // No apt configuration at all: any attempt to build would fail.
            etc_apt: t.0.join("no-etc-apt"),
        };
        let dir = t.0.join("images").join("riscv64");
        fake_image(&dir, "riscv64");
        let mut messages = Vec::new();
        let image = host
            .build(spec("riscv64").unwrap(), false, &mut |m| {
                messages.push(m.to_string());
            })
            .unwrap();
        assert_eq!(image.directory, dir);
        assert!(messages[0].contains("already built"), "{messages:?}");
        assert!(!t.0.join("images/.riscv64.lock").exists());
    }

    #[test]
    fn unknown_image_names_list_the_available_ones() {
        let err = build("vax", false, &mut |_| {}).unwrap_err();
        assert!(matches!(err, ImageError::UnknownImage { .. }));
        assert_eq!(
            err.to_string(),
            "unknown image `vax`; the available images are: riscv64"
        );
        assert!(ensure("", &mut |_| {}).is_err());
        assert!(cached("vax").is_none());
        assert!(cache_problem("vax").is_err());
    }

    #[test]
    fn install_replaces_an_old_image_and_leftovers_are_removed() {
        let t = TempDir::new("install");
        let images = t.0.join("images");
        let dir = images.join("riscv64");
        fake_image(&dir, "riscv64");
        let tmp = images.join(".riscv64.build-1");
        fake_image(&tmp, "riscv64");
        fs::write(tmp.join("marker"), "new").unwrap();
        fs::create_dir_all(images.join(".riscv64.build-999999")).unwrap();
        fs::create_dir_all(images.join(".riscv64.old-999999")).unwrap();
        fs::create_dir_all(images.join(".other.build-5")).unwrap();
        install(&tmp, &dir, &images, "riscv64").unwrap();
        assert!(dir.join("marker").exists());
        assert!(!tmp.exists());
        remove_leftovers(&images, "riscv64");
        let mut left: Vec<String> = fs::read_dir(&images)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".other.build-5", "riscv64"]);
    }

    #[test]
    fn sizes_read_like_apt() {
        assert_eq!(human_size(112_593_968), "113 MB");
        assert_eq!(human_size(1_614_632), "1.6 MB");
        assert_eq!(human_size(941_532), "942 kB");
        assert_eq!(human_size(12), "12 bytes");
    }

    #[test]
    fn cache_root_is_absolute() {
        assert!(cache_root().is_absolute());
        assert!(image_dir("riscv64").ends_with("images/riscv64"));
    }
}
