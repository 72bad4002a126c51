//! `syscalls2`: a PPP callback at the entry and at the return of every system call of the
//! guest's kernel (PANDA's `syscalls2`, behind PyPANDA's
//! `@panda.ppp("syscalls2", "on_sys_write_enter")`).
//!
//! **Entry** is the `before_handle_exception` callback with the index the guest ABI names
//! for a system call made from user mode ([`pandare_core::LinuxAbi::syscall_exception`];
//! riscv64: `ecall` from U, pc at the `ecall`): no per-instruction instrumentation. The
//! callbacks run before the kernel handles the call, with its number and arguments in the
//! registers of the ABI's system call convention.
//!
//! **Names and prototypes** come from the kernel's profile: for each system call `NAME` of
//! the guest's kernel, `on_sys_NAME_enter(cpu, pc, args...)` and
//! `on_sys_NAME_return(cpu, pc, args...)`, typed per argument (signed integers as signed
//! values: `openat`'s `dfd` is -100 for `AT_FDCWD`). These points are declared when the
//! plugin loads (or when a front end registers on one before that, from the same profile).
//! `on_all_sys_enter/return(cpu, pc, callno)`, `on_all_sys_enter2/return2(cpu, pc,
//! callno, name, args...)` and `on_unknown_sys_enter/return(cpu, pc, callno)` (numbers the
//! kernel's table does not name) are declared statically. `pc` is the address of the
//! system call instruction at the return too; a return's arguments are its entry's.
//!
//! **Returns** are matched per thread: an entry is pending under (current task, return
//! address), and its return fires when that task first executes the return address in
//! user mode (an address hook per distinct return address, added once). So a blocking call
//! returns whenever its thread runs again, whatever ran meanwhile; a `clone`/`fork` child,
//! which returns to the same address in another task, fires nothing (PANDA's semantics:
//! the return is the caller's). Entries that never return:
//! - `exit` and `exit_group` are not recorded, and remove the task's pending entries
//!   (`exit_group` those of every thread of the process too);
//! - `rt_sigreturn` is not recorded (it resumes the interrupted context; a system call
//!   interrupted by the signal returns then, at its own address);
//! - a successful `execve` replaces the address space: the task's entries made in another
//!   address space are dropped at its next entry, or when it reaches their address;
//! - a child killed while blocked never returns: when `wait4` reaps it, its entries are
//!   dropped;
//! - a restarted system call executes its instruction again: the new entry replaces the
//!   pending one (the enter callbacks fire again, as in PANDA);
//! - at most `pending_limit` entries are kept:
//!   the oldest is dropped beyond that (a process killed whose parent never reaps it).
//!   Loading a snapshot drops them all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use pandare_core::abi::Convention;
use pandare_core::instrument::{AddressHook, Callback, GuestCpu, HookPoint};
use pandare_core::LinuxAbi;
use pandare_osi::{ArgumentKind, Kernel, Profile, SyscallInfo};

use crate::{lock, ArgInfo, Args, LoadContext, Plugin, PluginError, PluginInfo, Ppp};
use crate::{PppEvent, PppInfo, PppPoint, PppValue, RuntimeRegistry};

/// The plugin's name, which its PPP callbacks are registered under.
pub const NAME: &str = "syscalls2";

/// The default bound of the pending table.
pub const DEFAULT_PENDING_LIMIT: usize = 4096;

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: NAME,
    description: "PPP callbacks at the entry and return of every system call of the guest's kernel, typed from its profile",
    arguments: &[
        ArgInfo {
            name: "load-info",
            help: "accepted for PANDA's scripts (the names and argument descriptions are always loaded)",
        },
        ArgInfo {
            name: "pending_limit",
            help: "most system calls awaiting their return at once; the oldest is dropped beyond (default 4096)",
        },
    ],
    ppp: &[
        PppInfo {
            name: "on_all_sys_enter",
            signature: "(cpu, pc, callno)",
            event_type: std::any::TypeId::of::<SyscallNumber>,
            event_type_name: "pandare_plugins::syscalls2::SyscallNumber",
        },
        PppInfo {
            name: "on_all_sys_return",
            signature: "(cpu, pc, callno)",
            event_type: std::any::TypeId::of::<SyscallNumber>,
            event_type_name: "pandare_plugins::syscalls2::SyscallNumber",
        },
        PppInfo {
            name: "on_unknown_sys_enter",
            signature: "(cpu, pc, callno)",
            event_type: std::any::TypeId::of::<SyscallNumber>,
            event_type_name: "pandare_plugins::syscalls2::SyscallNumber",
        },
        PppInfo {
            name: "on_unknown_sys_return",
            signature: "(cpu, pc, callno)",
            event_type: std::any::TypeId::of::<SyscallNumber>,
            event_type_name: "pandare_plugins::syscalls2::SyscallNumber",
        },
        PppInfo {
            name: "on_all_sys_enter2",
            signature: "(cpu, pc, callno, name: bytes, args...)",
            event_type: std::any::TypeId::of::<DescribedSyscall>,
            event_type_name: "pandare_plugins::syscalls2::DescribedSyscall",
        },
        PppInfo {
            name: "on_all_sys_return2",
            signature: "(cpu, pc, callno, name: bytes, args...)",
            event_type: std::any::TypeId::of::<DescribedSyscall>,
            event_type_name: "pandare_plugins::syscalls2::DescribedSyscall",
        },
    ],
    create,
};

/// `on_all_sys_enter/return` and `on_unknown_sys_enter/return`: `(cpu, pc, callno)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyscallNumber {
    /// The system call instruction.
    pub pc: u64,
    /// The system call's number.
    pub callno: u64,
}

impl PppEvent for SyscallNumber {
    fn values(&self) -> Vec<PppValue> {
        vec![PppValue::U64(self.pc), PppValue::U64(self.callno)]
    }
}

/// One system call, at its entry or its return: what `on_sys_NAME_enter/return` pass
/// (their plain values are `pc` and the typed arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syscall {
    /// The system call instruction.
    pub pc: u64,
    /// Its number.
    pub number: u64,
    /// Its name and prototype, from the kernel's profile (`None` for an unknown number).
    pub info: Option<Arc<SyscallInfo>>,
    /// The raw argument registers at entry (as many as the prototype has; all six for an
    /// unknown number).
    pub raw: Vec<u64>,
    /// The calling task (`task_struct` address; 0 if it could not be read).
    pub task: u64,
    /// The address space it was made in ([`GuestCpu::asid`]).
    pub asid: u64,
    /// Where it returns to.
    pub return_address: u64,
    /// Sequence number of the entry, the same at its return.
    pub id: u64,
    /// The return value register at the return (`None` at the entry).
    pub retval: Option<u64>,
}

impl Syscall {
    /// The system call's name (`openat`), if the kernel names it.
    pub fn name(&self) -> Option<&str> {
        self.info.as_ref().map(|info| info.name.as_str())
    }

    /// Argument `index`, typed per the prototype (unsigned when it has none).
    pub fn argument(&self, index: usize) -> Option<PppValue> {
        let raw = *self.raw.get(index)?;
        let kind = self
            .info
            .as_ref()
            .and_then(|info| info.arguments.get(index))
            .map_or(ArgumentKind::Unsigned(64), |argument| argument.kind);
        Some(decode(kind, raw))
    }

    /// The typed arguments.
    pub fn arguments(&self) -> Vec<PppValue> {
        (0..self.raw.len())
            .filter_map(|index| self.argument(index))
            .collect()
    }

    /// The return value as a signed number (Linux returns -errno on failure).
    pub fn signed_retval(&self) -> Option<i64> {
        self.retval.map(|value| value as i64)
    }
}

/// Decodes a raw argument register per its kind.
pub fn decode(kind: ArgumentKind, raw: u64) -> PppValue {
    match kind {
        ArgumentKind::Signed(bits) if bits > 0 && bits < 64 => {
            let shift = 64 - bits;
            PppValue::I64(((raw << shift) as i64) >> shift)
        }
        ArgumentKind::Signed(_) => PppValue::I64(raw as i64),
        ArgumentKind::Unsigned(bits) if bits > 0 && bits < 64 => {
            PppValue::U64(raw & ((1u64 << bits) - 1))
        }
        ArgumentKind::Unsigned(_) | ArgumentKind::String | ArgumentKind::Pointer => {
            PppValue::U64(raw)
        }
    }
}

impl PppEvent for Syscall {
    fn values(&self) -> Vec<PppValue> {
        let mut values = vec![PppValue::U64(self.pc)];
        values.extend(self.arguments());
        values
    }
}

/// `on_all_sys_enter2/return2`: a system call with its description (PANDA passes
/// `syscall_info_t*` and `syscall_ctx_t*`); plain values `pc, callno, name, args...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescribedSyscall(pub Syscall);

impl PppEvent for DescribedSyscall {
    fn values(&self) -> Vec<PppValue> {
        let mut values = vec![
            PppValue::U64(self.0.pc),
            PppValue::U64(self.0.number),
            PppValue::Bytes(self.0.name().unwrap_or("").as_bytes().to_vec()),
        ];
        values.extend(self.0.arguments());
        values
    }
}

/// The per-system-call PPP callbacks of a kernel: `on_sys_NAME_enter` and
/// `on_sys_NAME_return` for each system call in its profile.
pub fn ppp_points(profile: &Profile) -> Vec<PppPoint> {
    let mut points = Vec::new();
    for info in profile.syscalls() {
        let mut signature = String::from("(cpu, pc");
        for argument in &info.arguments {
            signature.push_str(", ");
            signature.push_str(&argument.name);
        }
        signature.push(')');
        points.push(PppPoint::new::<Syscall>(
            enter_point(&info.name),
            &signature,
        ));
        points.push(PppPoint::new::<Syscall>(
            return_point(&info.name),
            &signature,
        ));
    }
    points
}

fn enter_point(name: &str) -> String {
    format!("on_sys_{name}_enter")
}

fn return_point(name: &str) -> String {
    format!("on_sys_{name}_return")
}

/// What happens after an entry, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Returns,
    /// `exit`: the task ends.
    Exit,
    /// `exit_group`: every thread of the process ends.
    ExitGroup,
    /// `rt_sigreturn`: resumes the interrupted context.
    Resumes,
    /// `wait4`: returns the pid of a child that ended (and was reaped).
    Reaps,
}

struct Known {
    info: Arc<SyscallInfo>,
    enter: String,
    ret: String,
    flow: Flow,
}

/// The kernel's system calls, by number.
struct Table {
    by_number: HashMap<u64, usize>,
    known: Vec<Known>,
}

impl Table {
    fn new(profile: &Profile) -> Table {
        let mut by_number = HashMap::new();
        let mut known = Vec::new();
        for info in profile.syscalls() {
            let flow = match info.name.as_str() {
                "exit" => Flow::Exit,
                "exit_group" => Flow::ExitGroup,
                "rt_sigreturn" | "sigreturn" => Flow::Resumes,
                "wait4" | "waitpid" => Flow::Reaps,
                _ => Flow::Returns,
            };
            by_number.entry(info.number).or_insert(known.len());
            known.push(Known {
                info: Arc::new(info.clone()),
                enter: enter_point(&info.name),
                ret: return_point(&info.name),
                flow,
            });
        }
        Table { by_number, known }
    }

    fn get(&self, number: u64) -> Option<&Known> {
        self.by_number.get(&number).map(|&index| &self.known[index])
    }
}

/// Counts of what the plugin saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// System call entries.
    pub entries: u64,
    /// Returns fired.
    pub returns: u64,
    /// Entries with a number the kernel does not name.
    pub unknown: u64,
    /// Entries that never return by design (`exit`, `exit_group`, `rt_sigreturn`).
    pub no_return: u64,
    /// Pending entries replaced by a new entry of the same task at the same address
    /// (restarted system calls).
    pub replaced: u64,
    /// Pending entries dropped because their task ended or changed address space.
    pub dropped: u64,
    /// Pending entries dropped because the table was full.
    pub evicted: u64,
    /// Distinct return addresses hooked.
    pub hooks: u64,
}

/// The entries awaiting their return, by task (a task has few: one, plus those a signal
/// handler's calls interrupted), so that an entry's bookkeeping costs the same however
/// many tasks wait.
#[derive(Default)]
struct Pending {
    by_task: HashMap<u64, Vec<Syscall>>,
    count: usize,
}

impl Pending {
    fn len(&self) -> usize {
        self.count
    }

    fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Adds `event`; whether it replaced one of its task at the same return address.
    fn insert(&mut self, event: Syscall) -> bool {
        let list = self.by_task.entry(event.task).or_default();
        if let Some(slot) = list
            .iter_mut()
            .find(|entry| entry.return_address == event.return_address)
        {
            *slot = event;
            return true;
        }
        list.push(event);
        self.count += 1;
        false
    }

    fn remove(&mut self, task: u64, address: u64) -> Option<Syscall> {
        let list = self.by_task.get_mut(&task)?;
        let index = list
            .iter()
            .position(|entry| entry.return_address == address)?;
        let event = list.swap_remove(index);
        if list.is_empty() {
            self.by_task.remove(&task);
        }
        self.count -= 1;
        Some(event)
    }

    /// Drops the entries of `task` (all, or those made in another address space than
    /// `keep_asid`); how many.
    fn drop_task(&mut self, task: u64, keep_asid: Option<u64>) -> usize {
        let Some(list) = self.by_task.get_mut(&task) else {
            return 0;
        };
        let before = list.len();
        list.retain(|entry| keep_asid.is_some_and(|asid| asid == entry.asid));
        let dropped = before - list.len();
        if list.is_empty() {
            self.by_task.remove(&task);
        }
        self.count -= dropped;
        dropped
    }

    fn iter(&self) -> impl Iterator<Item = &Syscall> {
        self.by_task.values().flatten()
    }

    /// The tasks with entries, in a fixed order.
    fn tasks(&self) -> Vec<u64> {
        let mut tasks: Vec<u64> = self.by_task.keys().copied().collect();
        tasks.sort_unstable();
        tasks
    }

    fn clear(&mut self) {
        self.by_task.clear();
        self.count = 0;
    }
}

struct Tracker {
    pending: Pending,
    hooked: HashSet<u64>,
    next_id: u64,
    limit: usize,
    stats: Stats,
    kernel: Option<Kernel>,
}

impl Tracker {
    fn kernel(&mut self, profile: &Arc<Profile>, cpu: &dyn GuestCpu) -> Option<&Kernel> {
        if self.kernel.is_none() {
            self.kernel = Kernel::new(Arc::clone(profile), cpu).ok();
        }
        self.kernel.as_ref()
    }

    /// Drops the pending entries of `task` (all, or those made in another address space).
    fn drop_task(&mut self, task: u64, keep_asid: Option<u64>) {
        self.stats.dropped += self.pending.drop_task(task, keep_asid) as u64;
    }

    /// Drops the pending entries of the threads of process `pid`, which ended (a child
    /// reaped by `wait4`: killed by a signal while blocked, its calls never return). Its
    /// tasks are read now: a freed one no longer reads as `pid` (its entries then wait for
    /// eviction).
    fn drop_process(&mut self, cpu: &mut dyn GuestCpu, profile: &Arc<Profile>, pid: u32) {
        if self.pending.is_empty() {
            return;
        }
        let Some(kernel) = self.kernel(profile, cpu).cloned() else {
            return;
        };
        for task in self.pending.tasks() {
            if kernel
                .task_ids(cpu, task)
                .is_ok_and(|(_, owner)| owner == pid)
            {
                self.drop_task(task, None);
            }
        }
    }

    fn evict_oldest(&mut self) {
        while self.pending.len() > self.limit {
            let Some((task, address)) = self
                .pending
                .iter()
                .min_by_key(|entry| entry.id)
                .map(|entry| (entry.task, entry.return_address))
            else {
                return;
            };
            self.pending.remove(task, address);
            self.stats.evicted += 1;
        }
    }
}

/// The `syscalls2` handle ([`crate::Plugins::api`]): what is pending, and counts.
#[derive(Clone)]
pub struct Syscalls2 {
    tracker: Arc<Mutex<Tracker>>,
}

impl std::fmt::Debug for Syscalls2 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syscalls2").finish_non_exhaustive()
    }
}

impl Syscalls2 {
    /// How many entries await their return.
    pub fn pending_count(&self) -> usize {
        lock(&self.tracker).pending.len()
    }

    /// The entries awaiting their return, oldest first.
    pub fn pending(&self) -> Vec<Syscall> {
        let mut list: Vec<Syscall> = lock(&self.tracker).pending.iter().cloned().collect();
        list.sort_by_key(|entry| entry.id);
        list
    }

    /// What the plugin counted so far.
    pub fn stats(&self) -> Stats {
        lock(&self.tracker).stats
    }
}

/// Distinguishes the hooks of successive loads (a queued deletion of an unloaded
/// instance's hooks may still be pending when the plugin loads again).
static GENERATION: AtomicU64 = AtomicU64::new(0);

struct Shared {
    profile: Arc<Profile>,
    table: Table,
    tracker: Arc<Mutex<Tracker>>,
    ppp: Ppp,
    runtime: RuntimeRegistry,
    generation: u64,
}

impl Shared {
    fn on_entry(self: &Arc<Self>, cpu: &mut dyn GuestCpu, linux: &'static dyn LinuxAbi) {
        let abi = cpu.abi();
        let pc = cpu.pc();
        let Ok(number) = abi.syscall_number(cpu) else {
            return;
        };
        let known = self.table.get(number);
        let count = known.map_or(6, |known| known.info.arguments.len());
        let raw: Vec<u64> = (0..count)
            .map(|index| abi.argument(cpu, Convention::Syscall, index).unwrap_or(0))
            .collect();
        let task = linux.current_task(cpu, self.profile.as_ref()).unwrap_or(0);
        let return_address = linux.syscall_return_address(cpu, pc);
        let id = {
            let mut tracker = lock(&self.tracker);
            tracker.next_id += 1;
            tracker.stats.entries += 1;
            if known.is_none() {
                tracker.stats.unknown += 1;
            }
            tracker.next_id
        };
        let event = Syscall {
            pc,
            number,
            info: known.map(|known| Arc::clone(&known.info)),
            raw,
            task,
            asid: cpu.asid(),
            return_address,
            id,
            retval: None,
        };
        let numbered = SyscallNumber { pc, callno: number };
        self.ppp.run(NAME, "on_all_sys_enter", cpu, &numbered);
        match known {
            Some(known) => self.ppp.run(NAME, &known.enter, cpu, &event),
            None => self.ppp.run(NAME, "on_unknown_sys_enter", cpu, &numbered),
        }
        if self.ppp.has(NAME, "on_all_sys_enter2") {
            self.ppp.run(
                NAME,
                "on_all_sys_enter2",
                cpu,
                &DescribedSyscall(event.clone()),
            );
        }
        let flow = known.map_or(Flow::Returns, |known| known.flow);
        self.track(cpu, event, flow);
    }

    fn track(self: &Arc<Self>, cpu: &mut dyn GuestCpu, event: Syscall, flow: Flow) {
        let mut tracker = lock(&self.tracker);
        let task = event.task;
        match flow {
            Flow::Exit => {
                tracker.stats.no_return += 1;
                tracker.drop_task(task, None);
            }
            Flow::ExitGroup => {
                tracker.stats.no_return += 1;
                tracker.drop_task(task, None);
                // The other threads of the process end too: drop their entries (threads
                // share the address space; compare process ids, as a vfork parent shares
                // it too).
                let asid = event.asid;
                let mut siblings: Vec<u64> = tracker
                    .pending
                    .iter()
                    .filter(|entry| entry.asid == asid)
                    .map(|entry| entry.task)
                    .collect();
                siblings.sort_unstable();
                siblings.dedup();
                if !siblings.is_empty() {
                    let profile = Arc::clone(&self.profile);
                    if let Some(kernel) = tracker.kernel(&profile, cpu).cloned() {
                        if let Ok((_, pid)) = kernel.task_ids(cpu, task) {
                            for owner in siblings {
                                if kernel
                                    .task_ids(cpu, owner)
                                    .is_ok_and(|(_, owner_pid)| owner_pid == pid)
                                {
                                    tracker.drop_task(owner, None);
                                }
                            }
                        }
                    }
                }
            }
            Flow::Resumes => tracker.stats.no_return += 1,
            Flow::Returns | Flow::Reaps => {
                // Entries of this task made in another address space can never return
                // (a successful execve replaced it).
                tracker.drop_task(task, Some(event.asid));
                if !self.returns_wanted() {
                    // Nobody listens to returns: no entry to keep, no return address to
                    // hook (hooks cost every block, entries alone cost nothing between
                    // system calls).
                    return;
                }
                let address = event.return_address;
                if tracker.pending.insert(event) {
                    tracker.stats.replaced += 1;
                }
                tracker.evict_oldest();
                if tracker.hooked.insert(address) {
                    tracker.stats.hooks += 1;
                    drop(tracker);
                    self.hook(address);
                }
            }
        }
    }

    /// Whether a return callback is registered: returns are tracked only then.
    fn returns_wanted(&self) -> bool {
        self.ppp.has_any(NAME, |point| {
            point.ends_with("_return") || point.ends_with("_return2")
        })
    }

    fn hook(self: &Arc<Self>, address: u64) {
        let shared = Arc::downgrade(self);
        self.runtime.add_hook(
            &format!("return:{}:{address:#x}", self.generation),
            AddressHook {
                address,
                asid: None,
                kernel: Some(false),
                point: HookPoint::Start,
            },
            Box::new(move |cpu, call| {
                if let Some(shared) = shared.upgrade() {
                    shared.on_return_address(cpu, call.address);
                }
            }),
        );
    }

    fn on_return_address(&self, cpu: &mut dyn GuestCpu, address: u64) {
        let Some(linux) = cpu.abi().linux() else {
            return;
        };
        let Some(task) = linux.current_task(cpu, self.profile.as_ref()) else {
            return;
        };
        let mut event = {
            let mut tracker = lock(&self.tracker);
            let Some(event) = tracker.pending.remove(task, address) else {
                return;
            };
            if event.asid != cpu.asid() {
                // The task changed address space since (execve): this is another program.
                tracker.stats.dropped += 1;
                return;
            }
            tracker.stats.returns += 1;
            event
        };
        event.retval = cpu
            .abi()
            .return_value(cpu, Convention::Syscall)
            .ok()
            .or(Some(0));
        let reaped = event.signed_retval().unwrap_or(0);
        if reaped > 0
            && reaped <= i64::from(u32::MAX)
            && self
                .table
                .get(event.number)
                .is_some_and(|known| known.flow == Flow::Reaps)
        {
            lock(&self.tracker).drop_process(cpu, &self.profile, reaped as u32);
        }
        let numbered = SyscallNumber {
            pc: event.pc,
            callno: event.number,
        };
        self.ppp.run(NAME, "on_all_sys_return", cpu, &numbered);
        match self.table.get(event.number) {
            Some(known) => self.ppp.run(NAME, &known.ret, cpu, &event),
            None => self.ppp.run(NAME, "on_unknown_sys_return", cpu, &numbered),
        }
        if self.ppp.has(NAME, "on_all_sys_return2") {
            self.ppp
                .run(NAME, "on_all_sys_return2", cpu, &DescribedSyscall(event));
        }
    }
}

struct Syscalls2Plugin {
    tracker: Arc<Mutex<Tracker>>,
    syscalls: usize,
}

impl Plugin for Syscalls2Plugin {
    fn unload(&mut self) -> Result<String, PluginError> {
        let tracker = lock(&self.tracker);
        let stats = tracker.stats;
        Ok(format!(
            "syscalls2: {} system calls known; {} entries ({} unknown, {} without return), {} returns; \
             {} pending at unload, {} replaced by restarts, {} dropped (task ended or exec'd), \
             {} evicted (table full at {}); {} return addresses hooked",
            self.syscalls,
            stats.entries,
            stats.unknown,
            stats.no_return,
            stats.returns,
            tracker.pending.len(),
            stats.replaced,
            stats.dropped,
            stats.evicted,
            tracker.limit,
            stats.hooks,
        ))
    }

    fn api(&self) -> Option<Box<dyn std::any::Any>> {
        Some(Box::new(Syscalls2 {
            tracker: Arc::clone(&self.tracker),
        }))
    }
}

fn create(args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let limit = match args.u64("pending_limit")? {
        Some(0) => return Err(args.bad("pending_limit", "must be at least 1")),
        Some(limit) => usize::try_from(limit).unwrap_or(usize::MAX),
        None => DEFAULT_PENDING_LIMIT,
    };
    args.bool_or("load-info", true)?;
    let profile = context.kernel_profile()?;
    context.declare_ppp(ppp_points(&profile));
    let tracker = Arc::new(Mutex::new(Tracker {
        pending: Pending::default(),
        hooked: HashSet::new(),
        next_id: 0,
        limit,
        stats: Stats::default(),
        kernel: None,
    }));
    let shared = Arc::new(Shared {
        table: Table::new(&profile),
        profile: Arc::clone(&profile),
        tracker: Arc::clone(&tracker),
        ppp: context.ppp(),
        runtime: context.runtime(),
        generation: GENERATION.fetch_add(1, Ordering::Relaxed),
    });
    let syscalls = shared.table.known.len();
    let entry = Arc::clone(&shared);
    let mut linux: Option<(&'static dyn LinuxAbi, i32)> = None;
    context.register(
        "entry",
        Callback::BeforeHandleException(Box::new(move |cpu, index| {
            let (abi, exception) = match linux {
                Some(known) => known,
                None => match cpu.abi().linux() {
                    Some(abi) => *linux.insert((abi, abi.syscall_exception())),
                    None => return index,
                },
            };
            if index == exception && !cpu.in_kernel_mode() {
                entry.on_entry(cpu, abi);
            }
            index
        })),
    )?;
    let cleared = Arc::clone(&tracker);
    context.register(
        "loadvm",
        Callback::AfterLoadvm(Box::new(move |_| {
            // The guest is somewhere else: nothing that was pending will return.
            let mut tracker = lock(&cleared);
            let count = tracker.pending.len() as u64;
            tracker.pending.clear();
            tracker.stats.dropped += count;
        })),
    )?;
    Ok(Box::new(Syscalls2Plugin { tracker, syscalls }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pandare_osi::SyscallArgument;

    fn argument(name: &str, c_type: &str, kind: ArgumentKind) -> SyscallArgument {
        SyscallArgument {
            name: name.to_string(),
            c_type: c_type.to_string(),
            kind,
        }
    }

    fn profile() -> Profile {
        Profile::from_parts(
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            vec![
                SyscallInfo {
                    number: 56,
                    name: "openat".to_string(),
                    arguments: vec![
                        argument("dfd", "int", ArgumentKind::Signed(32)),
                        argument("filename", "const char *", ArgumentKind::String),
                        argument("flags", "int", ArgumentKind::Signed(32)),
                        argument("mode", "umode_t", ArgumentKind::Unsigned(16)),
                    ],
                },
                SyscallInfo {
                    number: 94,
                    name: "exit_group".to_string(),
                    arguments: vec![argument("error_code", "int", ArgumentKind::Signed(32))],
                },
            ],
        )
    }

    #[test]
    fn points_are_named_and_typed_as_panda_names_them() {
        let points = ppp_points(&profile());
        let names: Vec<&str> = points.iter().map(|point| point.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "on_sys_openat_enter",
                "on_sys_openat_return",
                "on_sys_exit_group_enter",
                "on_sys_exit_group_return"
            ]
        );
        assert_eq!(points[0].signature, "(cpu, pc, dfd, filename, flags, mode)");
        assert_eq!(points[0].event_type, std::any::TypeId::of::<Syscall>());
        let table = Table::new(&profile());
        assert_eq!(table.get(94).unwrap().flow, Flow::ExitGroup);
        assert_eq!(table.get(56).unwrap().flow, Flow::Returns);
        assert!(table.get(57).is_none());
    }

    #[test]
    fn mistakes_get_clear_errors() {
        use crate::Plugins;
        use pandare_core::instrument::Instrumentation;

        // No kernel: loading, and registering on a per-syscall point, say why.
        let mut plugins = Plugins::new();
        let mut registry = Instrumentation::new();
        let error = plugins.load(&mut registry, NAME, Vec::new()).unwrap_err();
        assert!(
            matches!(error, PluginError::NoKernelProfile { .. }),
            "{error}"
        );
        let error = plugins
            .register_ppp_values(NAME, "on_sys_write_enter", "w", |_, _| {})
            .unwrap_err();
        assert!(error.to_string().contains("kernel image"), "{error}");
        // The static points need no kernel.
        plugins
            .register_ppp(NAME, "on_all_sys_enter", "all", |_, _: &SyscallNumber| {})
            .unwrap();

        let mut plugins = Plugins::new();
        plugins.set_kernel_profile(Arc::new(profile()));
        // Before loading: the points come from the profile, typed.
        let signature = plugins
            .register_ppp_values(NAME, "on_sys_openat_enter", "open", |_, _| {})
            .unwrap();
        assert_eq!(signature, "(cpu, pc, dfd, filename, flags, mode)");
        let error = plugins
            .register_ppp(
                NAME,
                "on_sys_openat_return",
                "typed",
                |_, _: &SyscallNumber| {},
            )
            .unwrap_err();
        assert!(matches!(error, PluginError::PppType { .. }), "{error}");
        let error = plugins
            .register_ppp_values(NAME, "on_sys_nonesuch_enter", "x", |_, _| {})
            .unwrap_err();
        assert!(
            error
                .to_string()
                .contains("4 declared from the guest's kernel"),
            "{error}"
        );
        let error = plugins
            .load(&mut registry, NAME, [("pending_limit".into(), "0".into())])
            .unwrap_err();
        assert!(matches!(error, PluginError::BadArgument { .. }), "{error}");
        let error = plugins
            .load(
                &mut registry,
                "syscalls_logger",
                [("format".into(), "xml".into())],
            )
            .unwrap_err();
        assert!(error.to_string().contains("table or json"), "{error}");

        // Plugins built on syscalls2 load it, and it stays while they are loaded.
        plugins.load(&mut registry, "hooks2", Vec::new()).unwrap();
        assert_eq!(plugins.loaded(), ["syscalls2", "hooks2"]);
        let error = plugins.unload(&mut registry, NAME).unwrap_err();
        assert!(matches!(error, PluginError::Required { .. }), "{error}");
        let reports = plugins.unload_all(&mut registry).unwrap();
        assert_eq!(reports.len(), 2);
        assert!(registry.list().is_empty());
    }

    #[test]
    fn pending_entries_are_kept_per_task_and_return_address() {
        let entry = |task, return_address, asid, id| Syscall {
            pc: return_address - 4,
            number: 63,
            info: None,
            raw: vec![0; 6],
            task,
            asid,
            return_address,
            id,
            retval: None,
        };
        let mut pending = Pending::default();
        assert!(!pending.insert(entry(1, 0x104, 7, 1)));
        assert!(
            !pending.insert(entry(1, 0x204, 7, 2)),
            "a signal handler's call"
        );
        assert!(
            !pending.insert(entry(2, 0x104, 8, 3)),
            "another task, same address"
        );
        assert!(pending.insert(entry(1, 0x104, 7, 4)), "a restart replaces");
        assert_eq!(pending.len(), 3);
        assert_eq!(pending.remove(1, 0x104).unwrap().id, 4);
        assert!(pending.remove(1, 0x104).is_none());
        assert_eq!(pending.drop_task(2, Some(8)), 0, "same address space: kept");
        assert_eq!(pending.drop_task(2, Some(9)), 1, "execve'd: dropped");
        assert_eq!(pending.tasks(), [1]);
        assert_eq!(pending.drop_task(1, None), 1);
        assert!(pending.is_empty() && pending.by_task.is_empty());
    }

    #[test]
    fn arguments_decode_per_kind() {
        let profile = profile();
        let event = Syscall {
            pc: 0x1000,
            number: 56,
            info: Some(Arc::new(profile.syscalls()[0].clone())),
            // AT_FDCWD sign-extended by the ABI, or only its low 32 bits set.
            raw: vec![0xffff_ff9c, 0x4000, 0x8000_0000, 0x1_01a4],
            task: 1,
            asid: 2,
            return_address: 0x1004,
            id: 1,
            retval: None,
        };
        assert_eq!(
            event.values(),
            [
                PppValue::U64(0x1000),
                PppValue::I64(-100),
                PppValue::U64(0x4000),
                PppValue::I64(i64::from(i32::MIN)),
                PppValue::U64(0x1a4),
            ]
        );
        let described = DescribedSyscall(event).values();
        assert_eq!(described[1], PppValue::U64(56));
        assert_eq!(described[2], PppValue::Bytes(b"openat".to_vec()));
        assert_eq!(
            decode(ArgumentKind::Signed(64), u64::MAX),
            PppValue::I64(-1)
        );
    }
}
