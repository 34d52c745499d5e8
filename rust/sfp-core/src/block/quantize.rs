//! Block scales and element codes from values, and values back from them (the rules are in the
//! module doc of [`crate::block`]).

use rayon::prelude::*;

use super::{emax, BlockFormat};
use crate::cast::{cast_bits, Overflow};
use crate::dtype::{load, DType};
use crate::error::{Error, Result};

/// The codes of a block-scaled array: one byte per element, one per block scale.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocks {
    /// Element codes (the element type's bits, one per byte).
    pub elements: Vec<u8>,
    /// Block scales (the scale type's bits), blocks of each row in order.
    pub scales: Vec<u8>,
    /// The scale of the whole tensor (1 for the formats without one).
    pub tensor_scale: f32,
}

/// Biased E8M0 field of the smallest scale, 2^-127, and of the NaN scale.
const E8M0_MIN: u8 = 0;
const E8M0_NAN: u8 = 0xFF;
/// NVFP4's tensor scale maps the largest value to the product of the largest E2M1 and E4M3 values.
const NVFP4_RANGE: f64 = 6.0 * 448.0;

fn to_f64(bits: u64, dtype: DType) -> f64 {
    f64::from_bits(cast_bits(bits, dtype, DType::F64, Overflow::AsType))
}

fn from_f64(x: f64, dtype: DType, overflow: Overflow) -> u8 {
    cast_bits(x.to_bits(), DType::F64, dtype, overflow) as u8
}

/// `floor(log2(x))` of a positive finite `x`.
fn floor_log2(x: f64) -> i32 {
    let bits = x.to_bits();
    let field = ((bits >> 52) & 0x7FF) as i32;
    if field == 0 {
        // Subnormal: the top set bit of the fraction.
        -1074 + 63 - (bits & ((1 << 52) - 1)).leading_zeros() as i32
    } else {
        field - 1023
    }
}

/// The length of the last axis (1 for a 0-d array) and the number of rows.
fn rows(shape: &[u64], n: usize) -> (usize, usize) {
    let last = shape.last().map_or(1, |&d| d as usize);
    (last, n.checked_div(last).unwrap_or(0))
}

/// The largest finite magnitude of `values` and whether any is NaN or infinite.
fn amax(values: &[f64]) -> (f64, bool) {
    values.iter().fold((0.0f64, false), |(m, special), &v| {
        if v.is_finite() {
            (m.max(v.abs()), special)
        } else {
            (m, true)
        }
    })
}

/// The element codes and scale of one block.
fn quantize_block(values: &[f64], format: BlockFormat, tensor_scale: f32, codes: &mut [u8]) -> u8 {
    let element = format.element();
    let (amax, special) = amax(values);
    if format == BlockFormat::Nvfp4 {
        if special {
            codes.fill(0);
            return 0x7F;
        }
        let ts = f64::from(tensor_scale);
        let scale = from_f64(amax / (6.0 * ts), DType::F8E4M3, Overflow::Saturate);
        let divisor = to_f64(u64::from(scale), DType::F8E4M3) * ts;
        for (c, &v) in codes.iter_mut().zip(values) {
            *c = if divisor == 0.0 {
                from_f64(0.0f64.copysign(v), element, Overflow::Saturate)
            } else {
                from_f64(v / divisor, element, Overflow::Saturate)
            };
        }
        return scale;
    }
    if special {
        codes.fill(0);
        return E8M0_NAN;
    }
    let shared = if amax == 0.0 {
        i32::from(E8M0_MIN) - 127
    } else {
        (floor_log2(amax) - emax(element)).clamp(-127, 127)
    };
    let unscale = 2f64.powi(-shared);
    for (c, &v) in codes.iter_mut().zip(values) {
        *c = from_f64(v * unscale, element, Overflow::Saturate);
    }
    (shared + 127) as u8
}

/// The tensor scale of NVFP4: `amax / (6 * 448)` in float32, 1 when that is 0 or not finite.
fn nvfp4_tensor_scale(src: &[u8], dtype: DType) -> f32 {
    let size = dtype.size();
    let amax = (0..src.len() / size)
        .into_par_iter()
        .map(|i| to_f64(load(src, size, i), dtype))
        .filter(|v| v.is_finite())
        .map(f64::abs)
        .reduce(|| 0.0, f64::max);
    let ts = (amax / NVFP4_RANGE) as f32;
    if ts == 0.0 || !ts.is_finite() {
        1.0
    } else {
        ts
    }
}

/// Quantizes `src` (little-endian `dtype` elements of `shape`) to `format`.
pub(crate) fn quantize(src: &[u8], dtype: DType, shape: &[u64], format: BlockFormat) -> Blocks {
    let size = dtype.size();
    let n = src.len() / size;
    let (last, n_rows) = rows(shape, n);
    let block = format.block();
    let per_row = last.div_ceil(block);
    let tensor_scale = if format.has_tensor_scale() {
        nvfp4_tensor_scale(src, dtype)
    } else {
        1.0
    };
    let mut elements = vec![0u8; n];
    let mut scales = vec![0u8; n_rows * per_row];
    if n_rows > 0 {
        elements
            .par_chunks_mut(last)
            .zip(scales.par_chunks_mut(per_row))
            .zip(src.par_chunks(last * size))
            .for_each(|((codes, row_scales), row)| {
                let mut values = [0f64; 32];
                for (b, scale) in row_scales.iter_mut().enumerate() {
                    let start = b * block;
                    let len = block.min(last - start);
                    for (j, v) in values[..len].iter_mut().enumerate() {
                        *v = to_f64(load(row, size, start + j), dtype);
                    }
                    *scale = quantize_block(
                        &values[..len],
                        format,
                        tensor_scale,
                        &mut codes[start..start + len],
                    );
                }
            });
    }
    Blocks {
        elements,
        scales,
        tensor_scale,
    }
}

/// The values of `blocks` as little-endian `dtype` elements of `shape`, into `out`.
///
/// # Errors
/// [`Error::InvalidArgument`] when the element or scale count does not match `shape`.
pub(crate) fn dequantize(
    blocks: &Blocks,
    format: BlockFormat,
    shape: &[u64],
    dtype: DType,
    out: &mut [u8],
) -> Result<()> {
    let size = dtype.size();
    let n = out.len() / size;
    let (last, n_rows) = rows(shape, n);
    let block = format.block();
    let per_row = last.div_ceil(block);
    if blocks.elements.len() != n || blocks.scales.len() != n_rows * per_row {
        return Err(Error::invalid(format!(
            "{} holds {n} values in {} blocks: got {} elements and {} scales",
            format.name(),
            n_rows * per_row,
            blocks.elements.len(),
            blocks.scales.len()
        )));
    }
    if n_rows == 0 {
        return Ok(());
    }
    let (element, scale_type) = (format.element(), format.scale());
    let ts = f64::from(blocks.tensor_scale);
    out.par_chunks_mut(last * size)
        .zip(blocks.elements.par_chunks(last))
        .zip(blocks.scales.par_chunks(per_row))
        .for_each(|((row, codes), row_scales)| {
            for (j, (dst, &code)) in row.chunks_exact_mut(size).zip(codes).enumerate() {
                let scale = row_scales[j / block];
                let e = to_f64(u64::from(code), element);
                let value = if format == BlockFormat::Nvfp4 {
                    let s = to_f64(u64::from(scale), scale_type);
                    // Hardware dequantizes NVFP4 in float32.
                    f64::from((e * s * ts) as f32)
                } else if scale == E8M0_NAN {
                    f64::NAN
                } else {
                    e * 2f64.powi(i32::from(scale) - 127)
                };
                let bits = cast_bits(value.to_bits(), DType::F64, dtype, Overflow::AsType);
                dst.copy_from_slice(&bits.to_le_bytes()[..size]);
            }
        });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mx(values: &[f32], format: BlockFormat) -> Blocks {
        let src: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        quantize(&src, DType::F32, &[values.len() as u64], format)
    }

    #[test]
    fn mx_scale_is_floor_log2_amax_minus_emax() {
        // amax 100: floor(log2) = 6, E4M3's emax 8: scale 2^-2, field 125.
        let b = mx(&[100.0, -3.0, 0.5], BlockFormat::Mxfp8E4m3);
        assert_eq!(b.scales, vec![125]);
        // 400 lies halfway between 384 (mantissa 100) and 416: even wins.
        assert_eq!(b.elements[0], 0x7C);
        let b = mx(&[0.0, -0.0], BlockFormat::Mxfp4);
        assert_eq!(
            (b.scales.clone(), b.elements.clone()),
            (vec![E8M0_MIN], vec![0, 0x8])
        );
        let b = mx(&[1.0, f32::NAN], BlockFormat::Mxfp4);
        assert_eq!(b.scales, vec![E8M0_NAN]);
        assert_eq!(emax(DType::F8E5M2), 15);
        assert_eq!(emax(DType::F6E2M3), 2);
        assert_eq!(emax(DType::F6E3M2), 4);
        assert_eq!(emax(DType::F4E2M1), 2);
    }

    #[test]
    fn dequantize_inverts_exact_blocks() {
        // At most 3 significant bits within E4M3's range under each block's scale: exact.
        let values: Vec<f32> = (0..70)
            .map(|i| (i % 8 - 4) as f32 * 2f32.powi(i % 7 - 4))
            .collect();
        let src: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let b = quantize(&src, DType::F32, &[70], BlockFormat::Mxfp8E4m3);
        assert_eq!(b.scales.len(), 3);
        let mut out = vec![0u8; src.len()];
        dequantize(&b, BlockFormat::Mxfp8E4m3, &[70], DType::F32, &mut out).unwrap();
        assert_eq!(out, src);
    }
}
