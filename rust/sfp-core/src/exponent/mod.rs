//! Coders for the exponent stream of a chunk.
//!
//! Every coder takes one code per value (each below `2^width`, `width` in 1..=11; code 0 is the zero code)
//! and must round-trip every sequence exactly. A chunk records which coder wrote its stream, so the
//! encoder may choose per chunk.

pub mod raw;

use crate::error::{Error, Result};

/// What the encoder is asked to use for the exponent stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ExponentCoding {
    /// Flat bit-packing at the code width.
    Raw,
    /// Whichever coder gives the smallest stream, chosen per chunk.
    #[default]
    Auto,
}

impl ExponentCoding {
    /// Every choice, as the Python API lists them.
    pub const ALL: &'static [ExponentCoding] = &[Self::Raw, Self::Auto];

    /// Parses the name used by the Python API.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown name.
    pub fn from_name(name: &str) -> Result<Self> {
        match name {
            "raw" => Ok(Self::Raw),
            "auto" => Ok(Self::Auto),
            other => Err(Error::invalid(format!(
                "exponent_coding={other:?} is not one of \"raw\", \"auto\""
            ))),
        }
    }

    /// The name used by the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Auto => "auto",
        }
    }
}

/// The coder that wrote one chunk's exponent stream; its id is stored in the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coder {
    /// See [`raw`].
    Raw,
}

impl Coder {
    /// The id stored in the frame.
    pub fn id(self) -> u8 {
        match self {
            Self::Raw => 0,
        }
    }

    /// The coder with this frame id.
    ///
    /// # Errors
    /// [`Error::Decode`] for an unknown id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            0 => Ok(Self::Raw),
            other => Err(Error::decode(format!("unknown exponent coder id {other}"))),
        }
    }

    /// The coder's name, as `inspect` reports it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Raw => "raw",
        }
    }

    /// Appends the coded stream of `codes` to `out`.
    pub fn encode(self, codes: &[u16], width: u32, out: &mut Vec<u8>) {
        match self {
            Self::Raw => raw::encode(codes, width, out),
        }
    }

    /// Decodes exactly `out.len()` codes from the whole stream `bytes`.
    ///
    /// # Errors
    /// [`Error::Decode`] when the stream is malformed or does not hold exactly `out.len()` codes.
    pub fn decode(self, bytes: &[u8], width: u32, out: &mut [u16]) -> Result<()> {
        match self {
            Self::Raw => raw::decode(bytes, width, out),
        }
    }
}

/// Codes `codes` as `coding` asks, appending the stream to `out`; returns the coder used.
pub fn encode(coding: ExponentCoding, codes: &[u16], width: u32, out: &mut Vec<u8>) -> Coder {
    let coder = match coding {
        ExponentCoding::Raw | ExponentCoding::Auto => Coder::Raw,
    };
    coder.encode(codes, width, out);
    coder
}
