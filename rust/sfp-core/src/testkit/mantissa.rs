//! Harness of the `mantissa` fuzz target (and its corpus replay): the mantissa coder's lane streams
//! and its split / rebuild of a chunk's packed mantissas.

use super::{decode_error, Failure};
use crate::coding::bitpack::{self, low_mask};
use crate::coding::mantissa::{self, LaneCoder, Plan, MAX_TOP};

/// Every lane coder, the Huffman one with and without a saving threshold.
const LANE_CODERS: [LaneCoder; 3] = [
    LaneCoder::Rans,
    LaneCoder::Huffman { saving_divisor: 0 },
    LaneCoder::Huffman { saving_divisor: 64 },
];

/// Values of `width` bits read from `data`: 8 bytes each, shifted right by `shift` so that low
/// entropy (mostly small) lanes appear as well as uniform ones.
fn values(data: &[u8], width: u32, shift: u32) -> Vec<u64> {
    data.chunks(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            (u64::from_le_bytes(b) >> shift) & low_mask(width)
        })
        .collect()
}

/// Round-trips values taken from `data` through the lane coder, feeds the raw bytes to its decoder
/// as a hostile stream (an error, or values within the width that re-encode to themselves), and
/// checks that splitting packed mantissas by every plan and rebuilding them gives them back.
///
/// `data[0]`: width (mod 65) and, in its top bits, the lane coder; `data[1]`: shift (mod 64) and the
/// hostile value count (times 17).
///
/// # Errors
/// A description of the first property that failed.
pub fn check_mantissa(data: &[u8]) -> Result<(), Failure> {
    let width = u32::from(data.first().copied().unwrap_or(0)) % 65;
    let knob = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or(&[]);
    let vals = values(body, width, u32::from(knob) % 64);
    let coder = LANE_CODERS[usize::from(data.first().copied().unwrap_or(0) >> 6) % 3];
    let mut stream = Vec::new();
    mantissa::encode(&vals, width, coder, &mut stream);
    let mut back = vec![0u64; vals.len()];
    mantissa::decode(&stream, width, &mut back)
        .map_err(|e| format!("mantissa coder cannot decode its own stream: {e}"))?;
    if back != vals {
        return Err(format!(
            "mantissa round trip at width {width} changed the values"
        ));
    }
    let n = usize::from(knob) * 17;
    let mut hostile = vec![0u64; n];
    match mantissa::decode(body, width, &mut hostile) {
        Ok(()) => {
            if hostile.iter().any(|&v| v & !low_mask(width) != 0) {
                return Err(format!(
                    "hostile stream decoded a value beyond {width} bits"
                ));
            }
            let mut again = Vec::new();
            mantissa::encode(&hostile, width, coder, &mut again);
            let mut twice = vec![0u64; n];
            mantissa::decode(&again, width, &mut twice)
                .map_err(|e| format!("cannot decode a re-encoded stream: {e}"))?;
            if twice != hostile {
                return Err("re-encoding decoded values changed them".into());
            }
        }
        Err(e) => decode_error("mantissa decode", e)?,
    }
    check_plans(&vals, width.clamp(1, 52))
}

/// Splits and rebuilds packed mantissas (with exponent codes derived from the values) by every plan.
fn check_plans(vals: &[u64], man_bits: u32) -> Result<(), Failure> {
    let codes: Vec<u16> = vals.iter().map(|&v| (v % 5) as u16).collect();
    let mants: Vec<u64> = vals
        .iter()
        .zip(&codes)
        .map(|(&v, &c)| if c == 0 { 0 } else { v & low_mask(man_bits) })
        .collect();
    let mut packed = Vec::new();
    bitpack::pack(mants.iter().copied(), man_bits, &mut packed);
    for top in 0..=MAX_TOP.min(man_bits) {
        for zero_skip in [false, true] {
            let plan = Plan {
                top,
                zero_skip,
                low_flat: false,
            };
            let Some((joint, low)) = mantissa::split(plan, &codes, &packed, man_bits) else {
                return Err(format!("{plan:?}: split refused zero mantissas"));
            };
            let mut stream = Vec::new();
            mantissa::encode(&low, man_bits - top, LaneCoder::Rans, &mut stream);
            let tops: Vec<u16> = joint.iter().map(|&j| j & ((1 << top) - 1)).collect();
            let mut rebuilt = Vec::new();
            mantissa::rebuild(plan, &stream, &codes, &tops, man_bits, &mut rebuilt)
                .map_err(|e| format!("{plan:?}: cannot rebuild: {e}"))?;
            if rebuilt != packed {
                return Err(format!("{plan:?}: rebuild changed the mantissas"));
            }
        }
    }
    Ok(())
}
