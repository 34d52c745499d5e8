//! Schrödinger's FP codec core: float container reduction, bit-packed frames and exponent coding.
//!
//! Pure Rust with no Python in it; `sfp-python` binds it. Arrays travel as little-endian element bytes
//! in C order, so the core never depends on alignment or on the caller's element type.

pub mod bitpack;
pub mod chunk;
pub mod codec;
pub mod dtype;
pub mod error;
pub mod exponent;
pub mod format;
pub mod frame;
mod kernel;
pub mod mantissa;
pub mod memory;
mod reduce;
mod rng;
pub mod simd;
mod streams;
/// Harness logic for fuzz targets, corpus replay, golden frames and corruption tests.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod threads;

pub use chunk::ChunkLayout;
pub use codec::{
    decode_into, encode, encode_parts, inspect, quantize, quantize_in_place, EncodedFrame,
    FrameInfo, Options,
};
pub use dtype::DType;
pub use error::{Error, Result};
pub use exponent::ExponentCoding;
pub use format::{Format, Rounding, Target, Underflow};
pub use frame::Header;
