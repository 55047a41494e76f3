//! A cache hint: start loading the line that holds an address. The runtime's one `unsafe`.
//!
//! The reorder buffer holds ~70 s of event time (lateness plus grace, ~10 MB on the
//! 300k-account stream), so a record has left the cache by the time it is released,
//! and the detectors' tables (hundreds of MB) miss on nearly every lookup. Releasing a
//! run, the pipeline asks for the records a few places ahead, and for the lines the
//! detectors name for them (`Detector::lookahead`), so that those misses overlap with
//! the work on the records before them (docs/benchmarks.md has the figures). Rust
//! offers the prefetch instruction only as an `unsafe` intrinsic, though it reads
//! nothing and cannot fault; this module is the single place that calls it, and
//! `tests/tidy.rs` keeps it so.
#![allow(unsafe_code)]

/// Ask for the cache line holding `p`, for reading. A hint only: `p` is never
/// dereferenced, so it may dangle or lie outside any allocation; no effect but timing.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint. It never faults, whatever the address (it is dropped
    // if the address does not translate), and changes no architectural state. SSE, which
    // the intrinsic is gated on, is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// [`prefetch`] the line at an address given as a number (a detector's hint).
#[inline(always)]
pub fn prefetch_addr(addr: usize) {
    prefetch(addr as *const u8);
}

/// [`prefetch`] every cache line of `bytes`, up to `max_lines` of them.
#[inline(always)]
pub fn prefetch_bytes(bytes: &[u8], max_lines: usize) {
    for at in (0..bytes.len()).step_by(64).take(max_lines) {
        prefetch(bytes.as_ptr().wrapping_add(at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hint_at_any_address_changes_nothing() {
        let v: Vec<u64> = (0..1_000).collect();
        prefetch(v.as_ptr());
        prefetch(v.as_ptr().wrapping_add(1 << 40));
        prefetch(std::ptr::null::<u8>());
        prefetch_bytes(&[], 4);
        let bytes: Vec<u8> = (0..=255).collect();
        prefetch_bytes(&bytes, 8);
        assert_eq!(v.iter().sum::<u64>(), 499_500);
        assert_eq!(bytes.iter().map(|&b| u32::from(b)).sum::<u32>(), 32_640);
    }
}
