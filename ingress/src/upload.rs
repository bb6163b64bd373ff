//! `POST /table/{name}/object`: the checks of [`admit_upload`], streaming with the table's size
//! limit, landing; a keyed upload lands once under its deterministic id (docs/contract.md,
//! Idempotency keys).

use crate::admission::{Admitted, UploadHead, admit_upload};
use crate::checks::{authenticate, idempotency_keys, upload_permit};
use crate::error::{IngressError, Result};
use crate::idempotency;
use crate::state::{App, IngressState};
use crate::timed_body::BodyTimeout;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use chrono::SecondsFormat;
use futures::StreamExt;
use serde_json::json;
use tarn_catalog::TableSpec;
use tarn_catalog::schemas::{MAX_DOCUMENT_BYTES, is_valid_table_name};
use tarn_core::document::{ingress_key, meta, status_key};

pub(crate) async fn post_document(
    State(app): State<App>,
    name: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    // shed load before any work (token checks cost RSA); never queue
    let _permit = upload_permit(&app)?;
    // a path segment that does not decode is no table name
    let name = name.map(|Path(n)| n).unwrap_or_default();
    let keys = idempotency_keys(&headers);
    let head = UploadHead {
        table: &name,
        content_type: headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        content_length: headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()),
        idempotency_keys: &keys,
    };
    // the name is checked before the token: no token check (RSA) for a path that names no table
    let caller = if is_valid_table_name(&name) {
        authenticate(&app, &headers).await
    } else {
        Err(IngressError::InvalidTableName)
    };
    let Admitted {
        spec,
        caller: claims,
        content_type,
        content_length: declared,
        id: keyed,
    } = admit_upload(&app.s.tables, &head, caller)?;
    let document = read_limited(body, spec, declared).await?;
    let (id, replayed) = match keyed {
        None => (
            land(&app.s, spec, &claims.username, &content_type, &document).await?,
            false,
        ),
        Some(id) => {
            let replayed = !land_once(
                &app.s,
                spec,
                &claims.username,
                &content_type,
                &document,
                &id,
            )
            .await?;
            (id, replayed)
        }
    };
    if replayed {
        tracing::info!(table = %name, id = %id, producer = %claims.username, "idempotency key replayed; nothing landed");
        let mut resp =
            Json(json!({"success": true, "data": {"id": id, "replayed": true}})).into_response();
        resp.headers_mut().insert(
            idempotency::REPLAYED_HEADER,
            HeaderValue::from_static("true"),
        );
        return Ok(resp);
    }
    tracing::info!(table = %name, id = %id, producer = %claims.username, content_type = %content_type, bytes = document.len(), "document landed");
    if let Some(notify) = &app.s.notify {
        notify.notify_one();
    }
    Ok(Json(json!({"success": true, "data": {"id": id}})).into_response())
}

/// Reads the body chunk by chunk, refusing it as soon as it exceeds the table's `max_bytes` or
/// the [`MAX_DOCUMENT_BYTES`] one request takes (a declared `Content-Length` over them was
/// refused by [`admit_upload`]). Never holds more than the smaller of the two.
async fn read_limited(body: Body, spec: &TableSpec, declared: Option<u64>) -> Result<Bytes> {
    let too_large = || {
        if spec.max_bytes > MAX_DOCUMENT_BYTES {
            IngressError::TooLargeForOneRequest {
                table: spec.name.clone(),
                limit: MAX_DOCUMENT_BYTES,
                max_bytes: spec.max_bytes,
            }
        } else {
            IngressError::TooLarge {
                table: spec.name.clone(),
                max_bytes: spec.max_bytes,
            }
        }
    };
    read_capped(
        body,
        spec.max_bytes.min(MAX_DOCUMENT_BYTES),
        declared,
        too_large,
    )
    .await
}

/// Reads the body chunk by chunk, refusing it (`too_large`) as soon as it exceeds `max` bytes;
/// an empty body is 400 `empty_body`. Never holds more than `max`.
pub(crate) async fn read_capped(
    body: Body,
    max: u64,
    declared: Option<u64>,
    too_large: impl Fn() -> IngressError,
) -> Result<Bytes> {
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(16 * 1024).min(max) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_error)?;
        if (buf.len() + chunk.len()) as u64 > max {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    if buf.is_empty() {
        return Err(IngressError::EmptyBody);
    }
    Ok(buf.freeze())
}

/// A body that failed: cut by its timeouts (408), else unreadable (400).
fn body_error(e: axum::Error) -> IngressError {
    match e.into_inner().downcast::<BodyTimeout>() {
        Ok(timeout) => IngressError::BodyTimeout(*timeout),
        Err(e) => IngressError::BadBody(e.to_string()),
    }
}

/// Lands `document` in the ingress store as `id=<uuid>`: the base64 of the document, sealed
/// under the `{table, id}` context, with the metadata of docs/contract.md (Stores and the lake's
/// layout). Returns the id once the store says the object is durable.
pub async fn land(
    state: &IngressState,
    spec: &TableSpec,
    producer: &str,
    content_type: &str,
    document: &[u8],
) -> Result<String> {
    let received = state
        .clock
        .now()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    Ok(tarn_core::document::land(
        state.ingress.as_ref(),
        state.kms.as_ref(),
        &spec.name,
        producer,
        content_type,
        &received,
        document,
    )
    .await?)
}

/// Lands `document` as [`land`] does, but under the given `id` (a keyed upload's) and only
/// once: `Ok(true)` when it landed now, `Ok(false)` when the id's document already exists, as
/// a landed object (a conditional create finds it) or, once the pipeline has processed it and
/// deleted that object, as a status record (`documents/<id>.json`). Bodies are not compared.
pub async fn land_once(
    state: &IngressState,
    spec: &TableSpec,
    producer: &str,
    content_type: &str,
    document: &[u8],
    id: &str,
) -> Result<bool> {
    use base64::Engine;
    let status = status_key(id);
    if state.state.head(&status).await?.is_some() {
        return Ok(false);
    }
    let received = state
        .clock
        .now()
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let encoded = base64::engine::general_purpose::STANDARD.encode(document);
    let sealed = tarn_core::envelope::seal(
        state.kms.as_ref(),
        &tarn_core::EncryptionContext::document(&spec.name, id),
        encoded.as_bytes(),
    )
    .await?;
    let metadata = tarn_core::Metadata::from([
        (meta::TABLE.to_string(), spec.name.clone()),
        (meta::REQUEST_TIME.to_string(), received),
        (meta::CONTENT_TYPE.to_string(), content_type.to_string()),
        (meta::PRODUCER.to_string(), producer.to_string()),
    ]);
    let key = ingress_key(id);
    if !state
        .ingress
        .put_if_absent(&key, sealed.into(), metadata)
        .await?
    {
        return Ok(false);
    }
    // the pipeline may have committed the first document and deleted its landed object
    // between the two looks: this object repeats a processed document, which the pipeline
    // would drop anyway
    if state.state.head(&status).await?.is_some() {
        if let Err(e) = state.ingress.delete(&key).await {
            tracing::warn!(%id, error = %e, "removing a repeated landing failed; the pipeline drops it");
        }
        return Ok(false);
    }
    Ok(true)
}
