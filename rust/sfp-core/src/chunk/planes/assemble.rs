//! The decoder's side of the planes: stored words rebuilt from their decoded symbols, lanes and flat
//! bits in one pass (eight words per step with AVX2), and zero-masked blocks expanded. The AVX2
//! steps write a large output with streaming stores (see [`Stores`]).

use super::{low_mask, Planes};
use crate::error::{Error, Result};
use crate::runtime::memory::Stores;
use crate::simd::Level;

/// The decoded planes of a block's stored words.
pub(super) struct Fields<'a> {
    pub planes: Planes,
    /// One symbol per stored word (empty when the planes have no symbol).
    pub symbols: Symbols<'a>,
    /// The coded lanes, lowest first, one byte per stored word.
    pub lanes: &'a [&'a [u8]],
    /// The flat bits, packed LSB first.
    pub flat: &'a [u8],
}

/// A block's decoded symbols: 16-bit, or bytes when the symbol fits one.
#[derive(Clone, Copy)]
pub(super) enum Symbols<'a> {
    Wide(&'a [u16]),
    Bytes(&'a [u8]),
}

impl Symbols<'_> {
    #[inline(always)]
    fn get(self, i: usize) -> u32 {
        match self {
            Symbols::Wide(s) => u32::from(s[i]),
            Symbols::Bytes(s) => u32::from(s[i]),
        }
    }
}

/// Writes the stored words of `f` into `out` (little-endian words of `word_bytes`) with `stores`.
pub(super) fn assemble(
    level: Level,
    f: &Fields<'_>,
    word_bytes: usize,
    out: &mut [u8],
    stores: Stores,
) {
    let n = out.len() / word_bytes;
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) && avx2::fits(f.planes) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed AVX2.
        done = unsafe { avx2::assemble(f, word_bytes, out, avx2::Put::new(stores, out)) };
    }
    let _ = (level, stores);
    scalar(f, word_bytes, done..n, out);
}

/// The flat field of word `i`.
#[inline(always)]
pub(super) fn flat_field(flat: &[u8], i: usize, bits: u32) -> u32 {
    if bits == 0 {
        return 0;
    }
    let bit = i * bits as usize;
    let at = bit / 8;
    let word = match flat.get(at..at + 8) {
        Some(w) => u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]),
        None => {
            let mut w = [0u8; 8];
            let rest = flat.get(at..).unwrap_or_default();
            w[..rest.len().min(8)].copy_from_slice(&rest[..rest.len().min(8)]);
            u64::from_le_bytes(w)
        }
    };
    (word >> (bit % 8)) as u32 & low_mask(bits)
}

/// Undoes [`Planes::to_stored`].
#[inline(always)]
pub(super) fn from_stored(p: Planes, r: u32) -> u32 {
    if p.rotated {
        (r >> 1) | ((r & 1) << (p.word_bits - 1))
    } else {
        r
    }
}

fn scalar(f: &Fields<'_>, word_bytes: usize, range: std::ops::Range<usize>, out: &mut [u8]) {
    let p = f.planes;
    let low = p.low_bits();
    let flat_bits = p.flat_bits();
    let flat_shift = p.flat_shift();
    for i in range {
        let mut r = flat_field(f.flat, i, flat_bits) << flat_shift;
        if p.symbol_bits > 0 {
            r |= f.symbols.get(i) << low;
        }
        for (j, lane) in f.lanes.iter().enumerate() {
            r |= u32::from(lane[i]) << p.lane_shift(j as u32);
        }
        let w = from_stored(p, r).to_le_bytes();
        out[i * word_bytes..(i + 1) * word_bytes].copy_from_slice(&w[..word_bytes]);
    }
}

/// Checks a zero mask of `n` words (one byte per decoded symbol) and counts its set bits.
///
/// # Errors
/// [`Error::Decode`] when bits past the block are set.
pub(super) fn check_mask(mask: &[u16], n: usize) -> Result<usize> {
    if !n.is_multiple_of(8) {
        if let Some(&last) = mask.last() {
            if last >> (n % 8) != 0 {
                return Err(Error::decode("zero mask has bits set past its block"));
            }
        }
    }
    Ok(mask
        .iter()
        .map(|&b| usize::from(ONES[usize::from(b as u8)]))
        .sum())
}

/// Set bits of each byte (a table: the portable build has no population count instruction).
const ONES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = (b as u8).count_ones() as u8;
        b += 1;
    }
    t
};

/// Bytes [`expand`] may read past the dense words (it loads whole steps).
pub(super) const DENSE_SLACK: usize = 32;

/// Spreads the dense nonzero words over `out` where the mask has set bits, zeros elsewhere, with
/// `stores`; `dense` holds the words and [`DENSE_SLACK`] bytes more.
pub(super) fn expand(
    level: Level,
    mask: &[u16],
    dense: &[u8],
    word_bytes: usize,
    out: &mut [u8],
    stores: Stores,
) {
    let (mut done, mut next) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if matches!(level, Level::Avx2 | Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed AVX2 and
        // POPCNT.
        (done, next) =
            unsafe { avx2::expand(mask, dense, word_bytes, out, avx2::Put::new(stores, out)) };
    }
    let _ = (level, stores);
    let (mask, out) = (&mask[done..], &mut out[8 * word_bytes * done..]);
    if word_bytes == 2 {
        expand_words::<2>(mask, &dense[next..], out);
    } else {
        expand_words::<4>(mask, &dense[next..], out);
    }
}

/// Branch-free: each word takes the next dense word, or zero, and the position moves by its bit.
fn expand_words<const WB: usize>(mask: &[u16], dense: &[u8], out: &mut [u8]) {
    let mut next = 0;
    for (&byte, words) in mask.iter().zip(out.chunks_mut(8 * WB)) {
        for (k, w) in words.chunks_exact_mut(WB).enumerate() {
            let set = usize::from((byte >> k) & 1);
            let mut word = [0u8; WB];
            if let Some(d) = dense.get(next..next + WB) {
                word.copy_from_slice(d);
            }
            let keep = 0u8.wrapping_sub(set as u8);
            for (o, v) in w.iter_mut().zip(word) {
                *o = v & keep;
            }
            next += set * WB;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{low_mask, Fields, Planes, Stores, Symbols};

    /// How the steps store their 16 or 32 bytes: streaming stores need 16-byte alignment, which
    /// every step keeps once `out` has it.
    #[derive(Clone, Copy)]
    pub(super) struct Put {
        stores: Stores,
    }

    impl Put {
        pub(super) fn new(stores: Stores, out: &[u8]) -> Self {
            Self {
                stores: stores.for_slice(out),
            }
        }

        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn half(self, dst: *mut u8, v: __m128i) {
            if self.stores == Stores::Streaming {
                _mm_stream_si128(dst.cast(), v);
            } else {
                _mm_storeu_si128(dst.cast(), v);
            }
        }

        #[target_feature(enable = "avx2")]
        #[inline]
        unsafe fn whole(self, dst: *mut u8, v: __m256i) {
            if self.stores == Stores::Streaming {
                _mm_stream_si128(dst.cast(), _mm256_castsi256_si128(v));
                _mm_stream_si128(dst.add(16).cast(), _mm256_extracti128_si256::<1>(v));
            } else {
                _mm256_storeu_si256(dst.cast(), v);
            }
        }

        fn finish(self) {
            self.stores.finish();
        }
    }

    /// Whether the eight flat fields of a step each fit a 32-bit lane after their byte offset.
    pub(super) fn fits(p: Planes) -> bool {
        let f = p.flat_bits();
        f <= 25 || f == 32
    }

    /// The per-lane byte shuffle and bit shift that move flat field `k` of an 8-field group
    /// (whose `bits * 8` bits start at a byte) to lane `k`: lanes 0-3 read the group's first 16
    /// bytes, lanes 4-7 the 16 from byte `(4 * bits) / 8`.
    struct FlatGroup {
        shuffle: __m256i,
        shift: __m256i,
        mask: __m256i,
        upper: usize,
    }

    #[target_feature(enable = "avx2")]
    unsafe fn flat_group(bits: u32) -> FlatGroup {
        let bits = bits as usize;
        let upper = (4 * bits) / 8;
        let mut bytes = [0i8; 32];
        let mut shifts = [0i32; 8];
        for k in 0..8 {
            let bit = k * bits;
            let base = if k < 4 { 0 } else { 8 * upper };
            let rel = bit - base;
            for b in 0..4 {
                // Within the lane's own 128-bit half; past 15 reads as zero, which only happens
                // for bytes a field does not reach.
                let src = rel / 8 + b;
                bytes[4 * k + b] = if src < 16 { src as i8 } else { -128 };
            }
            shifts[k] = (rel % 8) as i32;
        }
        FlatGroup {
            shuffle: _mm256_loadu_si256(bytes.as_ptr().cast()),
            shift: _mm256_loadu_si256(shifts.as_ptr().cast()),
            mask: _mm256_set1_epi32(low_mask(bits as u32) as i32),
            upper,
        }
    }

    /// The shift counts of a block's planes, kept in registers across the loop.
    struct Counts {
        symbol: __m128i,
        lanes: [__m128i; 3],
        flat: __m128i,
        top: __m128i,
    }

    /// The symbols' first byte, and whether they are bytes.
    fn symbol_bytes(f: &Fields<'_>) -> (*const u8, bool) {
        match f.symbols {
            Symbols::Wide(s) => (s.as_ptr().cast(), false),
            Symbols::Bytes(s) => (s.as_ptr(), true),
        }
    }

    /// Eight stored words from position `i` (the caller checks every read is in bounds); `ROT`,
    /// `LANES` and `FLAT` are the block's rotation, coded lanes and whether it has flat bits,
    /// `BYTES` whether the symbols at `sym` are bytes.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn eight<const ROT: bool, const LANES: usize, const FLAT: bool, const BYTES: bool>(
        f: &Fields<'_>,
        sym: *const u8,
        g: &FlatGroup,
        c: &Counts,
        flat_bits: usize,
        i: usize,
    ) -> __m256i {
        let s = if BYTES {
            _mm256_cvtepu8_epi32(_mm_loadl_epi64(sym.add(i).cast()))
        } else {
            _mm256_cvtepu16_epi32(_mm_loadu_si128(sym.add(2 * i).cast()))
        };
        let mut r = _mm256_sll_epi32(s, c.symbol);
        if FLAT {
            let at = f.flat.as_ptr().add(i / 8 * flat_bits);
            let lo = _mm_loadu_si128(at.cast());
            let hi = _mm_loadu_si128(at.add(g.upper).cast());
            let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
            let v = _mm256_shuffle_epi8(v, g.shuffle);
            let v = _mm256_and_si256(_mm256_srlv_epi32(v, g.shift), g.mask);
            r = _mm256_or_si256(r, _mm256_sll_epi32(v, c.flat));
        }
        for j in 0..LANES {
            let lane = f.lanes[j];
            let l = _mm256_cvtepu8_epi32(_mm_loadl_epi64(lane.as_ptr().add(i).cast()));
            r = _mm256_or_si256(r, _mm256_sll_epi32(l, c.lanes[j]));
        }
        if ROT {
            let low = _mm256_and_si256(r, _mm256_set1_epi32(1));
            r = _mm256_or_si256(_mm256_srli_epi32::<1>(r), _mm256_sll_epi32(low, c.top));
        }
        r
    }

    /// Widest flat field the 16-bit steps take: a field at any bit offset within its first byte
    /// must fit a 16-bit lane.
    const NARROW_FLAT: u32 = 9;

    /// The per-lane byte shuffle and multiplier that move flat field `k` of each 8-field half of a
    /// 16-word step to 16-bit lane `k` of that half, its top at bit 15 (a multiply is the only
    /// per-lane shift AVX2 has for 16-bit lanes); each half reads the 16 bytes from its group.
    struct NarrowGroup {
        shuffle: __m256i,
        up: __m256i,
        down: __m128i,
    }

    #[target_feature(enable = "avx2")]
    unsafe fn narrow_group(bits: u32) -> NarrowGroup {
        let mut bytes = [0i8; 32];
        let mut up = [0i16; 16];
        for half in 0..2 {
            for k in 0..8 {
                let bit = k * bits as usize;
                let lane = 8 * half + k;
                bytes[2 * lane] = (bit / 8) as i8;
                bytes[2 * lane + 1] = (bit / 8 + 1) as i8;
                // At most 2^15: the field's offset plus its bits is at least 1.
                up[lane] = (1u32 << (16 - bit % 8 - bits as usize)) as u16 as i16;
            }
        }
        NarrowGroup {
            shuffle: _mm256_loadu_si256(bytes.as_ptr().cast()),
            up: _mm256_loadu_si256(up.as_ptr().cast()),
            down: _mm_cvtsi32_si128(16 - bits as i32),
        }
    }

    /// Sixteen stored 16-bit words from position `i` (the caller checks every read is in
    /// bounds), in 16-bit lanes: the step [`eight`] takes twice, without widening.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn sixteen<const ROT: bool, const LANES: usize, const FLAT: bool, const BYTES: bool>(
        f: &Fields<'_>,
        sym: *const u8,
        g: &NarrowGroup,
        c: &Counts,
        flat_bits: usize,
        i: usize,
    ) -> __m256i {
        let s = if BYTES {
            _mm256_cvtepu8_epi16(_mm_loadu_si128(sym.add(i).cast()))
        } else {
            _mm256_loadu_si256(sym.add(2 * i).cast())
        };
        let mut r = _mm256_sll_epi16(s, c.symbol);
        if FLAT {
            let at = f.flat.as_ptr().add(i / 8 * flat_bits);
            let lo = _mm_loadu_si128(at.cast());
            let hi = _mm_loadu_si128(at.add(flat_bits).cast());
            let v = _mm256_inserti128_si256::<1>(_mm256_castsi128_si256(lo), hi);
            let v = _mm256_mullo_epi16(_mm256_shuffle_epi8(v, g.shuffle), g.up);
            r = _mm256_or_si256(r, _mm256_sll_epi16(_mm256_srl_epi16(v, g.down), c.flat));
        }
        for j in 0..LANES {
            let l = _mm256_cvtepu8_epi16(_mm_loadu_si128(f.lanes[j].as_ptr().add(i).cast()));
            r = _mm256_or_si256(r, _mm256_sll_epi16(l, c.lanes[j]));
        }
        if ROT {
            let low = _mm256_and_si256(r, _mm256_set1_epi16(1));
            r = _mm256_or_si256(_mm256_srli_epi16::<1>(r), _mm256_sll_epi16(low, c.top));
        }
        r
    }

    /// Per mask byte: the byte shuffle that spreads 8 dense 16-bit words to the set positions
    /// (zeros elsewhere; 32-bit words take `kernel::SPREAD`'s lane permutation).
    static SPREAD_BYTES: [[u8; 16]; 256] = {
        let mut t = [[0x80; 16]; 256];
        let mut m = 0;
        while m < 256 {
            let mut rank = 0;
            let mut k = 0;
            while k < 8 {
                if m >> k & 1 != 0 {
                    t[m][2 * k] = 2 * rank;
                    t[m][2 * k + 1] = 2 * rank + 1;
                    rank += 1;
                }
                k += 1;
            }
            m += 1;
        }
        t
    };

    /// [`super::expand`] for whole mask bytes while 32 bytes can be read at the dense position;
    /// returns how many mask bytes it did and the dense bytes they took.
    #[target_feature(enable = "avx2,popcnt")]
    pub(super) unsafe fn expand(
        mask: &[u16],
        dense: &[u8],
        word_bytes: usize,
        out: &mut [u8],
        put: Put,
    ) -> (usize, usize) {
        let whole = (out.len() / (8 * word_bytes)).min(mask.len());
        let mut next = 0;
        let dst = out.as_mut_ptr();
        let bits = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
        for (g, &byte) in mask[..whole].iter().enumerate() {
            if next + 32 > dense.len() {
                put.finish();
                return (g, next);
            }
            let m = usize::from(byte as u8);
            let src = dense.as_ptr().add(next);
            if word_bytes == 2 {
                let v = _mm_loadu_si128(src.cast());
                let shuffle = _mm_loadu_si128(SPREAD_BYTES[m].as_ptr().cast());
                put.half(dst.add(16 * g), _mm_shuffle_epi8(v, shuffle));
            } else {
                let v = _mm256_loadu_si256(src.cast());
                let idx = _mm256_loadu_si256(crate::kernel::SPREAD.0[m].as_ptr().cast());
                let set =
                    _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(m as i32), bits), bits);
                let spread = _mm256_and_si256(_mm256_permutevar8x32_epi32(v, idx), set);
                put.whole(dst.add(32 * g), spread);
            }
            next += byte.count_ones() as usize * word_bytes;
        }
        put.finish();
        (whole, next)
    }

    /// Assembles whole steps of 8 (32-bit words) or 16 (16-bit words) while every load stays
    /// inside its stream; returns how many words it wrote (none for planes without a symbol).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn assemble(
        f: &Fields<'_>,
        word_bytes: usize,
        out: &mut [u8],
        put: Put,
    ) -> usize {
        let p = f.planes;
        if p.symbol_bits == 0 {
            return 0;
        }
        let bytes = symbol_bytes(f).1;
        macro_rules! pick {
            ($($wb:literal $rot:literal $lanes:literal $flat:literal),*) => {
                match (word_bytes, p.rotated, f.lanes.len(), p.flat_bits() > 0, bytes) {
                    $(
                        ($wb, $rot, $lanes, $flat, false) =>
                            steps::<$wb, $rot, $lanes, $flat, false>(f, out, put),
                        ($wb, $rot, $lanes, $flat, true) =>
                            steps::<$wb, $rot, $lanes, $flat, true>(f, out, put),
                    )*
                    _ => 0,
                }
            };
        }
        pick!(
            2 false 0 true, 2 false 0 false, 2 false 1 true, 2 false 1 false,
            2 true 0 true, 2 true 0 false, 2 true 1 true, 2 true 1 false,
            4 false 0 true, 4 false 0 false, 4 false 1 true, 4 false 1 false,
            4 false 2 true, 4 false 2 false, 4 false 3 true, 4 false 3 false,
            4 true 0 true, 4 true 0 false, 4 true 1 true, 4 true 1 false,
            4 true 2 true, 4 true 2 false, 4 true 3 true, 4 true 3 false
        )
    }

    #[target_feature(enable = "avx2")]
    unsafe fn steps<
        const WB: usize,
        const ROT: bool,
        const LANES: usize,
        const FLAT: bool,
        const BYTES: bool,
    >(
        f: &Fields<'_>,
        out: &mut [u8],
        put: Put,
    ) -> usize {
        let n = out.len() / WB;
        let sym = symbol_bytes(f).0;
        let p = f.planes;
        let g = flat_group(p.flat_bits());
        let count = |bits: u32| _mm_cvtsi32_si128(bits as i32);
        let c = Counts {
            symbol: count(p.low_bits()),
            lanes: [count(0), count(8), count(16)],
            flat: count(p.flat_shift()),
            top: count(p.word_bits - 1),
        };
        let flat_bits = p.flat_bits() as usize;
        let step = if WB == 2 { 16 } else { 8 };
        let narrow = WB == 2 && p.flat_bits() <= NARROW_FLAT;
        // The last step's flat reads end at `(i / 8) * bits + upper + 16` for its last group
        // (`bits + 16` for the 16-bit steps' second half).
        let reach = if narrow { flat_bits } else { g.upper };
        let mut end = n / step * step;
        if FLAT {
            while end > 0 && (end - 8) / 8 * flat_bits + reach + 16 > f.flat.len() {
                end -= step;
            }
        }
        let dst = out.as_mut_ptr();
        let mut i = 0;
        if narrow {
            let g = narrow_group(p.flat_bits());
            while i < end {
                let v = sixteen::<ROT, LANES, FLAT, BYTES>(f, sym, &g, &c, flat_bits, i);
                put.whole(dst.add(2 * i), v);
                i += step;
            }
            put.finish();
            return i;
        }
        while i < end {
            if WB == 2 {
                let a = eight::<ROT, LANES, FLAT, BYTES>(f, sym, &g, &c, flat_bits, i);
                let b = eight::<ROT, LANES, FLAT, BYTES>(f, sym, &g, &c, flat_bits, i + 8);
                let packed = _mm256_permute4x64_epi64::<0xD8>(_mm256_packus_epi32(a, b));
                put.whole(dst.add(2 * i), packed);
            } else {
                let v = eight::<ROT, LANES, FLAT, BYTES>(f, sym, &g, &c, flat_bits, i);
                put.whole(dst.add(4 * i), v);
            }
            i += step;
        }
        put.finish();
        i
    }
}
