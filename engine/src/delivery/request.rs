//! One attempt's request, built from what a subscription's chain asked for and
//! what its endpoint says: [`prepare`] joins the endpoint's method, URL and
//! headers with the plugin's (keeping the plugin on the endpoint's origin),
//! [`signed`] adds credentials and the Standard Webhooks headers last, so that
//! neither a plugin nor a static header can override them, and
//! [`attempt_record`] is how the history keeps the exchange, credentials
//! redacted.

use super::client::{OutboundRequest, SendResult};
use super::headers::{REDACTED, is_protocol_header, redact_headers, redact_url, webhook_headers};
use crate::model::{
    Attempt, AttemptId, Delivery, Endpoint, MAX_RECORDED_RESPONSE_BYTES, UnixMillis, now_millis,
};
use crate::runtime::Request;
use std::collections::BTreeMap;
use std::time::Duration;

/// A request as the endpoint and the plugin shape it: the endpoint's method,
/// URL and headers, then the plugin's, before authentication and signature.
#[derive(Debug, Clone)]
pub struct Prepared {
    request: OutboundRequest,
    content_type: String,
}

/// A request as its attempt records it: when it started, its method and URL,
/// its headers with the credentials redacted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub started_at: UnixMillis,
    pub method: String,
    pub url: String,
    pub headers: BTreeMap<String, String>,
}

/// `request` as `endpoint` sends it; fails if the plugin asked for a URL off
/// the endpoint's origin.
pub fn prepare(endpoint: &Endpoint, request: Request) -> Result<Prepared, String> {
    let url = resolve_url(&endpoint.url, request.url.as_deref())?;
    if let Some((name, _)) = request
        .headers
        .iter()
        .find(|(name, _)| is_protocol_header(name))
    {
        return Err(format!(
            "the plugin set the header {name}, which only the HTTP client may set"
        ));
    }
    let method = request.method.unwrap_or_else(|| endpoint.method.clone());
    let content_type = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map_or("application/json", |(_, value)| value.as_str())
        .to_owned();
    let mut headers: Vec<(String, String)> = endpoint
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    headers.extend(
        request
            .headers
            .into_iter()
            .filter(|(name, _)| !name.eq_ignore_ascii_case("content-type")),
    );
    Ok(Prepared {
        request: OutboundRequest {
            method,
            url,
            headers,
            body: request.body.into(),
            timeout: Duration::from_millis(u64::from(endpoint.timeout_ms)),
            tls: endpoint.tls.clone(),
        },
        content_type,
    })
}

/// The request as it leaves, signed as message `message_id`: `prepared`, then
/// the `credentials` headers, then Weft's signature headers, each replacing
/// any header of the same name before it. Also what its attempt records.
pub fn signed(
    endpoint: &Endpoint,
    message_id: &str,
    prepared: &Prepared,
    credentials: Vec<(String, String)>,
) -> Result<(OutboundRequest, Sent), String> {
    let mut request = prepared.request.clone();
    let now = now_millis();
    let signature = webhook_headers(
        message_id,
        now / 1000,
        &request.body,
        &endpoint.signing_secrets(now),
        &prepared.content_type,
    )
    .map_err(|e| format!("cannot sign for endpoint {}: {e}", endpoint.id))?;
    for added in [credentials, signature] {
        request
            .headers
            .retain(|(name, _)| !added.iter().any(|(own, _)| own.eq_ignore_ascii_case(name)));
        request.headers.extend(added);
    }
    let sent = Sent {
        started_at: now,
        method: request.method.clone(),
        url: redact_url(&request.url),
        headers: recorded_headers(endpoint, &request.headers),
    };
    Ok((request, sent))
}

/// The headers of a request as its attempt records them: credentials
/// redacted, the endpoint's own credential header and the headers it marks
/// secret included whatever their names.
fn recorded_headers(endpoint: &Endpoint, headers: &[(String, String)]) -> BTreeMap<String, String> {
    let mut recorded = redact_headers(headers);
    if let Some(auth) = &endpoint.auth
        && let Some(value) = recorded.get_mut(&auth.header_name())
    {
        *value = REDACTED.to_owned();
    }
    for (name, value) in &mut recorded {
        if endpoint.marks_secret(name) {
            *value = REDACTED.to_owned();
        }
    }
    recorded
}

/// A plugin may name a path (joined to the endpoint's URL) or an absolute URL on
/// the endpoint's own origin; any other is refused.
fn resolve_url(endpoint_url: &str, requested: Option<&str>) -> Result<String, String> {
    let Some(requested) = requested else {
        return Ok(endpoint_url.to_owned());
    };
    let base: http::Uri = endpoint_url
        .parse()
        .map_err(|e| format!("endpoint URL {endpoint_url:?}: {e}"))?;
    let origin = format!(
        "{}://{}",
        base.scheme_str().unwrap_or("https"),
        base.authority().map_or("", |a| a.as_str())
    );
    if requested.starts_with('/') {
        return Ok(format!("{origin}{requested}"));
    }
    let target: http::Uri = requested
        .parse()
        .map_err(|e| format!("plugin URL {requested:?}: {e}"))?;
    if target.scheme() == base.scheme() && target.authority() == base.authority() {
        Ok(requested.to_owned())
    } else {
        Err(format!(
            "the plugin asked to send to {requested}, outside the endpoint's origin {origin}"
        ))
    }
}

/// The attempt of `delivery` that sent `sent` and got `result`.
pub fn attempt_record(delivery: &Delivery, sent: Sent, result: &SendResult) -> Attempt {
    let body = &result.body[..result.body.len().min(MAX_RECORDED_RESPONSE_BYTES)];
    Attempt {
        id: AttemptId::generate(),
        tenant: delivery.tenant.clone(),
        delivery_id: delivery.id.clone(),
        number: delivery.attempts + 1,
        started_at: sent.started_at,
        duration_ms: u32::try_from(result.duration.as_millis()).unwrap_or(u32::MAX),
        request_method: sent.method,
        request_url: sent.url,
        request_headers: sent.headers,
        response_status: result.status,
        response_headers: result.headers.iter().cloned().collect(),
        response_body: result
            .status
            .map(|_| String::from_utf8_lossy(body).into_owned()),
        error: result.error.as_ref().map(ToString::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_urls_stay_on_the_endpoints_origin() {
        let base = "https://api.example.com/hooks/weft";
        let cases = [
            (None, Ok("https://api.example.com/hooks/weft")),
            (
                Some("/services/data/v61.0/x"),
                Ok("https://api.example.com/services/data/v61.0/x"),
            ),
            (
                Some("https://api.example.com/other"),
                Ok("https://api.example.com/other"),
            ),
            (
                Some("https://evil.example.net/x"),
                Err("outside the endpoint's origin"),
            ),
            (
                Some("http://api.example.com/x"),
                Err("outside the endpoint's origin"),
            ),
        ];
        for (requested, expected) in cases {
            match (resolve_url(base, requested), expected) {
                (Ok(url), Ok(expected)) => assert_eq!(url, expected),
                (Err(error), Err(fragment)) => assert!(error.contains(fragment), "{error}"),
                (other, expected) => panic!("{requested:?}: {other:?}, expected {expected:?}"),
            }
        }
    }
}
