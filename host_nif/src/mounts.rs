//! Real host directories mounted into the sandbox, served by `monty-fs`.
//!
//! `monty-fs` confines every access with cap-std: paths are resolved inside
//! the mounted directory's handle, so `..`, absolute paths, symlinks that lead
//! outside and swaps during a call cannot reach anything else. File I/O runs
//! on ExMonty's worker threads (or a dirty IO scheduler), never on a normal
//! BEAM scheduler.

use std::sync::Mutex;

use monty_fs::{Mount, MountCallOutcome, MountMode, MountTable};
use monty_types::{ExcType, MontyObject, MontyPath, OsFunctionCall};
use rustler::{Encoder, Env, Resource, ResourceArc, Term};

use crate::atoms;
use crate::bindings::{Answer, HostError};
use crate::exceptions::sandbox_exception;
use crate::values;

/// A mount table, shared by the executions it is given to (calls on it are
/// serialised).
pub struct MountsRes {
    pub table: Mutex<MountTable>,
    /// (virtual path, host path, mode) for inspection.
    pub specs: Vec<(String, String, String)>,
    /// Per mount: its write limit and what has been charged against it.
    budgets: Mutex<Vec<WriteBudget>>,
}

/// What a mount's `write_bytes_limit` covers. monty-fs counts the bytes of
/// file contents; a name or an empty file or directory costs nothing there,
/// so Python could create entries without end under any limit. This charges
/// every write call with its contents plus, for each entry it creates, a
/// fixed cost and the entry's name, before the call is made.
struct WriteBudget {
    virtual_path: String,
    limit: Option<u64>,
    used: u64,
}

/// What creating one file or directory costs against a write limit, besides
/// its name (about what a filesystem spends on an inode and its entry).
const ENTRY_COST: u64 = 128;

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
    let budgets = specs
        .iter()
        .map(|(virtual_path, _, _, limit, _)| {
            // Normalised as the mount table normalises it ("//data/." is
            // "/data"), so every write under the mount finds its budget;
            // the root is "" (under which every path is).
            let root = normalize(virtual_path);
            WriteBudget {
                virtual_path: if root == "/" { String::new() } else { root },
                limit: *limit,
                used: 0,
            }
        })
        .collect();
    Ok(ResourceArc::new(MountsRes {
        table: Mutex::new(table),
        budgets: Mutex::new(budgets),
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
    // A call that cannot be read, or mounts whose state a panic left
    // unknown, fail the call: passing it on as under no mount would hand a
    // mounted path to the caller's handler, past the mount's mode.
    let Ok(call) = postcard::from_bytes::<OsFunctionCall>(typed) else {
        return Some(os_error("the file call could not be read"));
    };
    let Ok(mut table) = mounts.table.lock() else {
        return Some(os_error("the mounts are unavailable"));
    };
    let charge = match write_charge(&mut table, &call) {
        Some((path, cost)) => {
            let Ok(mut budgets) = mounts.budgets.lock() else {
                return Some(os_error("the mounts are unavailable"));
            };
            match budget_for(&mut budgets, &path) {
                Some(budget) => {
                    if budget
                        .limit
                        .is_some_and(|limit| budget.used.saturating_add(cost) > limit)
                    {
                        return Some(no_space(&path));
                    }
                    Some((path, cost))
                }
                None => None,
            }
        }
        None => None,
    };
    let outcome = table.handle_os_call(call);
    if let (Some((path, cost)), MountCallOutcome::Handled(Ok(_))) = (&charge, &outcome) {
        if let Ok(mut budgets) = mounts.budgets.lock() {
            if let Some(budget) = budget_for(&mut budgets, path) {
                budget.used = budget.used.saturating_add(*cost);
            }
        }
    }
    match outcome {
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

fn os_error(message: &str) -> Answer {
    Answer::Raise(HostError {
        type_name: "OSError".to_owned(),
        message: message.to_owned(),
    })
}

/// `[Errno 28] No space left on device`, as a full disk answers.
fn no_space(path: &str) -> Answer {
    Answer::Raise(HostError {
        type_name: "OSError".to_owned(),
        message: format!(
            "[Errno 28] No space left on device (the mount's write_bytes_limit): '{}'",
            path.replace('\'', "\\'")
        ),
    })
}

/// `path` with `.` and `..` resolved lexically, as the mounts resolve it.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// The budget of the mount `path` is under (the longest matching mount).
fn budget_for<'a>(budgets: &'a mut [WriteBudget], path: &str) -> Option<&'a mut WriteBudget> {
    budgets
        .iter_mut()
        .filter(|budget| {
            let root = budget.virtual_path.as_str();
            root.is_empty()
                || path == root
                || path
                    .strip_prefix(root)
                    .is_some_and(|rest| rest.starts_with('/'))
        })
        .max_by_key(|budget| budget.virtual_path.len())
}

/// What a write call costs against its mount's write limit: its contents,
/// plus `ENTRY_COST` and the name for each entry it creates. `None` for
/// calls that write nothing.
/// Paths longer than this, or with more components, are refused by the
/// mount table itself; they are not charged (walking up such a path's
/// missing ancestors, each looked up, took time quadratic in its length).
const MAX_PATH_BYTES: usize = 4096;
const MAX_PATH_COMPONENTS: usize = 64;

fn write_charge(table: &mut MountTable, call: &OsFunctionCall) -> Option<(String, u64)> {
    let (path, data, may_create) = match call {
        OsFunctionCall::WriteText(args) | OsFunctionCall::AppendText(args) => {
            (args.path.as_str(), args.data.len(), true)
        }
        OsFunctionCall::WriteBytes(args) | OsFunctionCall::AppendBytes(args) => {
            (args.path.as_str(), args.data.len(), true)
        }
        OsFunctionCall::Open(args) if args.mode.create() => (args.path.as_str(), 0, true),
        OsFunctionCall::Mkdir(args) => (args.path.as_str(), 0, true),
        OsFunctionCall::Rename(args) => (args.dst.as_str(), 0, true),
        _ => return None,
    };
    if path.len() > MAX_PATH_BYTES || path.split('/').count() > MAX_PATH_COMPONENTS + 1 {
        return None;
    }
    let path = normalize(path);
    let creates = may_create && !exists(table, &path);
    let mut cost = data as u64;
    if creates {
        cost = cost.saturating_add(ENTRY_COST + base_name(&path).len() as u64);
    }
    if let OsFunctionCall::Mkdir(args) = call {
        if args.parents && creates {
            // Every missing ancestor is an entry too.
            let mut dir = parent_of(&path);
            while let Some(current) = dir {
                if current == "/" || exists(table, current) {
                    break;
                }
                cost = cost.saturating_add(ENTRY_COST + base_name(current).len() as u64);
                dir = parent_of(current);
            }
        }
    }
    Some((path, cost))
}

fn parent_of(path: &str) -> Option<&str> {
    match path.rsplit_once('/') {
        Some(("", _)) => Some("/"),
        Some((parent, _)) => Some(parent),
        None => None,
    }
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or_default()
}

fn exists(table: &mut MountTable, path: &str) -> bool {
    matches!(
        table.handle_os_call(OsFunctionCall::Exists(MontyPath::new(path.to_owned()))),
        MountCallOutcome::Handled(Ok(value)) if value == MontyObject::bool(true)
    )
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
        MountCallOutcome::Handled(Ok(value)) => match values::object_to_term(env, &value) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn budgets() -> Vec<WriteBudget> {
        ["/data", "/data/out", "/work"]
            .iter()
            .map(|path| WriteBudget {
                virtual_path: (*path).to_owned(),
                limit: Some(1000),
                used: 0,
            })
            .collect()
    }

    #[test]
    fn paths_are_resolved_before_they_are_charged() {
        assert_eq!(normalize("/work/../data/./x"), "/data/x");
        assert_eq!(normalize("/../../data"), "/data");
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn the_longest_mount_pays() {
        let mut budgets = budgets();
        let pick = |budgets: &mut Vec<WriteBudget>, path: &str| {
            budget_for(budgets, path).map(|b| b.virtual_path.clone())
        };
        assert_eq!(
            pick(&mut budgets, "/data/out/f").as_deref(),
            Some("/data/out")
        );
        assert_eq!(pick(&mut budgets, "/data/f").as_deref(), Some("/data"));
        assert_eq!(pick(&mut budgets, "/data").as_deref(), Some("/data"));
        assert_eq!(pick(&mut budgets, "/database/f"), None);
        assert_eq!(pick(&mut budgets, "/other"), None);
    }

    #[test]
    fn parents_and_names() {
        assert_eq!(parent_of("/a/b"), Some("/a"));
        assert_eq!(parent_of("/a"), Some("/"));
        assert_eq!(base_name("/a/bcd"), "bcd");
    }
}
