//! Shared by the guest-level tests: the generic image with the test programs of
//! `programs/` added to its initrd, a QEMU reference machine driven through its serial
//! console, and one way of running a command on either machine (`run_marked`) so their
//! outputs can be compared.
//!
//! A test that cannot run because QEMU, the riscv64 binutils or the image are missing
//! prints `SKIP: ...`; under `CI=true` it fails instead.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use pandare::console::{strip_terminal_codes, UNITS_PER_SECOND};
use pandare::{Console, MachineConfig};
use pandare_riscv::abi::{QEMU_CPU, QEMU_OPENSBI};
pub use pandare_test_support::unavailable;
use pandare_test_support::{run_tool, tool};
use regex::bytes::Regex;

/// Whether QEMU and its OpenSBI firmware are installed.
pub fn qemu_installed() -> bool {
    tool("qemu-system-riscv64").is_ok() && Path::new(QEMU_OPENSBI).is_file()
}

/// The programs of `programs/*.S`, assembled and linked as static executables:
/// (name, ELF bytes).
fn assemble_programs(work: &Path) -> Result<Vec<(String, Vec<u8>)>, String> {
    let assembler = tool("riscv64-linux-gnu-as")?;
    let linker = tool("riscv64-linux-gnu-ld")?;
    let source_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guest/programs");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&source_dir)
        .map_err(|e| format!("{}: {e}", source_dir.display()))?
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|e| e == "S"))
        .collect();
    sources.sort();
    let mut programs = Vec::new();
    for source in sources {
        let name = source.file_stem().unwrap().to_string_lossy().into_owned();
        let object = work.join(format!("{name}.o"));
        let executable = work.join(&name);
        run_tool(
            Command::new(&assembler)
                .arg("-march=rv64gc")
                .arg(&source)
                .arg("-o")
                .arg(&object),
        )?;
        run_tool(
            Command::new(&linker)
                .args(["-static", "--no-relax"])
                .arg(&object)
                .arg("-o")
                .arg(&executable),
        )?;
        let bytes =
            std::fs::read(&executable).map_err(|e| format!("{}: {e}", executable.display()))?;
        programs.push((name, bytes));
    }
    Ok(programs)
}

/// The generic image's configuration with the test programs in `/bin` (a second cpio
/// archive appended to the image's initrd, which Linux unpacks over the first). Built
/// once per test binary.
pub fn guest_config() -> Result<MachineConfig, String> {
    static CONFIG: OnceLock<Result<MachineConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut config = MachineConfig::generic("riscv64", &mut |m| eprintln!("{m}"))
                .map_err(|e| format!("the riscv64 generic image is needed ({e})"))?;
            let work = Path::new(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("guest-programs-{}", std::process::id()));
            std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
            let programs = assemble_programs(&work)?;
            let base = config.initrd.as_ref().ok_or("the image has no initrd")?;
            let mut initrd = std::fs::read(base).map_err(|e| format!("{}: {e}", base.display()))?;
            let mut archive = pandare_images::cpio::CpioWriter::new(Vec::new());
            for (name, bytes) in &programs {
                archive
                    .file(&format!("bin/{name}"), 0o755, bytes)
                    .map_err(|e| e.to_string())?;
            }
            initrd.extend(archive.finish().map_err(|e| e.to_string())?);
            let path = work.join("initrd");
            std::fs::write(&path, initrd).map_err(|e| format!("{}: {e}", path.display()))?;
            config.initrd = Some(path);
            Ok(config)
        })
        .clone()
}

/// What one command did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Its output (stdout and stderr, as the console shows them), without carriage
    /// returns or terminal escapes.
    pub output: String,
    /// `$?` after it, or `None` when it did not finish in time.
    pub status: Option<u32>,
}

/// The line typed to run `command` as number `index`: a begin marker, the command, and
/// an end marker with its exit status, each marker printed with `printf` so that the
/// shell's echo of the line never contains it. A command of several lines (a here
/// document) has its first line wrapped and the others typed after it.
pub fn marked_line(index: usize, command: &str) -> String {
    let (first, rest) = match command.split_once('\n') {
        Some((first, rest)) => (first, Some(rest)),
        None => (command, None),
    };
    let mut line =
        format!("printf '@@%s\\n' B{index}; {first}; printf '\\n@@E%s=%s\\n' {index} $?\n");
    if let Some(rest) = rest {
        line += rest;
        line += "\n";
    }
    line
}

/// The end marker up to the status, and what ends the status.
fn end_marker(index: usize) -> Regex {
    Regex::new(&format!(r"\n@@E{index}=")).unwrap()
}

fn end_of_line() -> Regex {
    Regex::new(r"\r?\n").unwrap()
}

/// The command's output from the console text before the end marker.
fn outcome_of(index: usize, raw: &[u8], status: &[u8]) -> Outcome {
    let text = strip_terminal_codes(raw);
    let begin = format!("@@B{index}\n");
    let output = match text.rfind(&begin) {
        Some(at) => &text[at + begin.len()..],
        None => &text[..],
    };
    Outcome {
        output: output.to_string(),
        status: std::str::from_utf8(status)
            .ok()
            .and_then(|s| s.trim().parse().ok()),
    }
}

/// Runs `command` on pandare's console (at the prompt) and waits for its end marker, for
/// at most `seconds` of guest time.
pub fn run_marked(console: &mut Console, index: usize, command: &str, seconds: u64) -> Outcome {
    console.type_bytes(marked_line(index, command).as_bytes());
    let limit = seconds * UNITS_PER_SECOND;
    let result = console
        .wait_for(&end_marker(index), limit, "the end marker")
        .and_then(|before| {
            let status = console.wait_for(&end_of_line(), limit, "the exit status")?;
            Ok(outcome_of(index, &before, &status))
        });
    result.unwrap_or_else(|error| Outcome {
        output: format!("(no end marker: {error})"),
        status: None,
    })
}

/// A QEMU `virt` machine booted with the same kernel, initrd, command line, memory and
/// ISA, driven through its serial console on stdin/stdout.
pub struct Qemu {
    child: Child,
    input: ChildStdin,
    output: Receiver<Vec<u8>>,
    pending: Vec<u8>,
    prompt: Regex,
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Qemu {
    /// Starts QEMU and waits for the shell prompt.
    pub fn boot(config: &MachineConfig, limit: Duration) -> Result<Qemu, String> {
        let qemu = tool("qemu-system-riscv64")?;
        if !Path::new(QEMU_OPENSBI).is_file() {
            return Err(format!(
                "{QEMU_OPENSBI} not found; install qemu-system-misc"
            ));
        }
        let mut command = Command::new(qemu);
        command
            .args(["-M", "virt", "-smp", "1", "-nographic", "-cpu", QEMU_CPU])
            .args(["-m", &config.memory_mib.to_string()])
            .args(["-bios", QEMU_OPENSBI])
            .arg("-kernel")
            .arg(&config.kernel)
            .args(["-append", &config.append])
            // pandare's virt board has no network card.
            .args(["-nic", "none"]);
        if let Some(initrd) = &config.initrd {
            command.arg("-initrd").arg(initrd);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start QEMU: {e}"))?;
        let input = child.stdin.take().ok_or("no stdin for QEMU")?;
        let mut stdout = child.stdout.take().ok_or("no stdout from QEMU")?;
        let (sender, output) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 65536];
            while let Ok(count) = stdout.read(&mut buffer) {
                if count == 0 || sender.send(buffer[..count].to_vec()).is_err() {
                    break;
                }
            }
        });
        let prompt = config.prompt_regex().map_err(|e| e.to_string())?;
        let mut qemu = Qemu {
            child,
            input,
            output,
            pending: Vec::new(),
            prompt: prompt.clone(),
        };
        qemu.wait_for(&prompt, limit)
            .map_err(|tail| format!("QEMU did not reach the shell prompt: ...{tail}"))?;
        Ok(qemu)
    }

    /// Reads until `pattern` matches; returns the text before the match and the match,
    /// and consumes both. On timeout, the last output (as an error).
    fn wait_for(&mut self, pattern: &Regex, limit: Duration) -> Result<(Vec<u8>, Vec<u8>), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(found) = pattern.find(&self.pending) {
                let before = self.pending[..found.start()].to_vec();
                let matched = found.as_bytes().to_vec();
                self.pending.drain(..found.end());
                return Ok((before, matched));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .output
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(bytes) => self.pending.extend(bytes),
                Err(mpsc::RecvTimeoutError::Timeout) if left > Duration::ZERO => {}
                Err(_) => {
                    let tail = self.pending.len().saturating_sub(300);
                    return Err(String::from_utf8_lossy(&self.pending[tail..]).into_owned());
                }
            }
        }
    }

    /// Runs `command` as number `index` and waits for the next prompt.
    pub fn run(&mut self, index: usize, command: &str, limit: Duration) -> Outcome {
        if self
            .input
            .write_all(marked_line(index, command).as_bytes())
            .is_err()
        {
            return Outcome {
                output: "(QEMU is gone)".to_string(),
                status: None,
            };
        }
        let _ = self.input.flush();
        let result = self
            .wait_for(&end_marker(index), limit)
            .and_then(|(before, _)| {
                let (status, _) = self.wait_for(&end_of_line(), limit)?;
                Ok((before, status))
            });
        match result {
            Ok((before, status)) => {
                let prompt = self.prompt.clone();
                let _ = self.wait_for(&prompt, limit);
                outcome_of(index, &before, &status)
            }
            Err(tail) => {
                // Interrupt it and carry on at the next prompt.
                let _ = self.input.write_all(b"\x03");
                let _ = self.input.flush();
                let prompt = self.prompt.clone();
                let _ = self.wait_for(&prompt, limit);
                Outcome {
                    output: format!("(no end marker within {limit:?}: ...{tail})"),
                    status: None,
                }
            }
        }
    }
}
