//! The host's answers to a pause, and the answers the guest gives itself
//! when nobody serves a call.

use monty_types::{
    ExcType, ExtFunctionResult, MontyException, MontyObject, NameLookupResult, OsFunctionCall,
    PrintWriter,
};

use crate::codec;
use crate::errors::{host_exception, invalid};
use crate::flow::{each, Flow, Next};
use crate::persist::{baseline_memory, live_memory};
use crate::wit::{Answer, Error};

/// How many bytes of heap a value is assumed to take per encoded byte when
/// deciding whether a host answer fits the execution's memory.
const DECODED_PER_ENCODED: u64 = 3;

/// A host value too large for what is left of the execution's heap raises
/// `MemoryError` where the call was made, instead of exhausting the instance
/// while it is decoded.
pub fn memory_left_for(bytes: &[u8], max_memory: Option<u64>) -> Result<(), MontyException> {
    let Some(max) = max_memory else {
        return Ok(());
    };
    let needed = (bytes.len() as u64).saturating_mul(DECODED_PER_ENCODED);
    let live = live_memory().saturating_sub(baseline_memory());
    if live.saturating_add(needed) > max {
        return Err(MontyException::new(
            ExcType::MemoryError,
            Some(format!(
                "the host's answer ({} bytes encoded) does not fit in max_memory ({max} bytes)",
                bytes.len()
            )),
        ));
    }
    Ok(())
}

/// A host value for a call: decoded, or the `MemoryError` it would cause.
pub fn value(
    bytes: &[u8],
    max_memory: Option<u64>,
) -> Result<Result<MontyObject, MontyException>, Error> {
    match memory_left_for(bytes, max_memory) {
        Ok(()) => codec::decode(bytes).map(Ok),
        Err(exc) => Ok(Err(exc)),
    }
}

/// The result of a function or OS call the host answered.
pub fn ext_result(
    answer: Answer,
    name: &str,
    max_memory: Option<u64>,
) -> Result<ExtFunctionResult, Error> {
    Ok(match answer {
        Answer::Value(bytes) => match value(&bytes, max_memory)? {
            Ok(value) => ExtFunctionResult::Return(value),
            Err(exc) => ExtFunctionResult::Error(exc),
        },
        Answer::Raise(error) => ExtFunctionResult::Error(host_exception(error)),
        Answer::Pending => return Err(invalid("`pending` only answers a function call")),
        Answer::Undefined => ExtFunctionResult::NotFound(name.to_owned()),
    })
}

/// A settled result for `resume_eager`, or the result back when it is not one.
pub fn eager(
    result: ExtFunctionResult,
) -> Result<Result<MontyObject, MontyException>, ExtFunctionResult> {
    match result {
        ExtFunctionResult::Return(value) => Ok(Ok(value)),
        ExtFunctionResult::Error(exc) => Ok(Err(exc)),
        other => Err(other),
    }
}

/// What an OS call nobody serves raises: CPython's own denial for files
/// (`[Errno 13] Permission denied: '/path'`) and a `PermissionError` for the
/// environment, the same answers `ExMonty.Sandbox` gives without a handler;
/// anything else raises what Monty raises without a host.
pub fn denied(call: &OsFunctionCall) -> MontyException {
    match call {
        OsFunctionCall::Getenv(_) | OsFunctionCall::GetEnviron => MontyException::new(
            ExcType::PermissionError,
            Some("environment access is not allowed in this sandbox".to_owned()),
        ),
        call => match call.fs_primary_path() {
            Some(path) => MontyException::new(
                ExcType::PermissionError,
                Some(format!(
                    "[Errno 13] Permission denied: '{}'",
                    path.replace('\'', "\\'")
                )),
            ),
            None => call.on_no_handler(),
        },
    }
}

/// Answers a pause as `MontyRun::run` would without a host: unknown
/// functions and names raise `NameError`, OS calls their denial.
pub fn auto_answer(flow: Flow, print: PrintWriter<'_>) -> Next {
    each!(flow, FunctionCall(call) => {
        let name = call.function_name.clone();
        call.resume(ExtFunctionResult::NotFound(name), print)
    }, flow => each!(flow, NameLookup(lookup) => lookup.resume(NameLookupResult::Undefined, print),
        flow => each!(flow, OsCall(call) => {
            let error = denied(&call.function_call);
            call.resume(ExtFunctionResult::Error(error), print)
        }, flow => flow.abort(
            MontyException::new(ExcType::RuntimeError, Some("no host to resolve futures".to_owned())),
            print,
        ))))
}
