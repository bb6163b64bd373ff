//! The middleware every request passes: one log line per request, and the audit of refused or
//! failed `/table/` requests (each request runs in a [`RequestScope`]).

use crate::error::FailureReason;
use crate::state::App;
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use tarn_catalog::schemas::is_valid_table_name;
use tarn_core::audit::{EventName, RequestContext, RequestScope, denied_event};
use tracing::Instrument;

/// One line per request: method, path, status, time. Never headers (the token) nor bodies.
pub(crate) async fn log_request(req: Request, next: Next) -> Response {
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

/// Runs the request in a [`RequestScope`] (the caller's address and agent; its identity once
/// authenticated) and records a refused or failed `/table/` request.
pub(crate) async fn audit_request(State(app): State<App>, req: Request, next: Next) -> Response {
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
