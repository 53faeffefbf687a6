//! The NIF entry points.
//!
//! Every entry point that runs guest code only converts its arguments, queues
//! a job and returns `{:ok, job}`; the result arrives later as the message
//! `{:ex_monty, job, result}`. Argument conversion is budgeted: when the input
//! terms are too large to convert within about a millisecond, the normal NIF
//! returns `:dirty` and the Elixir side repeats the call through the `_dirty`
//! variant, which runs on a dirty CPU scheduler.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustler::types::tuple::get_tuple;
use rustler::{Atom, Binary, Encoder, Env, NewBinary, ResourceArc, Term};

use crate::atoms;
use crate::engine::{self, Runtime};
use crate::exceptions::{
    exc_type_of_atom, guest_error, sandbox_exception, sandbox_python_type, trap_error,
};
use crate::instance::{
    Answer, CallControl, CallError, GuestError, HostError, Instance, Interruption, Limits, Options,
    Progress, Step, Trapped, MEMORY_CEILING,
};
use crate::mounts::{self, MountsRes};
use crate::pool;
use crate::resources::{
    self, Acquired, ExecLimits, Held, JobRes, PauseKind, Paused, PausedInstance, Pending,
    PendingRes, Reply, RunnerRes, SnapshotRes,
};
use crate::values::{self, Budget, DecodeError, EncodeError, Site};

/// Conversion work allowed on a normal scheduler (roughly one millisecond).
const NORMAL_BUDGET: usize = 20_000;
/// Binaries larger than this are copied on a dirty scheduler, not a normal one.
const BIG_BINARY: usize = 256 * 1024;
/// Backstop for compiling and other calls that run no Python.
const SERVICE_DEADLINE: Duration = Duration::from_secs(60);
/// Linear memory the guest may use beyond `max_memory` (its own baseline,
/// program, output buffers and the values crossing the boundary).
const MEMORY_SLACK: usize = 64 * 1024 * 1024;

/// `{{max_duration_us, max_memory, max_recursion_depth, gc_interval},
///   {max_suspensions, max_output_bytes, max_total_sleep_us, max_allocations}}`,
/// validated by `ExMonty.Limits`.
type LimitsTuple = (
    (Option<u64>, Option<u64>, Option<u32>, Option<u64>),
    (Option<u64>, Option<u64>, Option<u64>, Option<u64>),
);

/// `{{interactive, cwd | nil}, mounts | nil}` from `ExMonty`.
type RunOptions = ((bool, Option<String>), Option<ResourceArc<MountsRes>>);

trait IntoOptions {
    fn into_options(self, typed_os_calls: bool) -> Options;
}

impl IntoOptions for (bool, Option<String>) {
    fn into_options(self, typed_os_calls: bool) -> Options {
        Options {
            interactive: self.0,
            cwd: self.1,
            typed_os_calls,
        }
    }
}

fn exec_limits(tuple: LimitsTuple) -> ExecLimits {
    let (
        (max_duration_us, max_memory, max_recursion_depth, gc_interval),
        (max_suspensions, max_output_bytes, max_total_sleep_us, max_allocations),
    ) = tuple;
    let guest = Limits {
        max_duration_us,
        max_memory,
        max_recursion_depth,
        gc_interval,
        max_suspensions,
        max_output_bytes,
        max_total_sleep_us,
        max_allocations,
    };
    // Monty checks its deadline every few hundred instructions; wasmtime's
    // epoch deadline fires only if Monty's check is missed (a long native
    // operation), with a grace of a tenth of the budget (at least 100 ms).
    let backstop = max_duration_us.map(|us| {
        let budget = Duration::from_micros(us);
        budget + (budget / 10).max(Duration::from_millis(100))
    });
    let output = usize::try_from(max_output_bytes.unwrap_or(0)).unwrap_or(usize::MAX);
    let memory_cap = max_memory.map_or(MEMORY_CEILING, |bytes| {
        usize::try_from(bytes)
            .unwrap_or(usize::MAX)
            .saturating_add(bytes as usize / 4)
            .saturating_add(output)
            .saturating_add(MEMORY_SLACK)
            .min(MEMORY_CEILING)
    });
    ExecLimits {
        guest,
        backstop,
        memory_cap,
        mounts: None,
        interactive: true,
    }
}

fn control(cancel: Arc<AtomicBool>, backstop: Option<Duration>, memory_cap: usize) -> CallControl {
    CallControl {
        cancel,
        deadline: backstop.map(|d| Instant::now() + d),
        memory_cap,
    }
}

fn runtime() -> Result<Arc<Runtime>, String> {
    engine::runtime().ok_or_else(|| {
        "ExMonty is not initialised (is the :ex_monty application started?)".to_owned()
    })
}

fn error_term<'a>(env: Env<'a>, kind: Atom, message: &str) -> Term<'a> {
    (
        atoms::error(),
        sandbox_exception(env, kind, sandbox_python_type(kind), message),
    )
        .encode(env)
}

/// Queues `work` and returns `{:ok, job}` to the caller.
fn spawn<'a, F>(env: Env<'a>, work: F) -> Term<'a>
where
    F: FnOnce(Reply) + Send + 'static,
{
    let job = ResourceArc::new(JobRes {
        cancel: Arc::new(AtomicBool::new(false)),
    });
    let pid = env.pid();
    let _ = job.monitor(Some(env), &pid);
    let reply = Reply::new(pid, job.clone());
    let job_fn = move || {
        // Cancelled (or its caller died) while queued: do not start it at all.
        if reply
            .cancel_flag()
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            reply.send(|env| error_term(env, atoms::cancelled(), "execution was cancelled"));
        } else {
            work(reply);
        }
    };
    match pool::submit(Box::new(job_fn)) {
        Ok(()) => (atoms::ok(), job).encode(env),
        Err(message) => error_term(env, atoms::not_initialized(), &message),
    }
}

/// The settings of a new execution, or an error term when its inputs cannot fit.
fn prepare<'a>(
    env: Env<'a>,
    encoded: &[Vec<u8>],
    limits: LimitsTuple,
    run_options: (bool, Option<String>),
    mounts: Option<ResourceArc<MountsRes>>,
) -> Result<(ExecLimits, Options), Term<'a>> {
    let mut limits = exec_limits(limits);
    if let Some(error) = inputs_fit(env, encoded, limits.guest.max_memory) {
        return Err(error);
    }
    limits.interactive = run_options.0;
    limits.mounts = mounts;
    let options = run_options.into_options(limits.mounts.is_some());
    Ok((limits, options))
}

/// Queues `work` with an instance: a warm one from the pool, or a `fresh` one.
fn spawn_with_instance<'a, F>(env: Env<'a>, fresh: bool, work: F) -> Term<'a>
where
    F: FnOnce(Reply, Instance) + Send + 'static,
{
    spawn(env, move |reply| {
        let instance = runtime().and_then(|runtime| {
            if fresh {
                Instance::new(&runtime)
            } else {
                pool::checkout(&runtime)
            }
        });
        match instance {
            Ok(instance) => work(reply, instance),
            Err(message) => {
                reply.send(move |env| error_term(env, atoms::sandbox_crashed(), &message))
            }
        }
    })
}

/// Converts input terms into encoded values.
fn encode_inputs(
    names: &[String],
    inputs: &[Term<'_>],
    budget: &mut Budget,
) -> Result<Vec<Vec<u8>>, EncodeError> {
    inputs
        .iter()
        .zip(names.iter())
        .map(|(term, name)| {
            let object = values::encode(*term, &format!("inputs[{name:?}]"), budget)?;
            postcard::to_allocvec(&object)
                .map_err(|e| EncodeError::Invalid(format!("cannot encode input: {e}")))
        })
        .collect()
}

fn encode_error<'a>(env: Env<'a>, error: EncodeError) -> Term<'a> {
    match error {
        EncodeError::OverBudget => atoms::dirty().encode(env),
        EncodeError::Invalid(message) => error_term(env, atoms::invalid_input(), &message),
    }
}

// ---------------------------------------------------------------------------
// Initialisation and introspection
// ---------------------------------------------------------------------------

#[rustler::nif(schedule = "DirtyCpu")]
fn init(
    wasm_path: String,
    cache_dir: String,
    workers: usize,
    max_live_paused: usize,
) -> Result<(String, usize), String> {
    let runtime = engine::init(
        std::path::Path::new(&wasm_path),
        std::path::Path::new(&cache_dir),
    )?;
    let workers = pool::start(workers)?;
    resources::set_max_live_paused(max_live_paused);
    Ok((runtime.load_source.clone(), workers))
}

/// `{workers, idle_instances, live_instances, live_paused}`
#[rustler::nif]
fn stats() -> (usize, usize, usize, usize) {
    let (workers, idle) = pool::stats();
    (
        workers,
        idle,
        crate::instance::live_instances(),
        resources::live_paused(),
    )
}

#[rustler::nif]
fn drain_pool() -> usize {
    pool::drain()
}

#[rustler::nif]
fn cancel(job: ResourceArc<JobRes>) -> Atom {
    job.cancel.store(true, std::sync::atomic::Ordering::Relaxed);
    atoms::ok()
}

// ---------------------------------------------------------------------------
// Compile and run
// ---------------------------------------------------------------------------

/// The source as a string, or `:dirty` when it is too large to copy here.
fn source<'a>(env: Env<'a>, code: Binary<'a>, dirty: bool) -> Result<String, Term<'a>> {
    if !dirty && code.len() > BIG_BINARY {
        return Err(atoms::dirty().encode(env));
    }
    std::str::from_utf8(code.as_slice())
        .map(str::to_owned)
        .map_err(|_| {
            error_term(
                env,
                atoms::invalid_input(),
                "Python source must be valid UTF-8",
            )
        })
}

/// A binary argument copied out, or `:dirty` when it is too large to copy here.
fn owned_bytes<'a>(env: Env<'a>, bytes: Binary<'a>, dirty: bool) -> Result<Vec<u8>, Term<'a>> {
    if !dirty && bytes.len() > BIG_BINARY {
        return Err(atoms::dirty().encode(env));
    }
    Ok(bytes.as_slice().to_vec())
}

#[rustler::nif]
fn compile<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
) -> Term<'a> {
    compile_impl(env, code, script_name, input_names, false)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn compile_dirty<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
) -> Term<'a> {
    compile_impl(env, code, script_name, input_names, true)
}

fn compile_impl<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
    dirty: bool,
) -> Term<'a> {
    let code = match source(env, code, dirty) {
        Ok(code) => code,
        Err(term) => return term,
    };
    spawn_with_instance(env, false, move |reply, mut instance| {
        let ctl = control(reply.cancel_flag(), Some(SERVICE_DEADLINE), MEMORY_CEILING);
        match instance.compile(&ctl, &code, &script_name, &input_names) {
            Ok(Ok(program)) => {
                pool::checkin(instance);
                let runner = ResourceArc::new(RunnerRes {
                    program: Arc::new(program),
                    script_name,
                    input_names,
                });
                reply.send(move |env| (atoms::ok(), runner).encode(env));
            }
            Ok(Err(error)) => {
                pool::checkin(instance);
                reply.send(move |env| guest_error(env, &error));
            }
            Err(CallError::Trap(trapped)) => reply.send(move |env| trap_error(env, &trapped)),
        }
    })
}

/// Answers file calls on mounted directories right here on the worker, until
/// the execution needs something else.
fn serve_mounts(
    reply: &Reply,
    instance: &mut Instance,
    mut result: Result<Result<Step, GuestError>, CallError>,
    limits: &ExecLimits,
) -> Result<Result<Step, GuestError>, CallError> {
    let Some(mounts) = limits.mounts.as_ref() else {
        return result;
    };
    let ctl = control(reply.cancel_flag(), limits.backstop, limits.memory_cap);
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
    if let Ok(Ok(step)) = &mut result {
        step.output.insert_str(0, &carried);
    }
    result
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

/// Turns the outcome of a call that may pause into the reply.
fn finish_step(
    reply: Reply,
    mut instance: Instance,
    result: Result<Result<Step, GuestError>, CallError>,
    limits: ExecLimits,
) {
    let result = serve_mounts(&reply, &mut instance, result, &limits);
    match result {
        Err(CallError::Trap(trapped)) => reply.send(move |env| trap_error(env, &trapped)),
        Ok(Err(error)) => {
            // The guest cleared its paused state when the execution failed.
            pool::checkin(instance);
            reply.send(move |env| guest_error(env, &error));
        }
        Ok(Ok(step)) => {
            let Step { progress, output } = step;
            match progress {
                Progress::Complete(value) => {
                    pool::checkin(instance);
                    reply.send(move |env| match values::decode(env, &value, Site::Worker) {
                        Ok(term) => (atoms::ok(), (atoms::complete(), term, &output)).encode(env),
                        Err(DecodeError::Invalid(message)) => {
                            error_term(env, atoms::invalid_input(), &message)
                        }
                        Err(DecodeError::NeedsScheduler) => {
                            deferred(env, Pending::Complete { value, output })
                        }
                    });
                }
                paused => {
                    let kind = match &paused {
                        Progress::FunctionCall(_) => PauseKind::FunctionCall,
                        Progress::OsCall(_) => PauseKind::OsCall,
                        Progress::NameLookup(_) => PauseKind::NameLookup,
                        _ => PauseKind::Futures,
                    };
                    let held = match hold(instance) {
                        Ok(held) => held,
                        Err(CallError::Trap(trapped)) => {
                            return reply.send(move |env| trap_error(env, &trapped))
                        }
                    };
                    let snapshot =
                        ResourceArc::new(SnapshotRes::new(kind, Paused { held, limits }));
                    reply.send(move |env| {
                        match progress_term(env, &paused, snapshot.clone(), &output, Site::Worker) {
                            Ok(term) => (atoms::ok(), term).encode(env),
                            Err(DecodeError::Invalid(message)) => {
                                error_term(env, atoms::invalid_input(), &message)
                            }
                            Err(DecodeError::NeedsScheduler) => deferred(
                                env,
                                Pending::Paused {
                                    progress: paused,
                                    snapshot,
                                    output,
                                },
                            ),
                        }
                    });
                }
            }
        }
    }
}

/// A control for calls that must not be interrupted half-way: dumping a
/// paused execution (an interrupted dump would lose it) and loading one.
fn service_control() -> CallControl {
    control(
        Arc::new(AtomicBool::new(false)),
        Some(SERVICE_DEADLINE),
        MEMORY_CEILING,
    )
}

/// Where a new pause is kept: in its instance while few pauses hold one,
/// otherwise as its dump bytes, the instance going back to the pool. This
/// bounds the instances (memory, address space, mappings) paused executions
/// pin, however many there are.
fn hold(mut instance: Instance) -> Result<Held, CallError> {
    if resources::may_stay_live() {
        return Ok(Held::Live(PausedInstance::new(instance)));
    }
    let ctl = service_control();
    match instance.dump_snapshot(&ctl)? {
        Ok(bytes) => {
            instance.abandon(&ctl)?;
            pool::checkin(instance);
            Ok(Held::Hibernated(bytes))
        }
        // Not dumpable: it keeps its instance.
        Err(_) => Ok(Held::Live(PausedInstance::new(instance))),
    }
}

/// The instance a paused execution runs in: its own, or one a hibernated
/// execution is loaded into.
fn wake(held: Held, limits: &ExecLimits) -> Result<Instance, Result<GuestError, CallError>> {
    match held {
        Held::Live(paused) => paused.into_instance().ok_or_else(|| {
            Ok(GuestError::Invalid(
                "internal: the paused execution lost its instance".to_owned(),
            ))
        }),
        Held::Hibernated(bytes) => {
            let runtime = runtime().map_err(|message| Ok(GuestError::Invalid(message)))?;
            let mut instance =
                pool::checkout(&runtime).map_err(|message| Ok(GuestError::Invalid(message)))?;
            let typed = limits.mounts.is_some();
            match instance.load_snapshot(&service_control(), &bytes, &limits.guest, typed) {
                Ok(Ok(_progress)) => Ok(instance),
                Ok(Err(error)) => Err(Ok(error)),
                Err(trap) => Err(Err(trap)),
            }
        }
    }
}

/// Takes the paused execution of `snapshot` on a worker and runs `work` on
/// it; a consumed snapshot, or a caller that gave up while waiting its turn,
/// is answered without touching it.
fn with_paused<'a, F>(env: Env<'a>, snapshot: ResourceArc<SnapshotRes>, work: F) -> Term<'a>
where
    F: FnOnce(Reply, &SnapshotRes, Paused) + Send + 'static,
{
    spawn(env, move |reply| {
        match snapshot.acquire(&reply.cancel_flag()) {
            Acquired::Paused(paused) => work(reply, &snapshot, paused),
            Acquired::Consumed => reply.send(consumed),
            Acquired::Cancelled => {
                reply.send(|env| error_term(env, atoms::cancelled(), "execution was cancelled"))
            }
        }
    })
}

/// Answers a paused execution with `call` (a resume or a futures resolution).
/// A refused answer leaves the execution exactly as it was; anything else
/// consumes the snapshot and carries on with the next step.
fn answer_paused<F>(reply: Reply, snapshot: &SnapshotRes, paused: Paused, call: F)
where
    F: FnOnce(
        &mut Instance,
        &CallControl,
        Option<u64>,
    ) -> Result<Result<Step, GuestError>, CallError>,
{
    let Paused { held, limits } = paused;
    let hibernated = match &held {
        Held::Hibernated(bytes) => Some(bytes.clone()),
        Held::Live(_) => None,
    };
    let mut instance = match wake(held, &limits) {
        Ok(instance) => instance,
        Err(failure) => {
            if let Some(bytes) = hibernated {
                snapshot.release(Paused {
                    held: Held::Hibernated(bytes),
                    limits,
                });
            } else {
                snapshot.consume();
            }
            return match failure {
                Ok(error) => reply.send(move |env| guest_error(env, &error)),
                Err(CallError::Trap(trapped)) => reply.send(move |env| trap_error(env, &trapped)),
            };
        }
    };
    let ctl = control(reply.cancel_flag(), limits.backstop, limits.memory_cap);
    let result = call(&mut instance, &ctl, limits.guest.max_memory);
    if let Ok(Err(GuestError::Invalid(message))) = result {
        // The guest refused the answer and kept the pause as it was.
        let held = match hibernated {
            Some(bytes) => {
                if instance.abandon(&service_control()).is_ok() {
                    pool::checkin(instance);
                }
                Held::Hibernated(bytes)
            }
            None => Held::Live(PausedInstance::new(instance)),
        };
        snapshot.release(Paused { held, limits });
        return reply.send(move |env| error_term(env, atoms::invalid_input(), &message));
    }
    snapshot.consume();
    finish_step(reply, instance, result, limits);
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

/// Inputs larger than `max_memory` are refused before they reach the guest.
fn inputs_fit<'a>(env: Env<'a>, encoded: &[Vec<u8>], max_memory: Option<u64>) -> Option<Term<'a>> {
    let total: u64 = encoded.iter().map(|bytes| bytes.len() as u64).sum();
    match max_memory {
        Some(max) if total > max => Some(
            (
                atoms::error(),
                crate::exceptions::exception_of(
                    env,
                    monty_types::ExcType::MemoryError,
                    &format!("the inputs ({total} bytes encoded) exceed max_memory ({max} bytes)"),
                ),
            )
                .encode(env),
        ),
        _ => None,
    }
}

/// `{:deferred, pending}`: the caller builds the result on a dirty scheduler.
fn deferred(env: Env<'_>, pending: Pending) -> Term<'_> {
    let resource = ResourceArc::new(PendingRes {
        pending: Mutex::new(Some(pending)),
    });
    (atoms::deferred(), resource).encode(env)
}

/// Builds a deferred result in the caller's environment.
#[rustler::nif(schedule = "DirtyCpu")]
fn materialize(env: Env<'_>, pending: ResourceArc<PendingRes>) -> Term<'_> {
    let taken = pending.pending.lock().ok().and_then(|mut slot| slot.take());
    let built = match taken {
        None => return error_term(env, atoms::invalid_input(), "this result was already taken"),
        Some(Pending::Complete { value, output }) => values::decode(env, &value, Site::Scheduler)
            .map(|term| (atoms::ok(), (atoms::complete(), term, output)).encode(env)),
        Some(Pending::Paused {
            progress,
            snapshot,
            output,
        }) => progress_term(env, &progress, snapshot, &output, Site::Scheduler)
            .map(|term| (atoms::ok(), term).encode(env)),
    };
    match built {
        Ok(term) => term,
        Err(DecodeError::Invalid(message)) => error_term(env, atoms::invalid_input(), &message),
        Err(DecodeError::NeedsScheduler) => error_term(
            env,
            atoms::invalid_input(),
            "internal: value could not be built",
        ),
    }
}

fn args_terms<'a>(
    env: Env<'a>,
    args: &[Vec<u8>],
    kwargs: &[(String, Vec<u8>)],
    site: Site,
) -> Result<(Term<'a>, Term<'a>), DecodeError> {
    if site == Site::Worker && kwargs.len() > values::SMALL_MAP {
        return Err(DecodeError::NeedsScheduler);
    }
    let args = args
        .iter()
        .map(|bytes| values::decode(env, bytes, site))
        .collect::<Result<Vec<_>, _>>()?;
    let mut map = Term::map_new(env);
    for (name, bytes) in kwargs {
        map = map
            .map_put(name.encode(env), values::decode(env, bytes, site)?)
            .map_err(|_| DecodeError::Invalid("duplicate keyword argument".to_owned()))?;
    }
    Ok((args.encode(env), map))
}

fn progress_term<'a>(
    env: Env<'a>,
    progress: &Progress,
    snapshot: ResourceArc<SnapshotRes>,
    output: &str,
    site: Site,
) -> Result<Term<'a>, DecodeError> {
    Ok(match progress {
        Progress::FunctionCall(call) => {
            let (args, kwargs) = args_terms(env, &call.args, &call.kwargs, site)?;
            (
                atoms::function_call(),
                (
                    call.name.as_str(),
                    args,
                    kwargs,
                    call.call_id,
                    call.method_call,
                ),
                snapshot,
                output,
            )
                .encode(env)
        }
        Progress::OsCall(call) => {
            let (args, kwargs) = args_terms(env, &call.args, &call.kwargs, site)?;
            (
                atoms::os_call(),
                (call.function.as_str(), args, kwargs, call.call_id),
                snapshot,
                output,
            )
                .encode(env)
        }
        Progress::NameLookup(name) => {
            (atoms::name_lookup(), name.as_str(), snapshot, output).encode(env)
        }
        Progress::ResolveFutures(ids) => {
            (atoms::resolve_futures(), ids.clone(), snapshot, output).encode(env)
        }
        Progress::Complete(value) => {
            (atoms::complete(), values::decode(env, value, site)?, output).encode(env)
        }
    })
}

fn start_impl<'a>(
    env: Env<'a>,
    runner: ResourceArc<RunnerRes>,
    inputs: Vec<Term<'a>>,
    limits: LimitsTuple,
    run_options: RunOptions,
    mut budget: Budget,
) -> Term<'a> {
    let (run_options, mounts) = run_options;
    if inputs.len() != runner.input_names.len() {
        let message = format!(
            "the runner declares {} input(s) ({}) but {} value(s) were given",
            runner.input_names.len(),
            runner.input_names.join(", "),
            inputs.len()
        );
        return error_term(env, atoms::invalid_input(), &message);
    }
    let encoded = match encode_inputs(&runner.input_names, &inputs, &mut budget) {
        Ok(encoded) => encoded,
        Err(error) => return encode_error(env, error),
    };
    let (limits, options) = match prepare(env, &encoded, limits, run_options, mounts) {
        Ok(prepared) => prepared,
        Err(error) => return error,
    };
    spawn_with_instance(env, false, move |reply, mut instance| {
        let ctl = control(reply.cancel_flag(), limits.backstop, limits.memory_cap);
        let result = instance.start(&ctl, &runner.program, &encoded, &limits.guest, &options);
        finish_step(reply, instance, result, limits);
    })
}

#[rustler::nif]
fn start<'a>(
    env: Env<'a>,
    runner: ResourceArc<RunnerRes>,
    inputs: Vec<Term<'a>>,
    limits: LimitsTuple,
    run_options: RunOptions,
) -> Term<'a> {
    start_impl(
        env,
        runner,
        inputs,
        limits,
        run_options,
        Budget::limited(NORMAL_BUDGET),
    )
}

#[rustler::nif(schedule = "DirtyCpu")]
fn start_dirty<'a>(
    env: Env<'a>,
    runner: ResourceArc<RunnerRes>,
    inputs: Vec<Term<'a>>,
    limits: LimitsTuple,
    run_options: RunOptions,
) -> Term<'a> {
    start_impl(
        env,
        runner,
        inputs,
        limits,
        run_options,
        Budget::unlimited(),
    )
}

#[allow(clippy::too_many_arguments)]
fn eval_impl<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
    inputs: Vec<Term<'a>>,
    limits: LimitsTuple,
    run_options: RunOptions,
    mut budget: Budget,
    dirty: bool,
) -> Term<'a> {
    if inputs.len() != input_names.len() {
        return error_term(
            env,
            atoms::invalid_input(),
            "one value is needed per input name",
        );
    }
    let code = match source(env, code, dirty) {
        Ok(code) => code,
        Err(term) => return term,
    };
    let encoded = match encode_inputs(&input_names, &inputs, &mut budget) {
        Ok(encoded) => encoded,
        Err(error) => return encode_error(env, error),
    };
    let (run_options, mounts) = run_options;
    let (limits, options) = match prepare(env, &encoded, limits, run_options, mounts) {
        Ok(prepared) => prepared,
        Err(error) => return error,
    };
    spawn_with_instance(env, false, move |reply, mut instance| {
        let ctl = control(reply.cancel_flag(), limits.backstop, limits.memory_cap);
        let result = instance.eval(
            &ctl,
            &code,
            &script_name,
            &input_names,
            &encoded,
            &limits.guest,
            &options,
        );
        finish_step(reply, instance, result, limits);
    })
}

#[rustler::nif]
#[allow(clippy::too_many_arguments)]
fn eval<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
    inputs: Vec<Term<'a>>,
    limits: LimitsTuple,
    run_options: RunOptions,
) -> Term<'a> {
    eval_impl(
        env,
        code,
        script_name,
        input_names,
        inputs,
        limits,
        run_options,
        Budget::limited(NORMAL_BUDGET),
        false,
    )
}

#[rustler::nif(schedule = "DirtyCpu")]
#[allow(clippy::too_many_arguments)]
fn eval_dirty<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
    inputs: Vec<Term<'a>>,
    limits: LimitsTuple,
    run_options: RunOptions,
) -> Term<'a> {
    eval_impl(
        env,
        code,
        script_name,
        input_names,
        inputs,
        limits,
        run_options,
        Budget::unlimited(),
        true,
    )
}

// ---------------------------------------------------------------------------
// Resume
// ---------------------------------------------------------------------------

/// Decodes an answer term: `{:value, term}`, `{:raise, type, message}`,
/// `:pending` or `:undefined`.
fn decode_answer(env: Env<'_>, term: Term<'_>, budget: &mut Budget) -> Result<Answer, EncodeError> {
    if let Ok(atom) = term.decode::<Atom>() {
        if atom == atoms::pending() {
            return Ok(Answer::Pending);
        }
        if atom == atoms::undefined() {
            return Ok(Answer::Undefined);
        }
    }
    let parts = get_tuple(term).map_err(|_| {
        EncodeError::Invalid(format!("invalid answer {}", values::short_inspect(term)))
    })?;
    match parts.as_slice() {
        [tag, value] if tag.decode::<Atom>().is_ok_and(|a| a == atoms::value()) => {
            let object = values::encode(*value, "result", budget)?;
            let bytes =
                postcard::to_allocvec(&object).map_err(|e| EncodeError::Invalid(e.to_string()))?;
            Ok(Answer::Value(bytes))
        }
        [tag, kind, message] if tag.decode::<Atom>().is_ok_and(|a| a == atoms::raise()) => {
            let type_name = if let Ok(atom) = kind.decode::<Atom>() {
                match exc_type_of_atom(env, atom) {
                    Some(exc_type) => exc_type.to_string(),
                    None => {
                        return Err(EncodeError::Invalid(format!(
                            "{} is not a Python exception type",
                            values::short_inspect(*kind)
                        )))
                    }
                }
            } else {
                kind.decode::<String>().map_err(|_| {
                    EncodeError::Invalid("the exception type must be an atom".to_owned())
                })?
            };
            let message = message.decode::<String>().map_err(|_| {
                EncodeError::Invalid("the exception message must be a string".to_owned())
            })?;
            Ok(Answer::Raise(HostError { type_name, message }))
        }
        _ => Err(EncodeError::Invalid(format!(
            "invalid answer {}",
            values::short_inspect(term)
        ))),
    }
}

fn consumed<'a>(env: Env<'a>) -> Term<'a> {
    error_term(
        env,
        atoms::snapshot_consumed(),
        "this snapshot was already resumed (a snapshot resumes once; dump and load it to fork)",
    )
}

fn resume_impl<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    answer: Term<'a>,
    mut budget: Budget,
) -> Term<'a> {
    if snapshot.is_consumed() {
        return consumed(env);
    }
    let kind = snapshot.kind();
    if kind == PauseKind::Futures {
        return error_term(
            env,
            atoms::invalid_input(),
            "the execution waits for futures: use ExMonty.resume_futures/2",
        );
    }
    // Decode first: a bad answer leaves the snapshot usable.
    let answer = match decode_answer(env, answer, &mut budget) {
        Ok(answer) => answer,
        Err(error) => return encode_error(env, error),
    };
    with_paused(env, snapshot, move |reply, snapshot, paused| {
        answer_paused(reply, snapshot, paused, move |instance, ctl, max_memory| {
            instance.resume(ctl, &fit_answer(answer, max_memory))
        });
    })
}

#[rustler::nif]
fn resume<'a>(env: Env<'a>, snapshot: ResourceArc<SnapshotRes>, answer: Term<'a>) -> Term<'a> {
    resume_impl(env, snapshot, answer, Budget::limited(NORMAL_BUDGET))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn resume_dirty<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    answer: Term<'a>,
) -> Term<'a> {
    resume_impl(env, snapshot, answer, Budget::unlimited())
}

fn resolve_impl<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    results: Vec<(u32, Term<'a>)>,
    mut budget: Budget,
) -> Term<'a> {
    if snapshot.is_consumed() {
        return consumed(env);
    }
    if snapshot.kind() != PauseKind::Futures {
        return error_term(
            env,
            atoms::invalid_input(),
            "the execution does not wait for futures: use ExMonty.resume/2",
        );
    }
    let mut answers = Vec::with_capacity(results.len());
    for (id, term) in results {
        match decode_answer(env, term, &mut budget) {
            Ok(answer) => answers.push((id, answer)),
            Err(error) => return encode_error(env, error),
        }
    }
    with_paused(env, snapshot, move |reply, snapshot, paused| {
        answer_paused(reply, snapshot, paused, move |instance, ctl, max_memory| {
            let answers: Vec<(u32, Answer)> = answers
                .into_iter()
                .map(|(id, answer)| (id, fit_answer(answer, max_memory)))
                .collect();
            instance.resolve_futures(ctl, &answers)
        });
    })
}

#[rustler::nif]
fn resume_futures<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    results: Vec<(u32, Term<'a>)>,
) -> Term<'a> {
    resolve_impl(env, snapshot, results, Budget::limited(NORMAL_BUDGET))
}

#[rustler::nif(schedule = "DirtyCpu")]
fn resume_futures_dirty<'a>(
    env: Env<'a>,
    snapshot: ResourceArc<SnapshotRes>,
    results: Vec<(u32, Term<'a>)>,
) -> Term<'a> {
    resolve_impl(env, snapshot, results, Budget::unlimited())
}

// ---------------------------------------------------------------------------
// Serialisation
// ---------------------------------------------------------------------------

fn binary_term<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut bin = NewBinary::new(env, bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    Binary::from(bin).to_term(env)
}

/// `{script_name, input_names}` of a runner.
#[rustler::nif]
fn runner_meta(env: Env<'_>, runner: ResourceArc<RunnerRes>) -> Term<'_> {
    (runner.script_name.as_str(), runner.input_names.clone()).encode(env)
}

/// The compiled program bytes of a runner (copied on a dirty scheduler).
#[rustler::nif(schedule = "DirtyCpu")]
fn runner_program(env: Env<'_>, runner: ResourceArc<RunnerRes>) -> Term<'_> {
    binary_term(env, &runner.program)
}

/// Rebuilds a runner from program bytes, checked by the guest.
#[rustler::nif]
fn load_runner<'a>(env: Env<'a>, program: Binary<'a>) -> Term<'a> {
    load_runner_impl(env, program, false)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn load_runner_dirty<'a>(env: Env<'a>, program: Binary<'a>) -> Term<'a> {
    load_runner_impl(env, program, true)
}

fn load_runner_impl<'a>(env: Env<'a>, program: Binary<'a>, dirty: bool) -> Term<'a> {
    let program = match owned_bytes(env, program, dirty) {
        Ok(program) => program,
        Err(term) => return term,
    };
    spawn_with_instance(env, false, move |reply, mut instance| {
        let ctl = control(reply.cancel_flag(), Some(SERVICE_DEADLINE), MEMORY_CEILING);
        match instance.inspect_program(&ctl, &program) {
            Ok(Ok((script_name, input_names))) => {
                pool::checkin(instance);
                let runner = ResourceArc::new(RunnerRes {
                    program: Arc::new(program),
                    script_name,
                    input_names,
                });
                reply.send(move |env| (atoms::ok(), runner).encode(env));
            }
            Ok(Err(error)) => {
                pool::checkin(instance);
                reply.send(move |env| guest_error(env, &error));
            }
            Err(CallError::Trap(trapped)) => reply.send(move |env| trap_error(env, &trapped)),
        }
    })
}

/// Serialises a paused execution. The snapshot stays usable whatever
/// happens: the dump cannot be interrupted by the caller, its memory is not
/// charged to the execution's limit, and concurrent dumps take turns.
#[rustler::nif]
fn dump_snapshot(env: Env<'_>, snapshot: ResourceArc<SnapshotRes>) -> Term<'_> {
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
        match dumped {
            Ok(Ok(bytes)) => {
                snapshot.release(paused);
                reply.send(move |env| (atoms::ok(), (binary_term(env, &bytes), kind)).encode(env));
            }
            Ok(Err(error)) => {
                snapshot.release(paused);
                reply.send(move |env| guest_error(env, &error));
            }
            // The instance trapped: the paused execution is lost with it.
            Err(CallError::Trap(trapped)) => {
                snapshot.consume();
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
    }
}

/// Restores a dumped execution into a fresh instance and reports what it waits for.
#[rustler::nif]
fn load_snapshot<'a>(env: Env<'a>, bytes: Binary<'a>, limits: LimitsTuple) -> Term<'a> {
    load_snapshot_impl(env, bytes, limits, false)
}

#[rustler::nif(schedule = "DirtyCpu")]
fn load_snapshot_dirty<'a>(env: Env<'a>, bytes: Binary<'a>, limits: LimitsTuple) -> Term<'a> {
    load_snapshot_impl(env, bytes, limits, true)
}

fn load_snapshot_impl<'a>(
    env: Env<'a>,
    bytes: Binary<'a>,
    limits: LimitsTuple,
    dirty: bool,
) -> Term<'a> {
    let bytes = match owned_bytes(env, bytes, dirty) {
        Ok(bytes) => bytes,
        Err(term) => return term,
    };
    let limits = exec_limits(limits);
    // A fresh instance: a loaded snapshot never shares one with anything.
    spawn_with_instance(env, true, move |reply, mut instance| {
        let ctl = control(
            reply.cancel_flag(),
            Some(SERVICE_DEADLINE),
            limits.memory_cap,
        );
        let typed = limits.mounts.is_some();
        match instance.load_snapshot(&ctl, &bytes, &limits.guest, typed) {
            Ok(Ok(progress)) => {
                let step = Step {
                    progress,
                    output: String::new(),
                };
                finish_step(reply, instance, Ok(Ok(step)), limits);
            }
            Ok(Err(error)) => reply.send(move |env| guest_error(env, &error)),
            Err(CallError::Trap(trapped)) => reply.send(move |env| trap_error(env, &trapped)),
        }
    })
}
