//! Structured inputs read from arbitrary fuzzer bytes: every byte string is some case.

use crate::coding::exponent::ExponentCoding;
use crate::dtype::DType;
use crate::format::{window_top_range, CodingLevel, Format, Rounding, Underflow};

/// An array, a format and a chunk size, read from bytes by [`Case::read`].
#[derive(Clone, Debug)]
pub struct Case {
    /// Element type.
    pub dtype: DType,
    /// Format, possibly invalid for `dtype` (encode must then refuse it).
    pub format: Format,
    /// Values per chunk (small, so that frames have several chunks).
    pub chunk_size: usize,
    /// Little-endian element bytes (a whole number of elements).
    pub values: Vec<u8>,
    /// Rows of a 2-D shape (1 for a flat array, 0 for a 0-d array of one value).
    pub rows: usize,
}

fn byte(data: &[u8], i: usize) -> u8 {
    data.get(i).copied().unwrap_or(0)
}

impl Case {
    /// Bytes 0..8 choose dtype, widths, modes, window, seed and chunk size; the rest are the values.
    /// Widths may exceed the dtype's (one in sixteen cases) to exercise argument checking.
    pub fn read(data: &[u8]) -> Self {
        let dtype = super::dtype_from_byte(byte(data, 0));
        let (src_e, src_m) = (dtype.exp_bits(), dtype.man_bits());
        let (b1, b2, b3, b4) = (byte(data, 1), byte(data, 2), byte(data, 3), byte(data, 4));
        let wild = b3 & 0xf0 == 0xf0;
        let exp_bits = match b1 {
            0 => None,
            b if wild => Some(u32::from(b % 16)),
            b => Some(1 + u32::from(b) % src_e),
        };
        let man_bits = match b2 {
            0xff => None,
            b if wild => Some(u32::from(b) % 64),
            b => Some(u32::from(b) % (src_m + 1)),
        };
        let rounding = Rounding::ALL[usize::from(b3 & 3) % Rounding::ALL.len()];
        let underflow = Underflow::ALL[usize::from((b3 >> 2) & 1)];
        let coding = ExponentCoding::ALL[usize::from(b3 >> 3) % ExponentCoding::ALL.len()];
        let window_top = match exp_bits {
            Some(e) if b4 & 0x80 != 0 && e >= 1 && e < src_e => {
                let (lo, hi) = window_top_range(dtype, e);
                Some(lo + i32::from(b4 & 0x7f) % (hi - lo + 1))
            }
            _ => None,
        };
        let format = Format {
            exp_bits,
            man_bits,
            rounding,
            underflow,
            window_top,
            seed: u64::from(byte(data, 5)),
            exponent_coding: coding,
            level: CodingLevel::from_number(u32::from(b3 >> 6) % 3 + 1).unwrap_or_default(),
            container: crate::container::Container::Window,
        };
        let chunk_size = 1 + usize::from(byte(data, 6)) * 3;
        let rows = usize::from(byte(data, 7) % 4);
        let size = dtype.size();
        let body = data.get(8..).unwrap_or(&[]);
        let mut values = body[..body.len() / size * size].to_vec();
        if rows == 0 {
            values.truncate(size);
            values.resize(size, 0);
        }
        Self {
            dtype,
            format,
            chunk_size,
            values,
            rows,
        }
    }

    /// The shape: 0-d, 1-D, or 2-D with `rows` rows when they divide the length.
    pub fn shape(&self) -> Vec<u64> {
        let n = (self.values.len() / self.dtype.size()) as u64;
        match self.rows {
            0 => vec![],
            r if r > 1 && n.is_multiple_of(r as u64) => vec![r as u64, n / r as u64],
            _ => vec![n],
        }
    }
}

/// A code width (0..=16, the widest a coder takes) from byte 0 and codes from the following little-endian pairs, masked to the
/// width. Byte 1's top bit asks for codes packed just under the top (small deltas, as real exponents
/// are) so that the coders' compact paths are reached too.
pub fn codes(data: &[u8]) -> (u32, Vec<u16>) {
    let width = u32::from(byte(data, 0)) % 17;
    let mask = ((1u32 << width) - 1) as u16;
    let body = data.get(2..).unwrap_or(&[]);
    let skewed = byte(data, 1) & 0x80 != 0;
    let codes = body
        .chunks_exact(2)
        .map(|p| {
            let v = u16::from_le_bytes([p[0], p[1]]);
            if skewed {
                // Zero code, or within 3 of the top.
                if p[0] & 0x0f == 0 {
                    0
                } else {
                    mask.saturating_sub(u16::from(p[1] & 3))
                }
            } else {
                v & mask
            }
        })
        .collect();
    (width, codes)
}
