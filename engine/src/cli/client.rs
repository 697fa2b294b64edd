//! The CLI's HTTP client for a running `weft serve`.

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct ApiClient {
    base: String,
    api_key: Option<String>,
    http: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl ApiClient {
    pub fn new(base: &str, api_key: Option<String>) -> Result<Self> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .context("cannot load the system's root certificates")?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            api_key,
            http: Client::builder(TokioExecutor::new()).build(https),
        })
    }

    /// Sends a request; a non-2xx answer is an error carrying the problem's detail.
    pub async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        if let Some(key) = &self.api_key {
            request = request.header("authorization", format!("Bearer {key}"));
        }
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()?
            .unwrap_or_default();
        let response = self
            .http
            .request(request.body(Full::new(Bytes::from(bytes)))?)
            .await
            .with_context(|| format!("cannot reach Weft at {}", self.base))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        let value: Value = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&body).unwrap_or(Value::Null)
        };
        if !status.is_success() {
            let detail = value["detail"].as_str().unwrap_or("no detail");
            match value["field"].as_str() {
                Some(field) => bail!("{method} {path}: {status}: {detail} (field {field})"),
                None => bail!("{method} {path}: {status}: {detail}"),
            }
        }
        Ok(value)
    }
}
