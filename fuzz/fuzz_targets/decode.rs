//! The instruction decoder, disassembler and block-end classification on arbitrary
//! instruction streams (16/32-bit little-endian words by the RISC-V length rule).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pandare_riscv::fuzzing::decode_words(data);
});
