//! NIF resources: jobs, compiled runners and paused executions.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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

pub struct Paused {
    pub instance: Instance,
    pub kind: PauseKind,
    pub limits: ExecLimits,
}

/// A paused execution: the instance holding it waits here until one resume
/// takes it. A second resume finds it empty and gets an error.
pub struct SnapshotRes {
    pub paused: Mutex<Option<Paused>>,
}

#[rustler::resource_impl]
impl Resource for SnapshotRes {}

impl SnapshotRes {
    pub fn kind(&self) -> Option<PauseKind> {
        self.paused
            .lock()
            .ok()
            .and_then(|p| p.as_ref().map(|p| p.kind))
    }

    pub fn take(&self) -> Option<Paused> {
        self.paused.lock().ok().and_then(|mut p| p.take())
    }

    pub fn put_back(&self, paused: Paused) {
        if let Ok(mut slot) = self.paused.lock() {
            *slot = Some(paused);
        }
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
