#![no_main]
//! See `relay_core::providers::fuzzing::slack_request` for the input layout and what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relay_core::providers::fuzzing::slack_request(data);
});
