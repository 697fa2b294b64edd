//! Request size limits that answer before the body is read.
//!
//! axum's `DefaultBodyLimit` stops reading once a body passes the limit, but by
//! then the client has sent megabytes the server throws away, and a client still
//! writing when the connection closes sees a broken pipe instead of the 413. A
//! body whose declared `Content-Length` is over the limit is therefore refused
//! here, at once; a client that sends `Expect: 100-continue` never sends it at all.

use super::ApiError;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_LENGTH;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Middleware for `axum::middleware::from_fn_with_state(max_bytes, …)`.
pub async fn refuse_declared_oversize(
    State(max_bytes): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    match declared {
        Some(length) if length > max_bytes as u64 => ApiError::too_large(format!(
            "the request body is {length} bytes; this route accepts at most {max_bytes}"
        ))
        .into_response(),
        _ => next.run(request).await,
    }
}
