//! Thread pools for `threads=n`, built on first use and kept in a small most-recently-used set.
//!
//! A pool per distinct count, kept forever, lets a caller that walks through many counts accumulate
//! hundreds of idle threads (and then fail to start more). At most [`KEPT_POOLS`] pools are kept:
//! the least recently used one is dropped when another is built, and rayon ends its threads once the
//! work already running on it is done. A pool that fails to start leaves no thread behind (rayon
//! stops the ones it had started) and nothing in the set.

use std::sync::{Arc, Mutex};

use rayon::{ThreadPool, ThreadPoolBuilder};

use crate::error::{Error, Result};

/// The most threads a caller may ask for.
pub const MAX_THREADS: usize = 256;

/// Pools kept for reuse; callers alternate between a few counts (1, the core count, a test's 2).
const KEPT_POOLS: usize = 4;

/// Kept pools by thread count, the most recently used last.
static POOLS: Mutex<Vec<(usize, Arc<ThreadPool>)>> = Mutex::new(Vec::new());

/// Checks a requested thread count.
///
/// # Errors
/// [`Error::InvalidArgument`] when `threads` is 0 or above [`MAX_THREADS`].
pub fn check(threads: Option<usize>) -> Result<()> {
    match threads {
        Some(n) if n == 0 || n > MAX_THREADS => Err(Error::invalid(format!(
            "threads={n} is outside 1..={MAX_THREADS}"
        ))),
        _ => Ok(()),
    }
}

/// Runs `work` on `threads` threads (`None`: rayon's global pool, one per core).
///
/// # Errors
/// [`Error::InvalidArgument`] when `threads` is out of range (see [`check`]) or the pool cannot start.
pub fn run<R: Send>(threads: Option<usize>, work: impl FnOnce() -> R + Send) -> Result<R> {
    run_tasks(threads, usize::MAX, work)
}

/// [`run`] for `work` whose parallel iterators have at most `tasks` items each.
///
/// One thread and at most one task run on the calling thread: a parallel iterator of one item is
/// never split, so it runs where it is called, and handing the work to the pool's thread and
/// waiting for it would only add two thread switches (tens of microseconds on a busy machine, more
/// than the encoding of an array of a few thousand values).
///
/// # Errors
/// As [`run`].
pub fn run_tasks<R: Send>(
    threads: Option<usize>,
    tasks: usize,
    work: impl FnOnce() -> R + Send,
) -> Result<R> {
    check(threads)?;
    match threads {
        None => Ok(work()),
        Some(1) if tasks <= 1 => Ok(work()),
        Some(n) => Ok(pool(n)?.install(work)),
    }
}

fn pool(n: usize) -> Result<Arc<ThreadPool>> {
    let mut pools = POOLS
        .lock()
        .map_err(|_| Error::invalid("thread pool registry was poisoned"))?;
    if let Some(i) = pools.iter().position(|(size, _)| *size == n) {
        let entry = pools.remove(i);
        let p = Arc::clone(&entry.1);
        pools.push(entry);
        return Ok(p);
    }
    let p = Arc::new(
        ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("sfp-{i}"))
            .build()
            .map_err(|e| Error::invalid(format!("cannot start {n} threads: {e}")))?,
    );
    if pools.len() >= KEPT_POOLS {
        pools.remove(0);
    }
    pools.push((n, Arc::clone(&p)));
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_out_of_range_are_refused_with_the_limit() {
        assert_eq!(
            run(Some(0), || ()).unwrap_err().to_string(),
            "threads=0 is outside 1..=256"
        );
        assert!(run(Some(MAX_THREADS + 1), || ()).is_err());
        assert_eq!(run(Some(3), rayon::current_num_threads).ok(), Some(3));
    }

    #[test]
    fn one_thread_and_one_task_stay_on_the_calling_thread() {
        use rayon::prelude::*;
        let caller = std::thread::current().id();
        let on_caller = run_tasks(Some(1), 1, || {
            // A one-item parallel iterator is not split: it runs where it is called.
            (0..1)
                .into_par_iter()
                .map(|_| std::thread::current().id())
                .collect::<Vec<_>>()
        });
        assert_eq!(on_caller.ok(), Some(vec![caller]));
        let pooled = run_tasks(Some(1), 2, || {
            (std::thread::current().id(), rayon::current_num_threads())
        });
        let (worker, count) = pooled.unwrap();
        assert_ne!(worker, caller);
        assert_eq!(count, 1);
        assert!(run_tasks(Some(0), 1, || ()).is_err());
    }

    #[test]
    fn at_most_the_kept_pools_stay_alive() {
        let mut weak = Vec::new();
        for n in 100..110 {
            let p = pool(n).ok();
            weak.push(p.as_ref().map(Arc::downgrade));
        }
        let alive = weak
            .iter()
            .flatten()
            .filter(|w| w.upgrade().is_some())
            .count();
        assert!(alive <= KEPT_POOLS, "{alive} pools alive");
    }
}
