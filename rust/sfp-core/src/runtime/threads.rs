//! Thread pools by size, built once and reused, so `threads=n` costs nothing after the first call.

use std::sync::{Arc, Mutex, OnceLock};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// The most threads a caller may ask for.
pub const MAX_THREADS: usize = 1024;

/// Pools built so far, by thread count.
type Pools = Mutex<Vec<(usize, Arc<ThreadPool>)>>;

static POOLS: OnceLock<Pools> = OnceLock::new();

/// Runs `work` on `threads` threads (`None`: rayon's global pool, one per core).
///
/// # Errors
/// [`Error::InvalidArgument`] when `threads` is 0 or above [`MAX_THREADS`], or the pool cannot start.
pub fn run<R: Send>(threads: Option<usize>, work: impl FnOnce() -> R + Send) -> Result<R> {
    let Some(n) = threads else { return Ok(work()) };
    if n == 0 || n > MAX_THREADS {
        return Err(Error::invalid(format!(
            "threads={n} is outside 1..={MAX_THREADS}"
        )));
    }
    Ok(pool(n)?.install(work))
}

fn pool(n: usize) -> Result<Arc<ThreadPool>> {
    let pools = POOLS.get_or_init(|| Mutex::new(Vec::new()));
    let mut pools = pools
        .lock()
        .map_err(|_| Error::invalid("thread pool registry was poisoned"))?;
    if let Some((_, p)) = pools.iter().find(|(size, _)| *size == n) {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("sfp-{i}"))
            .build()
            .map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))?,
    );
    pools.push((n, Arc::clone(&p)));
    Ok(p)
}
