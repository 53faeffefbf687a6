//! Elixir structs going into Python: `MapSet`, the calendar types, an
//! `ExMonty.Exception`; anything else is refused with its path.

use monty_types::unstable::MontyNode;
use monty_types::{ExcType, MontyDate, MontyDateTime, MontyTime};
use rustler::{Atom, MapIterator, Term};

use super::datetime::{check_date, check_time};
use super::from_term::{push_children, Container, Frame, Position, Segment, VisitError};
use super::Budget;
use crate::atoms;
use crate::terms::{field, short_inspect, utf8};

pub(super) fn visit_struct<'a>(
    term: Term<'a>,
    module: Term<'a>,
    position: Position,
    stack: &mut Vec<Frame<'a>>,
    segment: Segment<'a>,
    budget: &mut Budget,
) -> Result<Option<MontyNode>, VisitError> {
    let module = module
        .decode::<Atom>()
        .map_err(|_| format!("{} is not a struct", short_inspect(term)))?;
    // Safety of lifetimes: decoders below only read plain numbers.
    let env = term.get_env();
    let get_u8 = |key: Atom, what: &str| -> Result<u8, String> {
        field(term, key, what)?
            .decode::<u8>()
            .map_err(|_| format!("{what} has an invalid {key:?} field"))
    };
    let get_i32 = |key: Atom, what: &str| -> Result<i32, String> {
        field(term, key, what)?
            .decode::<i32>()
            .map_err(|_| format!("{what} has an invalid {key:?} field"))
    };
    let get_us = |what: &str| -> Result<u32, String> {
        let us = field(term, atoms::microsecond(), what)?;
        let (value, _precision): (u32, u32) = us
            .decode()
            .map_err(|_| format!("{what} has an invalid microsecond field"))?;
        Ok(value)
    };
    if module == atoms::elixir_mapset() {
        let map = field(term, atoms::map(), "a MapSet")?;
        let size = map
            .map_size()
            .map_err(|_| "cannot read MapSet".to_owned())?;
        budget.spend(size).map_err(|_| VisitError::Budget)?;
        let iter = MapIterator::new(map).ok_or_else(|| "cannot read MapSet".to_owned())?;
        let items = iter
            .enumerate()
            .map(|(i, (item, _))| (item, Segment::Index(i), Position::Hashable))
            .collect::<Vec<_>>();
        let kind = if position == Position::Hashable {
            Container::FrozenSet(size)
        } else {
            Container::Set(size)
        };
        push_children(stack, kind, segment, items);
        return Ok(None);
    }
    if module == atoms::elixir_date() {
        let date = MontyDate {
            year: get_i32(atoms::year(), "a Date")?,
            month: get_u8(atoms::month(), "a Date")?,
            day: get_u8(atoms::day(), "a Date")?,
        };
        check_date(date.year, date.month, date.day, term)?;
        return Ok(Some(MontyNode::Date(date)));
    }
    if module == atoms::elixir_time() {
        let time = MontyTime {
            hour: get_u8(atoms::hour(), "a Time")?,
            minute: get_u8(atoms::minute(), "a Time")?,
            second: get_u8(atoms::second(), "a Time")?,
            microsecond: get_us("a Time")?,
            offset_seconds: None,
            timezone_name: None,
            fold: 0,
        };
        check_time(time.hour, time.minute, time.second, time.microsecond, term)?;
        return Ok(Some(MontyNode::Time(time)));
    }
    if module == atoms::elixir_naive_datetime() || module == atoms::elixir_datetime() {
        let what = if module == atoms::elixir_datetime() {
            "a DateTime"
        } else {
            "a NaiveDateTime"
        };
        let (offset_seconds, timezone_name) = if module == atoms::elixir_datetime() {
            let utc: i32 = get_i32(atoms::utc_offset(), what)?;
            let std: i32 = get_i32(atoms::std_offset(), what)?;
            let zone = utf8(field(term, atoms::time_zone(), what)?, "a time zone")?;
            let name = if zone == "Etc/UTC" || zone.starts_with("UTC") {
                None
            } else {
                Some(zone)
            };
            (Some(utc + std), name)
        } else {
            (None, None)
        };
        let datetime = MontyDateTime {
            year: get_i32(atoms::year(), what)?,
            month: get_u8(atoms::month(), what)?,
            day: get_u8(atoms::day(), what)?,
            hour: get_u8(atoms::hour(), what)?,
            minute: get_u8(atoms::minute(), what)?,
            second: get_u8(atoms::second(), what)?,
            microsecond: get_us(what)?,
            offset_seconds,
            timezone_name,
        };
        check_date(datetime.year, datetime.month, datetime.day, term)?;
        check_time(
            datetime.hour,
            datetime.minute,
            datetime.second,
            datetime.microsecond,
            term,
        )?;
        if offset_seconds.is_some_and(|offset| offset.abs() >= 86_400) {
            return Err(VisitError::Invalid(format!(
                "{} has a UTC offset of a day or more, which Python cannot represent",
                short_inspect(term)
            )));
        }
        return Ok(Some(MontyNode::DateTime(datetime)));
    }
    if module == atoms::elixir_exmonty_exception() {
        let exc_type = field(term, atoms::python_type(), "an ExMonty.Exception")
            .ok()
            .and_then(|t| utf8(t, "a Python type").ok())
            .and_then(|name| name.parse::<ExcType>().ok())
            .or_else(|| {
                field(term, atoms::type_(), "an ExMonty.Exception")
                    .ok()
                    .and_then(|t| t.decode::<Atom>().ok())
                    .and_then(|a| crate::exceptions::exc_type_of_atom(env, a))
            })
            .ok_or_else(|| "an ExMonty.Exception with an unknown type".to_owned())?;
        let message = field(term, atoms::message(), "an ExMonty.Exception")
            .ok()
            .and_then(|m| utf8(m, "a message").ok())
            .filter(|m| !m.is_empty());
        return Ok(Some(MontyNode::Exception {
            exc_type,
            arg: message,
        }));
    }
    if module == atoms::elixir_exmonty_dataclass() {
        let _ = (stack, segment);
        return Err(VisitError::Invalid(
            "an ExMonty.Dataclass cannot be sent into Python (Monty cannot rebuild class instances)".to_owned(),
        ));
    }
    Err(VisitError::Invalid(format!(
        "struct {} has no Python meaning",
        short_inspect(term)
    )))
}
