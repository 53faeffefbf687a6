//! The OS policy: what clocks, the time zone, sleeps and `random` see.
//!
//! Set per instance (`set-os-policy`) and applied to every execution and
//! session the instance starts afterwards; a paused execution keeps the
//! policy it started with (it travels in its dump).

use std::cell::RefCell;
use std::time::Duration;

use monty_types::{
    DateTimeSource, OsPolicy, ProcessTime, RandomSeed, RandomStart, SandboxTimeZone, SleepMode,
};
use num_bigint::BigInt;

use crate::errors::invalid;
use crate::wit;

thread_local! {
    static POLICY: RefCell<OsPolicy> = RefCell::new(OsPolicy::default());
}

/// The policy new executions get.
pub fn current() -> OsPolicy {
    POLICY.with(|policy| policy.borrow().clone())
}

/// Checks and installs a policy.
pub fn set(policy: wit::OsPolicy) -> Result<(), wit::Error> {
    let converted = convert(policy)?;
    POLICY.with(|slot| *slot.borrow_mut() = converted);
    Ok(())
}

fn convert(policy: wit::OsPolicy) -> Result<OsPolicy, wit::Error> {
    let datetime = match policy.clock {
        wit::Clock::System => DateTimeSource::System,
        wit::Clock::CallHost => DateTimeSource::CallHost,
        wit::Clock::Fixed((unix_seconds, microsecond)) => {
            let fixed = DateTimeSource::Fixed {
                unix_seconds,
                microsecond,
            };
            if fixed.read().is_none() {
                return Err(invalid(
                    "the fixed clock is outside Python's datetime range",
                ));
            }
            fixed
        }
    };
    let timezone = match policy.timezone {
        wit::TimeZone::Fixed((offset_seconds, name)) => {
            if offset_seconds.unsigned_abs() >= 86_400 {
                return Err(invalid("a UTC offset must be less than a day"));
            }
            SandboxTimeZone::Fixed {
                offset_seconds,
                name,
            }
        }
        wit::TimeZone::Named(name) => SandboxTimeZone::named(&name)
            .map_err(|e| invalid(format!("unknown time zone {name:?}: {e}")))?,
    };
    let sleep = match policy.sleep {
        wit::SleepMode::System(cap_us) => SleepMode::System(Duration::from_micros(cap_us)),
        wit::SleepMode::CallHost => SleepMode::CallHost,
        wit::SleepMode::Zero => SleepMode::Zero,
    };
    let process_time = match policy.process_time {
        wit::ProcessTime::Zero => ProcessTime::Zero,
        wit::ProcessTime::Elapsed => ProcessTime::Elapsed,
    };
    let random_start = match policy.random_start {
        wit::RandomStart::System => RandomStart::System,
        wit::RandomStart::CallHost => RandomStart::CallHost,
        wit::RandomStart::Seed(seed) => RandomStart::Seed(match seed {
            wit::RandomSeed::Integer(digits) => RandomSeed::Int(
                digits
                    .parse::<BigInt>()
                    .map_err(|_| invalid(format!("{digits:?} is not an integer seed")))?,
            ),
            wit::RandomSeed::Float(f) => RandomSeed::Float(f),
            wit::RandomSeed::Text(text) => RandomSeed::Str(text),
            wit::RandomSeed::Bytes(bytes) => RandomSeed::Bytes(bytes),
        }),
    };
    Ok(OsPolicy {
        datetime,
        timezone,
        sleep,
        process_time,
        random_start,
    })
}
