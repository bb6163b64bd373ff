//! The multipart upload routes (docs/contract.md, Multipart uploads) over [`Uploads`]:
//! `POST /table/{name}/uploads` starts one, `PUT /table/{name}/uploads/{id}/parts/{n}` stores a
//! part (where the store gives no presigned URLs), `POST /table/{name}/uploads/{id}/complete`
//! lands the document, `DELETE /table/{name}/uploads/{id}` aborts. Every route checks the token;
//! an upload is its producer's alone (anyone else gets 404 `unknown_upload`).

use crate::admission::UploadHead;
use crate::auth::Claims;
use crate::checks::{authenticate, idempotency_keys, upload_permit};
use crate::error::{IngressError, Result};
use crate::idempotency;
use crate::multipart::{CONTENT_TYPE_HEADER, LENGTH_HEADER, Started, Uploads};
use crate::state::App;
use crate::upload::read_capped;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tarn_catalog::schemas::is_valid_table_name;

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

/// A JSON answer; with `Idempotency-Replayed: true` when its data says it is a replay.
fn answer(status: u16, body: Value) -> Response {
    let replayed = body["data"]["replayed"] == json!(true);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut resp = (status, Json(body)).into_response();
    if replayed {
        resp.headers_mut().insert(
            idempotency::REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
    }
    resp
}

/// The caller of an upload route: the table name first, then the token.
async fn caller(app: &App, name: &str, headers: &HeaderMap) -> Result<Claims> {
    if !is_valid_table_name(name) {
        return Err(IngressError::InvalidTableName);
    }
    authenticate(app, headers).await
}

pub(crate) async fn start(
    State(app): State<App>,
    name: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let name = name.map(|Path(n)| n).unwrap_or_default();
    let keys = idempotency_keys(&headers);
    let head = UploadHead {
        table: &name,
        content_type: headers.get(CONTENT_TYPE_HEADER).map(|v| v.as_bytes()),
        content_length: headers.get(LENGTH_HEADER).map(|v| v.as_bytes()),
        idempotency_keys: &keys,
    };
    let claims = caller(&app, &name, &headers).await;
    let started = uploads(&app)
        .start_checked(&app.s.tables, &head, claims)
        .await?;
    sweep_now_and_then(&app);
    match &started {
        Started::Replayed { id } => {
            tracing::info!(table = %name, id = %id, "idempotency key replayed at an upload's start; nothing to send")
        }
        Started::Upload {
            record, resumed, ..
        } => {
            tracing::info!(table = %name, id = %record.id, producer = %record.producer, bytes = record.size, parts = record.parts(), resumed, "upload started")
        }
    }
    let (status, body) = started.answer();
    Ok(answer(status, body))
}

pub(crate) async fn put_part(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String, u32)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let _permit = upload_permit(&app)?;
    let Path((name, id, number)) = path.map_err(|_| {
        IngressError::BadUpload("part numbers are whole numbers from 1 to 10000".into())
    })?;
    let claims = caller(&app, &name, &headers).await?;
    let uploads = uploads(&app);
    let record = uploads.own_record(&name, &id, &claims.username).await?;
    let want = record.part_len(number)?;
    let body = read_capped(body, want, Some(want), || {
        IngressError::BadUpload(format!(
            "part {number} of upload {id} must have {want} bytes, no more"
        ))
    })
    .await?;
    let etag = uploads.put_part(&record, number, body).await?;
    let mut resp = answer(
        200,
        json!({"success": true, "data": {"number": number, "etag": etag}}),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    Ok(resp)
}

/// The table, upload id and caller of a route on one upload.
async fn upload_route(
    app: &App,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: &HeaderMap,
) -> Result<(String, String, Claims)> {
    let (name, id) = path.map(|Path(p)| p).unwrap_or_default();
    let claims = caller(app, &name, headers).await?;
    Ok((name, id, claims))
}

pub(crate) async fn complete(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (name, id, claims) = upload_route(&app, path, &headers).await?;
    let producer = claims.username.clone();
    let (done, record) = uploads(&app)
        .complete_checked(&app.s.tables, &name, &id, claims)
        .await?;
    match record {
        Some(r) if !done.replayed => {
            tracing::info!(table = %name, id = %done.id, producer = %producer, content_type = %r.content_type, bytes = r.size, "document landed from an upload");
            if let Some(notify) = &app.s.notify {
                notify.notify_one();
            }
        }
        _ => {
            tracing::info!(table = %name, id = %done.id, producer = %producer, "the upload's document had landed already; nothing new landed")
        }
    }
    Ok(answer(200, done.answer()))
}

pub(crate) async fn abort(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (name, id, claims) = upload_route(&app, path, &headers).await?;
    uploads(&app).abort_checked(&name, &id, &claims).await?;
    tracing::info!(table = %name, id = %id, producer = %claims.username, "upload aborted");
    Ok(answer(
        200,
        json!({"success": true, "data": {"id": id, "aborted": true}}),
    ))
}
