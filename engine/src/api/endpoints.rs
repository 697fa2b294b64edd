//! `/v1/endpoints`: where deliveries go, how they are signed and retried.
//!
//! The signing secret is shown once, in the response that creates the endpoint
//! (generated when none is given); afterwards only a hint of it. So are the
//! secrets of `auth` and the values of credential headers: a `PUT` that sends
//! back such a hint keeps the stored secret, unless it points the endpoint
//! (or its OAuth token URL) at another origin: stored credentials are bound
//! to where they were given for.

use super::caller::{Caller, Configure, Read};
use super::error::{parse_json, parse_optional_json};
use super::pages::{PageParams, page_json};
use super::{ApiError, AppState, endpoint_health};
use crate::delivery::NetworkPolicy;
use crate::model::{
    AuditOutcome, CircuitBreaker, Endpoint, EndpointAuth, EndpointId, EndpointTls, PreviousSecret,
    RateLimit, RetryPolicy, TenantId, now_millis,
};
use crate::store::Page;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const DEFAULT_TIMEOUT_MS: u32 = 30_000;
const MAX_TIMEOUT_MS: u32 = 120_000;
const MAX_ATTEMPTS: u32 = 50;
/// The longest window of a rate limit: a day.
const MAX_RATE_WINDOW_SECONDS: u32 = 86_400;
const MAX_RATE_REQUESTS: u32 = 1_000_000;
const MAX_CONCURRENCY: u32 = 10_000;
/// An endpoint's own headers: a few credentials and routing hints, not a
/// second body.
const MAX_ENDPOINT_HEADERS: usize = 32;
const MAX_ENDPOINT_HEADER_BYTES: usize = 16 << 10;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointInput {
    name: String,
    url: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    /// Headers to treat as secret besides those whose names suggest one.
    #[serde(default)]
    secret_headers: Vec<String>,
    auth: Option<EndpointAuth>,
    tls: Option<EndpointTls>,
    rate_limit: Option<RateLimit>,
    max_concurrency: Option<u32>,
    /// Weft's defaults when absent.
    circuit_breaker: Option<CircuitBreaker>,
    secret: Option<String>,
    /// How a generated secret signs: `hmac` (`v1`, the default) or `ed25519`
    /// (`v1a`, verified with the public key the endpoint shows).
    signature_scheme: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_ms: u32,
    #[serde(default)]
    retry: RetryPolicy,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_timeout() -> u32 {
    DEFAULT_TIMEOUT_MS
}

fn enabled_by_default() -> bool {
    true
}

/// An endpoint as the API (and the audit log) shows it: the secrets reduced
/// to hints.
pub fn view(endpoint: &Endpoint) -> Value {
    let mut value = serde_json::to_value(endpoint).unwrap_or_default();
    value["url"] = json!(crate::delivery::redact_url(&endpoint.url));
    value["secret"] = json!(secret_hint(&endpoint.secret));
    if let Some(public_key) = crate::delivery::public_key(&endpoint.secret) {
        value["public_key"] = json!(public_key);
    }
    if let Some(previous) = &endpoint.previous_secret {
        value["previous_secret"] = json!({
            "secret": secret_hint(&previous.secret),
            "expires_at": previous.expires_at,
        });
    }
    let headers: BTreeMap<&String, String> = endpoint
        .headers
        .iter()
        .map(|(name, value)| {
            let shown = if is_secret_header(endpoint, name) {
                credential_hint(value)
            } else {
                value.clone()
            };
            (name, shown)
        })
        .collect();
    value["headers"] = json!(headers);
    if let Some(auth) = &endpoint.auth {
        let mut shown = auth.clone();
        for (_, secret) in shown.secrets_mut() {
            *secret = credential_hint(secret);
        }
        value["auth"] = serde_json::to_value(shown).unwrap_or_default();
    }
    if let Some(key) = endpoint
        .tls
        .as_ref()
        .and_then(|tls| tls.client_key.as_ref())
    {
        value["tls"]["client_key"] = json!(credential_hint(key));
    }
    value
}

/// Whether `endpoint`'s header `name` is a secret: marked so, or named like
/// a credential (`authorization`, `x-api-key`, `x-webhook-secret`, …).
fn is_secret_header(endpoint: &Endpoint, name: &str) -> bool {
    crate::delivery::is_credential_header(name) || endpoint.marks_secret(name)
}

/// What the API shows of a credential: its last four characters when it is
/// long enough for them to give nothing away, else nothing.
fn credential_hint(secret: &str) -> String {
    let characters: Vec<char> = secret.chars().collect();
    match characters.len() {
        0 => String::new(),
        length if length >= 16 => {
            let tail: String = characters[length - 4..].iter().collect();
            format!("…{tail}")
        }
        _ => "…".to_owned(),
    }
}

/// A `PUT` may send back what `GET` showed: a credential header, an `auth`
/// secret or a TLS client key equal to the hint of the stored one keeps the
/// stored one. Returns the fields it kept that way, as the API names them.
fn keep_hinted_secrets(input: &mut EndpointInput, existing: &Endpoint) -> Vec<String> {
    let mut kept = Vec::new();
    let stored_key = existing
        .tls
        .as_ref()
        .and_then(|tls| tls.client_key.as_ref());
    if let Some(key) = input.tls.as_mut().and_then(|tls| tls.client_key.as_mut())
        && let Some(stored) = stored_key
        && *key == credential_hint(stored)
    {
        key.clone_from(stored);
        kept.push("tls.client_key".to_owned());
    }
    if input.url != existing.url && input.url == crate::delivery::redact_url(&existing.url) {
        input.url.clone_from(&existing.url);
        kept.push("url".to_owned());
    }
    for (name, value) in &mut input.headers {
        if is_secret_header(existing, name)
            && let Some(stored) = existing.headers.get(name)
            && *value == credential_hint(stored)
        {
            value.clone_from(stored);
            kept.push(format!("headers.{name}"));
        }
    }
    if let (Some(auth), Some(stored)) = (&mut input.auth, &existing.auth)
        && auth.kind() == stored.kind()
    {
        let mut stored = stored.clone();
        for ((field, secret), (_, stored_secret)) in
            auth.secrets_mut().into_iter().zip(stored.secrets_mut())
        {
            if *secret == credential_hint(stored_secret) {
                secret.clone_from(stored_secret);
                kept.push(format!("auth.{field}"));
            }
        }
    }
    kept
}

/// Where a credential may be sent: the scheme, host and port of a URL.
fn origin(url: &str) -> Option<(String, String, u16)> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    Some((scheme, uri.host()?.to_ascii_lowercase(), port))
}

/// Why an update that keeps stored credentials (`kept`) may not be saved: it
/// points the endpoint, or its OAuth token URL, at another origin. Stored
/// credentials are bound to where they were given for; they go elsewhere
/// only if the caller, who sees just their hints, gives them again.
fn unbound_credentials(
    input: &EndpointInput,
    existing: &Endpoint,
    kept: &[String],
) -> Option<String> {
    let token_url = |auth: Option<&EndpointAuth>| match auth {
        Some(EndpointAuth::OAuth2ClientCredentials { token_url, .. }) => origin(token_url),
        _ => None,
    };
    let mut moved = Vec::new();
    if origin(&input.url) != origin(&existing.url) {
        moved.push(format!(
            "url moves from {} to {}",
            shown_origin(&existing.url),
            shown_origin(&input.url)
        ));
    }
    let (from, to) = (
        token_url(existing.auth.as_ref()),
        token_url(input.auth.as_ref()),
    );
    if from.is_some() && to.is_some() && from != to {
        moved.push("auth.token_url moves to another origin".to_owned());
    }
    if moved.is_empty() || kept.is_empty() {
        return None;
    }
    Some(format!(
        "{}: the stored credentials go only where they were given for; \
         give {} again (their values, not their hints) to send them there",
        moved.join(" and "),
        kept.join(", ")
    ))
}

/// A URL's origin, for a message.
fn shown_origin(url: &str) -> String {
    match origin(url) {
        Some((scheme, host, port)) => format!("{scheme}://{host}:{port}"),
        None => "?".to_owned(),
    }
}

fn secret_hint(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let prefix = secret.split_inclusive('_').next().unwrap_or_default();
    format!("{prefix}…{tail}")
}

/// A secret the user gave, once checked that it can sign.
fn chosen_secret(secret: String) -> Result<String, ApiError> {
    crate::delivery::validate_secret(&secret)
        .map_err(|e| ApiError::unprocessable("invalid_field", e.to_string()).at("secret"))?;
    Ok(secret)
}

/// A new secret of `scheme` (`hmac` or `ed25519`; `None` keeps the kind of
/// `like`, or is `hmac`).
fn new_secret(scheme: Option<&str>, like: Option<&str>) -> Result<String, ApiError> {
    let ed25519 = match scheme {
        Some("hmac") => false,
        Some("ed25519") => true,
        Some(other) => {
            return Err(ApiError::unprocessable(
                "invalid_field",
                format!("{other:?} is not a signature scheme: expected hmac or ed25519"),
            )
            .at("signature_scheme"));
        }
        None => like.is_some_and(|secret| secret.starts_with(crate::delivery::SIGNING_KEY_PREFIX)),
    };
    Ok(if ed25519 {
        crate::delivery::generate_signing_key()
    } else {
        crate::delivery::generate_secret()
    })
}

async fn create(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: EndpointInput = parse_json(&body)?;
    let now = now_millis();
    let endpoint = checked(
        &caller.tenant,
        input,
        EndpointId::generate(),
        (now, now),
        None,
        &state.network,
    )?;
    let audit = caller.audit("endpoint.create", &endpoint.id, None, Some(view(&endpoint)));
    state
        .store
        .audited(audit)
        .create_endpoint(&endpoint)
        .await?;
    let mut shown = view(&endpoint);
    shown["secret"] = json!(endpoint.secret);
    Ok((StatusCode::CREATED, Json(shown)))
}

async fn update(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let existing = find(&state, &caller.tenant, &id).await?;
    let mut input: EndpointInput = parse_json(&body)?;
    let kept = keep_hinted_secrets(&mut input, &existing);
    let before = view(&existing);
    if let Some(detail) = unbound_credentials(&input, &existing, &kept) {
        let mut refused = caller.audit("endpoint.update", &existing.id, Some(before), None);
        refused.outcome = AuditOutcome::Refused;
        refused.detail = Some(detail.clone());
        state.store.record_audit(&refused).await?;
        return Err(ApiError::unprocessable("credentials_unbound", detail).at(kept.join(",")));
    }
    // A secret given here replaces the old one at once; without one, a
    // rotation's grace period runs on.
    let previous_secret = input
        .secret
        .is_none()
        .then_some(existing.previous_secret)
        .flatten();
    let mut endpoint = checked(
        &caller.tenant,
        input,
        existing.id,
        (existing.created_at, now_millis()),
        Some(existing.secret),
        &state.network,
    )?;
    endpoint.previous_secret = previous_secret;
    let audit = caller.audit(
        "endpoint.update",
        &endpoint.id,
        Some(before),
        Some(view(&endpoint)),
    );
    // Enabling and disabling take their own paths (the circuit reset, the
    // pending deliveries skipped, the operational event).
    let enabled = endpoint.enabled;
    endpoint.enabled = existing.enabled;
    endpoint.disabled_reason = existing.disabled_reason;
    state
        .store
        .audited(audit)
        .update_endpoint(&endpoint)
        .await?;
    let now = now_millis();
    if enabled && !existing.enabled {
        state
            .store
            .enable_endpoint(&caller.tenant, &endpoint.id, now)
            .await?;
        state.wake.notify_waiters();
    } else if !enabled && existing.enabled {
        let reason = "disabled by an administrator";
        if state
            .store
            .disable_endpoint(&caller.tenant, &endpoint.id, reason, now)
            .await?
        {
            endpoint_health::announce_disabled(&state, &caller, &endpoint.id).await?;
        }
    }
    let endpoint = find(&state, &caller.tenant, endpoint.id.as_str()).await?;
    let mut shown = endpoint_health::views_with_health(&state, &caller.tenant, &[endpoint]).await?;
    Ok(Json(shown.remove(0).0))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    limit: Option<u32>,
    after: Option<String>,
    /// Only endpoints in this health state.
    health: Option<String>,
}

/// A page of endpoints with their health, oldest first; with `health`, only
/// those in that state (read on until the page is full or none are left).
async fn list(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Query(params): Query<ListParams>,
) -> Result<Json<Value>, ApiError> {
    let page_params = PageParams::new(params.limit, params.after);
    let page = page_params.page(EndpointId::parse)?;
    let wanted = params
        .health
        .as_deref()
        .map(endpoint_health::parse_state)
        .transpose()?;
    let mut shown = Vec::new();
    let mut after = page.after.map(str::to_owned);
    loop {
        let read = Page {
            after: after.as_deref(),
            limit: page.limit,
        };
        let endpoints = state.store.list_endpoints(&tenant, read).await?;
        let exhausted = endpoints.len() < page.limit as usize;
        after = endpoints.last().map(|last| last.id.to_string());
        for (view, health) in
            endpoint_health::views_with_health(&state, &tenant, &endpoints).await?
        {
            if shown.len() < page.limit as usize && wanted.is_none_or(|wanted| wanted == health) {
                shown.push(view);
            }
        }
        if exhausted || shown.len() >= page.limit as usize {
            break;
        }
    }
    Ok(Json(page_json("endpoints", shown, page)))
}

async fn show(
    State(state): State<AppState>,
    Caller { tenant, .. }: Caller<Read>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let endpoint = find(&state, &tenant, &id).await?;
    let mut shown = endpoint_health::views_with_health(&state, &tenant, &[endpoint]).await?;
    Ok(Json(shown.remove(0).0))
}

async fn delete(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let endpoint = find(&state, &caller.tenant, &id).await?;
    let audit = caller.audit("endpoint.delete", &endpoint.id, Some(view(&endpoint)), None);
    state
        .store
        .audited(audit)
        .delete_endpoint(&caller.tenant, &endpoint.id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn find(
    state: &AppState,
    tenant: &TenantId,
    id: &str,
) -> Result<Endpoint, ApiError> {
    let id =
        EndpointId::parse(id).map_err(|e| ApiError::bad_request("invalid_id", e.to_string()))?;
    state
        .store
        .get_endpoint(tenant, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("endpoint", id.as_str()))
}

/// The endpoint `input` describes, once checked; `network` is the policy it
/// will be delivered under.
fn checked(
    tenant: &TenantId,
    input: EndpointInput,
    id: EndpointId,
    (created_at, updated_at): (i64, i64),
    existing_secret: Option<String>,
    network: &NetworkPolicy,
) -> Result<Endpoint, ApiError> {
    let invalid =
        |field: &str, detail: String| ApiError::unprocessable("invalid_field", detail).at(field);
    // Counts and durations are 1 to a maximum; `detail` says which.
    let one_to = |field: &str, value: u32, max: u32, detail: String| {
        if value == 0 || value > max {
            Err(invalid(field, detail))
        } else {
            Ok(())
        }
    };
    super::text::check_name("name", &input.name)?;
    check_url(&input.url).map_err(|detail| invalid("url", detail))?;
    if let Some(refusal) = network.scheme_refusal(&input.url) {
        return Err(invalid("url", refusal));
    }
    let method = input.method.to_ascii_uppercase();
    if !["POST", "PUT", "PATCH", "GET", "DELETE"].contains(&method.as_str()) {
        return Err(invalid(
            "method",
            format!(
                "{:?} is not one of POST, PUT, PATCH, GET, DELETE",
                input.method
            ),
        ));
    }
    check_headers(&input.headers)?;
    let mut secret_headers = Vec::with_capacity(input.secret_headers.len());
    for (index, name) in input.secret_headers.iter().enumerate() {
        if !input
            .headers
            .keys()
            .any(|header| header.eq_ignore_ascii_case(name))
        {
            return Err(invalid(
                &format!("secret_headers[{index}]"),
                format!("{name:?} is not one of the endpoint's headers"),
            ));
        }
        secret_headers.push(name.to_ascii_lowercase());
    }
    secret_headers.sort();
    secret_headers.dedup();
    if let Some(auth) = &input.auth {
        crate::delivery::check_auth(auth)
            .map_err(|error| invalid(&format!("auth.{}", error.field), error.reason))?;
        if let EndpointAuth::OAuth2ClientCredentials { token_url, .. } = auth
            && let Some(refusal) = network.scheme_refusal(token_url)
        {
            return Err(invalid("auth.token_url", refusal));
        }
    }
    if let Some(tls) = &input.tls {
        if !tls.verify
            && let Some(refusal) = network.unverified_tls_refusal()
        {
            return Err(invalid("tls.verify", refusal));
        }
        crate::delivery::check_tls(tls)
            .map_err(|error| invalid(&format!("tls.{}", error.field), error.reason))?;
    }
    if let Some(limit) = input.rate_limit {
        one_to(
            "rate_limit.requests",
            limit.requests,
            MAX_RATE_REQUESTS,
            format!("the rate limit allows 1 to {MAX_RATE_REQUESTS} requests"),
        )?;
        one_to(
            "rate_limit.per_seconds",
            limit.per_seconds,
            MAX_RATE_WINDOW_SECONDS,
            format!("the rate limit's window is 1 to {MAX_RATE_WINDOW_SECONDS} seconds"),
        )?;
    }
    if let Some(max) = input.max_concurrency {
        one_to(
            "max_concurrency",
            max,
            MAX_CONCURRENCY,
            format!("max_concurrency is 1 to {MAX_CONCURRENCY}"),
        )?;
    }
    let circuit_breaker = input.circuit_breaker.unwrap_or_default();
    check_breaker(&circuit_breaker)?;
    one_to(
        "timeout_ms",
        input.timeout_ms,
        MAX_TIMEOUT_MS,
        format!("the timeout is 1 to {MAX_TIMEOUT_MS} ms"),
    )?;
    one_to(
        "retry.max_attempts",
        input.retry.max_attempts,
        MAX_ATTEMPTS,
        format!("max_attempts is 1 to {MAX_ATTEMPTS}"),
    )?;
    let secret = match (input.secret, input.signature_scheme.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(invalid(
                "signature_scheme",
                "give a secret or a signature scheme to generate one, not both".into(),
            ));
        }
        (Some(secret), None) => chosen_secret(secret)?,
        (None, scheme) => match existing_secret {
            Some(existing) if scheme.is_none() => existing,
            existing => new_secret(scheme, existing.as_deref())?,
        },
    };
    Ok(Endpoint {
        id,
        tenant: tenant.clone(),
        name: input.name,
        url: input.url,
        method,
        headers: input.headers,
        secret_headers,
        auth: input.auth,
        tls: input.tls,
        rate_limit: input.rate_limit,
        max_concurrency: input.max_concurrency,
        circuit_breaker,
        secret,
        previous_secret: None,
        timeout_ms: input.timeout_ms,
        retry: input.retry,
        enabled: input.enabled,
        disabled_reason: None,
        created_at,
        updated_at,
    })
}

/// The most failures in a row a breaker may wait for, and the longest pause
/// between probes: a day.
const MAX_BREAKER_FAILURES: u32 = 10_000;
const MAX_BREAKER_PAUSE_SECONDS: u32 = 86_400;

/// A circuit breaker's settings: counts and pauses within their bounds.
fn check_breaker(breaker: &CircuitBreaker) -> Result<(), ApiError> {
    let invalid = |field: &str, detail: String| {
        Err(ApiError::unprocessable("invalid_field", detail).at(format!("circuit_breaker.{field}")))
    };
    if breaker.failures > MAX_BREAKER_FAILURES {
        return invalid(
            "failures",
            format!("failures is 0 (never open) to {MAX_BREAKER_FAILURES}"),
        );
    }
    for (field, seconds) in [
        ("pause_seconds", breaker.pause_seconds),
        ("max_pause_seconds", breaker.max_pause_seconds),
    ] {
        if seconds == 0 || seconds > MAX_BREAKER_PAUSE_SECONDS {
            return invalid(
                field,
                format!("{field} is 1 to {MAX_BREAKER_PAUSE_SECONDS} seconds"),
            );
        }
    }
    if breaker.max_pause_seconds < breaker.pause_seconds {
        return invalid(
            "max_pause_seconds",
            format!(
                "max_pause_seconds ({}) is less than pause_seconds ({})",
                breaker.max_pause_seconds, breaker.pause_seconds
            ),
        );
    }
    Ok(())
}

/// An endpoint's own headers: valid, not the exchange's own (`host`,
/// `content-length`, …) nor Weft's signature, and few and small enough.
fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let invalid = |field: String, detail: String| {
        Err(ApiError::unprocessable("invalid_field", detail).at(field))
    };
    if headers.len() > MAX_ENDPOINT_HEADERS {
        return invalid(
            "headers".into(),
            format!(
                "an endpoint has at most {MAX_ENDPOINT_HEADERS} headers, this one {}",
                headers.len()
            ),
        );
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.len() + value.len())
        .sum();
    if bytes > MAX_ENDPOINT_HEADER_BYTES {
        return invalid(
            "headers".into(),
            format!(
                "the headers take {bytes} bytes; at most {MAX_ENDPOINT_HEADER_BYTES} are allowed"
            ),
        );
    }
    for (name, value) in headers {
        let field = format!("headers.{name}");
        if http::HeaderName::from_bytes(name.as_bytes()).is_err()
            || http::HeaderValue::from_str(value).is_err()
        {
            return invalid(field, format!("{name:?} is not a valid header"));
        }
        if crate::delivery::is_protocol_header(name) {
            return invalid(
                field,
                format!("{name} is a header of the HTTP exchange, which Weft sets itself"),
            );
        }
        if name.to_ascii_lowercase().starts_with("webhook-") {
            return invalid(
                field,
                format!("{name}: the webhook- headers are Weft's signature, which it sets itself"),
            );
        }
    }
    Ok(())
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("https") | Some("http") => {}
        _ => {
            return Err(format!(
                "{url:?} must start with https:// (or http:// where allowed)"
            ));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    if uri
        .authority()
        .is_some_and(|authority| authority.as_str().contains('@'))
    {
        return Err(
            "the URL carries a user name or password: give credentials in auth (basic), \
             where they are sealed and bound to the endpoint"
                .to_owned(),
        );
    }
    Ok(())
}

/// The longest grace period of a rotation: receivers have this long to switch.
const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;
const DEFAULT_GRACE_SECONDS: u64 = 24 * 3600;

/// Replaces the signing secret (with the one given, or a new one, shown once
/// in the answer), and keeps signing with the old one too for the grace
/// period, so receivers can switch without refusing a delivery.
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Rotation {
        secret: Option<String>,
        signature_scheme: Option<String>,
        grace_period_seconds: Option<u64>,
    }
    let existing = find(&state, &caller.tenant, &id).await?;
    let rotation: Rotation = parse_optional_json(&body)?;
    let grace = rotation
        .grace_period_seconds
        .unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::unprocessable(
            "invalid_field",
            format!("the grace period is 0 to {MAX_GRACE_SECONDS} seconds"),
        )
        .at("grace_period_seconds"));
    }
    let secret = match rotation.secret {
        Some(secret) => chosen_secret(secret)?,
        None => new_secret(rotation.signature_scheme.as_deref(), Some(&existing.secret))?,
    };
    let now = now_millis();
    let grace_ms = i64::try_from(grace * 1000).unwrap_or(i64::MAX);
    let endpoint = Endpoint {
        previous_secret: (grace > 0).then(|| PreviousSecret {
            secret: existing.secret.clone(),
            expires_at: now.saturating_add(grace_ms),
        }),
        secret,
        updated_at: now,
        ..existing.clone()
    };
    let audit = caller.audit(
        "endpoint.rotate_secret",
        &endpoint.id,
        Some(view(&existing)),
        Some(view(&endpoint)),
    );
    state
        .store
        .audited(audit)
        .update_endpoint(&endpoint)
        .await?;
    let mut shown = view(&endpoint);
    shown["secret"] = json!(endpoint.secret);
    Ok(Json(shown))
}

async fn replay_failed(
    State(state): State<AppState>,
    caller: Caller<Configure>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Window {
        since: Option<i64>,
        until: Option<i64>,
    }
    let endpoint = find(&state, &caller.tenant, &id).await?;
    let window: Window = parse_optional_json(&body)?;
    let (since, until) = (window.since.unwrap_or(0), window.until.unwrap_or(i64::MAX));
    let audit = caller.audit(
        "endpoint.replay_failed",
        &endpoint.id,
        None,
        Some(json!({ "since": since, "until": until })),
    );
    let replayed = state
        .store
        .audited(audit)
        .replay_failed(&caller.tenant, &endpoint.id, since, until, now_millis())
        .await?;
    state.wake.notify_waiters();
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": replayed }))))
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/endpoints", post(create).get(list))
        .route("/v1/endpoints/{id}", get(show).put(update).delete(delete))
        .route("/v1/endpoints/{id}/replay-failed", post(replay_failed))
        .route("/v1/endpoints/{id}/rotate-secret", post(rotate_secret))
}
