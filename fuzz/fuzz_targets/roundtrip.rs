//! Arbitrary floats in an arbitrary format: decode(encode(x, f)) == quantize(x, f) bit for bit
//! (see `sfp_core::testkit::check_roundtrip`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::check_roundtrip(data) {
        panic!("{e}");
    }
});
