//! The stream coders: bit-packing, the exponent coders and the mantissa coder.

pub mod bitpack;
pub mod exponent;
pub mod mantissa;
pub(crate) mod varint;
