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
//!
//! For each, on a fresh SQLite file and on a fresh PostgreSQL schema: how fast
//! events were accepted, how fast they were delivered from the first publish
//! to the last delivery, and how fast once publishing had stopped.
//!
//! `cargo bench -p weft-tests --bench blackbox [-- sqlite|postgres] [batch|single|paced]`;
//! `WEFT_BENCH_EVENTS` sets the backlog (default 100,000).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weft_tests::process::{BOOTSTRAP_KEY, WeftProcess};
use weft_tests::weft::{Api, Backend, TestDatabase};
use weft_tests::{guest, repo_root, sample_event_json};

/// Requests in flight at once for the baseline and for single publishes.
const CONCURRENCY: usize = 64;
/// Events per batch, and batch requests in flight at once.
const BATCH: usize = 100;
const BATCH_PUBLISHERS: usize = 4;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Batch,
    Single,
    Paced,
}

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
        ] {
            if chosen(name, &["sqlite", "postgres"])
                && chosen(mode_name, &["batch", "single", "paced"])
            {
                runtime.block_on(run(name, backend, mode_name, mode, events));
            }
        }
    }
}

async fn run(name: &str, backend: Backend, mode_name: &str, mode: Mode, events: usize) {
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY * 2)
        .build_http();
    let sink = Sink::start();
    let database = TestDatabase::create(backend).await;
    let workdir = tempfile::tempdir().unwrap();
    // The Slack template alone: the tests' other guests include deliberately
    // unusable ones.
    let plugins_dir = workdir.path().join("plugins");
    std::fs::create_dir(&plugins_dir).unwrap();
    std::fs::copy(guest("slack"), plugins_dir.join("slack.wasm")).unwrap();
    let weft = WeftProcess::start_with(
        Some(&database.url),
        workdir.path(),
        &["--plugins-dir", plugins_dir.to_str().unwrap()],
    );
    let admin = Api::new(weft.url.clone()).with_key(BOOTSTRAP_KEY);
    let publisher = publisher_key(&admin).await;
    let endpoint = create(
        &admin,
        "/v1/endpoints",
        json!({ "name": "sink", "url": sink.url(), "timeout_ms": 30_000 }),
    )
    .await;
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
        Mode::Single | Mode::Paced => (format!("{}/v1/events", weft.url), event.clone(), events),
    };
    let published = requests * if mode == Mode::Batch { BATCH } else { 1 };
    let request = Bytes::from(serde_json::to_vec(&request).unwrap());
    let started = Instant::now();
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
        Mode::Paced => post_paced(&client, &url, &publisher, request, requests, paced_rate()).await,
    };
    let publishing = started.elapsed();
    let delivered_while_publishing = sink.count(&client).await - delivered_before;
    let target = delivered_before + published as u64;
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
    drop(weft);
    database.drop().await;
}

/// The receiver process.
struct Sink {
    child: Child,
    port: u16,
}

impl Sink {
    fn start() -> Self {
        let binary = weft_tests::weft_binary().with_file_name("weft-sink");
        let mut child = Command::new(&binary)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (cargo build --bins)",
                    binary.display()
                )
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("weft-sink said {line:?}"));
        Self { child, port }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    async fn count(&self, client: &HttpClient) -> u64 {
        let request = hyper::Request::get(format!("http://127.0.0.1:{}/count", self.port))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).parse().unwrap()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates what `body` describes at `path`, as `admin`.
async fn create(admin: &Api, path: &str, body: Value) -> Value {
    let (status, created) = admin.post(path, &body).await;
    assert_eq!(status, 201, "{path}: {created}");
    created
}

/// A publisher's key that may publish as fast as the benchmark asks.
async fn publisher_key(admin: &Api) -> String {
    let key = create(
        admin,
        "/v1/api-keys",
        json!({ "name": "load generator", "role": "publisher", "ingest_per_second": 1_000_000 }),
    )
    .await;
    key["key"].as_str().unwrap().to_owned()
}

/// Posts `body` to `url`; the answer must be a success.
async fn send_successfully(client: &HttpClient, url: &str, key: Option<&str>, body: Bytes) {
    let mut request = hyper::Request::post(url).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let response = client
        .request(request.body(Full::new(body)).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let answer = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        (200..300).contains(&status),
        "{url} answered {status}: {}",
        String::from_utf8_lossy(&answer)
    );
}

/// Posts `body` to `url` `count` times, `concurrency` at a time; every answer
/// must be a success. Returns each request's time to its answer, sorted.
async fn post_all(
    client: &HttpClient,
    url: &str,
    key: Option<&str>,
    body: Bytes,
    count: usize,
    concurrency: usize,
) -> Vec<Duration> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, url, key, body, next) = (
            client.clone(),
            url.to_owned(),
            key.map(str::to_owned),
            body.clone(),
            Arc::clone(&next),
        );
        posters.spawn(async move {
            let mut took = Vec::new();
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let sent = Instant::now();
                send_successfully(&client, &url, key.as_deref(), body.clone()).await;
                took.push(sent.elapsed());
            }
            took
        });
    }
    let mut took: Vec<Duration> = posters.join_all().await.into_iter().flatten().collect();
    took.sort_unstable();
    took
}

/// The offered rate of `paced` publishing, per second.
fn paced_rate() -> usize {
    std::env::var("WEFT_BENCH_RATE")
        .ok()
        .and_then(|text| text.parse().ok())
        .filter(|&rate| rate > 0)
        .unwrap_or(1_000)
}

/// Posts `body` to `url` `count` times at `rate` a second, each request sent
/// when it falls due whatever earlier ones are still waiting for; every answer
/// must be a success. Returns each request's time from when it was due to its
/// answer, sorted.
async fn post_paced(
    client: &HttpClient,
    url: &str,
    key: &str,
    body: Bytes,
    count: usize,
    rate: usize,
) -> Vec<Duration> {
    let started = tokio::time::Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..count {
        let due = started + Duration::from_secs_f64(index as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let (client, url, key, body) =
            (client.clone(), url.to_owned(), key.to_owned(), body.clone());
        requests.spawn(async move {
            send_successfully(&client, &url, Some(&key), body).await;
            due.elapsed()
        });
    }
    let mut took = requests.join_all().await;
    took.sort_unstable();
    took
}

/// The `q` quantile of sorted durations, in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted
        .get(index)
        .map_or(f64::NAN, |took| took.as_secs_f64() * 1_000.0)
}
