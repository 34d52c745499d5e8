//! Arbitrary elements and formats: every SIMD level this CPU has must produce the scalar level's
//! quantized bits and frame bytes, at every coding level (see `sfp_core::testkit::simd`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::simd::check_simd_parity(data) {
        panic!("{e}");
    }
});
