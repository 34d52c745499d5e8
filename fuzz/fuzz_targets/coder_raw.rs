//! The raw (flat bit-packed) exponent coder: round trips and hostile streams.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sfp_core::exponent::Coder;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = sfp_core::testkit::check_coder(Coder::Raw, data) {
        panic!("{e}");
    }
});
