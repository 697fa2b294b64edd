//! The domain: what Weft stores and passes between its modules, as plain data.
//!
//! Every object belongs to a tenant. Ids are prefixed (`evt_…`, `ep_…`) so that
//! one kind can never be passed where another is expected, and they sort by
//! creation time (ULIDs). Times are unix milliseconds. Nothing here knows HTTP,
//! SQL or wasm.

mod endpoint_auth;
mod endpoint_tls;

pub use endpoint_auth::{ClientAuthentication, EndpointAuth, JwtAlgorithm};
pub use endpoint_tls::EndpointTls;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// A unix timestamp in milliseconds.
pub type UnixMillis = i64;

/// The current time in unix milliseconds.
pub fn now_millis() -> UnixMillis {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_millis() as UnixMillis
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with, underscore included.
            pub const PREFIX: &'static str = concat!($prefix, "_");

            /// A new id, unique and sortable by creation time.
            pub fn generate() -> Self {
                Self(format!("{}{}", Self::PREFIX, ulid::Ulid::new().to_string().to_lowercase()))
            }

            /// Accepts `text` if it is an id of this kind.
            pub fn parse(text: &str) -> Result<Self, InvalidId> {
                let rest = text.strip_prefix(Self::PREFIX).ok_or_else(|| InvalidId {
                    expected: Self::PREFIX,
                    found: text.to_owned(),
                })?;
                let valid = !rest.is_empty()
                    && rest.len() <= 64
                    && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
                if valid {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(InvalidId { expected: Self::PREFIX, found: text.to_owned() })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// Text that is not an id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{found:?} is not a valid id: ids of this kind look like {expected}…")]
pub struct InvalidId {
    pub expected: &'static str,
    pub found: String,
}

prefixed_id!(
    /// An event captured by Weft. Client-supplied ids are accepted too (see
    /// [`EventId::parse`]): a publisher that retries with the same id is deduplicated.
    EventId, "evt"
);
prefixed_id!(
    /// A destination: URL, method, headers, signing secret, retry policy.
    EndpointId, "ep"
);
prefixed_id!(
    /// Which events go to which endpoint, filtered and transformed how.
    SubscriptionId, "sub"
);
prefixed_id!(
    /// One event on its way to one subscription's endpoint.
    DeliveryId, "dlv"
);
prefixed_id!(
    /// One HTTP request made for a delivery.
    AttemptId, "att"
);
prefixed_id!(
    /// Deliveries of one batching subscription sent as one request. It is the
    /// request's `webhook-id`, the same on every retry of the batch. A fresh id
    /// rather than one derived from a member's: a replayed delivery may lead a
    /// later batch with other members, and a receiver deduplicating on
    /// `webhook-id` would discard that batch as one it had seen.
    BatchId, "batch"
);

prefixed_id!(
    /// A credential to call the API, for one tenant in one role.
    ApiKeyId, "key"
);

prefixed_id!(
    /// An entry of a tenant's audit log.
    AuditId, "aud"
);

impl AuditId {
    /// A new id that sorts after every other this process made, even within
    /// the same millisecond, so the log reads in the order things happened.
    pub fn next() -> Self {
        static GENERATOR: std::sync::LazyLock<std::sync::Mutex<ulid::Generator>> =
            std::sync::LazyLock::new(|| std::sync::Mutex::new(ulid::Generator::new()));
        let ulid = GENERATOR
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .generate()
            .unwrap_or_else(|_| ulid::Ulid::new());
        Self(format!(
            "{}{}",
            Self::PREFIX,
            ulid.to_string().to_lowercase()
        ))
    }

    /// The least id made at `at`: every entry recorded before `at` sorts
    /// below it, every one recorded since above or equal.
    pub fn first_at(at: UnixMillis) -> Self {
        let ulid = ulid::Ulid::from_parts(u64::try_from(at).unwrap_or_default(), 0);
        Self(format!(
            "{}{}",
            Self::PREFIX,
            ulid.to_string().to_lowercase()
        ))
    }
}

/// The organisation an object belongs to. Tenants never see each other's objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    /// Accepts 1–64 characters of `[a-z0-9_-]`.
    pub fn parse(text: &str) -> Result<Self, InvalidId> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidId {
                expected: "a tenant name of [a-z0-9_-] like acme",
                found: text.to_owned(),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An event as captured: the payload exactly as published, plus what Weft knows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub tenant: TenantId,
    /// `<entity>.<action>`: `sales_order.created`.
    pub event_type: String,
    /// When it happened, per the publisher (or when it was received).
    pub occurred_at: UnixMillis,
    /// When Weft accepted it.
    pub received_at: UnixMillis,
    /// The publisher's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
    /// The JSON payload, as published.
    pub payload: Payload,
    pub metadata: BTreeMap<String, String>,
}

/// An event's JSON payload.
///
/// Read back from the store, it keeps the text it was stored as and builds the
/// value tree only when something reads the values (a filter, a template, the
/// API): a delivery whose plugins take the payload as text never parses it,
/// and never writes it back out. It reads as a [`serde_json::Value`] through
/// `Deref`; [`Payload::json`] gives the text. Clones share the text and the
/// values: a payload of megabytes is cloned for the price of a pointer.
#[derive(Clone)]
pub struct Payload(std::sync::Arc<PayloadForms>);

struct PayloadForms {
    /// The JSON text, when the payload came from the store.
    text: Option<Box<str>>,
    value: std::sync::OnceLock<serde_json::Value>,
}

impl Payload {
    /// The payload stored as `text`, checked to be one JSON value (without
    /// building it).
    pub fn from_json(text: String) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<serde::de::IgnoredAny>(&text)?;
        Ok(Self(std::sync::Arc::new(PayloadForms {
            text: Some(text.into_boxed_str()),
            value: std::sync::OnceLock::new(),
        })))
    }

    /// The payload as JSON text: the stored text, or the value written out.
    pub fn json(&self) -> std::borrow::Cow<'_, str> {
        match &self.0.text {
            Some(text) => std::borrow::Cow::Borrowed(text),
            None => std::borrow::Cow::Owned(self.value().to_string()),
        }
    }

    /// The length of the JSON text, if the payload holds it already.
    pub fn stored_len(&self) -> Option<usize> {
        self.0.text.as_deref().map(str::len)
    }

    /// The payload's values, parsed from the text on first use.
    pub fn value(&self) -> &serde_json::Value {
        self.0.value.get_or_init(|| {
            let text = self.0.text.as_deref().unwrap_or("null");
            serde_json::from_str(text).unwrap_or_else(|error| {
                // Stored payloads were values when they were captured, so they
                // parse again; this would take a hand-edited database.
                tracing::error!(%error, "a stored event payload is not valid JSON");
                serde_json::Value::Null
            })
        })
    }
}

impl From<serde_json::Value> for Payload {
    fn from(value: serde_json::Value) -> Self {
        Self(std::sync::Arc::new(PayloadForms {
            text: None,
            value: std::sync::OnceLock::from(value),
        }))
    }
}

impl std::ops::Deref for Payload {
    type Target = serde_json::Value;

    fn deref(&self) -> &serde_json::Value {
        self.value()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.value() == other.value()
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.value(), f)
    }
}

impl Serialize for Payload {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde_json::Value::deserialize(deserializer).map(Self::from)
    }
}

/// Where deliveries go, and how they are sent and retried.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: EndpointId,
    pub tenant: TenantId,
    pub name: String,
    /// `https://…` (plain `http://` only where the operator allows it).
    pub url: String,
    /// `POST` unless set.
    pub method: String,
    /// Sent with every request, before Weft's own headers.
    pub headers: BTreeMap<String, String>,
    /// Headers (lowercased names) treated as secret besides those whose names
    /// suggest a credential: shown as hints, redacted in attempts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secret_headers: Vec<String>,
    /// How Weft authenticates to the receiver, if it must.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<EndpointAuth>,
    /// Which certificates the receiver may show, and the one Weft shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<EndpointTls>,
    /// How many deliveries the receiver takes in a period; more wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// How many deliveries may be in flight to the receiver at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
    /// When Weft stops sending to a receiver that keeps failing, and when it
    /// gives up on it.
    #[serde(default)]
    pub circuit_breaker: CircuitBreaker,
    /// The Standard Webhooks signing secret, `whsec_<base64>`.
    pub secret: String,
    /// The secret before the last rotation, signing beside `secret` until it
    /// expires. Never serialized: the API shows a hint of it.
    #[serde(default, skip_serializing)]
    pub previous_secret: Option<PreviousSecret>,
    pub timeout_ms: u32,
    pub retry: RetryPolicy,
    pub enabled: bool,
    /// Why Weft disabled it (a 410 Gone, say), when it did.
    pub disabled_reason: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// At most `requests` deliveries every `per_seconds` seconds, in a burst or
/// spread out; deliveries beyond it wait their turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

/// Everything but the secrets (signing secrets, header values), so that no
/// log or test failure prints them.
impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("name", &self.name)
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("auth", &self.auth)
            .field("tls", &self.tls)
            .field("rate_limit", &self.rate_limit)
            .field("max_concurrency", &self.max_concurrency)
            .field("circuit_breaker", &self.circuit_breaker)
            .field("rotating_secret", &self.previous_secret.is_some())
            .field("timeout_ms", &self.timeout_ms)
            .field("retry", &self.retry)
            .field("enabled", &self.enabled)
            .field("disabled_reason", &self.disabled_reason)
            .finish_non_exhaustive()
    }
}

/// When an endpoint's circuit opens, how long it stays open, and when a
/// receiver that keeps failing is disabled. The circuit's state is shared by
/// every node of a database (see [`crate::health`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreaker {
    /// Consecutive failed attempts that open the circuit; 0 never opens it.
    pub failures: u32,
    /// The pause before the first probe; each failed probe doubles it.
    pub pause_seconds: u32,
    /// The longest pause between two probes.
    pub max_pause_seconds: u32,
    /// How long an endpoint may fail without a success before Weft disables
    /// it; 0 never disables it.
    pub disable_after_seconds: u64,
}

impl Default for CircuitBreaker {
    /// Opens after 10 failures in a row, probes after 5 s, then 10 s, 20 s, …
    /// up to every 10 minutes, and disables the endpoint after 5 days of
    /// failures.
    fn default() -> Self {
        Self {
            failures: 10,
            pause_seconds: 5,
            max_pause_seconds: 600,
            disable_after_seconds: 5 * 86_400,
        }
    }
}

/// A secret that was rotated out, and until when it still signs.
#[derive(Clone, PartialEq, Eq, Deserialize)]
pub struct PreviousSecret {
    pub secret: String,
    pub expires_at: UnixMillis,
}

impl fmt::Debug for PreviousSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreviousSecret")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// The secrets requests are signed with at `now`: the current one, and the
    /// previous one during its grace period.
    pub fn signing_secrets(&self, now: UnixMillis) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let Some(previous) = &self.previous_secret
            && previous.expires_at > now
        {
            secrets.push(previous.secret.as_str());
        }
        secrets
    }

    /// Whether header `name` is one the endpoint marked secret.
    pub fn marks_secret(&self, name: &str) -> bool {
        self.secret_headers
            .iter()
            .any(|marked| marked.eq_ignore_ascii_case(name))
    }
}

/// How a failed delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included. 1 means no retry.
    pub max_attempts: u32,
    pub backoff: Backoff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Backoff {
    /// `initial_ms`, then doubling up to `max_ms`, each with ±20 % jitter.
    Exponential { initial_ms: u64, max_ms: u64 },
    /// The same wait every time.
    Fixed { delay_ms: u64 },
}

impl Default for RetryPolicy {
    /// Eight attempts over about a day: 5 s, 30 s, 2 min, 10 min, 30 min, 2 h,
    /// 5 h, 10 h (Backoff::Exponential approximates it from 5 s, capped at 10 h).
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff: Backoff::Exponential {
                initial_ms: 5_000,
                max_ms: 10 * 3_600_000,
            },
        }
    }
}

/// A plugin attached to a subscription, pinned to a version, with its config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginRef {
    pub plugin: String,
    pub version: String,
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Limits for this plugin here, where the server's defaults do not suit it
    /// (an interpreted plugin needs more memory and time than a Rust one).
    #[serde(default, skip_serializing_if = "LimitOverrides::is_empty")]
    pub limits: LimitOverrides,
}

/// Per-attachment limits; each one left out is the server's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// CPU time per invocation, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u32>,
    /// Linear memory, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Size of the requests one invocation returns, in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_mib: Option<u32>,
}

impl LimitOverrides {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

fn empty_object() -> serde_json::Value {
    serde_json::json!({})
}

/// Opt-in batching: a subscription's due deliveries leave together, as one
/// request whose body is the JSON array of their bodies in capture order. A
/// batch leaves when `max_events` deliveries are due, or when the longest-due
/// of them has waited `max_wait_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batching {
    pub max_events: u32,
    pub max_wait_ms: u32,
}

/// Which events go to which endpoint, and what happens to them on the way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: SubscriptionId,
    pub tenant: TenantId,
    pub name: String,
    pub endpoint_id: EndpointId,
    /// Exact types and wildcards: `sales_order.created`, `sales_order.*`, `*`.
    pub event_types: Vec<String>,
    /// A CEL expression over the payload (and `event`): `order.total > 100`.
    pub filter: Option<String>,
    /// A Jinja template producing the body, or a map of field → template.
    pub template: Option<serde_json::Value>,
    /// Run in order: filters, then transforms, then at most one integration template.
    pub plugins: Vec<PluginRef>,
    /// Deliveries sent together as JSON arrays; never with `ordering_key`.
    pub batching: Option<Batching>,
    /// A Jinja template naming the ordering key (`{{ order.id }}`): deliveries
    /// with the same key reach the endpoint in capture order. Never with
    /// `batching`.
    pub ordering_key: Option<String>,
    pub enabled: bool,
    /// Set when a plugin reported its configuration wrong: deliveries are held
    /// until an administrator resumes the subscription.
    #[serde(default)]
    pub paused: Option<Pause>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

/// Why and since when a subscription is paused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pause {
    pub reason: String,
    pub at: UnixMillis,
}

/// When a held delivery falls due: never, until it is released (9999-12-31).
pub const ON_HOLD: UnixMillis = 253_402_300_799_999;

/// When a delivery waiting for its endpoint's circuit to close falls due:
/// never, until the circuit closes (a millisecond before [`ON_HOLD`], so that
/// releasing one kind never releases the other).
pub const PARKED: UnixMillis = ON_HOLD - 1;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (the first included).
    Pending,
    /// The endpoint answered 2xx.
    Succeeded,
    /// Dead-lettered: attempts exhausted, or the event can never succeed.
    /// Replayable.
    Failed,
    /// A filter or plugin dropped the event for this subscription.
    Dropped,
    /// Not sent because its endpoint is disabled; kept so that
    /// `POST /v1/endpoints/{id}/recover` can deliver it once it is enabled.
    Skipped,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
            Self::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Succeeded,
            Self::Failed,
            Self::Dropped,
            Self::Skipped,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// One event on its way to one subscription's endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub tenant: TenantId,
    pub event_id: EventId,
    pub event_type: String,
    pub subscription_id: SubscriptionId,
    pub endpoint_id: EndpointId,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_at: UnixMillis,
    pub last_error: Option<String>,
    pub ordering_key: Option<String>,
    /// Captured for a batching subscription: it leaves in a batch, never on
    /// its own claim. Decided at capture, whatever the subscription says later.
    pub batched: bool,
    /// The batch it belongs to: set when the batch is formed, kept through the
    /// batch's retries and with its outcome. A delivery that leaves its batch
    /// has none: one its chain dropped or failed on, one sent alone (its
    /// requests do not fit in an array), one a full batch had no room for, and
    /// one replayed.
    pub batch_id: Option<BatchId>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// Set on a delivery just claimed whose previous claim ended with no
    /// outcome recorded (the process holding it died): when that claim's
    /// lease ran out. Its request may have reached the receiver; the worker
    /// records that attempt as an [`UNKNOWN_OUTCOME`] before trying again.
    #[serde(skip)]
    pub interrupted: Option<UnixMillis>,
}

/// How an attempt whose outcome was never recorded starts its error: the
/// process sending it stopped first, so the receiver may or may not have it.
pub const UNKNOWN_OUTCOME: &str = "unknown outcome";

impl Delivery {
    /// A new pending delivery of `event` to `subscription`, due as soon as the
    /// event was received. (If the subscription is paused, the worker that
    /// claims it holds it, on the subscription as stored then.)
    pub fn pending(
        event: &Event,
        subscription: &Subscription,
        ordering_key: Option<String>,
    ) -> Self {
        Self {
            id: DeliveryId::generate(),
            tenant: event.tenant.clone(),
            event_id: event.id.clone(),
            event_type: event.event_type.clone(),
            subscription_id: subscription.id.clone(),
            endpoint_id: subscription.endpoint_id.clone(),
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: event.received_at,
            last_error: None,
            ordering_key,
            // A batching subscription's deliveries only ever leave in batches.
            batched: subscription.batching.is_some(),
            batch_id: None,
            created_at: event.received_at,
            updated_at: event.received_at,
            interrupted: None,
        }
    }
}

/// One HTTP request made for a delivery, and what came back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub id: AttemptId,
    pub tenant: TenantId,
    pub delivery_id: DeliveryId,
    /// 1 for the first attempt.
    pub number: u32,
    pub started_at: UnixMillis,
    pub duration_ms: u32,
    pub request_method: String,
    pub request_url: String,
    /// Secrets redacted.
    pub request_headers: BTreeMap<String, String>,
    pub response_status: Option<u16>,
    pub response_headers: BTreeMap<String, String>,
    /// At most [`MAX_RECORDED_RESPONSE_BYTES`], lossily decoded.
    pub response_body: Option<String>,
    pub error: Option<String>,
}

impl Attempt {
    /// `succeeded` (the receiver answered 2xx), `unknown` (its process
    /// stopped before recording the answer: the receiver may have it), or
    /// `failed`.
    pub fn outcome(&self) -> &'static str {
        match (self.response_status, self.error.as_deref()) {
            (Some(200..=299), _) => "succeeded",
            (None, Some(error)) if error.starts_with(UNKNOWN_OUTCOME) => "unknown",
            _ => "failed",
        }
    }
}

/// Response bodies are kept up to this size in the attempt history.
pub const MAX_RECORDED_RESPONSE_BYTES: usize = 64 << 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotated_out_secret_signs_until_it_expires() {
        let endpoint = Endpoint {
            id: EndpointId::generate(),
            tenant: TenantId::parse("acme").unwrap(),
            name: "crm".into(),
            url: "https://crm.example/hook".into(),
            method: "POST".into(),
            headers: BTreeMap::new(),
            secret_headers: Vec::new(),
            auth: None,
            tls: None,
            rate_limit: None,
            max_concurrency: None,
            circuit_breaker: CircuitBreaker::default(),
            secret: "whsec_new".into(),
            previous_secret: Some(PreviousSecret {
                secret: "whsec_old".into(),
                expires_at: 1_000,
            }),
            timeout_ms: 1_000,
            retry: RetryPolicy::default(),
            enabled: true,
            disabled_reason: None,
            created_at: 0,
            updated_at: 0,
        };
        assert_eq!(endpoint.signing_secrets(999), ["whsec_new", "whsec_old"]);
        assert_eq!(endpoint.signing_secrets(1_000), ["whsec_new"]);
        let shown = serde_json::to_string(&endpoint).unwrap();
        assert!(!shown.contains("whsec_old"), "{shown}");
    }

    #[test]
    fn ids_carry_their_kind() {
        let id = EventId::generate();
        assert!(id.as_str().starts_with("evt_"));
        assert_eq!(EventId::parse(id.as_str()), Ok(id));
        let cases = ["ep_01h", "evt_", "evt_a b", "evt_ünï", ""];
        for text in cases {
            assert!(EventId::parse(text).is_err(), "{text}");
        }
        assert_eq!(
            EndpointId::parse("sub_1").unwrap_err().to_string(),
            "\"sub_1\" is not a valid id: ids of this kind look like ep_…"
        );
    }

    #[test]
    fn a_stored_payload_keeps_its_text_and_reads_as_its_values() {
        let text = r#"{"order": {"id": "SO-1", "total": 250.5}, "b": [1, 2]}"#;
        let stored = Payload::from_json(text.to_owned()).unwrap();
        assert_eq!(stored.json(), text);
        assert_eq!(stored["order"]["total"], 250.5);
        let published = Payload::from(serde_json::json!({
            "order": { "id": "SO-1", "total": 250.5 }, "b": [1, 2]
        }));
        assert_eq!(stored, published);
        assert_eq!(
            serde_json::to_string(&stored).unwrap(),
            published.json(),
            "both serialize as the value, keys in published order"
        );
    }

    #[test]
    fn a_stored_payload_must_be_one_json_value() {
        for bad in ["", "{", "{} {}", "nope"] {
            assert!(Payload::from_json(bad.to_owned()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_sort_by_creation() {
        let first = DeliveryId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(first < DeliveryId::generate());
    }

    #[test]
    fn tenants_are_lowercase_names() {
        assert!(TenantId::parse("acme-water_2").is_ok());
        for bad in ["", "Acme", "a/b", &"x".repeat(65)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }
}

/// What a caller may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything in the tenant, API keys and the audit log included.
    Admin,
    /// Endpoints, subscriptions, plugins, event types and replays; reads all.
    IntegrationAdmin,
    /// Publishes events; reads nothing.
    Publisher,
    /// Reads everything but keys; changes nothing.
    Viewer,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::Admin,
        Role::IntegrationAdmin,
        Role::Publisher,
        Role::Viewer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::IntegrationAdmin => "integration-admin",
            Role::Publisher => "publisher",
            Role::Viewer => "viewer",
        }
    }

    /// Accepts a role's name: `admin`, `integration-admin`, `publisher`, `viewer`.
    pub fn parse(text: &str) -> Result<Self, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| UnknownRole(text.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Text that names no role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a role: expected admin, integration-admin, publisher or viewer")]
pub struct UnknownRole(pub String);

/// An API key as stored: never the key itself, only its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub tenant: TenantId,
    pub id: ApiKeyId,
    pub name: String,
    pub role: Role,
    /// Hex SHA-256 of the whole key.
    #[serde(skip)]
    pub key_hash: String,
    /// The key's last four characters, to tell keys apart.
    pub hint: String,
    /// CIDRs the key may be used from; empty: anywhere.
    pub allowed_networks: Vec<String>,
    /// Publish requests a second the key may make; `None`: the server's default.
    pub ingest_per_second: Option<u32>,
    pub created_at: UnixMillis,
    pub revoked_at: Option<UnixMillis>,
}

/// One line of a tenant's audit log: a change made through the API, or an
/// access refused to a known credential.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub tenant: TenantId,
    pub id: AuditId,
    pub at: UnixMillis,
    /// The credential: `key_…`, or `token:<subject>`.
    pub actor: String,
    pub role: Role,
    /// What was done or tried: `endpoint.create`, `api_key.revoke`,
    /// `access.refused`, …
    pub action: String,
    /// The id or name of the object acted on.
    pub object: Option<String>,
    pub outcome: AuditOutcome,
    pub detail: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    /// The object before and after, as the API shows it (secrets as hints).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    /// A change made by whoever runs Weft, from its command line (`how`:
    /// `weft keys create`), with the powers of an admin.
    pub fn by_operator(
        tenant: &TenantId,
        how: &str,
        action: &str,
        object: impl ToString,
        after: Option<serde_json::Value>,
    ) -> Self {
        Self {
            tenant: tenant.clone(),
            id: AuditId::next(),
            at: now_millis(),
            actor: format!("operator:{how}"),
            role: Role::Admin,
            action: action.to_owned(),
            object: Some(object.to_string()),
            outcome: AuditOutcome::Done,
            detail: None,
            source: None,
            before: None,
            after,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    Done,
    Refused,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditOutcome::Done => "done",
            AuditOutcome::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "done" => Some(AuditOutcome::Done),
            "refused" => Some(AuditOutcome::Refused),
            _ => None,
        }
    }
}
