//! Who Weft is to a receiver: an endpoint's [`EndpointAuth`] turned into the
//! headers of one request.
//!
//! Static credentials (API key, Basic, bearer) are copied into their header.
//! OAuth 2.0 client credentials are exchanged for an access token at the token
//! URL, through the same guarded client as deliveries (so the SSRF policy, the
//! no-redirect rule and the endpoint's TLS settings hold for token URLs too);
//! the token is cached until
//! shortly before it expires, concurrent deliveries share one fetch, and a
//! delivery refused with 401 drops it so that the retry fetches a new one. A
//! JWT is signed for each request.

use super::client::{HttpSender, OutboundRequest};
use crate::model::{ClientAuthentication, EndpointAuth, EndpointTls, JwtAlgorithm};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use oauth2::TokenResponse as _;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// The longest a token request may take.
const TOKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A token is dropped this long before its server says it expires, so that no
/// request carries a token that expires on the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

/// How long a token whose server gave no `expires_in` is kept. A 401 drops it
/// sooner.
const UNSTATED_LIFETIME: Duration = Duration::from_secs(300);

/// The longest a per-request JWT may live.
pub const MAX_JWT_LIFETIME_SECONDS: u32 = 3600;

/// The authentication of one request could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the OAuth token request to {url} failed: {reason}")]
    Token { url: String, reason: String },
    /// The token URL is an address the network policy refuses.
    #[error("the OAuth token request to {url} failed: {reason}")]
    Refused { url: String, reason: String },
    #[error("cannot sign the JWT: {0}")]
    Jwt(String),
}

impl CredentialError {
    /// Whether trying again cannot help until an operator or administrator
    /// changes something.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            CredentialError::Refused { .. } | CredentialError::Jwt(_)
        )
    }
}

/// An invalid [`EndpointAuth`]: the field at fault (under `auth.`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAuth {
    pub field: &'static str,
    pub reason: String,
}

/// Makes the authentication headers of requests; one per process, shared by
/// the workers so that they share OAuth tokens.
#[derive(Clone)]
pub struct Credentials {
    sender: HttpSender,
    /// Access tokens by the digest of everything that obtains them, so that a
    /// changed secret or scope is a different entry.
    tokens: moka::future::Cache<[u8; 32], CachedToken>,
}

#[derive(Clone)]
struct CachedToken {
    access_token: Arc<str>,
    keep_for: Duration,
}

/// Expires each token after its own lifetime.
struct TokenLifetime;

impl moka::Expiry<[u8; 32], CachedToken> for TokenLifetime {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        token: &CachedToken,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(token.keep_for)
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("cached_tokens", &self.tokens.entry_count())
            .finish()
    }
}

impl Credentials {
    /// Fetches OAuth tokens through `sender`.
    pub fn new(sender: HttpSender) -> Self {
        Self {
            sender,
            tokens: moka::future::Cache::builder()
                .max_capacity(10_000)
                .expire_after(TokenLifetime)
                .build(),
        }
    }

    /// The headers that authenticate one request under `auth`; a token
    /// request, if one is needed, goes out with `tls` (the endpoint's).
    pub async fn headers(
        &self,
        auth: &EndpointAuth,
        tls: Option<&EndpointTls>,
    ) -> Result<Vec<(String, String)>, CredentialError> {
        let authorization = |value: String| vec![("authorization".to_owned(), value)];
        Ok(match auth {
            EndpointAuth::ApiKey { header, value } => vec![(header.clone(), value.clone())],
            EndpointAuth::Basic { username, password } => authorization(format!(
                "Basic {}",
                STANDARD.encode(format!("{username}:{password}"))
            )),
            EndpointAuth::Bearer { token } => authorization(format!("Bearer {token}")),
            EndpointAuth::OAuth2ClientCredentials { .. } => {
                let token = self.access_token(auth, tls).await?;
                authorization(format!("Bearer {token}"))
            }
            EndpointAuth::Jwt { header, .. } => {
                let token = signed_jwt(auth, crate::model::now_millis() / 1000)?;
                if header.eq_ignore_ascii_case("authorization") {
                    authorization(format!("Bearer {token}"))
                } else {
                    vec![(header.clone(), token)]
                }
            }
        })
    }

    /// Drops the access token of `auth` after a receiver refused it with 401.
    /// True if `auth` fetches tokens, so that sending again may succeed.
    pub async fn forget_token(&self, auth: &EndpointAuth) -> bool {
        if !matches!(auth, EndpointAuth::OAuth2ClientCredentials { .. }) {
            return false;
        }
        self.tokens.invalidate(&grant_digest(auth)).await;
        true
    }

    /// The cached access token of `auth`, or a new one. Deliveries that ask
    /// at once share one token request.
    async fn access_token(
        &self,
        auth: &EndpointAuth,
        tls: Option<&EndpointTls>,
    ) -> Result<Arc<str>, CredentialError> {
        let fetch = async {
            let token = self.fetch_token(auth, tls).await?;
            let lifetime = token.expires_in().unwrap_or(UNSTATED_LIFETIME);
            Ok::<_, CredentialError>(CachedToken {
                access_token: token.access_token().secret().as_str().into(),
                keep_for: lifetime.saturating_sub(EXPIRY_MARGIN.min(lifetime / 2)),
            })
        };
        self.tokens
            .try_get_with(grant_digest(auth), fetch)
            .await
            .map(|token| token.access_token)
            .map_err(|error| (*error).clone())
    }

    async fn fetch_token(
        &self,
        auth: &EndpointAuth,
        tls: Option<&EndpointTls>,
    ) -> Result<oauth2::basic::BasicTokenResponse, CredentialError> {
        let EndpointAuth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            scopes,
            audience,
            client_authentication,
        } = auth
        else {
            unreachable!("only client credentials fetch tokens");
        };
        let failed = |reason: String| CredentialError::Token {
            url: token_url.clone(),
            reason,
        };
        let refused_or_failed = |error: TokenRequestError| match &error {
            oauth2::RequestTokenError::Request(io)
                if io.kind() == std::io::ErrorKind::PermissionDenied =>
            {
                CredentialError::Refused {
                    url: token_url.clone(),
                    reason: io.to_string(),
                }
            }
            _ => failed(token_error(&error)),
        };
        let url = oauth2::TokenUrl::new(token_url.clone()).map_err(|e| failed(e.to_string()))?;
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new(client_id.clone()))
            .set_client_secret(oauth2::ClientSecret::new(client_secret.clone()))
            .set_token_uri(url)
            .set_auth_type(match client_authentication {
                ClientAuthentication::Basic => oauth2::AuthType::BasicAuth,
                ClientAuthentication::RequestBody => oauth2::AuthType::RequestBody,
            });
        let mut request = client
            .exchange_client_credentials()
            .add_scopes(scopes.iter().cloned().map(oauth2::Scope::new));
        if let Some(audience) = audience {
            request = request.add_extra_param("audience", audience.clone());
        }
        request
            .request_async(&TokenClient {
                sender: &self.sender,
                tls,
            })
            .await
            .map_err(refused_or_failed)
    }
}

/// The token requests' HTTP client: Weft's guarded one. A type of its own,
/// rather than a closure, so that its future is known to be `Send` (the
/// workers run deliveries on spawned tasks).
struct TokenClient<'s> {
    sender: &'s HttpSender,
    tls: Option<&'s EndpointTls>,
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenClient<'_> {
    type Error = std::io::Error;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, std::io::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(exchange(self.sender, self.tls.cloned(), request))
    }
}

/// One token request through the guarded client.
async fn exchange(
    sender: &HttpSender,
    tls: Option<EndpointTls>,
    request: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, std::io::Error> {
    let (parts, body) = request.into_parts();
    let result = sender
        .send(OutboundRequest {
            method: parts.method.to_string(),
            url: parts.uri.to_string(),
            headers: parts
                .headers
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), value)
                })
                .collect(),
            body: body.into(),
            timeout: TOKEN_REQUEST_TIMEOUT,
            tls,
        })
        .await;
    match result.error {
        Some(refusal @ super::SendError::Refused(_)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                refusal.to_string(),
            ));
        }
        Some(error) => return Err(std::io::Error::other(error.to_string())),
        None => {}
    }
    let mut response = http::Response::builder().status(result.status.unwrap_or(500));
    for (name, value) in &result.headers {
        response = response.header(name, value);
    }
    response.body(result.body).map_err(std::io::Error::other)
}

type TokenRequestError =
    oauth2::RequestTokenError<std::io::Error, oauth2::basic::BasicErrorResponse>;

/// What went wrong with a token request, in the server's words where it gave
/// some. Never the request itself: it carries the client secret.
fn token_error<RE: std::error::Error + 'static>(
    error: &oauth2::RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
) -> String {
    match error {
        oauth2::RequestTokenError::ServerResponse(response) => {
            let mut reason = format!("the server answered {}", response.error());
            if let Some(description) = response.error_description() {
                reason.push_str(&format!(" ({description})"));
            }
            reason
        }
        oauth2::RequestTokenError::Request(error) => error.to_string(),
        oauth2::RequestTokenError::Parse(error, body) => format!(
            "the answer is not a token response ({error}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
        oauth2::RequestTokenError::Other(reason) => reason.clone(),
    }
}

/// Identifies a grant by everything that obtains its token.
fn grant_digest(auth: &EndpointAuth) -> [u8; 32] {
    let parameters = serde_json::to_vec(auth).unwrap_or_default();
    Sha256::digest(parameters).into()
}

/// A JWT for one request at `now` (unix seconds): the configured claims plus
/// `iat`, `exp` and a unique `jti`.
fn signed_jwt(auth: &EndpointAuth, now: i64) -> Result<String, CredentialError> {
    let EndpointAuth::Jwt {
        algorithm,
        key,
        claims,
        expires_in_seconds,
        ..
    } = auth
    else {
        unreachable!("only JWT auth signs tokens");
    };
    let mut claims = claims.clone();
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + i64::from(*expires_in_seconds)).into());
    claims.insert(
        "jti".into(),
        ulid::Ulid::new().to_string().to_lowercase().into(),
    );
    let (key, algorithm) = encoding_key(*algorithm, key).map_err(CredentialError::Jwt)?;
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)
        .map_err(|error| CredentialError::Jwt(error.to_string()))
}

fn encoding_key(
    algorithm: JwtAlgorithm,
    key: &str,
) -> Result<(jsonwebtoken::EncodingKey, jsonwebtoken::Algorithm), String> {
    match algorithm {
        JwtAlgorithm::HS256 => Ok((
            jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
            jsonwebtoken::Algorithm::HS256,
        )),
        JwtAlgorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes())
            .map(|key| (key, jsonwebtoken::Algorithm::RS256))
            .map_err(|error| format!("the key is not an RSA private key in PEM: {error}")),
    }
}

/// Checks `auth` before it is stored: header names and values that HTTP can
/// carry, a token URL that is absolute, keys that can sign.
pub fn check(auth: &EndpointAuth) -> Result<(), InvalidAuth> {
    let invalid = |field: &'static str, reason: String| Err(InvalidAuth { field, reason });
    let empty = |field: &'static str, value: &str| {
        if value.is_empty() {
            invalid(field, "must not be empty".into())
        } else {
            Ok(())
        }
    };
    match auth {
        EndpointAuth::ApiKey { header, value } => {
            check_header_name("header", header)?;
            empty("value", value)?;
            check_header_value("value", value)
        }
        EndpointAuth::Basic { username, password } => {
            empty("username", username)?;
            if username.contains(':') {
                return invalid("username", "a Basic username cannot contain ':'".into());
            }
            check_header_value("username", username)?;
            check_header_value("password", password)
        }
        EndpointAuth::Bearer { token } => {
            empty("token", token)?;
            check_header_value("token", token)
        }
        EndpointAuth::OAuth2ClientCredentials {
            token_url,
            client_id,
            client_secret,
            ..
        } => {
            let uri: http::Uri = token_url.parse().map_err(|e| InvalidAuth {
                field: "token_url",
                reason: format!("{token_url:?} is not a URL: {e}"),
            })?;
            if !matches!(uri.scheme_str(), Some("https" | "http"))
                || uri.host().is_none_or(str::is_empty)
            {
                return invalid(
                    "token_url",
                    format!("{token_url:?} must be an absolute https:// URL"),
                );
            }
            empty("client_id", client_id)?;
            empty("client_secret", client_secret)
        }
        EndpointAuth::Jwt {
            algorithm,
            key,
            expires_in_seconds,
            header,
            ..
        } => {
            check_header_name("header", header)?;
            if *expires_in_seconds == 0 || *expires_in_seconds > MAX_JWT_LIFETIME_SECONDS {
                return invalid(
                    "expires_in_seconds",
                    format!("the lifetime is 1 to {MAX_JWT_LIFETIME_SECONDS} seconds"),
                );
            }
            if *algorithm == JwtAlgorithm::HS256 && key.len() < 32 {
                return invalid("key", "an HS256 key must be at least 32 bytes long".into());
            }
            encoding_key(*algorithm, key)
                .map(drop)
                .map_err(|reason| InvalidAuth {
                    field: "key",
                    reason,
                })
        }
    }
}

fn check_header_name(field: &'static str, name: &str) -> Result<(), InvalidAuth> {
    http::HeaderName::from_bytes(name.as_bytes())
        .map(drop)
        .map_err(|_| InvalidAuth {
            field,
            reason: format!("{name:?} is not a valid header name"),
        })
}

/// The value is not echoed: it is a credential.
fn check_header_value(field: &'static str, value: &str) -> Result<(), InvalidAuth> {
    http::HeaderValue::from_str(value)
        .map(drop)
        .map_err(|_| InvalidAuth {
            field,
            reason: "contains characters a header cannot carry".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn auth(value: serde_json::Value) -> EndpointAuth {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_jwt_carries_the_configured_claims_and_a_short_life() {
        let secret = "a shared secret of at least 32 bytes!";
        let jwt = auth(json!({
            "type": "jwt", "algorithm": "HS256", "key": secret,
            "claims": { "iss": "weft", "aud": "crm" }, "expires_in_seconds": 90
        }));
        let first = signed_jwt(&jwt, 1_700_000_000).unwrap();
        let second = signed_jwt(&jwt, 1_700_000_000).unwrap();
        assert_ne!(first, second, "each request gets its own jti");

        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&["crm"]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            &first,
            &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["iss"], "weft");
        assert_eq!(claims["iat"], 1_700_000_000);
        assert_eq!(claims["exp"], 1_700_000_090);
    }

    #[test]
    fn bad_auth_names_the_field() {
        let cases = [
            (
                json!({ "type": "api_key", "header": "X API", "value": "k" }),
                "header",
            ),
            (
                json!({ "type": "api_key", "header": "x-api-key", "value": "" }),
                "value",
            ),
            (
                json!({ "type": "basic", "username": "a:b", "password": "p" }),
                "username",
            ),
            (json!({ "type": "bearer", "token": "two\nlines" }), "token"),
            (
                json!({ "type": "oauth2_client_credentials", "token_url": "/token",
                        "client_id": "c", "client_secret": "s" }),
                "token_url",
            ),
            (
                json!({ "type": "jwt", "algorithm": "HS256", "key": "short" }),
                "key",
            ),
            (
                json!({ "type": "jwt", "algorithm": "RS256", "key": "-----BEGIN NOTHING-----" }),
                "key",
            ),
            (
                json!({ "type": "jwt", "algorithm": "HS256", "key": "k".repeat(32),
                        "expires_in_seconds": 86400 }),
                "expires_in_seconds",
            ),
        ];
        for (value, field) in cases {
            let error = check(&auth(value.clone())).unwrap_err();
            assert_eq!(error.field, field, "{value}: {}", error.reason);
        }
        check(&auth(
            json!({ "type": "basic", "username": "weft", "password": "" }),
        ))
        .unwrap();
    }

    #[tokio::test]
    async fn static_credentials_go_in_their_headers() {
        let credentials =
            Credentials::new(HttpSender::new(super::super::NetworkPolicy::default()).unwrap());
        let cases = [
            (
                json!({ "type": "api_key", "header": "X-API-Key", "value": "k1" }),
                ("X-API-Key", "k1"),
            ),
            (
                json!({ "type": "basic", "username": "weft", "password": "pw" }),
                ("authorization", "Basic d2VmdDpwdw=="),
            ),
            (
                json!({ "type": "bearer", "token": "t0k" }),
                ("authorization", "Bearer t0k"),
            ),
        ];
        for (value, (name, expected)) in cases {
            let headers = credentials.headers(&auth(value), None).await.unwrap();
            assert_eq!(headers, [(name.to_owned(), expected.to_owned())]);
        }
    }
}
