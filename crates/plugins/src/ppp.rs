//! PPP ("plugin-to-plugin") callbacks: named callback lists a plugin runs and other code
//! registers on (PANDA's `PPP_RUN_CB` / `PPP_REG_CB`, PyPANDA's `@panda.ppp`).
//!
//! A PPP callback is declared by its plugin with the Rust type of the event it passes:
//! statically ([`PppInfo`], in the plugin's [`crate::PluginInfo`]) or, when the callbacks
//! depend on the guest (syscalls2's `on_sys_<name>_enter` for every system call of the
//! guest's kernel), when it loads ([`PppPoint`], [`crate::LoadContext::declare_ppp`]).
//! Rust code registers typed closures ([`crate::Plugins::register_ppp`]); front ends
//! that cannot name Rust types (Python) register closures over the event's plain values
//! ([`PppEvent::values`]).

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};

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

/// A PPP callback a plugin declares when it loads (its name known only then).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PppPoint {
    /// Its name (`on_sys_openat_enter`).
    pub name: String,
    /// Its arguments as front ends see them (`(cpu, pc, dfd, filename, flags, mode)`).
    pub signature: &'static str,
    /// The Rust type of its event.
    pub event_type: TypeId,
    /// The Rust type's name, for error messages.
    pub event_type_name: &'static str,
}

impl PppPoint {
    /// A point called `name` passing events of type `E`, with the front ends' signature.
    pub fn new<E: PppEvent>(name: impl Into<String>, signature: &str) -> PppPoint {
        PppPoint {
            name: name.into(),
            signature: intern(signature),
            event_type: TypeId::of::<E>(),
            event_type_name: std::any::type_name::<E>(),
        }
    }
}

impl From<&PppInfo> for PppPoint {
    fn from(info: &PppInfo) -> PppPoint {
        PppPoint {
            name: info.name.to_string(),
            signature: info.signature,
            event_type: (info.event_type)(),
            event_type_name: info.event_type_name,
        }
    }
}

/// One copy of each signature text, kept for the life of the process: declared signatures
/// are handed out as `&'static str`, and a kernel's few hundred distinct prototypes are
/// stored once however often plugins load.
pub(crate) fn intern(text: &str) -> &'static str {
    static TEXTS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut texts = crate::lock(TEXTS.get_or_init(Mutex::default));
    if let Some(&known) = texts.get(text) {
        return known;
    }
    let leaked: &'static str = Box::leak(text.to_string().into_boxed_str());
    texts.insert(leaked);
    leaked
}

/// One plain value of a PPP event, for front ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PppValue {
    /// An unsigned integer (addresses, counts).
    U64(u64),
    /// A signed integer (a system call's `int` argument, such as `AT_FDCWD`, -100).
    I64(i64),
    /// A flag.
    Bool(bool),
    /// Bytes (matched strings, buffers, names).
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

/// The callbacks of one point.
#[derive(Default)]
struct Point {
    /// In registration order (while the list runs: those added meanwhile).
    list: Vec<Registered>,
    /// While the list runs (taken out of `list`): the names removed meanwhile.
    running: Option<HashSet<String>>,
}

#[derive(Default)]
struct Lists {
    /// Points by plugin, then by PPP name (looked up by `&str`, without allocating).
    points: HashMap<String, HashMap<String, Point>>,
    /// Which (plugin, point) each registered name is on.
    names: HashMap<String, (String, String)>,
    /// The points plugins declared when they loaded, by plugin.
    declared: HashMap<String, Vec<PppPoint>>,
}

impl Lists {
    fn point(&mut self, plugin: &str, point: &str) -> Option<&mut Point> {
        self.points.get_mut(plugin)?.get_mut(point)
    }
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
        lists
            .names
            .insert(name.to_string(), (plugin.to_string(), point.to_string()));
        lists
            .points
            .entry(plugin.to_string())
            .or_default()
            .entry(point.to_string())
            .or_default()
            .list
            .push(Registered {
                name: name.to_string(),
                callback,
            });
        Ok(())
    }

    /// Registers a typed closure as `name` on `plugin`'s `point`, without checking that the
    /// point exists (for plugins that listen to another plugin's declared points).
    pub(crate) fn add_typed<E: PppEvent>(
        &self,
        plugin: &str,
        point: &str,
        name: &str,
        callback: impl FnMut(&mut dyn GuestCpu, &E) + Send + 'static,
    ) -> Result<(), DuplicatePppName> {
        self.add(plugin, point, name, typed(callback))
    }

    /// Removes the PPP callback registered as `name`; whether there was one.
    pub fn remove(&self, name: &str) -> bool {
        let mut lists = self.lock();
        let Some((plugin, point)) = lists.names.remove(name) else {
            return false;
        };
        if let Some(point) = lists.point(&plugin, &point) {
            if let Some(removed) = &mut point.running {
                removed.insert(name.to_string());
            }
            point.list.retain(|registered| registered.name != name);
        }
        true
    }

    /// Whether anything is registered on one of `plugin`'s points whose name `wanted`
    /// accepts (a scan of the registrations, which are few).
    pub fn has_any(&self, plugin: &str, wanted: impl Fn(&str) -> bool) -> bool {
        self.lock()
            .names
            .values()
            .any(|(owner, point)| owner == plugin && wanted(point))
    }

    /// Whether anything is registered on `plugin`'s `point` (to skip building events).
    pub fn has(&self, plugin: &str, point: &str) -> bool {
        let mut lists = self.lock();
        lists
            .point(plugin, point)
            .is_some_and(|point| point.running.is_some() || !point.list.is_empty())
    }

    /// Records the points `plugin` declared when it loaded (replacing earlier ones).
    pub(crate) fn declare(&self, plugin: &str, points: Vec<PppPoint>) {
        self.lock().declared.insert(plugin.to_string(), points);
    }

    /// The point `name` that `plugin` declared when it loaded.
    pub(crate) fn declared(&self, plugin: &str, name: &str) -> Option<PppPoint> {
        self.lock()
            .declared
            .get(plugin)?
            .iter()
            .find(|point| point.name == name)
            .cloned()
    }

    /// How many points `plugin` declared when it loaded.
    pub(crate) fn declared_count(&self, plugin: &str) -> usize {
        self.lock().declared.get(plugin).map_or(0, Vec::len)
    }

    /// Runs the callbacks registered on `plugin`'s `point` with `event`, in registration
    /// order. They may register or remove PPP callbacks meanwhile (including their own).
    pub fn run<E: PppEvent>(&self, plugin: &str, point: &str, cpu: &mut dyn GuestCpu, event: &E) {
        let mut list = {
            let mut lists = self.lock();
            let Some(entry) = lists.point(plugin, point) else {
                return;
            };
            if entry.list.is_empty() || entry.running.is_some() {
                // Nothing registered, or a callback of this point runs it again (recursion
                // is not allowed: the outer run holds the list).
                return;
            }
            entry.running = Some(HashSet::new());
            std::mem::take(&mut entry.list)
        };
        let values = || event.values();
        for registered in &mut list {
            let removed = {
                let mut lists = self.lock();
                lists
                    .point(plugin, point)
                    .and_then(|entry| entry.running.as_ref())
                    .is_some_and(|removed| removed.contains(&registered.name))
            };
            if !removed {
                (registered.callback)(cpu, event, &values);
            }
        }
        let mut lists = self.lock();
        if let Some(entry) = lists.point(plugin, point) {
            let removed = entry.running.take().unwrap_or_default();
            list.retain(|registered| !removed.contains(&registered.name));
            list.append(&mut entry.list);
            entry.list = list;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    struct Number(u64);

    impl PppEvent for Number {
        fn values(&self) -> Vec<PppValue> {
            vec![PppValue::U64(self.0)]
        }
    }

    #[test]
    fn interned_signatures_are_shared_and_declared_points_are_found() {
        let a = intern("(cpu, pc, fd)");
        let b = intern(&String::from("(cpu, pc, fd)"));
        assert!(std::ptr::eq(a, b));
        let ppp = Ppp::default();
        ppp.declare("p", vec![PppPoint::new::<Number>("on_x", "(cpu, number)")]);
        assert_eq!(
            ppp.declared("p", "on_x").unwrap().event_type,
            TypeId::of::<Number>()
        );
        assert!(ppp.declared("p", "on_y").is_none());
        assert_eq!(ppp.declared_count("p"), 1);
    }
}
