//! Dumping and loading what an instance holds: a paused execution (one-shot
//! or a REPL snippet) or an idle REPL session, as Monty's versioned dump
//! followed by the budgets that travel with it.

use monty::{dump, Dump, Session, SessionRef};

use crate::codec;
use crate::errors::invalid;
use crate::execution::{
    clear_paused, clear_session, describe, store_paused, store_session, with_paused, with_session,
    Budget, Idle, Paused,
};
use crate::flow::Flow;
use crate::limits;
use crate::wit::{Error, Limits, Progress};

/// The budgets saved with a dump: output left, suspensions answered and
/// their cap, and whether the execution is interactive. The allocations an
/// execution has left under `max_allocations` follow them when it counts
/// any (see [`frame`]).
pub(crate) type SavedBudget = (u64, u64, Option<u64>, bool);

/// Serialises what the instance holds (it stays held).
pub fn dump_snapshot() -> Result<Vec<u8>, Error> {
    // The encoding needs memory of its own, on top of a heap that may be
    // close to `max_memory`: the allocator's hard limit is lifted while it
    // is built and handed over (the host caps linear memory for the call
    // instead), so a large heap dumps instead of aborting and losing the
    // execution. The next resume or feed arms the limit again.
    limits::arm_allocator(None);
    let paused = with_paused(|paused| {
        paused.map(|paused| {
            let state = match &paused.flow {
                Flow::Run(progress) => SessionRef::Running(progress),
                Flow::Repl(progress) => SessionRef::Suspended(progress),
            };
            let budget = &paused.budget;
            let saved: SavedBudget = (
                budget.output_left,
                budget.answered,
                budget.max_suspensions,
                budget.interactive,
            );
            let counted = (budget.allocations_left != u64::MAX).then_some(budget.allocations_left);
            dump(&paused.script_name, None, &[], state).map(|bytes| (bytes, saved, counted))
        })
    });
    let (state, saved, counted) = match paused {
        Some(dumped) => dumped,
        None => with_session(|idle| match idle {
            Some(idle) => dump(&idle.script_name, None, &[], SessionRef::Idle(&idle.repl))
                .map(|bytes| (bytes, (0, 0, None, true), None)),
            None => Ok((Vec::new(), (0, 0, None, false), None)),
        }),
    }
    .map_err(|e| invalid(format!("cannot dump the execution: {e}")))?;
    if state.is_empty() {
        return Err(invalid("no paused execution or session to dump"));
    }
    frame(&state, &saved, counted)
}

/// A dump on the wire: postcard's encoding of `(Vec<u8>, SavedBudget)` (the
/// length of Monty's dump as a varint, its bytes, then the budgets), written
/// and read here without going through serde byte by byte; then, for an
/// execution that counts its allocations, what it has left (a varint).
/// Without that count the bytes are exactly what earlier releases wrote, and
/// their dumps load (an execution restored from one counts afresh).
pub(crate) fn frame(
    state: &[u8],
    saved: &SavedBudget,
    allocations_left: Option<u64>,
) -> Result<Vec<u8>, Error> {
    let fail = |e: postcard::Error| invalid(format!("cannot dump the execution: {e}"));
    let length = postcard::to_allocvec(&state.len()).map_err(fail)?;
    let budgets = postcard::to_allocvec(saved).map_err(fail)?;
    let count = match allocations_left {
        Some(left) => postcard::to_allocvec(&left).map_err(fail)?,
        None => Vec::new(),
    };
    let mut bytes = Vec::with_capacity(length.len() + state.len() + budgets.len() + count.len());
    bytes.extend_from_slice(&length);
    bytes.extend_from_slice(state);
    bytes.extend_from_slice(&budgets);
    bytes.extend_from_slice(&count);
    Ok(bytes)
}

/// A dump split (see [`frame`]) into Monty's dump, the budgets and the
/// allocations left, if counted.
pub(crate) type Unframed<'a> = (&'a [u8], SavedBudget, Option<u64>);

/// Splits a dump (see [`frame`]).
pub(crate) fn unframe(bytes: &[u8]) -> Result<Unframed<'_>, Error> {
    let fail = |why: String| invalid(format!("not an ExMonty snapshot: {why}"));
    let (len, rest): (usize, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| fail(e.to_string()))?;
    if len > rest.len() {
        return Err(fail("truncated".to_owned()));
    }
    let (state, rest) = rest.split_at(len);
    let (saved, rest): (SavedBudget, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| fail(e.to_string()))?;
    if rest.is_empty() {
        return Ok((state, saved, None));
    }
    let (left, rest): (u64, &[u8]) =
        postcard::take_from_bytes(rest).map_err(|e| fail(e.to_string()))?;
    if !rest.is_empty() {
        return Err(fail("trailing bytes".to_owned()));
    }
    Ok((state, saved, Some(left)))
}

/// Restores a dump into this instance, applying `limits` on top of the ones
/// it was started with. Returns what a paused execution waits for; an idle
/// session reports `complete(None)`.
pub fn load_snapshot(
    snapshot: &[u8],
    limits: &Limits,
    typed_os_calls: bool,
) -> Result<Progress, Error> {
    // What the instance holds is dropped only once the dump has been read:
    // an `invalid` answer leaves it as it was.
    let (state, saved, counted) = unframe(snapshot)?;
    let (output_left, answered, max_suspensions, interactive) = saved;
    let loaded = Dump::load(state).map_err(|e| invalid(format!("not an ExMonty snapshot: {e}")))?;
    let mut flow = match loaded.state {
        Session::Running(progress) => Flow::Run(*progress),
        Session::Suspended(progress) => Flow::Repl(*progress),
        Session::Idle(repl) => {
            abandon();
            store_session(Idle {
                repl: *repl,
                script_name: loaded.script_name,
            });
            let none = codec::encode(&monty_types::MontyObject::none())?;
            return Ok(Progress::Complete(none));
        }
    };
    // The execution's own `max_memory` holds after a load too (the load's
    // limits only tighten it): the allocator's ceiling and the size of the
    // answers it accepts follow it, not just the load's.
    let max_memory = match flow.tracker_mut() {
        Some(tracker) => {
            tracker.tighten_limits(&limits::resource_limits(limits));
            tracker
                .max_memory()
                .map(|max| u64::try_from(max).unwrap_or(u64::MAX))
                .or(limits.max_memory)
        }
        None => limits.max_memory,
    };
    let described = describe(&flow, typed_os_calls)
        .map_err(|_| invalid("not an ExMonty snapshot: it holds no paused execution"))?;
    abandon();
    limits::arm_allocator(max_memory);
    // What the execution had left, under the cap the load sets (if any).
    let allowed = limits.max_allocations.unwrap_or(u64::MAX);
    crate::alloc::resume_counting(counted.map_or(allowed, |left| left.min(allowed)));
    let max_suspensions = match (max_suspensions, limits.max_suspensions) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    store_paused(Paused {
        flow,
        script_name: loaded.script_name,
        budget: Budget {
            output_left: limits
                .max_output_bytes
                .map_or(output_left, |cap| cap.min(output_left)),
            answered,
            max_suspensions,
            interactive,
            typed_os_calls,
            max_memory,
            allocations_left: crate::alloc::counting_left(),
        },
    });
    Ok(described)
}

/// Drops whatever the instance holds.
pub fn abandon() {
    clear_paused();
    clear_session();
}

/// Live Monty heap bytes in this instance.
pub fn live_memory() -> u64 {
    monty_types::LIVE_MEMORY.load(std::sync::atomic::Ordering::Relaxed) as u64
}

/// Bytes the instance held before any execution (the interpreter itself).
pub fn baseline_memory() -> u64 {
    match monty_types::BASELINE_MEMORY.load(std::sync::atomic::Ordering::Relaxed) {
        usize::MAX => 0,
        bytes => bytes as u64,
    }
}
