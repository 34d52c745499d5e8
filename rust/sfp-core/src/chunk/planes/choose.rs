//! How a block's words are cut into planes, chosen from a sample of the block: the cut with the
//! fewest estimated bits, a wider symbol paying for the time its longer codes take to decode.
//!
//! Each candidate's symbol and lanes are sized by their order-0 entropy on the sample with the
//! Miller-Madow correction, plus the code-length table each plane stores per block. Entropy is a
//! few hundredths of a bit below a Huffman code on the wide alphabets, about the same for each
//! candidate, and a hundred times cheaper to compute than the code. A symbol of at most 8 bits
//! takes the smaller of its Huffman code (sized exactly: at most 256 counts to merge) and its rANS
//! code (the entropy and the byte variant's overheads), each with its decoding time priced in.

use super::{Planes, MAX_LANES, MAX_SYMBOL_BITS};
use crate::coding::exponent::entropy;
use crate::format::CodingLevel;

/// Words sampled per block.
const SAMPLES: usize = 1 << 13;
/// The narrowest symbol tried (the exponent of float16).
const MIN_SYMBOL_BITS: u32 = 5;
/// What decoding time costs a cut at the speed-aware levels, in bits per value. Decoding time goes
/// with the table lookups (about ten instructions each, whatever the code; see
/// [`lookups_per_symbol`]; a rANS symbol costs [`RANS_LOOKUPS`]): measured on the bfloat16 MiniLM
/// weights, 0.6-1 ns per lookup per value beside about 0.28 ns per value for the rest. So a wider
/// symbol must save more bits than the lookups its longer codes add are worth. A lookup per value
/// is worth half a bit at the default level: there the bfloat16 weights' blocks mostly take the
/// 8-bit rANS symbol over the 9- and 10-bit Huffman ones, which save 0.02-0.05 bits per value and
/// take 0.12-0.26 lookups more (decoding at 3.0 and 2.4 against 3.6 GB/s), and the float16 ones
/// the 7-bit rANS symbol (ZipNN's ratio on float16 needs the seventh bit). Beyond [`LOOKUP_BUDGET`]
/// lookups per value each costs [`OVER_BUDGET`] bits more, at both speed-aware levels and for 16-
/// and 32-bit words ([`lookup_price`]): on GELU activations (bfloat16), the 12-bit symbol saves
/// 0.14 bits per value over the 10-bit one and takes 0.27 lookups more (0.71 against 0.44),
/// decoding at 3.0 against 4.3 GB/s.
const LOOKUP_COST: f64 = 0.5;
/// [`LOOKUP_COST`] at the fast level.
const FAST_LOOKUP_COST: f64 = 1.0;
/// Lookups per value a speed-aware level takes at its own price (the bfloat16 and float16 weights'
/// default cuts take 0.53).
const LOOKUP_BUDGET: f64 = 0.55;
/// Bits per value each lookup per value beyond [`LOOKUP_BUDGET`] costs on top.
const OVER_BUDGET: f64 = 1.0;
/// Samples per distinct symbol below which a sample says too little about the block's symbols (a
/// code fitted to it would be too short): such a symbol is not chosen.
const MIN_SAMPLES_PER_SYMBOL: usize = 16;
/// A lane is coded when it saves at least 1/64 of its bits: decoding it costs a table lookup per
/// value, and below that saving the bytes are not worth the time.
const LANE_SAVING_DIVISOR: f64 = 64.0;
/// Bits a Huffman code takes above the order-0 entropy, per value (measured on mantissa bytes).
const CODE_EXCESS: f64 = 0.02;
/// Words of this many bits (the 8-bit types) are not held to [`LOOKUP_BUDGET`] ([`lookup_price`]);
/// narrower ones (MX element codes) size their Huffman codes by the entropy.
const BYTE_WORD_BITS: u32 = 8;
/// The share of zero words from which a zero mask is tried.
const MIN_ZERO_SHARE: usize = 64;

/// The cut of the planes with the fewest estimated bits for `words` (of `word_bits`), with coded
/// lanes only at the default level.
#[inline(always)]
pub(crate) fn choose(words: &[u32], word_bits: u32, level: CodingLevel) -> Planes {
    let verbatim = Planes {
        word_bits,
        symbol_bits: 0,
        coded_lanes: 0,
        rotated: false,
        zero_mask: false,
        rans_symbols: false,
    };
    let stride = words.len().div_ceil(SAMPLES).max(1);
    let sample: Vec<u32> = words.iter().step_by(stride).copied().collect();
    if sample.is_empty() {
        return verbatim;
    }
    let total = sample.len();
    // Each sampled word stands for `stride` of the block: the per-block tables are charged at
    // that rate.
    let per_sample = 1.0 / stride as f64;
    let zeros = sample.iter().filter(|&&w| w == 0).count();
    let top = MAX_SYMBOL_BITS.min(word_bits);
    let lanes = (0..MAX_LANES)
        .filter(|&j| 8 * (j + 1) <= word_bits.saturating_sub(MIN_SYMBOL_BITS))
        .count();
    // The counts of each rotation, once; a zero mask only removes the zero words, whose stored
    // form is 0 in every plane.
    let counted = [false, true].map(|rotated| {
        let cut = Planes {
            rotated,
            ..verbatim
        };
        Counts::of(&sample, cut, top, lanes)
    });
    let mut best = (f64::from(word_bits) * total as f64, verbatim);
    for zero_mask in [false, true] {
        if zero_mask && zeros * MIN_ZERO_SHARE < total {
            continue;
        }
        let mask_bits = if zero_mask {
            (binary_entropy(zeros as f64 / total as f64) + CODE_EXCESS / 8.0) * total as f64
                + TABLE_BITS * per_sample
        } else {
            0.0
        };
        for (rotated, counts) in [false, true].into_iter().zip(&counted) {
            let cut = Planes {
                rotated,
                zero_mask,
                ..verbatim
            };
            let (bits, planes) = if zero_mask {
                best_cut(cut, &counts.without_zeros(zeros), total, level, per_sample)
            } else {
                best_cut(cut, counts, total, level, per_sample)
            };
            if bits + mask_bits < best.0 {
                best = (bits + mask_bits, planes);
            }
        }
    }
    best.1
}

/// Bits a rANS code of the byte variant takes above the order-0 entropy, per value (its
/// frequencies rounded to 2^12 slots; measured on the bfloat16 weights' exponents).
const RANS_EXCESS: f64 = 0.01;
/// What the byte variant's 128 final states cost per block: 32 bits each, of which about half
/// hold bits of the code that words would have held.
const RANS_STATE_BITS: f64 = 2048.0;
/// What decoding a rANS symbol costs, in Huffman table lookups per value: on the bfloat16 weights
/// a planes block decodes in about 0.44 ns per value plus 0.73 ns per lookup per value, and with
/// 8-bit rANS symbols in 0.56 ns with AVX-512 (0.16 lookups); the AVX2 rounds take about twice as
/// long (`docs/coding.md`). At 0.2 the float32 weights' cuts fell to ZipNN's ratio (1.2205).
const RANS_LOOKUPS: f64 = 0.27;

/// Bits of the byte variant's frequency table: a varint of about 10 bits per code of its span.
fn rans_table_bits(hist: &[u32]) -> f64 {
    2.5 * table_bits(hist)
}

/// Bits of a byte plane's code-length table (256 lengths of 4 bits).
const TABLE_BITS: f64 = 1024.0;

/// What a candidate cut is sized from: the histograms of the sample's stored words.
#[derive(Clone)]
struct Counts {
    /// Words counted.
    count: usize,
    /// Per value of the top `top` bits of the stored word.
    wide: Vec<u32>,
    /// Per value of each low byte lane that may be coded.
    lanes: Vec<[u32; 256]>,
}

impl Counts {
    /// The counts of the stored forms (as `cut` says) of `sample`, with `lanes` byte lanes.
    fn of(sample: &[u32], cut: Planes, top: u32, lanes: usize) -> Self {
        match lanes {
            0 => Self::of_lanes::<0>(sample, cut, top),
            1 => Self::of_lanes::<1>(sample, cut, top),
            2 => Self::of_lanes::<2>(sample, cut, top),
            _ => Self::of_lanes::<3>(sample, cut, top),
        }
    }

    /// [`Counts::of`] with `L` lanes (a fixed count unrolls the loop over them).
    #[inline(always)]
    fn of_lanes<const L: usize>(sample: &[u32], cut: Planes, top: u32) -> Self {
        let mut wide = vec![0u32; 1 << top];
        let mut lanes = [[0u32; 256]; L];
        let shift = cut.word_bits - top;
        for &w in sample {
            let st = cut.to_stored(w);
            wide[(st >> shift) as usize] += 1;
            for (j, h) in lanes.iter_mut().enumerate() {
                h[((st >> (8 * j)) & 0xff) as usize] += 1;
            }
        }
        Self {
            count: sample.len(),
            wide,
            lanes: lanes.to_vec(),
        }
    }

    /// The counts without `zeros` zero words.
    fn without_zeros(&self, zeros: usize) -> Self {
        let mut c = self.clone();
        let z = zeros as u32;
        c.count -= zeros;
        c.wide[0] -= z;
        for h in &mut c.lanes {
            h[0] -= z;
        }
        c
    }
}

/// The best symbol width and coded lanes for the counted sample words (of `words` sampled, the
/// zeros under a zero mask not counted), with their estimated bits.
#[inline(always)]
fn best_cut(
    cut: Planes,
    counts: &Counts,
    words: usize,
    level: CodingLevel,
    per_sample: f64,
) -> (f64, Planes) {
    let count = counts.count;
    if count == 0 {
        return (0.0, cut);
    }
    let n = count as f64;
    let word_bits = cut.word_bits;
    let top = MAX_SYMBOL_BITS.min(word_bits);
    let lanes: Vec<f64> = counts
        .lanes
        .iter()
        .map(|hist| (entropy_bits(hist) / n + CODE_EXCESS).min(8.0))
        .collect();
    // The histogram of each narrower symbol: adjacent pairs of the next wider one summed.
    let narrowest = MIN_SYMBOL_BITS.min(top);
    let mut widths: Vec<Vec<u32>> = vec![counts.wide.clone()];
    for _ in narrowest..top {
        let wider = &widths[widths.len() - 1];
        let narrower = wider.chunks_exact(2).map(|p| p[0] + p[1]).collect();
        widths.push(narrower);
    }
    let mut best = (f64::INFINITY, cut);
    for symbol_bits in narrowest..=top {
        let hist = &widths[(top - symbol_bits) as usize];
        let present = hist.iter().filter(|&&h| h > 0).count();
        if symbol_bits > MIN_SYMBOL_BITS && present * MIN_SAMPLES_PER_SYMBOL > count {
            continue;
        }
        let mut planes = Planes { symbol_bits, ..cut };
        let (mut bits, rans_symbols) = symbol_cost(hist, n, words, level, word_bits, per_sample);
        planes.rans_symbols = rans_symbols;
        if level != CodingLevel::Fast {
            while (planes.coded_lanes as usize) < lanes.len()
                && 8 * (planes.coded_lanes + 1) <= planes.low_bits()
                && 8.0 - lanes[planes.coded_lanes as usize] >= 8.0 / LANE_SAVING_DIVISOR
            {
                bits += lanes[planes.coded_lanes as usize] * n + TABLE_BITS * per_sample;
                planes.coded_lanes += 1;
            }
        }
        bits += f64::from(planes.flat_bits()) * n;
        if bits < best.0 {
            best = (bits, planes);
        }
    }
    best
}

/// The estimated bits of a symbol plane with the histogram `hist` (of `n` sampled words, of
/// `words`), its decoding time priced in, and whether rANS codes it in fewer than Huffman does.
#[inline(always)]
fn symbol_cost(
    hist: &[u32],
    n: f64,
    words: usize,
    level: CodingLevel,
    word_bits: u32,
    per_sample: f64,
) -> (f64, bool) {
    let narrow = hist.len() <= 1 << entropy::MAX_BYTE_WIDTH;
    // A narrow symbol's Huffman code is sized exactly (at most 256 counts to merge): its excess
    // over the entropy is what rANS saves (0.042 bits per value on the bfloat16 weights' 8-bit
    // exponents), and varies with the symbol by more than `CODE_EXCESS` says. (Not for the 6- and
    // 4-bit MX element codes, whose only choices are the zero mask and the coder: sized exactly,
    // they stored 0.25% more.)
    let code_bits = if narrow && word_bits >= BYTE_WORD_BITS {
        (huffman_bits(hist) + sample_shortfall(hist)) / n
    } else {
        entropy_bits(hist) / n + CODE_EXCESS
    };
    let share = n / words as f64;
    let huffman = code_bits * n
        + table_bits(hist) * per_sample
        + lookup_price(level, word_bits, lookups_per_symbol(code_bits) * share) * words as f64;
    if !narrow || hist.iter().filter(|&&h| h > 0).count() < 2 {
        return (huffman, false);
    }
    let rans = entropy_bits(hist)
        + RANS_EXCESS * n
        + (RANS_STATE_BITS + rans_table_bits(hist)) * per_sample
        + lookup_price(level, word_bits, RANS_LOOKUPS * share) * words as f64;
    if rans < huffman {
        (rans, true)
    } else {
        (huffman, false)
    }
}

/// Bits per value that `lookups` decode table lookups per value are worth at `level` for words of
/// `word_bits`: the maximum level takes the fewest bits whatever they cost to decode, the fast level
/// pays more for speed. The one-byte types are not held to [`LOOKUP_BUDGET`]: their decoder writes
/// each symbol straight into the element, with no pass after it, and their 8-bit symbols take 0.73
/// lookups per value on FP8 weights, where ZipNN's ratio needs them.
fn lookup_price(level: CodingLevel, word_bits: u32, lookups: f64) -> f64 {
    let per_lookup = match level {
        CodingLevel::Fast => FAST_LOOKUP_COST,
        CodingLevel::Default => LOOKUP_COST,
        CodingLevel::Max => return 0.0,
    };
    let over = if word_bits > BYTE_WORD_BITS {
        (lookups - LOOKUP_BUDGET).max(0.0)
    } else {
        0.0
    };
    per_lookup * lookups + OVER_BUDGET * over
}

/// Decode table lookups per symbol for codes of `code_bits` on average: a lookup of the 11-bit table
/// decodes the codes that fit whole in its bits, about half a code fewer than its bits hold
/// (within 3% of the count on weights and activations from 2.6 to 5.7 bits per code).
fn lookups_per_symbol(code_bits: f64) -> f64 {
    const INDEX_BITS: f64 = 11.0;
    code_bits / (INDEX_BITS - code_bits / 2.0).max(1.0)
}

/// Bits of the Huffman code of the counted symbols (without a length limit, which a block's
/// codes rarely reach): the sum of the weights the merges make, smallest first (two queues over
/// the sorted counts).
fn huffman_bits(hist: &[u32]) -> f64 {
    let mut leaves: Vec<u64> = hist
        .iter()
        .filter(|&&h| h > 0)
        .map(|&h| u64::from(h))
        .collect();
    if leaves.len() < 2 {
        return 0.0;
    }
    leaves.sort_unstable();
    let mut merged: Vec<u64> = Vec::with_capacity(leaves.len());
    let (mut leaf, mut node) = (0usize, 0usize);
    let mut total = 0u64;
    for _ in 1..leaves.len() {
        let mut pair = 0u64;
        for _ in 0..2 {
            let from_leaf = match (leaves.get(leaf), merged.get(node)) {
                (Some(l), Some(m)) => l <= m,
                (Some(_), None) => true,
                _ => false,
            };
            if from_leaf {
                pair += leaves[leaf];
                leaf += 1;
            } else {
                pair += merged[node];
                node += 1;
            }
        }
        total += pair;
        merged.push(pair);
    }
    total as f64
}

/// How far a sample's order-0 entropy falls short of its source's, in bits in all (the
/// Miller-Madow correction: about `(symbols - 1) / (2 ln 2)`).
fn sample_shortfall(hist: &[u32]) -> f64 {
    shortfall(hist.iter().filter(|&&h| h > 0).count())
}

/// [`sample_shortfall`] of a sample with `present` distinct symbols.
fn shortfall(present: usize) -> f64 {
    present.saturating_sub(1) as f64 / (2.0 * std::f64::consts::LN_2)
}

/// The sample's order-0 entropy in bits, in all, with the Miller-Madow correction (a sample's
/// entropy falls short of its source's by about `(symbols - 1) / (2 ln 2)` bits in all, which
/// would favour wide alphabets on uniform bits). As `n log n - sum(h log h)`: one pass that adds
/// integers over the whole histogram (it vectorises), one that takes logarithms of the present
/// counts only; the chooser sizes dozens of histograms of up to 4096 bins per block.
#[inline(always)]
fn entropy_bits(hist: &[u32]) -> f64 {
    let n = hist.iter().map(|&h| u64::from(h)).sum::<u64>() as f64;
    let mut present = 0usize;
    let mut weighted = 0.0;
    for &h in hist {
        if h > 0 {
            present += 1;
            let h = f64::from(h);
            weighted += h * h.log2();
        }
    }
    if n > 0.0 {
        n * n.log2() - weighted + shortfall(present)
    } else {
        0.0
    }
}

/// Bits of a symbol plane's code-length table: 4 bits per symbol from the smallest to the
/// largest present.
#[inline(always)]
fn table_bits(hist: &[u32]) -> f64 {
    let lo = hist.iter().position(|&h| h > 0).unwrap_or(0);
    let hi = hist.iter().rposition(|&h| h > 0).unwrap_or(0);
    4.0 * (hi + 1 - lo) as f64
}

fn binary_entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        0.0
    } else {
        -p * p.log2() - (1.0 - p) * (1.0 - p).log2()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::coding::exponent::huffman::Table;
    use crate::testkit::rng;

    /// bfloat16 words of GELU applied to standard normal values.
    fn gelu_bfloat16(n: usize, seed: u64) -> Vec<u32> {
        let mut r = rng(seed);
        let mut uniform = move || ((r() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        (0..n)
            .map(|_| {
                let z = (-2.0 * uniform().ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos();
                let g = 0.5 * z * (1.0 + (0.797_884_56 * (z + 0.044_715 * z * z * z)).tanh());
                (g as f32).to_bits() >> 16
            })
            .collect()
    }

    /// The estimated lookups per word of a cut of `words`.
    fn lookups_of(words: &[u32], cut: Planes) -> f64 {
        let shift = cut.word_bits - cut.symbol_bits;
        let symbols: Vec<u16> = words
            .iter()
            .map(|&w| (cut.to_stored(w) >> shift) as u16)
            .collect();
        let hist = crate::coding::exponent::huffman::histogram(&symbols, cut.symbol_bits);
        lookups_per_symbol(entropy_bits(&hist) / words.len() as f64)
    }

    #[test]
    fn the_speed_aware_levels_keep_the_lookups_near_their_budget() {
        let words = gelu_bfloat16(1 << 17, 3);
        let widest = choose(&words, 16, CodingLevel::Max);
        assert!(
            lookups_of(&words, widest) > LOOKUP_BUDGET + 0.1,
            "{widest:?}"
        );
        for level in [CodingLevel::Default, CodingLevel::Fast] {
            let cut = choose(&words, 16, level);
            assert!(cut.symbol_bits < widest.symbol_bits, "{level:?}: {cut:?}");
            assert!(
                lookups_of(&words, cut) < LOOKUP_BUDGET + 0.05,
                "{level:?}: {cut:?}"
            );
        }
    }

    #[test]
    fn huffman_bits_are_those_of_the_coders_code_when_its_limit_does_not_bind() {
        let mut r = rng(7);
        for symbols in [2usize, 3, 17, 64, 256] {
            // Geometric-ish counts: skewed as exponents are, with no code over 11 bits.
            let hist: Vec<u32> = (0..symbols)
                .map(|i| 40 + (r() % 200) as u32 + (20_000 >> i.min(8)) as u32)
                .collect();
            let table = Table::from_histogram(&hist).unwrap();
            assert!(table.max_code_len() <= 11);
            assert_eq!(
                huffman_bits(&hist),
                table.coded_bits(&hist) as f64,
                "{symbols}"
            );
        }
        assert_eq!(huffman_bits(&[0, 5, 0]), 0.0);
    }
}
