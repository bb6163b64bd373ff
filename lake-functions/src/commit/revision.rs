//! A revision: a batch item that moves a processed document on from its outcome (an operator's
//! replay or release of a quarantined document, a rescan quarantining a stored one). The
//! document keeps its id; its status record is replaced, a new `documents` row is appended
//! (the earlier rows stay as its history), and the outcome it replaces is kept as a history
//! record (`history/<id>/<millis>.json` in the state store) naming the action and the operator.
//!
//! The commit takes an item with a revision only while the document's status record is still
//! exactly [`Revision::previous`], so a re-run after a crash or a second operator never moves a
//! document twice.

use crate::error::{LakeError, Result};
use serde::{Deserialize, Serialize};
use tarn_core::document::status_key;
use tarn_core::{DocumentRow, ErrorKind, ObjectStore, Status};

/// The start of every revision batch's id (see [`crate::Lake::commit`]).
pub const BATCH_PREFIX: &str = "review-";

/// What moves a document on, by whom.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revision {
    /// the status record the item replaces
    pub previous: DocumentRow,
    /// `replay`, `release` or `rescan`
    pub action: String,
    /// who asked for it (an operator's name, or a component)
    pub operator: String,
    /// the operator's reason (release), or what the action found (rescan)
    pub note: Option<String>,
}

impl Revision {
    /// Whether the document had a quarantine copy before the batch (it was rejected or
    /// quarantined): a rollback keeps it.
    pub fn had_copy(&self) -> bool {
        matches!(self.previous.status, Status::Rejected | Status::Quarantined)
    }
}

/// One entry of a document's history: an outcome it had, and what moved it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// the outcome as its status record held it
    pub row: DocumentRow,
    pub action: String,
    pub operator: String,
    pub note: Option<String>,
    /// when the next outcome was committed (its batch's time)
    pub superseded_at: chrono::DateTime<chrono::Utc>,
}

/// The state-store prefix of document `id`'s history records.
pub fn history_prefix(id: &str) -> String {
    format!("history/{id}/")
}

/// The history record of `entry`, keyed by the time its outcome was processed.
pub fn history_key(entry: &HistoryEntry) -> String {
    format!(
        "{}{:013}.json",
        history_prefix(&entry.row.id),
        entry.row.processed_at.timestamp_millis()
    )
}

/// Document `id`'s status record, if it has one.
pub async fn status_record(state: &dyn ObjectStore, id: &str) -> Result<Option<DocumentRow>> {
    match state.get(&status_key(id)).await {
        Ok(o) => serde_json::from_slice(&o.body).map(Some).map_err(|e| {
            LakeError::Pipeline(format!("status record of {id} is not a document row: {e}"))
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Document `id`'s history, oldest first.
pub async fn history(state: &dyn ObjectStore, id: &str) -> Result<Vec<HistoryEntry>> {
    let mut out = Vec::new();
    for o in state.list(&history_prefix(id)).await? {
        match state.get(&o.key).await {
            Ok(got) => out.push(serde_json::from_slice(&got.body).map_err(|e| {
                LakeError::Pipeline(format!("history record {} is unreadable: {e}", o.key))
            })?),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_by_key(|h: &HistoryEntry| h.superseded_at);
    Ok(out)
}
