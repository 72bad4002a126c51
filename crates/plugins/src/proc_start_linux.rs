//! `proc_start_linux`: `on_rec_auxv(cpu, tb, auxv)` at the start of each new program
//! (PANDA's `proc_start_linux`), built on `syscalls2` (loaded with it).
//!
//! When a task enters `execve` or `execveat`, the plugin notes it with its address space;
//! a block callback (enabled only while such an `execve` is in flight) then waits for that
//! task's first user-mode block in another address space: the new image's first
//! instruction (the interpreter's entry for a dynamic program). There the initial stack
//! at `sp` holds `argc`, `argv[]`, `NULL`, `envp[]`, `NULL` and the auxiliary vector,
//! which the plugin reads into [`AuxvValues`] (PANDA's `struct auxv_values`). A failed
//! `execve` returns (its `on_sys_execve_return`) and is forgotten.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pandare_core::instrument::{BlockInfo, Callback, GuestCpu};
use pandare_core::LinuxAbi;
use pandare_osi::Profile;

use crate::syscalls2::{DescribedSyscall, NAME as SYSCALLS2};
use crate::syscalls_logger::read_string;
use crate::{lock, Args, LoadContext, Plugin, PluginError, PluginInfo, Ppp};
use crate::{PppEvent, PppInfo, PppValue, RuntimeRegistry};

/// The plugin's description.
pub const INFO: PluginInfo = PluginInfo {
    name: "proc_start_linux",
    description: "on_rec_auxv at each new program: argv, envp and the auxiliary vector from its initial stack",
    arguments: &[],
    ppp: &[PppInfo {
        name: "on_rec_auxv",
        signature: "(cpu, tb_pc, argc, argv: bytes (NUL-separated), envc, envp: bytes (NUL-separated), execfn: bytes, \
                    phdr, entry, ehdr, base, pagesz, uid, euid, gid, egid, secure, random, platform: bytes, \
                    hwcap, hwcap2, phent, phnum, flags, minsigstksz, clktck, sysinfo_ehdr)",
        event_type: std::any::TypeId::of::<AuxvValues>,
        event_type_name: "pandare_plugins::proc_start_linux::AuxvValues",
    }],
    create,
};

/// Most arguments and environment strings read.
pub const MAX_STRINGS: usize = 1024;
/// Most bytes of one string read.
pub const MAX_STRING: usize = 4096;
/// Most auxiliary vector entries read.
pub const MAX_AUXV: usize = 64;

/// Auxiliary vector types (`linux/auxvec.h`).
mod at {
    pub const NULL: u64 = 0;
    pub const PHDR: u64 = 3;
    pub const PHENT: u64 = 4;
    pub const PHNUM: u64 = 5;
    pub const PAGESZ: u64 = 6;
    pub const BASE: u64 = 7;
    pub const FLAGS: u64 = 8;
    pub const ENTRY: u64 = 9;
    pub const UID: u64 = 11;
    pub const EUID: u64 = 12;
    pub const GID: u64 = 13;
    pub const EGID: u64 = 14;
    pub const PLATFORM: u64 = 15;
    pub const HWCAP: u64 = 16;
    pub const CLKTCK: u64 = 17;
    pub const SECURE: u64 = 23;
    pub const RANDOM: u64 = 25;
    pub const HWCAP2: u64 = 26;
    pub const EXECFN: u64 = 31;
    pub const SYSINFO_EHDR: u64 = 33;
    pub const MINSIGSTKSZ: u64 = 51;
}

/// A new program's initial stack (PANDA's `struct auxv_values`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuxvValues {
    /// The first block of the new image (PANDA's `tb`): its pc.
    pub pc: u64,
    /// The stack pointer there.
    pub sp: u64,
    /// Number of arguments.
    pub argc: u64,
    /// Address of `argv[]`.
    pub argv_ptr_ptr: u64,
    /// The argument pointers.
    pub arg_ptr: Vec<u64>,
    /// The arguments.
    pub argv: Vec<Vec<u8>>,
    /// Number of environment strings.
    pub envc: u64,
    /// Address of `envp[]`.
    pub env_ptr_ptr: u64,
    /// The environment pointers.
    pub env_ptr: Vec<u64>,
    /// The environment strings.
    pub envp: Vec<Vec<u8>>,
    /// `AT_EXECFN`: the path the program was executed by.
    pub execfn_ptr: u64,
    /// The string there.
    pub execfn: Vec<u8>,
    /// `AT_PHDR`.
    pub phdr: u64,
    /// `AT_ENTRY`: the program's entry point.
    pub entry: u64,
    /// `AT_SYSINFO_EHDR`: the vDSO.
    pub ehdr: u64,
    /// `AT_BASE`: the interpreter's base (0 for a static program).
    pub base: u64,
    /// `AT_PAGESZ`.
    pub pagesz: u64,
    /// `AT_UID`.
    pub uid: u64,
    /// `AT_EUID`.
    pub euid: u64,
    /// `AT_GID`.
    pub gid: u64,
    /// `AT_EGID`.
    pub egid: u64,
    /// `AT_SECURE`.
    pub secure: bool,
    /// `AT_RANDOM`: address of 16 random bytes.
    pub random: u64,
    /// `AT_PLATFORM`: address of the platform string.
    pub platform_ptr: u64,
    /// The platform string.
    pub platform: Vec<u8>,
    /// `AT_HWCAP`.
    pub hwcap: u64,
    /// `AT_HWCAP2`.
    pub hwcap2: u64,
    /// `AT_PHENT`.
    pub phent: u64,
    /// `AT_PHNUM`.
    pub phnum: u64,
    /// `AT_FLAGS`.
    pub flags: u64,
    /// `AT_MINSIGSTKSZ`.
    pub minsigstksz: u64,
    /// `AT_CLKTCK`.
    pub clktck: u64,
    /// Every auxiliary vector entry, in order (type, value), without `AT_NULL`.
    pub entries: Vec<(u64, u64)>,
}

impl AuxvValues {
    /// `AT_SYSINFO_EHDR` (PANDA names it `ehdr`).
    pub fn sysinfo_ehdr(&self) -> u64 {
        self.ehdr
    }
}

fn joined(strings: &[Vec<u8>]) -> Vec<u8> {
    strings.join(&0u8)
}

impl PppEvent for AuxvValues {
    fn values(&self) -> Vec<PppValue> {
        vec![
            PppValue::U64(self.pc),
            PppValue::U64(self.argc),
            PppValue::Bytes(joined(&self.argv)),
            PppValue::U64(self.envc),
            PppValue::Bytes(joined(&self.envp)),
            PppValue::Bytes(self.execfn.clone()),
            PppValue::U64(self.phdr),
            PppValue::U64(self.entry),
            PppValue::U64(self.ehdr),
            PppValue::U64(self.base),
            PppValue::U64(self.pagesz),
            PppValue::U64(self.uid),
            PppValue::U64(self.euid),
            PppValue::U64(self.gid),
            PppValue::U64(self.egid),
            PppValue::Bool(self.secure),
            PppValue::U64(self.random),
            PppValue::Bytes(self.platform.clone()),
            PppValue::U64(self.hwcap),
            PppValue::U64(self.hwcap2),
            PppValue::U64(self.phent),
            PppValue::U64(self.phnum),
            PppValue::U64(self.flags),
            PppValue::U64(self.minsigstksz),
            PppValue::U64(self.clktck),
            PppValue::U64(self.ehdr),
        ]
    }
}

fn read_word(cpu: &mut dyn GuestCpu, address: u64) -> Option<u64> {
    let size = (cpu.abi().pointer_bits() / 8) as usize;
    let mut bytes = [0u8; 8];
    cpu.read_memory(address, &mut bytes[..size]).ok()?;
    Some(match cpu.abi().endianness() {
        pandare_core::Endianness::Little => u64::from_le_bytes(bytes),
        pandare_core::Endianness::Big => {
            let mut value = 0u64;
            for byte in &bytes[..size] {
                value = value << 8 | u64::from(*byte);
            }
            value
        }
    })
}

/// Reads a NULL-terminated pointer array at `address` with its strings; returns the
/// address after its NULL.
fn read_vector(
    cpu: &mut dyn GuestCpu,
    mut address: u64,
    pointers: &mut Vec<u64>,
    strings: &mut Vec<Vec<u8>>,
) -> Option<u64> {
    let word = u64::from(cpu.abi().pointer_bits() / 8);
    loop {
        let pointer = read_word(cpu, address)?;
        address = address.wrapping_add(word);
        if pointer == 0 {
            return Some(address);
        }
        if pointers.len() >= MAX_STRINGS {
            return None;
        }
        pointers.push(pointer);
        strings.push(read_string(cpu, pointer, MAX_STRING).unwrap_or_default());
    }
}

/// Reads a new program's initial stack at `sp`.
pub fn read_initial_stack(cpu: &mut dyn GuestCpu, pc: u64, sp: u64) -> Option<AuxvValues> {
    let word = u64::from(cpu.abi().pointer_bits() / 8);
    let mut values = AuxvValues {
        pc,
        sp,
        argc: read_word(cpu, sp)?,
        argv_ptr_ptr: sp.wrapping_add(word),
        ..AuxvValues::default()
    };
    let mut pointers = Vec::new();
    let mut strings = Vec::new();
    let after_argv = read_vector(cpu, values.argv_ptr_ptr, &mut pointers, &mut strings)?;
    values.arg_ptr = pointers;
    values.argv = strings;
    values.env_ptr_ptr = after_argv;
    let mut pointers = Vec::new();
    let mut strings = Vec::new();
    let mut address = read_vector(cpu, after_argv, &mut pointers, &mut strings)?;
    values.envc = pointers.len() as u64;
    values.env_ptr = pointers;
    values.envp = strings;
    for _ in 0..MAX_AUXV {
        let kind = read_word(cpu, address)?;
        let value = read_word(cpu, address.wrapping_add(word))?;
        address = address.wrapping_add(2 * word);
        if kind == at::NULL {
            break;
        }
        values.entries.push((kind, value));
        match kind {
            at::PHDR => values.phdr = value,
            at::PHENT => values.phent = value,
            at::PHNUM => values.phnum = value,
            at::PAGESZ => values.pagesz = value,
            at::BASE => values.base = value,
            at::FLAGS => values.flags = value,
            at::ENTRY => values.entry = value,
            at::UID => values.uid = value,
            at::EUID => values.euid = value,
            at::GID => values.gid = value,
            at::EGID => values.egid = value,
            at::PLATFORM => {
                values.platform_ptr = value;
                values.platform = read_string(cpu, value, MAX_STRING).unwrap_or_default();
            }
            at::HWCAP => values.hwcap = value,
            at::CLKTCK => values.clktck = value,
            at::SECURE => values.secure = value != 0,
            at::RANDOM => values.random = value,
            at::HWCAP2 => values.hwcap2 = value,
            at::EXECFN => {
                values.execfn_ptr = value;
                values.execfn = read_string(cpu, value, MAX_STRING).unwrap_or_default();
            }
            at::SYSINFO_EHDR => values.ehdr = value,
            at::MINSIGSTKSZ => values.minsigstksz = value,
            _ => {}
        }
    }
    Some(values)
}

/// The most `execve` calls in flight at once that are remembered.
const IN_FLIGHT_LIMIT: usize = 256;

struct Watch {
    /// Tasks inside `execve`: the address space they called it from, and the order.
    in_flight: HashMap<u64, (u64, u64)>,
    next: u64,
    enabled: bool,
    programs: u64,
    unreadable: u64,
}

struct ProcStart {
    watch: Arc<Mutex<Watch>>,
}

impl Plugin for ProcStart {
    fn unload(&mut self) -> Result<String, PluginError> {
        let watch = lock(&self.watch);
        Ok(format!(
            "proc_start_linux: {} new programs reported{}",
            watch.programs,
            if watch.unreadable > 0 {
                format!(
                    ", {} whose initial stack could not be read",
                    watch.unreadable
                )
            } else {
                String::new()
            }
        ))
    }
}

fn set_enabled(watch: &mut Watch, runtime: &RuntimeRegistry) {
    let wanted = !watch.in_flight.is_empty();
    if wanted != watch.enabled {
        watch.enabled = wanted;
        if wanted {
            runtime.enable("first_user_block");
        } else {
            runtime.disable("first_user_block");
        }
    }
}

fn create(_args: &Args, context: &mut LoadContext<'_>) -> Result<Box<dyn Plugin>, PluginError> {
    let profile: Arc<Profile> = context.kernel_profile()?;
    let runtime = context.runtime();
    let ppp: Ppp = context.ppp();
    let plugin = context.plugin();
    let watch = Arc::new(Mutex::new(Watch {
        in_flight: HashMap::new(),
        next: 0,
        enabled: true,
        programs: 0,
        unreadable: 0,
    }));

    let state = Arc::clone(&watch);
    let control = runtime.clone();
    let mut linux: Option<&'static dyn LinuxAbi> = None;
    context.register(
        "first_user_block",
        Callback::BeforeBlockExec(Box::new(move |cpu, block: &BlockInfo| {
            if cpu.in_kernel_mode() {
                return;
            }
            let abi = match linux {
                Some(abi) => abi,
                None => match cpu.abi().linux() {
                    Some(abi) => *linux.insert(abi),
                    None => return,
                },
            };
            let Some(task) = abi.current_task(cpu, profile.as_ref()) else {
                return;
            };
            {
                let mut watch = lock(&state);
                match watch.in_flight.get(&task) {
                    Some(&(asid, _)) if asid != cpu.asid() => {
                        watch.in_flight.remove(&task);
                        set_enabled(&mut watch, &control);
                    }
                    _ => return,
                }
            }
            let Ok(sp) = cpu.abi().stack_pointer_value(cpu) else {
                return;
            };
            match read_initial_stack(cpu, block.pc, sp) {
                Some(values) => {
                    lock(&state).programs += 1;
                    ppp.run(plugin, "on_rec_auxv", cpu, &values);
                }
                None => lock(&state).unreadable += 1,
            }
        })),
    )?;
    // Off until an execve is in flight.
    runtime.disable("first_user_block");
    lock(&watch).enabled = false;

    let state = Arc::clone(&watch);
    let control = runtime.clone();
    context.listen_ppp(
        SYSCALLS2,
        "on_all_sys_enter2",
        move |_, event: &DescribedSyscall| {
            let event = &event.0;
            if !matches!(event.name(), Some("execve" | "execveat")) {
                return;
            }
            let mut watch = lock(&state);
            watch.next += 1;
            let order = watch.next;
            watch.in_flight.insert(event.task, (event.asid, order));
            while watch.in_flight.len() > IN_FLIGHT_LIMIT {
                let oldest = watch
                    .in_flight
                    .iter()
                    .min_by_key(|(_, &(_, order))| order)
                    .map(|(&task, _)| task);
                if let Some(task) = oldest {
                    watch.in_flight.remove(&task);
                }
            }
            set_enabled(&mut watch, &control);
        },
    )?;
    let state = Arc::clone(&watch);
    let control = runtime;
    context.listen_ppp(
        SYSCALLS2,
        "on_all_sys_return2",
        move |_, event: &DescribedSyscall| {
            let event = &event.0;
            if !matches!(event.name(), Some("execve" | "execveat")) {
                return;
            }
            // It returned: it failed, the task runs the old program on.
            let mut watch = lock(&state);
            watch.in_flight.remove(&event.task);
            set_enabled(&mut watch, &control);
        },
    )?;
    Ok(Box::new(ProcStart { watch }))
}
