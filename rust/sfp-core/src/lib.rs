//! Schrödinger's FP codec core: float container reduction, bit-packed frames and exponent coding.
//!
//! Pure Rust with no Python in it; `sfp-python` binds it.

pub mod bitpack;
pub mod error;
pub mod exponent;

pub use error::{Error, Result};
