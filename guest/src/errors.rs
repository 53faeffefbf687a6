//! Conversions between Monty's exceptions and the WIT `error` / `exception` records.

use std::str::FromStr;

use monty_types::{ExcType, MontyException};

use crate::wit::{Error, Exception, Frame, HostError};

/// A Python exception as the WIT record, keeping every traceback detail Monty
/// has, with what the failing step printed before it.
pub fn python(exc: &MontyException, output: String) -> Error {
    let traceback = exc
        .traceback()
        .iter()
        .map(|frame| Frame {
            filename: frame.filename.clone(),
            line: frame.start.line,
            column: frame.start.column,
            end_line: frame.end.line,
            end_column: frame.end.column,
            name: frame.frame_name.clone(),
            source_line: frame.preview_line.as_deref().map(str::to_owned),
        })
        .collect();
    Error::Python(Exception {
        type_name: exc.exc_type().to_string(),
        message: exc.message().map(str::to_owned),
        traceback,
        rendered: exc.to_string(),
        output,
    })
}

/// A request the guest cannot act on (bad bytes, nothing paused, ...).
pub fn invalid(message: impl Into<String>) -> Error {
    Error::Invalid(message.into())
}

/// The exception a host asked to raise. Unknown class names become
/// `RuntimeError` with the name kept in the message, so nothing is lost.
pub fn host_exception(error: HostError) -> MontyException {
    match ExcType::from_str(&error.type_name) {
        Ok(exc_type) => MontyException::new(exc_type, Some(error.message)),
        Err(_) => MontyException::new(
            ExcType::RuntimeError,
            Some(format!("{}: {}", error.type_name, error.message)),
        ),
    }
}

/// Reports panics without their source location: a location names the build
/// machine's paths (the cargo registry, the compiler's sources), which an
/// error shown to a user must not leak. The message alone says what broke.
pub fn install_panic_hook() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let _ = std::io::Write::write_fmt(
                &mut std::io::stderr(),
                format_args!("ex_monty guest panicked: {message}\n"),
            );
        }));
    });
}
