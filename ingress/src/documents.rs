//! `GET /table/{name}/object/{id}` (status) and `GET /table/{name}/object/{id}/content`.

use crate::auth::Claims;
use crate::error::{IngressError, Result};
use crate::server::{App, authenticate, table, table_name};
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tarn_core::document::{ingress_key, meta, status_key};
use tarn_core::{DocumentRow, EncryptionContext, ErrorKind as StoreErrorKind, Status, envelope};

/// What is known of a document.
#[derive(Debug)]
enum Found {
    /// processed: its row in `documents`
    Row(Box<DocumentRow>),
    /// landed, not processed yet: what its ingress object's metadata says
    Received {
        producer: String,
        content_type: Option<String>,
        received_at: Option<String>,
    },
}

impl Found {
    fn producer(&self) -> &str {
        match self {
            Found::Row(r) => &r.producer,
            Found::Received { producer, .. } => producer,
        }
    }

    fn status(&self) -> Status {
        match self {
            Found::Row(r) => r.status,
            Found::Received { .. } => Status::Received,
        }
    }
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The table name and the document id (canonical lowercase uuid) from the path.
fn params(
    p: std::result::Result<Path<(String, String)>, PathRejection>,
) -> Result<(String, Option<String>)> {
    let (name, id) = match p {
        Ok(Path(pair)) => pair,
        Err(PathRejection::FailedToDeserializePathParams(e)) if matches!(e.kind(), axum::extract::path::ErrorKind::InvalidUtf8InPathParam { key } if key == "id") =>
        {
            return Err(IngressError::NotFound("no such document".into()));
        }
        Err(_) => return Err(IngressError::InvalidTableName),
    };
    let name = table_name(Ok(name))?;
    // anything but a uuid names no document (and never reaches a store key)
    let id = uuid::Uuid::parse_str(&id)
        .ok()
        .map(|u| u.hyphenated().to_string());
    Ok((name, id))
}

/// Checks the path and the token, then finds the document.
async fn lookup(
    app: &App,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: &HeaderMap,
) -> Result<(String, String, Claims, Found)> {
    let (name, id) = params(path)?;
    let claims = authenticate(app, headers).await?;
    table(app, &name)?;
    let unknown = |id: &str| IngressError::UnknownDocument {
        table: name.clone(),
        id: id.to_string(),
    };
    let Some(id) = id else {
        return Err(unknown("(not a uuid)"));
    };
    let found = find(app, &name, &id).await?.ok_or_else(|| unknown(&id))?;
    Ok((name, id, claims, found))
}

/// The status record, else the landed object; `None` when neither is there for this table.
async fn find(app: &App, table: &str, id: &str) -> Result<Option<Found>> {
    if let Some(row) = read_row(app, id).await? {
        return Ok((row.table_name == table).then(|| Found::Row(Box::new(row))));
    }
    if let Some(info) = app.s.ingress.head(&ingress_key(id)).await? {
        let m = &info.metadata;
        if m.get(meta::TABLE).map(String::as_str) != Some(table) {
            return Ok(None);
        }
        return Ok(Some(Found::Received {
            producer: m.get(meta::PRODUCER).cloned().unwrap_or_default(),
            content_type: m.get(meta::CONTENT_TYPE).cloned(),
            received_at: m.get(meta::REQUEST_TIME).cloned(),
        }));
    }
    // the pipeline may have finished between the two reads: its record is there now
    Ok(read_row(app, id)
        .await?
        .filter(|r| r.table_name == table)
        .map(|r| Found::Row(Box::new(r))))
}

async fn read_row(app: &App, id: &str) -> Result<Option<DocumentRow>> {
    match app.s.state.get(&status_key(id)).await {
        Ok(got) => serde_json::from_slice(&got.body).map(Some).map_err(|e| {
            IngressError::Internal(format!("status record of {id} is not a document row: {e}"))
        }),
        Err(e) if e.kind() == StoreErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn may_read(claims: &Claims, table: &str, found: &Found) -> bool {
    claims.can_read(table) || claims.username == found.producer()
}

fn forbidden(claims: &Claims, table: &str, what: &str) -> IngressError {
    IngressError::Forbidden(format!(
        "user {} may not read {what} of table {table}: needs group tarn-readers or tarn-readers-{table}, or to be its producer",
        claims.username
    ))
}

pub(crate) async fn get_status(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    let (table, id, claims, found) = lookup(&app, path, &headers).await?;
    if !may_read(&claims, &table, &found) {
        return Err(forbidden(&claims, &table, "the status of this document"));
    }
    tracing::info!(table = %table, id = %id, status = found.status().as_str(), "status read");
    let data = match found {
        Found::Row(r) => json!({
            "id": r.id,
            "table": r.table_name,
            "status": r.status,
            "reason": r.reason,
            "received_at": time(&r.received_at),
            "processed_at": time(&r.processed_at),
            "content_type": r.content_type,
            "detected_type": r.detected_type,
            "size_bytes": r.size_bytes,
            "sha256": r.sha256,
            "scan_engine": r.scan_engine,
            "scan_result": r.scan_result,
            "metadata_removed": r.metadata_removed,
            "records": r.records,
            "object_key": r.object_key,
        }),
        Found::Received {
            content_type,
            received_at,
            ..
        } => json!({
            "id": id,
            "table": table,
            "status": Status::Received,
            "reason": null,
            "received_at": received_at,
            "processed_at": null,
            "content_type": content_type,
            "detected_type": null,
            "size_bytes": null,
            "sha256": null,
            "scan_engine": null,
            "scan_result": null,
            "metadata_removed": null,
            "records": null,
            "object_key": null,
        }),
    };
    Ok(Json(json!({"success": true, "data": data})))
}

pub(crate) async fn get_content(
    State(app): State<App>,
    path: std::result::Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> Result<Response> {
    let (table, id, claims, found) = lookup(&app, path, &headers).await?;
    if !may_read(&claims, &table, &found) {
        return Err(forbidden(&claims, &table, "the contents"));
    }
    let row = match found {
        Found::Row(r) if r.status == Status::Stored => r,
        other => {
            return Err(IngressError::NotStored {
                id,
                status: other.status(),
            });
        }
    };
    let Some(object_key) = row.object_key.as_deref() else {
        return Err(IngressError::NoObject { table, id });
    };
    let object = match app.s.lake.get(object_key).await {
        Ok(o) => o,
        Err(e) if e.kind() == StoreErrorKind::NotFound => {
            return Err(IngressError::Internal(format!(
                "document {id} is stored but its object {object_key} is missing"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let content = envelope::open(
        app.s.kms.as_ref(),
        &EncryptionContext::document(&table, &id),
        &object.body,
    )
    .await?;
    let content_type = row.detected_type.as_deref().unwrap_or(&row.content_type);
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    tracing::info!(table = %table, id = %id, bytes = content.len(), "content read");
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        Body::from(content),
    )
        .into_response())
}
