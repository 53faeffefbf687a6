//! Python values on the wire: postcard-encoded `MontyObject`s.

use monty::MontyRun;
use monty_types::{CallArgs, MontyObject};
use serde::{Deserialize, Serialize};

use crate::errors::invalid;
use crate::wit::Error;

/// Encodes a value for the host.
pub fn encode(value: &MontyObject) -> Result<Vec<u8>, Error> {
    postcard::to_allocvec(value).map_err(|e| invalid(format!("cannot encode value: {e}")))
}

/// Decodes a value from the host. `MontyObject`'s arena is validated by Monty
/// when the value enters the heap, and decoding itself never recurses.
pub fn decode(bytes: &[u8]) -> Result<MontyObject, Error> {
    postcard::from_bytes(bytes).map_err(|e| invalid(format!("cannot decode value: {e}")))
}

/// Encoded positional values and `(name, value)` keyword pairs of a call.
pub type EncodedArgs = (Vec<Vec<u8>>, Vec<(String, Vec<u8>)>);

/// Splits call arguments into encoded positional values and keyword pairs.
pub fn encode_args(args: &CallArgs) -> Result<EncodedArgs, Error> {
    let positional = args
        .args()
        .map(|arg| encode(&arg.to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let keywords = args
        .kwargs()
        .map(|(key, value)| {
            let name = key.as_str().map_or_else(|| key.py_repr(), str::to_owned);
            Ok((name, encode(&value.to_owned())?))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    Ok((positional, keywords))
}

/// A compiled program as `compile` hands it out: versioned so a program from
/// another guest build is refused instead of misread.
#[derive(Clone, Serialize, Deserialize)]
pub struct Program {
    pub format: u32,
    pub monty_version: String,
    pub script_name: String,
    pub input_names: Vec<String>,
    pub run: MontyRun,
}

/// Bumped whenever `Program`'s layout changes.
pub const PROGRAM_FORMAT: u32 = 1;

impl Program {
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        postcard::to_allocvec(self).map_err(|e| invalid(format!("cannot encode program: {e}")))
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        // Read the header first so a program from another format gets a clear message.
        let (format, rest): (u32, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|_| invalid("not a compiled ExMonty program"))?;
        if format != PROGRAM_FORMAT {
            return Err(invalid(format!(
                "compiled program has format {format}, this guest reads format {PROGRAM_FORMAT}"
            )));
        }
        let (version, _): (String, &[u8]) = postcard::take_from_bytes(rest)
            .map_err(|_| invalid("not a compiled ExMonty program"))?;
        if version != monty_types::MONTY_VERSION {
            return Err(invalid(format!(
                "compiled program is for Monty {version}, this guest runs Monty {}",
                monty_types::MONTY_VERSION
            )));
        }
        let (program, rest): (Self, &[u8]) = postcard::take_from_bytes(bytes)
            .map_err(|e| invalid(format!("corrupt compiled program: {e}")))?;
        if !rest.is_empty() {
            return Err(invalid("corrupt compiled program: trailing bytes"));
        }
        Ok(program)
    }
}
