//! Helpers shared by the `panda` integration tests: run the real binary with a wall-clock
//! limit, and make sure the generic image is there.

#![allow(dead_code)]

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// What a finished `panda` run left behind.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    /// The value of the `instructions: N` line that `--stats` prints.
    pub fn instructions(&self) -> u64 {
        self.stderr
            .lines()
            .find_map(|line| line.strip_prefix("instructions: "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `instructions: N` line on stderr:\n{}", self.stderr))
    }
}

/// A `panda` command (the binary this package builds).
pub fn panda() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_panda"));
    command.stdin(Stdio::null());
    command
}

/// Kills the child when dropped, so a failing test never leaves it running.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts `command` and returns a handle that collects its output.
pub fn spawn(mut command: Command, limit: Duration) -> Pending {
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut guard = Guard(child);
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = reader(guard.0.stdout.take().map(|p| Box::new(p) as _));
    let stderr = reader(guard.0.stderr.take().map(|p| Box::new(p) as _));
    Pending {
        description: format!("{command:?}"),
        guard,
        stdout,
        stderr,
        start: Instant::now(),
        limit,
    }
}

/// A started run.
pub struct Pending {
    description: String,
    guard: Guard,
    stdout: std::thread::JoinHandle<String>,
    stderr: std::thread::JoinHandle<String>,
    start: Instant,
    limit: Duration,
}

impl Pending {
    /// Waits for the run to end; kills it and fails the test once the limit has passed.
    pub fn wait(mut self) -> Run {
        let status = loop {
            match self.guard.0.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if self.start.elapsed() >= self.limit => {
                    let _ = self.guard.0.kill();
                    let _ = self.guard.0.wait();
                    let stdout = self.stdout.join().unwrap_or_default();
                    let stderr = self.stderr.join().unwrap_or_default();
                    panic!(
                        "{} did not finish within {:?} (killed)\nstdout:\n{stdout}\nstderr:\n{stderr}",
                        self.description, self.limit
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => panic!("waiting for {}: {e}", self.description),
            }
        };
        let elapsed = self.start.elapsed();
        Run {
            status,
            stdout: self.stdout.join().unwrap_or_default(),
            stderr: self.stderr.join().unwrap_or_default(),
            elapsed,
        }
    }
}

/// Runs `command` to the end, killing it (and failing) after `seconds` of wall time.
pub fn run(command: Command, seconds: u64) -> Run {
    spawn(command, Duration::from_secs(seconds)).wait()
}

/// Wall-clock limit for a run that boots the guest. A boot takes about 10 s of host time
/// in release and debug builds alike; the margin covers loaded machines and tests running
/// side by side.
pub const BOOT_LIMIT: u64 = 300;

/// Wall-clock limit for a run that must fail before booting anything.
pub const QUICK_LIMIT: u64 = 30;

/// The generic riscv64 image, built once (with `panda image build riscv64`) when the cache
/// does not have it. Fails the test with the build's output when it cannot be built (and
/// later tests in the same binary fail the same way without trying again).
pub fn generic_image() -> pandare_images::GenericImage {
    static IMAGE: OnceLock<Result<pandare_images::GenericImage, String>> = OnceLock::new();
    let image = IMAGE.get_or_init(|| {
        if let Some(image) = pandare_images::cached("riscv64") {
            return Ok(image);
        }
        eprintln!(
            "the riscv64 generic image is not cached: building it with `panda image build riscv64`"
        );
        let mut command = panda();
        command.args(["image", "build", "riscv64"]);
        let build = run(command, 60 * 60);
        if !build.status.success() {
            return Err(format!(
                "these tests need the riscv64 generic image, and `panda image build riscv64` \
                 failed (is a Debian mirror reachable? set PANDARE_DEBIAN_MIRROR to one):\n{}",
                build.stderr
            ));
        }
        pandare_images::cached("riscv64").ok_or_else(|| {
            "`panda image build riscv64` succeeded but the image is not in the cache".to_string()
        })
    });
    match image {
        Ok(image) => image.clone(),
        Err(why) => panic!("{why}"),
    }
}

/// A fresh, empty directory under the system's temporary directory, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("pandare-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
