//! What Python prints: collected per step, under the execution's
//! `max_output_bytes`.
//!
//! Monty's own collector reports an exceeded cap as "memory limit exceeded",
//! which names the wrong limit; this one says which limit it was.

use std::borrow::Cow;

use monty_types::{ExcType, MontyException, PrintWriter, PrintWriterCallback};

/// Collects one step's output, refusing bytes past what the execution may
/// still print.
pub struct Collector {
    text: String,
    left: u64,
}

impl Collector {
    fn push(&mut self, text: &str) -> Result<(), MontyException> {
        let size = text.len() as u64;
        if size > self.left {
            self.left = 0;
            return Err(MontyException::new(
                ExcType::MemoryError,
                Some("print output limit exceeded (max_output_bytes)".to_owned()),
            ));
        }
        self.left -= size;
        self.text.push_str(text);
        Ok(())
    }
}

impl PrintWriterCallback for Collector {
    fn stdout_write(&mut self, output: Cow<'_, str>) -> Result<(), MontyException> {
        self.push(&output)
    }

    fn stdout_push(&mut self, end: char) -> Result<(), MontyException> {
        self.push(end.encode_utf8(&mut [0; 4]))
    }
}

/// Runs `f` with a writer that may print `left` more bytes; returns its
/// result and what was printed.
pub fn collect<R>(left: u64, f: impl FnOnce(PrintWriter<'_>) -> R) -> (R, String) {
    let mut collector = Collector {
        text: String::new(),
        left,
    };
    let result = f(PrintWriter::Callback(&mut collector));
    (result, collector.text)
}
