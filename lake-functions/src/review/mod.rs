//! Review: operators looking at and steering processed documents, one protocol for
//! `tarn quarantine` and `tarn rescan` on both backends (each a thin driver over a [`Lake`]).
//!
//! - [`list`] and [`show`]: the quarantine (rejected and quarantined documents) from their
//!   status records and quarantine copies' metadata; never a document's content.
//! - [`rerun::replay`]: the pipeline's stages again on a quarantine copy (after a schema fix or
//!   a scanner outage); [`rerun::release`]: an operator's override past the stage that refused
//!   a quarantined document, never for an infected one.
//! - [`rescan::rescan`]: stored binary objects scanned again, the infected moved to quarantine;
//!   [`rescan::on_definitions_change`]: the same when the scanner's definitions changed.
//!
//! Every action commits through [`Lake::commit`] as a [`Revision`](crate::commit::Revision):
//! the document keeps its id, its status record moves on, a new `documents` row is appended,
//! and the outcome it had is kept as a history record naming the action and the operator.

pub mod rerun;
pub mod rescan;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

use crate::commit::revision::{self, HistoryEntry};
use crate::error::{LakeError, Result};
use crate::lake::Lake;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tarn_core::document::quarantine_key;
use tarn_core::{DocumentRow, Status};

/// How many documents are read or processed at once.
const AT_ONCE: usize = 16;

/// Which quarantined documents an operator means.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub table: Option<String>,
    /// a part of the reason, case ignored
    pub reason: Option<String>,
    /// `rejected` or `quarantined`
    pub status: Option<Status>,
    /// processed at or after
    pub since: Option<DateTime<Utc>>,
    /// processed before
    pub until: Option<DateTime<Utc>>,
}

impl Filter {
    pub fn matches(&self, row: &DocumentRow) -> bool {
        let reason = row.reason.as_deref().unwrap_or_default().to_lowercase();
        matches!(row.status, Status::Rejected | Status::Quarantined)
            && self.table.as_ref().is_none_or(|t| *t == row.table_name)
            && self
                .reason
                .as_ref()
                .is_none_or(|r| reason.contains(&r.to_lowercase()))
            && self.status.is_none_or(|s| s == row.status)
            && self.since.is_none_or(|t| row.processed_at >= t)
            && self.until.is_none_or(|t| row.processed_at < t)
    }
}

/// One document in review: its status record, its quarantine copy's size, and its history.
#[derive(Debug, Clone, Serialize)]
pub struct Detail {
    pub row: DocumentRow,
    /// the stored size of its quarantine copy (encrypted), when it has one
    pub copy_bytes: Option<u64>,
    /// its earlier outcomes, oldest first
    pub history: Vec<HistoryEntry>,
}

/// The rejected and quarantined documents matching `filter`, oldest processed first.
pub async fn list(lake: &Lake, filter: &Filter) -> Result<Vec<DocumentRow>> {
    let prefix = filter
        .table
        .as_ref()
        .map(|t| format!("{t}/"))
        .unwrap_or_default();
    let ids: Vec<String> = lake
        .quarantine
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|o| o.key.rsplit_once('/').map(|(_, id)| id.to_string()))
        .collect();
    let rows: Vec<Option<DocumentRow>> = futures::stream::iter(ids)
        .map(|id| async move { revision::status_record(lake.state.as_ref(), &id).await })
        .buffered(AT_ONCE)
        .try_collect()
        .await?;
    // a copy whose batch is not committed has no status record yet; one whose document was
    // replayed into the lake is removed when its batch finishes
    let mut rows: Vec<DocumentRow> = rows
        .into_iter()
        .flatten()
        .filter(|r| filter.matches(r))
        .collect();
    rows.sort_by(|a, b| (a.processed_at, &a.id).cmp(&(b.processed_at, &b.id)));
    rows.dedup_by(|a, b| a.id == b.id);
    Ok(rows)
}

/// Refuses what is not a document id (a uuid) before it becomes part of a key.
pub fn check_id(id: &str) -> Result<()> {
    match uuid::Uuid::parse_str(id) {
        Ok(_) => Ok(()),
        Err(_) => Err(LakeError::Refused(format!(
            "{id:?} is not a document id (a uuid): tarn quarantine list shows the ids"
        ))),
    }
}

/// Document `id` in review, whatever its status.
pub async fn show(lake: &Lake, id: &str) -> Result<Detail> {
    check_id(id)?;
    let row = revision::status_record(lake.state.as_ref(), id)
        .await?
        .ok_or_else(|| unknown(id))?;
    let copy_bytes = lake
        .quarantine
        .head(&quarantine_key(&row.table_name, id))
        .await?
        .map(|i| i.size);
    let history = revision::history(lake.state.as_ref(), id).await?;
    Ok(Detail {
        row,
        copy_bytes,
        history,
    })
}

fn unknown(id: &str) -> LakeError {
    LakeError::Refused(format!(
        "no processed document {id}: check the id (tarn quarantine list shows the quarantined ones)"
    ))
}

/// Whether `scan_result` names a signature: the document is infected.
pub fn infected(scan_result: Option<&str>) -> bool {
    use crate::scan::{SKIPPED, UNSCANNABLE};
    use tarn_core::document::scan_result::{CLEAN, RELEASED};
    scan_result.is_some_and(|s| ![CLEAN, RELEASED, SKIPPED, UNSCANNABLE].contains(&s))
}

/// What an action did to one document.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    pub id: String,
    pub table: String,
    /// its status before the action
    pub before: Status,
    /// its status after, `None` when the action left it as it was
    pub after: Option<Status>,
    /// the new outcome's reason, or why nothing changed
    pub reason: Option<String>,
}

impl Outcome {
    fn unchanged(row: &DocumentRow, why: impl Into<String>) -> Self {
        Self {
            id: row.id.clone(),
            table: row.table_name.clone(),
            before: row.status,
            after: None,
            reason: Some(why.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_signatures_are_infections() {
        for s in ["clean", "released", "skipped", "unscannable"] {
            assert!(!infected(Some(s)), "{s}");
        }
        assert!(!infected(None));
        assert!(infected(Some("Eicar-Test-Signature")));
    }
}
