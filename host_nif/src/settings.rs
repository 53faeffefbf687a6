//! Limits and run options, as Elixir sends them and as an execution keeps
//! them.
//!
//! Elixir passes the limits and the settings as tuples
//! (`ExMonty.Limits.to_native/1`, `ExMonty.Execution`), every field at the
//! position [`LIMIT_FIELDS`] and [`SETTINGS_FIELDS`] name: every execution
//! decodes them, and a tuple decodes in a fraction of a map's time (the two
//! maps were ~4% of a small `run`). The layout is not trusted to stay in
//! step by itself: `runtime_settings_layout/0` returns these names and a test
//! compares them with the Elixir side's. [`ExecLimits`] is what an execution
//! carries through all its steps: Monty's limits for the guest plus
//! wasmtime's backstops above them.

use std::sync::Arc;
use std::time::Duration;

use rustler::types::tuple::get_tuple;
use rustler::{Atom, Binary, Decoder, Error, NifResult, ResourceArc, Term};

use crate::atoms;
use crate::bindings::{
    Clock, GuestLimits, OsPolicy, ProcessTime, RandomSeed, RandomStart, RunOptions, SleepMode,
    TimeZone,
};
use crate::control::{CallControl, MEMORY_CEILING};
use crate::mounts::MountsRes;

/// Linear memory the guest may use beyond `max_memory` (its own baseline,
/// program, output buffers and the values crossing the boundary).
const MEMORY_SLACK: usize = 64 * 1024 * 1024;

/// The positions of [`LimitsMap`]'s fields in the tuple Elixir sends.
pub const LIMIT_FIELDS: [&str; 8] = [
    "max_duration_secs",
    "max_memory",
    "max_recursion_depth",
    "max_allocations",
    "max_suspensions",
    "max_output_bytes",
    "max_total_sleep_secs",
    "gc_interval",
];

/// The positions of [`RunSettings`]' fields in the tuple Elixir sends.
pub const SETTINGS_FIELDS: [&str; 6] = [
    "limits",
    "interactive",
    "cwd",
    "mounts",
    "os_policy",
    "live_output",
];

/// `{limit_names, settings_names}`: the layouts above, for the test that
/// keeps Elixir's side in step with them.
#[rustler::nif]
fn runtime_settings_layout() -> (Vec<&'static str>, Vec<&'static str>) {
    (LIMIT_FIELDS.to_vec(), SETTINGS_FIELDS.to_vec())
}

/// The elements of `term`, a tuple of exactly `N` elements.
fn fields<const N: usize>(term: Term<'_>) -> NifResult<[Term<'_>; N]> {
    get_tuple(term)?.try_into().map_err(|_| Error::BadArg)
}

/// `ExMonty.Limits` (validated there) as a tuple in [`LIMIT_FIELDS`] order;
/// `nil` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LimitsMap {
    pub max_duration_secs: Option<f64>,
    pub max_memory: Option<u64>,
    pub max_recursion_depth: Option<u32>,
    pub max_allocations: Option<u64>,
    pub max_suspensions: Option<u64>,
    pub max_output_bytes: Option<u64>,
    pub max_total_sleep_secs: Option<f64>,
    pub gc_interval: Option<u64>,
}

/// How to run an execution: `{limits, interactive, cwd | nil, mounts | nil,
/// os_policy | nil, live_output}` ([`SETTINGS_FIELDS`]).
pub struct RunSettings {
    pub limits: LimitsMap,
    pub interactive: bool,
    pub cwd: Option<String>,
    pub mounts: Option<ResourceArc<MountsRes>>,
    pub os_policy: Option<Policy>,
    pub live_output: bool,
}

/// An OS policy as `ExMonty.OsPolicy` normalises it:
/// `%{clock: :system | :call_host | {unix_seconds, microsecond},
///    timezone: {offset_seconds, name | nil} | iana_name,
///    sleep: cap_microseconds | :call_host | :zero,
///    process_time: :zero | :elapsed,
///    random_start: :system | :call_host | {:integer, digits} | {:float, f} |
///                  {:text, s} | {:bytes, b}}`
#[derive(Clone, Debug)]
pub struct Policy(pub OsPolicy);

impl<'a> Decoder<'a> for LimitsMap {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let [duration, memory, depth, allocations, suspensions, output, sleep, gc] =
            fields::<8>(term)?;
        Ok(LimitsMap {
            max_duration_secs: duration.decode()?,
            max_memory: memory.decode()?,
            max_recursion_depth: depth.decode()?,
            max_allocations: allocations.decode()?,
            max_suspensions: suspensions.decode()?,
            max_output_bytes: output.decode()?,
            max_total_sleep_secs: sleep.decode()?,
            gc_interval: gc.decode()?,
        })
    }
}

impl<'a> Decoder<'a> for RunSettings {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let [limits, interactive, cwd, mounts, os_policy, live_output] = fields::<6>(term)?;
        Ok(RunSettings {
            limits: limits.decode()?,
            interactive: interactive.decode()?,
            cwd: cwd.decode()?,
            mounts: mounts.decode()?,
            os_policy: os_policy.decode()?,
            live_output: live_output.decode()?,
        })
    }
}

/// The atom `term` is, if it is one.
fn tag(term: Term<'_>) -> Option<Atom> {
    term.decode().ok()
}

impl<'a> Decoder<'a> for Policy {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        let clock = term.map_get(atoms::clock())?;
        let clock = match tag(clock) {
            Some(a) if a == atoms::system() => Clock::System,
            Some(a) if a == atoms::call_host() => Clock::CallHost,
            Some(_) => return Err(Error::BadArg),
            None => Clock::Fixed(clock.decode::<(i64, u32)>()?),
        };
        let zone = term.map_get(atoms::timezone())?;
        let timezone = match zone.decode::<String>() {
            Ok(name) => TimeZone::Named(name),
            Err(_) => TimeZone::Fixed(zone.decode::<(i32, Option<String>)>()?),
        };
        let sleep = term.map_get(atoms::sleep())?;
        let sleep = match tag(sleep) {
            Some(a) if a == atoms::call_host() => SleepMode::CallHost,
            Some(a) if a == atoms::zero() => SleepMode::Zero,
            Some(_) => return Err(Error::BadArg),
            None => SleepMode::System(sleep.decode::<u64>()?),
        };
        let process_time = match tag(term.map_get(atoms::process_time())?) {
            Some(a) if a == atoms::zero() => ProcessTime::Zero,
            Some(a) if a == atoms::elapsed() => ProcessTime::Elapsed,
            _ => return Err(Error::BadArg),
        };
        let random = term.map_get(atoms::random_start())?;
        let random_start = match tag(random) {
            Some(a) if a == atoms::system() => RandomStart::System,
            Some(a) if a == atoms::call_host() => RandomStart::CallHost,
            Some(_) => return Err(Error::BadArg),
            None => {
                let (kind, value): (Atom, Term<'a>) = random.decode()?;
                let seed = if kind == atoms::integer() {
                    RandomSeed::Integer(value.decode()?)
                } else if kind == atoms::float() {
                    RandomSeed::Float(value.decode()?)
                } else if kind == atoms::text() {
                    RandomSeed::Text(value.decode()?)
                } else if kind == atoms::bytes() {
                    RandomSeed::Bytes(value.decode::<Binary>()?.as_slice().to_vec())
                } else {
                    return Err(Error::BadArg);
                };
                RandomStart::Seed(seed)
            }
        };
        Ok(Policy(OsPolicy {
            clock,
            timezone,
            sleep,
            process_time,
            random_start,
        }))
    }
}

/// Per-execution settings, kept for every step of the execution.
#[derive(Clone)]
pub struct ExecLimits {
    /// Monty's limits, enforced inside the guest.
    pub guest: GuestLimits,
    /// Wasmtime's deadline per call, a little after Monty's own.
    pub backstop: Option<Duration>,
    /// Linear-memory cap of the instance.
    pub memory_cap: usize,
    /// Host directories that serve this execution's file calls.
    pub mounts: Option<ResourceArc<MountsRes>>,
    /// Whether host calls come back to Elixir (`start`) or are answered by
    /// default (`eval`/`run`).
    pub interactive: bool,
    /// The OS policy executions start with (`None`: the default).
    pub os_policy: Option<Arc<Policy>>,
    /// Whether what Python prints is streamed to the caller as it runs.
    pub live_output: bool,
    /// Whether the execution came from a dump nobody vouched for (unsigned):
    /// its instances are never shared (see `snapshot::spawn_load`).
    pub untrusted: bool,
}

fn micros(seconds: Option<f64>) -> Option<u64> {
    // Validated as positive and at most a year by `ExMonty.Limits`.
    seconds.map(|s| (s * 1_000_000.0).round() as u64)
}

impl From<LimitsMap> for ExecLimits {
    fn from(limits: LimitsMap) -> Self {
        let max_duration_us = micros(limits.max_duration_secs);
        let guest = GuestLimits {
            max_duration_us,
            max_memory: limits.max_memory,
            max_recursion_depth: limits.max_recursion_depth,
            gc_interval: limits.gc_interval,
            max_suspensions: limits.max_suspensions,
            max_output_bytes: limits.max_output_bytes,
            max_total_sleep_us: micros(limits.max_total_sleep_secs),
            max_allocations: limits.max_allocations,
        };
        // Monty checks its deadline every few hundred instructions; wasmtime's
        // epoch deadline fires only if Monty's check is missed (a long native
        // operation), with a grace of a tenth of the budget (at least 100 ms).
        let backstop = max_duration_us.map(|us| {
            let budget = Duration::from_micros(us);
            budget + (budget / 10).max(Duration::from_millis(100))
        });
        let output = usize::try_from(limits.max_output_bytes.unwrap_or(0)).unwrap_or(usize::MAX);
        let memory_cap = limits.max_memory.map_or(MEMORY_CEILING, |bytes| {
            let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            bytes
                .saturating_add(bytes / 4)
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
            os_policy: None,
            live_output: false,
            untrusted: false,
        }
    }
}

impl RunSettings {
    /// The execution's limits and the guest's run options.
    pub fn split(self) -> (ExecLimits, RunOptions) {
        let mut limits = ExecLimits::from(self.limits);
        limits.interactive = self.interactive;
        let options = RunOptions {
            interactive: self.interactive,
            cwd: self.cwd,
            typed_os_calls: self.mounts.is_some(),
        };
        limits.mounts = self.mounts;
        limits.os_policy = self.os_policy.map(Arc::new);
        limits.live_output = self.live_output;
        (limits, options)
    }
}

impl ExecLimits {
    /// The control of one call of this execution, answering `reply`: its
    /// caller can cancel it and, with live output, receives the prints.
    pub fn control(&self, reply: &crate::job::Reply) -> CallControl {
        let mut control = CallControl::new(reply.cancel_flag(), self.backstop, self.memory_cap);
        if self.live_output {
            control.listener = Some(reply.listener());
        }
        control
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_decode_into_guest_limits_and_backstops() {
        let limits = ExecLimits::from(LimitsMap {
            max_duration_secs: Some(2.5),
            max_memory: Some(100 * 1024 * 1024),
            max_total_sleep_secs: Some(0.25),
            max_output_bytes: Some(1024),
            ..LimitsMap::default()
        });
        assert_eq!(limits.guest.max_duration_us, Some(2_500_000));
        assert_eq!(limits.guest.max_total_sleep_us, Some(250_000));
        // A tenth of the budget, at least 100 ms, after Monty's deadline.
        assert_eq!(limits.backstop, Some(Duration::from_millis(2_750)));
        assert_eq!(
            limits.memory_cap,
            100 * 1024 * 1024 + 25 * 1024 * 1024 + 1024 + MEMORY_SLACK
        );
    }

    #[test]
    fn no_limits_means_the_wasm_ceiling() {
        let limits = ExecLimits::from(LimitsMap::default());
        assert_eq!(limits.backstop, None);
        assert_eq!(limits.memory_cap, MEMORY_CEILING);
        let short = ExecLimits::from(LimitsMap {
            max_duration_secs: Some(0.01),
            ..LimitsMap::default()
        });
        assert_eq!(short.backstop, Some(Duration::from_millis(110)));
    }
}
