//! One step of an execution, turned into what Elixir sees.
//!
//! A call into the guest ends in one of three ways ([`settle`]): an answer or
//! a Python error (the instance is sound and goes back to the pool) or a trap
//! (the instance is dropped). A step that pauses on an OS call under a mount
//! is served here, on the worker, until the execution needs something else
//! ([`serve_mounts`]). Progress becomes the terms of `ExMonty`'s progress
//! forms, with `%ExMonty.FunctionCall{}` and `%ExMonty.OsCall{}` built here.

use std::time::Instant;

use rustler::{Atom, Encoder, Env, Term};

use crate::atoms;
use crate::bindings::{Answer, GuestError, Progress, Step};
use crate::control::{CallControl, CallError, Interruption, Trapped};
use crate::exceptions::{guest_error, trap_error};
use crate::instance::{CallResult, Instance};
use crate::job::Reply;
use crate::mounts;
use crate::pool;
use crate::settings::ExecLimits;
use crate::terms::{make_struct, string};
use crate::values::{self, Site, ToTermError, SMALL_MAP};

/// Why a call produced no answer.
pub enum Failure {
    /// Python raised, or the guest refused the request.
    Guest(GuestError),
    /// The guest trapped or was interrupted; its instance is gone.
    Trap(Trapped),
}

impl Failure {
    /// `{:error, %ExMonty.Exception{}}`
    pub fn term<'a>(&self, env: Env<'a>) -> Term<'a> {
        match self {
            Failure::Guest(error) => guest_error(env, error),
            Failure::Trap(trapped) => trap_error(env, trapped),
        }
    }
}

/// The one place that decides whether an instance goes back to the pool:
/// after an answer or a Python error it does; after a trap it is dropped.
pub fn settle<T>(instance: Instance, result: CallResult<T>) -> Result<T, Failure> {
    match result {
        Ok(Ok(value)) => {
            pool::checkin(instance);
            Ok(value)
        }
        Ok(Err(error)) => {
            pool::checkin(instance);
            Err(Failure::Guest(error))
        }
        Err(CallError::Trap(trapped)) => Err(Failure::Trap(trapped)),
    }
}

/// Sends a failure to the caller.
pub fn reply_failure(reply: Reply, failure: Failure) {
    reply.send(move |env| failure.term(env));
}

/// Sets the execution's OS policy and live output in its instance, on a
/// worker. On failure (an unknown time zone, say) the error is replied and
/// `None` returned.
pub fn with_policy(
    reply: Reply,
    instance: Instance,
    limits: &ExecLimits,
) -> Option<(Reply, Instance)> {
    crate::inline::finish(with_policy_async(reply, instance, limits))
}

/// `with_policy`, in a slice (see `inline`).
pub async fn with_policy_async(
    reply: Reply,
    mut instance: Instance,
    limits: &ExecLimits,
) -> Option<(Reply, Instance)> {
    let policy = limits.os_policy.as_ref().map(|policy| &policy.0);
    let applied = match instance.apply_policy_async(policy).await {
        Ok(Ok(())) => instance.apply_live_output_async(limits.live_output).await,
        failed => failed,
    };
    match applied {
        Ok(Ok(())) => Some((reply, instance)),
        other => {
            if let Err(failure) = settle(instance, other) {
                reply_failure(reply, failure);
            }
            None
        }
    }
}

/// Whether the execution behind `ctl` must stop now.
fn interrupted(ctl: &CallControl) -> Option<Interruption> {
    if ctl.cancel.load(std::sync::atomic::Ordering::Relaxed) {
        Some(Interruption::Cancelled)
    } else if ctl
        .deadline
        .is_some_and(|deadline| Instant::now() >= deadline)
    {
        Some(Interruption::Deadline)
    } else {
        None
    }
}

/// Answers file calls on mounted directories right here on the worker, until
/// the execution needs something else.
pub fn serve_mounts(
    reply: &Reply,
    instance: &mut Instance,
    mut result: CallResult<Step>,
    limits: &ExecLimits,
) -> CallResult<Step> {
    let Some(mounts) = limits.mounts.as_ref() else {
        return result;
    };
    let ctl = limits.control(reply);
    let mut carried = String::new();
    while let Ok(Ok(Step {
        progress: Progress::OsCall(call),
        ..
    })) = &result
    {
        let function = call.function.clone();
        let Some(typed) = call.typed.clone() else {
            break;
        };
        // Serving a mount is work done for the execution: it stops when the
        // execution's deadline passes or its caller gives up, like guest code.
        if let Some(interruption) = interrupted(&ctl) {
            return Err(CallError::Trap(Trapped::interrupted(interruption)));
        }
        let answer = match mounts::serve(mounts, &typed) {
            Some(answer) => answer,
            // Not under a mount: in eval/run, answer as Python would without a
            // handler (sleeps still go to the caller, who waits for them).
            None if !limits.interactive && !function.starts_with("system.") => Answer::Undefined,
            None => break,
        };
        if let Ok(Ok(step)) = &result {
            carried.push_str(&step.output);
        }
        result = instance.resume(&ctl, &answer);
    }
    // What the steps served here printed goes with whatever comes next:
    // the next step, or the Python error that ended the execution.
    match &mut result {
        Ok(Ok(step)) => step.output.insert_str(0, &carried),
        Ok(Err(GuestError::Python(exc))) => exc.output.insert_str(0, &carried),
        _ => {}
    }
    result
}

/// Monty's name of each OS call and the `function` atom `ExMonty.OsCall`
/// carries for it (`ExMonty.OsCall.functions/0` is checked against this).
pub const OS_FUNCTIONS: &[(&str, &str)] = &[
    ("Path.exists", "exists"),
    ("Path.is_file", "is_file"),
    ("Path.is_dir", "is_dir"),
    ("Path.is_symlink", "is_symlink"),
    ("Path.read_text", "read_text"),
    ("Path.read_bytes", "read_bytes"),
    ("Path.stat", "stat"),
    ("Path.iterdir", "iterdir"),
    ("Path.scan", "scan"),
    ("Path.resolve", "resolve"),
    ("Path.absolute", "absolute"),
    ("Path.write_text", "write_text"),
    ("Path.append_text", "append_text"),
    ("Path.write_bytes", "write_bytes"),
    ("Path.append_bytes", "append_bytes"),
    ("open", "open"),
    ("Path.mkdir", "mkdir"),
    ("Path.unlink", "unlink"),
    ("Path.rmdir", "rmdir"),
    ("Path.rename", "rename"),
    ("os.getenv", "getenv"),
    ("os.environ", "get_environ"),
    ("os.urandom", "urandom"),
    ("date.today", "date_today"),
    ("datetime.now", "datetime_now"),
    ("time.time", "time"),
    ("time.sleep", "sleep"),
    ("asyncio.sleep", "async_sleep"),
    ("system.sleep", "system_sleep"),
    ("system.async_sleep", "system_async_sleep"),
    ("import", "import"),
    ("import_stubs", "import_stubs"),
];

fn os_function<'a>(env: Env<'a>, python_name: &str) -> Term<'a> {
    let name = OS_FUNCTIONS
        .iter()
        .find(|(python, _)| *python == python_name)
        .map_or("unknown", |(_, atom)| atom);
    Atom::from_str(env, name).map_or_else(|_| atoms::unknown().encode(env), |atom| atom.encode(env))
}

/// `[{python_name, function_atom}]`, the table above.
#[rustler::nif]
fn runtime_os_functions(env: Env<'_>) -> Term<'_> {
    OS_FUNCTIONS
        .iter()
        .map(|(python, _)| (*python, os_function(env, python)))
        .collect::<Vec<_>>()
        .encode(env)
}

fn args_terms<'a>(
    env: Env<'a>,
    args: &[Vec<u8>],
    kwargs: &[(String, Vec<u8>)],
    site: Site,
) -> Result<(Term<'a>, Term<'a>), ToTermError> {
    if site == Site::Worker && kwargs.len() > SMALL_MAP {
        return Err(ToTermError::NeedsScheduler);
    }
    let args = args
        .iter()
        .map(|bytes| values::value_to_term(env, bytes, site))
        .collect::<Result<Vec<_>, _>>()?;
    let mut map = Term::map_new(env);
    for (name, bytes) in kwargs {
        map = map
            .map_put(name.encode(env), values::value_to_term(env, bytes, site)?)
            .map_err(|_| ToTermError::Invalid("duplicate keyword argument".to_owned()))?;
    }
    Ok((args.encode(env), map))
}

/// The progress form of a step: `{:complete, value, output}` or
/// `{kind, what, %ExMonty.Snapshot{}, output}`.
pub fn progress_term<'a>(
    env: Env<'a>,
    progress: &Progress,
    snapshot: Term<'a>,
    output: &str,
    site: Site,
) -> Result<Term<'a>, ToTermError> {
    let output = string(env, output);
    Ok(match progress {
        Progress::FunctionCall(call) => {
            let (args, kwargs) = args_terms(env, &call.args, &call.kwargs, site)?;
            let call = make_struct(
                env,
                atoms::elixir_exmonty_function_call(),
                &[
                    (atoms::name(), call.name.encode(env)),
                    (atoms::args(), args),
                    (atoms::kwargs(), kwargs),
                    (atoms::call_id(), call.call_id.encode(env)),
                    (atoms::method_call(), call.method_call.encode(env)),
                ],
            )?;
            (atoms::function_call(), call, snapshot, output).encode(env)
        }
        Progress::OsCall(call) => {
            let (args, kwargs) = args_terms(env, &call.args, &call.kwargs, site)?;
            let call = make_struct(
                env,
                atoms::elixir_exmonty_os_call(),
                &[
                    (atoms::function(), os_function(env, &call.function)),
                    (atoms::python_name(), call.function.encode(env)),
                    (atoms::args(), args),
                    (atoms::kwargs(), kwargs),
                    (atoms::call_id(), call.call_id.encode(env)),
                ],
            )?;
            (atoms::os_call(), call, snapshot, output).encode(env)
        }
        Progress::NameLookup(name) => {
            (atoms::name_lookup(), name.as_str(), snapshot, output).encode(env)
        }
        Progress::ResolveFutures(ids) => {
            (atoms::resolve_futures(), ids.clone(), snapshot, output).encode(env)
        }
        Progress::Complete(value) => (
            atoms::complete(),
            values::value_to_term(env, value, site)?,
            output,
        )
            .encode(env),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_function_names_are_unique() {
        let mut pythons: Vec<&str> = OS_FUNCTIONS.iter().map(|(p, _)| *p).collect();
        let mut atoms: Vec<&str> = OS_FUNCTIONS.iter().map(|(_, a)| *a).collect();
        pythons.sort_unstable();
        pythons.dedup();
        atoms.sort_unstable();
        atoms.dedup();
        assert_eq!(pythons.len(), OS_FUNCTIONS.len());
        assert_eq!(atoms.len(), OS_FUNCTIONS.len());
    }
}
