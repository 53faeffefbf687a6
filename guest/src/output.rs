//! What Python prints: collected per step, under the execution's
//! `max_output_bytes`, and (when the host asks) streamed live.
//!
//! Monty's own collector reports an exceeded cap as "memory limit exceeded",
//! which names the wrong limit; this one says which limit it was.
//!
//! Live output goes to `wasi:cli/stdout` as frames (`[stream][len u32 le]
//! [bytes]`, stream 1 = stdout, 2 = stderr), batched so that a loop of tiny
//! prints costs a frame every few milliseconds, not one per print.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

use monty_types::{ExcType, MontyException, PrintWriter, PrintWriterCallback};

/// How long printed text may wait before it is streamed.
const FLUSH_EVERY: Duration = Duration::from_millis(5);
/// How much printed text may wait before it is streamed.
const FLUSH_BYTES: usize = 16 * 1024;

thread_local! {
    static LIVE: Cell<bool> = const { Cell::new(false) };
}

/// Turns live output on or off for the executions that follow.
pub fn set_live(on: bool) {
    LIVE.with(|live| live.set(on));
}

/// Collects one step's output, refusing bytes past what the execution may
/// still print.
pub struct Collector {
    text: String,
    left: u64,
    live: Option<Live>,
}

/// Printed text not yet streamed: one stream's run of text.
struct Live {
    stream: u8,
    pending: String,
    since: Instant,
}

impl Live {
    fn add(&mut self, stream: u8, text: &str) {
        if stream != self.stream {
            self.flush();
            self.stream = stream;
        }
        if self.pending.is_empty() {
            self.since = Instant::now();
        }
        self.pending.push_str(text);
        if self.pending.len() >= FLUSH_BYTES {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let len = u32::try_from(self.pending.len()).unwrap_or(u32::MAX);
        let mut frame = Vec::with_capacity(self.pending.len() + 5);
        frame.push(self.stream);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(self.pending.as_bytes());
        let mut stdout = std::io::stdout();
        // The host may have closed the stream; the text is still collected.
        let _ = stdout.write_all(&frame).and_then(|()| stdout.flush());
        self.pending.clear();
    }
}

impl Collector {
    fn push(&mut self, stream: u8, text: &str) -> Result<(), MontyException> {
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
        if let Some(live) = &mut self.live {
            live.add(stream, text);
        }
        Ok(())
    }
}

impl PrintWriterCallback for Collector {
    fn stdout_write(&mut self, output: Cow<'_, str>) -> Result<(), MontyException> {
        self.push(1, &output)
    }

    fn stdout_push(&mut self, end: char) -> Result<(), MontyException> {
        self.push(1, end.encode_utf8(&mut [0; 4]))
    }

    fn stderr_write(&mut self, output: Cow<'_, str>) -> Result<(), MontyException> {
        self.push(2, &output)
    }

    fn stderr_push(&mut self, end: char) -> Result<(), MontyException> {
        self.push(2, end.encode_utf8(&mut [0; 4]))
    }

    fn poll_flush(&mut self) -> Result<(), MontyException> {
        if let Some(live) = &mut self.live {
            if live.since.elapsed() >= FLUSH_EVERY {
                live.flush();
            }
        }
        Ok(())
    }
}

/// Runs `f` with a writer that may print `left` more bytes; returns its
/// result and what was printed (streamed first, when live output is on).
pub fn collect<R>(left: u64, f: impl FnOnce(PrintWriter<'_>) -> R) -> (R, String) {
    let live = LIVE.with(Cell::get).then(|| Live {
        stream: 1,
        pending: String::new(),
        since: Instant::now(),
    });
    let mut collector = Collector {
        text: String::new(),
        left,
        live,
    };
    let result = f(PrintWriter::Callback(&mut collector));
    if let Some(live) = &mut collector.live {
        live.flush();
    }
    (result, collector.text)
}
