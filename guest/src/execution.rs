//! Executions: compile, start, step, pause and resume.
//!
//! An instance runs one execution at a time. When the execution pauses on a
//! host call it is kept in `SLOT` until the host resumes it, dumps it or
//! abandons it. A one-shot execution gets a fresh Monty heap
//! (`MontyRun::start` builds one), so nothing of one is visible to the next;
//! a REPL session (see `repl`) keeps its heap in `SESSION` between snippets.

use std::cell::RefCell;

use monty::{MontyRepl, MontyRun, ReplProgress, RunProgress};
use monty_types::unstable::{graph_parts, MontyNode};
use monty_types::{
    CompileOptions, ExcType, ExtFunctionResult, MontyException, MontyObject, NameLookupResult,
    OsFunctionCall,
};

use crate::answers::{auto_answer, eager, ext_result, value};
use crate::codec::{self, Program, PROGRAM_FORMAT};
use crate::errors::{host_exception, invalid, python};
use crate::flow::{each, from_run, Done, Ended, Flow, Next};
use crate::limits::{self, DEFAULT_OUTPUT_CAP};
use crate::output::collect;
use crate::wit::{Answer, Error, FunctionCall, Limits, Options, OsCall, Progress, Step};

/// What Monty exports in place of a value nested deeper than the recursion
/// limit allows.
const CUT_MARKER: &str = "<deeply nested>";

/// A paused execution and the budgets that travel with it.
pub struct Paused {
    pub flow: Flow,
    pub script_name: String,
    pub budget: Budget,
}

/// A REPL session between snippets.
pub struct Idle {
    pub repl: MontyRepl,
    pub script_name: String,
}

/// Per-execution counters Monty leaves to its host.
#[derive(Clone, Copy, Default)]
pub struct Budget {
    /// Print bytes that may still be collected.
    pub output_left: u64,
    /// Suspensions answered so far, and the cap.
    pub answered: u64,
    pub max_suspensions: Option<u64>,
    /// In non-interactive mode the guest answers function calls, name lookups and
    /// OS calls itself (as NameError / the OS call's default error), like
    /// `MontyRun::run`; only sleeps go to the host so it can wait without a thread.
    pub interactive: bool,
    /// Whether os-call steps carry the typed call for the host.
    pub typed_os_calls: bool,
    /// The execution's heap budget (`max_memory`), for answers and dumps.
    pub max_memory: Option<u64>,
    /// Allocations left (`max_allocations`; `u64::MAX`: not counted), taken
    /// from the allocator when the execution pauses and given back to it
    /// when it resumes: the count belongs to the execution, not to the
    /// instance's other calls.
    pub allocations_left: u64,
}

impl Budget {
    pub fn new(limits: &Limits, options: &Options) -> Self {
        Self {
            output_left: limits.max_output_bytes.unwrap_or(DEFAULT_OUTPUT_CAP),
            answered: 0,
            max_suspensions: limits.max_suspensions,
            interactive: options.interactive,
            typed_os_calls: options.typed_os_calls,
            max_memory: limits.max_memory,
            allocations_left: limits.max_allocations.unwrap_or(u64::MAX),
        }
    }
}

thread_local! {
    static SLOT: RefCell<Option<Paused>> = const { RefCell::new(None) };
    static SESSION: RefCell<Option<Idle>> = const { RefCell::new(None) };
}

pub fn take_paused() -> Option<Paused> {
    SLOT.with(|slot| slot.borrow_mut().take())
}

/// Drops the paused execution, if any, in place: every execution starts by
/// clearing the slots, and taking an empty one would still copy its whole
/// size (a paused execution is kilobytes) in and out.
pub fn clear_paused() {
    SLOT.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_some() {
            *slot = None;
        }
    });
}

/// Drops the idle session, if any, in place (see `clear_paused`).
pub fn clear_session() {
    SESSION.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_some() {
            *slot = None;
        }
    });
}

pub fn store_paused(paused: Paused) {
    SLOT.with(|slot| *slot.borrow_mut() = Some(paused));
}

/// Reads the paused execution without taking it.
pub fn with_paused<R>(f: impl FnOnce(Option<&Paused>) -> R) -> R {
    SLOT.with(|slot| f(slot.borrow().as_ref()))
}

pub fn take_session() -> Option<Idle> {
    SESSION.with(|slot| slot.borrow_mut().take())
}

pub fn store_session(idle: Idle) {
    SESSION.with(|slot| *slot.borrow_mut() = Some(idle));
}

pub fn with_session<R>(f: impl FnOnce(Option<&Idle>) -> R) -> R {
    SESSION.with(|slot| f(slot.borrow().as_ref()))
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

/// Programs up to this size (encoded) are kept decoded between runs.
const KEPT_PROGRAM_BYTES: usize = 64 * 1024;

/// What a kept program is known by: its bytes (`start`), or the key the
/// host named it with (`start-keeping`, `start-kept`).
enum KeptBy {
    Bytes(Vec<u8>),
    Key(u64),
}

thread_local! {
    /// The last program started here: a warm instance that runs the same
    /// program again copies it instead of decoding it. `MontyRun::start`
    /// builds a fresh heap from a copy, so nothing of one run reaches the next.
    static KEPT: RefCell<Option<(KeptBy, Program)>> = const { RefCell::new(None) };
}

thread_local! {
    /// The limits and options of the last `start`, `start-keeping`,
    /// `start-kept` or `eval` call, for `start-kept-same` and `eval-same`.
    static SETTINGS: RefCell<Option<(Limits, Options)>> = const { RefCell::new(None) };
}

/// Runs `f` with `limits` and `options`, then remembers them for the
/// `-same` calls.
pub fn remembering<R>(
    limits: Limits,
    options: Options,
    f: impl FnOnce(&Limits, &Options) -> R,
) -> R {
    let result = f(&limits, &options);
    SETTINGS.with(|slot| *slot.borrow_mut() = Some((limits, options)));
    result
}

/// Runs `f` with the remembered limits and options.
pub fn with_same<R>(f: impl FnOnce(&Limits, &Options) -> R) -> Result<R, Error> {
    let (limits, options) = SETTINGS
        .with(|slot| slot.borrow_mut().take())
        .ok_or_else(|| {
            invalid(
                "no limits and options to reuse: this instance has not run a start or eval call",
            )
        })?;
    Ok(remembering(limits, options, f))
}

/// What `begin` needs of a program: a copy of its runner, its script name
/// and how many inputs it declares.
type Parts = (MontyRun, String, usize);

fn parts(program: &Program) -> Parts {
    (
        program.run.clone(),
        program.script_name.clone(),
        program.input_names.len(),
    )
}

/// Decodes `program` and keeps it under `by` (when it is small enough to keep).
fn decode_keeping(program: &[u8], by: impl FnOnce() -> KeptBy) -> Result<Parts, Error> {
    KEPT.with(|slot| *slot.borrow_mut() = None);
    let decoded = Program::decode(program)?;
    let parts = parts(&decoded);
    if program.len() <= KEPT_PROGRAM_BYTES {
        KEPT.with(|slot| *slot.borrow_mut() = Some((by(), decoded)));
    }
    Ok(parts)
}

/// The parts of the kept program, if it is the one `matches` picks.
fn kept(matches: impl Fn(&KeptBy) -> bool) -> Option<Parts> {
    KEPT.with(|slot| {
        slot.borrow()
            .as_ref()
            .filter(|(by, _)| matches(by))
            .map(|(_, program)| parts(program))
    })
}

/// Runs a compiled program until it completes or pauses.
pub fn start(
    program: &[u8],
    inputs: Vec<Vec<u8>>,
    limits: &Limits,
    options: &Options,
) -> Result<Step, Error> {
    let same = |by: &KeptBy| matches!(by, KeptBy::Bytes(bytes) if bytes.as_slice() == program);
    let (run, script_name, count) = match kept(same) {
        Some(parts) => parts,
        None => decode_keeping(program, || KeptBy::Bytes(program.to_vec()))?,
    };
    begin(run, &script_name, count, inputs, limits, options)
}

/// `start`, keeping the decoded program under `key` for `start_kept`.
pub fn start_keeping(
    key: u64,
    program: &[u8],
    inputs: Vec<Vec<u8>>,
    limits: &Limits,
    options: &Options,
) -> Result<Step, Error> {
    let (run, script_name, count) = decode_keeping(program, || KeptBy::Key(key))?;
    begin(run, &script_name, count, inputs, limits, options)
}

/// Starts the program kept under `key` again; `None` if this instance does
/// not hold it.
pub fn start_kept(
    key: u64,
    inputs: Vec<Vec<u8>>,
    limits: &Limits,
    options: &Options,
) -> Option<Result<Step, Error>> {
    let (run, script_name, count) = kept(|by| matches!(by, KeptBy::Key(k) if *k == key))?;
    Some(begin(run, &script_name, count, inputs, limits, options))
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
    // Everything that can refuse the call is checked before what the
    // instance holds is dropped: an `invalid` answer leaves it as it was.
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
    crate::persist::abandon();
    let mut budget = Budget::new(limits, options);
    let tracker = limits::tracker(limits);
    let run = run.with_os_policy(crate::policy::current());
    let (result, output) = collect(budget.output_left, |print| {
        run.start(values, tracker, print)
    });
    budget.output_left = budget.output_left.saturating_sub(output.len() as u64);
    advance(from_run(result), script_name.to_owned(), budget, output)
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

/// The step that hands `value` to the host: refused as a RecursionError when
/// Monty cut it short, ended as a RuntimeError when it cannot be encoded
/// (the execution ran: what it printed goes with the error).
pub(crate) fn result_step(value: &MontyObject, output: String) -> Result<Step, Error> {
    if is_cut(value) {
        return Err(python(&too_deep("the result"), output));
    }
    match codec::encode(value) {
        Ok(bytes) => Ok(Step {
            progress: Progress::Complete(bytes),
            output,
        }),
        Err(error) => Err(ended(error, output)),
    }
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
fn cut_arguments(flow: &Flow) -> bool {
    flow.call_args().is_some_and(|args| {
        args.args().any(|arg| is_cut(&arg.to_owned()))
            || args.kwargs().any(|(_, v)| is_cut(&v.to_owned()))
    })
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

/// Keeps a snippet's REPL session for the next snippet.
fn keep_session(repl: Option<MontyRepl>, script_name: &str) {
    if let Some(repl) = repl {
        store_session(Idle {
            repl,
            script_name: script_name.to_owned(),
        });
    }
}

/// Drives an execution from a Monty result to the next step the host must see.
pub fn advance(
    mut next: Next,
    script_name: String,
    mut budget: Budget,
    mut output: String,
) -> Result<Step, Error> {
    loop {
        let flow = match next {
            Err(Ended { error, repl }) => {
                keep_session(repl.map(|repl| *repl), &script_name);
                return Err(python(&error, output));
            }
            Ok(flow) => flow,
        };
        let flow = match flow.done() {
            Done::Value(value, repl) => {
                keep_session(repl, &script_name);
                return result_step(&value, output);
            }
            Done::Paused(flow) => flow,
        };
        if flow.is_attribute_lookup() {
            // A host object carries all its attributes (ExMonty sends them
            // eagerly): one it lacks is an AttributeError, raised in place
            // without a round trip. Its methods are calls, not lookups.
            let (after, more) = collect(budget.output_left, |print| {
                each!(flow, NameLookup(lookup) => lookup.resume(NameLookupResult::Undefined, print),
                    other => other.abort(mismatched(), print))
            });
            budget.output_left = budget.output_left.saturating_sub(more.len() as u64);
            output.push_str(&more);
            next = after;
            continue;
        }
        if cut_arguments(&flow) {
            // The host cannot be shown the call: it raises where it was made.
            let (after, more) = collect(budget.output_left, |print| {
                flow.raise(too_deep("an argument of this call"), print)
            });
            budget.output_left = budget.output_left.saturating_sub(more.len() as u64);
            output.push_str(&more);
            next = after;
            continue;
        }
        let host_os_call = budget.typed_os_calls && flow.os_call().is_some();
        if budget.interactive || flow.is_sleep() || host_os_call {
            let described = match describe(&flow, budget.typed_os_calls) {
                Ok(described) => described,
                Err(error) => return Err(ended(error, output)),
            };
            budget.allocations_left = crate::alloc::counting_left();
            store_paused(Paused {
                flow,
                script_name,
                budget,
            });
            return Ok(Step {
                progress: described,
                output,
            });
        }
        // Non-interactive: answer as `MontyRun::run` would, without the host.
        let (after, more) = collect(budget.output_left, |print| auto_answer(flow, print));
        next = after;
        budget.output_left = budget.output_left.saturating_sub(more.len() as u64);
        output.push_str(&more);
    }
}

fn call_progress(
    name: &str,
    args: &monty_types::CallArgs,
    call_id: u32,
    method_call: bool,
) -> Result<Progress, Error> {
    let (args, kwargs) = codec::encode_args(args)?;
    Ok(Progress::FunctionCall(FunctionCall {
        name: name.to_owned(),
        args,
        kwargs,
        call_id,
        method_call,
    }))
}

fn os_progress(call: &OsFunctionCall, call_id: u32, typed: bool) -> Result<Progress, Error> {
    let (args, kwargs) = codec::encode_args(&call.clone().to_args())?;
    let typed = if typed {
        Some(
            postcard::to_allocvec(call)
                .map_err(|e| invalid(format!("cannot encode an OS call: {e}")))?,
        )
    } else {
        None
    };
    Ok(Progress::OsCall(OsCall {
        function: call.name().to_owned(),
        args,
        kwargs,
        call_id,
        typed,
    }))
}

/// What the host needs to know about a pause.
pub fn describe(flow: &Flow, typed_os_calls: bool) -> Result<Progress, Error> {
    match flow {
        Flow::Run(RunProgress::FunctionCall(c)) => {
            call_progress(&c.function_name, &c.args, c.call_id, c.object_id.is_some())
        }
        Flow::Repl(ReplProgress::FunctionCall(c)) => {
            call_progress(&c.function_name, &c.args, c.call_id, c.object_id.is_some())
        }
        Flow::Run(RunProgress::NameLookup(lookup)) => Ok(Progress::NameLookup(lookup.name.clone())),
        Flow::Repl(ReplProgress::NameLookup(lookup)) => {
            Ok(Progress::NameLookup(lookup.name.clone()))
        }
        Flow::Run(RunProgress::OsCall(c)) => {
            os_progress(&c.function_call, c.call_id, typed_os_calls)
        }
        Flow::Repl(ReplProgress::OsCall(c)) => {
            os_progress(&c.function_call, c.call_id, typed_os_calls)
        }
        Flow::Run(RunProgress::ResolveFutures(_)) | Flow::Repl(ReplProgress::ResolveFutures(_)) => {
            Ok(Progress::ResolveFutures(flow.pending_call_ids()))
        }
        Flow::Run(RunProgress::Complete(_)) | Flow::Repl(ReplProgress::Complete { .. }) => {
            Err(invalid("the execution is not paused"))
        }
    }
}

/// An answer checked against the pause it answers.
enum Decoded {
    Ext(ExtFunctionResult),
    Pending,
    Lookup(NameLookupResult),
}

/// What the pause accepts as `answer`; `Err` leaves it paused.
fn decode(flow: &Flow, answer: Answer, max_memory: Option<u64>) -> Result<Decoded, Error> {
    let call_name = match flow {
        Flow::Run(RunProgress::FunctionCall(c)) => Some(c.function_name.as_str()),
        Flow::Repl(ReplProgress::FunctionCall(c)) => Some(c.function_name.as_str()),
        _ => None,
    };
    let lookup = matches!(
        flow,
        Flow::Run(RunProgress::NameLookup(_)) | Flow::Repl(ReplProgress::NameLookup(_))
    );
    match (call_name, flow.os_call(), lookup, answer) {
        (Some(_), _, _, Answer::Pending) => Ok(Decoded::Pending),
        (Some(name), _, _, answer) => ext_result(answer, name, max_memory).map(Decoded::Ext),
        (_, Some(_), _, Answer::Pending) => Err(invalid(
            "an OS call must be answered with a value, an exception or `undefined`",
        )),
        // `undefined`: no handler; raise what Python raises without one.
        (_, Some(call), _, Answer::Undefined) => Ok(Decoded::Ext(ExtFunctionResult::Error(
            crate::answers::denied(call),
        ))),
        (_, Some(call), _, answer) => ext_result(answer, call.name(), max_memory).map(Decoded::Ext),
        (_, _, true, Answer::Value(bytes)) => {
            Ok(Decoded::Lookup(match value(&bytes, max_memory)? {
                Ok(value) => NameLookupResult::Value(value),
                Err(exc) => NameLookupResult::Error(exc),
            }))
        }
        (_, _, true, Answer::Raise(error)) => Ok(Decoded::Lookup(NameLookupResult::Error(
            host_exception(error),
        ))),
        (_, _, true, Answer::Undefined) => Ok(Decoded::Lookup(NameLookupResult::Undefined)),
        (_, _, true, Answer::Pending) => Err(invalid("`pending` only answers a function call")),
        _ => Err(invalid(
            "the execution waits for futures: use resolve-futures",
        )),
    }
}

fn mismatched() -> MontyException {
    MontyException::runtime_error("mismatched answer")
}

/// Applies a decoded answer to the pause it was decoded for.
fn apply(flow: Flow, decoded: Decoded, print: monty_types::PrintWriter<'_>) -> Next {
    match decoded {
        Decoded::Pending => each!(flow, FunctionCall(call) => call.resume_pending(print),
            other => other.abort(mismatched(), print)),
        // `await f()` on a host function: Monty awaits the call at once, so a
        // settled result is handed over as an already-finished coroutine.
        Decoded::Ext(result) => each!(flow, FunctionCall(call) => {
            if call.allow_eager_await {
                match eager(result) {
                    Ok(settled) => call.resume_eager(settled, print),
                    Err(result) => call.resume(result, print),
                }
            } else {
                call.resume(result, print)
            }
        }, flow => each!(flow, OsCall(call) => {
            if call.allow_eager_await {
                match eager(result) {
                    Ok(settled) => call.resume_eager(settled, print),
                    Err(result) => call.resume(result, print),
                }
            } else {
                call.resume(result, print)
            }
        }, other => other.abort(mismatched(), print))),
        Decoded::Lookup(result) => each!(flow, NameLookup(lookup) => lookup.resume(result, print),
            other => other.abort(mismatched(), print)),
    }
}

/// Answers the paused call. A bad answer leaves the execution paused.
pub fn resume(answer: Answer) -> Result<Step, Error> {
    let Some(mut paused) = take_paused() else {
        return Err(invalid("no paused execution to resume"));
    };
    // The answer is decoded before the execution's limits are armed again,
    // like a start's inputs (its size is checked against `max_memory`): a
    // count nearly spent cannot turn a refused answer into a trap.
    let decoded = match decode(&paused.flow, answer, paused.budget.max_memory) {
        Ok(decoded) => decoded,
        Err(error) => {
            store_paused(paused);
            return Err(error);
        }
    };
    limits::resumed(paused.budget.max_memory, paused.budget.allocations_left);
    paused.budget.answered = paused.budget.answered.saturating_add(1);
    let exceeded = suspension_limit(&paused.budget);
    let flow = paused.flow;
    let (next, output) = collect(paused.budget.output_left, |print| match exceeded {
        Some(exceeded) => flow.abort(exceeded, print),
        None => apply(flow, decoded, print),
    });
    continue_after_answer(next, paused.script_name, paused.budget, output)
}

/// Answers pending futures (all or some of them).
pub fn resolve_futures(results: Vec<(u32, Answer)>) -> Result<Step, Error> {
    let Some(mut paused) = take_paused() else {
        return Err(invalid("no paused execution to resume"));
    };
    let waiting = paused.flow.pending_call_ids();
    if !matches!(
        paused.flow,
        Flow::Run(RunProgress::ResolveFutures(_)) | Flow::Repl(ReplProgress::ResolveFutures(_))
    ) {
        store_paused(paused);
        return Err(invalid(
            "the execution is not waiting for futures: use resume",
        ));
    }
    let max_memory = paused.budget.max_memory;
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
    // Armed again once the answers are decoded (see `resume`).
    limits::resumed(paused.budget.max_memory, paused.budget.allocations_left);
    paused.budget.answered = paused.budget.answered.saturating_add(1);
    let exceeded = suspension_limit(&paused.budget);
    let flow = paused.flow;
    let (next, output) = collect(paused.budget.output_left, |print| match exceeded {
        Some(exceeded) => flow.abort(exceeded, print),
        None => each!(flow, ResolveFutures(futures) => futures.resume(decoded, print),
            other => other.abort(mismatched(), print)),
    });
    continue_after_answer(next, paused.script_name, paused.budget, output)
}

/// Charges what the answered step printed, then drives on.
pub fn continue_after_answer(
    next: Next,
    script_name: String,
    mut budget: Budget,
    output: String,
) -> Result<Step, Error> {
    budget.output_left = budget.output_left.saturating_sub(output.len() as u64);
    advance(next, script_name, budget, output)
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
