//! The TLS configuration of a delivery: the receiver's certificate verified
//! against the system's trusted roots, or against an endpoint's own CA bundle;
//! a client certificate for mutual TLS; or, where the operator allows it for
//! development, no verification at all.

use crate::model::EndpointTls;
use hyper_rustls::ConfigBuilderExt as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;

/// Invalid TLS settings: the field at fault (under `tls.`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTls {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidTls {
    InvalidTls {
        field,
        reason: reason.into(),
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client configuration `tls` asks for (ALPN left to the connector).
pub(super) fn client_config(tls: &EndpointTls) -> Result<ClientConfig, InvalidTls> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|error| invalid("verify", error.to_string()))?;
    let builder = if !tls.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else if let Some(pem) = &tls.ca_certificates {
        builder.with_root_certificates(roots(pem)?)
    } else {
        builder
            .with_native_roots()
            .map_err(|error| invalid("ca_certificates", format!("the system's roots: {error}")))?
    };
    match (&tls.client_certificate, &tls.client_key) {
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(certificate), Some(key)) => {
            let chain = certificates(certificate)
                .map_err(|reason| invalid("client_certificate", reason))?;
            // The key is never quoted: it is a secret.
            let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| {
                invalid(
                    "client_key",
                    "not a private key in PEM (PKCS#8, PKCS#1 or SEC1)",
                )
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|error| {
                invalid(
                    "client_key",
                    format!("does not fit the certificate: {error}"),
                )
            })
        }
        (Some(_), None) => Err(invalid("client_key", "a client certificate needs its key")),
        (None, Some(_)) => Err(invalid(
            "client_certificate",
            "a client key needs its certificate",
        )),
    }
}

/// Checks `tls` before it is stored, by building the configuration it makes.
pub fn check(tls: &EndpointTls) -> Result<(), InvalidTls> {
    client_config(tls).map(drop)
}

fn certificates(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("not PEM certificates: {error}"))?;
    if chain.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(chain)
}

fn roots(pem: &str) -> Result<RootCertStore, InvalidTls> {
    let mut roots = RootCertStore::empty();
    for certificate in certificates(pem).map_err(|reason| invalid("ca_certificates", reason))? {
        roots.add(certificate).map_err(|error| {
            invalid(
                "ca_certificates",
                format!("not a usable CA certificate: {error}"),
            )
        })?;
    }
    Ok(roots)
}

/// Accepts whatever certificate the receiver shows, but still checks that the
/// handshake is signed by it (so the connection is encrypted, though to whom
/// is unknown).
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            certificate,
            signature,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        let cases = [
            (
                EndpointTls {
                    ca_certificates: Some("not pem".into()),
                    ..EndpointTls::default()
                },
                "ca_certificates",
            ),
            (
                EndpointTls {
                    client_certificate: Some("-----BEGIN CERTIFICATE-----".into()),
                    ..EndpointTls::default()
                },
                "client_key",
            ),
            (
                EndpointTls {
                    client_key: Some("secret".into()),
                    ..EndpointTls::default()
                },
                "client_certificate",
            ),
        ];
        for (tls, field) in cases {
            let error = check(&tls).unwrap_err();
            assert_eq!(error.field, field, "{}", error.reason);
        }
        check(&EndpointTls::default()).unwrap();
        check(&EndpointTls {
            verify: false,
            ..EndpointTls::default()
        })
        .unwrap();
    }
}
