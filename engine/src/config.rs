//! Configuration as code: the webhooks file `weft apply -f` reads, shaped like
//! the product sheet's examples (name, endpoint URL, method, authentication,
//! event triggers, payload format, filters, retry policy).
//!
//! This module only parses and checks the file and turns each webhook into the
//! API's endpoint and subscription documents; `cli::apply` sends them.

use crate::model::EndpointAuth;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A webhooks file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhooksFile {
    pub webhooks: Vec<Webhook>,
}

/// One webhook: an endpoint and the subscription feeding it, both named `name`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub name: String,
    pub endpoint_url: String,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Headers among `headers` to keep sealed and hidden like credentials,
    /// whatever their names.
    #[serde(default)]
    pub secret_headers: Vec<String>,
    /// How Weft authenticates to the receiver: the API's endpoint `auth`
    /// (`api_key`, `basic`, `bearer` or `oauth2` with a token,
    /// `oauth2_client_credentials`, `jwt`).
    pub authentication: Option<EndpointAuth>,
    /// The product sheet's "Rate Limit: 100 requests/minute": `N/second`,
    /// `N requests/minute`, `N per hour`, `N/day`.
    pub rate_limit: Option<String>,
    /// Deliveries in flight to the endpoint at once.
    pub max_concurrency: Option<u32>,
    /// When deliveries stop for a receiver that keeps failing, and when the
    /// endpoint is disabled (Weft's defaults when absent).
    #[serde(default)]
    pub circuit_breaker: Option<crate::model::CircuitBreaker>,
    pub event_triggers: Vec<String>,
    /// Field → Jinja template, as in the product sheet's "Payload Format".
    pub payload_format: Option<Value>,
    /// CEL expressions; all must hold.
    #[serde(default)]
    pub filters: Vec<String>,
    #[serde(default)]
    pub retry_policy: RetryPolicySpec,
    #[serde(default)]
    pub plugins: Vec<Value>,
    pub ordering_key: Option<String>,
    /// Opt-in batching: `{ max_events: 100, max_wait_ms: 2000 }`.
    pub batching: Option<BatchingSpec>,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn default_method() -> String {
    "POST".into()
}

fn enabled() -> bool {
    true
}

/// Up to `max_events` events, or whatever arrived within `max_wait_ms`, go
/// out as one request whose body is a JSON array.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchingSpec {
    pub max_events: u32,
    pub max_wait_ms: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicySpec {
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
    #[serde(default)]
    pub backoff: BackoffSpec,
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
}

impl Default for RetryPolicySpec {
    fn default() -> Self {
        Self {
            max_attempts: default_attempts(),
            backoff: BackoffSpec::default(),
            timeout_seconds: default_timeout(),
        }
    }
}

fn default_attempts() -> u32 {
    crate::model::RetryPolicy::default().max_attempts
}

fn default_timeout() -> u32 {
    30
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackoffSpec {
    #[default]
    Exponential,
    Fixed,
}

/// `100 requests/minute`, `10/second`, `5000 per hour`: a count of requests
/// per unit of time, as the API's `rate_limit`.
fn parse_rate_limit(text: &str) -> Result<crate::model::RateLimit, String> {
    let expected = || format!("{text:?} is not a rate such as \"100 requests/minute\"");
    let (count, unit) = text
        .split_once('/')
        .or_else(|| text.split_once(" per "))
        .ok_or_else(expected)?;
    let count = count
        .trim()
        .trim_end_matches("requests")
        .trim_end_matches("request")
        .trim();
    let requests: u32 = count.parse().map_err(|_| expected())?;
    let per_seconds = match unit.trim() {
        "s" | "sec" | "second" => 1,
        "min" | "minute" => 60,
        "h" | "hour" => 3_600,
        "day" => 86_400,
        _ => return Err(expected()),
    };
    Ok(crate::model::RateLimit {
        requests,
        per_seconds,
    })
}

/// A webhooks file that cannot be applied, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Syntax(String),
    #[error("environment variable {name} is not set (used as ${{{name}}})")]
    MissingVariable { name: String },
    #[error("webhooks[{index}] ({name}): {reason}")]
    Invalid {
        index: usize,
        name: String,
        reason: String,
    },
}

impl WebhooksFile {
    /// Parses `text`, expanding `${NAME}` and `${NAME:-default}` from `env`.
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let expanded = expand_variables(text, env)?;
        let file: Self =
            serde_yaml_ng::from_str(&expanded).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut names = std::collections::BTreeSet::new();
        for (index, webhook) in file.webhooks.iter().enumerate() {
            let invalid = |reason: String| ConfigError::Invalid {
                index,
                name: webhook.name.clone(),
                reason,
            };
            if !names.insert(webhook.name.as_str()) {
                return Err(invalid(
                    "another webhook has the same name; names identify what apply updates".into(),
                ));
            }
            if let Some(limit) = &webhook.rate_limit {
                parse_rate_limit(limit)
                    .map_err(|reason| invalid(format!("rate_limit: {reason}")))?;
            }
            if webhook.event_triggers.is_empty() {
                return Err(invalid(
                    "event_triggers: list at least one event type".into(),
                ));
            }
        }
        Ok(file)
    }
}

impl Webhook {
    /// The endpoint document for `POST`/`PUT /v1/endpoints`.
    pub fn endpoint_body(&self) -> Value {
        let backoff = match self.retry_policy.backoff {
            BackoffSpec::Exponential => {
                json!({ "type": "exponential", "initial_ms": 5_000, "max_ms": 36_000_000 })
            }
            BackoffSpec::Fixed => json!({ "type": "fixed", "delay_ms": 60_000 }),
        };
        json!({
            "name": self.name,
            "url": self.endpoint_url,
            "method": self.method,
            "headers": self.headers,
            "secret_headers": self.secret_headers,
            "auth": self.authentication,
            "rate_limit": self.rate_limit.as_deref().and_then(|limit| parse_rate_limit(limit).ok()),
            "max_concurrency": self.max_concurrency,
            "circuit_breaker": self.circuit_breaker,
            "timeout_ms": self.retry_policy.timeout_seconds.saturating_mul(1000),
            "retry": { "max_attempts": self.retry_policy.max_attempts, "backoff": backoff },
            "enabled": self.enabled,
        })
    }

    /// The subscription document for `POST`/`PUT /v1/subscriptions`.
    pub fn subscription_body(&self, endpoint_id: &str) -> Value {
        let filter = match self.filters.len() {
            0 => Value::Null,
            1 => json!(self.filters[0]),
            _ => json!(
                self.filters
                    .iter()
                    .map(|f| format!("({f})"))
                    .collect::<Vec<_>>()
                    .join(" && ")
            ),
        };
        json!({
            "name": self.name,
            "endpoint_id": endpoint_id,
            "event_types": self.event_triggers,
            "filter": filter,
            "template": self.payload_format,
            "plugins": self.plugins,
            "ordering_key": self.ordering_key,
            "batching": self.batching,
            "enabled": self.enabled,
        })
    }
}

/// Replaces `${NAME}` and `${NAME:-default}`; `$$` is a literal `$`.
fn expand_variables(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{')
            && let Some(end) = body.find('}')
        {
            let (name, default) = match body[..end].split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (&body[..end], None),
            };
            let value = env(name)
                .or_else(|| default.map(str::to_owned))
                .ok_or_else(|| ConfigError::MissingVariable {
                    name: name.to_owned(),
                })?;
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "KEY").then(|| "s3cret".to_owned())
    }

    #[test]
    fn variables_expand_with_defaults() {
        let cases = [
            ("a ${KEY} b", Ok("a s3cret b")),
            ("${MISSING:-fallback}", Ok("fallback")),
            ("${KEY:-unused}", Ok("s3cret")),
            ("cost: $$5 and $x", Ok("cost: $5 and $x")),
            ("${MISSING}", Err("MISSING")),
        ];
        for (text, expected) in cases {
            match (expand_variables(text, env), expected) {
                (Ok(out), Ok(expected)) => assert_eq!(out, expected),
                (Err(error), Err(name)) => assert!(error.to_string().contains(name)),
                (other, expected) => panic!("{text}: {other:?} vs {expected:?}"),
            }
        }
    }

    #[test]
    fn the_product_sheet_examples_parse_into_api_documents() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/subscriptions.yaml"
        ))
        .unwrap();
        let file = WebhooksFile::parse(&text, |name| {
            (name != "ECOMMERCE_WEBHOOK_URL").then(|| format!("<{name}>"))
        })
        .unwrap();
        assert_eq!(file.webhooks.len(), 2);
        let orders = &file.webhooks[0];
        let endpoint = orders.endpoint_body();
        assert_eq!(
            endpoint["url"],
            "https://api.ecommerce.com/webhooks/bigledger"
        );
        assert_eq!(
            endpoint["auth"],
            json!({ "type": "api_key", "header": "X-API-Key", "value": "<ECOMMERCE_API_KEY>" })
        );
        assert_eq!(endpoint["timeout_ms"], 30_000);
        assert_eq!(endpoint["retry"]["max_attempts"], 3);
        let subscription = orders.subscription_body("ep_x");
        assert_eq!(
            subscription["filter"],
            "(order.total > 100) && (order.status != \"draft\")"
        );
        assert_eq!(subscription["template"]["order_id"], "{{ order.id }}");
        assert_eq!(subscription["batching"], Value::Null);
        let crm = file.webhooks[1].endpoint_body();
        assert_eq!(
            crm["auth"],
            json!({ "type": "bearer", "token": "<CRM_OAUTH_TOKEN>" })
        );
        assert_eq!(
            crm["rate_limit"],
            json!({ "requests": 100, "per_seconds": 60 })
        );
    }

    #[test]
    fn rate_limits_are_read_the_way_people_write_them() {
        let per_minute = crate::model::RateLimit {
            requests: 100,
            per_seconds: 60,
        };
        for text in [
            "100 requests/minute",
            "100/minute",
            "100 per minute",
            "100/min",
        ] {
            assert_eq!(parse_rate_limit(text), Ok(per_minute), "{text}");
        }
        assert_eq!(parse_rate_limit("5/second").unwrap().per_seconds, 1);
        for bad in ["fast", "100/fortnight", "-1/minute", "100"] {
            let error = parse_rate_limit(bad).unwrap_err();
            assert!(error.contains("100 requests/minute"), "{bad}: {error}");
        }
        let text = "webhooks:\n  - name: crm\n    endpoint_url: https://example.com/\n    \
                    event_triggers: [customer.created]\n    rate_limit: 100 a minute\n";
        let error = WebhooksFile::parse(text, env).unwrap_err().to_string();
        assert!(
            error.starts_with("webhooks[0] (crm): rate_limit:"),
            "{error}"
        );
    }

    #[test]
    fn batching_passes_through_to_the_subscription() {
        let text = "webhooks:\n  - name: digest\n    endpoint_url: https://example.com/\n    \
                    event_triggers: [stock.updated]\n    batching: { max_events: 100, max_wait_ms: 2000 }\n";
        let file = WebhooksFile::parse(text, env).unwrap();
        assert_eq!(
            file.webhooks[0].subscription_body("ep_x")["batching"],
            json!({ "max_events": 100, "max_wait_ms": 2000 })
        );
    }

    #[test]
    fn secret_headers_pass_through_to_the_endpoint() {
        let text = "webhooks:\n  - name: crm\n    endpoint_url: https://example.com/\n    \
                    event_triggers: [stock.updated]\n    \
                    headers: { X-Tenant-Code: t-42, X-Source: erp }\n    \
                    secret_headers: [X-Tenant-Code]\n";
        let file = WebhooksFile::parse(text, env).unwrap();
        let endpoint = file.webhooks[0].endpoint_body();
        assert_eq!(endpoint["secret_headers"], json!(["X-Tenant-Code"]));
        assert_eq!(endpoint["headers"]["X-Tenant-Code"], "t-42");
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            (
                "webhooks:\n  - name: a\n    endpoint_url: x\n    event_triggers: []\n",
                "webhooks[0] (a): event_triggers",
            ),
            (
                "webhooks:\n  - name: a\n    endpoint_url: x\n    event_triggers: [a.b]\n    retry_policy: { backoff: linear }\n",
                "unknown variant `linear`",
            ),
            (
                "webhooks:\n  - name: a\n    endpoint: x\n",
                "unknown field `endpoint`",
            ),
            (
                "webhooks:\n  - name: a\n    endpoint_url: x\n    event_triggers: [a.b]\n    batching: { max_events: 10, wait: 5 }\n",
                "unknown field `wait`",
            ),
        ];
        for (text, fragment) in cases {
            let error = WebhooksFile::parse(text, env).unwrap_err().to_string();
            assert!(error.contains(fragment), "{error}");
        }
    }
}
