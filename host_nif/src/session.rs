//! REPL sessions as a resource: a heap that persists between snippets.
//!
//! A session is a [`SnapshotRes`] of kind `Session`: its instance (or, when
//! many are idle, its dump bytes) waits between snippets exactly as a paused
//! execution does, and is dumped and restored the same way. A snippet takes
//! the session (`try_acquire`: one snippet at a time), runs in its instance,
//! and pauses on host calls as any execution; the paused snippet's snapshot
//! names the session as its owner, and when the snippet ends — with a value
//! or a Python error — the instance goes back to the session.

use rustler::{Binary, Encoder, Env, ResourceArc, Term};

use crate::atoms;
use crate::bindings::Progress;
use crate::control::service_control;
use crate::exceptions::sandbox_error;
use crate::inline;
use crate::instance::{CallResult, Instance};
use crate::job::Reply;
use crate::pause::{hold, Paused};
use crate::pool::spawn_with_instance;
use crate::schedule::{conversion_error, nif_pair, Sched};
use crate::settings::{ExecLimits, LimitsMap, RunSettings};
use crate::snapshot::{
    reply_step_async, spawn_load, wake_held, Acquired, Owner, PauseKind, SnapshotRes, SnippetTake,
};
use crate::step::{reply_failure, settle, with_policy, Failure};
use crate::values::{self, FromTermError};

fn reply_session(reply: Reply, instance: Instance, limits: ExecLimits) {
    match hold(instance) {
        Ok(held) => {
            let session = ResourceArc::new(SnapshotRes::new(
                PauseKind::Session,
                Paused { held, limits },
                None,
            ));
            reply.send(move |env| (atoms::ok(), session).encode(env));
        }
        Err(crate::control::CallError::Trap(trapped)) => {
            reply_failure(reply, Failure::Trap(trapped))
        }
    }
}

/// Starts an empty session: `{:ok, session}`. It starts in a warm instance
/// when one is idle (cleared after its last execution, like any pooled
/// instance), which saves a new instance's ~0.3 ms.
#[rustler::nif]
fn session_new<'a>(env: Env<'a>, script_name: String, settings: RunSettings) -> Term<'a> {
    let (mut limits, options) = settings.split();
    limits.interactive = true;
    spawn_with_instance(env, false, move |reply, instance| {
        let Some((reply, mut instance)) = with_policy(reply, instance, &limits) else {
            return;
        };
        let result = instance.repl_new(&service_control(), &script_name, &options);
        match settle_keep(instance, result) {
            Ok(instance) => reply_session(reply, instance, limits),
            Err(failure) => reply_failure(reply, failure),
        }
    })
}

/// Like `settle`, but the instance stays with the caller on success.
fn settle_keep(
    instance: Instance,
    result: crate::instance::CallResult<()>,
) -> Result<Instance, Failure> {
    match result {
        Ok(Ok(())) => Ok(instance),
        other => match settle(instance, other) {
            Ok(()) => Err(Failure::Guest(crate::bindings::GuestError::Invalid(
                "internal: unexpected session state".to_owned(),
            ))),
            Err(failure) => Err(failure),
        },
    }
}

/// Restores a dumped session: `{:ok, session}` (a warm instance for a
/// verified dump, a new one otherwise: see `snapshot::spawn_load`).
fn load<'a>(
    env: Env<'a>,
    bytes: Binary<'a>,
    settings: RunSettings,
    signed: bool,
    sched: Sched,
) -> Term<'a> {
    let (mut limits, _options) = settings.split();
    limits.interactive = true;
    spawn_load(env, bytes, signed, sched, limits, loaded_session)
}

/// Answers a load with what the guest made of the dump.
fn loaded_session(
    reply: Reply,
    instance: Instance,
    result: CallResult<Progress>,
    limits: ExecLimits,
) {
    match result {
        Ok(Ok(Progress::Complete(_))) => reply_session(reply, instance, limits),
        Ok(Ok(_)) => reply.send(|env| {
            sandbox_error(
                env,
                atoms::invalid_input(),
                "this dump holds a paused execution, not a session: use ExMonty.load_snapshot/2",
            )
        }),
        other => {
            if let Err(failure) = settle(instance, other.map(|r| r.map(|_| ()))) {
                reply_failure(reply, failure);
            }
        }
    }
}

nif_pair!('a, session_load, session_load_dirty, load, (
    bytes: [Binary<'a>],
    settings: [RunSettings],
    signed: [bool],
));

fn busy(env: Env<'_>) -> Term<'_> {
    sandbox_error(
        env,
        atoms::invalid_input(),
        "the session is busy (a snippet is running or paused) or was lost",
    )
}

/// What a snippet runs.
enum Snippet {
    Feed {
        code: String,
        inputs: Vec<(String, Vec<u8>)>,
    },
    Call {
        name: String,
        args: Vec<Vec<u8>>,
    },
}

/// Runs a snippet on the session's instance, starting on the calling
/// scheduler (see `inline`).
fn with_session(
    env: Env<'_>,
    session: ResourceArc<SnapshotRes>,
    limits: LimitsMap,
    snippet: Snippet,
) -> Term<'_> {
    if session.kind() != PauseKind::Session {
        return sandbox_error(env, atoms::invalid_input(), "not a session");
    }
    // A session a dump (or putting it to sleep after its last snippet) has
    // for a moment is waited for; one whose snippet runs or waits is busy.
    let taken = match session.take_for_snippet() {
        SnippetTake::Taken(paused) => Some(*paused),
        SnippetTake::Moment => None,
        SnippetTake::Busy => return busy(env),
    };
    inline::spawn(env, true, move |reply| async move {
        let paused = match taken {
            Some(paused) => paused,
            None => match session.acquire_as(&reply.cancel_flag(), true).await {
                Acquired::Paused(paused) => *paused,
                Acquired::Consumed => return reply.send(busy),
                Acquired::Cancelled => {
                    return reply.send(|env| {
                        sandbox_error(env, atoms::cancelled(), "execution was cancelled")
                    })
                }
            },
        };
        let feed_limits = {
            let mut feed = ExecLimits::from(limits);
            feed.mounts = paused.limits.mounts.clone();
            feed.live_output = paused.limits.live_output;
            feed.untrusted = paused.limits.untrusted;
            feed.interactive = true;
            feed
        };
        let Paused { held, limits } = paused;
        let owner = Owner {
            session: session.clone(),
            limits: limits.clone(),
        };
        // A hibernated session that cannot be woken keeps its bytes.
        let mut instance = match wake_held(&session, held, &limits, feed_limits.live_output).await {
            Ok(instance) => instance,
            Err(Ok(error)) => return reply_failure(reply, Failure::Guest(error)),
            Err(Err(crate::control::CallError::Trap(trapped))) => {
                return reply_failure(reply, Failure::Trap(trapped))
            }
        };
        let options = crate::bindings::RunOptions {
            interactive: true,
            cwd: None,
            typed_os_calls: feed_limits.mounts.is_some(),
        };
        let ctl = feed_limits.control(&reply);
        let guest = &feed_limits.guest;
        let result = match &snippet {
            Snippet::Feed { code, inputs } => {
                instance
                    .repl_feed_async(&ctl, code, inputs, guest, &options)
                    .await
            }
            Snippet::Call { name, args } => instance.repl_call_async(&ctl, name, args, guest).await,
        };
        reply_step_async(reply, instance, result, feed_limits, Some(owner)).await;
    })
}

fn encode_values<'a>(
    terms: &[Term<'a>],
    what: &str,
    sched: Sched,
) -> Result<Vec<Vec<u8>>, FromTermError> {
    let mut budget = sched.budget();
    terms
        .iter()
        .enumerate()
        .map(|(index, term)| {
            let object = values::term_to_value(*term, &|| format!("{what}[{index}]"), &mut budget)?;
            postcard::to_allocvec(&object).map_err(|e| FromTermError::Invalid(e.to_string()))
        })
        .collect()
}

/// Feeds a snippet: `{:ok, job}`, answered with progress like `runner_start`.
fn feed<'a>(
    env: Env<'a>,
    session: ResourceArc<SnapshotRes>,
    code: Binary<'a>,
    inputs: Vec<(String, Term<'a>)>,
    limits: LimitsMap,
    sched: Sched,
) -> Term<'a> {
    let code = match sched.source(env, code) {
        Ok(code) => code,
        Err(term) => return term,
    };
    let (names, terms): (Vec<String>, Vec<Term<'a>>) = inputs.into_iter().unzip();
    let encoded = match encode_values(&terms, "inputs", sched) {
        Ok(encoded) => encoded,
        Err(error) => return conversion_error(env, error),
    };
    let inputs: Vec<(String, Vec<u8>)> = names.into_iter().zip(encoded).collect();
    with_session(env, session, limits, Snippet::Feed { code, inputs })
}

nif_pair!('a, session_feed, session_feed_dirty, feed, (
    session: [ResourceArc<SnapshotRes>],
    code: [Binary<'a>],
    inputs: [Vec<(String, Term<'a>)>],
    limits: [LimitsMap],
));

/// Calls a function the session defined: `{:ok, job}`.
fn call<'a>(
    env: Env<'a>,
    session: ResourceArc<SnapshotRes>,
    name: String,
    args: Vec<Term<'a>>,
    limits: LimitsMap,
    sched: Sched,
) -> Term<'a> {
    let encoded = match encode_values(&args, "args", sched) {
        Ok(encoded) => encoded,
        Err(error) => return conversion_error(env, error),
    };
    let snippet = Snippet::Call {
        name,
        args: encoded,
    };
    with_session(env, session, limits, snippet)
}

nif_pair!('a, session_call, session_call_dirty, call, (
    session: [ResourceArc<SnapshotRes>],
    name: [String],
    args: [Vec<Term<'a>>],
    limits: [LimitsMap],
));

/// Whether interactive input can run: `{:ok, :complete | :incomplete | :block}`.
#[rustler::nif]
fn session_continuation(env: Env<'_>, code: String) -> Term<'_> {
    spawn_with_instance(env, false, move |reply, mut instance| {
        let result = instance
            .repl_continuation(&service_control(), &code)
            .map(Ok);
        match settle(instance, result) {
            Ok(mode) => reply.send(move |env| {
                let mode = match mode {
                    crate::bindings::Continuation::Complete => atoms::complete(),
                    crate::bindings::Continuation::Incomplete => atoms::incomplete(),
                    crate::bindings::Continuation::Block => atoms::block(),
                };
                (atoms::ok(), mode).encode(env)
            }),
            Err(failure) => reply_failure(reply, failure),
        }
    })
}
