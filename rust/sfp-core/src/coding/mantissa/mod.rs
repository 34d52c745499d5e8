//! Coding of a chunk's mantissa stream.
//!
//! Mantissas are packed flat by default: for most weights they are close to uniform noise. Three
//! things are not, and a chunk may use any of them (a [`Plan`], chosen per chunk from a sampled
//! histogram and kept only when the coded chunk is smaller):
//! - **top bits with the exponent**: the top `k` (1..=[`MAX_TOP`]) mantissa bits move into the
//!   exponent alphabet (`(code << k) | top`, entropy-coded at `exp_bits + k` bits), which captures
//!   the skew of Gaussian values inside a binade;
//! - **zero skip**: when every value with the zero exponent code has a zero mantissa (no subnormals
//!   in the chunk, or a reduced window above them), those mantissas are omitted (ReLU zeros);
//! - **byte lanes**: the remaining low `m - k` bits are cut into 8-bit lanes (from the least
//!   significant end) in blocks of [`BLOCK`] values; each lane of each block is packed flat or
//!   order-0 rANS-coded ([`crate::coding::exponent::entropy`], its own table), whichever is smaller.
//!
//! Mantissa stream layout (little-endian): for each block of [`BLOCK`] stored values, for each lane
//! (lowest first): `u8 coder (0 raw, 2 entropy) | u32 bytes | bytes`. The stored values are the
//! chunk's values in order, without the zero-code values under zero skip.

use crate::coding::bitpack::{self, low_mask, packed_len};
use crate::coding::exponent::{entropy, huffman};
use crate::error::{Error, Result};

/// Most mantissa bits coded jointly with the exponent.
pub const MAX_TOP: u32 = 4;
/// Stored values per lane block (each block and lane has its own table).
pub const BLOCK: usize = 1 << 16;
const LANE_BITS: u32 = 8;
const RAW: u8 = 0;
const ENTROPY: u8 = 2;
const HUFFMAN: u8 = 3;
const ZERO_SKIP: u8 = 4;
const LOW_FLAT: u8 = 8;
/// Mode bit: four top bits (the mode's low two bits, which count up to three, are then 0).
const TOP_FOUR: u8 = 16;
/// Values sampled per chunk to choose the plan.
const SAMPLES: usize = 1 << 14;
/// Bits per value a fourth top bit must save in the sample's estimate: it doubles an alphabet of
/// hundreds of codes, whose sample entropy then falls short of the chunk's by more than the
/// narrower one's, and whose frequency table grows. At 0.004 the bfloat16 weights and ReLU
/// activations took it and their chunks of 2^20 values came out 70-290 bytes larger; at 0.02 the
/// GELU activations no longer did, whose chunks it makes 600-1000 bytes smaller.
const TOP_FOUR_MARGIN: f64 = 0.01;

/// How one chunk's mantissas are coded (absent: packed flat).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Plan {
    /// Top mantissa bits coded with the exponent (0..=[`MAX_TOP`]).
    pub top: u32,
    /// Mantissas of zero-code values omitted (all zero).
    pub zero_skip: bool,
    /// The low values are packed flat instead of in lane blocks.
    pub low_flat: bool,
}

impl Plan {
    /// The mode byte stored in the chunk header.
    pub fn mode(self) -> u8 {
        let top = if self.top == 4 {
            TOP_FOUR
        } else {
            self.top as u8
        };
        top | if self.zero_skip { ZERO_SKIP } else { 0 } | if self.low_flat { LOW_FLAT } else { 0 }
    }

    /// The plan of a mode byte, for mantissas of `man_bits` bits.
    ///
    /// # Errors
    /// [`Error::Decode`] for unknown bits or more top bits than the mantissa has.
    pub fn from_mode(mode: u8, man_bits: u32) -> Result<Self> {
        let top = if mode & TOP_FOUR != 0 {
            4 + u32::from(mode & 3)
        } else {
            u32::from(mode & 3)
        };
        let known = 3 | ZERO_SKIP | LOW_FLAT | TOP_FOUR;
        if mode & !known != 0 || top > MAX_TOP || top > man_bits || man_bits == 0 {
            return Err(Error::decode(format!(
                "mantissa mode {mode:#04x} is invalid for {man_bits} mantissa bits"
            )));
        }
        Ok(Self {
            top,
            zero_skip: mode & ZERO_SKIP != 0,
            low_flat: mode & LOW_FLAT != 0,
        })
    }

    /// The name `inspect` reports: `lanes` (or `flat` for flat low values), with `+top<k>` and
    /// `+zeros` when used.
    pub fn name(self) -> String {
        let mut name = String::new();
        if self.zero_skip {
            name.push_str("zeros+");
        }
        if self.top > 0 {
            name.push_str(&format!("top{}+", self.top));
        }
        name.push_str(if self.low_flat { "flat" } else { "lanes" });
        name
    }
}

/// The lanes `(shift, width)` of `width`-bit values, lowest first.
fn lanes(width: u32) -> impl Iterator<Item = (u32, u32)> {
    (0..width)
        .step_by(LANE_BITS as usize)
        .map(move |lo| (lo, (width - lo).min(LANE_BITS)))
}

/// Order-0 entropy of a histogram, in bits per counted value (0 for an empty one).
fn entropy_bits(hist: &[u32]) -> f64 {
    let total: f64 = hist.iter().map(|&h| f64::from(h)).sum();
    if total == 0.0 {
        return 0.0;
    }
    hist.iter()
        .filter(|&&h| h > 0)
        .map(|&h| {
            let p = f64::from(h) / total;
            -p * p.log2()
        })
        .sum()
}

/// Reads the `width`-bit field `i` of a flat LSB-first packed stream (0 past its end).
pub(crate) fn field(packed: &[u8], i: usize, width: u32) -> u64 {
    let bit = i * width as usize;
    let mut buf = [0u8; 8];
    let at = bit / 8;
    let end = (at + 8).min(packed.len());
    if at < end {
        buf[..end - at].copy_from_slice(&packed[at..end]);
    }
    (u64::from_le_bytes(buf) >> (bit % 8)) & low_mask(width)
}

/// Chooses a plan for a chunk from a sample of its values: `codes` (exponent codes of `exp_bits`
/// bits) and `packed` (the flat mantissas at `man_bits`); `top_allowed` says whether top bits may
/// join the exponent. `None` when the sample predicts under 0.5% saving over flat mantissas.
pub(crate) fn choose(
    codes: &[u16],
    packed: &[u8],
    exp_bits: u32,
    man_bits: u32,
    top_allowed: bool,
) -> Option<Plan> {
    let n = codes.len();
    if n == 0 || man_bits == 0 || man_bits > 64 {
        return None;
    }
    let max_top = if top_allowed && exp_bits + MAX_TOP < entropy::MAX_WIDTH {
        MAX_TOP.min(man_bits)
    } else {
        0
    };
    let stride = n.div_ceil(SAMPLES).max(1);
    let mut joint = vec![0u32; 1usize << (exp_bits + max_top)];
    let nlanes = man_bits.div_ceil(LANE_BITS) as usize;
    // Lane histograms per top-bit count k (lanes of the low man_bits - k bits), over kept values.
    let mut lane_hist = vec![vec![[0u32; 256]; nlanes]; max_top as usize + 1];
    let (mut zeros, mut zero_ok, mut sampled) = (0usize, true, 0usize);
    for i in (0..n).step_by(stride) {
        let code = codes[i];
        let m = field(packed, i, man_bits);
        sampled += 1;
        let top = m >> (man_bits - max_top);
        let slot = (usize::from(code) << max_top) | top as usize;
        if let Some(j) = joint.get_mut(slot) {
            *j += 1;
        }
        if code == 0 {
            zeros += 1;
            zero_ok &= m == 0;
        }
        for (k, hists) in lane_hist.iter_mut().enumerate() {
            let low = m & low_mask(man_bits - k as u32);
            for ((lo, w), h) in lanes(man_bits - k as u32).zip(hists.iter_mut()) {
                h[((low >> lo) & low_mask(w)) as usize] += 1;
            }
        }
    }
    let zero_skip = zero_ok && zeros > 0;
    // Zero-code values of a skipped chunk hold zero mantissas: take them out of the lane counts.
    if zero_skip {
        for (k, hists) in lane_hist.iter_mut().enumerate() {
            for (_, h) in lanes(man_bits - k as u32).zip(hists.iter_mut()) {
                h[0] -= zeros as u32;
            }
        }
    }
    let kept = if zero_skip { sampled - zeros } else { sampled } as f64;
    let mut best: Option<(f64, Plan)> = None;
    let mut flat = 0.0;
    for k in 0..=max_top {
        // Marginalise the joint histogram to k top bits.
        let mut h = vec![0u32; 1usize << (exp_bits + k)];
        for (s, &c) in joint.iter().enumerate() {
            h[s >> (max_top - k)] += c;
        }
        let exp_cost = entropy_bits(&h) * sampled as f64
            + if k == 4 {
                TOP_FOUR_MARGIN * sampled as f64
            } else {
                0.0
            };
        if k == 0 {
            flat = exp_cost + f64::from(man_bits) * sampled as f64;
        }
        let lanes_cost: f64 = lanes(man_bits - k)
            .zip(&lane_hist[k as usize])
            .map(|((_, w), h)| entropy_bits(h).min(f64::from(w)) * kept)
            .sum();
        let cost = exp_cost + lanes_cost;
        if best.is_none_or(|(b, _)| cost < b) {
            best = Some((
                cost,
                Plan {
                    top: k,
                    zero_skip,
                    low_flat: false,
                },
            ));
        }
    }
    let (cost, plan) = best?;
    (cost < flat - 0.005 * (flat + sampled as f64)).then_some(plan)
}

/// Bytes a coded chunk adds to the chunk header (mode byte and stream length).
pub(crate) const EXTRA_HEADER: usize = 5;

/// How [`encode`] may code a lane of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneCoder {
    /// rANS-coded where its stream is smaller than the flat one.
    Rans,
    /// Huffman-coded where that saves at least `1 / saving_divisor` of the flat lane's bytes (a
    /// coded lane costs a table lookup per value to decode).
    Huffman { saving_divisor: usize },
}

/// Codes `values` (each below `2^width`) in lane blocks, appending to `out`; each lane of each
/// block is coded as `coder` allows, and kept coded only when that is smaller than flat. Returns
/// whether any lane was coded.
pub fn encode(values: &[u64], width: u32, coder: LaneCoder, out: &mut Vec<u8>) -> bool {
    crate::runtime::memory::with_reused(&SYMS, |syms| encode_with(values, width, coder, syms, out))
}

/// A lane's symbols coded as `coder` allows, into `coded` (left empty when it stays flat); returns
/// the lane coder id.
fn code_lane(
    syms: &[u16],
    width: u32,
    raw_len: usize,
    coder: LaneCoder,
    coded: &mut Vec<u8>,
) -> u8 {
    coded.clear();
    match coder {
        LaneCoder::Rans => {
            let hist = entropy::histogram(syms, width);
            if let Some(table) = entropy::Table::from_histogram(&hist) {
                if table.estimated_len(&hist) < raw_len {
                    entropy::encode_with_table(syms, width, &table, coded);
                    if coded.len() < raw_len {
                        return ENTROPY;
                    }
                }
            }
        }
        LaneCoder::Huffman { saving_divisor } => {
            let hist = huffman::histogram(syms, width);
            let worth = raw_len - raw_len / saving_divisor.max(1);
            if let Some(table) = huffman::Table::from_histogram(&hist) {
                if table.estimated_len(&hist, syms.len()) < worth
                    && huffman::encode_with_table(syms, width, &table, coded).is_ok()
                    && coded.len() < worth
                {
                    return HUFFMAN;
                }
            }
        }
    }
    coded.clear();
    RAW
}

/// [`encode`] with `syms` as the lane buffer.
fn encode_with(
    values: &[u64],
    width: u32,
    coder: LaneCoder,
    syms: &mut Vec<u16>,
    out: &mut Vec<u8>,
) -> bool {
    let mut any_coded = false;
    if syms.len() < BLOCK.min(values.len()) {
        syms.resize(BLOCK.min(values.len()), 0);
    }
    let mut coded = Vec::new();
    for block in values.chunks(BLOCK) {
        let syms = &mut syms[..block.len()];
        for (lo, w) in lanes(width) {
            let m = low_mask(w);
            for (s, &v) in syms.iter_mut().zip(block) {
                *s = ((v >> lo) & m) as u16;
            }
            let raw_len = (block.len() * w as usize).div_ceil(8);
            let id = code_lane(syms, w, raw_len, coder, &mut coded);
            any_coded |= id != RAW;
            if id != RAW {
                out.push(id);
                out.extend_from_slice(&(coded.len() as u32).to_le_bytes());
                out.extend_from_slice(&coded);
            } else {
                out.push(RAW);
                out.extend_from_slice(&(raw_len as u32).to_le_bytes());
                bitpack::pack_u16(syms, w, out);
            }
        }
    }
    any_coded
}

/// Decodes exactly `out.len()` values of `width` bits from the whole stream `bytes`.
///
/// # Errors
/// [`Error::Decode`] when the stream is malformed, truncated or has bytes left over.
pub fn decode(bytes: &[u8], width: u32, out: &mut [u64]) -> Result<()> {
    let mut blocks = Blocks::new(bytes, width)?;
    crate::runtime::memory::with_reused(&SYMS, |syms| {
        out.chunks_mut(BLOCK)
            .try_for_each(|block| blocks.next_with(syms, block))
    })?;
    blocks.finish()
}

thread_local! {
    /// A lane's symbols, reused from block to block (a fresh 128 KiB buffer is a fresh mapping).
    static SYMS: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A mantissa stream read one lane block at a time, so a decoder can use each block's values
/// while they are in cache.
pub(crate) struct Blocks<'a> {
    level: crate::simd::Level,
    bytes: &'a [u8],
    width: u32,
    pos: usize,
}

impl<'a> Blocks<'a> {
    /// A reader of the stream `bytes` of `width`-bit values.
    ///
    /// # Errors
    /// [`Error::Decode`] when `width` exceeds 64; [`Error::InvalidArgument`] for an unusable
    /// `SFP_SIMD`.
    pub(crate) fn new(bytes: &'a [u8], width: u32) -> Result<Self> {
        if width > 64 {
            return Err(Error::decode(format!("mantissa width {width} exceeds 64")));
        }
        Ok(Self {
            level: crate::simd::current()?,
            bytes,
            width,
            pos: 0,
        })
    }

    /// Decodes the next block: `out.len()` values (a whole [`BLOCK`], or the last block's rest).
    ///
    /// # Errors
    /// [`Error::Decode`] when the block is malformed or truncated.
    pub(crate) fn next(&mut self, out: &mut [u64]) -> Result<()> {
        crate::runtime::memory::with_reused(&SYMS, |syms| self.next_with(syms, out))
    }

    /// The next block's packed fields when its values are one raw lane (a width of at most 8 bits
    /// stored flat): `count` fields, LSB first, which a decoder can read as they stand instead of
    /// through [`Blocks::next`]. `None`, and nothing read, for any other block.
    ///
    /// # Errors
    /// [`Error::Decode`] when the lane is truncated or not the packed length of `count` fields.
    pub(crate) fn next_raw(&mut self, count: usize) -> Result<Option<&'a [u8]>> {
        if !(1..=LANE_BITS).contains(&self.width) || self.bytes.get(self.pos) != Some(&RAW) {
            return Ok(None);
        }
        let (_, body) = self.lane()?;
        bitpack::check_packed_len(body.len(), count, self.width)?;
        Ok(Some(body))
    }

    /// The next lane: its coder id and body; the position moves past it.
    ///
    /// # Errors
    /// [`Error::Decode`] when its header or body is truncated.
    fn lane(&mut self) -> Result<(u8, &'a [u8])> {
        let pos = self.pos;
        let head = self
            .bytes
            .get(pos..pos + 5)
            .ok_or_else(|| Error::decode("mantissa stream: truncated lane header"))?;
        let len = u32::from_le_bytes([head[1], head[2], head[3], head[4]]) as usize;
        let body = self
            .bytes
            .get(pos + 5..)
            .and_then(|b| b.get(..len))
            .ok_or_else(|| Error::decode("mantissa stream: truncated lane"))?;
        self.pos = pos + 5 + len;
        Ok((head[0], body))
    }

    /// [`Blocks::next`] with `syms` as the lane buffer.
    fn next_with(&mut self, syms: &mut Vec<u16>, block: &mut [u64]) -> Result<()> {
        let level = self.level;
        if self.width == 0 {
            block.fill(0);
        }
        for (lo, w) in lanes(self.width) {
            let (id, body) = self.lane()?;
            match id {
                // The lowest lane sets each value, the others add their bits.
                RAW => unpack::raw_lane(level, body, w, lo, block)?,
                id @ (ENTROPY | HUFFMAN) => {
                    if syms.len() < block.len() {
                        syms.resize(block.len(), 0);
                    }
                    if id == ENTROPY {
                        entropy::decode(body, w, &mut syms[..block.len()])?;
                    } else {
                        huffman::decode(body, w, &mut syms[..block.len()])?;
                    }
                    if lo == 0 {
                        for (v, &s) in block.iter_mut().zip(syms.iter()) {
                            *v = u64::from(s);
                        }
                    } else {
                        for (v, &s) in block.iter_mut().zip(syms.iter()) {
                            *v |= u64::from(s) << lo;
                        }
                    }
                }
                other => {
                    return Err(Error::decode(format!(
                        "mantissa stream: unknown lane coder {other}"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Checks that the blocks read were the whole stream.
    ///
    /// # Errors
    /// [`Error::Decode`] when bytes are left over.
    pub(crate) fn finish(self) -> Result<()> {
        if self.pos != self.bytes.len() {
            return Err(Error::decode(format!(
                "mantissa stream: {} stray bytes",
                self.bytes.len() - self.pos
            )));
        }
        Ok(())
    }
}

/// A chunk's mantissas split by `plan`: the exponent alphabet codes (`code << top | top bits`) and
/// the stored low values; `None` when zero skip was planned but a zero-code value has a nonzero
/// mantissa (the sample missed it), or `packed` does not hold one field per code.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn split(
    plan: Plan,
    codes: &[u16],
    packed: &[u8],
    man_bits: u32,
) -> Option<(Vec<u16>, Vec<u64>)> {
    let (mut joint, mut low) = (Vec::new(), Vec::new());
    let k = split_into(plan, codes, None, packed, man_bits, &mut joint, &mut low)?;
    low.truncate(k);
    joint.truncate(if plan.top > 0 { codes.len() } else { 0 });
    Some((joint, low))
}

/// [`split`] into reused buffers, in one branch-free pass: with `signs` (one bit per value) the
/// joint codes carry the sign as a further low bit, `(code << top | top bits) << 1 | sign`; with
/// neither top bits nor signs `joint` is not written. The buffers are grown to `codes.len()` but
/// not shrunk; returns the number of stored low values, `None` where [`split`] gives `None`.
pub(crate) fn split_into(
    plan: Plan,
    codes: &[u16],
    signs: Option<&[u8]>,
    packed: &[u8],
    man_bits: u32,
    joint: &mut Vec<u16>,
    low: &mut Vec<u64>,
) -> Option<usize> {
    let n = codes.len();
    if packed_len(n, man_bits).ok() != Some(packed.len())
        || signs.is_some_and(|s| s.len() != n.div_ceil(8))
        || man_bits > 64
    {
        return None;
    }
    if low.len() < n {
        low.resize(n, 0);
    }
    let with_joint = plan.top > 0 || signs.is_some();
    if with_joint && joint.len() < n {
        joint.resize(n, 0);
    }
    let s = Split {
        codes,
        packed,
        man_bits,
        top: plan.top,
        signs,
    };
    let (low, joint) = (&mut low[..n], &mut joint[..]);
    let (k, bad) = match (with_joint, plan.zero_skip) {
        (true, true) => s.run::<true, true>(low, joint),
        (true, false) => s.run::<true, false>(low, joint),
        (false, true) => s.run::<false, true>(low, joint),
        (false, false) => s.run::<false, false>(low, joint),
    };
    (bad == 0).then_some(k)
}

/// The inputs of [`split_into`].
struct Split<'a> {
    codes: &'a [u16],
    packed: &'a [u8],
    man_bits: u32,
    top: u32,
    signs: Option<&'a [u8]>,
}

impl Split<'_> {
    /// Splits every value, 64 at a time through the block unpacker; returns the stored count and
    /// the OR of the skipped mantissas.
    #[inline(always)]
    fn run<const JOINT: bool, const SKIP: bool>(
        &self,
        low: &mut [u64],
        joint: &mut [u16],
    ) -> (usize, u64) {
        let (codes, packed, man_bits, top) = (self.codes, self.packed, self.man_bits, self.top);
        let low_bits = man_bits - top;
        let low_m = low_mask(low_bits);
        let unpack = bitpack::unpacker(man_bits);
        let mut vals = [0u64; 64];
        let (mut k, mut bad) = (0usize, 0u64);
        for (b, group) in codes.chunks(64).enumerate() {
            bitpack::unpack_group(unpack, man_bits, packed, b, &mut vals);
            let first = b * 64;
            if JOINT {
                let dst = joint
                    .get_mut(first..first + group.len())
                    .unwrap_or_default();
                for ((d, &c), &m) in dst.iter_mut().zip(group).zip(&vals) {
                    *d = (c << top) | (m >> low_bits) as u16;
                }
                if let Some(s) = self.signs {
                    let bytes = s.get(first / 8..).unwrap_or_default();
                    for (d8, &byte) in dst.chunks_mut(8).zip(bytes) {
                        for (j, d) in d8.iter_mut().enumerate() {
                            *d = (*d << 1) | u16::from((byte >> j) & 1);
                        }
                    }
                }
            }
            if SKIP {
                for (&c, &m) in group.iter().zip(&vals) {
                    let z = c == 0;
                    bad |= if z { m } else { 0 };
                    if let Some(l) = low.get_mut(k) {
                        *l = m & low_m;
                    }
                    k += usize::from(!z);
                }
            } else {
                let dst = low.get_mut(k..k + group.len()).unwrap_or_default();
                for (l, &m) in dst.iter_mut().zip(&vals) {
                    *l = m & low_m;
                }
                k += group.len();
            }
        }
        (k, bad)
    }
}

/// Rebuilds the flat packed mantissas (`man_bits` each) of a chunk coded with `plan`: `codes` are
/// the exponent codes (top bits already split off into `tops`, empty when `plan.top` is 0) and
/// `stream` the mantissa stream.
///
/// # Errors
/// [`Error::Decode`] when the stream is malformed.
#[cfg(any(test, feature = "testkit"))]
pub(crate) fn rebuild(
    plan: Plan,
    stream: &[u8],
    codes: &[u16],
    tops: &[u16],
    man_bits: u32,
    out: &mut Vec<u8>,
) -> Result<()> {
    rebuild_into(plan, stream, (codes, tops), man_bits, &mut Vec::new(), out)
}

/// [`rebuild`] with a reused buffer `low` for the stored low values.
#[cfg(any(test, feature = "testkit"))]
fn rebuild_into(
    plan: Plan,
    stream: &[u8],
    (codes, tops): (&[u16], &[u16]),
    man_bits: u32,
    low: &mut Vec<u64>,
    out: &mut Vec<u8>,
) -> Result<()> {
    let n = codes.len();
    let top = plan.top;
    if man_bits > 64 || top > man_bits || (top > 0 && tops.len() != n) {
        return Err(Error::decode(
            "mantissa stream: top bits do not match the codes",
        ));
    }
    let low_bits = man_bits - top;
    let tops = if top > 0 { tops } else { &[] };
    let skip = plan.zero_skip;
    let stored = if skip {
        codes.iter().map(|&c| usize::from(c != 0)).sum()
    } else {
        n
    };
    if low.len() < stored {
        low.resize(stored, 0);
    }
    let low = &mut low[..stored];
    decode(stream, low_bits, low)?;
    if skip && top > 0 && codes.iter().zip(tops).any(|(&c, &t)| c == 0 && t != 0) {
        return Err(Error::decode(
            "mantissa stream: a skipped zero has nonzero top bits",
        ));
    }
    let packer = bitpack::packer(man_bits);
    let step = 8 * man_bits as usize;
    out.clear();
    out.reserve(packed_len(n, man_bits).unwrap_or(0));
    let mut vals = [0u64; 64];
    let mut words = [0u8; 8 * 64];
    let mut k = 0usize;
    for (b, group) in codes.chunks(64).enumerate() {
        let first = b * 64;
        let ts = tops.get(first..first + group.len()).unwrap_or_default();
        if skip {
            for (j, (v, &c)) in vals.iter_mut().zip(group).enumerate() {
                let t = ts.get(j).map_or(0, |&t| u64::from(t));
                let l = low.get(k).copied().unwrap_or(0);
                let z = c == 0;
                *v = if z { 0 } else { (t << low_bits) | l };
                k += usize::from(!z);
            }
        } else {
            let ls = low.get(first..first + group.len()).unwrap_or_default();
            for (v, &l) in vals.iter_mut().zip(ls) {
                *v = l;
            }
            for (v, &t) in vals.iter_mut().zip(ts) {
                *v |= u64::from(t) << low_bits;
            }
        }
        vals[group.len()..].fill(0);
        packer(&vals, &mut words[..step]);
        out.extend_from_slice(&words[..(group.len() * man_bits as usize).div_ceil(8)]);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
mod unpack;
