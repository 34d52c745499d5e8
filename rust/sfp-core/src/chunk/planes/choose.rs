//! How a chunk's words are cut into planes, chosen from a sample: the cut with the fewest
//! estimated bits, a wider symbol paying for the time its longer codes take to decode.

use super::{Planes, BLOCK, MAX_LANES, MAX_SYMBOL_BITS};
use crate::chunk::balanced::code_bits;
use crate::format::CodingLevel;

/// Words sampled to choose the cut.
const SAMPLES: usize = 1 << 14;
/// Every how many sampled words a lane's statistics are taken (lanes are near uniform: a quarter
/// of the sample sizes them well).
const LANE_STRIDE: usize = 4;
/// The narrowest symbol tried (the exponent of float16).
const MIN_SYMBOL_BITS: u32 = 5;
/// Bits per value each further symbol bit must save: a wider symbol makes the codes longer, so
/// fewer of them decode per table lookup; on uniform bits it saves nothing.
const WIDER_SYMBOL_COST: f64 = 0.01;
/// Samples per distinct symbol below which a sample's code says too little about the chunk's (it
/// fits the sample): such a symbol is not chosen.
const MIN_SAMPLES_PER_SYMBOL: usize = 32;
/// A lane is coded when it saves at least 1/64 of its bits: decoding it costs a table lookup per
/// value, and below that saving the bytes are not worth the time.
const LANE_SAVING_DIVISOR: f64 = 64.0;
/// Bits a Huffman code of a byte lane takes above its order-0 entropy (measured on mantissa bytes).
const LANE_CODE_EXCESS: f64 = 0.02;
/// The share of zero words from which a zero mask is tried.
const MIN_ZERO_SHARE: usize = 64;

/// The cut of the planes with the fewest estimated bits for a sample of `words` (of `word_bits`),
/// with coded lanes only at the default level.
pub(crate) fn choose(words: &[u32], word_bits: u32, level: CodingLevel) -> Planes {
    let verbatim = Planes {
        word_bits,
        symbol_bits: 0,
        coded_lanes: 0,
        rotated: false,
        zero_mask: false,
    };
    let stride = words.len().div_ceil(SAMPLES).max(1);
    let sample: Vec<u32> = words.iter().step_by(stride).copied().collect();
    if sample.is_empty() {
        return verbatim;
    }
    let total = sample.len();
    let zeros = sample.iter().filter(|&&w| w == 0).count();
    let mut best = (f64::from(word_bits) * total as f64, verbatim);
    for zero_mask in [false, true] {
        if zero_mask && zeros * MIN_ZERO_SHARE < total {
            continue;
        }
        let mask_bits = if zero_mask {
            binary_entropy(zeros as f64 / total as f64) * total as f64
        } else {
            0.0
        };
        for rotated in [false, true] {
            let cut = Planes {
                rotated,
                zero_mask,
                ..verbatim
            };
            let stored: Vec<u32> = sample
                .iter()
                .filter(|&&w| !zero_mask || w != 0)
                .map(|&w| cut.to_stored(w))
                .collect();
            // Words per block of the chunk that each table serves.
            let block = (words.len() * stored.len() / total).clamp(1, BLOCK);
            if let Some((bits, planes)) = best_cut(cut, &stored, level, block) {
                if bits + mask_bits < best.0 {
                    best = (bits + mask_bits, planes);
                }
            }
        }
    }
    if std::env::var_os("SFP_DEBUG_PLANES").is_some() {
        eprintln!("{:?} {:.3} bits/value", best.1, best.0 / total as f64);
    }
    best.1
}

/// The best symbol width and coded lanes for the stored sample words, with their estimated bits.
fn best_cut(
    cut: Planes,
    stored: &[u32],
    level: CodingLevel,
    block: usize,
) -> Option<(f64, Planes)> {
    let count = stored.len();
    if count == 0 {
        return Some((0.0, cut));
    }
    let word_bits = cut.word_bits;
    let top = MAX_SYMBOL_BITS.min(word_bits);
    let mut wide = vec![0u32; 1 << top];
    for &w in stored {
        wide[(w >> (word_bits - top)) as usize] += 1;
    }
    let mut lane_bits = LaneBits::new(stored, word_bits);
    let mut best: Option<(f64, Planes)> = None;
    for symbol_bits in MIN_SYMBOL_BITS.min(top)..=top {
        let hist: Vec<u32> = wide
            .chunks_exact(1 << (top - symbol_bits))
            .map(|c| c.iter().sum())
            .collect();
        let present = hist.iter().filter(|&&h| h > 0).count();
        if symbol_bits > MIN_SYMBOL_BITS && present * MIN_SAMPLES_PER_SYMBOL > count {
            continue;
        }
        let mut planes = Planes {
            symbol_bits,
            ..cut
        };
        let mut bits = code_bits(&hist)
            + table_bits(&hist, count, block)
            + WIDER_SYMBOL_COST * f64::from(symbol_bits - MIN_SYMBOL_BITS) * count as f64;
        if level != CodingLevel::Fast {
            planes.coded_lanes = paying_lanes(planes, |shift| lane_bits.get(shift));
            for j in 0..planes.coded_lanes {
                bits += lane_bits.get(planes.lane_shift(j)) * count as f64
                    + LANE_TABLE_BITS * (count as f64 / block as f64);
            }
        }
        bits += f64::from(planes.flat_bits()) * count as f64;
        if best.as_ref().is_none_or(|b| bits < b.0) {
            best = Some((bits, planes));
        }
    }
    best
}

/// How many of the lowest byte lanes a block of stored words codes at `level`.
pub(super) fn lanes(planes: Planes, stored: &[u32], level: CodingLevel) -> u32 {
    if level == CodingLevel::Fast {
        return 0;
    }
    let mut lane_bits = LaneBits::new(stored, planes.word_bits);
    paying_lanes(planes, |shift| lane_bits.get(shift))
}

/// The lanes from the lowest up while each saves its share ([`LANE_SAVING_DIVISOR`]), given
/// each lane's estimated bits per value by its shift.
fn paying_lanes(planes: Planes, mut bits_at: impl FnMut(u32) -> f64) -> u32 {
    let mut c = 0;
    while c < MAX_LANES && 8 * (c + 1) <= planes.low_bits() {
        if 8.0 - bits_at(planes.lane_shift(c)) < 8.0 / LANE_SAVING_DIVISOR {
            break;
        }
        c += 1;
    }
    c
}

/// Estimated bits per value of a Huffman-coded byte lane at each shift, computed once per shift
/// from every [`LANE_STRIDE`]th sampled word.
struct LaneBits<'a> {
    stored: &'a [u32],
    known: Vec<Option<f64>>,
}

impl<'a> LaneBits<'a> {
    fn new(stored: &'a [u32], word_bits: u32) -> Self {
        Self {
            stored,
            known: vec![None; word_bits as usize],
        }
    }

    fn get(&mut self, shift: u32) -> f64 {
        let stored = self.stored;
        *self.known[shift as usize].get_or_insert_with(|| {
            let mut hist = [0u32; 256];
            let mut n = 0usize;
            for &w in stored.iter().step_by(LANE_STRIDE) {
                hist[((w >> shift) & 0xff) as usize] += 1;
                n += 1;
            }
            let present = hist.iter().filter(|&&h| h > 0).count();
            let entropy: f64 = hist
                .iter()
                .filter(|&&h| h > 0)
                .map(|&h| {
                    let p = f64::from(h) / n as f64;
                    -p * p.log2()
                })
                .sum();
            // Miller-Madow: a sample's entropy falls short of the source's by about this much.
            let bias = present.saturating_sub(1) as f64 / (2.0 * std::f64::consts::LN_2 * n as f64);
            (entropy + bias + LANE_CODE_EXCESS).min(8.0)
        })
    }
}

/// Bits of a lane's code-length table (256 lengths of 4 bits), once per block.
const LANE_TABLE_BITS: f64 = 1024.0;

/// The sample's share of the code-length tables of its symbols (4 bits per symbol from the
/// smallest to the largest present, once per block of `block` words).
fn table_bits(hist: &[u32], count: usize, block: usize) -> f64 {
    let lo = hist.iter().position(|&h| h > 0).unwrap_or(0);
    let hi = hist.iter().rposition(|&h| h > 0).unwrap_or(0);
    4.0 * (hi + 1 - lo) as f64 * count as f64 / block as f64
}

fn binary_entropy(p: f64) -> f64 {
    if p <= 0.0 || p >= 1.0 {
        0.0
    } else {
        -p * p.log2() - (1.0 - p) * (1.0 - p).log2()
    }
}
