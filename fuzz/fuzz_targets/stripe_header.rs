#![no_main]
//! See `relay_core::providers::fuzzing::stripe_header` for the input layout and what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relay_core::providers::fuzzing::stripe_header(data);
});
