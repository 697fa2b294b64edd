//! Endpoint health in the store: circuits moved by recorded requests, the
//! probe that half-opens one, parked deliveries released when it closes,
//! per-minute tallies and backlog, disabling (pending kept as skipped) and
//! recovering in capture order.

use super::backends::on_both_backends;
use super::fixtures::{configured, delivery, event, tenant};
use crate::health::{Call, CircuitState, HealthState, Transition};
use crate::model::{
    CircuitBreaker, Delivery, DeliveryStatus, Endpoint, PARKED, Subscription, now_millis,
};
use crate::store::{DeliveryUpdate, EndpointCall, NewEvent, Store};

const LEASE_MS: u32 = 30_000;

async fn capture(store: &Store, subscription: &Subscription, count: usize) -> Vec<Delivery> {
    let batch: Vec<NewEvent> = (0..count)
        .map(|_| {
            let event = event(&subscription.tenant);
            let delivery = Delivery {
                next_attempt_at: now_millis() - 1,
                ..delivery(&event, subscription)
            };
            NewEvent {
                event,
                deliveries: vec![delivery],
            }
        })
        .collect();
    store.insert_events(&batch).await.unwrap();
    batch.into_iter().flat_map(|new| new.deliveries).collect()
}

fn call(endpoint: &Endpoint, ok: bool, duration_ms: u32) -> EndpointCall {
    EndpointCall {
        tenant: endpoint.tenant.clone(),
        endpoint_id: endpoint.id.clone(),
        call: Call {
            started_at: now_millis(),
            duration_ms,
            failure: (!ok).then(|| (Some(503), "the endpoint answered 503".to_owned())),
        },
    }
}

/// `delivery` left pending, parked or due `next`, without an attempt.
fn waiting(delivery: &Delivery, next: i64) -> DeliveryUpdate {
    DeliveryUpdate {
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        status: DeliveryStatus::Pending,
        attempts: delivery.attempts,
        next_attempt_at: next,
        last_error: Some("waiting".into()),
        attempt: None,
        batch_id: None,
    }
}

async fn claim_all(store: &Store) -> Vec<Delivery> {
    store
        .claim_due_deliveries(now_millis(), 100, LEASE_MS, &[])
        .await
        .unwrap()
}

#[tokio::test]
async fn failures_open_the_circuit_a_probe_half_opens_it_and_a_success_releases_the_parked() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (mut endpoint, subscription) = configured(&store, &acme).await;
        endpoint.circuit_breaker = CircuitBreaker {
            failures: 3,
            pause_seconds: 60,
            ..CircuitBreaker::default()
        };
        store.update_endpoint(&endpoint).await.unwrap();
        let captured = capture(&store, &subscription, 4).await;
        let claimed = claim_all(&store).await;
        assert_eq!(claimed.len(), 4);

        // Two failures: still closed. The third opens it.
        let changes = store
            .record_outcomes(Vec::new(), &[call(&endpoint, false, 40), call(&endpoint, false, 40)])
            .await
            .unwrap();
        assert!(changes.is_empty(), "{changes:?}");
        let changes = store
            .record_outcomes(
                // The worker parks what it finds the circuit open for.
                captured.iter().map(|d| waiting(d, PARKED)).collect(),
                &[call(&endpoint, false, 900)],
            )
            .await
            .unwrap();
        assert!(
            matches!(changes[..], [ref change] if matches!(change.transition, Transition::Opened { failures: 3, .. })),
            "{changes:?}"
        );
        let circuit = store.get_circuit(&acme, &endpoint.id).await.unwrap();
        assert_eq!(circuit.state, CircuitState::Open);
        assert_eq!(store.endpoints_with_open_circuits().await.unwrap(), [endpoint.id.clone()]);
        assert!(claim_all(&store).await.is_empty(), "parked deliveries are not due");

        let health = &store
            .endpoint_health(&acme, &[(endpoint.id.clone(), true)], now_millis())
            .await
            .unwrap()[0];
        assert_eq!(health.state, HealthState::Failing);
        assert_eq!(health.periods[0].failures, 3);
        assert_eq!(health.periods[2].failures, 3);
        assert_eq!(health.backlog.pending, 4);
        assert_eq!(health.backlog.waiting_for_circuit, 4);
        assert!(health.backlog.oldest_at.is_some());
        let p99 = health.periods[0].latency_quantile_ms(0.99).unwrap();
        assert!((500..=1_000).contains(&p99), "{p99}");

        // Before the pause is over nothing happens; after it, the oldest
        // parked delivery becomes the probe, due now.
        assert!(store.start_due_probes(now_millis(), LEASE_MS).await.unwrap().is_empty());
        let later = now_millis() + 61_000;
        let probes = store.start_due_probes(later, LEASE_MS).await.unwrap();
        assert!(
            matches!(&probes[..], [change] if change.transition == Transition::HalfOpened { probe: captured[0].id.clone() }),
            "{probes:?}"
        );
        let circuit = store.get_circuit(&acme, &endpoint.id).await.unwrap();
        assert_eq!(circuit.state, CircuitState::HalfOpen);
        assert!(circuit.admits(&captured[0].id) && !circuit.admits(&captured[1].id));
        let probe = store
            .claim_due_deliveries(later, 100, LEASE_MS, &[])
            .await
            .unwrap();
        assert_eq!(probe.len(), 1);
        assert_eq!(probe[0].id, captured[0].id);
        // Held while the probe runs.
        assert!(store.start_due_probes(later + 1, LEASE_MS).await.unwrap().is_empty());

        // The probe succeeds: closed, and the parked deliveries are due.
        let mut delivered = waiting(&probe[0], 0);
        delivered.status = DeliveryStatus::Succeeded;
        let changes = store
            .record_outcomes(vec![delivered], &[call(&endpoint, true, 20)])
            .await
            .unwrap();
        assert!(
            matches!(&changes[..], [change] if change.transition == Transition::Closed),
            "{changes:?}"
        );
        assert!(store.endpoints_with_open_circuits().await.unwrap().is_empty());
        let released = claim_all(&store).await;
        let ids: Vec<_> = released.iter().map(|d| d.id.clone()).collect();
        let expected: Vec<_> = captured[1..].iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, expected, "released in capture order");

        let query = crate::store::AuditQuery {
            limit: 10,
            ..Default::default()
        };
        let audit = store.list_audit(&acme, &query).await.unwrap();
        let actions: Vec<&str> = audit.iter().rev().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "endpoint.circuit.open",
                "endpoint.circuit.half_open",
                "endpoint.circuit.close"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_disabled_endpoint_keeps_its_deliveries_skipped_until_recovered_in_capture_order() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, subscription) = configured(&store, &acme).await;
        let captured = capture(&store, &subscription, 3).await;
        // One is in flight: its worker settles it.
        let in_flight = store
            .claim_due_deliveries(now_millis(), 1, LEASE_MS, &[])
            .await
            .unwrap();
        let now = now_millis();
        assert!(
            store
                .disable_endpoint(&acme, &endpoint.id, "maintenance", now)
                .await
                .unwrap()
        );
        assert!(
            !store
                .disable_endpoint(&acme, &endpoint.id, "again", now)
                .await
                .unwrap()
        );
        let stored = store
            .get_endpoint(&acme, &endpoint.id)
            .await
            .unwrap()
            .unwrap();
        assert!(!stored.enabled);
        assert_eq!(stored.disabled_reason.as_deref(), Some("maintenance"));
        for delivery in &captured[1..] {
            let kept = store
                .get_delivery(&acme, &delivery.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(kept.status, DeliveryStatus::Skipped);
            assert!(kept.last_error.unwrap().contains("maintenance"));
        }
        let leased = store
            .get_delivery(&acme, &in_flight[0].id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(leased.status, DeliveryStatus::Pending, "left to its worker");
        let mut skipped = waiting(&in_flight[0], now);
        skipped.status = DeliveryStatus::Skipped;
        store.finish_deliveries(vec![skipped]).await.unwrap();

        let health = &store
            .endpoint_health(&acme, &[(endpoint.id.clone(), false)], now_millis())
            .await
            .unwrap()[0];
        assert_eq!(health.state, HealthState::Disabled);
        assert_eq!(health.backlog.pending, 0);

        assert!(
            store
                .enable_endpoint(&acme, &endpoint.id, now_millis())
                .await
                .unwrap()
        );
        assert!(
            !store
                .enable_endpoint(&acme, &endpoint.id, now_millis())
                .await
                .unwrap()
        );
        // Only those captured since the time given.
        let since = captured[1].created_at;
        let recovered = store
            .recover_skipped(&acme, &endpoint.id, Some(since + 1_000_000), now_millis())
            .await
            .unwrap();
        assert_eq!(recovered, 0);
        let recovered = store
            .recover_skipped(&acme, &endpoint.id, None, now_millis())
            .await
            .unwrap();
        assert_eq!(recovered, 3);
        let claimed = claim_all(&store).await;
        let ids: Vec<_> = claimed.iter().map(|d| d.id.clone()).collect();
        let expected: Vec<_> = captured.iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, expected, "due again in capture order");
        assert!(claimed.iter().all(|d| d.status == DeliveryStatus::Pending));
    })
    .await;
}

#[tokio::test]
async fn skipping_and_recovering_go_in_chunks_and_keep_capture_order() {
    on_both_backends(|store| async move {
        let acme = tenant("acme");
        let (endpoint, subscription) = configured(&store, &acme).await;
        // More than one chunk's worth.
        let mut captured = Vec::new();
        for _ in 0..5 {
            captured.extend(capture(&store, &subscription, 500).await);
        }
        let now = now_millis();
        assert!(
            store
                .disable_endpoint(&acme, &endpoint.id, "moved", now)
                .await
                .unwrap()
        );
        assert!(claim_all(&store).await.is_empty(), "nothing is pending");
        assert!(
            store
                .enable_endpoint(&acme, &endpoint.id, now)
                .await
                .unwrap()
        );
        let recovered = store
            .recover_skipped(&acme, &endpoint.id, None, now_millis())
            .await
            .unwrap();
        assert_eq!(recovered, 2_500);
        let mut claimed = Vec::new();
        loop {
            let round = claim_all(&store).await;
            if round.is_empty() {
                break;
            }
            claimed.extend(round.into_iter().map(|d| d.id));
        }
        let expected: Vec<_> = captured.iter().map(|d| d.id.clone()).collect();
        assert_eq!(claimed, expected, "every one, in capture order");
        // Recovered once: nothing is left skipped.
        let again = store
            .recover_skipped(&acme, &endpoint.id, None, now_millis())
            .await
            .unwrap();
        assert_eq!(again, 0);
    })
    .await;
}
