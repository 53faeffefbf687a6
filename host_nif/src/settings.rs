//! Limits and run options, as Elixir sends them and as an execution keeps
//! them.
//!
//! Elixir passes `ExMonty.Limits.normalize!/1`'s map and a settings map; both
//! are decoded by name ([`LimitsMap`], [`RunSettings`]), so a field can never
//! be read from the wrong position. [`ExecLimits`] is what an execution
//! carries through all its steps: Monty's limits for the guest plus
//! wasmtime's backstops above them.

use std::sync::Arc;
use std::time::Duration;

use rustler::{Atom, Binary, Decoder, Error, NifMap, NifResult, ResourceArc, Term};

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

/// `ExMonty.Limits` as a map (validated there); `nil` means no limit.
#[derive(NifMap, Clone, Copy, Debug, Default, PartialEq)]
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

/// How to run an execution: `%{limits: map, interactive: bool, cwd: nil |
/// path, mounts: nil | mounts, os_policy: nil | policy}`.
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

// Keys are the cached atoms of `atoms.rs`: making an atom from text takes the
// VM's atom-table lock, which every execution would pay once per field.
impl<'a> Decoder<'a> for RunSettings {
    fn decode(term: Term<'a>) -> NifResult<Self> {
        Ok(RunSettings {
            limits: term.map_get(atoms::limits())?.decode()?,
            interactive: term.map_get(atoms::interactive())?.decode()?,
            cwd: term.map_get(atoms::cwd())?.decode()?,
            mounts: term.map_get(atoms::mounts())?.decode()?,
            os_policy: term.map_get(atoms::os_policy())?.decode()?,
            live_output: term.map_get(atoms::live_output())?.decode()?,
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
