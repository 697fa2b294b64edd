//! The `weft` command line: argument parsing (clap) and what each command prints.
//! `main.rs` only sets up logging and calls [`run`].

mod client;
mod endpoints;
mod history;
mod keys;
mod plugin;
mod remote;
mod secrets;
mod serve;

pub use plugin::read_sample_event;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Weft: a webhook engine whose transformations are sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "weft", version, about, propagate_version = true)]
pub struct Cli {
    /// Where compiled plugins are kept between runs [default: $XDG_CACHE_HOME/weft/plugins]
    #[arg(long, global = true, env = "WEFT_ARTIFACT_DIR", value_name = "DIR")]
    artifact_dir: Option<PathBuf>,

    /// How log lines are written to standard error (which lines: `WEFT_LOG`,
    /// e.g. `info` or `weft_engine=debug`; `warn` by default)
    #[arg(
        long,
        global = true,
        env = "WEFT_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line, with the fields of the spans it happened in
    /// (a request's `request_id`, say), for a log collector.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP API and the delivery workers (SQLite by default, no setup).
    Serve(Box<serve::ServeArgs>),
    /// Create or update endpoints and subscriptions from a webhooks file.
    Apply {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(flatten)]
        args: remote::ApplyArgs,
    },
    /// Publish events to a running Weft.
    Events {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        command: remote::EventsCommand,
    },
    /// Endpoint health at a glance; disable, enable, recover what was skipped.
    Endpoints {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        command: endpoints::EndpointsCommand,
    },
    /// Search, show and replay deliveries.
    Deliveries {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(subcommand)]
        command: remote::DeliveriesCommand,
    },
    /// Try plugins locally: inspect a component, run it on a sample event.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Search the tenant's audit log (admin keys): changes and refused access.
    Audit {
        #[command(flatten)]
        remote: remote::Remote,
        #[command(flatten)]
        args: remote::AuditArgs,
    },
    /// Prune old history straight in the database (`weft serve` does it by
    /// each tenant's retention).
    #[command(subcommand)]
    History(history::HistoryCommand),
    /// Make API keys straight in the database (a tenant's first admin key).
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// The master key that seals secrets at rest: make one, re-seal under a new one.
    #[command(subcommand)]
    Secrets(secrets::SecretsCommand),
}

/// Runs the parsed command line; the exit code says how it went.
pub fn run(cli: Cli) -> ExitCode {
    let artifact_dir = cli.artifact_dir.or_else(default_artifact_dir);
    let result = match cli.command {
        Command::Plugin(command) => plugin::run(command, artifact_dir),
        Command::Keys(command) => keys::run(command).map(|()| ExitCode::SUCCESS),
        Command::History(command) => history::run(command).map(|()| ExitCode::SUCCESS),
        Command::Secrets(command) => secrets::run(command).map(|()| ExitCode::SUCCESS),
        Command::Audit { remote, args } => {
            remote::audit(&remote, &args).map(|()| ExitCode::SUCCESS)
        }
        Command::Serve(args) => serve::run(*args, artifact_dir).map(|()| ExitCode::SUCCESS),
        Command::Apply { remote, args } => {
            remote::apply(&remote, &args).map(|()| ExitCode::SUCCESS)
        }
        Command::Events { remote, command } => {
            remote::events(&remote, &command).map(|()| ExitCode::SUCCESS)
        }
        Command::Endpoints { remote, command } => {
            endpoints::run(&remote, &command).map(|()| ExitCode::SUCCESS)
        }
        Command::Deliveries { remote, command } => {
            remote::deliveries(&remote, &command).map(|()| ExitCode::SUCCESS)
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `work` on the store at `database_url` (with `keyring`, where secrets
/// are touched) on a runtime of its own, and closes the store after it: the
/// shape of every command that works on the database directly.
fn with_store<T>(
    database_url: &str,
    keyring: Option<std::sync::Arc<crate::secrets::Keyring>>,
    work: impl AsyncFnOnce(&crate::store::Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    use anyhow::Context as _;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async {
            let mut store = crate::store::Store::connect(database_url)
                .await
                .with_context(|| format!("cannot open the database {database_url}"))?;
            if let Some(keyring) = keyring {
                store = store.with_keyring(keyring);
            }
            let outcome = work(&store).await;
            store.close().await;
            outcome
        })
}

fn default_artifact_dir() -> Option<PathBuf> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
    Some(cache.join("weft").join("plugins"))
}
