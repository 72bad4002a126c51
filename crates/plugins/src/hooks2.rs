//! `hooks2`: PANDA's process and thread lifecycle PPP callbacks, derived exactly from
//! system calls (through `syscalls2`, loaded with it):
//!
//! - `on_process_start(cpu, procname, asid, pid)`: in the parent, when a `clone`,
//!   `clone3`, `fork` or `vfork` without `CLONE_THREAD` returns a child's pid (> 0).
//!   `procname` is the parent's name, which the child has until it executes a program;
//!   `asid` is the parent's when the child shares its address space (`CLONE_VM`, as
//!   `vfork` does), else 0: the child's copy is not known at that point.
//! - `on_thread_start(cpu, procname, asid, pid, tid)`: in the creating thread, when such a
//!   call with `CLONE_THREAD` returns the new thread's id; `pid` is the process's, `asid`
//!   the shared address space.
//! - `on_thread_end(cpu, procname, asid, pid, tid)`: at the entry of `exit` (the calling
//!   thread ends) and of `exit_group` (for the calling thread, before `on_process_end`).
//! - `on_process_end(cpu, procname, asid, pid)`: at the entry of `exit_group`.
//!
//! Starts are reported when the creating call returns in the creator: the scheduler may
//! run the child first, so its own events (even its end) can come before its start.
//!
//! Not reported: processes and threads killed by a signal (no system call ends them), a
//! process whose last thread calls `exit` rather than `exit_group`, and `execve`, which
//! keeps the process (`proc_start_linux` reports new programs).

use std::sync::{Arc, Mutex};

use pandare_core::instrument::GuestCpu;
use pandare_osi::{Kernel, Profile};

use crate::syscalls2::{DescribedSyscall, Syscall, NAME as SYSCALLS2};
use crate::{lock, Args, LoadContext, Plugin, PluginError, PluginInfo, Ppp};
use crate::{PppEvent, PppInfo, PppValue};

/// `CLONE_VM`: the child shares the address space.
pub const CLONE_VM: u64 = 0x100;
/// `CLONE_VFORK`.
pub const CLONE_VFORK: u64 = 0x4000;
/// `CLONE_THREAD`: the child is a thread of the caller's process.
pub const CLONE_THREAD: u64 = 0x10000;

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "hooks2",
    description: "process and thread start/end PPP callbacks, from clone/fork/exit system calls",
    arguments: &[],
    ppp: &[
        PppInfo {
            name: "on_process_start",
            signature: "(cpu, procname: bytes, asid, pid)",
            event_type: std::any::TypeId::of::<ProcessEvent>,
            event_type_name: "pandare_plugins::hooks2::ProcessEvent",
        },
        PppInfo {
            name: "on_process_end",
            signature: "(cpu, procname: bytes, asid, pid)",
            event_type: std::any::TypeId::of::<ProcessEvent>,
            event_type_name: "pandare_plugins::hooks2::ProcessEvent",
        },
        PppInfo {
            name: "on_thread_start",
            signature: "(cpu, procname: bytes, asid, pid, tid)",
            event_type: std::any::TypeId::of::<ThreadEvent>,
            event_type_name: "pandare_plugins::hooks2::ThreadEvent",
        },
        PppInfo {
            name: "on_thread_end",
            signature: "(cpu, procname: bytes, asid, pid, tid)",
            event_type: std::any::TypeId::of::<ThreadEvent>,
            event_type_name: "pandare_plugins::hooks2::ThreadEvent",
        },
    ],
    create,
};

/// `on_process_start/end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessEvent {
    /// The process's name (`comm`).
    pub procname: Vec<u8>,
    /// Its address space (see the module's notes for starts).
    pub asid: u64,
    /// Its process id.
    pub pid: u32,
}

impl PppEvent for ProcessEvent {
    fn values(&self) -> Vec<PppValue> {
        vec![
            PppValue::Bytes(self.procname.clone()),
            PppValue::U64(self.asid),
            PppValue::U64(u64::from(self.pid)),
        ]
    }
}

/// `on_thread_start/end`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadEvent {
    /// The process's name.
    pub procname: Vec<u8>,
    /// The address space.
    pub asid: u64,
    /// The process id.
    pub pid: u32,
    /// The thread id.
    pub tid: u32,
}

impl PppEvent for ThreadEvent {
    fn values(&self) -> Vec<PppValue> {
        vec![
            PppValue::Bytes(self.procname.clone()),
            PppValue::U64(self.asid),
            PppValue::U64(u64::from(self.pid)),
            PppValue::U64(u64::from(self.tid)),
        ]
    }
}

#[derive(Default)]
struct Counts {
    process_starts: u64,
    process_ends: u64,
    thread_starts: u64,
    thread_ends: u64,
}

struct Lifecycle {
    profile: Arc<Profile>,
    kernel: Option<Kernel>,
    counts: Counts,
}

impl Lifecycle {
    /// The calling task's (name, pid, tid).
    fn caller(&mut self, cpu: &mut dyn GuestCpu, event: &Syscall) -> Option<(Vec<u8>, u32, u32)> {
        if self.kernel.is_none() {
            self.kernel = Kernel::new(Arc::clone(&self.profile), cpu).ok();
        }
        let kernel = self.kernel.as_ref()?;
        let (tid, pid) = kernel.task_ids(cpu, event.task).ok()?;
        let name = kernel.task_name(cpu, event.task).ok()?;
        Some((name, pid, tid))
    }
}

/// The clone flags of a returning `clone`-family call, `None` for other calls.
fn clone_flags(cpu: &mut dyn GuestCpu, event: &Syscall) -> Option<u64> {
    match event.name()? {
        "clone" => event.raw.first().copied(),
        "clone3" => {
            // struct clone_args begins with its u64 flags.
            let mut bytes = [0u8; 8];
            cpu.read_memory(*event.raw.first()?, &mut bytes).ok()?;
            Some(match cpu.abi().endianness() {
                pandare_core::Endianness::Little => u64::from_le_bytes(bytes),
                pandare_core::Endianness::Big => u64::from_be_bytes(bytes),
            })
        }
        "fork" => Some(0),
        "vfork" => Some(CLONE_VM | CLONE_VFORK),
        _ => None,
    }
}

struct Hooks2 {
    lifecycle: Arc<Mutex<Lifecycle>>,
}

impl Plugin for Hooks2 {
    fn unload(&mut self) -> Result<String, PluginError> {
        let lifecycle = lock(&self.lifecycle);
        let counts = &lifecycle.counts;
        Ok(format!(
            "hooks2: {} process starts, {} process ends, {} thread starts, {} thread ends",
            counts.process_starts, counts.process_ends, counts.thread_starts, counts.thread_ends
        ))
    }
}

fn create(_args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let profile = context.kernel_profile()?;
    let lifecycle = Arc::new(Mutex::new(Lifecycle {
        profile,
        kernel: None,
        counts: Counts::default(),
    }));
    let ppp: Ppp = context.ppp();
    let plugin = context.plugin();

    let state = Arc::clone(&lifecycle);
    let run = ppp.clone();
    context.listen_ppp(
        SYSCALLS2,
        "on_all_sys_enter2",
        move |cpu, event: &DescribedSyscall| {
            let event = &event.0;
            let group = match event.name() {
                Some("exit") => false,
                Some("exit_group") => true,
                _ => return,
            };
            let Some((procname, pid, tid)) = lock(&state).caller(cpu, event) else {
                return;
            };
            let asid = event.asid;
            lock(&state).counts.thread_ends += 1;
            run.run(
                plugin,
                "on_thread_end",
                cpu,
                &ThreadEvent {
                    procname: procname.clone(),
                    asid,
                    pid,
                    tid,
                },
            );
            if group {
                lock(&state).counts.process_ends += 1;
                run.run(
                    plugin,
                    "on_process_end",
                    cpu,
                    &ProcessEvent {
                        procname,
                        asid,
                        pid,
                    },
                );
            }
        },
    )?;

    let state = Arc::clone(&lifecycle);
    let run = ppp;
    context.listen_ppp(
        SYSCALLS2,
        "on_all_sys_return2",
        move |cpu, event: &DescribedSyscall| {
            let event = &event.0;
            let Some(flags) = clone_flags(cpu, event) else {
                return;
            };
            let child = event.signed_retval().unwrap_or(-1);
            if child <= 0 || child > i64::from(u32::MAX) {
                return;
            }
            let Some((procname, pid, _)) = lock(&state).caller(cpu, event) else {
                return;
            };
            if flags & CLONE_THREAD != 0 {
                lock(&state).counts.thread_starts += 1;
                run.run(
                    plugin,
                    "on_thread_start",
                    cpu,
                    &ThreadEvent {
                        procname,
                        asid: event.asid,
                        pid,
                        tid: child as u32,
                    },
                );
            } else {
                lock(&state).counts.process_starts += 1;
                run.run(
                    plugin,
                    "on_process_start",
                    cpu,
                    &ProcessEvent {
                        procname,
                        asid: if flags & CLONE_VM != 0 { event.asid } else { 0 },
                        pid: child as u32,
                    },
                );
            }
        },
    )?;
    Ok(Box::new(Hooks2 { lifecycle }))
}
