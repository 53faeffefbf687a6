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

/// Bytes of text an error message shows of a term (longer is cut, "...").
const SHOWN: usize = 80;
/// The VM's printer, for other terms: at most this many elements (list
/// items, tuple or map entries, bytes of a nested binary), into a buffer of
/// `VM_BUFFER` bytes.
const VM_FORMAT: &[u8] = b"%.64T\0";
const VM_BUFFER: usize = 256;

/// A bounded rendering of a term for error messages, close to Elixir's
/// `inspect`. The work is bounded by what is shown, not by the term: a bad
/// input of a gigabyte costs its error message no more than a small one
/// (rustler's `Debug` formats the whole term, twice, into a buffer twice its
/// size, on the caller's scheduler).
pub fn short_inspect(term: Term<'_>) -> String {
    let (mut text, more) = match term.get_type() {
        TermType::Binary => match term.decode::<Binary>() {
            Ok(bin) => binary_text(bin.as_slice()),
            Err(_) => vm_text(term),
        },
        TermType::Integer => (integer_text(term), false),
        TermType::Atom => match term.atom_to_string() {
            Ok(name) if name == "nil" || name == "true" || name == "false" => (name, false),
            Ok(name) => (format!(":{name}"), false),
            Err(_) => vm_text(term),
        },
        TermType::Pid => (format!("#PID{}", vm_text(term).0), false),
        TermType::Ref => (
            format!(
                "#Reference<{}>",
                vm_text(term)
                    .0
                    .trim_start_matches("#Ref<")
                    .trim_end_matches('>')
            ),
            false,
        ),
        TermType::Fun => (
            format!(
                "#Function<{}>",
                vm_text(term)
                    .0
                    .trim_start_matches("#Fun<")
                    .trim_end_matches('>')
            ),
            false,
        ),
        TermType::Port => (
            format!("#Port{}", vm_text(term).0.trim_start_matches("#Port")),
            false,
        ),
        _ => vm_text(term),
    };
    if more || text.len() > SHOWN {
        let mut cut = text.len().min(SHOWN - 3);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// A binary as Elixir shows it, a string when it is UTF-8, else its bytes.
/// Only its first bytes are read (a binary whose start is text shows as
/// text). The flag: whether some was left out.
fn binary_text(bytes: &[u8]) -> (String, bool) {
    let window = &bytes[..bytes.len().min(SHOWN + 4)];
    let text = match std::str::from_utf8(window) {
        Ok(text) => Some(text),
        // A character cut by the window's end.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&window[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(text) => {
            let mut end = text.len().min(SHOWN);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            (format!("{:?}", &text[..end]), end < bytes.len())
        }
        None => {
            let shown: Vec<String> = bytes.iter().take(SHOWN / 3).map(u8::to_string).collect();
            let tail = if bytes.len() > SHOWN / 3 { ", ..." } else { "" };
            (format!("<<{}{tail}>>", shown.join(", ")), false)
        }
    }
}

/// An integer in decimal; one too large to show is described by its size
/// (a huge integer takes time quadratic in its size to print in decimal).
fn integer_text(term: Term<'_>) -> String {
    if let Ok(i) = term.decode::<i64>() {
        return i.to_string();
    }
    match term.decode::<num_bigint::BigInt>() {
        Ok(big) if big.bits() <= 256 => big.to_string(),
        Ok(big) => format!("(an integer of {} bits)", big.bits()),
        Err(_) => "(an integer)".to_owned(),
    }
}

/// The VM's own rendering, bounded by `VM_FORMAT`'s element count and
/// `VM_BUFFER`. The flag: whether some was left out.
fn vm_text(term: Term<'_>) -> (String, bool) {
    let mut buffer = [0u8; VM_BUFFER];
    // SAFETY: the buffer outlives the call and its length is passed, so the
    // VM writes at most that many bytes, NUL included; the format is
    // NUL-terminated and takes one term, which is given.
    let written = unsafe {
        rustler::enif_snprintf!(
            buffer.as_mut_ptr().cast::<rustler::sys::c_char>(),
            buffer.len(),
            VM_FORMAT.as_ptr().cast::<rustler::sys::c_char>(),
            term.as_c_arg()
        )
    };
    let written = usize::try_from(written).unwrap_or(0);
    let text = String::from_utf8_lossy(&buffer[..written.min(VM_BUFFER - 1)]);
    // The printer ends with "... " when it ran out of elements.
    match text.strip_suffix("... ") {
        Some(shown) => (shown.to_owned(), true),
        None => (text.into_owned(), written >= VM_BUFFER),
    }
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

#[cfg(test)]
mod tests {
    use super::{binary_text, SHOWN};

    #[test]
    fn a_short_binary_shows_whole() {
        assert_eq!(binary_text(b"abc"), ("\"abc\"".to_owned(), false));
        assert_eq!(binary_text(b"a\"b"), ("\"a\\\"b\"".to_owned(), false));
        assert_eq!(
            binary_text(&[97, 98, 0xFF]),
            ("<<97, 98, 255>>".to_owned(), false)
        );
    }

    #[test]
    fn a_long_binary_shows_its_start_only() {
        let text = "é".repeat(10_000);
        let (shown, more) = binary_text(text.as_bytes());
        assert!(more);
        assert!(shown.starts_with("\"éé"));
        assert!(shown.len() <= SHOWN + 2);

        let bytes = vec![0xFF; 10_000];
        let (shown, more) = binary_text(&bytes);
        assert!(!more, "the byte form marks its own cut");
        assert!(shown.starts_with("<<255, 255, "));
        assert!(shown.ends_with(", ...>>"));
        assert!(shown.len() < 2 * SHOWN);
    }

    #[test]
    fn a_character_cut_by_the_window_is_not_mistaken_for_bad_bytes() {
        // 83 ASCII bytes, then a 2-byte character that straddles the window.
        let mut bytes = vec![b'a'; SHOWN + 3];
        bytes.extend_from_slice("é".as_bytes());
        bytes.extend_from_slice(&[b'b'; 100]);
        let (shown, more) = binary_text(&bytes);
        assert!(more);
        assert!(shown.starts_with("\"aaa"));
    }
}
