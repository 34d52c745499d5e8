//! The rANS coder's byte variant (the planes' coder of narrow symbols): arbitrary codes must
//! round-trip alike at every SIMD level, and arbitrary bytes must decode to an error or to codes
//! within the width, the same at every level, never a panic
//! (see `sfp_core::testkit::entropy_bytes::check_entropy_bytes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::entropy_bytes::check_entropy_bytes(data) {
        panic!("{e}");
    }
});
