//! Harness of the `entropy_bytes` fuzz target (and its corpus replay): the rANS coder's byte
//! variant, the planes' coder of symbols of up to 8 bits.

use super::{at_every_level, decode_error, Failure};
use crate::coding::exponent::entropy::{self, byte_table, decode_bytes, encode_bytes};
use crate::coding::exponent::IDENTITY;

/// Round-trips codes taken from `data` through the byte variant, encoding and decoding at every
/// SIMD level (the same stream and codes at each), and feeds the bytes to the decoder as a hostile
/// stream: an error or codes within the width, the same at every level, never a panic.
///
/// `data[0]`: the width (`1 + data[0] % 8`); `data[1]`: the hostile stream's code count (`64 *
/// data[1]`); the rest: one code per byte (masked to the width), and the hostile stream.
///
/// # Errors
/// A description of the first property that failed.
pub fn check_entropy_bytes(data: &[u8]) -> Result<(), Failure> {
    let width = 1 + u32::from(data.first().copied().unwrap_or(0)) % 8;
    let body = data.get(2..).unwrap_or(&[]);
    let codes: Vec<u16> = body
        .iter()
        .map(|&b| u16::from(b) & ((1 << width) - 1))
        .collect();
    let streams = at_every_level(|| {
        let mut stream = Vec::new();
        encode_for_seed(&codes, width, &mut stream);
        stream
    });
    if streams.iter().any(|s| s != &streams[0]) {
        return Err("the SIMD levels encode different byte-variant streams".into());
    }
    let want: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
    for back in at_every_level(|| decode(&streams[0], width, codes.len())) {
        match back {
            Ok(back) if back == want => {}
            Ok(_) => {
                return Err(format!(
                    "byte-variant round trip at width {width} changed the codes"
                ))
            }
            Err(e) => {
                return Err(format!(
                    "the byte variant cannot decode its own stream: {e}"
                ))
            }
        }
    }
    let n = 64 * usize::from(data.get(1).copied().unwrap_or(0));
    let outcomes = at_every_level(|| decode(body, width, n));
    if outcomes.iter().any(|o| o != &outcomes[0]) {
        return Err("the SIMD levels decode a hostile byte-variant stream differently".into());
    }
    match &outcomes[0] {
        Ok(out) if out.iter().any(|&c| u32::from(c) >> width != 0) => Err(format!(
            "the byte variant decoded a code beyond {width} bits from a hostile stream"
        )),
        Ok(_) => Ok(()),
        Err(e) => decode_error("byte-variant decode", e.clone()),
    }
}

fn decode(stream: &[u8], width: u32, n: usize) -> Result<Vec<u8>, crate::Error> {
    let mut out = vec![0u8; n];
    decode_bytes(stream, width, &IDENTITY, &mut out).map(|()| out)
}

/// Appends the byte-variant stream of `codes` (of `width` bits) to `out`: a seed whose mutations
/// reach past the stream's header.
pub fn encode_for_seed(codes: &[u16], width: u32, out: &mut Vec<u8>) {
    if let Some(table) = byte_table(&entropy::histogram(codes, width)) {
        encode_bytes(codes, width, &table, out);
    }
}
