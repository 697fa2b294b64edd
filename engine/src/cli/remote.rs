//! Commands that talk to a running Weft: `apply`, `events send`,
//! `deliveries list|show|replay`.

use super::client::ApiClient;
use crate::config::WebhooksFile;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct Remote {
    /// The Weft API to talk to.
    #[arg(
        long,
        global = true,
        default_value = "http://127.0.0.1:8080",
        env = "WEFT_API_URL"
    )]
    pub api_url: String,
    /// The API key to call it with (its tenant is the one acted for).
    #[arg(long, global = true, env = "WEFT_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A webhooks file (YAML): see examples/subscriptions.yaml.
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Publish an event file ({"type": …, "data": {…}}).
    Send {
        file: PathBuf,
        /// Deduplicates retried sends.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Search the delivery history.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        subscription: Option<String>,
        #[arg(long)]
        event_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show a delivery and its attempts.
    Show { id: String },
    /// Deliver again.
    Replay { id: String },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this action: endpoint.create, api_key.revoke, access.refused, …
    #[arg(long)]
    pub action: Option<String>,
    /// Only this credential: key_…, or token:<subject>.
    #[arg(long)]
    pub actor: Option<String>,
    /// Only changes of this object (an id, or a plugin's name@version).
    #[arg(long)]
    pub object: Option<String>,
    /// done or refused.
    #[arg(long)]
    pub outcome: Option<String>,
    /// From this time on (unix milliseconds).
    #[arg(long)]
    pub since: Option<i64>,
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Creates or updates, by name, each webhook's endpoint and subscription.
pub fn apply(remote: &Remote, args: &ApplyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let file = WebhooksFile::parse(&text, |name| std::env::var(name).ok())
        .with_context(|| format!("{} cannot be applied", args.file.display()))?;
    let client = ApiClient::new(&remote.api_url, remote.api_key.clone())?;
    runtime()?.block_on(async {
        let endpoints = every(&client, "/v1/endpoints", "endpoints").await?;
        let subscriptions = every(&client, "/v1/subscriptions", "subscriptions").await?;
        for webhook in &file.webhooks {
            let endpoint_id = upsert(
                &client,
                "/v1/endpoints",
                &endpoints,
                &webhook.name,
                &webhook.endpoint_body(),
            )
            .await
            .with_context(|| format!("webhook {:?}: endpoint", webhook.name))?;
            let body = webhook.subscription_body(&endpoint_id);
            upsert(
                &client,
                "/v1/subscriptions",
                &subscriptions,
                &webhook.name,
                &body,
            )
            .await
            .with_context(|| format!("webhook {:?}: subscription", webhook.name))?;
            println!("applied {:?} (endpoint {endpoint_id})", webhook.name);
        }
        Ok(())
    })
}

/// Every object of the paged collection at `path` (listed under `key`).
async fn every(client: &ApiClient, path: &str, key: &str) -> Result<Value> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let query = match &after {
            Some(id) => format!("{path}?limit=1000&after={id}"),
            None => format!("{path}?limit=1000"),
        };
        let page = client.call("GET", &query, None).await?;
        all.extend(page[key].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => return Ok(Value::Array(all)),
        }
    }
}

/// PUTs over the object named `name` if there is one, else POSTs; returns its id.
async fn upsert(
    client: &ApiClient,
    collection: &str,
    existing: &Value,
    name: &str,
    body: &Value,
) -> Result<String> {
    let found = existing
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["name"] == name);
    let saved = match found.and_then(|o| o["id"].as_str()) {
        Some(id) => {
            client
                .call("PUT", &format!("{collection}/{id}"), Some(body))
                .await?
        }
        None => client.call("POST", collection, Some(body)).await?,
    };
    Ok(saved["id"].as_str().unwrap_or_default().to_owned())
}

pub fn events(remote: &Remote, command: &EventsCommand) -> Result<()> {
    let EventsCommand::Send {
        file,
        idempotency_key,
    } = command;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let mut event: Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", file.display()))?;
    if let Some(key) = idempotency_key {
        event["idempotency_key"] = json!(key);
    }
    // Sample files name a tenant; the API key decides which one is acted for.
    if let Some(event) = event.as_object_mut() {
        event.remove("tenant");
    }
    let client = ApiClient::new(&remote.api_url, remote.api_key.clone())?;
    let accepted = runtime()?.block_on(client.call("POST", "/v1/events", Some(&event)))?;
    println!("{}", serde_json::to_string_pretty(&accepted)?);
    Ok(())
}

pub fn deliveries(remote: &Remote, command: &DeliveriesCommand) -> Result<()> {
    let client = ApiClient::new(&remote.api_url, remote.api_key.clone())?;
    let shown = runtime()?.block_on(async {
        match command {
            DeliveriesCommand::List {
                status,
                endpoint,
                subscription,
                event_type,
                limit,
            } => {
                let mut query = format!("limit={limit}");
                for (name, value) in [
                    ("status", status),
                    ("endpoint_id", endpoint),
                    ("subscription_id", subscription),
                    ("event_type", event_type),
                ] {
                    if let Some(value) = value {
                        query.push_str(&format!("&{name}={value}"));
                    }
                }
                client
                    .call("GET", &format!("/v1/deliveries?{query}"), None)
                    .await
            }
            DeliveriesCommand::Show { id } => {
                client
                    .call("GET", &format!("/v1/deliveries/{id}"), None)
                    .await
            }
            DeliveriesCommand::Replay { id } => {
                client
                    .call("POST", &format!("/v1/deliveries/{id}/replay"), None)
                    .await
            }
        }
    })?;
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

/// Searches the tenant's audit log (admins), newest first.
pub fn audit(remote: &Remote, args: &AuditArgs) -> Result<()> {
    let since = args.since.map(|since| since.to_string());
    let limit = args.limit.to_string();
    let parameters: Vec<(&str, &str)> = [
        ("action", args.action.as_deref()),
        ("actor", args.actor.as_deref()),
        ("object", args.object.as_deref()),
        ("outcome", args.outcome.as_deref()),
        ("since", since.as_deref()),
        ("limit", Some(limit.as_str())),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|value| (name, value)))
    .collect();
    let query = serde_urlencoded::to_string(parameters)?;
    let client = ApiClient::new(&remote.api_url, remote.api_key.clone())?;
    let shown = runtime()?.block_on(client.call("GET", &format!("/v1/audit?{query}"), None))?;
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}
