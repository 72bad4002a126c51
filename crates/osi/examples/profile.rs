//! Derives a kernel profile and prints what it found, or times the derivation.
//!
//! ```text
//! cargo run --release -p pandare-osi --example profile -- summary KERNEL
//! cargo run --release -p pandare-osi --example profile -- bench KERNEL [RUNS]
//! cargo run --release -p pandare-osi --example profile -- syscalls KERNEL
//! cargo run --release -p pandare-osi --example profile -- offset KERNEL STRUCT FIELD
//! ```

use std::time::Instant;

use pandare_osi::Profile;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: profile summary|bench|syscalls|offset KERNEL [RUNS | STRUCT FIELD]";
    let (command, path) = match (args.first(), args.get(1)) {
        (Some(c), Some(p)) => (c.as_str(), p.as_str()),
        _ => anyhow::bail!(usage),
    };
    let image = std::fs::read(path)?;
    match command {
        "summary" => {
            let start = Instant::now();
            let profile = Profile::derive(&image)?;
            let elapsed = start.elapsed();
            println!("derived in {:.1} ms", elapsed.as_secs_f64() * 1e3);
            println!("architecture: {:?}", profile.architecture());
            println!("types: {}", profile.type_count());
            println!("symbols: {}", profile.symbols().len());
            println!("per-CPU variables: {}", profile.per_cpu_variables().len());
            let with = profile
                .syscalls()
                .iter()
                .filter(|s| profile.syscall_has_prototype(s.number))
                .count();
            println!(
                "system calls: {} ({} with prototypes)",
                profile.syscalls().len(),
                with
            );
            println!("serialized: {} bytes", profile.to_bytes().len());
        }
        "bench" => {
            let runs: usize = args.get(2).map_or(Ok(5), |r| r.parse())?;
            let mut times = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                let profile = Profile::derive(&image)?;
                times.push(start.elapsed().as_secs_f64() * 1e3);
                std::hint::black_box(profile);
            }
            times.sort_by(f64::total_cmp);
            println!(
                "derive {path}: {} runs, min {:.1} ms, median {:.1} ms, max {:.1} ms",
                times.len(),
                times[0],
                times[times.len() / 2],
                times[times.len() - 1]
            );
            let profile = Profile::derive(&image)?;
            let bytes = profile.to_bytes();
            let mut loads = Vec::with_capacity(runs);
            for _ in 0..runs.max(1) {
                let start = Instant::now();
                std::hint::black_box(Profile::from_bytes(&bytes)?);
                loads.push(start.elapsed().as_secs_f64() * 1e3);
            }
            loads.sort_by(f64::total_cmp);
            println!(
                "from_bytes ({} bytes): min {:.1} ms, median {:.1} ms, max {:.1} ms",
                bytes.len(),
                loads[0],
                loads[loads.len() / 2],
                loads[loads.len() - 1]
            );
        }
        "syscalls" => {
            let profile = Profile::derive(&image)?;
            for s in profile.syscalls() {
                let args: Vec<String> = s
                    .arguments
                    .iter()
                    .map(|a| format!("{} {} [{:?}]", a.c_type, a.name, a.kind))
                    .collect();
                let mark = if profile.syscall_has_prototype(s.number) {
                    ""
                } else {
                    "  (no prototype)"
                };
                println!("{:4} {}({}){mark}", s.number, s.name, args.join(", "));
            }
        }
        "offset" => {
            let profile = Profile::derive(&image)?;
            let (structure, field) = match (args.get(2), args.get(3)) {
                (Some(s), Some(f)) => (s, f),
                _ => anyhow::bail!(usage),
            };
            println!("{}", profile.offset(structure, field)?);
        }
        _ => anyhow::bail!(usage),
    }
    Ok(())
}
