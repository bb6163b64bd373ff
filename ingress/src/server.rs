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
use tarn_core::audit::{
    Actor, AuditSink, EventName, RequestContext, RequestScope, denied_event, set_request_actor,
};
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
    /// where refused and failed requests are recorded
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
    /// the status and content routes' logic
    pub(crate) documents: crate::documents::Documents,
}

impl std::ops::Deref for App {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The ingress HTTP API (see the contract): every route, the JSON 404/405 fallbacks and
/// per-request logging. Without an audit sink: see [`router_with_audit`].
pub fn router(state: IngressState) -> Router {
    router_with_audit(state, None)
}

/// [`router`], recording to `audit` every request under `/table/` that is refused or fails
/// (401, 403, 404, 413, 415, 429/503, 500...) as a CloudTrail event: what was asked (the event
/// the request stands for, bucket, key), the reason (`errorCode` is the API's error code,
/// `errorMessage` its message), the caller when its token was valid, the connection's address
/// and the user agent. Never the token.
///
/// Every request also runs in a [`RequestScope`]: once its token is verified, store calls made
/// for it through an [`AuditedStore`](tarn_core::audit::AuditedStore) are attributed to the
/// caller, with its address and user agent. (The address needs [`serve`], which passes each
/// connection's peer address.)
pub fn router_with_audit(state: IngressState, audit: Option<Arc<dyn AuditSink>>) -> Router {
    let permits = Arc::new(Semaphore::new(
        state.max_in_flight.min(Semaphore::MAX_PERMITS),
    ));
    let documents = crate::documents::Documents::new(
        state.tables.keys().cloned(),
        state.ingress.clone(),
        state.lake.clone(),
        state.state.clone(),
        state.kms.clone(),
    );
    let app = App(Arc::new(Shared {
        s: state,
        permits,
        audit,
        documents,
    }));
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
        .layer(middleware::from_fn_with_state(app.clone(), audit_request))
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
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
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

/// Why a request failed, as its error response carries it (for the audit trail).
#[derive(Debug, Clone)]
pub(crate) struct FailureReason {
    pub code: &'static str,
    pub message: String,
}

/// Runs the request in a [`RequestScope`] (the caller's address and agent; its identity once
/// authenticated) and records a refused or failed `/table/` request.
async fn audit_request(State(app): State<App>, req: Request, next: Next) -> Response {
    let source_ip = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(256).collect::<String>());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let scope = RequestScope::new(RequestContext {
        actor: None,
        source_ip,
        user_agent,
        request_id: Some(tarn_core::audit::request_id()),
    });
    let resp = scope.run(next.run(req)).await;
    let status = resp.status();
    if let Some(sink) = &app.audit
        && (status.is_client_error() || status.is_server_error())
        && path.starts_with("/table/")
    {
        let reason = resp.extensions().get::<FailureReason>();
        let (code, message) = match reason {
            Some(r) => (r.code.to_string(), r.message.clone()),
            None => (
                format!("http_{}", status.as_u16()),
                status.canonical_reason().unwrap_or("").to_string(),
            ),
        };
        let (name, bucket, key, table) = requested(&app, &method, &path);
        let mut extra = serde_json::Map::new();
        extra.insert("httpMethod".into(), json!(method.as_str()));
        extra.insert("httpStatus".into(), json!(status.as_u16()));
        if let Some(t) = table {
            extra.insert("tarnTable".into(), json!(t));
        }
        let mut event = denied_event(
            name,
            &bucket,
            key.as_deref(),
            &scope.snapshot(),
            tarn_core::audit::component::INGRESS,
            &code,
            &message,
            extra,
        );
        event.time = app.s.clock.now();
        sink.record(event);
    }
    resp
}

/// What a `/table/` request asked for, as an S3 call: the event, the bucket, the key (when the
/// path names a document) and the table (when the path names a valid one).
fn requested(
    app: &App,
    method: &axum::http::Method,
    path: &str,
) -> (EventName, String, Option<String>, Option<String>) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let table = parts
        .get(1)
        .map(|t| {
            percent_encoding::percent_decode_str(t)
                .decode_utf8_lossy()
                .into_owned()
        })
        .filter(|t| is_valid_table_name(t));
    let id = parts
        .get(3)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .map(|u| u.hyphenated().to_string());
    let t = table.clone().unwrap_or_else(|| "_".into());
    match (method.as_str(), parts.get(4).copied(), id) {
        ("GET", Some("content"), id) => (
            EventName::GetObject,
            app.s.lake.bucket().to_string(),
            id.map(|id| format!("objects/{t}/{id}")),
            table,
        ),
        ("GET", None, id) => (
            EventName::GetObject,
            app.s.state.bucket().to_string(),
            id.map(|id| tarn_core::document::status_key(&id)),
            table,
        ),
        ("GET" | "HEAD", _, _) => (
            EventName::GetObject,
            app.s.state.bucket().to_string(),
            None,
            table,
        ),
        _ => (
            EventName::PutObject,
            app.s.ingress.bucket().to_string(),
            None,
            table,
        ),
    }
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
