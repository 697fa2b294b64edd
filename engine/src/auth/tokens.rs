//! Bearer tokens (JWT) of an issuer the operator trusts: signature, audience,
//! issuer and expiry are checked, and two claims name the tenant and the role.

use super::{Credential, Principal};
use crate::model::{Role, TenantId};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// The key that verifies the issuer's signatures.
#[derive(Clone)]
pub enum TokenKey {
    /// A shared secret (HS256).
    Hs256(Vec<u8>),
    /// The issuer's RSA public key, PEM-encoded (RS256).
    Rs256Pem(Vec<u8>),
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenKey::Hs256(_) => f.write_str("Hs256(…)"),
            TokenKey::Rs256Pem(_) => f.write_str("Rs256Pem(…)"),
        }
    }
}

/// A trusted token issuer.
pub struct TokenIssuer {
    key: DecodingKey,
    validation: Validation,
    tenant_claim: String,
    role_claim: String,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("tenant_claim", &self.tenant_claim)
            .field("role_claim", &self.role_claim)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// Trusts tokens signed with `key`, meant for `audience` and, when given,
    /// issued by `issuer`; `tenant_claim` and `role_claim` name the claims
    /// that carry the caller's tenant and role.
    pub fn new(
        key: &TokenKey,
        audience: &str,
        issuer: Option<&str>,
        tenant_claim: &str,
        role_claim: &str,
    ) -> Result<Self, String> {
        let (key, algorithm) = match key {
            TokenKey::Hs256(secret) => {
                if secret.len() < 32 {
                    return Err("an HS256 secret must be at least 32 bytes long".into());
                }
                (DecodingKey::from_secret(secret), Algorithm::HS256)
            }
            TokenKey::Rs256Pem(pem) => (
                DecodingKey::from_rsa_pem(pem)
                    .map_err(|error| format!("not an RSA public key in PEM form: {error}"))?,
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.leeway = 30;
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
            validation.required_spec_claims.insert("iss".into());
        }
        Ok(Self {
            key,
            validation,
            tenant_claim: tenant_claim.to_owned(),
            role_claim: role_claim.to_owned(),
        })
    }

    /// The principal `token` speaks for, or why it is refused.
    pub fn verify(&self, token: &str) -> Result<Principal, String> {
        use jsonwebtoken::errors::ErrorKind;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation)
            .map_err(|error| match error.kind() {
                ErrorKind::ExpiredSignature => "it has expired".to_owned(),
                ErrorKind::InvalidAudience => "it is meant for another audience".to_owned(),
                ErrorKind::InvalidIssuer => "it comes from another issuer".to_owned(),
                ErrorKind::InvalidSignature => "its signature does not verify".to_owned(),
                ErrorKind::InvalidAlgorithm => {
                    format!("it is not signed with {:?}", self.validation.algorithms[0])
                }
                ErrorKind::MissingRequiredClaim(claim) => format!("it has no `{claim}` claim"),
                _ => format!("it is not a valid token: {error}"),
            })?
            .claims;
        let claim = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("it has no `{name}` claim naming a {}", kind_of(name, self)))
        };
        let tenant = TenantId::parse(claim(&self.tenant_claim)?)
            .map_err(|error| format!("claim `{}`: {error}", self.tenant_claim))?;
        let role = Role::parse(claim(&self.role_claim)?)
            .map_err(|error| format!("claim `{}`: {error}", self.role_claim))?;
        Ok(Principal {
            tenant,
            role,
            credential: Credential::Token {
                subject: claims.get("sub").and_then(Value::as_str).map(str::to_owned),
            },
            ingest_per_second: None,
        })
    }
}

fn kind_of(claim: &str, issuer: &TokenIssuer) -> &'static str {
    if claim == issuer.tenant_claim {
        "tenant"
    } else {
        "role"
    }
}

/// Whether `credential` has the shape of a JWT (three dot-separated parts).
pub(super) fn looks_like_token(credential: &str) -> bool {
    credential.split('.').count() == 3
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"a shared secret of thirty-two bytes!";

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(
            &TokenKey::Hs256(SECRET.to_vec()),
            "weft",
            Some("https://login.example"),
            "weft_tenant",
            "weft_role",
        )
        .unwrap()
    }

    fn token(claims: Value, secret: &[u8]) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn in_an_hour() -> i64 {
        crate::model::now_millis() / 1000 + 3600
    }

    fn claims() -> Value {
        json!({ "iss": "https://login.example", "aud": "weft", "exp": in_an_hour(),
                "sub": "ci-bot", "weft_tenant": "acme", "weft_role": "publisher" })
    }

    #[test]
    fn a_valid_token_names_tenant_role_and_subject() {
        let principal = issuer().verify(&token(claims(), SECRET)).unwrap();
        assert_eq!(principal.tenant.as_str(), "acme");
        assert_eq!(principal.role, Role::Publisher);
        assert_eq!(
            principal.credential,
            Credential::Token {
                subject: Some("ci-bot".into())
            }
        );
    }

    #[test]
    fn each_refusal_says_why() {
        let with = |key: &str, value: Value| {
            let mut claims = claims();
            claims[key] = value;
            claims
        };
        let without = |key: &str| {
            let mut claims = claims();
            claims.as_object_mut().unwrap().remove(key);
            claims
        };
        let cases = [
            (
                token(claims(), b"another secret of thirty-two bytes!!"),
                "signature",
            ),
            (token(with("exp", json!(1_000_000)), SECRET), "expired"),
            (
                token(with("aud", json!("someone-else")), SECRET),
                "audience",
            ),
            (
                token(with("iss", json!("https://evil.example")), SECRET),
                "issuer",
            ),
            (token(without("exp"), SECRET), "`exp`"),
            (token(without("weft_tenant"), SECRET), "`weft_tenant`"),
            (
                token(with("weft_role", json!("root")), SECRET),
                "not a role",
            ),
            (
                token(with("weft_tenant", json!("Not A Tenant")), SECRET),
                "weft_tenant",
            ),
            ("a.b.c".to_owned(), "not a valid token"),
        ];
        for (token, why) in cases {
            let refusal = issuer().verify(&token).unwrap_err();
            assert!(refusal.contains(why), "expected {why:?} in {refusal:?}");
        }
    }

    #[test]
    fn a_short_shared_secret_is_refused() {
        let error = TokenIssuer::new(&TokenKey::Hs256(b"short".to_vec()), "weft", None, "t", "r")
            .unwrap_err();
        assert!(error.contains("32 bytes"), "{error}");
    }
}
