//! A hint to the CPU to start loading a cache line: lets a batch of
//! lookups overlap their cache misses (group prefetching), which one call
//! at a time cannot.

/// Asks the CPU to bring the cache line holding `p` closer. Never reads
/// through `p` and never faults, whatever its value; a no-op off x86-64.
#[inline(always)]
#[allow(unsafe_code)]
pub(crate) fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not access memory in a way the
    // program can observe and does not fault on any address, so any
    // pointer, dangling or null, is fine. SSE is part of the x86-64
    // baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
