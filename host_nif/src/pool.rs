//! Worker threads and warm instances.
//!
//! A job runs on its caller's scheduler for one short slice at most (on a
//! wasmtime fiber, see `inline`); what is left of it goes to a fixed set of
//! worker threads (with stacks far larger than wasm may use), which answer
//! the calling process by message. Runaway code can occupy at most `workers`
//! threads; further jobs wait in the queue.
//!
//! Warm instances wait here between executions, in per-thread shards under
//! one cap.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustler::{Env, Term};

use crate::atoms;
use crate::engine::{self, Runtime, WORKER_STACK};
use crate::exceptions::sandbox_error;
use crate::inline;
use crate::instance::Instance;
use crate::job::Reply;

pub type Job = Box<dyn FnOnce() + Send + 'static>;

struct Pool {
    queue: Mutex<Sender<Job>>,
    /// Warm instances, in shards: each thread checks instances in and out
    /// of its own shard first, so an instance stays with the thread (and
    /// the core, and its caches) that last ran it, and concurrent callers
    /// do not take turns at one lock.
    idle: Box<[Shard]>,
    /// Instances in all shards together (at most `max_idle`).
    idle_count: Padded<AtomicUsize>,
    max_idle: usize,
    workers: usize,
}

/// One thread's warm instances, on cache lines of its own: two schedulers
/// taking and returning instances side by side would otherwise write to
/// the same line (a shard's lock is 32 bytes).
#[repr(align(128))]
struct Shard(Mutex<Vec<Instance>>);

/// A value alone on its cache lines (128 bytes: the line pair that
/// adjacent-line prefetchers fetch together).
#[repr(align(128))]
struct Padded<T>(T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

static POOL: OnceLock<Pool> = OnceLock::new();

/// Shards of the idle pool: more than the threads that usually run guest
/// code (schedulers, dirty schedulers, workers) on small machines.
const SHARDS: usize = 16;

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's shard of the idle pool, assigned on first use.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

fn own_shard() -> usize {
    SHARD.with(|shard| match shard.get() {
        Some(index) => index,
        None => {
            let index = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(Some(index));
            index
        }
    })
}

/// Starts `workers` threads (once; later calls keep the first pool).
pub fn start(workers: usize, priority: Priority) -> Result<usize, String> {
    if let Some(pool) = POOL.get() {
        return Ok(pool.workers);
    }
    let workers = workers.clamp(1, 256);
    let (sender, receiver) = channel::<Job>();
    let receiver = Arc::new(Mutex::new(receiver));
    for index in 0..workers {
        let receiver = receiver.clone();
        std::thread::Builder::new()
            .name(format!("ex_monty_worker_{index}"))
            .stack_size(WORKER_STACK)
            .spawn(move || {
                lower_priority(priority);
                work(&receiver)
            })
            .map_err(|e| format!("cannot start worker thread: {e}"))?;
    }
    let pool = Pool {
        queue: Mutex::new(sender),
        idle: (0..SHARDS).map(|_| Shard(Mutex::new(Vec::new()))).collect(),
        idle_count: Padded(AtomicUsize::new(0)),
        max_idle: workers * 2 + 2,
        workers,
    };
    let _ = POOL.set(pool);
    Ok(POOL.get().map_or(workers, |pool| pool.workers))
}

/// The OS priority of the worker threads (`config :ex_monty, worker_nice:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Linux's SCHED_IDLE class (nice 19 where that is refused): the
    /// workers get the CPU only when the VM's threads and every other
    /// normal-priority thread leave it over, and a waking scheduler takes
    /// it from them at once.
    Idle,
    /// A nice value, 0..=19 (0 leaves the priority as it is).
    Nice(i32),
}

/// Runs this worker thread at a lower OS priority than the BEAM's
/// schedulers. A CPU-bound guest then cannot keep a scheduler thread off
/// the CPU for long slices: the OS gives the schedulers the CPU first, so
/// the VM stays responsive under runaway Python (see also
/// [`yield_to_schedulers`]). Best effort: an error leaves the priority as
/// it was (SCHED_IDLE refused: nice 19).
fn lower_priority(priority: Priority) {
    #[cfg(target_os = "linux")]
    {
        let nice = match priority {
            Priority::Idle => 19,
            Priority::Nice(nice) => nice.clamp(0, 19),
        };
        // SAFETY: gettid, setpriority and sched_setscheduler take plain
        // integers and a pointer to a live sched_param; on Linux a thread
        // id given to them changes only that thread.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            if nice > 0 {
                libc::setpriority(libc::PRIO_PROCESS, tid, nice);
            }
            if priority == Priority::Idle {
                // The system call itself: musl's sched_setscheduler() always
                // fails (ENOSYS) by design.
                let param = libc::sched_param { sched_priority: 0 };
                libc::syscall(
                    libc::SYS_sched_setscheduler,
                    tid as libc::pid_t,
                    libc::SCHED_IDLE,
                    &param as *const libc::sched_param,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = priority;
}

/// Called by a worker running guest code at every epoch tick (1 ms): gives
/// the CPU to any thread waiting for it. A BEAM scheduler with nothing to
/// do spins and yields the CPU for a while before it sleeps (the VM's
/// default `+sbwt`); a yield is not a wake-up, so the OS lets the worker
/// that got the CPU run out its time slice (~3 ms on Linux 6.x), and a timer
/// that expires meanwhile waits for it: by default a 1 ms sleep then
/// overslept by 3–5 ms at p99 with runaway Python on every worker, 1.0–1.2
/// ms with this and SCHED_IDLE (see the README's *VM flags*). Costs a
/// system call a millisecond. Threads a worker starts (wasmtime's compile
/// threads, when the type checker is compiled on one) inherit its class.
pub fn yield_to_schedulers() {
    std::thread::yield_now();
}

/// How long an idle worker polls for the next job before sleeping. Waking a
/// sleeping thread costs tens of microseconds, more than a short execution.
const SPIN: Duration = Duration::from_micros(50);

fn next_job(receiver: &Receiver<Job>) -> Option<Job> {
    let started = Instant::now();
    loop {
        match receiver.try_recv() {
            Ok(job) => return Some(job),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) if started.elapsed() < SPIN => std::hint::spin_loop(),
            Err(TryRecvError::Empty) => return receiver.recv().ok(),
        }
    }
}

fn work(receiver: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(guard) = receiver.lock() else { return };
            match next_job(&guard) {
                Some(job) => job,
                None => return,
            }
        };
        // A bug in host code must not take the worker down with it; the job's
        // `Reply` answers the caller when it is dropped unsent.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Queues a job for the workers.
pub fn submit(job: Job) -> Result<(), String> {
    let pool = POOL.get().ok_or("ExMonty is not initialised")?;
    let queue = pool.queue.lock().map_err(|_| "the job queue is poisoned")?;
    let sent = queue.send(job);
    drop(queue);
    // A job the workers can no longer take is dropped here, after the queue
    // is unlocked: dropping it may submit another (a snapshot's destructor).
    sent.map_err(|_| "the workers have stopped".to_owned())
}

/// A warm instance, if one is idle: the one this thread ran last, if it is
/// still there, else one from another thread's shard.
fn take_idle() -> Option<Instance> {
    let pool = POOL.get()?;
    if pool.idle_count.load(Ordering::Acquire) == 0 {
        return None;
    }
    let own = own_shard();
    (0..SHARDS).find_map(|step| {
        let instance = shard(&pool.idle[(own + step) % SHARDS]).pop()?;
        pool.idle_count.fetch_sub(1, Ordering::AcqRel);
        Some(instance)
    })
}

/// A warm instance, or a new one; for an `untrusted` execution (restored
/// from an unsigned dump) always a new one, marked so that it serves that
/// execution alone and is never pooled.
pub fn checkout(runtime: &Runtime, untrusted: bool) -> Result<Instance, String> {
    let idle = if untrusted { None } else { take_idle() };
    match idle {
        Some(instance) => Ok(instance),
        None => Instance::new(runtime).map(|instance| marked(instance, untrusted)),
    }
}

/// `checkout`, in a slice: instantiating takes about 100 µs, so it is done
/// where the job runs, scheduler or worker.
pub async fn checkout_async(untrusted: bool) -> Result<Instance, String> {
    if !untrusted {
        if let Some(instance) = take_idle() {
            return Ok(instance);
        }
    }
    let instance = Instance::new_async(&*engine::runtime()?).await?;
    Ok(marked(instance, untrusted))
}

fn marked(mut instance: Instance, untrusted: bool) -> Instance {
    if untrusted {
        instance.mark_untrusted();
    }
    instance
}

/// Whether the pool would keep one more idle instance now.
pub fn has_room() -> bool {
    POOL.get()
        .is_some_and(|pool| pool.idle_count.load(Ordering::Acquire) < pool.max_idle)
}

/// Returns an instance after a clean execution. Worn or grown instances are
/// dropped instead, and so is any instance beyond the idle cap.
pub fn checkin(mut instance: Instance) {
    instance.count_use();
    if !instance.reusable() {
        return discard(instance);
    }
    let Some(pool) = POOL.get() else { return };
    if pool.idle_count.fetch_add(1, Ordering::AcqRel) >= pool.max_idle {
        pool.idle_count.fetch_sub(1, Ordering::AcqRel);
        return discard(instance);
    }
    shard(&pool.idle[own_shard()]).push(instance);
}

/// Instances waiting for a worker to drop them.
static DISCARDING: AtomicUsize = AtomicUsize::new(0);
/// More than this many wait (the workers are busy, say with runaway code)
/// and the caller drops the instance itself: a queue of dropped instances
/// would hold their memory until a worker is free.
const MAX_DISCARDING: usize = 4;

/// Drops an instance on a worker: unmapping its memory and stacks takes
/// tens of microseconds (and interrupts the other cores to flush their
/// TLBs), which the caller whose execution just ended should not wait for.
fn discard(instance: Instance) {
    if DISCARDING.fetch_add(1, Ordering::AcqRel) >= MAX_DISCARDING {
        DISCARDING.fetch_sub(1, Ordering::AcqRel);
        return drop(instance);
    }
    // Counted until the instance is gone, however the job ends: run, or
    // dropped unrun (the workers are gone), or unwound by a panic.
    let pending = (instance, Discarding);
    // Refused only when the workers are gone; the job, and the instance
    // with it, is then dropped here.
    let _ = submit(Box::new(move || drop(pending)));
}

/// One instance waiting to be dropped; the count goes down when this does,
/// after the instance before it in the job's tuple (fields drop in order).
struct Discarding;

impl Drop for Discarding {
    fn drop(&mut self) {
        DISCARDING.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Waits (up to `limit`) until no dropped instance waits for a worker, so
/// that instance counts read after it are settled.
pub fn settle_discards(limit: Duration) {
    let started = Instant::now();
    while DISCARDING.load(Ordering::Acquire) > 0 && started.elapsed() < limit {
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A shard, locked. A panic while it was locked cannot have left the list
/// half-updated (pushes and pops are whole), so a poisoned lock is used as is.
fn shard(idle: &Shard) -> std::sync::MutexGuard<'_, Vec<Instance>> {
    idle.0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// (workers, idle instances)
pub fn stats() -> (usize, usize) {
    POOL.get().map_or((0, 0), |pool| {
        (pool.workers, pool.idle_count.load(Ordering::Acquire))
    })
}

/// Drops every idle instance (used by tests and to shed memory).
pub fn drain() -> usize {
    POOL.get().map_or(0, |pool| {
        pool.idle
            .iter()
            .map(|idle| {
                // Taken under the lock, dropped (unmapped) after it.
                let taken = std::mem::take(&mut *shard(idle));
                pool.idle_count.fetch_sub(taken.len(), Ordering::AcqRel);
                taken.len()
            })
            .sum()
    })
}

/// Queues `work` and returns `{:ok, job}` to the caller.
pub fn spawn<'a, F>(env: Env<'a>, work: F) -> Term<'a>
where
    F: FnOnce(Reply) + Send + 'static,
{
    inline::spawn(env, false, move |reply| async move {
        // Cancelled (or its caller died) while queued: do not start it at all.
        if reply.cancel_flag().load(Ordering::Relaxed) {
            reply.send(|env| sandbox_error(env, atoms::cancelled(), "execution was cancelled"));
        } else {
            work(reply);
        }
    })
}

/// Queues `work` with an instance (see `checkout`).
pub fn spawn_with_instance<'a, F>(env: Env<'a>, untrusted: bool, work: F) -> Term<'a>
where
    F: FnOnce(Reply, Instance) + Send + 'static,
{
    spawn(env, move |reply| {
        let instance = engine::runtime().and_then(|runtime| checkout(&runtime, untrusted));
        match instance {
            Ok(instance) => work(reply, instance),
            Err(message) => {
                reply.send(move |env| sandbox_error(env, atoms::sandbox_crashed(), &message))
            }
        }
    })
}
