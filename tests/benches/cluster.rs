//! Several nodes on one PostgreSQL database, measured as operators run them:
//! 1, 2 and 3 `weft serve` processes with their default flags sharing a fresh
//! database, this process as the load generator spreading its publishes over
//! the nodes, and a minimal receiver (`weft-sink`) in a process of its own,
//! all on the machine's cores together with PostgreSQL.
//!
//! Each row publishes a backlog of `sales_order.created` events (50,000 unless
//! `WEFT_BENCH_EVENTS` says otherwise) in batches of 100, four requests in
//! flight in all, taking the nodes in turn, while the nodes deliver them; it
//! reports how fast events were accepted and delivered, from the first
//! publish to the last delivery. The baseline, measured in the same run
//! before each row: this process's bare hyper client posting as many
//! requests straight to the same receiver, 64 at a time.
//!
//! Each node count runs twice: to an endpoint without limits, and to one
//! with `max_concurrency: 256` (the per-endpoint share a node allows anyway,
//! so it never binds here): every delivery then takes its place in the
//! database first, the price of limits held for the whole cluster.
//!
//! `cargo bench -p weft-tests --bench cluster [-- 1 2 3] [-- unlimited|limited]`

use bytes::Bytes;
use serde_json::json;
use std::time::{Duration, Instant};
use weft_tests::load::{Sink, create, http_client, post_all, publisher_key};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::sample_event_json;
use weft_tests::weft::{Api, Backend, TestDatabase};

/// Requests in flight at once for the baseline.
const CONCURRENCY: usize = 64;
/// Events per batch, and batch requests in flight at once in all.
const BATCH: usize = 100;
const BATCH_PUBLISHERS: usize = 4;

fn main() {
    let events: usize = std::env::var("WEFT_BENCH_EVENTS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(50_000);
    let words: Vec<String> = std::env::args().skip(1).collect();
    let asked: Vec<usize> = words.iter().filter_map(|word| word.parse().ok()).collect();
    let node_counts = if asked.is_empty() {
        vec![1, 2, 3]
    } else {
        asked
    };
    let limits: Vec<Limits> = [Limits::Unlimited, Limits::Limited]
        .into_iter()
        .filter(|limits| !words.iter().any(|word| word == limits.other().name()))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "== cluster: weft serve nodes on one PostgreSQL, weft-sink, this load generator, {events} events"
    );
    println!(
        "{:<6} {:<10} {:>11} {:>12} {:>12} {:>9}",
        "nodes", "endpoint", "accepted/s", "delivered/s", "baseline/s", "ratio"
    );
    for nodes in node_counts {
        for &limits in &limits {
            runtime.block_on(run(nodes, limits, events));
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Limits {
    Unlimited,
    Limited,
}

impl Limits {
    fn name(self) -> &'static str {
        match self {
            Limits::Unlimited => "unlimited",
            Limits::Limited => "limited",
        }
    }

    fn other(self) -> Self {
        match self {
            Limits::Unlimited => Limits::Limited,
            Limits::Limited => Limits::Unlimited,
        }
    }
}

async fn run(node_count: usize, limits: Limits, events: usize) {
    let client = http_client(CONCURRENCY * 2);
    let sink = Sink::start();
    let database = TestDatabase::create(Backend::Postgres).await;
    let workdir = tempfile::tempdir().unwrap();
    // One after the other: the first migrates the schema.
    let nodes: Vec<WeftProcess> = (0..node_count)
        .map(|index| {
            let dir = workdir.path().join(format!("node-{index}"));
            std::fs::create_dir(&dir).unwrap();
            WeftProcess::start(Some(&database.url), &dir)
        })
        .collect();
    let admin = Api::new(nodes[0].url.clone()).with_key(BOOTSTRAP_KEY);
    let publisher = publisher_key(&admin).await;
    let mut spec = json!({ "name": "sink", "url": sink.url(), "timeout_ms": 30_000 });
    if limits == Limits::Limited {
        spec["max_concurrency"] = json!(256);
    }
    let endpoint = create(&admin, "/v1/endpoints", spec).await;
    create(
        &admin,
        "/v1/subscriptions",
        json!({ "name": "bench", "endpoint_id": endpoint["id"], "event_types": ["sales_order.created"] }),
    )
    .await;
    let sample = sample_event_json("sales_order.created");
    let event = json!({ "type": sample["type"], "data": sample["data"] });

    // The ceiling: a bare client posting as many requests to the same sink.
    let body = Bytes::from(serde_json::to_vec(&event["data"]).unwrap());
    let started = Instant::now();
    let baseline_url = format!("{}/baseline", sink.url());
    post_all(&client, &baseline_url, None, body, events, CONCURRENCY).await;
    let baseline = events as f64 / started.elapsed().as_secs_f64();
    let delivered_before = sink.count(&client).await;

    // Weft: publish the backlog over the nodes while they deliver it.
    let batch = Bytes::from(serde_json::to_vec(&json!({ "events": vec![event; BATCH] })).unwrap());
    let requests = events.div_ceil(BATCH);
    let started = Instant::now();
    let mut publishing = tokio::task::JoinSet::new();
    for (index, node) in nodes.iter().enumerate() {
        let share = requests / node_count + usize::from(index < requests % node_count);
        let in_flight = BATCH_PUBLISHERS.div_ceil(node_count);
        let (client, url, key, batch) = (
            client.clone(),
            format!("{}/v1/events/batch", node.url),
            publisher.clone(),
            batch.clone(),
        );
        publishing.spawn(async move {
            post_all(&client, &url, Some(&key), batch, share, in_flight).await;
        });
    }
    publishing.join_all().await;
    let publishing = started.elapsed();
    let published = requests * BATCH;
    let target = delivered_before + published as u64;
    let deadline = Instant::now() + Duration::from_secs(1_800);
    while sink.count(&client).await < target {
        assert!(Instant::now() < deadline, "the backlog was not delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = published as f64 / started.elapsed().as_secs_f64();
    println!(
        "{node_count:<6} {:<10} {:>11.0} {:>12.0} {:>12.0} {:>8.2}×",
        limits.name(),
        published as f64 / publishing.as_secs_f64(),
        delivered,
        baseline,
        delivered / baseline,
    );
    drop(nodes);
    database.drop().await;
}
