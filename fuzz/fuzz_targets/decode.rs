//! Arbitrary bytes as a frame: decoding must return a value or a decode error, never panic or
//! over-allocate (see `sfp_core::testkit::check_decode`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::check_decode(data) {
        panic!("{e}");
    }
});
