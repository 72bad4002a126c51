//! Boot benchmark: instructions and wall time to the shell prompt, and QEMU's time for the
//! same kernel and initrd in the same invocation (these machines are noisy, so the ratio
//! is the figure that means something).

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{BuildError, MachineConfig};
use crate::console::{Console, ConsoleError, UNITS_PER_SECOND};

/// Where QEMU's OpenSBI firmware lives in Debian's package.
pub const QEMU_OPENSBI: &str = "/usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin";
/// QEMU CPU options that advertise the same ISA as pandare's hart.
pub const QEMU_CPU: &str = "rv64,h=false,zba=false,zbb=false,zbc=false,zbs=false,sstc=false,svadu=false,zicbom=false,zicboz=false,zicbop=false,zawrs=false,zfa=false,sv57=false,sv48=true";

/// Figures from one boot.
#[derive(Clone, Debug)]
pub struct BootReport {
    /// Guest instructions retired until the prompt.
    pub instructions: u64,
    /// Wall time until the prompt (machine build included).
    pub seconds: f64,
    /// QEMU's wall time to the prompt, or why it could not be measured.
    pub qemu: Result<f64, String>,
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
        Err("skipped (--no-qemu)".to_string())
    };
    Ok(BootReport {
        instructions,
        seconds,
        qemu,
    })
}

/// Wall time for QEMU to boot the same kernel and initrd to the prompt.
pub fn qemu_boot(config: &MachineConfig) -> Result<f64, String> {
    let prompt = config.prompt_regex().map_err(|e| e.to_string())?;
    let mut command = Command::new("qemu-system-riscv64");
    command
        .args(["-M", "virt", "-smp", "1", "-nographic", "-cpu", QEMU_CPU])
        .args(["-m", &config.memory_mib.to_string()])
        .args(["-bios", QEMU_OPENSBI])
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
        .map_err(|e| {
            format!("qemu-system-riscv64 not available ({e}); install qemu-system-misc")
        })?;
    let mut stdout = child.stdout.take().ok_or("no stdout from QEMU")?;
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
    let result = match receiver.recv_timeout(Duration::from_secs(120)) {
        Ok(()) => Ok(start.elapsed().as_secs_f64()),
        Err(_) => Err("QEMU did not reach the prompt within 120 s".to_string()),
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}
