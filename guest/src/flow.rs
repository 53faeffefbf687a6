//! A paused execution, whichever kind it is: a one-shot run (`MontyRun`) or
//! a snippet fed to a REPL session (`MontyRepl`).
//!
//! Monty gives the two families the same shape (function calls, OS calls,
//! name lookups, futures) with different types, and a REPL error hands the
//! session back. [`Flow`] and [`Next`] unify them, and [`each!`] applies one
//! piece of code to the matching pause of either family, so the rules for
//! answering a pause are written once.

use monty::{MontyRepl, ReplProgress, ReplStartError, RunProgress};
use monty_types::{
    ExtFunctionResult, MontyException, MontyObject, OsFunctionCall, ResourceTracker,
};

/// A paused execution. Both variants are large (Monty's progress holds the
/// interpreter's state inline) and of similar size; a flow is moved a few
/// times per step, so boxing would buy nothing but a deref in every match.
#[allow(clippy::large_enum_variant)]
pub enum Flow {
    Run(RunProgress),
    Repl(ReplProgress),
}

/// How a step of either family ended: paused again or finished (`Ok`), or
/// raised (`Err`, with the REPL session when it was a snippet: a runtime
/// error keeps the session).
pub type Next = Result<Flow, Ended>;

pub struct Ended {
    pub error: MontyException,
    pub repl: Option<Box<MontyRepl>>,
}

pub fn from_run(result: Result<RunProgress, MontyException>) -> Next {
    result
        .map(Flow::Run)
        .map_err(|error| Ended { error, repl: None })
}

pub fn from_repl(result: Result<ReplProgress, Box<ReplStartError>>) -> Next {
    result.map(Flow::Repl).map_err(|failed| {
        let ReplStartError { repl, error } = *failed;
        Ended {
            error,
            repl: Some(Box::new(repl)),
        }
    })
}

/// Runs `$body` on the `$variant` pause of either family (binding it to
/// `$x`), normalising the result to [`Next`]; any other flow goes to
/// `$other`.
macro_rules! each {
    ($flow:expr, $variant:ident($x:ident) => $body:expr, $other:ident => $fallback:expr) => {
        match $flow {
            $crate::flow::Flow::Run(monty::RunProgress::$variant($x)) => {
                $crate::flow::from_run($body)
            }
            $crate::flow::Flow::Repl(monty::ReplProgress::$variant($x)) => {
                $crate::flow::from_repl($body)
            }
            $other => $fallback,
        }
    };
}

pub(crate) use each;

/// What a finished flow produced: its value, and the REPL session to keep
/// when it was a snippet.
#[allow(clippy::large_enum_variant)]
pub enum Done {
    Value(MontyObject, Option<MontyRepl>),
    Paused(Flow),
}

impl Flow {
    pub fn done(self) -> Done {
        match self {
            Flow::Run(RunProgress::Complete(value)) => Done::Value(value, None),
            Flow::Repl(ReplProgress::Complete { repl, value }) => Done::Value(value, Some(repl)),
            paused => Done::Paused(paused),
        }
    }

    /// The call's arguments, when it is a function call.
    pub fn call_args(&self) -> Option<&monty_types::CallArgs> {
        match self {
            Flow::Run(RunProgress::FunctionCall(call)) => Some(&call.args),
            Flow::Repl(ReplProgress::FunctionCall(call)) => Some(&call.args),
            _ => None,
        }
    }

    /// The OS call it waits for, if any.
    pub fn os_call(&self) -> Option<&OsFunctionCall> {
        match self {
            Flow::Run(RunProgress::OsCall(call)) => Some(&call.function_call),
            Flow::Repl(ReplProgress::OsCall(call)) => Some(&call.function_call),
            _ => None,
        }
    }

    pub fn is_sleep(&self) -> bool {
        matches!(
            self.os_call(),
            Some(OsFunctionCall::SystemSleep(_) | OsFunctionCall::AsyncSystemSleep(_))
        )
    }

    /// An attribute of a host object that is not among the attributes the
    /// host sent (`obj.missing`), as opposed to a global name lookup.
    pub fn is_attribute_lookup(&self) -> bool {
        match self {
            Flow::Run(RunProgress::NameLookup(lookup)) => lookup.object_id().is_some(),
            Flow::Repl(ReplProgress::NameLookup(lookup)) => lookup.object_id().is_some(),
            _ => false,
        }
    }

    pub fn pending_call_ids(&self) -> Vec<u32> {
        match self {
            Flow::Run(RunProgress::ResolveFutures(futures)) => futures.pending_call_ids().to_vec(),
            Flow::Repl(ReplProgress::ResolveFutures(futures)) => {
                futures.pending_call_ids().to_vec()
            }
            _ => Vec::new(),
        }
    }

    pub fn tracker_mut(&mut self) -> Option<&mut ResourceTracker> {
        match self {
            Flow::Run(RunProgress::FunctionCall(call)) => Some(call.tracker_mut()),
            Flow::Repl(progress) => Some(progress.tracker_mut()),
            _ => None,
        }
    }

    /// Ends the pause with `exc`: raised where the call was made (catchable)
    /// for a function call, the execution aborted otherwise.
    pub fn raise(self, exc: MontyException, print: monty_types::PrintWriter<'_>) -> Next {
        each!(self, FunctionCall(call) => call.resume(ExtFunctionResult::Error(exc), print),
            other => other.abort(exc, print))
    }

    /// Aborts the execution with `exc` (uncatchable).
    pub fn abort(self, exc: MontyException, print: monty_types::PrintWriter<'_>) -> Next {
        match self {
            Flow::Run(RunProgress::FunctionCall(call)) => from_run(call.abort(exc, print)),
            Flow::Run(RunProgress::OsCall(call)) => from_run(call.abort(exc, print)),
            Flow::Run(RunProgress::NameLookup(lookup)) => from_run(lookup.abort(exc, print)),
            Flow::Run(RunProgress::ResolveFutures(futures)) => from_run(futures.abort(exc, print)),
            Flow::Run(RunProgress::Complete(_)) => Err(Ended {
                error: exc,
                repl: None,
            }),
            Flow::Repl(ReplProgress::FunctionCall(call)) => from_repl(call.abort(exc, print)),
            Flow::Repl(ReplProgress::OsCall(call)) => from_repl(call.abort(exc, print)),
            Flow::Repl(ReplProgress::NameLookup(lookup)) => from_repl(lookup.abort(exc, print)),
            Flow::Repl(ReplProgress::ResolveFutures(futures)) => {
                from_repl(futures.abort(exc, print))
            }
            Flow::Repl(ReplProgress::Complete { repl, .. }) => Err(Ended {
                error: exc,
                repl: Some(Box::new(repl)),
            }),
        }
    }

    /// The REPL session of a paused snippet, abandoning the snippet.
    pub fn into_repl(self) -> Option<MontyRepl> {
        match self {
            Flow::Run(_) => None,
            Flow::Repl(progress) => Some(progress.into_repl()),
        }
    }
}
