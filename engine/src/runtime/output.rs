//! Bounded capture of a guest's stdout and stderr.
//!
//! Plugins have no terminal, but their language runtime still writes to stdout and
//! stderr (a Rust panic message, a Python traceback). Weft keeps the first
//! [`GuestOutput::capacity`] bytes so they can be logged and quoted in a failure
//! reason, and silently counts the rest: a chatty plugin must neither fill the
//! host's memory nor fail because its output was cut.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A shared, bounded buffer a guest writes to through WASI.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Mutex<Captured>>,
    capacity: usize,
}

#[derive(Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: usize,
}

impl GuestOutput {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    fn append(&self, bytes: &[u8]) {
        let mut captured = self.inner.lock().expect("guest output lock poisoned");
        let room = self.capacity.saturating_sub(captured.kept.len());
        let kept = bytes.len().min(room);
        captured.kept.extend_from_slice(&bytes[..kept]);
        captured.dropped += bytes.len() - kept;
    }

    /// What the guest wrote (lossily decoded), with a note of how much was cut.
    pub(crate) fn text(&self) -> String {
        let captured = self.inner.lock().expect("guest output lock poisoned");
        let mut text = String::from_utf8_lossy(&captured.kept).into_owned();
        if captured.dropped > 0 {
            text.push_str(&format!("… ({} more bytes not kept)", captured.dropped));
        }
        text
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always accept: excess is counted and dropped, never refused.
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let output = GuestOutput::new(8);
        output.append(b"hello ");
        output.append(b"world, again");
        assert_eq!(output.text(), "hello wo… (10 more bytes not kept)");
    }
}
