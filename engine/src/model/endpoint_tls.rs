//! How Weft checks a receiver's certificate and which one it shows, as an
//! endpoint stores it. Building the TLS configuration is
//! `delivery::client`'s job.

use serde::{Deserialize, Serialize};
use std::fmt;

/// An endpoint's TLS settings; without them, the receiver's certificate is
/// verified against the system's trusted roots and Weft shows none.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointTls {
    /// PEM certificates of the authorities that sign the receiver's
    /// certificate, trusted instead of the system's roots (a private PKI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_certificates: Option<String>,
    /// The PEM certificate chain Weft presents for mutual TLS, with
    /// `client_key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The PEM private key of `client_certificate`: a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    /// `false` accepts any certificate: for development only, and only where
    /// the operator allows it.
    #[serde(default = "verify_by_default", skip_serializing_if = "is_true")]
    pub verify: bool,
}

/// Verifying, with the system's roots, showing no certificate.
impl Default for EndpointTls {
    fn default() -> Self {
        Self {
            ca_certificates: None,
            client_certificate: None,
            client_key: None,
            verify: true,
        }
    }
}

fn verify_by_default() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

/// Never the key.
impl fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointTls")
            .field("custom_ca", &self.ca_certificates.is_some())
            .field("client_certificate", &self.client_certificate.is_some())
            .field("verify", &self.verify)
            .finish()
    }
}
