//! Order-0 entropy coder for exponent codes: interleaved rANS with a per-stream frequency table.
//!
//! `N` 32-bit rANS states take the codes in turn (code `i` goes to state `i % N`), renormalising 16
//! bits at a time, so decoding is `N` independent table lookups per round. `N` is 4, 8 (the wide
//! variant, written for streams of at least 1024 codes: more independent work per round hides the
//! table lookup latency), 32 (the vector variant, for streams of at least 128 Ki codes: four AVX2
//! registers of states, [`vector`]) or 128 (the many-state variant: streams of at least 256 Ki
//! codes, decoded by the vector rounds over more registers, and the planes' symbols of at most 8
//! bits, which the byte variant decodes into bytes with a table of 2^12 slots, [`bytes`]). The
//! frequency table is normalised to
//! `2^scale` (12 to 15 bits, whichever makes the stream smallest) and stored in the stream, densely
//! or as the present codes alone.
//!
//! Stream layout (all little-endian; empty when there are no codes):
//! - `scale | 0x80 if N = 8 | 0x20 if N = 32 | 0xa0 if N = 128 | 0x40 if the table is sparse`
//!   (1 byte), `lo` (varint), then
//!   - dense: `span` (varint) and `span` varint frequencies of codes `lo..lo + span`;
//!   - sparse: `count` (varint, at least 1) and the frequency (varint) of code `lo`, then for each
//!     further present code the gap to the one before less one (varint) and its frequency
//!     (varint): the codes, increasing, and all below `2^width`;
//!
//!   either way the frequencies sum to `2^scale`;
//! - the `N` final states (`N` x u32);
//! - the renormalisation words (u16), in the order the decoder reads them.
//!
//! Widths up to [`MAX_WIDTH`] are accepted, so a sign bit can be coded jointly with the exponent.

mod bytes;
#[cfg(target_arch = "x86_64")]
mod bytes_encode;
mod vector;

pub(crate) use bytes::{byte_table, decode_bytes, encode_bytes, MAX_BYTE_WIDTH};

use crate::error::{Error, Result};

/// Widest code the coder takes (an 11-bit float64 exponent plus a sign bit fits with room to spare).
pub const MAX_WIDTH: u32 = 16;
const LANES: usize = 4;
/// States of the wide variant, used for streams of at least [`WIDE_MIN`] codes: twice the
/// independent work per decoder round.
const WIDE_LANES: usize = 8;
/// Codes from which the encoder uses [`WIDE_LANES`] states.
const WIDE_MIN: usize = 1024;
/// Flag in the scale byte: the stream has [`WIDE_LANES`] states.
const WIDE: u8 = 0x80;
/// Flag in the scale byte: the table lists the present codes alone (wide alphabets, such as an
/// exponent with top mantissa bits, have many absent codes between their present ones).
const SPARSE: u8 = 0x40;

/// States of the vector variant, used for streams of at least [`VECTOR_MIN`] codes: four AVX2
/// registers of eight, stepped together ([`vector`]).
const VECTOR_LANES: usize = 32;
/// Codes from which the encoder uses [`VECTOR_LANES`] states: their 24 more final states cost about
/// 74 bytes per stream, which on GELU activations' mantissa lanes of 2^16 values took the ratio
/// below pcodec's (`docs/coding.md`).
const VECTOR_MIN: usize = 1 << 17;
/// Flag in the scale byte: the stream has [`VECTOR_LANES`] states.
const VECTOR: u8 = 0x20;

/// States of the many-state variant: of the byte variant ([`bytes`]), and of streams of at least
/// [`MANY_MIN`] codes, whose gathers from a table of 2^15 slots (256 KiB, beyond the first-level
/// cache) 32 states do not keep enough of in flight.
const MANY_LANES: usize = 128;
/// Codes from which the encoder uses [`MANY_LANES`] states: their 96 more final states cost 384
/// bytes per stream, 0.012 bits per code at this length (level 3 on GELU activations, bfloat16:
/// ratio 1.6499 to 1.6495, decoding 1.25 to 1.58 GB/s, `docs/coding.md`).
const MANY_MIN: usize = 1 << 18;
/// Flags in the scale byte: the stream has [`MANY_LANES`] states.
const MANY: u8 = WIDE | VECTOR;
/// The table precision of the byte variant.
const BYTE_SCALE: u32 = 12;

/// States the encoder uses for `n` codes.
fn lanes_for(n: u64) -> usize {
    if n >= MANY_MIN as u64 {
        MANY_LANES
    } else if n >= VECTOR_MIN as u64 {
        VECTOR_LANES
    } else if n >= WIDE_MIN as u64 {
        WIDE_LANES
    } else {
        LANES
    }
}
const RANS_L: u32 = 1 << 16;
const MIN_SCALE: u32 = 12;
const MAX_SCALE: u32 = 16;
/// The widest table the encoder chooses for a narrower alphabet: the size estimate leaves out what
/// 16-bit renormalisation loses, which grows with the scale (GELU activations' 12-bit joint codes
/// coded smallest at 15: `docs/coding.md`).
const WIDEST_CHOSEN: u32 = 15;
/// Slots of the largest table.
const FULL_TABLE: usize = 1 << MAX_SCALE;

/// Per-symbol encoder constants. `x / freq` is the high word of `x * rcp` with the 64-bit
/// reciprocal `rcp = ceil(2^64 / freq)`, exact for every 32-bit state (the error is below 2^-32,
/// the distance from `x / freq` to the next integer at least 2^-16); `freq` = 1, whose reciprocal
/// does not fit, has `rcp` = 0 and `one` = all ones, which adds `x` itself.
#[derive(Clone, Copy, Default)]
struct EncSym {
    x_max: u64,
    rcp: u64,
    one: u32,
    start: u32,
    cmpl_freq: u32,
}

/// One decode-table slot: the code, its frequency and the slot's offset inside the code's range
/// (laid out as the vector decoder gathers it: the frequency, then the code and the offset).
#[derive(Clone, Copy, Default)]
#[repr(C)]
struct Slot {
    freq: u32,
    sym: u16,
    off: u16,
}

/// Histogram of the codes (masked to `width` bits), with one bin per possible code.
pub(crate) fn histogram(codes: &[u16], width: u32) -> Vec<u32> {
    let width = width.min(MAX_WIDTH);
    let mask = ((1u32 << width) - 1) as u16;
    let size = 1usize << width;
    // Four partial histograms break the store-to-load dependency on runs of equal codes (measured
    // 25% faster than two on exponent codes of real weights).
    let mut parts = vec![0u32; 4 * size];
    let (hist, rest) = parts.split_at_mut(size);
    let (h1, rest) = rest.split_at_mut(size);
    let (h2, h3) = rest.split_at_mut(size);
    let mut quads = codes.chunks_exact(4);
    for q in &mut quads {
        // SAFETY: every index is masked to `width` bits, below `size`, the length of each part
        // (bounds checks, which the compiler cannot drop here, made the loop a third slower).
        unsafe {
            *hist.get_unchecked_mut(usize::from(q[0] & mask)) += 1;
            *h1.get_unchecked_mut(usize::from(q[1] & mask)) += 1;
            *h2.get_unchecked_mut(usize::from(q[2] & mask)) += 1;
            *h3.get_unchecked_mut(usize::from(q[3] & mask)) += 1;
        }
    }
    for &c in quads.remainder() {
        hist[usize::from(c & mask)] += 1;
    }
    for (i, a) in hist.iter_mut().enumerate() {
        *a += h1[i] + h2[i] + h3[i];
    }
    parts.truncate(size);
    parts
}

fn ceil_log2(n: usize) -> u32 {
    if n <= 1 {
        0
    } else {
        usize::BITS - (n - 1).leading_zeros()
    }
}

/// The table precisions to try for `present` distinct codes in a stream of `total`: at least 2
/// slots per code, and more, up to 64 per code and [`WIDEST_CHOSEN`] bits, while the stream has 16
/// codes per slot (the decoder fills every slot once per stream). More slots round the frequencies
/// less but store them in more bits. Past 64 per code the rounding saves less than 16-bit
/// renormalisation loses at the higher precision, which the size estimate leaves out (the bfloat16
/// weights' 8-bit exponents coded 0.0005 bit per code larger at 2^15 slots than at 2^14), and the
/// lower bound that spares the encoder a pass loosens.
fn scales_for(present: usize, total: u64) -> std::ops::RangeInclusive<u32> {
    let bits = ceil_log2(present);
    let least = (bits + 1).clamp(MIN_SCALE, MAX_SCALE);
    let by_total = (u64::BITS - 1 - total.max(1).leading_zeros()).saturating_sub(4);
    least..=(bits + 6).min(WIDEST_CHOSEN).min(by_total).max(least)
}

/// Normalises a histogram (with `total` > 0 values) to frequencies summing to `2^scale`, every
/// present code keeping at least 1.
fn normalize(hist: &[u32], total: u64, scale: u32) -> Vec<u32> {
    let m = 1u64 << scale;
    let mut freqs: Vec<u32> = hist
        .iter()
        .map(|&h| {
            if h == 0 {
                0
            } else {
                ((u64::from(h) * m + total / 2) / total).max(1) as u32
            }
        })
        .collect();
    let sum: i64 = freqs.iter().map(|&f| i64::from(f)).sum();
    let mut diff = m as i64 - sum;
    if diff == 0 {
        return freqs;
    }
    // Fix the sum on the most frequent codes, where one unit costs the least.
    let mut order: Vec<usize> = (0..freqs.len()).filter(|&s| freqs[s] > 0).collect();
    order.sort_by(|&a, &b| freqs[b].cmp(&freqs[a]));
    if diff > 0 {
        if let Some(&top) = order.first() {
            freqs[top] += diff as u32;
        }
        return freqs;
    }
    while diff < 0 {
        let mut changed = false;
        for &s in &order {
            if freqs[s] > 1 {
                freqs[s] -= 1;
                diff += 1;
                changed = true;
                if diff == 0 {
                    break;
                }
            }
        }
        if !changed {
            break; // unreachable: more codes than slots is excluded by `scales_for`
        }
    }
    freqs
}

/// Everything the encoder and the size estimate share: the normalised table of one stream.
pub(crate) struct Table {
    scale: u32,
    lo: usize,
    freqs: Vec<u32>,
    /// Codes counted.
    total: u64,
    /// Whether the table is stored as its present codes alone (the smaller form).
    sparse: bool,
}

impl Table {
    /// Builds the table of a non-empty histogram at the precision that makes the stream smallest;
    /// `None` when it counts nothing.
    pub(crate) fn from_histogram(hist: &[u32]) -> Option<Self> {
        let used = hist.iter().filter(|&&h| h > 0);
        let total: u64 = used.clone().map(|&h| u64::from(h)).sum();
        scales_for(used.count(), total)
            .filter_map(|scale| Self::at_scale(hist, scale))
            .min_by_key(|table| table.estimated_len(hist))
    }

    /// The table of a histogram at `2^scale` slots (at least one per present code); `None` when it
    /// counts nothing.
    pub(crate) fn at_scale(hist: &[u32], scale: u32) -> Option<Self> {
        let lo = hist.iter().position(|&h| h > 0)?;
        let hi = hist.iter().rposition(|&h| h > 0)?;
        let used = &hist[lo..=hi];
        let total: u64 = used.iter().map(|&h| u64::from(h)).sum();
        let mut table = Self {
            scale,
            lo,
            freqs: normalize(used, total, scale),
            total,
            sparse: false,
        };
        table.sparse = table.sparse_header_len() < table.dense_header_len();
        Some(table)
    }

    fn header_len(&self) -> usize {
        if self.sparse {
            self.sparse_header_len()
        } else {
            self.dense_header_len()
        }
    }

    fn dense_header_len(&self) -> usize {
        use crate::coding::varint::len;
        1 + len(self.lo as u64)
            + len(self.freqs.len() as u64)
            + self.freqs.iter().map(|&f| len(u64::from(f))).sum::<usize>()
    }

    fn sparse_header_len(&self) -> usize {
        use crate::coding::varint::len;
        let present = self.present();
        let gaps: usize = present
            .clone()
            .zip(present.clone().skip(1))
            .map(|((a, _), (b, _))| len((b - a - 1) as u64))
            .sum();
        let freqs: usize = present.clone().map(|(_, f)| len(u64::from(f))).sum();
        1 + len(self.lo as u64) + len(present.count() as u64) + gaps + freqs
    }

    /// The present codes (offsets from `lo`) and their frequencies, in order.
    fn present(&self) -> impl Iterator<Item = (usize, u32)> + Clone + '_ {
        self.freqs
            .iter()
            .enumerate()
            .filter(|(_, &f)| f > 0)
            .map(|(i, &f)| (i, f))
    }

    /// Appends the scale byte (with `flags`) and the table.
    fn write_header(&self, flags: u8, out: &mut Vec<u8>) {
        use crate::coding::varint::put;
        let sparse = if self.sparse { SPARSE } else { 0 };
        out.push(self.scale as u8 | flags | sparse);
        put(self.lo as u64, out);
        if self.sparse {
            put(self.present().count() as u64, out);
            let mut last = None;
            for (i, f) in self.present() {
                if let Some(last) = last {
                    put((i - last - 1) as u64, out);
                }
                put(u64::from(f), out);
                last = Some(i);
            }
        } else {
            put(self.freqs.len() as u64, out);
            for &f in &self.freqs {
                put(u64::from(f), out);
            }
        }
    }

    /// The stream length the ideal code lengths of the table predict (within a few bytes of the
    /// real one; not a bound).
    pub(crate) fn estimated_len(&self, hist: &[u32]) -> usize {
        let bits: f64 = hist[self.lo..]
            .iter()
            .zip(&self.freqs)
            .filter(|(&h, _)| h > 0)
            .map(|(&h, &f)| f64::from(h) * (f64::from(self.scale) - f64::from(f).log2()))
            .sum();
        self.header_len() + 4 * lanes_for(self.total) + (bits / 8.0).ceil() as usize
    }

    /// A lower bound on the stream length for the histogram `hist` the table was built from.
    ///
    /// Each rANS step grows the state by at least `log2(2^scale / f) + log2(1 - f / x)` bits, and
    /// `f / x <= 2^(scale - 16)` for every state the coder passes through; the final states hold at
    /// most 64 bits above their floor. So the words carry at least the ideal code length, less that
    /// per-code slack, less 64 bits.
    pub(crate) fn min_stream_len(&self, hist: &[u32]) -> usize {
        let mut bits = 0f64;
        let mut n = 0f64;
        for (&h, &f) in hist[self.lo..].iter().zip(&self.freqs) {
            if h > 0 {
                bits += f64::from(h) * (f64::from(self.scale) - f64::from(f).log2());
                n += f64::from(h);
            }
        }
        let eps = 2f64.powi(self.scale as i32 - 16);
        let lb = if eps < 1.0 {
            bits + n * (1.0 - eps).log2() - 64.0
        } else {
            0.0
        };
        let words = (lb / 8.0).max(0.0).floor() as usize;
        self.header_len() + 4 * lanes_for(self.total) + words
    }
}

/// Entropy-codes `codes` (each masked to `width` bits, `width` at most [`MAX_WIDTH`]), appending to `out`.
pub fn encode(codes: &[u16], width: u32, out: &mut Vec<u8>) {
    let hist = histogram(codes, width);
    if let Some(table) = Table::from_histogram(&hist) {
        encode_with_table(codes, width, &table, out);
    }
}

/// Encodes with a table already built from the histogram of `codes`.
pub(crate) fn encode_with_table(codes: &[u16], width: u32, table: &Table, out: &mut Vec<u8>) {
    encode_shifted(codes, 0, width, table, out);
}

/// Encodes `codes >> shift` (masked to `width` bits) with a table built from their histogram: the
/// codes of a joint alphabet without its lowest `shift` bits, with no copy.
pub(crate) fn encode_shifted(
    codes: &[u16],
    shift: u32,
    width: u32,
    table: &Table,
    out: &mut Vec<u8>,
) {
    let lanes = lanes_for(codes.len() as u64);
    let flag = match lanes {
        MANY_LANES => MANY,
        VECTOR_LANES => VECTOR,
        WIDE_LANES => WIDE,
        _ => 0,
    };
    encode_as(codes, shift, width, (table, lanes, flag), out);
}

/// [`encode_shifted`] with `lanes` states, which the scale byte's `flag` names.
fn encode_as(
    codes: &[u16],
    shift: u32,
    width: u32,
    (table, lanes, flag): (&Table, usize, u8),
    out: &mut Vec<u8>,
) {
    let width = width.min(MAX_WIDTH);
    let mask = ((1u32 << width) - 1) as u16;
    table.write_header(flag, out);
    crate::runtime::memory::with_reused(&WORDS, |(words, syms)| {
        encode_table(lanes, shift, (codes, width, mask), table, syms, words, out);
    });
}

/// Fills the per-code encoder constants into `syms` (reused; only the codes of the table are set,
/// and only they occur) and runs the states over the codes.
fn encode_table(
    lanes: usize,
    shift: u32,
    (codes, width, mask): (&[u16], u32, u16),
    table: &Table,
    syms: &mut Vec<EncSym>,
    words: &mut Vec<u16>,
    out: &mut Vec<u8>,
) {
    if syms.len() < 1usize << width {
        syms.resize(1usize << width, EncSym::default());
    }
    let mut cum = 0u32;
    for (i, &freq) in table.freqs.iter().enumerate() {
        if freq > 0 {
            if let Some(e) = syms.get_mut(table.lo + i) {
                *e = enc_sym(cum, freq, table.scale);
            }
        }
        cum += freq;
    }
    // Each code emits at most one renormalisation word. They are written from the end of a buffer
    // down, in the order the decoder reads them, branch-free: the word is always stored and the
    // cursor moves only when the state overflowed.
    encode_any(lanes, shift, (codes, mask, syms), table, words, out);
}

thread_local! {
    /// The encoder's word buffer and per-code constants, reused from stream to stream (fresh ones
    /// cost page faults: a 12-bit alphabet's constants are 128 KiB).
    static WORDS: std::cell::RefCell<(Vec<u16>, Vec<EncSym>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// [`encode_words`] with the state count and code shift as constants.
fn encode_any(
    lanes: usize,
    shift: u32,
    (codes, mask, syms): (&[u16], u16, &[EncSym]),
    table: &Table,
    words: &mut Vec<u16>,
    out: &mut Vec<u8>,
) {
    let c = (codes, mask, syms);
    match (lanes, shift) {
        // The byte variant's SIMD rounds pack its table's scale of 12 and codes of 8 bits.
        (MANY_LANES, 0) if table.scale == BYTE_SCALE => {
            encode_words::<MANY_LANES, 0>(c, bytes::encode_rounds(table), words, out)
        }
        (MANY_LANES, 0) => encode_words::<MANY_LANES, 0>(c, None, words, out),
        (MANY_LANES, _) => encode_words::<MANY_LANES, 1>(c, None, words, out),
        (VECTOR_LANES, 0) => encode_words::<VECTOR_LANES, 0>(c, None, words, out),
        (VECTOR_LANES, _) => encode_words::<VECTOR_LANES, 1>(c, None, words, out),
        (WIDE_LANES, 0) => encode_words::<WIDE_LANES, 0>(c, None, words, out),
        (WIDE_LANES, _) => encode_words::<WIDE_LANES, 1>(c, None, words, out),
        (_, 0) => encode_words::<LANES, 0>(c, None, words, out),
        (_, _) => encode_words::<LANES, 1>(c, None, words, out),
    }
}

/// Words the SIMD rounds may store below the lowest word they write.
const WORDS_SLACK: usize = 16;

/// SIMD encoder rounds over the whole rounds of some codes (from the last back): they move the
/// states and the word cursor as the portable steps would, or return `false` having done nothing.
type Rounds<'a, const N: usize> =
    Box<dyn FnOnce(&[u16], &mut [u32; N], &mut [u16], &mut usize) -> bool + 'a>;

/// Runs the `N` rANS states over `codes >> SHIFT` (in reverse; the whole rounds by `rounds` where
/// given) and appends the final states and the words.
fn encode_words<const N: usize, const SHIFT: u32>(
    (codes, mask, syms): (&[u16], u16, &[EncSym]),
    rounds: Option<Rounds<'_, N>>,
    words: &mut Vec<u16>,
    out: &mut Vec<u8>,
) {
    let len = codes.len() + 1 + WORDS_SLACK;
    if words.len() < len {
        words.resize(len, 0);
    }
    let words = &mut words[..len];
    let mut pos = len - 1;
    let mut states = [RANS_L; N];
    let full = codes.len() - codes.len() % N;
    for (lane, &c) in codes[full..].iter().enumerate().rev() {
        put(
            &mut states[lane],
            &syms[usize::from((c >> SHIFT) & mask)],
            words,
            &mut pos,
        );
    }
    let done = rounds.is_some_and(|r| r(&codes[..full], &mut states, words, &mut pos));
    if !done {
        for quad in codes[..full].chunks_exact(N).rev() {
            for lane in (0..N).rev() {
                put(
                    &mut states[lane],
                    &syms[usize::from((quad[lane] >> SHIFT) & mask)],
                    words,
                    &mut pos,
                );
            }
        }
    }
    for s in states {
        out.extend_from_slice(&s.to_le_bytes());
    }
    let words = words.get(pos.wrapping_add(1)..).unwrap_or_default();
    let start = out.len();
    out.resize(start + words.len() * 2, 0);
    for (dst, w) in out[start..].chunks_exact_mut(2).zip(words) {
        dst.copy_from_slice(&w.to_le_bytes());
    }
}

/// One rANS encoder step: renormalises `x` (writing one word at `words[*pos]` and moving `pos`
/// down when it overflows) and pushes the symbol `s`. The word is stored unconditionally; when the
/// state did not overflow the cursor stays and the next store overwrites it.
#[inline(always)]
fn put(x: &mut u32, s: &EncSym, words: &mut [u16], pos: &mut usize) {
    let need = u64::from(*x) >= s.x_max;
    // `pos` (the next word's slot) never passes below 0: one word per code at most, one slot more
    // than codes, and the slack.
    if let Some(w) = words.get_mut(*pos) {
        *w = *x as u16;
    }
    *pos = pos.wrapping_sub(usize::from(need));
    let x0 = if need { *x >> 16 } else { *x };
    let q = ((u128::from(x0) * u128::from(s.rcp)) >> 64) as u32 + (x0 & s.one);
    *x = x0
        .wrapping_add(s.start)
        .wrapping_add(q.wrapping_mul(s.cmpl_freq));
}

fn enc_sym(start: u32, freq: u32, scale: u32) -> EncSym {
    let x_max = ((u64::from(RANS_L) >> scale) << 16) * u64::from(freq);
    let (rcp, one) = if freq <= 1 {
        (0, u32::MAX)
    } else {
        (u64::MAX / u64::from(freq) + 1, 0)
    };
    EncSym {
        x_max,
        rcp,
        one,
        start,
        cmpl_freq: (1u32 << scale) - freq,
    }
}

/// Decodes exactly `out.len()` codes from the whole stream `bytes`.
///
/// # Errors
/// [`Error::Decode`] when the stream is malformed, truncated, has bytes left over, names codes wider
/// than `width`, or `width` exceeds [`MAX_WIDTH`].
pub fn decode(bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    if !has_codes(bytes, width, MAX_WIDTH, out.len())? {
        return Ok(());
    }
    crate::runtime::memory::with_reused(&SLOTS, |slots| decode_with(bytes, width, slots, out))
}

/// Checks a request to decode `codes` codes of `width` bits (at most `widest`) from `bytes`;
/// `false` when there are none (and so no bytes either).
fn has_codes(bytes: &[u8], width: u32, widest: u32, codes: usize) -> Result<bool> {
    if width > widest {
        return Err(Error::decode(format!(
            "entropy stream: width {width} exceeds {widest}"
        )));
    }
    if codes == 0 && !bytes.is_empty() {
        return Err(Error::decode(
            "entropy stream: bytes present for zero codes",
        ));
    }
    Ok(codes > 0)
}

thread_local! {
    /// The decoder's slot table, reused from stream to stream (a table of 2^14 slots or more is a
    /// fresh mapping, and its page faults, per allocation).
    static SLOTS: std::cell::RefCell<Vec<Slot>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`decode`] with `slots` as the table's buffer.
fn decode_with(bytes: &[u8], width: u32, slots: &mut Vec<Slot>, out: &mut [u16]) -> Result<()> {
    let (scale, pos) = read_table(bytes, width, slots)?;
    let states = states_of(bytes);
    if states != LANES && slots.len() < FULL_TABLE {
        slots.resize(FULL_TABLE, Slot::default());
    }
    match states {
        VECTOR_LANES => vector::decode::<VECTOR_LANES>(bytes, slots, scale, pos, out),
        MANY_LANES => vector::decode::<MANY_LANES>(bytes, slots, scale, pos, out),
        WIDE_LANES => decode_lanes::<WIDE_LANES>(bytes, slots, scale, pos, out),
        _ => decode_lanes::<LANES>(bytes, slots, scale, pos, out),
    }
}

/// The number of states of a stream, from its first byte.
fn states_of(bytes: &[u8]) -> usize {
    match bytes.first().map(|&b| b & MANY) {
        Some(WIDE) => WIDE_LANES,
        Some(VECTOR) => VECTOR_LANES,
        Some(MANY) => MANY_LANES,
        _ => LANES,
    }
}

/// Reads the `N` final states at `pos`; returns them and the position after them.
fn read_states<const N: usize>(bytes: &[u8], mut pos: usize) -> Result<([u32; N], usize)> {
    let mut states = [0u32; N];
    for s in &mut states {
        let b = bytes
            .get(pos..pos + 4)
            .ok_or_else(|| Error::decode("entropy stream: truncated states"))?;
        *s = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if *s < RANS_L {
            return Err(Error::decode("entropy stream: state below the rANS floor"));
        }
        pos += 4;
    }
    if !(bytes.len() - pos).is_multiple_of(2) {
        return Err(Error::decode(
            "entropy stream: odd number of renormalisation bytes",
        ));
    }
    Ok((states, pos))
}

/// Reads the `N` final states after the table (which ends at `pos`) and decodes the codes.
fn decode_lanes<const N: usize>(
    bytes: &[u8],
    slots: &[Slot],
    scale: u32,
    pos: usize,
    out: &mut [u16],
) -> Result<()> {
    let (states, pos) = read_states::<N>(bytes, pos)?;
    let words = &bytes[pos..];
    let mut wp = 0usize;
    let mut overrun = false;
    let mask = (1u32 << scale) - 1;
    let slots_all = slots;
    let slots = slots
        .get(..=mask as usize)
        .ok_or_else(|| Error::decode("entropy stream: table smaller than its scale"))?;
    let full = slots_all
        .get(..FULL_TABLE)
        .and_then(|s| <&[Slot; FULL_TABLE]>::try_from(s).ok());
    if let (Ok(wide), Some(full)) = (<[u32; WIDE_LANES]>::try_from(&states[..]), full) {
        let (states, wp, overrun) = decode_wide(full, scale, words, wide, out);
        return finish(&states, wp, words, overrun);
    }
    let mut quads = out.chunks_exact_mut(LANES);
    // Fast rounds: while a whole round's worth of words (at most one per state) is left, the next
    // words are read from a fixed window with no end-of-stream check. The four states live in
    // scalar locals (an array invites the compiler to shuffle them through vector registers).
    let (mut x0, mut x1, mut x2, mut x3) = (states[0], states[1], states[2], states[3]);
    for quad in &mut quads {
        let Some(window) = words.get(wp..wp + 2 * LANES) else {
            // Too few words left for an unchecked round: finish on the checked path.
            let mut st = [x0, x1, x2, x3];
            for (x, o) in st.iter_mut().zip(quad.iter_mut()) {
                step_checked(x, o, slots, scale, mask, words, &mut wp, &mut overrun);
            }
            [x0, x1, x2, x3] = st;
            continue;
        };
        // The round's four candidate words in one register; each state that renormalises takes
        // the next one, found by a prefix sum over the states before it (no serial chain through
        // the stream position).
        let win = u64::from_le_bytes([
            window[0], window[1], window[2], window[3], window[4], window[5], window[6], window[7],
        ]);
        let mut used = 0u32;
        let mut step = |x: &mut u32| -> u16 {
            let slot = slots[(*x & mask) as usize];
            let y = slot
                .freq
                .wrapping_mul(*x >> scale)
                .wrapping_add(u32::from(slot.off));
            // Arithmetic select (a branch here mispredicts on every renormalisation).
            let need = u32::from(y < RANS_L);
            let w = (win >> ((used & 3) << 4)) as u32 & 0xffff;
            *x = (y << (need << 4)) | (w & need.wrapping_neg());
            used += need;
            slot.sym
        };
        let o = [step(&mut x0), step(&mut x1), step(&mut x2), step(&mut x3)];
        quad.copy_from_slice(&o);
        wp += 2 * used as usize;
    }
    let mut st = [x0, x1, x2, x3];
    for (x, o) in st.iter_mut().zip(quads.into_remainder()) {
        step_checked(x, o, slots, scale, mask, words, &mut wp, &mut overrun);
    }
    finish(&st, wp, words, overrun)
}

/// Checks that decoding consumed the whole stream and returned every state to its floor.
fn finish(states: &[u32], wp: usize, words: &[u8], overrun: bool) -> Result<()> {
    if overrun {
        return Err(Error::decode("entropy stream: truncated"));
    }
    if wp != words.len() || states.iter().any(|&s| s != RANS_L) {
        return Err(Error::decode(
            "entropy stream: does not end where its codes do",
        ));
    }
    Ok(())
}

/// The decoder rounds of the wide variant: eight states; returns the final states, the word
/// position and whether a renormalisation ran past the end.
#[inline(never)]
fn decode_wide(
    slots: &[Slot; FULL_TABLE],
    scale: u32,
    words: &[u8],
    st: [u32; WIDE_LANES],
    out: &mut [u16],
) -> ([u32; WIDE_LANES], usize, bool) {
    let mask = (1u32 << scale) - 1;
    let mut wp = 0usize;
    let mut overrun = false;
    let mut rounds = out.chunks_exact_mut(WIDE_LANES);
    // Scalar locals, as in the four-state rounds (an array lives in memory between rounds).
    let [mut x0, mut x1, mut x2, mut x3, mut x4, mut x5, mut x6, mut x7] = st;
    for round in &mut rounds {
        let Some(window) = words.get(wp..wp + 2 * WIDE_LANES) else {
            let mut st = [x0, x1, x2, x3, x4, x5, x6, x7];
            for (x, o) in st.iter_mut().zip(round.iter_mut()) {
                step_checked(x, o, slots, scale, mask, words, &mut wp, &mut overrun);
            }
            [x0, x1, x2, x3, x4, x5, x6, x7] = st;
            continue;
        };
        // As in the four-state rounds: each state that renormalises takes the next word of the
        // window, found by a running count of the states before it.
        let mut used = 0u32;
        let mut step = |x: &mut u32| -> u16 {
            // A 16-bit index into the full table: no bounds check.
            let slot = slots[usize::from((*x & mask) as u16)];
            let y = slot
                .freq
                .wrapping_mul(*x >> scale)
                .wrapping_add(u32::from(slot.off));
            let need = u32::from(y < RANS_L);
            let at = (2 * used as usize) & (2 * WIDE_LANES - 2);
            let w = u32::from(u16::from_le_bytes([window[at], window[at + 1]]));
            let m = need.wrapping_neg();
            *x = (((y << 16) | w) & m) | (y & !m);
            used += need;
            slot.sym
        };
        let o = [
            step(&mut x0),
            step(&mut x1),
            step(&mut x2),
            step(&mut x3),
            step(&mut x4),
            step(&mut x5),
            step(&mut x6),
            step(&mut x7),
        ];
        round.copy_from_slice(&o);
        wp += 2 * used as usize;
    }
    let mut st = [x0, x1, x2, x3, x4, x5, x6, x7];
    for (x, o) in st.iter_mut().zip(rounds.into_remainder()) {
        step_checked(x, o, slots, scale, mask, words, &mut wp, &mut overrun);
    }
    (st, wp, overrun)
}

/// One decoder step with the end of the stream checked: renormalisation past the last word reads 0
/// and records the overrun (reported once by the caller).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn step_checked(
    x: &mut u32,
    o: &mut u16,
    slots: &[Slot],
    scale: u32,
    mask: u32,
    words: &[u8],
    wp: &mut usize,
    overrun: &mut bool,
) {
    let slot = slots[(*x & mask) as usize];
    *o = slot.sym;
    let y = slot
        .freq
        .wrapping_mul(*x >> scale)
        .wrapping_add(u32::from(slot.off));
    let need = y < RANS_L;
    let w = match words.get(*wp..*wp + 2) {
        Some(w) => u32::from(u16::from_le_bytes([w[0], w[1]])),
        None => {
            *overrun |= need;
            0
        }
    };
    *x = if need { (y << 16) | w } else { y };
    *wp += 2 * usize::from(need);
}

/// Reads and checks the frequency table into `slots`; returns the scale and the payload offset
/// (the first byte says how many states follow: see [`states_of`]).
fn read_table(bytes: &[u8], width: u32, slots: &mut Vec<Slot>) -> Result<(u32, usize)> {
    use crate::coding::varint;
    let head = *bytes
        .first()
        .ok_or_else(|| Error::decode("entropy stream: empty"))?;
    let scale = u32::from(head & !(WIDE | VECTOR | SPARSE));
    if !(1..=MAX_SCALE).contains(&scale) {
        return Err(Error::decode(format!(
            "entropy stream: table scale {scale} out of range"
        )));
    }
    let mut pos = 1;
    let lo = varint::get(bytes, &mut pos, "entropy", "table")?;
    // Dense: the number of codes from `lo`; sparse: the number of present codes.
    let count = varint::get(bytes, &mut pos, "entropy", "table")?;
    let alphabet = 1u64 << width;
    if count == 0 || lo >= alphabet || count > alphabet - lo {
        return Err(Error::decode(format!(
            "entropy stream: codes {lo}..{lo}+{count} do not fit {width} bits"
        )));
    }
    let m = 1usize << scale;
    // Every slot below `m` is written before the table is used (the frequencies must fill it); the
    // buffer only grows (the wide decoder wants all 2^16 slots, to index them without checks).
    if slots.len() < m {
        slots.resize(m, Slot::default());
    }
    let mut cum = 0usize;
    let mut code = lo;
    for i in 0..count {
        if head & SPARSE != 0 && i > 0 {
            let gap = varint::get(bytes, &mut pos, "entropy", "table")?;
            code = code
                .checked_add(gap)
                .and_then(|c| c.checked_add(1))
                .filter(|&c| c < alphabet)
                .ok_or_else(|| {
                    Error::decode(format!("entropy stream: a code past {width} bits"))
                })?;
        }
        let f = varint::get(bytes, &mut pos, "entropy", "table")?;
        if f > (m - cum) as u64 {
            return Err(Error::decode(
                "entropy stream: frequencies exceed the table",
            ));
        }
        let f = f as usize;
        for (off, slot) in slots[cum..cum + f].iter_mut().enumerate() {
            *slot = Slot {
                freq: f as u32,
                sym: code as u16,
                off: off as u16,
            };
        }
        cum += f;
        if head & SPARSE == 0 {
            code += 1;
        }
    }
    if cum != m {
        return Err(Error::decode(format!(
            "entropy stream: frequencies sum to {cum}, not {m}"
        )));
    }
    Ok((scale, pos))
}

#[cfg(test)]
mod division_tests {
    use super::*;

    /// The encoder's reciprocal division must be exact over the whole 32-bit state range: a 32-bit
    /// reciprocal (exact only below 2^31) once corrupted MiniLM streams.
    #[test]
    fn reciprocal_division_is_exact_for_every_frequency() {
        let xs = [
            RANS_L,
            65_537,
            1 << 31,
            (1 << 31) + 12_345,
            u32::MAX - 1,
            u32::MAX,
            3_000_000_001,
        ];
        for freq in 1..=(1u32 << MAX_SCALE) {
            let s = enc_sym(0, freq, MAX_SCALE);
            // Also the largest multiple of `freq` and its neighbours, where rounding would show.
            let top = u32::MAX / freq * freq;
            for x in xs.into_iter().chain([top, top - 1, top.saturating_add(1)]) {
                let q = ((u128::from(x) * u128::from(s.rcp)) >> 64) as u32 + (x & s.one);
                assert_eq!(q, x / freq, "x={x} freq={freq}");
            }
        }
    }
}
