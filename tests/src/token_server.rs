//! A real OAuth 2.0 token endpoint on loopback, as a receiver's authorization
//! server would run it: it issues `token-1`, `token-2`, … for the client
//! credentials grant and records every token request.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// One token request as the server saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The `authorization` header, if any (client authentication by Basic).
    pub authorization: Option<String>,
    /// The form parameters.
    pub form: HashMap<String, String>,
}

struct Shared {
    requests: Mutex<Vec<TokenRequest>>,
    client_id: String,
    client_secret: String,
    expires_in: u64,
}

/// A token server listening on `address`; stops when dropped.
pub struct TokenServer {
    /// `http://<address>:<port>/token`.
    pub url: String,
    shared: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl TokenServer {
    /// Issues tokens valid for `expires_in` seconds to the client `client_id`
    /// with `client_secret`, presented by Basic or in the form body; anyone
    /// else gets 401 `invalid_client`.
    pub async fn start(
        address: IpAddr,
        client_id: &str,
        client_secret: &str,
        expires_in: u64,
    ) -> Self {
        Self::serve(address, client_id, client_secret, expires_in, None).await
    }

    /// Like [`TokenServer::start`], over HTTPS with `tls`; `url` is
    /// `https://<address>:<port>/token`.
    pub async fn start_tls(
        address: IpAddr,
        client_id: &str,
        client_secret: &str,
        tls: rustls::ServerConfig,
    ) -> Self {
        Self::serve(address, client_id, client_secret, 3600, Some(tls)).await
    }

    async fn serve(
        address: IpAddr,
        client_id: &str,
        client_secret: &str,
        expires_in: u64,
        tls: Option<rustls::ServerConfig>,
    ) -> Self {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            client_id: client_id.to_owned(),
            client_secret: client_secret.to_owned(),
            expires_in,
        });
        let app = Router::new()
            .route("/token", post(issue))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind((address, 0)).await.unwrap();
        let local = listener.local_addr().unwrap();
        let (url, server) = match tls {
            Some(config) => (
                format!("https://{local}/token"),
                crate::pki::serve_tls(listener, app, config, || {}),
            ),
            None => (
                format!("http://{local}/token"),
                tokio::spawn(async move {
                    axum::serve(listener, app).await.unwrap();
                }),
            ),
        };
        Self {
            url,
            shared,
            server,
        }
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        self.shared.requests.lock().unwrap().clone()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn issue(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let issued = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(TokenRequest {
            authorization: authorization.clone(),
            form: form.clone(),
        });
        requests.len()
    };
    let basic = format!(
        "Basic {}",
        base64_encode(&format!("{}:{}", shared.client_id, shared.client_secret))
    );
    let by_basic = authorization.as_deref() == Some(basic.as_str());
    let by_body = form.get("client_id") == Some(&shared.client_id)
        && form.get("client_secret") == Some(&shared.client_secret);
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        let error = serde_json::json!({ "error": "unsupported_grant_type" });
        return (StatusCode::BAD_REQUEST, axum::Json(error)).into_response();
    }
    if !(by_basic || by_body) {
        let error = serde_json::json!({
            "error": "invalid_client",
            "error_description": "client authentication failed"
        });
        return (StatusCode::UNAUTHORIZED, axum::Json(error)).into_response();
    }
    axum::Json(serde_json::json!({
        "access_token": format!("token-{issued}"),
        "token_type": "Bearer",
        "expires_in": shared.expires_in,
    }))
    .into_response()
}

fn base64_encode(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
