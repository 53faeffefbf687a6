//! `ex_monty_nif`: the Rustler NIF behind `ExMonty.Native`.
//!
//! It embeds wasmtime and runs the ExMonty guest component (Monty compiled to
//! `wasm32-wasip2`). Python never runs on a BEAM scheduler and never in the
//! VM's own memory: every execution runs inside a wasm instance on a worker
//! thread, under Monty's limits and wasmtime's (memory cap, epoch deadline,
//! bounded wasm stack). A trap poisons only that instance.

mod api;
mod atoms;
mod engine;
mod exceptions;
mod instance;
mod mounts;
mod pool;
mod resources;
mod values;

rustler::init!("Elixir.ExMonty.Native");
