//! Flat little-endian bit-packing of fixed-width fields (LSB first), widths 0..=64.

use crate::error::{Error, Result};

/// Bytes needed for `n` fields of `width` bits.
///
/// # Errors
/// [`Error::InvalidArgument`] when the size does not fit in `usize`.
pub fn packed_len(n: usize, width: u32) -> Result<usize> {
    n.checked_mul(width as usize)
        .and_then(|bits| bits.checked_add(7))
        .map(|bits| bits / 8)
        .ok_or_else(|| Error::invalid(format!("{n} fields of {width} bits overflow usize")))
}

/// Appends the low `width` bits of each value to `out`, LSB first.
pub fn pack<I: IntoIterator<Item = u64>>(values: I, width: u32, out: &mut Vec<u8>) {
    let mut writer = BitWriter::new(width, out);
    values.into_iter().for_each(|v| writer.push(v));
    writer.finish();
}

/// Appends fixed-width fields to a byte vector one at a time, LSB first.
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    width: u32,
    mask: u64,
    acc: u128,
    filled: u32,
}

impl<'a> BitWriter<'a> {
    /// A writer of `width`-bit fields (0..=64) appending to `out`.
    pub fn new(width: u32, out: &'a mut Vec<u8>) -> Self {
        Self {
            out,
            width,
            mask: low_mask(width),
            acc: 0,
            filled: 0,
        }
    }

    /// Appends the low `width` bits of `v`.
    #[inline(always)]
    pub fn push(&mut self, v: u64) {
        self.acc |= u128::from(v & self.mask) << self.filled;
        self.filled += self.width;
        if self.filled >= 64 {
            self.out.extend_from_slice(&(self.acc as u64).to_le_bytes());
            self.acc >>= 64;
            self.filled -= 64;
        }
    }

    /// Flushes the last partial bytes.
    pub fn finish(self) {
        let tail = self.filled.div_ceil(8) as usize;
        self.out
            .extend_from_slice(&(self.acc as u64).to_le_bytes()[..tail]);
    }
}

/// Reads `n` fields of `width` bits from `bytes` (exactly [`packed_len`] bytes) and hands each to `sink`.
///
/// # Errors
/// [`Error::Decode`] when `bytes` is not exactly the packed length.
pub fn unpack(bytes: &[u8], n: usize, width: u32, mut sink: impl FnMut(usize, u64)) -> Result<()> {
    let expected = packed_len(n, width).map_err(|e| Error::decode(e.to_string()))?;
    if bytes.len() != expected {
        return Err(Error::decode(format!(
            "packed stream of {n} values at {width} bits should be {expected} bytes, found {}",
            bytes.len()
        )));
    }
    if width == 0 {
        (0..n).for_each(|i| sink(i, 0));
        return Ok(());
    }
    let mask = low_mask(width);
    let mut acc: u128 = 0;
    let mut filled: u32 = 0;
    let mut words = bytes.chunks(8);
    for i in 0..n {
        if filled < width {
            let mut word = [0u8; 8];
            if let Some(w) = words.next() {
                word[..w.len()].copy_from_slice(w);
            }
            acc |= u128::from(u64::from_le_bytes(word)) << filled;
            filled += 64;
        }
        sink(i, (acc as u64) & mask);
        acc >>= width;
        filled -= width;
    }
    Ok(())
}

/// The low `width` bits set (`width` in 0..=64).
pub fn low_mask(width: u32) -> u64 {
    if width >= 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_width() {
        for width in 0..=64u32 {
            for n in [0usize, 1, 7, 8, 9, 63, 64, 65, 200] {
                let values: Vec<u64> = (0..n as u64)
                    .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) & low_mask(width))
                    .collect();
                let mut out = Vec::new();
                pack(values.iter().copied(), width, &mut out);
                assert_eq!(out.len(), packed_len(n, width).unwrap());
                let mut back = vec![0u64; n];
                unpack(&out, n, width, |i, v| back[i] = v).unwrap();
                assert_eq!(back, values, "width {width} n {n}");
            }
        }
    }

    #[test]
    fn wrong_length_is_a_decode_error() {
        let mut out = Vec::new();
        pack([1u64, 2, 3], 5, &mut out);
        assert!(unpack(&out[..1], 3, 5, |_, _| {}).is_err());
        out.push(0);
        assert!(unpack(&out, 3, 5, |_, _| {}).is_err());
    }
}
