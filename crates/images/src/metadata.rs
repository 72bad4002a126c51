//! `image.json`: what an image directory holds, and the rules that make a cache valid.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::GenericImage;

/// The metadata file inside an image directory.
pub const METADATA_FILE: &str = "image.json";

/// Version of the image directory layout and of `image.json`. Bump it whenever either
/// changes (including the initramfs contents), so existing caches are rebuilt.
pub const FORMAT_VERSION: u32 = 1;

/// The contents of `image.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Always [`FORMAT_VERSION`] when written by this version.
    pub format_version: u32,
    /// The image name (one of [`crate::AVAILABLE`]).
    pub name: String,
    /// The guest architecture.
    pub arch: String,
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Kernel command line.
    pub append: String,
    /// Regular expression (Rust `regex` syntax) that matches the shell prompt.
    pub prompt: String,
    /// The `PS1` value the init script sets, which [`Metadata::prompt`] matches.
    pub ps1: String,
    /// Debian suite the packages came from.
    pub suite: String,
    /// `uname -r` of the kernel (from its file name).
    pub kernel_release: String,
    /// The kernel Image header's `text_offset`.
    pub kernel_text_offset: u64,
    /// The kernel Image header's `image_size` (memory the kernel occupies once loaded).
    pub kernel_image_size: u64,
    /// The Debian packages the image was made from.
    pub packages: Vec<PackageVersion>,
    /// The kernel file.
    pub kernel: FileRecord,
    /// The initramfs file.
    pub initrd: FileRecord,
    /// `pandare-images <version>`.
    pub built_by: String,
    /// When the image was built (seconds since the Unix epoch).
    pub built_at_unix: u64,
}

/// One Debian package.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageVersion {
    /// Package name.
    pub name: String,
    /// Debian version.
    pub version: String,
    /// Debian architecture.
    pub architecture: String,
}

/// One file of the image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    /// File name inside the image directory.
    pub file: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents, lowercase hex.
    pub sha256: String,
}

impl Metadata {
    /// Serializes to pretty JSON with a final newline.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and integers cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Parses `image.json` text, checking the format version first so that a file from
    /// another version is reported as such rather than as a parse error.
    pub fn from_json(text: &str) -> Result<Metadata, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("{METADATA_FILE} is not JSON ({e})"))?;
        match value.get("format_version").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(format!(
                    "{METADATA_FILE} has format version {v}, this pandare writes version {FORMAT_VERSION}"
                ))
            }
            None => return Err(format!("{METADATA_FILE} has no format_version")),
        }
        serde_json::from_value(value).map_err(|e| format!("{METADATA_FILE} is incomplete ({e})"))
    }
}

/// A metadata file is a few hundred bytes: a regular file past this is not one.
const METADATA_LIMIT: u64 = 1 << 20;

/// Reads a small regular text file, refusing devices, pipes and anything past
/// [`METADATA_LIMIT`] instead of reading them whole.
fn read_small_text(path: &Path) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let file = fs::File::open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() || metadata.len() > METADATA_LIMIT {
        return Err(Error::new(
            ErrorKind::InvalidData,
            "not a regular file of at most 1 MiB",
        ));
    }
    let mut text = String::new();
    file.take(METADATA_LIMIT).read_to_string(&mut text)?;
    Ok(text)
}

/// Loads the image in `dir` if it is valid for `name`: `image.json` parses, its format
/// version is [`FORMAT_VERSION`], its name matches, and the kernel and initrd exist with
/// the recorded sizes. Otherwise returns why not (checksums are recorded but, to keep this
/// check instant, not recomputed).
pub(crate) fn load_valid(dir: &Path, name: &str) -> Result<(GenericImage, Metadata), String> {
    let path = dir.join(METADATA_FILE);
    if !path.exists() {
        return Err(format!("{} does not exist", path.display()));
    }
    let text =
        read_small_text(&path).map_err(|e| format!("cannot read {} ({e})", path.display()))?;
    let meta = Metadata::from_json(&text)?;
    if meta.name != name {
        return Err(format!(
            "{METADATA_FILE} describes image `{}`, not `{name}`",
            meta.name
        ));
    }
    let kernel = check_file(dir, &meta.kernel)?;
    let initrd = check_file(dir, &meta.initrd)?;
    let image = GenericImage {
        name: meta.name.clone(),
        arch: meta.arch.clone(),
        kernel,
        initrd,
        append: meta.append.clone(),
        memory_mib: meta.memory_mib,
        prompt: meta.prompt.clone(),
        directory: dir.to_path_buf(),
    };
    Ok((image, meta))
}

fn check_file(dir: &Path, record: &FileRecord) -> Result<PathBuf, String> {
    let simple = !record.file.is_empty()
        && !record.file.contains(['/', '\\', '\0'])
        && record.file != "."
        && record.file != "..";
    if !simple {
        return Err(format!(
            "{METADATA_FILE} names file {:?}, which is not a plain file name",
            record.file
        ));
    }
    let path = dir.join(&record.file);
    match fs::metadata(&path) {
        Ok(m) if !m.is_file() => Err(format!("{} is not a regular file", path.display())),
        Ok(m) if m.len() != record.size => Err(format!(
            "{} has {} bytes, {METADATA_FILE} says {}",
            path.display(),
            m.len(),
            record.size
        )),
        Ok(_) => Ok(path),
        Err(e) => Err(format!("cannot read {} ({e})", path.display())),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample(name: &str, kernel_size: u64, initrd_size: u64) -> Metadata {
        Metadata {
            format_version: FORMAT_VERSION,
            name: name.to_string(),
            arch: "riscv64".to_string(),
            memory_mib: 512,
            append: "console=ttyS0 quiet".to_string(),
            prompt: r"pandare:[^\r\n#]*# ".to_string(),
            ps1: r"pandare:\w# ".to_string(),
            suite: "trixie".to_string(),
            kernel_release: "6.12.117+deb13-riscv64".to_string(),
            kernel_text_offset: 0x20_0000,
            kernel_image_size: 0x1e6_c000,
            packages: vec![PackageVersion {
                name: "busybox-static".to_string(),
                version: "1:1.37.0-6+b9".to_string(),
                architecture: "riscv64".to_string(),
            }],
            kernel: FileRecord {
                file: "kernel".to_string(),
                size: kernel_size,
                sha256: "00".repeat(32),
            },
            initrd: FileRecord {
                file: "initrd".to_string(),
                size: initrd_size,
                sha256: "11".repeat(32),
            },
            built_by: "pandare-images test".to_string(),
            built_at_unix: 1_700_000_000,
        }
    }

    #[test]
    fn json_round_trip() {
        let meta = sample("riscv64", 10, 20);
        let json = meta.to_json();
        assert!(json.ends_with("}\n"));
        assert!(
            json.contains(r#""prompt": "pandare:[^\\r\\n#]*# ""#),
            "{json}"
        );
        assert_eq!(Metadata::from_json(&json).unwrap(), meta);
    }

    #[test]
    fn version_and_shape_are_checked() {
        let mut meta = sample("riscv64", 10, 20);
        meta.format_version = FORMAT_VERSION + 1;
        let err = Metadata::from_json(&meta.to_json()).unwrap_err();
        assert!(err.contains("format version"), "{err}");
        let err = Metadata::from_json("{\"format_version\": 1}").unwrap_err();
        assert!(err.contains("incomplete"), "{err}");
        let err = Metadata::from_json("{}").unwrap_err();
        assert!(err.contains("no format_version"), "{err}");
        let err = Metadata::from_json("not json").unwrap_err();
        assert!(err.contains("not JSON"), "{err}");
    }
}
