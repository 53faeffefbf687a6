//! Short executions run on the calling scheduler.
//!
//! Handing every execution to a worker thread costs more than a short
//! execution itself (a queue, a thread wake-up, a message back, a process
//! wake-up). So the NIFs that run Python first drive their job right where
//! they were called, for one *slice*: guest code runs through wasmtime's
//! async calls, on a fiber with its own stack (never on the scheduler's),
//! and the epoch callback makes it yield when the slice is over (see
//! below). A job that finishes within its slice answers as the NIF's return
//! value, `{:done, result}`; one that yields — guest code still running when
//! the slice ends, or host work that must not run on a scheduler (serving
//! mounts, streaming output, waiting for a busy snapshot, building a large
//! result) — is handed, as it stands, to a worker thread, and answers by
//! message as before (`{:ok, job}`). Work that follows the answer (putting
//! a paused execution to sleep) is handed to a worker too, after the answer
//! is out.
//!
//! A slice ends at the second epoch tick a guest call sees (one to two
//! milliseconds of guest code, so a short call is never cut by a tick that
//! happens to fall inside it); the NIF then tells the VM how much of its
//! time slice it used.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use rustler::{Encoder, Env, Term};

use crate::atoms;
use crate::control::JobCell;
use crate::exceptions::sandbox_error;
use crate::job::{Build, Reply};
use crate::pool;

thread_local! {
    /// Whether this thread is a scheduler running a job's slice.
    static SLICE: Cell<bool> = const { Cell::new(false) };
    /// Epoch ticks the current slice has seen.
    static TICKS: Cell<u32> = const { Cell::new(0) };
}

/// Called at every epoch tick of guest code: whether the code must yield
/// because its slice is over (the slice's second tick on a scheduler).
pub fn tick_ends_slice() -> bool {
    if !active() {
        return false;
    }
    TICKS.with(|ticks| {
        let seen = ticks.get().saturating_add(1);
        ticks.set(seen);
        seen >= 2
    })
}

/// Whether the current thread is running a slice on a scheduler: guest code
/// yields when the slice is over, and host work that may block or take long
/// must first move to a worker ([`to_worker`]).
pub fn active() -> bool {
    SLICE.with(Cell::get)
}

/// Where an inline job's answer is left for the NIF that runs it. While the
/// slice runs, [`Reply::send`] stores the answer here; once the job is handed
/// to a worker, answers go by message.
#[derive(Default)]
pub struct Slot {
    open: AtomicBool,
    answer: Mutex<Option<Build>>,
}

impl Slot {
    /// Keeps `build` for the NIF, if the slot is still open.
    pub fn offer(&self, build: Build) -> Result<(), Build> {
        if !self.open.load(Ordering::Acquire) {
            return Err(build);
        }
        match self.answer.lock() {
            Ok(mut answer) => {
                *answer = Some(build);
                Ok(())
            }
            Err(_) => Err(build),
        }
    }

    fn take(&self) -> Option<Build> {
        self.open.store(false, Ordering::Release);
        self.answer.lock().ok().and_then(|mut answer| answer.take())
    }
}

/// Resolves at once on a worker; on a scheduler, returns `Pending` once so
/// that the job is handed to a worker, where it resumes.
pub fn to_worker() -> ToWorker {
    ToWorker
}

pub struct ToWorker;

/// Returns `Pending` once, wherever it runs: on a scheduler the job moves
/// to a worker; on a worker it goes to the back of the queue, so a job
/// waiting for another (a snapshot another job has) never holds a worker
/// the other needs.
pub fn pass_turn() -> PassTurn {
    PassTurn(false)
}

pub struct PassTurn(bool);

impl Future for PassTurn {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Future for ToWorker {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if active() {
            cx.waker().wake_by_ref();
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }
}

/// Marks the thread as running a slice until dropped (also when host code
/// panics through the poll).
struct SliceGuard;

impl SliceGuard {
    fn enter() -> Self {
        SLICE.with(|slice| slice.set(true));
        TICKS.with(|ticks| ticks.set(0));
        SliceGuard
    }
}

impl Drop for SliceGuard {
    fn drop(&mut self) {
        SLICE.with(|slice| slice.set(false));
    }
}

pub type Job = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Runs `future` to its end on a worker thread, for host code that is not
/// a job of its own (there it never yields: guest code yields only in a
/// slice, and nothing it awaits passes its turn).
pub fn finish<F: Future>(future: F) -> F::Output {
    debug_assert!(!active(), "finish() on a scheduler");
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        std::thread::yield_now();
    }
}

/// Runs a job on a worker thread until it ends or passes its turn (see
/// [`pass_turn`]); then it goes to the back of the queue.
pub fn run_on_worker(mut job: Job) {
    let mut cx = Context::from_waker(Waker::noop());
    if job.as_mut().poll(&mut cx).is_pending() {
        // The workers are gone only when the VM unloads the library.
        let _ = pool::submit(Box::new(move || run_on_worker(job)));
    }
}

/// Runs a job: first a slice here on the calling scheduler when `inline`,
/// then (if it is not done) on a worker. Returns `{:done, result}` when the
/// job answered within its slice, else `{:ok, job}` (the answer comes as
/// `{:ex_monty, job, result}`). The caller is monitored from the moment the
/// job leaves its scheduler (while the slice runs, the caller is the one
/// running it).
pub fn spawn<'a, F, Fut>(env: Env<'a>, inline: bool, work: F) -> Term<'a>
where
    F: FnOnce(Reply) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let job = JobCell::new();
    let pid = env.pid();
    let slot = Arc::new(Slot::default());
    let reply = Reply::new(pid, job.clone(), inline.then(|| slot.clone()));
    let mut future: Job = Box::pin(work(reply));
    if inline {
        slot.open.store(true, Ordering::Release);
        let started = Instant::now();
        let polled = {
            let _slice = SliceGuard::enter();
            future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
        };
        let answer = slot.take();
        consume_timeslice(env, started);
        let rest = match polled {
            Poll::Ready(()) => None,
            Poll::Pending => Some(future),
        };
        if let Some(build) = answer {
            if let Some(rest) = rest {
                // What follows the answer carries on on a worker; if the
                // workers are gone it is dropped (its reply was sent).
                let _ = pool::submit(Box::new(move || run_on_worker(rest)));
            }
            return (atoms::done(), build(env)).encode(env);
        }
        match rest {
            Some(rest) => submit(env, job, rest),
            // Ended without answering: its reply answered on drop.
            None => sandbox_error(env, atoms::sandbox_crashed(), "the job ended unanswered"),
        }
    } else {
        submit(env, job, future)
    }
}

fn submit<'a>(env: Env<'a>, job: Arc<JobCell>, future: Job) -> Term<'a> {
    let job = job.resource();
    let _ = job.monitor(Some(env), &env.pid());
    match pool::submit(Box::new(move || run_on_worker(future))) {
        Ok(()) => (atoms::ok(), job).encode(env),
        Err(message) => sandbox_error(env, atoms::not_initialized(), &message),
    }
}

/// Tells the VM how much of the calling process's time slice (a
/// millisecond) the slice used.
fn consume_timeslice(env: Env<'_>, started: Instant) {
    let percent = (started.elapsed().as_micros() / 10).clamp(1, 100) as i32;
    rustler::schedule::consume_timeslice(env, percent);
}
