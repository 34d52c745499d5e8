//! The Huffman exponent coder: arbitrary codes must round-trip, and arbitrary bytes must decode to an
//! error or to codes that fit the width and re-encode to themselves, never a panic
//! (see `sfp_core::testkit::check_coder`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfp_core::exponent::Coder;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::check_coder(Coder::Huffman, data) {
        panic!("{e}");
    }
});
