//! The checks the read handlers share, in the order of docs/contract.md: the table name from the
//! path and the token (uploads go through [`crate::admission::admit_upload`]).

use crate::auth::{AuthError, Claims};
use crate::error::{IngressError, Result};
use crate::state::App;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, header};
use tarn_catalog::schemas::is_valid_table_name;
use tarn_core::audit::{Actor, set_request_actor};

/// The table name from the path, checked against `^[a-z][a-z0-9_]{0,62}$`.
pub(crate) fn table_name(name: std::result::Result<String, PathRejection>) -> Result<String> {
    match name {
        Ok(n) if is_valid_table_name(&n) => Ok(n),
        _ => Err(IngressError::InvalidTableName),
    }
}

/// One of the upload permits, or 503 `overloaded` when every one is taken (load is shed before
/// any work, token checks included; never queued).
pub(crate) fn upload_permit(app: &App) -> Result<tokio::sync::OwnedSemaphorePermit> {
    app.permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| IngressError::Overloaded)
}

/// Every raw value of the request's `Idempotency-Key` header (none: a request without a key).
pub(crate) fn idempotency_keys(headers: &HeaderMap) -> Vec<&[u8]> {
    headers
        .get_all(crate::idempotency::HEADER)
        .iter()
        .map(|v| v.as_bytes())
        .collect()
}

/// Verifies the token of `Authorization` (raw, or `Bearer <jwt>`).
pub(crate) async fn authenticate(app: &App, headers: &HeaderMap) -> Result<Claims> {
    let raw = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let raw = raw
        .to_str()
        .map_err(|_| AuthError::Malformed("authorization header is not ascii"))?
        .trim();
    let token = match raw.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => raw,
    };
    if token.is_empty() {
        return Err(AuthError::Missing.into());
    }
    let claims = app.s.verifier.verify(token).await.map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        IngressError::Auth(e)
    })?;
    // the rest of the request's store calls (and its refusal, if any) are the caller's
    set_request_actor(Actor::WebIdentity {
        sub: claims.sub.clone(),
        username: claims.username.clone(),
        issuer: claims.iss.clone(),
    });
    Ok(claims)
}
