//! Deliveries to a real hyper server on 127.0.0.1, one per test, whose paths
//! behave like the receivers Weft meets: healthy, failing, gone, rate-limiting,
//! slow, redirecting, verbose, and checking signatures.

use super::*;
use crate::model::MAX_RECORDED_RESPONSE_BYTES;
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

const RECEIVER_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TIMEOUT: Duration = Duration::from_secs(5);
const SHORT_TIMEOUT: Duration = Duration::from_millis(300);

type ReplyBody = BoxBody<Bytes, Infallible>;

/// A received request, as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    method: String,
    headers: http::HeaderMap,
    body: Bytes,
}

struct Receiver {
    base_url: String,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (counter, log) = (connections.clone(), received.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let log = log.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(reply(request, log).await) }
                    });
                    // Clients hanging up mid-response are part of the tests.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            base_url,
            connections,
            received,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

fn full(body: impl Into<Bytes>) -> ReplyBody {
    Full::new(body.into()).boxed()
}

fn status(code: u16, body: &'static str) -> Response<ReplyBody> {
    Response::builder().status(code).body(full(body)).unwrap()
}

async fn reply(request: Request<Incoming>, log: Arc<Mutex<Vec<Received>>>) -> Response<ReplyBody> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    let received = Received {
        path: parts.uri.path().to_owned(),
        method: parts.method.to_string(),
        headers: parts.headers,
        body,
    };
    log.lock().unwrap().push(received.clone());
    match received.path.as_str() {
        "/ok" => Response::builder()
            .status(200)
            .header("x-receiver", "loopback")
            .body(full("thanks"))
            .unwrap(),
        "/error" => status(500, "database is down"),
        "/gone" => status(410, "no such hook"),
        "/busy" => Response::builder()
            .status(429)
            .header("retry-after", "30")
            .body(full("slow down"))
            .unwrap(),
        "/redirect" => Response::builder()
            .status(302)
            .header("location", "/ok")
            .body(full(""))
            .unwrap(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            status(200, "too late")
        }
        "/stalls" => Response::builder()
            .status(200)
            .body(StallAfterFirstChunk(Some(Bytes::from_static(b"partial"))).boxed())
            .unwrap(),
        "/huge" => Response::builder()
            .status(200)
            .body(full(vec![b'x'; 8 << 20]))
            .unwrap(),
        "/verbose" => Response::builder()
            .status(200)
            .body(full(vec![b'y'; MAX_RECORDED_RESPONSE_BYTES + 1000]))
            .unwrap(),
        "/verify" => {
            let now = unix_now();
            let verdict = verify(
                RECEIVER_SECRET,
                &received.headers,
                &received.body,
                now,
                Duration::from_secs(300),
            );
            match verdict {
                Ok(()) => status(204, ""),
                Err(_) => status(401, "bad signature"),
            }
        }
        _ => status(404, "unknown path"),
    }
}

/// A body that sends one chunk and then never another: a receiver that hangs
/// halfway through its answer.
struct StallAfterFirstChunk(Option<Bytes>);

impl Body for StallAfterFirstChunk {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.0.take() {
            Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
            None => Poll::Pending,
        }
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn post(url: String, timeout: Duration) -> OutboundRequest {
    OutboundRequest {
        method: "POST".into(),
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from_static(br#"{"order":{"id":"SO-1"}}"#),
        timeout,
        tls: None,
    }
}

fn sender() -> HttpSender {
    HttpSender::new(loopback_allowed()).expect("the test machine has root certificates")
}

fn header<'a>(result: &'a SendResult, name: &str) -> Option<&'a str> {
    result
        .headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn a_2xx_is_delivered_with_its_response_recorded() {
    let receiver = Receiver::start().await;
    let result = sender().send(post(receiver.url("/ok"), TIMEOUT)).await;
    assert_eq!(result.status, Some(200));
    assert_eq!(result.body, b"thanks");
    assert_eq!(header(&result, "x-receiver"), Some("loopback"));
    assert_eq!(result.error, None);
    assert_eq!(classify(&result), Verdict::Delivered);

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "POST");
    assert_eq!(received[0].body, r#"{"order":{"id":"SO-1"}}"#);
    assert_eq!(received[0].headers["content-type"], "application/json");
}

#[tokio::test]
async fn failures_and_refusals_are_classified() {
    let receiver = Receiver::start().await;
    let sender = sender();
    let cases = [
        ("/error", 500, Verdict::Retry { not_before: None }),
        ("/gone", 410, Verdict::Gone),
        (
            "/busy",
            429,
            Verdict::Retry {
                not_before: Some(Duration::from_secs(30)),
            },
        ),
        ("/nowhere", 404, Verdict::Retry { not_before: None }),
    ];
    for (path, expected_status, expected_verdict) in cases {
        let result = sender.send(post(receiver.url(path), TIMEOUT)).await;
        assert_eq!(result.status, Some(expected_status), "{path}");
        assert_eq!(result.error, None, "{path}");
        assert_eq!(classify(&result), expected_verdict, "{path}");
    }
}

#[tokio::test]
async fn a_redirect_is_recorded_not_followed() {
    let receiver = Receiver::start().await;
    let result = sender()
        .send(post(receiver.url("/redirect"), TIMEOUT))
        .await;
    assert_eq!(result.status, Some(302));
    assert_eq!(header(&result, "location"), Some("/ok"));
    let paths: Vec<String> = receiver.received().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/redirect"]);
    assert_eq!(classify(&result), Verdict::Retry { not_before: None });
}

#[tokio::test]
async fn a_slow_receiver_times_out() {
    let receiver = Receiver::start().await;
    let result = sender()
        .send(post(receiver.url("/slow"), SHORT_TIMEOUT))
        .await;
    assert_eq!(result.status, None);
    assert_eq!(result.error, Some(SendError::Timeout(SHORT_TIMEOUT)));
    assert!(result.duration >= SHORT_TIMEOUT, "{:?}", result.duration);
    assert!(
        result.duration < Duration::from_secs(3),
        "{:?}",
        result.duration
    );
    assert_eq!(classify(&result), Verdict::Retry { not_before: None });
}

#[tokio::test]
async fn a_body_that_stalls_times_out_but_keeps_its_status() {
    let receiver = Receiver::start().await;
    let result = sender()
        .send(post(receiver.url("/stalls"), SHORT_TIMEOUT))
        .await;
    assert_eq!(result.status, Some(200));
    assert_eq!(result.body, b"partial");
    assert_eq!(result.error, Some(SendError::Timeout(SHORT_TIMEOUT)));
    assert!(
        result.duration < Duration::from_secs(3),
        "{:?}",
        result.duration
    );
}

#[tokio::test]
async fn a_huge_response_is_truncated_and_its_connection_dropped() {
    let receiver = Receiver::start().await;
    let sender = sender();
    let result = sender.send(post(receiver.url("/huge"), TIMEOUT)).await;
    assert_eq!(result.status, Some(200));
    assert_eq!(result.body.len(), MAX_RECORDED_RESPONSE_BYTES);
    assert_eq!(result.error, None);
    // The 8 MiB body was abandoned, so the next request needs a new connection.
    sender.send(post(receiver.url("/ok"), TIMEOUT)).await;
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_slightly_long_response_is_drained_and_its_connection_reused() {
    let receiver = Receiver::start().await;
    let sender = sender();
    let result = sender.send(post(receiver.url("/verbose"), TIMEOUT)).await;
    assert_eq!(result.body.len(), MAX_RECORDED_RESPONSE_BYTES);
    for _ in 0..3 {
        let result = sender.send(post(receiver.url("/ok"), TIMEOUT)).await;
        assert_eq!(result.status, Some(200));
    }
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ok", listener.local_addr().unwrap());
    drop(listener);
    let result = sender().send(post(url, TIMEOUT)).await;
    assert_eq!(result.status, None);
    match &result.error {
        Some(SendError::Connect(reason)) => {
            assert!(reason.to_lowercase().contains("refused"), "{reason}")
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    assert_eq!(classify(&result), Verdict::Retry { not_before: None });
}

#[tokio::test]
async fn malformed_requests_are_refused_before_sending() {
    let mut bad_header = post("http://127.0.0.1:9/ok".into(), TIMEOUT);
    bad_header
        .headers
        .push(("x-token".into(), "line\nbreak".into()));
    let mut bad_method = post("http://127.0.0.1:9/ok".into(), TIMEOUT);
    bad_method.method = "PO ST".into();
    let cases = [
        (post("not a url".into(), TIMEOUT), "URL \"not a url\""),
        (
            post("ftp://example.com/x".into(), TIMEOUT),
            "only absolute http",
        ),
        (post("/relative".into(), TIMEOUT), "only absolute http"),
        (bad_header, "header \"x-token\""),
        (bad_method, "method \"PO ST\""),
    ];
    let sender = sender();
    for (request, expected) in cases {
        let result = sender.send(request).await;
        match &result.error {
            Some(SendError::InvalidRequest(reason)) => {
                assert!(reason.contains(expected), "{reason} lacks {expected}");
                assert!(!reason.contains("line\nbreak"), "{reason}");
            }
            other => panic!("expected an invalid request, got {other:?}"),
        }
        assert!(matches!(classify(&result), Verdict::GiveUp(_)));
    }
}

#[tokio::test]
async fn the_receiver_verifies_the_signature() {
    let receiver = Receiver::start().await;
    let sender = sender();
    let body = br#"{"order":{"id":"SO-10421","total":4062.5}}"#;
    let old_secret = generate_secret();
    for (secrets, expected_status) in [
        (vec![RECEIVER_SECRET], 204),
        // Mid-rotation: the receiver still knows only one of the two.
        (vec![old_secret.as_str(), RECEIVER_SECRET], 204),
        (vec![old_secret.as_str()], 401),
    ] {
        let headers =
            webhook_headers("evt_01", unix_now(), body, &secrets, "application/json").unwrap();
        let request = OutboundRequest {
            method: "POST".into(),
            url: receiver.url("/verify"),
            headers,
            body: Bytes::from_static(body),
            timeout: TIMEOUT,
            tls: None,
        };
        let result = sender.send(request).await;
        assert_eq!(result.status, Some(expected_status), "{secrets:?}");
    }
    let last = receiver.received().pop().unwrap();
    assert_eq!(last.headers["user-agent"], USER_AGENT);
    assert_eq!(last.headers["webhook-id"], "evt_01");
}

#[tokio::test]
async fn internal_addresses_are_refused_unless_allowed() {
    let receiver = Receiver::start().await;
    let port = receiver.base_url.rsplit(':').next().unwrap().to_owned();
    // Plain http is allowed here so that the guard, not the scheme, refuses.
    let guarded = HttpSender::new(NetworkPolicy::default().with_plain_http(true)).unwrap();
    let urls = [
        // By address, by a name that resolves to loopback, and in disguise.
        (receiver.url("/ok"), "127.0.0.1 is a loopback address"),
        (
            format!("http://localhost:{port}/ok"),
            "refused to connect to localhost",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/ok"),
            "IPv4-mapped",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "link-local",
        ),
        ("https://10.0.0.1/hook".to_owned(), "private"),
    ];
    for (url, why) in urls {
        let result = guarded.send(post(url.clone(), TIMEOUT)).await;
        match &result.error {
            Some(SendError::Refused(reason)) => assert!(reason.contains(why), "{url}: {reason}"),
            other => panic!("{url}: expected a refusal, got {other:?}"),
        }
        assert_eq!(result.status, None);
        assert!(matches!(classify(&result), Verdict::GiveUp(_)), "{url}");
    }
    assert_eq!(
        receiver.connections.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver"
    );
    // Allow-listed, the same receiver is reached, by address and by name.
    let allowed = sender();
    for url in [receiver.url("/ok"), format!("http://localhost:{port}/ok")] {
        let result = allowed.send(post(url.clone(), TIMEOUT)).await;
        assert_eq!(result.status, Some(200), "{url}: {:?}", result.error);
    }
}

#[tokio::test]
async fn plain_http_is_refused_unless_allowed() {
    let receiver = Receiver::start().await;
    let https_only =
        HttpSender::new(NetworkPolicy::allowing(&["127.0.0.0/8".into()]).unwrap()).unwrap();
    let result = https_only.send(post(receiver.url("/ok"), TIMEOUT)).await;
    match &result.error {
        Some(SendError::Refused(reason)) => {
            assert!(reason.contains("plain http:// is refused"), "{reason}");
            assert!(reason.contains("--allow-http"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 0);
    let result = sender().send(post(receiver.url("/ok"), TIMEOUT)).await;
    assert_eq!(result.status, Some(200), "{:?}", result.error);
}

/// Receivers here are on loopback over plain http, which the policy refuses
/// unless allowed.
fn loopback_allowed() -> NetworkPolicy {
    NetworkPolicy::allowing(&["127.0.0.0/8".into(), "::1".into()])
        .unwrap()
        .with_plain_http(true)
}
