//! What an attempt's outcome means for its delivery, and when to try again.

use super::client::{SendError, SendResult};
use crate::model::{Backoff, RetryPolicy};
use rand::Rng;
use std::time::{Duration, SystemTime};

/// The longest a receiver may hold back retries with `Retry-After`. A receiver
/// asking for a day (or sending a date years ahead by mistake) would otherwise
/// park its deliveries past any sensible retry schedule.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3_600);

/// Exponential delays vary by this fraction either way, so that deliveries that
/// failed together (an endpoint outage) do not all retry in the same instant.
const JITTER_FRACTION: f64 = 0.2;

/// What to do with a delivery after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The receiver accepted it (2xx).
    Delivered,
    /// Try again; not before `not_before` if the receiver said so (`Retry-After`).
    Retry { not_before: Option<Duration> },
    /// The receiver says the endpoint is gone for good (410): disable the endpoint.
    Gone,
    /// The request can never succeed as it stands (it is malformed): dead-letter it.
    GiveUp(String),
}

/// Judges an attempt. A response is judged by its status even when its body
/// could not be read in full: the receiver has already given its answer.
pub fn classify(result: &SendResult) -> Verdict {
    match result.status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(429 | 503) => Verdict::Retry {
            not_before: retry_after(&result.headers, SystemTime::now()),
        },
        // Other 4xx and 5xx, and 3xx (redirects are not followed; the attempt
        // history shows the Location so that the endpoint's URL can be fixed).
        Some(_) => Verdict::Retry { not_before: None },
        None => match &result.error {
            Some(SendError::InvalidRequest(reason)) => Verdict::GiveUp(reason.clone()),
            // Retrying cannot help until an operator allows the address; a
            // replay then delivers it.
            Some(SendError::Refused(reason)) => {
                Verdict::GiveUp(format!("refused by the network policy: {reason}"))
            }
            _ => Verdict::Retry { not_before: None },
        },
    }
}

/// How long to wait before the next attempt, after `attempts_made` attempts
/// (the first included) have failed; `None` when the policy allows no more.
/// A `retry_after` longer than the policy's delay wins, up to [`MAX_RETRY_AFTER`].
pub fn next_attempt_delay(
    policy: &RetryPolicy,
    attempts_made: u32,
    retry_after: Option<Duration>,
    rng: &mut impl Rng,
) -> Option<Duration> {
    if attempts_made >= policy.max_attempts {
        return None;
    }
    let computed = match policy.backoff {
        Backoff::Fixed { delay_ms } => Duration::from_millis(delay_ms),
        Backoff::Exponential { initial_ms, max_ms } => {
            let doublings = attempts_made.saturating_sub(1);
            let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
            let base_ms = initial_ms.saturating_mul(factor).min(max_ms);
            let jitter = rng.random_range(1.0 - JITTER_FRACTION..=1.0 + JITTER_FRACTION);
            // Jitter spreads the delay, but never beyond the maximum the policy sets.
            let jittered_ms = (base_ms as f64 * jitter).round() as u64;
            Duration::from_millis(jittered_ms.min(max_ms))
        }
    };
    let asked = retry_after.map_or(Duration::ZERO, |asked| asked.min(MAX_RETRY_AFTER));
    Some(computed.max(asked))
}

/// The `Retry-After` of a response, as a wait from `now`: delta-seconds or an
/// HTTP-date (a date in the past means now), bounded by [`MAX_RETRY_AFTER`].
/// `None` if absent or unreadable.
pub fn retry_after(headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
        .map(|(_, value)| value.trim())?;
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn response(status: u16, headers: &[(&str, &str)]) -> SendResult {
        SendResult {
            status: Some(status),
            headers: headers
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            body: Vec::new(),
            duration: Duration::from_millis(5),
            error: None,
        }
    }

    fn failure(error: SendError) -> SendResult {
        SendResult {
            status: None,
            headers: Vec::new(),
            body: Vec::new(),
            duration: Duration::from_millis(5),
            error: Some(error),
        }
    }

    #[test]
    fn classifies_outcomes() {
        let retry = |secs: Option<u64>| Verdict::Retry {
            not_before: secs.map(Duration::from_secs),
        };
        let cases = [
            (response(200, &[]), Verdict::Delivered),
            (response(204, &[]), Verdict::Delivered),
            (response(299, &[]), Verdict::Delivered),
            (response(301, &[("location", "https://x")]), retry(None)),
            (response(400, &[]), retry(None)),
            (response(404, &[]), retry(None)),
            (response(410, &[]), Verdict::Gone),
            (response(429, &[("Retry-After", "120")]), retry(Some(120))),
            (response(429, &[]), retry(None)),
            (response(503, &[("retry-after", "7")]), retry(Some(7))),
            (
                response(503, &[("retry-after", "86400")]),
                retry(Some(3_600)),
            ),
            (response(503, &[("retry-after", "soon")]), retry(None)),
            (response(500, &[("retry-after", "60")]), retry(None)),
            (
                failure(SendError::Timeout(Duration::from_secs(30))),
                retry(None),
            ),
            (failure(SendError::Connect("refused".into())), retry(None)),
            (failure(SendError::Protocol("reset".into())), retry(None)),
            (
                failure(SendError::InvalidRequest("bad URL".into())),
                Verdict::GiveUp("bad URL".into()),
            ),
        ];
        for (result, expected) in cases {
            assert_eq!(classify(&result), expected, "{result:?}");
        }
    }

    #[test]
    fn a_status_with_a_body_cut_short_is_judged_by_its_status() {
        let mut result = response(200, &[]);
        result.error = Some(SendError::Timeout(Duration::from_secs(1)));
        assert_eq!(classify(&result), Verdict::Delivered);
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        let cases = [
            ("0", Some(0)),
            ("30", Some(30)),
            (" 30 ", Some(30)),
            ("999999", Some(3_600)),
            ("Wed, 21 Oct 2015 07:30:00 GMT", Some(120)),
            ("Wed, 21 Oct 2015 07:00:00 GMT", Some(0)),
            ("Thu, 22 Oct 2015 07:28:00 GMT", Some(3_600)),
            ("-5", None),
            ("1.5", None),
            ("tomorrow", None),
        ];
        for (value, expected) in cases {
            let headers = vec![("Retry-After".to_owned(), value.to_owned())];
            assert_eq!(
                retry_after(&headers, now),
                expected.map(Duration::from_secs),
                "{value:?}"
            );
        }
        assert_eq!(retry_after(&[], now), None);
    }

    #[test]
    fn exponential_delays_double_with_jitter_up_to_the_maximum() {
        let policy = RetryPolicy {
            max_attempts: 10,
            backoff: Backoff::Exponential {
                initial_ms: 1_000,
                max_ms: 60_000,
            },
        };
        // (attempts made, expected delay before jitter)
        let cases = [
            (1, 1_000),
            (2, 2_000),
            (3, 4_000),
            (4, 8_000),
            (6, 32_000),
            (7, 60_000),
            (9, 60_000),
        ];
        let mut rng = StdRng::seed_from_u64(7);
        for (attempts_made, base_ms) in cases {
            let mut seen = Vec::new();
            for _ in 0..200 {
                let delay = next_attempt_delay(&policy, attempts_made, None, &mut rng)
                    .unwrap()
                    .as_millis() as u64;
                let low = (base_ms as f64 * 0.8) as u64;
                let high = ((base_ms as f64 * 1.2) as u64).min(60_000);
                assert!(
                    (low..=high).contains(&delay),
                    "after {attempts_made}: {delay} ms not in {low}..={high}"
                );
                seen.push(delay);
            }
            seen.dedup();
            assert!(seen.len() > 1, "after {attempts_made}: no jitter");
        }
    }

    #[test]
    fn attempts_run_out() {
        let mut rng = StdRng::seed_from_u64(1);
        let policy = RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Fixed { delay_ms: 500 },
        };
        let cases = [(1, Some(500)), (2, Some(500)), (3, None), (4, None)];
        for (attempts_made, expected) in cases {
            assert_eq!(
                next_attempt_delay(&policy, attempts_made, None, &mut rng),
                expected.map(Duration::from_millis),
                "after {attempts_made}"
            );
        }
        let no_retries = RetryPolicy {
            max_attempts: 1,
            ..policy
        };
        assert_eq!(next_attempt_delay(&no_retries, 1, None, &mut rng), None);
    }

    #[test]
    fn a_longer_retry_after_wins_within_bounds() {
        let mut rng = StdRng::seed_from_u64(1);
        let policy = RetryPolicy {
            max_attempts: 5,
            backoff: Backoff::Fixed { delay_ms: 10_000 },
        };
        let cases = [
            (None, 10_000),
            (Some(2_000), 10_000),
            (Some(90_000), 90_000),
            (Some(24 * 3_600_000), 3_600_000),
        ];
        for (asked_ms, expected_ms) in cases {
            let asked = asked_ms.map(Duration::from_millis);
            assert_eq!(
                next_attempt_delay(&policy, 1, asked, &mut rng),
                Some(Duration::from_millis(expected_ms)),
                "{asked_ms:?}"
            );
        }
        // Still no more attempts than the policy allows.
        assert_eq!(
            next_attempt_delay(&policy, 5, Some(Duration::from_secs(1)), &mut rng),
            None
        );
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut rng = StdRng::seed_from_u64(1);
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            backoff: Backoff::Exponential {
                initial_ms: u64::MAX / 2,
                max_ms: u64::MAX,
            },
        };
        assert!(next_attempt_delay(&policy, 200, None, &mut rng).is_some());
        let default = RetryPolicy::default();
        let last = next_attempt_delay(&default, default.max_attempts - 1, None, &mut rng).unwrap();
        assert!(last <= Duration::from_secs(10 * 3_600), "{last:?}");
    }
}
