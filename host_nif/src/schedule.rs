//! Where a NIF runs, and how much work it may do there.
//!
//! NIFs that run Python only convert their arguments and queue a job. On a
//! normal scheduler that conversion is budgeted (about a millisecond); when
//! the arguments are larger, the NIF returns `:dirty` and the Elixir side
//! repeats the call through its `_dirty` twin, which runs on a dirty CPU
//! scheduler with no budget. [`nif_pair!`] generates both from one
//! implementation that takes the [`Sched`].

use rustler::{Binary, Encoder, Env, Term};

use crate::atoms;
use crate::exceptions::sandbox_error;
use crate::values::{Budget, FromTermError};

/// Conversion work allowed on a normal scheduler (roughly one millisecond).
const NORMAL_BUDGET: usize = 20_000;
/// Binaries larger than this are copied on a dirty scheduler, not a normal one.
const BIG_BINARY: usize = 256 * 1024;

/// The scheduler a NIF call runs on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Sched {
    Normal,
    Dirty,
}

impl Sched {
    /// The conversion budget for term arguments.
    pub fn budget(self) -> Budget {
        match self {
            Sched::Normal => Budget::limited(NORMAL_BUDGET),
            Sched::Dirty => Budget::unlimited(),
        }
    }

    /// A binary argument copied out, or `:dirty` when it is too large to
    /// copy on a normal scheduler.
    pub fn copy<'a>(self, env: Env<'a>, bytes: Binary<'a>) -> Result<Vec<u8>, Term<'a>> {
        if self == Sched::Normal && bytes.len() > BIG_BINARY {
            return Err(atoms::dirty().encode(env));
        }
        Ok(bytes.as_slice().to_vec())
    }

    /// Python source copied out as a string (see [`Sched::copy`]).
    pub fn source<'a>(self, env: Env<'a>, code: Binary<'a>) -> Result<String, Term<'a>> {
        let bytes = self.copy(env, code)?;
        String::from_utf8(bytes).map_err(|_| {
            sandbox_error(
                env,
                atoms::invalid_input(),
                "Python source must be valid UTF-8",
            )
        })
    }
}

/// The reply to a term that could not be converted: `:dirty` (retry on a
/// dirty scheduler) or `{:error, %ExMonty.Exception{type: :invalid_input}}`.
pub fn conversion_error(env: Env<'_>, error: FromTermError) -> Term<'_> {
    match error {
        FromTermError::OverBudget => atoms::dirty().encode(env),
        FromTermError::Invalid(message) => sandbox_error(env, atoms::invalid_input(), &message),
    }
}

/// Defines two NIFs from one implementation: `$name` on a normal scheduler
/// and `$dirty` on a dirty CPU scheduler. `$imp` takes the environment, the
/// arguments and the [`Sched`]. Argument types are written in brackets
/// (`code: [Binary<'a>]`): Rustler's `nif` attribute reads them as plain
/// tokens, which a `ty` fragment would not be.
macro_rules! nif_pair {
    ($lt:lifetime, $name:ident, $dirty:ident, $imp:ident, ($($arg:ident : [$($ty:tt)+]),* $(,)?)) => {
        #[rustler::nif]
        fn $name<$lt>(env: Env<$lt>, $($arg: $($ty)+),*) -> Term<$lt> {
            $imp(env, $($arg,)* $crate::schedule::Sched::Normal)
        }

        #[rustler::nif(schedule = "DirtyCpu")]
        fn $dirty<$lt>(env: Env<$lt>, $($arg: $($ty)+),*) -> Term<$lt> {
            $imp(env, $($arg,)* $crate::schedule::Sched::Dirty)
        }
    };
}

pub(crate) use nif_pair;
