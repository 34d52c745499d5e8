//! Arbitrary bytes as a frame: decoding must return a value or an error, never panic or over-allocate.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(info) = sfp_core::inspect(data) {
        let header = &info.header;
        // The header was validated against the input, so this allocation is bounded by it.
        let mut out = vec![0u8; header.len() * header.target.dtype.size()];
        let _ = sfp_core::decode_into(data, &mut out, Some(1));
    }
});
