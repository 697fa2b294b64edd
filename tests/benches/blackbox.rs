//! The headline benchmark, measured as users run Weft: the shipped `weft serve`
//! with its default flags, this process as the load generator, and a minimal
//! receiver (`weft-sink`) in a process of its own: three processes sharing
//! the machine's cores, and a backlog of 100,000 events.
//!
//! The baseline, in the same run: this process's bare hyper client posting
//! the same number of requests straight to the same receiver, 64 at a time:
//! the most any sender could deliver to it here.
//!
//! Three ways of publishing:
//! - `batch`: `sales_order.created` in batches of 100, four requests in
//!   flight, each event turned into a Slack message by the Slack template;
//! - `single`: one event per request, 64 in flight, delivered as published;
//! - `paced`: one event per request at a steady offered rate (1,000/s, or
//!   `WEFT_BENCH_RATE`) whatever the answers take, as a business platform
//!   publishes: the capture latency a publisher sees while every event is
//!   also being delivered. Each request's time counts from when it was due,
//!   so a stall shows in full even though later requests wait behind it.
//! - `pruning`: `paced`, while Weft prunes a million rows of history past
//!   its retention (350,000 events, each with a delivery and an attempt,
//!   captured 100 days ago, written straight into the database before
//!   publishing starts); the publish latency while pruning ran, against the
//!   `paced` row's.
//! - `retry`: `paced`, to a receiver that refuses each delivery's first
//!   request (503) and takes the second; the endpoint retries after a fixed
//!   200 ms. The receiver times the gap between the two requests: what a
//!   retry waits beyond its delay is Weft's lag in picking it up.
//!
//! For each, on a fresh SQLite file and on a fresh PostgreSQL schema: how fast
//! events were accepted, how fast they were delivered from the first publish
//! to the last delivery, and how fast once publishing had stopped.
//!
//! `cargo bench -p weft-tests --bench blackbox [-- sqlite|postgres] [batch|single|paced]`;
//! `WEFT_BENCH_EVENTS` sets the backlog (default 100,000).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use weft_tests::load::{
    Sink, create, http_client, post_all, post_paced, publisher_key, quantile_ms,
};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::weft::{Api, Backend, TestDatabase};
use weft_tests::{guest, repo_root, sample_event_json};

/// Requests in flight at once for the baseline and for single publishes.
const CONCURRENCY: usize = 64;
/// Events per batch, and batch requests in flight at once.
const BATCH: usize = 100;
const BATCH_PUBLISHERS: usize = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Batch,
    Single,
    Paced,
    Pruning,
    Retry,
}

/// The fixed delay of `retry`'s endpoint.
const RETRY_DELAY_MS: u64 = 200;

/// Events of history past its retention that `pruning` starts with; each
/// has a delivery and an attempt, so three times as many rows go.
const OLD_EVENTS: usize = 350_000;

fn main() {
    let events: usize = std::env::var("WEFT_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(100_000);
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen = |name: &str, all: &[&str]| {
        let asked: Vec<&String> = words.iter().filter(|w| all.contains(&w.as_str())).collect();
        asked.is_empty() || asked.iter().any(|w| *w == name)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("== black box: weft serve, weft-sink and this load generator, {events} events");
    println!(
        "{:<10} {:<7} {:>10} {:>15} {:>12} {:>12} {:>12} {:>9}",
        "backend",
        "publish",
        "accepted/s",
        "publish p50/p99",
        "delivered/s",
        "after pub/s",
        "baseline/s",
        "ratio"
    );
    for (name, backend) in [("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)] {
        for (mode_name, mode) in [
            ("batch", Mode::Batch),
            ("single", Mode::Single),
            ("paced", Mode::Paced),
            ("pruning", Mode::Pruning),
            ("retry", Mode::Retry),
        ] {
            if chosen(name, &["sqlite", "postgres"])
                && chosen(mode_name, &["batch", "single", "paced", "pruning", "retry"])
            {
                runtime.block_on(run(name, backend, mode_name, mode, events));
            }
        }
    }
}

async fn run(name: &str, backend: Backend, mode_name: &str, mode: Mode, events: usize) {
    let client = http_client(CONCURRENCY * 2);
    let sink = Sink::start();
    let database = TestDatabase::create(backend).await;
    let workdir = tempfile::tempdir().unwrap();
    // The Slack template alone: the tests' other guests include deliberately
    // unusable ones.
    let plugins_dir = workdir.path().join("plugins");
    std::fs::create_dir(&plugins_dir).unwrap();
    std::fs::copy(guest("slack"), plugins_dir.join("slack.wasm")).unwrap();
    let mut args = vec!["--plugins-dir", plugins_dir.to_str().unwrap()];
    if mode == Mode::Pruning {
        args.extend(["--history-prune-interval-seconds", "1"]);
        args.extend(["--metrics-listen", "127.0.0.1:0"]);
    }
    let weft = WeftProcess::start_with(Some(&database.url), workdir.path(), &args);
    let admin = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
    let publisher = publisher_key(&admin).await;
    let mut endpoint = json!({ "name": "sink", "url": sink.url(), "timeout_ms": 30_000 });
    if mode == Mode::Retry {
        endpoint["url"] = json!(sink.url_failing_first());
        endpoint["retry"] = json!({ "max_attempts": 3, "backoff": { "type": "fixed", "delay_ms": RETRY_DELAY_MS } });
        // Every delivery fails once: a breaker would open on the first ones.
        endpoint["circuit_breaker"] = json!({
            "failures": 0, "pause_seconds": 5, "max_pause_seconds": 600, "disable_after_seconds": 0
        });
    }
    let endpoint = create(&admin, "/v1/endpoints", endpoint).await;
    let sample = sample_event_json("sales_order.created");
    let event = json!({ "type": sample["type"], "data": sample["data"] });
    let mut subscription = json!({
        "name": "bench", "endpoint_id": endpoint["id"], "event_types": ["sales_order.created"]
    });
    if mode == Mode::Batch {
        let slack: Value = serde_json::from_str(
            &std::fs::read_to_string(repo_root().join("plugins/slack/example-config.json"))
                .unwrap(),
        )
        .unwrap();
        subscription["plugins"] =
            json!([{ "plugin": "slack", "version": "0.1.0", "config": slack }]);
    }
    create(&admin, "/v1/subscriptions", subscription).await;

    // The ceiling: a bare client posting as many requests to the same sink.
    let body = Bytes::from(serde_json::to_vec(&event["data"]).unwrap());
    let started = Instant::now();
    post_all(
        &client,
        &format!("{}/baseline", sink.url()),
        None,
        body,
        events,
        CONCURRENCY,
    )
    .await;
    let baseline = events as f64 / started.elapsed().as_secs_f64();
    let delivered_before = sink.count(&client).await;

    // Weft: publish the backlog while the workers deliver it.
    let (url, request, requests) = match mode {
        Mode::Batch => (
            format!("{}/v1/events/batch", weft.url),
            json!({ "events": vec![event.clone(); BATCH] }),
            events.div_ceil(BATCH),
        ),
        Mode::Single | Mode::Paced | Mode::Pruning | Mode::Retry => {
            (format!("{}/v1/events", weft.url), event.clone(), events)
        }
    };
    let published = requests * if mode == Mode::Batch { BATCH } else { 1 };
    let request = Bytes::from(serde_json::to_vec(&request).unwrap());
    let pruning = if mode == Mode::Pruning {
        seed_old_history(&database.url, &event["data"]).await;
        Some(tokio::spawn(watch_pruning(metrics_url(&weft))))
    } else {
        None
    };
    let started = Instant::now();
    let mut paced = Vec::new();
    let publish_times = match mode {
        Mode::Batch | Mode::Single => {
            let in_flight = if mode == Mode::Batch {
                BATCH_PUBLISHERS
            } else {
                CONCURRENCY
            };
            post_all(
                &client,
                &url,
                Some(&publisher),
                request,
                requests,
                in_flight,
            )
            .await
        }
        Mode::Paced | Mode::Pruning | Mode::Retry => {
            paced = post_paced(&client, &url, &publisher, request, requests, paced_rate()).await;
            let mut took: Vec<Duration> = paced.iter().map(|&(_, took)| took).collect();
            took.sort_unstable();
            took
        }
    };
    let publishing = started.elapsed();
    // Under `retry`, each delivery reaches the receiver twice.
    let requests_each = if mode == Mode::Retry { 2 } else { 1 };
    let delivered_while_publishing =
        (sink.count(&client).await - delivered_before) / requests_each as u64;
    let target = delivered_before + (published * requests_each) as u64;
    let deadline = Instant::now() + Duration::from_secs(1_800);
    while sink.count(&client).await < target {
        assert!(Instant::now() < deadline, "the backlog was not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let total = started.elapsed();
    let after = total - publishing;
    let delivered_rate = published as f64 / total.as_secs_f64();
    // Once publishing stopped: meaningless when delivery had kept up (under
    // 1% of the backlog left).
    let left = published as u64 - delivered_while_publishing;
    let after_publishing = if left * 100 < published as u64 {
        "kept up".to_owned()
    } else {
        format!("{:.0}", left as f64 / after.as_secs_f64().max(1e-3))
    };
    println!(
        "{name:<10} {mode_name:<7} {:>10.0} {:>15} {:>12.0} {:>12} {:>12.0} {:>8.2}×",
        published as f64 / publishing.as_secs_f64(),
        format!(
            "{:.1}/{:.1} ms",
            quantile_ms(&publish_times, 0.50),
            quantile_ms(&publish_times, 0.99)
        ),
        delivered_rate,
        after_publishing,
        baseline,
        delivered_rate / baseline,
    );
    if mode == Mode::Retry {
        let gaps = sink.figure(&client, "retry-gaps").await;
        let figures: Vec<f64> = gaps
            .split_whitespace()
            .map(|figure| figure.parse().unwrap())
            .collect();
        println!(
            "{:<10} {:<7} {} retries after a fixed {RETRY_DELAY_MS} ms: the receiver saw the \
             second request {:.1}/{:.1} ms (p50/p99; at most {:.1}) after the first",
            "", "", figures[0], figures[1], figures[2], figures[3],
        );
    }
    if let Some(pruning) = pruning {
        let finished = pruning.await.unwrap();
        let finished = finished.saturating_duration_since(started);
        // Publishes due while pruning ran (it starts within a second of the
        // seeding, which ends as publishing starts).
        let mut during: Vec<Duration> = paced
            .iter()
            .filter(|&&(due, _)| due < finished)
            .map(|&(_, took)| took)
            .collect();
        during.sort_unstable();
        println!(
            "{:<10} {:<7} {} old rows pruned within {:.1} s of publishing's start; \
             the {} publishes due meanwhile: p50/p99 {:.1}/{:.1} ms",
            "",
            "",
            OLD_EVENTS * 3,
            finished.as_secs_f64(),
            during.len(),
            quantile_ms(&during, 0.50),
            quantile_ms(&during, 0.99),
        );
    }
    drop(weft);
    database.drop().await;
}

/// Writes [`OLD_EVENTS`] events of tenant `default`, each with a succeeded
/// delivery and its attempt, captured 100 days ago, straight into the
/// database at `url`: history past the default retention of 90 days.
async fn seed_old_history(url: &str, data: &Value) {
    const DAY_MS: i64 = 86_400_000;
    let old = weft_engine::model::now_millis() - 100 * DAY_MS;
    let payload = serde_json::to_string(data).unwrap();
    let sqlite = url.starts_with("sqlite:");
    // `n(i)`: 1 to OLD_EVENTS.
    let numbers = if sqlite {
        format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {OLD_EVENTS}) "
        )
    } else {
        String::new()
    };
    let from = if sqlite {
        "FROM n".to_owned()
    } else {
        format!("FROM generate_series(1, {OLD_EVENTS}) AS n(i)")
    };
    let statements = [
        format!(
            "{numbers}INSERT INTO events (tenant, id, event_type, idempotency_key, occurred_at, \
             received_at, payload, metadata) SELECT 'default', 'evt_old' || i, \
             'sales_order.created', NULL, {old} + i, {old} + i, $1, '{{}}' {from}"
        ),
        format!(
            "{numbers}INSERT INTO deliveries (tenant, id, event_id, event_type, subscription_id, \
             endpoint_id, status, attempts, next_attempt_at, last_error, ordering_key, \
             created_at, updated_at) SELECT 'default', 'dlv_old' || i, 'evt_old' || i, \
             'sales_order.created', 'sub_old', 'ep_old', 'succeeded', 1, {old} + i, NULL, NULL, \
             {old} + i, {old} + i {from}"
        ),
        format!(
            "{numbers}INSERT INTO attempts (tenant, id, delivery_id, number, started_at, \
             duration_ms, request_method, request_url, request_headers, response_status, \
             response_headers, response_body, error) SELECT 'default', 'att_old' || i, \
             'dlv_old' || i, 1, {old} + i, 3, 'POST', 'https://old.example/hooks', '{{}}', 200, \
             '{{}}', 'ok', NULL {from}"
        ),
    ];
    // In one transaction: the server's pruning, already running, would take
    // events written alone for events without deliveries.
    let started = Instant::now();
    macro_rules! seed_in_one_transaction {
        ($pool:ty) => {{
            let pool = <$pool>::connect(url).await.unwrap();
            let mut tx = pool.begin().await.unwrap();
            for (index, statement) in statements.into_iter().enumerate() {
                let query = sqlx::query(sqlx::AssertSqlSafe(statement));
                let query = if index == 0 {
                    query.bind(&payload)
                } else {
                    query
                };
                query.execute(&mut *tx).await.unwrap();
            }
            tx.commit().await.unwrap();
            if sqlite {
                // Into the database file now, as a database that grew over
                // months would be: left in the write-ahead log, it would be
                // copied by the next commit of `weft serve`, a capture.
                sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }};
    }
    if sqlite {
        seed_in_one_transaction!(sqlx::SqlitePool);
    } else {
        seed_in_one_transaction!(sqlx::PgPool);
    }
    eprintln!(
        "seeded {} rows of old history in {:.1} s",
        OLD_EVENTS * 3,
        started.elapsed().as_secs_f64()
    );
}

/// Where `weft` serves its metrics, from what it printed at start.
fn metrics_url(weft: &WeftProcess) -> String {
    weft.printed
        .iter()
        .find_map(|line| line.strip_prefix("weft metrics on "))
        .unwrap_or_else(|| panic!("no metrics address in {:?}", weft.printed))
        .to_owned()
}

/// Polls `metrics` until Weft has pruned every seeded event; when it had.
async fn watch_pruning(metrics: String) -> Instant {
    let client = http_client(1);
    let deadline = Instant::now() + Duration::from_secs(1_800);
    loop {
        let request = hyper::Request::get(&metrics)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let text = response.into_body().collect().await.unwrap().to_bytes();
        let pruned = String::from_utf8_lossy(&text)
            .lines()
            .find_map(|line| line.strip_prefix("weft_history_pruned_total{kind=\"events\"} "))
            .and_then(|count| count.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if pruned >= OLD_EVENTS as f64 {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the old history was never pruned"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
/// The offered rate of `paced` publishing, per second.
fn paced_rate() -> usize {
    std::env::var("WEFT_BENCH_RATE")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|&rate| rate > 0)
        .unwrap_or(1_000)
}
