//! The one HTTP client every delivery goes through: hyper with rustls, HTTP/1.1
//! and HTTP/2, pooled connections. An endpoint with TLS settings of its own (a
//! CA bundle, a client certificate) gets a client of its own, built once per
//! distinct settings.
//!
//! A send never fails as a Rust error: whatever happens (a response, a refused
//! connection, a timeout) becomes a [`SendResult`] that the attempt history
//! records and [`super::retry::classify`] judges. Redirects are not followed: a
//! 3xx is recorded like any other response, because a redirect target is chosen
//! by the receiver and could point anywhere (an internal address, say).

use super::guard::{GuardedResolver, NetworkPolicy};
use crate::model::{EndpointTls, MAX_RECORDED_RESPONSE_BYTES};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::error::Error as _;
use std::time::Duration;
use tokio::time::Instant;

/// An idle pooled connection is closed after this long. Receivers commonly drop
/// idle keep-alive connections after 60 s or more; closing ours first avoids
/// sending a request down a connection the server is closing at that moment.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(50);

/// Idle connections kept per host. Enough for a busy endpoint to reuse
/// connections across a burst of concurrent deliveries without holding hundreds
/// of sockets open to every endpoint that was once busy.
const MAX_IDLE_CONNECTIONS_PER_HOST: usize = 32;

/// Beyond the recorded part, this much more of a response body is read and
/// thrown away so that the connection can go back to the pool. A longer body is
/// abandoned and its connection closed: reading it would cost more than a new
/// connection.
const MAX_DISCARDED_RESPONSE_BYTES: usize = 1 << 20;

/// One request to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: String,
    /// Absolute `http://` or `https://` URL.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Bounds the whole exchange: connecting, the TLS handshake, sending, the
    /// response headers and the recorded part of the response body.
    pub timeout: Duration,
    /// The endpoint's TLS settings; without them, the system's roots and no
    /// client certificate.
    pub tls: Option<EndpointTls>,
}

/// What came of a request. A response whose body could not be read in full still
/// has its `status`; `error` then says what went wrong with the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    /// The first [`MAX_RECORDED_RESPONSE_BYTES`] of the body.
    pub body: Vec<u8>,
    pub duration: Duration,
    pub error: Option<SendError>,
}

/// Why a request got no (complete) response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("no complete response within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    /// The destination is an address the network policy refuses.
    #[error("refused by the network policy: {0}")]
    Refused(String),
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("HTTP exchange failed: {0}")]
    Protocol(String),
}

/// The client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ClientBuildError {
    #[error(
        "cannot load the system's trusted root certificates for HTTPS \
         (is the ca-certificates package installed?): {0}"
    )]
    RootCertificates(std::io::Error),
}

/// Sends deliveries. Build one per process and share it: it holds the
/// connection pool and the TLS configuration (whose root store takes a while to
/// load).
#[derive(Clone)]
pub struct HttpSender {
    client: PooledClient,
    /// Clients of endpoints with TLS settings of their own, by those settings.
    tls_clients: moka::sync::Cache<EndpointTls, PooledClient>,
    policy: NetworkPolicy,
}

type PooledClient = Client<HttpsConnector<HttpConnector<GuardedResolver>>, Full<Bytes>>;

/// Distinct TLS settings whose clients (and connection pools) are kept.
const MAX_TLS_CLIENTS: u64 = 1_000;

impl std::fmt::Debug for HttpSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpSender")
    }
}

impl HttpSender {
    /// A client trusting the system's root certificates, speaking HTTP/1.1 and
    /// (negotiated by ALPN over TLS) HTTP/2, that connects only to addresses
    /// `policy` permits.
    pub fn new(policy: NetworkPolicy) -> Result<Self, ClientBuildError> {
        let tls = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(ClientBuildError::RootCertificates)?;
        Ok(Self {
            client: pooled_client(tls, &policy),
            tls_clients: moka::sync::Cache::new(MAX_TLS_CLIENTS),
            policy,
        })
    }

    /// The client for requests with `tls` settings.
    fn client_for(&self, tls: Option<&EndpointTls>) -> Result<PooledClient, SendError> {
        let Some(tls) = tls else {
            return Ok(self.client.clone());
        };
        if !tls.verify
            && let Some(refusal) = self.policy.unverified_tls_refusal()
        {
            return Err(SendError::Refused(refusal));
        }
        self.tls_clients
            .try_get_with(tls.clone(), || {
                let config = super::tls::client_config(tls)?;
                let builder = hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(config);
                Ok(pooled_client(builder, &self.policy))
            })
            .map_err(|error: std::sync::Arc<super::tls::InvalidTls>| {
                SendError::InvalidRequest(format!("tls.{}: {}", error.field, error.reason))
            })
    }
    /// Makes `request` and reports what came of it.
    pub async fn send(&self, request: OutboundRequest) -> SendResult {
        let started = Instant::now();
        let deadline = started + request.timeout;
        let failed = |error: SendError| SendResult {
            status: None,
            headers: Vec::new(),
            body: Vec::new(),
            duration: started.elapsed(),
            error: Some(error),
        };

        let http_request = match build_request(&request) {
            Ok(http_request) => http_request,
            Err(error) => return failed(error),
        };
        if let Some(refusal) = self.policy.scheme_refusal(&request.url) {
            return failed(SendError::Refused(refusal));
        }
        // A name is checked once resolved (see `GuardedResolver`); an address
        // in the URL never reaches the resolver, so it is checked here.
        if let Some(refusal) =
            literal_address(http_request.uri()).and_then(|ip| self.policy.refusal(ip))
        {
            return failed(SendError::Refused(refusal));
        }
        let client = match self.client_for(request.tls.as_ref()) {
            Ok(client) => client,
            Err(error) => return failed(error),
        };
        let response = match tokio::time::timeout_at(deadline, client.request(http_request)).await {
            Err(_elapsed) => return failed(SendError::Timeout(request.timeout)),
            Ok(Err(error)) => return failed(client_error(&error)),
            Ok(Ok(response)) => response,
        };

        let (parts, body) = response.into_parts();
        let headers = parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let (body, error) = read_body(body, deadline, request.timeout).await;
        SendResult {
            status: Some(parts.status.as_u16()),
            headers,
            body,
            duration: started.elapsed(),
            error,
        }
    }
}

/// A pooled client whose connections are made under `policy` with `tls`.
fn pooled_client(
    tls: hyper_rustls::HttpsConnectorBuilder<hyper_rustls::builderstates::WantsSchemes>,
    policy: &NetworkPolicy,
) -> PooledClient {
    let mut tcp = HttpConnector::new_with_resolver(GuardedResolver {
        policy: policy.clone(),
    });
    // The TLS connector on top decides between http and https.
    tcp.enforce_http(false);
    // Webhook requests are small and latency-bound: send them at once.
    tcp.set_nodelay(true);
    let connector = tls
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    Client::builder(TokioExecutor::new())
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_max_idle_per_host(MAX_IDLE_CONNECTIONS_PER_HOST)
        .build(connector)
}

/// The address `uri` names, if its host is an address rather than a name.
fn literal_address(uri: &http::Uri) -> Option<std::net::IpAddr> {
    let host = uri.host()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

fn build_request(request: &OutboundRequest) -> Result<http::Request<Full<Bytes>>, SendError> {
    let uri: http::Uri = request
        .url
        .parse()
        .map_err(|error| SendError::InvalidRequest(format!("URL {:?}: {error}", request.url)))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => {
            return Err(SendError::InvalidRequest(format!(
                "URL {:?}: only absolute http:// and https:// URLs can be delivered to",
                request.url
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(SendError::InvalidRequest(format!(
            "URL {:?} has no host",
            request.url
        )));
    }
    let method = http::Method::from_bytes(request.method.as_bytes()).map_err(|_| {
        SendError::InvalidRequest(format!("method {:?} is not an HTTP method", request.method))
    })?;

    let mut builder = http::Request::builder().method(method).uri(uri);
    let headers = builder
        .headers_mut()
        .expect("the builder has no error yet: method and URI were checked above");
    for (name, value) in &request.headers {
        let header_name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| SendError::InvalidRequest(format!("header name {name:?} is not valid")))?;
        // The value is not echoed: it may be a credential.
        let header_value = http::HeaderValue::from_str(value).map_err(|_| {
            SendError::InvalidRequest(format!(
                "the value of header {name:?} contains characters a header cannot carry"
            ))
        })?;
        headers.append(header_name, header_value);
    }
    builder
        .body(Full::new(request.body.clone()))
        .map_err(|error| SendError::InvalidRequest(error.to_string()))
}

/// Reads up to [`MAX_RECORDED_RESPONSE_BYTES`] of `body` to record, then
/// discards up to [`MAX_DISCARDED_RESPONSE_BYTES`] more so the connection can be
/// reused. Past `deadline` or that bound, the body is dropped, which closes the
/// connection. An error is reported only for the recorded part.
async fn read_body(
    mut body: Incoming,
    deadline: Instant,
    timeout: Duration,
) -> (Vec<u8>, Option<SendError>) {
    let mut recorded = Vec::new();
    let mut discarded = 0usize;
    loop {
        let recording = recorded.len() < MAX_RECORDED_RESPONSE_BYTES;
        let frame = match tokio::time::timeout_at(deadline, body.frame()).await {
            Err(_elapsed) if recording => return (recorded, Some(SendError::Timeout(timeout))),
            Err(_elapsed) => return (recorded, None),
            Ok(None) => return (recorded, None),
            Ok(Some(Err(error))) if recording => {
                return (recorded, Some(SendError::Protocol(error_chain(&error))));
            }
            Ok(Some(Err(_))) => return (recorded, None),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        let room = MAX_RECORDED_RESPONSE_BYTES - recorded.len();
        let kept = data.len().min(room);
        recorded.extend_from_slice(&data[..kept]);
        discarded += data.len() - kept;
        if discarded > MAX_DISCARDED_RESPONSE_BYTES {
            return (recorded, None);
        }
    }
}

/// The guard's refusal, if that is what stopped the connection.
fn policy_refusal(error: &hyper_util::client::legacy::Error) -> Option<String> {
    let mut cause = error.source();
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Some(io.to_string());
        }
        cause = error.source();
    }
    None
}

/// A hyper client error in the terms of [`SendError`].
fn client_error(error: &hyper_util::client::legacy::Error) -> SendError {
    // The top-level message is only "client error (Connect)"; the causes say what
    // actually happened ("tcp connect error: Connection refused").
    let reason = match error.source() {
        Some(cause) => error_chain(cause),
        None => error.to_string(),
    };
    if let Some(refusal) = policy_refusal(error) {
        return SendError::Refused(refusal);
    }
    if error.is_connect() {
        SendError::Connect(reason)
    } else {
        SendError::Protocol(reason)
    }
}

/// `error` and its causes, `: `-separated, repeated messages skipped.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut messages: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(current) = next {
        let message = current.to_string();
        if !messages.iter().any(|seen| seen.contains(&message)) {
            messages.push(message);
        }
        next = current.source();
    }
    messages.join(": ")
}
