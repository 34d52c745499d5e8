//! The field kernels of the chunk coders: [`split`] turns elements into sign, code and mantissa
//! fields, [`expand`] and [`expand_flat`] turn them back. Each works block by block: the elements are
//! read and written straight from memory, the fields of one block go through two small arrays that the
//! width-specialised packers of [`crate::coding::bitpack`] read or fill.

use super::{multiversion, pick, words_mut, Params, Word, LANES};
use crate::coding::bitpack::{unpack_group, Packer, Unpacker};
use crate::runtime::memory::{Staged, Stores};

/// Where [`split`] puts the exponent codes.
pub(crate) enum Codes<'a> {
    /// One `u16` per element, for the exponent coders.
    Wide(&'a mut [u16]),
    /// Packed flat by the packer at the width (exactly `packed_len(n, width)` bytes): the raw
    /// coder's stream, written in place.
    Packed(&'a mut [u8], Packer, u32),
}

/// What [`split`] writes besides the packed streams.
pub(crate) struct Split<'a> {
    /// One bit per element, LSB first: `n.div_ceil(8)` bytes.
    pub signs: &'a mut [u8],
    /// The exponent codes.
    pub codes: Codes<'a>,
    /// Mantissas packed at `man_bits`: exactly `packed_len(n, man_bits)` bytes.
    pub mants: &'a mut [u8],
    /// Out-of-band specials: `u32` index in the chunk, then the raw element bytes.
    pub exceptions: &'a mut Vec<u8>,
    /// The packer for `man_bits`.
    pub pack: Packer,
    /// The mantissa width.
    pub man_bits: u32,
}

/// The fields of the elements of one block (`part`, whole elements, the first at flat index `base`)
/// into `codes` and `mants`; returns the sign and special bit masks. `FIX`: stochastic underflow.
#[inline(always)]
fn split_block<W: Word, const M: u8, const FIX: bool>(
    p: &Params<W::Lane>,
    part: &[u8],
    base: u64,
    codes: &mut [u64; LANES],
    mants: &mut [u64; LANES],
) -> (u64, u64) {
    let (mut signs, mut specials) = (0u64, 0u64);
    let fields = part
        .chunks_exact(W::SIZE)
        .zip(codes.iter_mut().zip(mants.iter_mut()));
    for (i, (e, (c, m))) in fields.enumerate() {
        let b = W::load(e).lane();
        let index = base + i as u64;
        let mut q = p.quantize::<M>(b, index);
        if FIX {
            q = p.fix(b, q, index).unwrap_or(q);
        }
        let special = (b & p.mag) >= p.special;
        specials |= u64::from(special) << i;
        // Specials are stored as a positive zero in-band.
        let v = pick(special, <W::Lane>::ZERO, q);
        signs |= (v >> p.sign_shift).to_u64() << i;
        let r = v & p.mag;
        let field = r >> p.src_m;
        *c = pick(
            field > p.offset,
            field.wrapping_sub(p.offset),
            <W::Lane>::ZERO,
        )
        .to_u64();
        *m = ((r & p.man_mask) >> p.drop).to_u64();
    }
    (signs, specials)
}

/// Packs one block of fields as block `k` of a stream packed at `bits` (the last block cut short).
#[inline(always)]
fn pack_block(pack: Packer, bits: u32, fields: &[u64; LANES], stream: &mut [u8], k: usize) {
    let step = 8 * bits as usize;
    let at = k * step;
    if (1..8).contains(&bits) {
        if let Some(dst) = stream.get_mut(at..at + step + 8) {
            // Eight fields fill `bits` bytes: shift each eight into one word (in this level's
            // instructions, as in `unpack_block`) and store it whole. The zeros it writes past its
            // `bits` bytes are overwritten by the next eight, or by the next block (blocks are packed
            // in order).
            let shifts: [u32; 8] = std::array::from_fn(|j| j as u32 * bits);
            let mask = (1u64 << bits) - 1;
            let width = bits as usize;
            for (g, group) in fields.chunks_exact(8).enumerate() {
                let mut w = 0u64;
                for (&f, &s) in group.iter().zip(shifts.iter()) {
                    w |= (f & mask) << s;
                }
                dst[g * width..g * width + 8].copy_from_slice(&w.to_le_bytes());
            }
            return;
        }
    }
    if let Some(dst) = stream.get_mut(at..at + step) {
        if bits == 8 {
            // Byte-wide fields (full 8-bit exponents): a narrowing copy that vectorises.
            for (d, &f) in dst.iter_mut().zip(fields.iter()) {
                *d = f as u8;
            }
        } else {
            pack(fields, dst);
        }
    } else if let Some(dst) = stream.get_mut(at..) {
        let mut whole = [0u8; 8 * LANES];
        pack(fields, &mut whole[..step]);
        let len = dst.len().min(step);
        dst[..len].copy_from_slice(&whole[..len]);
    }
}

/// Unpacks block `k` of a stream packed at `bits` (the last block padded with zeros).
#[inline(always)]
fn unpack_block(unpack: Unpacker, bits: u32, stream: &[u8], k: usize, fields: &mut [u64; LANES]) {
    let step = 8 * bits as usize;
    let at = k * step;
    if (1..8).contains(&bits) {
        if let Some(src) = stream.get(at..at + step + 8) {
            // Eight fields fill `bits` bytes: read each eight as one word (the stream has room past
            // the block) and split it by a vector of shifts, in this level's instructions (the
            // unpackers behind the function pointers are compiled for the baseline).
            let shifts: [u32; 8] = std::array::from_fn(|j| j as u32 * bits);
            let mask = (1u64 << bits) - 1;
            let width = bits as usize;
            for (g, group) in fields.chunks_exact_mut(8).enumerate() {
                let mut word = [0u8; 8];
                word.copy_from_slice(&src[g * width..g * width + 8]);
                let w = u64::from_le_bytes(word);
                for (v, &s) in group.iter_mut().zip(shifts.iter()) {
                    *v = (w >> s) & mask;
                }
            }
            return;
        }
    }
    if let Some(src) = stream.get(at..at + step).filter(|_| bits == 8) {
        // Byte-wide fields (full 8-bit exponents): a widening copy that vectorises.
        for (f, &b) in fields.iter_mut().zip(src) {
            *f = u64::from(b);
        }
        return;
    }
    unpack_group(unpack, bits, stream, k, fields);
}

/// The sign bits of block `k` (0 without a sign stream).
#[inline(always)]
fn sign_word(signs: Option<&[u8]>, k: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(tail) = signs.and_then(|s| s.get(k * 8..)) {
        let len = tail.len().min(8);
        word[..len].copy_from_slice(&tail[..len]);
    }
    u64::from_le_bytes(word)
}

/// Where an expand kernel writes the output block `dst`: straight into it with cached stores, or
/// into the cache-resident `staged` block that [`Stores::put`] then streams out (so the kernel's
/// vectorised stores stay what the compiler makes of them).
#[inline(always)]
fn staging<'a>(stores: Stores, staged: &'a mut Staged, dst: &'a mut [u8]) -> &'a mut [u8] {
    match stores {
        Stores::Cached => dst,
        Stores::Streaming => &mut staged.0[..dst.len()],
    }
}

/// Expands one block into `dst` (whole elements, at most [`LANES`]); with `CHECK`, returns whether a
/// zero code carries a nonzero mantissa (malformed where the zero code can only stand for zero). The block is
/// built in a fixed-size array first: that loop vectorises, one over `dst`'s elements directly does not.
#[inline(always)]
fn expand_block<W: Word, C: Copy + Into<u64>, const CHECK: bool>(
    p: &Params<W>,
    sign: u64,
    codes: &[C; LANES],
    mants: &[u64; LANES],
    dst: &mut [u8],
) -> bool {
    let mut stray = 0u64;
    let fields = codes.iter().zip(mants.iter());
    if let Some(words) = words_mut::<W>(dst) {
        for (i, (x, (&c, &m))) in words.iter_mut().zip(fields).enumerate() {
            let c: u64 = c.into();
            if CHECK {
                stray |= u64::from(c == 0) & u64::from(m != 0);
            }
            *x = p.expand((sign >> i) & 1, c, m).to_le();
        }
    } else {
        for (i, (d, (&c, &m))) in dst.chunks_exact_mut(W::SIZE).zip(fields).enumerate() {
            let c: u64 = c.into();
            if CHECK {
                stray |= u64::from(c == 0) & u64::from(m != 0);
            }
            p.expand((sign >> i) & 1, c, m).store(d);
        }
    }
    stray != 0
}

multiversion! {
    /// Splits the elements of `src` (flat index of the first: `first`) into signs, codes, packed
    /// mantissas and exceptions; returns whether any in-band value is negative.
    fn split(p: &Params<W>, src: &[u8], first: u64, s: &mut Split<'_>) -> bool {
        let mut negative = 0u64;
        // Computed in the lane word: 16-bit elements in `u32` so the block loop vectorises.
        let lane = p.lane();
        let (mut codes, mut mants) = ([0u64; LANES], [0u64; LANES]);
        for (k, part) in src.chunks(LANES * W::SIZE).enumerate() {
            let base = first + (k * LANES) as u64;
            let n = part.len() / W::SIZE;
            if n < LANES {
                // The packed tail holds zeros past the last element.
                codes = [0; LANES];
                mants = [0; LANES];
            }
            let (signs, mut specials) = if p.fixup {
                split_block::<W, M, true>(&lane, part, base, &mut codes, &mut mants)
            } else {
                split_block::<W, M, false>(&lane, part, base, &mut codes, &mut mants)
            };
            negative |= signs;
            if let Some(dst) = s.signs.get_mut(k * 8..) {
                let len = dst.len().min(8);
                dst[..len].copy_from_slice(&signs.to_le_bytes()[..len]);
            }
            match &mut s.codes {
                Codes::Wide(wide) => {
                    let dst = wide.get_mut(k * LANES..).unwrap_or_default();
                    for (d, &c) in dst.iter_mut().zip(codes.iter()).take(n) {
                        *d = c as u16;
                    }
                }
                Codes::Packed(stream, pack, bits) => pack_block(*pack, *bits, &codes, stream, k),
            }
            pack_block(s.pack, s.man_bits, &mants, s.mants, k);
            while specials != 0 {
                let i = specials.trailing_zeros() as usize;
                specials &= specials - 1;
                let index = (k * LANES + i) as u32;
                s.exceptions.extend_from_slice(&index.to_le_bytes());
                s.exceptions.extend_from_slice(&part[i * W::SIZE..(i + 1) * W::SIZE]);
            }
        }
        negative != 0
    }
}

multiversion! {
    /// Expands stored fields into `out` (whole elements): `signs` as [`split`] wrote them (`None`: all
    /// positive), one code per element, mantissas packed at the width of `unpack`. With `check`,
    /// returns whether a zero code carries a nonzero mantissa (else `false`).
    fn expand(
        p: &Params<W>,
        signs: Option<&[u8]>,
        codes: &[u16],
        mants: &[u8],
        unpack: (Unpacker, u32),
        check: bool,
        stores: Stores,
        out: &mut [u8],
    ) -> bool {
        let mut stray = false;
        let (mut c, mut m) = ([0u16; LANES], [0u64; LANES]);
        let stores = stores.for_slice(out);
        let mut staged = Staged::default();
        for (k, dst) in out.chunks_mut(LANES * W::SIZE).enumerate() {
            unpack_block(unpack.0, unpack.1, mants, k, &mut m);
            let tail = codes.get(k * LANES..).unwrap_or_default();
            let n = tail.len().min(LANES);
            c[..n].copy_from_slice(&tail[..n]);
            // Lanes past the last element must not count as stray.
            c[n..].fill(1);
            let sign = sign_word(signs, k);
            let into = staging(stores, &mut staged, dst);
            stray |= if check {
                expand_block::<W, u16, true>(p, sign, &c, &m, into)
            } else {
                expand_block::<W, u16, false>(p, sign, &c, &m, into)
            };
            if stores == Stores::Streaming {
                stores.put(&staged, dst);
            }
        }
        stores.finish();
        stray
    }
}

multiversion! {
    /// [`expand`] with the codes packed flat too (the raw coder's stream), as `(stream, unpacker,
    /// width)`: no code array in between.
    fn expand_flat(
        p: &Params<W>,
        signs: Option<&[u8]>,
        codes: (&[u8], Unpacker, u32),
        mants: (&[u8], Unpacker, u32),
        check: bool,
        stores: Stores,
        out: &mut [u8],
    ) -> bool {
        let mut stray = false;
        let (mut c, mut m) = ([0u64; LANES], [0u64; LANES]);
        let stores = stores.for_slice(out);
        let mut staged = Staged::default();
        for (k, dst) in out.chunks_mut(LANES * W::SIZE).enumerate() {
            unpack_block(codes.1, codes.2, codes.0, k, &mut c);
            unpack_block(mants.1, mants.2, mants.0, k, &mut m);
            let sign = sign_word(signs, k);
            let into = staging(stores, &mut staged, dst);
            stray |= if check {
                expand_block::<W, u64, true>(p, sign, &c, &m, into)
            } else {
                expand_block::<W, u64, false>(p, sign, &c, &m, into)
            };
            if stores == Stores::Streaming {
                stores.put(&staged, dst);
            }
        }
        stores.finish();
        stray
    }
}
