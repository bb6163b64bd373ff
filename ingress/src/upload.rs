//! `POST /table/{name}/object`: checks, streaming with the table's size limit, landing.

use crate::checks::{authenticate, table, table_name};
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
    let name = table_name(name.map(|Path(n)| n))?;
    let claims = authenticate(&app, &headers).await?;
    let spec = table(&app, &name)?;
    if !claims.can_write(&name) {
        return Err(IngressError::Forbidden(format!(
            "user {} may not write table {name}: needs group tarn-writers or tarn-writers-{name}",
            claims.username
        )));
    }
    let content_type = media_type(&headers)?.ok_or(IngressError::MissingContentType)?;
    if !spec.accepts(&content_type) {
        return Err(IngressError::UnsupportedContentType {
            table: name.clone(),
            content_type,
            accepted: spec.accept.join(", "),
        });
    }
    let declared = content_length(&headers)?;
    let document = read_limited(body, spec, declared).await?;
    let id = land(&app.s, spec, &claims.username, &content_type, &document).await?;
    tracing::info!(table = %name, id = %id, producer = %claims.username, content_type = %content_type, bytes = document.len(), "document landed");
    if let Some(notify) = &app.s.notify {
        notify.notify_one();
    }
    Ok(Json(json!({"success": true, "data": {"id": id}})))
}

/// The media type of `Content-Type`, lowercase, without parameters (`; charset=utf-8`).
/// `None` when the header is missing or empty.
pub(crate) fn media_type(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(v) = headers.get(header::CONTENT_TYPE) else {
        return Ok(None);
    };
    let v = v
        .to_str()
        .map_err(|_| IngressError::BadBody("content-type is not ascii".into()))?;
    let media = v
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Ok(Some(media).filter(|m| !m.is_empty()))
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>> {
    match headers.get(header::CONTENT_LENGTH) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| IngressError::BadBody("content-length is not a number".into())),
    }
}

/// Reads the body chunk by chunk, refusing it as soon as it exceeds the table's `max_bytes`
/// (at once when `Content-Length` says so). Never holds more than `max_bytes`.
async fn read_limited(body: Body, spec: &TableSpec, declared: Option<u64>) -> Result<Bytes> {
    let max = spec.max_bytes;
    let too_large = || IngressError::TooLarge {
        table: spec.name.clone(),
        max_bytes: max,
    };
    if declared.is_some_and(|n| n > max) {
        return Err(too_large());
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn media_types_drop_parameters_and_case() {
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h).unwrap(), None);
        for (v, want) in [
            ("application/json", Some("application/json")),
            ("Application/JSON; charset=utf-8", Some("application/json")),
            (" image/png ;x=y", Some("image/png")),
            ("", None),
            ("; charset=utf-8", None),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            assert_eq!(media_type(&h).unwrap().as_deref(), want, "{v}");
        }
    }
}
