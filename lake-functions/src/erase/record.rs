//! The erasure record (`erasures/<id>.json` in the state store): what an erasure was asked
//! (selector, who, why) and what it planned, written before anything changes and marked
//! finished once everything is done; and [`status`], whether the bytes are physically gone.

use super::plan::{ErasurePlan, Selector};
use crate::compact::{TOMBSTONES_PREFIX, Tombstone};
use crate::error::{LakeError, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tarn_core::ObjectStore;

/// Where erasure records live in the state store.
pub const ERASURES_PREFIX: &str = "erasures/";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub id: String,
    pub selector: Selector,
    pub reason: String,
    pub by: String,
    pub started: DateTime<Utc>,
    /// `None` while the erasure is not done (the next run finishes it)
    pub finished: Option<DateTime<Utc>>,
    pub plan: ErasurePlan,
    /// table rows removed
    pub rows: u64,
    /// partitions rewritten
    pub partitions: usize,
    /// when the last tombstone that may hold erased bytes ends its grace period
    pub bytes_gone_after: Option<DateTime<Utc>>,
}

pub(super) fn key(id: &str) -> String {
    format!("{ERASURES_PREFIX}{id}.json")
}

pub(super) async fn put(state: &dyn ObjectStore, r: &ErasureRecord) -> Result<()> {
    let body = serde_json::to_vec_pretty(r).expect("a record serializes");
    state
        .put(&key(&r.id), body.into(), Default::default())
        .await?;
    Ok(())
}

/// Every erasure record, oldest first.
pub(super) async fn all(state: &dyn ObjectStore) -> Result<Vec<ErasureRecord>> {
    let mut out = Vec::new();
    for o in state.list(ERASURES_PREFIX).await? {
        match state.get(&o.key).await {
            Ok(b) => out.push(
                serde_json::from_slice::<ErasureRecord>(&b.body).map_err(|e| {
                    LakeError::Pipeline(format!("erasure record {} is unreadable: {e}", o.key))
                })?,
            ),
            Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    out.sort_by(|a, b| (a.started, &a.id).cmp(&(b.started, &b.id)));
    Ok(out)
}

pub(super) async fn unfinished(state: &dyn ObjectStore) -> Result<Vec<ErasureRecord>> {
    Ok(all(state)
        .await?
        .into_iter()
        .filter(|r| r.finished.is_none())
        .collect())
}

/// The tombstones created before `until`: replaced files that may still hold erased bytes.
async fn tombstones_before(
    state: &dyn ObjectStore,
    until: DateTime<Utc>,
) -> Result<Vec<Tombstone>> {
    let mut out = Vec::new();
    for o in state.list(TOMBSTONES_PREFIX).await? {
        match state.get(&o.key).await {
            Ok(b) => {
                let t: Tombstone = serde_json::from_slice(&b.body).map_err(|e| {
                    LakeError::Pipeline(format!("tombstone {} is unreadable: {e}", o.key))
                })?;
                if t.created <= until {
                    out.push(t);
                }
            }
            Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(out)
}

/// When the vacuum may remove the last replaced files that can hold `r`'s rows: the latest end
/// of the grace period of the tombstones written up to its finish (its own rewrites', and
/// earlier compactions' whose old files may hold the same rows).
pub(super) async fn bytes_gone_after(
    state: &dyn ObjectStore,
    r: &ErasureRecord,
) -> Result<DateTime<Utc>> {
    let until = r.finished.unwrap_or(r.started);
    Ok(tombstones_before(state, until)
        .await?
        .into_iter()
        .map(|t| t.delete_after)
        .max()
        .unwrap_or(until))
}

/// One erasure as `tarn erase --status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErasureStatus {
    pub id: String,
    pub selector: String,
    pub by: String,
    pub reason: String,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub documents: usize,
    pub rows: u64,
    pub objects: usize,
    /// `in_progress` (a run stopped; the next run finishes it), `pending_vacuum` (replaced
    /// files still within their grace period) or `gone` (no byte of it is left in the stores)
    pub state: String,
    pub bytes_gone_after: Option<DateTime<Utc>>,
}

/// Every erasure, oldest first, with whether its bytes are physically gone: finished, and no
/// tombstone written up to its finish is left (the vacuum deleted their files).
pub async fn status(state: &dyn ObjectStore) -> Result<Vec<ErasureStatus>> {
    let mut out = Vec::new();
    for r in all(state).await? {
        let (st, after) = match r.finished {
            None => ("in_progress", None),
            Some(f) => {
                let left = tombstones_before(state, f).await?;
                match left.iter().map(|t| t.delete_after).max() {
                    Some(after) => ("pending_vacuum", Some(after)),
                    None => ("gone", r.bytes_gone_after),
                }
            }
        };
        out.push(ErasureStatus {
            id: r.id.clone(),
            selector: r.selector.describe(),
            by: r.by.clone(),
            reason: r.reason.clone(),
            started: r.started,
            finished: r.finished,
            documents: r.plan.documents.len(),
            rows: r.rows,
            objects: r.plan.objects.len(),
            state: st.into(),
            bytes_gone_after: after,
        });
    }
    Ok(out)
}
