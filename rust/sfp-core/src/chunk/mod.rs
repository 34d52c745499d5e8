//! One chunk: its values split into sign, exponent, mantissa and exception streams.
//!
//! Layout: `u8 flags (bit 0: sign stream present) | u8 exponent coder | u32 exponent stream bytes |
//! u32 exception count | signs (1 bit per value) | exponent stream | mantissas (man_bits per value)
//! | exceptions (u32 index, raw element bytes)`.
//!
//! With flag bit 1 (`JOINT_SIGN`) there is no sign stream: the exponent stream codes
//! `(code << 1) | sign` at `exp_bits + 1` bits, which the encoder picks per chunk when it is smaller
//! (activations after GELU, whose sign follows from the exponent for most values).
//!
//! With flag bit 2 (`MANTISSA_CODED`) the fixed header is followed by `u8 mantissa mode | u32
//! mantissa stream bytes`, and the mantissa stream is coded as [`crate::coding::mantissa`] describes; with a
//! mode naming `k` top bits the exponent stream is entropy-coded at `exp_bits + k` (+1 with
//! `JOINT_SIGN`) bits and holds `(code << k) | top bits`.

use crate::coding::bitpack::{self, packed_len, packer, unpacker};
use crate::coding::exponent::{Coder, ExponentCoding};
use crate::dtype::load;
use crate::error::{Error, Result};
use crate::format::{CodingLevel, Target};

mod assemble;
mod balanced;
pub(crate) mod choice;
mod flat;
pub(crate) mod planes;
use crate::coding::mantissa::{self, Plan};
use crate::frame::Reader;
use crate::kernel::{self, Codes, Params, Split, Word};
use crate::reduce::Reducer;
use crate::runtime::memory::Stores;
use crate::simd::Level;
pub(crate) use flat::{encode as encode_flat, len as flat_len};

use choice::{HAS_SIGNS, JOINT_SIGN, MANTISSA_CODED};

/// Sizes of one chunk's streams, as `inspect` reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    /// Values in the chunk.
    pub values: usize,
    /// The exponent coder used.
    pub coder: Coder,
    /// How the mantissas were coded (`None`: packed flat).
    pub mantissa: Option<Plan>,
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
    /// How a lossless chunk's words were cut into planes, and each plane's bytes (`None`: the
    /// words were split into sign, exponent and mantissa streams).
    pub planes: Option<planes::PlanesBytes>,
}

const CHUNK_HEADER: usize = 10;

/// Per-thread working memory of the chunk coders, reused from chunk to chunk so a large encode or
/// decode touches fresh pages only for its output.
#[derive(Default)]
pub(crate) struct Scratch {
    codes: Vec<u16>,
    exps: Vec<u8>,
    signs: Vec<u8>,
    mants: Vec<u8>,
    exceptions: Vec<u8>,
    work: choice::Work,
    low: Vec<u64>,
    tables: assemble::Tables,
    planes: planes::Scratch,
    /// A maximum-level chunk's planes encoding, kept when smaller than its split one.
    candidate: Vec<u8>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

/// Runs `f` with this thread's scratch buffers.
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    crate::runtime::memory::with_reused(&SCRATCH, f)
}

/// Encodes the values of `src` (little-endian elements; the first has flat index `first`) with the
/// kernels of `level`, appending the chunk to `out`; `W` is the element word and `M` the rounding
/// mode of `r`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    p: &Params<W>,
    exp_bits: u32,
    man_bits: u32,
    (coding, coding_level): (ExponentCoding, CodingLevel),
    src: &[u8],
    first: u64,
    out: &mut Vec<u8>,
) {
    let size = r.size();
    let word = planes::Word {
        bytes: size,
        bits: r.value_bits,
    };
    if uses_planes(r, coding, coding_level) {
        out.reserve(planes_room(src.len()));
        with_scratch(|s| planes::encode(src, word, coding_level, &mut s.planes, out));
        return;
    }
    let start = out.len();
    encode_split::<W, M>(
        level,
        r,
        p,
        (exp_bits, man_bits),
        (coding, coding_level),
        src,
        first,
        out,
    );
    if r.lossless && coding == ExponentCoding::Auto && size != 8 {
        // The maximum level keeps whichever is smaller.
        let mut planes = with_scratch(|s| std::mem::take(&mut s.candidate));
        planes.clear();
        planes.reserve(planes_room(src.len()));
        with_scratch(|s| {
            planes::encode(src, word, CodingLevel::Default, &mut s.planes, &mut planes)
        });
        if planes.len() < out.len() - start {
            out.truncate(start);
            out.extend_from_slice(&planes);
        }
        with_scratch(|s| s.candidate = planes);
    }
}

/// Bytes to reserve for a planes chunk of `src_len` source bytes: more than it rarely exceeds, as
/// the coder writes into spare capacity (a reused buffer keeps it from chunk to chunk).
fn planes_room(src_len: usize) -> usize {
    src_len + src_len / 8 + 64
}

/// [`encode`] into sign, exponent, mantissa and exception streams, appended to `out`.
#[allow(clippy::too_many_arguments)]
fn encode_split<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    p: &Params<W>,
    (exp_bits, man_bits): (u32, u32),
    (coding, coding_level): (ExponentCoding, CodingLevel),
    src: &[u8],
    first: u64,
    out: &mut Vec<u8>,
) {
    let size = r.size();
    let n = src.len() / size;
    with_scratch(|s| {
        // The split kernel writes every code, sign byte and mantissa byte: the buffers are only
        // sized (zeroed where they grow), not cleared.
        s.codes.resize(n, 0);
        s.signs.resize(n.div_ceil(8), 0);
        s.mants.resize(packed_len(n, man_bits).unwrap_or(0), 0);
        s.exceptions.clear();
        let any_negative = kernel::split::run::<W, M>(
            level,
            p,
            src,
            first,
            &mut Split {
                signs: &mut s.signs,
                codes: Codes::Wide(&mut s.codes),
                mants: &mut s.mants,
                exceptions: &mut s.exceptions,
                pack: packer(man_bits),
                man_bits,
            },
        );
        let chosen = code_streams(
            (coding, coding_level),
            (&s.codes, &s.signs, any_negative),
            (exp_bits, man_bits),
            &mut s.exps,
            &mut s.mants,
            &mut s.work,
        );
        let (flags, coder, plan) = (chosen.flags, chosen.coder, chosen.plan);
        let sign_bytes = if flags & HAS_SIGNS != 0 {
            &s.signs[..]
        } else {
            &[]
        };
        let n_exceptions = s.exceptions.len() / (4 + size);
        out.push(flags);
        out.push(coder.id());
        out.extend_from_slice(&(s.exps.len() as u32).to_le_bytes());
        out.extend_from_slice(&(n_exceptions as u32).to_le_bytes());
        put_mantissa_header(plan, s.mants.len(), out);
        for stream in [sign_bytes, &s.exps, &s.mants, &s.exceptions] {
            out.extend_from_slice(stream);
        }
    })
}

/// Whether a chunk is cut into planes: lossless 16- and 32-bit words at the speed-aware levels.
pub(crate) fn uses_planes(r: &Reducer, coding: ExponentCoding, level: CodingLevel) -> bool {
    r.lossless && coding == ExponentCoding::Auto && level != CodingLevel::Max && r.size() != 8
}

/// Decodes a chunk of a one-byte element type straight into `out` (one byte per element) when it
/// is a planes chunk; `Ok(false)` when it is of another kind, which the caller decodes in 16-bit
/// words.
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed or the frame holds no planes chunks.
pub(crate) fn decode_planes_bytes(
    level: Level,
    r: &Reducer,
    bytes: &[u8],
    out: &mut [u8],
) -> Result<bool> {
    if !planes::is_planes(bytes) {
        return Ok(false);
    }
    let word = planes_word(r)?;
    with_scratch(|s| planes::decode_bytes(level, bytes, word.bits, &mut s.planes, out))?;
    Ok(true)
}

/// A planes chunk's word size, checked against the frame: only lossless 16- and 32-bit frames
/// hold planes chunks.
fn planes_word(r: &Reducer) -> Result<planes::Word> {
    if r.lossless && r.size() != 8 {
        Ok(planes::Word {
            bytes: r.size(),
            bits: r.value_bits,
        })
    } else {
        Err(Error::decode(
            "a planes chunk in a frame that is not lossless 16- or 32-bit",
        ))
    }
}

/// Codes a chunk's split streams as `coding` and the level ask: the speed-aware levels of `auto`
/// in [`balanced`], the smallest frame and the forced coders in [`choice`] (arguments as there).
pub(crate) fn code_streams(
    (coding, level): (ExponentCoding, CodingLevel),
    values: (&[u16], &[u8], bool),
    bits: (u32, u32),
    exps: &mut Vec<u8>,
    mants: &mut Vec<u8>,
    work: &mut choice::Work,
) -> choice::Chosen {
    if coding == ExponentCoding::Auto && level != CodingLevel::Max {
        balanced::code(level, values, bits, exps, mants, work)
    } else {
        choice::code(coding, values, bits, exps, mants, work)
    }
}

/// Appends the coded-mantissa header fields (nothing for flat mantissas).
pub(crate) fn put_mantissa_header(plan: Option<Plan>, stream_len: usize, out: &mut Vec<u8>) {
    if let Some(p) = plan {
        out.push(p.mode());
        out.extend_from_slice(&(stream_len as u32).to_le_bytes());
    }
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
    if flags & !(HAS_SIGNS | JOINT_SIGN | MANTISSA_CODED) != 0
        || flags & (HAS_SIGNS | JOINT_SIGN) == HAS_SIGNS | JOINT_SIGN
    {
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
    let coded = if flags & MANTISSA_CODED != 0 {
        let plan = Plan::from_mode(r.u8("mantissa mode")?, man_bits)?;
        if plan.top > 0 && !matches!(coder, Coder::Entropy | Coder::Huffman) {
            return Err(Error::decode(
                "mantissa top bits with a non-entropy exponent coder",
            ));
        }
        Some((plan, r.u32("mantissa stream length")? as usize))
    } else {
        None
    };
    let signs = if flags & HAS_SIGNS != 0 {
        Some(r.take(n.div_ceil(8), "sign stream")?)
    } else {
        None
    };
    let exponents = r.take(exponent_bytes, "exponent stream")?;
    let mantissa_bytes = match coded {
        Some((_, len)) => len,
        None => packed_len(n, man_bits).map_err(|e| Error::decode(e.to_string()))?,
    };
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
        mantissa: coded.map(|(p, _)| p),
        header_bytes: CHUNK_HEADER
            + if coded.is_some() {
                mantissa::EXTRA_HEADER
            } else {
                0
            },
        sign_bytes: signs.map_or(0, <[u8]>::len),
        exponent_bytes,
        mantissa_bytes,
        exceptions,
        exception_bytes,
        planes: None,
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
    if planes::is_planes(bytes) {
        let sizes = planes::layout(bytes, planes_word(r)?, n)?;
        return Ok(ChunkLayout {
            values: n,
            coder: Coder::Huffman,
            mantissa: None,
            header_bytes: sizes.header,
            sign_bytes: 0,
            exponent_bytes: sizes.mask + sizes.symbols,
            mantissa_bytes: sizes.lanes + sizes.flat,
            exceptions: 0,
            exception_bytes: 0,
            planes: Some(sizes),
        });
    }
    Ok(parse(bytes, n, man_bits, r.size(), r.has_exceptions())?.layout)
}

/// Decodes a chunk of `target` into `out` (little-endian elements, exactly the chunk's values) with
/// the kernels of `level`, writing with `stores` where the chunk kind can; `W` is the element word.
///
/// # Errors
/// [`Error::Decode`] when the chunk is malformed.
pub(crate) fn decode<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    p: &Params<W>,
    target: &Target,
    bytes: &[u8],
    out: &mut [u8],
    stores: Stores,
) -> Result<()> {
    if planes::is_planes(bytes) {
        let word = planes_word(r)?;
        return with_scratch(|s| planes::decode(level, bytes, word, &mut s.planes, out, stores));
    }
    let (exp_bits, man_bits) = (target.exp_bits, target.man_bits);
    let size = r.size();
    let n = out.len() / size;
    let parsed = parse(bytes, n, man_bits, size, r.has_exceptions())?;
    if !flat::decode::<W, M>(level, r, p, (exp_bits, man_bits), &parsed, stores, out)? {
        decode_fields::<W, M>(level, r, p, (exp_bits, man_bits), &parsed, stores, out)?;
    }
    let mut previous: Option<usize> = None;
    for e in parsed.exceptions.chunks_exact(4 + size) {
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

/// The decoder of [`decode`] for plain chunks (codes alone in the exponent stream, flat mantissas):
/// the codes into the scratch array, then the expand kernel; others go to [`decode_joint`].
fn decode_fields<W: Word, const M: u8>(
    level: Level,
    r: &Reducer,
    p: &Params<W>,
    bits: (u32, u32),
    parsed: &Parsed<'_>,
    stores: Stores,
    out: &mut [u8],
) -> Result<()> {
    let (exp_bits, man_bits) = bits;
    let size = r.size();
    let n = parsed.layout.values;
    if parsed.layout.mantissa.is_some() || parsed.joint_sign {
        return decode_joint::<W>(r, bits, parsed, out);
    }
    with_scratch(|s| {
        // Every code is written by the decoder: no need to clear (chunks mostly share one size).
        s.codes.resize(n, 0);
        parsed
            .layout
            .coder
            .decode(parsed.exponents, exp_bits, &mut s.codes)?;
        let signs = parsed.signs;
        let mants = parsed.mantissas;
        let stray = kernel::expand::run::<W, M>(
            level,
            p,
            signs,
            &s.codes,
            mants,
            (unpacker(man_bits), man_bits),
            man_bits > 0 && r.zero_code_is_zero(),
            stores,
            out,
        );
        if stray {
            // The encoder stores no mantissa with the zero code here; one would decode to a value outside
            // the format (a subnormal below the window).
            let bad = (0..n).find(|&i| s.codes[i] == 0 && r.is_nonzero(load(out, size, i)));
            if let Some(i) = bad {
                return Err(Error::decode(format!(
                    "value {i} has the zero exponent code and a nonzero mantissa"
                )));
            }
        }
        Ok(())
    })
}

/// The decoder of chunks whose exponent stream holds joint symbols (sign or top mantissa bits with
/// the code) or whose mantissas are coded: the symbols, the low mantissa values, then one pass that
/// assembles the elements ([`assemble`]).
fn decode_joint<W: Word>(
    r: &Reducer,
    (exp_bits, man_bits): (u32, u32),
    parsed: &Parsed<'_>,
    out: &mut [u8],
) -> Result<()> {
    let n = parsed.layout.values;
    let plan = parsed.layout.mantissa;
    let layout = assemble::Layout {
        top: plan.map_or(0, |p| p.top),
        joint_sign: parsed.joint_sign,
        zero_skip: plan.is_some_and(|p| p.zero_skip),
    };
    let width = exp_bits + layout.top + u32::from(layout.joint_sign);
    with_scratch(|s| {
        s.codes.resize(n, 0);
        parsed
            .layout
            .coder
            .decode(parsed.exponents, width, &mut s.codes)?;
        let low_bits = man_bits - layout.top;
        let signs = if layout.joint_sign {
            None
        } else {
            parsed.signs
        };
        if plan.is_some_and(|p| !p.low_flat && (!p.zero_skip || signs.is_none())) {
            // Decode the stored values and use them a lane block at a time.
            return assemble::assemble_blocks::<W>(
                r,
                man_bits,
                &s.codes,
                width,
                layout,
                parsed.mantissas,
                signs,
                &mut s.tables,
                &mut s.low,
                out,
            );
        }
        let stored = if layout.zero_skip {
            n - assemble::zero_codes(&s.codes, layout)
        } else {
            n
        };
        let low = match plan {
            Some(p) if p.low_flat => {
                let expected =
                    packed_len(stored, low_bits).map_err(|e| Error::decode(e.to_string()))?;
                if parsed.mantissas.len() != expected {
                    return Err(Error::decode(format!(
                        "flat low mantissas: {} bytes for {stored} values of {low_bits} bits",
                        parsed.mantissas.len()
                    )));
                }
                if layout.zero_skip {
                    s.low.resize(stored, 0);
                    bitpack::unpack(parsed.mantissas, stored, low_bits, |i, v| s.low[i] = v)?;
                    assemble::Low::Values(&s.low)
                } else {
                    assemble::Low::Packed {
                        bytes: parsed.mantissas,
                        bits: low_bits,
                    }
                }
            }
            Some(_) => {
                s.low.resize(stored, 0);
                mantissa::decode(parsed.mantissas, low_bits, &mut s.low)?;
                assemble::Low::Values(&s.low)
            }
            None => assemble::Low::Packed {
                bytes: parsed.mantissas,
                bits: man_bits,
            },
        };
        assemble::assemble::<W>(
            r,
            man_bits,
            &s.codes,
            width,
            layout,
            low,
            signs,
            &mut s.tables,
            out,
        )
    })
}
