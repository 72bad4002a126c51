//! The Supervisor Binary Interface, answered by the emulator itself (SBI 2.0): Base, TIME,
//! IPI, RFENCE, HSM, SRST, DBCN and PMU. There is no M-mode firmware in the guest.
//!
//! The PMU extension offers the two fixed hardware counters, `cycle` (counter 0) and
//! `instret` (counter 2), the way OpenSBI does on a hart without programmable counters:
//! starting and stopping one clears and sets its `mcountinhibit` bit, and they always
//! count the event they are wired to. Linux needs the extension to set up `scounteren`
//! (without it, user-mode `rdtime` traps).

use pandare_core::ShutdownKind;

use super::Bus;
use crate::hart::{counter, irq, Hart};

const SUCCESS: i64 = 0;
const ERR_NOT_SUPPORTED: i64 = -2;
const ERR_INVALID_PARAM: i64 = -3;
const ERR_ALREADY_AVAILABLE: i64 = -6;
const ERR_ALREADY_STARTED: i64 = -7;
const ERR_ALREADY_STOPPED: i64 = -8;
const ERR_NO_SHMEM: i64 = -9;

const EXT_BASE: u64 = 0x10;
const EXT_TIME: u64 = 0x5449_4d45;
const EXT_IPI: u64 = 0x73_5049;
const EXT_RFENCE: u64 = 0x5246_4e43;
const EXT_HSM: u64 = 0x48_534d;
const EXT_SRST: u64 = 0x5352_5354;
const EXT_DBCN: u64 = 0x4442_434e;
const EXT_PMU: u64 = 0x50_4d55;

/// Implementation id reported by `sbi_get_impl_id` (unregistered; "pandare" in spirit).
pub const IMPLEMENTATION_ID: i64 = 0x7061_6e64;

const A0: usize = 10;
const A1: usize = 11;

/// What the platform must do after an SBI call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Carry on.
    Continue,
    /// The timer compare changed.
    TimerChanged,
    /// Address translation caches must be flushed.
    FlushTranslations,
    /// The guest asked to stop the machine.
    Shutdown(ShutdownKind),
}

/// Handles the `ecall` the hart just made from S-mode (the pc is already past it).
pub fn handle(hart: &mut Hart, bus: &mut Bus) -> Outcome {
    let extension = hart.x[17];
    let function = hart.x[16];
    let args = [hart.x[10], hart.x[11], hart.x[12], hart.x[13], hart.x[14]];
    let (error, value, outcome) = match extension {
        EXT_BASE => base(function, args[0]),
        EXT_TIME if function == 0 => {
            hart.stimecmp = args[0];
            (SUCCESS, 0, Outcome::TimerChanged)
        }
        EXT_IPI if function == 0 => {
            // Only hart 0 exists: a mask that selects it raises its software interrupt.
            let (mask, base) = (args[0], args[1]);
            let selects_hart0 = base == u64::MAX || (base == 0 && mask & 1 != 0);
            if selects_hart0 {
                hart.set_pending(irq::SSI, true);
            }
            (SUCCESS, 0, Outcome::Continue)
        }
        EXT_RFENCE if function <= 6 => {
            // Remote fence.i needs nothing (translations follow stores); the sfence.vma
            // variants flush this hart's TLB.
            let outcome = if function == 0 {
                Outcome::Continue
            } else {
                Outcome::FlushTranslations
            };
            (SUCCESS, 0, outcome)
        }
        EXT_HSM => hsm(function, args[0], hart.hart_id),
        EXT_SRST if function == 0 => match args[0] {
            0 => (SUCCESS, 0, Outcome::Shutdown(ShutdownKind::PowerOff)),
            1 | 2 => (SUCCESS, 0, Outcome::Shutdown(ShutdownKind::Reboot)),
            _ => (ERR_INVALID_PARAM, 0, Outcome::Continue),
        },
        EXT_DBCN => debug_console(function, args, bus),
        EXT_PMU => {
            let (error, value) = pmu(hart, function, args);
            (error, value, Outcome::Continue)
        }
        _ => (ERR_NOT_SUPPORTED, 0, Outcome::Continue),
    };
    hart.x[A0] = error as u64;
    hart.x[A1] = value as u64;
    outcome
}

fn base(function: u64, argument: u64) -> (i64, i64, Outcome) {
    let value = match function {
        0 => 0x0200_0000, // spec version 2.0
        1 => IMPLEMENTATION_ID,
        2 => 1, // implementation version
        3 => i64::from(matches!(
            argument,
            EXT_BASE | EXT_TIME | EXT_IPI | EXT_RFENCE | EXT_HSM | EXT_SRST | EXT_DBCN | EXT_PMU
        )),
        4..=6 => 0, // mvendorid, marchid, mimpid
        _ => return (ERR_NOT_SUPPORTED, 0, Outcome::Continue),
    };
    (SUCCESS, value, Outcome::Continue)
}

fn hsm(function: u64, target: u64, own_id: u64) -> (i64, i64, Outcome) {
    match function {
        // hart_start: the only hart is already running.
        0 if target == own_id => (ERR_ALREADY_AVAILABLE, 0, Outcome::Continue),
        // hart_get_status: 0 = started.
        2 if target == own_id => (SUCCESS, 0, Outcome::Continue),
        0 | 2 => (ERR_INVALID_PARAM, 0, Outcome::Continue),
        _ => (ERR_NOT_SUPPORTED, 0, Outcome::Continue),
    }
}

fn debug_console(function: u64, args: [u64; 5], bus: &mut Bus) -> (i64, i64, Outcome) {
    match function {
        0 => {
            let (length, address) = (args[0], args[1] | args[2] << 32);
            let mut bytes = vec![0; length.min(1 << 20) as usize];
            if !bus.ram.read_bytes(address, &mut bytes) {
                return (ERR_INVALID_PARAM, 0, Outcome::Continue);
            }
            bus.uart.push_output(&bytes);
            (SUCCESS, bytes.len() as i64, Outcome::Continue)
        }
        // console_read: input goes to the UART only.
        1 => (SUCCESS, 0, Outcome::Continue),
        2 => {
            bus.uart.push_output(&[args[0] as u8]);
            (SUCCESS, 0, Outcome::Continue)
        }
        _ => (ERR_NOT_SUPPORTED, 0, Outcome::Continue),
    }
}

/// Counters the PMU extension numbers 0 to `PMU_COUNTERS - 1`; 1 (`time`) is not one.
const PMU_COUNTERS: u64 = 3;
/// `counter_get_info` of a hardware counter: CSR number, width - 1 in bits 17:12 (both
/// counters are 64 bits wide), type 0 (hardware) in bit 63.
const fn counter_info(csr: u16) -> i64 {
    (csr as i64) | 63 << 12
}
/// SBI event types (bits 19:16 of an event index) and the hardware events wired to the
/// fixed counters.
const EVENT_HARDWARE: u64 = 0;
const EVENT_CACHE: u64 = 1;
const EVENT_RAW: u64 = 2;
const EVENT_FIRMWARE: u64 = 15;
const EVENT_CPU_CYCLES: u64 = 1;
const EVENT_INSTRUCTIONS: u64 = 2;
const CFG_SKIP_MATCH: u64 = 1;
const CFG_CLEAR_VALUE: u64 = 1 << 1;
const CFG_AUTO_START: u64 = 1 << 2;
const START_SET_INIT_VALUE: u64 = 1;
/// `START_FLAG_INIT_SNAPSHOT` and `STOP_FLAG_TAKE_SNAPSHOT`: need snapshot memory.
const FLAG_SNAPSHOT: u64 = 1 << 1;

/// The counters selected by a base and mask, or `None` when one lies beyond the last.
fn selected_counters(base: u64, mask: u64) -> Option<Vec<u32>> {
    (0..64)
        .filter(|bit| mask >> bit & 1 != 0)
        .map(|bit| base.checked_add(bit).filter(|&index| index < PMU_COUNTERS))
        .map(|index| index.map(|index| index as u32))
        .collect()
}

/// Whether an event index names an event the SBI specification defines (the PMU may
/// still have no counter for it).
/// Bits above the 20-bit index are ignored, as OpenSBI does.
fn event_is_valid(event: u64) -> bool {
    let (kind, code) = (event >> 16 & 0xf, event & 0xffff);
    match kind {
        // Codes 0 (no event) to 10 (ref_cpu_cycles).
        EVENT_HARDWARE => code <= 10,
        // Cache id 0-6, operation 0-2, result 0-1.
        EVENT_CACHE => code >> 3 <= 6 && (code >> 1 & 3) <= 2,
        EVENT_RAW => code == 0,
        // Firmware events 0-21, or 0xffff for a platform-specific one.
        EVENT_FIRMWARE => code <= 21 || code == 0xffff,
        _ => false,
    }
}

/// The PMU extension (`EID 0x504D55`); returns (error, value).
fn pmu(hart: &mut Hart, function: u64, args: [u64; 5]) -> (i64, i64) {
    let [base, mask, flags, value, _] = args;
    match function {
        // num_counters
        0 => (SUCCESS, PMU_COUNTERS as i64),
        // counter_get_info
        1 => match base {
            0 => (SUCCESS, counter_info(crate::csr::number::CYCLE)),
            2 => (SUCCESS, counter_info(crate::csr::number::INSTRET)),
            _ => (ERR_INVALID_PARAM, 0),
        },
        // counter_config_matching(base, mask, flags, event_idx, event_data)
        2 => {
            let Some(counters) = selected_counters(base, mask) else {
                return (ERR_INVALID_PARAM, 0);
            };
            let event = value & 0xf_ffff;
            if !event_is_valid(event) {
                return (ERR_INVALID_PARAM, 0);
            }
            let chosen = if flags & CFG_SKIP_MATCH != 0 {
                // The caller knows the counter: the first selected, which must exist.
                match counters.first() {
                    Some(&index) if index != counter::TIME => index,
                    _ => return (ERR_INVALID_PARAM, 0),
                }
            } else {
                let wired = match event {
                    EVENT_CPU_CYCLES => counter::CYCLE,
                    EVENT_INSTRUCTIONS => counter::INSTRET,
                    _ => return (ERR_NOT_SUPPORTED, 0),
                };
                if !counters.contains(&wired) {
                    return (ERR_NOT_SUPPORTED, 0);
                }
                wired
            };
            if flags & CFG_CLEAR_VALUE != 0 {
                hart.set_counter(chosen, 0);
            }
            if flags & CFG_AUTO_START != 0 {
                hart.set_mcountinhibit(hart.mcountinhibit & !(1 << chosen));
            }
            // The filter flags (bits 3-7) need Sscofpmf, which this hart does not have.
            (SUCCESS, i64::from(chosen))
        }
        // counter_start(base, mask, flags, initial_value)
        3 => start_or_stop(hart, base, mask, flags, |hart, index| {
            if !hart.counter_stopped(index) {
                return ERR_ALREADY_STARTED;
            }
            if flags & START_SET_INIT_VALUE != 0 {
                hart.set_counter(index, value);
            }
            hart.set_mcountinhibit(hart.mcountinhibit & !(1 << index));
            SUCCESS
        }),
        // counter_stop(base, mask, flags): the reset flag has nothing to release, since
        // the fixed counters stay wired to their events.
        4 => start_or_stop(hart, base, mask, flags, |hart, index| {
            if hart.counter_stopped(index) {
                return ERR_ALREADY_STOPPED;
            }
            hart.set_mcountinhibit(hart.mcountinhibit | 1 << index);
            SUCCESS
        }),
        // counter_fw_read: there are no firmware counters.
        5 => (ERR_INVALID_PARAM, 0),
        // counter_fw_read_hi: always zero on RV64.
        6 => (SUCCESS, 0),
        // snapshot_set_shmem and anything newer: optional, not offered.
        _ => (ERR_NOT_SUPPORTED, 0),
    }
}

/// `counter_start`/`counter_stop`: applies `each` to every selected counter (skipping
/// index 1, which is none) and returns the last result, or invalid-param when no real
/// counter was selected, as OpenSBI does.
fn start_or_stop(
    hart: &mut Hart,
    base: u64,
    mask: u64,
    flags: u64,
    mut each: impl FnMut(&mut Hart, u32) -> i64,
) -> (i64, i64) {
    let Some(counters) = selected_counters(base, mask) else {
        return (ERR_INVALID_PARAM, 0);
    };
    if flags & FLAG_SNAPSHOT != 0 {
        return (ERR_NO_SHMEM, 0);
    }
    let mut result = ERR_INVALID_PARAM;
    for index in counters {
        if index != counter::TIME {
            result = each(hart, index);
        }
    }
    (result, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csr::number::{CYCLE, INSTRET};
    use crate::hart::Privilege;

    const NUM_COUNTERS: u64 = 0;
    const GET_INFO: u64 = 1;
    const CFG_MATCH: u64 = 2;
    const START: u64 = 3;
    const STOP: u64 = 4;
    const FW_READ: u64 = 5;
    const FW_READ_HI: u64 = 6;
    const SNAPSHOT_SET_SHMEM: u64 = 7;
    /// Linux's mask of counters: 0 and 2.
    const LINUX_MASK: u64 = 0b101;

    /// A hart as the virt machine starts one for Linux: both fixed counters stopped.
    fn hart() -> Hart {
        let mut hart = Hart::new(0, 100);
        hart.set_privilege(Privilege::Supervisor);
        hart.set_mcountinhibit(0xffff_fff8);
        hart.set_mcountinhibit(0xffff_ffff);
        hart
    }

    fn call(hart: &mut Hart, function: u64, args: [u64; 5]) -> (i64, i64) {
        pmu(hart, function, args)
    }

    fn run(hart: &mut Hart, instructions: u64) {
        hart.clock.retired += instructions;
    }

    #[test]
    fn the_base_extension_reports_the_pmu_extension() {
        assert_eq!(base(3, EXT_PMU).1, 1);
    }

    #[test]
    fn there_are_three_counter_numbers_and_two_counters() {
        let mut hart = hart();
        assert_eq!(call(&mut hart, NUM_COUNTERS, [0; 5]), (SUCCESS, 3));
        let info = |hart: &mut Hart, index| call(hart, GET_INFO, [index, 0, 0, 0, 0]);
        // CSR number in bits 11:0, width - 1 = 63 in bits 17:12, hardware (0) in bit 63.
        assert_eq!(info(&mut hart, 0), (SUCCESS, 0x3f000 | i64::from(CYCLE)));
        assert_eq!(info(&mut hart, 2), (SUCCESS, 0x3f000 | i64::from(INSTRET)));
        assert_eq!(info(&mut hart, 1).0, ERR_INVALID_PARAM);
        assert_eq!(info(&mut hart, 3).0, ERR_INVALID_PARAM);
    }

    #[test]
    fn config_matching_finds_the_fixed_counter_of_cycles_and_instructions() {
        let mut hart = hart();
        let matching =
            |hart: &mut Hart, mask, flags, event| call(hart, CFG_MATCH, [0, mask, flags, event, 0]);
        assert_eq!(matching(&mut hart, LINUX_MASK, 0, 1), (SUCCESS, 0));
        assert_eq!(matching(&mut hart, LINUX_MASK, 0, 2), (SUCCESS, 2));
        // Other hardware, cache, raw and firmware events have no counter.
        for event in [3, 10, 0x1_0000, 0x2_0000, 0xf_0000, 0xf_ffff] {
            assert_eq!(
                matching(&mut hart, LINUX_MASK, 0, event).0,
                ERR_NOT_SUPPORTED
            );
        }
        // Nor do cycles when counter 0 is not among those offered.
        assert_eq!(matching(&mut hart, 0b100, 0, 1).0, ERR_NOT_SUPPORTED);
        // Undefined events, and counters past the last, are invalid.
        for event in [11, 0x1_0038, 0x2_0001, 0x5_0000, 0xf_0016] {
            assert_eq!(
                matching(&mut hart, LINUX_MASK, 0, event).0,
                ERR_INVALID_PARAM
            );
        }
        assert_eq!(matching(&mut hart, 0b1000, 0, 1).0, ERR_INVALID_PARAM);
        assert_eq!(
            call(&mut hart, CFG_MATCH, [u64::MAX, 1, 0, 1, 0]).0,
            ERR_INVALID_PARAM
        );
        // Skip-match takes the first counter given, which must be a counter.
        assert_eq!(
            call(&mut hart, CFG_MATCH, [2, 1, CFG_SKIP_MATCH, 2, 0]),
            (SUCCESS, 2)
        );
        assert_eq!(
            call(&mut hart, CFG_MATCH, [1, 1, CFG_SKIP_MATCH, 2, 0]).0,
            ERR_INVALID_PARAM
        );
        // Matching alone neither starts nor clears.
        assert!(hart.counter_stopped(counter::CYCLE));
    }

    #[test]
    fn config_matching_can_clear_and_start_the_counter() {
        let mut hart = hart();
        hart.set_counter(counter::INSTRET, 500);
        let flags = CFG_CLEAR_VALUE | CFG_AUTO_START;
        assert_eq!(
            call(&mut hart, CFG_MATCH, [0, LINUX_MASK, flags, 2, 0]),
            (SUCCESS, 2)
        );
        assert!(!hart.counter_stopped(counter::INSTRET));
        run(&mut hart, 7);
        assert_eq!(hart.counter(counter::INSTRET), 7);
        assert!(hart.counter_stopped(counter::CYCLE));
    }

    #[test]
    fn start_sets_the_initial_value_and_stop_freezes_it() {
        let mut hart = hart();
        let start = [0, 1, START_SET_INIT_VALUE, 1000, 0];
        assert_eq!(call(&mut hart, START, start), (SUCCESS, 0));
        assert_eq!(hart.mcountinhibit & 0b111, 0b100);
        run(&mut hart, 10);
        assert_eq!(hart.counter(counter::CYCLE), 1010);
        // Starting a running counter fails and leaves its value alone.
        assert_eq!(call(&mut hart, START, start).0, ERR_ALREADY_STARTED);
        assert_eq!(hart.counter(counter::CYCLE), 1010);
        assert_eq!(call(&mut hart, STOP, [0, 1, 0, 0, 0]), (SUCCESS, 0));
        run(&mut hart, 10);
        assert_eq!(hart.counter(counter::CYCLE), 1010);
        assert_eq!(
            call(&mut hart, STOP, [0, 1, 0, 0, 0]).0,
            ERR_ALREADY_STOPPED
        );
        // Restarted without a value, it counts on from where it stopped.
        assert_eq!(call(&mut hart, START, [0, 1, 0, 0, 0]).0, SUCCESS);
        run(&mut hart, 5);
        assert_eq!(hart.counter(counter::CYCLE), 1015);
    }

    #[test]
    fn start_and_stop_check_their_counters_and_refuse_snapshots() {
        let mut hart = hart();
        // Index 1 is skipped: nothing real was selected.
        assert_eq!(call(&mut hart, START, [1, 1, 0, 0, 0]).0, ERR_INVALID_PARAM);
        assert_eq!(
            call(&mut hart, STOP, [0, 0b1000, 0, 0, 0]).0,
            ERR_INVALID_PARAM
        );
        assert_eq!(
            call(&mut hart, START, [0, 1, FLAG_SNAPSHOT, 0, 0]).0,
            ERR_NO_SHMEM
        );
        assert_eq!(
            call(&mut hart, STOP, [0, 1, FLAG_SNAPSHOT, 0, 0]).0,
            ERR_NO_SHMEM
        );
        assert!(hart.counter_stopped(counter::CYCLE));
        // Linux's stop of every counter at boot: both end up stopped, the result is the
        // last counter's.
        call(&mut hart, START, [0, LINUX_MASK, 0, 0, 0]);
        assert_eq!(
            call(&mut hart, STOP, [0, LINUX_MASK, 1, 0, 0]),
            (SUCCESS, 0)
        );
        assert_eq!(hart.mcountinhibit & 0b101, 0b101);
    }

    #[test]
    fn there_are_no_firmware_counters_nor_snapshot_memory() {
        let mut hart = hart();
        assert_eq!(
            call(&mut hart, FW_READ, [0, 0, 0, 0, 0]).0,
            ERR_INVALID_PARAM
        );
        assert_eq!(call(&mut hart, FW_READ_HI, [0, 0, 0, 0, 0]), (SUCCESS, 0));
        assert_eq!(
            call(&mut hart, SNAPSHOT_SET_SHMEM, [0x8000_0000, 0, 0, 0, 0]).0,
            ERR_NOT_SUPPORTED
        );
    }
}
