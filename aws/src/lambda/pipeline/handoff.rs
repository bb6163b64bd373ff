//! A document between two functions: as the stages left it, sealed with KMS envelope encryption
//! under `{table, id}`, at `work/<next stage>/id=<uuid>` in the state store (whose notifications
//! trigger the next function).

use super::Retry;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tarn_core::document::meta;
use tarn_core::{EncryptionContext, ErrorKind, Kms, Metadata, ObjectStore, envelope};
use tarn_lake::item::{Origin, UNKNOWN_TABLE};
use tarn_lake::{Document, Verdict};

/// A document between two functions. JSON documents travel as their bytes: normalize parses
/// their records again, so a hand-off nests no deeper than the document itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Handoff {
    pub id: String,
    pub table: String,
    pub content_type: String,
    pub producer: String,
    pub received_at: DateTime<Utc>,
    /// base64 of the document's bytes as the stages left them
    pub body: String,
    /// size and sha256 of the landed document (before any stage changed it)
    pub size_bytes: i64,
    pub sha256: Option<String>,
    pub detected_type: Option<String>,
    pub scan_engine: Option<String>,
    pub scan_result: Option<String>,
    pub metadata_removed: Vec<String>,
    pub verdict: Verdict,
    /// set when the landed object was gone before the first stage could read it: why
    #[serde(default)]
    pub lost: Option<String>,
}

impl Handoff {
    pub fn new(doc: &Document, origin: &Origin, verdict: Verdict) -> Self {
        Self {
            id: doc.id.clone(),
            table: doc.table.clone(),
            content_type: doc.content_type.clone(),
            producer: doc.producer.clone(),
            received_at: doc.received_at,
            body: B64.encode(&doc.body),
            size_bytes: origin.size_bytes,
            sha256: origin.sha256.clone(),
            detected_type: doc.detected_type.clone(),
            scan_engine: doc.scan_engine.clone(),
            scan_result: doc.scan_result.clone(),
            metadata_removed: doc.metadata_removed.clone(),
            verdict,
            lost: None,
        }
    }

    /// The hand-off of a document whose landed object was gone before the first stage read it.
    pub fn lost(id: &str, now: DateTime<Utc>, reason: String) -> Self {
        Self {
            id: id.to_string(),
            table: UNKNOWN_TABLE.to_string(),
            content_type: String::new(),
            producer: "unknown".into(),
            received_at: now,
            body: String::new(),
            size_bytes: 0,
            sha256: None,
            detected_type: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
            verdict: Verdict::Quarantine(reason.clone()),
            lost: Some(reason),
        }
    }

    pub fn origin(&self) -> Origin {
        Origin {
            size_bytes: self.size_bytes,
            sha256: self.sha256.clone(),
        }
    }

    pub fn document(&self) -> Result<Document, String> {
        Ok(Document {
            id: self.id.clone(),
            table: self.table.clone(),
            content_type: self.content_type.clone(),
            producer: self.producer.clone(),
            received_at: self.received_at,
            body: Bytes::from(
                B64.decode(&self.body)
                    .map_err(|e| format!("hand-off body is not base64: {e}"))?,
            ),
            detected_type: self.detected_type.clone(),
            records: None,
            scan_engine: self.scan_engine.clone(),
            scan_result: self.scan_result.clone(),
            metadata_removed: self.metadata_removed.clone(),
        })
    }
}

/// The state-store key of a document's hand-off to `stage`.
pub fn handoff_key(stage: &str, id: &str) -> String {
    format!("work/{stage}/id={id}")
}

pub async fn put(
    state: &dyn ObjectStore,
    kms: &dyn Kms,
    stage: &str,
    h: &Handoff,
) -> Result<(), Retry> {
    let ctx = EncryptionContext::document(&h.table, &h.id);
    let plain = serde_json::to_vec(h).map_err(|e| Retry(e.to_string()))?;
    let sealed = envelope::seal(kms, &ctx, &plain).await?;
    let m = Metadata::from([(meta::TABLE.to_string(), h.table.clone())]);
    state
        .put(&handoff_key(stage, &h.id), sealed.into(), m)
        .await?;
    Ok(())
}

/// `Ok(None)` when there is no hand-off (already moved on).
pub async fn get(
    state: &dyn ObjectStore,
    kms: &dyn Kms,
    stage: &str,
    id: &str,
) -> Result<Option<Handoff>, Retry> {
    let obj = match state.get(&handoff_key(stage, id)).await {
        Ok(o) => o,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let table = obj
        .info
        .metadata
        .get(meta::TABLE)
        .cloned()
        .unwrap_or_default();
    let plain = envelope::open(kms, &EncryptionContext::document(&table, id), &obj.body).await?;
    serde_json::from_slice(&plain).map(Some).map_err(|e| {
        Retry(format!(
            "hand-off {} is unreadable: {e}",
            handoff_key(stage, id)
        ))
    })
}
