//! The pipeline benchmark: events published to Weft's API, captured durably,
//! turned into Slack messages by the Slack template and delivered to a receiver
//! on loopback; on SQLite and on PostgreSQL.
//!
//! The baseline, measured in the same run against the same receiver: a bare
//! hyper client posting the very bodies Weft delivers. Weft, its workers, the
//! publishing client and the receiver share this process and its cores, as the
//! baseline's client and the receiver do.
//!
//! `cargo bench -p weft-tests --bench pipeline [-- sqlite|postgres]`.
//! `WEFT_BENCH_EVENTS` sets the events per throughput measurement (default
//! 20,000), `WEFT_BENCH_SECONDS` the length of each latency run (default 5).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weft_tests::receiver::Receiver;
use weft_tests::weft::{Backend, TestWeft};
use weft_tests::{repo_root, sample_event_json};

/// Events per `POST /v1/events/batch`.
const BATCH: usize = 500;
/// Batch requests in flight at once while measuring ingest.
const PUBLISHERS: usize = 4;
/// Requests in flight at once for the baseline's throughput.
const BASELINE_CONCURRENCY: usize = 64;
/// The rate the latency runs offer, in requests per second.
const OFFERED_PER_SECOND: u64 = 2_000;
/// Delivery workers, as `weft serve` starts by default.
const WORKERS: usize = 2;
/// Deliveries queued for the slow endpoint: more than its share of places.
const SLOW_BACKLOG: usize = 2_000;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let events: usize = env_or("WEFT_BENCH_EVENTS", 20_000);
    let seconds: u64 = env_or("WEFT_BENCH_SECONDS", 5);
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, backend) in [("sqlite", Backend::Sqlite), ("postgres", Backend::Postgres)] {
        if only.is_empty() || only.iter().any(|word| name.contains(word.as_str())) {
            runtime.block_on(bench_backend(name, backend, events, seconds));
        }
    }
}

async fn bench_backend(name: &str, backend: Backend, events: usize, seconds: u64) {
    println!("== {name}: {events} events per throughput run, {seconds} s per latency run");
    let client = http_client();
    let receiver = Receiver::start().await;
    let mut weft = TestWeft::start_without_workers(backend).await;
    let (endpoint, _) = weft.endpoint(&receiver.url, 3).await;
    let slack_config: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("plugins/slack/example-config.json")).unwrap(),
    )
    .unwrap();
    let subscription = weft
        .subscription(
            &endpoint,
            json!({
                "event_types": ["sales_order.created"],
                "plugins": [{ "plugin": "slack", "version": "0.1.0", "config": slack_config }]
            }),
        )
        .await;
    let sample = sample_event_json("sales_order.created");
    let published = json!({ "type": sample["type"], "data": sample["data"] });

    // The baseline: the body Weft would deliver, posted straight to the receiver.
    let (status, preview) = weft
        .post(
            &format!("/v1/subscriptions/{subscription}/preview"),
            &published,
        )
        .await;
    assert_eq!(status, 200, "{preview}");
    let slack_body =
        Bytes::from(serde_json::to_vec(&preview["outcome"]["deliver"][0]["body"]).unwrap());
    let started = Instant::now();
    let sink = Target::open(&receiver.url);
    post_concurrently(
        &client,
        &sink,
        slack_body.clone(),
        events,
        BASELINE_CONCURRENCY,
    )
    .await;
    let baseline_rate = events as f64 / started.elapsed().as_secs_f64();
    let baseline_latency = open_loop(&client, &sink, &slack_body, seconds).await;

    // Batch ingest: events and their delivery jobs on disk, no worker running.
    let batch = Bytes::from(
        serde_json::to_vec(&json!({ "events": vec![published.clone(); BATCH] })).unwrap(),
    );
    let started = Instant::now();
    let batches = events.div_ceil(BATCH);
    post_concurrently(
        &client,
        &Target::weft(&weft, "/v1/events/batch"),
        batch,
        batches,
        PUBLISHERS,
    )
    .await;
    let ingest_rate = (batches * BATCH) as f64 / started.elapsed().as_secs_f64();

    // End to end: the workers deliver the backlog through the Slack template.
    let backlog = batches * BATCH;
    let expected = receiver.count() + backlog;
    let started = Instant::now();
    weft.start_workers(WORKERS);
    wait_until_received(&receiver, expected).await;
    let delivery_rate = backlog as f64 / started.elapsed().as_secs_f64();
    check_each_delivery_arrived_once(&receiver, backlog);

    // Capture latency of single publishes at the offered rate: first with
    // nothing to deliver, then while every event is also being delivered.
    let unsubscribed =
        json!({ "type": "stock.updated", "data": sample_event_json("stock.updated")["data"] });
    let events_url = Target::weft(&weft, "/v1/events");
    let idle = open_loop(&client, &events_url, &to_bytes(&unsubscribed), seconds).await;
    let before = receiver.count();
    let delivering = open_loop(&client, &events_url, &to_bytes(&published), seconds).await;
    wait_until_received(&receiver, before + delivering.accepted).await;

    // The healthy endpoint's throughput with its workers running, alone and
    // then beside an endpoint whose receiver holds every request for a
    // minute (a backlog of more than its share of the places).
    let publish_backlog = |count: usize| {
        let (client, target, batch) = (
            client.clone(),
            Target::weft(&weft, "/v1/events/batch"),
            Bytes::from(
                serde_json::to_vec(&json!({ "events": vec![published.clone(); BATCH] })).unwrap(),
            ),
        );
        async move {
            post_concurrently(&client, &target, batch, count.div_ceil(BATCH), PUBLISHERS).await;
        }
    };
    let alone = timed_backlog(&receiver, events, publish_backlog(events)).await;
    let slow = Receiver::start().await;
    slow.answer_all(weft_tests::receiver::Reply::status(200).after(Duration::from_secs(60)));
    let (status, slow_endpoint) = weft
        .post(
            "/v1/endpoints",
            &json!({ "name": "slow", "url": slow.url, "timeout_ms": 60_000 }),
        )
        .await;
    assert_eq!(status, 201, "{slow_endpoint}");
    weft.subscription(
        slow_endpoint["id"].as_str().unwrap(),
        json!({ "event_types": ["stock.updated"] }),
    )
    .await;
    let stock =
        json!({ "type": "stock.updated", "data": sample_event_json("stock.updated")["data"] });
    post_concurrently(
        &client,
        &Target::weft(&weft, "/v1/events/batch"),
        to_bytes(&json!({ "events": vec![stock; BATCH] })),
        SLOW_BACKLOG / BATCH,
        1,
    )
    .await;
    while slow.in_flight() < weft_engine::delivery::DEFAULT_ENDPOINT_CONCURRENCY as usize {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let beside_slow = timed_backlog(&receiver, events, publish_backlog(events)).await;
    let slow_in_flight = slow.in_flight();
    weft.stop().await;

    println!(
        "{:<44} {:>12} {:>16} {:>8}",
        "measure", "weft", "baseline", "ratio"
    );
    row(
        "batch ingest, events/s durably accepted",
        ingest_rate,
        baseline_rate,
    );
    row(
        "end to end with the Slack template, deliveries/s",
        delivery_rate,
        baseline_rate,
    );
    latency_row(
        "capture p50 at 2,000/s, idle, ms",
        idle.p50,
        baseline_latency.p50,
    );
    latency_row(
        "capture p99 at 2,000/s, idle, ms",
        idle.p99,
        baseline_latency.p99,
    );
    latency_row(
        "capture p50 at 2,000/s, delivering, ms",
        delivering.p50,
        baseline_latency.p50,
    );
    latency_row(
        "capture p99 at 2,000/s, delivering, ms",
        delivering.p99,
        baseline_latency.p99,
    );
    row("healthy endpoint alone, deliveries/s", alone, baseline_rate);
    row(
        "healthy endpoint beside a 60 s one, deliveries/s",
        beside_slow,
        baseline_rate,
    );
    println!(
        "{:<44} {:>12.2}   (aim: 0.90; the slow receiver held {slow_in_flight} requests)",
        "  beside a slow endpoint / alone",
        beside_slow / alone
    );
    println!(
        "(baseline: a bare hyper client posting the Slack body to the receiver; achieved rates {:.0}/s idle, {:.0}/s delivering, {:.0}/s baseline)",
        idle.achieved_rate, delivering.achieved_rate, baseline_latency.achieved_rate
    );
    println!();
}

fn row(measure: &str, weft: f64, baseline: f64) {
    println!(
        "{measure:<44} {weft:>12.0} {:>16} {:>7.2}×",
        format!("{baseline:.0} req/s"),
        weft / baseline
    );
}

fn latency_row(measure: &str, weft: Duration, baseline: Duration) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{measure:<44} {:>12.2} {:>16} {:>7.1}×",
        ms(weft),
        format!("{:.2} ms", ms(baseline)),
        ms(weft) / ms(baseline)
    );
}

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http()
}

/// Where requests go, and the credential they carry there (Weft's API wants
/// one; the receiver takes none).
#[derive(Clone)]
struct Target {
    url: String,
    authorization: Option<String>,
}

impl Target {
    fn open(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            authorization: None,
        }
    }

    fn weft(weft: &TestWeft, path: &str) -> Self {
        Self {
            url: format!("{}{path}", weft.url),
            authorization: weft.key.as_ref().map(|key| format!("Bearer {key}")),
        }
    }
}

async fn post(client: &HttpClient, target: &Target, body: Bytes) -> u16 {
    let mut request = hyper::Request::post(&target.url).header("content-type", "application/json");
    if let Some(authorization) = &target.authorization {
        request = request.header("authorization", authorization);
    }
    let request = request.body(Full::new(body)).unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    response.into_body().collect().await.unwrap();
    status
}

/// Posts `body` to `url` `count` times, `concurrency` requests at a time; every
/// answer must be a success.
async fn post_concurrently(
    client: &HttpClient,
    target: &Target,
    body: Bytes,
    count: usize,
    concurrency: usize,
) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, target, body, next) = (
            client.clone(),
            target.clone(),
            body.clone(),
            Arc::clone(&next),
        );
        posters.spawn(async move {
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                let status = post(&client, &target, body.clone()).await;
                assert!(
                    (200..300).contains(&status),
                    "{} answered {status}",
                    target.url
                );
            }
        });
    }
    posters.join_all().await;
}

struct Latencies {
    p50: Duration,
    p99: Duration,
    accepted: usize,
    achieved_rate: f64,
}

/// Offers [`OFFERED_PER_SECOND`] posts of `body` for `seconds`, each sent on
/// schedule whether or not earlier ones have been answered (an open loop, so a
/// slow answer cannot hide by delaying the next request).
async fn open_loop(client: &HttpClient, target: &Target, body: &Bytes, seconds: u64) -> Latencies {
    let per_tick = OFFERED_PER_SECOND / 1000;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut requests = tokio::task::JoinSet::new();
    let started = Instant::now();
    for _ in 0..seconds * 1000 {
        ticker.tick().await;
        for _ in 0..per_tick {
            let (client, target, body) = (client.clone(), target.clone(), body.clone());
            requests.spawn(async move {
                let sent = Instant::now();
                let status = post(&client, &target, body).await;
                assert!(
                    (200..300).contains(&status),
                    "{} answered {status}",
                    target.url
                );
                sent.elapsed()
            });
        }
    }
    let mut latencies = requests.join_all().await;
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Latencies {
        p50: at(0.50),
        p99: at(0.99),
        accepted: latencies.len(),
        achieved_rate: latencies.len() as f64 / elapsed.as_secs_f64(),
    }
}

/// Publishes a backlog of `count` events with `publish` while the workers run,
/// and returns the deliveries per second from its first publish until the
/// receiver has them all.
async fn timed_backlog(
    receiver: &Receiver,
    count: usize,
    publish: impl std::future::Future<Output = ()>,
) -> f64 {
    let expected = receiver.count() + count.div_ceil(BATCH) * BATCH;
    let started = Instant::now();
    publish.await;
    wait_until_received(receiver, expected).await;
    count as f64 / started.elapsed().as_secs_f64()
}

async fn wait_until_received(receiver: &Receiver, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(600);
    while receiver.count() < count {
        assert!(
            Instant::now() < deadline,
            "only {} of {count} requests arrived",
            receiver.count()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Weft's deliveries carry a `webhook-id`; the baseline's do not. Every
/// delivery of the backlog must have arrived, and only once.
fn check_each_delivery_arrived_once(receiver: &Receiver, backlog: usize) {
    let ids: Vec<String> = receiver
        .received()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    let distinct: HashSet<&String> = ids.iter().collect();
    assert_eq!(
        distinct.len(),
        backlog,
        "distinct webhook-ids at the receiver"
    );
    assert_eq!(
        ids.len(),
        backlog,
        "requests with a webhook-id at the receiver"
    );
}

fn to_bytes(value: &Value) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap())
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}
