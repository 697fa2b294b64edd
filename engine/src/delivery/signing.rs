//! Standard Webhooks signatures of `{id}.{timestamp}.{body}`: `v1,<base64
//! HMAC-SHA256>` with a shared secret, or `v1a,<base64 ed25519 signature>`
//! with a signing key, which receivers check with its public key alone.
//!
//! Secrets look like `whsec_<base64 of 24 to 64 random bytes>`; signing keys
//! like `whsk_<base64 of the 32-byte seed and the 32-byte public key>`, and
//! their public keys like `whpk_<base64 of 32 bytes>`. Several secrets
//! sign the same request during a rotation: the header then carries one `v1,…`
//! per secret, space-separated, and a receiver accepts the request if any of them
//! verifies with the secret it knows.
//!
//! [`verify`] is the receiver's side. Weft's tests use it, and it documents for
//! users exactly what their receiver has to check.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use rand::RngCore;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::Sha256;
use std::time::Duration;

/// Every signing secret starts with this, so that it is recognisable wherever it
/// is pasted (and caught by secret scanners).
pub const SECRET_PREFIX: &str = "whsec_";

/// Signing keys (ed25519) start with this, their public keys with the next.
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// The version tag of an HMAC-SHA256 signature in `webhook-signature`.
const SIGNATURE_VERSION: &str = "v1";
/// The version tag of an ed25519 signature.
const ASYMMETRIC_VERSION: &str = "v1a";
const ED25519_BYTES: usize = 32;

/// Random bytes in a generated secret: 256 bits, HMAC-SHA256's own key strength.
const GENERATED_SECRET_BYTES: usize = 32;

/// The Standard Webhooks specification asks for keys of 24 to 64 bytes: shorter
/// keys are guessable, longer ones add nothing to HMAC-SHA256 and are probably
/// not what the user meant to paste.
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;

/// The header names of the scheme.
pub const HEADER_ID: &str = "webhook-id";
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// Standard base64, accepting secrets and signatures with or without padding:
/// both forms circulate in the libraries receivers use.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

type HmacSha256 = Hmac<Sha256>;

/// A secret or message id that cannot sign. Messages never include the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("no signing secret given: at least one `{SECRET_PREFIX}…` secret is needed")]
    NoSecret,
    #[error(
        "signing secret #{index} does not start with `{SECRET_PREFIX}` (a shared secret) \
         or `{SIGNING_KEY_PREFIX}` (an ed25519 signing key)"
    )]
    MissingPrefix { index: usize },
    #[error("signing key #{index} is not an ed25519 key: {reason}")]
    BadSigningKey { index: usize, reason: String },
    #[error("signing secret #{index} is not valid base64 after `{SECRET_PREFIX}`: {reason}")]
    NotBase64 { index: usize, reason: String },
    #[error(
        "signing secret #{index} decodes to {bytes} bytes; a secret must be \
         {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes"
    )]
    WrongLength { index: usize, bytes: usize },
    #[error("message id {0:?} cannot be signed: it must be non-empty and contain no `.`")]
    InvalidMessageId(String),
}

/// Why a receiver refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the `{0}` header is missing or not text")]
    MissingHeader(&'static str),
    #[error("`{HEADER_TIMESTAMP}` is {0:?}, not a unix time in seconds")]
    InvalidTimestamp(String),
    #[error(
        "`{HEADER_TIMESTAMP}` {timestamp} is {skew_secs} s away from now ({now}), \
         beyond the tolerance of {tolerance_secs} s"
    )]
    OutsideTolerance {
        timestamp: i64,
        now: i64,
        skew_secs: u64,
        tolerance_secs: u64,
    },
    #[error("the receiver's secret is unusable: {0}")]
    Secret(#[from] SigningError),
    #[error("no signature in `{HEADER_SIGNATURE}` matches the body")]
    NoMatchingSignature,
    #[error("the public key is not `{PUBLIC_KEY_PREFIX}` and 32 bytes of base64")]
    BadPublicKey,
}

/// A new random secret, `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", BASE64.encode(key))
}

/// A new ed25519 signing key, `whsk_` + base64 of its seed and public key.
pub fn generate_signing_key() -> String {
    let mut seed = [0u8; ED25519_BYTES];
    rand::rng().fill_bytes(&mut seed);
    let pair = Ed25519KeyPair::from_seed_unchecked(&seed).expect("any 32 bytes are a seed");
    let mut encoded = seed.to_vec();
    encoded.extend_from_slice(pair.public_key().as_ref());
    format!("{SIGNING_KEY_PREFIX}{}", BASE64.encode(encoded))
}

/// The public key of a signing key (`whpk_…`), which receivers verify with;
/// `None` for a shared secret.
pub fn public_key(secret: &str) -> Option<String> {
    match decode_key(1, secret).ok()? {
        Key::Ed25519(pair) => Some(format!(
            "{PUBLIC_KEY_PREFIX}{}",
            BASE64.encode(pair.public_key().as_ref())
        )),
        Key::Hmac(_) => None,
    }
}

/// Checks that `secret` can sign, without signing anything: for accepting a
/// secret a user supplies.
pub fn validate_secret(secret: &str) -> Result<(), SigningError> {
    decode_key(1, secret).map(drop)
}

/// The `webhook-signature` value for one message: one `v1,<base64>` per secret,
/// space-separated, in the order given (the current secret first, by convention).
pub fn sign(
    secrets: &[&str],
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
) -> Result<String, SigningError> {
    if secrets.is_empty() {
        return Err(SigningError::NoSecret);
    }
    // A `.` in the id would make `{id}.{timestamp}.{body}` ambiguous: two
    // different (id, timestamp) pairs could sign the same bytes.
    if msg_id.is_empty() || msg_id.contains('.') {
        return Err(SigningError::InvalidMessageId(msg_id.to_owned()));
    }
    let mut signatures = Vec::with_capacity(secrets.len());
    for (position, secret) in secrets.iter().enumerate() {
        signatures.push(match decode_key(position + 1, secret)? {
            Key::Hmac(key) => {
                let tag = signed_content_mac(&key, msg_id, timestamp_secs, body).finalize();
                format!("{SIGNATURE_VERSION},{}", BASE64.encode(tag.into_bytes()))
            }
            Key::Ed25519(pair) => {
                let content = signed_content(msg_id, timestamp_secs, body);
                format!(
                    "{ASYMMETRIC_VERSION},{}",
                    BASE64.encode(pair.sign(&content).as_ref())
                )
            }
        });
    }
    Ok(signatures.join(" "))
}

/// Verifies a request as a receiver would: the timestamp is within `tolerance`
/// of `now_secs` (a replayed request is refused), and at least one signature
/// of `webhook-signature` matches: a `v1` one, compared in constant time, for a
/// shared secret (`whsec_…`); a `v1a` one for a public key (`whpk_…`).
pub fn verify(
    secret: &str,
    headers: &http::HeaderMap,
    body: &[u8],
    now_secs: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let text_header = |name: &'static str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .ok_or(VerifyError::MissingHeader(name))
    };
    let msg_id = text_header(HEADER_ID)?;
    let timestamp_text = text_header(HEADER_TIMESTAMP)?;
    let signatures = text_header(HEADER_SIGNATURE)?;

    let timestamp: i64 = timestamp_text
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp(timestamp_text.to_owned()))?;
    let skew_secs = now_secs.abs_diff(timestamp);
    if skew_secs > tolerance.as_secs() {
        return Err(VerifyError::OutsideTolerance {
            timestamp,
            now: now_secs,
            skew_secs,
            tolerance_secs: tolerance.as_secs(),
        });
    }

    let candidates = |wanted: &'static str| {
        signatures
            .split(' ')
            .filter_map(|entry| entry.split_once(','))
            .filter(move |(version, _)| *version == wanted)
            .filter_map(|(_, encoded)| BASE64.decode(encoded).ok())
    };
    let matches = if let Some(encoded) = secret.strip_prefix(PUBLIC_KEY_PREFIX) {
        let public = BASE64
            .decode(encoded)
            .ok()
            .filter(|key| key.len() == ED25519_BYTES)
            .ok_or(VerifyError::BadPublicKey)?;
        let public = UnparsedPublicKey::new(&ED25519, public);
        let content = signed_content(msg_id, timestamp, body);
        candidates(ASYMMETRIC_VERSION).any(|candidate| public.verify(&content, &candidate).is_ok())
    } else {
        let key = decode_secret(1, secret)?;
        let expected = signed_content_mac(&key, msg_id, timestamp, body);
        // `verify_slice` compares in constant time.
        candidates(SIGNATURE_VERSION)
            .any(|candidate| expected.clone().verify_slice(&candidate).is_ok())
    };
    if matches {
        Ok(())
    } else {
        Err(VerifyError::NoMatchingSignature)
    }
}

/// What is signed: `{msg_id}.{timestamp}.{body}`.
fn signed_content(msg_id: &str, timestamp_secs: i64, body: &[u8]) -> Vec<u8> {
    let mut content = format!("{msg_id}.{timestamp_secs}.").into_bytes();
    content.extend_from_slice(body);
    content
}

/// A key that signs.
enum Key {
    Hmac(Vec<u8>),
    Ed25519(Ed25519KeyPair),
}

/// The key in `secret`, the `index`-th (from 1) of a list, for messages.
fn decode_key(index: usize, secret: &str) -> Result<Key, SigningError> {
    let Some(encoded) = secret.strip_prefix(SIGNING_KEY_PREFIX) else {
        return decode_secret(index, secret).map(Key::Hmac);
    };
    let bad = |reason: String| SigningError::BadSigningKey { index, reason };
    let bytes = BASE64
        .decode(encoded)
        .map_err(|error| bad(format!("not base64: {error}")))?;
    let pair = match bytes.len() {
        ED25519_BYTES => Ed25519KeyPair::from_seed_unchecked(&bytes),
        64 => Ed25519KeyPair::from_seed_and_public_key(&bytes[..32], &bytes[32..]),
        other => {
            return Err(bad(format!(
                "it decodes to {other} bytes, not a 32-byte seed (and its 32-byte public key)"
            )));
        }
    };
    pair.map(Key::Ed25519)
        .map_err(|error| bad(error.to_string()))
}

/// The HMAC of `{msg_id}.{timestamp}.{body}`, ready to finalize or verify.
fn signed_content_mac(key: &[u8], msg_id: &str, timestamp_secs: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_secs.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The key bytes of `secret`, the `index`-th (from 1) of a list, for messages.
fn decode_secret(index: usize, secret: &str) -> Result<Vec<u8>, SigningError> {
    let encoded = secret
        .strip_prefix(SECRET_PREFIX)
        .ok_or(SigningError::MissingPrefix { index })?;
    let key = BASE64
        .decode(encoded)
        .map_err(|error| SigningError::NotBase64 {
            index,
            reason: error.to_string(),
        })?;
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&key.len()) {
        return Err(SigningError::WrongLength {
            index,
            bytes: key.len(),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    const TOLERANCE: Duration = Duration::from_secs(300);

    /// The test vector the Standard Webhooks reference libraries all check.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HEADER_ID, HeaderValue::from_str(id).unwrap());
        headers.insert(HEADER_TIMESTAMP, HeaderValue::from(timestamp));
        headers.insert(HEADER_SIGNATURE, HeaderValue::from_str(signature).unwrap());
        headers
    }

    #[test]
    fn reproduces_the_specification_test_vector() {
        let signature = sign(&[SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY).unwrap();
        assert_eq!(signature, SPEC_SIGNATURE);
        let received = headers(SPEC_ID, SPEC_TIMESTAMP, SPEC_SIGNATURE);
        assert_eq!(
            verify(SPEC_SECRET, &received, SPEC_BODY, SPEC_TIMESTAMP, TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn generated_secrets_are_random_and_sign() {
        let first = generate_secret();
        let second = generate_secret();
        assert_ne!(first, second);
        assert!(first.starts_with(SECRET_PREFIX));
        assert_eq!(validate_secret(&first), Ok(()));
        let signature = sign(&[&first], "evt_1", 1_700_000_000, b"{}").unwrap();
        let received = headers("evt_1", 1_700_000_000, &signature);
        assert_eq!(
            verify(&first, &received, b"{}", 1_700_000_000, TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn rotation_signs_with_every_secret_and_each_verifies() {
        let (old, new) = (generate_secret(), generate_secret());
        let signature = sign(&[&new, &old], "evt_1", 1_700_000_000, b"{}").unwrap();
        assert_eq!(signature.split(' ').count(), 2);
        let received = headers("evt_1", 1_700_000_000, &signature);
        for secret in [&new, &old] {
            assert_eq!(
                verify(secret, &received, b"{}", 1_700_000_000, TOLERANCE),
                Ok(())
            );
        }
        let stranger = generate_secret();
        assert_eq!(
            verify(&stranger, &received, b"{}", 1_700_000_000, TOLERANCE),
            Err(VerifyError::NoMatchingSignature)
        );
    }

    #[test]
    fn receivers_refuse_what_does_not_match() {
        let now = SPEC_TIMESTAMP;
        let cases: [(&str, HeaderMap, &[u8], i64, VerifyError); 5] = [
            (
                "tampered body",
                headers(SPEC_ID, now, SPEC_SIGNATURE),
                br#"{"test": 2432232315}"#,
                now,
                VerifyError::NoMatchingSignature,
            ),
            (
                "other id",
                headers("msg_other", now, SPEC_SIGNATURE),
                SPEC_BODY,
                now,
                VerifyError::NoMatchingSignature,
            ),
            (
                "replayed later",
                headers(SPEC_ID, now, SPEC_SIGNATURE),
                SPEC_BODY,
                now + 301,
                VerifyError::OutsideTolerance {
                    timestamp: now,
                    now: now + 301,
                    skew_secs: 301,
                    tolerance_secs: 300,
                },
            ),
            (
                "from the future",
                headers(SPEC_ID, now, SPEC_SIGNATURE),
                SPEC_BODY,
                now - 301,
                VerifyError::OutsideTolerance {
                    timestamp: now,
                    now: now - 301,
                    skew_secs: 301,
                    tolerance_secs: 300,
                },
            ),
            (
                "only an unknown version",
                headers(
                    SPEC_ID,
                    now,
                    "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                ),
                SPEC_BODY,
                now,
                VerifyError::NoMatchingSignature,
            ),
        ];
        for (case, received, body, at, expected) in cases {
            assert_eq!(
                verify(SPEC_SECRET, &received, body, at, TOLERANCE),
                Err(expected),
                "{case}"
            );
        }
        assert_eq!(
            verify(SPEC_SECRET, &HeaderMap::new(), SPEC_BODY, now, TOLERANCE),
            Err(VerifyError::MissingHeader(HEADER_ID))
        );
    }

    #[test]
    fn an_ed25519_key_signs_v1a_and_receivers_verify_with_its_public_key() {
        let key = generate_signing_key();
        assert!(key.starts_with(SIGNING_KEY_PREFIX));
        assert_ne!(key, generate_signing_key());
        let public = public_key(&key).unwrap();
        assert!(public.starts_with(PUBLIC_KEY_PREFIX));
        assert_eq!(public_key(SPEC_SECRET), None);
        // Beside a shared secret, as during a rotation from one to the other.
        let signature = sign(&[&key, SPEC_SECRET], SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY).unwrap();
        let (asymmetric, symmetric) = signature.split_once(' ').unwrap();
        assert!(asymmetric.starts_with("v1a,"), "{signature}");
        assert_eq!(symmetric, SPEC_SIGNATURE);
        let signed = headers(SPEC_ID, SPEC_TIMESTAMP, &signature);
        assert_eq!(
            verify(&public, &signed, SPEC_BODY, SPEC_TIMESTAMP, TOLERANCE),
            Ok(())
        );
        assert_eq!(
            verify(SPEC_SECRET, &signed, SPEC_BODY, SPEC_TIMESTAMP, TOLERANCE),
            Ok(())
        );
        // The public key alone proves nothing about another body, or another key.
        assert_eq!(
            verify(&public, &signed, b"{}", SPEC_TIMESTAMP, TOLERANCE),
            Err(VerifyError::NoMatchingSignature)
        );
        let other = public_key(&generate_signing_key()).unwrap();
        assert_eq!(
            verify(&other, &signed, SPEC_BODY, SPEC_TIMESTAMP, TOLERANCE),
            Err(VerifyError::NoMatchingSignature)
        );
        // A key given as its seed alone signs the same.
        let seed = BASE64.decode(&key[SIGNING_KEY_PREFIX.len()..]).unwrap();
        let short = format!("{SIGNING_KEY_PREFIX}{}", BASE64.encode(&seed[..32]));
        assert_eq!(public_key(&short), Some(public));
        assert!(matches!(
            validate_secret("whsk_AAAA"),
            Err(SigningError::BadSigningKey { index: 1, .. })
        ));
    }

    #[test]
    fn a_valid_signature_among_garbage_is_found() {
        let header = format!("v1,bm9wZQ== garbage v1a,xyz {SPEC_SIGNATURE}");
        let received = headers(SPEC_ID, SPEC_TIMESTAMP, &header);
        assert_eq!(
            verify(SPEC_SECRET, &received, SPEC_BODY, SPEC_TIMESTAMP, TOLERANCE),
            Ok(())
        );
    }

    #[test]
    fn bad_secrets_are_named_without_being_shown() {
        let short = format!("{SECRET_PREFIX}{}", BASE64.encode([7u8; 8]));
        let cases = [
            (vec![], SigningError::NoSecret),
            (
                vec!["sk_live_abc"],
                SigningError::MissingPrefix { index: 1 },
            ),
            (
                vec![SPEC_SECRET, "whsec_not base64!"],
                SigningError::NotBase64 {
                    index: 2,
                    reason: "Invalid symbol 32, offset 3.".into(),
                },
            ),
            (
                vec![short.as_str()],
                SigningError::WrongLength { index: 1, bytes: 8 },
            ),
        ];
        for (secrets, expected) in cases {
            let error = sign(&secrets, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY).unwrap_err();
            assert!(!error.to_string().contains("sk_live"), "{error}");
            assert_eq!(error, expected, "{secrets:?}");
        }
        assert_eq!(
            sign(&[SPEC_SECRET], "evt.1", SPEC_TIMESTAMP, SPEC_BODY),
            Err(SigningError::InvalidMessageId("evt.1".into()))
        );
    }
}
