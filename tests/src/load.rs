//! The load side of the benchmarks: the receiver process (`weft-sink`), and
//! clients that post as fast as they can or at a steady rate, each answer
//! checked.

use crate::weft::Api;
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

pub type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled client keeping up to `idle` connections per host.
pub fn http_client(idle: usize) -> HttpClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(idle)
        .build_http()
}

/// The receiver process.
pub struct Sink {
    child: Child,
    port: u16,
}

impl Sink {
    pub fn start() -> Self {
        let binary = crate::weft_binary().with_file_name("weft-sink");
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Where it refuses each delivery's first request.
    pub fn url_failing_first(&self) -> String {
        format!("http://127.0.0.1:{}/fail-first/hooks", self.port)
    }

    /// Where it answers like a receiver with trouble (see `weft-sink`).
    pub fn url_flaky(&self) -> String {
        format!("http://127.0.0.1:{}/flaky/hooks", self.port)
    }

    pub async fn count(&self, client: &HttpClient) -> u64 {
        self.figure(client, "count").await.parse().unwrap()
    }

    /// What it says at `GET /{name}`.
    pub async fn figure(&self, client: &HttpClient, name: &str) -> String {
        let request = hyper::Request::get(format!("http://127.0.0.1:{}/{name}", self.port))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = client.request(request).await.unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8_lossy(&body).into_owned()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates what `body` describes at `path`, as `admin`.
pub async fn create(admin: &Api, path: &str, body: Value) -> Value {
    let (status, created) = admin.post(path, &body).await;
    assert_eq!(status, 201, "{path}: {created}");
    created
}

/// A publisher's key that may publish as fast as the benchmark asks.
pub async fn publisher_key(admin: &Api) -> String {
    let key = create(
        admin,
        "/v1/api-keys",
        json!({ "name": "load generator", "role": "publisher", "ingest_per_second": 1_000_000 }),
    )
    .await;
    key["key"].as_str().unwrap().to_owned()
}

/// Posts `body` to `url`; the answer must be a success.
pub async fn send_successfully(client: &HttpClient, url: &str, key: Option<&str>, body: Bytes) {
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
pub async fn post_all(
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

/// Posts `body` to `url` `count` times at `rate` a second, each request sent
/// when it falls due whatever earlier ones are still waiting for; every answer
/// must be a success. Returns, for each request, when it was due (from the
/// first) and its time from then to its answer.
pub async fn post_paced(
    client: &HttpClient,
    url: &str,
    key: &str,
    body: Bytes,
    count: usize,
    rate: usize,
) -> Vec<(Duration, Duration)> {
    let started = tokio::time::Instant::now();
    let mut requests = tokio::task::JoinSet::new();
    for index in 0..count {
        let due = started + Duration::from_secs_f64(index as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let (client, url, key, body) =
            (client.clone(), url.to_owned(), key.to_owned(), body.clone());
        requests.spawn(async move {
            send_successfully(&client, &url, Some(&key), body).await;
            (due - started, due.elapsed())
        });
    }
    requests.join_all().await
}

/// The `q` quantile of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted
        .get(index)
        .map_or(f64::NAN, |took| took.as_secs_f64() * 1_000.0)
}
