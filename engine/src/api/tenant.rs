//! Which tenant a request acts for.
//!
//! Until API keys carry their tenant, a request names it in the `weft-tenant`
//! header (default `default`). Handlers only ever see a [`Tenant`], so the source
//! can change without touching them.

use super::ApiError;
use crate::model::TenantId;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

pub const TENANT_HEADER: &str = "weft-tenant";
pub const DEFAULT_TENANT: &str = "default";

pub struct Tenant(pub TenantId);

impl<S: Send + Sync> FromRequestParts<S> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let name = match parts.headers.get(TENANT_HEADER) {
            None => DEFAULT_TENANT,
            Some(value) => value.to_str().map_err(|_| {
                ApiError::bad_request("invalid_tenant", "weft-tenant is not text").at(TENANT_HEADER)
            })?,
        };
        TenantId::parse(name)
            .map(Tenant)
            .map_err(|e| ApiError::bad_request("invalid_tenant", e.to_string()).at(TENANT_HEADER))
    }
}
