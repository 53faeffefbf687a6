//! Small helpers for building and reading terms, shared by the value
//! conversions, exceptions and replies. A leaf: it depends on nothing else
//! in the crate but the atoms.

use rustler::{Atom, Binary, Encoder, Env, NewBinary, Term, TermType};

use crate::atoms;

/// A string as an Elixir binary. Built in the caller's heap when small (as
/// `binary/2`): rustler's `str` encoder always allocates a reference-counted
/// binary, which costs an empty `output` more than the rest of its reply.
pub(crate) fn string<'a>(env: Env<'a>, s: &str) -> Term<'a> {
    binary(env, s.as_bytes())
}

pub(crate) fn binary<'a>(env: Env<'a>, bytes: &[u8]) -> Term<'a> {
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

pub(crate) fn utf8(term: Term<'_>, what: &str) -> Result<String, String> {
    let bin = term
        .decode::<Binary>()
        .map_err(|_| format!("{what} must be a binary, got {}", short_inspect(term)))?;
    std::str::from_utf8(bin.as_slice())
        .map(str::to_owned)
        .map_err(|_| format!("{what} is not valid UTF-8 (tag raw bytes as {{:bytes, binary}})"))
}

pub(crate) fn field<'a>(map: Term<'a>, key: Atom, what: &str) -> Result<Term<'a>, String> {
    map.map_get(key.encode(map.get_env()))
        .map_err(|_| format!("{what} lacks its {key:?} field"))
}
