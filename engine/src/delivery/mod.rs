//! How a request leaves Weft: the HTTP client, Standard Webhooks signing and
//! headers, and the retry rules. It knows nothing of SQL or wasm: callers hand it
//! a request and get back what happened and what to do next.

mod headers;
mod signing;

pub use headers::{REDACTED, USER_AGENT, redact_headers, webhook_headers};
pub use signing::{
    HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SECRET_PREFIX, SigningError, VerifyError,
    generate_secret, sign, validate_secret, verify,
};
