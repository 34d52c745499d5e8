//! The encoder's inner loop: table lookups into a 64-bit accumulator, flushed with one unaligned
//! 8-byte store per group of symbols.

/// The code-table entry of a symbol without a code: no bits, and a flag (in the length byte, above
/// any length).
pub(super) const ABSENT: u32 = 0x80;
/// The length bits of an entry.
const LEN: u32 = 0x7f;
/// The code bits [`Code`] gives a symbol without one: a flag above any code, which the checked
/// loop collects (the stream is then garbage and is not kept).
const MISSING: u32 = 1 << 31;

/// The encoder's view of a table: per symbol, its bit-reversed code and its length in two arrays
/// (two loads per symbol instead of a load and the two masks that cut one entry: a third fewer
/// instructions in the loop), each with `mask + 1` entries so that every masked symbol has one.
pub(super) struct Code {
    mask: u16,
    /// The bit-reversed code, or [`MISSING`].
    bits: Vec<u32>,
    /// The code's length (0 for a symbol without a code).
    lens: Vec<u32>,
    max_len: u8,
}

impl Code {
    /// The arrays of the table entries `codes` (length | bit-reversed code << 8, or [`ABSENT`]),
    /// for symbols masked by `mask`; codes of at most `max_len` bits.
    pub(super) fn new(codes: &[u32], mask: u16, max_len: u8) -> Self {
        let entries = usize::from(mask) + 1;
        let entry = |s: usize| codes.get(s).copied().unwrap_or(ABSENT);
        let bits = (0..entries)
            .map(|s| {
                let e = entry(s);
                if e & ABSENT != 0 {
                    MISSING
                } else {
                    e >> 8
                }
            })
            .collect();
        let lens = (0..entries).map(|s| entry(s) & LEN).collect();
        Code {
            mask,
            bits,
            lens,
            max_len,
        }
    }
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
    code: &Code,
    target: u64,
    checked: bool,
    out: &mut Vec<u8>,
) -> Coded {
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
    let missing = if flags & MISSING != 0 {
        symbols[..taken]
            .iter()
            .map(|&s| s & code.mask)
            .find(|&s| code.bits[usize::from(s)] & MISSING != 0)
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
    code: &Code,
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
    code: &Code,
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

/// The code bits and length of `s` (masked).
#[inline(always)]
fn entry(code: &Code, s: u16) -> (u32, u32) {
    let i = usize::from(s & code.mask);
    debug_assert!(i < code.bits.len() && i < code.lens.len());
    // SAFETY: `Code::new` makes both arrays `mask + 1` entries long, and `i` is at most `mask`
    // (a bounds check per symbol was a third of the loop's instructions).
    unsafe { (*code.bits.get_unchecked(i), *code.lens.get_unchecked(i)) }
}

/// Encodes groups of `G` symbols until the bits reach `target` (then the rest only when less than
/// a group is left); returns the symbols taken, the bits written and, when `CHECKED`, the OR of
/// their entries. The target is checked only between runs of groups too short to reach it.
#[inline(always)]
fn body<const G: usize, const CHECKED: bool>(
    symbols: &[u16],
    code: &Code,
    target: u64,
    buf: &mut [std::mem::MaybeUninit<u8>],
) -> (usize, u64, u32) {
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
                let (bits, len) = entry(code, s);
                if CHECKED {
                    flags |= bits;
                }
                acc |= u64::from(bits) << nb;
                nb += len;
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
            let (bits, len) = entry(code, s);
            flags |= bits;
            acc |= u64::from(bits) << nb;
            nb += len;
        }
        taken = symbols.len();
        store(buf, pos, acc);
    }
    (taken, 8 * pos as u64 + u64::from(nb), flags)
}
