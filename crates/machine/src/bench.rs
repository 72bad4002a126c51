//! Boot benchmark: instructions and wall time to the shell prompt, and QEMU's time for the
//! same kernel and initrd in the same invocation (these machines are noisy, so the ratio
//! is the figure that means something).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{BuildError, MachineConfig};
use crate::console::{Console, ConsoleError, UNITS_PER_SECOND};

/// Figures from one boot.
#[derive(Debug)]
pub struct BootReport {
    /// Guest instructions retired until the prompt.
    pub instructions: u64,
    /// Wall time until the prompt (machine build included).
    pub seconds: f64,
    /// QEMU's wall time to the prompt, or why it could not be measured.
    pub qemu: Result<f64, QemuError>,
}

impl BootReport {
    /// Millions of guest instructions per wall-clock second.
    pub fn mips(&self) -> f64 {
        self.instructions as f64 / self.seconds / 1e6
    }
}

/// Errors of the benchmark itself.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The machine could not be built.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The guest did not reach the prompt.
    #[error(transparent)]
    Console(#[from] ConsoleError),
    /// A snapshot could not be taken, loaded, written or read.
    #[error(transparent)]
    Snapshot(#[from] pandare_core::SnapshotError),
    /// The replay failed.
    #[error(transparent)]
    Replay(#[from] crate::replay::ReplayError),
}

/// Why QEMU's boot time could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// Not measured on request.
    #[error("skipped (--no-qemu)")]
    Skipped,
    /// The prompt pattern does not compile.
    #[error(transparent)]
    Prompt(#[from] BuildError),
    /// QEMU could not be started.
    #[error("{binary} not available ({source}); install {package}")]
    Start {
        /// The QEMU binary.
        binary: &'static str,
        /// The package that installs it.
        package: &'static str,
        /// Why it did not start.
        source: std::io::Error,
    },
    /// QEMU gave no output pipe.
    #[error("no stdout from QEMU")]
    NoOutput,
    /// The prompt did not appear in time.
    #[error("QEMU did not reach the prompt within {0} s")]
    Timeout(u64),
}

/// Boots `config` to the prompt under pandare, then (unless `with_qemu` is false) under
/// QEMU.
pub fn boot(config: &MachineConfig, with_qemu: bool) -> Result<BootReport, BenchError> {
    let prompt = config.prompt_regex()?;
    let start = Instant::now();
    let machine = config.build()?;
    let mut console = Console::new(machine, prompt);
    console.wait_for_prompt(120 * UNITS_PER_SECOND)?;
    let seconds = start.elapsed().as_secs_f64();
    let instructions = console.machine().instruction_count();
    let qemu = if with_qemu {
        qemu_boot(config)
    } else {
        Err(QemuError::Skipped)
    };
    Ok(BootReport {
        instructions,
        seconds,
        qemu,
    })
}

/// Wall time for QEMU to boot the same kernel and initrd to the prompt, on the machine the
/// architecture's description names.
pub fn qemu_boot(config: &MachineConfig) -> Result<f64, QemuError> {
    const LIMIT_SECONDS: u64 = 120;
    let prompt = config.prompt_regex()?;
    let qemu = config.architecture.description().qemu;
    let mut command = Command::new(qemu.binary);
    command
        .args(qemu.arguments)
        .args(["-m", &config.memory_mib.to_string()])
        .arg("-kernel")
        .arg(&config.kernel)
        .args(["-append", &config.append]);
    if let Some(initrd) = &config.initrd {
        command.arg("-initrd").arg(initrd);
    }
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| QemuError::Start {
            binary: qemu.binary,
            package: qemu.package,
            source,
        })?;
    let mut stdout = child.stdout.take().ok_or(QemuError::NoOutput)?;
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(count) = stdout.read(&mut buffer) {
            if count == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..count]);
            if prompt.is_match(&seen) {
                let _ = sender.send(());
                return;
            }
        }
    });
    let result = match receiver.recv_timeout(Duration::from_secs(LIMIT_SECONDS)) {
        Ok(()) => Ok(start.elapsed().as_secs_f64()),
        Err(_) => Err(QemuError::Timeout(LIMIT_SECONDS)),
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The workload the record/replay and callback benchmarks run at the shell prompt: a mix
/// of process creation, file-system work and shell arithmetic.
pub const WORKLOAD: &[&str] = &[
    "i=0; while [ $i -lt 300 ]; do i=$((i+1)); done; echo $i",
    "ls -R /sys/kernel > /dev/null; echo listed",
    "for f in 1 2 3 4 5 6 7 8; do cat /proc/cpuinfo > /tmp/c$f; done; wc -c /tmp/c8",
];

/// Figures for recording and replaying [`WORKLOAD`].
#[derive(Clone, Debug)]
pub struct ReplayReport {
    /// Guest instructions in the workload.
    pub instructions: u64,
    /// Wall time of the workload run live, without recording.
    pub live_seconds: f64,
    /// Wall time of the same workload while recording.
    pub recording_seconds: f64,
    /// Wall time of replaying the recording.
    pub replay_seconds: f64,
    /// Whether the replay matched every checkpoint and the output.
    pub replay_matched: bool,
}

fn booted_console(config: &MachineConfig) -> Result<Console, BenchError> {
    let mut console = Console::new(config.build()?, config.prompt_regex()?);
    console.wait_for_prompt(120 * UNITS_PER_SECOND)?;
    Ok(console)
}

fn run_workload(console: &mut Console) -> Result<(), ConsoleError> {
    for command in WORKLOAD {
        console.run_command(command, 600 * UNITS_PER_SECOND)?;
    }
    Ok(())
}

/// Boots, then runs [`WORKLOAD`] live, again while recording (from the same snapshot),
/// and replays the recording.
pub fn record_replay(config: &MachineConfig) -> Result<ReplayReport, BenchError> {
    let mut console = booted_console(config)?;
    let start = console.save_snapshot();
    let before = console.machine().instruction_count();
    let timer = Instant::now();
    run_workload(&mut console)?;
    let live_seconds = timer.elapsed().as_secs_f64();
    let instructions = console.machine().instruction_count() - before;

    console.load_snapshot(&start)?;
    let timer = Instant::now();
    console.start_recording();
    run_workload(&mut console)?;
    let recording = console
        .finish_recording(config.memory_mib, &config.append)
        .expect("a recording was started");
    let recording_seconds = timer.elapsed().as_secs_f64();

    let mut machine = config.build_blank()?;
    let timer = Instant::now();
    let report = crate::replay::replay(&recording, machine.as_mut(), &mut |_| {})?;
    let replay_seconds = timer.elapsed().as_secs_f64();
    Ok(ReplayReport {
        instructions,
        live_seconds,
        recording_seconds,
        replay_seconds,
        replay_matched: report.output_matches,
    })
}

/// Figures for snapshots of a booted guest.
#[derive(Clone, Debug)]
pub struct SnapshotReport {
    /// Guest RAM in MiB.
    pub memory_mib: u64,
    /// Mean time to revert to a snapshot after running one short command.
    pub revert_seconds: f64,
    /// Time to take the snapshot at the prompt (the first one copies every page in use).
    pub take_seconds: f64,
    /// Non-zero RAM pages stored.
    pub stored_pages: usize,
    /// Size of the snapshot file.
    pub file_bytes: u64,
    /// Time to write the snapshot file.
    pub write_seconds: f64,
    /// Time to read it back.
    pub read_seconds: f64,
}

/// Boots, takes a snapshot at the prompt, and measures reverts and the snapshot file.
pub fn snapshots(config: &MachineConfig) -> Result<SnapshotReport, BenchError> {
    const REVERTS: u32 = 20;
    let mut console = booted_console(config)?;
    let timer = Instant::now();
    let snapshot = console.save_snapshot();
    let take_seconds = timer.elapsed().as_secs_f64();
    let mut revert_seconds = 0.0;
    for _ in 0..REVERTS {
        console.run_command("echo x > /tmp/x", 60 * UNITS_PER_SECOND)?;
        let timer = Instant::now();
        console.load_snapshot(&snapshot)?;
        revert_seconds += timer.elapsed().as_secs_f64();
    }
    let path = std::env::temp_dir().join(format!("pandare-bench-{}.snapshot", std::process::id()));
    let timer = Instant::now();
    pandare_core::archive::write_snapshot(&path, &snapshot)?;
    let write_seconds = timer.elapsed().as_secs_f64();
    let file_bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let timer = Instant::now();
    let read = pandare_core::archive::read_snapshot(&path);
    let read_seconds = timer.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    read?;
    Ok(SnapshotReport {
        memory_mib: config.memory_mib,
        revert_seconds: revert_seconds / f64::from(REVERTS),
        take_seconds,
        stored_pages: snapshot.ram.stored_pages(),
        file_bytes,
        write_seconds,
        read_seconds,
    })
}
