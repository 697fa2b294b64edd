//! Endpoints' circuits as workers see them (the process's
//! [`crate::health::OpenCircuits`], kept up to date with the changes its
//! workers record): the probes that half-open circuits whose pause is over,
//! whether a delivery may go, and what a worker does when a circuit changes.

use super::Worker;
use super::outcome::Step;
use crate::health::{self, CircuitState, Transition};
use crate::model::{Delivery, Endpoint, EndpointId, TenantId, now_millis};
use crate::store::CircuitChange;

impl Worker {
    /// Once every [`health::OpenCircuits`] reread, by one of the process's
    /// workers: half-opens the circuits whose pause is over (their probe
    /// falls due now) and reads which circuits are not closed. A failure is
    /// logged: the next round tries again.
    pub(super) async fn watch_circuits(&self) {
        let circuits = &self.outbound.circuits;
        if !circuits.reread_due() {
            return;
        }
        match self
            .store
            .start_due_probes(now_millis(), self.lease_ms())
            .await
        {
            Ok(changes) => {
                for change in &changes {
                    log_change(change);
                }
                if !changes.is_empty() {
                    self.wake.notify_waiters();
                }
            }
            Err(error) => tracing::error!(%error, "cannot start the probes of open circuits"),
        }
        match self.store.endpoints_with_open_circuits().await {
            Ok(endpoints) => circuits.replace(endpoints),
            Err(error) => tracing::error!(%error, "cannot read the open circuits"),
        }
    }

    /// Whether `deliveries` (one, or a batch's members) may go to
    /// `endpoint`: yes while its circuit is closed or when one of them is the
    /// circuit's probe; else they wait, parked.
    pub(super) async fn circuit_admits(
        &self,
        endpoint: &Endpoint,
        deliveries: &[Delivery],
    ) -> Result<(), Step> {
        if !self.outbound.circuits.may_be_open(&endpoint.id) {
            return Ok(());
        }
        // Read again: the set may be a little stale, and only the stored
        // circuit says which delivery is the probe.
        let circuit = self
            .store
            .get_circuit(&endpoint.tenant, &endpoint.id)
            .await
            .map_err(|error| Step::retry_later(error.to_string()))?;
        if deliveries
            .iter()
            .any(|delivery| circuit.admits(&delivery.id))
        {
            return Ok(());
        }
        let next = match (circuit.state, circuit.probe_at) {
            (CircuitState::Open, Some(at)) => format!("; next probe at {at} (unix ms)"),
            _ => "; a probe is under way".to_owned(),
        };
        Err(Step::Park(format!(
            "the circuit of endpoint {} is open after {} failed attempts in a row{next}",
            endpoint.id, circuit.consecutive_failures
        )))
    }

    /// Follows the circuits' changes this worker recorded: the process's
    /// view of open circuits, the log, the workers woken when deliveries are released, and
    /// `weft.endpoint.disabled` in the tenant's stream.
    pub(super) async fn circuits_changed(&self, changes: Vec<CircuitChange>) {
        for change in changes {
            log_change(&change);
            let open = !matches!(
                change.transition,
                Transition::Closed | Transition::Disabled { .. }
            );
            self.outbound.circuits.set(&change.endpoint_id, open);
            match change.transition {
                Transition::Closed => self.wake.notify_waiters(),
                Transition::Disabled { .. } => {
                    self.objects.endpoints.invalidate(&change.endpoint_id).await;
                    self.skip_pending(&change.tenant, &change.endpoint_id).await;
                    self.announce_disabled(&change.tenant, &change.endpoint_id, "circuit breaker")
                        .await;
                }
                _ => {}
            }
        }
    }

    /// Keeps the pending deliveries of endpoint `id` of `tenant`, which the
    /// breaker disabled, as skipped. A failure is logged: they wait until the
    /// endpoint is enabled, and one that comes due meanwhile is skipped.
    async fn skip_pending(&self, tenant: &TenantId, id: &EndpointId) {
        let skipped = match self.store.get_endpoint(tenant, id).await {
            Ok(Some(endpoint)) => {
                let reason = endpoint.disabled_reason.as_deref().unwrap_or("disabled");
                self.store
                    .skip_pending_of_endpoint(tenant, id, reason, now_millis())
                    .await
            }
            Ok(None) => return,
            Err(error) => Err(error),
        };
        if let Err(error) = skipped {
            tracing::error!(%error, endpoint = %id, "cannot skip the deliveries of a disabled endpoint");
        }
    }

    /// Publishes `weft.endpoint.disabled` for endpoint `id` of `tenant`,
    /// disabled `by` the circuit breaker, a 410 Gone, ….
    pub(super) async fn announce_disabled(&self, tenant: &TenantId, id: &EndpointId, by: &str) {
        let endpoint = match self.store.get_endpoint(tenant, id).await {
            Ok(Some(endpoint)) => endpoint,
            Ok(None) => return,
            Err(error) => {
                tracing::error!(%error, endpoint = %id, "cannot announce a disabled endpoint");
                return;
            }
        };
        let event = health::endpoint_disabled_event(&endpoint, by, now_millis());
        if let Err(error) = self
            .ingest
            .publish_operational(tenant, health::ENDPOINT_DISABLED, event)
            .await
        {
            tracing::error!(%error, endpoint = %endpoint.id, "cannot publish weft.endpoint.disabled");
        }
    }
}

fn log_change(change: &CircuitChange) {
    let (tenant, endpoint) = (&change.tenant, &change.endpoint_id);
    match &change.transition {
        Transition::Opened { failures, probe_at } => {
            tracing::warn!(%tenant, %endpoint, failures, probe_at, "circuit opened: deliveries wait")
        }
        Transition::Reopened { probe_at } => {
            tracing::info!(%tenant, %endpoint, probe_at, "probe failed: circuit open again")
        }
        Transition::HalfOpened { probe } => {
            tracing::info!(%tenant, %endpoint, %probe, "circuit half-open: probing")
        }
        Transition::Closed => tracing::info!(%tenant, %endpoint, "circuit closed: deliveries go"),
        Transition::Disabled { failing_since } => {
            tracing::warn!(%tenant, %endpoint, failing_since, "endpoint disabled after failing too long")
        }
    }
}
