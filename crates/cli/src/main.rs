//! `panda`: boot a guest, run commands in it, benchmark it, build its image.

mod terminal;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use pandare::console::UNITS_PER_SECOND;
use pandare::{Architecture, Console, MachineConfig, ShutdownKind};

/// pandare: a whole-system emulator for dynamic analysis.
#[derive(Parser, Debug)]
#[command(name = "panda", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Boot a guest: an interactive console, or run commands with --cmd.
    Run(RunArgs),
    /// Generic guest images.
    Image {
        #[command(subcommand)]
        command: ImageCommand,
    },
    /// Benchmarks that print figures.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum ImageCommand {
    /// Build (or check) a generic image from Debian's packages.
    Build {
        /// Image name (riscv64).
        name: String,
        /// Rebuild even when the cached image is valid.
        #[arg(long)]
        rebuild: bool,
    },
    /// List the generic images and whether they are built.
    List,
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// Instructions, time and MIPS to the shell prompt, with QEMU's time for comparison.
    Boot {
        #[command(flatten)]
        guest: GuestArgs,
        /// Do not run QEMU for comparison.
        #[arg(long)]
        no_qemu: bool,
    },
}

#[derive(Args, Debug)]
struct GuestArgs {
    /// A generic image (riscv64), built on first use.
    #[arg(long, conflicts_with = "kernel")]
    generic: Option<String>,
    /// Your own kernel Image.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Your own initial RAM disk (with --kernel).
    #[arg(long, requires = "kernel")]
    initrd: Option<PathBuf>,
    /// Guest architecture for --kernel.
    #[arg(long, default_value = "riscv64")]
    arch: String,
    /// Kernel command line (replaces the image's).
    #[arg(long)]
    append: Option<String>,
    /// Guest memory in MiB.
    #[arg(long)]
    mem: Option<u64>,
    /// Regular expression matching the guest's shell prompt [default with --kernel: the last
    /// line of output, when it ends in `# ` or `$ ` and perhaps terminal escape codes]
    #[arg(long)]
    prompt: Option<String>,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// Run this shell command in the guest and print its output; repeat for several.
    #[arg(long = "cmd")]
    commands: Vec<String>,
    /// Virtual seconds each --cmd may take.
    #[arg(long, default_value_t = 600)]
    cmd_timeout: u64,
    /// Show the boot log while running --cmd.
    #[arg(long)]
    verbose: bool,
    /// At the end, print the guest instruction count and virtual time to stderr.
    #[arg(long)]
    stats: bool,
}

/// The prompt of one's own guest: the whole last line of output (so no part of the prompt
/// is taken for command output), ending in `# ` or `$ ` and perhaps terminal escape codes
/// (busybox's shell queries the cursor position with `ESC [6n` right after its prompt).
const DEFAULT_PROMPT: &str = r"(?m)^[^\n]*[#$] (?:\x1b\[[0-9;?]*[A-Za-z])*\z";

impl GuestArgs {
    fn config(&self) -> anyhow::Result<MachineConfig> {
        // Checked first: a bad option must not wait for an image build.
        if self.mem == Some(0) {
            bail!("--mem 0: the guest needs memory; give a size in MiB, e.g. --mem 512");
        }
        let mut config = match (&self.generic, &self.kernel) {
            (Some(name), _) => {
                // Progress only when an image is actually built, not on every run.
                let quiet = pandare_images::cached(name).is_some();
                MachineConfig::generic(name, &mut |message| {
                    if !quiet {
                        eprintln!("panda: {message}");
                    }
                })?
            }
            (None, Some(kernel)) => {
                let Some(architecture) = Architecture::from_name(&self.arch) else {
                    bail!("unknown architecture '{}' (supported: riscv64)", self.arch);
                };
                MachineConfig {
                    architecture,
                    memory_mib: 512,
                    kernel: kernel.clone(),
                    initrd: self.initrd.clone(),
                    append: "console=ttyS0".to_string(),
                    prompt: self
                        .prompt
                        .clone()
                        .unwrap_or_else(|| DEFAULT_PROMPT.to_string()),
                }
            }
            (None, None) => bail!(
                "say which guest to boot: --generic riscv64, or --kernel IMAGE [--initrd FILE]"
            ),
        };
        if let Some(append) = &self.append {
            config.append = append.clone();
        }
        if let Some(mem) = self.mem {
            config.memory_mib = mem;
        }
        if let Some(prompt) = &self.prompt {
            config.prompt = prompt.clone();
        }
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("panda: error: {}", error_message(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined with ": ", leaving out causes whose text the message
/// already holds (many errors print their source in their own message too).
fn error_message(error: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_guest(&args),
        Command::Image { command } => image(command),
        Command::Bench {
            command: BenchCommand::Boot { guest, no_qemu },
        } => bench_boot(&guest, no_qemu),
    }
}

fn run_guest(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = args.guest.config()?;
    let prompt = config.prompt_regex()?;
    let machine = config.build()?;
    let mut console = Console::new(machine, prompt);
    let result = if args.commands.is_empty() {
        terminal::interact(&mut console)
    } else {
        run_commands(args, &mut console)
    };
    if args.stats {
        let machine = console.machine();
        eprintln!("instructions: {}", machine.instruction_count());
        let now = machine.now();
        eprintln!(
            "virtual time: {}.{:09} s",
            now / UNITS_PER_SECOND,
            now % UNITS_PER_SECOND
        );
    }
    result
}

/// Boots to the prompt, runs each --cmd, prints its output, and powers off.
fn run_commands(args: &RunArgs, console: &mut Console) -> anyhow::Result<ExitCode> {
    if args.verbose {
        console.set_echo(Box::new(|bytes| {
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(bytes);
        }));
    }
    console
        .wait_for_prompt(120 * UNITS_PER_SECOND)
        .context("booting the guest")?;
    let mut stdout = std::io::stdout();
    for command in &args.commands {
        let output = console
            .run_command(command, args.cmd_timeout.saturating_mul(UNITS_PER_SECOND))
            .with_context(|| format!("running {command:?}"))?;
        stdout.write_all(output.as_bytes())?;
        stdout.flush()?;
    }
    match console.power_off(60 * UNITS_PER_SECOND)? {
        ShutdownKind::PowerOff | ShutdownKind::Reboot => Ok(ExitCode::SUCCESS),
        ShutdownKind::Failure(code) => {
            bail!("the guest reported failure code {code} while powering off")
        }
    }
}

fn image(command: ImageCommand) -> anyhow::Result<ExitCode> {
    match command {
        ImageCommand::Build { name, rebuild } => {
            let image = pandare_images::build(&name, rebuild, &mut |message| {
                eprintln!("panda: {message}");
            })?;
            println!("{}: kernel {}", image.name, image.kernel.display());
            println!("{}: initrd {}", image.name, image.initrd.display());
        }
        ImageCommand::List => {
            for name in pandare_images::AVAILABLE {
                let state = match pandare_images::cached(name) {
                    Some(image) => format!("built in {}", image.directory.display()),
                    None => {
                        "not built (panda image build NAME, or first use builds it)".to_string()
                    }
                };
                println!("{name}: {state}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_boot(guest: &GuestArgs, no_qemu: bool) -> anyhow::Result<ExitCode> {
    let config = guest.config()?;
    let report = pandare::bench::boot(&config, !no_qemu)?;
    println!(
        "guest: {} ({} MiB)",
        config.kernel.display(),
        config.memory_mib
    );
    println!(
        "pandare: {} instructions to the prompt in {:.2} s: {:.0} MIPS",
        report.instructions,
        report.seconds,
        report.mips()
    );
    match &report.qemu {
        Ok(qemu) => {
            println!("qemu-system-riscv64 (TCG): {qemu:.2} s to the prompt");
            println!("ratio pandare/QEMU time: {:.2}", report.seconds / qemu);
        }
        Err(why) => println!("qemu-system-riscv64: not measured: {why}"),
    }
    Ok(ExitCode::SUCCESS)
}
