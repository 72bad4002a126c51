//! The run loops: blocks from the decoded-block cache, one instruction at a time, with
//! exceptions delivered through the IDT (or returned, in user mode) and the single-step
//! trap. [`X86Cpu::run_with`] is the entry the machine and `panda exec` use: it runs under
//! PANDA's firing protocol (`pandare_core::execution`).

use pandare_core::instrument::Instrumentation;

use crate::cpu::{Event, Exit, X86Cpu};
use crate::mmu::Access;
use crate::state::flags;

impl X86Cpu {
    /// Runs up to `budget` instructions from pre-decoded blocks, delivering exceptions
    /// through the IDT. Returns why it stopped.
    pub fn run(&mut self, budget: u64) -> Exit {
        let end = self.icount.saturating_add(budget);
        while self.icount < end {
            if self.state.halted {
                return Exit::Halted;
            }
            let block = match self.block_here() {
                Ok(block) => block,
                Err(fault) if self.user_mode => return Exit::Fault(fault),
                Err(fault) => {
                    if self.deliver_fault(fault).is_err() {
                        return Exit::TripleFault;
                    }
                    continue;
                }
            };
            self.code_written = false;
            let last = block.len() - 1;
            for n in 0..block.len() {
                if self.icount >= end || block.ip(n) != self.state.rip {
                    break;
                }
                if n == last {
                    if let Some(frame) = block.crossing {
                        // The instruction's second page: still mapped, executable, the same
                        // frame? Otherwise fault, or decode afresh.
                        let second_page = self
                            .linear_ip()
                            .map(|l| l.wrapping_add(block.size(n) - 1) & !0xfff);
                        match second_page.and_then(|l| self.translate(l, Access::Fetch, false)) {
                            Err(fault) if self.user_mode => return Exit::Fault(fault),
                            Err(fault) => {
                                if self.deliver_fault(fault).is_err() {
                                    return Exit::TripleFault;
                                }
                                break;
                            }
                            Ok(p) if p >> 12 != frame => {
                                self.blocks.remove(&block.key);
                                break;
                            }
                            Ok(_) => {}
                        }
                    }
                }
                if self.user_mode && block.is_system_call(n) {
                    return Exit::Syscall;
                }
                let single_step = self.state.rflags & flags::TF != 0;
                match self.execute_in_block(&block, n) {
                    Err(fault) if self.user_mode => return Exit::Fault(fault),
                    Ok(Event::Halted) => return Exit::Halted,
                    Ok(_) if single_step && !block.is_software_interrupt(n) => {
                        // Single-step trap after the instruction (DR6.BS).
                        self.state.dr[6] |= 1 << 14;
                        let rip = self.state.rip;
                        if self.deliver(1, None, rip, false).is_err()
                            && self.deliver(8, Some(0), rip, false).is_err()
                        {
                            return Exit::TripleFault;
                        }
                        break;
                    }
                    Ok(_) => {}
                    Err(fault) => {
                        if self.deliver_fault(fault).is_err() {
                            return Exit::TripleFault;
                        }
                        break;
                    }
                }
                if self.code_written {
                    break;
                }
            }
        }
        Exit::Budget
    }

    /// Runs up to `budget` instructions, firing the callbacks `instr` enables.
    ///
    /// Not yet wired to the firing protocol: callbacks do not fire (the x86-hooks work
    /// replaces this body with `pandare_core::execution::run` over the x86 executor).
    pub fn run_with(&mut self, instr: &mut Instrumentation, budget: u64) -> Exit {
        let _ = instr;
        self.run(budget)
    }
}
