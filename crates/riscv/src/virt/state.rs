//! The virt machine's state as data: hart, PLIC, CLINT, UART (its own
//! [`Uart16550State`]) and platform, serialized
//! for snapshots. RAM travels separately as a page-sharing image; translation caches are
//! not state and are dropped on restore. Restoring validates before changing anything.

use serde::{Deserialize, Serialize};

use super::{clint::Clint, plic::Plic, Virt, UART_CONFIG};
use crate::hart::{counter, Hart, Privilege};
use pandare_core::{Exit, ShutdownKind, VirtualClock};
use pandare_devices::{Uart16550, Uart16550State};

/// Why a machine state was refused; the machine is left unchanged.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not the JSON this module writes.
    #[error("it cannot be decoded: {0}")]
    Decode(#[from] serde_json::Error),
    /// Written by a build with another state layout.
    #[error("it is machine state version {found}, and this build reads version {expected}")]
    Version {
        /// The state's version.
        found: u32,
        /// [`STATE_VERSION`].
        expected: u32,
    },
    /// A hart field holds a value the hart cannot have.
    #[error("its {0} is out of range")]
    OutOfRange(&'static str),
    /// A device's state is inconsistent.
    #[error("its {device} state is inconsistent: {problem}")]
    Device {
        /// Which device.
        device: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// The version alone, read before the rest so that a state of another layout is reported
/// as such rather than as a missing field.
#[derive(Deserialize)]
struct Versioned {
    version: u32,
}

/// Bumped when the state layout or meaning changes incompatibly. Version 2: the counters
/// stop under `mcountinhibit` (`cycle_base`/`instret_base` replace offsets), and the SBI
/// has the PMU extension, so a kernel booted under version 1 set up no counter access.
pub const STATE_VERSION: u32 = 2;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct HartState {
    x: Vec<u64>,
    f: Vec<u64>,
    pc: u64,
    retired: u64,
    idle: u64,
    privilege: u8,
    fflags: u8,
    frm: u8,
    mstatus: u64,
    mip: u64,
    mie: u64,
    medeleg: u64,
    mideleg: u64,
    mtvec: u64,
    stvec: u64,
    mepc: u64,
    sepc: u64,
    mcause: u64,
    scause: u64,
    mtval: u64,
    stval: u64,
    mscratch: u64,
    sscratch: u64,
    satp: u64,
    mcounteren: u64,
    scounteren: u64,
    mcountinhibit: u64,
    pmpcfg: Vec<u64>,
    pmpaddr: Vec<u64>,
    cycle_base: u64,
    instret_base: u64,
    reservation: Option<u64>,
    time_divisor: u64,
    stimecmp: u64,
    sbi: bool,
    /// `mip.SEIP` as software wrote it (absent in older snapshots: clear).
    #[serde(default)]
    seip_software: bool,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlicState {
    pub priority: Vec<u32>,
    pub level: Vec<u32>,
    pub pending: Vec<u32>,
    pub claimed: Vec<u32>,
    pub enable: Vec<Vec<u32>>,
    pub threshold: Vec<u32>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct ClintState {
    msip: bool,
    mtimecmp: u64,
    mtime_offset: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
enum ShutdownState {
    PowerOff,
    Reboot,
    Failure(u32),
}

impl From<ShutdownKind> for ShutdownState {
    fn from(kind: ShutdownKind) -> Self {
        match kind {
            ShutdownKind::PowerOff => ShutdownState::PowerOff,
            ShutdownKind::Reboot => ShutdownState::Reboot,
            ShutdownKind::Failure(code) => ShutdownState::Failure(code),
        }
    }
}

impl From<ShutdownState> for ShutdownKind {
    fn from(state: ShutdownState) -> Self {
        match state {
            ShutdownState::PowerOff => ShutdownKind::PowerOff,
            ShutdownState::Reboot => ShutdownKind::Reboot,
            ShutdownState::Failure(code) => ShutdownKind::Failure(code),
        }
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
struct MachineState {
    version: u32,
    hart: HartState,
    plic: PlicState,
    clint: ClintState,
    /// The UART persists itself; its serialized form is unchanged since version 1.
    uart: Uart16550State,
    shutdown: Option<ShutdownState>,
    stopped: Option<StoppedState>,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
enum StoppedState {
    Shutdown(ShutdownState),
    UnhandledTrap { cause: u64, pc: u64, value: u64 },
}

fn save_hart(hart: &Hart) -> HartState {
    HartState {
        x: hart.x[..32].to_vec(),
        f: hart.f.to_vec(),
        pc: hart.pc,
        retired: hart.clock.retired,
        idle: hart.clock.idle,
        privilege: hart.privilege as u8,
        fflags: hart.fflags,
        frm: hart.frm,
        mstatus: hart.mstatus,
        mip: hart.mip,
        mie: hart.mie,
        medeleg: hart.medeleg,
        mideleg: hart.mideleg,
        mtvec: hart.mtvec,
        stvec: hart.stvec,
        mepc: hart.mepc,
        sepc: hart.sepc,
        mcause: hart.mcause,
        scause: hart.scause,
        mtval: hart.mtval,
        stval: hart.stval,
        mscratch: hart.mscratch,
        sscratch: hart.sscratch,
        satp: hart.satp,
        mcounteren: hart.mcounteren,
        scounteren: hart.scounteren,
        mcountinhibit: hart.mcountinhibit,
        pmpcfg: hart.pmpcfg.to_vec(),
        pmpaddr: hart.pmpaddr.to_vec(),
        cycle_base: hart.cycle_base,
        instret_base: hart.instret_base,
        reservation: hart.reservation,
        time_divisor: hart.time_divisor,
        stimecmp: hart.stimecmp,
        sbi: hart.sbi,
        seip_software: hart.seip_software,
    }
}

fn check(condition: bool, what: &'static str) -> Result<(), StateError> {
    if condition {
        Ok(())
    } else {
        Err(StateError::OutOfRange(what))
    }
}

fn restore_hart(hart: &mut Hart, state: &HartState) -> Result<(), StateError> {
    check(state.x.len() == 32, "integer register count")?;
    check(state.f.len() == 32, "FP register count")?;
    check(
        state.pmpcfg.len() == 2 && state.pmpaddr.len() == 16,
        "PMP register count",
    )?;
    check(state.time_divisor > 0, "time divisor")?;
    check(matches!(state.privilege, 0 | 1 | 3), "privilege level")?;
    check(state.frm < 8 && state.fflags < 32, "fcsr")?;
    check(matches!(state.satp >> 60, 0 | 8 | 9), "satp mode")?;
    check(
        state.mcounteren >> 32 == 0
            && state.scounteren >> 32 == 0
            && state.mcountinhibit & !counter::INHIBITABLE == 0,
        "counter enables",
    )?;
    hart.x[..32].copy_from_slice(&state.x);
    hart.x[0] = 0;
    hart.f.copy_from_slice(&state.f);
    hart.pc = state.pc;
    hart.clock = VirtualClock {
        retired: state.retired,
        idle: state.idle,
    };
    hart.fflags = state.fflags;
    hart.frm = state.frm;
    hart.mstatus = state.mstatus;
    hart.mip = state.mip;
    hart.mie = state.mie;
    hart.medeleg = state.medeleg;
    hart.mideleg = state.mideleg;
    hart.mtvec = state.mtvec;
    hart.stvec = state.stvec;
    hart.mepc = state.mepc;
    hart.sepc = state.sepc;
    hart.mcause = state.mcause;
    hart.scause = state.scause;
    hart.mtval = state.mtval;
    hart.stval = state.stval;
    hart.mscratch = state.mscratch;
    hart.sscratch = state.sscratch;
    hart.satp = state.satp;
    hart.mcounteren = state.mcounteren;
    hart.scounteren = state.scounteren;
    hart.mcountinhibit = state.mcountinhibit;
    hart.pmpcfg.copy_from_slice(&state.pmpcfg);
    hart.pmpaddr.copy_from_slice(&state.pmpaddr);
    hart.cycle_base = state.cycle_base;
    hart.instret_base = state.instret_base;
    hart.reservation = state.reservation;
    hart.time_divisor = state.time_divisor;
    hart.stimecmp = state.stimecmp;
    hart.sbi = state.sbi;
    hart.seip_software = state.seip_software;
    hart.modified_code_pages.clear();
    hart.set_privilege(Privilege::from_bits(u64::from(state.privilege)));
    Ok(())
}

impl Virt {
    /// Serializes everything but RAM, and the shell's sticky exit `stopped`.
    pub(crate) fn save_state(&self, stopped: Option<Exit>) -> Vec<u8> {
        let state = MachineState {
            version: STATE_VERSION,
            hart: save_hart(&self.cpu.hart),
            plic: self.bus.plic.save(),
            clint: ClintState {
                msip: self.bus.clint.msip,
                mtimecmp: self.bus.clint.mtimecmp,
                mtime_offset: self.bus.clint.mtime_offset,
            },
            uart: self.bus.uart.save(),
            shutdown: self.bus.shutdown.map(ShutdownState::from),
            stopped: stopped.map(|exit| match exit {
                Exit::UnhandledTrap { cause, pc, value } => {
                    StoppedState::UnhandledTrap { cause, pc, value }
                }
                Exit::Shutdown(kind) => StoppedState::Shutdown(kind.into()),
                // Only the two stopping exits are ever stored.
                Exit::BudgetExhausted | Exit::Idle => {
                    StoppedState::Shutdown(ShutdownState::PowerOff)
                }
            }),
        };
        serde_json::to_vec(&state).expect("plain data always serializes")
    }

    /// Validates and applies state from [`Self::save_state`], and returns the sticky exit it
    /// held; leaves the machine unchanged on error.
    pub(crate) fn restore_state(&mut self, bytes: &[u8]) -> Result<Option<Exit>, StateError> {
        let Versioned { version } = serde_json::from_slice(bytes)?;
        if version != STATE_VERSION {
            return Err(StateError::Version {
                found: version,
                expected: STATE_VERSION,
            });
        }
        let state: MachineState = serde_json::from_slice(bytes)?;
        let device = |device| move |problem| StateError::Device { device, problem };
        let uart = Uart16550::restore(UART_CONFIG, &state.uart)
            .map_err(|error| error.to_string())
            .map_err(device("UART"))?;
        let plic = Plic::restore(&state.plic).map_err(device("PLIC"))?;
        let mut hart = Hart::new(0, 1);
        restore_hart(&mut hart, &state.hart)?;
        let old = std::mem::replace(&mut self.cpu.hart, hart);
        // Keep the host-side allocations; everything architectural came from the state.
        self.cpu.hart.hart_id = old.hart_id;
        self.bus.plic = plic;
        self.bus.clint = Clint {
            msip: state.clint.msip,
            mtimecmp: state.clint.mtimecmp,
            mtime_offset: state.clint.mtime_offset,
        };
        self.bus.uart = uart;
        self.bus.shutdown = state.shutdown.map(ShutdownKind::from);
        Ok(state.stopped.map(|stopped| match stopped {
            StoppedState::Shutdown(kind) => Exit::Shutdown(kind.into()),
            StoppedState::UnhandledTrap { cause, pc, value } => {
                Exit::UnhandledTrap { cause, pc, value }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::virt::{Virt, VirtConfig, VirtMachine};

    fn machine_with_input() -> VirtMachine {
        let config = VirtConfig {
            ram_bytes: 16 << 20,
            ..VirtConfig::default()
        };
        // `j .`
        let mut machine = Virt::new_bare_metal(config, &[0x6f, 0, 0, 0]).unwrap();
        machine.bus.uart.input(b"hi");
        machine
    }

    #[test]
    fn the_uart_part_keeps_the_serialized_form_older_snapshots_hold() {
        let text = String::from_utf8(machine_with_input().save_state(None)).unwrap();
        let uart = r#""uart":{"registers":[12,0,0,1,3,97,8,176,0],"fifo":[104,105],"pending_input":[],"level":false}"#;
        assert!(text.contains(uart), "{text}");
    }

    #[test]
    fn a_corrupt_uart_state_is_refused_and_changes_nothing() {
        let mut machine = machine_with_input();
        let good = machine.save_state(None);
        let text = String::from_utf8(good.clone()).unwrap();
        // The FIFO emptied but the line status still says data is ready.
        let corrupt = text.replace(r#""fifo":[104,105]"#, r#""fifo":[]"#);
        assert_ne!(corrupt, text);
        machine.bus.uart.input(b"!");
        let before = machine.save_state(None);
        let error = machine
            .restore_state(corrupt.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(error.contains("data-ready"), "{error}");
        assert_eq!(machine.save_state(None), before);
        machine.restore_state(&good).unwrap();
        assert_eq!(machine.save_state(None), good);
        assert_eq!(machine.bus.uart.input_backlog(), 2);
    }
}

#[cfg(test)]
mod version_tests {
    use super::*;
    use crate::virt::{VirtConfig, VirtMachine};

    fn machine() -> VirtMachine {
        let config = VirtConfig {
            ram_bytes: 16 << 20,
            ..VirtConfig::default()
        };
        Virt::new_bare_metal(config, &[0x6f, 0, 0, 0]).unwrap()
    }

    #[test]
    fn stopped_and_running_counters_survive_a_save_and_restore() {
        let mut machine = machine();
        let hart = &mut machine.cpu.hart;
        hart.clock.retired = 1000;
        hart.set_counter(counter::CYCLE, 77);
        hart.set_mcountinhibit(1 << counter::INSTRET);
        hart.clock.retired = 2000;
        let saved = machine.save_state(None);
        let mut other = self::machine();
        other.restore_state(&saved).unwrap();
        let hart = &mut other.cpu.hart;
        assert_eq!(hart.counter(counter::CYCLE), 1077);
        assert_eq!(hart.counter(counter::INSTRET), 1000);
        hart.clock.retired += 5;
        assert_eq!(hart.counter(counter::CYCLE), 1082);
        assert_eq!(hart.counter(counter::INSTRET), 1000);
    }

    #[test]
    fn a_state_of_another_version_is_refused_as_such() {
        let mut machine = machine();
        let mut state: serde_json::Value =
            serde_json::from_slice(&machine.save_state(None)).unwrap();
        // Version 1 had offsets where version 2 has bases.
        state["version"] = 1.into();
        let hart = state["hart"].as_object_mut().unwrap();
        hart.remove("cycle_base");
        hart.insert("cycle_offset".into(), 0.into());
        let error = machine
            .restore_state(&serde_json::to_vec(&state).unwrap())
            .unwrap_err();
        assert!(
            matches!(
                error,
                StateError::Version {
                    found: 1,
                    expected: STATE_VERSION
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn counter_enables_beyond_32_bits_are_refused() {
        let mut machine = machine();
        let mut state: serde_json::Value =
            serde_json::from_slice(&machine.save_state(None)).unwrap();
        state["hart"]["mcountinhibit"] = 2.into();
        let error = machine
            .restore_state(&serde_json::to_vec(&state).unwrap())
            .unwrap_err();
        assert!(
            matches!(error, StateError::OutOfRange("counter enables")),
            "{error}"
        );
    }
}
