//! `panda exec`: runs a static Linux program in user mode on the emulated CPU, with a
//! small deterministic syscall layer (`docs/exec.md`).

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use pandare::exec;
use pandare_plugins::Plugins;
use pandare_user::{Io, Program};

use crate::{unload_plugins, PluginArgs};

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The program's architecture [default: from its ELF header]
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["riscv64", "x86_64", "i386"]))]
    arch: Option<String>,
    /// Guest memory for the program's pages and page tables, in MiB
    #[arg(long, default_value_t = 1024)]
    mem: u64,
    /// An environment variable for the program, KEY=VALUE (repeat the option); nothing of
    /// the host's environment is passed otherwise
    #[arg(long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// argv[0] [default: PROGRAM as given]
    #[arg(long)]
    argv0: Option<String>,
    /// Print each system call, its first arguments and its result to stderr
    #[arg(long)]
    strace: bool,
    /// Print the instructions retired to stderr when the program ends
    #[arg(long)]
    count: bool,
    #[command(flatten)]
    plugins: PluginArgs,
    /// The static Linux ELF program
    program: String,
    /// Its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Runs the program; the exit code is the program's status (128 + N for a signal, 127
/// when the emulation cannot go on).
pub fn run(args: ExecArgs) -> anyhow::Result<ExitCode> {
    args.plugins.check(None)?;
    for pair in &args.env {
        if !pair.contains('=') {
            anyhow::bail!("--env {pair:?} is not KEY=VALUE");
        }
    }
    let mut argv = vec![args.argv0.clone().unwrap_or_else(|| args.program.clone())];
    argv.extend(args.args.iter().cloned());
    let program = Program {
        path: args.program.clone(),
        argv,
        envp: args.env.clone(),
    };
    let memory = args
        .mem
        .checked_mul(1 << 20)
        .context("--mem is too large")?;
    let mut machine = exec::load(args.arch.as_deref(), &program, Io::host(), memory)?;
    machine.process().trace_syscalls = args.strace;
    let mut plugins = Plugins::new();
    plugins.set_kernel_unavailable(
        "panda exec runs one program without a kernel, so there is no kernel to introspect",
    );
    let mut plugins = args.plugins.load(plugins, machine.as_mut())?;
    let outcome = machine.run_to_end();
    let instructions = machine.instruction_count();
    unload_plugins(&mut plugins, machine.as_mut())?;
    if args.count {
        eprintln!("panda exec: {instructions} instructions retired");
    }
    let Some(outcome) = outcome else {
        eprintln!("panda exec: a callback stopped the program after {instructions} instructions");
        return Ok(ExitCode::from(130));
    };
    if let Some(report) = outcome.report() {
        eprintln!("panda exec: {report}");
    }
    Ok(ExitCode::from(outcome.status() as u8))
}
