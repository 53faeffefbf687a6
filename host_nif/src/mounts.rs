//! Real host directories mounted into the sandbox, served by `monty-fs`.
//!
//! `monty-fs` confines every access with cap-std: paths are resolved inside
//! the mounted directory's handle, so `..`, absolute paths, symlinks that lead
//! outside and swaps during a call cannot reach anything else. File I/O runs
//! on ExMonty's worker threads (or a dirty IO scheduler), never on a normal
//! BEAM scheduler.

use std::sync::Mutex;

use monty_fs::{Mount, MountCallOutcome, MountMode, MountTable};
use monty_types::{ExcType, MontyPath, OsFunctionCall};
use rustler::{Encoder, Env, Resource, ResourceArc, Term};

use crate::atoms;
use crate::exceptions::sandbox_exception;
use crate::instance::{Answer, HostError};
use crate::values;

/// A mount table, shared by the executions it is given to (calls on it are
/// serialised).
pub struct MountsRes {
    pub table: Mutex<MountTable>,
    /// (virtual path, host path, mode) for inspection.
    pub specs: Vec<(String, String, String)>,
}

#[rustler::resource_impl]
impl Resource for MountsRes {}

/// `{virtual_path, host_path, mode, write_bytes_limit, memory_usage_limit}`
type MountSpec = (String, String, String, Option<u64>, Option<u64>);

fn new_table(specs: &[MountSpec]) -> Result<MountTable, String> {
    let mut table = MountTable::new();
    for (virtual_path, host_path, mode, write_limit, memory_limit) in specs {
        let mode = MountMode::from_mode_str(mode)?;
        let mut mount = Mount::new(virtual_path, host_path, mode, *write_limit).map_err(|e| {
            format!(
                "cannot mount {host_path} at {virtual_path}: {}",
                describe(e)
            )
        })?;
        if let Some(limit) = memory_limit {
            mount = mount.with_memory_usage_limit(*limit);
        }
        table.push_mount(mount).map_err(|e| {
            format!(
                "cannot mount {host_path} at {virtual_path}: {}",
                describe(e)
            )
        })?;
    }
    Ok(table)
}

fn describe(error: monty_fs::MountError) -> String {
    let exception = error.into_exception();
    exception.message().unwrap_or("mount error").to_owned()
}

#[rustler::nif(schedule = "DirtyIo")]
fn mounts_new(specs: Vec<MountSpec>) -> Result<ResourceArc<MountsRes>, String> {
    let table = new_table(&specs)?;
    Ok(ResourceArc::new(MountsRes {
        table: Mutex::new(table),
        specs: specs
            .into_iter()
            .map(|(virtual_path, host_path, mode, _, _)| (virtual_path, host_path, mode))
            .collect(),
    }))
}

/// What a mount answers for a typed OS call: `Some(answer)` when a mount
/// served it (successfully or with a Python exception), `None` when the path
/// is under no mount.
pub fn serve(mounts: &MountsRes, typed: &[u8]) -> Option<Answer> {
    let call: OsFunctionCall = postcard::from_bytes(typed).ok()?;
    let mut table = mounts.table.lock().ok()?;
    match table.handle_os_call(call) {
        MountCallOutcome::NotHandled(_) => None,
        MountCallOutcome::Handled(Ok(value)) => Some(match postcard::to_allocvec(&value) {
            Ok(bytes) => Answer::Value(bytes),
            Err(e) => Answer::Raise(HostError {
                type_name: "OSError".to_owned(),
                message: format!("cannot encode a mount result: {e}"),
            }),
        }),
        MountCallOutcome::Handled(Err(error)) => {
            let exception = error.into_exception();
            Some(Answer::Raise(HostError {
                type_name: exception.exc_type().to_string(),
                message: exception.message().unwrap_or_default().to_owned(),
            }))
        }
    }
}

/// Runs one OS call against the mounts from Elixir (to inspect what Python
/// wrote, e.g. in an overlay).
fn host_call<'a>(env: Env<'a>, mounts: &MountsRes, call: OsFunctionCall) -> Term<'a> {
    let outcome = match mounts.table.lock() {
        Ok(mut table) => table.handle_os_call(call),
        Err(_) => {
            return (
                atoms::error(),
                sandbox_exception(
                    env,
                    atoms::sandbox_crashed(),
                    "RuntimeError",
                    "mount table poisoned",
                ),
            )
                .encode(env)
        }
    };
    match outcome {
        MountCallOutcome::Handled(Ok(value)) => match values::to_term(env, &value) {
            Ok(term) => (atoms::ok(), term).encode(env),
            Err(message) => (
                atoms::error(),
                sandbox_exception(env, atoms::invalid_input(), "ValueError", &message),
            )
                .encode(env),
        },
        MountCallOutcome::Handled(Err(error)) => {
            let exception = error.into_exception();
            (
                atoms::error(),
                crate::exceptions::exception_of(
                    env,
                    exception.exc_type(),
                    exception.message().unwrap_or(""),
                ),
            )
                .encode(env)
        }
        MountCallOutcome::NotHandled(_) => (
            atoms::error(),
            crate::exceptions::exception_of(
                env,
                ExcType::PermissionError,
                "the path is under no mount",
            ),
        )
            .encode(env),
    }
}

#[rustler::nif(schedule = "DirtyIo")]
fn mounts_read<'a>(env: Env<'a>, mounts: ResourceArc<MountsRes>, path: String) -> Term<'a> {
    host_call(
        env,
        &mounts,
        OsFunctionCall::ReadBytes(MontyPath::new(path)),
    )
}

#[rustler::nif(schedule = "DirtyIo")]
fn mounts_list<'a>(env: Env<'a>, mounts: ResourceArc<MountsRes>, path: String) -> Term<'a> {
    host_call(env, &mounts, OsFunctionCall::Iterdir(MontyPath::new(path)))
}

#[rustler::nif(schedule = "DirtyIo")]
fn mounts_exists<'a>(env: Env<'a>, mounts: ResourceArc<MountsRes>, path: String) -> Term<'a> {
    host_call(env, &mounts, OsFunctionCall::Exists(MontyPath::new(path)))
}

/// `[{virtual_path, host_path, mode}]`
#[rustler::nif]
fn mounts_info(mounts: ResourceArc<MountsRes>) -> Vec<(String, String, String)> {
    mounts.specs.clone()
}
