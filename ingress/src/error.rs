//! The crate's one error type, with a matchable [`ErrorKind`], and its HTTP form:
//! `{"success": false, "error": {"code": "<snake_case>", "message": "<text>"}}`.

use crate::auth::{AuthError, AuthErrorKind};
use crate::timed_body::BodyTimeout;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::path::PathBuf;
use tarn_core::Status;

pub type Result<T, E = IngressError> = std::result::Result<T, E>;

/// What went wrong, for callers that branch on it; each maps to one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// the request is unusable as sent (400)
    BadRequest,
    /// no, or no acceptable, token (401)
    Unauthorized,
    /// the token is fine but does not allow this (403)
    Forbidden,
    /// no such table, document, object or route (404)
    NotFound,
    /// the route exists for other methods (405)
    MethodNotAllowed,
    /// the request body came too slowly (408)
    RequestTimeout,
    /// the document is not in a state that allows this (409)
    Conflict,
    /// over the table's size limit (413)
    TooLarge,
    /// content type not accepted by the table (415)
    UnsupportedMediaType,
    /// too busy, or a dependency is down: retry later (503)
    Unavailable,
    /// a store, KMS or key-file failure (500)
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IngressError {
    #[error("table names must match ^[a-z][a-z0-9_]{{0,62}}$")]
    InvalidTableName,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("unknown table {table}")]
    UnknownTable { table: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("a content-type header is required")]
    MissingContentType,
    #[error("table {table} does not accept content type {content_type}; it accepts {accepted}")]
    UnsupportedContentType {
        table: String,
        content_type: String,
        accepted: String,
    },
    #[error("the document is larger than table {table}'s limit of {max_bytes} bytes")]
    TooLarge { table: String, max_bytes: u64 },
    #[error(
        "the document is larger than the {limit} bytes one request takes; send it as a multipart upload (POST /table/{table}/uploads), table {table} takes up to {max_bytes}"
    )]
    TooLargeForOneRequest {
        table: String,
        limit: u64,
        max_bytes: u64,
    },
    #[error("no upload {id} in table {table} (finished, aborted or expired): start a new one")]
    UnknownUpload { table: String, id: String },
    #[error("{0}")]
    BadUpload(String),
    #[error("the document is empty")]
    EmptyBody,
    #[error("the request body could not be read: {0}")]
    BadBody(String),
    #[error(transparent)]
    BodyTimeout(#[from] BodyTimeout),
    #[error(
        "the idempotency-key header must be 1 to 128 printable ascii characters (space to ~), sent once"
    )]
    InvalidIdempotencyKey,
    #[error("too many uploads in flight; retry in a second")]
    Overloaded,
    #[error("no document {id} in table {table}")]
    UnknownDocument { table: String, id: String },
    #[error(
        "document {id} is a json document: its records are rows of table {table}; read them with sql, e.g. SELECT * FROM {table} WHERE _id = '{id}'"
    )]
    NoObject { table: String, id: String },
    #[error("document {id} is {}, not stored", status.as_str())]
    NotStored { id: String, status: Status },
    #[error(
        "document {id} was stored without a virus scan (scan_result {scan_result}): this deployment runs no scanner, so its content is not served; deploy with a scanner (ScanMode clamav, or scan in pipeline.stages), or allow unscanned content explicitly (ScanMode none-serve-unscanned, scan.serve_unscanned = true)"
    )]
    NotScanned { id: String, scan_result: String },
    #[error("{0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("{context} at {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("issuer key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] tarn_core::Error),
    #[error("internal error: {0}")]
    Internal(String),
}

impl IngressError {
    pub fn kind(&self) -> ErrorKind {
        use IngressError as E;
        match self {
            E::InvalidTableName
            | E::MissingContentType
            | E::EmptyBody
            | E::BadBody(_)
            | E::InvalidIdempotencyKey
            | E::BadUpload(_)
            | E::InvalidInput(_) => ErrorKind::BadRequest,
            E::Auth(a) => match a.kind() {
                AuthErrorKind::Unavailable => ErrorKind::Unavailable,
                _ => ErrorKind::Unauthorized,
            },
            E::Forbidden(_) => ErrorKind::Forbidden,
            E::UnknownTable { .. }
            | E::UnknownUpload { .. }
            | E::UnknownDocument { .. }
            | E::NoObject { .. }
            | E::NotFound(_) => ErrorKind::NotFound,
            E::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            E::BodyTimeout(_) => ErrorKind::RequestTimeout,
            E::NotStored { .. } | E::NotScanned { .. } => ErrorKind::Conflict,
            E::TooLarge { .. } | E::TooLargeForOneRequest { .. } => ErrorKind::TooLarge,
            E::UnsupportedContentType { .. } => ErrorKind::UnsupportedMediaType,
            E::Overloaded => ErrorKind::Unavailable,
            E::Io { .. } | E::Key { .. } | E::Store(_) | E::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The snake_case `error.code` of the HTTP answer.
    pub fn code(&self) -> &'static str {
        use IngressError as E;
        match self {
            E::InvalidTableName => "invalid_table_name",
            E::Auth(a) => match a.kind() {
                AuthErrorKind::Missing => "missing_token",
                AuthErrorKind::Expired => "token_expired",
                AuthErrorKind::Invalid => "invalid_token",
                AuthErrorKind::Unavailable => "auth_unavailable",
            },
            E::UnknownTable { .. } => "unknown_table",
            E::Forbidden(_) => "forbidden",
            E::MissingContentType => "missing_content_type",
            E::UnsupportedContentType { .. } => "unsupported_content_type",
            E::TooLarge { .. } | E::TooLargeForOneRequest { .. } => "too_large",
            E::UnknownUpload { .. } => "unknown_upload",
            E::BadUpload(_) => "bad_upload",
            E::EmptyBody => "empty_body",
            E::BadBody(_) => "bad_body",
            E::InvalidIdempotencyKey => "invalid_idempotency_key",
            E::BodyTimeout(_) => "body_timeout",
            E::Overloaded => "overloaded",
            E::UnknownDocument { .. } => "unknown_document",
            E::NoObject { .. } => "no_object",
            E::NotStored { .. } => "not_stored",
            E::NotScanned { .. } => "not_scanned",
            E::NotFound(_) => "not_found",
            E::MethodNotAllowed => "method_not_allowed",
            E::InvalidInput(_) => "invalid_input",
            E::Io { .. } | E::Key { .. } | E::Store(_) | E::Internal(_) => "internal",
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> IngressError {
        let path = path.into();
        move |source| IngressError::Io {
            context,
            path,
            source,
        }
    }
}

/// Why a request failed, as its error response carries it (an extension the audit reads).
#[derive(Debug, Clone)]
pub(crate) struct FailureReason {
    pub code: &'static str,
    pub message: String,
}

/// The error body every failing request gets.
pub fn error_body(code: &str, message: &str) -> serde_json::Value {
    json!({"success": false, "error": {"code": code, "message": message}})
}

impl IntoResponse for IngressError {
    fn into_response(self) -> Response {
        let kind = self.kind();
        let message = if kind == ErrorKind::Internal {
            // the detail (paths, store errors) goes to the log, not to the caller
            tracing::error!(error = %self, "request failed");
            "internal error; the server log has the details".to_string()
        } else {
            self.to_string()
        };
        let mut resp =
            (kind.status(), axum::Json(error_body(self.code(), &message))).into_response();
        // for the audit trail: the reason, as the caller sees it
        resp.extensions_mut().insert(FailureReason {
            code: self.code(),
            message,
        });
        if kind == ErrorKind::Unavailable {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_statuses_and_messages() {
        let cases: Vec<(IngressError, u16, &str)> = vec![
            (IngressError::InvalidTableName, 400, "invalid_table_name"),
            (AuthError::Missing.into(), 401, "missing_token"),
            (AuthError::Expired.into(), 401, "token_expired"),
            (AuthError::BadSignature.into(), 401, "invalid_token"),
            (IngressError::Forbidden("no".into()), 403, "forbidden"),
            (
                IngressError::UnknownTable { table: "t".into() },
                404,
                "unknown_table",
            ),
            (
                IngressError::TooLarge {
                    table: "t".into(),
                    max_bytes: 3,
                },
                413,
                "too_large",
            ),
            (
                IngressError::TooLargeForOneRequest {
                    table: "t".into(),
                    limit: 10,
                    max_bytes: 30,
                },
                413,
                "too_large",
            ),
            (
                IngressError::UnknownUpload {
                    table: "t".into(),
                    id: "i".into(),
                },
                404,
                "unknown_upload",
            ),
            (
                IngressError::BadUpload("part 2 has 3 bytes".into()),
                400,
                "bad_upload",
            ),
            (IngressError::Overloaded, 503, "overloaded"),
            (
                BodyTimeout::Idle(std::time::Duration::from_secs(30)).into(),
                408,
                "body_timeout",
            ),
            (
                IngressError::NotStored {
                    id: "i".into(),
                    status: Status::Received,
                },
                409,
                "not_stored",
            ),
            (
                IngressError::NotScanned {
                    id: "i".into(),
                    scan_result: "skipped".into(),
                },
                409,
                "not_scanned",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.kind().status().as_u16(), status, "{err}");
            assert_eq!(err.code(), code);
            let msg = err.to_string();
            assert!(msg.chars().next().unwrap().is_lowercase(), "{msg}");
            assert!(!msg.ends_with('.'), "{msg}");
        }
    }
}
