//! [`super::assemble`] a lane block at a time, for chunks whose low mantissa values are a coded
//! stream: a block's values are decoded and used while they are in cache.

use super::{no_stray, zero_codes, Layout, Table, Tables};
use crate::coding::mantissa;
use crate::error::{Error, Result};
use crate::kernel::Word;
use crate::reduce::Reducer;

/// [`super::assemble`] for low values in a coded mantissa stream (`mantissas`, values of
/// `man_bits - layout.top` bits), one lane block at a time: each block's values are used while
/// they are in cache, in `low` (reused). Under zero skip a block's values belong to the elements up
/// to its last nonzero-code one, so the elements are cut there, which needs them to carry their own
/// signs (`signs` is `None`). Errors come in the order a whole-stream decode gives them: the
/// stream's own, then a signed zero's mantissa bits.
///
/// # Errors
/// As [`super::assemble`] and [`crate::coding::mantissa::decode`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn assemble_blocks<W: Word>(
    r: &Reducer,
    man_bits: u32,
    syms: &[u16],
    width: u32,
    layout: Layout,
    mantissas: &[u8],
    signs: Option<&[u8]>,
    tables: &mut Tables,
    low: &mut Vec<u64>,
    out: &mut [u8],
) -> Result<()> {
    let skip = layout.zero_skip;
    if skip && signs.is_some() {
        return Err(Error::decode(
            "zero-skipped blocks need the signs in the symbols",
        ));
    }
    let t = Table::new::<W>(r, man_bits, width, layout, signs, tables)?;
    let check = r.zero_code_is_zero();
    let low_bits = man_bits - layout.top;
    let mut blocks = mantissa::Blocks::new(mantissas, low_bits)?;
    let shift = t.code_shift;
    let stored = if skip {
        syms.len() - zero_codes(syms, layout)
    } else {
        syms.len()
    };
    low.resize(stored.min(mantissa::BLOCK), 0);
    let mut stray = 0u64;
    let mut first = 0usize;
    for b in 0..stored.div_ceil(mantissa::BLOCK) {
        let count = (stored - b * mantissa::BLOCK).min(mantissa::BLOCK);
        if !skip {
            // One raw lane: its fields are read where they are packed, with no 64-bit values.
            if let Some(raw) = blocks.next_raw(count)? {
                let end = first + count;
                let signs = signs.map(|s| s.get(first / 8..).unwrap_or_default());
                let part = Table { signs, ..t };
                let out = &mut out[first * W::SIZE..end * W::SIZE];
                stray |= part.packed_low::<W>(check, &syms[first..end], raw, low_bits, out);
                first = end;
                continue;
            }
        }
        let values = &mut low[..count];
        blocks.next(values)?;
        // The elements that take this block's values; the last block takes every element left.
        let end = if b + 1 == stored.div_ceil(mantissa::BLOCK) {
            syms.len()
        } else if skip {
            first + elements_taking(&syms[first..], shift, count)
        } else {
            first + count
        };
        let part = &syms[first..end];
        let out = &mut out[first * W::SIZE..end * W::SIZE];
        // A block without zero skip starts on a whole byte of the sign stream (blocks are
        // multiples of 64).
        let signs = signs.map(|s| s.get(first / 8..).unwrap_or_default());
        let t = Table { signs, ..t };
        stray |= t.stored::<W>(skip, check, part, values, out)?;
        first = end;
    }
    if first < syms.len() {
        // No stored value at all: every element has the zero code (or the chunk is empty).
        let out = &mut out[first * W::SIZE..];
        stray |= t.stored::<W>(skip, check, &syms[first..], &[], out)?;
    }
    blocks.finish()?;
    no_stray(stray)
}

/// The number of leading symbols of `syms` that hold `count` nonzero codes (`code_shift` moves a
/// symbol down to its code), ending at the last of them; all of `syms` when they hold fewer.
fn elements_taking(syms: &[u16], code_shift: u32, count: usize) -> usize {
    let mut seen = 0usize;
    let mut groups = syms.chunks_exact(64);
    let mut at = 0usize;
    for g in &mut groups {
        let here = g
            .iter()
            .map(|&s| u32::from(s >> code_shift != 0))
            .sum::<u32>() as usize;
        if seen + here >= count {
            break;
        }
        seen += here;
        at += 64;
    }
    for (i, &s) in syms[at..].iter().enumerate() {
        seen += usize::from(s >> code_shift != 0);
        if seen == count {
            return at + i + 1;
        }
    }
    syms.len()
}
