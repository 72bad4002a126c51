//! `asid_instr_count`: instructions retired per address space (PANDA's `asid_instr_count`),
//! split into user and kernel mode.
//!
//! Each block's retired instructions (the instruction count after it minus before it, so a
//! block left early by a trap counts only what retired) go to the ASID and mode it started
//! in. An address-space switch ends a block, so no block spans two ASIDs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::Callback;

use crate::output::write_atomic;
use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "asid_instr_count",
    description: "instructions retired per address space (ASID), user and kernel",
    arguments: &[ArgInfo {
        name: "filename",
        help: "also write the counts as CSV (asid,user,kernel,total) to this file",
    }],
    ppp: &[],
    create,
};

#[derive(Default)]
struct State {
    /// (asid, kernel) and the count when the current block started.
    current: Option<(u64, bool, u64)>,
    /// Instructions of the (asid, kernel) of the latest blocks, not yet in `counts`: most
    /// blocks run in the same address space and mode as the one before, so the map is
    /// touched only when that changes.
    run: Option<(u64, bool, u64)>,
    /// Per ASID: (user, kernel) instructions.
    counts: BTreeMap<u64, (u64, u64)>,
}

impl State {
    fn add(&mut self, asid: u64, kernel: bool, retired: u64) {
        match &mut self.run {
            Some((run_asid, run_kernel, count)) if *run_asid == asid && *run_kernel == kernel => {
                *count += retired;
            }
            _ => {
                self.flush();
                self.run = Some((asid, kernel, retired));
            }
        }
    }

    fn flush(&mut self) {
        if let Some((asid, kernel, count)) = self.run.take() {
            let entry = self.counts.entry(asid).or_default();
            if kernel {
                entry.1 += count;
            } else {
                entry.0 += count;
            }
        }
    }
}

struct AsidInstrCount {
    state: Arc<Mutex<State>>,
    filename: Option<PathBuf>,
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let state = Arc::new(Mutex::new(State::default()));
    let before = Arc::clone(&state);
    context.register(
        "before",
        Callback::BeforeBlockExec(Box::new(move |cpu, _| {
            lock(&before).current =
                Some((cpu.asid(), cpu.in_kernel_mode(), cpu.instruction_count()));
        })),
    )?;
    let after = Arc::clone(&state);
    context.register(
        "after",
        Callback::AfterBlockExec(Box::new(move |cpu, _, _| {
            let mut state = lock(&after);
            if let Some((asid, kernel, start)) = state.current.take() {
                let retired = cpu.instruction_count().saturating_sub(start);
                state.add(asid, kernel, retired);
            }
        })),
    )?;
    Ok(Box::new(AsidInstrCount {
        state,
        filename: args.string("filename").map(PathBuf::from),
    }))
}

impl Plugin for AsidInstrCount {
    fn unload(&mut self) -> Result<String, PluginError> {
        let mut state = lock(&self.state);
        state.flush();
        let mut rows: Vec<(u64, u64, u64)> = state
            .counts
            .iter()
            .map(|(&asid, &(user, kernel))| (asid, user, kernel))
            .collect();
        rows.sort_by_key(|&(asid, user, kernel)| (std::cmp::Reverse(user + kernel), asid));
        let total: u64 = rows.iter().map(|&(_, user, kernel)| user + kernel).sum();
        let mut report = format!(
            "asid_instr_count: {total} instructions in {} address spaces\n{:>20} {:>14} {:>14} {:>14}\n",
            rows.len(),
            "asid",
            "user",
            "kernel",
            "total"
        );
        for &(asid, user, kernel) in &rows {
            report += &format!(
                "{:>20} {user:>14} {kernel:>14} {:>14}\n",
                format!("{asid:#x}"),
                user + kernel
            );
        }
        if let Some(path) = &self.filename {
            let mut csv = String::from("asid,user,kernel,total\n");
            for &(asid, user, kernel) in &rows {
                csv += &format!("{asid:#x},{user},{kernel},{}\n", user + kernel);
            }
            write_atomic(INFO.name, path, csv.as_bytes())?;
            report += &format!("written to {}\n", path.display());
        }
        Ok(report.trim_end().to_string())
    }
}
