//! The WIT bindings of the guest component and the per-store host state.
//!
//! Generated once here, so every other module imports the guest's types from
//! one place (as wasmtime's own `wasi/src/p2/bindings.rs` does), and nothing
//! depends back on the modules that drive the guest.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use wasmtime::{Engine, Store, UpdateDeadline};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::control::{Interruption, Limiter};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "guest",
    // An instance compares the settings of a call with those it sent last.
    additional_derives: [PartialEq],
});

pub use exports::ex_monty::sandbox::types::{
    Answer, Clock, Continuation, Error as GuestError, Exception as GuestException, HostError,
    Limits as GuestLimits, Options as RunOptions, OsPolicy, ProcessTime, Progress, RandomSeed,
    RandomStart, SleepMode, Step, TimeZone,
};

/// Per-store host state.
pub struct HostState {
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub limiter: Limiter,
    pub stderr: MemoryOutputPipe,
    pub cancel: Arc<AtomicBool>,
    pub deadline: Option<Instant>,
    pub interrupted: Option<Interruption>,
    /// The instance's stdout: live output, sent to the call's listener.
    pub live: crate::output::LiveOutput,
}

/// What a component may keep of its stderr (panic messages, for crash details).
const STDERR_CAP: usize = 16 * 1024;

impl HostState {
    /// A store for one component instance (the guest's or the type
    /// checker's). WASI gives it no preopened directories, no environment, no
    /// arguments and no network; stderr is kept (capped) for crash details,
    /// stdout goes to `live` (live output) when given. Its linear memory is
    /// capped by the limiter (`memory_cap`, lowered per call), what it hands
    /// back in one call by `hostcall_fuel`, and every epoch tick checks the
    /// call's cancel flag and deadline (and ends a slice on a scheduler).
    pub fn store(
        engine: &Engine,
        memory_cap: usize,
        hostcall_fuel: usize,
        live: Option<crate::output::LiveOutput>,
    ) -> Store<HostState> {
        let stderr = MemoryOutputPipe::new(STDERR_CAP);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone());
        if let Some(live) = &live {
            wasi.stdout(live.clone());
        }
        let state = HostState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: Limiter::new(memory_cap),
            stderr,
            cancel: Arc::new(AtomicBool::new(false)),
            deadline: None,
            interrupted: None,
            live: live.unwrap_or_default(),
        };
        let mut store = Store::new(engine, state);
        store.limiter(|state| &mut state.limiter);
        store.set_hostcall_fuel(hostcall_fuel);
        store.epoch_deadline_callback(|mut hook| {
            let state = hook.data_mut();
            if state.cancel.load(Ordering::Relaxed) {
                state.interrupted = Some(Interruption::Cancelled);
                return Ok(UpdateDeadline::Interrupt);
            }
            if state
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                state.interrupted = Some(Interruption::Deadline);
                return Ok(UpdateDeadline::Interrupt);
            }
            // A slice on a scheduler ends at its second tick: the call
            // yields, and its job carries on on a worker (see `inline`).
            if crate::inline::tick_ends_slice() {
                return Ok(UpdateDeadline::Yield(1));
            }
            if !crate::inline::active() {
                crate::pool::yield_to_schedulers();
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store.set_epoch_deadline(1);
        store
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
