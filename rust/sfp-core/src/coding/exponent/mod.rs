//! Coders for the exponent stream of a chunk.
//!
//! Every coder takes one code per value (each below `2^width`, `width` in 1..=11; code 0 is the zero code)
//! and must round-trip every sequence exactly. A chunk records which coder wrote its stream, so the
//! encoder may choose per chunk.

pub mod entropy;
pub mod gecko;
pub mod huffman;
pub mod raw;

use crate::error::{Error, Result};

/// The byte map of the decoders that write each code as the byte it is.
pub(crate) static IDENTITY: [u8; 256] = {
    let mut m = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        m[i] = i as u8;
        i += 1;
    }
    m
};

/// What the encoder is asked to use for the exponent stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExponentCoding {
    /// Flat bit-packing at the code width.
    Raw,
    /// Gecko group-delta coding ([`gecko`]).
    Gecko,
    /// Order-0 entropy coding with rANS ([`entropy`]).
    Entropy,
    /// Order-0 entropy coding with Huffman codes ([`huffman`]): a little larger, much faster to
    /// decode.
    Huffman,
    /// Chosen per chunk, as the format's coding level says.
    #[default]
    Auto,
}

impl ExponentCoding {
    /// Every choice, as the Python API lists them.
    pub const ALL: &'static [ExponentCoding] = &[
        Self::Raw,
        Self::Gecko,
        Self::Entropy,
        Self::Huffman,
        Self::Auto,
    ];

    /// Parses the name used by the Python API.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "raw" => Ok(Self::Raw),
            "gecko" => Ok(Self::Gecko),
            "entropy" => Ok(Self::Entropy),
            "huffman" => Ok(Self::Huffman),
            "auto" => Ok(Self::Auto),
            other => Err(Error::invalid(format!(
                "exponent_coding={other:?} is not one of \"raw\", \"gecko\", \"entropy\", \"huffman\", \"auto\""
            ))),
        }
    }

    /// The name used by the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Gecko => "gecko",
            Self::Entropy => "entropy",
            Self::Huffman => "huffman",
            Self::Auto => "auto",
        }
    }
}

/// The coder that wrote one chunk's exponent stream; its id is stored in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coder {
    /// See [`raw`].
    Raw,
    /// See [`gecko`].
    Gecko,
    /// See [`entropy`].
    Entropy,
    /// See [`huffman`].
    Huffman,
}

impl Coder {
    /// The id stored in the frame.
    pub fn id(self) -> u8 {
        match self {
            Self::Raw => 0,
            Self::Gecko => 1,
            Self::Entropy => 2,
            Self::Huffman => 3,
        }
    }

    /// The coder with this frame id.
    ///
    /// # Errors
    /// [`Error::Decode`] for an unknown id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Self::Raw),
            1 => Ok(Self::Gecko),
            2 => Ok(Self::Entropy),
            3 => Ok(Self::Huffman),
            other => Err(Error::decode(format!("unknown exponent coder id {other}"))),
        }
    }

    /// The coder's name, as `inspect` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Gecko => "gecko",
            Self::Entropy => "entropy",
            Self::Huffman => "huffman",
        }
    }

    /// Appends the coded stream of `codes` to `out`.
    pub fn encode(self, codes: &[u16], width: u32, out: &mut Vec<u8>) {
        match self {
            Self::Raw => raw::encode(codes, width, out),
            Self::Gecko => gecko::encode(codes, width, out),
            Self::Entropy => entropy::encode(codes, width, out),
            Self::Huffman => huffman::encode(codes, width, out),
        }
    }

    /// Decodes exactly `out.len()` codes from the whole stream `bytes`.
    ///
    /// # Errors
    /// [`Error::Decode`] when the stream is malformed or does not hold exactly `out.len()` codes.
    pub fn decode(self, bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
        match self {
            Self::Raw => raw::decode(bytes, width, out),
            Self::Gecko => gecko::decode(bytes, width, out),
            Self::Entropy => entropy::decode(bytes, width, out),
            Self::Huffman => huffman::decode(bytes, width, out),
        }
    }
}

/// Codes `codes` as `coding` asks, appending the stream to `out`; returns the coder used.
///
/// `Auto` keeps the smallest stream exactly, without encoding with every coder: the raw length is
/// known, Gecko's is computed in one pass over its groups, and one histogram gives a lower bound on
/// the entropy coder's; the entropy coder runs only when that bound could beat the other two, and its
/// stream is kept only when it does. Ties go to the simpler coder (raw, then Gecko). Widths above 16
/// bits (not produced by the codec) are always packed raw.
pub fn encode(coding: ExponentCoding, codes: &[u16], width: u32, out: &mut Vec<u8>) -> Coder {
    if width > entropy::MAX_WIDTH {
        Coder::Raw.encode(codes, width, out);
        return Coder::Raw;
    }
    let coder = match coding {
        ExponentCoding::Raw => Coder::Raw,
        ExponentCoding::Gecko => Coder::Gecko,
        ExponentCoding::Entropy => Coder::Entropy,
        ExponentCoding::Huffman => Coder::Huffman,
        ExponentCoding::Auto => return encode_auto(codes, width, out),
    };
    coder.encode(codes, width, out);
    coder
}

fn encode_auto(codes: &[u16], width: u32, out: &mut Vec<u8>) -> Coder {
    let raw_len = (codes.len() as u64 * u64::from(width)).div_ceil(8);
    let gecko_len = gecko::encoded_len(codes, width, gecko::Params::DEFAULT) as u64;
    let (simple, simple_len) = if gecko_len < raw_len {
        (Coder::Gecko, gecko_len)
    } else {
        (Coder::Raw, raw_len)
    };
    let hist = entropy::histogram(codes, width);
    if let Some(table) = entropy::Table::from_histogram(&hist) {
        if (table.min_stream_len(&hist) as u64) < simple_len {
            let start = out.len();
            entropy::encode_with_table(codes, width, &table, out);
            if ((out.len() - start) as u64) < simple_len {
                return Coder::Entropy;
            }
            out.truncate(start);
        }
    }
    simple.encode(codes, width, out);
    simple
}

#[cfg(test)]
mod tests;
