//! The mantissa coder: arbitrary values must round-trip through its lane streams, arbitrary bytes
//! must decode to an error or to values within the width that re-encode to themselves, and every
//! plan's split and rebuild of packed mantissas must invert each other, never a panic
//! (see `sfp_core::testkit::mantissa::check_mantissa`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::mantissa::check_mantissa(data) {
        panic!("{e}");
    }
});
