//! The typed pipeline behind the public operations: the window search, and frames whose chunks are
//! encoded straight into place.

pub(crate) mod flat;
pub(crate) mod window;
