//! The encoder's side of the planes: words cut into the symbol, lane and flat planes of a block,
//! each coded and appended.

use super::{low_mask, Planes, Scratch};
use crate::coding::exponent::{entropy, huffman};

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

/// Codes the block's words `s.words` as `planes` says, appending the block (after its cut) to
/// `out`; `AVX2` only where the caller is compiled for it.
#[inline(always)]
pub(super) fn encode_block<const AVX2: bool>(planes: Planes, s: &mut Scratch, out: &mut Vec<u8>) {
    let words = &s.words[..];
    // The stored words: rotated, and only the nonzero ones under a zero mask.
    let stored: &[u32] = if planes.zero_mask {
        let count = compact_nonzero::<AVX2>(planes, words, &mut s.stored, &mut s.mask);
        out.extend_from_slice(&(count as u32).to_le_bytes());
        &s.stored[..count]
    } else if planes.rotated {
        rotate(planes, words, &mut s.stored);
        &s.stored
    } else {
        words
    };
    out.push(planes.coded_lanes as u8);
    let low = planes.low_bits();
    // The stream lengths come first: room for them, filled in once each stream is written.
    let streams = usize::from(planes.zero_mask)
        + usize::from(planes.symbol_bits > 0)
        + planes.coded_lanes as usize;
    let lengths_at = out.len();
    out.resize(lengths_at + 4 * streams, 0);
    let mut written = 0usize;
    let mut code = |symbols: &[u16], width: u32, hist: &[u32], rans: bool, out: &mut Vec<u8>| {
        let before = out.len();
        if !rans {
            huffman::encode_counted(symbols, width, hist, out);
        } else if let Some(table) = entropy::byte_table(hist) {
            entropy::encode_bytes(symbols, width, &table, out);
        }
        // (No rANS table for no symbols, every word zero under a zero mask: an empty stream.)
        let at = lengths_at + 4 * written;
        let len = (out.len() - before) as u32;
        out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        written += 1;
    };
    if planes.zero_mask {
        let hist = histogram(&s.mask, 8);
        code(&s.mask, 8, &hist, false, out);
    }
    if planes.symbol_bits > 0 {
        s.symbols.clear();
        s.symbols.extend(stored.iter().map(|&w| (w >> low) as u16));
        let hist = histogram(&s.symbols, planes.symbol_bits);
        code(
            &s.symbols,
            planes.symbol_bits,
            &hist,
            planes.rans_symbols,
            out,
        );
    }
    for j in 0..planes.coded_lanes {
        let shift = planes.lane_shift(j);
        s.symbols.clear();
        s.symbols
            .extend(stored.iter().map(|&w| ((w >> shift) & 0xff) as u16));
        let hist = histogram(&s.symbols, 8);
        code(&s.symbols, 8, &hist, false, out);
    }
    pack_flat::<AVX2>(stored, planes.flat_shift(), planes.flat_bits(), out);
}

fn histogram(symbols: &[u16], width: u32) -> Vec<u32> {
    entropy::histogram(symbols, width)
}

/// The rotated form of every word.
#[inline(always)]
fn rotate(planes: Planes, words: &[u32], stored: &mut Vec<u32>) {
    let (bits, mask) = (planes.word_bits, low_mask(planes.word_bits));
    stored.clear();
    stored.extend(words.iter().map(|&w| ((w << 1) | (w >> (bits - 1))) & mask));
}

/// The stored form of the nonzero words, and the bitmap of them (bit `i % 8` of byte `i / 8`),
/// without a branch per word (zeros and nonzeros alternate unpredictably after a ReLU); returns
/// how many there are, the first that many of `stored`. With `AVX2` (only in code compiled for
/// AVX2) eight words at a time; the result is the same.
#[inline(always)]
fn compact_nonzero<const AVX2: bool>(
    planes: Planes,
    words: &[u32],
    stored: &mut Vec<u32>,
    mask: &mut Vec<u16>,
) -> usize {
    // Room for a whole group of eight past the last nonzero word: the vector loop stores eight.
    if stored.len() < words.len() + 8 {
        stored.resize(words.len() + 8, 0);
    }
    mask.clear();
    mask.resize(words.len().div_ceil(8), 0);
    let mut k = 0usize;
    let mut eights = words.chunks_exact(8);
    let mut bytes = mask.iter_mut();
    #[cfg(target_arch = "x86_64")]
    if AVX2 {
        // SAFETY: `AVX2` is only set by the caller compiled with `avx2` (and `bmi2`), which runs
        // only after `Level::is_available` confirmed them; `k + 8` stays within `stored`.
        unsafe { k = compact_avx2(planes, &mut eights, &mut bytes, stored) };
    }
    for (eight, bits) in (&mut eights).zip(&mut bytes) {
        *bits = compact_scalar(planes, eight, stored, &mut k);
    }
    if let Some(bits) = bytes.next() {
        *bits = compact_scalar(planes, eights.remainder(), stored, &mut k);
    }
    k
}

/// Stores the nonzero words of `words` (at most eight) from `stored[*k]`, returning their bitmap.
#[inline(always)]
fn compact_scalar(planes: Planes, words: &[u32], stored: &mut [u32], k: &mut usize) -> u16 {
    let mut m = 0u16;
    for (b, &w) in words.iter().enumerate() {
        let nonzero = usize::from(w != 0);
        stored[*k] = planes.to_stored(w);
        m |= (nonzero as u16) << b;
        *k += nonzero;
    }
    m
}

/// Per bitmap of eight words, the indices of its set bits in order, one per byte from the lowest
/// (a table, not `pdep`/`pext`, which are microcoded and slow on some AVX2 CPUs).
#[cfg(target_arch = "x86_64")]
static KEPT_INDICES: [u64; 256] = kept_indices();

#[cfg(target_arch = "x86_64")]
const fn kept_indices() -> [u64; 256] {
    let mut table = [0u64; 256];
    let mut m = 0;
    while m < 256 {
        let (mut k, mut b, mut v) = (0, 0, 0u64);
        while b < 8 {
            if m & (1 << b) != 0 {
                v |= (b as u64) << (8 * k);
                k += 1;
            }
            b += 1;
        }
        table[m] = v;
        m += 1;
    }
    table
}

/// The groups of eight of [`compact_nonzero`] with AVX2: a compare, a bit mask, and a
/// permutation that moves the nonzero words to the front.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn compact_avx2(
    planes: Planes,
    eights: &mut std::slice::ChunksExact<'_, u32>,
    bytes: &mut std::slice::IterMut<'_, u16>,
    stored: &mut [u32],
) -> usize {
    use std::arch::x86_64::*;
    let mut k = 0usize;
    let zero = _mm256_setzero_si256();
    let keep = _mm256_set1_epi32(low_mask(planes.word_bits) as i32);
    let top = _mm_cvtsi32_si128(planes.word_bits as i32 - 1);
    for (eight, bits) in eights.zip(bytes) {
        let w = _mm256_loadu_si256(eight.as_ptr().cast());
        let zeros = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(w, zero))) as u32;
        let nonzero = !zeros & 0xff;
        let st = if planes.rotated {
            _mm256_and_si256(
                _mm256_or_si256(_mm256_slli_epi32(w, 1), _mm256_srl_epi32(w, top)),
                keep,
            )
        } else {
            w
        };
        let indices = KEPT_INDICES[nonzero as usize];
        let perm = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(indices as i64));
        debug_assert!(k + 8 <= stored.len());
        _mm256_storeu_si256(
            stored.as_mut_ptr().add(k).cast(),
            _mm256_permutevar8x32_epi32(st, perm),
        );
        k += nonzero.count_ones() as usize;
        *bits = nonzero as u16;
    }
    k
}

/// Appends `bits` bits from `shift` of each word, LSB first (the bit-packing of
/// [`crate::coding::bitpack`]); with `AVX2` (only in code compiled for it) eight words per step.
#[inline(always)]
fn pack_flat<const AVX2: bool>(words: &[u32], shift: u32, bits: u32, out: &mut Vec<u8>) {
    match bits {
        0 => {}
        // The fields of this many words are joined before the accumulator (at most 56 bits, so
        // that the 7 bits an append may leave pending still fit 64), which divides its work.
        1..=7 => pack_joined::<8, AVX2>(words, shift, bits, out),
        8..=14 => pack_joined::<4, AVX2>(words, shift, bits, out),
        15..=28 => pack_joined::<2, AVX2>(words, shift, bits, out),
        _ => pack_joined::<1, false>(words, shift, bits, out),
    }
}

/// The flat packer's state between appends: `held` (at most 7) bits pending in `acc`, the next
/// byte at `pos`.
struct Packer {
    acc: u64,
    held: u32,
    pos: usize,
}

impl Packer {
    /// Appends the `n` (at most 56) bits of `v`: one 8-byte store into the spare capacity,
    /// advancing by the whole bytes held (no capacity check per append, no read-modify-write of
    /// memory; appending, unlike storing into a zeroed buffer, writes each byte once).
    #[inline(always)]
    fn put(&mut self, buf: &mut [std::mem::MaybeUninit<u8>], v: u64, n: u32) {
        self.acc |= v << self.held;
        self.held += n;
        store8(buf, self.pos, self.acc);
        let whole = self.held >> 3;
        self.pos += whole as usize;
        // `whole` is at most 7: at most 7 pending bits plus at most 56 new ones.
        self.acc >>= 8 * whole;
        self.held &= 7;
    }
}

/// [`pack_flat`] with the fields of `N` words joined per append (`N * bits <= 56`).
#[inline(always)]
fn pack_joined<const N: usize, const AVX2: bool>(
    words: &[u32],
    shift: u32,
    bits: u32,
    out: &mut Vec<u8>,
) {
    debug_assert!(N as u32 * bits <= 56 || N == 1);
    let mask = u64::from(low_mask(bits));
    let len = (words.len() * bits as usize).div_ceil(8);
    // 8 bytes of room past the end for the last unaligned store.
    out.reserve(len + 8);
    let start = out.len();
    let buf = &mut out.spare_capacity_mut()[..len + 8];
    let mut p = Packer {
        acc: 0,
        held: 0,
        pos: 0,
    };
    #[allow(unused_mut)]
    let mut rest = words;
    #[cfg(target_arch = "x86_64")]
    if AVX2 && N > 1 {
        // SAFETY: `AVX2` is only set by callers compiled for AVX2, which run only after
        // `Level::is_available` confirmed it; the appends stay within `buf` as below.
        let done = unsafe { pack_eights_avx2::<N>(words, shift, bits, buf, &mut p) };
        rest = &words[done..];
    }
    let field = |w: u32| (u64::from(w) >> shift) & mask;
    let mut groups = rest.chunks_exact(N);
    for g in &mut groups {
        let mut v = 0u64;
        for (i, &w) in g.iter().enumerate() {
            v |= field(w) << (i as u32 * bits);
        }
        p.put(buf, v, N as u32 * bits);
    }
    for &w in groups.remainder() {
        p.put(buf, field(w), bits);
    }
    // The bytes below `pos`, and the pending ones stored with `acc` at `pos`, are every byte of
    // the `len`: `pos + 8 > len` once all bits are appended.
    debug_assert!(p.pos == len || p.pos + 1 == len);
    // SAFETY: every store wrote 8 bytes from a `pos` that never steps by more than 7, from 0 to
    // the last one: together they initialised `buf[..pos + 8]`, which covers `..len`.
    unsafe { out.set_len(start + len) };
}

/// The fields of eight words at a time, while eight are left, appended as [`pack_joined`] joins
/// them (`N` per append); returns the words taken. The fields are cut in 32-bit lanes, joined in
/// pairs in 64-bit lanes, then in fours across each 128-bit half, and the fours appended.
///
/// # Safety
/// The CPU must have AVX2; `N * bits <= 56`, `N` 2, 4 or 8; `buf` as for [`Packer::put`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn pack_eights_avx2<const N: usize>(
    words: &[u32],
    shift: u32,
    bits: u32,
    buf: &mut [std::mem::MaybeUninit<u8>],
    p: &mut Packer,
) -> usize {
    use std::arch::x86_64::*;
    let mask = _mm256_set1_epi32(low_mask(bits) as i32);
    let low = _mm256_set1_epi64x(0xffff_ffff);
    let by_shift = _mm_cvtsi32_si128(shift as i32);
    let by_one = _mm_cvtsi32_si128(bits as i32);
    let by_two = _mm_cvtsi32_si128(2 * bits as i32);
    let eights = words.chunks_exact(8);
    let taken = eights.len() * 8;
    for eight in eights {
        let w = _mm256_loadu_si256(eight.as_ptr().cast());
        let f = _mm256_and_si256(_mm256_srl_epi32(w, by_shift), mask);
        // Per 64-bit lane: the even field, the odd one `bits` above it.
        let pairs = _mm256_or_si256(
            _mm256_and_si256(f, low),
            _mm256_sll_epi64(_mm256_srli_epi64::<32>(f), by_one),
        );
        if N == 2 {
            let lo = _mm256_castsi256_si128(pairs);
            let hi = _mm256_extracti128_si256::<1>(pairs);
            for v in [
                _mm_cvtsi128_si64(lo),
                _mm_extract_epi64::<1>(lo),
                _mm_cvtsi128_si64(hi),
                _mm_extract_epi64::<1>(hi),
            ] {
                p.put(buf, v as u64, 2 * bits);
            }
            continue;
        }
        // Lanes 0 and 2: their pair, the next lane's pair `2 * bits` above it.
        let fours = _mm256_or_si256(
            pairs,
            _mm256_sll_epi64(_mm256_bsrli_epi128::<8>(pairs), by_two),
        );
        let lo = _mm_cvtsi128_si64(_mm256_castsi256_si128(fours)) as u64;
        let hi = _mm_cvtsi128_si64(_mm256_extracti128_si256::<1>(fours)) as u64;
        if N == 8 {
            p.put(buf, lo | (hi << (4 * bits)), 8 * bits);
        } else {
            p.put(buf, lo, 4 * bits);
            p.put(buf, hi, 4 * bits);
        }
    }
    taken
}

/// Stores the 8 bytes of `acc` at `buf[pos..]`.
#[inline(always)]
fn store8(buf: &mut [std::mem::MaybeUninit<u8>], pos: usize, acc: u64) {
    debug_assert!(pos + 8 <= buf.len());
    // SAFETY: the callers size `buf` 8 bytes past the last position they store at (a bounds
    // check per store was a large share of the packing loop).
    unsafe {
        buf.as_mut_ptr()
            .add(pos)
            .cast::<[u8; 8]>()
            .write_unaligned(acc.to_le_bytes());
    }
}
