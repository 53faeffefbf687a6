//! The WIT bindings of the guest component and the per-store host state.
//!
//! Generated once here, so every other module imports the guest's types from
//! one place (as wasmtime's own `wasi/src/p2/bindings.rs` does), and nothing
//! depends back on the modules that drive the guest.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::control::{Interruption, Limiter};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "guest",
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

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
