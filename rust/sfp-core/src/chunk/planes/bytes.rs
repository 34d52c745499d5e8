//! Planes chunks of the one-byte element types (8-, 6- and 4-bit words), decoded straight into the
//! array's bytes: the same chunks as the 16-bit words' decoder reads ([`super::decode`]), without
//! 16-bit symbols, words or a pass that narrows them.
//!
//! A one-byte word has room for one coded plane (the symbol, or with no symbol the lowest byte
//! lane) above or below its flat bits. The coded plane's decoder writes each symbol already moved
//! to its place in the element (shifted, rotated back: a byte map, see
//! [`huffman::decode_bytes`]); rotating a word back moves each of its bits on its own, so the flat
//! bits, rotated back apart, are then ORed in: fields of 1-3 bits 32 elements per AVX2 step, the
//! others eight at a time (BMI2's `pdep` spreads the eight fields of a group, whose `F` bits end
//! at a byte, to the bytes).

use super::assemble::{flat_field, from_stored};
use super::{low_mask, read_lengths, stored_words, Planes, Scratch, BLOCK, HEADER};
use crate::coding::bitpack::packed_len;
use crate::coding::exponent::{entropy, huffman};
use crate::error::{Error, Result};
use crate::frame::Reader;
use crate::simd::Level;

/// Decodes a planes chunk of words of `bits` (at most 8) bits into `out`, one byte per element,
/// exactly the chunk's values, with the kernels of `level`.
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed, as [`super::decode`] finds it.
pub(crate) fn decode_bytes(
    level: Level,
    bytes: &[u8],
    bits: u32,
    s: &mut Scratch,
    out: &mut [u8],
) -> Result<()> {
    let mut r = Reader { bytes, pos: HEADER };
    for block in out.chunks_mut(BLOCK) {
        decode_block(level, &mut r, bits, s, block)?;
    }
    if r.pos != bytes.len() {
        return Err(Error::decode(format!(
            "{} stray bytes after the planes chunk's blocks",
            bytes.len() - r.pos
        )));
    }
    Ok(())
}

/// The coded plane of a one-byte word: its width, where it sits and its stream's length.
struct CodedPlane {
    width: u32,
    shift: u32,
    stream: usize,
}

fn decode_block(
    level: Level,
    r: &mut Reader<'_>,
    bits: u32,
    s: &mut Scratch,
    out: &mut [u8],
) -> Result<()> {
    let n = out.len();
    let (lengths, planes) = read_lengths(bits, r)?;
    let stored = stored_words(r, &lengths, n, &mut s.mask)?;
    let plane = if planes.symbol_bits > 0 {
        Some(CodedPlane {
            width: planes.symbol_bits,
            shift: planes.low_bits(),
            stream: lengths.symbols,
        })
    } else if planes.coded_lanes > 0 {
        // Below no symbol, one lane is all a byte holds (`with_lanes` checked it).
        Some(CodedPlane {
            width: 8,
            shift: planes.lane_shift(0),
            stream: lengths.lanes[0],
        })
    } else {
        None
    };
    let zero_mask = planes.zero_mask;
    if zero_mask {
        s.dense.clear();
        s.dense.resize(stored, 0);
    }
    let target: &mut [u8] = if zero_mask { &mut s.dense } else { out };
    match plane {
        Some(p) => {
            let map = byte_map(planes, p.shift);
            let stream = r.take(p.stream, "symbol stream")?;
            if planes.rans_symbols {
                entropy::decode_bytes(stream, p.width, &map, target)?;
            } else {
                huffman::decode_bytes(stream, p.width, &map, target)?;
            }
        }
        None => target.fill(0),
    }
    let flat_len = packed_len(stored, planes.flat_bits())?;
    let flat = r.take(flat_len, "flat stream")?;
    or_flat(level, planes, flat, target);
    if zero_mask {
        expand(&s.mask, &s.dense, out);
    }
    Ok(())
}

/// Per symbol of the coded plane at `shift`, the element bits it stands for.
fn byte_map(planes: Planes, shift: u32) -> [u8; 256] {
    let keep = low_mask(planes.word_bits);
    std::array::from_fn(|c| from_stored(planes, ((c as u32) << shift) & keep) as u8)
}

/// ORs each stored word's flat bits, rotated back, into `target` (one byte per stored word).
fn or_flat(level: Level, planes: Planes, flat: &[u8], target: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed AVX2 and
        // BMI2.
        return unsafe { or_flat_avx2(planes, flat, target) };
    }
    let _ = level;
    or_flat_body::<false>(planes, flat, target);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2")]
fn or_flat_avx2(planes: Planes, flat: &[u8], target: &mut [u8]) {
    let done = match planes.flat_bits() {
        1 => or_32s::<1>(planes, flat, target),
        2 => or_32s::<2>(planes, flat, target),
        3 => or_32s::<3>(planes, flat, target),
        _ => 0,
    };
    let flat_done = done / 8 * planes.flat_bits() as usize;
    let (flat, target) = (
        flat.get(flat_done..).unwrap_or_default(),
        &mut target[done..],
    );
    or_flat_body::<true>(planes, flat, target);
}

/// [`or_flat`] for `F` flat bits with AVX2, 32 words (`4 F` bytes of fields) at a time, for as
/// many words as the loads stay inside `flat`; returns how many (a multiple of 32). Each field bit
/// is its own byte mask: every lane picks the byte holding its bit, tests it, and sets the bit it
/// stands for in the element. That is `F` steps of four instructions per 32 words, fewer than the
/// eight-word groups' for the narrow fields FP8 cuts leave flat (wider ones keep the groups).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn or_32s<const F: usize>(planes: Planes, flat: &[u8], target: &mut [u8]) -> usize {
    use std::arch::x86_64::*;
    // Per field bit: the byte each lane reads (within its 128-bit half, whose fields start `2 F`
    // bytes apart), the bit it tests, and the element bit it sets.
    let mut pick = [[0u8; 32]; F];
    let mut test = [[0u8; 32]; F];
    let mut set = [0u8; F];
    for j in 0..F {
        for lane in 0..32 {
            let bit = lane * F + j;
            pick[j][lane] = (bit / 8 - 2 * F * (lane / 16)) as u8;
            test[j][lane] = 1 << (bit % 8);
        }
        let stored = planes.flat_shift() + j as u32;
        set[j] = from_stored(planes, 1 << stored) as u8;
    }
    // SAFETY: AVX2 is enabled for this function; the arrays are 32 bytes.
    let (pick, test, set) = unsafe {
        (
            pick.map(|p| _mm256_loadu_si256(p.as_ptr().cast())),
            test.map(|t| _mm256_loadu_si256(t.as_ptr().cast())),
            set.map(|b| _mm256_set1_epi8(b as i8)),
        )
    };
    let mut g = 0;
    // The second half's 16-byte load starts `2 F` bytes into the group's `4 F`.
    while 32 * (g + 1) <= target.len() && 4 * F * g + 2 * F + 16 <= flat.len() {
        // SAFETY: the loop condition keeps both loads inside `flat` and the 32-byte load and
        // store inside `target`.
        unsafe {
            let src = flat.as_ptr().add(4 * F * g);
            let lo = _mm_loadu_si128(src.cast());
            let hi = _mm_loadu_si128(src.add(2 * F).cast());
            let fields = _mm256_set_m128i(hi, lo);
            let at = target.as_mut_ptr().add(32 * g).cast::<__m256i>();
            let mut acc = _mm256_loadu_si256(at);
            for j in 0..F {
                let byte = _mm256_shuffle_epi8(fields, pick[j]);
                let hit = _mm256_cmpeq_epi8(_mm256_and_si256(byte, test[j]), test[j]);
                acc = _mm256_or_si256(acc, _mm256_and_si256(hit, set[j]));
            }
            _mm256_storeu_si256(at, acc);
        }
        g += 1;
    }
    32 * g
}

#[inline(always)]
fn or_flat_body<const BMI2: bool>(planes: Planes, flat: &[u8], target: &mut [u8]) {
    match planes.flat_bits() {
        0 => {}
        1 => or_groups::<1, BMI2>(planes, flat, target),
        2 => or_groups::<2, BMI2>(planes, flat, target),
        3 => or_groups::<3, BMI2>(planes, flat, target),
        4 => or_groups::<4, BMI2>(planes, flat, target),
        5 => or_groups::<5, BMI2>(planes, flat, target),
        6 => or_groups::<6, BMI2>(planes, flat, target),
        7 => or_groups::<7, BMI2>(planes, flat, target),
        _ => {
            // The whole byte is flat: the flat stream holds the stored words.
            for (t, &f) in target.iter_mut().zip(flat) {
                *t |= from_stored(planes, u32::from(f) << planes.flat_shift()) as u8;
            }
        }
    }
}

/// [`or_flat`] for `F` (1 to 7) flat bits: each group of eight words has its fields in `F` bytes.
#[inline(always)]
fn or_groups<const F: usize, const BMI2: bool>(planes: Planes, flat: &[u8], target: &mut [u8]) {
    // The field of each byte lane, and the lanes' low and other bits (for the rotation back).
    let lanes = u64::from_le_bytes([((1u16 << F) - 1) as u8; 8]);
    let top = planes.word_bits - 1;
    let shift = planes.flat_shift();
    let done = target.len() / 8 * 8;
    let mut groups = target.chunks_exact_mut(8);
    for (g, eight) in (&mut groups).enumerate() {
        let mut w = [0u8; 8];
        w[..F].copy_from_slice(&flat[g * F..(g + 1) * F]);
        let v = u64::from_le_bytes(w);
        let mut x = spread::<BMI2>(v, F as u32, lanes) << shift;
        if planes.rotated {
            // Per byte: the low bit to the word's top, the others down one (no bit crosses a
            // byte: each lane holds fewer than 8 flat bits, at most its word's).
            x = ((x >> 1) & 0x7f7f_7f7f_7f7f_7f7f) | ((x & 0x0101_0101_0101_0101) << top);
        }
        let t = u64::from_le_bytes([
            eight[0], eight[1], eight[2], eight[3], eight[4], eight[5], eight[6], eight[7],
        ]);
        eight.copy_from_slice(&(t | x).to_le_bytes());
    }
    for (i, t) in groups.into_remainder().iter_mut().enumerate() {
        let f = flat_field(flat, done + i, F as u32);
        *t |= from_stored(planes, f << shift) as u8;
    }
}

/// The eight `bits`-bit fields of `v` (LSB first), one per byte lane (`lanes` is their mask).
#[inline(always)]
fn spread<const BMI2: bool>(v: u64, bits: u32, lanes: u64) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if BMI2 {
        // SAFETY: `BMI2` is only set in code compiled with BMI2, which runs only after
        // `Level::is_available` confirmed it.
        return unsafe { std::arch::x86_64::_pdep_u64(v, lanes) };
    }
    let _ = lanes;
    let mask = (1u64 << bits) - 1;
    (0..8).fold(0, |x, k| x | (((v >> (k * bits)) & mask) << (8 * k)))
}

/// Spreads the dense stored bytes over `out` where the mask (one byte per decoded symbol) has set
/// bits, zeros elsewhere.
fn expand(mask: &[u16], dense: &[u8], out: &mut [u8]) {
    let mut next = 0;
    for (&byte, eight) in mask.iter().zip(out.chunks_mut(8)) {
        for (k, o) in eight.iter_mut().enumerate() {
            let set = usize::from((byte >> k) & 1);
            let v = dense.get(next).copied().unwrap_or(0);
            *o = v & 0u8.wrapping_sub(set as u8);
            next += set;
        }
    }
}

#[cfg(test)]
mod tests;
