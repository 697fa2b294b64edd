//! API keys: stored as digests, looked up by digest, revoked rather than deleted
//! (the audit log names them long after).

use super::Store;
use super::database::{Row, Statement, is_unique_violation};
use super::error::StoreError;
use super::json::{json_column, to_json};
use crate::model::{ApiKey, ApiKeyId, Role, TenantId, UnixMillis};

/// The columns of `api_keys`, in the order [`push_api_key`] binds them.
macro_rules! api_key_columns {
    () => {
        "tenant, id, name, role, key_hash, hint, allowed_networks, ingest_per_second, \
         created_at, revoked_at"
    };
}

impl Store {
    /// Stores a new key. `Conflict` if its id or its digest is taken.
    pub async fn create_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        const INSERT: &str = concat!(
            "INSERT INTO api_keys (",
            api_key_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        );
        let mut statement = Statement::new(INSERT);
        push_api_key(&mut statement, key)?;
        self.write_api_key(statement, key).await.map(|_| ())
    }

    /// Stores `key` only if no key exists yet, in any tenant: the bootstrap
    /// key of a fresh installation. Several nodes starting at once store one.
    /// Returns whether `key` was stored.
    pub async fn create_first_api_key(&self, key: &ApiKey) -> Result<bool, StoreError> {
        const INSERT: &str = concat!(
            "INSERT INTO api_keys (",
            api_key_columns!(),
            ") SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE NOT EXISTS (SELECT 1 FROM api_keys)"
        );
        let mut statement = Statement::new(INSERT);
        push_api_key(&mut statement, key)?;
        self.write_api_key(statement, key)
            .await
            .map(|stored| stored == 1)
    }

    async fn write_api_key(&self, statement: Statement, key: &ApiKey) -> Result<u64, StoreError> {
        match self.write_change(statement).await {
            Ok(stored) => Ok(stored),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict(format!(
                "API key {} already exists",
                key.id
            ))),
            Err(error) => Err(StoreError::database(format!("creating API key {}", key.id))(error)),
        }
    }

    /// The key whose digest is `key_hash`, revoked or not, in whichever tenant.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>, StoreError> {
        const GET: &str = concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE key_hash = $1"
        );
        let row = self
            .backend
            .fetch_optional(Statement::new(GET).bind(key_hash))
            .await
            .map_err(StoreError::database("looking up an API key"))?;
        row.as_ref().map(api_key_from_row).transpose()
    }

    /// `tenant`'s keys, revoked ones included, oldest first.
    pub async fn list_api_keys(&self, tenant: &TenantId) -> Result<Vec<ApiKey>, StoreError> {
        const LIST: &str = concat!(
            "SELECT ",
            api_key_columns!(),
            " FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
        );
        let rows = self
            .backend
            .fetch_all(Statement::new(LIST).bind(tenant.as_str()))
            .await
            .map_err(StoreError::database(format!(
                "listing the API keys of tenant {tenant}"
            )))?;
        rows.iter().map(api_key_from_row).collect()
    }

    /// Revokes key `id` of `tenant` from `now` on and returns it; a key
    /// revoked before keeps its first revocation time. `NotFound` if no such key.
    pub async fn revoke_api_key(
        &self,
        tenant: &TenantId,
        id: &ApiKeyId,
        now: UnixMillis,
    ) -> Result<ApiKey, StoreError> {
        const REVOKE: &str = concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $3) \
             WHERE tenant = $1 AND id = $2 RETURNING ",
            api_key_columns!()
        );
        let statement = Statement::new(REVOKE)
            .bind(tenant.as_str())
            .bind(id.as_str())
            .bind(now);
        let doing = || format!("revoking API key {id}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let Some(row) = tx
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(doing()))?
        else {
            return Err(StoreError::not_found("API key", id));
        };
        let revoked = api_key_from_row(&row)?;
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))?;
        Ok(revoked)
    }
}

fn push_api_key(statement: &mut Statement, key: &ApiKey) -> Result<(), StoreError> {
    statement.push(key.tenant.as_str());
    statement.push(key.id.as_str());
    statement.push(key.name.as_str());
    statement.push(key.role.as_str());
    statement.push(key.key_hash.as_str());
    statement.push(key.hint.as_str());
    statement.push(to_json(
        &key.allowed_networks,
        format_args!("the networks of API key {}", key.id),
    )?);
    statement.push(key.ingest_per_second.map(i64::from));
    statement.push(key.created_at);
    statement.push(key.revoked_at);
    Ok(())
}

fn api_key_from_row(row: &Row) -> Result<ApiKey, StoreError> {
    let id = row.get_id("id", ApiKeyId::parse)?;
    let role: String = row.get("role")?;
    let role = Role::parse(&role)
        .map_err(|error| StoreError::Corrupt(format!("API key {id}: {error}")))?;
    Ok(ApiKey {
        tenant: row.get_id("tenant", TenantId::parse)?,
        name: row.get("name")?,
        role,
        key_hash: row.get("key_hash")?,
        hint: row.get("hint")?,
        allowed_networks: json_column(row, "allowed_networks", format_args!("API key {id}"))?,
        ingest_per_second: row
            .get::<Option<i64>>("ingest_per_second")?
            .map(|rate| u32::try_from(rate).unwrap_or(u32::MAX)),
        created_at: row.get("created_at")?,
        revoked_at: row.get("revoked_at")?,
        id,
    })
}
