//! The Supervisor Binary Interface, answered by the emulator itself (SBI 2.0): Base, TIME,
//! IPI, RFENCE, HSM, SRST and DBCN. There is no M-mode firmware in the guest.

use pandare_core::ShutdownKind;

use super::Bus;
use crate::hart::{irq, Hart};

const SUCCESS: i64 = 0;
const ERR_NOT_SUPPORTED: i64 = -2;
const ERR_INVALID_PARAM: i64 = -3;
const ERR_ALREADY_AVAILABLE: i64 = -6;

const EXT_BASE: u64 = 0x10;
const EXT_TIME: u64 = 0x5449_4d45;
const EXT_IPI: u64 = 0x73_5049;
const EXT_RFENCE: u64 = 0x5246_4e43;
const EXT_HSM: u64 = 0x48_534d;
const EXT_SRST: u64 = 0x5352_5354;
const EXT_DBCN: u64 = 0x4442_434e;

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
    let args = [hart.x[10], hart.x[11], hart.x[12]];
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
            EXT_BASE | EXT_TIME | EXT_IPI | EXT_RFENCE | EXT_HSM | EXT_SRST | EXT_DBCN
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

fn debug_console(function: u64, args: [u64; 3], bus: &mut Bus) -> (i64, i64, Outcome) {
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
