//! Mutated frames with their checksums recomputed, so the mutations reach the header validation and
//! the chunk decoder instead of stopping at a checksum (seeded with real frames).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::check_decode_repaired(data) {
        panic!("{e}");
    }
});
