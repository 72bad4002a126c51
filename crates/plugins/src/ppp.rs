//! PPP ("plugin-to-plugin") callbacks: named callback lists a plugin runs and other code
//! registers on (PANDA's `PPP_RUN_CB` / `PPP_REG_CB`, PyPANDA's `@panda.ppp`).
//!
//! A PPP callback is declared by its plugin ([`PppInfo`]) with the Rust type of the event it
//! passes. Rust code registers typed closures ([`crate::Plugins::register_ppp`]); front ends
//! that cannot name Rust types (Python) register closures over the event's plain values
//! ([`PppEvent::values`]).

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use pandare_core::instrument::GuestCpu;

/// A PPP callback a plugin declares.
#[derive(Clone, Copy, Debug)]
pub struct PppInfo {
    /// Its name (`on_ssm`).
    pub name: &'static str,
    /// Its arguments as front ends see them, PANDA's order (`cpu, pc, addr, ...`).
    pub signature: &'static str,
    /// The Rust type of its event.
    pub event_type: fn() -> TypeId,
    /// The Rust type's name, for error messages.
    pub event_type_name: &'static str,
}

/// One plain value of a PPP event, for front ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PppValue {
    /// An integer (addresses, counts).
    U64(u64),
    /// A flag.
    Bool(bool),
    /// Bytes (matched strings, buffers).
    Bytes(Vec<u8>),
}

/// The event a PPP callback passes.
pub trait PppEvent: Any {
    /// The event's values after the CPU, in the declared signature's order.
    fn values(&self) -> Vec<PppValue>;
}

type DynFn = Box<dyn FnMut(&mut dyn GuestCpu, &dyn Any, &dyn Fn() -> Vec<PppValue>) + Send>;

struct Registered {
    name: String,
    callback: DynFn,
}

#[derive(Default)]
struct Lists {
    /// Callbacks by (plugin, PPP name), in registration order.
    by_point: HashMap<(String, String), Vec<Registered>>,
    /// Which point each registered name is on.
    names: HashMap<String, (String, String)>,
    /// Points whose list is being run (taken out of `by_point`), with names removed meanwhile.
    running: HashMap<(String, String), HashSet<String>>,
}

/// The PPP callback lists of one plugin manager: a cheap, cloneable handle that plugins keep
/// in their callbacks to run their PPP points.
#[derive(Clone, Default)]
pub struct Ppp {
    lists: Arc<Mutex<Lists>>,
}

impl std::fmt::Debug for Ppp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ppp").finish_non_exhaustive()
    }
}

/// Why a PPP registration failed (wrapped by [`crate::PluginError`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DuplicatePppName(pub String);

impl Ppp {
    fn lock(&self) -> std::sync::MutexGuard<'_, Lists> {
        crate::lock(&self.lists)
    }

    pub(crate) fn add(
        &self,
        plugin: &str,
        point: &str,
        name: &str,
        callback: DynFn,
    ) -> Result<(), DuplicatePppName> {
        let mut lists = self.lock();
        if lists.names.contains_key(name) {
            return Err(DuplicatePppName(name.to_string()));
        }
        let key = (plugin.to_string(), point.to_string());
        lists.names.insert(name.to_string(), key.clone());
        lists.by_point.entry(key).or_default().push(Registered {
            name: name.to_string(),
            callback,
        });
        Ok(())
    }

    /// Removes the PPP callback registered as `name`; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut lists = self.lock();
        let Some(key) = lists.names.remove(name) else {
            return false;
        };
        if let Some(removed) = lists.running.get_mut(&key) {
            removed.insert(name.to_string());
        }
        if let Some(list) = lists.by_point.get_mut(&key) {
            list.retain(|registered| registered.name != name);
        }
        true
    }

    /// Whether anything is registered on `plugin`'s `point` (to skip building events).
    pub fn has(&self, plugin: &str, point: &str) -> bool {
        let lists = self.lock();
        lists
            .running
            .contains_key(&(plugin.to_string(), point.to_string()))
            || lists
                .by_point
                .get(&(plugin.to_string(), point.to_string()))
                .is_some_and(|list| !list.is_empty())
    }

    /// Runs the callbacks registered on `plugin`'s `point` with `event`, in registration
    /// order. They may register or remove PPP callbacks meanwhile (including their own).
    pub fn run<E: PppEvent>(&self, plugin: &str, point: &str, cpu: &mut dyn GuestCpu, event: &E) {
        let key = (plugin.to_string(), point.to_string());
        let mut list = {
            let mut lists = self.lock();
            let Some(list) = lists.by_point.get_mut(&key) else {
                return;
            };
            if list.is_empty() {
                return;
            }
            let list = std::mem::take(list);
            lists.running.insert(key.clone(), HashSet::new());
            list
        };
        let values = || event.values();
        for registered in &mut list {
            let removed = {
                let lists = self.lock();
                lists
                    .running
                    .get(&key)
                    .is_some_and(|removed| removed.contains(&registered.name))
            };
            if !removed {
                (registered.callback)(cpu, event, &values);
            }
        }
        let mut lists = self.lock();
        let removed = lists.running.remove(&key).unwrap_or_default();
        list.retain(|registered| !removed.contains(&registered.name));
        let added = lists.by_point.remove(&key).unwrap_or_default();
        list.extend(added);
        lists.by_point.insert(key, list);
    }
}

/// Wraps a typed closure into the stored form.
pub(crate) fn typed<E: PppEvent>(
    mut callback: impl FnMut(&mut dyn GuestCpu, &E) + Send + 'static,
) -> DynFn {
    Box::new(move |cpu, event, _| {
        if let Some(event) = event.downcast_ref::<E>() {
            callback(cpu, event);
        }
    })
}

/// Wraps a closure over plain values into the stored form.
pub(crate) fn plain(
    mut callback: impl FnMut(&mut dyn GuestCpu, &[PppValue]) + Send + 'static,
) -> DynFn {
    Box::new(move |cpu, _, values| callback(cpu, &values()))
}
