//! tarn-ingress: the ingress HTTP server and the token issuer/verifier.
//!
//! - [`auth`]: the [`TokenVerifier`] port, [`JwksVerifier`] (RS256 against a JWKS, Cognito's
//!   claims) and [`DevIssuer`], the local dev token issuer.
//! - [`admit_upload`] decides whether an upload may land from its head (table, token, content
//!   type and length, idempotency key): the local server and the AWS authorizer both call it.
//! - [`multipart`]: multipart uploads of large documents ([`Uploads`]), the same protocol on
//!   both backends; [`admit_multipart_upload`] checks their start and completion.
//! - [`idempotency`]: the `Idempotency-Key` rules and [`document_id`], a keyed upload's
//!   deterministic id on both backends.
//! - [`router`] builds the HTTP API (docs/contract.md, Ingress HTTP API) from an
//!   [`IngressState`]; [`serve`] runs it (HTTP/1.1) under the limits of a [`ServeConfig`]:
//!   header-read and body timeouts, a cap on connections, and a graceful shutdown bounded in time.
//! - [`IngressError`] is the crate's error, with a matchable [`ErrorKind`] and its HTTP form.
//!
//! Assembling a local ingress:
//! ```no_run
//! # async fn example(state: tarn_ingress::IngressState) -> std::io::Result<()> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! let app = tarn_ingress::router(state);
//! tarn_ingress::serve(listener, app, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod admission;
pub mod auth;
mod checks;
pub mod documents;
pub mod error;
pub mod idempotency;
pub mod metrics;
mod middleware;
pub mod multipart;
mod read;
mod routes;
mod serve;
mod server;
mod state;
mod timed_body;
mod upload;
mod uploads;

pub use admission::{Admitted, UploadHead, admit_multipart_upload, admit_upload, media_type};
pub use auth::{
    AuthError, AuthErrorKind, Claims, DEV_CLIENT_ID, DEV_ISSUER, DevIssuer, Jwks, JwksSource,
    JwksVerifier, StaticJwks, TokenVerifier, VerifierConfig,
};
pub use documents::{Content, Documents};
pub use error::{ErrorKind, IngressError, Result};
pub use idempotency::document_id;
pub use metrics::{PrometheusRecorder, instrument};
pub use multipart::{UPLOAD_TTL, Uploads};
pub use serve::{DEFAULT_MAX_CONNECTIONS, ServeConfig, default_max_connections, serve, serve_with};
pub use server::{router, router_with_audit};
pub use state::{DEFAULT_MAX_IN_FLIGHT, IngressState, table_map};
pub use timed_body::BodyTimeout;
pub use upload::{land, land_once};
