//! SIMD levels: which instruction set the kernels run with, chosen once per process.
//!
//! Every kernel is one scalar body over fixed-size lanes ([`crate::kernel`]); [`dispatch!`] compiles it
//! once per level inside a `#[target_feature]` wrapper and calls the one for the active level. Nothing
//! is compiled with a global `target-cpu`, so the same binary runs on baseline x86-64. Output bytes
//! never depend on the level: the parity tests and the `simd_parity` fuzz target check it.
//!
//! The level is detected once and cached; the environment variable `SFP_SIMD=scalar|avx2|avx512|neon`
//! pins it (an unavailable or unknown level is an error from every operation, not a crash), and
//! [`with_level`] overrides it for the current thread (tests, benchmarks, fuzzing).

use std::cell::Cell;
use std::fmt;
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// An instruction-set level the kernels are compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Level {
    /// The baseline of the target (SSE2 on x86-64): what the compiler does without extra features.
    Scalar,
    /// x86-64 with AVX2, BMI2 and FMA.
    Avx2,
    /// x86-64 with AVX-512 F, BW, DQ and VL.
    Avx512,
    /// aarch64 with NEON.
    Neon,
}

impl Level {
    /// Every level, in order of preference (best last).
    pub const ALL: [Level; 4] = [Level::Scalar, Level::Neon, Level::Avx2, Level::Avx512];

    /// The level as a constant a kernel can be compiled for ([`multiversion!`]'s `LEVEL`).
    pub(crate) const fn id(self) -> u8 {
        self as u8
    }

    /// The name `SFP_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
            Self::Neon => "neon",
        }
    }

    /// Parses a level name.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an unknown name.
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "SFP_SIMD={name:?} is not one of \"scalar\", \"avx2\", \"avx512\", \"neon\""
                ))
            })
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        match self {
            Self::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("bmi2")
                    && std::arch::is_x86_feature_detected!("lzcnt")
                    && std::arch::is_x86_feature_detected!("popcnt")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => {
                std::arch::is_x86_feature_detected!("avx512f")
                    && std::arch::is_x86_feature_detected!("avx512bw")
                    && std::arch::is_x86_feature_detected!("avx512dq")
                    && std::arch::is_x86_feature_detected!("avx512vl")
                    && std::arch::is_x86_feature_detected!("bmi2")
                    && std::arch::is_x86_feature_detected!("lzcnt")
                    && std::arch::is_x86_feature_detected!("popcnt")
            }
            #[cfg(target_arch = "aarch64")]
            Self::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The levels this CPU can run, worst first.
    pub fn available() -> Vec<Level> {
        Self::ALL.into_iter().filter(|l| l.is_available()).collect()
    }

    /// The best level this CPU can run.
    pub fn best() -> Level {
        Self::available().pop().unwrap_or(Level::Scalar)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The process-wide level: `SFP_SIMD` if set, else the best available; computed once.
fn process_level() -> Result<Level> {
    static LEVEL: OnceLock<std::result::Result<Level, String>> = OnceLock::new();
    LEVEL
        .get_or_init(|| match std::env::var("SFP_SIMD") {
            Ok(name) if !name.is_empty() => {
                let level = Level::from_name(&name).map_err(|e| e.to_string())?;
                if level.is_available() {
                    Ok(level)
                } else {
                    Err(format!(
                        "SFP_SIMD={name} is not available on this CPU (available: {})",
                        Level::available()
                            .iter()
                            .map(|l| l.name())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }
            }
            _ => Ok(Level::best()),
        })
        .clone()
        .map_err(Error::InvalidArgument)
}

thread_local! {
    static OVERRIDE: Cell<Option<Level>> = const { Cell::new(None) };
}

/// The level operations started on this thread use now.
///
/// # Errors
/// [`Error::InvalidArgument`] when `SFP_SIMD` names an unknown level or one this CPU lacks.
pub fn current() -> Result<Level> {
    match OVERRIDE.with(Cell::get) {
        Some(level) => Ok(level),
        None => process_level(),
    }
}

/// Runs `work` with operations started on this thread using `level` (worker threads follow it).
///
/// # Errors
/// [`Error::InvalidArgument`] when this CPU cannot run `level`.
pub fn with_level<R>(level: Level, work: impl FnOnce() -> R) -> Result<R> {
    if !level.is_available() {
        return Err(Error::invalid(format!(
            "SIMD level {level} is not available on this CPU"
        )));
    }
    let previous = OVERRIDE.with(|o| o.replace(Some(level)));
    let result = work();
    OVERRIDE.with(|o| o.set(previous));
    Ok(result)
}

/// Defines a kernel once and compiles it per level.
///
/// `multiversion! { fn name(args) -> ret { body } }` makes a module `name` whose `run::<W, M>(level,
/// args)` calls the body compiled for `level`: the body is `#[inline(always)]` and each level's
/// `#[target_feature]` wrapper inlines it, so the compiler vectorises the one scalar body for that
/// instruction set. Every kernel is generic over the element word `W` and a mode constant `M`; the
/// body also sees `LEVEL`, the [`Level::id`] it is compiled for, where a step needs an instruction
/// the vectoriser does not find by itself.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        pub(crate) mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body<W: Word, const M: u8, const LEVEL: u8>($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,bmi2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx2<W: Word, const M: u8>($($arg: $ty),*) $(-> $ret)? {
                body::<W, M, { $crate::simd::Level::Avx2.id() }>($($arg),*)
            }

            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2,bmi2,fma")]
            #[allow(clippy::too_many_arguments)]
            fn avx512<W: Word, const M: u8>($($arg: $ty),*) $(-> $ret)? {
                body::<W, M, { $crate::simd::Level::Avx512.id() }>($($arg),*)
            }

            #[cfg(target_arch = "aarch64")]
            #[target_feature(enable = "neon")]
            #[allow(clippy::too_many_arguments)]
            fn neon<W: Word, const M: u8>($($arg: $ty),*) $(-> $ret)? {
                body::<W, M, { $crate::simd::Level::Neon.id() }>($($arg),*)
            }

            /// Runs the kernel compiled for `level`.
            #[allow(clippy::too_many_arguments)]
            pub(crate) fn run<W: Word, const M: u8>(
                level: $crate::simd::Level,
                $($arg: $ty),*
            ) $(-> $ret)? {
                match level {
                    // SAFETY: a level is only active after `Level::is_available` confirmed its
                    // features on this CPU (`simd::current` and `simd::with_level` check it).
                    #[cfg(target_arch = "x86_64")]
                    $crate::simd::Level::Avx2 => unsafe { avx2::<W, M>($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "x86_64")]
                    $crate::simd::Level::Avx512 => unsafe { avx512::<W, M>($($arg),*) },
                    // SAFETY: as above.
                    #[cfg(target_arch = "aarch64")]
                    $crate::simd::Level::Neon => unsafe { neon::<W, M>($($arg),*) },
                    _ => body::<W, M, { $crate::simd::Level::Scalar.id() }>($($arg),*),
                }
            }
        }
    };
}
pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_scalar_is_always_there() {
        for l in Level::ALL {
            assert_eq!(Level::from_name(l.name()).unwrap(), l);
        }
        assert!(Level::available().contains(&Level::Scalar));
        assert!(Level::from_name("sse9")
            .unwrap_err()
            .to_string()
            .contains("\"avx512\""));
    }

    #[test]
    fn with_level_overrides_and_restores() {
        let before = current().unwrap();
        let inside = with_level(Level::Scalar, || current().unwrap()).unwrap();
        assert_eq!(inside, Level::Scalar);
        assert_eq!(current().unwrap(), before);
        for l in Level::ALL {
            assert_eq!(with_level(l, || ()).is_ok(), l.is_available());
        }
    }
}
