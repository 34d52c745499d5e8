//! How a chunk's sign, exponent and mantissa streams are coded at the maximum level and for the forced coders, chosen from histograms and
//! written once.
//!
//! The candidates: the exponent codes alone (raw, Gecko or entropy-coded, the sign stream apart) or
//! entropy-coded jointly with the sign; and, when the sampled mantissa [`Plan`] predicts a saving,
//! coded mantissas, with their top bits joined to the exponent alphabet (again with or without the
//! sign). Every entropy-coded candidate is sized from its histogram by its normalised table (within
//! a few bytes of the real stream), one histogram pass per alphabet (the narrower alphabets are
//! folded from the wider ones); only the winner is encoded. The raw and Gecko sizes are exact, and
//! an entropy-coded plain exponent stream is kept only when it really is smaller than them.

use crate::coding::exponent::entropy::{self, Table};
use crate::coding::exponent::{self, gecko, Coder, ExponentCoding};
use crate::coding::mantissa::{self, Plan};

/// Chunk flag: a sign stream is present.
pub(crate) const HAS_SIGNS: u8 = 1;
/// Chunk flag: signs are coded jointly with the exponents.
pub(crate) const JOINT_SIGN: u8 = 2;
/// Chunk flag: the mantissa stream is coded (see [`crate::coding::mantissa`]).
pub(crate) const MANTISSA_CODED: u8 = 4;

/// What [`code`] chose: the chunk flags, the exponent coder and the mantissa plan (`None`: flat).
pub(crate) struct Chosen {
    pub flags: u8,
    pub coder: Coder,
    pub plan: Option<Plan>,
}

/// Reused buffers of [`code`].
#[derive(Default)]
pub(crate) struct Work {
    pub(crate) joint: Vec<u16>,
    pub(crate) low: Vec<u64>,
    pub(crate) stream: Vec<u8>,
}

/// An entropy-coded alphabet: its table, predicted stream length and a lower bound on it.
struct Sized {
    table: Option<Table>,
    len: usize,
    min_len: usize,
}

impl Sized {
    fn new(hist: Vec<u32>) -> Self {
        let table = Table::from_histogram(&hist);
        let len = table.as_ref().map_or(0, |t| t.estimated_len(&hist));
        let min_len = table.as_ref().map_or(0, |t| t.min_stream_len(&hist));
        Self {
            table,
            len,
            min_len,
        }
    }
}

/// Gecko's stream length for `codes`, or `usize::MAX` when a sample of a large chunk (eight
/// stretches, a sixteenth of it) predicts a stream over 1.25 times `best`, the smallest other
/// candidate: then Gecko cannot win and its exact length (a pass over every group) is not needed.
fn gecko_len(codes: &[u16], width: u32, best: usize) -> usize {
    let p = gecko::Params::DEFAULT;
    let n = codes.len();
    if n >= 1 << 16 {
        let piece = (n / 128) & !(p.group() - 1);
        let sampled: usize = (0..8)
            .map(|k| {
                let at = k * (n / 8);
                gecko::encoded_len(codes.get(at..at + piece).unwrap_or_default(), width, p)
            })
            .sum();
        let predicted = sampled as f64 * n as f64 / (8 * piece) as f64;
        if predicted > 1.25 * best as f64 {
            return usize::MAX;
        }
    }
    gecko::encoded_len(codes, width, p)
}

/// The histogram of an alphabet without its lowest bit.
fn fold(hist: &[u32]) -> Vec<u32> {
    hist.chunks_exact(2).map(|p| p[0] + p[1]).collect()
}

/// Codes a chunk's streams: `values` are the exponent codes, the sign bits and whether any sign is
/// set, `bits` the exponent and mantissa widths. The exponent stream goes to `exps`; `mants` holds
/// the flat packed mantissas and is replaced by the coded ones when they win.
pub(crate) fn code(
    coding: ExponentCoding,
    values: (&[u16], &[u8], bool),
    bits: (u32, u32),
    exps: &mut Vec<u8>,
    mants: &mut Vec<u8>,
    work: &mut Work,
) -> Chosen {
    let (codes, signs, any_negative) = values;
    let exp_bits = bits.0;
    exps.clear();
    let sign_flag = if any_negative { HAS_SIGNS } else { 0 };
    if !matches!(coding, ExponentCoding::Auto | ExponentCoding::Entropy)
        || exp_bits + 1 > entropy::MAX_WIDTH
    {
        let coder = exponent::encode(coding, codes, exp_bits, exps);
        return Chosen {
            flags: sign_flag,
            coder,
            plan: None,
        };
    }
    let sign_len = if any_negative { signs.len() } else { 0 };
    // The sampled mantissa plan and, when it has one, the split mantissas and the histogram of the
    // joint alphabet, from which the flat alphabets' histograms fold.
    let split = split_mantissas(values, bits, mants, work);
    // The flat chunk's exponent stream: plain codes (the sign stream apart) or joint with the sign.
    let (plain, with_sign) = match split.as_ref().and_then(|s| s.top_hist.as_ref()) {
        Some(th) => flat_from_top(th, split.as_ref().map_or(0, |s| s.plan.top), any_negative),
        None if any_negative => {
            let hs = joint_histogram(codes, signs, exp_bits + 1);
            (Sized::new(fold(&hs)), Some(Sized::new(hs)))
        }
        None => (Sized::new(entropy::histogram(codes, exp_bits)), None),
    };
    let simple = (coding == ExponentCoding::Auto).then(|| {
        let raw_len = (codes.len() as u64 * u64::from(exp_bits)).div_ceil(8) as usize;
        let gecko_len = gecko_len(codes, exp_bits, raw_len.min(plain.len));
        if gecko_len < raw_len {
            (Coder::Gecko, gecko_len)
        } else {
            (Coder::Raw, raw_len)
        }
    });
    let plain_cost = simple.map_or(plain.len, |(_, l)| l.min(plain.len)) + sign_len;
    let flat_joint = with_sign.as_ref().filter(|s| s.len < plain_cost);
    let flat_exp_cost = flat_joint.map_or(plain_cost, |s| s.len);

    let coded = split.and_then(|sp| {
        code_mantissas(
            sp,
            (signs, any_negative),
            bits.1,
            mants,
            work,
            flat_exp_cost,
        )
    });
    if let Some((plan, stream_len, top)) = coded {
        let (coder, flags) = match top {
            Some((alphabet, joint_sign)) => {
                let shift = u32::from(any_negative && !joint_sign);
                let width = exp_bits + plan.top + u32::from(any_negative) - shift;
                if let Some(t) = &alphabet.table {
                    entropy::encode_shifted(
                        work.joint.get(..codes.len()).unwrap_or_default(),
                        shift,
                        width,
                        t,
                        exps,
                    );
                }
                let flags = if joint_sign { JOINT_SIGN } else { sign_flag };
                (Coder::Entropy, flags)
            }
            None => write_flat(values, exp_bits, (&plain, flat_joint), simple, exps, work),
        };
        mants.clear();
        mants.extend_from_slice(&work.stream[..stream_len]);
        return Chosen {
            flags: flags | MANTISSA_CODED,
            coder,
            plan: Some(plan),
        };
    }
    let (coder, flags) = write_flat(values, exp_bits, (&plain, flat_joint), simple, exps, work);
    Chosen {
        flags,
        coder,
        plan: None,
    }
}

/// A chunk's mantissas split by the sampled plan (see [`split_mantissas`]).
struct Split {
    plan: Plan,
    /// Low values stored in `work.low`.
    stored: usize,
    /// With top bits: the histogram of the joint alphabet in `work.joint`.
    top_hist: Option<Vec<u32>>,
}

/// Chooses a plan from a sample and splits the mantissas by it: the low values into `work.low`
/// and, with top bits, the joint codes into `work.joint` (the sign in bit 0 when any value is
/// negative), with their histogram; `None` when the plan predicts no saving.
fn split_mantissas(
    (codes, signs, any_negative): (&[u16], &[u8], bool),
    (exp_bits, man_bits): (u32, u32),
    mants: &[u8],
    work: &mut Work,
) -> Option<Split> {
    let mut plan = mantissa::choose(codes, mants, exp_bits, man_bits, true)?;
    let sign_arg = (any_negative && plan.top > 0).then_some(signs);
    let split = |plan: Plan, w: &mut Work| {
        mantissa::split_into(
            plan,
            codes,
            sign_arg,
            mants,
            man_bits,
            &mut w.joint,
            &mut w.low,
        )
    };
    let stored = match split(plan, work) {
        Some(k) => k,
        None => {
            plan.zero_skip = false;
            split(plan, work)?
        }
    };
    let top_hist = (plan.top > 0).then(|| {
        let width = exp_bits + plan.top + u32::from(any_negative);
        entropy::histogram(work.joint.get(..codes.len()).unwrap_or_default(), width)
    });
    Some(Split {
        plan,
        stored,
        top_hist,
    })
}

/// The flat alphabets (plain codes, and codes with the sign when any value is negative) folded
/// from the histogram of the joint alphabet with `top` top bits.
fn flat_from_top(th: &[u32], top: u32, any_negative: bool) -> (Sized, Option<Sized>) {
    let mut h = vec![0u32; th.len() >> top];
    if any_negative {
        for (i, &c) in th.iter().enumerate() {
            if let Some(b) = h.get_mut(((i >> (top + 1)) << 1) | (i & 1)) {
                *b += c;
            }
        }
        (Sized::new(fold(&h)), Some(Sized::new(h)))
    } else {
        for (i, &c) in th.iter().enumerate() {
            if let Some(b) = h.get_mut(i >> top) {
                *b += c;
            }
        }
        (Sized::new(h), None)
    }
}

/// The plan, the mantissa stream length and, with top bits, the joint alphabet and whether the sign
/// stays in it.
type Coded = (Plan, usize, Option<(Sized, bool)>);

/// Codes the split mantissas (into `work.stream`) when the coded chunk is smaller than the flat
/// one (whose exponent and sign streams take `flat_exp_cost` bytes).
fn code_mantissas(
    sp: Split,
    (signs, any_negative): (&[u8], bool),
    man_bits: u32,
    mants: &[u8],
    work: &mut Work,
    flat_exp_cost: usize,
) -> Option<Coded> {
    let plan = sp.plan;
    work.stream.clear();
    mantissa::encode(
        work.low.get(..sp.stored).unwrap_or_default(),
        man_bits - plan.top,
        mantissa::LaneCoder::Rans,
        &mut work.stream,
    );
    let (top, exp_cost) = match sp.top_hist {
        Some(hist) if any_negative => {
            let sep = Sized::new(fold(&hist));
            let joint = Sized::new(hist);
            if joint.len < sep.len + signs.len() {
                let cost = joint.len;
                (Some((joint, true)), cost)
            } else {
                let cost = sep.len + signs.len();
                (Some((sep, false)), cost)
            }
        }
        Some(hist) => {
            let s = Sized::new(hist);
            let cost = s.len;
            (Some((s, false)), cost)
        }
        None => (None, flat_exp_cost),
    };
    let total = exp_cost + work.stream.len() + mantissa::EXTRA_HEADER;
    (total < flat_exp_cost + mants.len()).then_some((plan, work.stream.len(), top))
}

/// Writes the flat chunk's exponent stream: joint with the sign when `flat_joint` is given, else the
/// plain codes (entropy-coded only when that is smaller than the `simple` coder's stream).
fn write_flat(
    (codes, signs, any_negative): (&[u16], &[u8], bool),
    exp_bits: u32,
    (plain, flat_joint): (&Sized, Option<&Sized>),
    simple: Option<(Coder, usize)>,
    exps: &mut Vec<u8>,
    work: &mut Work,
) -> (Coder, u8) {
    let sign_flag = if any_negative { HAS_SIGNS } else { 0 };
    if let Some(j) = flat_joint {
        work.joint.clear();
        work.joint.extend(
            codes
                .iter()
                .enumerate()
                .map(|(i, &c)| (c << 1) | u16::from((signs[i / 8] >> (i % 8)) & 1)),
        );
        if let Some(t) = &j.table {
            entropy::encode_with_table(&work.joint, exp_bits + 1, t, exps);
        }
        return (Coder::Entropy, JOINT_SIGN);
    }
    let Some((coder, simple_len)) = simple else {
        if let Some(t) = &plain.table {
            entropy::encode_with_table(codes, exp_bits, t, exps);
        }
        return (Coder::Entropy, sign_flag);
    };
    // The lower bound, not the estimate, decides whether to try: `auto` keeps the smallest exactly.
    if let Some(t) = plain.table.as_ref().filter(|_| plain.min_len < simple_len) {
        entropy::encode_with_table(codes, exp_bits, t, exps);
        if exps.len() < simple_len {
            return (Coder::Entropy, sign_flag);
        }
        exps.clear();
    }
    coder.encode(codes, exp_bits, exps);
    (coder, sign_flag)
}

/// The histogram of `(code << 1) | sign` masked to `width` bits, as the entropy coder would count it
/// on the joint stream.
fn joint_histogram(codes: &[u16], signs: &[u8], width: u32) -> Vec<u32> {
    let mask = ((1u32 << width) - 1) as u16;
    // Two partial histograms break the store-to-load dependency on runs of equal codes.
    let mut hist = vec![0u32; 1usize << width];
    let mut odd = vec![0u32; 1usize << width];
    let groups = codes.chunks_exact(8);
    let tail = groups.remainder();
    for (group, &byte) in groups.zip(signs) {
        let b = u16::from(byte);
        for j in (0..8).step_by(2) {
            hist[usize::from(((group[j] << 1) | ((b >> j) & 1)) & mask)] += 1;
            odd[usize::from(((group[j + 1] << 1) | ((b >> (j + 1)) & 1)) & mask)] += 1;
        }
    }
    if let Some(&byte) = signs.get(codes.len() / 8) {
        for (j, &c) in tail.iter().enumerate() {
            hist[usize::from(((c << 1) | ((u16::from(byte) >> j) & 1)) & mask)] += 1;
        }
    }
    for (a, o) in hist.iter_mut().zip(&odd) {
        *a += o;
    }
    hist
}
