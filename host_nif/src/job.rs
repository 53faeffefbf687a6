//! Jobs: work queued for the worker threads, and its answer by message.
//!
//! Every NIF that runs guest code returns `{:ok, job}` at once; the result
//! arrives later as `{:ex_monty, job, result}`. The caller is monitored: if
//! it dies, or calls `job_cancel/1`, the job's cancel flag is set and the
//! guest is interrupted at the next epoch tick (or never started, if it was
//! still queued). A result too large to build off a scheduler thread is sent
//! as `{:deferred, pending}` and built by the caller with `job_materialize/1`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rustler::{Atom, Encoder, Env, LocalPid, Monitor, OwnedEnv, Resource, ResourceArc, Term};

use crate::atoms;
use crate::engine;
use crate::exceptions::{sandbox_error, sandbox_exception};
use crate::instance::Instance;
use crate::pool;

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

#[rustler::nif]
fn job_cancel(job: ResourceArc<JobRes>) -> Atom {
    job.cancel.store(true, Ordering::Relaxed);
    atoms::ok()
}

/// Queues `work` and returns `{:ok, job}` to the caller.
pub fn spawn<'a, F>(env: Env<'a>, work: F) -> Term<'a>
where
    F: FnOnce(Reply) + Send + 'static,
{
    let job = ResourceArc::new(JobRes {
        cancel: Arc::new(AtomicBool::new(false)),
    });
    let pid = env.pid();
    let _ = job.monitor(Some(env), &pid);
    let reply = Reply::new(pid, job.clone());
    let job_fn = move || {
        // Cancelled (or its caller died) while queued: do not start it at all.
        if reply.cancel_flag().load(Ordering::Relaxed) {
            reply.send(|env| sandbox_error(env, atoms::cancelled(), "execution was cancelled"));
        } else {
            work(reply);
        }
    };
    match pool::submit(Box::new(job_fn)) {
        Ok(()) => (atoms::ok(), job).encode(env),
        Err(message) => sandbox_error(env, atoms::not_initialized(), &message),
    }
}

/// Queues `work` with an instance: a warm one from the pool, or a `fresh` one.
pub fn spawn_with_instance<'a, F>(env: Env<'a>, fresh: bool, work: F) -> Term<'a>
where
    F: FnOnce(Reply, Instance) + Send + 'static,
{
    spawn(env, move |reply| {
        let instance = engine::runtime().and_then(|runtime| {
            if fresh {
                Instance::new(&runtime)
            } else {
                pool::checkout(&runtime)
            }
        });
        match instance {
            Ok(instance) => work(reply, instance),
            Err(message) => {
                reply.send(move |env| sandbox_error(env, atoms::sandbox_crashed(), &message))
            }
        }
    })
}

/// Builds a deferred result in the caller's environment.
type Build = Box<dyn for<'a> FnOnce(Env<'a>) -> Term<'a> + Send>;

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

    /// The caller, as the listener of live output.
    pub fn listener(&self) -> crate::output::Listener {
        crate::output::Listener {
            pid: self.pid,
            job: self.job.clone(),
        }
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
