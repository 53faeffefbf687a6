//! Dates, times and time zones: Elixir's calendar types <-> Python's
//! `datetime`, with Python's ranges checked on the way in.

use monty_types::{MontyDate, MontyDateTime, MontyTime, MontyTimeZone};
use rustler::types::tuple::make_tuple;
use rustler::{Atom, Encoder, Env, Term};

use super::from_term::VisitError;
use crate::atoms;
use crate::terms::{make_struct, short_inspect, string};

pub(crate) fn calendar_iso<'a>(env: Env<'a>) -> Term<'a> {
    atoms::elixir_calendar_iso().encode(env)
}

/// Elixir's `{microsecond, precision}`. Python keeps no precision, so it is
/// read off the value: whole seconds come back with precision 0, whole
/// milliseconds with 3, anything else with 6. `~N[2024-01-01 10:00:00]` and
/// `DateTime.truncate(dt, :millisecond)` then round-trip exactly (`===`).
pub(crate) fn microsecond<'a>(env: Env<'a>, us: u32) -> Term<'a> {
    let precision = if us == 0 {
        0
    } else if us.is_multiple_of(1000) {
        3
    } else {
        6
    };
    (us, precision).encode(env)
}

pub(crate) fn date_term<'a>(env: Env<'a>, d: &MontyDate) -> Result<Term<'a>, String> {
    make_struct(
        env,
        atoms::elixir_date(),
        &[
            (atoms::calendar(), calendar_iso(env)),
            (atoms::year(), d.year.encode(env)),
            (atoms::month(), d.month.encode(env)),
            (atoms::day(), d.day.encode(env)),
        ],
    )
}

pub(crate) fn time_fields<'a>(
    env: Env<'a>,
    hour: u8,
    minute: u8,
    second: u8,
    us: u32,
) -> Vec<(Atom, Term<'a>)> {
    vec![
        (atoms::calendar(), calendar_iso(env)),
        (atoms::hour(), hour.encode(env)),
        (atoms::minute(), minute.encode(env)),
        (atoms::second(), second.encode(env)),
        (atoms::microsecond(), microsecond(env, us)),
    ]
}

pub(crate) fn offset_name(offset: i32) -> String {
    if offset == 0 {
        return "UTC".to_owned();
    }
    let sign = if offset < 0 { '-' } else { '+' };
    let abs = offset.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs % 3600) / 60, abs % 60);
    if s == 0 {
        format!("UTC{sign}{h:02}:{m:02}")
    } else {
        format!("UTC{sign}{h:02}:{m:02}:{s:02}")
    }
}

pub(crate) fn datetime_term<'a>(env: Env<'a>, dt: &MontyDateTime) -> Result<Term<'a>, String> {
    let mut fields = time_fields(env, dt.hour, dt.minute, dt.second, dt.microsecond);
    fields.push((atoms::year(), dt.year.encode(env)));
    fields.push((atoms::month(), dt.month.encode(env)));
    fields.push((atoms::day(), dt.day.encode(env)));
    match dt.offset_seconds {
        None => make_struct(env, atoms::elixir_naive_datetime(), &fields),
        Some(offset) => {
            let zone = match (&dt.timezone_name, offset) {
                (_, 0) => "Etc/UTC".to_owned(),
                (Some(name), _) => name.clone(),
                (None, _) => offset_name(offset),
            };
            let abbr = match (&dt.timezone_name, offset) {
                (_, 0) => "UTC".to_owned(),
                (Some(name), _) => name.clone(),
                (None, _) => offset_name(offset),
            };
            fields.push((atoms::time_zone(), string(env, &zone)));
            fields.push((atoms::zone_abbr(), string(env, &abbr)));
            fields.push((atoms::utc_offset(), offset.encode(env)));
            fields.push((atoms::std_offset(), 0.encode(env)));
            make_struct(env, atoms::elixir_datetime(), &fields)
        }
    }
}

pub(crate) fn time_term<'a>(env: Env<'a>, t: &MontyTime) -> Result<Term<'a>, String> {
    let time = make_struct(
        env,
        atoms::elixir_time(),
        &time_fields(env, t.hour, t.minute, t.second, t.microsecond),
    )?;
    match t.offset_seconds {
        None => Ok(time),
        Some(offset) => Ok(make_tuple(
            env,
            &[
                atoms::time().encode(env),
                time,
                timezone_term(
                    env,
                    &MontyTimeZone {
                        offset_seconds: offset,
                        name: t.timezone_name.clone(),
                    },
                ),
            ],
        )),
    }
}

pub(crate) fn timezone_term<'a>(env: Env<'a>, tz: &MontyTimeZone) -> Term<'a> {
    (atoms::timezone(), tz.offset_seconds, tz.name.as_deref()).encode(env)
}

/// Python's `datetime` range: years 1 to 9999, real calendar days.
pub(crate) fn check_date(year: i32, month: u8, day: u8, term: Term<'_>) -> Result<(), VisitError> {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    };
    if !(1..=9999).contains(&year) {
        Err(VisitError::Invalid(format!(
            "{} is outside Python's date range (years 1 to 9999)",
            short_inspect(term)
        )))
    } else if day == 0 || day > days {
        Err(VisitError::Invalid(format!(
            "{} is not a valid calendar date",
            short_inspect(term)
        )))
    } else {
        Ok(())
    }
}

pub(crate) fn check_time(
    hour: u8,
    minute: u8,
    second: u8,
    us: u32,
    term: Term<'_>,
) -> Result<(), VisitError> {
    if hour > 23 || minute > 59 || second > 59 || us > 999_999 {
        Err(VisitError::Invalid(format!(
            "{} is not a valid time of day",
            short_inspect(term)
        )))
    } else {
        Ok(())
    }
}
