//! The encoder's side of the planes: words cut into the symbol, lane and flat planes of a block,
//! each coded and appended.

use std::ops::Range;

use super::{low_mask, Planes, Scratch, MAX_LANES};
use crate::coding::exponent::huffman;

/// Reads little-endian words of `word_bytes` (2 or 4) into `words`.
#[inline(always)]
pub(super) fn load_words(src: &[u8], word_bytes: usize, words: &mut Vec<u32>) {
    words.clear();
    if word_bytes == 2 {
        words.extend(
            src.chunks_exact(2)
                .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]]))),
        );
    } else {
        words.extend(
            src.chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        );
    }
}

/// Codes the words `block` of `s.words` as `planes` says, appending the block (after its cut) to
/// `out`.
#[inline(always)]
pub(super) fn encode_block(
    planes: Planes,
    block: Range<usize>,
    s: &mut Scratch,
    out: &mut Vec<u8>,
) {
    let words = &s.words[block];
    // The stored words: rotated, and only the nonzero ones under a zero mask.
    let stored = &mut s.stored;
    stored.clear();
    s.mask.clear();
    if planes.zero_mask {
        s.mask.resize(words.len().div_ceil(8), 0);
        for (i, &w) in words.iter().enumerate() {
            if w != 0 {
                s.mask[i / 8] |= 1 << (i % 8);
                stored.push(planes.to_stored(w));
            }
        }
    } else {
        stored.extend(words.iter().map(|&w| planes.to_stored(w)));
    }
    if planes.zero_mask {
        out.extend_from_slice(&(stored.len() as u32).to_le_bytes());
    }
    out.push(planes.coded_lanes as u8);
    let low = planes.low_bits();
    let streams = &mut s.stream;
    streams.clear();
    let mut lengths: Vec<u32> = Vec::with_capacity(2 + MAX_LANES as usize);
    let mut code = |symbols: &[u16], width: u32, streams: &mut Vec<u8>| {
        let before = streams.len();
        huffman::encode(symbols, width, streams);
        lengths.push((streams.len() - before) as u32);
    };
    if planes.zero_mask {
        code(&s.mask, 8, streams);
    }
    if planes.symbol_bits > 0 {
        s.symbols.clear();
        s.symbols.extend(stored.iter().map(|&w| (w >> low) as u16));
        code(&s.symbols, planes.symbol_bits, streams);
    }
    for j in 0..planes.coded_lanes {
        let shift = planes.lane_shift(j);
        s.symbols.clear();
        s.symbols
            .extend(stored.iter().map(|&w| ((w >> shift) & 0xff) as u16));
        code(&s.symbols, 8, streams);
    }
    for l in &lengths {
        out.extend_from_slice(&l.to_le_bytes());
    }
    out.extend_from_slice(streams);
    pack_flat(stored, planes.flat_shift(), planes.flat_bits(), out);
}

/// Appends `bits` bits from `shift` of each word, LSB first (the bit-packing of
/// [`crate::coding::bitpack`]).
#[inline(always)]
fn pack_flat(words: &[u32], shift: u32, bits: u32, out: &mut Vec<u8>) {
    if bits == 0 {
        return;
    }
    let mask = u64::from(low_mask(bits));
    let start = out.len();
    let len = (words.len() * bits as usize).div_ceil(8);
    out.resize(start + len + 4, 0);
    let dst = &mut out[start..];
    // A register accumulator, stored 4 bytes at a time (a read-modify-write of memory per field
    // would wait on the previous store).
    let (mut acc, mut held, mut at) = (0u64, 0u32, 0usize);
    for &w in words {
        acc |= ((u64::from(w) >> shift) & mask) << held;
        held += bits;
        if held >= 32 {
            dst[at..at + 4].copy_from_slice(&(acc as u32).to_le_bytes());
            at += 4;
            acc >>= 32;
            held -= 32;
        }
    }
    dst[at..at + 4].copy_from_slice(&(acc as u32).to_le_bytes());
    out.truncate(start + len);
}
