//! A real HTTP receiver on loopback that records what Weft sends and answers
//! from a script (`500, 500, then 200`), as the systems on the other end would.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the receiver got JSON")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether it carries a valid Standard Webhooks signature made with
    /// `secret` (a `whsec_` secret or a `whpk_` public key), as a receiver
    /// would check it.
    pub fn signed_with(&self, secret: &str) -> bool {
        let now = weft_engine::model::now_millis() / 1000;
        weft_engine::delivery::verify(
            secret,
            &self.headers,
            &self.body,
            now,
            Duration::from_secs(300),
        )
        .is_ok()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Shared {
    /// The reply when no script has one; 200 at once unless set.
    default_reply: Mutex<Option<Reply>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
    /// TLS handshakes that failed (a client without the certificate asked for).
    failed_handshakes: std::sync::atomic::AtomicUsize,
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    /// Replies for requests a matcher picks out, before the general script.
    targeted: Mutex<Vec<(Matcher, VecDeque<Reply>)>>,
}

type Matcher = Box<dyn Fn(&Received) -> bool + Send + Sync>;

/// A receiver listening on 127.0.0.1; stops when dropped.
pub struct Receiver {
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers 200 to everything unless scripted otherwise.
    pub async fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            url,
            shared,
            server,
        }
    }

    /// Like [`Receiver::start`], over HTTPS with `tls` (see
    /// [`crate::pki::TestPki::server_config`]); `url` is
    /// `https://127.0.0.1:<port>/hooks`.
    pub async fn start_tls(tls: rustls::ServerConfig) -> Self {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .fallback(record)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hooks", listener.local_addr().unwrap());
        let failed = Arc::clone(&shared);
        let server = crate::pki::serve_tls(listener, app, tls, move || {
            failed
                .failed_handshakes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        });
        Self {
            url,
            shared,
            server,
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        let authority = self.url.split('/').nth(2).unwrap();
        authority.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// TLS handshakes that failed so far.
    pub fn failed_handshakes(&self) -> usize {
        self.shared
            .failed_handshakes
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The next requests get these replies, in order; then 200 again.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.shared.script.lock().unwrap().extend(replies);
    }

    /// The next requests that `matcher` picks out get these replies, in order.
    pub fn script_for(
        &self,
        matcher: impl Fn(&Received) -> bool + Send + Sync + 'static,
        replies: impl IntoIterator<Item = Reply>,
    ) {
        let replies = replies.into_iter().collect();
        self.shared
            .targeted
            .lock()
            .unwrap()
            .push((Box::new(matcher), replies));
    }

    /// Every request without a scripted reply gets `reply`.
    pub fn answer_all(&self, reply: Reply) {
        *self.shared.default_reply.lock().unwrap() = Some(reply);
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most requests that were being answered at once.
    pub fn most_in_flight(&self) -> usize {
        self.shared
            .most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How many requests arrived so far, without copying them.
    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests arrived, or panics after `timeout`.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "expected {count} requests within {timeout:?}, got {}",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A request being answered, counted while it is.
struct Answering<'a>(&'a Shared);

impl<'a> Answering<'a> {
    fn start(shared: &'a Shared) -> Self {
        use std::sync::atomic::Ordering::SeqCst;
        let now = shared.in_flight.fetch_add(1, SeqCst) + 1;
        shared.most_in_flight.fetch_max(now, SeqCst);
        Self(shared)
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received = Received {
        method,
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    };
    let targeted = shared
        .targeted
        .lock()
        .unwrap()
        .iter_mut()
        .find(|(matcher, replies)| !replies.is_empty() && matcher(&received))
        .and_then(|(_, replies)| replies.pop_front());
    shared.received.lock().unwrap().push(received);
    let reply = targeted
        .or_else(|| shared.script.lock().unwrap().pop_front())
        .or_else(|| shared.default_reply.lock().unwrap().clone())
        .unwrap_or_else(|| Reply::status(200));
    let answering = Answering::start(&shared);
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    drop(answering);
    let mut response = StatusCode::from_u16(reply.status).unwrap().into_response();
    for (name, value) in reply.headers {
        response.headers_mut().insert(name, value.parse().unwrap());
    }
    response
}

/// The most of `arrivals` (requests' arrival times, as in [`Received::at`])
/// that fell within `window` of one another.
pub fn most_within(arrivals: &[Instant], window: Duration) -> usize {
    arrivals
        .iter()
        .map(|start| {
            arrivals
                .iter()
                .filter(|at| **at >= *start && **at < *start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}
