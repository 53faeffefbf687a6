//! `ex_monty_nif`: the Rustler NIF behind `ExMonty.Native`.
//!
//! It embeds wasmtime and runs the ExMonty guest component (Monty compiled to
//! `wasm32-wasip2`). Python never runs in the VM's own memory or on a
//! scheduler's stack: every execution runs inside a wasm instance, under
//! Monty's limits and wasmtime's (memory cap, epoch deadline, bounded wasm
//! stack). A trap poisons only that instance. Short executions run on the
//! calling scheduler, on a fiber stack, for one to two epoch ticks; the rest
//! continues on worker threads.
//!
//! One file per concern; the NIFs sit beside the resource they act on:
//!
//! * `runtime` — start, stats, tables; `engine` — wasmtime, the compiled
//!   guest and its cache; `pool` — worker threads and warm instances;
//!   `inline` — a job's first slice on the calling scheduler;
//! * `bindings` — the WIT bindings and per-store state; `instance` — one
//!   instance and the calls into it;
//! * `job` — queued work, replies by message, cancellation, deferred results;
//! * `runner` — compiled programs (compile, load, start, eval);
//! * `snapshot` — paused executions (resume, futures, dump, load), `pause` —
//!   where they live (their instance, or hibernated as bytes); `session` —
//!   REPL sessions, which wait between snippets as paused executions do;
//! * `step` — a guest step to terms, mount serving, the outcome of a call;
//! * `settings` — limits and run options; `schedule` — normal/dirty NIFs;
//! * `values` — Python values <-> terms, by direction; `terms` — term
//!   helpers; `exceptions` — `%ExMonty.Exception{}`; `mounts` — host
//!   directories (monty-fs);
//! * `typecheck` — the type-check component (ty, in its own wasm instances).

mod atoms;
mod bindings;
mod control;
mod engine;
mod exceptions;
mod inline;
mod instance;
mod job;
mod mounts;
mod output;
mod pause;
mod pool;
mod runner;
mod runtime;
mod schedule;
mod session;
mod settings;
mod snapshot;
mod step;
mod terms;
mod typecheck;
mod values;

rustler::init!("Elixir.ExMonty.Native");
