//! Python values as JSON text: the language-neutral codec behind the
//! `ex-monty:sandbox/values` interface. The shape is documented in
//! `guest/README.md` ("Values as JSON"); keep the two in step.
//!
//! Both directions are iterative (explicit stacks), so a value or a JSON text
//! nested 100 000 levels deep converts without touching the call stack. The
//! output is capped ([`MAX_JSON_BYTES`]) because a value whose sub-objects are
//! shared (`a = [x, x]` repeated) is written out in full at every reference.

use monty_types::unstable::{
    graph_parts, object_from_graph, ClassTypeNode, MontyGraph, MontyNode, NodeId,
};
use monty_types::{
    BuiltinsFunctions, ExcType, FileMode, MontyComplex, MontyDate, MontyDateTime, MontyFileHandle,
    MontyObject, MontyTime, MontyTimeDelta, MontyTimeZone, MontyType, MontyUuid,
};
use num_bigint::BigInt;
use serde::de::DeserializeOwned;

/// Largest JSON text `to_json` produces.
pub const MAX_JSON_BYTES: usize = 64 * 1024 * 1024;
/// Most decimal digits of an integer in either direction (decimal conversion
/// is quadratic; CPython refuses above 4 300 digits by default).
pub const MAX_INT_DIGITS: usize = 100_000;
/// Largest integer written as a plain JSON number (exact in an IEEE double).
const MAX_SAFE_INT: i64 = (1 << 53) - 1;

// ---------------------------------------------------------------- to JSON

enum Task {
    Node(NodeId),
    Pair(NodeId, NodeId),
    Raw(&'static str),
}

/// Writes `value` as JSON text.
pub fn to_json(value: &MontyObject) -> Result<String, String> {
    let (graph, root) = graph_parts(value);
    let mut out = String::new();
    let mut stack = vec![Task::Node(root)];
    while let Some(task) = stack.pop() {
        match task {
            Task::Raw(text) => out.push_str(text),
            Task::Pair(key, value) => {
                out.push('[');
                stack.push(Task::Raw("]"));
                stack.push(Task::Node(value));
                stack.push(Task::Raw(","));
                stack.push(Task::Node(key));
            }
            Task::Node(id) => write_node(graph.node(id), &mut out, &mut stack)?,
        }
        if out.len() > MAX_JSON_BYTES {
            return Err(format!(
                "value-to-json: the JSON text exceeds {MAX_JSON_BYTES} bytes (shared sub-objects are written out at every reference)"
            ));
        }
    }
    Ok(out)
}

fn push_items(stack: &mut Vec<Task>, close: &'static str, items: &[NodeId]) {
    stack.push(Task::Raw(close));
    for (index, id) in items.iter().enumerate().rev() {
        stack.push(Task::Node(*id));
        if index > 0 {
            stack.push(Task::Raw(","));
        }
    }
}

fn push_pairs(stack: &mut Vec<Task>, close: &'static str, pairs: &[(NodeId, NodeId)]) {
    stack.push(Task::Raw(close));
    for (index, (key, value)) in pairs.iter().enumerate().rev() {
        stack.push(Task::Pair(*key, *value));
        if index > 0 {
            stack.push(Task::Raw(","));
        }
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

fn serde_text<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| format!("value-to-json: {e}"))
}

fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str(r#"{"float":"nan"}"#);
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 {
            r#"{"float":"inf"}"#
        } else {
            r#"{"float":"-inf"}"#
        });
    } else {
        // Debug prints the shortest text that reads back to the same bits,
        // always with a `.` or an exponent, so it never reads as an int.
        out.push_str(&format!("{f:?}"));
    }
}

fn uuid_hex(id: &MontyUuid) -> String {
    id.as_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

fn write_node(node: &MontyNode, out: &mut String, stack: &mut Vec<Task>) -> Result<(), String> {
    match node {
        MontyNode::None => out.push_str("null"),
        MontyNode::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        MontyNode::Int(i) if (-MAX_SAFE_INT..=MAX_SAFE_INT).contains(i) => {
            out.push_str(&i.to_string())
        }
        MontyNode::Int(i) => out.push_str(&format!(r#"{{"int":"{i}"}}"#)),
        MontyNode::BigInt(i) => {
            // bits * log10(2) < digits + 1
            if i.bits() / 10 * 3 > MAX_INT_DIGITS as u64 {
                return Err(format!(
                    "value-to-json: integer has more than {MAX_INT_DIGITS} digits"
                ));
            }
            out.push_str(&format!(r#"{{"int":"{i}"}}"#));
        }
        MontyNode::Float(f) => write_float(out, *f),
        MontyNode::Complex(c) => {
            out.push_str(r#"{"complex":["#);
            write_float(out, c.real);
            out.push(',');
            write_float(out, c.imag);
            out.push_str("]}");
        }
        MontyNode::String(s) => out.push_str(&json_string(s)),
        MontyNode::Bytes(b) => out.push_str(&format!(r#"{{"bytes":"{}"}}"#, base64_encode(b))),
        MontyNode::Date(d) => out.push_str(&format!(r#"{{"date":{}}}"#, serde_text(d)?)),
        MontyNode::DateTime(d) => out.push_str(&format!(r#"{{"datetime":{}}}"#, serde_text(d)?)),
        MontyNode::Time(t) => out.push_str(&format!(r#"{{"time":{}}}"#, serde_text(t)?)),
        MontyNode::TimeDelta(t) => out.push_str(&format!(r#"{{"timedelta":{}}}"#, serde_text(t)?)),
        MontyNode::TimeZone(t) => out.push_str(&format!(r#"{{"timezone":{}}}"#, serde_text(t)?)),
        MontyNode::Decimal(d) => out.push_str(&format!(r#"{{"decimal":{}}}"#, json_string(d))),
        MontyNode::Path(p) => out.push_str(&format!(r#"{{"path":{}}}"#, json_string(p))),
        MontyNode::Repr(r) => out.push_str(&format!(r#"{{"repr":{}}}"#, json_string(r))),
        MontyNode::Cycle(c) => out.push_str(&format!(r#"{{"cycle":{}}}"#, json_string(c))),
        MontyNode::Ellipsis => out.push_str(r#"{"ellipsis":null}"#),
        MontyNode::NotImplemented => out.push_str(r#"{"notimplemented":null}"#),
        MontyNode::Exception { exc_type, arg } => out.push_str(&format!(
            r#"{{"exception":{{"type":{},"arg":{}}}}}"#,
            serde_text(exc_type)?,
            arg.as_deref()
                .map_or_else(|| "null".to_owned(), json_string)
        )),
        MontyNode::Type(t) => {
            let name: &'static str = (*t).into();
            out.push_str(&format!(r#"{{"type":{}}}"#, json_string(name)));
        }
        MontyNode::BuiltinFunction(f) => {
            out.push_str(&format!(r#"{{"builtin":{}}}"#, serde_text(f)?))
        }
        MontyNode::FileHandle(fh) => out.push_str(&format!(
            r#"{{"file":{{"path":{},"mode":{},"position":{}}}}}"#,
            json_string(&fh.path),
            serde_text(&fh.mode)?,
            fh.position
        )),
        MontyNode::Function { name, docstring } => out.push_str(&format!(
            r#"{{"function":{{"name":{},"docstring":{}}}}}"#,
            json_string(name),
            docstring
                .as_deref()
                .map_or_else(|| "null".to_owned(), json_string)
        )),
        MontyNode::List(ids) => {
            out.push('[');
            push_items(stack, "]", ids);
        }
        MontyNode::Tuple(ids) => {
            out.push_str(r#"{"tuple":["#);
            push_items(stack, "]}", ids);
        }
        MontyNode::Set(ids) => {
            out.push_str(r#"{"set":["#);
            push_items(stack, "]}", ids);
        }
        MontyNode::FrozenSet(ids) => {
            out.push_str(r#"{"frozenset":["#);
            push_items(stack, "]}", ids);
        }
        MontyNode::NamedTuple {
            type_name,
            field_names,
            values,
        } => {
            out.push_str(&format!(
                r#"{{"namedtuple":{{"type":{},"fields":{},"values":["#,
                json_string(type_name),
                serde_text(field_names)?
            ));
            push_items(stack, "]}}", values);
        }
        MontyNode::Dict(pairs) => {
            out.push_str(r#"{"dict":["#);
            push_pairs(stack, "]}", pairs);
        }
        MontyNode::ClassType(class) => {
            out.push_str(&format!(
                r#"{{"class":{{"name":{},"id":"{}","host_defined":{},"dataclass":{},"attrs":["#,
                json_string(&class.name),
                uuid_hex(&class.id),
                class.host_defined,
                class.is_dataclass
            ));
            push_pairs(stack, "]}}", &class.attrs);
        }
        MontyNode::ClassInstance {
            class_type,
            instance_id,
            attrs,
        } => {
            out.push_str(&format!(
                r#"{{"instance":{{"id":"{}","class":"#,
                uuid_hex(instance_id)
            ));
            push_pairs(stack, "]}}", attrs);
            stack.push(Task::Raw(r#","attrs":["#));
            stack.push(Task::Node(*class_type));
        }
        MontyNode::Module { name, id, attrs } => {
            out.push_str(&format!(
                r#"{{"module":{{"name":{},"id":"{}","attrs":["#,
                json_string(name),
                uuid_hex(id)
            ));
            push_pairs(stack, "]}}", attrs);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- JSON parser

/// A parsed JSON text: a post-order arena (children before their container).
#[derive(Debug)]
enum J {
    Null,
    Bool(bool),
    /// The number's text, checked against the JSON grammar.
    Num(String),
    Str(String),
    Arr(Vec<usize>),
    Obj(Vec<(String, usize)>),
}

enum Open {
    Arr(Vec<usize>),
    Obj(Vec<(String, usize)>, String),
}

struct Parser<'a> {
    text: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn error<T>(&self, what: &str) -> Result<T, String> {
        Err(format!(
            "value-from-json: invalid JSON at byte {}: {what}",
            self.pos
        ))
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str) -> Result<(), String> {
        if self.text[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(())
        } else {
            self.error("expected a value")
        }
    }

    fn key(&mut self) -> Result<String, String> {
        self.ws();
        if self.peek() != Some(b'"') {
            return self.error("expected a string key");
        }
        let key = self.string()?;
        self.ws();
        if !self.eat(b':') {
            return self.error("expected ':'");
        }
        Ok(key)
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.error("bad number"),
        }
        if self.eat(b'.') && self.digits() == 0 {
            return self.error("bad number");
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if self.digits() == 0 {
                return self.error("bad number");
            }
        }
        // The grammar above only admits ASCII.
        Ok(String::from_utf8_lossy(&self.text[start..self.pos]).into_owned())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let Some(digits) = self.text.get(self.pos..self.pos + 4) else {
            return self.error("bad \\u escape");
        };
        let Some(value) = std::str::from_utf8(digits)
            .ok()
            .and_then(|d| u32::from_str_radix(d, 16).ok())
        else {
            return self.error("bad \\u escape");
        };
        self.pos += 4;
        Ok(value)
    }

    fn string(&mut self) -> Result<String, String> {
        self.pos += 1; // the opening quote
        let mut out = Vec::new();
        loop {
            let Some(byte) = self.peek() else {
                return self.error("unterminated string");
            };
            self.pos += 1;
            match byte {
                b'"' => break,
                b'\\' => {
                    let Some(escape) = self.peek() else {
                        return self.error("unterminated string");
                    };
                    self.pos += 1;
                    let simple = match escape {
                        b'"' => Some(b'"'),
                        b'\\' => Some(b'\\'),
                        b'/' => Some(b'/'),
                        b'b' => Some(8),
                        b'f' => Some(12),
                        b'n' => Some(b'\n'),
                        b'r' => Some(b'\r'),
                        b't' => Some(b'\t'),
                        b'u' => None,
                        _ => return self.error("bad escape"),
                    };
                    if let Some(b) = simple {
                        out.push(b);
                        continue;
                    }
                    let mut code = self.hex4()?;
                    if (0xD800..0xDC00).contains(&code) {
                        if !(self.eat(b'\\') && self.eat(b'u')) {
                            return self.error("lone surrogate (Python str cannot hold it here)");
                        }
                        let low = self.hex4()?;
                        if !(0xDC00..0xE000).contains(&low) {
                            return self.error("lone surrogate");
                        }
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                    }
                    let Some(c) = char::from_u32(code) else {
                        return self.error("lone surrogate");
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return self.error("control character in string"),
                _ => out.push(byte),
            }
        }
        // The input is a &str and escapes produce whole characters.
        String::from_utf8(out).or_else(|_| self.error("invalid UTF-8"))
    }
}

/// Parses JSON text into an arena, returning it and the root index.
fn parse(text: &str) -> Result<(Vec<J>, usize), String> {
    let mut p = Parser {
        text: text.as_bytes(),
        pos: 0,
    };
    let mut nodes: Vec<J> = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    loop {
        p.ws();
        let value = match p.peek() {
            Some(b'[') => {
                p.pos += 1;
                p.ws();
                if p.eat(b']') {
                    J::Arr(Vec::new())
                } else {
                    stack.push(Open::Arr(Vec::new()));
                    continue;
                }
            }
            Some(b'{') => {
                p.pos += 1;
                p.ws();
                if p.eat(b'}') {
                    J::Obj(Vec::new())
                } else {
                    let key = p.key()?;
                    stack.push(Open::Obj(Vec::new(), key));
                    continue;
                }
            }
            Some(b'"') => J::Str(p.string()?),
            Some(b't') => p.literal("true").map(|()| J::Bool(true))?,
            Some(b'f') => p.literal("false").map(|()| J::Bool(false))?,
            Some(b'n') => p.literal("null").map(|()| J::Null)?,
            Some(b'-' | b'0'..=b'9') => J::Num(p.number()?),
            _ => return p.error("expected a value"),
        };
        nodes.push(value);
        let mut done = nodes.len() - 1;
        // Attach the finished value, closing every container it completes.
        loop {
            match stack.last_mut() {
                None => {
                    p.ws();
                    if p.pos != p.text.len() {
                        return p.error("trailing characters");
                    }
                    return Ok((nodes, done));
                }
                Some(Open::Arr(items)) => {
                    items.push(done);
                    p.ws();
                    if p.eat(b',') {
                        break;
                    }
                    if !p.eat(b']') {
                        return p.error("expected ',' or ']'");
                    }
                    let Some(Open::Arr(items)) = stack.pop() else {
                        return p.error("internal: stack");
                    };
                    nodes.push(J::Arr(items));
                }
                Some(Open::Obj(fields, key)) => {
                    fields.push((std::mem::take(key), done));
                    p.ws();
                    if p.eat(b',') {
                        *key = p.key()?;
                        break;
                    }
                    if !p.eat(b'}') {
                        return p.error("expected ',' or '}'");
                    }
                    let Some(Open::Obj(fields, _)) = stack.pop() else {
                        return p.error("internal: stack");
                    };
                    nodes.push(J::Obj(fields));
                }
            }
            done = nodes.len() - 1;
        }
    }
}

// ---------------------------------------------------------------- from JSON

/// A container value whose children (JSON node indices) are converted first.
enum Shape {
    List(Vec<usize>),
    Tuple(Vec<usize>),
    Set(Vec<usize>),
    FrozenSet(Vec<usize>),
    Dict(Vec<(usize, usize)>),
    NamedTuple {
        type_name: String,
        field_names: Vec<String>,
        values: Vec<usize>,
    },
    Class {
        name: String,
        id: MontyUuid,
        host_defined: bool,
        dataclass: bool,
        attrs: Vec<(usize, usize)>,
    },
    Instance {
        class: usize,
        id: MontyUuid,
        attrs: Vec<(usize, usize)>,
    },
    Module {
        name: String,
        id: MontyUuid,
        attrs: Vec<(usize, usize)>,
    },
}

impl Shape {
    fn children(&self) -> Vec<usize> {
        let flat = |pairs: &[(usize, usize)]| pairs.iter().flat_map(|(k, v)| [*k, *v]).collect();
        match self {
            Self::List(ids) | Self::Tuple(ids) | Self::Set(ids) | Self::FrozenSet(ids) => {
                ids.clone()
            }
            Self::NamedTuple { values, .. } => values.clone(),
            Self::Dict(pairs)
            | Self::Class { attrs: pairs, .. }
            | Self::Module { attrs: pairs, .. } => flat(pairs),
            Self::Instance { class, attrs, .. } => {
                std::iter::once(*class).chain(flat(attrs)).collect()
            }
        }
    }
}

enum Converted {
    Leaf(MontyNode),
    Container(Shape),
}

struct Reader<'a> {
    js: &'a [J],
}

fn bad<T>(what: impl std::fmt::Display) -> Result<T, String> {
    Err(format!("value-from-json: {what}"))
}

impl Reader<'_> {
    fn string(&self, j: usize, what: &str) -> Result<String, String> {
        match &self.js[j] {
            J::Str(s) => Ok(s.clone()),
            _ => bad(format!("{what} must be a string")),
        }
    }

    fn opt_string(&self, j: usize, what: &str) -> Result<Option<String>, String> {
        match &self.js[j] {
            J::Null => Ok(None),
            J::Str(s) => Ok(Some(s.clone())),
            _ => bad(format!("{what} must be a string or null")),
        }
    }

    fn boolean(&self, j: usize, what: &str) -> Result<bool, String> {
        match &self.js[j] {
            J::Bool(b) => Ok(*b),
            _ => bad(format!("{what} must be true or false")),
        }
    }

    fn array(&self, j: usize, what: &str) -> Result<Vec<usize>, String> {
        match &self.js[j] {
            J::Arr(items) => Ok(items.clone()),
            _ => bad(format!("{what} must be an array")),
        }
    }

    fn pairs(&self, j: usize, what: &str) -> Result<Vec<(usize, usize)>, String> {
        self.array(j, what)?
            .into_iter()
            .map(|pair| match &self.js[pair] {
                J::Arr(kv) if kv.len() == 2 => Ok((kv[0], kv[1])),
                _ => bad(format!("{what} must hold [key, value] arrays")),
            })
            .collect()
    }

    fn uuid(&self, j: usize, what: &str) -> Result<MontyUuid, String> {
        let text = self.string(j, what)?;
        let bytes = text.as_bytes();
        if bytes.len() != 32 {
            return bad(format!("{what} must be 32 hex digits"));
        }
        let mut out = [0u8; 16];
        for (i, chunk) in bytes.chunks(2).enumerate() {
            let Some(byte) = std::str::from_utf8(chunk)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            else {
                return bad(format!("{what} must be 32 hex digits"));
            };
            out[i] = byte;
        }
        Ok(MontyUuid::from_bytes(out))
    }

    /// The members of an object payload, which must be exactly `names`.
    fn fields<const N: usize>(
        &self,
        j: usize,
        tag: &str,
        names: [&str; N],
    ) -> Result<[usize; N], String> {
        let J::Obj(members) = &self.js[j] else {
            return bad(format!("\"{tag}\" takes an object with {names:?}"));
        };
        let mut found = [usize::MAX; N];
        for (key, value) in members {
            match names.iter().position(|n| n == key) {
                Some(i) if found[i] == usize::MAX => found[i] = *value,
                Some(_) => return bad(format!("\"{tag}\" has \"{key}\" twice")),
                None => return bad(format!("\"{tag}\" has an unknown member \"{key}\"")),
            }
        }
        if let Some(i) = found.iter().position(|f| *f == usize::MAX) {
            return bad(format!("\"{tag}\" lacks \"{}\"", names[i]));
        }
        Ok(found)
    }

    /// A monty-types struct or enum through serde (shallow JSON only).
    fn serde<T: DeserializeOwned>(&self, j: usize, tag: &str) -> Result<T, String> {
        let value = self.to_serde(j, 0)?;
        serde_json::from_value(value).map_err(|e| format!("value-from-json: bad \"{tag}\": {e}"))
    }

    fn to_serde(&self, j: usize, depth: usize) -> Result<serde_json::Value, String> {
        if depth > 4 {
            return bad("nested too deeply inside a scalar payload");
        }
        Ok(match &self.js[j] {
            J::Null => serde_json::Value::Null,
            J::Bool(b) => serde_json::Value::Bool(*b),
            J::Num(n) => serde_json::Value::Number(
                n.parse()
                    .map_err(|_| format!("value-from-json: bad number {n}"))?,
            ),
            J::Str(s) => serde_json::Value::String(s.clone()),
            J::Arr(items) => serde_json::Value::Array(
                items
                    .iter()
                    .map(|i| self.to_serde(*i, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            J::Obj(members) => serde_json::Value::Object(
                members
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.to_serde(*v, depth + 1)?)))
                    .collect::<Result<_, String>>()?,
            ),
        })
    }

    fn float(&self, j: usize) -> Result<f64, String> {
        match &self.js[j] {
            J::Num(n) => n.parse().or_else(|_| bad(format!("bad float {n}"))),
            J::Str(s) => match s.as_str() {
                "nan" => Ok(f64::NAN),
                "inf" => Ok(f64::INFINITY),
                "-inf" => Ok(f64::NEG_INFINITY),
                _ => bad("\"float\" takes a number, \"nan\", \"inf\" or \"-inf\""),
            },
            J::Obj(members) if members.len() == 1 && members[0].0 == "float" => {
                self.float(members[0].1)
            }
            _ => bad("a float must be a number or {\"float\": ...}"),
        }
    }

    fn convert(&self, j: usize) -> Result<Converted, String> {
        let leaf = |node| Ok(Converted::Leaf(node));
        match &self.js[j] {
            J::Null => leaf(MontyNode::None),
            J::Bool(b) => leaf(MontyNode::Bool(*b)),
            J::Num(n) if n.contains(['.', 'e', 'E']) => leaf(MontyNode::Float(self.float(j)?)),
            J::Num(n) => leaf(int_node(n)?),
            J::Str(s) => leaf(MontyNode::String(s.clone())),
            J::Arr(items) => Ok(Converted::Container(Shape::List(items.clone()))),
            J::Obj(members) => {
                let [(tag, payload)] = members.as_slice() else {
                    return bad(
                        "an object must have exactly one member, the tag (see guest/README.md)",
                    );
                };
                self.tagged(tag, *payload)
            }
        }
    }

    fn tagged(&self, tag: &str, p: usize) -> Result<Converted, String> {
        let leaf = |node| Ok(Converted::Leaf(node));
        let container = |shape| Ok(Converted::Container(shape));
        match tag {
            "int" => leaf(int_node(&self.string(p, "\"int\"")?)?),
            "float" => leaf(MontyNode::Float(self.float(p)?)),
            "complex" => match self.array(p, "\"complex\"")?.as_slice() {
                [re, im] => leaf(MontyNode::Complex(MontyComplex {
                    real: self.float(*re)?,
                    imag: self.float(*im)?,
                })),
                _ => bad("\"complex\" takes [real, imag]"),
            },
            "bytes" => leaf(MontyNode::Bytes(base64_decode(
                &self.string(p, "\"bytes\"")?,
            )?)),
            "date" => leaf(MontyNode::Date(self.serde::<MontyDate>(p, tag)?)),
            "datetime" => leaf(MontyNode::DateTime(self.serde::<MontyDateTime>(p, tag)?)),
            "time" => leaf(MontyNode::Time(self.serde::<MontyTime>(p, tag)?)),
            "timedelta" => leaf(MontyNode::TimeDelta(self.serde::<MontyTimeDelta>(p, tag)?)),
            "timezone" => leaf(MontyNode::TimeZone(self.serde::<MontyTimeZone>(p, tag)?)),
            "decimal" => leaf(MontyNode::Decimal(self.string(p, "\"decimal\"")?)),
            "path" => leaf(MontyNode::Path(self.string(p, "\"path\"")?)),
            "repr" => leaf(MontyNode::Repr(self.string(p, "\"repr\"")?)),
            "cycle" => leaf(MontyNode::Cycle(self.string(p, "\"cycle\"")?)),
            "ellipsis" => leaf(MontyNode::Ellipsis),
            "notimplemented" => leaf(MontyNode::NotImplemented),
            "exception" => {
                let [ty, arg] = self.fields(p, tag, ["type", "arg"])?;
                leaf(MontyNode::Exception {
                    exc_type: self.serde::<ExcType>(ty, tag)?,
                    arg: self.opt_string(arg, "\"exception\".arg")?,
                })
            }
            "type" => match self.string(p, "\"type\"")?.parse::<MontyType>() {
                Ok(t) => leaf(MontyNode::Type(t)),
                Err(_) => bad("\"type\" names no builtin type"),
            },
            "builtin" => leaf(MontyNode::BuiltinFunction(
                self.serde::<BuiltinsFunctions>(p, tag)?,
            )),
            "file" => {
                let [path, mode, position] = self.fields(p, tag, ["path", "mode", "position"])?;
                leaf(MontyNode::FileHandle(MontyFileHandle {
                    path: self.string(path, "\"file\".path")?,
                    mode: self.serde::<FileMode>(mode, tag)?,
                    position: self.serde::<u64>(position, tag)?,
                }))
            }
            "function" => {
                let [name, doc] = self.fields(p, tag, ["name", "docstring"])?;
                leaf(MontyNode::Function {
                    name: self.string(name, "\"function\".name")?,
                    docstring: self.opt_string(doc, "\"function\".docstring")?,
                })
            }
            "list" => container(Shape::List(self.array(p, "\"list\"")?)),
            "tuple" => container(Shape::Tuple(self.array(p, "\"tuple\"")?)),
            "set" => container(Shape::Set(self.array(p, "\"set\"")?)),
            "frozenset" => container(Shape::FrozenSet(self.array(p, "\"frozenset\"")?)),
            "dict" => container(Shape::Dict(self.pairs(p, "\"dict\"")?)),
            "namedtuple" => {
                let [ty, fields, values] = self.fields(p, tag, ["type", "fields", "values"])?;
                let field_names = self
                    .array(fields, "\"namedtuple\".fields")?
                    .into_iter()
                    .map(|f| self.string(f, "a field name"))
                    .collect::<Result<Vec<_>, _>>()?;
                let values = self.array(values, "\"namedtuple\".values")?;
                if field_names.len() != values.len() {
                    return bad("\"namedtuple\" needs one value per field");
                }
                container(Shape::NamedTuple {
                    type_name: self.string(ty, "\"namedtuple\".type")?,
                    field_names,
                    values,
                })
            }
            "class" => {
                let [name, id, host, dc, attrs] =
                    self.fields(p, tag, ["name", "id", "host_defined", "dataclass", "attrs"])?;
                container(Shape::Class {
                    name: self.string(name, "\"class\".name")?,
                    id: self.uuid(id, "\"class\".id")?,
                    host_defined: self.boolean(host, "\"class\".host_defined")?,
                    dataclass: self.boolean(dc, "\"class\".dataclass")?,
                    attrs: self.pairs(attrs, "\"class\".attrs")?,
                })
            }
            "instance" => {
                let [id, class, attrs] = self.fields(p, tag, ["id", "class", "attrs"])?;
                container(Shape::Instance {
                    class,
                    id: self.uuid(id, "\"instance\".id")?,
                    attrs: self.pairs(attrs, "\"instance\".attrs")?,
                })
            }
            "module" => {
                let [name, id, attrs] = self.fields(p, tag, ["name", "id", "attrs"])?;
                container(Shape::Module {
                    name: self.string(name, "\"module\".name")?,
                    id: self.uuid(id, "\"module\".id")?,
                    attrs: self.pairs(attrs, "\"module\".attrs")?,
                })
            }
            _ => bad(format!("unknown tag \"{tag}\"")),
        }
    }
}

fn int_node(text: &str) -> Result<MontyNode, String> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return bad(format!("bad integer {text:?}"));
    }
    if digits.len() > MAX_INT_DIGITS {
        return bad(format!("integer has more than {MAX_INT_DIGITS} digits"));
    }
    if let Ok(small) = text.parse::<i64>() {
        return Ok(MontyNode::Int(small));
    }
    match text.parse::<BigInt>() {
        Ok(big) => Ok(MontyNode::BigInt(big)),
        Err(_) => bad(format!("bad integer {text:?}")),
    }
}

enum Step {
    Visit(usize),
    Build(usize, Shape),
}

/// Reads a value from JSON text.
pub fn from_json(text: &str) -> Result<MontyObject, String> {
    let (js, root) = parse(text)?;
    let reader = Reader { js: &js };
    let mut ids: Vec<Option<NodeId>> = vec![None; js.len()];
    let mut nodes: Vec<MontyNode> = Vec::new();
    let mut stack = vec![Step::Visit(root)];
    let mut last = None;
    let id_of = |ids: &[Option<NodeId>], j: usize| {
        ids[j].ok_or_else(|| "value-from-json: internal: unconverted child".to_owned())
    };
    while let Some(step) = stack.pop() {
        let (j, node) = match step {
            Step::Visit(j) => match reader.convert(j)? {
                Converted::Leaf(node) => (j, node),
                Converted::Container(shape) => {
                    let children = shape.children();
                    stack.push(Step::Build(j, shape));
                    stack.extend(children.into_iter().rev().map(Step::Visit));
                    continue;
                }
            },
            Step::Build(j, shape) => {
                let ids_of = |list: &[usize]| {
                    list.iter()
                        .map(|c| id_of(&ids, *c))
                        .collect::<Result<Vec<_>, _>>()
                };
                let pairs_of = |list: &[(usize, usize)]| {
                    list.iter()
                        .map(|(k, v)| Ok((id_of(&ids, *k)?, id_of(&ids, *v)?)))
                        .collect::<Result<Vec<_>, String>>()
                };
                let node = match shape {
                    Shape::List(items) => MontyNode::List(ids_of(&items)?),
                    Shape::Tuple(items) => MontyNode::Tuple(ids_of(&items)?),
                    Shape::Set(items) => MontyNode::Set(ids_of(&items)?),
                    Shape::FrozenSet(items) => MontyNode::FrozenSet(ids_of(&items)?),
                    Shape::Dict(pairs) => MontyNode::Dict(pairs_of(&pairs)?),
                    Shape::NamedTuple {
                        type_name,
                        field_names,
                        values,
                    } => MontyNode::NamedTuple {
                        type_name,
                        field_names,
                        values: ids_of(&values)?,
                    },
                    Shape::Class {
                        name,
                        id,
                        host_defined,
                        dataclass,
                        attrs,
                    } => MontyNode::ClassType(Box::new(ClassTypeNode {
                        name,
                        id,
                        host_defined,
                        is_dataclass: dataclass,
                        attrs: pairs_of(&attrs)?,
                    })),
                    Shape::Instance { class, id, attrs } => MontyNode::ClassInstance {
                        class_type: id_of(&ids, class)?,
                        instance_id: id,
                        attrs: pairs_of(&attrs)?,
                    },
                    Shape::Module { name, id, attrs } => MontyNode::Module {
                        name,
                        id,
                        attrs: pairs_of(&attrs)?,
                    },
                };
                (j, node)
            }
        };
        let Ok(index) = u32::try_from(nodes.len()) else {
            return bad("too many values");
        };
        nodes.push(node);
        ids[j] = Some(NodeId(index));
        last = Some(NodeId(index));
    }
    let root = last.ok_or("value-from-json: empty")?;
    let graph = MontyGraph::from_nodes(nodes).map_err(|e| format!("value-from-json: {e:?}"))?;
    object_from_graph(graph, root).map_err(|e| format!("value-from-json: {e:?}"))
}

// ---------------------------------------------------------------- base64

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 §4) with `=` padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard padded base64; anything else is refused.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return bad("\"bytes\" is not padded base64");
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (index, chunk) in bytes.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|b| **b == b'=').count();
        if pad > 2 || (pad > 0 && index + 1 != chunks) {
            return bad("\"bytes\" is not padded base64");
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let Some(v) = B64.iter().position(|b| *b == c) else {
                return bad("\"bytes\" is not base64");
            };
            n = (n << 6) | v as u32;
        }
        n <<= 6 * pad as u32;
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&decoded[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use monty::MontyRun;
    use monty_types::{CompileOptions, PrintWriter, ResourceTracker};

    fn python(code: &str) -> MontyObject {
        MontyRun::new(code.to_owned(), "t.py", vec![], CompileOptions::default())
            .and_then(|mut run| run.run(vec![], ResourceTracker::default(), PrintWriter::Stdout))
            .unwrap_or_else(|e| panic!("{code}: {e}"))
    }

    /// JSON -> value -> JSON is the identity, and the value reads back equal.
    fn round_trip(value: &MontyObject) -> String {
        let text = to_json(value).expect("to json");
        let back = from_json(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back.py_repr(), value.py_repr(), "{text}");
        assert_eq!(to_json(&back).expect("to json again"), text);
        text
    }

    #[test]
    fn scalars_have_the_documented_shape() {
        let cases = [
            ("None", "null"),
            ("True", "true"),
            ("-42", "-42"),
            ("2**53 - 1", "9007199254740991"),
            ("2**53", r#"{"int":"9007199254740992"}"#),
            ("-2**63", r#"{"int":"-9223372036854775808"}"#),
            ("10**30", r#"{"int":"1000000000000000000000000000000"}"#),
            ("1.0", "1.0"),
            ("-0.0", "-0.0"),
            ("1e300", "1e300"),
            ("0.1", "0.1"),
            ("float('nan')", r#"{"float":"nan"}"#),
            ("float('-inf')", r#"{"float":"-inf"}"#),
            ("'é\"\\n'", r#""é\"\n""#),
            ("b'\\x00\\x01\\xff'", r#"{"bytes":"AAH/"}"#),
            ("[]", "[]"),
            ("(1,)", r#"{"tuple":[1]}"#),
            (
                "{1: 'a', (1, 2): None}",
                r#"{"dict":[[1,"a"],[{"tuple":[1,2]},null]]}"#,
            ),
            ("{2}", r#"{"set":[2]}"#),
            ("frozenset()", r#"{"frozenset":[]}"#),
            ("...", r#"{"ellipsis":null}"#),
            ("1+2j", r#"{"complex":[1.0,2.0]}"#),
            (
                "ValueError('x')",
                r#"{"exception":{"type":"ValueError","arg":"x"}}"#,
            ),
            ("int", r#"{"type":"int"}"#),
            ("len", r#"{"builtin":"len"}"#),
        ];
        for (code, json) in cases {
            let value = python(code);
            assert_eq!(round_trip(&value), json, "{code}");
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let code = r#"
import datetime
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from collections import namedtuple

@dataclass
class Point:
    x: int
    y: int

class Plain:
    def __init__(self):
        self.a = [1, 2]

P = namedtuple('P', ['a', 'b'])
d = {'k': [1, (2, 3)], 4: {5}, None: frozenset({6})}
[
    d, d, Point(1, 2), Plain(), P(1, 'b'), Decimal('1.20'), Path('/tmp/x'),
    datetime.date(2024, 1, 2),
    datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc),
    datetime.time(1, 2, 3),
    datetime.timedelta(days=1, seconds=2),
    datetime.timezone(datetime.timedelta(hours=2)),
    KeyError('k'), Exception(), NotImplemented, 3**200, -(3**200),
    b'', '', [[[]]], float('inf'), complex(float('nan'), -1.5),
]
"#;
        let value = python(code);
        let text = round_trip(&value);
        for tag in [
            r#"{"instance":{"#,
            r#""dataclass":true"#,
            r#"{"namedtuple":{"type":"#,
            r#"{"decimal":"1.20"}"#,
            r#"{"path":"/tmp/x"}"#,
            r#"{"date":{"year":2024,"month":1,"day":2}}"#,
            r#"{"datetime":{"#,
            r#"{"time":{"#,
            r#"{"timedelta":{"#,
            r#"{"timezone":{"#,
        ] {
            assert!(text.contains(tag), "{tag} missing in {text}");
        }
    }

    #[test]
    fn cycles_and_reprs_round_trip() {
        let value = python("a = [1]\na.append(a)\na");
        let text = round_trip(&value);
        assert!(text.contains(r#"{"cycle":"[...]"}"#), "{text}");
    }

    #[test]
    fn deep_nesting_is_iterative_both_ways() {
        let depth = 200_000;
        let text = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let value = from_json(&text).expect("deep JSON reads");
        assert_eq!(to_json(&value).expect("deep value writes"), text);
        let tuples = format!("{}1{}", r#"{"tuple":["#.repeat(depth), "]}".repeat(depth));
        let value = from_json(&tuples).expect("deep tuples read");
        assert_eq!(to_json(&value).expect("deep tuples write"), tuples);
    }

    #[test]
    fn exponential_sharing_hits_the_output_cap() {
        let mut nodes = vec![MontyNode::Int(1)];
        for i in 0..64 {
            nodes.push(MontyNode::List(vec![NodeId(i), NodeId(i)]));
        }
        let root = NodeId(64);
        let value =
            object_from_graph(MontyGraph::from_nodes(nodes).expect("graph"), root).expect("value");
        let error = to_json(&value).expect_err("too large");
        assert!(error.contains("exceeds"), "{error}");
    }

    #[test]
    fn hostile_input_is_refused_with_a_message() {
        let big = format!("1{}", "0".repeat(MAX_INT_DIGITS + 1));
        let unterminated = "[".repeat(100_000);
        let cases = [
            "",
            " ",
            "[1,]",
            "[1 2]",
            "{}",
            r#"{"a":1,"b":2}"#,
            r#"{"dict":{"a":1}}"#,
            r#"{"dict":[[1]]}"#,
            r#"{"nope":1}"#,
            r#"{"int":"12x"}"#,
            r#"{"int":""}"#,
            r#"{"float":"NaN!"}"#,
            r#"{"bytes":"AAH"}"#,
            r#"{"bytes":"A=AA"}"#,
            r#""\ud800""#,
            r#""\udc00""#,
            "\"a\u{1}\"",
            "\"abc",
            "01",
            "1.",
            "-",
            "1e",
            "nul",
            "[1] x",
            r#"{"exception":{"type":"NoSuchError","arg":null}}"#,
            r#"{"exception":{"type":"ValueError"}}"#,
            r#"{"exception":{"type":"ValueError","arg":null,"x":1}}"#,
            r#"{"date":{"year":2024,"month":1}}"#,
            r#"{"date":[[[[[[[[1]]]]]]]]}"#,
            r#"{"namedtuple":{"type":"P","fields":["a"],"values":[]}}"#,
            r#"{"instance":{"id":"00000000000000000000000000000000","class":1,"attrs":[]}}"#,
            r#"{"class":{"name":"C","id":"xyz","host_defined":false,"dataclass":false,"attrs":[]}}"#,
            big.as_str(),
            unterminated.as_str(),
        ];
        for case in cases {
            let short: String = case.chars().take(60).collect();
            let error = from_json(case).expect_err(&short);
            assert!(error.starts_with("value-from-json: "), "{short}: {error}");
        }
        assert!(from_json(r#"{"bytes":"////"}"#).is_ok());
    }

    #[test]
    fn plain_json_reads_as_python() {
        let value = from_json(
            r#" [1, 2.5, -3e2, "x", true, null, {"tuple": []}, 123456789012345678901234567890] "#,
        )
        .expect("reads");
        assert_eq!(
            value.py_repr(),
            "[1, 2.5, -300.0, 'x', True, None, (), 123456789012345678901234567890]"
        );
        let value = from_json(r#"{"float": 2}"#).expect("reads");
        assert_eq!(value.py_repr(), "2.0");
    }

    #[test]
    fn base64_round_trips() {
        for len in 0..40u8 {
            let data: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).expect("decodes"), data);
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_encode(b"fo"), "Zm8=");
    }
}
