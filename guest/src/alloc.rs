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
/// short list for its class (sizes rounded up to a multiple of `GRAIN`) and
/// the next request of that class takes it back without calling dlmalloc.
///
/// Sound because the guest has one thread (no `atomics` target feature:
/// nothing else can touch the lists) and every small block is allocated
/// with its class's full size, so any block on a list fits any request of
/// that class. Monty's live-byte count stays true: a block going on a list
/// is refunded, one taken off is charged again. What a list may hold is
/// bounded (`DEPTH`: 32 blocks, at most 4 KiB), so the cache keeps at most
/// about 250 KB away from dlmalloc, and much less unless a program frees
/// many blocks of every size. (wasm memory never shrinks: freed blocks stay
/// in the instance either way; the lists only keep them from being merged
/// for other sizes.)
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
mod bins {
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::UnsafeCell;
    use std::sync::atomic::Ordering;

    use monty_alloc::LimitedAllocator;
    use monty_types::LIVE_MEMORY;

    const GRAIN: usize = 16;
    const CLASSES: usize = 64;
    const MAX_SMALL: usize = GRAIN * CLASSES;
    /// Blocks a class's list may hold: 32, or fewer so that a list holds at
    /// most 4 KiB (but at least 4 blocks).
    const DEPTH: [u16; CLASSES] = depths();

    const fn depths() -> [u16; CLASSES] {
        let mut depths = [0; CLASSES];
        let mut class = 0;
        while class < CLASSES {
            let fit = 4096 / ((class + 1) * GRAIN);
            depths[class] = if fit > 32 {
                32
            } else if fit < 4 {
                4
            } else {
                fit as u16
            };
            class += 1;
        }
        depths
    }
    /// Alignment every small block is allocated with (dlmalloc gives more).
    const ALIGN: usize = 8;

    struct Lists {
        /// First free block of each class; a free block's first word points
        /// to the next one (null ends the list).
        heads: [*mut u8; CLASSES],
        lengths: [u16; CLASSES],
    }

    struct Bins(UnsafeCell<Lists>);

    // SAFETY: compiled only for single-threaded wasm (no `atomics`).
    unsafe impl Sync for Bins {}

    static BINS: Bins = Bins(UnsafeCell::new(Lists {
        heads: [std::ptr::null_mut(); CLASSES],
        lengths: [0; CLASSES],
    }));

    /// The class of a request, if it is small and needs no more than `ALIGN`.
    #[inline(always)]
    fn class(size: usize, align: usize) -> Option<usize> {
        if size == 0 || size > MAX_SMALL || align > ALIGN {
            return None;
        }
        Some((size - 1) / GRAIN)
    }

    #[inline(always)]
    fn class_layout(class: usize) -> Layout {
        // SAFETY: a nonzero multiple of 16, at most 256, and a power-of-two
        // alignment: always a valid layout.
        unsafe { Layout::from_size_align_unchecked((class + 1) * GRAIN, ALIGN) }
    }

    #[inline(always)]
    unsafe fn take(class: usize) -> *mut u8 {
        // SAFETY: one thread; no reference into `BINS` outlives this call.
        let lists = unsafe { &mut *BINS.0.get() };
        let head = lists.heads[class];
        if head.is_null() {
            return head;
        }
        // SAFETY: `head` is a free block of at least 16 bytes, aligned to 8,
        // whose first word `put` wrote.
        lists.heads[class] = unsafe { head.cast::<*mut u8>().read() };
        lists.lengths[class] -= 1;
        LIVE_MEMORY.fetch_add((class + 1) * GRAIN, Ordering::Relaxed);
        head
    }

    /// Keeps a freed block; `false` if its list is full.
    #[inline(always)]
    unsafe fn put(class: usize, block: *mut u8) -> bool {
        // SAFETY: one thread; no reference into `BINS` outlives this call.
        let lists = unsafe { &mut *BINS.0.get() };
        if lists.lengths[class] >= DEPTH[class] {
            return false;
        }
        // SAFETY: `block` is a freed block of this class (at least 16 bytes,
        // aligned to 8) that nobody else refers to any more.
        unsafe { block.cast::<*mut u8>().write(lists.heads[class]) };
        lists.heads[class] = block;
        lists.lengths[class] += 1;
        LIVE_MEMORY.fetch_sub((class + 1) * GRAIN, Ordering::Relaxed);
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
        match (old, new) {
            // SAFETY: forwarded unchanged.
            (None, None) => unsafe { LimitedAllocator.realloc(ptr, layout, new_size) },
            // The block already has the class's full size.
            (Some(a), Some(b)) if a == b => ptr,
            _ => {
                // SAFETY: `new_size` with the old alignment is a valid layout
                // (the caller's contract for `realloc`).
                let new_layout =
                    unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
                // SAFETY: a valid layout.
                let block = unsafe { inner_alloc(new_layout, false) };
                if !block.is_null() {
                    // SAFETY: both blocks are live, distinct and hold at
                    // least the copied length.
                    unsafe {
                        std::ptr::copy_nonoverlapping(ptr, block, layout.size().min(new_size));
                        inner_dealloc(ptr, layout);
                    }
                }
                block
            }
        }
    }
}
