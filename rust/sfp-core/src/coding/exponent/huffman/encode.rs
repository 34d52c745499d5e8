//! The encoder's inner loop: table lookups into a 64-bit accumulator, flushed with one unaligned
//! 8-byte store per group of symbols.

/// The code-table entry of a symbol without a code: no bits, and a flag the loop collects (in the
/// length byte, above any length, so that the code bits stay clean).
pub(super) const ABSENT: u32 = 0x80;
/// The length bits of an entry.
const LEN: u32 = 0x7f;

/// The encoder's view of a table.
#[derive(Clone, Copy)]
pub(super) struct Code<'a> {
    pub mask: u16,
    /// Per symbol: length | bit-reversed code << 8, or [`ABSENT`].
    pub codes: &'a [u32],
    pub max_len: u8,
}

/// What [`bitstream`] wrote.
pub(super) struct Coded {
    /// Symbols taken from the front of the input.
    pub symbols: usize,
    /// Payload bits (before the padding).
    pub bits: u64,
    /// A symbol without a code, if any (the bitstream is then garbage).
    pub missing: Option<u16>,
}

/// Appends one bitstream of the symbols from the front of `symbols` (masked), stopping at the
/// first group of symbols that reaches `target` bits, or at the end. With `checked`, a symbol
/// without a code is looked for (the table may come from another histogram); without it, the
/// caller guarantees that every symbol has a code.
pub(super) fn bitstream(
    level: crate::simd::Level,
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    checked: bool,
    out: &mut Vec<u8>,
) -> Coded {
    // The loop indexes the table with every masked symbol unchecked: a shorter table is padded
    // (only a table built from a narrower histogram than the width is).
    let padded: Vec<u32>;
    let code = if code.codes.len() > usize::from(code.mask) {
        code
    } else {
        let mut p = code.codes.to_vec();
        p.resize(usize::from(code.mask) + 1, ABSENT);
        padded = p;
        Code {
            codes: &padded,
            ..code
        }
    };
    // The check after each group stops at most two groups of codes past the target; 8 bytes
    // of room for the last unaligned store.
    let bound = (symbols.len() as u64 * u64::from(code.max_len))
        .min(target.saturating_add(128))
        .div_ceil(8) as usize
        + 16;
    let start = out.len();
    // Written straight into the spare capacity (zeroing it first would write every byte twice).
    out.reserve(bound);
    let buf = &mut out.spare_capacity_mut()[..bound];
    // Symbols per flush: at most 7 bits are pending after one, so this many codes fit 64.
    let (taken, bits, flags) = match (code.max_len, checked) {
        (0..=11, false) => run::<5, false>(level, symbols, code, target, buf),
        (12..=14, false) => run::<4, false>(level, symbols, code, target, buf),
        (_, false) => run::<3, false>(level, symbols, code, target, buf),
        (0..=11, true) => run::<5, true>(level, symbols, code, target, buf),
        (12..=14, true) => run::<4, true>(level, symbols, code, target, buf),
        (_, true) => run::<3, true>(level, symbols, code, target, buf),
    };
    // SAFETY: the 8-byte stores start at positions that never step by more than 7, from 0 to
    // the last one, which is at most 7 bytes below `bits / 8` and stored after the last code: they
    // initialised every byte up to `bits.div_ceil(8)`, within the reserved `bound`.
    unsafe { out.set_len(start + bits.div_ceil(8) as usize) };
    let missing = if flags & ABSENT != 0 {
        symbols[..taken]
            .iter()
            .map(|&s| s & code.mask)
            .find(|&s| code.codes[usize::from(s)] & ABSENT != 0)
    } else {
        None
    };
    Coded {
        symbols: taken,
        bits,
        missing,
    }
}

/// [`body`] compiled for the SIMD level (BMI2's shifts take the count in any register).
fn run<const G: usize, const CHECKED: bool>(
    level: crate::simd::Level,
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> (usize, u64, u32) {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, crate::simd::Level::Avx2 | crate::simd::Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed BMI2 on this
        // CPU (`simd::current` checks it).
        return unsafe { body_bmi2::<G, CHECKED>(symbols, code, target, buf) };
    }
    let _ = level;
    body::<G, CHECKED>(symbols, code, target, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
fn body_bmi2<const G: usize, const CHECKED: bool>(
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> (usize, u64, u32) {
    body::<G, CHECKED>(symbols, code, target, buf)
}

/// Stores the 8 bytes of `acc` at `buf[pos..]`.
#[inline(always)]
fn store(buf: &mut [std::mem::MaybeUninit<u8>], pos: usize, acc: u64) {
    debug_assert!(pos + 8 <= buf.len(), "bitstream buffer too small");
    // SAFETY: `pos + 8` is within `buf`: the bits written stay below `target + 128` and
    // `symbols.len() * max_len` (each run of groups ends less than a group past the target, the
    // rest is less than a group), and `bitstream` sized `buf` 16 bytes past the smaller of those
    // (a bounds check per group of codes was a tenth of the loop).
    unsafe {
        buf.as_mut_ptr()
            .add(pos)
            .cast::<[u8; 8]>()
            .write_unaligned(acc.to_le_bytes());
    }
}

/// The table entry of `s` (masked).
#[inline(always)]
fn entry(codes: &[u32], mask: u16, s: u16) -> u32 {
    let i = usize::from(s & mask);
    debug_assert!(i < codes.len());
    // SAFETY: `bitstream` pads the table to `mask + 1` entries, and `i` is at most `mask`
    // (a bounds check per symbol was a third of the loop's instructions).
    unsafe { *codes.get_unchecked(i) }
}

/// Encodes groups of `G` symbols until the bits reach `target` (then the rest only when less than
/// a group is left); returns the symbols taken, the bits written and, when `CHECKED`, the OR of
/// their entries. The target is checked only between runs of groups too short to reach it.
#[inline(always)]
fn body<const G: usize, const CHECKED: bool>(
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> (usize, u64, u32) {
    let (mask, codes) = (code.mask, code.codes);
    let group_bits = G as u64 * u64::from(code.max_len.max(1));
    let mut acc = 0u64;
    let mut nb = 0u32;
    let mut pos = 0usize;
    let mut flags = 0u32;
    let mut taken = 0usize;
    // Plain locals and index loops: closures over them made the compiler spill the accumulator.
    loop {
        // Groups that cannot reach the target, run without checking it.
        let written = 8 * pos as u64 + u64::from(nb);
        let left = target.saturating_sub(written);
        let full = (symbols.len() - taken) / G;
        let safe = usize::try_from(left.div_ceil(group_bits))
            .unwrap_or(usize::MAX)
            .min(full);
        if safe == 0 {
            break;
        }
        // The run ends at most `safe * group_bits / 8` bytes further, and `buf` was sized for
        // every code up to the target plus two groups.
        let run = &symbols[taken..taken + safe * G];
        for g in run.chunks_exact(G) {
            for &s in g {
                let c = entry(codes, mask, s);
                if CHECKED {
                    flags |= c;
                }
                acc |= u64::from(c >> 8) << nb;
                nb += c & LEN;
            }
            store(buf, pos, acc);
            let whole = nb >> 3;
            pos += whole as usize;
            // `whole` is at most 7: at most 7 pending bits plus `G` codes of at most 64 - 7 bits.
            acc >>= 8 * whole;
            nb &= 7;
        }
        taken += safe * G;
    }
    if taken + G > symbols.len() {
        for &s in &symbols[taken..] {
            let c = entry(codes, mask, s);
            flags |= c;
            acc |= u64::from(c >> 8) << nb;
            nb += c & LEN;
        }
        taken = symbols.len();
        store(buf, pos, acc);
    }
    (taken, 8 * pos as u64 + u64::from(nb), flags)
}
