//! The delivery history as users search it: filtered, newest first, a page at
//! a time. Pages are cut by capture sequence (keyset pagination), so a page
//! costs the same however deep into the history it is, and deliveries captured
//! while a user pages do not shift the pages they have not seen yet.

use super::Store;
use super::database::{SqlBuilder, Statement, Value};
use super::deliveries::{delivery_columns, delivery_from_row};
use super::error::StoreError;
use crate::model::{
    Delivery, DeliveryId, DeliveryStatus, EndpointId, EventId, SubscriptionId, TenantId, UnixMillis,
};

/// The most deliveries one page holds, whatever the query asks: one request
/// must not pull a tenant's whole history into memory.
pub const MAX_PAGE_SIZE: u32 = 1_000;

/// The page size of [`DeliveryQuery::default`].
pub const DEFAULT_PAGE_SIZE: u32 = 100;

/// Which deliveries to list. Every filter that is set must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<EndpointId>,
    pub subscription_id: Option<SubscriptionId>,
    pub event_type: Option<String>,
    pub event_id: Option<EventId>,
    /// Created at or after.
    pub since: Option<UnixMillis>,
    /// Created before.
    pub until: Option<UnixMillis>,
    /// At most this many, capped at [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Only deliveries captured before this one: the last delivery of the
    /// previous page.
    pub before: Option<DeliveryId>,
}

impl Default for DeliveryQuery {
    /// Everything, [`DEFAULT_PAGE_SIZE`] at a time.
    fn default() -> Self {
        Self {
            status: None,
            endpoint_id: None,
            subscription_id: None,
            event_type: None,
            event_id: None,
            since: None,
            until: None,
            limit: DEFAULT_PAGE_SIZE,
            before: None,
        }
    }
}

impl Store {
    /// The delivery `id` of `tenant`.
    pub async fn get_delivery(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> Result<Option<Delivery>, StoreError> {
        const GET: &str = concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM deliveries WHERE tenant = $1 AND id = $2"
        );
        let statement = Statement::new(GET).bind(tenant.as_str()).bind(id.as_str());
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!("reading delivery {id}")))?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    /// `tenant`'s deliveries that match `query`, newest first. `NotFound` if
    /// `query.before` names no delivery of the tenant.
    pub async fn list_deliveries(
        &self,
        tenant: &TenantId,
        query: &DeliveryQuery,
    ) -> Result<Vec<Delivery>, StoreError> {
        let before = match &query.before {
            Some(id) => Some(self.capture_sequence(tenant, id).await?),
            None => None,
        };
        // Only the filters that are set reach the SQL, so each combination
        // gets a plan that uses its index.
        let mut conditions: Vec<(&str, Value)> = Vec::new();
        if let Some(status) = query.status {
            conditions.push(("status =", status.as_str().into()));
        }
        if let Some(endpoint) = &query.endpoint_id {
            conditions.push(("endpoint_id =", endpoint.as_str().into()));
        }
        if let Some(subscription) = &query.subscription_id {
            conditions.push(("subscription_id =", subscription.as_str().into()));
        }
        if let Some(event_type) = &query.event_type {
            conditions.push(("event_type =", event_type.as_str().into()));
        }
        if let Some(event) = &query.event_id {
            conditions.push(("event_id =", event.as_str().into()));
        }
        if let Some(since) = query.since {
            conditions.push(("created_at >=", since.into()));
        }
        if let Some(until) = query.until {
            conditions.push(("created_at <", until.into()));
        }
        if let Some(before) = before {
            conditions.push(("seq <", before.into()));
        }
        let mut statement = SqlBuilder::new(self.backend.dialect());
        statement
            .sql(concat!(
                "SELECT ",
                delivery_columns!(),
                " FROM deliveries WHERE tenant = "
            ))
            .parameter(tenant.as_str())
            .and_each(conditions)
            .sql(" ORDER BY seq DESC LIMIT ")
            .parameter(i64::from(query.limit.min(MAX_PAGE_SIZE)));
        // A few dozen shapes at most, each worth keeping prepared.
        let statement = statement.build(true);
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "listing the deliveries of tenant {tenant}"
            )))?;
        rows.iter().map(delivery_from_row).collect()
    }

    /// Where delivery `id` of `tenant` stands in capture order.
    async fn capture_sequence(
        &self,
        tenant: &TenantId,
        id: &DeliveryId,
    ) -> Result<i64, StoreError> {
        let statement = Statement::new("SELECT seq FROM deliveries WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str());
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!("reading delivery {id}")))?;
        match row {
            Some(row) => row.get("seq"),
            None => Err(StoreError::not_found("delivery", id)),
        }
    }
}
