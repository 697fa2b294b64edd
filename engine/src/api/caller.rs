//! Who a request acts for: every `/v1` route sits behind [`authenticate`], and
//! each handler names the access it needs with a [`Caller`] extractor.
//!
//! Refusals: no or bad credential → 401 with `WWW-Authenticate: Bearer`; a key
//! used from outside its networks, or a role without the access → 403. Objects
//! of other tenants are simply not found (404), as handlers only ever query
//! the caller's tenant.

use super::{ApiError, AppState};
use crate::auth::{Access, AuthError, Principal};
use crate::model::TenantId;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::marker::PhantomData;
use std::net::SocketAddr;

/// Authenticates the request and records its [`Principal`] for the handler.
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(address)| address.ip());
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or_default());
    match state.auth.authenticate(authorization, peer).await {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(refusal) => refused(refusal, &request),
    }
}

fn refused(refusal: AuthError, request: &Request) -> Response {
    let (method, path) = (request.method(), request.uri().path());
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
    needs: PhantomData<N>,
}

impl<S: Send + Sync, N: Needs> FromRequestParts<S> for Caller<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| ApiError::internal("this route is not behind authentication"))?;
        if !N::ACCESS.granted_to(principal.role) {
            tracing::warn!(
                method = %parts.method,
                path = parts.uri.path(),
                credential = %principal.credential,
                role = %principal.role,
                "request refused: role lacks access"
            );
            return Err(ApiError::forbidden(format!(
                "the {} role may not {}",
                principal.role,
                N::ACCESS.describe()
            )));
        }
        Ok(Self {
            tenant: principal.tenant.clone(),
            principal,
            needs: PhantomData,
        })
    }
}
