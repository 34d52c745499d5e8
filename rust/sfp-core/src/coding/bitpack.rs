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

/// Checks that a packed stream of `len` bytes holds exactly `n` fields of `width` bits.
///
/// # Errors
/// [`Error::Decode`] when `len` is not [`packed_len`].
pub fn check_packed_len(len: usize, n: usize, width: u32) -> Result<()> {
    let expected = packed_len(n, width).map_err(|e| Error::decode(e.to_string()))?;
    if len != expected {
        return Err(Error::decode(format!(
            "packed stream of {n} values at {width} bits should be {expected} bytes, found {len}"
        )));
    }
    Ok(())
}

/// Appends the low `width` bits of each value to `out`, LSB first (`width` in 0..=64).
pub fn pack<I: IntoIterator<Item = u64>>(values: I, width: u32, out: &mut Vec<u8>) {
    let width = width.min(64);
    let packer = packer(width);
    let step = 8 * width as usize;
    let mut block = [0u64; 64];
    let mut filled = 0usize;
    let mut words = [0u8; 8 * 64];
    for v in values {
        block[filled] = v;
        filled += 1;
        if filled == 64 {
            packer(&block, &mut words[..step]);
            out.extend_from_slice(&words[..step]);
            filled = 0;
        }
    }
    if filled > 0 {
        block[filled..].fill(0);
        packer(&block, &mut words[..step]);
        out.extend_from_slice(&words[..(filled * width as usize).div_ceil(8)]);
    }
}

/// Appends the low `width` bits of each `u16` code to `out`, LSB first (`width` in 0..=16): the
/// same bytes as [`pack`], written block by block into place (one byte per code at width 8).
pub fn pack_u16(codes: &[u16], width: u32, out: &mut Vec<u8>) {
    let width = width.min(16);
    let start = out.len();
    let len = (codes.len() * width as usize).div_ceil(8);
    out.resize(start + len, 0);
    let dst = &mut out[start..];
    if width == 8 {
        for (d, &c) in dst.iter_mut().zip(codes) {
            *d = c as u8;
        }
        return;
    }
    let packer = packer(width);
    let step = 8 * width as usize;
    let mut block = [0u64; 64];
    let mut words = [0u8; 8 * 16];
    for (k, group) in codes.chunks(64).enumerate() {
        for (b, &c) in block.iter_mut().zip(group) {
            *b = u64::from(c);
        }
        let at = k * step;
        if group.len() == 64 {
            packer(&block, &mut dst[at..at + step]);
        } else {
            block[group.len()..].fill(0);
            packer(&block, &mut words[..step]);
            let tail = dst.len() - at;
            dst[at..].copy_from_slice(&words[..tail]);
        }
    }
}

/// Unpacks `out.len()` codes of `width` bits (0..=16) from exactly [`packed_len`] bytes.
///
/// # Errors
/// [`Error::Decode`] when `bytes` is not exactly the packed length.
pub fn unpack_u16(bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    let n = out.len();
    let width = width.min(16);
    check_packed_len(bytes.len(), n, width)?;
    if width == 8 {
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = u16::from(b);
        }
        return Ok(());
    }
    let unpacker = unpacker(width);
    let mut values = [0u64; 64];
    for (k, group) in out.chunks_mut(64).enumerate() {
        unpack_group(unpacker, width, bytes, k, &mut values);
        for (o, &v) in group.iter_mut().zip(values.iter()) {
            *o = v as u16;
        }
    }
    Ok(())
}

/// Packs 64 values (low `width` bits of each) into exactly `8 * width` bytes, LSB first.
pub(crate) type Packer = fn(&[u64; 64], &mut [u8]);
/// Unpacks 64 values of `width` bits from exactly `8 * width` bytes.
pub(crate) type Unpacker = fn(&[u8], &mut [u64; 64]);

/// Unpacks group `k` (64 fields) of a stream packed at `width` bits with `unpacker` (the one for
/// `width`); fields past the end of the stream read as 0, since a stream's last group is cut short.
#[inline(always)]
pub(crate) fn unpack_group(
    unpacker: Unpacker,
    width: u32,
    stream: &[u8],
    k: usize,
    values: &mut [u64; 64],
) {
    let step = 8 * width.min(64) as usize;
    let at = k * step;
    if let Some(whole) = stream.get(at..at + step) {
        unpacker(whole, values);
    } else {
        let mut padded = [0u8; 8 * 64];
        let tail = stream.get(at..).unwrap_or_default();
        let len = tail.len().min(step);
        padded[..len].copy_from_slice(&tail[..len]);
        unpacker(&padded[..step], values);
    }
}

/// The word-at-a-time packer specialised for `width` (clamped to 64).
pub(crate) fn packer(width: u32) -> Packer {
    PACKERS[width.min(64) as usize]
}

/// The word-at-a-time unpacker specialised for `width` (clamped to 64).
pub(crate) fn unpacker(width: u32) -> Unpacker {
    UNPACKERS[width.min(64) as usize]
}

macro_rules! by_width {
    ($f:ident) => {
        [
            $f::<0>, $f::<1>, $f::<2>, $f::<3>, $f::<4>, $f::<5>, $f::<6>, $f::<7>, $f::<8>,
            $f::<9>, $f::<10>, $f::<11>, $f::<12>, $f::<13>, $f::<14>, $f::<15>, $f::<16>,
            $f::<17>, $f::<18>, $f::<19>, $f::<20>, $f::<21>, $f::<22>, $f::<23>, $f::<24>,
            $f::<25>, $f::<26>, $f::<27>, $f::<28>, $f::<29>, $f::<30>, $f::<31>, $f::<32>,
            $f::<33>, $f::<34>, $f::<35>, $f::<36>, $f::<37>, $f::<38>, $f::<39>, $f::<40>,
            $f::<41>, $f::<42>, $f::<43>, $f::<44>, $f::<45>, $f::<46>, $f::<47>, $f::<48>,
            $f::<49>, $f::<50>, $f::<51>, $f::<52>, $f::<53>, $f::<54>, $f::<55>, $f::<56>,
            $f::<57>, $f::<58>, $f::<59>, $f::<60>, $f::<61>, $f::<62>, $f::<63>, $f::<64>,
        ]
    };
}

static PACKERS: [Packer; 65] = by_width!(pack64);
static UNPACKERS: [Unpacker; 65] = by_width!(unpack64);

/// Expands `$body` once per block position with `$i` a literal, so every shift and word index is a
/// constant once the width is.
macro_rules! unroll64 {
    ($i:ident => $body:block) => {
        unroll64!(@ $i $body; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63)
    };
    (@ $i:ident $body:block; $($n:literal)*) => {
        $({
            const $i: usize = $n;
            $body
        })*
    };
}

/// Packs 64 fields of `B` bits into `B` words: fully unrolled, every shift a constant.
#[inline(never)]
fn pack64<const B: u32>(values: &[u64; 64], out: &mut [u8]) {
    if B == 0 {
        return;
    }
    let mask = low_mask(B);
    if B <= 8 {
        // Eight fields fill exactly `B` bytes: shifted into one word per eight.
        for (g, group) in values.chunks_exact(8).enumerate() {
            let mut w = 0u64;
            for (j, &v) in group.iter().enumerate() {
                w |= (v & mask) << (j as u32 * B);
            }
            out[g * B as usize..(g + 1) * B as usize]
                .copy_from_slice(&w.to_le_bytes()[..B as usize]);
        }
        return;
    }
    let mut words = [0u64; 64];
    unroll64!(I => {
        let bit = I * B as usize;
        let (w, off) = (bit / 64, (bit % 64) as u32);
        let v = values[I] & mask;
        words[w] |= v << off;
        if off + B > 64 {
            words[w + 1] |= v >> (64 - off);
        }
    });
    for (dst, w) in out.chunks_exact_mut(8).zip(words.iter()) {
        dst.copy_from_slice(&w.to_le_bytes());
    }
}

/// Unpacks 64 fields of `B` bits from `B` words: fully unrolled, each word read straight from `bytes`
/// at a constant offset (no staging array to zero and fill).
#[inline(never)]
fn unpack64<const B: u32>(bytes: &[u8], values: &mut [u64; 64]) {
    let Some(bytes) = bytes.get(..8 * B as usize) else {
        return;
    };
    if B == 0 {
        *values = [0; 64];
        return;
    }
    let mask = low_mask(B);
    if B <= 8 {
        // Eight fields fill exactly `B` bytes: one word per eight, split by a vector of shifts.
        for (g, group) in values.chunks_exact_mut(8).enumerate() {
            let mut b = [0u8; 8];
            b[..B as usize].copy_from_slice(&bytes[g * B as usize..(g + 1) * B as usize]);
            let w = u64::from_le_bytes(b);
            for (j, v) in group.iter_mut().enumerate() {
                *v = (w >> (j as u32 * B)) & mask;
            }
        }
        return;
    }
    let word = |w: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[8 * w..8 * w + 8]);
        u64::from_le_bytes(b)
    };
    unroll64!(I => {
        let bit = I * B as usize;
        let (w, off) = (bit / 64, (bit % 64) as u32);
        let mut v = word(w) >> off;
        if off + B > 64 {
            v |= word(w + 1) << (64 - off);
        }
        values[I] = v & mask;
    });
}

/// Appends fixed-width fields to a byte vector one at a time, LSB first.
#[cfg(test)]
pub struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    width: u32,
    mask: u64,
    acc: u128,
    filled: u32,
}

#[cfg(test)]
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
    check_packed_len(bytes.len(), n, width)?;
    let width = width.min(64);
    let unpacker = unpacker(width);
    let mut values = [0u64; 64];
    for (k, start) in (0..n).step_by(64).enumerate() {
        let count = (n - start).min(64);
        unpack_group(unpacker, width, bytes, k, &mut values);
        for (i, &v) in values[..count].iter().enumerate() {
            sink(start + i, v);
        }
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
    fn u16_packers_match_the_generic_ones() {
        for width in 0..=16u32 {
            for n in [0usize, 1, 7, 8, 9, 63, 64, 65, 200] {
                let codes: Vec<u16> = (0..n as u64)
                    .map(|i| {
                        (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) as u16 & low_mask(width) as u16
                    })
                    .collect();
                let mut generic = vec![0xAAu8];
                pack(codes.iter().map(|&c| u64::from(c)), width, &mut generic);
                let mut fast = vec![0xAAu8];
                pack_u16(&codes, width, &mut fast);
                assert_eq!(fast, generic, "width {width} n {n}");
                let mut back = vec![0u16; n];
                unpack_u16(&fast[1..], width, &mut back).unwrap();
                assert_eq!(back, codes, "width {width} n {n}");
                if fast.len() > 1 {
                    let short = &fast[1..fast.len() - 1];
                    assert!(unpack_u16(short, width, &mut back).is_err());
                }
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
