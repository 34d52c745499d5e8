//! Elements rebuilt from joint symbols in one pass: each symbol (`((code << top) | top bits) << 1 |
//! sign`, without the parts a chunk leaves out) fixes an element's sign, exponent field and top
//! mantissa bits, so a table gives its bits with the low mantissa bits clear, and an element is
//! that prefix OR its low bits. This replaces separate passes that split the sign, then the top
//! bits, then repacked the mantissas for the expand kernel.

use crate::coding::bitpack::{self, low_mask};
use crate::error::{Error, Result};
use crate::kernel::Word;
use crate::reduce::Reducer;

/// How a chunk's symbols are laid out and where the rest of each mantissa is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Layout {
    /// Top mantissa bits in each symbol.
    pub top: u32,
    /// The sign is the symbol's lowest bit.
    pub joint_sign: bool,
    /// Zero-code values have no stored low bits (they are all zero).
    pub zero_skip: bool,
}

/// The low mantissa bits of the chunk's values.
pub(crate) enum Low<'a> {
    /// One value per stored element (every element, or every nonzero-code one under zero skip).
    Values(&'a [u64]),
    /// Flat packed, `bits` per element, for every element.
    Packed { bytes: &'a [u8], bits: u32 },
}

/// Table flag: the symbol's exponent code is 0.
const CODE_ZERO: u8 = 1;
/// Table flag: the symbol stands for a signed zero, so its mantissa must be zero.
const MUST_BE_ZERO: u8 = 2;

/// Reused tables of [`assemble`].
#[derive(Default)]
pub(crate) struct Tables {
    prefix: Vec<u64>,
    flags: Vec<u8>,
}

/// The number of symbols whose exponent code is 0 (their low bits are skipped under zero skip).
pub(crate) fn zero_codes(syms: &[u16], layout: Layout) -> usize {
    let shift = layout.top + u32::from(layout.joint_sign);
    syms.iter().filter(|&&s| s >> shift == 0).count()
}

/// Writes the elements of `syms` (each below `2^width`) into `out` (`W` words, little-endian).
///
/// # Errors
/// [`Error::Decode`] when a value that must be a signed zero has mantissa bits, or the low values do
/// not match the symbols in number.
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble<W: Word>(
    r: &Reducer,
    man_bits: u32,
    syms: &[u16],
    width: u32,
    layout: Layout,
    low: Low<'_>,
    tables: &mut Tables,
    out: &mut [u8],
) -> Result<()> {
    let low_bits = man_bits - layout.top;
    build(r, width, low_bits, layout, tables);
    let (prefix, flags) = (&tables.prefix[..], &tables.flags[..]);
    let drop = r.drop;
    let mut state = State {
        stray: 0,
        magnitude: r.mag_mask,
    };
    let outs = out.chunks_exact_mut(W::SIZE);
    match low {
        Low::Values(values) => {
            let skip_mask = if layout.zero_skip { CODE_ZERO } else { 0 };
            let mut k = 0usize;
            for (&s, o) in syms.iter().zip(outs) {
                let s = usize::from(s);
                let f = flags.get(s).copied().unwrap_or(0);
                let skipped = f & skip_mask != 0;
                let v = if skipped {
                    0
                } else {
                    values.get(k).copied().unwrap_or(0)
                };
                k += usize::from(!skipped);
                state.put::<W>(prefix, s, f, v, drop, o);
            }
            if k != values.len() {
                return Err(Error::decode(format!(
                    "{} stored mantissas for {k} values that need one",
                    values.len()
                )));
            }
        }
        Low::Packed { bytes, bits } => {
            let unpack = bitpack::unpacker(bits);
            let mut vals = [0u64; 64];
            for (b, (group, outs)) in syms
                .chunks(64)
                .zip(out.chunks_mut(64 * W::SIZE))
                .enumerate()
            {
                bitpack::unpack_group(unpack, bits, bytes, b, &mut vals);
                for ((&s, o), &v) in group.iter().zip(outs.chunks_exact_mut(W::SIZE)).zip(&vals) {
                    let s = usize::from(s);
                    let f = flags.get(s).copied().unwrap_or(0);
                    state.put::<W>(prefix, s, f, v, drop, o);
                }
            }
        }
    }
    if state.stray != 0 {
        return Err(Error::decode(
            "a value with the zero exponent code has a nonzero mantissa",
        ));
    }
    Ok(())
}

/// What the element loop accumulates: the OR of the magnitude bits of values that must be signed
/// zeros.
struct State {
    stray: u64,
    magnitude: u64,
}

impl State {
    #[inline(always)]
    fn put<W: Word>(&mut self, prefix: &[u64], s: usize, f: u8, v: u64, drop: u32, o: &mut [u8]) {
        let p = prefix.get(s).copied().unwrap_or(0);
        self.stray |= if f & MUST_BE_ZERO != 0 {
            v | (p & self.magnitude)
        } else {
            0
        };
        W::from_u64(p | (v << drop)).store(o);
    }
}

/// Fills the prefix and flag tables for every symbol of `width` bits.
fn build(r: &Reducer, width: u32, low_bits: u32, layout: Layout, tables: &mut Tables) {
    let js = u32::from(layout.joint_sign);
    let must_be_zero = r.zero_code_is_zero();
    tables.prefix.clear();
    tables.flags.clear();
    for s in 0..1usize << width {
        let rest = (s >> js) as u64;
        let code = (rest >> layout.top) as u16;
        let top = rest & low_mask(layout.top);
        let sign = layout.joint_sign && s & 1 == 1;
        tables.prefix.push(r.expand(sign, code, top << low_bits));
        tables.flags.push(match (code, must_be_zero) {
            (0, true) => CODE_ZERO | MUST_BE_ZERO,
            (0, false) => CODE_ZERO,
            _ => 0,
        });
    }
}
