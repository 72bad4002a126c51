//! The whole executor (decoder, block cache, traps, CSRs, MMU, devices): the input is a raw
//! program loaded at the start of RAM of a fresh bare-metal virt machine and run for a
//! bounded virtual-time budget, twice, with both runs required to agree.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pandare_riscv::fuzzing::run_bare_metal(data);
});
