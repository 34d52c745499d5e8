//! The target container: how many exponent and mantissa bits to keep, and how to round.

use crate::coding::exponent::ExponentCoding;
use crate::container::Container;
use crate::dtype::DType;
use crate::error::{Error, Result};

/// How the mantissa is cut to `man_bits`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Rounding {
    /// Toward zero: the dropped bits are cleared.
    Truncate,
    /// To nearest, ties to even (IEEE's default); a carry into the exponent is correct rounding.
    #[default]
    Nearest,
    /// Up with probability equal to the dropped fraction (unbiased), from counter-based random bits.
    Stochastic,
}

/// What happens to values below the exponent window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Underflow {
    /// To zero of the same sign.
    #[default]
    Flush,
    /// To zero or the smallest window value, with the probability that keeps the mean (unbiased).
    Stochastic,
}

macro_rules! named_enum {
    ($ty:ident, $what:literal, $(($variant:ident, $name:literal, $id:literal)),+) => {
        impl $ty {
            /// Every value, in frame-id order.
            pub const ALL: &'static [$ty] = &[$(Self::$variant),+];

            /// Parses the name used by the Python API.
            ///
            /// # Errors
            /// [`Error::InvalidArgument`] for an unknown name.
            pub fn from_name(name: &str) -> Result<Self> {
                match name {
                    $($name => Ok(Self::$variant),)+
                    other => Err(Error::invalid(format!(
                        concat!($what, "={:?} is not one of ", $("\"", $name, "\" "),+), other
                    ).trim_end().to_string())),
                }
            }

            /// The name used by the Python API.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name,)+ }
            }

            /// The id stored in frames.
            pub fn id(self) -> u8 {
                match self { $(Self::$variant => $id,)+ }
            }

            /// The value with this frame id.
            ///
            /// # Errors
            /// [`Error::Decode`] for an unknown id.
            pub fn from_id(id: u8) -> Result<Self> {
                match id {
                    $($id => Ok(Self::$variant),)+
                    other => Err(Error::decode(format!(concat!("unknown ", $what, " id {}"), other))),
                }
            }
        }
    };
}

named_enum!(
    Rounding,
    "rounding",
    (Truncate, "truncate", 0),
    (Nearest, "nearest", 1),
    (Stochastic, "stochastic", 2)
);
named_enum!(
    Underflow,
    "underflow",
    (Flush, "flush", 0),
    (Stochastic, "stochastic", 1)
);

/// How `exponent_coding="auto"` weighs a chunk's size against the time to decode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, PartialOrd, Ord)]
pub enum CodingLevel {
    /// One Huffman-coded symbol per value (the exponent code with the sign and top mantissa bits
    /// when they pay); the remaining mantissa bits packed flat.
    Fast,
    /// [`CodingLevel::Fast`], plus Huffman-coded mantissa byte lanes where the bytes they save are
    /// worth the time to decode them.
    #[default]
    Default,
    /// The smallest frame: rANS, Gecko and coded mantissa lanes, whatever they cost to decode.
    Max,
}

impl CodingLevel {
    /// The level's number in the Python API (1, 2, 3).
    pub fn number(self) -> u32 {
        match self {
            Self::Fast => 1,
            Self::Default => 2,
            Self::Max => 3,
        }
    }

    /// The level with this number.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a number outside 1..=3.
    pub fn from_number(n: u32) -> Result<Self> {
        match n {
            1 => Ok(Self::Fast),
            2 => Ok(Self::Default),
            3 => Ok(Self::Max),
            other => Err(Error::invalid(format!("level={other} is outside 1..=3"))),
        }
    }
}

/// A requested container, independent of the source type. `None` keeps the source's field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Format {
    /// Exponent bits to keep (1..=source width); `None` keeps the source exponent.
    pub exp_bits: Option<u32>,
    /// Mantissa bits to keep (0..=source width); `None` keeps the source mantissa.
    pub man_bits: Option<u32>,
    /// Mantissa rounding mode.
    pub rounding: Rounding,
    /// What happens below the exponent window.
    pub underflow: Underflow,
    /// Unbiased exponent of the largest binade in the window; `None` = the array's largest finite
    /// exponent after mantissa rounding.
    pub window_top: Option<i32>,
    /// Key of the counter-based random bits of stochastic modes.
    pub seed: u64,
    /// Exponent stream coder.
    pub exponent_coding: ExponentCoding,
    /// How `Auto` trades size for decoding speed (the encoder's choice; not stored in frames).
    pub level: CodingLevel,
    /// A named or block-scaled container instead of the widths above.
    pub container: Container,
}

/// A [`Format`] checked against a source type: concrete widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The source type.
    pub dtype: DType,
    /// Exponent bits kept (equal to the source's: raw exponent field).
    pub exp_bits: u32,
    /// Mantissa bits kept.
    pub man_bits: u32,
    /// The format it came from.
    pub format: Format,
}

impl Format {
    /// The format that keeps everything (lossless).
    pub const LOSSLESS: Format = Format {
        exp_bits: None,
        man_bits: None,
        rounding: Rounding::Nearest,
        underflow: Underflow::Flush,
        window_top: None,
        seed: 0,
        exponent_coding: ExponentCoding::Auto,
        level: CodingLevel::Default,
        container: Container::Window,
    };

    /// Checks the format against `dtype` and fixes the widths.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when a width is out of range for `dtype`, or `window_top` is given
    /// without an exponent reduction or lies outside the range the window can take.
    pub fn resolve(&self, dtype: DType) -> Result<Target> {
        let (src_e, src_m) = (dtype.exp_bits(), dtype.man_bits());
        let exp_bits = self.exp_bits.unwrap_or(src_e);
        let man_bits = self.man_bits.unwrap_or(src_m);
        let name = dtype.name();
        if let Some(container) = self.container.name() {
            self.check_container(&container, dtype)?;
        } else if dtype.is_narrow() && (exp_bits, man_bits) != (src_e, src_m) {
            return Err(Error::invalid(format!(
                "{name} arrays are stored as they are: exp_bits and man_bits reduce float32, \
                 float64, float16 or bfloat16"
            )));
        }
        if exp_bits == 0 {
            return Err(Error::invalid(
                "exp_bits=0 is below 1: a value needs at least one exponent bit",
            ));
        }
        if exp_bits > src_e {
            return Err(Error::invalid(format!(
                "exp_bits={exp_bits} exceeds {name}'s {src_e}"
            )));
        }
        if man_bits > src_m {
            return Err(Error::invalid(format!(
                "man_bits={man_bits} exceeds {name}'s {src_m}"
            )));
        }
        if let Some(top) = self.window_top {
            if exp_bits == src_e {
                return Err(Error::invalid(format!(
                    "window_top={top} needs exp_bits below {name}'s {src_e}"
                )));
            }
            let (lo, hi) = window_top_range(dtype, exp_bits);
            if top < lo || top > hi {
                return Err(Error::invalid(format!(
                    "window_top={top} is outside {lo}..={hi} for exp_bits={exp_bits} on {name}"
                )));
            }
        }
        Ok(Target {
            dtype,
            exp_bits,
            man_bits,
            format: *self,
        })
    }
}

impl Format {
    /// A named or block-scaled container fixes the widths and the rounding, and needs a wide source.
    fn check_container(&self, container: &str, dtype: DType) -> Result<()> {
        if !DType::WIDE.contains(&dtype) {
            return Err(Error::UnsupportedDtype(format!(
                "container={container:?} stores float32, float64, float16 or bfloat16 arrays, \
                 not {}",
                dtype.name()
            )));
        }
        let fixed = [
            ("exp_bits", self.exp_bits.is_some()),
            ("man_bits", self.man_bits.is_some()),
            ("window_top", self.window_top.is_some()),
            ("rounding", self.rounding != Rounding::Nearest),
            ("underflow", self.underflow != Underflow::Flush),
        ];
        if let Some((field, _)) = fixed.iter().find(|(_, set)| *set) {
            return Err(Error::invalid(format!(
                "container={container:?} fixes the widths and rounds to nearest even: \
                 {field} cannot be set with it"
            )));
        }
        Ok(())
    }
}

/// The unbiased window tops possible for `exp_bits` on `dtype`: the window's `2^e - 1` exponents must
/// lie within the source's normal exponents.
pub fn window_top_range(dtype: DType, exp_bits: u32) -> (i32, i32) {
    let bias = dtype.bias();
    let max_field = (1i32 << dtype.exp_bits()) - 2;
    let min_top_field = (1i32 << exp_bits) - 1;
    (min_top_field - bias, max_field - bias)
}

impl Target {
    /// True when nothing is reduced.
    pub fn is_lossless(&self) -> bool {
        self.exp_bits == self.dtype.exp_bits()
            && self.man_bits == self.dtype.man_bits()
            && self.format.container == Container::Window
    }

    /// True when the exponent goes through a window (fewer bits than the source).
    pub fn has_window(&self) -> bool {
        self.exp_bits < self.dtype.exp_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_value() {
        let f = Format {
            man_bits: Some(31),
            ..Format::LOSSLESS
        };
        assert_eq!(
            f.resolve(DType::F32).unwrap_err().to_string(),
            "man_bits=31 exceeds float32's 23"
        );
        let f = Format {
            exp_bits: Some(9),
            ..Format::LOSSLESS
        };
        assert_eq!(
            f.resolve(DType::F32).unwrap_err().to_string(),
            "exp_bits=9 exceeds float32's 8"
        );
        let f = Format {
            exp_bits: Some(4),
            window_top: Some(1000),
            ..Format::LOSSLESS
        };
        let msg = f.resolve(DType::F32).unwrap_err().to_string();
        assert!(
            msg.starts_with("window_top=1000 is outside -112..=127"),
            "{msg}"
        );
        assert!(Rounding::from_name("up")
            .unwrap_err()
            .to_string()
            .contains("\"truncate\""));
    }

    #[test]
    fn widths_default_to_the_source() {
        let t = Format::LOSSLESS.resolve(DType::BF16).unwrap();
        assert_eq!((t.exp_bits, t.man_bits), (8, 7));
        assert!(t.is_lossless());
        let t = Format {
            man_bits: Some(2),
            ..Format::LOSSLESS
        }
        .resolve(DType::F64)
        .unwrap();
        assert!(!t.is_lossless() && !t.has_window());
    }
}
