//! Python values <-> Elixir terms, one file per direction.
//!
//! Both directions go through `monty_types::MontyObject`'s flat post-order
//! arena, so neither recurses: a list nested 100 000 deep costs heap, not
//! native stack. Bytes from the guest are treated as untrusted: the arena is
//! validated before any node is read.
//!
//! * [`to_term`]: a value from the guest becomes a term (`value_to_term`);
//! * [`from_term`]: a term from Elixir becomes a value (`term_to_value`),
//!   with the path of any term that has no Python meaning;
//! * [`datetime`]: dates, times and time zones, both ways;
//! * [`collisions`]: distinct Python keys that would be one Elixir term.

mod collisions;
mod datetime;
mod from_term;
mod structs;
mod to_term;

pub use from_term::{term_to_value, Budget, FromTermError};
pub use to_term::{object_to_term, value_to_term, ToTermError};

/// Maps with more entries than this are hash-array mapped tries in the BEAM,
/// and the VM builds those only on its own scheduler threads: on ExMonty's
/// workers `enif_make_map_from_arrays` must not be given one. Such values are
/// built later, on a dirty scheduler (`materialize`).
pub const SMALL_MAP: usize = 32;

/// Where terms are being built.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// A BEAM scheduler thread (normal or dirty): anything can be built.
    Scheduler,
    /// One of ExMonty's worker threads: large maps cannot be built.
    Worker,
}

/// The class attribute that marks a host dataclass frozen: ExMonty's Monty
/// patch (`patches/monty-1.4.0-host-objects.patch`) raises
/// `FrozenInstanceError` on assignment to an instance of such a class.
pub const FROZEN_MARKER: &str = "__dataclass_frozen__";
