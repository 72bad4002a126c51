//! Builds (or finds in the cache) a generic image and prints where it is.
//!
//! `cargo run -p pandare-images --example build -- riscv64 [--rebuild]`

use std::process::ExitCode;
use std::time::Instant;

fn main() -> ExitCode {
    let mut name = None;
    let mut rebuild = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--rebuild" => rebuild = true,
            "-h" | "--help" => {
                println!(
                    "usage: build [--rebuild] NAME   (NAME: {})",
                    pandare_images::AVAILABLE.join(", ")
                );
                return ExitCode::SUCCESS;
            }
            _ if name.is_none() => name = Some(arg),
            _ => {
                eprintln!("error: unexpected argument {arg:?}; usage: build [--rebuild] NAME");
                return ExitCode::from(2);
            }
        }
    }
    let name = name.unwrap_or_else(|| "riscv64".to_string());
    let start = Instant::now();
    let result = pandare_images::build(&name, rebuild, &mut |message| {
        eprintln!("[{:6.1} s] {message}", start.elapsed().as_secs_f64());
    });
    match result {
        Ok(image) => {
            println!("image      {}", image.name);
            println!("arch       {}", image.arch);
            println!("kernel     {}", image.kernel.display());
            println!("initrd     {}", image.initrd.display());
            println!("append     {}", image.append);
            println!("memory     {} MiB", image.memory_mib);
            println!("prompt     {}", image.prompt);
            println!("directory  {}", image.directory.display());
            println!("took       {:.1} s", start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
