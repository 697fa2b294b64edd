use clap::Parser;
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;
use weft_engine::cli::LogFormat;

/// Delivery allocates and frees many short-lived buffers on several threads;
/// mimalloc does that with far less contention than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = weft_engine::cli::Cli::parse();
    let lines = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("WEFT_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => lines.init(),
        LogFormat::Json => lines.json().init(),
    }
    weft_engine::cli::run(cli)
}
