//! What the pipeline runs on: reused memory, the thread pools, and the counter-based random bits of
//! stochastic rounding.

pub mod memory;
pub(crate) mod rng;
pub(crate) mod threads;
