//! The runtime as a whole: start it, count it, shed its idle instances, and
//! the tables Elixir checks its own against.

use rustler::{Encoder, Env, Term};

use crate::engine;
use crate::exceptions::exc_atom;
use crate::instance;
use crate::pause;
use crate::pool;

/// Compiles (or loads) the guest and starts the workers:
/// `{:ok, {loaded_from, workers}}`.
#[rustler::nif(schedule = "DirtyCpu")]
fn runtime_init(
    wasm_path: String,
    cache_dir: String,
    workers: usize,
    max_live_paused: usize,
    worker_nice: Term<'_>,
) -> Result<(String, usize), String> {
    let priority = worker_priority(worker_nice)?;
    let runtime = engine::init(
        std::path::Path::new(&wasm_path),
        std::path::Path::new(&cache_dir),
    )?;
    let workers = pool::start(workers, priority)?;
    pause::set_max_live_paused(max_live_paused);
    Ok((runtime.load_source.clone(), workers))
}

/// `:idle` or a nice value 0..=19 (Elixir checked it already; checked again
/// so that no other value can mean a priority).
fn worker_priority(term: Term<'_>) -> Result<pool::Priority, String> {
    if term == crate::atoms::idle().encode(term.get_env()) {
        return Ok(pool::Priority::Idle);
    }
    match term.decode::<i32>() {
        Ok(nice) if (0..=19).contains(&nice) => Ok(pool::Priority::Nice(nice)),
        _ => Err("worker_nice must be :idle or an integer 0..19".to_owned()),
    }
}

/// `{workers, idle_instances, live_instances, live_paused, instance_max_uses}`
#[rustler::nif]
fn runtime_stats() -> (usize, usize, usize, usize, u32) {
    let (workers, idle) = pool::stats();
    (
        workers,
        idle,
        instance::live_instances(),
        pause::live_paused(),
        instance::MAX_USES,
    )
}

/// Drops every idle instance and returns how many, once the instances
/// being dropped on workers are gone (up to a second), so counts read next
/// are settled. On a dirty scheduler: it may wait.
#[rustler::nif(schedule = "DirtyIo")]
fn runtime_drain() -> usize {
    let drained = pool::drain();
    pool::settle_discards(std::time::Duration::from_secs(1));
    drained
}

/// `[{python_class_name, atom}]` for every exception class Monty defines
/// (`ExMonty.Exception.python_types/0` is checked against it).
#[rustler::nif]
fn runtime_exception_types(env: Env<'_>) -> Term<'_> {
    use std::str::FromStr;
    use strum::VariantNames;
    monty_types::ExcType::VARIANTS
        .iter()
        .filter_map(|name| monty_types::ExcType::from_str(name).ok())
        .map(|exc_type| (exc_type.to_string(), exc_atom(exc_type)))
        .collect::<Vec<_>>()
        .encode(env)
}
