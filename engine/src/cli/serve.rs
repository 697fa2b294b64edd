//! `weft serve`: the HTTP API and the delivery workers in one process.

use crate::api::{
    AppState, ConnectionLimits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_PEER,
    DEFAULT_REQUEST_HEAD_TIMEOUT, NewApiKey, connections_that_fit, new_api_key, router,
};
use crate::auth::{self, TokenIssuer, TokenKey};
use crate::delivery::{
    DEFAULT_ENDPOINT_CONCURRENCY, DEFAULT_MAX_IN_FLIGHT, NetworkPolicy, Outbound, Throttle,
};
use crate::ingest::Ingest;
use crate::model::{ApiKey, AuditEntry, TenantId};
use crate::runtime::{PluginRuntime, RuntimeConfig};
use crate::store::{DEFAULT_RETENTION_DAYS, MAX_RETENTION_DAYS, Prune, Pruned, Store};
use crate::worker::{Worker, WorkerConfig};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "WEFT_LISTEN")]
    pub listen: SocketAddr,
    /// Address that serves `GET /metrics` (Prometheus, OpenMetrics text) to
    /// anyone who can reach it: the figures span every tenant, so keep it on
    /// the operator's network. None unless given.
    #[arg(long, env = "WEFT_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// `sqlite://weft.db` (created if missing) or `postgres://user@host/db`.
    #[arg(long, default_value = "sqlite://weft.db", env = "WEFT_DATABASE_URL")]
    pub database_url: String,
    /// A folder of first-party plugin components (*.wasm) to offer every tenant.
    #[arg(long, env = "WEFT_PLUGINS_DIR", value_name = "DIR")]
    pub plugins_dir: Option<PathBuf>,
    /// Delivery workers in this process.
    #[arg(long, default_value_t = 2, env = "WEFT_WORKERS")]
    pub workers: usize,
    /// How long a worker holds the deliveries it claimed. After a crash they are
    /// retried once this has passed; keep it above the longest endpoint timeout,
    /// or a slow request may be sent twice.
    #[arg(long, default_value_t = WorkerConfig::default().lease.as_secs(), env = "WEFT_LEASE_SECONDS", value_name = "SECONDS")]
    pub lease_seconds: u64,
    /// The admin key of tenant `default` on a database without keys; without
    /// it, one is made and printed once. `weft_` and 32+ letters or digits.
    #[arg(
        long,
        env = "WEFT_BOOTSTRAP_ADMIN_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub bootstrap_admin_key: Option<String>,
    /// Publish requests a second each API key or token may make, unless the
    /// key names its own rate; more get 429 with Retry-After.
    #[arg(long, default_value_t = crate::auth::DEFAULT_INGEST_PER_SECOND, env = "WEFT_INGEST_PER_SECOND", value_name = "REQUESTS")]
    pub ingest_per_second: u32,
    /// A network (CIDR) deliveries may reach although it is loopback, private,
    /// link-local or otherwise internal; repeat, or separate with commas.
    /// Without any, only public addresses are reached.
    #[arg(
        long = "allow-network",
        env = "WEFT_ALLOW_NETWORKS",
        value_delimiter = ',',
        value_name = "CIDR"
    )]
    pub allowed_networks: Vec<String>,
    /// Deliveries in flight at once in this process, all endpoints together;
    /// more wait for a place.
    #[arg(long, default_value_t = DEFAULT_MAX_IN_FLIGHT, env = "WEFT_MAX_IN_FLIGHT", value_name = "DELIVERIES")]
    pub max_in_flight: usize,
    /// Deliveries in flight at once in this process to one endpoint that sets
    /// no `max_concurrency` of its own, so that slow receivers hold up only
    /// their own share of the places.
    #[arg(long, default_value_t = DEFAULT_ENDPOINT_CONCURRENCY, env = "WEFT_MAX_IN_FLIGHT_PER_ENDPOINT", value_name = "DELIVERIES")]
    pub max_in_flight_per_endpoint: u32,
    /// Connections the API keeps open at once; more are answered 503 and
    /// closed. Lowered at start to what the process's open-file limit leaves.
    #[arg(long, default_value_t = DEFAULT_MAX_CONNECTIONS, env = "WEFT_MAX_CONNECTIONS", value_name = "CONNECTIONS")]
    pub max_connections: usize,
    /// Connections the API keeps open at once from one address.
    #[arg(long, default_value_t = DEFAULT_MAX_PER_PEER, env = "WEFT_MAX_CONNECTIONS_PER_PEER", value_name = "CONNECTIONS")]
    pub max_connections_per_peer: usize,
    /// Seconds a client has to send a request's head, and that an idle
    /// keep-alive connection stays open.
    #[arg(long, default_value_t = DEFAULT_REQUEST_HEAD_TIMEOUT.as_secs(), env = "WEFT_REQUEST_HEAD_TIMEOUT_SECONDS", value_name = "SECONDS")]
    pub request_head_timeout_seconds: u64,
    /// Let endpoints (and OAuth token URLs) use plain http://. For
    /// development: without it, Weft sends over HTTPS only.
    #[arg(long, env = "WEFT_ALLOW_HTTP")]
    pub allow_http: bool,
    /// Let endpoints turn certificate verification off
    /// (`"tls": {"verify": false}`). For development only.
    #[arg(long, env = "WEFT_ALLOW_UNVERIFIED_TLS")]
    pub allow_unverified_tls: bool,
    /// Days of history (events, deliveries, attempts, audit entries) kept
    /// for a tenant that set no retention of its own; 0 keeps it forever.
    /// Pending deliveries are never pruned.
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS, env = "WEFT_HISTORY_RETENTION_DAYS", value_name = "DAYS")]
    pub history_retention_days: u32,
    /// Seconds between two looks for history past its retention.
    #[arg(long, default_value_t = PRUNE_INTERVAL.as_secs(), env = "WEFT_HISTORY_PRUNE_INTERVAL_SECONDS", value_name = "SECONDS")]
    pub history_prune_interval_seconds: u64,
    #[command(flatten)]
    pub tokens: TokenArgs,
    #[command(flatten)]
    pub master_keys: super::secrets::MasterKeyArgs,
}

/// A token issuer whose bearer tokens (JWT) the API accepts besides API keys.
#[derive(Debug, Args)]
#[command(next_help_heading = "Bearer tokens")]
pub struct TokenArgs {
    /// The audience (`aud`) tokens must be meant for; turns token checking on.
    #[arg(long, env = "WEFT_TOKEN_AUDIENCE", value_name = "AUDIENCE")]
    pub token_audience: Option<String>,
    /// The issuer (`iss`) tokens must come from.
    #[arg(long, env = "WEFT_TOKEN_ISSUER", value_name = "ISSUER")]
    pub token_issuer: Option<String>,
    /// The shared secret of HS256 tokens (at least 32 bytes).
    #[arg(
        long,
        env = "WEFT_TOKEN_HS256_SECRET",
        hide_env_values = true,
        value_name = "SECRET",
        conflicts_with = "token_rs256_public_key"
    )]
    pub token_hs256_secret: Option<String>,
    /// The issuer's RSA public key (PEM file) for RS256 tokens.
    #[arg(long, env = "WEFT_TOKEN_RS256_PUBLIC_KEY", value_name = "FILE")]
    pub token_rs256_public_key: Option<PathBuf>,
    /// The claim naming the caller's tenant.
    #[arg(long, env = "WEFT_TOKEN_TENANT_CLAIM", default_value = "weft_tenant")]
    pub token_tenant_claim: String,
    /// The claim naming the caller's role.
    #[arg(long, env = "WEFT_TOKEN_ROLE_CLAIM", default_value = "weft_role")]
    pub token_role_claim: String,
}

impl TokenArgs {
    /// The configured issuer, if any; a half-configured one is an error.
    fn issuer(&self) -> Result<Option<TokenIssuer>> {
        let key = match (&self.token_hs256_secret, &self.token_rs256_public_key) {
            (Some(secret), None) => Some(TokenKey::Hs256(secret.as_bytes().to_vec())),
            (None, Some(path)) => Some(TokenKey::Rs256Pem(std::fs::read(path).with_context(
                || {
                    format!(
                        "cannot read the token issuer's public key {}",
                        path.display()
                    )
                },
            )?)),
            _ => None,
        };
        match (key, &self.token_audience) {
            (None, None) => Ok(None),
            (Some(key), Some(audience)) => TokenIssuer::new(
                &key,
                audience,
                self.token_issuer.as_deref(),
                &self.token_tenant_claim,
                &self.token_role_claim,
            )
            .map(Some)
            .map_err(|error| anyhow::anyhow!("cannot trust the token issuer: {error}")),
            (None, Some(_)) => bail!(
                "--token-audience needs the key that verifies tokens: --token-hs256-secret or --token-rs256-public-key"
            ),
            (Some(_), None) => {
                bail!("tokens need an audience to be checked against: --token-audience")
            }
        }
    }
}

/// Open files a process needs besides the API's connections and its
/// deliveries: database connections, plugin artifacts, logs, with room to spare.
const FILES_BESIDES_CONNECTIONS: usize = 256;

pub fn run(args: ServeArgs, artifact_dir: Option<PathBuf>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(args, artifact_dir))
}

async fn serve(args: ServeArgs, artifact_dir: Option<PathBuf>) -> Result<()> {
    let issuer = args.tokens.issuer()?;
    if args.history_retention_days > MAX_RETENTION_DAYS {
        bail!("--history-retention-days is at most {MAX_RETENTION_DAYS} (0 keeps history forever)");
    }
    let retention_days = (args.history_retention_days > 0).then_some(args.history_retention_days);
    let (keyring, key_source) = args.master_keys.keyring(&args.database_url)?;
    let store = Store::connect(&args.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", args.database_url))?
        .with_keyring(keyring);
    // Secrets written in clear by an earlier release, or under a previous
    // master key, are sealed under the current one before anything runs.
    let resealed = store
        .reseal_endpoint_secrets()
        .await
        .context("cannot seal the endpoints' secrets")?;
    tracing::info!(resealed, "secrets sealed with {key_source}");
    bootstrap_admin_key(&store, args.bootstrap_admin_key.as_deref()).await?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig {
        artifact_dir,
        ..RuntimeConfig::default()
    })?);
    if let Some(dir) = &args.plugins_dir {
        register_first_party(&store, &runtime, dir).await?;
    }
    if store.autovacuum_is_off().await? {
        tracing::warn!(
            "PostgreSQL's autovacuum is off: Weft vacuums its delivery tables itself when dead \
             rows pile up, but the others (audit log, keys, endpoints) need a VACUUM now and then"
        );
    }
    let wake = Arc::new(Notify::new());
    let (stop, stopping) = watch::channel(false);
    let maintenance = tokio::spawn(maintain_tables(store.clone(), stopping.clone()));
    let pruning = tokio::spawn(prune_history(
        store.clone(),
        retention_days,
        Duration::from_secs(args.history_prune_interval_seconds.max(1)),
        stopping.clone(),
    ));
    let policy = NetworkPolicy::allowing(&args.allowed_networks)
        .map_err(|error| anyhow::anyhow!("--allow-network: {error}"))?
        .with_plain_http(args.allow_http)
        .with_unverified_tls(args.allow_unverified_tls);
    // One client, token cache and throttle for every worker.
    let throttle = Throttle::new(args.max_in_flight, args.max_in_flight_per_endpoint);
    let outbound =
        Outbound::new(policy.clone(), throttle).context("cannot set up the HTTP client")?;
    let ingest = Ingest::new(store.clone(), wake);
    let mut workers = Vec::new();
    for _ in 0..args.workers.max(1) {
        let worker = Arc::new(Worker::new(
            store.clone(),
            Arc::clone(&runtime),
            outbound.clone(),
            ingest.clone(),
            WorkerConfig {
                lease: std::time::Duration::from_secs(args.lease_seconds.max(1)),
                ..WorkerConfig::default()
            },
        ));
        workers.push(tokio::spawn(worker.run(stopping.clone())));
    }
    let metrics = match args.metrics_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?;
            println!("weft metrics on http://{}/metrics", listener.local_addr()?);
            let router = crate::api::metrics_router(store.clone(), Arc::clone(&outbound.throttle));
            let mut stopping = stopping.clone();
            let stopped = async move {
                let _ = stopping.wait_for(|stop| *stop).await;
            };
            Some(tokio::spawn(crate::api::serve_metrics(
                listener, router, stopped,
            )))
        }
        None => None,
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!(
        "weft listening on http://{address} (database {})",
        args.database_url
    );
    let mut state = AppState::new(store, runtime, ingest)
        .limiting_ingest(args.ingest_per_second)
        .keeping_history_for(retention_days)
        .delivering_under(policy);
    if let Some(issuer) = issuer {
        state = state.trusting(issuer);
    }
    // Files besides the API's connections: deliveries in flight, the
    // database's connections, plugin artifacts, the log.
    let reserved = args.max_in_flight.saturating_add(FILES_BESIDES_CONNECTIONS);
    let max_connections = connections_that_fit(args.max_connections, reserved);
    if max_connections < args.max_connections {
        tracing::warn!(
            max_connections,
            "the open-file limit leaves room for fewer connections than --max-connections asks"
        );
    }
    let limits = ConnectionLimits {
        max_connections,
        max_per_peer: args.max_connections_per_peer,
        request_head_timeout: Duration::from_secs(args.request_head_timeout_seconds.max(1)),
    };
    crate::api::serve(listener, router(state), limits, shutdown_signal()).await;
    // Stop claiming; each worker records the batch it has in hand, then exits.
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    let _ = maintenance.await;
    let _ = pruning.await;
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    println!("weft stopped");
    Ok(())
}

/// How often the delivery tables' statistics are looked at (and the tables
/// vacuumed or analysed). Often, because a fresh database's tables grow by
/// thousands of rows a second, and until a table is analysed the statements
/// on it keep the plans made when it was empty.
const MAINTENANCE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// Keeps PostgreSQL's hot tables fit (see `store::maintenance`) until the
/// server stops.
async fn maintain_tables(store: Store, mut stopping: watch::Receiver<bool>) {
    while !*stopping.borrow() {
        tokio::select! {
            () = tokio::time::sleep(MAINTENANCE_INTERVAL) => {}
            _ = stopping.changed() => break,
        }
        match store.maintain().await {
            Ok(done) => {
                for (table, dead) in done.vacuumed {
                    tracing::info!(table, dead, "vacuumed and analysed");
                }
                for (table, changed) in done.analysed {
                    tracing::debug!(table, changed, "analysed");
                }
            }
            Err(error) => tracing::warn!(%error, "cannot maintain the delivery tables"),
        }
    }
}

/// How often history past its retention is looked for by default. A round
/// finds little to do when it runs this often, and its chunks leave capture
/// room between them.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Prunes history past each tenant's retention (`default_days` for those
/// that set none; `None`: forever) every `interval`, until the server stops
/// (a round in progress stops there too: its chunk rolls back).
async fn prune_history(
    store: Store,
    default_days: Option<u32>,
    interval: Duration,
    mut stopping: watch::Receiver<bool>,
) {
    while !*stopping.borrow() {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stopping.changed() => break,
        }
        let round = store.prune_history(
            Prune::ByRetention { default_days },
            crate::model::now_millis(),
        );
        let pruned = tokio::select! {
            pruned = round => pruned,
            _ = stopping.changed() => break,
        };
        match pruned {
            Ok(Some(pruned)) if pruned != Pruned::default() => tracing::info!(
                deliveries = pruned.deliveries,
                attempts = pruned.attempts,
                events = pruned.events,
                audit_entries = pruned.audit_entries,
                "pruned the history past its retention"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "cannot prune the history"),
        }
    }
}

/// Gives a database without keys its first: an admin key of tenant `default`,
/// `chosen` or made here and printed once.
async fn bootstrap_admin_key(store: &Store, chosen: Option<&str>) -> Result<()> {
    let tenant = TenantId::parse("default").expect("a valid tenant name");
    let (mut key, mut issued) = new_api_key(&tenant, NewApiKey::new("bootstrap admin", "admin"))
        .map_err(|error| anyhow::anyhow!(error.detail))?;
    if let Some(chosen) = chosen {
        issued = auth::issue_from(chosen).context("WEFT_BOOTSTRAP_ADMIN_KEY cannot be used")?;
        key = ApiKey {
            key_hash: issued.digest.clone(),
            hint: issued.hint.clone(),
            ..key
        };
    }
    let audit = AuditEntry::by_operator(
        &tenant,
        "weft serve",
        "api_key.create",
        &key.id,
        serde_json::to_value(&key).ok(),
    );
    if !store.audited(audit).create_first_api_key(&key).await? {
        return Ok(());
    }
    match chosen {
        Some(_) => println!(
            "the key in WEFT_BOOTSTRAP_ADMIN_KEY is now an admin key of tenant default ({})",
            key.id
        ),
        None => println!(
            "bootstrap admin key of tenant default, shown this once (keep it secret):\n  {}",
            issued.secret
        ),
    }
    Ok(())
}

/// Offers every `*.wasm` in `dir` to all tenants.
async fn register_first_party(
    store: &Store,
    runtime: &Arc<PluginRuntime>,
    dir: &Path,
) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the plugins folder {}", dir.display()))?;
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "wasm") {
            continue;
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let loader = Arc::clone(runtime);
        let loaded = bytes.clone();
        let plugin = tokio::task::spawn_blocking(move || loader.load(&loaded))
            .await?
            .with_context(|| format!("{} is not a usable plugin", path.display()))?;
        store
            .put_plugin(&crate::api::stored_plugin(None, &plugin, bytes))
            .await
            .with_context(|| format!("cannot register {}", path.display()))?;
        tracing::info!(
            plugin = plugin.name(),
            version = plugin.version(),
            "first-party plugin registered"
        );
    }
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}
