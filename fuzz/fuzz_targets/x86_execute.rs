//! The x86 CPU on arbitrary machine code: the first byte picks privilege, mode (64-bit or
//! compatibility) and single steps or pre-decoded blocks; the rest is code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    pandare_x86::fuzzing::execute_bytes(data);
});
