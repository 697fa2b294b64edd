//! Limits on each request, and the problem document every refusal gets: the
//! headers' size and count, the body's size (declared, then read), how long a
//! body may take to arrive and how long a whole request may take.
//!
//! HTTP/1 parsing already bounds a request's head (about 400 KB, 100 headers);
//! the API's own bound is tighter, and answers with a problem document that
//! says which limit was passed.
//!
//! A body whose declared `Content-Length` is over the limit is refused at
//! once, before the client has sent megabytes the server would throw away (a
//! client that sends `Expect: 100-continue` never sends it at all). Other
//! bodies are read here, before the handler runs, under three bounds: the size
//! limit of the route, [`BODY_IDLE_TIMEOUT`] between two pieces, and
//! [`BODY_TIMEOUT`] in all, so that a client that stalls or trickles its body
//! holds a connection for a bounded time.

use super::ApiError;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use std::time::Duration;

/// The longest a request body may pause between two pieces.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest a request body may take to arrive in all: 10 MB at 200 KB/s.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(50);

/// The longest the server works on one request, the body included. Nothing
/// Weft does for a request takes this long: the bound is for what went wrong.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// Problem documents made from another layer's plain-text error show this
/// much of its text.
const MAX_FOREIGN_ERROR_BYTES: usize = 4 << 10;

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

/// Middleware for `axum::middleware::from_fn_with_state(max_bytes, …)`:
/// reads the body whole, within `max_bytes` and the body's time limits, and
/// hands the handler the bytes.
pub async fn read_body(State(max_bytes): State<usize>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if let Some(length) = declared
        && length > max_bytes as u64
    {
        return too_large(length, max_bytes).into_response();
    }
    let (parts, body) = request.into_parts();
    match tokio::time::timeout(BODY_TIMEOUT, read_within(body, max_bytes)).await {
        Ok(Ok(bytes)) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Ok(Err(refused)) => refused.into_response(),
        Err(_) => ApiError::request_timeout(format!(
            "the request body did not arrive within {} s",
            BODY_TIMEOUT.as_secs()
        ))
        .into_response(),
    }
}

async fn read_within(mut body: Body, max_bytes: usize) -> Result<Bytes, ApiError> {
    let mut read = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
            Err(_) => {
                return Err(ApiError::request_timeout(format!(
                    "the request body stalled: nothing arrived for {} s",
                    BODY_IDLE_TIMEOUT.as_secs()
                )));
            }
            Ok(None) => return Ok(read.freeze()),
            Ok(Some(Err(error))) => {
                return Err(ApiError::bad_request(
                    "unreadable_body",
                    format!("cannot read the request body: {error}"),
                ));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            if read.len() + data.len() > max_bytes {
                return Err(too_large((read.len() + data.len()) as u64, max_bytes));
            }
            read.extend_from_slice(&data);
        }
    }
}

fn too_large(length: u64, max_bytes: usize) -> ApiError {
    ApiError::too_large(format!(
        "the request body is {length} bytes or more; this route accepts at most {max_bytes}"
    ))
}

/// Middleware for every route: bounds the time one request may take, and
/// makes every error a problem document, the refusals of the layers under
/// the API included (an unknown route, a wrong method, an unreadable query).
pub async fn bound_and_explain(request: Request, next: Next) -> Response {
    let response = match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            return ApiError::unavailable(format!(
                "the request took more than {} s",
                REQUEST_TIMEOUT.as_secs()
            ))
            .into_response();
        }
    };
    let status = response.status();
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match http_body_util::Limited::new(body, MAX_FOREIGN_ERROR_BYTES)
        .collect()
        .await
    {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes())
            .trim()
            .to_owned(),
        Err(_) => String::new(),
    };
    let mut problem = ApiError::from_status(status, text).into_response();
    for (name, value) in &parts.headers {
        if name != CONTENT_TYPE && name != CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}
