use crate::Error;
use crate::bindings::types;
use serde::Serialize;

/// A request for Weft to deliver.
///
/// Without [`Request::url`] it goes to the subscription's endpoint; with a path
/// (`/services/data/v61.0/…`) it goes to that path on the endpoint's host. Weft adds
/// the signature, the `webhook-id` and authentication headers itself.
///
/// ```
/// use weft_sdk::Request;
///
/// let request = Request::json(&serde_json::json!({ "text": "Order SO-1001 shipped" }))?
///     .method("PATCH")
///     .url("/orders/SO-1001")
///     .header("x-source", "weft");
/// # Ok::<(), weft_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Request {
    method: Option<String>,
    url: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request whose body is `body` serialised as JSON, with
    /// `content-type: application/json`.
    pub fn json<T: Serialize + ?Sized>(body: &T) -> Result<Self, Error> {
        let body = serde_json::to_vec(body)
            .map_err(|e| Error::Internal(format!("cannot serialise request body: {e}")))?;
        Ok(Self::bytes(body).header("content-type", "application/json"))
    }

    /// A request with a raw body and no content type.
    pub fn bytes(body: impl Into<Vec<u8>>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// Sets the HTTP method (the endpoint's, POST by default, otherwise).
    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    /// Sets an absolute URL or a path joined to the endpoint's URL.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    #[doc(hidden)]
    pub fn many_into_wit(requests: Vec<Self>) -> Vec<types::Request> {
        requests
            .into_iter()
            .map(|r| types::Request {
                method: r.method,
                url: r.url,
                headers: r.headers,
                body: r.body,
            })
            .collect()
    }
}
