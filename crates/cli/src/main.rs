//! `panda`: boot a guest, run commands in it, benchmark it, build its image.

mod exec;
mod terminal;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use pandare::console::UNITS_PER_SECOND;
use pandare::driver::{self, Start};
use pandare::monitor::Session;
use pandare::replay;
use pandare::store::SnapshotStore;
use pandare::{Architecture, Console, GuestOptions, Machine, MachineConfig, ShutdownKind};
use pandare_plugins::Plugins;

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
    /// Run a static Linux program in user mode on the emulated CPU (docs/exec.md).
    Exec(exec::ExecArgs),
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
    /// Replay a recording made with `panda run --record NAME`.
    Replay {
        /// The recording (NAME or NAME.recording).
        name: String,
        /// Exit non-zero unless every checkpoint and the console output match.
        #[arg(long)]
        verify: bool,
        /// Print the guest's console output while replaying.
        #[arg(long)]
        console: bool,
        #[command(flatten)]
        plugins: PluginArgs,
    },
    /// Named snapshots of a guest (`savevm`, `root`, ...).
    Snapshot {
        #[command(subcommand)]
        command: SnapshotCommand,
    },
    /// List the analysis plugins (load them with `--panda NAME[:key=value,...]`), or show
    /// one plugin's arguments and PPP callbacks.
    Plugins {
        /// A plugin to describe.
        name: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// List the snapshots of a guest.
    List {
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Delete a snapshot of a guest.
    Delete {
        /// The snapshot's name.
        name: String,
        #[command(flatten)]
        guest: GuestArgs,
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
    /// Record/replay: a workload live, while recording, and replayed.
    Replay {
        #[command(flatten)]
        guest: GuestArgs,
    },
    /// Snapshots: time to take, revert (few dirty pages), write and read; file size.
    Snapshot {
        #[command(flatten)]
        guest: GuestArgs,
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
struct PluginArgs {
    /// Load a plugin, as PANDA's `-panda`: NAME or NAME:key=value,key=value (several
    /// separated by `;`, or repeat the option). `panda plugins` lists them. Their reports
    /// go to stderr when the run ends; their files are written then.
    #[arg(long = "panda", value_name = "NAME[:ARGS]")]
    panda: Vec<String>,
}

impl PluginArgs {
    /// The plugin specifications, one per plugin.
    fn specs(&self) -> Vec<&str> {
        self.panda
            .iter()
            .flat_map(|option| option.split(';'))
            .map(str::trim)
            .filter(|spec| !spec.is_empty())
            .collect()
    }

    /// Checks the plugins and their arguments before anything slow happens (an image
    /// build, a boot). `kernel`: the kernel image when it is known without building
    /// anything; without it, a plugin that needs the kernel's profile is checked when it
    /// loads.
    fn check(&self, kernel: Option<PathBuf>) -> anyhow::Result<()> {
        let mut plugins = Plugins::new();
        let known = kernel.is_some();
        if let Some(kernel) = kernel {
            plugins.set_kernel_image(kernel);
        }
        for spec in self.specs() {
            let (name, pairs) = pandare_plugins::parse_spec(spec)?;
            match plugins.check(&name, pairs) {
                Err(pandare_plugins::PluginError::NoKernelProfile { .. }) if !known => {}
                result => result?,
            }
        }
        Ok(())
    }

    /// Loads the plugins into `machine`; `plugins` knows the guest's kernel (its image, or
    /// a recording's profile).
    fn load(&self, mut plugins: Plugins, machine: &mut dyn Machine) -> anyhow::Result<Plugins> {
        for spec in self.specs() {
            plugins
                .load_spec(machine.instrumentation(), spec)
                .with_context(|| format!("loading plugin {spec:?}"))?;
        }
        Ok(plugins)
    }
}

/// Unloads the plugins (they write their files) and prints their reports to stderr.
fn unload_plugins(plugins: &mut Plugins, machine: &mut dyn Machine) -> anyhow::Result<()> {
    if plugins.loaded().is_empty() {
        return Ok(());
    }
    for report in plugins.unload_all(machine.instrumentation())? {
        eprintln!("{report}");
    }
    Ok(())
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    guest: GuestArgs,
    #[command(flatten)]
    plugins: PluginArgs,
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
    /// Record the run into NAME.recording (replay it with `panda replay NAME`).
    #[arg(long, value_name = "NAME")]
    record: Option<String>,
    /// Start from the named snapshot instead of booting.
    #[arg(long, value_name = "NAME")]
    loadvm: Option<String>,
    /// Boot the kernel even when the generic image has a `root` snapshot (and do not
    /// create one).
    #[arg(long)]
    boot: bool,
}

impl GuestArgs {
    /// The guest, through the same defaults the Python package uses
    /// ([`pandare::GuestOptions`]).
    fn config(&self) -> anyhow::Result<MachineConfig> {
        // Checked first, in the CLI's words: a bad option must not wait for an image build.
        if self.mem == Some(0) {
            bail!("--mem 0: the guest needs memory; give a size in MiB, e.g. --mem 512");
        }
        if self.generic.is_none() && self.kernel.is_none() {
            bail!(
                "say which guest to boot: --generic {}, or --kernel IMAGE [--initrd FILE]",
                pandare_images::AVAILABLE.join("|")
            );
        }
        // Progress only when an image is actually built, not on every run.
        let quiet = self
            .generic
            .as_deref()
            .is_none_or(|name| pandare_images::cached(name).is_some());
        Ok(self.options().config(&mut |message| {
            if !quiet {
                eprintln!("panda: {message}");
            }
        })?)
    }

    /// The kernel image, when it is known without building an image.
    fn known_kernel(&self) -> Option<PathBuf> {
        match &self.generic {
            Some(name) => pandare_images::cached(name).map(|image| image.kernel),
            None => self.kernel.clone(),
        }
    }

    fn options(&self) -> GuestOptions {
        GuestOptions {
            generic: self.generic.clone(),
            kernel: self.kernel.clone(),
            initrd: self.initrd.clone(),
            architecture: Some(self.arch.clone()),
            append: self.append.clone(),
            memory_mib: self.mem,
            prompt: self.prompt.clone(),
        }
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
        Command::Bench {
            command: BenchCommand::Replay { guest },
        } => {
            let config = guest.config()?;
            let report = pandare::bench::record_replay(&config)?;
            let mips = |seconds: f64| report.instructions as f64 / seconds / 1e6;
            println!("workload: {} guest instructions", report.instructions);
            println!(
                "live:      {:.3} s ({:.0} MIPS)",
                report.live_seconds,
                mips(report.live_seconds)
            );
            println!(
                "recording: {:.3} s ({:.0} MIPS): overhead {:+.1}%",
                report.recording_seconds,
                mips(report.recording_seconds),
                (report.recording_seconds / report.live_seconds - 1.0) * 100.0
            );
            println!(
                "replay:    {:.3} s ({:.0} MIPS): {:.2}x live speed; matched: {}",
                report.replay_seconds,
                mips(report.replay_seconds),
                report.live_seconds / report.replay_seconds,
                report.replay_matched
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench {
            command: BenchCommand::Snapshot { guest },
        } => {
            let config = guest.config()?;
            let report = pandare::bench::snapshots(&config)?;
            println!(
                "guest RAM: {} MiB, {} non-zero pages stored",
                report.memory_mib, report.stored_pages
            );
            println!("take at the prompt: {:.1} ms", report.take_seconds * 1e3);
            println!(
                "revert after one command: {:.2} ms (mean of 20)",
                report.revert_seconds * 1e3
            );
            println!(
                "file: {} bytes ({:.1} MiB), written in {:.0} ms, read in {:.0} ms",
                report.file_bytes,
                report.file_bytes as f64 / f64::from(1 << 20),
                report.write_seconds * 1e3,
                report.read_seconds * 1e3
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay {
            name,
            verify,
            console,
            plugins,
        } => replay(&name, verify, console, &plugins),
        Command::Snapshot { command } => snapshot(command),
        Command::Plugins { name } => list_plugins(name.as_deref()),
        Command::Exec(args) => exec::run(args),
    }
}

fn list_plugins(name: Option<&str>) -> anyhow::Result<ExitCode> {
    let plugins = Plugins::new();
    let Some(name) = name else {
        let available = plugins.available();
        let width = available
            .iter()
            .map(|info| info.name.len())
            .max()
            .unwrap_or(0);
        for info in available {
            println!("{:<width$}  {}", info.name, info.description);
        }
        println!("\nLoad with `panda run|replay ... --panda NAME[:key=value,...]`; `panda plugins NAME` shows its arguments.");
        return Ok(ExitCode::SUCCESS);
    };
    let info = plugins.info(name)?;
    println!("{}: {}", info.name, info.description);
    if info.arguments.is_empty() {
        println!("arguments: none");
    } else {
        println!("arguments:");
        for argument in info.arguments {
            println!("  {:<16} {}", argument.name, argument.help);
        }
    }
    for point in info.ppp {
        println!("PPP callback {}{}", point.name, point.signature);
    }
    Ok(ExitCode::SUCCESS)
}

/// Why a replay has no kernel profile when its recording carries none.
const NO_RECORDED_PROFILE: &str = "the recording carries no kernel profile (it was made \
     from a kernel without BTF or kallsyms, or by an older pandare): OS introspection is not \
     available in its replay";

fn replay(
    name: &str,
    verify: bool,
    show_console: bool,
    plugin_args: &PluginArgs,
) -> anyhow::Result<ExitCode> {
    plugin_args.check(None)?;
    let path = replay::recording_path(name);
    if !path.exists() {
        bail!(
            "there is no recording {} (make one with `panda run ... --record NAME`)",
            path.display()
        );
    }
    let recording = replay::read_recording(&path)?;
    let Some(architecture) = Architecture::from_name(&recording.architecture) else {
        bail!(
            "the recording is of a {} machine, which this build does not support",
            recording.architecture
        );
    };
    let config = MachineConfig {
        architecture,
        memory_mib: recording.memory_mib,
        kernel: PathBuf::new(),
        initrd: None,
        append: recording.append.clone(),
        prompt: String::new(),
    };
    let mut machine = config.build_blank()?;
    // OS introspection during a replay uses the profile the recording carries: a replay
    // needs nothing but the recording.
    let mut kernel = Plugins::new();
    kernel.set_kernel_unavailable(NO_RECORDED_PROFILE);
    if let Some(bytes) = &recording.kernel_profile {
        let profile = pandare_osi::Profile::from_bytes(bytes).with_context(|| {
            format!(
                "the kernel profile in {} is damaged (record it again)",
                path.display()
            )
        })?;
        kernel.set_kernel_profile(Arc::new(profile));
    }
    let mut plugins = plugin_args.load(kernel, machine.as_mut())?;
    let started = std::time::Instant::now();
    let mut stdout = std::io::stdout();
    let report = replay::replay(&recording, machine.as_mut(), &mut |bytes| {
        if show_console {
            let _ = stdout.write_all(bytes);
            let _ = stdout.flush();
        }
    })?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "replayed {} instructions in {seconds:.2} s ({:.0} MIPS); {} checkpoints matched; console output {}",
        report.instructions_replayed,
        report.instructions_replayed as f64 / seconds / 1e6,
        report.checkpoints,
        if report.output_matches { "matched" } else { "DIFFERED" },
    );
    unload_plugins(&mut plugins, machine.as_mut())?;
    if verify && !report.output_matches {
        bail!("the replay's console output differs from the recording's");
    }
    Ok(ExitCode::SUCCESS)
}

fn snapshot(command: SnapshotCommand) -> anyhow::Result<ExitCode> {
    match command {
        SnapshotCommand::List { guest } => {
            let config = guest.config()?;
            let store = SnapshotStore::for_guest(&config, guest.generic.as_deref());
            let list = store.list();
            if list.is_empty() {
                println!("no snapshots in {}", store.directory().display());
            }
            for (name, size) in list {
                println!("{name}\t{size} bytes");
            }
        }
        SnapshotCommand::Delete { name, guest } => {
            let config = guest.config()?;
            let mut store = SnapshotStore::for_guest(&config, guest.generic.as_deref());
            if !store.delete(&name)? {
                bail!("there is no snapshot named '{name}' (see `panda snapshot list`)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

const PLUGIN_COMMANDS_HELP: &str = "\
load_plugin NAME[:ARGS]  load a plugin (`panda plugins` lists them)
unload_plugin NAME   unload a plugin: it writes its files and prints its report
list_plugins         list the loaded plugins";

/// The monitor's plugin commands (PANDA's `load_plugin`, `unload_plugin`, `list_plugins`).
fn plugin_command(
    plugins: &Mutex<Plugins>,
    machine: &mut dyn Machine,
    line: &str,
) -> Option<String> {
    let mut plugins = plugins.lock().unwrap_or_else(|p| p.into_inner());
    let (command, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let result = match command {
        "load_plugin" if !rest.is_empty() => {
            // PANDA writes `load_plugin NAME,key=value`; `-panda` writes `NAME:key=value`.
            let spec = if rest.contains(':') {
                rest.to_string()
            } else {
                rest.replacen(',', ":", 1)
            };
            plugins
                .load_spec(machine.instrumentation(), &spec)
                .map(|()| String::new())
        }
        "unload_plugin" if !rest.is_empty() => plugins.unload(machine.instrumentation(), rest),
        "list_plugins" => Ok(match plugins.loaded().as_slice() {
            [] => "no plugin is loaded".to_string(),
            loaded => loaded.join("\n"),
        }),
        "load_plugin" | "unload_plugin" => Ok(format!("usage: {command} NAME")),
        _ => return None,
    };
    Some(result.unwrap_or_else(|error| format!("Error: {error}")))
}

fn run_guest(args: &RunArgs) -> anyhow::Result<ExitCode> {
    args.plugins.check(args.guest.known_kernel())?;
    let config = args.guest.config()?;
    let mut store = SnapshotStore::for_guest(&config, args.guest.generic.as_deref());
    let start = match &args.loadvm {
        Some(name) => Start::Snapshot(name),
        None if args.guest.generic.is_some() && !args.boot => Start::RootOrBoot,
        None => Start::Boot,
    };
    let (mut console, start_from) = driver::start(&config, &mut store, start)?;
    // Plugins that introspect the OS derive the kernel's profile from the image booted.
    let mut kernel = Plugins::new();
    kernel.set_kernel_image(&config.kernel);
    let plugins = Arc::new(Mutex::new(args.plugins.load(kernel, console.machine())?));
    let result = if args.commands.is_empty() {
        let mut session = Session::new(console, store, config.memory_mib, &config.append);
        session.set_profile_source(profile_source(&plugins));
        let shared = Arc::clone(&plugins);
        session.add_commands(
            PLUGIN_COMMANDS_HELP,
            Box::new(move |machine, line| plugin_command(&shared, machine, line)),
        );
        if let Some(name) = &args.record {
            session.begin_record(name);
        }
        let result = terminal::interact(&mut session);
        if let Some(path) = session.end_record().map_err(anyhow::Error::msg)? {
            eprintln!("panda: recording written to {}", path.display());
        }
        console = session.console;
        result
    } else {
        if args.verbose {
            console.set_echo(Box::new(|bytes| {
                let mut stderr = std::io::stderr();
                let _ = stderr.write_all(bytes);
            }));
        }
        if start_from.is_none() {
            console
                .wait_for_prompt(driver::BOOT_LIMIT)
                .context("booting the guest")?;
            if args.guest.generic.is_some() && !args.boot {
                driver::save_root(&mut console, &mut store)
                    .context("saving the image's root snapshot")?;
            }
        }
        let mut session = Session::new(console, store, config.memory_mib, &config.append);
        session.set_profile_source(profile_source(&plugins));
        if let Some(name) = &args.record {
            session.begin_record(name);
        }
        let result = run_commands(args, &mut session.console);
        if let Some(path) = session.end_record().map_err(anyhow::Error::msg)? {
            eprintln!("panda: recording written to {}", path.display());
        }
        console = session.console;
        result
    };
    let unloaded = unload_plugins(
        &mut plugins.lock().unwrap_or_else(|p| p.into_inner()),
        console.machine(),
    );
    let result = match (result, unloaded) {
        (Err(error), _) | (Ok(_), Err(error)) => Err(error),
        (Ok(code), Ok(())) => Ok(code),
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

/// What a recording carries for OS introspection: the kernel's profile (derived on first
/// use, cached per kernel), or nothing when the kernel has none (no BTF or kallsyms).
fn profile_source(plugins: &Arc<Mutex<Plugins>>) -> pandare::monitor::ProfileSource {
    let plugins = Arc::clone(plugins);
    Box::new(move || {
        let plugins = plugins.lock().unwrap_or_else(|p| p.into_inner());
        match plugins.kernel_profile() {
            Ok(profile) => Some(profile.to_bytes()),
            Err(error) => {
                eprintln!("panda: the recording carries no kernel profile: {error}");
                None
            }
        }
    })
}

/// Boots to the prompt, runs each --cmd, prints its output, and powers off.
fn run_commands(args: &RunArgs, console: &mut Console) -> anyhow::Result<ExitCode> {
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
    let qemu_name = config.architecture.description().qemu.binary;
    match &report.qemu {
        Ok(qemu) => {
            println!("{qemu_name} (TCG): {qemu:.2} s to the prompt");
            println!("ratio pandare/QEMU time: {:.2}", report.seconds / qemu);
        }
        Err(why) => println!("{qemu_name}: not measured: {why}"),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(args: &[&str]) -> GuestArgs {
        let cli = Cli::try_parse_from([&["panda", "run"], args].concat()).unwrap();
        match cli.command {
            Command::Run(run) => run.guest,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn own_kernel_defaults_are_the_shared_drivers() {
        // The Python package builds its config through the same GuestOptions (its side is
        // crates/python/tests/test_arch.py), so the two cannot disagree.
        let config = guest(&["--kernel", "/k", "--initrd", "/i"])
            .config()
            .unwrap();
        let expected =
            MachineConfig::own_kernel(Architecture::ALL[0], "/k".into(), Some("/i".into()));
        assert_eq!(config, expected);
        assert_eq!(config.prompt, pandare::DEFAULT_PROMPT);
        assert_eq!(
            config.append,
            config.architecture.description().console_arguments
        );
    }

    #[test]
    fn options_override_the_defaults() {
        let config = guest(&[
            "--kernel", "/k", "--append", "quiet", "--mem", "64", "--prompt", "> ",
        ])
        .config()
        .unwrap();
        assert_eq!(
            (
                config.append.as_str(),
                config.memory_mib,
                config.prompt.as_str()
            ),
            ("quiet", 64, "> ")
        );
    }

    #[test]
    fn an_unknown_architecture_names_the_supported_ones() {
        let error = guest(&["--kernel", "/k", "--arch", "vax"])
            .config()
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'vax'") && error.contains(&Architecture::names()),
            "{error}"
        );
    }
}
