//! One guest instance: a wasmtime `Store` with its limits, and the calls
//! into the `ex-monty:sandbox/runtime` export.
//!
//! An instance is used by one execution at a time. After any trap it is
//! dropped, never reused; after a clean execution it goes back to the pool
//! unless it has served `MAX_USES` executions or its memory grew past
//! `RETIRE_MEMORY`.

use std::sync::atomic::Ordering;

use wasmtime::component::{ComponentNamedList, Lift, Lower, TypedFunc};
use wasmtime::Store;

use crate::bindings::{
    Answer, Clock, Guest, GuestError, GuestLimits, HostState, OsPolicy, ProcessTime, Progress,
    RandomStart, RunOptions, SleepMode, Step, TimeZone,
};
use crate::control::{service_control, CallControl, CallError, Trapped, MEMORY_CEILING};
use crate::engine::Runtime;

/// The outcome of one call into the guest: its answer (or the Python error /
/// refused request it reported, after which the instance is still sound), or
/// a trap, after which the instance must be dropped.
pub type CallResult<T> = Result<Result<T, GuestError>, CallError>;

/// Executions an instance serves before it is replaced. Every execution
/// gets a fresh Monty heap, and memory growth retires an instance on its own
/// (`RETIRE_MEMORY`); this bounds what slow wear (allocator fragmentation)
/// can build up. Replacing one costs ~0.3 ms (a new instance and its first
/// page faults, the old one unmapped): at 500 uses that was ~5% of a stream
/// of small runs.
pub const MAX_USES: u32 = 5000;
/// Program bytes up to which the guest keeps a program `start-keeping`
/// started (see `wit/ex-monty.wit`).
const KEPT_PROGRAM_BYTES: usize = 64 * 1024;
/// Linear memory above which an instance is replaced after its execution.
pub const RETIRE_MEMORY: usize = 64 * 1024 * 1024;
pub struct Instance {
    store: Store<HostState>,
    /// Boxed: an instance moves between the pool, jobs and snapshots.
    bindings: Box<Guest>,
    uses: u32,
    /// The OS policy last set in the guest (`None`: the default).
    policy: Option<String>,
    /// Whether the guest streams its prints.
    live_output: bool,
    /// The key of the runner whose program the guest keeps decoded (see
    /// `start_async`).
    kept_program: Option<u64>,
    /// The limits and options the guest remembers from the last start or
    /// eval call: a call with the same ones uses `start-kept-same` or
    /// `eval-same` and does not send them (with them its arguments spill
    /// into guest memory, field by field).
    settings: Option<(GuestLimits, RunOptions)>,
    /// Whether an unsigned dump was loaded into it: such an instance serves
    /// that execution only and is dropped after it, never pooled.
    untrusted: bool,
}

/// Instances alive right now (pooled, running or held by snapshots).
static LIVE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn live_instances() -> usize {
    LIVE.load(Ordering::Relaxed)
}

impl Drop for Instance {
    fn drop(&mut self) {
        LIVE.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The OS policy of executions that set none.
fn default_policy() -> OsPolicy {
    OsPolicy {
        clock: Clock::System,
        timezone: TimeZone::Fixed((0, None)),
        sleep: SleepMode::System(10_000_000),
        process_time: ProcessTime::Zero,
        random_start: RandomStart::System,
    }
}

/// What `eval` compiles and runs.
pub struct EvalCall<'a> {
    pub code: &'a str,
    pub script_name: &'a str,
    pub input_names: &'a [String],
    pub inputs: &'a [Vec<u8>],
}

impl Instance {
    /// A store for a new instance. The guest reaches the outside world only
    /// through the host's answers. What it hands back in one call (a value,
    /// a write's contents, a dump) is bounded by its linear memory, which the
    /// limiter caps; wasmtime's own default (128 MiB) would turn a large but
    /// allowed result into a trap.
    fn store(runtime: &Runtime) -> Store<HostState> {
        HostState::store(
            &runtime.engine,
            MEMORY_CEILING,
            MEMORY_CEILING,
            Some(crate::output::LiveOutput::default()),
        )
    }

    fn with(store: Store<HostState>, bindings: wasmtime::Result<Guest>) -> Result<Self, String> {
        let bindings = bindings.map_err(|e| format!("cannot instantiate the guest: {e}"))?;
        LIVE.fetch_add(1, Ordering::Relaxed);
        Ok(Self {
            store,
            bindings: Box::new(bindings),
            uses: 0,
            policy: None,
            live_output: false,
            kept_program: None,
            settings: None,
            untrusted: false,
        })
    }

    pub fn new(runtime: &Runtime) -> Result<Self, String> {
        let mut store = Self::store(runtime);
        let bindings = runtime.pre.instantiate(&mut store);
        Self::with(store, bindings)
    }

    /// `new`, in a slice (see `inline`): the guest's initialisation runs on
    /// a fiber, like any guest code (an instance costs ~100 µs, so a short
    /// execution never waits for a worker to get one).
    pub async fn new_async(runtime: &Runtime) -> Result<Self, String> {
        let mut store = Self::store(runtime);
        let bindings = runtime.pre.instantiate_async(&mut store).await;
        Self::with(store, bindings)
    }

    /// Whether the instance may serve another execution.
    pub fn reusable(&self) -> bool {
        !self.untrusted && self.uses < MAX_USES && self.memory_size() <= RETIRE_MEMORY
    }

    /// Marks the instance as holding bytes nobody vouched for: it is not
    /// pooled after its execution.
    pub fn mark_untrusted(&mut self) {
        self.untrusted = true;
    }

    pub fn count_use(&mut self) {
        self.uses = self.uses.saturating_add(1);
    }

    fn memory_size(&self) -> usize {
        self.store.data().limiter.current
    }

    fn prepare(&mut self, control: &CallControl) {
        let state = self.store.data_mut();
        state.cancel = control.cancel.clone();
        state.deadline = control.deadline;
        state.interrupted = None;
        state.limiter.cap = control.memory_cap.max(state.limiter.current);
        state.limiter.refused = false;
        self.store.set_epoch_deadline(1);
    }

    fn classify(&self, error: &wasmtime::Error) -> CallError {
        let state = self.store.data();
        let stderr = String::from_utf8_lossy(&state.stderr.contents()).into_owned();
        let trap = error.downcast_ref::<wasmtime::Trap>().copied();
        let memory_exhausted = state.limiter.refused
            || stderr.contains("allocation of")
            || matches!(trap, Some(wasmtime::Trap::AllocationTooLarge));
        CallError::Trap(Trapped {
            interruption: state.interrupted,
            memory_exhausted,
            allocation_limit: stderr.contains("allocation limit exceeded"),
            stack_overflow: crate::control::stack_exhausted(trap),
            detail: crate::control::trap_detail(trap, &stderr, error),
        })
    }

    fn call<R>(
        &mut self,
        control: &CallControl,
        f: impl FnOnce(&Guest, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> Result<R, CallError> {
        if crate::inline::active() {
            // A blocking call would run guest code on the scheduler's own
            // stack, without yielding: refused (a host bug if ever reached).
            return Err(CallError::Trap(Trapped {
                interruption: None,
                memory_exhausted: false,
                allocation_limit: false,
                stack_overflow: false,
                detail: "internal: a blocking guest call on a scheduler thread".to_owned(),
            }));
        }
        self.prepare(control);
        self.store.data().live.listen(control.listener.clone());
        let result = f(&self.bindings, &mut self.store);
        // Never let a finished call's cancel flag or listener reach the next one.
        self.store.data_mut().deadline = None;
        self.store.data().live.listen(None);
        result.map_err(|e| self.classify(&e))
    }

    /// Calls `func` asynchronously: guest code runs on a fiber of its own
    /// and, in a slice on a scheduler, yields at the next epoch tick (see
    /// `inline`). Calls whose prints stream to a listener run on a worker.
    async fn call_async<P, R>(
        &mut self,
        control: &CallControl,
        func: TypedFunc<P, R>,
        params: P,
    ) -> Result<R, CallError>
    where
        P: ComponentNamedList + Lower + Send + Sync,
        R: ComponentNamedList + Lift + Send + Sync + 'static,
    {
        if control.listener.is_some() {
            crate::inline::to_worker().await;
        }
        self.prepare(control);
        self.store.data().live.listen(control.listener.clone());
        // Boxed: wasmtime's call future is large, and every future that
        // awaits it (up to the job's) would otherwise carry it inline and be
        // copied whole each time it moves.
        let result = Box::pin(func.call_async(&mut self.store, params)).await;
        self.store.data_mut().deadline = None;
        self.store.data().live.listen(None);
        result.map_err(|e| self.classify(&e))
    }

    /// The guest's exports, apart from the instance (the typed functions
    /// borrow them while the store is in use).
    fn exports(&self) -> crate::bindings::exports::ex_monty::sandbox::runtime::Guest {
        self.bindings.ex_monty_sandbox_runtime().clone()
    }

    /// Starts a runner's program, `(key, bytes)`. The instance keeps the
    /// last program it started decoded, so the runner it ran last starts
    /// again without its bytes crossing into the guest.
    pub async fn start_async(
        &mut self,
        control: &CallControl,
        (key, program): (u64, &[u8]),
        inputs: &[Vec<u8>],
        limits: &GuestLimits,
        options: &RunOptions,
    ) -> CallResult<Step> {
        if self.kept_program == Some(key) {
            let exports = self.exports();
            let kept = if self.same_settings(limits, options) {
                let func = exports.func_start_kept_same();
                self.call_async(control, func, (key, inputs)).await?.0
            } else {
                let func = exports.func_start_kept();
                let (kept,) = self
                    .call_async(control, func, (key, inputs, *limits, options))
                    .await?;
                self.remember_settings(limits, options);
                kept
            };
            if let Some(result) = kept {
                return Ok(result);
            }
        }
        // The guest keeps programs up to `KEPT_PROGRAM_BYTES` (the WIT says
        // so): a larger one is not tried with `start-kept` on its next run.
        self.kept_program = (program.len() <= KEPT_PROGRAM_BYTES).then_some(key);
        let exports = self.exports();
        let func = exports.func_start_keeping();
        let (step,) = self
            .call_async(control, func, (key, program, inputs, *limits, options))
            .await?;
        self.remember_settings(limits, options);
        Ok(step)
    }

    pub async fn eval_async(
        &mut self,
        control: &CallControl,
        call: &EvalCall<'_>,
        limits: &GuestLimits,
        options: &RunOptions,
    ) -> CallResult<Step> {
        let exports = self.exports();
        let (code, script_name, input_names, inputs) =
            (call.code, call.script_name, call.input_names, call.inputs);
        if self.same_settings(limits, options) {
            let func = exports.func_eval_same();
            let params = (code, script_name, input_names, inputs);
            return self.call_async(control, func, params).await.map(|(r,)| r);
        }
        let func = exports.func_eval();
        let params = (code, script_name, input_names, inputs, *limits, options);
        let (step,) = self.call_async(control, func, params).await?;
        self.remember_settings(limits, options);
        Ok(step)
    }

    /// Whether the guest remembers exactly these limits and options.
    fn same_settings(&self, limits: &GuestLimits, options: &RunOptions) -> bool {
        self.settings
            .as_ref()
            .is_some_and(|(l, o)| l == limits && o == options)
    }

    /// Notes the settings a call that returned sent (the guest remembers
    /// them; a call that trapped discards the instance).
    fn remember_settings(&mut self, limits: &GuestLimits, options: &RunOptions) {
        if !self.same_settings(limits, options) {
            self.settings = Some((*limits, options.clone()));
        }
    }

    pub async fn resume_async(
        &mut self,
        control: &CallControl,
        answer: &Answer,
    ) -> CallResult<Step> {
        let exports = self.exports();
        let func = exports.func_resume();
        self.call_async(control, func, (answer,))
            .await
            .map(|(r,)| r)
    }

    pub async fn resolve_futures_async(
        &mut self,
        control: &CallControl,
        results: &[(u32, Answer)],
    ) -> CallResult<Step> {
        let exports = self.exports();
        let func = exports.func_resolve_futures();
        self.call_async(control, func, (results,))
            .await
            .map(|(r,)| r)
    }

    pub async fn load_snapshot_async(
        &mut self,
        control: &CallControl,
        bytes: &[u8],
        limits: &GuestLimits,
        typed_os_calls: bool,
    ) -> CallResult<Progress> {
        let exports = self.exports();
        let func = exports.func_load_snapshot();
        self.call_async(control, func, (bytes, *limits, typed_os_calls))
            .await
            .map(|(r,)| r)
    }

    pub async fn repl_feed_async(
        &mut self,
        control: &CallControl,
        code: &str,
        inputs: &[(String, Vec<u8>)],
        limits: &GuestLimits,
        options: &RunOptions,
    ) -> CallResult<Step> {
        let exports = self.exports();
        let func = exports.func_repl_feed();
        self.call_async(control, func, (code, inputs, *limits, options))
            .await
            .map(|(r,)| r)
    }

    pub async fn repl_call_async(
        &mut self,
        control: &CallControl,
        name: &str,
        args: &[Vec<u8>],
        limits: &GuestLimits,
    ) -> CallResult<Step> {
        let exports = self.exports();
        let func = exports.func_repl_call();
        self.call_async(control, func, (name, args, *limits))
            .await
            .map(|(r,)| r)
    }

    /// Makes the guest stream (or not) what Python prints.
    pub async fn apply_live_output_async(&mut self, on: bool) -> CallResult<()> {
        if on == self.live_output {
            return Ok(Ok(()));
        }
        let exports = self.exports();
        let func = exports.func_set_live_output();
        let control = service_control();
        let result = self.call_async(&control, func, (on,)).await.map(Ok);
        if matches!(result, Ok(Ok(()))) {
            self.live_output = on;
        }
        result
    }

    /// Makes the guest start its next executions under `policy` (`None`:
    /// the default), calling it only when the policy changes.
    pub async fn apply_policy_async(&mut self, policy: Option<&OsPolicy>) -> CallResult<()> {
        let key = policy.map(|policy| format!("{policy:?}"));
        if key == self.policy {
            return Ok(Ok(()));
        }
        let wanted = policy.cloned().unwrap_or_else(default_policy);
        let exports = self.exports();
        let func = exports.func_set_os_policy();
        let control = service_control();
        let result = self
            .call_async(&control, func, (&wanted,))
            .await
            .map(|(r,)| r);
        if matches!(result, Ok(Ok(()))) {
            self.policy = key;
        }
        result
    }

    pub fn compile(
        &mut self,
        control: &CallControl,
        code: &str,
        script_name: &str,
        input_names: &[String],
    ) -> CallResult<Vec<u8>> {
        self.call(control, |guest, store| {
            guest
                .ex_monty_sandbox_runtime()
                .call_compile(store, code, script_name, input_names)
        })
    }

    pub fn inspect_program(
        &mut self,
        control: &CallControl,
        program: &[u8],
    ) -> CallResult<(String, Vec<String>)> {
        self.call(control, |guest, store| {
            guest
                .ex_monty_sandbox_runtime()
                .call_inspect_program(store, program)
        })
    }

    pub fn resume(&mut self, control: &CallControl, answer: &Answer) -> CallResult<Step> {
        self.call(control, |guest, store| {
            guest.ex_monty_sandbox_runtime().call_resume(store, answer)
        })
    }

    pub fn dump_snapshot(&mut self, control: &CallControl) -> CallResult<Vec<u8>> {
        self.call(control, |guest, store| {
            guest.ex_monty_sandbox_runtime().call_dump_snapshot(store)
        })
    }

    pub fn load_snapshot(
        &mut self,
        control: &CallControl,
        bytes: &[u8],
        limits: &GuestLimits,
        typed_os_calls: bool,
    ) -> CallResult<Progress> {
        self.call(control, |guest, store| {
            guest.ex_monty_sandbox_runtime().call_load_snapshot(
                store,
                bytes,
                *limits,
                typed_os_calls,
            )
        })
    }

    pub fn repl_new(
        &mut self,
        control: &CallControl,
        script_name: &str,
        options: &RunOptions,
    ) -> CallResult<()> {
        self.call(control, |guest, store| {
            guest
                .ex_monty_sandbox_runtime()
                .call_repl_new(store, script_name, options)
        })
    }

    /// What interactive input needs before it can run.
    pub fn repl_continuation(
        &mut self,
        control: &CallControl,
        code: &str,
    ) -> Result<crate::bindings::Continuation, CallError> {
        self.call(control, |guest, store| {
            guest
                .ex_monty_sandbox_runtime()
                .call_repl_continuation(store, code)
        })
    }

    /// Abandons a paused snippet, keeping the session.
    pub fn repl_abandon_feed(&mut self, control: &CallControl) -> Result<(), CallError> {
        self.call(control, |guest, store| {
            guest
                .ex_monty_sandbox_runtime()
                .call_repl_abandon_feed(store)
        })
    }

    /// Drops the paused execution the instance holds, if any.
    pub fn abandon(&mut self, control: &CallControl) -> Result<(), CallError> {
        self.call(control, |guest, store| {
            guest.ex_monty_sandbox_runtime().call_abandon(store)
        })
    }
}
