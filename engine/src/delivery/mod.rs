//! How a request leaves Weft: the HTTP client, Standard Webhooks signing and
//! headers, and the retry rules. It knows nothing of SQL or wasm: callers hand it
//! a request and get back what happened and what to do next.
//!
//! One attempt goes: [`prepare`] (the endpoint's and the plugin's parts of the
//! request), [`Credentials::headers`] (who Weft is to the receiver) and
//! [`signed`] (signed with the endpoint's secrets) →
//! [`HttpSender::send`] → [`classify`] the [`SendResult`] → on
//! [`Verdict::Retry`], [`next_attempt_delay`] says when, or that attempts are
//! exhausted. [`attempt_record`] is what the attempt history stores. Before
//! all that, [`Throttle::places`] gives the delivery its place among the
//! process's deliveries in flight, and [`Throttle::admit`] lets it go now or
//! says how long it waits for the endpoint's rate and concurrency limits.

mod client;
mod credentials;
mod guard;
mod headers;
mod outbound;
mod request;
mod retry;
mod signing;
mod throttle;
mod tls;

#[cfg(test)]
mod loopback_tests;

pub use client::{ClientBuildError, HttpSender, OutboundRequest, SendError, SendResult};
pub use credentials::check as check_auth;
pub use credentials::{CredentialError, Credentials, InvalidAuth, MAX_JWT_LIFETIME_SECONDS};
pub use guard::NetworkPolicy;
pub use headers::{
    REDACTED, USER_AGENT, is_credential_header, is_protocol_header, redact_headers, redact_url,
    webhook_headers,
};
pub use outbound::Outbound;
pub use request::{Prepared, Sent, attempt_record, prepare, signed};
pub use retry::{MAX_RETRY_AFTER, Verdict, classify, next_attempt_delay, retry_after};
pub use signing::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, PUBLIC_KEY_PREFIX, SECRET_PREFIX,
    SIGNING_KEY_PREFIX, SigningError, VerifyError, generate_secret, generate_signing_key,
    public_key, sign, validate_secret, verify,
};
pub use throttle::{
    Admitted, DEFAULT_ENDPOINT_CONCURRENCY, DEFAULT_MAX_IN_FLIGHT, Places, Throttle, Wait,
};
pub use tls::{InvalidTls, check as check_tls};
