//! Schrödinger's FP codec core: float container reduction, bit-packed frames and exponent coding.
//!
//! Pure Rust with no Python in it; `sfp-python` binds it. Arrays travel as little-endian element bytes
//! in C order, so the core never depends on alignment or on the caller's element type.
//!
//! The tree follows the data: the public operations ([`codec`]) run the typed pipeline
//! (`pipeline`: window search, chunks encoded in parallel, frame assembly); a frame ([`frame`]) is a
//! header and chunks; a chunk (`chunk`) splits its values into streams and chooses their coders
//! (`coding`: bit-packing, the exponent and mantissa coders); `kernel` holds the hot loops that
//! [`simd`] dispatches per CPU; `runtime` holds memory, threads and the random bits of stochastic
//! rounding.

pub mod block;
pub mod cast;
mod chunk;
pub mod codec;
mod coding;
pub mod container;
pub mod dtype;
pub mod error;
pub mod format;
pub mod frame;
mod kernel;
mod narrow;
mod pipeline;
mod reduce;
mod runtime;
pub mod simd;
/// Harness logic for fuzz targets, corpus replay, golden frames and corruption tests.
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use block::{BlockFormat, Blocks};
pub use chunk::planes::{Planes, PlanesBytes};
pub use chunk::ChunkLayout;
pub use codec::{
    decode_into, decode_with, encode, encode_with, inspect, quantize, quantize_in_place,
    quantize_in_place_shaped, quantize_shaped, FrameBuffer, FrameInfo, Options,
};
pub use coding::exponent::{Coder, ExponentCoding};
pub use coding::mantissa::Plan as MantissaPlan;
pub use container::ops::{decode_blocks, encode_blocks, inspect_container, ContainerInfo};
pub use container::{Container, Named};
pub use dtype::DType;
pub use error::{Error, Result};
pub use format::{CodingLevel, Format, Rounding, Target, Underflow};
pub use frame::Header;
pub use runtime::memory;
pub use runtime::threads::MAX_THREADS;

/// The coders themselves, for the fuzz targets, benches and tests that drive them directly.
#[cfg(any(test, feature = "testkit"))]
pub use coding::{bitpack, exponent, mantissa};
