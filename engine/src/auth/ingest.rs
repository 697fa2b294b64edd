//! How fast each credential may publish: a token bucket per credential
//! (GCRA, from governor), refilled at its rate and as deep as one second of
//! it. A publish beyond the allowance is refused with the time until the next
//! one would be accepted; nothing is queued, so nothing accepted is lost.

use super::{Credential, Principal};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// The rate of a credential that names none: API keys made without
/// `ingest_per_second`, and bearer tokens.
pub const DEFAULT_INGEST_PER_SECOND: u32 = 1_000;

/// The publish allowance of every credential seen recently.
pub struct IngestLimits {
    default_per_second: NonZeroU32,
    buckets: moka::sync::Cache<Credential, Arc<DefaultDirectRateLimiter>>,
    clock: DefaultClock,
}

impl IngestLimits {
    /// Credentials without a rate of their own may publish `default_per_second`
    /// requests a second (at least one).
    pub fn new(default_per_second: u32) -> Self {
        Self {
            default_per_second: NonZeroU32::new(default_per_second).unwrap_or(NonZeroU32::MIN),
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(600))
                .build(),
            clock: DefaultClock::default(),
        }
    }

    /// Takes one publish from `principal`'s allowance, or says how long until
    /// it has one again.
    pub fn admit(&self, principal: &Principal) -> Result<(), Duration> {
        let rate = principal
            .ingest_per_second
            .and_then(NonZeroU32::new)
            .unwrap_or(self.default_per_second);
        let bucket = self.buckets.get_with_by_ref(&principal.credential, || {
            Arc::new(RateLimiter::direct(Quota::per_second(rate)))
        });
        bucket
            .check()
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ApiKeyId, Role, TenantId};

    fn principal(ingest_per_second: Option<u32>) -> Principal {
        Principal {
            tenant: TenantId::parse("acme").unwrap(),
            role: Role::Publisher,
            credential: Credential::ApiKey(ApiKeyId::generate()),
            ingest_per_second,
        }
    }

    #[test]
    fn a_burst_beyond_the_rate_is_refused_with_the_wait() {
        let limits = IngestLimits::new(1_000);
        let slow = principal(Some(3));
        for _ in 0..3 {
            assert!(limits.admit(&slow).is_ok());
        }
        let wait = limits.admit(&slow).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(334),
            "{wait:?}"
        );
        // Another credential has its own bucket, at the default rate.
        let other = principal(None);
        for _ in 0..1_000 {
            assert!(limits.admit(&other).is_ok());
        }
        assert!(limits.admit(&other).is_err());
    }
}
