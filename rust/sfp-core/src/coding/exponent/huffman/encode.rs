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
/// first group of symbols that reaches `target` bits, or at the end.
pub(super) fn bitstream(
    level: crate::simd::Level,
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    out: &mut Vec<u8>,
) -> Coded {
    // The check after each group stops at most two groups of codes past the target; 8 bytes
    // of room for the last unaligned store.
    let bound = (symbols.len() as u64 * u64::from(code.max_len))
        .min(target.saturating_add(128))
        .div_ceil(8) as usize
        + 16;
    let start = out.len();
    out.resize(start + bound, 0);
    let buf = &mut out[start..];
    // Symbols per flush: at most 7 bits are pending after one, so this many codes fit 64.
    let (taken, bits, flags) = match code.max_len {
        0..=11 => run::<5>(level, symbols, code, target, buf),
        12..=14 => run::<4>(level, symbols, code, target, buf),
        _ => run::<3>(level, symbols, code, target, buf),
    };
    out.truncate(start + bits.div_ceil(8) as usize);
    let missing = if flags & ABSENT != 0 {
        symbols[..taken].iter().map(|&s| s & code.mask).find(|&s| {
            code.codes
                .get(usize::from(s))
                .is_none_or(|&c| c & ABSENT != 0)
        })
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
fn run<const G: usize>(
    level: crate::simd::Level,
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    buf: &mut [u8],
) -> (usize, u64, u32) {
    #[cfg(target_arch = "x86_64")]
    if matches!(level, crate::simd::Level::Avx2 | crate::simd::Level::Avx512) {
        // SAFETY: both levels are only active after `Level::is_available` confirmed BMI2 on this
        // CPU (`simd::current` checks it).
        return unsafe { body_bmi2::<G>(symbols, code, target, buf) };
    }
    let _ = level;
    body::<G>(symbols, code, target, buf)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi1,bmi2")]
fn body_bmi2<const G: usize>(
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    buf: &mut [u8],
) -> (usize, u64, u32) {
    body::<G>(symbols, code, target, buf)
}

/// Encodes groups of `G` symbols until the bits reach `target` (then the rest only when less than
/// a group is left); returns the symbols taken, the bits written and the OR of their entries. The
/// target is checked only between runs of groups too short to reach it.
#[inline(always)]
fn body<const G: usize>(
    symbols: &[u16],
    code: Code<'_>,
    target: u64,
    buf: &mut [u8],
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
                let c = codes.get(usize::from(s & mask)).copied().unwrap_or(ABSENT);
                flags |= c;
                acc |= u64::from(c >> 8) << nb;
                nb += c & LEN;
            }
            if let Some(dst) = buf.get_mut(pos..pos + 8) {
                dst.copy_from_slice(&acc.to_le_bytes());
            }
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
            let c = codes.get(usize::from(s & mask)).copied().unwrap_or(ABSENT);
            flags |= c;
            acc |= u64::from(c >> 8) << nb;
            nb += c & LEN;
        }
        taken = symbols.len();
        let dst = buf.get_mut(pos..pos + 8);
        debug_assert!(dst.is_some(), "bitstream buffer too small");
        if let Some(dst) = dst {
            dst.copy_from_slice(&acc.to_le_bytes());
        }
    }
    (taken, 8 * pos as u64 + u64::from(nb), flags)
}
