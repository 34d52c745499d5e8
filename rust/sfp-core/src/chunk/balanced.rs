//! The chunk coding of the speed-aware levels ([`CodingLevel::Fast`] and [`CodingLevel::Default`]):
//! one Huffman-coded symbol per value, and the rest of the mantissa packed or, at the default level,
//! in Huffman-coded byte lanes where that pays.
//!
//! The symbol is the exponent code, with the top `k` mantissa bits (0..=[`MAX_TOP`]) and the sign
//! joined below it when they make the chunk smaller: `((code << k) | top) << 1 | sign`. A sample of
//! the chunk chooses `k` and the sign from the order-0 entropy of each alphabet, which Huffman codes
//! approach within a few hundredths of a bit on exponent-like data. Symbols are kept to
//! [`MAX_SYMBOL_BITS`] so the decoder's tables (a Huffman table and one element prefix per symbol)
//! stay in the first-level cache. A chunk that coding would not shrink is written flat.
//!
//! Decoding such a chunk is one Huffman pass and one pass that builds each element from its
//! symbol's prefix and its low mantissa bits ([`super::assemble`]).

use super::choice::{Chosen, Work, HAS_SIGNS, JOINT_SIGN, MANTISSA_CODED};
use crate::coding::bitpack;
use crate::coding::exponent::{huffman, raw, Coder};
use crate::coding::mantissa::{self, LaneCoder, Plan};
use crate::format::CodingLevel;

/// Widest symbol these levels code: `2^12` prefixes of 8 bytes fill 32 KiB.
pub(crate) const MAX_SYMBOL_BITS: u32 = 12;
/// Most top mantissa bits these levels join to the symbol (the frames' limit is
/// [`mantissa::MAX_TOP`]): each more doubles the alphabet, and so the decode tables, for what a
/// Huffman code, whose lengths are whole bits, rarely gains from the mantissa's last skew.
const MAX_TOP: u32 = 3;
/// Bits per value a wider alphabet (one more top bit, or the sign) must save to be chosen: each
/// makes the codes longer, so fewer of them decode per table lookup, and takes the chunk off the
/// flat path's SIMD expansion; on uniform bits it saves nothing.
const WIDER_ALPHABET_COST: f64 = 0.01;
/// Samples per distinct symbol below which a sample's code says too little about the chunk's (it
/// fits the sample): such an alphabet is not chosen.
const MIN_SAMPLES_PER_SYMBOL: usize = 32;
/// Values sampled to choose the alphabet.
const SAMPLES: usize = 1 << 14;
/// At the default level a mantissa lane is Huffman-coded when it saves at least 1/64 of its bytes:
/// decoding a coded lane costs a table lookup per value, about what unpacking it flat costs again,
/// and below that saving the bytes are not worth the time.
const LANE_SAVING_DIVISOR: usize = 64;

/// The alphabet a sample chose: top mantissa bits, whether the sign joins, whether the mantissas
/// of zero-code values (all zero) are left out.
#[derive(Clone, Copy, Debug)]
struct Alphabet {
    top: u32,
    joint_sign: bool,
    zero_skip: bool,
}

/// Codes a chunk's streams at `level` (see [`super::choice::code`] for the arguments).
pub(crate) fn code(
    level: CodingLevel,
    (codes, signs, any_negative): (&[u16], &[u8], bool),
    (exp_bits, man_bits): (u32, u32),
    exps: &mut Vec<u8>,
    mants: &mut Vec<u8>,
    work: &mut Work,
) -> Chosen {
    exps.clear();
    let sign_flag = if any_negative { HAS_SIGNS } else { 0 };
    let flat = |exps: &mut Vec<u8>| {
        exps.clear();
        raw::encode(codes, exp_bits, exps);
        Chosen {
            flags: sign_flag,
            coder: Coder::Raw,
            plan: None,
        }
    };
    if codes.is_empty() || exp_bits + u32::from(any_negative) > MAX_SYMBOL_BITS {
        return flat(exps);
    }
    let mut a = choose((codes, signs, any_negative), mants, (exp_bits, man_bits));
    let n = codes.len();
    let mut plan = (a.top > 0 || a.zero_skip).then_some(Plan {
        top: a.top,
        zero_skip: a.zero_skip,
        low_flat: false,
    });
    // The symbols: the codes themselves, or joint codes in `work.joint`; the low mantissa values of
    // a coded plan in `work.low`.
    let mut stored = 0;
    if let Some(p) = plan {
        let sign_arg = a.joint_sign.then_some(signs);
        let split = |p: Plan, w: &mut Work| {
            mantissa::split_into(
                p,
                codes,
                sign_arg,
                mants,
                man_bits,
                &mut w.joint,
                &mut w.low,
            )
        };
        match split(p, work) {
            Some(k) => stored = k,
            // The sample missed a zero-code value with a nonzero mantissa.
            None => {
                a.zero_skip = false;
                plan = (a.top > 0).then_some(Plan {
                    top: a.top,
                    zero_skip: false,
                    low_flat: false,
                });
                if let Some(p) = plan {
                    match split(p, work) {
                        Some(k) => stored = k,
                        None => return flat(exps),
                    }
                }
            }
        }
    }
    if plan.is_none() && a.joint_sign {
        work.joint.clear();
        work.joint.extend(
            codes
                .iter()
                .enumerate()
                .map(|(i, &c)| (c << 1) | u16::from((signs[i / 8] >> (i % 8)) & 1)),
        );
    }
    let width = exp_bits + a.top + u32::from(a.joint_sign);
    let symbols = if a.top > 0 || a.joint_sign {
        work.joint.get(..n).unwrap_or_default()
    } else {
        codes
    };
    let hist = huffman::histogram(symbols, width);
    let Some(table) = huffman::Table::from_histogram(&hist) else {
        return flat(exps);
    };
    let low_bits = man_bits - a.top;
    let sign_len = if any_negative && !a.joint_sign {
        signs.len()
    } else {
        0
    };
    let low_len = if plan.is_some() {
        (stored * low_bits as usize).div_ceil(8) + mantissa::EXTRA_HEADER
    } else {
        mants.len()
    };
    let coded_len = table.estimated_len(&hist, n) + sign_len + low_len;
    let flat_len = (n * exp_bits as usize).div_ceil(8)
        + if any_negative { signs.len() } else { 0 }
        + mants.len();
    if coded_len >= flat_len || huffman::encode_with_table(symbols, width, &table, exps).is_err() {
        return flat(exps);
    }
    if let Some(p) = plan.as_mut() {
        let low = work.low.get(..stored).unwrap_or_default();
        work.stream.clear();
        let coded = level != CodingLevel::Fast
            && mantissa::encode(
                low,
                low_bits,
                LaneCoder::Huffman {
                    saving_divisor: LANE_SAVING_DIVISOR,
                },
                &mut work.stream,
            );
        mants.clear();
        if coded {
            mants.extend_from_slice(&work.stream);
        } else {
            // No lane pays: flat low values decode in the assembling pass itself.
            p.low_flat = true;
            bitpack::pack(low.iter().copied(), low_bits, mants);
        }
    }
    let sign = if a.joint_sign { JOINT_SIGN } else { sign_flag };
    Chosen {
        flags: sign | if plan.is_some() { MANTISSA_CODED } else { 0 },
        coder: Coder::Huffman,
        plan,
    }
}

/// Chooses the alphabet from a sample of the chunk: the top-bit count and sign placement of the
/// smallest estimated chunk (the sample's Huffman code lengths, which the length limit makes worth
/// more than the entropy on wide alphabets, plus the bits stored beside the symbols).
fn choose(
    (codes, signs, any_negative): (&[u16], &[u8], bool),
    mants: &[u8],
    (exp_bits, man_bits): (u32, u32),
) -> Alphabet {
    let sign_bit = u32::from(any_negative);
    let max_top = MAX_TOP
        .min(man_bits)
        .min(MAX_SYMBOL_BITS.saturating_sub(exp_bits + sign_bit));
    let n = codes.len();
    let stride = n.div_ceil(SAMPLES).max(1);
    let mut hist = vec![0u32; 1usize << (exp_bits + max_top + 1)];
    let (mut sampled, mut zeros, mut zero_ok) = (0usize, 0usize, true);
    for i in (0..n).step_by(stride) {
        let code = codes[i];
        let m = mantissa::field(mants, i, man_bits);
        let top = if max_top > 0 {
            m >> (man_bits - max_top)
        } else {
            0
        };
        let sign = (signs.get(i / 8).copied().unwrap_or(0) >> (i % 8)) & 1;
        let slot = (((usize::from(code) << max_top) | top as usize) << 1) | usize::from(sign);
        if let Some(h) = hist.get_mut(slot) {
            *h += 1;
        }
        sampled += 1;
        if code == 0 {
            zeros += 1;
            zero_ok &= m == 0;
        }
    }
    let zero_skip = zero_ok && zeros > 0 && man_bits > 0;
    let kept = if zero_skip { sampled - zeros } else { sampled } as f64;
    let mut best = (f64::INFINITY, 0, false);
    for top in 0..=max_top {
        // Marginalise to `top` top bits, with and without the sign.
        let mut with_sign = vec![0u32; 1usize << (exp_bits + top + 1)];
        for (s, &c) in hist.iter().enumerate() {
            let code = s >> (max_top + 1);
            let top_bits = ((s >> 1) & ((1 << max_top) - 1)) >> (max_top - top);
            with_sign[(((code << top) | top_bits) << 1) | (s & 1)] += c;
        }
        let without: Vec<u32> = with_sign.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        let low = f64::from(man_bits - top)
            * if top > 0 || zero_skip {
                kept
            } else {
                sampled as f64
            };
        let apart = code_bits(&without) + low + f64::from(sign_bit) * sampled as f64;
        let trusted = |h: &[u32]| {
            top == 0 || h.iter().filter(|&&c| c > 0).count() * MIN_SAMPLES_PER_SYMBOL <= sampled
        };
        if apart < best.0 && trusted(&without) {
            best = (apart, top, false);
        }
        if any_negative && exp_bits + top < MAX_SYMBOL_BITS {
            let joint = code_bits(&with_sign) + low + WIDER_ALPHABET_COST * sampled as f64;
            if joint < best.0 && trusted(&with_sign) {
                best = (joint, top, true);
            }
        }
    }
    Alphabet {
        top: best.1,
        joint_sign: best.2,
        zero_skip,
    }
}

/// Bits of the Huffman code of a sample's counts (its table's header left out), with the
/// Miller-Madow correction: a sample's code fits the sample, by about `(symbols - 1) / (2 ln 2)`
/// bits in all, which would favour wide alphabets on uniform bits.
pub(crate) fn code_bits(hist: &[u32]) -> f64 {
    let present = hist.iter().filter(|&&h| h > 0).count();
    let bias = present.saturating_sub(1) as f64 / (2.0 * std::f64::consts::LN_2);
    huffman::Table::from_histogram(hist).map_or(0.0, |t| t.coded_bits(hist) as f64) + bias
}
