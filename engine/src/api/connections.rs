//! Serving the API to strangers: every connection has an owner and a bound
//! before anyone is authenticated.
//!
//! - A connection must send a complete request head within
//!   [`ConnectionLimits::request_head_timeout`], and an idle keep-alive
//!   connection is closed after the same time: connections that send nothing,
//!   half a header, or fall silent between requests do not stay open.
//! - At most [`ConnectionLimits::max_connections`] are open at once, and at
//!   most [`ConnectionLimits::max_per_peer`] from one address. A connection
//!   beyond either is answered at once with a 503 problem document and
//!   closed, so the process never runs out of file handles and one client
//!   cannot take every place.
//! - Bodies and whole requests have time limits of their own (see
//!   `request_limits`).
//!
//! The API speaks HTTP/1.1; a proxy in front of it can offer HTTP/2 and TLS.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Open connections unless `weft serve --max-connections` says otherwise.
pub const DEFAULT_MAX_CONNECTIONS: usize = 8_192;

/// Open connections from one address unless `weft serve
/// --max-connections-per-peer` says otherwise: enough for a busy publisher's
/// pool, a small part of the whole.
pub const DEFAULT_MAX_PER_PEER: usize = 1_024;

/// How long a client has to send a request's head, and how long an idle
/// keep-alive connection stays open.
pub const DEFAULT_REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish their requests when the server
/// stops.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Headers the HTTP parser takes before refusing a request itself (with an
/// empty 431): well above `request_limits::MAX_HEADERS`, so that the API
/// answers such requests with its own problem document.
const MAX_PARSED_HEADERS: usize = 256;

/// After `accept` fails (the process is out of file handles, say), the
/// listener waits this long before accepting again, instead of spinning.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// The bounds on the API's connections.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub max_per_peer: usize,
    pub request_head_timeout: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_per_peer: DEFAULT_MAX_PER_PEER,
            request_head_timeout: DEFAULT_REQUEST_HEAD_TIMEOUT,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish (for a few seconds).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.request_head_timeout)
        .keep_alive(true)
        // Above the API's own limit, so that its 431 problem document answers.
        .max_headers(MAX_PARSED_HEADERS);
    let places = Places::new(limits);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let place = match places.admit(peer.ip()) {
            Ok(place) => place,
            Err(refusal) => {
                refuse(&stream, &refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            tower_service::Service::call(&mut app.clone(), request)
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
            drop(place);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}: closing them");
    }
}

/// Why a connection was not taken.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    Full { max: usize },
    PeerFull { peer: IpAddr, max: usize },
}

impl Refusal {
    fn detail(&self) -> String {
        match self {
            Refusal::Full { max } => {
                format!("the server has {max} connections open, its maximum: try again shortly")
            }
            Refusal::PeerFull { peer, max } => format!(
                "{peer} has {max} connections open, the most one address may: reuse them, or close some"
            ),
        }
    }
}

/// Answers a connection that is not taken with a 503 problem document, as far
/// as the socket takes it without waiting, and closes it.
fn refuse(stream: &TcpStream, refusal: &Refusal) {
    let body = serde_json::json!({
        "type": "too_many_connections",
        "title": "Service unavailable",
        "detail": refusal.detail(),
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n\
         retry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// The places for open connections: a count in all, and one per address.
#[derive(Clone)]
struct Places {
    total: Arc<Semaphore>,
    per_peer: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_connections: usize,
    max_per_peer: usize,
}

/// One open connection's place; dropping it frees the place.
struct Place {
    _total: OwnedSemaphorePermit,
    peer: IpAddr,
    per_peer: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Places {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            total: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            per_peer: Arc::default(),
            max_connections: limits.max_connections.max(1),
            max_per_peer: limits.max_per_peer.max(1),
        }
    }

    fn admit(&self, peer: IpAddr) -> Result<Place, Refusal> {
        let total = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| Refusal::Full {
                max: self.max_connections,
            })?;
        let mut per_peer = self.per_peer.lock().unwrap_or_else(PoisonError::into_inner);
        let open = per_peer.entry(peer).or_default();
        if *open >= self.max_per_peer {
            return Err(Refusal::PeerFull {
                peer,
                max: self.max_per_peer,
            });
        }
        *open += 1;
        Ok(Place {
            _total: total,
            peer,
            per_peer: Arc::clone(&self.per_peer),
        })
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut per_peer = self.per_peer.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(open) = per_peer.get_mut(&self.peer) {
            *open -= 1;
            if *open == 0 {
                per_peer.remove(&self.peer);
            }
        }
    }
}

/// Raises the process's soft limit of open files to its hard limit, and
/// returns how many connections fit beside `reserved` other files (database,
/// deliveries, plugins' artifacts): `wanted`, or fewer if the limit is lower.
pub fn connections_that_fit(wanted: usize, reserved: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = raised;
        }
    }
    match limit.current {
        Some(files) => {
            let files = usize::try_from(files).unwrap_or(usize::MAX);
            wanted.min(files.saturating_sub(reserved).max(1))
        }
        None => wanted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_in_all_and_per_address() {
        let places = Places::new(ConnectionLimits {
            max_connections: 3,
            max_per_peer: 2,
            ..ConnectionLimits::default()
        });
        let (one, two): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "::1".parse().unwrap());
        let first = places.admit(one).unwrap();
        let _second = places.admit(one).unwrap();
        assert_eq!(
            places.admit(one).err(),
            Some(Refusal::PeerFull { peer: one, max: 2 })
        );
        let _third = places.admit(two).unwrap();
        assert_eq!(places.admit(two).err(), Some(Refusal::Full { max: 3 }));
        drop(first);
        let _again = places.admit(one).unwrap();
        assert!(places.per_peer.lock().unwrap().get(&one) == Some(&2));
    }
}
