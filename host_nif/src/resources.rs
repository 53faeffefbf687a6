//! NIF resources: jobs, compiled runners and paused executions.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use rustler::{Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc, Term};

use crate::atoms;
use crate::exceptions::sandbox_exception;
use crate::instance::{Instance, Limits};
use crate::mounts::MountsRes;

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

/// A compiled program. Immutable, so one runner serves any number of
/// concurrent executions; each execution gets its own instance and heap.
pub struct RunnerRes {
    pub program: Arc<Vec<u8>>,
    pub script_name: String,
    pub input_names: Vec<String>,
}

#[rustler::resource_impl]
impl Resource for RunnerRes {}

/// What a paused execution waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    FunctionCall,
    OsCall,
    NameLookup,
    Futures,
}

/// Per-execution settings, kept for every step of the execution.
#[derive(Clone)]
pub struct ExecLimits {
    pub guest: Limits,
    /// Wasmtime's backstop deadline per call, above Monty's own.
    pub backstop: Option<std::time::Duration>,
    pub memory_cap: usize,
    /// Host directories that serve this execution's file calls.
    pub mounts: Option<ResourceArc<MountsRes>>,
    /// Whether host calls come back to Elixir (`start`) or are answered
    /// by default (`eval`/`run`).
    pub interactive: bool,
}

/// Where a paused execution lives.
pub enum Held {
    /// In its own instance, ready to resume at once.
    Live(PausedInstance),
    /// As its dump bytes (hibernated): woken into any instance on resume.
    Hibernated(Vec<u8>),
}

pub struct Paused {
    pub held: Held,
    pub limits: ExecLimits,
}

/// An instance that holds a paused execution. Counted, so the host keeps a
/// bounded number of them: beyond `max_live_paused`, new pauses hibernate.
pub struct PausedInstance(Option<Box<Instance>>);

static LIVE_PAUSED: AtomicUsize = AtomicUsize::new(0);
static MAX_LIVE_PAUSED: AtomicUsize = AtomicUsize::new(256);

impl PausedInstance {
    pub fn new(instance: Instance) -> Self {
        LIVE_PAUSED.fetch_add(1, Ordering::Relaxed);
        Self(Some(Box::new(instance)))
    }

    /// The instance, no longer counted as paused.
    pub fn into_instance(mut self) -> Option<Instance> {
        self.0.take().map(|instance| *instance)
    }

    pub fn instance_mut(&mut self) -> Option<&mut Instance> {
        self.0.as_deref_mut()
    }
}

impl Drop for PausedInstance {
    fn drop(&mut self) {
        LIVE_PAUSED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether a new pause may keep its instance.
pub fn may_stay_live() -> bool {
    LIVE_PAUSED.load(Ordering::Relaxed) < MAX_LIVE_PAUSED.load(Ordering::Relaxed)
}

pub fn set_max_live_paused(max: usize) {
    MAX_LIVE_PAUSED.store(max, Ordering::Relaxed);
}

/// Paused executions holding an instance right now.
pub fn live_paused() -> usize {
    LIVE_PAUSED.load(Ordering::Relaxed)
}

enum State {
    Ready(Paused),
    /// A job (resume or dump) has it; others wait for it to come back.
    Busy,
    /// A resume went through (or the execution was lost with its instance).
    Consumed,
}

/// A paused execution, shared by the snapshot terms that refer to it.
///
/// Every operation takes the execution out (`acquire`, on a worker thread)
/// and either puts it back unchanged (`release`: dumps, refused answers) or
/// ends it (`consume`: a resume that ran). Concurrent operations wait their
/// turn instead of failing, so only a resume that really ran consumes it.
pub struct SnapshotRes {
    kind: PauseKind,
    state: Mutex<State>,
    turn: Condvar,
}

#[rustler::resource_impl]
impl Resource for SnapshotRes {}

/// What `acquire` found.
pub enum Acquired {
    Paused(Paused),
    Consumed,
    Cancelled,
}

impl SnapshotRes {
    pub fn new(kind: PauseKind, paused: Paused) -> Self {
        Self {
            kind,
            state: Mutex::new(State::Ready(paused)),
            turn: Condvar::new(),
        }
    }

    /// What the execution waits for (fixed for the snapshot's life).
    pub fn kind(&self) -> PauseKind {
        self.kind
    }

    /// Whether a resume already went through.
    pub fn is_consumed(&self) -> bool {
        self.state
            .lock()
            .map_or(true, |state| matches!(*state, State::Consumed))
    }

    /// Takes the execution, waiting while another job has it (or until
    /// `cancel` is set: the caller died or gave up).
    pub fn acquire(&self, cancel: &AtomicBool) -> Acquired {
        let Ok(mut state) = self.state.lock() else {
            return Acquired::Consumed;
        };
        loop {
            match std::mem::replace(&mut *state, State::Busy) {
                State::Ready(paused) => return Acquired::Paused(paused),
                State::Consumed => {
                    *state = State::Consumed;
                    return Acquired::Consumed;
                }
                State::Busy => {
                    if cancel.load(Ordering::Relaxed) {
                        return Acquired::Cancelled;
                    }
                    state = match self.turn.wait_timeout(state, Duration::from_millis(5)) {
                        Ok((state, _)) => state,
                        Err(_) => return Acquired::Consumed,
                    };
                }
            }
        }
    }

    /// Puts the execution back as it was.
    pub fn release(&self, paused: Paused) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Ready(paused);
        }
        self.turn.notify_all();
    }

    /// Marks the execution as resumed (or lost).
    pub fn consume(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Consumed;
        }
        self.turn.notify_all();
    }
}

/// A result holding values too large to build off a scheduler thread: the
/// caller materialises it with `materialize/1` on a dirty scheduler.
pub struct PendingRes {
    pub pending: Mutex<Option<Pending>>,
}

pub enum Pending {
    Complete {
        value: Vec<u8>,
        output: String,
    },
    Paused {
        progress: crate::instance::Progress,
        snapshot: ResourceArc<SnapshotRes>,
        output: String,
    },
}

#[rustler::resource_impl]
impl Resource for PendingRes {}

/// The answer to one job, sent to the caller as `{:ex_monty, job, result}`.
/// If the job ends without answering (a host bug), dropping the reply still
/// answers, so no caller ever waits forever.
pub struct Reply {
    pid: LocalPid,
    job: ResourceArc<JobRes>,
    sent: bool,
}

impl Reply {
    pub fn new(pid: LocalPid, job: ResourceArc<JobRes>) -> Self {
        Self {
            pid,
            job,
            sent: false,
        }
    }

    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.job.cancel.clone()
    }

    pub fn send<F>(mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>) -> Term<'a>,
    {
        self.sent = true;
        let job = self.job.clone();
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&self.pid, move |env| {
            (atoms::ex_monty(), job, build(env)).encode(env)
        });
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if !self.sent {
            let job = self.job.clone();
            let mut env = OwnedEnv::new();
            let _ = env.send_and_clear(&self.pid, move |env| {
                let exception = sandbox_exception(
                    env,
                    atoms::sandbox_crashed(),
                    "RuntimeError",
                    "internal error in the ExMonty host; the execution was lost",
                );
                (atoms::ex_monty(), job, (atoms::error(), exception)).encode(env)
            });
        }
    }
}
