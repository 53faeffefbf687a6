//! Type checking of Python source inside WebAssembly: the type-check
//! component (`priv/ex_monty_typecheck.wasm`, `wit/types/ex-monty-types.wit`),
//! its instances and the NIFs that queue checks.
//!
//! The checker (ty) parses and analyses untrusted source, so it runs as the
//! interpreter does: in its own component on the worker threads, under a
//! linear-memory cap, a deadline and caller-death cancellation, with WASI
//! giving it no files, environment or network. A trap ends that instance
//! only and is reported as `{:error, %ExMonty.Exception{}}`.
//!
//! The component is compiled lazily, on the first check (applications that
//! never type-check pay nothing), with the interpreter's engine and on-disk
//! cache. A one-shot check gets a fresh instance; a checker resource (one per
//! session) keeps a warm instance for its own checks only.

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rustler::{Encoder, Env, NifMap, Resource, ResourceArc, Term};
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

use crate::atoms;
use crate::bindings::HostState;
use crate::control::Interruption;
use crate::exceptions::{sandbox_error, sandbox_exception, without_paths};
use crate::job::Reply;

mod names {
    rustler::atoms! { info, warning, fatal }
}

mod wit {
    wasmtime::component::bindgen!({
        path: "../wit/types",
        world: "typecheck",
    });
}

use wit::exports::ex_monty::types::checker::{Diagnostic, ModuleStub, Request, Severity};

/// The compiled type-check component, shared by every check.
struct Types {
    engine: Engine,
    pre: wit::TypecheckPre<HostState>,
}

static TYPES: OnceLock<Arc<Types>> = OnceLock::new();
/// Serialises the first compilation (later callers wait for it).
static LOADING: Mutex<()> = Mutex::new(());

fn types(wasm_path: &str, cache_dir: &str) -> Result<Arc<Types>, String> {
    if let Some(types) = TYPES.get() {
        return Ok(types.clone());
    }
    let _guard = LOADING
        .lock()
        .map_err(|_| "the type checker failed to load earlier".to_owned())?;
    if let Some(types) = TYPES.get() {
        return Ok(types.clone());
    }
    let engine = crate::engine::runtime()?.engine.clone();
    let (component, _source) = crate::engine::load_component(
        &engine,
        Path::new(wasm_path),
        Path::new(cache_dir),
        "ex_monty_typecheck",
    )?;
    let mut linker: Linker<HostState> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
        .map_err(|e| format!("cannot link WASI: {e}"))?;
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| format!("the type-check component does not fit the host: {e}"))?;
    let pre = wit::TypecheckPre::new(instance_pre)
        .map_err(|e| format!("the type-check component lacks its checker export: {e}"))?;
    let types = Arc::new(Types { engine, pre });
    Ok(TYPES.get_or_init(|| types).clone())
}

/// One instance of the checker.
struct Checker {
    store: Store<HostState>,
    bindings: wit::Typecheck,
}

/// How a call into the checker ended badly.
enum Stopped {
    /// The request was unusable (an invalid module name, ...).
    Invalid(String),
    /// No checker instance could be made.
    Unavailable(String),
    /// A trap: the instance is gone.
    Trap {
        interruption: Option<Interruption>,
        memory: bool,
        stack: bool,
        detail: String,
    },
}

impl Checker {
    fn new(types: &Types, memory_cap: usize) -> Result<Self, String> {
        // No files, environment, arguments, network or stdout.
        let mut store = HostState::store(&types.engine, memory_cap, memory_cap, None);
        let bindings = types
            .pre
            .instantiate(&mut store)
            .map_err(|e| format!("cannot instantiate the type checker: {e}"))?;
        Ok(Self { store, bindings })
    }

    /// Checks `request` (and, with `imports`, scans its imports).
    fn check(
        &mut self,
        request: &Request,
        imports: bool,
        control: &Control,
    ) -> Result<(Vec<Diagnostic>, Option<String>), Stopped> {
        {
            let state = self.store.data_mut();
            state.cancel = control.cancel.clone();
            state.deadline = Some(Instant::now() + control.duration);
            state.interrupted = None;
            state.limiter.cap = control.memory_cap.max(state.limiter.current);
            state.limiter.refused = false;
        }
        self.store.set_epoch_deadline(1);
        let checker = self.bindings.ex_monty_types_checker();
        let result =
            checker
                .call_check(&mut self.store, request)
                .and_then(|checked| match checked {
                    Ok(found) if imports => checker
                        .call_scan_imports(&mut self.store, &request.code)
                        .map(|prelude| Ok((found, Some(prelude)))),
                    Ok(found) => Ok(Ok((found, None))),
                    Err(message) => Ok(Err(message)),
                });
        self.store.data_mut().deadline = None;
        match result {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(message)) => Err(Stopped::Invalid(message)),
            Err(error) => Err(self.classify(&error)),
        }
    }

    fn classify(&self, error: &wasmtime::Error) -> Stopped {
        let state = self.store.data();
        let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
        let trap = error.downcast_ref::<wasmtime::Trap>().copied();
        Stopped::Trap {
            interruption: state.interrupted,
            memory: state.limiter.refused
                || stderr.contains("allocation of")
                || matches!(trap, Some(wasmtime::Trap::AllocationTooLarge)),
            stack: crate::control::stack_exhausted(trap),
            detail: crate::control::trap_detail(trap, &stderr, error),
        }
    }
}

/// The per-check controls.
struct Control {
    cancel: Arc<AtomicBool>,
    duration: Duration,
    memory_cap: usize,
}

/// A session's checker: a warm instance, used by that session only.
pub struct CheckerRes {
    instance: Mutex<Option<Checker>>,
}

#[rustler::resource_impl]
impl Resource for CheckerRes {}

#[derive(NifMap)]
struct CheckRequest {
    code: String,
    script_name: String,
    stubs: String,
    modules: Vec<(String, String)>,
    prelude: String,
}

#[derive(NifMap)]
struct CheckSettings {
    wasm_path: String,
    cache_dir: String,
    max_duration_ms: u64,
    memory_cap: usize,
    imports: bool,
}

/// A checker for one session: `checker`. Its instance is created by its
/// first check.
#[rustler::nif]
fn typecheck_new() -> ResourceArc<CheckerRes> {
    ResourceArc::new(CheckerRes {
        instance: Mutex::new(None),
    })
}

/// Drops the session checker's warm instance (it is recreated by the next
/// check): `:ok`.
#[rustler::nif]
fn typecheck_release(checker: ResourceArc<CheckerRes>) -> rustler::Atom {
    if let Ok(mut slot) = checker.instance.try_lock() {
        *slot = None;
    }
    atoms::ok()
}

/// Queues a check: `{:ok, job}`; the job answers `{:ok, {diagnostics,
/// imports}}` (`imports`: the code's import prelude when asked, else nil) or
/// `{:error, %ExMonty.Exception{}}`. `checker` is nil for a one-shot check in
/// a fresh instance.
#[rustler::nif(schedule = "DirtyCpu")]
fn typecheck_check<'a>(
    env: Env<'a>,
    checker: Option<ResourceArc<CheckerRes>>,
    request: CheckRequest,
    settings: CheckSettings,
) -> Term<'a> {
    let request = Request {
        code: request.code,
        script_name: request.script_name,
        stubs: request.stubs,
        modules: request
            .modules
            .into_iter()
            .map(|(name, source)| ModuleStub { name, source })
            .collect(),
        prelude: request.prelude,
    };
    crate::pool::spawn(env, move |reply| run(reply, checker, &request, &settings))
}

fn run(
    reply: Reply,
    checker: Option<ResourceArc<CheckerRes>>,
    request: &Request,
    settings: &CheckSettings,
) {
    let types = match types(&settings.wasm_path, &settings.cache_dir) {
        Ok(types) => types,
        Err(message) => {
            return reply.send(move |env| {
                sandbox_error(
                    env,
                    atoms::sandbox_crashed(),
                    &format!("the type checker is unavailable: {message}"),
                )
            })
        }
    };
    let control = Control {
        cancel: reply.cancel_flag(),
        duration: Duration::from_millis(settings.max_duration_ms),
        memory_cap: settings.memory_cap,
    };
    let outcome = match &checker {
        None => Checker::new(&types, settings.memory_cap)
            .map_err(Stopped::Unavailable)
            .and_then(|mut fresh| fresh.check(request, settings.imports, &control)),
        Some(resource) => match resource.instance.try_lock() {
            Err(_) => Err(Stopped::Invalid(
                "the session's type checker is busy".to_owned(),
            )),
            Ok(mut slot) => {
                let instance = match slot.take() {
                    Some(instance) => Ok(instance),
                    None => Checker::new(&types, settings.memory_cap),
                };
                match instance {
                    Err(message) => Err(Stopped::Unavailable(message)),
                    Ok(mut instance) => {
                        let outcome = instance.check(request, settings.imports, &control);
                        // A trapped instance is never used again.
                        if !matches!(outcome, Err(Stopped::Trap { .. })) {
                            *slot = Some(instance);
                        }
                        outcome
                    }
                }
            }
        },
    };
    match outcome {
        Ok((diagnostics, imports)) => reply.send(move |env| {
            let list: Vec<Term<'_>> = diagnostics
                .iter()
                .map(|d| diagnostic_term(env, d))
                .collect();
            (atoms::ok(), (list, imports)).encode(env)
        }),
        Err(Stopped::Invalid(message)) => {
            reply.send(move |env| sandbox_error(env, atoms::invalid_input(), &message))
        }
        Err(Stopped::Unavailable(message)) => {
            reply.send(move |env| sandbox_error(env, atoms::sandbox_crashed(), &message))
        }
        Err(Stopped::Trap {
            interruption,
            memory,
            stack,
            detail,
        }) => reply.send(move |env| {
            let (kind, python_type, message) = match interruption {
                Some(Interruption::Deadline) => (
                    atoms::timeout_error(),
                    "TimeoutError",
                    "the type check exceeded its time limit (stopped by the sandbox)".to_owned(),
                ),
                Some(Interruption::Cancelled) => (
                    atoms::cancelled(),
                    "RuntimeError",
                    "the type check was cancelled".to_owned(),
                ),
                None if memory => (
                    atoms::memory_error(),
                    "MemoryError",
                    "the type check exceeded its memory limit (stopped by the sandbox)".to_owned(),
                ),
                None if stack => (
                    atoms::sandbox_crashed(),
                    "RecursionError",
                    "the type checker exhausted its stack inside the sandbox (source nested too deeply)"
                        .to_owned(),
                ),
                None => (
                    atoms::sandbox_crashed(),
                    "RuntimeError",
                    format!(
                        "the type checker crashed inside the sandbox: {}",
                        without_paths(&detail)
                    ),
                ),
            };
            (
                atoms::error(),
                sandbox_exception(env, kind, python_type, &message),
            )
                .encode(env)
        }),
    }
}

/// `{rule, severity, message, file, line, column, end_line, end_column,
/// source_line, rendered}`
fn diagnostic_term<'a>(env: Env<'a>, d: &Diagnostic) -> Term<'a> {
    let severity = match d.severity {
        Severity::Info => names::info(),
        Severity::Warning => names::warning(),
        Severity::Error => atoms::error(),
        Severity::Fatal => names::fatal(),
    };
    let position = (d.line, d.column, d.end_line, d.end_column);
    (
        d.rule.as_str(),
        severity,
        d.message.as_str(),
        d.file.as_str(),
        position,
        d.source_line.as_str(),
        d.rendered.as_str(),
    )
        .encode(env)
}
