//! `pc_search`: the instruction counts at which given program counters execute (PANDA's
//! `pc_search`), to find the window of a replay to cut or analyse.
//!
//! The pcs are selected at translation (`insn_translate`), so `insn_exec` fires for exactly
//! those instructions, wherever they sit in a block. Each execution is recorded with the
//! instruction count before it (what the guest had retired when it was reached).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::Callback;

use crate::output::{read_text, write_atomic};
use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "pc_search",
    description: "instruction counts at which given pcs execute (also mid-block)",
    arguments: &[
        ArgInfo {
            name: "pc",
            help: "the pc(s) to search for, `:`-separated (decimal or 0x hex)",
        },
        ArgInfo {
            name: "pc_file",
            help: "a file of pcs to search for, one per line",
        },
        ArgInfo {
            name: "out_file",
            help: "where to write the matches (default pc_matches.txt)",
        },
        ArgInfo {
            name: "first_last_only",
            help: "true: keep only the first and last execution of each pc (default false)",
        },
    ],
    ppp: &[],
    create,
};

/// One execution of a searched pc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hit {
    pc: u64,
    instruction_count: u64,
    asid: u64,
    in_kernel: bool,
}

#[derive(Default)]
struct State {
    hits: Vec<Hit>,
    /// Executions per pc.
    counts: BTreeMap<u64, u64>,
}

struct PcSearch {
    pcs: Vec<u64>,
    out_file: PathBuf,
    first_last_only: bool,
    state: Arc<Mutex<State>>,
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let mut pcs = args.u64_list("pc")?;
    if let Some(file) = args.string("pc_file") {
        let text = read_text(INFO.name, file.as_ref())?;
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let pc = crate::args::parse_u64(line).map_err(|why| {
                args.bad("pc_file", format!("{file}, line {}: {why}", number + 1))
            })?;
            pcs.push(pc);
        }
    }
    if pcs.is_empty() {
        return Err(args.bad(
            "pc",
            "no pc to search for: give pc=ADDR[:ADDR...] or pc_file=FILE",
        ));
    }
    pcs.sort_unstable();
    pcs.dedup();
    let selected: Arc<HashSet<u64>> = Arc::new(pcs.iter().copied().collect());
    let state = Arc::new(Mutex::new(State::default()));
    context.register(
        "select",
        Callback::InsnTranslate(Box::new(move |_, pc| selected.contains(&pc))),
    )?;
    let exec = Arc::clone(&state);
    context.register(
        "exec",
        Callback::InsnExec(Box::new(move |cpu, pc| {
            let hit = Hit {
                pc,
                instruction_count: cpu.instruction_count(),
                asid: cpu.asid(),
                in_kernel: cpu.in_kernel_mode(),
            };
            let mut state = lock(&exec);
            *state.counts.entry(pc).or_default() += 1;
            state.hits.push(hit);
        })),
    )?;
    Ok(Box::new(PcSearch {
        pcs,
        out_file: PathBuf::from(args.string_or("out_file", "pc_matches.txt")),
        first_last_only: args.bool_or("first_last_only", false)?,
        state,
    }))
}

impl Plugin for PcSearch {
    fn unload(&mut self) -> Result<String, PluginError> {
        let state = lock(&self.state);
        let mut hits: Vec<Hit> = state.hits.clone();
        if self.first_last_only {
            let mut keep = Vec::new();
            for &pc in &self.pcs {
                let of_pc: Vec<&Hit> = hits.iter().filter(|hit| hit.pc == pc).collect();
                if let (Some(first), Some(last)) = (of_pc.first(), of_pc.last()) {
                    keep.push(**first);
                    if last.instruction_count != first.instruction_count {
                        keep.push(**last);
                    }
                }
            }
            keep.sort_by_key(|hit| hit.instruction_count);
            hits = keep;
        }
        let mut text = String::from("pc,instr_count,asid,in_kernel\n");
        for hit in &hits {
            text += &format!(
                "{:#x},{},{:#x},{}\n",
                hit.pc,
                hit.instruction_count,
                hit.asid,
                u8::from(hit.in_kernel)
            );
        }
        write_atomic(INFO.name, &self.out_file, text.as_bytes())?;
        let per_pc: Vec<String> = self
            .pcs
            .iter()
            .map(|pc| format!("{pc:#x}: {}", state.counts.get(pc).copied().unwrap_or(0)))
            .collect();
        Ok(format!(
            "pc_search: executions per pc: {}; {} lines written to {}",
            per_pc.join(", "),
            hits.len(),
            self.out_file.display()
        ))
    }
}
