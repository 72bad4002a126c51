//! pandare-test-support: dev-only helpers shared by the architecture crates' tests.
//!
//! - [`conformance`]: PANDA's callback semantics written once, as a suite of cases each
//!   architecture runs by implementing [`conformance::ConformanceTarget`] (a bare-metal
//!   machine builder, a handful of small guest programs, register names, a booted Linux
//!   guest) and expanding [`conformance_tests!`] in one of its test files.
//! - [`unavailable`]: the rule for a test that cannot run because a tool or an image is
//!   missing: a visible `SKIP` line, or a failure when `CI=true`.
//! - [`tool`] and [`run_tool`]: finding the host tools tests compare against (QEMU,
//!   binutils) and running them with their output in the error.
//!
//! Nothing here knows an ISA; only pandare-core's user-facing API is used
//! ([`pandare_core::Machine`], [`pandare_core::instrument`]).
#![warn(missing_docs)]

pub mod conformance;

/// Reports that a test cannot run (`reason` says what is missing and how to get it):
/// prints `SKIP: reason` past the test harness' capture, or panics when the environment
/// variable `CI` is `true`, where nothing may be skipped.
pub fn unavailable(reason: &str) {
    if std::env::var("CI").is_ok_and(|value| value == "true") {
        panic!("{reason} (CI=true: this test may not be skipped)");
    }
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "SKIP: {reason}");
}

/// The host tool `name`, found on `PATH`; the error says how to install the test tools.
pub fn tool(name: &str) -> Result<std::path::PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("{name} not found; run scripts/install-test-tools.sh"))
}

/// Runs a host tool; a failure carries its exit status and output.
pub fn run_tool(command: &mut std::process::Command) -> Result<(), String> {
    tool_output(command).map(|_| ())
}

/// Runs a host tool and returns its standard output; a failure carries its exit status and
/// output.
pub fn tool_output(command: &mut std::process::Command) -> Result<Vec<u8>, String> {
    let output = command
        .output()
        .map_err(|error| format!("cannot run {command:?}: {error}"))?;
    if output.status.success() {
        Ok(output.stdout)
    } else {
        Err(format!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}
