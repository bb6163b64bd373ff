//! The document routes' logic, the same behind the local server and the AWS Lambda:
//! `GET /table/{name}/object/{id}` (status) and `GET /table/{name}/object/{id}/content`.
//!
//! [`Documents`] answers for a caller whose token is already verified (by the server here, by
//! API Gateway's authorizer on AWS):
//! - status: a processed document's row, else `received` from the landed object's metadata;
//!   readable by `tarn-readers`/`tarn-readers-<table>` and by the document's producer;
//! - content: only for `tarn-readers`/`tarn-readers-<table>` and stored binaries that were
//!   scanned clean (a document stored without a scan, `scan_result` `skipped`, is refused with
//!   409 `not_scanned` unless the deployment serves unscanned content); a presigned URL living
//!   at most 5 minutes where the lake store has them (S3), else the opened bytes.

use crate::auth::Claims;
use crate::error::{IngressError, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tarn_core::document::{ingress_key, meta, scan_result, status_key};
use tarn_core::objects::{MAX_URL_TTL, Sanitized, read_sanitized};
use tarn_core::{DocumentRow, ErrorKind as StoreErrorKind, Kms, ObjectStore, Status};

/// What is known of a document.
#[derive(Debug, Clone)]
pub enum Found {
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
    pub fn producer(&self) -> &str {
        match self {
            Found::Row(r) => &r.producer,
            Found::Received { producer, .. } => producer,
        }
    }

    pub fn status(&self) -> Status {
        match self {
            Found::Row(r) => r.status,
            Found::Received { .. } => Status::Received,
        }
    }
}

/// A document's content as the caller gets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// a presigned URL (the answer is a redirect to it)
    Redirect(String),
    /// the sanitized bytes, with their content type
    Inline {
        content_type: String,
        bytes: Vec<u8>,
    },
}

/// The stores the document routes read, and the tables they know.
#[derive(Debug, Clone)]
pub struct Documents {
    pub tables: BTreeSet<String>,
    /// landed objects (`id=<uuid>`): a `received` document's metadata
    pub ingress: Arc<dyn ObjectStore>,
    /// sanitized objects
    pub lake: Arc<dyn ObjectStore>,
    /// status records (`documents/<id>.json`)
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    /// life of a content URL (at most 5 minutes)
    pub url_ttl: Duration,
    /// serve the content of documents stored without a scan (a deployment with no scanner that
    /// says so explicitly); `false` by default
    pub serve_unscanned: bool,
}

fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The canonical (lowercase, hyphenated) form of a document id; `None` for anything but a uuid,
/// which names no document and never reaches a store key.
pub fn parse_id(raw: &str) -> Option<String> {
    uuid::Uuid::parse_str(raw)
        .ok()
        .map(|u| u.hyphenated().to_string())
}

impl Documents {
    /// Over `tables`, with content URLs living [`MAX_URL_TTL`].
    pub fn new(
        tables: impl IntoIterator<Item = String>,
        ingress: Arc<dyn ObjectStore>,
        lake: Arc<dyn ObjectStore>,
        state: Arc<dyn ObjectStore>,
        kms: Arc<dyn Kms>,
    ) -> Self {
        Self {
            tables: tables.into_iter().collect(),
            ingress,
            lake,
            state,
            kms,
            url_ttl: MAX_URL_TTL,
            serve_unscanned: false,
        }
    }

    /// Serve (`true`) or refuse (`false`, the default) the content of documents stored without
    /// a scan.
    pub fn serve_unscanned(mut self, serve: bool) -> Self {
        self.serve_unscanned = serve;
        self
    }

    /// Finds document `raw_id` in a known table.
    async fn lookup(&self, table: &str, raw_id: &str) -> Result<(String, Found)> {
        let unknown = |id: &str| IngressError::UnknownDocument {
            table: table.to_string(),
            id: id.to_string(),
        };
        let Some(id) = parse_id(raw_id) else {
            return Err(unknown("(not a uuid)"));
        };
        let found = self.find(table, &id).await?.ok_or_else(|| unknown(&id))?;
        Ok((id, found))
    }

    fn known(&self, table: &str) -> Result<()> {
        if !tarn_catalog::schemas::is_valid_table_name(table) {
            return Err(IngressError::InvalidTableName);
        }
        if !self.tables.contains(table) {
            return Err(IngressError::UnknownTable {
                table: table.to_string(),
            });
        }
        Ok(())
    }

    /// The status record, else the landed object; `None` when neither is there for this table.
    pub async fn find(&self, table: &str, id: &str) -> Result<Option<Found>> {
        if let Some(row) = self.read_row(id).await? {
            return Ok((row.table_name == table).then(|| Found::Row(Box::new(row))));
        }
        if let Some(info) = self.ingress.head(&ingress_key(id)).await? {
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
        Ok(self
            .read_row(id)
            .await?
            .filter(|r| r.table_name == table)
            .map(|r| Found::Row(Box::new(r))))
    }

    async fn read_row(&self, id: &str) -> Result<Option<DocumentRow>> {
        match self.state.get(&status_key(id)).await {
            Ok(got) => serde_json::from_slice(&got.body).map(Some).map_err(|e| {
                IngressError::Internal(format!("status record of {id} is not a document row: {e}"))
            }),
            Err(e) if e.kind() == StoreErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The `data` of the status answer, for a caller holding `claims`.
    pub async fn status(&self, claims: &Claims, table: &str, raw_id: &str) -> Result<Value> {
        self.known(table)?;
        let (id, found) = self.lookup(table, raw_id).await?;
        if !(claims.can_read(table) || claims.username == found.producer()) {
            return Err(IngressError::Forbidden(format!(
                "user {} may not read the status of this document of table {table}: needs group tarn-readers or tarn-readers-{table}, or to be its producer",
                claims.username
            )));
        }
        tracing::info!(table = %table, id = %id, status = found.status().as_str(), "status read");
        Ok(status_data(table, &id, found))
    }

    /// The sanitized content of a stored binary, for a caller holding `claims`.
    pub async fn content(&self, claims: &Claims, table: &str, raw_id: &str) -> Result<Content> {
        self.known(table)?;
        if !claims.can_read(table) {
            return Err(IngressError::Forbidden(format!(
                "user {} may not read the contents of table {table}: needs group tarn-readers or tarn-readers-{table}",
                claims.username
            )));
        }
        let (id, found) = self.lookup(table, raw_id).await?;
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
            return Err(IngressError::NoObject {
                table: table.to_string(),
                id,
            });
        };
        // a stored document was scanned clean, released by an operator past a scan that could
        // not decide, or not scanned at all (no scan stage, or a row written before the scan
        // stage existed): only a clean or released one is served unless told otherwise
        let served = [scan_result::CLEAN, scan_result::RELEASED];
        if !served.contains(&row.scan_result.as_deref().unwrap_or_default())
            && !self.serve_unscanned
        {
            let scan_result = row.scan_result.clone().unwrap_or_else(|| "null".into());
            tracing::warn!(table = %table, id = %id, %scan_result, "content of an unscanned document refused");
            return Err(IngressError::NotScanned { id, scan_result });
        }
        let content_type = row
            .detected_type
            .clone()
            .unwrap_or_else(|| row.content_type.clone());
        let got = read_sanitized(
            self.lake.as_ref(),
            self.kms.as_ref(),
            table,
            &id,
            object_key,
            &content_type,
            self.url_ttl,
        )
        .await;
        match got {
            Ok(Sanitized::Url(url)) => {
                tracing::info!(table = %table, id = %id, "content url handed out");
                Ok(Content::Redirect(url))
            }
            Ok(Sanitized::Bytes(bytes)) => {
                tracing::info!(table = %table, id = %id, bytes = bytes.len(), "content read");
                Ok(Content::Inline {
                    content_type,
                    bytes,
                })
            }
            Err(e) if e.kind() == StoreErrorKind::NotFound => Err(IngressError::Internal(format!(
                "document {id} is stored but its object {object_key} is missing"
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// The status answer's `data` for a found document.
pub fn status_data(table: &str, id: &str, found: Found) -> Value {
    match found {
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
    }
}
