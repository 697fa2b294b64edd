//! How Weft proves who it is to a receiver, as an endpoint stores it. Turning
//! it into headers (fetching OAuth tokens, signing JWTs) is
//! `delivery::credentials`' job.

use serde::{Deserialize, Serialize};
use std::fmt;

/// One of the ways a receiver authenticates Weft's requests. Every variant
/// holds a secret, which the API shows only as a hint and the store keeps
/// sealed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum EndpointAuth {
    /// A key in a header of the receiver's choosing: `X-API-Key: …`.
    ApiKey { header: String, value: String },
    /// HTTP Basic: `Authorization: Basic base64(username:password)`.
    Basic { username: String, password: String },
    /// A token the receiver issued: `Authorization: Bearer …`. The product
    /// sheet's "OAuth 2.0, Token: …" is this.
    #[serde(alias = "oauth2", alias = "oauth_2_0")]
    Bearer { token: String },
    /// OAuth 2.0 client credentials (RFC 6749 §4.4): Weft fetches an access
    /// token from `token_url`, keeps it until shortly before it expires, and
    /// fetches a new one when the receiver answers 401.
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials {
        token_url: String,
        client_id: String,
        client_secret: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        scopes: Vec<String>,
        /// Sent as the `audience` parameter, for servers that want one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        audience: Option<String>,
        /// How the client authenticates to the token URL.
        #[serde(default)]
        client_authentication: ClientAuthentication,
    },
    /// A JWT signed for every request, expiring shortly after.
    Jwt {
        algorithm: JwtAlgorithm,
        /// The HS256 shared secret, or the RS256 private key (PEM).
        key: String,
        /// Claims to carry (`iss`, `sub`, `aud`, anything); Weft adds `iat`,
        /// `exp` and a unique `jti`.
        #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
        claims: serde_json::Map<String, serde_json::Value>,
        #[serde(default = "default_jwt_lifetime")]
        expires_in_seconds: u32,
        /// `authorization` (as `Bearer <jwt>`) unless set; any other header
        /// carries the bare token.
        #[serde(default = "default_jwt_header")]
        header: String,
    },
}

/// How an OAuth client presents its secret to the token URL.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthentication {
    /// HTTP Basic, as RFC 6749 asks every server to accept.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    RequestBody,
}

/// How a per-request JWT is signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    HS256,
    RS256,
}

fn default_jwt_lifetime() -> u32 {
    60
}

fn default_jwt_header() -> String {
    "authorization".to_owned()
}

impl EndpointAuth {
    /// The name of the variant, as the API spells it.
    pub fn kind(&self) -> &'static str {
        match self {
            EndpointAuth::ApiKey { .. } => "api_key",
            EndpointAuth::Basic { .. } => "basic",
            EndpointAuth::Bearer { .. } => "bearer",
            EndpointAuth::OAuth2ClientCredentials { .. } => "oauth2_client_credentials",
            EndpointAuth::Jwt { .. } => "jwt",
        }
    }

    /// The header the credential travels in, lowercased.
    pub fn header_name(&self) -> String {
        match self {
            EndpointAuth::ApiKey { header, .. } | EndpointAuth::Jwt { header, .. } => {
                header.to_ascii_lowercase()
            }
            _ => "authorization".to_owned(),
        }
    }

    /// The secret fields, by name: what the API hides and a PUT may keep.
    pub fn secrets_mut(&mut self) -> Vec<(&'static str, &mut String)> {
        match self {
            EndpointAuth::ApiKey { value, .. } => vec![("value", value)],
            EndpointAuth::Basic { password, .. } => vec![("password", password)],
            EndpointAuth::Bearer { token } => vec![("token", token)],
            EndpointAuth::OAuth2ClientCredentials { client_secret, .. } => {
                vec![("client_secret", client_secret)]
            }
            EndpointAuth::Jwt { key, .. } => vec![("key", key)],
        }
    }
}

/// Only the kind: every variant holds a secret, and logs must not.
impl fmt::Debug for EndpointAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EndpointAuth::{}", self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_product_sheets_spellings_are_read() {
        let oauth: EndpointAuth =
            serde_json::from_value(json!({ "type": "oauth2", "token": "t0k" })).unwrap();
        assert_eq!(
            oauth,
            EndpointAuth::Bearer {
                token: "t0k".into()
            }
        );
        let jwt: EndpointAuth =
            serde_json::from_value(json!({ "type": "jwt", "algorithm": "HS256", "key": "k" }))
                .unwrap();
        assert_eq!(jwt.header_name(), "authorization");
        let EndpointAuth::Jwt {
            expires_in_seconds, ..
        } = jwt
        else {
            unreachable!()
        };
        assert_eq!(expires_in_seconds, 60);
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        let extra = serde_json::from_value::<EndpointAuth>(
            json!({ "type": "bearer", "token": "t", "tokn": "t" }),
        );
        assert!(extra.unwrap_err().to_string().contains("tokn"));
        let kind = serde_json::from_value::<EndpointAuth>(json!({ "type": "kerberos" }));
        assert!(kind.unwrap_err().to_string().contains("kerberos"));
    }

    #[test]
    fn debug_shows_no_secret() {
        let auth = EndpointAuth::Basic {
            username: "weft".into(),
            password: "hunter2hunter2".into(),
        };
        assert_eq!(format!("{auth:?}"), "EndpointAuth::basic");
    }
}
