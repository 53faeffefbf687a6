//! Elixir structs going into Python: `MapSet`, the calendar types, an
//! `ExMonty.Exception`; anything else is refused with its path.

use monty_types::unstable::MontyNode;
use monty_types::{ExcType, MontyDate, MontyDateTime, MontyTime, MontyUuid};
use rustler::{Atom, Encoder, MapIterator, Term};

use super::datetime::{check_date, check_time};
use super::from_term::{
    identifier, push_children, stable_id, Container, Frame, Position, Segment, VisitError,
};
use super::{Budget, FROZEN_MARKER};
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
    // Decoded wide and checked: rustler's `u8` decoder wraps (a month of
    // 257 would read as 1).
    let get_u8 = |key: Atom, what: &str| -> Result<u8, String> {
        field(term, key, what)?
            .decode::<u32>()
            .ok()
            .and_then(|value| u8::try_from(value).ok())
            .ok_or_else(|| format!("{what} has an invalid {key:?} field"))
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
        visit_dataclass(term, stack, segment, budget)?;
        return Ok(None);
    }
    Err(VisitError::Invalid(format!(
        "struct {} has no Python meaning",
        short_inspect(term)
    )))
}

/// An `ExMonty.Dataclass` becomes a host-defined dataclass instance: its
/// class (one per name and frozenness, the same in every execution), then
/// its fields as attributes in `field_names` order.
fn visit_dataclass<'a>(
    term: Term<'a>,
    stack: &mut Vec<Frame<'a>>,
    segment: Segment<'a>,
    budget: &mut Budget,
) -> Result<(), VisitError> {
    const WHAT: &str = "an ExMonty.Dataclass";
    let get = |key: Atom, name: &str| {
        field(term, key, WHAT)
            .map_err(|_| VisitError::Invalid(format!("{WHAT} lacks its :{name} field")))
    };
    let name_term = get(atoms::name(), "name")?;
    let name = utf8(name_term, "a dataclass name")?;
    if name.len() > 256 || !identifier(&name) {
        return Err(VisitError::Invalid(format!(
            "{} is not a class name (a Python identifier of at most 256 bytes)",
            short_inspect(name_term)
        )));
    }
    let frozen = match get(atoms::frozen(), "frozen")?.decode::<bool>() {
        Ok(frozen) => frozen,
        Err(_) => {
            return Err(VisitError::Invalid(format!(
                "{WHAT}'s :frozen must be true or false, got {}",
                short_inspect(get(atoms::frozen(), "frozen")?)
            )))
        }
    };
    let id_term = get(atoms::id(), "id")?;
    let id = if id_term.decode::<Atom>().is_ok_and(|a| a == atoms::nil()) {
        // No identity: the zero UUID, which Monty never generates.
        MontyUuid::from_bytes([0; 16])
    } else {
        utf8(id_term, "a dataclass id")
            .ok()
            .and_then(|text| MontyUuid::parse(&text))
            .ok_or_else(|| {
                VisitError::Invalid(format!(
                    "{WHAT}'s :id must be nil or a UUID string (ExMonty.Dataclass.new/3 makes one), got {}",
                    short_inspect(id_term)
                ))
            })?
    };
    let fields = get(atoms::fields(), "fields")?;
    let size = fields
        .map_size()
        .ok()
        .filter(|_| {
            fields
                .map_get(atoms::__struct__().encode(term.get_env()))
                .is_err()
        })
        .ok_or_else(|| {
            VisitError::Invalid(format!(
                "{WHAT}'s :fields must be a map of field name => value, got {}",
                short_inspect(fields)
            ))
        })?;
    budget.spend(size * 2).map_err(|_| VisitError::Budget)?;
    let names = ordered_names(get(atoms::field_names(), "field_names")?, fields, size)?;
    let mut children = Vec::with_capacity(size * 2);
    for key in names {
        let value = fields.map_get(key).map_err(|_| {
            VisitError::Invalid(format!(
                "{WHAT}'s :field_names names {}, which :fields lacks",
                short_inspect(key)
            ))
        })?;
        children.push((key, Segment::Key(key), Position::Hashable));
        children.push((value, Segment::Key(key), Position::Value));
    }
    let class_id = stable_id(&format!("ex_monty dataclass {name} frozen={frozen}"));
    push_children(
        stack,
        Container::Instance {
            id,
            n: children.len() / 2,
        },
        segment.clone(),
        children,
    );
    // Processed first: the class (and its frozen marker) precedes the attributes.
    stack.push(Frame::Build {
        kind: Container::Class {
            name,
            id: class_id,
            frozen,
        },
        segment,
    });
    if frozen {
        stack.push(Frame::Node(MontyNode::Bool(true)));
        stack.push(Frame::Node(MontyNode::String(FROZEN_MARKER.to_owned())));
    }
    Ok(())
}

/// The field names in the order they go into Python: `field_names` when
/// given (exactly the keys of `fields`, each once), else the keys sorted.
fn ordered_names<'a>(
    names: Term<'a>,
    fields: Term<'a>,
    size: usize,
) -> Result<Vec<Term<'a>>, VisitError> {
    const WHAT: &str = "an ExMonty.Dataclass";
    let check = |key: Term<'a>| -> Result<Term<'a>, VisitError> {
        let text = utf8(key, "a dataclass field name")?;
        if text.len() > 256 || !identifier(&text) {
            return Err(VisitError::Invalid(format!(
                "{} is not a field name (a Python identifier of at most 256 bytes)",
                short_inspect(key)
            )));
        }
        Ok(key)
    };
    if names.decode::<Atom>().is_ok_and(|a| a == atoms::nil()) {
        let iter = MapIterator::new(fields)
            .ok_or_else(|| VisitError::Invalid(format!("{WHAT}'s :fields cannot be read")))?;
        let mut keys = iter
            .map(|(key, _)| check(key))
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort();
        return Ok(keys);
    }
    let bad = || {
        VisitError::Invalid(format!(
            "{WHAT}'s :field_names must be nil or a list of the keys of :fields, each once, got {}",
            short_inspect(names)
        ))
    };
    let len = names.list_length().map_err(|_| bad())?;
    if len != size {
        return Err(bad());
    }
    let keys = names
        .into_list_iterator()
        .map_err(|_| bad())?
        .map(check)
        .collect::<Result<Vec<_>, _>>()?;
    let mut sorted = keys.clone();
    sorted.sort();
    if sorted.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(bad());
    }
    Ok(keys)
}
