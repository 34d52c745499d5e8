//! Gecko: exponent codes delta-coded in small groups, each group at its own fixed width (the paper's
//! lossless exponent coder).
//!
//! The chunk reference `r` is the largest code. Codes are cut into groups of `G = 2^group_log2`
//! consecutive values (the last may be shorter). Each group has a header: with [`Base::Group`], the
//! offset `r - b` of its own base `b` (its largest code) in `bits(r)` bits; then the width `w` of its
//! largest delta in `bits(bits(r))` bits; then, with [`Zeros::Code`], one bit saying whether the group
//! holds zero codes. Each value follows as `b - code` in `w` bits. With [`Zeros::Code`], a group
//! that holds zeros reserves the all-ones delta for them (so a ReLU zero costs no more than its
//! neighbours, and an all-zero group costs only its header); with [`Zeros::Natural`] a zero is
//! simply the delta `b`.
//!
//! Stream layout: a parameter byte (`group_log2` in bits 0-3, bit 4 = group base, bit 5 = zero
//! code), `r` as u16 little-endian, then one LSB-first bit stream of headers and deltas, padded to a
//! byte. Empty when there are no codes.

use crate::error::{Error, Result};

/// Widest code Gecko takes.
pub const MAX_WIDTH: u32 = 16;

/// What the deltas of a group are taken from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Base {
    /// The chunk's largest code: no per-group base field.
    Chunk,
    /// The group's largest code, stored per group as its offset below the chunk's.
    Group,
}

/// How zero codes (zeros, ReLU outputs) are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Zeros {
    /// A zero is the delta `base - 0`, like any other code.
    Natural,
    /// A per-group flag; in flagged groups the all-ones delta means zero.
    Code,
}

/// Gecko's parameters; they travel in the stream, so a decoder needs none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// log2 of the group size, 0..=15.
    pub group_log2: u32,
    /// Where deltas are taken from.
    pub base: Base,
    /// How zeros are stored.
    pub zeros: Zeros,
}

impl Params {
    /// The defaults, chosen from measurements on the MiniLM weights (`bench/gecko_params.py`): groups of 32, a
    /// per-group base, the zero code.
    pub const DEFAULT: Self = Self {
        group_log2: 5,
        base: Base::Group,
        zeros: Zeros::Code,
    };

    /// Values per group.
    pub fn group(self) -> usize {
        1usize << self.group_log2
    }

    fn to_byte(self) -> u8 {
        (self.group_log2 as u8 & 0x0f)
            | (u8::from(self.base == Base::Group) << 4)
            | (u8::from(self.zeros == Zeros::Code) << 5)
    }

    fn from_byte(b: u8) -> Result<Self> {
        if b & 0xc0 != 0 {
            return Err(Error::decode(format!(
                "gecko stream: unknown parameter bits in {b:#04x}"
            )));
        }
        Ok(Self {
            group_log2: u32::from(b & 0x0f),
            base: if b & 0x10 != 0 {
                Base::Group
            } else {
                Base::Chunk
            },
            zeros: if b & 0x20 != 0 {
                Zeros::Code
            } else {
                Zeros::Natural
            },
        })
    }
}

impl Default for Params {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Bits needed to write `v` (0 for 0).
fn bits(v: u32) -> u32 {
    u32::BITS - v.leading_zeros()
}

/// Header field widths for chunk reference `r`: (base offset bits, width bits, zero flag bits).
fn header_widths(r: u16, p: Params) -> (u32, u32, u32) {
    let wmax = bits(u32::from(r));
    let ob = if p.base == Base::Group { wmax } else { 0 };
    (ob, bits(wmax), u32::from(p.zeros == Zeros::Code))
}

/// One group's base, delta width and zero flag.
#[inline]
fn plan(group: &[u16], r: u16, p: Params) -> (u16, u32, bool) {
    let mut max_nz = 0u16;
    let mut min_nz = u32::MAX;
    let mut has_zero = false;
    for &c in group {
        has_zero |= c == 0;
        max_nz = max_nz.max(c);
        min_nz = min_nz.min(if c == 0 { u32::MAX } else { u32::from(c) });
    }
    let base = if p.base == Base::Group { max_nz } else { r };
    match p.zeros {
        Zeros::Natural => {
            let min = if has_zero { 0 } else { min_nz };
            (base, bits(u32::from(base) - min), false)
        }
        Zeros::Code if min_nz == u32::MAX => (base, 0, true),
        Zeros::Code => {
            let maxd = u32::from(base) - min_nz + u32::from(has_zero);
            (base, bits(maxd), has_zero)
        }
    }
}

fn masked(codes: &[u16], width: u32) -> (u16, u16) {
    let mask = ((1u32 << width.min(MAX_WIDTH)) - 1) as u16;
    (mask, codes.iter().fold(0u16, |m, &c| m.max(c & mask)))
}

/// Exact length of the stream [`encode_with`] writes for these codes and parameters.
pub fn encoded_len(codes: &[u16], width: u32, p: Params) -> usize {
    if codes.is_empty() {
        return 0;
    }
    let (mask, r) = masked(codes, width);
    let (ob, hw, zb) = header_widths(r, p);
    let mut total: u64 = 0;
    let mut buf = vec![0u16; p.group().min(codes.len())];
    for group in codes.chunks(p.group()) {
        let g = &mut buf[..group.len()];
        for (d, &c) in g.iter_mut().zip(group) {
            *d = c & mask;
        }
        let (_, w, _) = plan(g, r, p);
        total += u64::from(ob + hw + zb) + group.len() as u64 * u64::from(w);
    }
    3 + total.div_ceil(8) as usize
}

/// Gecko-codes `codes` (masked to `width` bits) with the default parameters, appending to `out`.
pub fn encode(codes: &[u16], width: u32, out: &mut Vec<u8>) {
    encode_with(codes, width, Params::DEFAULT, out);
}

/// Gecko-codes `codes` (masked to `width` bits, `width` at most [`MAX_WIDTH`]) with parameters `p`.
pub fn encode_with(codes: &[u16], width: u32, p: Params, out: &mut Vec<u8>) {
    if codes.is_empty() {
        return;
    }
    let (mask, r) = masked(codes, width);
    let (ob, hw, zb) = header_widths(r, p);
    out.push(p.to_byte());
    out.extend_from_slice(&r.to_le_bytes());
    let mut bw = BitWriter { out, acc: 0, n: 0 };
    let mut buf = vec![0u16; p.group().min(codes.len())];
    for group in codes.chunks(p.group()) {
        let g = &mut buf[..group.len()];
        for (d, &c) in g.iter_mut().zip(group) {
            *d = c & mask;
        }
        let (base, w, zero) = plan(g, r, p);
        bw.push(u32::from(r - base), ob);
        bw.push(w, hw);
        bw.push(u32::from(zero), zb);
        let ones = (1u32 << w) - 1;
        for &c in g.iter() {
            let d = if zero && c == 0 {
                ones
            } else {
                u32::from(base - c)
            };
            bw.push(d, w);
        }
    }
    bw.finish();
}

/// Decodes exactly `out.len()` codes from the whole stream `bytes`.
///
/// # Errors
/// [`Error::Decode`] when the stream is malformed, truncated or longer than its codes, or decodes to a
/// code wider than `width`.
pub fn decode(bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
    if width > MAX_WIDTH {
        return Err(Error::decode(format!(
            "gecko stream: width {width} exceeds {MAX_WIDTH}"
        )));
    }
    if out.is_empty() {
        return if bytes.is_empty() {
            Ok(())
        } else {
            Err(Error::decode("gecko stream: bytes present for zero codes"))
        };
    }
    let [pb, r0, r1] = *bytes
        .first_chunk::<3>()
        .ok_or_else(|| Error::decode("gecko stream: truncated"))?;
    let p = Params::from_byte(pb)?;
    let r = u16::from_le_bytes([r0, r1]);
    if u32::from(r) >= 1u32 << width {
        return Err(Error::decode(format!(
            "gecko stream: reference {r} does not fit {width} bits"
        )));
    }
    let (ob, hw, zb) = header_widths(r, p);
    let wmax = bits(u32::from(r));
    let mut rd = BitReader {
        bytes: &bytes[3..],
        pos: 0,
        acc: 0,
        n: 0,
        virt: 0,
    };
    let mut bad = false;
    for group in out.chunks_mut(p.group()) {
        let off = rd.read(ob);
        let w = rd.read(hw);
        let zero = rd.read(zb) != 0;
        if off > u32::from(r) || w > wmax {
            return Err(Error::decode("gecko stream: group header out of range"));
        }
        let base = u32::from(r) - off;
        let ones = (1u32 << w) - 1;
        let zcode = if zero { ones } else { u32::MAX };
        for o in group.iter_mut() {
            let d = rd.read(w);
            let is_zero = d == zcode;
            bad |= !is_zero & (d > base);
            *o = if is_zero {
                0
            } else {
                base.wrapping_sub(d) as u16
            };
        }
    }
    if bad {
        return Err(Error::decode("gecko stream: delta below zero"));
    }
    rd.finish()
}

/// LSB-first bit writer flushing 32 bits at a time; fields are at most 16 bits wide.
struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter<'_> {
    #[inline]
    fn push(&mut self, v: u32, w: u32) {
        self.acc |= u64::from(v & ((1u32 << w) - 1)) << self.n;
        self.n += w;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    fn finish(self) {
        let tail = self.n.div_ceil(8) as usize;
        self.out.extend_from_slice(&self.acc.to_le_bytes()[..tail]);
    }
}

/// LSB-first bit reader; reading past the end yields zeros and is reported by [`BitReader::finish`].
struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    acc: u64,
    n: u32,
    virt: usize,
}

impl BitReader<'_> {
    #[inline]
    fn read(&mut self, w: u32) -> u32 {
        if self.n < w {
            self.refill();
        }
        let v = (self.acc as u32) & ((1u32 << w) - 1);
        self.acc >>= w;
        self.n -= w;
        v
    }

    #[inline]
    fn refill(&mut self) {
        if let Some(b) = self.bytes.get(self.pos..self.pos + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(b);
            self.acc |= u64::from_le_bytes(word) << self.n;
            let take = (63 - self.n) / 8;
            self.pos += take as usize;
            self.n += take * 8;
        } else {
            while self.n <= 56 {
                match self.bytes.get(self.pos) {
                    Some(&b) => {
                        self.acc |= u64::from(b) << self.n;
                        self.pos += 1;
                    }
                    None => self.virt += 1,
                }
                self.n += 8;
            }
        }
    }

    /// Checks that the codes ended in the stream's last byte.
    fn finish(self) -> Result<()> {
        let consumed = (self.pos + self.virt) * 8 - self.n as usize;
        if consumed.div_ceil(8) != self.bytes.len() {
            return Err(Error::decode(format!(
                "gecko stream: codes take {consumed} bits but the stream holds {} bytes",
                self.bytes.len()
            )));
        }
        Ok(())
    }
}
