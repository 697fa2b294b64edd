//! `weft keys create`: an API key made straight in the database, by whoever
//! runs Weft. This is how a tenant gets its first admin key, and how an
//! installation whose admin keys are all lost gets one back; admins manage
//! further keys through the API.

use crate::api::{NewApiKey, new_api_key};
use crate::model::{AuditEntry, TenantId};
use anyhow::{Context, Result, anyhow};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an API key and print it (once).
    Create {
        /// The database `weft serve` uses.
        #[arg(long, default_value = "sqlite://weft.db", env = "WEFT_DATABASE_URL")]
        database_url: String,
        /// The tenant the key acts for (created by its first key).
        #[arg(long)]
        tenant: String,
        /// admin, integration-admin, publisher or viewer.
        #[arg(long)]
        role: String,
        /// What the key is for, to tell keys apart.
        #[arg(long)]
        name: String,
        /// A network (CIDR) the key may be used from; repeat for several.
        /// Without any, the key works from anywhere.
        #[arg(long = "allow", value_name = "CIDR")]
        allowed_networks: Vec<String>,
        /// Publish requests a second the key may make (default: the server's).
        #[arg(long, value_name = "REQUESTS")]
        ingest_per_second: Option<u32>,
    },
}

pub fn run(command: KeysCommand) -> Result<()> {
    let KeysCommand::Create {
        database_url,
        tenant,
        role,
        name,
        allowed_networks,
        ingest_per_second,
    } = command;
    let tenant = TenantId::parse(&tenant).context("--tenant")?;
    let request = NewApiKey {
        name,
        role,
        allowed_networks,
        ingest_per_second,
    };
    let (key, issued) = new_api_key(&tenant, request).map_err(|error| {
        anyhow!(
            "{}{}",
            error.field.map(|f| format!("{f}: ")).unwrap_or_default(),
            error.detail
        )
    })?;
    super::with_store(&database_url, None, async |store| {
        let audit = AuditEntry::by_operator(
            &key.tenant,
            "weft keys create",
            "api_key.create",
            &key.id,
            serde_json::to_value(&key).ok(),
        );
        store
            .audited(audit)
            .create_api_key(&key)
            .await
            .context("cannot store the key")
    })?;
    println!(
        "{} key {} of tenant {tenant}, shown this once (keep it secret):\n  {}",
        key.role, key.id, issued.secret
    );
    Ok(())
}
