//! Python exceptions and sandbox failures as `%ExMonty.Exception{}` terms.

use std::str::FromStr;

use monty_types::ExcType;
use rustler::{Atom, Encoder, Env, Term};
use strum::VariantNames;

use crate::atoms;
use crate::bindings::{GuestError, GuestException};
use crate::control::{Interruption, Trapped};
use crate::terms::make_struct;

/// The Elixir atom for a Python exception class: its name in snake_case,
/// with the module kept where the class name alone would be ambiguous
/// (`binascii.Error` -> `:binascii_error`, `decimal.Clamped` -> `:decimal_clamped`).
pub fn exc_atom_name(exc_type: ExcType) -> String {
    let full = exc_type.to_string();
    match full.as_str() {
        "json.JSONDecodeError" => return "json_decode_error".to_owned(),
        "tomllib.TOMLDecodeError" => return "toml_decode_error".to_owned(),
        "io.UnsupportedOperation" => return "unsupported_operation".to_owned(),
        "re.PatternError" => return "pattern_error".to_owned(),
        "decimal.DecimalException" => return "decimal_exception".to_owned(),
        _ => {}
    }
    match full.rsplit_once('.') {
        Some((module, class)) => {
            format!("{}_{}", module.trim_start_matches('_'), snake_case(class))
        }
        None => snake_case(&full),
    }
}

/// `ZeroDivisionError` -> `zero_division_error`, `OSError` -> `os_error`,
/// `IsADirectoryError` -> `is_a_directory_error`.
pub fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            let prev = chars[i - 1];
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            if prev.is_ascii_lowercase() || (prev.is_ascii_uppercase() && next_lower) {
                out.push('_');
            }
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The atom of an exception type. The set is bounded by `ExcType`'s variants.
pub fn exc_atom(exc_type: ExcType) -> AtomName {
    AtomName(exc_atom_name(exc_type))
}

/// An atom created on encode; only ever built from `ExcType` names.
pub struct AtomName(String);

impl Encoder for AtomName {
    fn encode<'a>(&self, env: Env<'a>) -> Term<'a> {
        match Atom::from_str(env, &self.0) {
            Ok(atom) => atom.encode(env),
            Err(_) => atoms::exception().encode(env),
        }
    }
}

/// The Python class for an atom such as `:value_error`.
pub fn exc_type_of_atom(env: Env<'_>, atom: Atom) -> Option<ExcType> {
    let wanted = atom.to_term(env).atom_to_string().ok()?;
    ExcType::VARIANTS
        .iter()
        .filter_map(|name| ExcType::from_str(name).ok())
        .find(|exc_type| exc_atom_name(*exc_type) == wanted)
}

/// `%ExMonty.Exception{}` for a Python exception raised in the guest.
pub fn python_exception<'a>(env: Env<'a>, exc: &GuestException) -> Term<'a> {
    let type_term = match ExcType::from_str(&exc.type_name) {
        Ok(exc_type) => exc_atom(exc_type).encode(env),
        Err(_) => atoms::exception().encode(env),
    };
    let frames: Vec<Term<'a>> = exc
        .traceback
        .iter()
        .map(|frame| {
            make_struct(
                env,
                atoms::elixir_exmonty_stack_frame(),
                &[
                    (atoms::filename(), frame.filename.encode(env)),
                    (atoms::line(), frame.line.encode(env)),
                    (atoms::column(), frame.column.encode(env)),
                    (atoms::end_line(), frame.end_line.encode(env)),
                    (atoms::end_column(), frame.end_column.encode(env)),
                    (atoms::name(), frame.name.encode(env)),
                    (atoms::source_line(), frame.source_line.encode(env)),
                ],
            )
            .unwrap_or_else(|_| atoms::nil().encode(env))
        })
        .collect();
    exception_struct(
        env,
        type_term,
        exc.message.as_deref().unwrap_or(""),
        frames.encode(env),
        &exc.type_name,
        Some(&exc.rendered),
        &exc.output,
    )
}

/// The fields of `%ExMonty.Exception{}` (see `lib/ex_monty/exception.ex`).
fn exception_struct<'a>(
    env: Env<'a>,
    type_term: Term<'a>,
    message: &str,
    traceback: Term<'a>,
    python_type: &str,
    rendered: Option<&str>,
    output: &str,
) -> Term<'a> {
    make_struct(
        env,
        atoms::elixir_exmonty_exception(),
        &[
            (atoms::__exception__(), true.encode(env)),
            (atoms::type_(), type_term),
            (atoms::message(), message.encode(env)),
            (atoms::traceback(), traceback),
            (atoms::python_type(), python_type.encode(env)),
            (atoms::rendered(), rendered.encode(env)),
            (atoms::output(), output.encode(env)),
            (atoms::diagnostics(), Term::list_new_empty(env)),
        ],
    )
    .unwrap_or_else(|_| atoms::error().encode(env))
}

/// `%ExMonty.Exception{}` of a Python class, raised by the host (no traceback).
pub fn exception_of<'a>(env: Env<'a>, exc_type: ExcType, message: &str) -> Term<'a> {
    exception_struct(
        env,
        exc_atom(exc_type).encode(env),
        message,
        Term::list_new_empty(env),
        &exc_type.to_string(),
        None,
        "",
    )
}

/// An ExMonty-level failure (not raised by Python code) as an exception struct.
pub fn sandbox_exception<'a>(
    env: Env<'a>,
    kind: Atom,
    python_type: &str,
    message: &str,
) -> Term<'a> {
    exception_struct(
        env,
        kind.encode(env),
        message,
        Term::list_new_empty(env),
        python_type,
        None,
        "",
    )
}

/// `{:error, %ExMonty.Exception{}}` for a guest-level error.
pub fn guest_error<'a>(env: Env<'a>, error: &GuestError) -> Term<'a> {
    let exception = match error {
        GuestError::Python(exc) => python_exception(env, exc),
        GuestError::Invalid(message) => {
            sandbox_exception(env, atoms::invalid_input(), "ValueError", message)
        }
    };
    (atoms::error(), exception).encode(env)
}

/// `{:error, %ExMonty.Exception{}}` for a trap: the instance is gone, the
/// caller gets a precise reason, and the next execution is unaffected.
pub fn trap_error<'a>(env: Env<'a>, trapped: &Trapped) -> Term<'a> {
    let (kind, python_type, message) = match trapped.interruption {
        Some(Interruption::Deadline) => (
            atoms::timeout_error(),
            "TimeoutError",
            "execution exceeded its time limit (stopped by the sandbox)".to_owned(),
        ),
        Some(Interruption::Cancelled) => (
            atoms::cancelled(),
            "RuntimeError",
            "execution was cancelled".to_owned(),
        ),
        None if trapped.allocation_limit => (
            atoms::memory_error(),
            "MemoryError",
            "execution exceeded its allocation limit (max_allocations)".to_owned(),
        ),
        None if trapped.memory_exhausted => (
            atoms::memory_error(),
            "MemoryError",
            format!(
                "execution exceeded its memory limit (stopped by the sandbox: {})",
                without_paths(&trapped.detail)
            ),
        ),
        None if trapped.stack_overflow => (
            atoms::sandbox_crashed(),
            "RecursionError",
            "the interpreter exhausted its stack inside the sandbox (a value or expression nested too deeply)"
                .to_owned(),
        ),
        None => (
            atoms::sandbox_crashed(),
            "RuntimeError",
            format!(
                "the interpreter crashed inside the sandbox: {}",
                without_paths(&trapped.detail)
            ),
        ),
    };
    (
        atoms::error(),
        sandbox_exception(env, kind, python_type, &message),
    )
        .encode(env)
}

/// `{:error, %ExMonty.Exception{}}` for one of ExMonty's own error kinds.
pub fn sandbox_error<'a>(env: Env<'a>, kind: Atom, message: &str) -> Term<'a> {
    (
        atoms::error(),
        sandbox_exception(env, kind, sandbox_python_type(kind), message),
    )
        .encode(env)
}

/// The Python class name ExMonty reports for one of its own error kinds.
pub fn sandbox_python_type(kind: Atom) -> &'static str {
    if kind == atoms::invalid_input() {
        "ValueError"
    } else if kind == atoms::timeout_error() {
        "TimeoutError"
    } else if kind == atoms::memory_error() {
        "MemoryError"
    } else {
        "RuntimeError"
    }
}

/// Removes file paths (panic locations, build directories) from a crash
/// detail: they describe the machine that built ExMonty, not the error.
pub fn without_paths(text: &str) -> String {
    text.split(' ')
        .map(|word| {
            let path_like = word.contains(".rs:")
                || word.contains(".rs ")
                || word.ends_with(".rs")
                || (word.contains('/') && (word.starts_with('/') || word.contains("/src/")));
            if path_like {
                "<path>"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_details_carry_no_paths() {
        let detail = "wasm trap: unreachable: panicked at /root/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/monty-types-1.4.0/src/graph.rs:459:13: invalid node";
        let cleaned = without_paths(detail);
        assert!(!cleaned.contains("/root"), "{cleaned}");
        assert!(!cleaned.contains("graph.rs"), "{cleaned}");
        assert!(cleaned.contains("invalid node"));
        assert!(without_paths("at library/std/src/panicking.rs:1:2").contains("<path>"));
    }

    #[test]
    fn snake_case_names() {
        assert_eq!(
            exc_atom_name(ExcType::ZeroDivisionError),
            "zero_division_error"
        );
        assert_eq!(exc_atom_name(ExcType::OSError), "os_error");
        assert_eq!(
            exc_atom_name(ExcType::IsADirectoryError),
            "is_a_directory_error"
        );
        assert_eq!(exc_atom_name(ExcType::JsonDecodeError), "json_decode_error");
        assert_eq!(exc_atom_name(ExcType::BinasciiError), "binascii_error");
        assert_eq!(exc_atom_name(ExcType::CsvError), "csv_error");
        assert_eq!(
            exc_atom_name(ExcType::DecimalInvalidOperation),
            "decimal_invalid_operation"
        );
    }

    #[test]
    fn atom_names_are_unique() {
        let mut names: Vec<String> = ExcType::VARIANTS
            .iter()
            .filter_map(|n| ExcType::from_str(n).ok())
            .map(exc_atom_name)
            .collect();
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), total);
    }
}
