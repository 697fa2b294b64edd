//! Endpoints: where deliveries go, and how they are sent and retried.
//!
//! Their secrets (signing secrets, headers, authentication) are stored sealed
//! (see [`crate::secrets`]), each bound to its endpoint and column; a value
//! written in clear by an earlier release is read as it is, and sealed by
//! [`Store::reseal_endpoint_secrets`].

use super::database::{Row, Statement, is_unique_violation};
use super::error::StoreError;
use super::json::{decode, json_column, optional_json_column, to_json};
use super::{Page, Store};
use crate::model::{CircuitBreaker, Endpoint, EndpointId, PreviousSecret, TenantId};
use crate::secrets::{Keyring, is_sealed};

/// The columns of `endpoints`, in the order [`push_endpoint`] binds them.
macro_rules! endpoint_columns {
    () => {
        "tenant, id, name, url, method, headers, secret, timeout_ms, retry, enabled, \
         disabled_reason, created_at, updated_at, previous_secret, previous_secret_expires_at, auth, tls, rate_limit, max_concurrency, \
         secret_headers, circuit_breaker"
    };
}

impl Store {
    /// Stores a new endpoint. `Conflict` if its id is taken in its tenant.
    pub async fn create_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        const INSERT: &str = concat!(
            "INSERT INTO endpoints (",
            endpoint_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
        );
        let mut statement = Statement::new(INSERT);
        self.push_endpoint(&mut statement, endpoint)?;
        match self.write_change(statement).await {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error) => Err(StoreError::Conflict(format!(
                "endpoint {} already exists",
                endpoint.id
            ))),
            Err(error) => Err(StoreError::database(format!(
                "creating endpoint {}",
                endpoint.id
            ))(error)),
        }
    }

    /// The endpoint `id` of `tenant`.
    pub async fn get_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<Option<Endpoint>, StoreError> {
        const GET: &str = concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints WHERE tenant = $1 AND id = $2"
        );
        let statement = Statement::new(GET).bind(tenant.as_str()).bind(id.as_str());
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!("reading endpoint {id}")))?;
        row.as_ref()
            .map(|row| self.endpoint_from_row(row))
            .transpose()
    }

    /// A page of `tenant`'s endpoints, oldest first (ids sort by creation).
    pub async fn list_endpoints(
        &self,
        tenant: &TenantId,
        page: Page<'_>,
    ) -> Result<Vec<Endpoint>, StoreError> {
        const LIST: &str = concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM endpoints WHERE tenant = $1 AND id > $2 ORDER BY id LIMIT $3"
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
                "listing the endpoints of tenant {tenant}"
            )))?;
        rows.iter().map(|row| self.endpoint_from_row(row)).collect()
    }

    /// Replaces the stored endpoint with `endpoint` (all but `created_at`).
    /// `NotFound` if it does not exist.
    pub async fn update_endpoint(&self, endpoint: &Endpoint) -> Result<(), StoreError> {
        const UPDATE: &str = "UPDATE endpoints SET name = $3, url = $4, method = $5, headers = $6, \
             secret = $7, timeout_ms = $8, retry = $9, enabled = $10, disabled_reason = $11, \
             updated_at = $13, previous_secret = $14, previous_secret_expires_at = $15, auth = $16, tls = $17, \
             rate_limit = $18, max_concurrency = $19, secret_headers = $20, \
             circuit_breaker = $21 \
             WHERE tenant = $1 AND id = $2";
        let mut statement = Statement::new(UPDATE);
        self.push_endpoint(&mut statement, endpoint)?;
        let changed = self
            .write_change(statement)
            .await
            .map_err(StoreError::database(format!(
                "updating endpoint {}",
                endpoint.id
            )))?;
        if changed == 0 {
            return Err(StoreError::not_found("endpoint", &endpoint.id));
        }
        Ok(())
    }

    /// Deletes endpoint `id`. `Conflict` naming the subscriptions that still
    /// deliver to it; its delivery history stays.
    pub async fn delete_endpoint(
        &self,
        tenant: &TenantId,
        id: &EndpointId,
    ) -> Result<(), StoreError> {
        let doing = || format!("deleting endpoint {id}");
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let users = Statement::new(
            "SELECT id FROM subscriptions WHERE tenant = $1 AND endpoint_id = $2 ORDER BY id",
        )
        .bind(tenant.as_str())
        .bind(id.as_str());
        let users = tx
            .fetch_all(users)
            .await
            .map_err(StoreError::database(doing()))?
            .iter()
            .map(|row| row.get::<String>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        if !users.is_empty() {
            return Err(StoreError::Conflict(format!(
                "endpoint {id} is still used by subscriptions {}: delete them or move them to another endpoint first",
                users.join(", ")
            )));
        }
        let delete = Statement::new("DELETE FROM endpoints WHERE tenant = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.as_str());
        let deleted = tx
            .execute(delete)
            .await
            .map_err(StoreError::database(doing()))?;
        if deleted == 0 {
            return Err(StoreError::not_found("endpoint", id));
        }
        self.commit_change(tx)
            .await
            .map_err(StoreError::database(doing()))
    }
}

/// The columns of `endpoints` that hold secrets, sealed.
/// The URL among them: its query string may carry a token.
const SEALED_COLUMNS: [&str; 6] = ["url", "secret", "previous_secret", "headers", "auth", "tls"];

/// What a sealed value of `column` of endpoint `tenant`/`id` is bound to.
fn sealing_context(tenant: &str, id: &str, column: &str) -> String {
    format!("endpoint {tenant}/{id}/{column}")
}

impl Store {
    fn keyring(&self) -> Result<&Keyring, StoreError> {
        self.keyring.as_deref().ok_or_else(|| {
            StoreError::Sealed(
                "no master key: endpoints' secrets are sealed at rest \
                 (give --master-key-file or WEFT_MASTER_KEY)"
                    .into(),
            )
        })
    }

    /// `plaintext` sealed for `column` of `endpoint`.
    fn seal(
        &self,
        endpoint: &Endpoint,
        column: &str,
        plaintext: &str,
    ) -> Result<String, StoreError> {
        let context = sealing_context(endpoint.tenant.as_str(), endpoint.id.as_str(), column);
        Ok(self.keyring()?.seal(plaintext, &context))
    }

    /// `value` as JSON, sealed for `column` of `endpoint`.
    fn seal_json(
        &self,
        endpoint: &Endpoint,
        column: &str,
        value: &impl serde::Serialize,
    ) -> Result<String, StoreError> {
        let json = to_json(
            value,
            format_args!("the {column} of endpoint {}", endpoint.id),
        )?;
        self.seal(endpoint, column, &json)
    }

    /// The sealed JSON in `column` of endpoint `tenant`/`id`'s `row`, opened
    /// and decoded.
    fn open_json<T: serde::de::DeserializeOwned>(
        &self,
        row: &Row,
        tenant: &TenantId,
        id: &EndpointId,
        column: &str,
    ) -> Result<Option<T>, StoreError> {
        row.get::<Option<String>>(column)?
            .map(|stored| {
                let text = self.open(tenant.as_str(), id.as_str(), column, stored)?;
                decode(&text, column, format_args!("endpoint {id}"))
            })
            .transpose()
    }

    /// The plaintext of `stored`, the value of `column` of endpoint
    /// `tenant`/`id`; a value in clear (from before sealing) as it is.
    fn open(
        &self,
        tenant: &str,
        id: &str,
        column: &str,
        stored: String,
    ) -> Result<String, StoreError> {
        if !is_sealed(&stored) {
            return Ok(stored);
        }
        self.keyring()?
            .open(&stored, &sealing_context(tenant, id, column))
            .map_err(|error| {
                StoreError::Sealed(format!(
                    "cannot open the {column} of endpoint {id}: {error}"
                ))
            })
    }

    /// Seals every endpoint secret under the keyring's current key: values
    /// in clear and values sealed with a previous key, in one transaction.
    /// Returns how many values were sealed anew.
    pub async fn reseal_endpoint_secrets(&self) -> Result<u64, StoreError> {
        let doing = || "sealing endpoint secrets under the current master key".to_owned();
        let keyring = self.keyring()?;
        let mut tx = self
            .backend
            .begin()
            .await
            .map_err(StoreError::database(doing()))?;
        let rows = tx
            .fetch_all(Statement::new(
                "SELECT tenant, id, url, secret, previous_secret, headers, auth, tls FROM endpoints",
            ))
            .await
            .map_err(StoreError::database(doing()))?;
        let mut resealed = 0;
        for row in &rows {
            let tenant: String = row.get("tenant")?;
            let id: String = row.get("id")?;
            for column in SEALED_COLUMNS {
                let Some(stored) = row.get::<Option<String>>(column)? else {
                    continue;
                };
                if keyring.is_current(&stored) {
                    continue;
                }
                let plaintext = self.open(&tenant, &id, column, stored)?;
                let sealed = keyring.seal(&plaintext, &sealing_context(&tenant, &id, column));
                let update = Statement::new(format!(
                    "UPDATE endpoints SET {column} = $3 WHERE tenant = $1 AND id = $2"
                ))
                .bind(tenant.as_str())
                .bind(id.as_str())
                .bind(sealed);
                tx.execute(update)
                    .await
                    .map_err(StoreError::database(doing()))?;
                resealed += 1;
            }
        }
        tx.commit().await.map_err(StoreError::database(doing()))?;
        Ok(resealed)
    }

    fn push_endpoint(
        &self,
        statement: &mut Statement,
        endpoint: &Endpoint,
    ) -> Result<(), StoreError> {
        let owner = || format!("endpoint {}", endpoint.id);
        statement.push(endpoint.tenant.as_str());
        statement.push(endpoint.id.as_str());
        statement.push(endpoint.name.as_str());
        statement.push(self.seal(endpoint, "url", &endpoint.url)?);
        statement.push(endpoint.method.as_str());
        statement.push(self.seal_json(endpoint, "headers", &endpoint.headers)?);
        statement.push(self.seal(endpoint, "secret", &endpoint.secret)?);
        statement.push(endpoint.timeout_ms);
        statement.push(to_json(
            &endpoint.retry,
            format_args!("the retry policy of {}", owner()),
        )?);
        statement.push(endpoint.enabled);
        statement.push(endpoint.disabled_reason.as_deref());
        statement.push(endpoint.created_at);
        statement.push(endpoint.updated_at);
        let previous = endpoint.previous_secret.as_ref();
        statement.push(
            previous
                .map(|p| self.seal(endpoint, "previous_secret", &p.secret))
                .transpose()?,
        );
        statement.push(previous.map(|p| p.expires_at));
        statement.push(
            endpoint
                .auth
                .as_ref()
                .map(|auth| self.seal_json(endpoint, "auth", auth))
                .transpose()?,
        );
        statement.push(
            endpoint
                .tls
                .as_ref()
                .map(|tls| self.seal_json(endpoint, "tls", tls))
                .transpose()?,
        );
        statement.push(
            endpoint
                .rate_limit
                .as_ref()
                .map(|limit| to_json(limit, format_args!("the rate limit of {}", owner())))
                .transpose()?,
        );
        statement.push(endpoint.max_concurrency.map(i64::from));
        statement.push(
            (!endpoint.secret_headers.is_empty())
                .then(|| {
                    to_json(
                        &endpoint.secret_headers,
                        format_args!("the secret headers of {}", owner()),
                    )
                })
                .transpose()?,
        );
        // The defaults are stored as NULL, so that they follow Weft's.
        statement.push(
            (endpoint.circuit_breaker != CircuitBreaker::default())
                .then(|| {
                    to_json(
                        &endpoint.circuit_breaker,
                        format_args!("the circuit breaker of {}", owner()),
                    )
                })
                .transpose()?,
        );
        Ok(())
    }

    fn endpoint_from_row(&self, row: &Row) -> Result<Endpoint, StoreError> {
        let id = row.get_id("id", EndpointId::parse)?;
        let tenant = row.get_id("tenant", TenantId::parse)?;
        let owner = format!("endpoint {id}");
        let open = |column: &str| -> Result<Option<String>, StoreError> {
            row.get::<Option<String>>(column)?
                .map(|stored| self.open(tenant.as_str(), id.as_str(), column, stored))
                .transpose()
        };
        Ok(Endpoint {
            name: row.get("name")?,
            url: open("url")?.unwrap_or_default(),
            method: row.get("method")?,
            headers: self
                .open_json(row, &tenant, &id, "headers")?
                .unwrap_or_default(),
            secret_headers: optional_json_column(row, "secret_headers", &owner)?
                .unwrap_or_default(),
            auth: self.open_json(row, &tenant, &id, "auth")?,
            tls: self.open_json(row, &tenant, &id, "tls")?,
            rate_limit: optional_json_column(row, "rate_limit", &owner)?,
            max_concurrency: row
                .get::<Option<i64>>("max_concurrency")?
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
            circuit_breaker: optional_json_column(row, "circuit_breaker", &owner)?
                .unwrap_or_default(),
            secret: open("secret")?.unwrap_or_default(),
            previous_secret: match (
                open("previous_secret")?,
                row.get::<Option<i64>>("previous_secret_expires_at")?,
            ) {
                (Some(secret), Some(expires_at)) => Some(PreviousSecret { secret, expires_at }),
                _ => None,
            },
            timeout_ms: row.get_u32("timeout_ms")?,
            retry: json_column(row, "retry", &owner)?,
            enabled: row.get("enabled")?,
            disabled_reason: row.get("disabled_reason")?,
            created_at: row.get("created_at")?,
            updated_at: row.get("updated_at")?,
            tenant,
            id,
        })
    }
}
