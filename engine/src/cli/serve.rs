//! `weft serve`: the HTTP API and the delivery workers in one process.

use crate::api::{AppState, router};
use crate::delivery::HttpSender;
use crate::runtime::{PluginRuntime, RuntimeConfig};
use crate::store::Store;
use crate::worker::{Worker, WorkerConfig};
use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{Notify, watch};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address the HTTP API listens on.
    #[arg(long, default_value = "127.0.0.1:8080", env = "WEFT_LISTEN")]
    pub listen: SocketAddr,
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
}

pub fn run(args: ServeArgs, artifact_dir: Option<PathBuf>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(serve(args, artifact_dir))
}

async fn serve(args: ServeArgs, artifact_dir: Option<PathBuf>) -> Result<()> {
    let store = Store::connect(&args.database_url)
        .await
        .with_context(|| format!("cannot open the database {}", args.database_url))?;
    let runtime = Arc::new(PluginRuntime::new(RuntimeConfig {
        artifact_dir,
        ..RuntimeConfig::default()
    })?);
    if let Some(dir) = &args.plugins_dir {
        register_first_party(&store, &runtime, dir).await?;
    }
    let wake = Arc::new(Notify::new());
    let (stop, stopping) = watch::channel(false);
    let sender = HttpSender::new().context("cannot set up the HTTP client")?;
    let mut workers = Vec::new();
    for _ in 0..args.workers.max(1) {
        let worker = Arc::new(Worker::new(
            store.clone(),
            Arc::clone(&runtime),
            sender.clone(),
            Arc::clone(&wake),
            WorkerConfig {
                lease: std::time::Duration::from_secs(args.lease_seconds.max(1)),
                ..WorkerConfig::default()
            },
        ));
        workers.push(tokio::spawn(worker.run(stopping.clone())));
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!(
        "weft listening on http://{address} (database {})",
        args.database_url
    );
    axum::serve(listener, router(AppState::new(store, runtime, wake)))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("the HTTP server failed")?;
    // Stop claiming; each worker records the batch it has in hand, then exits.
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    println!("weft stopped");
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
