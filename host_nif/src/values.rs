//! Python values <-> Elixir terms.
//!
//! Both directions go through `monty_types::MontyObject`'s flat post-order
//! arena, so neither recurses: a list nested 100 000 deep costs heap, not
//! native stack. Bytes from the guest are treated as untrusted: the arena is
//! validated before any node is read.

use monty_types::unstable::{graph_parts, object_from_graph, MontyGraph, MontyNode, NodeId};
use monty_types::{
    ExcType, MontyDate, MontyDateTime, MontyObject, MontyTime, MontyTimeDelta, MontyTimeZone,
};
use num_bigint::BigInt;
use rustler::types::tuple::{get_tuple, make_tuple};
use rustler::{Atom, Binary, Encoder, Env, MapIterator, NewBinary, Term, TermType};

use crate::atoms;
use crate::exceptions::exc_atom;

// ---------------------------------------------------------------------------
// Python -> Elixir
// ---------------------------------------------------------------------------

/// Maps with more entries than this are hash-array mapped tries in the BEAM,
/// and the VM builds those only on its own scheduler threads: on ExMonty's
/// workers `enif_make_map_from_arrays` must not be given one. Such values are
/// built later, on a dirty scheduler (`materialize`).
pub const SMALL_MAP: usize = 32;

/// Why a value could not be built here.
#[derive(Debug)]
pub enum DecodeError {
    Invalid(String),
    /// It holds a large map: build it on a scheduler thread instead.
    NeedsScheduler,
}

impl From<String> for DecodeError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

/// Where terms are being built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A BEAM scheduler thread (normal or dirty): anything can be built.
    Scheduler,
    /// One of ExMonty's worker threads: large maps cannot be built.
    Worker,
}

/// Decodes a postcard-encoded value coming from the guest into a term.
pub fn decode<'a>(env: Env<'a>, bytes: &[u8], site: Site) -> Result<Term<'a>, DecodeError> {
    let object: MontyObject = postcard::from_bytes(bytes)
        .map_err(|e| format!("the sandbox returned an undecodable value: {e}"))?;
    to_term_at(env, &object, site)
}

/// Builds the term of a value on a scheduler thread.
pub fn to_term<'a>(env: Env<'a>, object: &MontyObject) -> Result<Term<'a>, String> {
    match to_term_at(env, object, Site::Scheduler) {
        Ok(term) => Ok(term),
        Err(DecodeError::Invalid(message)) => Err(message),
        Err(DecodeError::NeedsScheduler) => Err("internal: value needs a scheduler".to_owned()),
    }
}

/// Builds the term of a value. Children always precede their parents in the
/// arena, so one forward pass suffices.
fn to_term_at<'a>(env: Env<'a>, object: &MontyObject, site: Site) -> Result<Term<'a>, DecodeError> {
    let (graph, root) = graph_parts(object);
    let nodes = graph.nodes();
    MontyGraph::validate(nodes)
        .map_err(|e| format!("the sandbox returned a malformed value: {e}"))?;
    let last = root.index();
    if last >= nodes.len() {
        return Err(DecodeError::Invalid(
            "the sandbox returned a malformed value: root out of range".to_owned(),
        ));
    }
    if site == Site::Worker && nodes[..=last].iter().any(has_large_map) {
        return Err(DecodeError::NeedsScheduler);
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

fn string<'a>(env: Env<'a>, s: &str) -> Term<'a> {
    s.encode(env)
}

fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
    let mut bin = NewBinary::new(env, bytes.len());
    bin.as_mut_slice().copy_from_slice(bytes);
    Binary::from(bin).to_term(env)
}

pub fn float_term(env: Env<'_>, f: f64) -> Term<'_> {
    if f.is_nan() {
        atoms::nan().encode(env)
    } else if f == f64::INFINITY {
        atoms::infinity().encode(env)
    } else if f == f64::NEG_INFINITY {
        atoms::neg_infinity().encode(env)
    } else {
        f.encode(env)
    }
}

/// `%Module{key: value, ...}` built directly as a map.
pub fn make_struct<'a>(
    env: Env<'a>,
    module: Atom,
    fields: &[(Atom, Term<'a>)],
) -> Result<Term<'a>, String> {
    let mut keys = Vec::with_capacity(fields.len() + 1);
    let mut values = Vec::with_capacity(fields.len() + 1);
    keys.push(atoms::__struct__().encode(env));
    values.push(module.encode(env));
    for (key, value) in fields {
        keys.push(key.encode(env));
        values.push(*value);
    }
    Term::map_from_term_arrays(env, &keys, &values).map_err(|_| "cannot build a struct".to_owned())
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

fn calendar_iso<'a>(env: Env<'a>) -> Term<'a> {
    atoms::elixir_calendar_iso().encode(env)
}

fn microsecond<'a>(env: Env<'a>, us: u32) -> Term<'a> {
    (us, 6).encode(env)
}

fn date_term<'a>(env: Env<'a>, d: &MontyDate) -> Result<Term<'a>, String> {
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

fn time_fields<'a>(
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

fn offset_name(offset: i32) -> String {
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

fn datetime_term<'a>(env: Env<'a>, dt: &MontyDateTime) -> Result<Term<'a>, String> {
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

fn time_term<'a>(env: Env<'a>, t: &MontyTime) -> Result<Term<'a>, String> {
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

fn timezone_term<'a>(env: Env<'a>, tz: &MontyTimeZone) -> Term<'a> {
    (atoms::timezone(), tz.offset_seconds, tz.name.as_deref()).encode(env)
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
            class_type, attrs, ..
        } => {
            let (name, is_dataclass) = match nodes.get(class_type.index()) {
                Some(MontyNode::ClassType(class)) => (class.name.as_str(), class.is_dataclass),
                _ => ("object", false),
            };
            let fields = named_pairs(env, terms, nodes, attrs)?;
            if is_dataclass {
                make_struct(
                    env,
                    atoms::elixir_exmonty_dataclass(),
                    &[
                        (atoms::name(), string(env, name)),
                        (atoms::fields(), fields),
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

// ---------------------------------------------------------------------------
// Elixir -> Python
// ---------------------------------------------------------------------------

/// Why a term could not become a Python value.
#[derive(Debug)]
pub enum EncodeError {
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

    fn spend(&mut self, units: usize) -> Result<(), EncodeError> {
        if let Some(left) = &mut self.left {
            if units > *left {
                return Err(EncodeError::OverBudget);
            }
            *left -= units;
        }
        Ok(())
    }
}

/// One step of the path to a term inside the input, for error messages.
#[derive(Clone)]
enum Segment<'a> {
    Root(String),
    Index(usize),
    Key(Term<'a>),
}

fn render_path(segments: &[&Segment<'_>]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Root(name) => out.push_str(name),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Key(term) => out.push_str(&format!("[{}]", short_inspect(*term))),
        }
    }
    out
}

/// A bounded rendering of a term for error messages, close to Elixir's `inspect`.
pub fn short_inspect(term: Term<'_>) -> String {
    let mut text = match term.get_type() {
        TermType::Binary => match term.decode::<Binary>() {
            Ok(bin) => match std::str::from_utf8(bin.as_slice()) {
                Ok(s) => format!("{s:?}"),
                Err(_) => format!("{term:?}"),
            },
            Err(_) => format!("{term:?}"),
        },
        TermType::Atom => match term.atom_to_string() {
            Ok(name) if name == "nil" || name == "true" || name == "false" => name,
            Ok(name) => format!(":{name}"),
            Err(_) => format!("{term:?}"),
        },
        TermType::Pid => format!("#PID{term:?}"),
        TermType::Ref => format!(
            "#Reference<{}>",
            format!("{term:?}")
                .trim_start_matches("#Ref<")
                .trim_end_matches('>')
        ),
        TermType::Fun => format!(
            "#Function<{}>",
            format!("{term:?}")
                .trim_start_matches("#Fun<")
                .trim_end_matches('>')
        ),
        TermType::Port => format!("#Port{}", format!("{term:?}").trim_start_matches("#Port")),
        _ => format!("{term:?}"),
    };
    if text.len() > 80 {
        let mut cut = 77;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Where a value sits: a set element and a dict key must be hashable, so an
/// Elixir `MapSet` there becomes a `frozenset`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Position {
    Value,
    Hashable,
}

enum Frame<'a> {
    Visit {
        term: Term<'a>,
        segment: Segment<'a>,
        position: Position,
    },
    Build {
        kind: Container,
        segment: Segment<'a>,
    },
}

enum Container {
    List(usize),
    Tuple(usize),
    Set(usize),
    FrozenSet(usize),
    Dict(usize),
    NamedTuple {
        type_name: String,
        field_names: Vec<String>,
    },
}

/// Converts one Elixir term into a Python value, iteratively.
pub fn encode<'a>(
    term: Term<'a>,
    root: &str,
    budget: &mut Budget,
) -> Result<MontyObject, EncodeError> {
    let mut nodes: Vec<MontyNode> = Vec::new();
    let mut ids: Vec<NodeId> = Vec::new();
    let mut stack: Vec<Frame<'a>> = vec![Frame::Visit {
        term,
        segment: Segment::Root(root.to_owned()),
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
                    Err(VisitError::Budget) => return Err(EncodeError::OverBudget),
                    // `visit` pushes nothing when it fails: `stack` holds the ancestors.
                    Err(VisitError::Invalid(message)) => {
                        return Err(path_error(&stack, &segment, &message));
                    }
                }
            }
            Frame::Build { kind, segment } => {
                let node = build(kind, &mut ids, &nodes)
                    .map_err(|message| path_error(&stack, &segment, &message))?;
                let id = NodeId(nodes.len() as u32);
                nodes.push(node);
                ids.push(id);
            }
        }
    }
    let root_id = ids
        .pop()
        .ok_or_else(|| EncodeError::Invalid("empty value".to_owned()))?;
    let graph = MontyGraph::from_nodes(nodes)
        .map_err(|e| EncodeError::Invalid(format!("internal: {e}")))?;
    object_from_graph(graph, root_id).map_err(|e| EncodeError::Invalid(format!("internal: {e}")))
}

/// Distinct Elixir terms can be equal in Python (`1`, `1.0` and `true`;
/// `{1}` and `{1.0}`), which would silently merge dict keys or set elements.
/// Refuse that instead.
fn check_collisions(nodes: &[MontyNode], ids: &[NodeId], what: &str) -> Result<(), String> {
    // Only numbers (and containers of them) can collide: distinct strings,
    // bytes, paths ... are distinct in Python too.
    let may_collide = |id: &NodeId| {
        matches!(
            nodes.get(id.index()),
            Some(
                MontyNode::Bool(_)
                    | MontyNode::Int(_)
                    | MontyNode::BigInt(_)
                    | MontyNode::Float(_)
                    | MontyNode::Tuple(_)
                    | MontyNode::FrozenSet(_)
            )
        )
    };
    if ids.iter().filter(|id| may_collide(id)).count() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashMap::with_capacity(ids.len());
    for id in ids.iter().filter(|id| may_collide(id)) {
        let key = canonical(nodes, *id);
        if let Some(previous) = seen.insert(key, *id) {
            return Err(format!(
                "{what} {} and {} are equal in Python and would collide",
                python_literal(nodes, previous),
                python_literal(nodes, *id)
            ));
        }
    }
    Ok(())
}

/// A string equal for values Python considers equal (numbers by value,
/// tuples and frozensets by content). Iterative, children first: keys can be
/// nested deeply, and this runs on a BEAM thread.
fn canonical(nodes: &[MontyNode], root: NodeId) -> String {
    let mut memo: std::collections::HashMap<NodeId, String> = std::collections::HashMap::new();
    let mut stack = vec![(root, false)];
    while let Some((id, expanded)) = stack.pop() {
        if memo.contains_key(&id) {
            continue;
        }
        let node = nodes.get(id.index());
        let children: &[NodeId] = match node {
            Some(MontyNode::Tuple(items) | MontyNode::FrozenSet(items)) => items,
            _ => &[],
        };
        if !expanded && !children.is_empty() {
            stack.push((id, true));
            stack.extend(children.iter().map(|child| (*child, false)));
            continue;
        }
        let child = |c: &NodeId| memo.get(c).cloned().unwrap_or_default();
        let text = match node {
            Some(MontyNode::Bool(b)) => format!("n{};", u8::from(*b)),
            Some(MontyNode::Int(i)) => format!("n{i};"),
            Some(MontyNode::BigInt(i)) => format!("n{i};"),
            Some(MontyNode::Float(f)) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1.0e38 => {
                format!("n{};", *f as i128)
            }
            Some(MontyNode::Float(f)) => format!("f{};", f.to_bits()),
            Some(MontyNode::String(s)) => format!("s{}:{s};", s.len()),
            Some(MontyNode::Tuple(items)) => {
                format!("({});", items.iter().map(child).collect::<String>())
            }
            Some(MontyNode::FrozenSet(items)) => {
                let mut parts: Vec<String> = items.iter().map(child).collect();
                parts.sort();
                format!("{{{}}};", parts.concat())
            }
            // Anything else is only equal to itself here: distinct terms stay distinct.
            _ => format!("o{};", id.index()),
        };
        memo.insert(id, text);
    }
    memo.remove(&root).unwrap_or_default()
}

fn python_literal(nodes: &[MontyNode], id: NodeId) -> String {
    match nodes.get(id.index()) {
        Some(MontyNode::Bool(true)) => "True".to_owned(),
        Some(MontyNode::Bool(false)) => "False".to_owned(),
        Some(MontyNode::Int(i)) => i.to_string(),
        Some(MontyNode::BigInt(i)) => i.to_string(),
        Some(MontyNode::Float(f)) => format!("{f:?}"),
        Some(MontyNode::Tuple(_)) => "a tuple".to_owned(),
        Some(MontyNode::FrozenSet(_)) => "a frozenset".to_owned(),
        _ => "a value".to_owned(),
    }
}

/// An error naming where in the input it happened: the pending `Build`
/// frames on the stack are the ancestors of the failing term.
fn path_error<'a>(stack: &[Frame<'a>], segment: &Segment<'a>, message: &str) -> EncodeError {
    let mut path: Vec<&Segment<'a>> = stack
        .iter()
        .filter_map(|frame| match frame {
            Frame::Build { segment, .. } => Some(segment),
            Frame::Visit { .. } => None,
        })
        .collect();
    path.push(segment);
    EncodeError::Invalid(format!("{message} at {}", render_path(&path)))
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
    })
}

enum VisitError {
    Invalid(String),
    Budget,
}

impl From<String> for VisitError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}

fn push_children<'a>(
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

fn utf8(term: Term<'_>, what: &str) -> Result<String, String> {
    let bin = term
        .decode::<Binary>()
        .map_err(|_| format!("{what} must be a binary, got {}", short_inspect(term)))?;
    std::str::from_utf8(bin.as_slice())
        .map(str::to_owned)
        .map_err(|_| format!("{what} is not valid UTF-8 (tag raw bytes as {{:bytes, binary}})"))
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

fn field<'a>(map: Term<'a>, key: Atom, what: &str) -> Result<Term<'a>, String> {
    map.map_get(key.encode(map.get_env()))
        .map_err(|_| format!("{what} lacks its {key:?} field"))
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

/// Python's `datetime` range: years 1 to 9999, real calendar days.
fn check_date(year: i32, month: u8, day: u8, term: Term<'_>) -> Result<(), VisitError> {
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

fn check_time(hour: u8, minute: u8, second: u8, us: u32, term: Term<'_>) -> Result<(), VisitError> {
    if hour > 23 || minute > 59 || second > 59 || us > 999_999 {
        Err(VisitError::Invalid(format!(
            "{} is not a valid time of day",
            short_inspect(term)
        )))
    } else {
        Ok(())
    }
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

fn visit_struct<'a>(
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
