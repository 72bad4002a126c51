//! x87, MMX, SSE and SSE2 instructions, with the semantics of the `pandare-x86-float` crate.
//!
//! Not yet wired: [`handles`] answers false, so these instructions raise #UD in `exec.rs`.

use iced_x86::Instruction;

use crate::cpu::{Event, X86Cpu};
use crate::Fault;

/// Whether `instruction` is an x87, MMX, SSE or SSE2 instruction this module executes.
pub(crate) fn handles(instruction: &Instruction) -> bool {
    let _ = instruction;
    false
}

/// Executes an instruction [`handles`] accepted (RIP already points past it).
pub(crate) fn execute(cpu: &mut X86Cpu, instruction: &Instruction) -> Result<Event, Fault> {
    let _ = (cpu, instruction);
    Err(Fault::ud())
}
