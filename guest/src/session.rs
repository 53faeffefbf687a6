//! Executions: compile, start, step, pause, resume, dump and load.
//!
//! An instance runs one execution at a time. When the execution pauses on a
//! host call it is kept in `SLOT` until the host resumes it, dumps it or
//! abandons it. Every execution gets a fresh Monty heap (`MontyRun::start`
//! builds one), so nothing of one execution is visible to the next.

use std::cell::RefCell;

use monty::{dump, Dump, MontyRun, RunProgress, Session, SessionRef};
use monty_types::unstable::{graph_parts, MontyNode};
use monty_types::{
    CompileOptions, ExcType, ExtFunctionResult, MontyException, MontyObject, NameLookupResult,
    OsFunctionCall, PrintWriter,
};

use crate::codec::{self, Program, PROGRAM_FORMAT};
use crate::errors::{host_exception, invalid, python};
use crate::limits::{self, DEFAULT_OUTPUT_CAP};
use crate::output::collect;
use crate::wit::{Answer, Error, FunctionCall, Limits, Options, OsCall, Progress, Step};

/// What Monty exports in place of a value nested deeper than the recursion
/// limit allows.
const CUT_MARKER: &str = "<deeply nested>";

/// How many bytes of heap a value is assumed to take per encoded byte when
/// deciding whether a host answer fits the execution's memory.
const DECODED_PER_ENCODED: u64 = 3;

/// A paused execution and the budgets that travel with it.
struct Paused {
    progress: RunProgress,
    script_name: String,
    budget: Budget,
}

/// Per-execution counters Monty leaves to its host.
#[derive(Clone, Copy)]
struct Budget {
    /// Print bytes that may still be collected.
    output_left: u64,
    /// Suspensions answered so far, and the cap.
    answered: u64,
    max_suspensions: Option<u64>,
    /// In non-interactive mode the guest answers function calls, name lookups and
    /// OS calls itself (as NameError / the OS call's default error), like
    /// `MontyRun::run`; only sleeps go to the host so it can wait without a thread.
    interactive: bool,
    /// Whether os-call steps carry the typed call for the host.
    typed_os_calls: bool,
    /// The execution's heap budget (`max_memory`), for answers and dumps.
    max_memory: Option<u64>,
}

impl Budget {
    fn new(limits: &Limits, options: &Options) -> Self {
        Self {
            output_left: limits.max_output_bytes.unwrap_or(DEFAULT_OUTPUT_CAP),
            answered: 0,
            max_suspensions: limits.max_suspensions,
            interactive: options.interactive,
            typed_os_calls: options.typed_os_calls,
            max_memory: limits.max_memory,
        }
    }
}

thread_local! {
    static SLOT: RefCell<Option<Paused>> = const { RefCell::new(None) };
}

fn take_paused() -> Option<Paused> {
    SLOT.with(|slot| slot.borrow_mut().take())
}

fn store_paused(paused: Paused) {
    SLOT.with(|slot| *slot.borrow_mut() = Some(paused));
}

/// Compiles `code` into program bytes that `start` accepts.
pub fn compile(
    code: String,
    script_name: &str,
    input_names: Vec<String>,
) -> Result<Vec<u8>, Error> {
    let run = MontyRun::new(
        code,
        script_name,
        input_names.clone(),
        CompileOptions::default(),
    )
    .map_err(|exc| python(&exc, String::new()))?;
    Program {
        format: PROGRAM_FORMAT,
        monty_version: monty_types::MONTY_VERSION.to_owned(),
        script_name: script_name.to_owned(),
        input_names,
        run,
    }
    .encode()
}

/// Validates program bytes and reports what they declare.
pub fn inspect_program(program: &[u8]) -> Result<(String, Vec<String>), Error> {
    let program = Program::decode(program)?;
    Ok((program.script_name, program.input_names))
}

/// Runs a compiled program until it completes or pauses.
pub fn start(
    program: &[u8],
    inputs: Vec<Vec<u8>>,
    limits: &Limits,
    options: &Options,
) -> Result<Step, Error> {
    let program = Program::decode(program)?;
    let count = program.input_names.len();
    begin(
        program.run,
        &program.script_name,
        count,
        inputs,
        limits,
        options,
    )
}

/// Compiles and runs `code` in one step.
pub fn eval(
    code: String,
    script_name: &str,
    input_names: Vec<String>,
    inputs: Vec<Vec<u8>>,
    limits: &Limits,
    options: &Options,
) -> Result<Step, Error> {
    let count = input_names.len();
    let run = MontyRun::new(code, script_name, input_names, CompileOptions::default())
        .map_err(|exc| python(&exc, String::new()))?;
    begin(run, script_name, count, inputs, limits, options)
}

fn begin(
    mut run: MontyRun,
    script_name: &str,
    expected_inputs: usize,
    inputs: Vec<Vec<u8>>,
    limits: &Limits,
    options: &Options,
) -> Result<Step, Error> {
    abandon();
    if let Some(cwd) = &options.cwd {
        let cwd = monty_types::validate_cwd(cwd).map_err(invalid)?;
        run.set_cwd(&cwd);
    }
    if inputs.len() != expected_inputs {
        return Err(invalid(format!(
            "the program declares {expected_inputs} input(s) but {} value(s) were given",
            inputs.len()
        )));
    }
    let values = inputs
        .iter()
        .map(|bytes| codec::decode(bytes))
        .collect::<Result<Vec<MontyObject>, Error>>()?;
    let mut budget = Budget::new(limits, options);
    let tracker = limits::tracker(limits);
    let (result, output) = collect(budget.output_left, |print| {
        run.start(values, tracker, print)
    });
    budget.output_left = budget.output_left.saturating_sub(output.len() as u64);
    advance(result, script_name.to_owned(), budget, output)
}

/// Whether Monty cut `value` short because it is nested deeper than the
/// recursion limit: such a value is refused rather than returned altered.
fn is_cut(value: &MontyObject) -> bool {
    let (graph, _) = graph_parts(value);
    graph
        .nodes()
        .iter()
        .any(|node| matches!(node, MontyNode::Repr(text) if text == CUT_MARKER))
}

fn too_deep(what: &str) -> MontyException {
    MontyException::new(
        ExcType::RecursionError,
        Some(format!(
            "{what} is nested deeper than max_recursion_depth allows; \
             raise the limit (at most 10100) to pass it"
        )),
    )
}

/// Whether the arguments of a pause hold a value Monty cut short.
fn cut_arguments(progress: &RunProgress) -> bool {
    let args = match progress {
        RunProgress::FunctionCall(call) => &call.args,
        _ => return false,
    };
    args.args().any(|arg| is_cut(&arg.to_owned()))
        || args.kwargs().any(|(_, v)| is_cut(&v.to_owned()))
}

/// An encoding failure after the execution moved on cannot leave it paused:
/// it is reported as the Python error that ends it.
fn ended(error: Error, output: String) -> Error {
    match error {
        Error::Invalid(message) => python(
            &MontyException::new(ExcType::RuntimeError, Some(message)),
            output,
        ),
        python_error => python_error,
    }
}

/// Drives an execution from a Monty result to the next step the host must see.
fn advance(
    mut result: Result<RunProgress, MontyException>,
    script_name: String,
    mut budget: Budget,
    mut output: String,
) -> Result<Step, Error> {
    loop {
        let progress = match result {
            Err(exc) => return Err(python(&exc, output)),
            Ok(RunProgress::Complete(value)) if is_cut(&value) => {
                return Err(python(&too_deep("the result"), output))
            }
            Ok(RunProgress::Complete(value)) => {
                return match codec::encode(&value) {
                    Ok(bytes) => Ok(Step {
                        progress: Progress::Complete(bytes),
                        output,
                    }),
                    Err(error) => Err(ended(error, output)),
                };
            }
            Ok(progress) => progress,
        };
        if cut_arguments(&progress) {
            // The host cannot be shown the call: it raises where it was made.
            let (next, more) = collect(budget.output_left, |print| match progress {
                RunProgress::FunctionCall(call) => call.resume(
                    ExtFunctionResult::Error(too_deep("an argument of this call")),
                    print,
                ),
                other => abort(other, too_deep("an argument of this call"), print),
            });
            budget.output_left = budget.output_left.saturating_sub(more.len() as u64);
            output.push_str(&more);
            result = next;
            continue;
        }
        let host_os_call = budget.typed_os_calls && matches!(progress, RunProgress::OsCall(_));
        if budget.interactive || is_sleep(&progress) || host_os_call {
            let described = match describe(&progress, budget.typed_os_calls) {
                Ok(described) => described,
                Err(error) => return Err(ended(error, output)),
            };
            store_paused(Paused {
                progress,
                script_name,
                budget,
            });
            return Ok(Step {
                progress: described,
                output,
            });
        }
        // Non-interactive: answer as `MontyRun::run` would, without the host.
        let (next, more) = collect(budget.output_left, |print| auto_answer(progress, print));
        result = next;
        budget.output_left = budget.output_left.saturating_sub(more.len() as u64);
        output.push_str(&more);
    }
}

fn is_sleep(progress: &RunProgress) -> bool {
    matches!(
        progress,
        RunProgress::OsCall(call) if matches!(
            call.function_call,
            OsFunctionCall::SystemSleep(_) | OsFunctionCall::AsyncSystemSleep(_)
        )
    )
}

fn auto_answer(
    progress: RunProgress,
    print: PrintWriter<'_>,
) -> Result<RunProgress, MontyException> {
    match progress {
        RunProgress::FunctionCall(call) => {
            let name = call.function_name.clone();
            call.resume(ExtFunctionResult::NotFound(name), print)
        }
        RunProgress::NameLookup(lookup) => lookup.resume(NameLookupResult::Undefined, print),
        RunProgress::OsCall(call) => {
            let error = denied(&call.function_call);
            call.resume(ExtFunctionResult::Error(error), print)
        }
        RunProgress::ResolveFutures(futures) => futures.abort(
            MontyException::new(
                ExcType::RuntimeError,
                Some("no host to resolve futures".to_owned()),
            ),
            print,
        ),
        complete @ RunProgress::Complete(_) => Ok(complete),
    }
}

/// What an OS call nobody serves raises: CPython's own denial for files
/// (`[Errno 13] Permission denied: '/path'`) and a `PermissionError` for the
/// environment, the same answers `ExMonty.Sandbox` gives without a handler;
/// anything else raises what Monty raises without a host.
fn denied(call: &OsFunctionCall) -> MontyException {
    match call {
        OsFunctionCall::Getenv(_) | OsFunctionCall::GetEnviron => MontyException::new(
            ExcType::PermissionError,
            Some("environment access is not allowed in this sandbox".to_owned()),
        ),
        call => match call.fs_primary_path() {
            Some(path) => MontyException::new(
                ExcType::PermissionError,
                Some(format!(
                    "[Errno 13] Permission denied: '{}'",
                    path.replace('\'', "\\'")
                )),
            ),
            None => call.on_no_handler(),
        },
    }
}

/// What the host needs to know about a pause.
fn describe(progress: &RunProgress, typed_os_calls: bool) -> Result<Progress, Error> {
    Ok(match progress {
        RunProgress::FunctionCall(call) => {
            let (args, kwargs) = codec::encode_args(&call.args)?;
            Progress::FunctionCall(FunctionCall {
                name: call.function_name.clone(),
                args,
                kwargs,
                call_id: call.call_id,
                method_call: call.object_id.is_some(),
            })
        }
        RunProgress::NameLookup(lookup) => Progress::NameLookup(lookup.name.clone()),
        RunProgress::OsCall(call) => {
            let function = call.function_call.name().to_owned();
            let (args, kwargs) = codec::encode_args(&call.function_call.clone().to_args())?;
            let typed = if typed_os_calls {
                Some(
                    postcard::to_allocvec(&call.function_call)
                        .map_err(|e| invalid(format!("cannot encode an OS call: {e}")))?,
                )
            } else {
                None
            };
            Progress::OsCall(OsCall {
                function,
                args,
                kwargs,
                call_id: call.call_id,
                typed,
            })
        }
        RunProgress::ResolveFutures(futures) => {
            Progress::ResolveFutures(futures.pending_call_ids().to_vec())
        }
        RunProgress::Complete(value) => Progress::Complete(codec::encode(value)?),
    })
}

/// A host value too large for what is left of the execution's heap raises
/// `MemoryError` where the call was made, instead of exhausting the instance
/// while it is decoded.
fn memory_left_for(bytes: &[u8], max_memory: Option<u64>) -> Result<(), MontyException> {
    let Some(max) = max_memory else {
        return Ok(());
    };
    let needed = (bytes.len() as u64).saturating_mul(DECODED_PER_ENCODED);
    let live = live_memory().saturating_sub(baseline_memory());
    if live.saturating_add(needed) > max {
        return Err(MontyException::new(
            ExcType::MemoryError,
            Some(format!(
                "the host's answer ({} bytes encoded) does not fit in max_memory ({max} bytes)",
                bytes.len()
            )),
        ));
    }
    Ok(())
}

fn ext_result(
    answer: Answer,
    name: &str,
    max_memory: Option<u64>,
) -> Result<ExtFunctionResult, Error> {
    Ok(match answer {
        Answer::Value(bytes) => match memory_left_for(&bytes, max_memory) {
            Ok(()) => ExtFunctionResult::Return(codec::decode(&bytes)?),
            Err(exc) => ExtFunctionResult::Error(exc),
        },
        Answer::Raise(error) => ExtFunctionResult::Error(host_exception(error)),
        Answer::Pending => return Err(invalid("`pending` only answers a function call")),
        Answer::Undefined => ExtFunctionResult::NotFound(name.to_owned()),
    })
}

/// Answers the paused call. A bad answer leaves the execution paused.
pub fn resume(answer: Answer) -> Result<Step, Error> {
    let Some(mut paused) = take_paused() else {
        return Err(invalid("no paused execution to resume"));
    };
    limits::arm_allocator(paused.budget.max_memory);
    // Decode before consuming the pause, so a bad answer keeps the execution.
    enum Decoded {
        Ext(ExtFunctionResult),
        Pending,
        Lookup(NameLookupResult),
    }
    let max_memory = paused.budget.max_memory;
    let decoded = match (&paused.progress, answer) {
        (RunProgress::ResolveFutures(_), _) => Err(invalid(
            "the execution waits for futures: use resolve-futures",
        )),
        (RunProgress::FunctionCall(_), Answer::Pending) => Ok(Decoded::Pending),
        (RunProgress::FunctionCall(call), answer) => {
            ext_result(answer, &call.function_name, max_memory).map(Decoded::Ext)
        }
        (RunProgress::OsCall(_), Answer::Pending) => Err(invalid(
            "an OS call must be answered with a value, an exception or `undefined`",
        )),
        // `undefined`: no handler; raise what Python raises without one.
        (RunProgress::OsCall(call), Answer::Undefined) => Ok(Decoded::Ext(
            ExtFunctionResult::Error(denied(&call.function_call)),
        )),
        (RunProgress::OsCall(call), answer) => {
            ext_result(answer, call.function_call.name(), max_memory).map(Decoded::Ext)
        }
        (RunProgress::NameLookup(_), Answer::Value(bytes)) => {
            match memory_left_for(&bytes, max_memory) {
                Ok(()) => codec::decode(&bytes)
                    .map(|value| Decoded::Lookup(NameLookupResult::Value(value))),
                Err(exc) => Ok(Decoded::Lookup(NameLookupResult::Error(exc))),
            }
        }
        (RunProgress::NameLookup(_), Answer::Raise(error)) => Ok(Decoded::Lookup(
            NameLookupResult::Error(host_exception(error)),
        )),
        (RunProgress::NameLookup(_), Answer::Undefined) => {
            Ok(Decoded::Lookup(NameLookupResult::Undefined))
        }
        (RunProgress::NameLookup(_), Answer::Pending) => {
            Err(invalid("`pending` only answers a function call"))
        }
        (RunProgress::Complete(_), _) => Err(invalid("no paused execution to resume")),
    };
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            store_paused(paused);
            return Err(error);
        }
    };
    paused.budget.answered += 1;
    let exceeded = suspension_limit(&paused.budget);
    let progress = paused.progress;
    let (result, output) = collect(paused.budget.output_left, |print| match exceeded {
        Some(exceeded) => abort(progress, exceeded, print),
        None => match (progress, decoded) {
            (RunProgress::FunctionCall(call), Decoded::Pending) => call.resume_pending(print),
            // `await f()` on a host function: Monty awaits the call at once, so a
            // settled result is handed over as an already-finished coroutine.
            (RunProgress::FunctionCall(call), Decoded::Ext(result)) if call.allow_eager_await => {
                match eager(result) {
                    Ok(settled) => call.resume_eager(settled, print),
                    Err(result) => call.resume(result, print),
                }
            }
            (RunProgress::FunctionCall(call), Decoded::Ext(result)) => call.resume(result, print),
            (RunProgress::OsCall(call), Decoded::Ext(result)) if call.allow_eager_await => {
                match eager(result) {
                    Ok(settled) => call.resume_eager(settled, print),
                    Err(result) => call.resume(result, print),
                }
            }
            (RunProgress::OsCall(call), Decoded::Ext(result)) => call.resume(result, print),
            (RunProgress::NameLookup(lookup), Decoded::Lookup(result)) => {
                lookup.resume(result, print)
            }
            // Unreachable: `decoded` was built from the same progress.
            (progress, _) => abort(
                progress,
                MontyException::runtime_error("mismatched answer"),
                print,
            ),
        },
    });
    continue_after_answer(result, paused.script_name, paused.budget, output)
}

/// Answers pending futures (all or some of them).
pub fn resolve_futures(results: Vec<(u32, Answer)>) -> Result<Step, Error> {
    let Some(mut paused) = take_paused() else {
        return Err(invalid("no paused execution to resume"));
    };
    limits::arm_allocator(paused.budget.max_memory);
    if !matches!(paused.progress, RunProgress::ResolveFutures(_)) {
        store_paused(paused);
        return Err(invalid(
            "the execution is not waiting for futures: use resume",
        ));
    }
    let max_memory = paused.budget.max_memory;
    let waiting: Vec<u32> = match &paused.progress {
        RunProgress::ResolveFutures(futures) => futures.pending_call_ids().to_vec(),
        _ => Vec::new(),
    };
    let mut seen = Vec::with_capacity(results.len());
    let decoded = results
        .into_iter()
        .map(|(id, answer)| {
            if !waiting.contains(&id) {
                return Err(invalid(format!(
                    "no pending call has id {id} (pending: {waiting:?})"
                )));
            }
            if seen.contains(&id) {
                return Err(invalid(format!("call id {id} is answered twice")));
            }
            seen.push(id);
            match answer {
                Answer::Pending => Err(invalid("a future cannot be resolved with `pending`")),
                answer => ext_result(answer, "future", max_memory).map(|result| (id, result)),
            }
        })
        .collect::<Result<Vec<_>, Error>>();
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            store_paused(paused);
            return Err(error);
        }
    };
    paused.budget.answered += 1;
    let exceeded = suspension_limit(&paused.budget);
    let progress = paused.progress;
    let (result, output) = collect(paused.budget.output_left, |print| {
        match (progress, exceeded) {
            (progress, Some(exceeded)) => abort(progress, exceeded, print),
            (RunProgress::ResolveFutures(futures), None) => futures.resume(decoded, print),
            (progress, None) => abort(
                progress,
                MontyException::runtime_error("mismatched answer"),
                print,
            ),
        }
    });
    continue_after_answer(result, paused.script_name, paused.budget, output)
}

/// Charges what the answered step printed, then drives on.
fn continue_after_answer(
    result: Result<RunProgress, MontyException>,
    script_name: String,
    mut budget: Budget,
    output: String,
) -> Result<Step, Error> {
    budget.output_left = budget.output_left.saturating_sub(output.len() as u64);
    advance(result, script_name, budget, output)
}

/// A settled result for `resume_eager`, or the result back when it is not one.
fn eager(
    result: ExtFunctionResult,
) -> Result<Result<MontyObject, MontyException>, ExtFunctionResult> {
    match result {
        ExtFunctionResult::Return(value) => Ok(Ok(value)),
        ExtFunctionResult::Error(exc) => Ok(Err(exc)),
        other => Err(other),
    }
}

fn suspension_limit(budget: &Budget) -> Option<MontyException> {
    let max = budget.max_suspensions?;
    (budget.answered > max).then(|| {
        MontyException::new(
            ExcType::RuntimeError,
            Some(format!(
                "suspension limit exceeded: more than {max} host calls"
            )),
        )
    })
}

fn abort(
    progress: RunProgress,
    exc: MontyException,
    print: PrintWriter<'_>,
) -> Result<RunProgress, MontyException> {
    match progress {
        RunProgress::FunctionCall(call) => call.abort(exc, print),
        RunProgress::OsCall(call) => call.abort(exc, print),
        RunProgress::NameLookup(lookup) => lookup.abort(exc, print),
        RunProgress::ResolveFutures(futures) => futures.abort(exc, print),
        RunProgress::Complete(_) => Err(exc),
    }
}

/// A snapshot: Monty's versioned dump of the paused run, followed by the
/// budgets that travel with it.
pub fn dump_snapshot() -> Result<Vec<u8>, Error> {
    SLOT.with(|slot| {
        let slot = slot.borrow();
        let Some(paused) = slot.as_ref() else {
            return Err(invalid("no paused execution to dump"));
        };
        // The encoding needs memory of its own, on top of a heap that may be
        // close to `max_memory`: the allocator's hard limit is lifted while it
        // is built and handed over (the host caps linear memory for the call
        // instead), so a large heap dumps instead of aborting and losing the
        // execution. The next resume arms the limit again.
        limits::arm_allocator(None);
        let state = dump(
            &paused.script_name,
            None,
            &[],
            SessionRef::Running(&paused.progress),
        )
        .map_err(|e| invalid(format!("cannot dump the execution: {e}")))?;
        let budget = (
            paused.budget.output_left,
            paused.budget.answered,
            paused.budget.max_suspensions,
            paused.budget.interactive,
        );
        postcard::to_allocvec(&(state, budget))
            .map_err(|e| invalid(format!("cannot dump the execution: {e}")))
    })
}

/// Restores a dumped execution into this instance.
pub fn load_snapshot(
    snapshot: &[u8],
    limits: &Limits,
    typed_os_calls: bool,
) -> Result<Progress, Error> {
    abandon();
    type Saved = (Vec<u8>, (u64, u64, Option<u64>, bool));
    let (state, rest): (Saved, &[u8]) = postcard::take_from_bytes(snapshot)
        .map_err(|e| invalid(format!("not an ExMonty snapshot: {e}")))?;
    if !rest.is_empty() {
        return Err(invalid("not an ExMonty snapshot: trailing bytes"));
    }
    let (dump_bytes, (output_left, answered, max_suspensions, interactive)) = state;
    let loaded =
        Dump::load(&dump_bytes).map_err(|e| invalid(format!("not an ExMonty snapshot: {e}")))?;
    let Session::Running(mut progress) = loaded.state else {
        return Err(invalid(
            "not an ExMonty snapshot: it holds no paused execution",
        ));
    };
    if matches!(*progress, RunProgress::Complete(_)) {
        return Err(invalid(
            "not an ExMonty snapshot: it holds no paused execution",
        ));
    }
    limits::arm_allocator(limits.max_memory);
    crate::alloc::start_counting(limits.max_allocations);
    if let Some(tracker) = tracker_mut(&mut progress) {
        tracker.tighten_limits(&limits::resource_limits(limits));
    }
    let described = describe(&progress, typed_os_calls)?;
    let max_suspensions = match (max_suspensions, limits.max_suspensions) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    store_paused(Paused {
        progress: *progress,
        script_name: loaded.script_name,
        budget: Budget {
            output_left: limits
                .max_output_bytes
                .map_or(output_left, |cap| cap.min(output_left)),
            answered,
            max_suspensions,
            interactive,
            typed_os_calls,
            max_memory: limits.max_memory,
        },
    });
    Ok(described)
}

fn tracker_mut(progress: &mut RunProgress) -> Option<&mut monty_types::ResourceTracker> {
    match progress {
        RunProgress::FunctionCall(call) => Some(call.tracker_mut()),
        _ => None,
    }
}

/// Drops any paused execution.
pub fn abandon() {
    drop(take_paused());
}

/// Live Monty heap bytes in this instance.
pub fn live_memory() -> u64 {
    monty_types::LIVE_MEMORY.load(std::sync::atomic::Ordering::Relaxed) as u64
}

/// Bytes the instance held before any execution (the interpreter itself).
fn baseline_memory() -> u64 {
    match monty_types::BASELINE_MEMORY.load(std::sync::atomic::Ordering::Relaxed) {
        usize::MAX => 0,
        bytes => bytes as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_limits() -> Limits {
        Limits {
            max_duration_us: None,
            max_memory: None,
            max_recursion_depth: None,
            gc_interval: None,
            max_suspensions: None,
            max_output_bytes: None,
            max_total_sleep_us: None,
            max_allocations: None,
        }
    }

    fn interactive() -> Options {
        Options {
            interactive: true,
            cwd: None,
            typed_os_calls: false,
        }
    }

    /// Evaluates `code` with no inputs, interactively; it must not fail.
    fn eval_interactive(code: &str) -> Step {
        eval(
            code.into(),
            "main.py",
            vec![],
            vec![],
            &no_limits(),
            &interactive(),
        )
        .expect("evaluates")
    }

    fn complete(step: Step) -> MontyObject {
        match step.progress {
            Progress::Complete(bytes) => codec::decode(&bytes).expect("value decodes"),
            _ => panic!("expected completion"),
        }
    }

    #[test]
    fn eval_returns_value_and_output() {
        let step = eval_interactive("print('hi')\n1 + 2");
        assert_eq!(step.output, "hi\n");
        assert_eq!(complete(step), MontyObject::int(3));
    }

    #[test]
    fn compiled_program_runs_with_inputs() {
        let program = compile("x * 2".into(), "main.py", vec!["x".into()]).expect("compiles");
        let input = codec::encode(&MontyObject::int(21)).expect("encodes");
        let step = start(&program, vec![input], &no_limits(), &interactive()).expect("runs");
        assert_eq!(complete(step), MontyObject::int(42));
    }

    #[test]
    fn wrong_input_count_is_refused() {
        let program = compile("x".into(), "main.py", vec!["x".into()]).expect("compiles");
        assert!(matches!(
            start(&program, vec![], &no_limits(), &interactive()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn corrupt_program_is_refused() {
        assert!(matches!(
            start(&[1, 2, 3], vec![], &no_limits(), &interactive()),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn pause_resume_and_bad_answer_keeps_pause() {
        let step = eval_interactive("f(1) + 1");
        assert!(matches!(step.progress, Progress::FunctionCall(ref c) if c.name == "f"));
        assert!(resume(Answer::Value(vec![0xff, 0xff])).is_err());
        let answer = codec::encode(&MontyObject::int(41)).expect("encodes");
        let step = resume(Answer::Value(answer)).expect("resumes");
        assert_eq!(complete(step), MontyObject::int(42));
        assert!(matches!(resume(Answer::Undefined), Err(Error::Invalid(_))));
    }

    #[test]
    fn awaiting_a_host_function_gets_its_value() {
        let code = "import asyncio\nasync def main():\n    return await f(1)\nasyncio.run(main())";
        let step = eval_interactive(code);
        assert!(matches!(step.progress, Progress::FunctionCall(_)));
        let answer = codec::encode(&MontyObject::int(7)).expect("encodes");
        assert_eq!(
            complete(resume(Answer::Value(answer)).expect("resumes")),
            MontyObject::int(7)
        );
    }

    #[test]
    fn non_interactive_mode_raises_name_error() {
        match eval(
            "f(1)".into(),
            "main.py",
            vec![],
            vec![],
            &no_limits(),
            &Options {
                interactive: false,
                cwd: None,
                typed_os_calls: false,
            },
        ) {
            Err(Error::Python(exc)) => assert_eq!(exc.type_name, "NameError"),
            _ => panic!("expected NameError"),
        }
    }

    fn python_error(result: Result<Step, Error>) -> crate::wit::Exception {
        match result {
            Err(Error::Python(exc)) => exc,
            Err(Error::Invalid(message)) => panic!("invalid: {message}"),
            Ok(_) => panic!("expected a Python error"),
        }
    }

    #[test]
    fn an_error_keeps_what_was_printed_before_it() {
        let exc = python_error(eval(
            "print('before')\n1/0".into(),
            "main.py",
            vec![],
            vec![],
            &no_limits(),
            &interactive(),
        ));
        assert_eq!(exc.type_name, "ZeroDivisionError");
        assert_eq!(exc.output, "before\n");
    }

    #[test]
    fn the_output_limit_is_named() {
        let limits = Limits {
            max_output_bytes: Some(8),
            ..no_limits()
        };
        let exc = python_error(eval(
            "print('1234')\nprint('this is too long')".into(),
            "main.py",
            vec![],
            vec![],
            &limits,
            &interactive(),
        ));
        assert_eq!(exc.type_name, "MemoryError");
        assert!(exc.message.unwrap_or_default().contains("max_output_bytes"));
        assert_eq!(exc.output, "1234\n");
    }

    #[test]
    fn a_result_deeper_than_the_limit_is_refused_not_cut() {
        let limits = Limits {
            max_recursion_depth: Some(50),
            ..no_limits()
        };
        let code = "x = []\nfor i in range(100):\n    x = [x]\nx";
        let exc = python_error(eval(
            code.into(),
            "main.py",
            vec![],
            vec![],
            &limits,
            &interactive(),
        ));
        assert_eq!(exc.type_name, "RecursionError");
        assert!(exc
            .message
            .unwrap_or_default()
            .contains("max_recursion_depth"));
    }

    #[test]
    fn unknown_future_ids_leave_the_execution_waiting() {
        let code = "import asyncio\nasync def main():\n    return await asyncio.gather(f(1), f(2))\nasyncio.run(main())";
        let mut step = eval_interactive(code);
        let mut ids = Vec::new();
        while let Progress::FunctionCall(call) = &step.progress {
            ids.push(call.call_id);
            step = resume(Answer::Pending).expect("pending");
        }
        let Progress::ResolveFutures(waiting) = step.progress else {
            panic!("expected futures");
        };
        assert_eq!(waiting.len(), 2);
        let one = codec::encode(&MontyObject::int(1)).expect("encodes");
        assert!(matches!(
            resolve_futures(vec![(9999, Answer::Value(one.clone()))]),
            Err(Error::Invalid(_))
        ));
        assert!(matches!(
            resolve_futures(vec![
                (ids[0], Answer::Value(one.clone())),
                (ids[0], Answer::Value(one.clone()))
            ]),
            Err(Error::Invalid(_))
        ));
        let answers = ids
            .iter()
            .map(|id| (*id, Answer::Value(one.clone())))
            .collect();
        let value = complete(resolve_futures(answers).expect("resolves"));
        assert_eq!(
            value,
            MontyObject::list(vec![MontyObject::int(1), MontyObject::int(1)])
        );
    }

    #[test]
    fn snapshot_round_trip() {
        eval_interactive("x = g()\nx * 3");
        let bytes = dump_snapshot().expect("dumps");
        abandon();
        let progress = load_snapshot(&bytes, &no_limits(), false).expect("loads");
        assert!(matches!(progress, Progress::FunctionCall(_)));
        let answer = codec::encode(&MontyObject::int(5)).expect("encodes");
        assert_eq!(
            complete(resume(Answer::Value(answer)).expect("resumes")),
            MontyObject::int(15)
        );
    }
}
