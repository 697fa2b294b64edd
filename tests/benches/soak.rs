//! The soak run, kept here and run by hand (not in CI, it takes half an
//! hour): `weft serve` with its default flags, a steady 1,000 events a
//! second for 30 minutes to a receiver with trouble (`weft-sink`'s
//! `/flaky/`: one request in ten answered 500, one in a hundred hung past
//! the endpoint's 2 s timeout), retried every second, with history pruned
//! as it passes five minutes of age (`weft history prune --older-than 5m`
//! every minute: `weft serve`'s own retention is counted in days).
//!
//! Every minute it prints what was published and how fast it was answered,
//! what the receiver had taken (distinct deliveries), the queue, Weft's
//! memory and the database's size; at the end, whether every accepted event
//! was delivered.
//!
//! `cargo bench -p weft-tests --bench soak [-- sqlite|postgres]`;
//! `WEFT_SOAK_MINUTES` (30) and `WEFT_SOAK_RATE` (1,000) change its length
//! and rate.

use bytes::Bytes;
use serde_json::json;
use std::time::{Duration, Instant};
use weft_tests::load::{Sink, create, http_client, post_paced, publisher_key, quantile_ms};
use weft_tests::process::{BOOTSTRAP_KEY, MASTER_KEY, WeftProcess};
use weft_tests::sample_event_json;
use weft_tests::weft::{Api, Backend, TestDatabase};

/// History older than this is pruned.
const KEPT: &str = "5m";

/// How long, once publishing stops, retries have to deliver the rest.
const DRAIN: Duration = Duration::from_secs(600);

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|&value| value > 0)
        .unwrap_or(default)
}

fn main() {
    let backend = if std::env::args().any(|arg| arg == "postgres") {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(soak(
            backend,
            setting("WEFT_SOAK_MINUTES", 30),
            setting("WEFT_SOAK_RATE", 1_000),
        ));
}

/// One minute's figures, sampled as it ends.
struct Sample {
    delivered: u64,
    queue: u64,
    rss_mib: f64,
    database_mib: f64,
}

async fn soak(backend: Backend, minutes: usize, rate: usize) {
    let database = TestDatabase::create(backend).await;
    let workdir = tempfile::tempdir().unwrap();
    let sink = Sink::start();
    let weft = WeftProcess::start_with(
        Some(&database.url),
        workdir.path(),
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let admin = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
    let publisher = publisher_key(&admin).await;
    let endpoint = create(
        &admin,
        "/v1/endpoints",
        json!({
            "name": "flaky", "url": sink.url_flaky(), "timeout_ms": 2_000,
            "retry": { "max_attempts": 20, "backoff": { "type": "fixed", "delay_ms": 1_000 } }
        }),
    )
    .await;
    create(
        &admin,
        "/v1/subscriptions",
        json!({ "name": "soak", "endpoint_id": endpoint["id"], "event_types": ["sales_order.created"] }),
    )
    .await;
    let sample = sample_event_json("sales_order.created");
    let event = json!({ "type": sample["type"], "data": sample["data"] });
    let body = Bytes::from(serde_json::to_vec(&event).unwrap());
    let count = minutes * 60 * rate;
    println!(
        "== soak: {backend:?}, {rate} events/s for {minutes} min to a flaky receiver, history kept {KEPT}"
    );

    let client = http_client(256);
    let url = format!("{}/v1/events", weft.url);
    let publishing = {
        let (client, publisher) = (client.clone(), publisher.clone());
        tokio::spawn(async move { post_paced(&client, &url, &publisher, body, count, rate).await })
    };
    let metrics = weft
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("weft metrics on "))
        .expect("weft serve printed its metrics address")
        .to_owned();
    let mut samples = Vec::new();
    let started = Instant::now();
    let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
    for minute in 1..=minutes {
        tokio::time::sleep_until((started + Duration::from_secs(60 * minute as u64)).into()).await;
        // Pruned beside the sampling, not before it; a prune still running a
        // minute on is left to finish rather than started again.
        if pruning.as_ref().is_none_or(|running| running.is_finished()) {
            let url = database.url.clone();
            pruning = Some(tokio::task::spawn_blocking(move || prune(&url)));
        } else {
            eprintln!("minute {minute}: the last prune is still running");
        }
        let metrics_text = sink_free_get(&client, &metrics).await;
        samples.push(Sample {
            delivered: sink.figure(&client, "delivered").await.parse().unwrap(),
            queue: gauge(&metrics_text, "weft_queue_depth"),
            rss_mib: rss_mib(weft.pid()),
            database_mib: database_mib(&database.url).await,
        });
        let last = samples.last().unwrap();
        eprintln!(
            "minute {minute}: delivered {}, queue {}, rss {:.0} MiB, database {:.0} MiB",
            last.delivered, last.queue, last.rss_mib, last.database_mib
        );
    }
    let answered = publishing.await.unwrap();
    if let Some(running) = pruning {
        running.await.unwrap();
    }
    let accepted = answered.len() as u64;
    let drained = Instant::now();
    let delivered = loop {
        let delivered: u64 = sink.figure(&client, "delivered").await.parse().unwrap();
        if delivered >= accepted || drained.elapsed() > DRAIN {
            break delivered;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    println!(
        "{:>6} {:>10} {:>16} {:>14} {:>8} {:>9} {:>10}",
        "minute", "published", "publish p50/p99", "delivered", "queue", "rss MiB", "db MiB"
    );
    for (index, sample) in samples.iter().enumerate() {
        let minute =
            Duration::from_secs(60 * index as u64)..Duration::from_secs(60 * (index as u64 + 1));
        let mut took: Vec<Duration> = answered
            .iter()
            .filter(|(due, _)| minute.contains(due))
            .map(|&(_, took)| took)
            .collect();
        took.sort_unstable();
        println!(
            "{:>6} {:>10} {:>16} {:>14} {:>8} {:>9.0} {:>10.0}",
            index + 1,
            took.len(),
            format!(
                "{:.1}/{:.1} ms",
                quantile_ms(&took, 0.5),
                quantile_ms(&took, 0.99)
            ),
            sample.delivered,
            sample.queue,
            sample.rss_mib,
            sample.database_mib,
        );
    }
    println!(
        "accepted {accepted}, delivered {delivered} ({:.3} %), {:.0} s after publishing stopped",
        delivered as f64 * 100.0 / accepted as f64,
        drained.elapsed().as_secs_f64()
    );
    drop(weft);
    database.drop().await;
}

/// Prunes what is older than [`KEPT`], as an operator's scheduled job would.
fn prune(database_url: &str) {
    let output = std::process::Command::new(weft_tests::weft_binary())
        .args([
            "history",
            "prune",
            "--older-than",
            KEPT,
            "--database-url",
            database_url,
        ])
        .env("WEFT_MASTER_KEY", MASTER_KEY)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "weft history prune: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprint!("{}", String::from_utf8_lossy(&output.stdout));
}

/// The body of `GET url`.
async fn sink_free_get(client: &weft_tests::load::HttpClient, url: &str) -> String {
    use http_body_util::{BodyExt, Full};
    let request = hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&body).into_owned()
}

/// The value of the unlabelled gauge `name` in OpenMetrics `text`.
fn gauge(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// The resident memory of process `pid`, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1_024.0)
}

/// What the database takes: a SQLite file and its write-ahead log, or the
/// tables and indexes of a PostgreSQL schema.
async fn database_mib(url: &str) -> f64 {
    let bytes = if let Some(path) = url.strip_prefix("sqlite://") {
        ["", "-wal"]
            .iter()
            .filter_map(|suffix| std::fs::metadata(format!("{path}{suffix}")).ok())
            .map(|file| file.len())
            .sum::<u64>() as f64
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let (bytes,): (i64,) = sqlx::query_as(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::BIGINT FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        bytes as f64
    };
    bytes / 1_048_576.0
}
