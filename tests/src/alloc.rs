//! A counting global allocator for the memory tests: each test binary that wants it
//! declares `#[global_allocator] static A: onsite_tests::alloc::Counting = Counting;` and
//! measures heap peaks with [`reset`] and [`peak_since`] (this crate's statics are per
//! binary, so binaries do not disturb each other).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Counting;
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded to the system allocator.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(l.size(), Ordering::SeqCst) + l.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: allocated above with this layout.
        unsafe { System.dealloc(p, l) };
        CURRENT.fetch_sub(l.size(), Ordering::SeqCst);
    }
}

/// Starts a measurement: the peak restarts at the bytes in use now (returned).
pub fn reset() -> usize {
    let base = CURRENT.load(Ordering::SeqCst);
    PEAK.store(base, Ordering::SeqCst);
    base
}

/// The heap peak above `base` since [`reset`].
pub fn peak_since(base: usize) -> usize {
    PEAK.load(Ordering::SeqCst) - base
}
