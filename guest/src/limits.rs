//! Translating the WIT `limits` record into Monty's resource tracker.

use std::time::Duration;

use monty_types::{ResourceLimits, ResourceTracker, DEFAULT_MAX_RECURSION_DEPTH};

use crate::wit::Limits;

/// Output kept when the host sets no cap (Monty's own default).
pub const DEFAULT_OUTPUT_CAP: u64 = monty_types::DEFAULT_MAX_PRINT_COLLECT_BYTES as u64;

fn usize_of(value: u64) -> usize {
    usize::try_from(value).unwrap_or(usize::MAX)
}

/// Monty's limits for a new execution.
pub fn resource_limits(limits: &Limits) -> ResourceLimits {
    ResourceLimits {
        max_feed_duration: limits.max_duration_us.map(Duration::from_micros),
        max_turn_duration: None,
        max_memory: limits.max_memory.map(usize_of),
        gc_interval: limits.gc_interval.map(usize_of),
        max_recursion_depth: limits
            .max_recursion_depth
            .map_or(DEFAULT_MAX_RECURSION_DEPTH, |depth| depth as usize),
        max_suspensions: limits.max_suspensions.map_or(usize::MAX, usize_of),
        max_total_sleep: limits.max_total_sleep_us.map(Duration::from_micros),
    }
}

pub fn tracker(limits: &Limits) -> ResourceTracker {
    arm_allocator(limits.max_memory);
    crate::alloc::start_counting(limits.max_allocations);
    ResourceTracker::new(resource_limits(limits))
}

/// Arms the counting allocator's hard ceiling a little above Monty's soft
/// `max_memory`, so a breach between Monty's checkpoints traps the instance
/// instead of growing without bound.
pub fn arm_allocator(max_memory: Option<u64>) {
    #[cfg(target_arch = "wasm32")]
    {
        let budget = monty_types::memory_limit_with_headroom(max_memory.map(usize_of), false);
        // An error only means the counting allocator is not installed.
        let _ = monty_alloc::set_hard_limit(budget);
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = max_memory;
}

/// Lifts the allocator's hard limit and stops the allocation count when a
/// call that armed them returns, and hands back what the call returned.
/// Whatever comes next in this instance (the host lowering the next call's
/// arguments, which happens before the call itself can arm anything; a
/// compile; a value conversion) is then not held to the previous
/// execution's `max_memory` or `max_allocations`. Every call that runs
/// Python arms them again (a resume with the count its execution paused
/// with, kept in its budget).
pub fn lifted<T>(result: T) -> T {
    arm_allocator(None);
    crate::alloc::stop_counting();
    result
}

/// Arms a paused execution's limits again as it resumes: its `max_memory`,
/// and the allocations it had left when it paused.
pub fn resumed(max_memory: Option<u64>, allocations_left: u64) {
    arm_allocator(max_memory);
    crate::alloc::resume_counting(allocations_left);
}
