//! What every part agrees on about one document: where it lands, the metadata it carries, and
//! the row it gets in the `documents` table (which is also its status record).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// User-metadata keys of a landed object (the same API Gateway's S3 proxy writes).
pub mod meta {
    pub const TABLE: &str = "table";
    pub const REQUEST_TIME: &str = "request-time";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const PRODUCER: &str = "producer";
    /// set on quarantined objects
    pub const REASON: &str = "reason";
    /// set on sanitized objects sealed with envelope encryption ([`crate::objects`])
    pub const ENVELOPE: &str = "envelope";
    /// set on documents landed through a multipart upload: how their body is encoded
    /// ([`crate::parts`]); absent on a POSTed document (its base64)
    pub const ENCODING: &str = "encoding";
}

/// The ingress store key of a document: `id=<uuid>`.
pub fn ingress_key(id: &str) -> String {
    format!("id={id}")
}

/// The id in an ingress key, if it is one.
pub fn id_from_ingress_key(key: &str) -> Option<&str> {
    key.strip_prefix("id=")
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
}

/// The state store key of a document's final row (its status record).
pub fn status_key(id: &str) -> String {
    format!("documents/{id}.json")
}

/// The quarantine store key of a document.
pub fn quarantine_key(table: &str, id: &str) -> String {
    format!("{table}/{id}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// landed, not processed yet
    Received,
    /// in the lake
    Stored,
    /// failed a scan or kept failing a stage; kept in quarantine, never readable in the lake
    Quarantined,
    /// refused by validation (bad JSON, schema mismatch, content type not matching the bytes)
    Rejected,
    /// its landed object was gone before the pipeline could process it (a late redelivery)
    Lost,
    /// removed by an erasure (`tarn erase`, retention): its row keeps no content
    Erased,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Received => "received",
            Status::Stored => "stored",
            Status::Quarantined => "quarantined",
            Status::Rejected => "rejected",
            Status::Lost => "lost",
            Status::Erased => "erased",
        }
    }
}

/// One row of the `documents` table (plus its partition values `table_name` and `dt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentRow {
    pub id: String,
    pub table_name: String,
    pub dt: String,
    pub content_type: String,
    pub detected_type: Option<String>,
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub producer: String,
    pub received_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
    pub status: Status,
    pub reason: Option<String>,
    pub scan_engine: Option<String>,
    pub scan_result: Option<String>,
    pub metadata_removed: Vec<String>,
    /// lake key of the stored object (binary documents)
    pub object_key: Option<String>,
    /// rows written (JSON documents)
    pub records: Option<i64>,
}

/// The `scan_result` values the content route serves.
pub mod scan_result {
    /// the scan found nothing
    pub const CLEAN: &str = "clean";
    /// an operator released the document past a scan that could not decide
    /// (`tarn quarantine release`): served as an explicit override
    pub const RELEASED: &str = "released";
}

/// Lands `document` in the ingress store as `id=<uuid>`, as the ingress does: its base64, sealed
/// under `{table, id}`, with the metadata of docs/contract.md (Stores and the lake's layout;
/// `request_time` as given). Returns the id once the store says the object is durable.
pub async fn land(
    ingress: &dyn crate::ObjectStore,
    kms: &dyn crate::Kms,
    table: &str,
    producer: &str,
    content_type: &str,
    request_time: &str,
    document: &[u8],
) -> crate::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    let (sealed, metadata) = landed_object(
        kms,
        table,
        &id,
        producer,
        content_type,
        request_time,
        document,
        true,
    )
    .await?;
    ingress.put(&ingress_key(&id), sealed, metadata).await?;
    Ok(id)
}

/// The body and metadata of document `id` as it lands: its base64, sealed under `{table, id}`
/// when `seal` (else as API Gateway writes it, for a bucket that encrypts at rest), with
/// `table`, `request-time`, `content-type` and `producer`.
#[allow(clippy::too_many_arguments)]
pub async fn landed_object(
    kms: &dyn crate::Kms,
    table: &str,
    id: &str,
    producer: &str,
    content_type: &str,
    request_time: &str,
    document: &[u8],
    seal: bool,
) -> crate::Result<(bytes::Bytes, crate::Metadata)> {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(document);
    let sealed = if seal {
        crate::envelope::seal(
            kms,
            &crate::EncryptionContext::document(table, id),
            encoded.as_bytes(),
        )
        .await?
    } else {
        encoded.into_bytes()
    };
    let metadata = crate::Metadata::from([
        (meta::TABLE.to_string(), table.to_string()),
        (meta::REQUEST_TIME.to_string(), request_time.to_string()),
        (meta::CONTENT_TYPE.to_string(), content_type.to_string()),
        (meta::PRODUCER.to_string(), producer.to_string()),
    ]);
    Ok((sealed.into(), metadata))
}
