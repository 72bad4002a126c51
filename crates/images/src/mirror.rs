//! Finding the Debian mirror to download from.
//!
//! The mirror comes from `PANDARE_DEBIAN_MIRROR` when set, otherwise from the host's own apt
//! configuration: the `URIs:` field of `/etc/apt/sources.list.d/debian.sources` (deb822) or
//! the first `deb` line of `/etc/apt/sources.list`. Security-only sources (suites ending in
//! `-security` or `/updates`) are skipped: they do not carry the main archive. No mirror host
//! is ever written into this code.

use std::path::Path;

use crate::error::ImageError;

/// The environment variable that overrides the host's mirror.
pub const MIRROR_ENV: &str = "PANDARE_DEBIAN_MIRROR";

/// A mirror URL and where it came from (for progress messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirror {
    pub url: String,
    pub source: String,
}

/// Returns the mirror to use: the environment override, else the host's apt sources under
/// `etc_apt` (normally `/etc/apt`).
pub(crate) fn find_mirror(etc_apt: &Path) -> Result<Mirror, ImageError> {
    if let Some(value) = std::env::var_os(MIRROR_ENV) {
        let value = value.to_string_lossy().trim().to_string();
        if !value.is_empty() {
            let url = normalize_uri(&value).ok_or(ImageError::BadMirror { value })?;
            return Ok(Mirror {
                url,
                source: MIRROR_ENV.to_string(),
            });
        }
    }
    let deb822 = etc_apt.join("sources.list.d").join("debian.sources");
    let one_line = etc_apt.join("sources.list");
    if let Ok(text) = std::fs::read_to_string(&deb822) {
        if let Some(url) = mirror_from_deb822(&text) {
            return Ok(Mirror {
                url,
                source: deb822.display().to_string(),
            });
        }
    }
    if let Ok(text) = std::fs::read_to_string(&one_line) {
        if let Some(url) = mirror_from_one_line(&text) {
            return Ok(Mirror {
                url,
                source: one_line.display().to_string(),
            });
        }
    }
    Err(ImageError::NoMirror {
        searched: format!("{} and {}", deb822.display(), one_line.display()),
    })
}

/// The first usable `URIs:` value of a deb822 sources file.
pub(crate) fn mirror_from_deb822(text: &str) -> Option<String> {
    for stanza in deb822_stanzas(text) {
        let field = |name: &str| {
            stanza
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let enabled = field("Enabled").is_none_or(|e| !e.trim().eq_ignore_ascii_case("no"));
        let suites: Vec<&str> = field("Suites").unwrap_or("").split_whitespace().collect();
        if !is_deb || !enabled || suites.iter().all(|s| is_security_suite(s)) {
            continue;
        }
        if let Some(url) = field("URIs")
            .unwrap_or("")
            .split_whitespace()
            .find_map(normalize_uri)
        {
            return Some(url);
        }
    }
    None
}

/// The URI of the first usable `deb` line of a one-line-style sources.list.
pub(crate) fn mirror_from_one_line(text: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut tokens = line.split_whitespace();
        if tokens.next() != Some("deb") {
            continue;
        }
        let mut next = tokens.next();
        // Options: "[arch=amd64 signed-by=...]", possibly spread over several tokens.
        if next.is_some_and(|t| t.starts_with('[')) {
            while let Some(t) = next {
                next = tokens.next();
                if t.ends_with(']') {
                    break;
                }
            }
        }
        let (Some(uri), Some(suite)) = (next, tokens.next()) else {
            continue;
        };
        if is_security_suite(suite) {
            continue;
        }
        if let Some(url) = normalize_uri(uri) {
            return Some(url);
        }
    }
    None
}

/// Splits deb822 text into stanzas of (field, value) pairs; comments are dropped and
/// continuation lines are joined to their field with a space.
fn deb822_stanzas(text: &str) -> Vec<Vec<(String, String)>> {
    let mut stanzas = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        stanzas.push(current);
    }
    stanzas
}

fn is_security_suite(suite: &str) -> bool {
    suite.ends_with("-security") || suite.ends_with("/updates")
}

/// Accepts a URI that apt can fetch from (`scheme:rest`, not a CD-ROM) and removes trailing
/// slashes.
fn normalize_uri(uri: &str) -> Option<String> {
    let uri = uri.trim();
    let (scheme, rest) = uri.split_once(':')?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.');
    if !scheme_ok || rest.is_empty() || scheme == "cdrom" || uri.contains(char::is_whitespace) {
        return None;
    }
    let trimmed = uri.trim_end_matches('/');
    if trimmed.ends_with(':') {
        // "file:///" would become "file:"
        return Some(uri.to_string());
    }
    Some(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Example host names use the reserved `.example` domain.
    const DEB822: &str = "\
Types: deb
# http://snapshot.example/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
";

    #[test]
    fn reads_the_uris_field_of_deb822() {
        assert_eq!(
            mirror_from_deb822(DEB822).as_deref(),
            Some("http://mirror.example/debian")
        );
    }

    #[test]
    fn deb822_skips_security_disabled_and_source_stanzas() {
        let text = "\
Types: deb
URIs: http://security.example/debian-security
Suites: trixie-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: trixie

Types: deb
Enabled: no
URIs: http://off.example/debian
Suites: trixie

types: deb deb-src
uris:
 https://on.example/debian
 http://second.example/debian
suites: trixie
";
        assert_eq!(
            mirror_from_deb822(text).as_deref(),
            Some("https://on.example/debian")
        );
        assert_eq!(
            mirror_from_deb822("Types: deb\nSuites: trixie-security\nURIs: http://x.example/\n"),
            None
        );
        assert_eq!(mirror_from_deb822(""), None);
    }

    #[test]
    fn reads_the_first_deb_line_of_sources_list() {
        let text = "\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.example/debian-security bookworm-security main
deb [ arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg ] http://mirror.example/debian/ bookworm main contrib
deb http://later.example/debian bookworm main
";
        assert_eq!(
            mirror_from_one_line(text).as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_from_one_line("deb [trusted=yes] file:/srv/mirror trixie main").as_deref(),
            Some("file:/srv/mirror")
        );
        assert_eq!(
            mirror_from_one_line("deb cdrom:[Debian]/ bookworm main\n"),
            None
        );
        assert_eq!(
            mirror_from_one_line("deb http://old.example/ buster/updates main"),
            None
        );
        assert_eq!(
            mirror_from_one_line("deb http://truncated.example/debian"),
            None
        );
    }

    #[test]
    fn finds_the_host_mirror_from_files() {
        let dir =
            std::env::temp_dir().join(format!("pandare-images-mirror-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sources.list.d")).unwrap();
        // Only the override variable could change the result; tests never set it.
        if std::env::var_os(MIRROR_ENV).is_some() {
            eprintln!("skipping: {MIRROR_ENV} is set in this environment");
            return;
        }
        let err = find_mirror(&dir).unwrap_err();
        assert!(err.to_string().contains("PANDARE_DEBIAN_MIRROR"), "{err}");
        std::fs::write(
            dir.join("sources.list"),
            "deb http://one.example/debian trixie main\n",
        )
        .unwrap();
        assert_eq!(find_mirror(&dir).unwrap().url, "http://one.example/debian");
        std::fs::write(dir.join("sources.list.d/debian.sources"), DEB822).unwrap();
        let m = find_mirror(&dir).unwrap();
        assert_eq!(m.url, "http://mirror.example/debian");
        assert!(m.source.ends_with("debian.sources"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn uri_normalization() {
        assert_eq!(
            normalize_uri("http://a.example/debian//").as_deref(),
            Some("http://a.example/debian")
        );
        assert_eq!(normalize_uri("file:///").as_deref(), Some("file:///"));
        assert_eq!(
            normalize_uri("mirror+file:/etc/apt/mirrors.txt").as_deref(),
            Some("mirror+file:/etc/apt/mirrors.txt")
        );
        assert_eq!(normalize_uri("not a url"), None);
        assert_eq!(normalize_uri("/just/a/path"), None);
        assert_eq!(normalize_uri("http:"), None);
    }
}
