//! `hypercaller`: dispatches guest hypercalls to handlers by magic number (PANDA's
//! `hypercaller`, behind PyPANDA's `@panda.hypercall(magic)`).
//!
//! The magic is the first argument of the guest ABI's hypercall convention
//! ([`Convention::Hypercall`]; the instruction and registers per architecture are in
//! `docs/callbacks.md`); only its low 32 bits are compared (PANDA's magic is a `uint32_t`),
//! so a magic loaded with `li` and sign-extended still matches. A handler reads and writes the other
//! registers for its arguments and results. Handlers are registered through the
//! [`Hypercalls`] handle ([`crate::Plugins::api`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use pandare_core::abi::Convention;
use pandare_core::instrument::{Callback, GuestCpu};

use crate::{Args, LoadContext, Plugin, PluginError, PluginInfo};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "hypercaller",
    description:
        "dispatches guest hypercalls to handlers by the magic number in the first argument register",
    arguments: &[],
    ppp: &[],
    create,
};

/// A hypercall handler: `fn(cpu)`.
pub type HypercallFn = Box<dyn FnMut(&mut dyn GuestCpu) + Send>;

#[derive(Default)]
struct Table {
    handlers: HashMap<u32, HypercallFn>,
    /// The magic whose handler is running (taken out of `handlers`), and whether it was
    /// unregistered meanwhile.
    running: Option<(u32, bool)>,
    handled: BTreeMap<u32, u64>,
    unhandled: BTreeMap<u32, u64>,
}

/// The hypercaller's handler table: register and unregister handlers by magic (PANDA's
/// `register_hypercall` / `unregister_hypercall`). A cheap, cloneable handle.
#[derive(Clone, Default)]
pub struct Hypercalls {
    table: Arc<Mutex<Table>>,
}

impl std::fmt::Debug for Hypercalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hypercalls").finish_non_exhaustive()
    }
}

impl Hypercalls {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        crate::lock(&self.table)
    }

    /// Calls `handler` for every hypercall with this magic. A magic has one handler.
    pub fn register(&self, magic: u32, handler: HypercallFn) -> Result<(), PluginError> {
        let mut table = self.lock();
        let running = table
            .running
            .is_some_and(|(m, removed)| m == magic && !removed);
        if running || table.handlers.contains_key(&magic) {
            return Err(PluginError::BadArgument {
                plugin: INFO.name,
                argument: "magic".to_string(),
                why: format!("magic {magic:#x} has a handler already; unregister it first"),
            });
        }
        table.handlers.insert(magic, handler);
        Ok(())
    }

    /// Removes the handler of `magic`; whether there was one.
    pub fn unregister(&self, magic: u32) -> bool {
        let mut table = self.lock();
        if let Some((running, removed)) = table.running.as_mut() {
            if *running == magic && !*removed {
                *removed = true;
                return true;
            }
        }
        table.handlers.remove(&magic).is_some()
    }

    /// Handles one hypercall; whether a handler took it.
    fn dispatch(&self, cpu: &mut dyn GuestCpu) -> bool {
        let Ok(magic) = cpu.abi().argument(&*cpu, Convention::Hypercall, 0) else {
            return false;
        };
        let magic = magic as u32;
        let mut handler = {
            let mut table = self.lock();
            match table.handlers.remove(&magic) {
                Some(handler) => {
                    *table.handled.entry(magic).or_default() += 1;
                    table.running = Some((magic, false));
                    handler
                }
                None => {
                    *table.unhandled.entry(magic).or_default() += 1;
                    return false;
                }
            }
        };
        handler(cpu);
        let mut table = self.lock();
        if let Some((_, false)) = table.running.take() {
            table.handlers.insert(magic, handler);
        }
        true
    }
}

struct Hypercaller {
    hypercalls: Hypercalls,
}

fn create(_: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let hypercalls = Hypercalls::default();
    let dispatch = hypercalls.clone();
    context.register(
        "dispatch",
        Callback::GuestHypercall(Box::new(move |cpu| dispatch.dispatch(cpu))),
    )?;
    Ok(Box::new(Hypercaller { hypercalls }))
}

impl Plugin for Hypercaller {
    fn unload(&mut self) -> Result<String, PluginError> {
        let table = self.hypercalls.lock();
        let list = |counts: &BTreeMap<u32, u64>| {
            if counts.is_empty() {
                return "none".to_string();
            }
            counts
                .iter()
                .map(|(magic, count)| format!("{magic:#x} x{count}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Ok(format!(
            "hypercaller: handled {}; no handler for {}",
            list(&table.handled),
            list(&table.unhandled)
        ))
    }

    fn api(&self) -> Option<Box<dyn std::any::Any>> {
        Some(Box::new(self.hypercalls.clone()))
    }
}
