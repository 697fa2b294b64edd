//! How much a plugin may use, and how the engine is sized for it.
//!
//! Every limit answers a threat from a plugin that is buggy or hostile; each is
//! enforced per invocation, so the plugin that exceeds it fails alone.

use crate::model::LimitOverrides;
use std::time::Duration;

/// Limits for one invocation of one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A plugin that loops forever is interrupted once it has run this long.
    pub deadline: Duration,
    /// A plugin that allocates without bound fails when its linear memories would
    /// grow past this many bytes in total.
    pub memory_bytes: usize,
    /// A plugin that returns a flood fails when the requests it returns (bodies,
    /// headers, URLs) add up to more than this many bytes.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            deadline: Duration::from_millis(100),
            memory_bytes: 64 << 20,
            // Deliveries carry payloads up to 10 MB: a transform may return that much.
            output_bytes: MAX_OUTPUT_BYTES,
        }
    }
}

/// The longest CPU deadline a subscription may give a plugin.
pub const MAX_DEADLINE: Duration = Duration::from_secs(10);

/// The most linear memory a subscription may give a plugin: what a pool slot
/// holds.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

/// The most a plugin may return: a delivery's largest payload.
pub const MAX_OUTPUT_BYTES: usize = 10 << 20;

/// A limit override out of its range: the field (under `limits.`) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("limits.{field}: {reason}")]
pub struct InvalidLimit {
    pub field: &'static str,
    pub reason: String,
}

impl Limits {
    /// These limits with `overrides` applied, each checked against its range.
    pub fn overridden(self, overrides: &LimitOverrides) -> Result<Limits, InvalidLimit> {
        fn within(
            field: &'static str,
            value: Option<u32>,
            max: u64,
            unit: &str,
        ) -> Result<Option<u64>, InvalidLimit> {
            match value {
                Some(value) if value == 0 || u64::from(value) > max => Err(InvalidLimit {
                    field,
                    reason: format!("{value} is out of range: 1 to {max} {unit}"),
                }),
                other => Ok(other.map(u64::from)),
            }
        }
        const MIB: u64 = 1 << 20;
        let mut limits = self;
        let max_ms = MAX_DEADLINE.as_millis() as u64;
        if let Some(ms) = within("deadline_ms", overrides.deadline_ms, max_ms, "ms")? {
            limits.deadline = Duration::from_millis(ms);
        }
        let max_memory = MAX_MEMORY_BYTES as u64 / MIB;
        if let Some(mib) = within("memory_mib", overrides.memory_mib, max_memory, "MiB")? {
            limits.memory_bytes = (mib * MIB) as usize;
        }
        let max_output = MAX_OUTPUT_BYTES as u64 / MIB;
        if let Some(mib) = within("output_mib", overrides.output_mib, max_output, "MiB")? {
            limits.output_bytes = (mib * MIB) as usize;
        }
        Ok(limits)
    }
}

/// How often the epoch advances. The CPU deadline is enforced in these steps, so a
/// 100 ms deadline fires between 100 and 101 ms; a finer tick costs a thread wake-up
/// per tick for nothing.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Epoch ticks to allow for `deadline`: rounded up, plus the tick already under way.
pub(crate) fn deadline_ticks(deadline: Duration) -> u64 {
    let tick = EPOCH_TICK.as_nanos();
    let ticks = deadline.as_nanos().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX - 1) + 1
}

/// Bytes of a guest's stdout and of its stderr kept per invocation. Enough for a
/// panic message or a Python traceback.
pub(crate) const GUEST_OUTPUT_BYTES: usize = 16 << 10;

/// Log lines kept per invocation through `host.log`; later lines are counted.
pub(crate) const MAX_LOG_LINES: usize = 64;

/// Longest log line kept; longer lines are cut.
pub(crate) const MAX_LOG_LINE_BYTES: usize = 4 << 10;

/// Pooling allocator shape. A component built by componentize-py or
/// componentize-js links a dozen core modules (the language runtime, libc, the
/// adapter) with several memories and large function tables, so the per-component
/// maxima are far above what a Rust plugin needs.
pub(crate) mod pool {
    /// Core instances one component may create.
    pub const CORE_INSTANCES_PER_COMPONENT: u32 = 64;
    /// Linear memories one component may create.
    pub const MEMORIES_PER_COMPONENT: u32 = 4;
    /// Tables one component may create.
    pub const TABLES_PER_COMPONENT: u32 = 32;
    /// Elements per table: interpreters' indirect-call tables run to tens of thousands.
    pub const TABLE_ELEMENTS: usize = 100_000;
    /// Size of one component instance's metadata.
    pub const COMPONENT_INSTANCE_BYTES: usize = 1 << 20;
    /// Size of one core instance's metadata (its VM context).
    pub const CORE_INSTANCE_BYTES: usize = 1 << 20;
    /// Linear memory kept mapped between uses of a pool slot. With `PAGEMAP_SCAN`
    /// only the pages an invocation dirtied are reset, by `memset`: cheaper than
    /// `madvise` now and a page fault per page on the next event.
    pub const MEMORY_KEEP_RESIDENT: usize = 16 << 20;
    /// Table bytes kept mapped between uses, for the same reason.
    pub const TABLE_KEEP_RESIDENT: usize = 64 << 10;
    /// Instances reserved beyond the invocation permits, for loading plugins (which
    /// instantiates them once to ask `describe`) while invocations run.
    pub const LOAD_HEADROOM: u32 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_ticks_round_up_and_include_the_current_tick() {
        assert_eq!(deadline_ticks(Duration::from_millis(100)), 101);
        assert_eq!(deadline_ticks(Duration::from_micros(100)), 2);
        assert_eq!(deadline_ticks(Duration::ZERO), 1);
    }

    #[test]
    fn overrides_replace_the_defaults_they_name_and_keep_the_rest() {
        let overrides = LimitOverrides {
            deadline_ms: Some(2_000),
            memory_mib: Some(256),
            output_mib: None,
        };
        let limits = Limits::default().overridden(&overrides).unwrap();
        assert_eq!(limits.deadline, Duration::from_secs(2));
        assert_eq!(limits.memory_bytes, 256 << 20);
        assert_eq!(limits.output_bytes, Limits::default().output_bytes);
        assert_eq!(
            Limits::default().overridden(&LimitOverrides::default()),
            Ok(Limits::default())
        );
    }

    #[test]
    fn an_override_out_of_range_names_its_field() {
        let cases = [
            (
                LimitOverrides {
                    deadline_ms: Some(0),
                    ..Default::default()
                },
                "limits.deadline_ms: 0 is out of range: 1 to 10000 ms",
            ),
            (
                LimitOverrides {
                    memory_mib: Some(2048),
                    ..Default::default()
                },
                "limits.memory_mib: 2048 is out of range: 1 to 1024 MiB",
            ),
            (
                LimitOverrides {
                    output_mib: Some(11),
                    ..Default::default()
                },
                "limits.output_mib: 11 is out of range: 1 to 10 MiB",
            ),
        ];
        for (overrides, expected) in cases {
            let error = Limits::default().overridden(&overrides).unwrap_err();
            assert_eq!(error.to_string(), expected);
        }
    }
}
