//! The chunk coding of lossless frames at the speed-aware levels: each element word cut into
//! planes, the top bits Huffman-coded, the bits below stored in byte lanes (Huffman-coded where
//! that pays) and a flat remainder.
//!
//! A word of `B` bits (16 or 32; 8, 6 or 4 for the one-byte types), optionally rotated left by one
//! so the sign moves to bit 0, is `symbol (T bits) | flat (F bits) | lane c-1 (8 bits) | ... | lane
//! 0 (8 bits)` from the top, with `F = B - T - 8c`. The byte lanes are the lowest bytes, which
//! carry structure when the values came from a narrower type or a quantizer (trailing zeros). With
//! the sign on top the symbol is the sign, the exponent and the top mantissa bits; rotated, it is
//! the exponent and the top mantissa bits, and the sign is the lowest bit. Each block chooses its
//! own cut ([`choose`]). Decoding is a Huffman pass per coded plane and one pass of shifts and ORs
//! over fixed-width fields, which vectorises ([`assemble`]). With the zero mask, a bitmap of the
//! nonzero words (its bytes Huffman-coded) comes first and only the nonzero words are stored, so
//! the zeros after a ReLU cost about a bit each.
//!
//! Layout: `u8 flags (PLANES)`, then per block of [`BLOCK`] values (the last one shorter): `u8
//! symbol bits T (0..=12) | u8 options (bit 0: rotated, bit 1: zero mask, bit 2: rANS symbols) |
//! [u32 stored words] |
//! u8 coded lanes c (0..=3) | [u32 mask stream bytes] | [u32 symbol stream bytes] | c x u32 lane
//! stream bytes | [mask stream] | [symbol stream] | lane streams | flat stream`. The mask stream
//! codes `ceil(n / 8)` bytes (bit `i % 8` of byte `i / 8` set when word `i` is nonzero, bits past
//! the block zero); the symbol stream (absent when `T` is 0) and the lane streams code one symbol
//! per stored word ([`huffman`] streams of widths `T` and 8; with rANS symbols, `T` at most 8, the
//! symbol stream is an [`entropy`] stream of the byte variant); the flat stream packs each stored
//! word's `F` flat bits (LSB first).

mod assemble;
mod bytes;
mod choose;
mod split;

use crate::coding::bitpack::packed_len;
use crate::coding::exponent::{entropy, huffman, IDENTITY};
use crate::error::{Error, Result};
use crate::format::CodingLevel;
use crate::frame::Reader;
use crate::runtime::memory::Stores;
use crate::simd::Level;

pub(crate) use bytes::decode_bytes;
pub(crate) use choose::choose;

/// The chunk flag byte of a planes chunk (the other chunk kinds use bits 0-2).
pub(crate) const PLANES: u8 = 8;
/// Values per block: each block has its own cut and Huffman tables. 128 Ki values follow the
/// changes between tensors; 64 Ki gain 0.1% of ratio for 18% more decoding instructions (the
/// tables' construction), measured on the MiniLM weights.
pub(crate) const BLOCK: usize = 1 << 17;
/// The widest symbol (decode tables of `2^12` entries stay in the first-level cache).
pub(crate) const MAX_SYMBOL_BITS: u32 = 12;
/// The most coded lanes below the symbol.
pub(crate) const MAX_LANES: u32 = 3;

const ROTATED: u8 = 1;
const ZERO_MASK: u8 = 2;
const RANS_SYMBOLS: u8 = 4;
const HEADER: usize = 1;

/// How a chunk's words are cut into planes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Planes {
    /// Bits of the element (16 or 32; 8, 6 or 4 for the one-byte types).
    pub word_bits: u32,
    /// Bits of the Huffman-coded symbol at the top of the (rotated) word; 0: none.
    pub symbol_bits: u32,
    /// The lowest byte lanes that are Huffman-coded.
    pub coded_lanes: u32,
    /// Whether the word is rotated left by one (the sign below the flat bits).
    pub rotated: bool,
    /// Whether only nonzero words are stored, after a bitmap of them.
    pub zero_mask: bool,
    /// Whether the symbol (of at most 8 bits) is rANS-coded, not Huffman-coded.
    pub rans_symbols: bool,
}

impl Planes {
    /// Bits below the symbol.
    pub(crate) fn low_bits(self) -> u32 {
        self.word_bits - self.symbol_bits
    }

    /// Bits of the flat remainder.
    pub(crate) fn flat_bits(self) -> u32 {
        self.low_bits() - 8 * self.coded_lanes
    }

    /// The shift of lane `j` (0: the lowest byte).
    pub(crate) fn lane_shift(self, j: u32) -> u32 {
        8 * j
    }

    /// The shift of the flat bits.
    pub(crate) fn flat_shift(self) -> u32 {
        8 * self.coded_lanes
    }

    /// The same cut with `coded_lanes` lanes, checked to fit.
    pub(crate) fn with_lanes(self, coded_lanes: u32) -> Result<Self> {
        if coded_lanes > MAX_LANES || 8 * coded_lanes > self.low_bits() {
            return Err(Error::decode(format!(
                "{coded_lanes} coded lanes do not fit below a {}-bit symbol of a {}-bit word",
                self.symbol_bits, self.word_bits
            )));
        }
        Ok(Self {
            coded_lanes,
            ..self
        })
    }

    /// The stored form of a word: rotated or not.
    #[inline(always)]
    pub(crate) fn to_stored(self, w: u32) -> u32 {
        if self.rotated {
            let top = w >> (self.word_bits - 1);
            ((w << 1) | top) & low_mask(self.word_bits)
        } else {
            w
        }
    }

    fn options(self) -> u8 {
        (u8::from(self.rotated) * ROTATED)
            | (u8::from(self.zero_mask) * ZERO_MASK)
            | (u8::from(self.rans_symbols) * RANS_SYMBOLS)
    }

    fn parse(word_bits: u32, r: &mut Reader<'_>) -> Result<Self> {
        let symbol_bits = r.u8("planes symbol bits")?;
        let options = r.u8("planes options")?;
        let known = ROTATED | ZERO_MASK | RANS_SYMBOLS;
        if options & !known != 0 {
            return Err(Error::decode(format!(
                "unknown planes options {options:#04x}"
            )));
        }
        let p = Planes {
            word_bits,
            symbol_bits: u32::from(symbol_bits),
            coded_lanes: 0,
            rotated: options & ROTATED != 0,
            zero_mask: options & ZERO_MASK != 0,
            rans_symbols: options & RANS_SYMBOLS != 0,
        };
        if p.rans_symbols && !(1..=entropy::MAX_BYTE_WIDTH).contains(&p.symbol_bits) {
            return Err(Error::decode(format!(
                "rANS symbols of {} bits (1 to {} are coded so)",
                p.symbol_bits,
                entropy::MAX_BYTE_WIDTH
            )));
        }
        if p.symbol_bits > MAX_SYMBOL_BITS.min(word_bits) {
            return Err(Error::decode(format!(
                "a symbol of {} bits does not fit a {word_bits}-bit word",
                p.symbol_bits
            )));
        }
        Ok(p)
    }
}

/// The low `bits` bits set (`bits` in 0..=32).
#[inline(always)]
pub(crate) fn low_mask(bits: u32) -> u32 {
    if bits >= 32 {
        u32::MAX
    } else {
        (1u32 << bits) - 1
    }
}

/// Reused buffers of the planes coder.
#[derive(Default)]
pub(crate) struct Scratch {
    words: Vec<u32>,
    stored: Vec<u32>,
    symbols: Vec<u16>,
    /// The decoded symbols of a block whose symbol fits a byte.
    symbol_bytes: Vec<u8>,
    /// The decoded coded lanes.
    lanes: [Vec<u8>; MAX_LANES as usize],
    mask: Vec<u16>,
    dense: Vec<u8>,
}

/// The element words a chunk holds: `bytes` each (2 or 4), of which the low `bits` are the
/// element's (8, 6 or 4 for the one-byte types held in 16-bit words).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Word {
    pub bytes: usize,
    pub bits: u32,
}

/// Encodes the little-endian words of `src` as a planes chunk cut as the samples choose at
/// `level`, appending it to `out`.
pub(crate) fn encode(
    src: &[u8],
    word: Word,
    level: CodingLevel,
    s: &mut Scratch,
    out: &mut Vec<u8>,
) {
    #[cfg(target_arch = "x86_64")]
    if matches!(crate::simd::current(), Ok(Level::Avx2 | Level::Avx512)) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed AVX2 and BMI2.
        return unsafe { encode_avx2(src, word, level, s, out) };
    }
    encode_body::<false>(src, word, level, s, out);
}

/// [`encode`] with AVX2 and BMI2 (its loops vectorise, its shifts take any register); the same
/// bytes as the baseline build.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,bmi2")]
fn encode_avx2(src: &[u8], word: Word, level: CodingLevel, s: &mut Scratch, out: &mut Vec<u8>) {
    encode_body::<true>(src, word, level, s, out);
}

#[inline(always)]
fn encode_body<const AVX2: bool>(
    src: &[u8],
    word: Word,
    level: CodingLevel,
    s: &mut Scratch,
    out: &mut Vec<u8>,
) {
    let word_bits = word.bits;
    out.push(PLANES);
    // A block at a time, so that its words and planes stay in the core's cache between passes.
    for block in src.chunks(BLOCK * word.bytes) {
        split::load_words(block, word.bytes, &mut s.words);
        let planes = choose(&s.words, word_bits, level);
        out.extend_from_slice(&[planes.symbol_bits as u8, planes.options()]);
        split::encode_block::<AVX2>(planes, s, out);
    }
}

/// Whether a chunk's first byte says it is a planes chunk.
pub(crate) fn is_planes(bytes: &[u8]) -> bool {
    bytes.first() == Some(&PLANES)
}

/// Decodes a planes chunk into `out` (little-endian words of `word_bytes` each, exactly the
/// chunk's values) with the kernels of `level`, written with `stores`.
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed: a bad header, stream lengths beyond the chunk,
/// a malformed Huffman stream, a flat stream of the wrong length, stray bytes.
pub(crate) fn decode(
    level: Level,
    bytes: &[u8],
    word: Word,
    s: &mut Scratch,
    out: &mut [u8],
    stores: Stores,
) -> Result<()> {
    let mut r = Reader { bytes, pos: HEADER };
    let n = out.len() / word.bytes;
    for start in (0..n).step_by(BLOCK) {
        let end = (start + BLOCK).min(n);
        let dst = &mut out[start * word.bytes..end * word.bytes];
        decode_block(level, &mut r, word, s, dst, stores)?;
    }
    if r.pos != bytes.len() {
        return Err(Error::decode(format!(
            "{} stray bytes after the planes chunk's blocks",
            bytes.len() - r.pos
        )));
    }
    Ok(())
}

/// How a planes chunk's blocks were cut, and the bytes of their streams, summed over the blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlanesBytes {
    /// Blocks in the chunk.
    pub blocks: usize,
    /// The narrowest and the widest symbol of its blocks, in bits.
    pub symbol_bits: (u32, u32),
    /// Blocks whose words are rotated (the sign below the flat bits).
    pub rotated_blocks: usize,
    /// Blocks with a zero mask.
    pub zero_mask_blocks: usize,
    /// Blocks whose symbols are rANS-coded.
    pub rans_blocks: usize,
    /// The header and the block length fields.
    pub header: usize,
    /// The zero mask streams.
    pub mask: usize,
    /// The symbol streams.
    pub symbols: usize,
    /// The coded lane streams.
    pub lanes: usize,
    /// The flat streams.
    pub flat: usize,
    /// Coded lanes, summed over the blocks.
    pub coded_lanes: usize,
}

impl PlanesBytes {
    /// A short description for `inspect`.
    pub fn describe(&self) -> String {
        let (lo, hi) = self.symbol_bits;
        let symbol = if lo == hi {
            format!("{lo}-bit symbol")
        } else {
            format!("{lo}-{hi}-bit symbols")
        };
        format!(
            "planes: {symbol}, {} of {} blocks with the sign low, {} with a zero mask, {} with rANS \
             symbols, {} coded lanes",
            self.rotated_blocks,
            self.blocks,
            self.zero_mask_blocks,
            self.rans_blocks,
            self.coded_lanes
        )
    }
}

/// The cut and stream sizes of a planes chunk of `n` words, without decoding it.
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed.
pub(crate) fn layout(bytes: &[u8], word: Word, n: usize) -> Result<PlanesBytes> {
    let mut r = Reader { bytes, pos: HEADER };
    let mut sizes = PlanesBytes {
        symbol_bits: (u32::MAX, 0),
        ..PlanesBytes::default()
    };
    for start in (0..n).step_by(BLOCK) {
        let values = (start + BLOCK).min(n) - start;
        let before = r.pos;
        let (lengths, block) = read_lengths(word.bits, &mut r)?;
        sizes.header += r.pos - before;
        sizes.blocks += 1;
        sizes.symbol_bits.0 = sizes.symbol_bits.0.min(block.symbol_bits);
        sizes.symbol_bits.1 = sizes.symbol_bits.1.max(block.symbol_bits);
        sizes.rotated_blocks += usize::from(block.rotated);
        sizes.zero_mask_blocks += usize::from(block.zero_mask);
        sizes.rans_blocks += usize::from(block.rans_symbols);
        sizes.coded_lanes += block.coded_lanes as usize;
        let stored = lengths.stored.unwrap_or(values);
        if stored > values {
            return Err(Error::decode(format!(
                "a block of {values} words stores {stored}"
            )));
        }
        let flat = packed_len(stored, block.flat_bits())?;
        let lanes: usize = lengths.lanes.iter().sum();
        for (len, what) in [
            (lengths.mask, "zero mask stream"),
            (lengths.symbols, "symbol stream"),
            (lanes, "lane streams"),
            (flat, "flat stream"),
        ] {
            r.take(len, what)?;
        }
        sizes.mask += lengths.mask;
        sizes.symbols += lengths.symbols;
        sizes.lanes += lanes;
        sizes.flat += flat;
    }
    sizes.header += HEADER;
    sizes.symbol_bits.0 = sizes.symbol_bits.0.min(sizes.symbol_bits.1);
    if r.pos != bytes.len() {
        return Err(Error::decode(format!(
            "{} stray bytes after the planes chunk's blocks",
            bytes.len() - r.pos
        )));
    }
    Ok(sizes)
}

/// The stream lengths at the start of a block.
struct BlockLengths {
    /// Words stored under a zero mask.
    stored: Option<usize>,
    mask: usize,
    symbols: usize,
    lanes: [usize; MAX_LANES as usize],
}

/// A block's cut and stream lengths, from its header.
fn read_lengths(word_bits: u32, r: &mut Reader<'_>) -> Result<(BlockLengths, Planes)> {
    let planes = Planes::parse(word_bits, r)?;
    let stored = if planes.zero_mask {
        Some(r.u32("stored words")? as usize)
    } else {
        None
    };
    let planes = planes.with_lanes(u32::from(r.u8("coded lanes")?))?;
    let mut len = |present: bool, what: &str| -> Result<usize> {
        Ok(if present { r.u32(what)? as usize } else { 0 })
    };
    let mask = len(planes.zero_mask, "zero mask stream length")?;
    let symbols = len(planes.symbol_bits > 0, "symbol stream length")?;
    let mut lanes = [0; MAX_LANES as usize];
    for (j, l) in lanes.iter_mut().enumerate() {
        *l = len((j as u32) < planes.coded_lanes, "lane stream length")?;
    }
    Ok((
        BlockLengths {
            stored,
            mask,
            symbols,
            lanes,
        },
        planes,
    ))
}

/// The words a block of `n` stores: all of them, or under a zero mask the nonzero ones, whose
/// bitmap is read into `mask` (one byte per symbol) and checked against the count.
fn stored_words(
    r: &mut Reader<'_>,
    lengths: &BlockLengths,
    n: usize,
    mask: &mut Vec<u16>,
) -> Result<usize> {
    let Some(stored) = lengths.stored else {
        return Ok(n);
    };
    mask.resize(n.div_ceil(8), 0);
    huffman::decode(r.take(lengths.mask, "zero mask stream")?, 8, mask)?;
    let set = assemble::check_mask(mask, n)?;
    if set != stored {
        return Err(Error::decode(format!(
            "zero mask marks {set} nonzero words, the block stores {stored}"
        )));
    }
    Ok(stored)
}

fn decode_block(
    level: Level,
    r: &mut Reader<'_>,
    word: Word,
    s: &mut Scratch,
    out: &mut [u8],
    stores: Stores,
) -> Result<()> {
    let word_bytes = word.bytes;
    let n = out.len() / word_bytes;
    let (lengths, planes) = read_lengths(word.bits, r)?;
    let stored = stored_words(r, &lengths, n, &mut s.mask)?;
    // Symbols of at most 8 bits and the lanes decode as bytes: the byte decoder's table entries
    // hold twice the symbols of the 16-bit one's, and the output is half the bytes.
    let symbols = if planes.symbol_bits > huffman::MAX_BYTE_WIDTH {
        s.symbols.resize(stored, 0);
        let stream = r.take(lengths.symbols, "symbol stream")?;
        huffman::decode(stream, planes.symbol_bits, &mut s.symbols)?;
        assemble::Symbols::Wide(&s.symbols)
    } else {
        s.symbol_bytes
            .resize(if planes.symbol_bits > 0 { stored } else { 0 }, 0);
        if planes.symbol_bits > 0 {
            let stream = r.take(lengths.symbols, "symbol stream")?;
            if planes.rans_symbols {
                entropy::decode_bytes(stream, planes.symbol_bits, &IDENTITY, &mut s.symbol_bytes)?;
            } else {
                huffman::decode_bytes(stream, planes.symbol_bits, &IDENTITY, &mut s.symbol_bytes)?;
            }
        }
        assemble::Symbols::Bytes(&s.symbol_bytes)
    };
    for j in 0..planes.coded_lanes as usize {
        s.lanes[j].resize(stored, 0);
        let stream = r.take(lengths.lanes[j], "lane stream")?;
        huffman::decode_bytes(stream, 8, &IDENTITY, &mut s.lanes[j])?;
    }
    let flat_len = packed_len(stored, planes.flat_bits())?;
    let flat = r.take(flat_len, "flat stream")?;
    let lanes: [&[u8]; MAX_LANES as usize] = [&s.lanes[0], &s.lanes[1], &s.lanes[2]];
    let fields = assemble::Fields {
        planes,
        symbols,
        lanes: &lanes[..planes.coded_lanes as usize],
        flat,
    };
    if planes.zero_mask {
        s.dense
            .resize(stored * word_bytes + assemble::DENSE_SLACK, 0);
        let words = &mut s.dense[..stored * word_bytes];
        assemble::assemble(level, &fields, word_bytes, words, Stores::Cached);
        assemble::expand(level, &s.mask, &s.dense, word_bytes, out, stores);
    } else {
        assemble::assemble(level, &fields, word_bytes, out, stores);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
