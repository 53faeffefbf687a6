//! REPL sessions: a heap that persists between snippets.
//!
//! `repl_new` starts an empty session in the instance; each `repl_feed` runs
//! a snippet against it and pauses on host calls like any execution (answered
//! by `resume` / `resolve_futures`); when the snippet ends — with a value or
//! a Python error — the session is kept for the next one. Limits apply per
//! snippet; the heap (and its memory) is the session's.

use monty::MontyRepl;
use monty_types::{CompileOptions, MontyObject, ResourceLimits, ResourceTracker};

use crate::codec;
use crate::errors::{invalid, python};
use crate::execution::{
    advance, result_step, store_session, take_paused, take_session, Budget, Idle,
};
use crate::flow::from_repl;
use crate::limits;
use crate::output::collect;
use crate::wit::{Error, Limits, Options, Step};

/// Starts an empty session in this instance (dropping anything it held).
pub fn repl_new(script_name: String, options: &Options) -> Result<(), Error> {
    // A refused `cwd` leaves what the instance holds as it was.
    let cwd = match &options.cwd {
        Some(cwd) => Some(monty_types::validate_cwd(cwd).map_err(invalid)?),
        None => None,
    };
    crate::persist::abandon();
    let tracker = ResourceTracker::new(ResourceLimits::default());
    let mut repl = MontyRepl::new(&script_name, tracker, CompileOptions::default())
        .with_os_policy(crate::policy::current());
    if let Some(cwd) = &cwd {
        repl.set_cwd(cwd);
    }
    store_session(Idle { repl, script_name });
    Ok(())
}

fn session() -> Result<Idle, Error> {
    take_session().ok_or_else(|| invalid("this instance holds no idle session"))
}

/// Runs a snippet against the session.
pub fn repl_feed(
    code: String,
    inputs: Vec<(String, Vec<u8>)>,
    limits: &Limits,
    options: &Options,
) -> Result<Step, Error> {
    let values = inputs
        .iter()
        .map(|(name, bytes)| Ok((name.clone(), codec::decode(bytes)?)))
        .collect::<Result<Vec<(String, MontyObject)>, Error>>()?;
    let Idle {
        mut repl,
        script_name,
    } = session()?;
    *repl.tracker_mut() = limits::tracker(limits);
    let mut budget = Budget::new(limits, options);
    let (result, output) = collect(budget.output_left, |print| {
        repl.feed_start(&code, values, print)
    });
    budget.output_left = budget.output_left.saturating_sub(output.len() as u64);
    advance(from_repl(result), script_name, budget, output)
}

/// Calls a function the session defined, with positional arguments.
pub fn repl_call(name: String, args: Vec<Vec<u8>>, limits: &Limits) -> Result<Step, Error> {
    let args = args
        .iter()
        .map(|bytes| codec::decode(bytes))
        .collect::<Result<Vec<MontyObject>, Error>>()?;
    let mut idle = session()?;
    *idle.repl.tracker_mut() = limits::tracker(limits);
    let left = limits
        .max_output_bytes
        .unwrap_or(limits::DEFAULT_OUTPUT_CAP);
    let (result, output) = collect(left, |print| idle.repl.call_function(&name, args, print));
    store_session(idle);
    match result {
        Ok(value) => result_step(&value, output),
        Err(exc) => Err(python(&exc, output)),
    }
}

/// Abandons a paused snippet, keeping the session as the snippet left it.
pub fn repl_abandon_feed() {
    if let Some(paused) = take_paused() {
        if let Some(repl) = paused.flow.into_repl() {
            store_session(Idle {
                repl,
                script_name: paused.script_name,
            });
        }
    }
}
