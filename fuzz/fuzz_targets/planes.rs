//! The planes chunk coder: arbitrary words must round-trip at both speed-aware levels and every
//! SIMD level, and arbitrary bytes must decode to an error or to words, the same at every level,
//! never a panic (see `sfp_core::testkit::planes::check_planes`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::planes::check_planes(data) {
        panic!("{e}");
    }
});
