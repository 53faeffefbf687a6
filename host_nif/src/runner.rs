//! Compiled programs as a resource, and the NIFs that start executions.
//!
//! A runner is immutable: one serves any number of concurrent executions,
//! each in its own instance with its own heap. `runner_eval` compiles and
//! starts in one guest call (no program bytes cross the boundary).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustler::{Binary, Encoder, Env, Resource, ResourceArc, Term};

use crate::atoms;
use crate::bindings::RunOptions;
use crate::bindings::Step;
use crate::control::{service_control, CallControl};
use crate::exceptions::{exception_of, sandbox_error};
use crate::inline;
use crate::instance::{CallResult, EvalCall, Instance};
use crate::job::Reply;
use crate::pool::{self, spawn_with_instance};
use crate::schedule::{conversion_error, nif_pair, Sched};
use crate::settings::{ExecLimits, RunSettings};
use crate::snapshot::reply_step_async;
use crate::step::{reply_failure, settle, with_policy_async};
use crate::terms::{binary, make_struct};
use crate::values::{self, Budget, FromTermError};

/// A compiled program. Immutable, so one runner serves any number of
/// concurrent executions; each execution gets its own instance and heap.
pub struct RunnerRes {
    /// Names this program inside instances that keep it decoded (see
    /// `Instance::start_async`): unique among the runners of this VM.
    pub key: u64,
    pub program: Arc<Vec<u8>>,
    pub script_name: String,
    pub input_names: Vec<String>,
    /// Loaded from an unsigned dump (anyone could have written it): it runs
    /// in new instances of its own, never pooled, like an execution restored
    /// from an unsigned dump, and its dumps stay marked untrusted.
    pub untrusted: bool,
}

#[rustler::resource_impl]
impl Resource for RunnerRes {}

/// `%ExMonty.Runner{resource, script_name, input_names, untrusted}`
fn runner_term<'a>(env: Env<'a>, runner: ResourceArc<RunnerRes>) -> Term<'a> {
    let fields = [
        (atoms::script_name(), runner.script_name.encode(env)),
        (atoms::input_names(), runner.input_names.encode(env)),
        (atoms::untrusted(), runner.untrusted.encode(env)),
        (atoms::resource(), runner.encode(env)),
    ];
    make_struct(env, atoms::elixir_exmonty_runner(), &fields)
        .unwrap_or_else(|_| atoms::error().encode(env))
}

fn reply_runner(
    reply: Reply,
    program: Vec<u8>,
    (script_name, input_names): (String, Vec<String>),
    untrusted: bool,
) {
    static NEXT_KEY: AtomicU64 = AtomicU64::new(1);
    let runner = ResourceArc::new(RunnerRes {
        key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
        program: Arc::new(program),
        script_name,
        input_names,
        untrusted,
    });
    reply.send(move |env| (atoms::ok(), runner_term(env, runner)).encode(env));
}

/// Converts input terms into encoded values, named `inputs["x"]` in errors.
fn encode_inputs(
    names: &[String],
    inputs: &[Term<'_>],
    budget: &mut Budget,
) -> Result<Vec<Vec<u8>>, FromTermError> {
    inputs
        .iter()
        .zip(names.iter())
        .map(|(term, name)| {
            let object = values::term_to_value(*term, &|| format!("inputs[{name:?}]"), budget)?;
            postcard::to_allocvec(&object)
                .map_err(|e| FromTermError::Invalid(format!("cannot encode input: {e}")))
        })
        .collect()
}

/// The settings of a new execution, or the error term when its inputs
/// cannot be used: inputs larger than `max_memory` never reach the guest.
fn prepare<'a>(
    env: Env<'a>,
    names: &[String],
    inputs: &[Term<'a>],
    settings: RunSettings,
    sched: Sched,
) -> Result<(Vec<Vec<u8>>, ExecLimits, RunOptions), Term<'a>> {
    if inputs.len() != names.len() {
        let message = format!(
            "{} input name(s) ({}) but {} value(s) were given",
            names.len(),
            names.join(", "),
            inputs.len()
        );
        return Err(sandbox_error(env, atoms::invalid_input(), &message));
    }
    let encoded =
        encode_inputs(names, inputs, &mut sched.budget()).map_err(|e| conversion_error(env, e))?;
    let (limits, options) = settings.split();
    let total: u64 = encoded.iter().map(|bytes| bytes.len() as u64).sum();
    if let Some(max) = limits.guest.max_memory.filter(|max| total > *max) {
        let message = format!("the inputs ({total} bytes encoded) exceed max_memory ({max} bytes)");
        let exception = exception_of(env, monty_types::ExcType::MemoryError, &message);
        return Err((atoms::error(), exception).encode(env));
    }
    Ok((encoded, limits, options))
}

fn compile<'a>(
    env: Env<'a>,
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
    sched: Sched,
) -> Term<'a> {
    let code = match sched.source(env, code) {
        Ok(code) => code,
        Err(term) => return term,
    };
    spawn_with_instance(env, false, move |reply, mut instance| {
        let result = instance.compile(&service_control(), &code, &script_name, &input_names);
        match settle(instance, result) {
            Ok(program) => reply_runner(reply, program, (script_name, input_names), false),
            Err(failure) => reply_failure(reply, failure),
        }
    })
}

nif_pair!('a, runner_compile, runner_compile_dirty, compile, (
    code: [Binary<'a>],
    script_name: [String],
    input_names: [Vec<String>],
));

/// Rebuilds a runner from program bytes (from `runner_program`), checked by
/// the guest: in a new instance of its own when `untrusted` (from an
/// unsigned dump).
fn load<'a>(env: Env<'a>, program: Binary<'a>, untrusted: bool, sched: Sched) -> Term<'a> {
    let program = match sched.copy(env, program) {
        Ok(program) => program,
        Err(term) => return term,
    };
    spawn_with_instance(env, untrusted, move |reply, mut instance| {
        let result = instance.inspect_program(&service_control(), &program);
        match settle(instance, result) {
            Ok(names) => reply_runner(reply, program, names, untrusted),
            Err(failure) => reply_failure(reply, failure),
        }
    })
}

nif_pair!('a, runner_load, runner_load_dirty, load, (
    program: [Binary<'a>],
    untrusted: [bool],
));

/// The compiled program bytes of a runner (copied on a dirty scheduler).
#[rustler::nif(schedule = "DirtyCpu")]
fn runner_program(env: Env<'_>, runner: ResourceArc<RunnerRes>) -> Term<'_> {
    binary(env, &runner.program)
}

/// Starts a runner with one value per input name.
fn start<'a>(
    env: Env<'a>,
    runner: ResourceArc<RunnerRes>,
    inputs: Vec<Term<'a>>,
    settings: RunSettings,
    sched: Sched,
) -> Term<'a> {
    let (inputs, mut limits, options) =
        match prepare(env, &runner.input_names, &inputs, settings, sched) {
            Ok(prepared) => prepared,
            Err(error) => return error,
        };
    // Its pauses, like its first step, keep to instances of their own.
    limits.untrusted = runner.untrusted;
    run_step(
        env,
        limits,
        First::Start {
            runner,
            inputs,
            options,
        },
    )
}

/// The first step of a new execution.
enum First {
    Start {
        runner: ResourceArc<RunnerRes>,
        inputs: Vec<Vec<u8>>,
        options: RunOptions,
    },
    Eval {
        code: String,
        script_name: String,
        input_names: Vec<String>,
        inputs: Vec<Vec<u8>>,
        options: RunOptions,
    },
}

impl First {
    async fn run(
        &self,
        instance: &mut Instance,
        ctl: &CallControl,
        limits: &ExecLimits,
    ) -> CallResult<Step> {
        match self {
            First::Start {
                runner,
                inputs,
                options,
            } => {
                instance
                    .start_async(
                        ctl,
                        (runner.key, &runner.program),
                        inputs,
                        &limits.guest,
                        options,
                    )
                    .await
            }
            First::Eval {
                code,
                script_name,
                input_names,
                inputs,
                options,
            } => {
                let call = EvalCall {
                    code,
                    script_name,
                    input_names,
                    inputs,
                };
                instance
                    .eval_async(ctl, &call, &limits.guest, options)
                    .await
            }
        }
    }
}

/// Runs the first step of a new execution, starting on the calling
/// scheduler (see `inline`): a warm instance set to its OS policy runs it,
/// and the outcome is replied (or kept as a pause).
fn run_step(env: Env<'_>, limits: ExecLimits, first: First) -> Term<'_> {
    inline::spawn(env, true, move |reply| async move {
        let instance = match pool::checkout_async(limits.untrusted).await {
            Ok(instance) => instance,
            Err(message) => {
                return reply
                    .send(move |env| sandbox_error(env, atoms::sandbox_crashed(), &message))
            }
        };
        let Some((reply, mut instance)) = with_policy_async(reply, instance, &limits).await else {
            return;
        };
        let ctl = limits.control(&reply);
        let result = first.run(&mut instance, &ctl, &limits).await;
        reply_step_async(reply, instance, result, limits, None).await;
    })
}

nif_pair!('a, runner_start, runner_start_dirty, start, (
    runner: [ResourceArc<RunnerRes>],
    inputs: [Vec<Term<'a>>],
    settings: [RunSettings],
));

/// What `runner_eval` compiles: `%{code: source, script_name: name,
/// input_names: [name]}`.
#[derive(rustler::NifMap)]
struct Source<'a> {
    code: Binary<'a>,
    script_name: String,
    input_names: Vec<String>,
}

/// Compiles and starts in one guest call.
fn eval<'a>(
    env: Env<'a>,
    source: Source<'a>,
    inputs: Vec<Term<'a>>,
    settings: RunSettings,
    sched: Sched,
) -> Term<'a> {
    let Source {
        code,
        script_name,
        input_names,
    } = source;
    let code = match sched.source(env, code) {
        Ok(code) => code,
        Err(term) => return term,
    };
    let (inputs, limits, options) = match prepare(env, &input_names, &inputs, settings, sched) {
        Ok(prepared) => prepared,
        Err(error) => return error,
    };
    run_step(
        env,
        limits,
        First::Eval {
            code,
            script_name,
            input_names,
            inputs,
            options,
        },
    )
}

nif_pair!('a, runner_eval, runner_eval_dirty, eval, (
    source: [Source<'a>],
    inputs: [Vec<Term<'a>>],
    settings: [RunSettings],
));
