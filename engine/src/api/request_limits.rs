//! Request size limits that answer before the body is read: the headers'
//! size and count, and the body's declared size.
//!
//! HTTP/1 parsing already bounds a request's head (about 400 KB, 100 headers);
//! the API's own bound is tighter, and answers with a problem document that
//! says which limit was passed.
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

/// The most bytes of header names and values a request may carry: a bearer
/// token and the usual headers take a few kilobytes.
pub const MAX_HEADER_BYTES: usize = 32 << 10;

/// The most headers a request may carry.
pub const MAX_HEADERS: usize = 64;

/// Middleware for every route: 431 for a request whose headers pass
/// [`MAX_HEADERS`] or [`MAX_HEADER_BYTES`].
pub async fn refuse_oversized_headers(request: Request, next: Next) -> Response {
    let headers = request.headers();
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if headers.len() > MAX_HEADERS {
        return ApiError::headers_too_large(format!(
            "the request has {} headers; at most {MAX_HEADERS} are accepted",
            headers.len()
        ))
        .into_response();
    }
    if bytes > MAX_HEADER_BYTES {
        return ApiError::headers_too_large(format!(
            "the request's headers take {bytes} bytes; at most {MAX_HEADER_BYTES} are accepted"
        ))
        .into_response();
    }
    next.run(request).await
}

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
