//! One chunk: its values split into sign, exponent, mantissa and exception streams.
//!
//! Layout: `u8 flags (bit 0: sign stream present) | u8 exponent coder | u32 exponent stream bytes |
//! u32 exception count | signs (1 bit per value) | exponent stream | mantissas (man_bits per value)
//! | exceptions (u32 index, raw element bytes)`.
//!
//! With flag bit 1 (`JOINT_SIGN`, issue 3) there is no sign stream: the exponent stream codes
//! `(code << 1) | sign` at `exp_bits + 1` bits, which the encoder picks per chunk when it is smaller
//! (activations after GELU, whose sign follows from the exponent for most values).

use crate::bitpack::{packed_len, unpack, BitWriter};
use crate::dtype::{load, store};
use crate::error::{Error, Result};
use crate::exponent::{self, Coder, ExponentCoding};
use crate::frame::Reader;
use crate::reduce::{Reducer, Slot};

const HAS_SIGNS: u8 = 1;
/// Issue 3: signs are coded jointly with the exponents (see [`joint_sign`]).
const JOINT_SIGN: u8 = 2;

/// Sizes of one chunk's streams, as `inspect` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Values in the chunk.
    pub values: usize,
    /// The exponent coder used.
    pub coder: Coder,
    /// Bytes of the fixed chunk header.
    pub header_bytes: usize,
    /// Bytes of the sign stream (0 when no value is negative).
    pub sign_bytes: usize,
    /// Bytes of the exponent stream.
    pub exponent_bytes: usize,
    /// Bytes of the mantissa stream.
    pub mantissa_bytes: usize,
    /// Number of out-of-band specials.
    pub exceptions: usize,
    /// Bytes of the exception stream.
    pub exception_bytes: usize,
}

const CHUNK_HEADER: usize = 10;

/// Encodes the values of `src` (little-endian elements; the first has flat index `first`).
pub(crate) fn encode(
    r: &Reducer,
    exp_bits: u32,
    man_bits: u32,
    coding: ExponentCoding,
    src: &[u8],
    first: u64,
) -> Vec<u8> {
    let size = r.size();
    let n = src.len() / size;
    let mut codes = vec![0u16; n];
    let mut signs = Vec::with_capacity(n.div_ceil(8));
    let mut mantissas = Vec::with_capacity(packed_len(n, man_bits).unwrap_or(0));
    let mut exceptions: Vec<u8> = Vec::new();
    let mut any_negative = false;
    {
        let mut sign_writer = BitWriter::new(1, &mut signs);
        let mut mant_writer = BitWriter::new(man_bits, &mut mantissas);
        for (i, code) in codes.iter_mut().enumerate() {
            let bits = load(src, size, i);
            match r.reduce(bits, first + i as u64) {
                Slot::Value {
                    sign,
                    code: c,
                    mant,
                } => {
                    *code = c;
                    any_negative |= sign;
                    sign_writer.push(u64::from(sign));
                    mant_writer.push(mant);
                }
                Slot::Special => {
                    sign_writer.push(0);
                    mant_writer.push(0);
                    exceptions.extend_from_slice(&(i as u32).to_le_bytes());
                    exceptions.extend_from_slice(&bits.to_le_bytes()[..size]);
                }
            }
        }
        sign_writer.finish();
        mant_writer.finish();
    }
    let mut exps = Vec::new();
    let mut coder = exponent::encode(coding, &codes, exp_bits, &mut exps);
    let mut flags = if any_negative { HAS_SIGNS } else { 0 };
    if any_negative {
        if let Some((joint, c)) =
            joint_sign(coding, &codes, &signs, exp_bits, exps.len() + signs.len())
        {
            exps = joint;
            coder = c;
            flags = JOINT_SIGN;
        }
    }
    let n_exceptions = exceptions.len() / (4 + size);
    let mut out = Vec::with_capacity(
        CHUNK_HEADER + signs.len() + exps.len() + mantissas.len() + exceptions.len(),
    );
    out.push(flags);
    out.push(coder.id());
    out.extend_from_slice(&(exps.len() as u32).to_le_bytes());
    out.extend_from_slice(&(n_exceptions as u32).to_le_bytes());
    if flags & HAS_SIGNS != 0 {
        out.extend_from_slice(&signs);
    }
    out.extend_from_slice(&exps);
    out.extend_from_slice(&mantissas);
    out.extend_from_slice(&exceptions);
    out
}

/// Issue 3: the entropy-coded stream of `(code << 1) | sign`, when `coding` allows the entropy coder
/// and that stream is smaller than `separate` (sign stream plus exponent stream) bytes.
fn joint_sign(
    coding: ExponentCoding,
    codes: &[u16],
    signs: &[u8],
    exp_bits: u32,
    separate: usize,
) -> Option<(Vec<u8>, Coder)> {
    if !matches!(coding, ExponentCoding::Auto | ExponentCoding::Entropy)
        || exp_bits + 1 > exponent::entropy::MAX_WIDTH
    {
        return None;
    }
    let joint: Vec<u16> = codes
        .iter()
        .enumerate()
        .map(|(i, &c)| (c << 1) | u16::from((signs[i / 8] >> (i % 8)) & 1))
        .collect();
    // One histogram pass predicts the joint stream; encode only when it looks smaller.
    if exponent::entropy_estimate(&joint, exp_bits + 1)? >= separate {
        return None;
    }
    let mut out = Vec::new();
    let coder = exponent::encode(ExponentCoding::Entropy, &joint, exp_bits + 1, &mut out);
    (out.len() < separate).then_some((out, coder))
}

/// The streams of a chunk of `n` values, checked to fill `bytes` exactly.
struct Parsed<'a> {
    layout: ChunkLayout,
    signs: Option<&'a [u8]>,
    joint_sign: bool,
    exponents: &'a [u8],
    mantissas: &'a [u8],
    exceptions: &'a [u8],
}

fn parse<'a>(
    bytes: &'a [u8],
    n: usize,
    man_bits: u32,
    size: usize,
    may_have_exceptions: bool,
) -> Result<Parsed<'a>> {
    let mut r = Reader { bytes, pos: 0 };
    let flags = r.u8("chunk flags")?;
    if flags & !(HAS_SIGNS | JOINT_SIGN) != 0 || flags == HAS_SIGNS | JOINT_SIGN {
        return Err(Error::decode(format!("unknown chunk flags {flags:#04x}")));
    }
    let coder = Coder::from_id(r.u8("exponent coder")?)?;
    let exponent_bytes = r.u32("exponent stream length")? as usize;
    let exceptions = r.u32("exception count")? as usize;
    if exceptions > n || (exceptions > 0 && !may_have_exceptions) {
        return Err(Error::decode(format!(
            "{exceptions} exceptions in a chunk of {n} values"
        )));
    }
    let signs = if flags & HAS_SIGNS != 0 {
        Some(r.take(n.div_ceil(8), "sign stream")?)
    } else {
        None
    };
    let exponents = r.take(exponent_bytes, "exponent stream")?;
    let mantissa_bytes = packed_len(n, man_bits).map_err(|e| Error::decode(e.to_string()))?;
    let mantissas = r.take(mantissa_bytes, "mantissa stream")?;
    let exception_bytes = exceptions * (4 + size);
    let exception_stream = r.take(exception_bytes, "exception stream")?;
    if r.pos != bytes.len() {
        return Err(Error::decode(format!(
            "{} stray bytes after the chunk's streams",
            bytes.len() - r.pos
        )));
    }
    let layout = ChunkLayout {
        values: n,
        coder,
        header_bytes: CHUNK_HEADER,
        sign_bytes: signs.map_or(0, <[u8]>::len),
        exponent_bytes,
        mantissa_bytes,
        exceptions,
        exception_bytes,
    };
    Ok(Parsed {
        layout,
        signs,
        joint_sign: flags & JOINT_SIGN != 0,
        exponents,
        mantissas,
        exceptions: exception_stream,
    })
}

/// The stream sizes of a chunk of `n` values, without decoding it.
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed.
pub(crate) fn layout(r: &Reducer, man_bits: u32, bytes: &[u8], n: usize) -> Result<ChunkLayout> {
    Ok(parse(bytes, n, man_bits, r.size(), r.has_exceptions())?.layout)
}

/// Decodes a chunk into `out` (little-endian elements, exactly the chunk's values).
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed.
pub(crate) fn decode(
    r: &Reducer,
    exp_bits: u32,
    man_bits: u32,
    bytes: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let size = r.size();
    let n = out.len() / size;
    let p = parse(bytes, n, man_bits, size, r.has_exceptions())?;
    let mut codes = vec![0u16; n];
    let mut joint_signs = Vec::new();
    if p.joint_sign {
        p.layout
            .coder
            .decode(p.exponents, exp_bits + 1, &mut codes)?;
        joint_signs = codes.iter().map(|&c| c & 1 == 1).collect();
        codes.iter_mut().for_each(|c| *c >>= 1);
    } else {
        p.layout.coder.decode(p.exponents, exp_bits, &mut codes)?;
    }
    let max_code = if exp_bits >= 16 {
        u16::MAX
    } else {
        ((1u32 << exp_bits) - 1) as u16
    };
    if let Some(bad) = codes.iter().find(|&&c| c > max_code) {
        return Err(Error::decode(format!(
            "exponent code {bad} exceeds {exp_bits} bits"
        )));
    }
    let sign = |i: usize| {
        joint_signs.get(i).copied().unwrap_or(false)
            || p.signs.is_some_and(|s| (s[i / 8] >> (i % 8)) & 1 == 1)
    };
    unpack(p.mantissas, n, man_bits, |i, mant| {
        store(out, size, i, r.expand(sign(i), codes[i], mant))
    })?;
    let mut previous: Option<usize> = None;
    for e in p.exceptions.chunks_exact(4 + size) {
        let index = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize;
        if index >= n || previous.is_some_and(|p| index <= p) {
            return Err(Error::decode(format!(
                "exception index {index} is out of order or beyond {n}"
            )));
        }
        previous = Some(index);
        out[index * size..(index + 1) * size].copy_from_slice(&e[4..]);
        let bits = load(out, size, index);
        if !r.is_special(bits) {
            return Err(Error::decode(format!(
                "exception at {index} is not a NaN or infinity"
            )));
        }
    }
    Ok(())
}
