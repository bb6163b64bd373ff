//! A document as it flows through the stages, and the [`Stage`] trait.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::Value;

/// One landed document, decrypted, with what the stages learned about it.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: String,
    pub table: String,
    /// the media type the producer declared (without parameters)
    pub content_type: String,
    pub producer: String,
    pub received_at: DateTime<Utc>,
    /// the document's bytes; a stage that rewrites them (strip) replaces them
    pub body: Bytes,
    /// set by validate: the type the bytes really are
    pub detected_type: Option<String>,
    /// set by validate for JSON tables: the records, each valid against the table's schema
    pub records: Option<Vec<Value>>,
    pub scan_engine: Option<String>,
    pub scan_result: Option<String>,
    pub metadata_removed: Vec<String>,
}

/// What a stage decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// go on to the next stage
    Continue,
    /// the document is bad (validation): it gets a `rejected` row and is kept in quarantine
    Reject(String),
    /// the document is dangerous or could not be made safe: `quarantined`, never in the lake
    Quarantine(String),
}

/// Why a stage could not decide; transient errors are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("transient: {0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// One step of the pipeline. Stages are pure in effect: they read and change the [`Document`]
/// and decide; all storage is the runner's. A stage must be safe to run twice on one document
/// (a crash re-runs it).
#[async_trait]
pub trait Stage: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    async fn process(&self, doc: &mut Document) -> Result<Verdict, StageError>;
}
