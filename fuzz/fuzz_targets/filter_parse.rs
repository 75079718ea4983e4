#![no_main]
//! See `relay_core::domain::filter::fuzz_parse` for what is checked.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    relay_core::domain::filter::fuzz_parse(data);
});
