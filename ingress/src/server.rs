//! The router: the shared state, the routes, request logging, the JSON fallbacks, and serving
//! with graceful shutdown.

use crate::auth::{AuthError, Claims, DevIssuer, TokenVerifier};
use crate::documents;
use crate::error::{IngressError, Result};
use crate::upload;
use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_catalog::TableSpec;
use tarn_catalog::schemas::is_valid_table_name;
use tarn_core::{Clock, Kms, ObjectStore};
use tokio::sync::{Notify, Semaphore};
use tracing::Instrument;

/// Everything the ingress handlers share. Build it, then hand it to [`router`].
#[derive(Debug, Clone)]
pub struct IngressState {
    /// the declared tables, by name
    pub tables: BTreeMap<String, TableSpec>,
    /// where documents land (`id=<uuid>` objects)
    pub ingress: Arc<dyn ObjectStore>,
    /// where stored binaries are read from (`GET .../content`)
    pub lake: Arc<dyn ObjectStore>,
    /// where status records (`documents/<id>.json`) are read from
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    pub verifier: Arc<dyn TokenVerifier>,
    /// the local dev issuer, whose JWKS is served at `/.well-known/jwks.json`
    pub issuer: Option<Arc<DevIssuer>>,
    pub clock: Arc<dyn Clock>,
    /// woken (`notify_one`) after each landed document, so the pipeline need not poll
    pub notify: Option<Arc<Notify>>,
    /// uploads handled at once; more are answered 503 `overloaded` with `Retry-After: 1`
    pub max_in_flight: usize,
}

/// A good default for [`IngressState::max_in_flight`]: each upload may hold up to a table's
/// `max_bytes` (10 MiB at most) in memory, twice over while it is encoded and sealed.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// The table map [`IngressState::tables`] wants, from loaded specs.
pub fn table_map(specs: impl IntoIterator<Item = TableSpec>) -> BTreeMap<String, TableSpec> {
    specs.into_iter().map(|s| (s.name.clone(), s)).collect()
}

/// The state as the handlers see it.
#[derive(Clone)]
pub(crate) struct App(Arc<Shared>);

pub(crate) struct Shared {
    pub(crate) s: IngressState,
    pub(crate) permits: Arc<Semaphore>,
}

impl std::ops::Deref for App {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The ingress HTTP API (see the contract): every route, the JSON 404/405 fallbacks and
/// per-request logging.
pub fn router(state: IngressState) -> Router {
    let permits = Arc::new(Semaphore::new(
        state.max_in_flight.min(Semaphore::MAX_PERMITS),
    ));
    let app = App(Arc::new(Shared { s: state, permits }));
    Router::new()
        .route(
            "/table/{name}/object",
            // the handler enforces each table's max_bytes while streaming
            post(upload::post_document).layer(DefaultBodyLimit::disable()),
        )
        .route("/table/{name}/object/{id}", get(documents::get_status))
        .route(
            "/table/{name}/object/{id}/content",
            get(documents::get_content),
        )
        .route("/health", get(health))
        .route("/.well-known/jwks.json", get(jwks))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(log_request))
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the requests in flight
/// (a document being landed is landed and answered) and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn health() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

async fn jwks(State(app): State<App>) -> Result<Response> {
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
async fn not_found(uri: Uri) -> IngressError {
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
    IngressError::NotFound("no such route; see the ingress api: POST /table/{name}/object, GET /table/{name}/object/{id}[/content], GET /health".into())
}

async fn method_not_allowed() -> IngressError {
    IngressError::MethodNotAllowed
}

/// One line per request: method, path, status, time. Never headers (the token) nor bodies.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", %method, path = %path);
    let started = std::time::Instant::now();
    let resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_millis() as u64;
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, ms, "request done");
        } else {
            tracing::info!(status, ms, "request done");
        }
    });
    resp
}

// ---- helpers the handlers share, in the contract's order of checks ----

/// The table name from the path, checked against `^[a-z][a-z0-9_]{0,62}$`.
pub(crate) fn table_name(name: std::result::Result<String, PathRejection>) -> Result<String> {
    match name {
        Ok(n) if is_valid_table_name(&n) => Ok(n),
        _ => Err(IngressError::InvalidTableName),
    }
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
    app.s.verifier.verify(token).await.map_err(|e| {
        tracing::info!(reason = %e, "token refused");
        IngressError::Auth(e)
    })
}

/// The declared table `name`.
pub(crate) fn table<'a>(app: &'a App, name: &str) -> Result<&'a TableSpec> {
    app.s
        .tables
        .get(name)
        .ok_or_else(|| IngressError::UnknownTable {
            table: name.to_string(),
        })
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
