//! Plugin components: first-party ones, visible to every tenant, and those a
//! tenant uploads. A (name, version) is immutable once stored, so a
//! subscription pinned to it always runs the same code.

use super::Store;
use super::database::{Row, Statement, is_unique_violation};
use super::error::StoreError;
use super::json::{json_column, to_json};
use crate::model::{TenantId, UnixMillis};

/// A stored plugin component and what is known about it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPlugin {
    /// `None` for a first-party plugin.
    pub tenant: Option<TenantId>,
    pub name: String,
    pub version: String,
    /// The world it implements: `filter`, `transformer` or `integration`.
    pub world: String,
    /// The content digest of `bytes`.
    pub digest: String,
    /// The component. Empty in [`Store::list_plugins`]'s answer.
    pub bytes: Vec<u8>,
    /// What the plugin describes about itself (its config schema, say).
    pub info: serde_json::Value,
    pub created_at: UnixMillis,
}

/// Every column but `bytes`, which only [`Store::get_plugin`] reads.
macro_rules! plugin_summary_columns {
    () => {
        "tenant, name, version, world, digest, info, created_at"
    };
}

/// First-party plugins are stored with tenant NULL; the unique index sees them
/// as tenant '' (see the migration), and so do these lookups.
const SAME_OWNER: &str = "COALESCE(tenant, '') = COALESCE($1, '')";

impl Store {
    /// Stores a plugin. Storing the same (owner, name, version) again is a
    /// no-op if the digest is the same, and a `Conflict` if it is not.
    pub async fn put_plugin(&self, plugin: &StoredPlugin) -> Result<(), StoreError> {
        let label = plugin_label(plugin);
        let insert = Statement::new(
            "INSERT INTO plugins (tenant, name, version, world, digest, bytes, info, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(plugin.tenant.as_ref().map(TenantId::as_str))
        .bind(plugin.name.as_str())
        .bind(plugin.version.as_str())
        .bind(plugin.world.as_str())
        .bind(plugin.digest.as_str())
        .bind(plugin.bytes.clone())
        .bind(to_json(&plugin.info, format_args!("the info of {label}"))?)
        .bind(plugin.created_at);
        match self.write_change(insert).await {
            Ok(_) => return Ok(()),
            Err(error) if is_unique_violation(&error) => {}
            Err(error) => return Err(StoreError::database(format!("storing {label}"))(error)),
        }
        let stored = Statement::new(format!(
            "SELECT digest FROM plugins WHERE {SAME_OWNER} AND name = $2 AND version = $3"
        ))
        .bind(plugin.tenant.as_ref().map(TenantId::as_str))
        .bind(plugin.name.as_str())
        .bind(plugin.version.as_str());
        let row = self
            .backend
            .fetch_optional(stored)
            .await
            .map_err(StoreError::database(format!("reading {label}")))?
            .ok_or_else(|| StoreError::Conflict(format!("{label} is being stored concurrently")))?;
        let digest: String = row.get("digest")?;
        if digest == plugin.digest {
            Ok(())
        } else {
            Err(StoreError::Conflict(format!(
                "{label} is already stored with digest {digest}, not {}: a version never changes, \
                 publish the new component under a new version",
                plugin.digest
            )))
        }
    }

    /// Plugin `name` at `version` as `tenant` sees it: its own upload if it has
    /// one, else the first-party plugin.
    pub async fn get_plugin(
        &self,
        tenant: &TenantId,
        name: &str,
        version: &str,
    ) -> Result<Option<StoredPlugin>, StoreError> {
        const GET: &str = concat!(
            "SELECT ",
            plugin_summary_columns!(),
            ", bytes FROM plugins \
             WHERE (tenant = $1 OR tenant IS NULL) AND name = $2 AND version = $3 \
             ORDER BY tenant IS NULL LIMIT 1"
        );
        let statement = Statement::new(GET)
            .bind(tenant.as_str())
            .bind(name)
            .bind(version);
        let row = self
            .backend
            .fetch_optional(statement)
            .await
            .map_err(StoreError::database(format!(
                "reading plugin {name} {version}"
            )))?;
        row.map(|row| {
            let bytes: Vec<u8> = row.get("bytes")?;
            Ok(StoredPlugin {
                bytes,
                ..plugin_from_row(&row)?
            })
        })
        .transpose()
    }

    /// The plugins `tenant` can use, its own and first-party ones, by name and
    /// version (text order), first-party first. Without their bytes: listing
    /// does not load every component into memory.
    pub async fn list_plugins(&self, tenant: &TenantId) -> Result<Vec<StoredPlugin>, StoreError> {
        const LIST: &str = concat!(
            "SELECT ",
            plugin_summary_columns!(),
            " FROM plugins WHERE tenant = $1 OR tenant IS NULL \
             ORDER BY name, version, tenant IS NOT NULL"
        );
        let statement = Statement::new(LIST).bind(tenant.as_str());
        let rows = self
            .backend
            .fetch_all(statement)
            .await
            .map_err(StoreError::database(format!(
                "listing the plugins of tenant {tenant}"
            )))?;
        rows.iter().map(plugin_from_row).collect()
    }
}

fn plugin_label(plugin: &StoredPlugin) -> String {
    match &plugin.tenant {
        Some(tenant) => format!(
            "plugin {} {} of tenant {tenant}",
            plugin.name, plugin.version
        ),
        None => format!("first-party plugin {} {}", plugin.name, plugin.version),
    }
}

/// A plugin without its bytes.
fn plugin_from_row(row: &Row) -> Result<StoredPlugin, StoreError> {
    let tenant: Option<String> = row.get("tenant")?;
    let tenant = tenant
        .map(|tenant| {
            TenantId::parse(&tenant)
                .map_err(|error| StoreError::Corrupt(format!("column tenant: {error}")))
        })
        .transpose()?;
    let mut plugin = StoredPlugin {
        tenant,
        name: row.get("name")?,
        version: row.get("version")?,
        world: row.get("world")?,
        digest: row.get("digest")?,
        bytes: Vec::new(),
        info: serde_json::Value::Null,
        created_at: row.get("created_at")?,
    };
    plugin.info = json_column(row, "info", plugin_label(&plugin))?;
    Ok(plugin)
}
