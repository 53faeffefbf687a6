//! The guest's global allocator: Monty's byte-counting `LimitedAllocator`,
//! plus a per-execution count of allocations that gives `max_allocations` a
//! real meaning (Monty 1.4 dropped that limit), plus a small per-size cache
//! of freed blocks in front of it (wasm only, see `bins`).
//!
//! Exceeding the count cannot raise a Python exception (it happens below the
//! interpreter), so the instance aborts, which in wasm is a trap; the host
//! reports it as a MemoryError and discards the instance.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU64, Ordering};

/// The allocator's state, in one static so it shares a page of the
/// instance's memory: the count already wrote that page in every instance,
/// and a page of the guest's data image first touched by a read maps its
/// neighbours in too (the kernel's fault-around): a second static elsewhere
/// cost ~35-65 KB of RSS per instance.
struct State {
    /// Allocations left in this execution; `u64::MAX` means unlimited.
    /// Between calls nothing is counted: a paused execution keeps what it
    /// has left with its other budgets (see `stop_counting`).
    left: AtomicU64,
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    bins: bins::Bins,
}

static STATE: State = State {
    left: AtomicU64::new(u64::MAX),
    #[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
    bins: bins::Bins::new(),
};

/// Arms the count for a new execution.
pub fn start_counting(max_allocations: Option<u64>) {
    STATE
        .left
        .store(max_allocations.unwrap_or(u64::MAX), Ordering::Relaxed);
}

/// What the running execution has left (`u64::MAX`: not counted). A
/// pausing execution stores it with its budgets, so the count travels with
/// the execution (across other calls to the instance, and in its dumps).
pub fn counting_left() -> u64 {
    STATE.left.load(Ordering::Relaxed)
}

/// Stops counting when a call returns: until an execution starts or
/// resumes nothing is counted (the host lowering the next call's arguments,
/// that call decoding its inputs, a conversion). A count left nearly spent
/// by one execution made the next call in the instance trap.
pub fn stop_counting() {
    STATE.left.store(u64::MAX, Ordering::Relaxed);
}

/// A paused execution resumes counting with what it had left when it paused.
pub fn resume_counting(left: u64) {
    STATE.left.store(left, Ordering::Relaxed);
}

/// Runs `f` outside the execution's allocation count (value conversions the
/// host asks for between steps are not the program's allocations).
pub fn uncounted<T>(f: impl FnOnce() -> T) -> T {
    let saved = STATE.left.swap(u64::MAX, Ordering::Relaxed);
    let result = f();
    STATE.left.store(saved, Ordering::Relaxed);
    result
}

pub struct CountingAllocator;

#[cfg(target_arch = "wasm32")]
fn charge() {
    let left = STATE.left.load(Ordering::Relaxed);
    if left == u64::MAX {
        return;
    }
    if left == 0 {
        exceeded();
    }
    STATE.left.store(left - 1, Ordering::Relaxed);
}

#[cfg(not(target_arch = "wasm32"))]
fn charge() {}

#[cold]
#[cfg(target_arch = "wasm32")]
fn exceeded() -> ! {
    // Disarm first: writing the message may allocate.
    STATE.left.store(u64::MAX, Ordering::Relaxed);
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "ex_monty guest: allocation limit exceeded"
    );
    std::process::abort()
}

// SAFETY: a block is either forwarded to and from Monty's `LimitedAllocator`
// unchanged, or (wasm only) a small block kept in `bins` after it was freed
// and handed out again whole; `bins` documents why that is sound.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        charge();
        // SAFETY: the caller's layout, forwarded.
        unsafe { inner_alloc(layout, false) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator with `layout`.
        unsafe { inner_dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        charge();
        // SAFETY: the caller's layout, forwarded.
        unsafe { inner_alloc(layout, true) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        charge();
        // SAFETY: `ptr` is a live block of `layout` from this allocator.
        unsafe { inner_realloc(ptr, layout, new_size) }
    }
}

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
unsafe fn inner_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
    // SAFETY: forwarded unchanged.
    unsafe {
        if zeroed {
            monty_alloc::LimitedAllocator.alloc_zeroed(layout)
        } else {
            monty_alloc::LimitedAllocator.alloc(layout)
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
unsafe fn inner_dealloc(ptr: *mut u8, layout: Layout) {
    // SAFETY: forwarded unchanged.
    unsafe { monty_alloc::LimitedAllocator.dealloc(ptr, layout) }
}

#[cfg(not(all(target_arch = "wasm32", not(target_feature = "atomics"))))]
unsafe fn inner_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: forwarded unchanged.
    unsafe { monty_alloc::LimitedAllocator.realloc(ptr, layout, new_size) }
}

#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
use bins::{inner_alloc, inner_dealloc, inner_realloc};

/// Freed small blocks kept for reuse, per size class (wasm only).
///
/// Monty allocates and frees many small blocks (values, frames, names); in
/// wasm each one went through four calls (the count, `LimitedAllocator`,
/// `malloc`, dlmalloc), about an eighth of a short `run`. Like glibc's
/// per-thread cache, a freed block of up to `MAX_SMALL` bytes goes on a
/// short list for its class and the next request of that class takes it
/// back without calling dlmalloc. Requests are rounded up to the class's
/// size, `16 k + 12` bytes: exactly what one of dlmalloc's chunks holds
/// (16-byte multiples with a 4-byte header), so the rounding costs no
/// memory.
///
/// Sound because the guest has one thread (no `atomics` target feature:
/// nothing else can touch the lists) and every small block is allocated
/// with its class's full size, so any block on a list fits any request of
/// that class. Monty's live-byte count stays true: a block going on a list
/// is refunded, one taken off is charged again.
///
/// What the lists hold is bounded (`DEPTH` blocks per class, `HELD_MAX`
/// bytes in all): wasm memory never shrinks, so freed blocks stay in the
/// instance either way, but a block on a list cannot be merged with its
/// neighbours for a request of another size. With these bounds 256 paused
/// executions in their instances hold as much RSS as without the lists.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod bins {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::UnsafeCell;
    use std::sync::atomic::Ordering;

    use monty_alloc::LimitedAllocator;
    use monty_types::LIVE_MEMORY;

    const GRAIN: usize = 16;
    /// The smallest class; every class is `SMALLEST + GRAIN * class` bytes.
    const SMALLEST: usize = 12;
    const CLASSES: usize = 64;
    const MAX_SMALL: usize = class_size(CLASSES - 1);

    const fn class_size(class: usize) -> usize {
        SMALLEST + GRAIN * class
    }
    /// Blocks a class's list may hold.
    const DEPTH: u16 = 32;
    /// Bytes all lists together may hold.
    const HELD_MAX: usize = 16 * 1024;

    /// Alignment every small block is allocated with (dlmalloc gives more).
    const ALIGN: usize = 8;

    struct Lists {
        /// First free block of each class; a free block's first word points
        /// to the next one (null ends the list).
        heads: [*mut u8; CLASSES],
        lengths: [u16; CLASSES],
        /// Bytes on all lists.
        held: usize,
    }

    pub struct Bins(UnsafeCell<Lists>);

    // SAFETY: compiled only for single-threaded wasm (no `atomics`).
    unsafe impl Sync for Bins {}

    impl Bins {
        pub const fn new() -> Self {
            Self(UnsafeCell::new(Lists {
                heads: [std::ptr::null_mut(); CLASSES],
                lengths: [0; CLASSES],
                held: 0,
            }))
        }
    }

    /// The class of a request, if it is small and needs no more than `ALIGN`.
    #[inline(always)]
    fn class(size: usize, align: usize) -> Option<usize> {
        if size == 0 || size > MAX_SMALL || align > ALIGN {
            return None;
        }
        Some(size.saturating_sub(SMALLEST).div_ceil(GRAIN))
    }

    #[inline(always)]
    fn class_layout(class: usize) -> Layout {
        // SAFETY: a nonzero size of at most `MAX_SMALL` and a power-of-two
        // alignment: always a valid layout.
        unsafe { Layout::from_size_align_unchecked(class_size(class), ALIGN) }
    }

    #[inline(always)]
    unsafe fn take(class: usize) -> *mut u8 {
        // SAFETY: one thread; no reference into the lists outlives this call.
        let lists = unsafe { &mut *super::STATE.bins.0.get() };
        let head = lists.heads[class];
        if head.is_null() {
            return head;
        }
        // SAFETY: `head` is a free block of at least 12 bytes, aligned to 8,
        // whose first word `put` wrote.
        lists.heads[class] = unsafe { head.cast::<*mut u8>().read() };
        lists.lengths[class] -= 1;
        lists.held -= class_size(class);
        LIVE_MEMORY.fetch_add(class_size(class), Ordering::Relaxed);
        head
    }

    /// Keeps a freed block; `false` if its list, or all lists together, are full.
    #[inline(always)]
    unsafe fn put(class: usize, block: *mut u8) -> bool {
        // SAFETY: one thread; no reference into the lists outlives this call.
        let lists = unsafe { &mut *super::STATE.bins.0.get() };
        let size = class_size(class);
        if lists.lengths[class] >= DEPTH || lists.held + size > HELD_MAX {
            return false;
        }
        // SAFETY: `block` is a freed block of this class (at least 12 bytes,
        // aligned to 8) that nobody else refers to any more.
        unsafe { block.cast::<*mut u8>().write(lists.heads[class]) };
        lists.heads[class] = block;
        lists.lengths[class] += 1;
        lists.held += size;
        LIVE_MEMORY.fetch_sub(size, Ordering::Relaxed);
        true
    }

    pub unsafe fn inner_alloc(layout: Layout, zeroed: bool) -> *mut u8 {
        let Some(class) = class(layout.size(), layout.align()) else {
            // SAFETY: forwarded unchanged.
            return unsafe {
                if zeroed {
                    LimitedAllocator.alloc_zeroed(layout)
                } else {
                    LimitedAllocator.alloc(layout)
                }
            };
        };
        // SAFETY: see the module's doc.
        let block = unsafe { take(class) };
        if block.is_null() {
            // SAFETY: a valid layout; its block comes back through `put` or
            // `inner_dealloc` with the same layout.
            return unsafe {
                if zeroed {
                    LimitedAllocator.alloc_zeroed(class_layout(class))
                } else {
                    LimitedAllocator.alloc(class_layout(class))
                }
            };
        }
        if zeroed {
            // SAFETY: the block holds at least `layout.size()` bytes.
            unsafe { block.write_bytes(0, layout.size()) };
        }
        block
    }

    pub unsafe fn inner_dealloc(ptr: *mut u8, layout: Layout) {
        match class(layout.size(), layout.align()) {
            // SAFETY: a small block, allocated with its class's layout.
            Some(class) => unsafe {
                if !put(class, ptr) {
                    LimitedAllocator.dealloc(ptr, class_layout(class));
                }
            },
            // SAFETY: forwarded unchanged.
            None => unsafe { LimitedAllocator.dealloc(ptr, layout) },
        }
    }

    pub unsafe fn inner_realloc(ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class(layout.size(), layout.align());
        let new = class(new_size, layout.align());
        if let (Some(a), Some(b)) = (old, new) {
            if a == b {
                // The block already has the class's full size.
                return ptr;
            }
        }
        // Otherwise dlmalloc resizes it (in place when it can), from the
        // size it really has to the size its new class (or the request)
        // needs: a small block always holds its class's full size.
        let from = old.map_or(layout, class_layout);
        let to = new.map_or(new_size, class_size);
        // SAFETY: `ptr` is a live block of `from`, allocated by
        // `LimitedAllocator`; `to` is nonzero and fits the alignment.
        unsafe { LimitedAllocator.realloc(ptr, from, to) }
    }
}
