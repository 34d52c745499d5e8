//! The field kernels of the chunk coders: [`split`] turns elements into sign, code and mantissa
//! fields, [`expand`] and [`expand_flat`] turn them back. Each works block by block: the elements are
//! read and written straight from memory, the fields of one block go through small arrays that the
//! width-specialised packers of [`crate::coding::bitpack`] read or fill.

use super::mask::top_bits;
use super::{multiversion, pick, words_mut, Params, Word, LANES};
use crate::coding::bitpack::{low_mask, unpack_group, Packer, Unpacker};
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

/// One block's fields in the lane word (half the bytes of `u64` fields for the 32-bit and narrower
/// types), as [`split_block`] leaves them.
struct Fields<L> {
    codes: [L; LANES],
    mants: [L; LANES],
    /// Each in-band value with its sign moved to the top bit, for the sign mask.
    signs: [L; LANES],
    /// All ones for a special, zero otherwise.
    specials: [L; LANES],
}

/// The fields of the [`LANES`] elements of one block (`part`, the first at flat index `base`) into
/// `f`; returns the sign and special bit masks. `FIX`: stochastic underflow.
#[inline(always)]
fn split_block<W: Word, const M: u8, const FIX: bool, const LEVEL: u8>(
    p: &Params<W::Lane>,
    part: &[u8],
    base: u64,
    f: &mut Fields<W::Lane>,
) -> (u64, u64) {
    let up = 8 * <W::Lane>::SIZE as u32 - 1 - p.sign_shift;
    // A whole block, so that the loop's trip count is a constant.
    let part = &part[..LANES * W::SIZE];
    for i in 0..LANES {
        let b = W::load(&part[i * W::SIZE..(i + 1) * W::SIZE]).lane();
        let index = base + i as u64;
        let mut q = p.quantize::<M>(b, index);
        if FIX {
            q = p.fix(b, q, index).unwrap_or(q);
        }
        let special = (b & p.mag) >= p.special;
        f.specials[i] = pick(special, <W::Lane>::MAX, <W::Lane>::ZERO);
        // Specials are stored as a positive zero in-band.
        let v = pick(special, <W::Lane>::ZERO, q);
        f.signs[i] = v << up;
        let r = v & p.mag;
        let field = r >> p.src_m;
        f.codes[i] = pick(
            field > p.offset,
            field.wrapping_sub(p.offset),
            <W::Lane>::ZERO,
        );
        f.mants[i] = (r & p.man_mask) >> p.drop;
    }
    (
        top_bits::<_, LEVEL>(&f.signs),
        top_bits::<_, LEVEL>(&f.specials),
    )
}

/// Packs eight fields of `bits` (1 to 7) bits, one per byte of `bytes` (its low bits; the rest
/// zero), into the low `8 * bits` bits of a word, LSB first: a parallel bit extract where the CPU
/// has one (BMI2), shifts otherwise.
#[inline(always)]
fn pack_eight(bytes: u64, bits: u32, has_pext: bool) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if has_pext {
        let mask = ((1u64 << bits) - 1) * 0x0101_0101_0101_0101;
        // SAFETY: `has_pext` is true only where BMI2 was detected on this CPU.
        return unsafe { std::arch::x86_64::_pext_u64(bytes, mask) };
    }
    let _ = has_pext;
    (0..8).fold(0u64, |w, j| w | ((bytes >> (8 * j)) & 0xff) << (j * bits))
}

/// Whether [`pack_eight`] may use the parallel bit extract.
#[inline(always)]
fn has_pext() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("bmi2");
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Packs one block of fields as block `k` of a stream packed at `bits` (the last block cut short).
#[inline(always)]
fn pack_block<L: Word>(
    pack: Packer,
    bits: u32,
    fields: &[L; LANES],
    stream: &mut [u8],
    k: usize,
    has_pext: bool,
) {
    let step = 8 * bits as usize;
    let at = k * step;
    if (1..=8).contains(&bits) {
        if let Some(dst) = stream.get_mut(at..at + step + 8) {
            // Fields of at most 8 bits: a narrowing copy to bytes (it vectorises), then eight at a
            // time packed into one word stored whole. The zeros it writes past its `bits` bytes are
            // overwritten by the next eight, or by the next block (blocks are packed in order).
            let mask = low_mask(bits);
            let mut narrow = [0u8; LANES];
            for (n, &f) in narrow.iter_mut().zip(fields.iter()) {
                *n = (f.to_u64() & mask) as u8;
            }
            if bits == 8 {
                // A copy of constant length, inlined (a length known only at run time is a call).
                dst[..LANES].copy_from_slice(&narrow);
                return;
            }
            let width = bits as usize;
            for (g, group) in narrow.chunks_exact(8).enumerate() {
                let mut eight = [0u8; 8];
                eight.copy_from_slice(group);
                let w = pack_eight(u64::from_le_bytes(eight), bits, has_pext);
                dst[g * width..g * width + 8].copy_from_slice(&w.to_le_bytes());
            }
            return;
        }
    }
    let mut wide = [0u64; LANES];
    for (w, &f) in wide.iter_mut().zip(fields.iter()) {
        *w = f.to_u64();
    }
    if let Some(dst) = stream.get_mut(at..at + step) {
        pack(&wide, dst);
    } else if let Some(dst) = stream.get_mut(at..) {
        let mut whole = [0u8; 8 * LANES];
        pack(&wide, &mut whole[..step]);
        let len = dst.len().min(step);
        dst[..len].copy_from_slice(&whole[..len]);
    }
}

/// Unpacks block `k` of a stream packed at `bits` (the last block padded with zeros).
#[inline(always)]
fn unpack_block<L: Word>(
    unpack: Unpacker,
    bits: u32,
    stream: &[u8],
    k: usize,
    fields: &mut [L; LANES],
) {
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
                    *v = L::from_u64((w >> s) & mask);
                }
            }
            return;
        }
    }
    if let Some(src) = stream.get(at..at + LANES).filter(|_| bits == 8) {
        // Byte-wide fields (full 8-bit exponents): a widening copy of constant length, which
        // vectorises (over a slice of run-time length it stayed a loop of byte loads).
        let mut bytes = [0u8; LANES];
        bytes.copy_from_slice(src);
        for (f, &b) in fields.iter_mut().zip(bytes.iter()) {
            *f = L::from_u64(u64::from(b));
        }
        return;
    }
    let mut wide = [0u64; LANES];
    unpack_group(unpack, bits, stream, k, &mut wide);
    for (f, &w) in fields.iter_mut().zip(wide.iter()) {
        *f = L::from_u64(w);
    }
}

/// The sign bits of block `k` (0 without a sign stream).
#[inline(always)]
fn sign_word(signs: Option<&[u8]>, k: usize) -> u64 {
    let mut word = [0u8; 8];
    if let Some(eight) = signs.and_then(|s| s.get(k * 8..k * 8 + 8)) {
        // One load of constant length (a length known only at run time is a call).
        word.copy_from_slice(eight);
    } else if let Some(tail) = signs.and_then(|s| s.get(k * 8..)) {
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
fn expand_block<W: Word, C: Word, const CHECK: bool>(
    p: &Params<W>,
    sign: u64,
    codes: &[C; LANES],
    mants: &[W::Lane; LANES],
    dst: &mut [u8],
) -> bool {
    let mut stray = 0u64;
    let fields = codes.iter().zip(mants.iter());
    if let Some(words) = words_mut::<W>(dst) {
        for (i, (x, (&c, &m))) in words.iter_mut().zip(fields).enumerate() {
            let (c, m) = (c.to_u64(), m.to_u64());
            if CHECK {
                stray |= u64::from(c == 0) & u64::from(m != 0);
            }
            *x = p.expand((sign >> i) & 1, c, m).to_le();
        }
    } else {
        for (i, (d, (&c, &m))) in dst.chunks_exact_mut(W::SIZE).zip(fields).enumerate() {
            let (c, m) = (c.to_u64(), m.to_u64());
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
        let pext = has_pext();
        let zero = [<W::Lane>::ZERO; LANES];
        let mut f = Fields { codes: zero, mants: zero, signs: zero, specials: zero };
        let mut tail = [0u8; 8 * LANES];
        for (k, part) in src.chunks(LANES * W::SIZE).enumerate() {
            let base = first + (k * LANES) as u64;
            let n = part.len() / W::SIZE;
            // A short last block is split padded with zeros, which pack as zeros and count as
            // neither negative nor special.
            let whole = if n < LANES {
                tail[..part.len()].copy_from_slice(part);
                &tail[..]
            } else {
                part
            };
            let (signs, mut specials) = if p.fixup {
                split_block::<W, M, true, LEVEL>(&lane, whole, base, &mut f)
            } else {
                split_block::<W, M, false, LEVEL>(&lane, whole, base, &mut f)
            };
            negative |= signs;
            if let Some(dst) = s.signs.get_mut(k * 8..k * 8 + 8) {
                // One store of constant length (a length known only at run time is a call).
                dst.copy_from_slice(&signs.to_le_bytes());
            } else if let Some(dst) = s.signs.get_mut(k * 8..) {
                let len = dst.len().min(8);
                dst[..len].copy_from_slice(&signs.to_le_bytes()[..len]);
            }
            match &mut s.codes {
                Codes::Wide(wide) => {
                    let dst = wide.get_mut(k * LANES..).unwrap_or_default();
                    for (d, &c) in dst.iter_mut().zip(f.codes.iter()).take(n) {
                        *d = c.to_u64() as u16;
                    }
                }
                Codes::Packed(stream, pack, bits) => {
                    pack_block(*pack, *bits, &f.codes, stream, k, pext)
                }
            }
            pack_block(s.pack, s.man_bits, &f.mants, s.mants, k, pext);
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
        let (mut c, mut m) = ([0u16; LANES], [<W::Lane>::ZERO; LANES]);
        let stores = stores.for_staged(out);
        let mut staged = Staged::default();
        for (k, dst) in out.chunks_mut(LANES * W::SIZE).enumerate() {
            unpack_block(unpack.0, unpack.1, mants, k, &mut m);
            if let Some(block) = codes.get(k * LANES..(k + 1) * LANES) {
                // A copy of constant length, inlined (a length known only at run time is a call).
                c.copy_from_slice(block);
            } else {
                let tail = codes.get(k * LANES..).unwrap_or_default();
                c[..tail.len()].copy_from_slice(tail);
                // Lanes past the last element must not count as stray.
                c[tail.len()..].fill(1);
            }
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
        let (mut c, mut m) = ([<W::Lane>::ZERO; LANES], [<W::Lane>::ZERO; LANES]);
        let stores = stores.for_staged(out);
        let mut staged = Staged::default();
        for (k, dst) in out.chunks_mut(LANES * W::SIZE).enumerate() {
            unpack_block(codes.1, codes.2, codes.0, k, &mut c);
            unpack_block(mants.1, mants.2, mants.0, k, &mut m);
            let sign = sign_word(signs, k);
            let into = staging(stores, &mut staged, dst);
            stray |= if check {
                expand_block::<W, W::Lane, true>(p, sign, &c, &m, into)
            } else {
                expand_block::<W, W::Lane, false>(p, sign, &c, &m, into)
            };
            if stores == Stores::Streaming {
                stores.put(&staged, dst);
            }
        }
        stores.finish();
        stray
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight fields packed LSB first, one at a time.
    fn reference(bytes: u64, bits: u32) -> u64 {
        (0..8).fold(0u64, |w, j| {
            w | ((bytes >> (8 * j)) & ((1 << bits) - 1)) << (j * bits)
        })
    }

    #[test]
    fn eight_fields_pack_alike_with_and_without_the_bit_extract() {
        let mut x = 0x0123_4567_89ab_cdefu64;
        for _ in 0..2000 {
            x = x.rotate_left(13).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5851_F42D;
            for bits in 1..8 {
                // The packer reads fields of `bits` bits a byte each, the high bits clear.
                let fields = x & (((1u64 << bits) - 1) * 0x0101_0101_0101_0101);
                let want = reference(fields, bits);
                assert_eq!(pack_eight(fields, bits, false), want, "bits {bits}");
                if has_pext() {
                    assert_eq!(pack_eight(fields, bits, true), want, "bits {bits}");
                }
            }
        }
    }
}
