//! The multipart upload routes (docs/contract.md, Multipart uploads) over [`Uploads`]:
//! `POST /table/{name}/uploads` starts one, `PUT /table/{name}/uploads/{id}/parts/{n}` stores a
//! part (where the store gives no presigned URLs), `POST /table/{name}/uploads/{id}/complete`
//! lands the document, `DELETE /table/{name}/uploads/{id}` aborts. Every route checks the token;
//! an upload is its producer's alone (anyone else gets 404 `unknown_upload`).

use crate::admission::{Admitted, UploadHead, admit_multipart_upload};
use crate::checks::authenticate;
use crate::error::{IngressError, Result};
use crate::idempotency;
use crate::multipart::{Started, UploadRecord, Uploads};
use crate::state::App;
use crate::upload::read_capped;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tarn_catalog::schemas::is_valid_table_name;

/// The header of a start that names the document's media type.
pub const CONTENT_TYPE_HEADER: &str = "upload-content-type";
/// The header of a start that names the document's size in bytes.
pub const LENGTH_HEADER: &str = "upload-length";

/// How often a start looks for expired uploads to abort.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

fn uploads(app: &App) -> Uploads {
    Uploads {
        ingress: app.s.ingress.clone(),
        state: app.s.state.clone(),
        kms: app.s.kms.clone(),
        clock: app.s.clock.clone(),
    }
}

/// Aborts expired uploads in the background, at most once per [`SWEEP_EVERY`].
fn sweep_now_and_then(app: &App) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    {
        let mut last = LAST.lock().expect("sweep clock");
        if last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
            return;
        }
        *last = Some(Instant::now());
    }
    let uploads = uploads(app);
    tokio::spawn(async move {
        match uploads.sweep().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(aborted = n, "expired uploads aborted"),
            Err(e) => tracing::warn!(error = %e, "sweeping expired uploads failed"),
        }
    });
}

/// The multipart admission of a request's head: the `Upload-Content-Type` and `Upload-Length`
/// headers (at the start; at completion, the record's), the key, the token.
async fn admit<'a>(
    app: &'a App,
    name: &str,
    headers: &HeaderMap,
    content_type: Option<&[u8]>,
    length: Option<&[u8]>,
) -> Result<Admitted<'a>> {
    let keys: Vec<&[u8]> = headers
        .get_all(idempotency::HEADER)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let head = UploadHead {
        table: name,
        content_type,
        content_length: length,
        idempotency_keys: &keys,
    };
    let caller = if is_valid_table_name(name) {
        authenticate(app, headers).await
    } else {
        Err(IngressError::InvalidTableName)
    };
    admit_multipart_upload(&app.s.tables, &head, caller)
}

fn replayed(id: &str) -> Response {
    let mut resp =
        Json(json!({"success": true, "data": {"id": id, "replayed": true}})).into_response();
    resp.headers_mut().insert(
        idempotency::REPLAYED_HEADER,
        HeaderValue::from_static("true"),
    );
    resp
}

pub(crate) async fn start(
    State(app): State<App>,
    name: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let name = name.map(|Path(n)| n).unwrap_or_default();
    let a = admit(
        &app,
        &name,
        &headers,
        headers.get(CONTENT_TYPE_HEADER).map(|v| v.as_bytes()),
        headers.get(LENGTH_HEADER).map(|v| v.as_bytes()),
    )
    .await?;
    sweep_now_and_then(&app);
    let size = a
        .content_length
        .expect("a multipart admission has a length");
    let started = uploads(&app)
        .start(
            &a.spec.name,
            &a.caller.username,
            &a.content_type,
            size,
            a.id,
        )
        .await?;
    match started {
        Started::Replayed { id } => {
            tracing::info!(table = %name, id = %id, producer = %a.caller.username, "idempotency key replayed at an upload's start; nothing to send");
            Ok(replayed(&id))
        }
        Started::Upload {
            record,
            parts,
            resumed,
        } => {
            tracing::info!(table = %name, id = %record.id, producer = %record.producer, bytes = record.size, parts = parts.len(), resumed, "upload started");
            let status = if resumed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            Ok((
                status,
                Json(json!({"success": true, "data": {
                    "id": record.id,
                    "content_type": record.content_type,
                    "size": record.size,
                    "part_size": record.part_size,
                    "parts": parts,
                    "expires_at": record.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    "resumed": resumed,
                }})),
            )
                .into_response())
        }
    }
}

/// The caller's upload `id` of table `name`, after the token check.
async fn own_upload(
    app: &App,
    name: &str,
    id: &str,
    headers: &HeaderMap,
) -> Result<(Uploads, UploadRecord)> {
    if !is_valid_table_name(name) {
        return Err(IngressError::InvalidTableName);
    }
    let caller = authenticate(app, headers).await?;
    let uploads = uploads(app);
    let record = uploads.own_record(name, id, &caller.username).await?;
    Ok((uploads, record))
}

pub(crate) async fn put_part(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String, u32)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let _permit = app
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| IngressError::Overloaded)?;
    let Path((name, id, number)) = path.map_err(|_| {
        IngressError::BadUpload("part numbers are whole numbers from 1 to 10000".into())
    })?;
    let (uploads, record) = own_upload(&app, &name, &id, &headers).await?;
    let want = record.part_len(number)?;
    let body = read_capped(body, want, Some(want), || {
        IngressError::BadUpload(format!(
            "part {number} of upload {id} must have {want} bytes, no more"
        ))
    })
    .await?;
    let etag = uploads.put_part(&record, number, body).await?;
    let mut resp =
        Json(json!({"success": true, "data": {"number": number, "etag": etag}})).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

pub(crate) async fn complete(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (name, id) = path.map(|Path(p)| p).unwrap_or_default();
    let (uploads, record) = own_upload(&app, &name, &id, &headers).await?;
    // the start's checks again, on what it declared: the table may have changed since
    let size = record.size.to_string();
    admit(
        &app,
        &name,
        &headers_without_key(&headers),
        Some(record.content_type.as_bytes()),
        Some(size.as_bytes()),
    )
    .await?;
    let done = uploads.complete(&record).await?;
    if done.replayed {
        tracing::info!(table = %name, id = %done.id, producer = %record.producer, "idempotency key replayed at completion; nothing landed");
        return Ok(replayed(&done.id));
    }
    tracing::info!(table = %name, id = %done.id, producer = %record.producer, content_type = %record.content_type, bytes = record.size, "document landed from an upload");
    if let Some(notify) = &app.s.notify {
        notify.notify_one();
    }
    Ok(Json(json!({"success": true, "data": {"id": done.id}})).into_response())
}

/// The request's headers without `Idempotency-Key` (the upload's id already holds the key).
fn headers_without_key(headers: &HeaderMap) -> HeaderMap {
    let mut h = headers.clone();
    h.remove(idempotency::HEADER);
    h
}

pub(crate) async fn abort(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (name, id) = path.map(|Path(p)| p).unwrap_or_default();
    let (uploads, record) = own_upload(&app, &name, &id, &headers).await?;
    uploads.abort(&record).await?;
    tracing::info!(table = %name, id = %id, producer = %record.producer, "upload aborted");
    Ok(Json(json!({"success": true, "data": {"id": id, "aborted": true}})).into_response())
}
