//! Harness of the `simd_parity` fuzz target (and its corpus replay): every SIMD level this CPU has
//! must produce the scalar level's quantized bits and frame bytes, at every coding level, and decode
//! its own frame back to them.

use super::Failure;
use crate::coding::exponent::ExponentCoding;
use crate::dtype::DType;
use crate::format::{CodingLevel, Format, Rounding, Underflow};
use crate::simd::{with_level, Level};
use crate::{decode_into, encode, quantize, Options};

/// What one SIMD level produced: whether quantize succeeded, its bits, and the frame.
type Outputs = (bool, Vec<u8>, Option<Vec<u8>>);

/// Checks SIMD-level parity on elements and a format taken from `data`.
///
/// `data[0]`: dtype; `data[1]`, `data[2]`: exponent and mantissa bits; `data[3]`: rounding, and
/// the exponent coding in its top bits; `data[4]`: underflow, and the coding level in its top bits;
/// `data[5]`: chunk size; the rest: the elements.
///
/// # Errors
/// A description of the first level whose output differs, or of a frame that does not decode to
/// its quantized values.
pub fn check_simd_parity(data: &[u8]) -> Result<(), Failure> {
    if data.len() < 6 {
        return Ok(());
    }
    let dtype = DType::WIDE[usize::from(data[0]) % 4];
    let exp_bits = match data[1] % (dtype.exp_bits() as u8 + 1) {
        0 => None,
        e => Some(u32::from(e)),
    };
    let man_bits = match data[2] % (dtype.man_bits() as u8 + 2) {
        0 => None,
        m => Some(u32::from(m - 1)),
    };
    let fmt = Format {
        exp_bits,
        man_bits,
        rounding: Rounding::ALL[usize::from(data[3] & 3) % Rounding::ALL.len()],
        underflow: Underflow::ALL[usize::from(data[4] & 1)],
        window_top: None,
        seed: u64::from(data[3]) << 8 | u64::from(data[4]),
        exponent_coding: ExponentCoding::ALL[usize::from(data[3] >> 2) % ExponentCoding::ALL.len()],
        level: [CodingLevel::Fast, CodingLevel::Default, CodingLevel::Max]
            [usize::from(data[4] >> 1) % 3],
        container: crate::container::Container::Window,
    };
    let chunk = 1 + usize::from(data[5]) * 7;
    let body = &data[6..];
    let src = &body[..body.len() - body.len() % dtype.size()];
    let shape = [(src.len() / dtype.size()) as u64];
    let opts = Options {
        chunk_size: Some(chunk),
        threads: Some(1),
    };
    let run = |level: Level| -> Result<Outputs, Failure> {
        with_level(level, || {
            let mut q = vec![0u8; src.len()];
            let ok = quantize(src, &mut q, dtype, &fmt, Some(1)).is_ok();
            let frame = encode(src, dtype, &shape, &fmt, &opts).ok();
            if let Some(f) = &frame {
                let mut d = vec![0u8; src.len()];
                decode_into(f, &mut d, Some(1))
                    .map_err(|e| format!("{fmt:?} at {level}: own frame does not decode: {e}"))?;
                if d != q {
                    return Err(format!("{fmt:?} at {level}: decode(encode) != quantize"));
                }
            }
            Ok((ok, q, frame))
        })
        .map_err(|e| e.to_string())?
    };
    let scalar = run(Level::Scalar)?;
    for level in Level::available() {
        if run(level)? != scalar {
            return Err(format!("{fmt:?}: level {level} differs from scalar"));
        }
    }
    Ok(())
}
