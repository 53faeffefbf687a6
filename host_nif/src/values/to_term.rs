//! Python -> Elixir: a value from the guest becomes a term.

use monty_types::unstable::{graph_parts, MontyGraph, MontyNode, NodeId};
use monty_types::{MontyObject, MontyUuid};
use rustler::types::tuple::make_tuple;
use rustler::{Encoder, Env, Term};

use super::datetime::{date_term, datetime_term, time_term, timezone_term};
use super::{Site, FROZEN_MARKER, SMALL_MAP};
use crate::atoms;
use crate::exceptions::exc_atom;
use crate::terms::{binary, float_term, make_struct, string};

/// Why a value could not be built here.
#[derive(Debug)]
pub enum ToTermError {
    Invalid(String),
    /// It holds a large map: build it on a scheduler thread instead.
    NeedsScheduler,
}

impl From<String> for ToTermError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

/// Decodes a postcard-encoded value coming from the guest into a term.
pub fn value_to_term<'a>(env: Env<'a>, bytes: &[u8], site: Site) -> Result<Term<'a>, ToTermError> {
    let object: MontyObject = postcard::from_bytes(bytes)
        .map_err(|e| format!("the sandbox returned an undecodable value: {e}"))?;
    to_term_at(env, &object, site)
}

/// Builds the term of a value on a scheduler thread.
pub fn object_to_term<'a>(env: Env<'a>, object: &MontyObject) -> Result<Term<'a>, String> {
    match to_term_at(env, object, Site::Scheduler) {
        Ok(term) => Ok(term),
        Err(ToTermError::Invalid(message)) => Err(message),
        Err(ToTermError::NeedsScheduler) => Err("internal: value needs a scheduler".to_owned()),
    }
}

/// Builds the term of a value. Children always precede their parents in the
/// arena, so one forward pass suffices.
fn to_term_at<'a>(env: Env<'a>, object: &MontyObject, site: Site) -> Result<Term<'a>, ToTermError> {
    let (graph, root) = graph_parts(object);
    let nodes = graph.nodes();
    MontyGraph::validate(nodes)
        .map_err(|e| format!("the sandbox returned a malformed value: {e}"))?;
    let last = root.index();
    if last >= nodes.len() {
        return Err(ToTermError::Invalid(
            "the sandbox returned a malformed value: root out of range".to_owned(),
        ));
    }
    if site == Site::Worker && nodes[..=last].iter().any(has_large_map) {
        return Err(ToTermError::NeedsScheduler);
    }
    let mut terms: Vec<Term<'a>> = Vec::with_capacity(last + 1);
    for node in &nodes[..=last] {
        let term = node_term(env, node, &terms, nodes)?;
        terms.push(term);
    }
    Ok(terms[last])
}

fn has_large_map(node: &MontyNode) -> bool {
    match node {
        MontyNode::Dict(pairs) => pairs.len() > SMALL_MAP,
        MontyNode::Set(items) | MontyNode::FrozenSet(items) => items.len() > SMALL_MAP,
        MontyNode::ClassInstance { attrs, .. } | MontyNode::Module { attrs, .. } => {
            attrs.len() > SMALL_MAP
        }
        _ => false,
    }
}

fn child<'a>(terms: &[Term<'a>], id: NodeId) -> Result<Term<'a>, String> {
    terms
        .get(id.index())
        .copied()
        .ok_or_else(|| "the sandbox returned a malformed value: forward reference".to_owned())
}

fn children<'a>(terms: &[Term<'a>], ids: &[NodeId]) -> Result<Vec<Term<'a>>, String> {
    ids.iter().map(|id| child(terms, *id)).collect()
}

/// The largest integer the BEAM represents has about 2^25 bits; a larger
/// one cannot become a term (and must not become a wrong one).
pub const MAX_TERM_INT_BITS: u64 = 33_554_304;

fn mapset<'a>(env: Env<'a>, items: &[Term<'a>]) -> Result<Term<'a>, String> {
    let empty = Term::list_new_empty(env);
    let values = vec![empty; items.len()];
    // Distinct Python values can be equal terms (two instances with the same
    // attributes): a MapSet would silently hold fewer of them.
    let map = Term::map_from_term_arrays(env, items, &values).map_err(|_| {
        "a set holds two values that are the same Elixir term (e.g. two instances with \
         equal attributes); return a list instead"
            .to_owned()
    })?;
    make_struct(
        env,
        atoms::elixir_mapset(),
        &[(atoms::map(), map), (atoms::version(), 2.encode(env))],
    )
}

fn named_pairs<'a>(
    env: Env<'a>,
    terms: &[Term<'a>],
    nodes: &[MontyNode],
    pairs: &[(NodeId, NodeId)],
) -> Result<Term<'a>, String> {
    // Attribute names are strings in Python; keep them as binaries.
    let mut keys = Vec::with_capacity(pairs.len());
    let mut values = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        let key_term = match nodes.get(key.index()) {
            Some(MontyNode::String(s)) => string(env, s),
            _ => child(terms, *key)?,
        };
        keys.push(key_term);
        values.push(child(terms, *value)?);
    }
    Term::map_from_term_arrays(env, &keys, &values)
        .map_err(|_| "duplicate attribute names".to_owned())
}

/// The attribute names of an instance, in the order Python holds them
/// (a dataclass's declaration order).
fn attr_names<'a>(
    env: Env<'a>,
    terms: &[Term<'a>],
    nodes: &[MontyNode],
    pairs: &[(NodeId, NodeId)],
) -> Result<Term<'a>, String> {
    pairs
        .iter()
        .map(|(key, _)| match nodes.get(key.index()) {
            Some(MontyNode::String(s)) => Ok(string(env, s)),
            _ => child(terms, *key),
        })
        .collect::<Result<Vec<_>, String>>()
        .map(|names| names.encode(env))
}

/// Whether a class's attributes mark it frozen (`__dataclass_frozen__ = True`,
/// what ExMonty sends for a `frozen: true` dataclass).
fn is_frozen(nodes: &[MontyNode], class_attrs: &[(NodeId, NodeId)]) -> bool {
    class_attrs.iter().any(|(key, value)| {
        matches!(nodes.get(key.index()), Some(MontyNode::String(k)) if k == FROZEN_MARKER)
            && matches!(nodes.get(value.index()), Some(MontyNode::Bool(true)))
    })
}

fn node_term<'a>(
    env: Env<'a>,
    node: &MontyNode,
    terms: &[Term<'a>],
    nodes: &[MontyNode],
) -> Result<Term<'a>, String> {
    Ok(match node {
        MontyNode::None => atoms::nil().encode(env),
        MontyNode::Ellipsis => atoms::ellipsis().encode(env),
        MontyNode::NotImplemented => atoms::not_implemented().encode(env),
        MontyNode::Bool(b) => b.encode(env),
        MontyNode::Int(i) => i.encode(env),
        MontyNode::BigInt(i) => {
            if i.bits() > MAX_TERM_INT_BITS {
                return Err(format!(
                    "the result holds an int of {} bits, larger than the BEAM's largest integer \
                     ({MAX_TERM_INT_BITS} bits); convert it in Python first (str(n), n.to_bytes(...))",
                    i.bits()
                ));
            }
            i.encode(env)
        }
        MontyNode::Float(f) => float_term(env, *f),
        MontyNode::Complex(c) => (
            atoms::complex(),
            float_term(env, c.real),
            float_term(env, c.imag),
        )
            .encode(env),
        MontyNode::String(s) => string(env, s),
        MontyNode::Bytes(b) => (atoms::bytes(), binary(env, b)).encode(env),
        MontyNode::Path(p) => (atoms::path(), string(env, p)).encode(env),
        MontyNode::Date(d) => date_term(env, d)?,
        MontyNode::DateTime(dt) => datetime_term(env, dt)?,
        MontyNode::Time(t) => time_term(env, t)?,
        MontyNode::TimeDelta(td) => {
            (atoms::timedelta(), td.days, td.seconds, td.microseconds).encode(env)
        }
        MontyNode::TimeZone(tz) => timezone_term(env, tz),
        MontyNode::Decimal(d) => (atoms::decimal(), string(env, d)).encode(env),
        MontyNode::Exception { exc_type, arg } => make_struct(
            env,
            atoms::elixir_exmonty_exception(),
            &[
                (atoms::__exception__(), true.encode(env)),
                (atoms::type_(), exc_atom(*exc_type).encode(env)),
                (atoms::message(), arg.as_deref().unwrap_or("").encode(env)),
                (atoms::traceback(), Term::list_new_empty(env)),
                (atoms::python_type(), string(env, &exc_type.to_string())),
                (atoms::rendered(), atoms::nil().encode(env)),
                (atoms::output(), string(env, "")),
                (atoms::diagnostics(), Term::list_new_empty(env)),
            ],
        )?,
        MontyNode::Type(t) => (atoms::type_(), string(env, t.name())).encode(env),
        MontyNode::BuiltinFunction(f) => {
            let name: &'static str = f.into();
            (atoms::builtin_function(), string(env, name)).encode(env)
        }
        MontyNode::FileHandle(fh) => (
            atoms::file(),
            string(env, &fh.path),
            string(env, fh.mode.as_str()),
            fh.position,
        )
            .encode(env),
        MontyNode::Function { name, .. } => (atoms::function(), string(env, name)).encode(env),
        MontyNode::Repr(r) => (atoms::repr(), string(env, r)).encode(env),
        MontyNode::Cycle(c) => (atoms::cycle(), string(env, c)).encode(env),
        MontyNode::List(ids) => children(terms, ids)?.encode(env),
        MontyNode::Tuple(ids) => make_tuple(env, &children(terms, ids)?),
        MontyNode::Set(ids) | MontyNode::FrozenSet(ids) => mapset(env, &children(terms, ids)?)?,
        MontyNode::NamedTuple {
            type_name,
            field_names,
            values,
        } => {
            let fields = field_names
                .iter()
                .zip(values)
                .map(|(name, id)| Ok((string(env, name), child(terms, *id)?).encode(env)))
                .collect::<Result<Vec<Term<'a>>, String>>()?;
            (atoms::named_tuple(), string(env, type_name), fields).encode(env)
        }
        MontyNode::Dict(pairs) => {
            let mut keys = Vec::with_capacity(pairs.len());
            let mut values = Vec::with_capacity(pairs.len());
            for (key, value) in pairs {
                keys.push(child(terms, *key)?);
                values.push(child(terms, *value)?);
            }
            Term::map_from_term_arrays(env, &keys, &values)
                .map_err(|_| "a dict has two keys that are the same Elixir term".to_owned())?
        }
        MontyNode::ClassType(class) => (atoms::class(), string(env, &class.name)).encode(env),
        MontyNode::ClassInstance {
            class_type,
            instance_id,
            attrs,
        } => {
            let class = match nodes.get(class_type.index()) {
                Some(MontyNode::ClassType(class)) => Some(class),
                _ => None,
            };
            let name = class.map_or("object", |class| class.name.as_str());
            let fields = named_pairs(env, terms, nodes, attrs)?;
            if class.is_some_and(|class| class.is_dataclass) {
                let frozen = class.is_some_and(|class| is_frozen(nodes, &class.attrs));
                let id = if *instance_id == MontyUuid::from_bytes([0; 16]) {
                    atoms::nil().encode(env)
                } else {
                    string(env, &instance_id.to_string())
                };
                make_struct(
                    env,
                    atoms::elixir_exmonty_dataclass(),
                    &[
                        (atoms::name(), string(env, name)),
                        (atoms::fields(), fields),
                        (atoms::field_names(), attr_names(env, terms, nodes, attrs)?),
                        (atoms::frozen(), frozen.encode(env)),
                        (atoms::id(), id),
                    ],
                )?
            } else {
                (atoms::instance(), string(env, name), fields).encode(env)
            }
        }
        MontyNode::Module { name, attrs, .. } => (
            atoms::module(),
            string(env, name),
            named_pairs(env, terms, nodes, attrs)?,
        )
            .encode(env),
    })
}
