//! The audit log. A change made for a caller is recorded in the transaction
//! that makes it: the API makes its changes through [`Store::audited`], and
//! the few statements that write configuration go through
//! [`Store::write_change`] and [`Store::commit_change`], which add the entry.
//! So there is no change without its entry, and no entry without its change.

use super::Store;
use super::database::{SqlBuilder, Statement, Tx, Value};
use super::error::StoreError;
use super::json::optional_json_column;
use crate::model::{AuditEntry, AuditId, AuditOutcome, Role, TenantId, UnixMillis};
use std::sync::Arc;

/// The most entries one page holds.
pub const MAX_AUDIT_PAGE: u32 = 1_000;

/// The columns of `audit_log`, in the order [`insert`] binds them.
macro_rules! audit_columns {
    () => {
        "tenant, id, at, actor, role, action, object, outcome, detail, source, before, after"
    };
}

/// Which entries to list, newest first. Every filter that is set must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub action: Option<String>,
    pub actor: Option<String>,
    pub object: Option<String>,
    pub outcome: Option<AuditOutcome>,
    /// At or after.
    pub since: Option<UnixMillis>,
    /// Before.
    pub until: Option<UnixMillis>,
    /// Only entries older than this one: the last of the previous page.
    pub before: Option<AuditId>,
    /// At most this many, capped at [`MAX_AUDIT_PAGE`].
    pub limit: u32,
}

impl Store {
    /// This store, recording `entry` with the one change made through it, in
    /// the same transaction. A change that finds nothing to change records
    /// nothing.
    pub fn audited(&self, entry: AuditEntry) -> Store {
        Store {
            audit: Some(Arc::new(entry)),
            ..self.clone()
        }
    }

    /// Records `entry` on its own: an access that was refused.
    pub async fn record_audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.backend
            .write(insert(entry))
            .await
            .map_err(StoreError::database(format!(
                "recording audit entry {}",
                entry.id
            )))?;
        Ok(())
    }

    /// `statement`, and this store's audit entry if it has one, in one
    /// transaction; the entry only if `statement` changed a row.
    pub(super) async fn write_change(&self, statement: Statement) -> Result<u64, sqlx::Error> {
        if self.audit.is_none() {
            return self.backend.write(statement).await;
        }
        let mut tx = self.backend.begin().await?;
        let changed = tx.execute(statement).await?;
        if changed == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        self.commit_change(tx).await?;
        Ok(changed)
    }

    /// Adds this store's audit entry, if it has one, to `tx`, and commits.
    pub(super) async fn commit_change(&self, mut tx: Tx) -> Result<(), sqlx::Error> {
        if let Some(entry) = &self.audit {
            tx.execute(insert(entry)).await?;
        }
        tx.commit().await
    }

    /// `tenant`'s audit entries matching `query`, newest first.
    pub async fn list_audit(
        &self,
        tenant: &TenantId,
        query: &AuditQuery,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        let mut conditions: Vec<(&str, Value)> = Vec::new();
        if let Some(action) = &query.action {
            conditions.push(("action =", action.as_str().into()));
        }
        if let Some(actor) = &query.actor {
            conditions.push(("actor =", actor.as_str().into()));
        }
        if let Some(object) = &query.object {
            conditions.push(("object =", object.as_str().into()));
        }
        if let Some(outcome) = query.outcome {
            conditions.push(("outcome =", outcome.as_str().into()));
        }
        if let Some(since) = query.since {
            conditions.push(("at >=", since.into()));
        }
        if let Some(until) = query.until {
            conditions.push(("at <", until.into()));
        }
        if let Some(before) = &query.before {
            conditions.push(("id <", before.as_str().into()));
        }
        let mut statement = SqlBuilder::new(self.backend.dialect());
        statement
            .sql(concat!(
                "SELECT ",
                audit_columns!(),
                " FROM audit_log WHERE tenant = "
            ))
            .parameter(tenant.as_str())
            .and_each(conditions)
            .sql(" ORDER BY id DESC LIMIT ")
            .parameter(i64::from(query.limit.clamp(1, MAX_AUDIT_PAGE)));
        let rows = self
            .backend
            .fetch_all(statement.build(true))
            .await
            .map_err(StoreError::database(format!(
                "listing the audit log of tenant {tenant}"
            )))?;
        rows.iter().map(entry_from_row).collect()
    }
}

pub(super) fn insert(entry: &AuditEntry) -> Statement {
    const INSERT: &str = concat!(
        "INSERT INTO audit_log (",
        audit_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
    );
    let json = |value: &Option<serde_json::Value>| value.as_ref().map(ToString::to_string);
    Statement::new(INSERT)
        .bind(entry.tenant.as_str())
        .bind(entry.id.as_str())
        .bind(entry.at)
        .bind(entry.actor.as_str())
        .bind(entry.role.as_str())
        .bind(entry.action.as_str())
        .bind(entry.object.as_deref())
        .bind(entry.outcome.as_str())
        .bind(entry.detail.as_deref())
        .bind(entry.source.as_deref())
        .bind(json(&entry.before))
        .bind(json(&entry.after))
}

fn entry_from_row(row: &super::database::Row) -> Result<AuditEntry, StoreError> {
    let id = row.get_id("id", AuditId::parse)?;
    let owner = format!("audit entry {id}");
    let role: String = row.get("role")?;
    let outcome: String = row.get("outcome")?;
    Ok(AuditEntry {
        tenant: row.get_id("tenant", TenantId::parse)?,
        at: row.get("at")?,
        actor: row.get("actor")?,
        role: Role::parse(&role).map_err(|e| StoreError::Corrupt(format!("{owner}: {e}")))?,
        action: row.get("action")?,
        object: row.get("object")?,
        outcome: AuditOutcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("{owner}: outcome {outcome:?}")))?,
        detail: row.get("detail")?,
        source: row.get("source")?,
        before: optional_json_column(row, "before", &owner)?,
        after: optional_json_column(row, "after", &owner)?,
        id,
    })
}
