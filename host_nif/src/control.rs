//! The controls of one call into the guest, and the limits of the store it
//! runs in: what the host checks while guest code runs (a deadline, a
//! cancel flag, a memory cap, who hears its output), how a call that was
//! stopped is described, and the job resource a caller cancels by.
//!
//! A leaf of the crate: everything that drives the guest depends on it, it
//! depends on nothing of ours.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use rustler::{Env, LocalPid, Monitor, Resource, ResourceArc};
use wasmtime::ResourceLimiter;

/// The largest linear memory an instance may ever have (wasm32's whole space).
pub const MEMORY_CEILING: usize = 4 * 1024 * 1024 * 1024 - 64 * 1024;

/// Why the host stopped guest code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interruption {
    Deadline,
    Cancelled,
}

/// How one call into the guest ended.
pub enum CallError {
    /// The guest trapped or was interrupted: the instance is poisoned.
    Trap(Trapped),
}

/// What is known about a trap, for the error the caller sees.
#[derive(Debug)]
pub struct Trapped {
    pub interruption: Option<Interruption>,
    pub memory_exhausted: bool,
    pub allocation_limit: bool,
    pub stack_overflow: bool,
    pub detail: String,
}

impl Trapped {
    /// The host stopped the execution between guest calls.
    pub fn interrupted(interruption: Interruption) -> Self {
        Self {
            interruption: Some(interruption),
            memory_exhausted: false,
            allocation_limit: false,
            stack_overflow: false,
            detail: String::new(),
        }
    }
}

/// A submitted job. Its caller is monitored: if the caller dies, the job is
/// cancelled and the guest interrupted at the next epoch tick.
pub struct JobRes {
    pub cancel: Arc<AtomicBool>,
}

#[rustler::resource_impl]
impl Resource for JobRes {
    fn down<'a>(&'a self, _env: Env<'a>, _pid: LocalPid, _monitor: Monitor) {
        self.cancel.store(true, Ordering::Relaxed);
    }
}

/// A job's cancel flag and, once something needs it, its resource. A job
/// that answers within its slice on the calling scheduler (see `inline`) is
/// never named to its caller, so it never allocates the resource; one that
/// moves to a worker gets it when it leaves (to be monitored) or when it
/// first sends a message.
pub struct JobCell {
    cancel: Arc<AtomicBool>,
    resource: OnceLock<ResourceArc<JobRes>>,
}

impl JobCell {
    pub fn new() -> Arc<Self> {
        Arc::new(JobCell {
            cancel: Arc::new(AtomicBool::new(false)),
            resource: OnceLock::new(),
        })
    }

    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// The job's resource, made on first use.
    pub fn resource(&self) -> ResourceArc<JobRes> {
        self.resource
            .get_or_init(|| {
                ResourceArc::new(JobRes {
                    cancel: self.cancel.clone(),
                })
            })
            .clone()
    }
}

/// Who receives what Python prints while a call runs (live output).
#[derive(Clone)]
pub struct Listener {
    pub pid: LocalPid,
    pub job: Arc<JobCell>,
}

/// Per-call controls.
pub struct CallControl {
    pub cancel: Arc<AtomicBool>,
    pub deadline: Option<Instant>,
    /// Linear-memory cap for this call.
    pub memory_cap: usize,
    /// Who receives what Python prints while the call runs (live output).
    pub listener: Option<Listener>,
}

/// Backstop for compiling, dumping and other calls that run no Python.
pub const SERVICE_DEADLINE: Duration = Duration::from_secs(60);

impl CallControl {
    /// A control with a wasmtime deadline `backstop` from now.
    pub fn new(cancel: Arc<AtomicBool>, backstop: Option<Duration>, memory_cap: usize) -> Self {
        CallControl {
            cancel,
            deadline: backstop.map(|d| Instant::now() + d),
            memory_cap,
            listener: None,
        }
    }
}

/// A control for calls that must not be interrupted half-way: dumping a
/// paused execution (an interrupted dump would lose it) and loading one.
pub fn service_control() -> CallControl {
    CallControl::new(
        Arc::new(AtomicBool::new(false)),
        Some(SERVICE_DEADLINE),
        MEMORY_CEILING,
    )
}

/// Caps the guest's linear memory (the backstop under Monty's own
/// `max_memory`) and its tables, and remembers whether it refused a growth.
pub struct Limiter {
    pub cap: usize,
    pub current: usize,
    pub refused: bool,
}

impl Limiter {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            current: 0,
            refused: false,
        }
    }
}

/// Table elements a guest may hold (Monty's function table is ~1.4k).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = true;
            return Ok(false);
        }
        self.current = desired;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        8
    }

    fn tables(&self) -> usize {
        8
    }

    fn memories(&self) -> usize {
        2
    }
}

/// What a component's trap says: the trap, then what the component wrote to
/// stderr before it (panic messages; at most 500 bytes).
pub fn trap_detail(trap: Option<wasmtime::Trap>, stderr: &str, error: &wasmtime::Error) -> String {
    match (trap, stderr.trim()) {
        (Some(trap), "") => trap.to_string(),
        (Some(trap), stderr) => format!("{trap}: {}", truncate(stderr, 500)),
        (None, stderr) => truncate(&format!("{error} {stderr}"), 500),
    }
}

/// Whether a trap is a stack exhausted: the wasm stack, or the component's
/// shadow stack, which sits at the bottom of its memory (so exhausting it is
/// an out-of-bounds access).
pub fn stack_exhausted(trap: Option<wasmtime::Trap>) -> bool {
    matches!(
        trap,
        Some(wasmtime::Trap::StackOverflow | wasmtime::Trap::MemoryOutOfBounds)
    )
}

/// At most `max` bytes of `text`, cut at a character boundary.
fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}
