//! The headers Weft adds to every delivery, and the redaction of the headers it
//! records in the attempt history.

use super::signing::{self, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SigningError};
use std::collections::BTreeMap;

/// Identifies Weft to receivers (and in their logs), with the version so that a
/// receiver can tell which release sent a request.
pub const USER_AGENT: &str = concat!("Weft/", env!("CARGO_PKG_VERSION"));

/// What a recorded secret looks like.
pub const REDACTED: &str = "[redacted]";

/// Headers of the HTTP exchange itself, which the client sets from the request
/// it sends: neither an endpoint nor a plugin may set them (a wrong
/// `content-length` or a `host` of another site would corrupt or misdirect
/// the request).
const PROTOCOL_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "expect",
];

/// Whether `name` is a header of the HTTP exchange itself.
pub fn is_protocol_header(name: &str) -> bool {
    PROTOCOL_HEADERS
        .iter()
        .any(|protocol| protocol.eq_ignore_ascii_case(name))
}

/// Headers whose whole value is a credential.
const CREDENTIAL_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "apikey",
    "x-shopify-access-token",
];

/// Custom headers carry credentials under every name imaginable; these words in a
/// name are taken to mean one (`x-webhook-secret`, `x-auth-token`, `x-hub-signature`).
const CREDENTIAL_NAME_PARTS: &[&str] = &["secret", "token", "signature", "password"];

/// The Standard Webhooks headers for one attempt, plus `content-type` and
/// `user-agent`. `msg_id` must stay the same across retries of a delivery (it is
/// what receivers deduplicate on); `timestamp_secs` is the attempt's own time.
pub fn webhook_headers(
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
    secrets: &[&str],
    content_type: &str,
) -> Result<Vec<(String, String)>, SigningError> {
    let signature = signing::sign(secrets, msg_id, timestamp_secs, body)?;
    Ok(vec![
        (HEADER_ID.to_owned(), msg_id.to_owned()),
        (HEADER_TIMESTAMP.to_owned(), timestamp_secs.to_string()),
        (HEADER_SIGNATURE.to_owned(), signature),
        ("content-type".to_owned(), content_type.to_owned()),
        ("user-agent".to_owned(), USER_AGENT.to_owned()),
    ])
}

/// Headers as they may be stored and shown: names lowercased, credentials
/// replaced by [`REDACTED`], repeated headers joined with `, `.
pub fn redact_headers(headers: &[(String, String)]) -> BTreeMap<String, String> {
    let mut redacted: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let name = name.to_ascii_lowercase();
        let shown = if is_credential(&name) {
            REDACTED
        } else {
            value.as_str()
        };
        redacted
            .entry(name)
            .and_modify(|existing| {
                if shown != REDACTED {
                    existing.push_str(", ");
                    existing.push_str(shown);
                }
            })
            .or_insert_with(|| shown.to_owned());
    }
    redacted
}

/// Whether a header of this name carries a credential (`authorization`,
/// `x-api-key`, `x-webhook-secret`, …), whatever its case.
pub fn is_credential_header(name: &str) -> bool {
    is_credential(&name.to_ascii_lowercase())
}

/// Query parameters whose names suggest a credential (`token`, `api_key`,
/// `sig`, `access_token`, …) besides those of [`CREDENTIAL_NAME_PARTS`].
const CREDENTIAL_QUERY_PARTS: &[&str] = &["key", "sig", "auth", "code"];

/// `url` as it may be shown and recorded: the values of query parameters
/// whose names suggest a credential replaced by [`REDACTED`].
pub fn redact_url(url: &str) -> String {
    let Some((base, query)) = url.split_once('?') else {
        return url.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((query, fragment)) => (query, Some(fragment)),
        None => (query, None),
    };
    let parameters: Vec<String> = query
        .split('&')
        .map(|parameter| match parameter.split_once('=') {
            Some((name, _)) if is_credential_parameter(name) => format!("{name}={REDACTED}"),
            _ => parameter.to_owned(),
        })
        .collect();
    let mut redacted = format!("{base}?{}", parameters.join("&"));
    if let Some(fragment) = fragment {
        redacted.push('#');
        redacted.push_str(fragment);
    }
    redacted
}

fn is_credential_parameter(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    is_credential(&name)
        || CREDENTIAL_QUERY_PARTS
            .iter()
            .any(|part| name.contains(part))
}

fn is_credential(lowercase_name: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&lowercase_name)
        || CREDENTIAL_NAME_PARTS
            .iter()
            .any(|part| lowercase_name.contains(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_query_strings_are_redacted() {
        let cases = [
            ("https://hooks.example/in", "https://hooks.example/in"),
            (
                "https://hooks.example/in?token=abc&team=ops",
                "https://hooks.example/in?token=[redacted]&team=ops",
            ),
            (
                "https://x.example/a?api_key=1&sig=2&code=3&page=4#top",
                "https://x.example/a?api_key=[redacted]&sig=[redacted]&code=[redacted]&page=4#top",
            ),
            ("https://x.example/a?flag", "https://x.example/a?flag"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown);
        }
        for protocol in ["Host", "content-length", "Transfer-Encoding", "upgrade"] {
            assert!(is_protocol_header(protocol), "{protocol}");
        }
        assert!(!is_protocol_header("x-source"));
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn webhook_headers_carry_id_timestamp_signature_and_identity() {
        let secret = signing::generate_secret();
        let headers = webhook_headers(
            "evt_1",
            1_700_000_000,
            b"{}",
            &[&secret],
            "application/json",
        )
        .unwrap();
        let names: Vec<&str> = headers.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(
            names,
            [
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
                "content-type",
                "user-agent"
            ]
        );
        assert_eq!(headers[0].1, "evt_1");
        assert_eq!(headers[1].1, "1700000000");
        assert!(headers[2].1.starts_with("v1,"));
        assert_eq!(headers[4].1, format!("Weft/{}", env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn credentials_are_redacted_and_the_rest_kept() {
        let cases = [
            ("Authorization", "Bearer abc", REDACTED),
            ("proxy-authorization", "Basic abc", REDACTED),
            ("Cookie", "session=abc", REDACTED),
            ("X-API-Key", "k", REDACTED),
            ("x-shopify-access-token", "shpat_1", REDACTED),
            ("x-webhook-secret", "s", REDACTED),
            ("X-Auth-Token", "t", REDACTED),
            ("webhook-signature", "v1,abc", REDACTED),
            ("content-type", "application/json", "application/json"),
            ("webhook-id", "evt_1", "evt_1"),
            ("user-agent", "Weft/0.1.0", "Weft/0.1.0"),
        ];
        for (name, value, expected) in cases {
            let redacted = redact_headers(&pairs(&[(name, value)]));
            assert_eq!(
                redacted.get(&name.to_ascii_lowercase()).map(String::as_str),
                Some(expected),
                "{name}"
            );
        }
    }

    #[test]
    fn repeated_headers_are_joined() {
        let redacted = redact_headers(&pairs(&[
            ("accept", "a"),
            ("Accept", "b"),
            ("set-cookie", "x=1"),
            ("set-cookie", "y=2"),
        ]));
        assert_eq!(redacted["accept"], "a, b");
        assert_eq!(redacted["set-cookie"], REDACTED);
    }
}
