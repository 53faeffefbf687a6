//! Executions: compile, start, step, pause, resume, dump and load.
//!
//! An instance runs one execution at a time. When the execution pauses on a
//! host call it is kept in `SLOT` until the host resumes it, dumps it or
//! abandons it. Every execution gets a fresh Monty heap (`MontyRun::start`
//! builds one), so nothing of one execution is visible to the next.

use std::cell::RefCell;

use monty::{dump, Dump, MontyRun, RunProgress, Session, SessionRef};
use monty_types::{
    CompileOptions, ExcType, ExtFunctionResult, MontyException, MontyObject, NameLookupResult,
    OsFunctionCall, PrintWriter,
};

use crate::codec::{self, Program, PROGRAM_FORMAT};
use crate::errors::{host_exception, invalid, python};
use crate::limits::{self, DEFAULT_OUTPUT_CAP};
use crate::wit::{Answer, Error, FunctionCall, Limits, Options, OsCall, Progress, Step};

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
}

impl Budget {
    fn new(limits: &Limits, options: &Options) -> Self {
        Self {
            output_left: limits.max_output_bytes.unwrap_or(DEFAULT_OUTPUT_CAP),
            answered: 0,
            max_suspensions: limits.max_suspensions,
            interactive: options.interactive,
            typed_os_calls: options.typed_os_calls,
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
    .map_err(|exc| python(&exc))?;
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
        .map_err(|exc| python(&exc))?;
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
    let mut output = String::new();
    let result = run.start(values, tracker, writer(&mut output, budget.output_left));
    budget.output_left = budget.output_left.saturating_sub(output.len() as u64);
    advance(result, script_name.to_owned(), budget, output)
}

fn writer(output: &mut String, left: u64) -> PrintWriter<'_> {
    PrintWriter::CollectString(output, Some(usize::try_from(left).unwrap_or(usize::MAX)))
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
            Err(exc) => return Err(python(&exc)),
            Ok(RunProgress::Complete(value)) => {
                return Ok(Step {
                    progress: Progress::Complete(codec::encode(&value)?),
                    output,
                })
            }
            Ok(progress) => progress,
        };
        let host_os_call = budget.typed_os_calls && matches!(progress, RunProgress::OsCall(_));
        if budget.interactive || is_sleep(&progress) || host_os_call {
            let described = describe(&progress, budget.typed_os_calls)?;
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
        let mut more = String::new();
        result = auto_answer(progress, writer(&mut more, budget.output_left));
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
            let error = call.function_call.on_no_handler();
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

fn ext_result(answer: Answer, name: &str) -> Result<ExtFunctionResult, Error> {
    Ok(match answer {
        Answer::Value(bytes) => ExtFunctionResult::Return(codec::decode(&bytes)?),
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
    // Decode before consuming the pause, so a bad answer keeps the execution.
    enum Decoded {
        Ext(ExtFunctionResult),
        Pending,
        Lookup(NameLookupResult),
    }
    let decoded = match (&paused.progress, answer) {
        (RunProgress::ResolveFutures(_), _) => Err(invalid(
            "the execution waits for futures: use resolve-futures",
        )),
        (RunProgress::FunctionCall(_), Answer::Pending) => Ok(Decoded::Pending),
        (RunProgress::FunctionCall(call), answer) => {
            ext_result(answer, &call.function_name).map(Decoded::Ext)
        }
        (RunProgress::OsCall(_), Answer::Pending) => Err(invalid(
            "an OS call must be answered with a value, an exception or `undefined`",
        )),
        // `undefined`: no handler; raise what Python raises without one.
        (RunProgress::OsCall(call), Answer::Undefined) => Ok(Decoded::Ext(
            ExtFunctionResult::Error(call.function_call.on_no_handler()),
        )),
        (RunProgress::OsCall(call), answer) => {
            ext_result(answer, call.function_call.name()).map(Decoded::Ext)
        }
        (RunProgress::NameLookup(_), Answer::Value(bytes)) => {
            codec::decode(&bytes).map(|value| Decoded::Lookup(NameLookupResult::Value(value)))
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
    let mut output = String::new();
    paused.budget.answered += 1;
    let print = writer(&mut output, paused.budget.output_left);
    let result = if let Some(exceeded) = suspension_limit(&paused.budget) {
        abort(paused.progress, exceeded, print)
    } else {
        match (paused.progress, decoded) {
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
        }
    };
    continue_after_answer(result, paused.script_name, paused.budget, output)
}

/// Answers pending futures (all or some of them).
pub fn resolve_futures(results: Vec<(u32, Answer)>) -> Result<Step, Error> {
    let Some(mut paused) = take_paused() else {
        return Err(invalid("no paused execution to resume"));
    };
    if !matches!(paused.progress, RunProgress::ResolveFutures(_)) {
        store_paused(paused);
        return Err(invalid(
            "the execution is not waiting for futures: use resume",
        ));
    }
    let decoded = results
        .into_iter()
        .map(|(id, answer)| match answer {
            Answer::Pending => Err(invalid("a future cannot be resolved with `pending`")),
            answer => ext_result(answer, "future").map(|result| (id, result)),
        })
        .collect::<Result<Vec<_>, Error>>();
    let decoded = match decoded {
        Ok(decoded) => decoded,
        Err(error) => {
            store_paused(paused);
            return Err(error);
        }
    };
    let mut output = String::new();
    paused.budget.answered += 1;
    let print = writer(&mut output, paused.budget.output_left);
    let result = match (paused.progress, suspension_limit(&paused.budget)) {
        (progress, Some(exceeded)) => abort(progress, exceeded, print),
        (RunProgress::ResolveFutures(futures), None) => futures.resume(decoded, print),
        (progress, None) => abort(
            progress,
            MontyException::runtime_error("mismatched answer"),
            print,
        ),
    };
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
pub fn load_snapshot(snapshot: &[u8], limits: &Limits) -> Result<Progress, Error> {
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
    let described = describe(&progress, options_typed(limits))?;
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
            typed_os_calls: options_typed(limits),
        },
    });
    Ok(described)
}

/// A loaded snapshot serves its OS calls through the host's handlers only.
fn options_typed(_limits: &Limits) -> bool {
    false
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

    #[test]
    fn snapshot_round_trip() {
        eval_interactive("x = g()\nx * 3");
        let bytes = dump_snapshot().expect("dumps");
        abandon();
        let progress = load_snapshot(&bytes, &no_limits()).expect("loads");
        assert!(matches!(progress, Progress::FunctionCall(_)));
        let answer = codec::encode(&MontyObject::int(5)).expect("encodes");
        assert_eq!(
            complete(resume(Answer::Value(answer)).expect("resumes")),
            MontyObject::int(15)
        );
    }
}
