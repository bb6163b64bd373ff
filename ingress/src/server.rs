//! The router: every route of docs/contract.md (Ingress HTTP API), the JSON fallbacks and the middleware, over one
//! [`IngressState`].

use crate::state::{App, IngressState};
use crate::{middleware, read, routes, upload, uploads};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use std::sync::Arc;
use tarn_core::audit::AuditSink;

/// The ingress HTTP API (docs/contract.md, Ingress HTTP API): every route, the JSON 404/405 fallbacks and
/// per-request logging. Without an audit sink: see [`router_with_audit`].
pub fn router(state: IngressState) -> Router {
    router_with_audit(state, None)
}

/// [`router`], recording to `audit` every request under `/table/` that is refused or fails
/// (401, 403, 404, 408, 413, 415, 429/503, 500...) as a CloudTrail event: what was asked (the
/// event the request stands for, bucket, key), the reason (`errorCode` is the API's error code,
/// `errorMessage` its message), the caller when its token was valid, the connection's address
/// and the user agent. Never the token.
///
/// Every request also runs in a [`RequestScope`](tarn_core::audit::RequestScope): once its token
/// is verified, store calls made for it through an
/// [`AuditedStore`](tarn_core::audit::AuditedStore) are attributed to the caller, with its
/// address and user agent. (The address needs [`serve`](crate::serve), which passes each
/// connection's peer address.)
pub fn router_with_audit(state: IngressState, audit: Option<Arc<dyn AuditSink>>) -> Router {
    let app = App::new(state, audit);
    Router::new()
        .route(
            "/table/{name}/object",
            // the handler enforces each table's max_bytes while streaming
            post(upload::post_document).layer(DefaultBodyLimit::disable()),
        )
        .route("/table/{name}/uploads", post(uploads::start))
        .route(
            "/table/{name}/uploads/{id}/parts/{number}",
            // the handler enforces each part's size while streaming
            put(uploads::put_part).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/table/{name}/uploads/{id}/complete",
            post(uploads::complete),
        )
        .route(
            "/table/{name}/uploads/{id}",
            axum::routing::delete(uploads::abort),
        )
        .route("/table/{name}/object/{id}", get(read::get_status))
        .route("/table/{name}/object/{id}/content", get(read::get_content))
        .route("/health", get(routes::health))
        .route("/.well-known/jwks.json", get(routes::jwks))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            middleware::audit_request,
        ))
        .layer(axum::middleware::from_fn(middleware::log_request))
        .with_state(app)
}
