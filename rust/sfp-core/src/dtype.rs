//! The source element types and their IEEE-style field layouts.

use crate::error::{Error, Result};

/// A floating-point element type the codec reads and writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// IEEE binary32.
    F32,
    /// IEEE binary64.
    F64,
    /// IEEE binary16.
    F16,
    /// bfloat16: binary32's exponent with 7 mantissa bits.
    BF16,
}

impl DType {
    /// Every supported type, in frame-id order.
    pub const ALL: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

    /// Parses the numpy-style name ("float32", "float64", "float16", "bfloat16").
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                Error::UnsupportedDtype(format!(
                    "dtype {name:?} is not supported: use float32, float64, float16 or bfloat16"
                ))
            })
    }

    /// The numpy-style name.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::F64 => "float64",
            Self::F16 => "float16",
            Self::BF16 => "bfloat16",
        }
    }

    /// The id stored in frames.
    pub fn id(self) -> u8 {
        match self {
            Self::F32 => 1,
            Self::F64 => 2,
            Self::F16 => 3,
            Self::BF16 => 4,
        }
    }

    /// The type with this frame id.
    ///
    /// # Errors
    /// [`Error::Decode`] for an unknown id.
    pub fn from_id(id: u8) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.id() == id)
            .ok_or_else(|| Error::decode(format!("unknown dtype id {id} in frame header")))
    }

    /// Width of the exponent field in bits.
    pub fn exp_bits(self) -> u32 {
        match self {
            Self::F32 | Self::BF16 => 8,
            Self::F64 => 11,
            Self::F16 => 5,
        }
    }

    /// Width of the mantissa (fraction) field in bits.
    pub fn man_bits(self) -> u32 {
        match self {
            Self::F32 => 23,
            Self::F64 => 52,
            Self::F16 => 10,
            Self::BF16 => 7,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::F16 | Self::BF16 => 2,
        }
    }

    /// The exponent bias.
    pub fn bias(self) -> i32 {
        (1 << (self.exp_bits() - 1)) - 1
    }
}

/// Reads element `i` of a little-endian element buffer as raw bits.
#[inline(always)]
pub(crate) fn load(bytes: &[u8], size: usize, i: usize) -> u64 {
    let mut word = [0u8; 8];
    word[..size].copy_from_slice(&bytes[i * size..(i + 1) * size]);
    u64::from_le_bytes(word)
}

/// Writes raw bits as element `i` of a little-endian element buffer.
#[inline(always)]
pub(crate) fn store(bytes: &mut [u8], size: usize, i: usize, bits: u64) {
    bytes[i * size..(i + 1) * size].copy_from_slice(&bits.to_le_bytes()[..size]);
}
