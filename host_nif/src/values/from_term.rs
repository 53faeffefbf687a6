//! Elixir -> Python: a term becomes a value, iteratively, with the path of
//! any term that has no Python meaning (`inputs["x"][2]`).

use monty_types::unstable::{
    object_from_graph, object_from_node, ClassTypeNode, MontyGraph, MontyNode, NodeId,
};
use monty_types::{MontyObject, MontyTimeDelta, MontyTimeZone, MontyUuid};
use num_bigint::BigInt;
use rustler::types::tuple::get_tuple;
use rustler::{Atom, Binary, Encoder, MapIterator, Term, TermType};

use super::collisions::check_collisions;
use super::structs::visit_struct;
use crate::atoms;
use crate::terms::{short_inspect, utf8};

/// Why a term could not become a Python value.
#[derive(Debug)]
pub enum FromTermError {
    /// The term has no Python meaning; the message names it and its path.
    Invalid(String),
    /// The term is larger than the caller's budget (run it on a dirty scheduler).
    OverBudget,
}

/// Work allowed before `encode` gives up with `OverBudget`: about a
/// millisecond of conversion on a normal scheduler.
pub struct Budget {
    left: Option<usize>,
}

impl Budget {
    pub fn limited(units: usize) -> Self {
        Self { left: Some(units) }
    }

    pub fn unlimited() -> Self {
        Self { left: None }
    }

    pub(super) fn spend(&mut self, units: usize) -> Result<(), FromTermError> {
        if let Some(left) = &mut self.left {
            if units > *left {
                return Err(FromTermError::OverBudget);
            }
            *left -= units;
        }
        Ok(())
    }
}

/// One step of the path to a term inside the input, for error messages.
#[derive(Clone)]
pub(super) enum Segment<'a> {
    /// The value itself (named by the caller's `root`, rendered only for an error).
    Root,
    Index(usize),
    Key(Term<'a>),
}

fn render_path(root: &dyn Fn() -> String, segments: &[&Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Root => out.push_str(&root()),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(term) => out.push_str(&format!("[{}]", short_inspect(*term))),
        }
    }
    out
}

/// Where a value sits: a set element and a dict key must be hashable, so an
/// Elixir `MapSet` there becomes a `frozenset`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Position {
    Value,
    Hashable,
}

pub(super) enum Frame<'a> {
    Visit {
        term: Term<'a>,
        segment: Segment<'a>,
        position: Position,
    },
    Build {
        kind: Container,
        segment: Segment<'a>,
    },
    /// A node made up by the conversion itself (a host class and its marker).
    Node(MontyNode),
}

pub(super) enum Container {
    List(usize),
    Tuple(usize),
    Set(usize),
    FrozenSet(usize),
    Dict(usize),
    NamedTuple {
        type_name: String,
        field_names: Vec<String>,
    },
    /// A host module: `n` (name, value) attribute pairs.
    Module {
        name: String,
        n: usize,
    },
    /// A host dataclass: its name and whether it is frozen (then the two
    /// nodes of its frozen marker precede it).
    Class {
        name: String,
        id: MontyUuid,
        frozen: bool,
    },
    /// An instance of the class built just before: `n` (name, value) pairs.
    Instance {
        id: MontyUuid,
        n: usize,
    },
}

/// Converts one Elixir term into a Python value, iteratively. `root` names
/// the term in error messages (`inputs["x"]`); it is called only for one.
pub fn term_to_value<'a>(
    term: Term<'a>,
    root: &dyn Fn() -> String,
    budget: &mut Budget,
) -> Result<MontyObject, FromTermError> {
    if let Some(scalar) = scalar(term) {
        budget.spend(1)?;
        return Ok(scalar);
    }
    let mut nodes: Vec<MontyNode> = Vec::new();
    let mut ids: Vec<NodeId> = Vec::new();
    let mut stack: Vec<Frame<'a>> = vec![Frame::Visit {
        term,
        segment: Segment::Root,
        position: Position::Value,
    }];
    while let Some(frame) = stack.pop() {
        budget.spend(1)?;
        match frame {
            Frame::Visit {
                term,
                segment,
                position,
            } => {
                match visit(term, position, budget, &mut stack, segment.clone()) {
                    Ok(Some(node)) => {
                        let id = NodeId(nodes.len() as u32);
                        nodes.push(node);
                        ids.push(id);
                    }
                    Ok(None) => {}
                    Err(VisitError::Budget) => return Err(FromTermError::OverBudget),
                    // `visit` pushes nothing when it fails: `stack` holds the ancestors.
                    Err(VisitError::Invalid(message)) => {
                        return Err(path_error(root, &stack, &segment, &message));
                    }
                }
            }
            Frame::Build { kind, segment } => {
                let node = build(kind, &mut ids, &nodes)
                    .map_err(|message| path_error(root, &stack, &segment, &message))?;
                let id = NodeId(nodes.len() as u32);
                nodes.push(node);
                ids.push(id);
            }
            Frame::Node(node) => {
                let id = NodeId(nodes.len() as u32);
                nodes.push(node);
                ids.push(id);
            }
        }
    }
    let root_id = ids
        .pop()
        .ok_or_else(|| FromTermError::Invalid("empty value".to_owned()))?;
    let graph = MontyGraph::from_nodes(nodes)
        .map_err(|e| FromTermError::Invalid(format!("internal: {e}")))?;
    object_from_graph(graph, root_id).map_err(|e| FromTermError::Invalid(format!("internal: {e}")))
}

/// An error naming where in the input it happened: the pending `Build`
/// frames on the stack are the ancestors of the failing term.
fn path_error<'a>(
    root: &dyn Fn() -> String,
    stack: &[Frame<'a>],
    segment: &Segment<'a>,
    message: &str,
) -> FromTermError {
    let mut path: Vec<&Segment<'a>> = stack
        .iter()
        .filter_map(|frame| match frame {
            Frame::Build { segment, .. } => Some(segment),
            Frame::Visit { .. } | Frame::Node(_) => None,
        })
        .collect();
    path.push(segment);
    FromTermError::Invalid(format!("{message} at {}", render_path(root, &path)))
}

/// The most common inputs, converted directly: an integer that fits in 64
/// bits, a float, a short UTF-8 string: the same nodes `visit` makes of
/// them, without the conversion stack. Anything else (or an invalid
/// string, for its error) takes the general path.
fn scalar(term: Term<'_>) -> Option<MontyObject> {
    let node = match term.get_type() {
        TermType::Integer => MontyNode::Int(term.decode::<i64>().ok()?),
        TermType::Float => MontyNode::Float(term.decode::<f64>().ok()?),
        TermType::Binary => {
            let bin = term.decode::<Binary>().ok()?;
            // Strings of 1 KiB and more spend budget by size: the general path.
            if bin.len() >= 1024 {
                return None;
            }
            MontyNode::String(std::str::from_utf8(bin.as_slice()).ok()?.to_owned())
        }
        _ => return None,
    };
    // Leaf nodes: never a panic in `object_from_node`.
    Some(object_from_node(node))
}

fn take_ids(ids: &mut Vec<NodeId>, n: usize) -> Result<Vec<NodeId>, String> {
    if ids.len() < n {
        return Err("internal: conversion stack underflow".to_owned());
    }
    Ok(ids.split_off(ids.len() - n))
}

fn build(kind: Container, ids: &mut Vec<NodeId>, nodes: &[MontyNode]) -> Result<MontyNode, String> {
    Ok(match kind {
        Container::List(n) => MontyNode::List(take_ids(ids, n)?),
        Container::Tuple(n) => MontyNode::Tuple(take_ids(ids, n)?),
        Container::Set(n) => {
            let items = take_ids(ids, n)?;
            check_collisions(nodes, &items, "set elements")?;
            MontyNode::Set(items)
        }
        Container::FrozenSet(n) => {
            let items = take_ids(ids, n)?;
            check_collisions(nodes, &items, "frozenset elements")?;
            MontyNode::FrozenSet(items)
        }
        Container::Dict(n) => {
            let flat = take_ids(ids, n * 2)?;
            let pairs: Vec<(NodeId, NodeId)> = flat
                .as_chunks::<2>()
                .0
                .iter()
                .map(|[key, value]| (*key, *value))
                .collect();
            let keys: Vec<NodeId> = pairs.iter().map(|(key, _)| *key).collect();
            check_collisions(nodes, &keys, "dict keys")?;
            MontyNode::Dict(pairs)
        }
        Container::NamedTuple {
            type_name,
            field_names,
        } => {
            let values = take_ids(ids, field_names.len())?;
            MontyNode::NamedTuple {
                type_name,
                field_names,
                values,
            }
        }
        Container::Module { name, n } => {
            let flat = take_ids(ids, n * 2)?;
            let attrs = flat
                .as_chunks::<2>()
                .0
                .iter()
                .map(|[key, value]| (*key, *value))
                .collect();
            MontyNode::Module {
                id: module_id(&name),
                name,
                attrs,
            }
        }
        Container::Class { name, id, frozen } => {
            let attrs = if frozen {
                let marker = take_ids(ids, 2)?;
                vec![(marker[0], marker[1])]
            } else {
                Vec::new()
            };
            MontyNode::ClassType(Box::new(ClassTypeNode {
                name,
                id,
                host_defined: true,
                is_dataclass: true,
                attrs,
            }))
        }
        Container::Instance { id, n } => {
            let flat = take_ids(ids, n * 2 + 1)?;
            let (class, flat) = flat
                .split_first()
                .ok_or_else(|| "internal: conversion stack underflow".to_owned())?;
            let attrs = flat
                .as_chunks::<2>()
                .0
                .iter()
                .map(|[key, value]| (*key, *value))
                .collect();
            MontyNode::ClassInstance {
                class_type: *class,
                instance_id: id,
                attrs,
            }
        }
    })
}

pub(super) enum VisitError {
    Invalid(String),
    Budget,
}

impl From<String> for VisitError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

pub(super) fn push_children<'a>(
    stack: &mut Vec<Frame<'a>>,
    kind: Container,
    segment: Segment<'a>,
    children: Vec<(Term<'a>, Segment<'a>, Position)>,
) {
    stack.push(Frame::Build { kind, segment });
    // Reversed, so the first child is converted (and numbered) first.
    for (term, segment, position) in children.into_iter().rev() {
        stack.push(Frame::Visit {
            term,
            segment,
            position,
        });
    }
}

/// Converts a leaf, or pushes a container's children. `Ok(None)` means
/// frames were pushed and the node will be built later.
fn visit<'a>(
    term: Term<'a>,
    position: Position,
    budget: &mut Budget,
    stack: &mut Vec<Frame<'a>>,
    segment: Segment<'a>,
) -> Result<Option<MontyNode>, VisitError> {
    match term.get_type() {
        TermType::Integer => {
            if let Ok(i) = term.decode::<i64>() {
                return Ok(Some(MontyNode::Int(i)));
            }
            let big = term
                .decode::<BigInt>()
                .map_err(|_| format!("cannot read integer {}", short_inspect(term)))?;
            budget
                .spend(usize::try_from(big.bits() / 64).unwrap_or(usize::MAX))
                .map_err(|_| VisitError::Budget)?;
            Ok(Some(MontyNode::BigInt(big)))
        }
        TermType::Float => Ok(Some(MontyNode::Float(
            term.decode::<f64>()
                .map_err(|_| "cannot read float".to_owned())?,
        ))),
        TermType::Binary => {
            let bin = term
                .decode::<Binary>()
                .map_err(|_| "cannot read binary".to_owned())?;
            budget
                .spend(bin.len() / 1024)
                .map_err(|_| VisitError::Budget)?;
            match std::str::from_utf8(bin.as_slice()) {
                Ok(s) => Ok(Some(MontyNode::String(s.to_owned()))),
                Err(_) => Err(VisitError::Invalid(format!(
                    "binary {} is not valid UTF-8 (tag raw bytes as {{:bytes, binary}})",
                    short_inspect(term)
                ))),
            }
        }
        TermType::Atom => {
            let atom = term
                .decode::<Atom>()
                .map_err(|_| "cannot read atom".to_owned())?;
            if atom == atoms::nil() {
                Ok(Some(MontyNode::None))
            } else if atom == atoms::true_() {
                Ok(Some(MontyNode::Bool(true)))
            } else if atom == atoms::false_() {
                Ok(Some(MontyNode::Bool(false)))
            } else if atom == atoms::ellipsis() {
                Ok(Some(MontyNode::Ellipsis))
            } else if atom == atoms::infinity() {
                Ok(Some(MontyNode::Float(f64::INFINITY)))
            } else if atom == atoms::neg_infinity() {
                Ok(Some(MontyNode::Float(f64::NEG_INFINITY)))
            } else if atom == atoms::nan() {
                Ok(Some(MontyNode::Float(f64::NAN)))
            } else if atom == atoms::not_implemented() {
                Ok(Some(MontyNode::NotImplemented))
            } else {
                Err(VisitError::Invalid(format!(
                    "{} has no Python meaning (the atoms that do: nil, true, false, :ellipsis, :infinity, :neg_infinity, :nan)",
                    short_inspect(term)
                )))
            }
        }
        TermType::List => {
            let len = term.list_length().map_err(|_| {
                format!(
                    "improper list {} has no Python meaning",
                    short_inspect(term)
                )
            })?;
            budget.spend(len).map_err(|_| VisitError::Budget)?;
            let items = term
                .into_list_iterator()
                .map_err(|_| "cannot read list".to_owned())?
                .enumerate()
                .map(|(i, item)| (item, Segment::Index(i), Position::Value))
                .collect();
            push_children(stack, Container::List(len), segment, items);
            Ok(None)
        }
        TermType::Tuple => visit_tuple(term, stack, segment, budget),
        TermType::Map => visit_map(term, position, stack, segment, budget),
        _ => Err(VisitError::Invalid(format!(
            "{} has no Python meaning",
            short_inspect(term)
        ))),
    }
}

fn visit_tuple<'a>(
    term: Term<'a>,
    stack: &mut Vec<Frame<'a>>,
    segment: Segment<'a>,
    budget: &mut Budget,
) -> Result<Option<MontyNode>, VisitError> {
    let elements = get_tuple(term).map_err(|_| "cannot read tuple".to_owned())?;
    budget
        .spend(elements.len())
        .map_err(|_| VisitError::Budget)?;
    let tag = elements
        .first()
        .and_then(|first| first.decode::<Atom>().ok());
    match (tag, elements.len()) {
        (Some(tag), 2) if tag == atoms::bytes() => {
            let bin = elements[1]
                .decode::<Binary>()
                .map_err(|_| "{:bytes, _} needs a binary".to_owned())?;
            budget
                .spend(bin.len() / 1024)
                .map_err(|_| VisitError::Budget)?;
            Ok(Some(MontyNode::Bytes(bin.as_slice().to_vec())))
        }
        (Some(tag), 2) if tag == atoms::path() => {
            Ok(Some(MontyNode::Path(utf8(elements[1], "a path")?)))
        }
        (Some(tag), 2) if tag == atoms::decimal() => {
            let text = utf8(elements[1], "a decimal")?;
            if !valid_decimal(&text) {
                return Err(VisitError::Invalid(format!(
                    "{} is not a decimal number",
                    short_inspect(term)
                )));
            }
            Ok(Some(MontyNode::Decimal(text)))
        }
        (Some(tag), 2) if tag == atoms::type_() => {
            let name = utf8(elements[1], "a type name")?;
            monty_types::MontyType::from_type_name(&name)
                .map(|t| Some(MontyNode::Type(t)))
                .ok_or_else(|| VisitError::Invalid(format!("{name:?} is not a builtin type")))
        }
        (Some(tag), 2) if tag == atoms::builtin_function() => {
            let name = utf8(elements[1], "a builtin function name")?;
            MontyObject::builtin_function_from_name(&name)
                .map(|f| Some(monty_types::unstable::root_node(&f).clone()))
                .ok_or_else(|| VisitError::Invalid(format!("{name:?} is not a builtin function")))
        }
        (Some(tag), 2) if tag == atoms::function() => Ok(Some(MontyNode::Function {
            name: utf8(elements[1], "a function name")?,
            docstring: None,
        })),
        (Some(tag), 4) if tag == atoms::file() => {
            let mode = utf8(elements[2], "a file mode")?;
            Ok(Some(MontyNode::FileHandle(monty_types::MontyFileHandle {
                path: utf8(elements[1], "a file path")?,
                mode: mode
                    .parse()
                    .map_err(|_| format!("{mode:?} is not a valid open() mode"))?,
                position: elements[3]
                    .decode()
                    .map_err(|_| "a file position must be a non-negative integer".to_owned())?,
            })))
        }
        (Some(tag), 3) if tag == atoms::complex() => {
            Ok(Some(MontyNode::Complex(monty_types::MontyComplex {
                real: float_of(elements[1])?,
                imag: float_of(elements[2])?,
            })))
        }
        (Some(tag), 4) if tag == atoms::timedelta() => {
            Ok(Some(MontyNode::TimeDelta(MontyTimeDelta {
                days: elements[1]
                    .decode()
                    .map_err(|_| "timedelta days must be an integer".to_owned())?,
                seconds: elements[2]
                    .decode()
                    .map_err(|_| "timedelta seconds must be an integer".to_owned())?,
                microseconds: elements[3]
                    .decode()
                    .map_err(|_| "timedelta microseconds must be an integer".to_owned())?,
            })))
        }
        (Some(tag), 3) if tag == atoms::timezone() => {
            Ok(Some(MontyNode::TimeZone(MontyTimeZone {
                offset_seconds: elements[1]
                    .decode()
                    .map_err(|_| "timezone offset must be an integer".to_owned())?,
                name: optional_string(elements[2], "a timezone name")?,
            })))
        }
        (Some(tag), 3) if tag == atoms::module() => {
            let name = utf8(elements[1], "a module name")?;
            let valid = identifier;
            if name.len() > 256 || !name.split('.').all(valid) {
                return Err(VisitError::Invalid(format!(
                    "{name:?} is not a module name"
                )));
            }
            let iter = MapIterator::new(elements[2])
                .ok_or_else(|| "a module's attributes must be a map of name => value".to_owned())?;
            let mut children = Vec::new();
            for (key, value) in iter {
                let attr = utf8(key, "a module attribute name")?;
                if !valid(&attr) {
                    return Err(VisitError::Invalid(format!(
                        "{attr:?} is not an attribute name"
                    )));
                }
                children.push((key, Segment::Key(key), Position::Value));
                children.push((value, Segment::Key(key), Position::Value));
            }
            budget
                .spend(children.len())
                .map_err(|_| VisitError::Budget)?;
            let n = children.len() / 2;
            push_children(stack, Container::Module { name, n }, segment, children);
            Ok(None)
        }
        (Some(tag), 3) if tag == atoms::named_tuple() => {
            let type_name = utf8(elements[1], "a named tuple's type name")?;
            let len = elements[2]
                .list_length()
                .map_err(|_| "a named tuple's fields must be a list of {name, value}".to_owned())?;
            let mut field_names = Vec::with_capacity(len);
            let mut values = Vec::with_capacity(len);
            for (i, field) in elements[2]
                .into_list_iterator()
                .map_err(|_| "cannot read named tuple fields".to_owned())?
                .enumerate()
            {
                let pair = get_tuple(field)
                    .ok()
                    .filter(|pair| pair.len() == 2)
                    .ok_or_else(|| {
                        "a named tuple's fields must be a list of {name, value}".to_owned()
                    })?;
                field_names.push(utf8(pair[0], "a named tuple field name")?);
                values.push((pair[1], Segment::Index(i), Position::Value));
            }
            push_children(
                stack,
                Container::NamedTuple {
                    type_name,
                    field_names,
                },
                segment,
                values,
            );
            Ok(None)
        }
        _ => {
            let items = elements
                .into_iter()
                .enumerate()
                .map(|(i, item)| (item, Segment::Index(i), Position::Value))
                .collect::<Vec<_>>();
            push_children(stack, Container::Tuple(items.len()), segment, items);
            Ok(None)
        }
    }
}

fn float_of(term: Term<'_>) -> Result<f64, VisitError> {
    if let Ok(f) = term.decode::<f64>() {
        return Ok(f);
    }
    if let Ok(i) = term.decode::<i64>() {
        return Ok(i as f64);
    }
    match term.decode::<Atom>() {
        Ok(a) if a == atoms::infinity() => Ok(f64::INFINITY),
        Ok(a) if a == atoms::neg_infinity() => Ok(f64::NEG_INFINITY),
        Ok(a) if a == atoms::nan() => Ok(f64::NAN),
        _ => Err(VisitError::Invalid(format!(
            "{} is not a float",
            short_inspect(term)
        ))),
    }
}

fn optional_string(term: Term<'_>, what: &str) -> Result<Option<String>, String> {
    if term.decode::<Atom>().is_ok_and(|a| a == atoms::nil()) {
        Ok(None)
    } else {
        utf8(term, what).map(Some)
    }
}

fn visit_map<'a>(
    term: Term<'a>,
    position: Position,
    stack: &mut Vec<Frame<'a>>,
    segment: Segment<'a>,
    budget: &mut Budget,
) -> Result<Option<MontyNode>, VisitError> {
    let env = term.get_env();
    if let Ok(module) = term.map_get(atoms::__struct__().encode(env)) {
        return visit_struct(term, module, position, stack, segment, budget);
    }
    let size = term.map_size().map_err(|_| "cannot read map".to_owned())?;
    budget.spend(size * 2).map_err(|_| VisitError::Budget)?;
    let iter = MapIterator::new(term).ok_or_else(|| "cannot read map".to_owned())?;
    let mut children = Vec::with_capacity(size * 2);
    for (key, value) in iter {
        children.push((key, Segment::Key(key), Position::Hashable));
        children.push((value, Segment::Key(key), Position::Value));
    }
    push_children(stack, Container::Dict(size), segment, children);
    Ok(None)
}

/// Whether `text` is a number `decimal.Decimal` accepts: `1`, `-1.20`,
/// `.5`, `1e-3`, `NaN`, `sNaN`, `Infinity`, `-inf`.
fn valid_decimal(text: &str) -> bool {
    let body = text.trim();
    let body = body.strip_prefix(['+', '-']).unwrap_or(body);
    let lower = body.to_ascii_lowercase();
    if ["nan", "snan", "inf", "infinity"].contains(&lower.as_str()) {
        return true;
    }
    let (mantissa, exponent) = match lower.split_once('e') {
        Some((mantissa, exponent)) => (mantissa, Some(exponent)),
        None => (lower.as_str(), None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            (digits(int) || int.is_empty())
                && (digits(frac) || frac.is_empty())
                && int.len() + frac.len() > 0
        }
        None => digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)));
    mantissa_ok && exponent_ok
}

/// A module's identity: the same name is the same module, in every
/// execution (a hash of the name, shaped as a UUID).
fn module_id(name: &str) -> MontyUuid {
    stable_id(&format!("ex_monty module {name}"))
}

/// A UUID that is the same for the same text, in every execution.
pub(super) fn stable_id(text: &str) -> MontyUuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    MontyUuid::from_random_bytes(bytes)
}

/// Whether `name` is a Python identifier (ASCII letters, digits and `_`,
/// or any alphabetic character, not starting with a digit).
pub(super) fn identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_alphanumeric() || c == '_')
}
