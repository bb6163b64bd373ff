//! `POST /table/{name}/object`: the checks of [`admit_upload`], streaming with the table's size
//! limit, landing.

use crate::admission::{Admitted, UploadHead, admit_upload};
use crate::checks::authenticate;
use crate::error::{IngressError, Result};
use crate::state::{App, IngressState};
use crate::timed_body::BodyTimeout;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use bytes::{Bytes, BytesMut};
use chrono::SecondsFormat;
use futures::StreamExt;
use serde_json::{Value, json};
use tarn_catalog::TableSpec;
use tarn_catalog::schemas::is_valid_table_name;

pub(crate) async fn post_document(
    State(app): State<App>,
    name: std::result::Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    // shed load before any work (token checks cost RSA); never queue
    let _permit = app
        .permits
        .clone()
        .try_acquire_owned()
        .map_err(|_| IngressError::Overloaded)?;
    // a path segment that does not decode is no table name
    let name = name.map(|Path(n)| n).unwrap_or_default();
    let head = UploadHead {
        table: &name,
        content_type: headers.get(header::CONTENT_TYPE).map(|v| v.as_bytes()),
        content_length: headers.get(header::CONTENT_LENGTH).map(|v| v.as_bytes()),
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
    } = admit_upload(&app.s.tables, &head, caller)?;
    let document = read_limited(body, spec, declared).await?;
    let id = land(&app.s, spec, &claims.username, &content_type, &document).await?;
    tracing::info!(table = %name, id = %id, producer = %claims.username, content_type = %content_type, bytes = document.len(), "document landed");
    if let Some(notify) = &app.s.notify {
        notify.notify_one();
    }
    Ok(Json(json!({"success": true, "data": {"id": id}})))
}

/// Reads the body chunk by chunk, refusing it as soon as it exceeds the table's `max_bytes` (a
/// declared `Content-Length` over it was refused by [`admit_upload`]). Never holds more than
/// `max_bytes`.
async fn read_limited(body: Body, spec: &TableSpec, declared: Option<u64>) -> Result<Bytes> {
    let max = spec.max_bytes;
    let too_large = || IngressError::TooLarge {
        table: spec.name.clone(),
        max_bytes: max,
    };
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
