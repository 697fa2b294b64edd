//! Who is calling and what they may do: API keys, bearer tokens of a trusted
//! issuer, roles and network allow-lists.
//!
//! Knows no HTTP framework: the API hands it the bearer credential and the
//! peer's address, and gets back a [`Principal`] (tenant, role, credential) or
//! an [`AuthError`] that says why not.

mod api_keys;
mod ingest;
mod networks;
mod tokens;

pub use api_keys::{InvalidKey, IssuedKey, digest, issue, issue_from};
pub use ingest::{DEFAULT_INGEST_PER_SECOND, IngestLimits};
pub use networks::{AllowedNetworks, parse_networks};
pub use tokens::{TokenIssuer, TokenKey};

use crate::model::{ApiKey, ApiKeyId, Role, TenantId};
use crate::store::Store;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long a node trusts what it read about a key. A key revoked on another
/// node of the same database stops working there within this time; on the
/// node that revoked it, at once.
const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// What a request needs to be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read configuration, events and the delivery history.
    Read,
    /// Publish events.
    Publish,
    /// Change endpoints, subscriptions, plugins and event types; replay.
    Configure,
    /// Manage API keys and read the audit log.
    Administer,
}

impl Access {
    /// Whether `role` grants this access.
    pub fn granted_to(self, role: Role) -> bool {
        matches!(
            (self, role),
            (_, Role::Admin)
                | (Access::Read | Access::Configure, Role::IntegrationAdmin)
                | (Access::Publish, Role::Publisher)
                | (Access::Read, Role::Viewer)
        )
    }

    /// What the access lets one do, for refusals: "the viewer role may not {this}".
    pub fn describe(self) -> &'static str {
        match self {
            Access::Read => "read this tenant's objects",
            Access::Publish => "publish events",
            Access::Configure => "change this tenant's configuration",
            Access::Administer => "manage API keys or read the audit log",
        }
    }
}

/// What proved the caller's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Credential {
    ApiKey(ApiKeyId),
    /// A bearer token of the configured issuer, with its `sub` claim if any.
    Token {
        subject: Option<String>,
    },
}

impl std::fmt::Display for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::ApiKey(id) => write!(f, "API key {id}"),
            Credential::Token {
                subject: Some(subject),
            } => write!(f, "token of {subject}"),
            Credential::Token { subject: None } => f.write_str("token"),
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub tenant: TenantId,
    pub role: Role,
    pub credential: Credential,
    /// Publish requests a second it may make; `None`: the server's default.
    pub ingest_per_second: Option<u32>,
}

/// Why a request is not authenticated.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no credential: send `Authorization: Bearer <API key or token>`")]
    Missing,
    #[error("the Authorization header is not a bearer credential")]
    NotBearer,
    #[error("the API key is not valid")]
    UnknownKey,
    #[error("{} was revoked", principal.credential)]
    Revoked { principal: Principal },
    #[error("the bearer token is refused: {0}")]
    BadToken(String),
    /// The key is valid, but not from where the request came.
    #[error("{} may not be used from {}", principal.credential, from.map_or("an unknown address".to_owned(), |ip| ip.to_canonical().to_string()))]
    NetworkRefused {
        principal: Principal,
        from: Option<IpAddr>,
    },
    #[error("cannot check the credential: {0}")]
    Unavailable(String),
}

/// A key as the cache keeps it: with its networks parsed once.
struct KnownKey {
    key: ApiKey,
    networks: AllowedNetworks,
}

/// Turns credentials into principals.
pub struct Authenticator {
    store: Store,
    /// Digest → the key it belongs to, or `None` for a digest of no key (so a
    /// flood of bad keys does not reach the database for each request).
    keys: moka::future::Cache<String, Option<Arc<KnownKey>>>,
    issuer: Option<TokenIssuer>,
}

impl Authenticator {
    pub fn new(store: Store, issuer: Option<TokenIssuer>) -> Self {
        Self {
            store,
            keys: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(KEY_CACHE_TTL)
                .build(),
            issuer,
        }
    }

    /// The principal behind `authorization` (the header's value), calling from `peer`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Principal, AuthError> {
        let authorization = authorization.ok_or(AuthError::Missing)?;
        let credential = bearer(authorization).ok_or(AuthError::NotBearer)?;
        if credential.starts_with(api_keys::PREFIX) {
            return self.api_key(credential, peer).await;
        }
        match &self.issuer {
            Some(issuer) => issuer.verify(credential).map_err(AuthError::BadToken),
            None if tokens::looks_like_token(credential) => Err(AuthError::BadToken(
                "this server accepts no bearer tokens: no token issuer is configured".into(),
            )),
            None => Err(AuthError::UnknownKey),
        }
    }

    async fn api_key(&self, key: &str, peer: Option<IpAddr>) -> Result<Principal, AuthError> {
        let digest = digest(key);
        let store = &self.store;
        let known = self
            .keys
            .try_get_with(digest.clone(), async {
                let key = store.api_key_by_hash(&digest).await?;
                Ok::<_, crate::store::StoreError>(key.map(|key| {
                    // Stored networks were checked when the key was made.
                    let networks = AllowedNetworks::parse(&key.allowed_networks)
                        .unwrap_or_else(|_| AllowedNetworks::nowhere());
                    Arc::new(KnownKey { key, networks })
                }))
            })
            .await
            .map_err(|error| AuthError::Unavailable(error.to_string()))?
            .ok_or(AuthError::UnknownKey)?;
        let key = &known.key;
        let principal = Principal {
            tenant: key.tenant.clone(),
            role: key.role,
            credential: Credential::ApiKey(key.id.clone()),
            ingest_per_second: key.ingest_per_second,
        };
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked { principal });
        }
        if !known.networks.permits(peer) {
            return Err(AuthError::NetworkRefused {
                principal,
                from: peer,
            });
        }
        Ok(principal)
    }

    /// Forgets what this node knows of the key with digest `key_hash`, after
    /// it changed (revoked, say).
    pub async fn forget(&self, key_hash: &str) {
        self.keys.invalidate(key_hash).await;
    }
}

/// The credential of an `Authorization: Bearer …` header value.
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, credential) = authorization.trim().split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_is_granted_what_it_is_for() {
        use Access::*;
        let granted = |role| {
            [Read, Publish, Configure, Administer]
                .into_iter()
                .filter(|access| access.granted_to(role))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            granted(Role::Admin),
            vec![Read, Publish, Configure, Administer]
        );
        assert_eq!(granted(Role::IntegrationAdmin), vec![Read, Configure]);
        assert_eq!(granted(Role::Publisher), vec![Publish]);
        assert_eq!(granted(Role::Viewer), vec![Read]);
    }

    #[test]
    fn only_bearer_credentials_are_read() {
        assert_eq!(bearer("Bearer weft_abc"), Some("weft_abc"));
        assert_eq!(bearer("bearer  weft_abc "), Some("weft_abc"));
        assert_eq!(bearer("Basic dXNlcjpwdw=="), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("weft_abc"), None);
    }
}
