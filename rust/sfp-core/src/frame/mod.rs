//! The frame header: everything needed to decode, checked against the input before anything is
//! allocated from it.
//!
//! Layout (little-endian), format version 1:
//! ```text
//! magic "\x89SFP" | u16 version | u8 dtype | u8 ndim | u8 exp_bits | u8 man_bits | u8 rounding
//! | u8 underflow | u16 window top field (0: none) | u16 reserved (0) | u32 chunk_size | u32 n_chunks
//! | u64 seed | ndim x u64 shape | n_chunks x (u64 length, u64 xxh3 of the chunk)
//! | u64 xxh3 of the header so far | chunks...
//! ```

pub(crate) mod checksum;
pub mod container;

use crate::frame::checksum::checksum;

use crate::coding::exponent::ExponentCoding;
use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::format::{window_top_range, CodingLevel, Format, Rounding, Target, Underflow};

/// The first four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"\x89SFP";
/// The frame format version this crate writes.
pub const VERSION: u16 = 1;
/// The most dimensions a frame may have.
pub const MAX_NDIM: usize = 32;
/// The largest chunk, in values; bounds the work and memory a chunk can ask of a decoder.
pub const MAX_CHUNK: usize = 1 << 20;
/// Bytes of the fixed part of the header.
const FIXED: usize = 32;
/// Bytes per chunk-table entry.
const ENTRY: usize = 16;

/// A parsed and validated frame header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// The target the frame was written with (widths, rounding, underflow, seed).
    pub target: Target,
    /// Biased top field of the exponent window; 0 when the exponent is kept raw.
    pub window_top: u16,
    /// The array's shape.
    pub shape: Vec<u64>,
    /// Values per chunk (the last may hold fewer).
    pub chunk_size: usize,
    /// Per chunk: byte length and xxh3 checksum.
    pub chunks: Vec<(u64, u64)>,
    /// Bytes of the header, where the first chunk starts.
    pub header_len: usize,
}

impl Header {
    /// Number of values in the array.
    pub fn len(&self) -> usize {
        // Checked at parse time to fit.
        self.shape.iter().product::<u64>() as usize
    }

    /// Bytes of the decoded array (checked at parse time to fit in `isize`).
    pub fn nbytes(&self) -> usize {
        self.len() * self.target.dtype.size()
    }

    /// True when the array has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Values in chunk `c`.
    pub fn chunk_values(&self, c: usize) -> usize {
        let start = c * self.chunk_size;
        self.chunk_size.min(self.len() - start)
    }

    /// Serialises the header (with the given chunk table) to bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let t = &self.target;
        let mut out =
            Vec::with_capacity(FIXED + 8 * self.shape.len() + ENTRY * self.chunks.len() + 8);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&[
            t.dtype.id(),
            self.shape.len() as u8,
            t.exp_bits as u8,
            t.man_bits as u8,
        ]);
        out.extend_from_slice(&[t.format.rounding.id(), t.format.underflow.id()]);
        out.extend_from_slice(&self.window_top.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&(self.chunk_size as u32).to_le_bytes());
        out.extend_from_slice(&(self.chunks.len() as u32).to_le_bytes());
        out.extend_from_slice(&t.format.seed.to_le_bytes());
        for d in &self.shape {
            out.extend_from_slice(&d.to_le_bytes());
        }
        for (len, sum) in &self.chunks {
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&sum.to_le_bytes());
        }
        let sum = checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses and validates the header at the start of `frame`; the chunk lengths must add up to exactly
    /// the rest of `frame`.
    ///
    /// # Errors
    /// [`Error::Decode`] for anything that is not a well-formed frame of this or an earlier version.
    pub fn parse(frame: &[u8]) -> Result<Self> {
        let mut r = Reader {
            bytes: frame,
            pos: 0,
        };
        let magic = r.take(4, "magic")?;
        if magic != MAGIC {
            return Err(Error::decode(format!(
                "not a schrodinger-fp frame: magic {magic:02x?}, expected {MAGIC:02x?}"
            )));
        }
        let version = r.u16("version")?;
        if version == 0 || version > VERSION {
            return Err(Error::decode(format!(
                "frame version {version} is not supported (this build reads 1..={VERSION})"
            )));
        }
        let dtype = DType::from_id(r.u8("dtype")?)?;
        let ndim = usize::from(r.u8("ndim")?);
        if ndim > MAX_NDIM {
            return Err(Error::decode(format!("ndim {ndim} exceeds {MAX_NDIM}")));
        }
        let exp_bits = u32::from(r.u8("exp_bits")?);
        let man_bits = u32::from(r.u8("man_bits")?);
        let rounding = Rounding::from_id(r.u8("rounding")?)?;
        let underflow = Underflow::from_id(r.u8("underflow")?)?;
        let window_top = r.u16("window top")?;
        if r.u16("reserved")? != 0 {
            return Err(Error::decode("reserved header field is not zero"));
        }
        let chunk_size = r.u32("chunk size")? as usize;
        let n_chunks = r.u32("chunk count")? as usize;
        let seed = r.u64("seed")?;
        let format = Format {
            exp_bits: Some(exp_bits),
            man_bits: Some(man_bits),
            rounding,
            underflow,
            window_top: None,
            seed,
            exponent_coding: ExponentCoding::Auto,
            level: CodingLevel::Default,
            container: crate::container::Container::Window,
        };
        let target = format
            .resolve(dtype)
            .map_err(|e| Error::decode(format!("bad format in header: {e}")))?;
        check_window(&target, window_top)?;
        let mut shape = Vec::with_capacity(ndim);
        for _ in 0..ndim {
            shape.push(r.u64("shape")?);
        }
        let len = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            // Arrays are addressed with `isize` (numpy, Rust slices): larger ones cannot be decoded.
            .filter(|&n| {
                n.checked_mul(dtype.size() as u64)
                    .is_some_and(|b| isize::try_from(b).is_ok())
            })
            .ok_or_else(|| Error::decode(format!("shape {shape:?} is too large")))?;
        if chunk_size == 0 || chunk_size > MAX_CHUNK {
            return Err(Error::decode(format!(
                "chunk size {chunk_size} is outside 1..={MAX_CHUNK}"
            )));
        }
        let expected_chunks = len.div_ceil(chunk_size as u64);
        if n_chunks as u64 != expected_chunks {
            return Err(Error::decode(format!(
                "{n_chunks} chunks cannot hold {len} values of {chunk_size} per chunk"
            )));
        }
        // The table must be present before it is allocated.
        let table = r.take(n_chunks.saturating_mul(ENTRY), "chunk table")?;
        let chunks: Vec<(u64, u64)> = table
            .chunks_exact(ENTRY)
            .map(|e| (le_u64(&e[..8]), le_u64(&e[8..])))
            .collect();
        let header_len = r.pos + 8;
        let stored = r.u64("header checksum")?;
        if checksum(&frame[..header_len - 8]) != stored {
            return Err(Error::decode(
                "header checksum mismatch: the frame header is corrupt",
            ));
        }
        let payload = (frame.len() - header_len) as u64;
        let total = chunks
            .iter()
            .try_fold(0u64, |acc, &(l, _)| acc.checked_add(l));
        if total != Some(payload) {
            return Err(Error::decode(format!(
                "chunk lengths add up to {}, but {payload} bytes follow the header",
                total.map_or_else(|| "more than 2^64".to_string(), |t| t.to_string())
            )));
        }
        Ok(Self {
            target,
            window_top,
            shape,
            chunk_size,
            chunks,
            header_len,
        })
    }

    /// Byte ranges of the chunks within the frame.
    pub fn chunk_ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = self.header_len;
        self.chunks
            .iter()
            .map(|&(len, _)| {
                let range = start..start + len as usize;
                start = range.end;
                range
            })
            .collect()
    }
}

/// A window top must be zero without a window, and within the source's normal range with one.
fn check_window(target: &Target, top: u16) -> Result<()> {
    let ok = if target.has_window() {
        let (lo, hi) = window_top_range(target.dtype, target.exp_bits);
        let top = i32::from(top) - target.dtype.bias();
        (lo..=hi).contains(&top)
    } else {
        top == 0
    };
    if ok {
        Ok(())
    } else {
        Err(Error::decode(format!(
            "window top field {top} is invalid for this format"
        )))
    }
}

fn le_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(b);
    u64::from_le_bytes(w)
}

/// A bounds-checked cursor that names what it was reading when the input runs out.
pub(crate) struct Reader<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                Error::decode(format!(
                    "truncated: {what} needs {n} bytes at offset {}, only {} left",
                    self.pos,
                    self.bytes.len().saturating_sub(self.pos)
                ))
            })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &str) -> Result<u16> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &str) -> Result<u32> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(le_u64(self.take(8, what)?))
    }
}
