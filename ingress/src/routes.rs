//! The small routes: `/health`, the dev issuer's JWKS, and the JSON 404/405 fallbacks.

use crate::error::{IngressError, Result};
use crate::state::App;
use axum::extract::State;
use axum::http::{Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tarn_catalog::schemas::is_valid_table_name;

pub(crate) async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

pub(crate) async fn jwks(State(app): State<App>) -> Result<Response> {
    let issuer = app
        .s
        .issuer
        .as_ref()
        .ok_or_else(|| IngressError::NotFound("no dev token issuer on this platform".into()))?;
    Ok((
        [(header::CACHE_CONTROL, "public, max-age=300")],
        axum::Json(issuer.jwks()),
    )
        .into_response())
}

/// Unknown routes. A path under `/table/` whose table part is no table name says so (e.g.
/// `/table/a/b/object`), so a client learns what to fix.
pub(crate) async fn not_found(uri: Uri) -> IngressError {
    if let Some(rest) = uri.path().strip_prefix("/table/") {
        let name = match rest.find("/object") {
            Some(i) => &rest[..i],
            None => rest.split('/').next().unwrap_or(""),
        };
        let decoded = percent_encoding::percent_decode_str(name).decode_utf8();
        if !decoded.is_ok_and(|n| is_valid_table_name(&n)) {
            return IngressError::InvalidTableName;
        }
    }
    IngressError::NotFound("no such route; see the ingress api: POST /table/{name}/object, POST /table/{name}/uploads, GET /table/{name}/object/{id}[/content], GET /health".into())
}

pub(crate) async fn method_not_allowed() -> IngressError {
    IngressError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn fallback_names_bad_table_paths() {
        let code = |p: &'static str| async move { not_found(Uri::from_static(p)).await.code() };
        assert_eq!(code("/table/a/b/object").await, "invalid_table_name");
        assert_eq!(code("/table/%C3%A9/object").await, "invalid_table_name");
        assert_eq!(code("/table/Upper").await, "invalid_table_name");
        assert_eq!(code("/table/events/objects").await, "not_found");
        assert_eq!(code("/nothing").await, "not_found");
    }
}
