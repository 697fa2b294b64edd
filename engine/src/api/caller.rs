//! Who a request acts for: every `/v1` route sits behind [`authenticate`], and
//! each handler names the access it needs with a [`Caller`] extractor.
//!
//! Refusals: no or bad credential → 401 with `WWW-Authenticate: Bearer`; a key
//! used from outside its networks, or a role without the access → 403. Objects
//! of other tenants are simply not found (404), as handlers only ever query
//! the caller's tenant.

use super::{ApiError, AppState};
use crate::auth::{Access, AuthError, Credential, Principal};
use crate::model::{AuditEntry, AuditId, AuditOutcome, TenantId, now_millis};
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};

/// Authenticates the request and records its [`Principal`] for the handler.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = peer_of(request.extensions());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default());
    match state.auth.authenticate(authorization, peer).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => {
            let (method, path) = (request.method().clone(), request.uri().path().to_owned());
            refused(&state, refusal, &method, &path, peer).await
        }
    }
}

/// The address a request came from, when the server was told it.
fn peer_of(extensions: &axum::http::Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip())
}

async fn refused(
    state: &AppState,
    refusal: AuthError,
    method: &axum::http::Method,
    path: &str,
    peer: Option<IpAddr>,
) -> Response {
    // A known key used wrongly goes in its tenant's audit log; a credential
    // that names no tenant Weft can trust has no log to go in, only the trace.
    if let AuthError::Revoked { principal } | AuthError::NetworkRefused { principal, .. } = &refusal
    {
        let detail = format!("{refusal}: {method} {path}");
        record_refusal(state, principal, peer, detail).await;
    }
    match refusal {
        AuthError::NetworkRefused { .. } => {
            tracing::warn!(%method, path, reason = %refusal, "request refused");
            ApiError::forbidden(refusal.to_string()).into_response()
        }
        AuthError::Unavailable(detail) => ApiError::unavailable(detail).into_response(),
        refusal => {
            tracing::warn!(%method, path, reason = %refusal, "request not authenticated");
            let mut response = ApiError::unauthorized(refusal.to_string()).into_response();
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// The access a handler needs, as a type: `Caller<Configure>`.
pub trait Needs: Send + Sync + 'static {
    const ACCESS: Access;
}

macro_rules! access_marker {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name;

        impl Needs for $name {
            const ACCESS: Access = Access::$name;
        }
    };
}

access_marker!(
    /// Reads the tenant's objects: viewers, integration admins, admins.
    Read
);
access_marker!(
    /// Publishes events: publishers, admins.
    Publish
);
access_marker!(
    /// Changes configuration or replays: integration admins, admins.
    Configure
);
access_marker!(
    /// Manages keys: admins.
    Administer
);

/// The authenticated caller of a handler that needs access `N`.
pub struct Caller<N: Needs> {
    pub tenant: TenantId,
    pub principal: Principal,
    /// The address the request came from.
    pub source: Option<IpAddr>,
    needs: PhantomData<N>,
}

impl<N: Needs> Caller<N> {
    /// The audit entry of this caller's `action` on `object`, with the object
    /// as the API shows it before and after.
    pub fn audit(
        &self,
        action: &str,
        object: impl ToString,
        before: Option<Value>,
        after: Option<Value>,
    ) -> AuditEntry {
        AuditEntry {
            object: Some(object.to_string()),
            before,
            after,
            ..entry(&self.principal, self.source, action, AuditOutcome::Done)
        }
    }
}

fn entry(
    principal: &Principal,
    source: Option<IpAddr>,
    action: &str,
    outcome: AuditOutcome,
) -> AuditEntry {
    AuditEntry {
        tenant: principal.tenant.clone(),
        id: AuditId::next(),
        at: now_millis(),
        actor: actor(&principal.credential),
        role: principal.role,
        action: action.to_owned(),
        object: None,
        outcome,
        detail: None,
        source: source.map(|ip| ip.to_canonical().to_string()),
        before: None,
        after: None,
    }
}

/// How the audit log names a credential: `key_…`, or `token:<subject>`.
pub fn actor(credential: &Credential) -> String {
    match credential {
        Credential::ApiKey(id) => id.to_string(),
        Credential::Token {
            subject: Some(subject),
        } => format!("token:{subject}"),
        Credential::Token { subject: None } => "token".to_owned(),
    }
}

/// Records that `principal` was refused, saying why; a failure to record is
/// logged, and the request is refused all the same.
async fn record_refusal(
    state: &AppState,
    principal: &Principal,
    source: Option<IpAddr>,
    detail: String,
) {
    let entry = AuditEntry {
        detail: Some(detail),
        ..entry(principal, source, "access.refused", AuditOutcome::Refused)
    };
    if let Err(error) = state.store.record_audit(&entry).await {
        tracing::error!(%error, "cannot record a refused access in the audit log");
    }
}

impl<N: Needs> FromRequestParts<AppState> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("this route is not behind authentication"))?;
        let source = peer_of(&parts.extensions);
        if !N::ACCESS.granted_to(principal.role) {
            let refusal = format!(
                "the {} role may not {}",
                principal.role,
                N::ACCESS.describe()
            );
            tracing::warn!(
                method = %parts.method,
                path = parts.uri.path(),
                credential = %principal.credential,
                reason = refusal,
                "request refused"
            );
            let detail = format!("{refusal}: {} {}", parts.method, parts.uri.path());
            record_refusal(state, &principal, source, detail).await;
            return Err(ApiError::forbidden(refusal));
        }
        Ok(Self {
            tenant: principal.tenant.clone(),
            principal,
            source,
            needs: PhantomData,
        })
    }
}
