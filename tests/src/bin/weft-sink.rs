//! A minimal receiver for the black-box benchmark, in a process of its own:
//! answers every request 200 at once and counts them. `GET /count` (not
//! counted) tells how many arrived. Prints `listening on <port>` once ready.
//!
//! Under `/fail-first/` it answers a delivery's first request (by its
//! `webhook-id`) 503 and its later ones 200, and keeps the time between the
//! first two: `GET /retry-gaps` (not counted) answers their count and
//! median, 99th percentile and largest, in milliseconds, as
//! `count p50 p99 max`.
//!
//! Under `/flaky/` it behaves like a receiver with trouble, by the order
//! requests arrive in: one in a hundred hangs for a minute (longer than any
//! endpoint's timeout), one in ten more is answered 500, the others 200.
//! `GET /delivered` (not counted) answers how many distinct deliveries (by
//! `webhook-id`) it answered 200 there.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Sink {
    received: AtomicU64,
    /// When each `/fail-first/` delivery was first seen, until it is seen again.
    first_seen: Mutex<HashMap<String, Instant>>,
    /// The time between a `/fail-first/` delivery's first two requests.
    gaps: Mutex<Vec<Duration>>,
    /// Requests that came to `/flaky/`, and the deliveries answered 200 there.
    flaky_requests: AtomicU64,
    delivered: Mutex<HashSet<String>>,
}

/// How long a `/flaky/` request that hangs is held.
const HANG: Duration = Duration::from_secs(60);

impl Sink {
    /// The answer to `request`, counted unless it asks for a figure.
    async fn answer(&self, request: &Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        match request.uri().path() {
            "/count" => text(self.received.load(Ordering::Relaxed).to_string()),
            "/retry-gaps" => text(self.gaps()),
            "/delivered" => text(self.delivered.lock().unwrap().len().to_string()),
            path if path.starts_with("/flaky/") => {
                self.received.fetch_add(1, Ordering::Relaxed);
                let id = request
                    .headers()
                    .get("webhook-id")
                    .and_then(|id| id.to_str().ok())
                    .unwrap_or_default();
                match self.flaky_requests.fetch_add(1, Ordering::Relaxed) % 100 {
                    0 => {
                        tokio::time::sleep(HANG).await;
                        text(String::new())
                    }
                    n if n % 10 == 1 => status(StatusCode::INTERNAL_SERVER_ERROR),
                    _ => {
                        self.delivered.lock().unwrap().insert(id.to_owned());
                        text(String::new())
                    }
                }
            }
            path => {
                self.received.fetch_add(1, Ordering::Relaxed);
                let id = request
                    .headers()
                    .get("webhook-id")
                    .and_then(|id| id.to_str().ok());
                match id {
                    Some(id) if path.starts_with("/fail-first/") && self.first_time(id) => {
                        status(StatusCode::SERVICE_UNAVAILABLE)
                    }
                    _ => text(String::new()),
                }
            }
        }
    }

    /// Whether delivery `id` comes for the first time; the gap if it is its second.
    fn first_time(&self, id: &str) -> bool {
        let mut first_seen = self.first_seen.lock().unwrap();
        match first_seen.remove(id) {
            Some(first) => {
                self.gaps.lock().unwrap().push(first.elapsed());
                false
            }
            None => {
                first_seen.insert(id.to_owned(), Instant::now());
                true
            }
        }
    }

    fn gaps(&self) -> String {
        let mut gaps = self.gaps.lock().unwrap().clone();
        gaps.sort_unstable();
        let at = |q: f64| {
            let index = ((gaps.len() as f64 * q) as usize).min(gaps.len().saturating_sub(1));
            gaps.get(index)
                .map_or(0.0, |gap| gap.as_secs_f64() * 1_000.0)
        };
        format!(
            "{} {:.1} {:.1} {:.1}",
            gaps.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        )
    }
}

fn text(body: String) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body)))
}

fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = text(String::new());
    *response.status_mut() = code;
    response
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on {}", listener.local_addr().unwrap().port());
    let sink = Arc::new(Sink::default());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let sink = Arc::clone(&sink);
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                let sink = Arc::clone(&sink);
                async move {
                    let response = sink.answer(&request).await;
                    let _ = request.into_body().collect().await;
                    Ok::<_, hyper::Error>(response)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
