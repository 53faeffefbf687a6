//! The guest's global allocator: Monty's byte-counting `LimitedAllocator`,
//! plus a per-execution count of allocations that gives `max_allocations` a
//! real meaning (Monty 1.4 dropped that limit).
//!
//! Exceeding the count cannot raise a Python exception (it happens below the
//! interpreter), so the instance aborts, which in wasm is a trap; the host
//! reports it as a MemoryError and discards the instance.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocations left in this execution; `u64::MAX` means unlimited.
static LEFT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Arms the count for a new execution.
pub fn start_counting(max_allocations: Option<u64>) {
    LEFT.store(max_allocations.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// Runs `f` outside the execution's allocation count (value conversions the
/// host asks for between steps are not the program's allocations).
pub fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    let saved = LEFT.swap(u64::MAX, Ordering::Relaxed);
    let result = f();
    LEFT.store(saved, Ordering::Relaxed);
    result
}

pub struct CountingAllocator;

#[cfg(target_arch = "wasm32")]
fn charge() {
    let left = LEFT.load(Ordering::Relaxed);
    if left == u64::MAX {
        return;
    }
    if left == 0 {
        exceeded();
    }
    LEFT.store(left - 1, Ordering::Relaxed);
}

#[cfg(not(target_arch = "wasm32"))]
fn charge() {}

#[cold]
#[cfg(target_arch = "wasm32")]
fn exceeded() -> ! {
    // Disarm first: writing the message may allocate.
    LEFT.store(u64::MAX, Ordering::Relaxed);
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "ex_monty guest: allocation limit exceeded"
    );
    std::process::abort()
}

// SAFETY: every method forwards its arguments unchanged to Monty's
// `LimitedAllocator` and returns its result; the only addition is a counter.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge();
        // SAFETY: forwarded unchanged.
        unsafe { monty_alloc::LimitedAllocator.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged.
        unsafe { monty_alloc::LimitedAllocator.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge();
        // SAFETY: forwarded unchanged.
        unsafe { monty_alloc::LimitedAllocator.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        charge();
        // SAFETY: forwarded unchanged.
        unsafe { monty_alloc::LimitedAllocator.realloc(ptr, layout, new_size) }
    }
}
