//! The source element types and their IEEE-style field layouts.

use crate::error::{Error, Result};

/// A floating-point element type the codec reads and writes.
///
/// The narrow types (8 bits or fewer, from ml_dtypes) are stored one byte per element; the
/// pipeline computes them in 16-bit words with the same field layout (their sign at bit
/// `exp_bits + man_bits`), so every coder sees them as it sees float16.
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
    /// float8_e4m3fn: no infinities, NaN only at S.1111.111, largest finite 448.
    F8E4M3,
    /// float8_e5m2: IEEE-style (infinities and NaNs at exponent 31), largest finite 57344.
    F8E5M2,
    /// float8_e8m0fnu: an unsigned power of two 2^(b-127), NaN at 0xFF (the MX block scale).
    F8E8M0,
    /// float6_e2m3fn (low 6 bits of a byte): no infinities or NaNs, largest finite 7.5.
    F6E2M3,
    /// float6_e3m2fn (low 6 bits of a byte): no infinities or NaNs, largest finite 28.
    F6E3M2,
    /// float4_e2m1fn (low 4 bits of a byte): no infinities or NaNs, largest finite 6.
    F4E2M1,
}

/// How a type encodes values beyond its finite range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Specials {
    /// The all-ones exponent holds infinity (zero mantissa) and NaNs.
    Ieee,
    /// Only the all-ones magnitude is NaN; no infinities.
    NanOnly,
    /// Every pattern is a finite number.
    None,
}

impl DType {
    /// Every supported type, in frame-id order.
    pub const ALL: [DType; 10] = [
        DType::F32,
        DType::F64,
        DType::F16,
        DType::BF16,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::F8E8M0,
        DType::F6E2M3,
        DType::F6E3M2,
        DType::F4E2M1,
    ];

    /// The types whose exponent and mantissa a window format can reduce.
    pub const WIDE: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];

    /// Parses the numpy-style name ("float32", "bfloat16", "float8_e4m3fn", ...).
    ///
    /// # Errors
    /// [`Error::UnsupportedDtype`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|d| d.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|d| d.name()).collect();
                Error::UnsupportedDtype(format!(
                    "dtype {name:?} is not supported: use one of {}",
                    names.join(", ")
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
            Self::F8E4M3 => "float8_e4m3fn",
            Self::F8E5M2 => "float8_e5m2",
            Self::F8E8M0 => "float8_e8m0fnu",
            Self::F6E2M3 => "float6_e2m3fn",
            Self::F6E3M2 => "float6_e3m2fn",
            Self::F4E2M1 => "float4_e2m1fn",
        }
    }

    /// The id stored in frames.
    pub fn id(self) -> u8 {
        match self {
            Self::F32 => 1,
            Self::F64 => 2,
            Self::F16 => 3,
            Self::BF16 => 4,
            Self::F8E4M3 => 5,
            Self::F8E5M2 => 6,
            Self::F8E8M0 => 7,
            Self::F6E2M3 => 8,
            Self::F6E3M2 => 9,
            Self::F4E2M1 => 10,
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
            Self::F32 | Self::BF16 | Self::F8E8M0 => 8,
            Self::F64 => 11,
            Self::F16 | Self::F8E5M2 => 5,
            Self::F8E4M3 => 4,
            Self::F6E3M2 => 3,
            Self::F6E2M3 | Self::F4E2M1 => 2,
        }
    }

    /// Width of the mantissa (fraction) field in bits.
    pub fn man_bits(self) -> u32 {
        match self {
            Self::F32 => 23,
            Self::F64 => 52,
            Self::F16 => 10,
            Self::BF16 => 7,
            Self::F8E4M3 | Self::F6E2M3 => 3,
            Self::F8E5M2 | Self::F6E3M2 => 2,
            Self::F8E8M0 => 0,
            Self::F4E2M1 => 1,
        }
    }

    /// Whether the type has a sign bit (all but float8_e8m0fnu).
    pub fn has_sign(self) -> bool {
        self != Self::F8E8M0
    }

    /// Bits an element occupies: sign, exponent and mantissa.
    pub fn bits(self) -> u32 {
        u32::from(self.has_sign()) + self.exp_bits() + self.man_bits()
    }

    /// How the type encodes NaN and infinity.
    pub fn specials(self) -> Specials {
        match self {
            Self::F32 | Self::F64 | Self::F16 | Self::BF16 | Self::F8E5M2 => Specials::Ieee,
            Self::F8E4M3 | Self::F8E8M0 => Specials::NanOnly,
            Self::F6E2M3 | Self::F6E3M2 | Self::F4E2M1 => Specials::None,
        }
    }

    /// Bytes per element in an array.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
            Self::F16 | Self::BF16 => 2,
            _ => 1,
        }
    }

    /// Bytes of the word the pipeline computes an element in (16 bits for the narrow types).
    pub fn word_size(self) -> usize {
        self.size().max(2)
    }

    /// True for the types stored in one byte and computed in a wider word.
    pub fn is_narrow(self) -> bool {
        self.size() == 1
    }

    /// The exponent bias, `2^(e-1) - 1` for every type (OCP MX: E2M1 and E2M3 have bias 1,
    /// E8M0 127).
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
