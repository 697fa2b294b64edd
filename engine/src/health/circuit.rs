//! An endpoint's circuit: closed while its receiver answers, open after
//! [`CircuitBreaker::failures`] failed attempts in a row (its deliveries then
//! wait, parked, without spending attempts), half-open while one probe
//! delivery tries the receiver again after a pause that doubles with each
//! failed probe, and closed again by any success.
//!
//! The state lives in the database (`endpoint_circuits`), so every node of a
//! cluster sees the same circuit; this module only decides what a round of
//! attempts does to it.

use crate::model::{CircuitBreaker, DeliveryId, UnixMillis};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Deliveries go.
    #[default]
    Closed,
    /// Deliveries wait until the next probe.
    Open,
    /// One delivery, the probe, is trying the receiver; the others wait.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Closed, Self::Open, Self::HalfOpen]
            .into_iter()
            .find(|state| state.as_str() == text)
    }
}

/// The last failed attempt to an endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastFailure {
    pub at: UnixMillis,
    /// The receiver's status, if it answered.
    pub status: Option<u16>,
    pub error: String,
}

/// One endpoint's circuit, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Circuit {
    pub state: CircuitState,
    pub consecutive_failures: u32,
    /// How often it opened since it last closed: sets the next pause.
    pub opened_times: u32,
    pub opened_at: Option<UnixMillis>,
    /// While open: when the next probe may go.
    pub probe_at: Option<UnixMillis>,
    /// While half-open: the delivery trying the receiver, and until when it
    /// holds the probe (a node that dies holding it lets another take it).
    pub probe_delivery: Option<DeliveryId>,
    pub probe_until: Option<UnixMillis>,
    /// Since when every attempt failed: the first failure after the last
    /// success.
    pub failing_since: Option<UnixMillis>,
    pub last_success_at: Option<UnixMillis>,
    pub last_failure: Option<LastFailure>,
}

/// What one request to an endpoint came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub started_at: UnixMillis,
    pub duration_ms: u32,
    /// `None` when the receiver accepted it.
    pub failure: Option<(Option<u16>, String)>,
}

impl Call {
    pub fn finished_at(&self) -> UnixMillis {
        self.started_at.saturating_add(i64::from(self.duration_ms))
    }
}

/// A change of a circuit worth an audit entry and a log line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "transition")]
pub enum Transition {
    /// `failures` attempts in a row failed.
    Opened { failures: u32, probe_at: UnixMillis },
    /// The probe failed: the next one waits longer.
    Reopened { probe_at: UnixMillis },
    /// A probe went.
    HalfOpened { probe: DeliveryId },
    /// A delivery succeeded.
    Closed,
    /// Every attempt failed for longer than the breaker allows.
    Disabled { failing_since: UnixMillis },
}

impl Transition {
    /// The audit log's action for it.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Opened { .. } => "endpoint.circuit.open",
            Self::Reopened { .. } => "endpoint.circuit.reopen",
            Self::HalfOpened { .. } => "endpoint.circuit.half_open",
            Self::Closed => "endpoint.circuit.close",
            Self::Disabled { .. } => "endpoint.disable",
        }
    }
}

impl CircuitBreaker {
    /// The pause before the probe that follows the circuit's `opened`th
    /// opening: the first pause, doubled each time, capped.
    pub fn pause_ms(&self, opened: u32) -> i64 {
        let first = u64::from(self.pause_seconds.max(1)) * 1_000;
        let doubled = first.saturating_mul(1u64 << opened.saturating_sub(1).min(32));
        let cap = u64::from(self.max_pause_seconds.max(self.pause_seconds).max(1)) * 1_000;
        i64::try_from(doubled.min(cap)).unwrap_or(i64::MAX)
    }
}

impl Circuit {
    /// The circuit after `calls` (in any order: they are taken in the order
    /// they finished), under `breaker`, and its transitions.
    pub fn after(
        mut self,
        calls: &[Call],
        breaker: &CircuitBreaker,
        now: UnixMillis,
    ) -> (Circuit, Vec<Transition>) {
        let mut calls: Vec<&Call> = calls.iter().collect();
        calls.sort_by_key(|call| call.finished_at());
        let mut transitions = Vec::new();
        for call in calls {
            let at = call.finished_at();
            let Some((status, error)) = &call.failure else {
                self.consecutive_failures = 0;
                self.failing_since = None;
                self.last_success_at = Some(at);
                if self.state != CircuitState::Closed {
                    self.close();
                    transitions.push(Transition::Closed);
                }
                continue;
            };
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            self.failing_since.get_or_insert(at);
            self.last_failure = Some(LastFailure {
                at,
                status: *status,
                error: error.clone(),
            });
            match self.state {
                CircuitState::Closed
                    if breaker.failures > 0 && self.consecutive_failures >= breaker.failures =>
                {
                    let probe_at = self.open(breaker, now);
                    transitions.push(Transition::Opened {
                        failures: self.consecutive_failures,
                        probe_at,
                    });
                }
                // The probe failed (or a request another node sent while
                // it was under way: the receiver fails all the same).
                CircuitState::HalfOpen => {
                    let probe_at = self.open(breaker, now);
                    transitions.push(Transition::Reopened { probe_at });
                }
                _ => {}
            }
        }
        if let Some(failing_since) = self.failing_since
            && breaker.disable_after_seconds > 0
            && self.consecutive_failures > 0
            && now.saturating_sub(failing_since)
                >= i64::try_from(breaker.disable_after_seconds.saturating_mul(1_000))
                    .unwrap_or(i64::MAX)
            && transitions
                .iter()
                .all(|t| !matches!(t, Transition::Disabled { .. }))
        {
            transitions.push(Transition::Disabled { failing_since });
        }
        (self, transitions)
    }

    /// Whether the probe may go (or be taken again from a node that died
    /// holding it) at `now`.
    pub fn probe_due(&self, now: UnixMillis) -> bool {
        match self.state {
            CircuitState::Closed => false,
            CircuitState::Open => self.probe_at.is_none_or(|at| at <= now),
            CircuitState::HalfOpen => self.probe_until.is_none_or(|until| until <= now),
        }
    }

    /// Lets `probe` try the receiver, holding the probe until `until`.
    pub fn half_open(&mut self, probe: DeliveryId, until: UnixMillis) -> Transition {
        self.state = CircuitState::HalfOpen;
        self.probe_delivery = Some(probe.clone());
        self.probe_until = Some(until);
        Transition::HalfOpened { probe }
    }

    /// Whether `delivery` may be sent now: the circuit is closed, or it is
    /// the probe.
    pub fn admits(&self, delivery: &DeliveryId) -> bool {
        self.state == CircuitState::Closed || self.probe_delivery.as_ref() == Some(delivery)
    }

    /// Closes it, as an administrator enabling the endpoint does.
    pub fn close(&mut self) {
        self.state = CircuitState::Closed;
        self.opened_times = 0;
        self.opened_at = None;
        self.probe_at = None;
        self.probe_delivery = None;
        self.probe_until = None;
    }

    /// Opens it (again) until the next probe, and returns when that is.
    fn open(&mut self, breaker: &CircuitBreaker, now: UnixMillis) -> UnixMillis {
        self.opened_times = self.opened_times.saturating_add(1);
        let probe_at = now.saturating_add(breaker.pause_ms(self.opened_times));
        self.state = CircuitState::Open;
        self.opened_at = Some(now);
        self.probe_at = Some(probe_at);
        self.probe_delivery = None;
        self.probe_until = None;
        probe_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMillis = 1_800_000_000_000;

    fn breaker(failures: u32) -> CircuitBreaker {
        CircuitBreaker {
            failures,
            pause_seconds: 5,
            max_pause_seconds: 60,
            disable_after_seconds: 3_600,
        }
    }

    fn call(at: UnixMillis, ok: bool) -> Call {
        Call {
            started_at: at,
            duration_ms: 10,
            failure: (!ok).then(|| (Some(503), "the endpoint answered 503".to_owned())),
        }
    }

    fn failures(count: usize, from: UnixMillis) -> Vec<Call> {
        (0..count).map(|i| call(from + i as i64, false)).collect()
    }

    #[test]
    fn the_circuit_opens_at_the_breakers_count_of_failures_in_a_row() {
        let (circuit, transitions) = Circuit::default().after(&failures(9, NOW), &breaker(10), NOW);
        assert_eq!(circuit.state, CircuitState::Closed);
        assert_eq!(circuit.consecutive_failures, 9);
        assert!(transitions.is_empty());

        let (circuit, transitions) = circuit.after(&failures(1, NOW + 20), &breaker(10), NOW + 50);
        assert_eq!(circuit.state, CircuitState::Open);
        assert_eq!(
            transitions,
            vec![Transition::Opened {
                failures: 10,
                probe_at: NOW + 50 + 5_000
            }]
        );
        assert_eq!(circuit.failing_since, Some(NOW + 10));
    }

    #[test]
    fn a_success_between_failures_starts_the_count_again() {
        let mut calls = failures(9, NOW);
        calls.push(call(NOW + 100, true));
        calls.extend(failures(9, NOW + 200));
        let (circuit, transitions) = Circuit::default().after(&calls, &breaker(10), NOW + 300);
        assert_eq!(circuit.state, CircuitState::Closed);
        assert_eq!(circuit.consecutive_failures, 9);
        assert_eq!(circuit.last_success_at, Some(NOW + 110));
        assert!(transitions.is_empty());
    }

    #[test]
    fn calls_are_taken_in_the_order_they_finished() {
        // Reported out of order: the success finished last.
        let late_success = call(NOW + 1_000, true);
        let mut calls = vec![late_success];
        calls.extend(failures(10, NOW));
        let (circuit, transitions) = Circuit::default().after(&calls, &breaker(10), NOW + 2_000);
        assert_eq!(circuit.consecutive_failures, 0);
        assert_eq!(circuit.state, CircuitState::Closed, "{transitions:?}");
    }

    #[test]
    fn a_breaker_of_zero_failures_never_opens() {
        let (circuit, transitions) =
            Circuit::default().after(&failures(100, NOW), &breaker(0), NOW);
        assert_eq!(circuit.state, CircuitState::Closed);
        assert!(transitions.is_empty());
    }

    #[test]
    fn a_failed_probe_reopens_with_a_doubled_pause_and_a_success_closes() {
        let (mut circuit, _) = Circuit::default().after(&failures(10, NOW), &breaker(10), NOW);
        assert!(!circuit.probe_due(NOW + 4_999));
        assert!(circuit.probe_due(NOW + 5_000));
        let probe = DeliveryId::generate();
        circuit.half_open(probe.clone(), NOW + 65_000);
        assert!(circuit.admits(&probe));
        assert!(!circuit.admits(&DeliveryId::generate()));
        assert!(!circuit.probe_due(NOW + 6_000), "the probe is held");

        let (circuit, transitions) =
            circuit.after(&[call(NOW + 5_100, false)], &breaker(10), NOW + 5_200);
        assert_eq!(circuit.state, CircuitState::Open);
        assert_eq!(
            transitions,
            vec![Transition::Reopened {
                probe_at: NOW + 5_200 + 10_000
            }]
        );

        let (circuit, transitions) =
            circuit.after(&[call(NOW + 16_000, true)], &breaker(10), NOW + 16_100);
        assert_eq!(circuit.state, CircuitState::Closed);
        assert_eq!(transitions, vec![Transition::Closed]);
        assert_eq!(circuit.opened_times, 0);
        assert_eq!(circuit.failing_since, None);
    }

    #[test]
    fn a_probe_held_by_a_node_that_died_can_be_taken_again() {
        let (mut circuit, _) = Circuit::default().after(&failures(10, NOW), &breaker(10), NOW);
        circuit.half_open(DeliveryId::generate(), NOW + 6_000);
        assert!(!circuit.probe_due(NOW + 5_999));
        assert!(circuit.probe_due(NOW + 6_000));
    }

    #[test]
    fn pauses_double_up_to_the_cap() {
        let breaker = breaker(10);
        let pauses: Vec<i64> = (1..=6).map(|n| breaker.pause_ms(n)).collect();
        assert_eq!(pauses, [5_000, 10_000, 20_000, 40_000, 60_000, 60_000]);
        assert_eq!(breaker.pause_ms(u32::MAX), 60_000);
    }

    #[test]
    fn an_endpoint_failing_longer_than_the_breaker_allows_is_disabled() {
        let (circuit, transitions) =
            Circuit::default().after(&failures(3, NOW), &breaker(10), NOW + 3_599_999);
        assert!(transitions.is_empty());
        let (_, transitions) =
            circuit.after(&failures(1, NOW + 3_600_000), &breaker(10), NOW + 3_600_010);
        assert_eq!(
            transitions,
            vec![Transition::Disabled {
                failing_since: NOW + 10
            }]
        );

        let never = CircuitBreaker {
            disable_after_seconds: 0,
            ..breaker(10)
        };
        let (_, transitions) = Circuit::default().after(&failures(3, NOW), &never, NOW + (1 << 40));
        assert!(transitions.is_empty());
    }
}
