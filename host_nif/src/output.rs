//! Live output: what Python prints, forwarded to the caller while it runs.
//!
//! The guest streams prints (when asked) to its `wasi:cli/stdout` as frames
//! `[stream][len u32 le][bytes]`; this stream, installed as every instance's
//! stdout, cuts the frames and sends each as `{:ex_monty_output, job,
//! :stdout | :stderr, text}` to the process the current call answers. With
//! no call listening the frames are dropped (the text is still collected in
//! the step's `output`).

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustler::{Encoder, OwnedEnv};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::atoms;
pub use crate::control::Listener;

/// Frames that have not arrived whole are kept until the rest comes; more
/// than this is not a frame the guest writes.
const MAX_PENDING: usize = 64 * 1024 * 1024;

#[derive(Default)]
struct Inner {
    listener: Option<Listener>,
    pending: Vec<u8>,
}

/// The instance's stdout.
#[derive(Clone, Default)]
pub struct LiveOutput {
    inner: Arc<Mutex<Inner>>,
}

impl LiveOutput {
    /// Sets (or clears) who receives the output of the next call.
    pub fn listen(&self, listener: Option<Listener>) {
        if let Ok(mut inner) = self.inner.lock() {
            inner.listener = listener;
            inner.pending.clear();
        }
    }
}

fn forward(listener: &Listener, stream: u8, text: &[u8]) {
    let stream = if stream == 2 {
        atoms::stderr()
    } else {
        atoms::stdout()
    };
    let job = listener.job.resource();
    let text = String::from_utf8_lossy(text).into_owned();
    let mut env = OwnedEnv::new();
    let _ = env.send_and_clear(&listener.pid, move |env| {
        (atoms::ex_monty_output(), job, stream, text).encode(env)
    });
}

impl IsTerminal for LiveOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LiveOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(tokio::io::sink())
    }
}

#[async_trait::async_trait]
impl Pollable for LiveOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for LiveOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        let Ok(mut inner) = self.inner.lock() else {
            return Ok(());
        };
        let Some(listener) = inner.listener.clone() else {
            return Ok(());
        };
        inner.pending.extend_from_slice(&bytes);
        loop {
            let pending = &inner.pending;
            if pending.len() < 5 {
                break;
            }
            let len = u32::from_le_bytes([pending[1], pending[2], pending[3], pending[4]]) as usize;
            if pending.len() < 5 + len {
                if pending.len() > MAX_PENDING {
                    inner.pending.clear();
                }
                break;
            }
            forward(&listener, pending[0], &pending[5..5 + len]);
            inner.pending.drain(..5 + len);
        }
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1024 * 1024)
    }
}
