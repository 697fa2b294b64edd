//! Subscriptions: which events go to which endpoint, and what happens to them
//! on the way.

use super::database::{Row, Statement, Tx, is_unique_violation};
use super::error::StoreError;
use super::json::{json_column, optional_json_column, to_json};
use super::queue;
use super::{Page, Store};
use crate::model::{
    EndpointId, ON_HOLD, Pause, Subscription, SubscriptionId, TenantId, UnixMillis, now_millis,
};

/// The columns of `subscriptions`, in the order [`push_subscription`] binds
/// them, then the pause.
macro_rules! subscription_columns {
    () => {
        "tenant, id, name, endpoint_id, event_types, filter_expr, template, plugins, batching, \
         ordering_key, enabled, created_at, updated_at, paused_reason, paused_at"
    };
}

impl Store {
    /// Stores a new subscription. `NotFound` if its endpoint is not one of its
    /// tenant's; `Conflict` if its id is taken.
    pub async fn create_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        const INSERT: &str = concat!(
            "INSERT INTO subscriptions (",
            subscription_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        );
        let doing = || format!("creating subscription {}", subscription.id);
        let mut statement = Statement::new(INSERT);
        push_subscription(&mut statement, subscription)?;
        statement.push(
            subscription
                .paused
                .as_ref()
                .map(|pause| pause.reason.as_str()),
        );
        statement.push(subscription.paused.as_ref().map(|pause| pause.at));
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        check_endpoint_exists(&mut tx, &subscription.tenant, &subscription.endpoint_id).await?;
        match tx.execute(statement).await {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                return Err(StoreError::Conflict(format!(
                    "subscription {} already exists",
                    subscription.id
                )));
            }
            Err(error) => return Err(StoreError::database(doing())(error)),
        }
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))
    }

    /// The subscription `id` of `tenant`.
    pub async fn get_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> Result<Option<Subscription>, StoreError> {
        const GET: &str = concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE tenant = $1 AND id = $2"
        );
        let statement = Statement::new(GET).bind(tenant.as_str()).bind(id.as_str());
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!("reading subscription {id}")))?;
        row.as_ref().map(subscription_from_row).transpose()
    }

    /// A page of `tenant`'s subscriptions, oldest first (ids sort by creation).
    pub async fn list_subscriptions(
        &self,
        tenant: &TenantId,
        page: Page<'_>,
    ) -> Result<Vec<Subscription>, StoreError> {
        const LIST: &str = concat!(
            "SELECT ",
            subscription_columns!(),
            " FROM subscriptions WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
        );
        let statement = Statement::new(LIST)
            .bind(tenant.as_str())
            .bind(page.after.unwrap_or_default())
            .bind(i64::from(page.limit));
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "listing the subscriptions of tenant {tenant}"
            )))?;
        rows.iter().map(subscription_from_row).collect()
    }

    /// What `tenant`'s events are matched against at capture: the enabled
    /// subscriptions, oldest first, each with whether its endpoint is enabled
    /// (a disabled endpoint's new deliveries are kept as skipped).
    pub async fn capturing_subscriptions(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<(Subscription, bool)>, StoreError> {
        const ENABLED: &str = concat!(
            "SELECT ",
            subscription_columns!(),
            ", (SELECT enabled FROM endpoints \
                WHERE endpoints.tenant = subscriptions.tenant \
                  AND endpoints.id = subscriptions.endpoint_id) AS endpoint_enabled \
             FROM subscriptions WHERE tenant = $1 AND enabled = $2 ORDER BY created_at, id"
        );
        let statement = Statement::new(ENABLED).bind(tenant.as_str()).bind(true);
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "listing the enabled subscriptions of tenant {tenant}"
            )))?;
        rows.iter()
            .map(|row| {
                let endpoint_enabled = row.get::<Option<bool>>("endpoint_enabled")?;
                Ok((subscription_from_row(row)?, endpoint_enabled == Some(true)))
            })
            .collect()
    }

    /// Replaces the stored subscription with `subscription` (all but
    /// `created_at`, and its pause, which only [`Store::pause_subscription`]
    /// and [`Store::resume_subscription`] change). `NotFound` if it, or its
    /// endpoint, does not exist.
    pub async fn update_subscription(&self, subscription: &Subscription) -> Result<(), StoreError> {
        const UPDATE: &str = "UPDATE subscriptions SET name = $3, endpoint_id = $4, \
             event_types = $5, filter_expr = $6, template = $7, plugins = $8, batching = $9, \
             ordering_key = $10, enabled = $11, updated_at = $13 \
             WHERE tenant = $1 AND id = $2";
        let doing = || format!("updating subscription {}", subscription.id);
        let mut statement = Statement::new(UPDATE);
        push_subscription(&mut statement, subscription)?;
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        check_endpoint_exists(&mut tx, &subscription.tenant, &subscription.endpoint_id).await?;
        let changed = tx
            .execute(statement)
            .await
            .map_err(StoreError::database(doing()))?;
        if changed == 0 {
            return Err(StoreError::not_found("subscription", &subscription.id));
        }
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))
    }

    /// Pauses subscription `id` for `reason`, if it is not paused already, and
    /// holds its pending deliveries; returns whether it paused it. Audited
    /// when this store carries an entry.
    pub async fn pause_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        reason: &str,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.change_pause(tenant, id, Some(reason), now).await
    }

    /// Resumes subscription `id`, if it is paused, and releases its held
    /// deliveries, due `now`; returns whether it resumed it. `NotFound` if
    /// there is no such subscription.
    pub async fn resume_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        self.change_pause(tenant, id, None, now).await
    }

    /// Pauses subscription `id` for `reason`, or resumes it (`None`), with its
    /// pending deliveries held or released in the same transaction.
    async fn change_pause(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
        reason: Option<&str>,
        now: UnixMillis,
    ) -> Result<bool, StoreError> {
        let doing = || match reason {
            Some(_) => format!("pausing subscription {id}"),
            None => format!("resuming subscription {id}"),
        };
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let change = match reason {
            Some(reason) => Statement::new(
                "UPDATE subscriptions SET paused_reason = $3, paused_at = $4 \
                 WHERE tenant = $1 AND id = $2 AND paused_at IS NULL",
            )
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(reason)
            .bind(now),
            None => Statement::new(
                "UPDATE subscriptions SET paused_reason = NULL, paused_at = NULL \
                 WHERE tenant = $1 AND id = $2 AND paused_at IS NOT NULL",
            )
            .bind(tenant.as_str())
            .bind(id.as_str()),
        };
        let changed = tx
            .execute(change)
            .await
            .map_err(StoreError::database(doing()))?;
        if changed == 0 {
            tx.rollback().await.map_err(StoreError::database(doing()))?;
            return match self.get_subscription(tenant, id).await? {
                Some(_) => Ok(false),
                None => Err(StoreError::not_found("subscription", id)),
            };
        }
        let (held_from, due, note) = match reason {
            Some(reason) => (
                None,
                ON_HOLD,
                Some(format!("held: the subscription is paused ({reason})")),
            ),
            None => (Some(ON_HOLD), now, None),
        };
        queue::reschedule_pending_of_subscription(
            &mut tx,
            tenant,
            id,
            held_from,
            due,
            note.as_deref(),
            now,
        )
        .await?;
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))?;
        Ok(true)
    }

    /// Deletes subscription `id`. Its delivery history stays; its pending
    /// deliveries are dropped, since nothing says any more how to make them.
    pub async fn delete_subscription(
        &self,
        tenant: &TenantId,
        id: &SubscriptionId,
    ) -> Result<(), StoreError> {
        let doing = || format!("deleting subscription {id}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let delete = Statement::new("DELETE FROM subscriptions WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str());
        let deleted = tx
            .execute(delete)
            .await
            .map_err(StoreError::database(doing()))?;
        if deleted == 0 {
            return Err(StoreError::not_found("subscription", id));
        }
        queue::drop_pending_of_subscription(
            &mut tx,
            tenant,
            id,
            &format!("subscription {id} was deleted"),
            now_millis(),
        )
        .await?;
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))
    }
}

/// A subscription must deliver to an endpoint of its own tenant.
async fn check_endpoint_exists(
    tx: &mut Tx,
    tenant: &TenantId,
    endpoint: &EndpointId,
) -> Result<(), StoreError> {
    let statement =
        Statement::new("SELECT 1 AS found FROM endpoints WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(endpoint.as_str());
    let found = tx
        .fetch_optional(statement)
        .await
        .map_err(StoreError::database(format!("reading endpoint {endpoint}")))?;
    match found {
        Some(_) => Ok(()),
        None => Err(StoreError::not_found("endpoint", endpoint)),
    }
}

fn push_subscription(
    statement: &mut Statement,
    subscription: &Subscription,
) -> Result<(), StoreError> {
    let owner = || format!("subscription {}", subscription.id);
    statement.push(subscription.tenant.as_str());
    statement.push(subscription.id.as_str());
    statement.push(subscription.name.as_str());
    statement.push(subscription.endpoint_id.as_str());
    statement.push(to_json(
        &subscription.event_types,
        format_args!("the event types of {}", owner()),
    )?);
    statement.push(subscription.filter.as_deref());
    let template = subscription
        .template
        .as_ref()
        .map(|template| to_json(template, format_args!("the template of {}", owner())))
        .transpose()?;
    statement.push(template);
    statement.push(to_json(
        &subscription.plugins,
        format_args!("the plugins of {}", owner()),
    )?);
    let batching = subscription
        .batching
        .as_ref()
        .map(|batching| to_json(batching, format_args!("the batching of {}", owner())))
        .transpose()?;
    statement.push(batching);
    statement.push(subscription.ordering_key.as_deref());
    statement.push(subscription.enabled);
    statement.push(subscription.created_at);
    statement.push(subscription.updated_at);
    Ok(())
}

fn subscription_from_row(row: &Row) -> Result<Subscription, StoreError> {
    let id = row.get_id("id", SubscriptionId::parse)?;
    let owner = format!("subscription {id}");
    Ok(Subscription {
        tenant: row.get_id("tenant", TenantId::parse)?,
        name: row.get("name")?,
        endpoint_id: row.get_id("endpoint_id", EndpointId::parse)?,
        event_types: json_column(row, "event_types", &owner)?,
        filter: row.get("filter_expr")?,
        template: optional_json_column(row, "template", &owner)?,
        plugins: json_column(row, "plugins", &owner)?,
        batching: optional_json_column(row, "batching", &owner)?,
        ordering_key: row.get("ordering_key")?,
        enabled: row.get("enabled")?,
        paused: match (
            row.get::<Option<String>>("paused_reason")?,
            row.get::<Option<i64>>("paused_at")?,
        ) {
            (Some(reason), Some(at)) => Some(Pause { reason, at }),
            _ => None,
        },
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        id,
    })
}
