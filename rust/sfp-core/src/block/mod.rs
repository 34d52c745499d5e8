//! Block-scaled formats: OCP Microscaling (MX v1.0: blocks of 32 along the last axis sharing one
//! E8M0 power-of-two scale) and NVFP4 (blocks of 16 E2M1 elements with an E4M3 scale, under one
//! float32 scale per tensor).
//!
//! The scale of an MX block is the spec's: `2^(floor(log2(amax)) - emax_elem)`, clamped to E8M0's
//! range, with `emax_elem` the exponent of the element type's largest normal; the elements are the
//! block's values divided by it, rounded to nearest-even and clamped to the largest normal. A block
//! holding a NaN or an infinity gets the NaN scale (0xFF), which makes every value of the block NaN;
//! an all-zero block gets the smallest scale, 2^-127. NVFP4 follows NVIDIA's recipe: the tensor
//! scale is `amax / (6 * 448)` (float32; 1 when `amax` is 0), each block's scale is
//! `amax_block / (6 * tensor_scale)` rounded to E4M3 (saturating), and the elements are the values
//! divided by `scale * tensor_scale`, rounded to E2M1 (saturating).

mod quantize;

pub use quantize::Blocks;
pub(crate) use quantize::{dequantize, quantize};

use crate::dtype::DType;

/// A block-scaled format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockFormat {
    /// MXFP8 with E4M3 elements.
    Mxfp8E4m3,
    /// MXFP8 with E5M2 elements.
    Mxfp8E5m2,
    /// MXFP6 with E2M3 elements.
    Mxfp6E2m3,
    /// MXFP6 with E3M2 elements.
    Mxfp6E3m2,
    /// MXFP4 (E2M1 elements).
    Mxfp4,
    /// NVFP4: E2M1 elements, blocks of 16, E4M3 block scales and a float32 tensor scale.
    Nvfp4,
}

impl BlockFormat {
    /// Every block format, in frame-id order.
    pub const ALL: [BlockFormat; 6] = [
        Self::Mxfp8E4m3,
        Self::Mxfp8E5m2,
        Self::Mxfp6E2m3,
        Self::Mxfp6E3m2,
        Self::Mxfp4,
        Self::Nvfp4,
    ];

    /// The name in the Python API.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mxfp8E4m3 => "mxfp8_e4m3",
            Self::Mxfp8E5m2 => "mxfp8_e5m2",
            Self::Mxfp6E2m3 => "mxfp6_e2m3",
            Self::Mxfp6E3m2 => "mxfp6_e3m2",
            Self::Mxfp4 => "mxfp4",
            Self::Nvfp4 => "nvfp4",
        }
    }

    /// The id in container frames (1..=6).
    pub fn id(self) -> u8 {
        match self {
            Self::Mxfp8E4m3 => 1,
            Self::Mxfp8E5m2 => 2,
            Self::Mxfp6E2m3 => 3,
            Self::Mxfp6E3m2 => 4,
            Self::Mxfp4 => 5,
            Self::Nvfp4 => 6,
        }
    }

    /// The element type.
    pub fn element(self) -> DType {
        match self {
            Self::Mxfp8E4m3 => DType::F8E4M3,
            Self::Mxfp8E5m2 => DType::F8E5M2,
            Self::Mxfp6E2m3 => DType::F6E2M3,
            Self::Mxfp6E3m2 => DType::F6E3M2,
            Self::Mxfp4 | Self::Nvfp4 => DType::F4E2M1,
        }
    }

    /// The type of the block scales.
    pub fn scale(self) -> DType {
        match self {
            Self::Nvfp4 => DType::F8E4M3,
            _ => DType::F8E8M0,
        }
    }

    /// Values per block along the last axis (the last block of a row may hold fewer).
    pub fn block(self) -> usize {
        match self {
            Self::Nvfp4 => 16,
            _ => 32,
        }
    }

    /// Whether a float32 scale per tensor multiplies the block scales.
    pub fn has_tensor_scale(self) -> bool {
        self == Self::Nvfp4
    }

    /// Bits per stored value before coding: the element, plus the block scale's share.
    pub fn bits_per_value(self) -> f64 {
        f64::from(self.element().bits()) + 8.0 / self.block() as f64
    }
}

/// The unbiased exponent of the largest normal value of an element type.
pub(crate) fn emax(element: DType) -> i32 {
    let top_field = match element.specials() {
        crate::dtype::Specials::Ieee => (1i32 << element.exp_bits()) - 2,
        _ => (1i32 << element.exp_bits()) - 1,
    };
    top_field - element.bias()
}

/// The shape of the scale array of values of `shape`: the last axis counted in blocks (a 0-d array
/// is one block of one value).
pub fn scale_shape(shape: &[u64], block: usize) -> Vec<u64> {
    match shape.split_last() {
        None => vec![1],
        Some((&last, rest)) => {
            let mut out = rest.to_vec();
            out.push(last.div_ceil(block as u64));
            out
        }
    }
}
