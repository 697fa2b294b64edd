//! Every answer names its request: `x-request-id`, taken from the request
//! when the caller sent a usable one (so a gateway's id follows the request
//! through), made here otherwise. The request is handled inside a span that
//! carries the id, so each log line it causes names it too.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::time::Instant;
use tracing::Instrument;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A caller's id is kept only if it is this long at most.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Tags the request with its id, handles it in a span named after it, and
/// puts the id on the answer.
pub async fn identify(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| usable(id))
        .map_or_else(made_here, str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            took_ms = started.elapsed().as_micros() as f64 / 1_000.0,
            "answered"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// Whether a caller's id can be logged and echoed as it is: short, and only
/// visible ASCII (no spaces, no control characters).
fn usable(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

fn made_here() -> String {
    format!("req_{}", ulid::Ulid::new().to_string().to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::usable;

    #[test]
    fn a_callers_id_is_kept_only_when_short_and_visible() {
        assert!(usable("3f2c9a1e-7b0d-4c55-9d1e-0a8f5b6c7d8e"));
        assert!(usable(&"a".repeat(128)));
        assert!(!usable(""));
        assert!(!usable(&"a".repeat(129)));
        assert!(!usable("two words"));
        assert!(!usable("line\nbreak"));
        assert!(!usable("caf\u{e9}"));
    }
}
