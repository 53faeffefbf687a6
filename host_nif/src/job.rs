//! Jobs: the answer to work handed to the worker threads, by message.
//!
//! A NIF that runs guest code answers within its call when the work ends in
//! its slice on the caller's scheduler (see `inline`); otherwise it returns
//! `{:ok, job}` and the result arrives later as `{:ex_monty, job, result}`
//! (the job resource is made only then, see `JobCell`). The caller is then
//! monitored: if it dies, or calls `job_cancel/1`, the job's cancel flag is
//! set and the guest is interrupted at the next epoch tick (or never
//! started, if it was still queued). A result too large to build off a
//! scheduler thread is sent as `{:deferred, pending}` and built by the caller
//! with `job_materialize/1`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustler::{Atom, Encoder, Env, LocalPid, OwnedEnv, Resource, ResourceArc, Term};

use crate::atoms;
pub use crate::control::JobRes;
use crate::control::{JobCell, Listener};
use crate::exceptions::{sandbox_error, sandbox_exception};
use crate::inline::Slot;

#[rustler::nif]
fn job_cancel(job: ResourceArc<JobRes>) -> Atom {
    job.cancel.store(true, Ordering::Relaxed);
    atoms::ok()
}

/// Builds a result (or a deferred one) in the caller's environment.
pub type Build = Box<dyn for<'a> FnOnce(Env<'a>) -> Term<'a> + Send>;

/// A result holding values too large to build off a scheduler thread.
pub struct PendingRes {
    build: Mutex<Option<Build>>,
}

#[rustler::resource_impl]
impl Resource for PendingRes {}

/// `{:deferred, pending}`: the caller builds the result with
/// `job_materialize/1`, on a dirty scheduler.
pub fn deferred<F>(env: Env<'_>, build: F) -> Term<'_>
where
    F: for<'a> FnOnce(Env<'a>) -> Term<'a> + Send + 'static,
{
    let resource = ResourceArc::new(PendingRes {
        build: Mutex::new(Some(Box::new(build))),
    });
    (atoms::deferred(), resource).encode(env)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn job_materialize(env: Env<'_>, pending: ResourceArc<PendingRes>) -> Term<'_> {
    match pending.build.lock().ok().and_then(|mut slot| slot.take()) {
        Some(build) => build(env),
        None => sandbox_error(env, atoms::invalid_input(), "this result was already taken"),
    }
}

/// The answer to one job, sent to the caller as `{:ex_monty, job, result}`.
/// If the job ends without answering (a host bug), dropping the reply still
/// answers, so no caller ever waits forever.
/// While the job runs inline on the caller's scheduler, the answer is left
/// in its slot for the NIF to return (see `inline`).
pub struct Reply {
    pid: LocalPid,
    job: Arc<JobCell>,
    sent: bool,
    slot: Option<Arc<Slot>>,
}

impl Reply {
    pub fn new(pid: LocalPid, job: Arc<JobCell>, slot: Option<Arc<Slot>>) -> Self {
        Self {
            pid,
            job,
            sent: false,
            slot,
        }
    }

    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.job.cancel_flag()
    }

    /// The caller, as the listener of live output.
    pub fn listener(&self) -> Listener {
        Listener {
            pid: self.pid,
            job: self.job.clone(),
        }
    }

    pub fn send<F>(mut self, build: F)
    where
        F: for<'a> FnOnce(Env<'a>) -> Term<'a> + Send + 'static,
    {
        self.sent = true;
        let build: Build = Box::new(build);
        let build = match self.slot.take() {
            Some(slot) => match slot.offer(build) {
                Ok(()) => return,
                Err(build) => build,
            },
            None => build,
        };
        let job = self.job.resource();
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&self.pid, move |env| {
            (atoms::ex_monty(), job, build(env)).encode(env)
        });
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if self.sent {
            return;
        }
        if let Some(slot) = self.slot.take() {
            if slot.offer(Box::new(lost)).is_ok() {
                return;
            }
        }
        let job = self.job.resource();
        let mut env = OwnedEnv::new();
        let _ = env.send_and_clear(&self.pid, move |env| {
            (atoms::ex_monty(), job, lost(env)).encode(env)
        });
    }
}

/// The answer of a job that ended without answering (a host bug).
fn lost(env: Env<'_>) -> Term<'_> {
    let exception = sandbox_exception(
        env,
        atoms::sandbox_crashed(),
        "RuntimeError",
        "internal error in the ExMonty host; the execution was lost",
    );
    (atoms::error(), exception).encode(env)
}
