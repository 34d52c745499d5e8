//! The one error type of the core; the binding maps each kind to one Python exception.

use std::fmt;

/// Everything that can go wrong in the core.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An argument is out of range or inconsistent (Python `ValueError`).
    InvalidArgument(String),
    /// The element type is not one the codec handles (Python `TypeError`).
    UnsupportedDtype(String),
    /// Encoded data is corrupt, truncated or not ours (Python `schrodinger_fp.DecodeError`).
    Decode(String),
}

impl Error {
    /// An [`Error::InvalidArgument`] with this message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Self::InvalidArgument(msg.into())
    }

    /// An [`Error::Decode`] with this message.
    pub fn decode(msg: impl Into<String>) -> Self {
        Self::Decode(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidArgument(m) | Self::UnsupportedDtype(m) | Self::Decode(m) => {
                f.write_str(m)
            }
        }
    }
}

impl std::error::Error for Error {}

/// The core's result type.
pub type Result<T> = std::result::Result<T, Error>;
