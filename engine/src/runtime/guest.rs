//! What a plugin's `Store` holds for one invocation, and the `host` interface
//! implemented on it.

use super::bindings::{host, types};
use super::limits::{MAX_LOG_LINE_BYTES, MAX_LOG_LINES};
use super::output::GuestOutput;
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A line a plugin logged through `host.log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestLog {
    pub level: LogLevel,
    pub message: String,
}

/// The level of a [`GuestLog`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl From<host::LogLevel> for LogLevel {
    fn from(level: host::LogLevel) -> Self {
        match level {
            host::LogLevel::Trace => Self::Trace,
            host::LogLevel::Debug => Self::Debug,
            host::LogLevel::Info => Self::Info,
            host::LogLevel::Warn => Self::Warn,
            host::LogLevel::Error => Self::Error,
        }
    }
}

/// Store data for one invocation.
pub(crate) struct GuestState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    config: Arc<str>,
    plugin: Arc<str>,
    event_id: String,
    pub(crate) logs: Vec<GuestLog>,
    pub(crate) dropped_logs: usize,
}

impl GuestState {
    /// A sandbox with no files, no environment, no network: only clocks, random
    /// numbers and the captured stdout/stderr.
    pub(crate) fn new(
        plugin: Arc<str>,
        config: Arc<str>,
        event_id: &str,
        memory_bytes: usize,
        stdout: &GuestOutput,
        stderr: &GuestOutput,
    ) -> Self {
        let wasi = WasiCtx::builder()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build();
        Self {
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_bytes),
            config,
            plugin,
            event_id: event_id.to_owned(),
            logs: Vec::new(),
            dropped_logs: 0,
        }
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for GuestState {}

impl host::Host for GuestState {
    fn log(&mut self, level: host::LogLevel, mut message: String) {
        if self.logs.len() >= MAX_LOG_LINES {
            self.dropped_logs += 1;
            return;
        }
        truncate_at_char_boundary(&mut message, MAX_LOG_LINE_BYTES);
        let level = LogLevel::from(level);
        let (plugin, event) = (&*self.plugin, self.event_id.as_str());
        match level {
            LogLevel::Trace => tracing::trace!(plugin, event, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, event, "{message}"),
            LogLevel::Info => tracing::info!(plugin, event, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, event, "{message}"),
            LogLevel::Error => tracing::error!(plugin, event, "{message}"),
        }
        self.logs.push(GuestLog { level, message });
    }

    fn config(&mut self) -> String {
        self.config.to_string()
    }
}

fn truncate_at_char_boundary(text: &mut String, max_bytes: usize) {
    if text.len() > max_bytes {
        let cut = (0..=max_bytes)
            .rev()
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
}

/// Caps the total size of a plugin's linear memories and remembers a refusal, so a
/// trap that follows (an allocator aborting) is reported as the memory limit it is.
pub(crate) struct MemoryLimiter {
    cap: usize,
    used: usize,
    pub(crate) refused: Option<usize>,
}

/// Table elements a plugin may grow a table to; a bound, not a budget.
const MAX_TABLE_ELEMENTS: usize = super::limits::pool::TABLE_ELEMENTS;

impl MemoryLimiter {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            used: 0,
            refused: None,
        }
    }
}

impl wasmtime::ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.used - current.min(self.used) + desired;
        if total > self.cap {
            self.refused = Some(total);
            return Ok(false);
        }
        self.used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn memory_cap_counts_every_memory_and_remembers_the_refusal() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert!(!limiter.memory_growing(30, 50, None).unwrap());
        assert_eq!(limiter.refused, Some(110));
        assert!(limiter.memory_growing(30, 40, None).unwrap());
    }

    #[test]
    fn long_log_lines_are_cut_on_a_character_boundary() {
        let mut text = "é".repeat(10);
        truncate_at_char_boundary(&mut text, 5);
        assert_eq!(text, "éé…");
    }
}
