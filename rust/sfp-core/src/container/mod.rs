//! Named containers: a real element type to cast to ([`Named`]), or a block-scaled format
//! ([`BlockFormat`]), as opposed to the window formats that keep chosen exponent and mantissa widths.

use crate::block::BlockFormat;
use crate::cast::Overflow;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// A cast to a real type: `quantize` equals casting to it and back (ml_dtypes), and a frame holds
/// the cast values losslessly in that type's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Named {
    /// The type the values are cast to and stored in.
    pub dtype: DType,
    /// What the cast does beyond the type's range.
    pub overflow: Overflow,
}

/// The types a named container can be.
pub const NAMED_TYPES: [DType; 8] = [
    DType::F8E4M3,
    DType::F8E5M2,
    DType::F6E2M3,
    DType::F6E3M2,
    DType::F4E2M1,
    DType::F16,
    DType::BF16,
    DType::F32,
];

/// Suffix of the saturating variant of a named container.
const SATFINITE: &str = "_satfinite";

/// What a [`crate::Format`] stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Container {
    /// The format's own exponent and mantissa widths (a window of exponents).
    #[default]
    Window,
    /// A real type.
    Named(Named),
    /// A block-scaled format.
    Block(BlockFormat),
}

impl Container {
    /// Parses a container name: a type name ("float8_e4m3fn"), the same with "_satfinite", or a
    /// block format ("mxfp8_e4m3", "nvfp4").
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for any other name.
    pub fn from_name(name: &str) -> Result<Self> {
        if let Some(block) = BlockFormat::ALL.iter().find(|b| b.name() == name) {
            return Ok(Self::Block(*block));
        }
        let (base, overflow) = match name.strip_suffix(SATFINITE) {
            Some(base) => (base, Overflow::Saturate),
            None => (name, Overflow::AsType),
        };
        NAMED_TYPES
            .iter()
            .find(|d| d.name() == base)
            .map(|&dtype| Self::Named(Named { dtype, overflow }))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "container={name:?} is not one of {}",
                    Self::names().join(", ")
                ))
            })
    }

    /// Every container name, named types first.
    pub fn names() -> Vec<String> {
        let mut out: Vec<String> = NAMED_TYPES.iter().map(|d| d.name().to_string()).collect();
        out.extend(
            NAMED_TYPES
                .iter()
                .map(|d| format!("{}{SATFINITE}", d.name())),
        );
        out.extend(BlockFormat::ALL.iter().map(|b| b.name().to_string()));
        out
    }

    /// The name (`None` for a window format).
    pub fn name(self) -> Option<String> {
        match self {
            Self::Window => None,
            Self::Named(n) => Some(match n.overflow {
                Overflow::AsType => n.dtype.name().to_string(),
                Overflow::Saturate => format!("{}{SATFINITE}", n.dtype.name()),
            }),
            Self::Block(b) => Some(b.name().to_string()),
        }
    }

    /// The id stored in container frames (0 for a window format, which has none).
    pub fn id(self) -> u8 {
        match self {
            Self::Window => 0,
            Self::Named(n) => {
                n.dtype.id()
                    | if n.overflow == Overflow::Saturate {
                        0x40
                    } else {
                        0
                    }
            }
            Self::Block(b) => 0x80 | b.id(),
        }
    }

    /// The container with this frame id.
    ///
    /// # Errors
    /// [`Error::Decode`] for an unknown id.
    pub fn from_id(id: u8) -> Result<Self> {
        let unknown = || Error::decode(format!("unknown container id {id} in frame header"));
        if id & 0x80 != 0 {
            return BlockFormat::ALL
                .iter()
                .find(|b| b.id() == id & 0x7F)
                .map(|&b| Self::Block(b))
                .ok_or_else(unknown);
        }
        let overflow = if id & 0x40 != 0 {
            Overflow::Saturate
        } else {
            Overflow::AsType
        };
        NAMED_TYPES
            .iter()
            .find(|d| d.id() == id & 0x3F)
            .map(|&dtype| Self::Named(Named { dtype, overflow }))
            .ok_or_else(unknown)
    }
}

pub mod ops;
