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
/// Nesting rendered before a nested term is shown as "...".
const SHOWN_DEPTH: usize = 8;
/// The VM's printer, for pids, references, functions and ports (small
/// terms of fixed size), into a buffer of `VM_BUFFER` bytes.
const VM_FORMAT: &[u8] = b"%.64T\0";
const VM_BUFFER: usize = 256;

/// A bounded rendering of a term for error messages, close to Elixir's
/// `inspect`. The work is bounded by what is shown, not by the term: lists,
/// tuples and maps are walked only as far as the text reaches, a binary is
/// read from its first bytes, an integer beyond 256 bits is described. (The
/// VM's printer, rustler's `Debug`, formats the whole term, a huge integer
/// in quadratic time, into a buffer twice its size, on the caller's
/// scheduler.)
pub fn short_inspect(term: Term<'_>) -> String {
    let mut text = String::new();
    render(term, &mut text, 0);
    if text.len() > SHOWN {
        let mut cut = SHOWN - 3;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("...");
    }
    text
}

/// Whether `text` holds more than can be shown: rendering stops there.
fn full(text: &str) -> bool {
    text.len() > SHOWN
}

fn render(term: Term<'_>, text: &mut String, depth: usize) {
    if full(text) {
        return;
    }
    match term.get_type() {
        TermType::Binary => match term.decode::<Binary>() {
            Ok(bin) => binary_text(bin.as_slice(), text),
            Err(_) => text.push_str("(a bitstring)"),
        },
        TermType::Integer => integer_text(term, text),
        TermType::Float => match term.decode::<f64>() {
            Ok(f) => text.push_str(&format!("{f:?}")),
            Err(_) => text.push_str("(a float)"),
        },
        TermType::Atom => match term.atom_to_string() {
            Ok(name) if name == "nil" || name == "true" || name == "false" => text.push_str(&name),
            // A module, as Elixir shows it.
            Ok(name) if name.starts_with("Elixir.") => text.push_str(&name["Elixir.".len()..]),
            Ok(name) => {
                text.push(':');
                text.push_str(&name);
            }
            Err(_) => text.push_str("(an atom)"),
        },
        _ if depth >= SHOWN_DEPTH => text.push_str("..."),
        TermType::List => list_text(term, text, depth),
        TermType::Tuple => tuple_text(term, text, depth),
        TermType::Map => map_text(term, text, depth),
        TermType::Pid => {
            text.push_str("#PID");
            text.push_str(&vm_text(term));
        }
        TermType::Ref => {
            let vm = vm_text(term);
            let inner = vm.trim_start_matches("#Ref<").trim_end_matches('>');
            text.push_str(&format!("#Reference<{inner}>"));
        }
        TermType::Fun => {
            let vm = vm_text(term);
            let inner = vm.trim_start_matches("#Fun<").trim_end_matches('>');
            text.push_str(&format!("#Function<{inner}>"));
        }
        TermType::Port => {
            text.push_str("#Port");
            text.push_str(vm_text(term).trim_start_matches("#Port"));
        }
        _ => text.push_str(&vm_text(term)),
    }
}

/// `[a, b | tail]`, as far as it can be shown.
fn list_text(term: Term<'_>, text: &mut String, depth: usize) {
    text.push('[');
    let mut rest = term;
    let mut first = true;
    while let Ok((head, tail)) = rest.list_get_cell() {
        if full(text) {
            return;
        }
        if !first {
            text.push_str(", ");
        }
        first = false;
        render(head, text, depth + 1);
        rest = tail;
    }
    if !rest.is_empty_list() {
        text.push_str(" | ");
        render(rest, text, depth + 1);
    }
    text.push(']');
}

/// `{a, b}`, as far as it can be shown.
fn tuple_text(term: Term<'_>, text: &mut String, depth: usize) {
    let env = term.get_env();
    // SAFETY: the slice is the tuple's own elements, valid while `term` is
    // (the environment outlives this call); nothing is copied.
    let Ok(elements) =
        (unsafe { rustler::wrapper::tuple::get_tuple(env.as_c_arg(), term.as_c_arg()) })
    else {
        text.push_str("(a tuple)");
        return;
    };
    text.push('{');
    for (i, element) in elements.iter().enumerate() {
        if full(text) {
            return;
        }
        if i > 0 {
            text.push_str(", ");
        }
        // SAFETY: an element of a tuple of this environment.
        render(unsafe { Term::new(env, *element) }, text, depth + 1);
    }
    text.push('}');
}

/// `%{k => v}`, or `%Module{k: v}` for a struct, as far as it can be shown.
/// Entries come in the VM's order (a small map's keys sorted).
fn map_text(term: Term<'_>, text: &mut String, depth: usize) {
    let env = term.get_env();
    let module = term
        .map_get(atoms::__struct__().encode(env))
        .ok()
        .and_then(|module| module.atom_to_string().ok());
    match &module {
        Some(module) => {
            text.push('%');
            text.push_str(module.strip_prefix("Elixir.").unwrap_or(module));
            text.push('{');
        }
        None => text.push_str("%{"),
    }
    let Some(entries) = rustler::types::map::MapIterator::new(term) else {
        text.push('}');
        return;
    };
    let mut first = true;
    for (key, value) in entries {
        if full(text) {
            return;
        }
        let struct_key = module.is_some() && key.decode::<Atom>().ok() == Some(atoms::__struct__());
        if struct_key {
            continue;
        }
        if !first {
            text.push_str(", ");
        }
        first = false;
        match key.atom_to_string() {
            Ok(name) if module.is_some() => {
                text.push_str(&name);
                text.push_str(": ");
            }
            _ => {
                render(key, text, depth + 1);
                text.push_str(" => ");
            }
        }
        render(value, text, depth + 1);
    }
    text.push('}');
}

/// A binary as Elixir shows it, a string when it is UTF-8, else its bytes.
/// Only its first bytes are read (a long binary whose start is text shows as
/// text).
fn binary_text(bytes: &[u8], text: &mut String) {
    let window = &bytes[..bytes.len().min(SHOWN + 4)];
    let string = match std::str::from_utf8(window) {
        Ok(string) => Some(string),
        // A character cut by the window's end (not by the binary's).
        Err(e) if e.error_len().is_none() && window.len() < bytes.len() => {
            std::str::from_utf8(&window[..e.valid_up_to()]).ok()
        }
        Err(_) => None,
    };
    match string {
        Some(string) => {
            let mut end = string.len().min(SHOWN);
            while !string.is_char_boundary(end) {
                end -= 1;
            }
            let shown = format!("{:?}", &string[..end]);
            if end < bytes.len() {
                // Without its closing quote, padded past `SHOWN`: the cut
                // in `short_inspect` (at `SHOWN - 3`, before the padding,
                // which starts past it) marks it with "...".
                text.push_str(&shown[..shown.len() - 1]);
                text.push_str(&" ".repeat(SHOWN));
            } else {
                text.push_str(&shown);
            }
        }
        None => {
            text.push_str("<<");
            for (i, byte) in bytes.iter().enumerate() {
                if i > 0 {
                    text.push_str(", ");
                }
                if full(text) {
                    return;
                }
                text.push_str(&byte.to_string());
            }
            text.push_str(">>");
        }
    }
}

/// An integer in decimal; one beyond 256 bits is described instead of read
/// (reading copies it whole; printing it in decimal takes time quadratic in
/// its size). The VM compares integers of different sizes by their sizes.
fn integer_text(term: Term<'_>, text: &mut String) {
    if let Ok(i) = term.decode::<i64>() {
        text.push_str(&i.to_string());
        return;
    }
    let env = term.get_env();
    let limit = num_bigint::BigInt::from(1u8) << 256u32;
    if term > limit.encode(env) {
        text.push_str("(an integer of more than 256 bits)");
    } else if term < (-limit).encode(env) {
        text.push_str("(a negative integer of more than 256 bits)");
    } else {
        match term.decode::<num_bigint::BigInt>() {
            Ok(big) => text.push_str(&big.to_string()),
            Err(_) => text.push_str("(an integer)"),
        }
    }
}

/// The VM's own rendering of a small term (a pid, reference, function or
/// port), bounded by `VM_FORMAT` and `VM_BUFFER`.
fn vm_text(term: Term<'_>) -> String {
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
    match usize::try_from(written) {
        Ok(written) => String::from_utf8_lossy(&buffer[..written.min(VM_BUFFER - 1)]).into_owned(),
        Err(_) => "(a term)".to_owned(),
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

    fn shown(bytes: &[u8]) -> String {
        let mut text = String::new();
        binary_text(bytes, &mut text);
        text
    }

    #[test]
    fn a_short_binary_shows_whole() {
        assert_eq!(shown(b"abc"), "\"abc\"");
        assert_eq!(shown(b"a\"b"), "\"a\\\"b\"");
        assert_eq!(shown(&[97, 98, 0xFF]), "<<97, 98, 255>>");
        // Cut inside a character at the binary's end: not UTF-8.
        assert_eq!(shown(&[97, 0xE2, 0x82]), "<<97, 226, 130>>");
    }

    #[test]
    fn a_long_binary_is_read_from_its_start_only() {
        let text = "é".repeat(10_000);
        let rendered = shown(text.as_bytes());
        assert!(rendered.starts_with("\"éé"));
        assert!(
            rendered.len() > SHOWN,
            "past the cut, so the caller marks it"
        );
        assert!(rendered.len() < 3 * SHOWN);

        let rendered = shown(&vec![0xFF; 10_000]);
        assert!(rendered.starts_with("<<255, 255, "));
        assert!(rendered.len() > SHOWN && rendered.len() < 2 * SHOWN);
    }

    #[test]
    fn a_character_cut_by_the_window_is_not_mistaken_for_bad_bytes() {
        // 83 ASCII bytes, then a 2-byte character straddling the window.
        let mut bytes = vec![b'a'; SHOWN + 3];
        bytes.extend_from_slice("é".as_bytes());
        bytes.extend_from_slice(&[b'b'; 100]);
        assert!(shown(&bytes).starts_with("\"aaa"));
    }
}
