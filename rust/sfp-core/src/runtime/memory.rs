//! Fresh large buffers backed by transparent huge pages where the kernel allows it.
//!
//! On Linux with transparent huge pages in `madvise` mode (the common default), the first write to
//! each 4 KiB page of a fresh allocation costs a page fault, and on virtual machines those faults
//! are most of the cost of filling new memory (memcpy into a new buffer runs several times slower
//! than into a reused one). Advised 2 MiB pages fault once per 2 MiB. numpy advises its large
//! arrays the same way; the encoder's output buffers do too. Elsewhere this is a no-op.

/// Runs `f` with this thread's reusable value behind `key` (scratch buffers: a fresh large buffer is
/// a fresh mapping, and its page faults, per allocation). A nested use on the same thread gets a
/// fresh default value instead.
pub(crate) fn with_reused<T: Default + 'static, R>(
    key: &'static std::thread::LocalKey<std::cell::RefCell<T>>,
    f: impl FnOnce(&mut T) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut value) => f(&mut value),
        Err(_) => f(&mut T::default()),
    })
}

/// How a decoder writes its output: through the cache, or around it with streaming stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stores {
    Cached,
    Streaming,
}

/// Output bytes from which decoders write around the cache. Measured on a Xeon VM: cached 32-byte
/// stores fill 1-16 MiB at 11-24 GB/s and larger buffers at 4-6 GB/s (the share of the last-level
/// cache is used up, and each line is read before it is written), streaming stores at 12-15 GB/s
/// at every size; below this size a consumer that reads the output back finds it in the cache, and
/// cached stores are faster.
const STREAMING_FROM: usize = 16 << 20;

/// Whether blocks staged in the cache and then streamed out ([`Stores::put`]) fill a large buffer
/// faster than cached stores on this CPU: not on AMD's. Measured decoding flat frames into
/// preallocated arrays of 45-91 MB: on a Zen 4 VM (32 MiB of L3) cached stores were 15-20 % faster
/// than staged streaming (a decoder that streams from its registers was 25 % faster than cached
/// stores there); on a Xeon VM staged streaming was the faster.
fn staged_streaming_pays() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static PAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *PAYS.get_or_init(|| {
            let id = std::arch::x86_64::__cpuid(0);
            // The vendor string "AuthenticAMD" in EBX, EDX, ECX.
            (id.ebx, id.edx, id.ecx) != (0x6874_7541, 0x6974_6e65, 0x444d_4163)
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    true
}

impl Stores {
    /// The stores for a decoded output of `len` bytes in all.
    pub(crate) fn for_output(len: usize) -> Self {
        if len >= STREAMING_FROM {
            Self::Streaming
        } else {
            Self::Cached
        }
    }
}

/// A block of decoded output staged in the first-level cache before [`Stores::put`] streams it out
/// (kernels whose stores the compiler vectorises write here instead of into the output).
#[repr(C, align(64))]
pub(crate) struct Staged(pub [u8; 512]);

impl Default for Staged {
    fn default() -> Self {
        Self([0; 512])
    }
}

impl Stores {
    /// The stores a kernel uses for `out`: streaming ones need its start 16-byte aligned (numpy's
    /// large arrays start 16 bytes into a page), then every whole 16 bytes of a block it copies
    /// stays aligned as long as the blocks before it were multiples of 16 bytes.
    pub(crate) fn for_slice(self, out: &[u8]) -> Self {
        if self == Self::Streaming && (out.as_ptr() as usize).is_multiple_of(16) {
            Self::Streaming
        } else {
            Self::Cached
        }
    }

    /// The stores a kernel that stages its blocks ([`Stores::put`]) uses for `out`: as
    /// [`Stores::for_slice`] where staged streaming pays on this CPU, else cached.
    pub(crate) fn for_staged(self, out: &[u8]) -> Self {
        if staged_streaming_pays() {
            self.for_slice(out)
        } else {
            Self::Cached
        }
    }

    /// Copies `src` (a [`Staged`] block's first bytes) to `dst` of the same length: streamed in
    /// 16-byte pieces when `self` is [`Stores::Streaming`] and `dst` is aligned, the rest through
    /// the cache.
    #[inline(always)]
    pub(crate) fn put(self, src: &Staged, dst: &mut [u8]) {
        let len = dst.len().min(src.0.len());
        let mut done = 0;
        #[cfg(target_arch = "x86_64")]
        if self == Self::Streaming && (dst.as_ptr() as usize).is_multiple_of(16) {
            use std::arch::x86_64::{__m128i, _mm_load_si128, _mm_stream_si128};
            done = len / 16 * 16;
            for at in (0..done).step_by(16) {
                // SAFETY: `at + 16 <= len`, inside both buffers; the source is 64-byte aligned
                // (`Staged`) and `at` a multiple of 16, the destination 16-byte aligned (checked);
                // SSE2 is part of x86-64.
                unsafe {
                    let v = _mm_load_si128(src.0.as_ptr().add(at).cast::<__m128i>());
                    _mm_stream_si128(dst.as_mut_ptr().add(at).cast::<__m128i>(), v);
                }
            }
        }
        dst[done..len].copy_from_slice(&src.0[done..len]);
    }

    /// Orders the streaming stores before whatever the thread stores next (the end of its task,
    /// which another thread waits for).
    pub(crate) fn finish(self) {
        #[cfg(target_arch = "x86_64")]
        if self == Self::Streaming {
            // SAFETY: SSE is part of x86-64.
            unsafe { std::arch::x86_64::_mm_sfence() };
        }
    }
}

/// Bytes of a transparent huge page on x86-64 and aarch64 with 4 KiB base pages.
pub const HUGE_PAGE: usize = 2 << 20;

/// Asks the kernel to back the whole huge pages inside `[start, start + len)` with huge pages.
///
/// A hint: it changes no contents and no mapping, and failures are ignored. Call it before the
/// memory is first written, or it does nothing for the pages already touched.
pub fn advise_huge_pages(start: *const u8, len: usize) {
    #[cfg(target_os = "linux")]
    {
        let addr = start as usize;
        let lo = addr.div_ceil(HUGE_PAGE).saturating_mul(HUGE_PAGE);
        let hi = addr.saturating_add(len) / HUGE_PAGE * HUGE_PAGE;
        if hi > lo {
            // SAFETY: `madvise(MADV_HUGEPAGE)` only changes how the kernel backs the pages of the
            // range, never their contents or permissions; `[lo, hi)` lies inside `[start, start +
            // len)`, which the caller owns. An error (an unmapped range, THP disabled) is harmless.
            unsafe {
                libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_HUGEPAGE);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (start, len);
}

/// A zeroed vector of `len` bytes whose pages are advised to huge pages before they are touched
/// (large zeroed allocations arrive from the system as untouched zero pages).
pub fn zeroed(len: usize) -> Vec<u8> {
    let v = vec![0u8; len];
    advise_huge_pages(v.as_ptr(), v.len());
    v
}

/// Zeroes `memory` and returns it initialised: for a piece of a fresh buffer that is written right
/// after, while its zeroed lines are still in the cache (a second pass over the whole buffer would
/// write it out to memory twice).
pub fn zero(memory: &mut [std::mem::MaybeUninit<u8>]) -> &mut [u8] {
    let len = memory.len();
    let ptr = memory.as_mut_ptr().cast::<u8>();
    // SAFETY: `ptr` is valid for writes of `len` bytes, borrowed through `memory`; once zeroed they
    // are initialised, and the returned slice takes over the borrow.
    unsafe {
        std::ptr::write_bytes(ptr, 0, len);
        std::slice::from_raw_parts_mut(ptr, len)
    }
}

/// Zeroes the fresh buffer `[ptr, ptr + len)` on `threads` threads (`None`: one per core), a huge
/// page at a time after advising it, so its first-touch page faults are taken in parallel: for a
/// buffer the caller got uninitialised and must zero before viewing it as a slice (the `bytearray`
/// the Python binding decodes into).
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes, and nothing else may access them meanwhile.
///
/// # Errors
/// As [`crate::runtime::threads::run`] (then nothing was written).
pub unsafe fn zero_fresh(ptr: *mut u8, len: usize, threads: Option<usize>) -> crate::Result<()> {
    use rayon::prelude::*;
    advise_huge_pages(ptr, len);
    if len <= HUGE_PAGE {
        // SAFETY: the function's contract.
        unsafe { std::ptr::write_bytes(ptr, 0, len) };
        return Ok(());
    }
    // The address travels between threads as an integer.
    let addr = ptr as usize;
    crate::runtime::threads::run(threads, || {
        (0..len.div_ceil(HUGE_PAGE)).into_par_iter().for_each(|i| {
            let start = i * HUGE_PAGE;
            // SAFETY: `[start, start + n)` lies inside the caller's buffer, valid for writes and
            // accessed by nothing else (the function's contract); the pieces are disjoint.
            unsafe {
                std::ptr::write_bytes((addr + start) as *mut u8, 0, HUGE_PAGE.min(len - start));
            }
        });
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_copies_a_staged_block_whatever_the_stores_and_alignment() {
        let mut staged = Staged::default();
        for (i, b) in staged.0.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let mut buffer = Staged::default();
        for stores in [Stores::Cached, Stores::Streaming] {
            for start in [0, 1, 16, 48] {
                for len in [0, 15, 16, 100, 512 - start] {
                    buffer.0.fill(0xee);
                    stores.put(&staged, &mut buffer.0[start..start + len]);
                    stores.finish();
                    assert_eq!(
                        &buffer.0[start..start + len],
                        &staged.0[..len],
                        "{stores:?}"
                    );
                    assert!(buffer.0[..start].iter().all(|&b| b == 0xee));
                    assert!(buffer.0[start + len..].iter().all(|&b| b == 0xee));
                }
            }
        }
    }

    #[test]
    fn zero_fresh_zeroes_every_byte_on_any_thread_count() {
        for (len, threads) in [(0, None), (100, Some(1)), (5 * HUGE_PAGE + 3, Some(2))] {
            let mut v = vec![1u8; len];
            // SAFETY: `v` is valid for writes of `len` bytes and nothing else uses it.
            unsafe { zero_fresh(v.as_mut_ptr(), len, threads) }.unwrap();
            assert!(v.iter().all(|&b| b == 0), "len {len}");
        }
    }
}
