//! Paused executions as a resource: resume, resolve futures, dump and load.
//!
//! Every operation takes the execution out on a worker thread
//! ([`SnapshotRes::acquire`]) and either puts it back unchanged (dumps,
//! answers the guest refused) or ends it (a resume that ran). Concurrent
//! operations wait their turn instead of failing, so only a resume that
//! really ran consumes a snapshot. Which answers a pause accepts is decided
//! by the guest alone; a refused answer leaves the pause as it was.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rustler::types::tuple::get_tuple;
use rustler::{Atom, Binary, Encoder, Env, Resource, ResourceArc, Term};

use crate::atoms;
use crate::bindings::{Answer, GuestError, HostError, Progress, Step};
use crate::control::{service_control, CallError};
use crate::exceptions::{exc_type_of_atom, guest_error, sandbox_error, trap_error};
use crate::inline;
use crate::instance::{CallResult, Instance};
use crate::job::{deferred, Reply};
use crate::pause::{self, hibernate, wake, wake_async, Held, Paused, PausedInstance};
use crate::pool;
use crate::pool::spawn_with_instance;
use crate::schedule::{conversion_error, nif_pair, Sched};
use crate::settings::{ExecLimits, LimitsMap};
use crate::step::{progress_term, reply_failure, serve_mounts, settle};
use crate::terms::{binary, make_struct, short_inspect, string};
use crate::values::{self, Budget, FromTermError, Site, ToTermError};

/// What a paused execution waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseKind {
    FunctionCall,
    OsCall,
    NameLookup,
    Futures,
    /// An idle REPL session between snippets (see `session.rs`).
    Session,
}

/// The session a paused snippet belongs to: when the snippet ends, its
/// instance goes back to the session (with the session's settings), not to
/// the pool.
#[derive(Clone)]
pub struct Owner {
    pub session: ResourceArc<SnapshotRes>,
    pub limits: ExecLimits,
}

enum State {
    Ready(Box<Paused>),
    /// A job (resume or dump) has it; others wait for it to come back.
    /// `snippet`: a session held by one of its snippets (running, or paused
    /// until it is answered), not for a moment by a dump or by being put to
    /// sleep.
    Busy {
        snippet: bool,
    },
    /// A resume went through (or the execution was lost with its instance).
    Consumed,
}

/// What taking a session for a snippet found.
pub enum SnippetTake {
    Taken(Box<Paused>),
    /// A snippet of the session is running or paused, or the session is lost.
    Busy,
    /// A dump (or putting it to sleep) has it for a moment: wait for it.
    Moment,
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
    /// Threads waiting on `turn`: the execution's return wakes them only if
    /// there are any (waking costs a system call even when nobody waits).
    waiting: AtomicUsize,
    owner: Option<Owner>,
}

#[rustler::resource_impl]
impl Resource for SnapshotRes {}

impl Drop for SnapshotRes {
    /// A paused snippet dropped without being resumed hands its session back
    /// (the snippet abandoned), on a worker: a session never stays busy. A
    /// one-shot execution dropped without being resumed is abandoned on a
    /// worker and its instance goes back to the pool, like after a dump: an
    /// instance costs far more to make (and to unmap, here on a scheduler)
    /// than to clear.
    fn drop(&mut self) {
        let state = std::mem::replace(
            self.state.get_mut().unwrap_or_else(|e| e.into_inner()),
            State::Consumed,
        );
        let State::Ready(paused) = state else {
            return;
        };
        match self.owner.take() {
            Some(owner) => {
                let _ = pool::submit(Box::new(move || abandon_paused(*paused, Some(owner))));
            }
            None => abandon_paused(*paused, None),
        }
    }
}

/// Ends a paused execution nobody will resume: a paused snippet is
/// abandoned and its session gets its instance back (with the snippet's
/// effects so far), here, so this runs on a worker; a one-shot execution's
/// instance is cleared and goes back to the pool, on a worker.
fn abandon_paused(paused: Paused, owner: Option<Owner>) {
    let Paused { held, limits } = paused;
    let Some(owner) = owner else {
        if let Held::Live(live) = held {
            recycle(live);
        }
        return;
    };
    match wake(held, &limits) {
        Ok(mut instance) => match instance.repl_abandon_feed(&service_control()) {
            Ok(()) => {
                if let Some(session) = give_back(instance, Some(owner)) {
                    trim(&session);
                }
            }
            Err(_) => owner.session.consume(),
        },
        Err(_) => owner.session.consume(),
    }
}

/// Gives up a paused execution now instead of when its last term is
/// garbage-collected: a paused snippet's session is free for its next
/// snippet as soon as this answers. `{:ok, job}`, answered `:ok` (also when
/// the snapshot was already resumed).
#[rustler::nif]
fn snapshot_abandon(env: Env<'_>, snapshot: ResourceArc<SnapshotRes>) -> Term<'_> {
    inline::spawn(env, false, move |reply| async move {
        if let Acquired::Paused(paused) = snapshot.acquire(&reply.cancel_flag()).await {
            snapshot.consume();
            abandon_paused(*paused, snapshot.owner.clone());
        }
        reply.send(|env| atoms::ok().encode(env));
    })
}

/// Clears the paused execution (or idle session) an instance holds and
/// returns the instance to the pool, on a worker (guest code never runs in a
/// destructor, which may be on a scheduler). The instance counts as paused
/// until it is cleared, so pauses waiting to be recycled still count against
/// `max_live_paused` (until it is in the pool, or dropped: an instance that
/// cannot be cleared, or that the pool has no room for).
fn recycle(live: PausedInstance) {
    let _ = pool::submit(Box::new(move || {
        live.finish_with(|mut instance| {
            if pool::has_room() && instance.abandon(&service_control()).is_ok() {
                pool::checkin(instance);
            }
        });
    }));
}

/// Where an instance goes when its execution ends without a trap: back to
/// its session, or to the pool. Returns the session when it is to be put to
/// sleep once the answer is out ([`trim`]).
fn give_back(mut instance: Instance, owner: Option<Owner>) -> Option<ResourceArc<SnapshotRes>> {
    match owner {
        Some(owner) => {
            // A snippet is a use: an instance that served a long session
            // retires (instead of joining the pool) when the session ends.
            instance.count_use();
            owner.session.release(Paused {
                held: Held::Live(PausedInstance::new(instance)),
                limits: owner.limits,
            });
            pause::over_cap().then_some(owner.session)
        }
        None => {
            pool::checkin(instance);
            None
        }
    }
}

/// Puts a paused execution (or an idle session) to sleep as its dump bytes
/// when more pauses keep an instance than `max_live_paused` allows. Called
/// after the answer that created the pause is out, so the caller never
/// waits for the dump; a pause its caller already took again is left alone.
pub fn trim(snapshot: &SnapshotRes) {
    if !pause::over_cap() {
        return;
    }
    let Some(Paused { held, limits }) = snapshot.try_acquire() else {
        return;
    };
    let held = match held {
        Held::Live(live) => match live.into_instance() {
            Some(instance) => match hibernate(instance) {
                Ok(held) => held,
                Err(_) => return snapshot.lose(),
            },
            None => return snapshot.lose(),
        },
        hibernated => hibernated,
    };
    snapshot.release(Paused { held, limits });
}

/// What `acquire` found.
pub enum Acquired {
    Paused(Box<Paused>),
    Consumed,
    Cancelled,
}

impl SnapshotRes {
    pub fn new(kind: PauseKind, paused: Paused, owner: Option<Owner>) -> Self {
        Self {
            kind,
            state: Mutex::new(State::Ready(Box::new(paused))),
            turn: Condvar::new(),
            waiting: AtomicUsize::new(0),
            owner,
        }
    }

    /// Takes the execution if nobody else has it; `None` when busy or consumed.
    pub fn try_acquire(&self) -> Option<Paused> {
        let mut state = self.state.lock().ok()?;
        match std::mem::replace(&mut *state, State::Busy { snippet: false }) {
            State::Ready(paused) => Some(*paused),
            other => {
                *state = other;
                None
            }
        }
    }

    /// Takes a session for a snippet, if it is idle.
    pub fn take_for_snippet(&self) -> SnippetTake {
        let Ok(mut state) = self.state.lock() else {
            return SnippetTake::Busy;
        };
        match std::mem::replace(&mut *state, State::Busy { snippet: true }) {
            State::Ready(paused) => SnippetTake::Taken(paused),
            other => {
                let moment = matches!(other, State::Busy { snippet: false });
                *state = other;
                if moment {
                    SnippetTake::Moment
                } else {
                    SnippetTake::Busy
                }
            }
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
    /// `cancel` is set: the caller died or gave up). Waiting never holds a
    /// thread: on a worker it waits for the execution's release a moment,
    /// then lets other jobs run (the job holding the execution may be one
    /// of them) and tries again when its turn comes back.
    pub async fn acquire(&self, cancel: &AtomicBool) -> Acquired {
        self.acquire_as(cancel, false).await
    }

    /// `acquire`, marking the execution (a session) as held by a snippet
    /// when `snippet`.
    pub async fn acquire_as(&self, cancel: &AtomicBool, snippet: bool) -> Acquired {
        loop {
            {
                let Ok(mut state) = self.state.lock() else {
                    return Acquired::Consumed;
                };
                match std::mem::replace(&mut *state, State::Busy { snippet }) {
                    State::Ready(paused) => return Acquired::Paused(paused),
                    // Another job has it: left as it was.
                    other => {
                        let consumed = matches!(other, State::Consumed);
                        *state = other;
                        if consumed {
                            return Acquired::Consumed;
                        }
                    }
                }
                if cancel.load(Ordering::Relaxed) {
                    return Acquired::Cancelled;
                }
                if !inline::active() {
                    // Counted while the state is locked: whoever changes the
                    // state next sees the count, and wakes this thread.
                    self.waiting.fetch_add(1, Ordering::AcqRel);
                    let _ = self.turn.wait_timeout(state, Duration::from_millis(1));
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                }
            }
            inline::pass_turn().await;
        }
    }

    /// Puts the execution back as it was.
    pub fn release(&self, paused: Paused) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Ready(Box::new(paused));
        }
        self.wake_waiting();
    }

    /// Marks the execution as resumed (or lost).
    pub fn consume(&self) {
        if let Ok(mut state) = self.state.lock() {
            *state = State::Consumed;
        }
        self.wake_waiting();
    }

    /// Marks the execution as lost (its instance trapped): a paused
    /// snippet's session, which waits for the snippet, is lost with it
    /// instead of staying busy for ever.
    pub fn lose(&self) {
        self.consume();
        if let Some(owner) = &self.owner {
            owner.session.consume();
        }
    }

    fn wake_waiting(&self) {
        if self.waiting.load(Ordering::Acquire) > 0 {
            self.turn.notify_all();
        }
    }
}

/// `%ExMonty.Snapshot{resource: ...}`
pub fn snapshot_term<'a>(env: Env<'a>, snapshot: ResourceArc<SnapshotRes>) -> Term<'a> {
    make_struct(
        env,
        atoms::elixir_exmonty_snapshot(),
        &[(atoms::resource(), snapshot.encode(env))],
    )
    .unwrap_or_else(|_| atoms::error().encode(env))
}

/// Replies with the outcome of a call that may pause: the value, the error,
/// or a new snapshot holding the paused execution.
pub fn reply_step(
    reply: Reply,
    instance: Instance,
    result: CallResult<Step>,
    limits: ExecLimits,
    owner: Option<Owner>,
) {
    if let Some(snapshot) = answer_step(reply, instance, result, limits, owner) {
        trim(&snapshot);
    }
}

/// Results larger than this (encoded) are built into terms on a worker,
/// not on the caller's scheduler.
const INLINE_RESULT_BYTES: usize = 64 * 1024;

/// Whether the answer to `result` must be made on a worker: mounts are
/// served there (file I/O), and large results are built there.
fn answer_on_worker(result: &CallResult<Step>, limits: &ExecLimits) -> bool {
    let Ok(Ok(step)) = result else {
        return false;
    };
    let payload = match &step.progress {
        Progress::Complete(value) => value.len(),
        Progress::FunctionCall(call) => {
            call.args.iter().map(Vec::len).sum::<usize>()
                + call.kwargs.iter().map(|(_, v)| v.len()).sum::<usize>()
        }
        Progress::OsCall(_) if limits.mounts.is_some() => return true,
        Progress::OsCall(call) => {
            call.args.iter().map(Vec::len).sum::<usize>()
                + call.kwargs.iter().map(|(_, v)| v.len()).sum::<usize>()
        }
        Progress::NameLookup(name) => name.len(),
        Progress::ResolveFutures(ids) => ids.len() * 4,
    };
    payload + step.output.len() > INLINE_RESULT_BYTES
}

/// `reply_step`, in a slice (see `inline`): what cannot be done on a
/// scheduler moves to a worker first, and a pause beyond the live cap is
/// hibernated on a worker after the answer is out.
pub async fn reply_step_async(
    reply: Reply,
    instance: Instance,
    result: CallResult<Step>,
    limits: ExecLimits,
    owner: Option<Owner>,
) {
    if answer_on_worker(&result, &limits) {
        inline::to_worker().await;
    }
    if let Some(snapshot) = answer_step(reply, instance, result, limits, owner) {
        inline::to_worker().await;
        trim(&snapshot);
    }
}

/// Answers the outcome of a call; returns the pause (or session) to put to
/// sleep after the answer ([`trim`]) when the live cap is exceeded.
fn answer_step(
    reply: Reply,
    mut instance: Instance,
    result: CallResult<Step>,
    limits: ExecLimits,
    owner: Option<Owner>,
) -> Option<ResourceArc<SnapshotRes>> {
    let result = serve_mounts(&reply, &mut instance, result, &limits);
    let step = match result {
        Ok(Ok(Step {
            progress: Progress::Complete(value),
            output,
        })) => {
            let trim = give_back(instance, owner);
            reply.send(
                move |env| match values::value_to_term(env, &value, Site::Worker) {
                    Ok(term) => {
                        (atoms::ok(), (atoms::complete(), term, string(env, &output))).encode(env)
                    }
                    Err(ToTermError::Invalid(message)) => {
                        sandbox_error(env, atoms::invalid_input(), &message)
                    }
                    Err(ToTermError::NeedsScheduler) => deferred(env, move |env| {
                        match values::value_to_term(env, &value, Site::Scheduler) {
                            Ok(term) => {
                                (atoms::ok(), (atoms::complete(), term, string(env, &output)))
                                    .encode(env)
                            }
                            Err(error) => to_term_error(env, error),
                        }
                    }),
                },
            );
            return trim;
        }
        Ok(Ok(step)) => step,
        // The instance is sound: a Python error ends the execution (a
        // session keeps its state), a refused request changed nothing.
        Ok(Err(error)) => {
            let trim = give_back(instance, owner);
            reply.send(move |env| guest_error(env, &error));
            return trim;
        }
        Err(CallError::Trap(trapped)) => {
            if let Some(owner) = owner {
                owner.session.consume();
            }
            reply.send(move |env| trap_error(env, &trapped));
            return None;
        }
    };
    let Step { progress, output } = step;
    let kind = match &progress {
        Progress::FunctionCall(_) => PauseKind::FunctionCall,
        Progress::OsCall(_) => PauseKind::OsCall,
        Progress::NameLookup(_) => PauseKind::NameLookup,
        _ => PauseKind::Futures,
    };
    // The pause keeps its instance until its answer is out; beyond the live
    // cap it is hibernated after (`trim`).
    let held = Held::Live(PausedInstance::new(instance));
    let snapshot = ResourceArc::new(SnapshotRes::new(kind, Paused { held, limits }, owner));
    let kept = snapshot.clone();
    reply.send(move |env| {
        let term = snapshot_term(env, snapshot.clone());
        match progress_term(env, &progress, term, &output, Site::Worker) {
            Ok(term) => (atoms::ok(), term).encode(env),
            Err(ToTermError::Invalid(message)) => {
                sandbox_error(env, atoms::invalid_input(), &message)
            }
            Err(ToTermError::NeedsScheduler) => deferred(env, move |env| {
                let term = snapshot_term(env, snapshot);
                match progress_term(env, &progress, term, &output, Site::Scheduler) {
                    Ok(term) => (atoms::ok(), term).encode(env),
                    Err(error) => to_term_error(env, error),
                }
            }),
        }
    });
    pause::over_cap().then_some(kept)
}

fn to_term_error(env: Env<'_>, error: ToTermError) -> Term<'_> {
    match error {
        ToTermError::Invalid(message) => sandbox_error(env, atoms::invalid_input(), &message),
        ToTermError::NeedsScheduler => sandbox_error(
            env,
            atoms::invalid_input(),
            "internal: value could not be built",
        ),
    }
}

/// Takes the paused execution of `snapshot` on a worker and runs `work` on
/// it; a consumed snapshot, or a caller that gave up while waiting its turn,
/// is answered without touching it.
pub fn with_paused<'a, F>(env: Env<'a>, snapshot: ResourceArc<SnapshotRes>, work: F) -> Term<'a>
where
    F: FnOnce(Reply, &SnapshotRes, Paused) + Send + 'static,
{
    inline::spawn(env, false, move |reply| async move {
        match snapshot.acquire(&reply.cancel_flag()).await {
            Acquired::Paused(paused) => work(reply, &snapshot, *paused),
            Acquired::Consumed => reply.send(consumed),
            Acquired::Cancelled => {
                reply.send(|env| sandbox_error(env, atoms::cancelled(), "execution was cancelled"))
            }
        }
    })
}

/// An answer to a paused execution.
enum Answering {
    Resume(Answer),
    Futures(Vec<(u32, Answer)>),
}

/// Answers a paused execution, starting on the calling scheduler (see
/// `inline`). A refused answer leaves the execution exactly as it was;
/// anything else consumes the snapshot and carries on with the next step.
fn answer<'a>(env: Env<'a>, snapshot: ResourceArc<SnapshotRes>, answering: Answering) -> Term<'a> {
    inline::spawn(env, true, move |reply| async move {
        // An execution another job has is waited for on a worker.
        let paused = match snapshot.acquire(&reply.cancel_flag()).await {
            Acquired::Paused(paused) => *paused,
            Acquired::Consumed => return reply.send(consumed),
            Acquired::Cancelled => {
                return reply
                    .send(|env| sandbox_error(env, atoms::cancelled(), "execution was cancelled"))
            }
        };
        answer_paused(reply, &snapshot, paused, answering).await;
    })
}

/// Wakes what `snapshot` held (see `wake_async`) into an instance that
/// streams output as `live_output` asks (a woken execution may land in one
/// that streams differently). On failure a hibernated execution keeps its
/// bytes (released back to `snapshot`); a live one is lost with its instance.
pub async fn wake_held(
    snapshot: &SnapshotRes,
    held: Held,
    limits: &ExecLimits,
    live_output: bool,
) -> Result<Instance, Result<GuestError, CallError>> {
    let hibernated = match &held {
        Held::Hibernated(bytes) => Some(bytes.clone()),
        Held::Live(_) => None,
    };
    let failure = match wake_async(held, limits).await {
        Ok(mut instance) => match instance.apply_live_output_async(live_output).await {
            Err(trap) => Err(trap),
            Ok(_) => return Ok(instance),
        },
        Err(failure) => failure,
    };
    match hibernated {
        Some(bytes) => snapshot.release(Paused {
            held: Held::Hibernated(bytes),
            limits: limits.clone(),
        }),
        None => snapshot.lose(),
    }
    Err(failure)
}

async fn answer_paused(reply: Reply, snapshot: &SnapshotRes, paused: Paused, answering: Answering) {
    let Paused { held, limits } = paused;
    let hibernated = match &held {
        Held::Hibernated(bytes) => Some(bytes.clone()),
        Held::Live(_) => None,
    };
    let mut instance = match wake_held(snapshot, held, &limits, limits.live_output).await {
        Ok(instance) => instance,
        Err(Ok(error)) => return reply.send(move |env| guest_error(env, &error)),
        Err(Err(CallError::Trap(trapped))) => {
            return reply.send(move |env| trap_error(env, &trapped))
        }
    };
    let ctl = limits.control(&reply);
    let max_memory = limits.guest.max_memory;
    let result = match answering {
        Answering::Resume(answer) => {
            instance
                .resume_async(&ctl, &fit_answer(answer, max_memory))
                .await
        }
        Answering::Futures(answers) => {
            let answers: Vec<(u32, Answer)> = answers
                .into_iter()
                .map(|(id, answer)| (id, fit_answer(answer, max_memory)))
                .collect();
            instance.resolve_futures_async(&ctl, &answers).await
        }
    };
    if let Ok(Err(GuestError::Invalid(message))) = result {
        // The guest refused the answer and kept the pause as it was.
        let held = match hibernated {
            Some(bytes) => {
                inline::to_worker().await;
                if instance.abandon(&service_control()).is_ok() {
                    pool::checkin(instance);
                }
                Held::Hibernated(bytes)
            }
            None => Held::Live(PausedInstance::new(instance)),
        };
        snapshot.release(Paused { held, limits });
        return reply.send(move |env| sandbox_error(env, atoms::invalid_input(), &message));
    }
    snapshot.consume();
    reply_step_async(reply, instance, result, limits, snapshot.owner.clone()).await;
}

/// A value larger than the execution's `max_memory` cannot enter the guest:
/// the call raises MemoryError in Python instead.
fn fit_answer(answer: Answer, max_memory: Option<u64>) -> Answer {
    match (&answer, max_memory) {
        (Answer::Value(bytes), Some(max)) if bytes.len() as u64 > max => Answer::Raise(HostError {
            type_name: "MemoryError".to_owned(),
            message: format!(
                "the host's answer ({} bytes encoded) exceeds max_memory ({max} bytes)",
                bytes.len()
            ),
        }),
        _ => answer,
    }
}

/// Decodes an answer term, as `ExMonty.resume/3` documents it:
/// `{:ok, value}`, `{:error, type, message}`, `:pending` or `:undefined`.
fn decode_answer(
    env: Env<'_>,
    term: Term<'_>,
    budget: &mut Budget,
) -> Result<Answer, FromTermError> {
    let invalid = || FromTermError::Invalid(format!("invalid answer {}", short_inspect(term)));
    if let Ok(atom) = term.decode::<Atom>() {
        return if atom == atoms::pending() {
            Ok(Answer::Pending)
        } else if atom == atoms::undefined() {
            Ok(Answer::Undefined)
        } else {
            Err(invalid())
        };
    }
    let parts = get_tuple(term).map_err(|_| invalid())?;
    match parts.as_slice() {
        [tag, value] if tag.decode::<Atom>().is_ok_and(|a| a == atoms::ok()) => {
            let object = values::term_to_value(*value, &|| "result".to_owned(), budget)?;
            let bytes = postcard::to_allocvec(&object)
                .map_err(|e| FromTermError::Invalid(e.to_string()))?;
            Ok(Answer::Value(bytes))
        }
        [tag, kind, message] if tag.decode::<Atom>().is_ok_and(|a| a == atoms::error()) => {
            let type_name = kind
                .decode::<Atom>()
                .ok()
                .and_then(|atom| exc_type_of_atom(env, atom))
                .map(|exc_type| exc_type.to_string())
                .ok_or_else(|| {
                    FromTermError::Invalid(format!(
                        "{} is not a Python exception type (see ExMonty.Exception.python_types/0)",
                        short_inspect(*kind)
                    ))
                })?;
            let message = message.decode::<String>().map_err(|_| {
                FromTermError::Invalid("the exception message must be a UTF-8 string".to_owned())
            })?;
            Ok(Answer::Raise(HostError { type_name, message }))
        }
        _ => Err(invalid()),
    }
}

fn consumed(env: Env<'_>) -> Term<'_> {
    sandbox_error(
        env,
        atoms::snapshot_consumed(),
        "this snapshot was already resumed (a snapshot resumes once; dump and load it to fork)",
    )
}

fn resume<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    answer: Term<'a>,
    sched: Sched,
) -> Term<'a> {
    if snapshot.is_consumed() {
        return consumed(env);
    }
    match snapshot.kind() {
        PauseKind::Futures => {
            return sandbox_error(
                env,
                atoms::invalid_input(),
                "the execution waits for futures: use ExMonty.resume_futures/3",
            )
        }
        PauseKind::Session => {
            return sandbox_error(
                env,
                atoms::invalid_input(),
                "this is a session, not a paused execution: use ExMonty.Session",
            )
        }
        _ => {}
    }
    // Decode first: a bad answer leaves the snapshot usable.
    let answer = match decode_answer(env, answer, &mut sched.budget()) {
        Ok(answer) => answer,
        Err(error) => return conversion_error(env, error),
    };
    self::answer(env, snapshot, Answering::Resume(answer))
}

nif_pair!('a, snapshot_resume, snapshot_resume_dirty, resume, (
    snapshot: [ResourceArc<SnapshotRes>],
    answer: [Term<'a>],
));

fn resolve<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    results: Vec<(u32, Term<'a>)>,
    sched: Sched,
) -> Term<'a> {
    if snapshot.is_consumed() {
        return consumed(env);
    }
    if snapshot.kind() != PauseKind::Futures {
        return sandbox_error(
            env,
            atoms::invalid_input(),
            "the execution does not wait for futures: use ExMonty.resume/3",
        );
    }
    let mut budget = sched.budget();
    let mut answers = Vec::with_capacity(results.len());
    for (id, term) in results {
        match decode_answer(env, term, &mut budget) {
            Ok(answer) => answers.push((id, answer)),
            Err(FromTermError::Invalid(message)) => {
                return conversion_error(
                    env,
                    FromTermError::Invalid(format!("the answer for call {id}: {message}")),
                )
            }
            Err(error) => return conversion_error(env, error),
        }
    }
    self::answer(env, snapshot, Answering::Futures(answers))
}

nif_pair!('a, snapshot_resume_futures, snapshot_resume_futures_dirty, resolve, (
    snapshot: [ResourceArc<SnapshotRes>],
    results: [Vec<(u32, Term<'a>)>],
));

/// Serialises a paused execution: `{:ok, {bytes, kind}}`. The snapshot stays
/// usable whatever happens: the dump cannot be interrupted by the caller,
/// its memory is not charged to the execution's limit, and concurrent dumps
/// take turns.
#[rustler::nif]
fn snapshot_dump(env: Env<'_>, snapshot: ResourceArc<SnapshotRes>) -> Term<'_> {
    if snapshot.is_consumed() {
        return consumed(env);
    }
    let kind = kind_tag(snapshot.kind());
    with_paused(env, snapshot, move |reply, snapshot, mut paused| {
        let dumped = match &mut paused.held {
            Held::Hibernated(bytes) => Ok(Ok(bytes.clone())),
            Held::Live(live) => match live.instance_mut() {
                Some(instance) => instance.dump_snapshot(&service_control()),
                None => Ok(Err(GuestError::Invalid(
                    "internal: the paused execution lost its instance".to_owned(),
                ))),
            },
        };
        let untrusted = paused.limits.untrusted;
        match dumped {
            Ok(Ok(bytes)) => {
                snapshot.release(paused);
                reply.send(move |env| {
                    (atoms::ok(), (binary(env, &bytes), kind, untrusted)).encode(env)
                });
            }
            Ok(Err(error)) => {
                snapshot.release(paused);
                reply.send(move |env| guest_error(env, &error));
            }
            // The instance trapped: the paused execution is lost with it.
            Err(CallError::Trap(trapped)) => {
                snapshot.lose();
                reply.send(move |env| trap_error(env, &trapped));
            }
        }
    })
}

fn kind_tag(kind: PauseKind) -> u8 {
    match kind {
        PauseKind::FunctionCall => 0,
        PauseKind::OsCall => 1,
        PauseKind::NameLookup => 2,
        PauseKind::Futures => 3,
        PauseKind::Session => 4,
    }
}

/// Loads a dump's bytes (copied here, or `:dirty` when too large for a
/// normal scheduler) into an instance on a worker and hands `then` what the
/// guest made of them. A dump whose signature Elixir verified (`signed`) was
/// written by ExMonty and goes into a warm instance. Any other gets a new
/// instance: its bytes may be crafted, and a warm instance's memory still
/// holds what earlier executions freed, which a dump that broke Monty's
/// invariants could reach.
pub fn spawn_load<'a, F>(
    env: Env<'a>,
    bytes: Binary<'a>,
    signed: bool,
    sched: Sched,
    limits: ExecLimits,
    then: F,
) -> Term<'a>
where
    F: FnOnce(Reply, Instance, CallResult<Progress>, ExecLimits) + Send + 'static,
{
    let bytes = match sched.copy(env, bytes) {
        Ok(bytes) => bytes,
        Err(term) => return term,
    };
    let mut limits = limits;
    // The execution stays untrusted for good: its instance is dropped after
    // it, it wakes from hibernation into a new instance, and its dumps say
    // so (a signature added later does not vouch for what it came from).
    limits.untrusted = !signed;
    spawn_with_instance(env, limits.untrusted, move |reply, mut instance| {
        let typed = limits.mounts.is_some();
        let result = instance.load_snapshot(&service_control(), &bytes, &limits.guest, typed);
        then(reply, instance, result, limits)
    })
}

/// Restores a dumped execution and reports what it waits for.
fn load<'a>(
    env: Env<'a>,
    bytes: Binary<'a>,
    limits: LimitsMap,
    signed: bool,
    sched: Sched,
) -> Term<'a> {
    let limits = ExecLimits::from(limits);
    spawn_load(env, bytes, signed, sched, limits, loaded_snapshot)
}

/// Answers a load with what the guest made of the dump.
fn loaded_snapshot(
    reply: Reply,
    instance: Instance,
    result: CallResult<Progress>,
    limits: ExecLimits,
) {
    match result {
        // A session dump is not a paused execution; the instance that
        // loaded it is dropped, not pooled.
        Ok(Ok(Progress::Complete(_))) => reply.send(|env| {
            sandbox_error(
                env,
                atoms::invalid_input(),
                "this dump holds a session, not a paused execution: use ExMonty.Session",
            )
        }),
        Ok(Ok(progress)) => {
            let step = Step {
                progress,
                output: String::new(),
            };
            reply_step(reply, instance, Ok(Ok(step)), limits, None);
        }
        other => {
            if let Err(failure) = settle(instance, other) {
                reply_failure(reply, failure);
            }
        }
    }
}

nif_pair!('a, snapshot_load, snapshot_load_dirty, load, (
    bytes: [Binary<'a>],
    limits: [LimitsMap],
    signed: [bool],
));

/// Hibernates an idle paused execution or session now: its instance goes
/// back to the pool, it waits as its dump bytes and wakes on its next use.
/// `{:ok, job}`, answered `:ok` (also when it already was hibernated).
#[rustler::nif]
fn snapshot_hibernate(env: Env<'_>, snapshot: ResourceArc<SnapshotRes>) -> Term<'_> {
    with_paused(env, snapshot, move |reply, snapshot, paused| {
        let Paused { held, limits } = paused;
        let held = match held {
            Held::Live(live) => match live.into_instance() {
                Some(instance) => match hibernate(instance) {
                    Ok(held) => held,
                    Err(CallError::Trap(trapped)) => {
                        snapshot.lose();
                        return reply.send(move |env| trap_error(env, &trapped));
                    }
                },
                None => {
                    snapshot.lose();
                    return reply.send(|env| {
                        sandbox_error(env, atoms::invalid_input(), "the execution was lost")
                    });
                }
            },
            hibernated => hibernated,
        };
        snapshot.release(Paused { held, limits });
        reply.send(|env| atoms::ok().encode(env));
    })
}
