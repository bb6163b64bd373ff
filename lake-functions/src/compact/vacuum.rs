//! Vacuum: the files a committed compaction replaced stay readable for a grace period (queries
//! planned before the swap may still read them). The commit records them in a [`Tombstone`]
//! (`compaction/tombstones/<job>.json` in the state store); [`Compaction::vacuum`] deletes them
//! once the grace period is over, never a file under a partition's current location, with every
//! older version a versioned bucket keeps of it (so an erasure's replaced files leave nothing).

use super::{Compaction, Job};
use crate::error::{LakeError, Result};
use crate::lock::COMPACTION_LOCK;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::warn;

/// Where tombstones live in the state store.
pub const TOMBSTONES_PREFIX: &str = "compaction/tombstones/";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct VacuumReport {
    /// tombstones whose files were deleted
    pub tombstones_done: usize,
    pub files_deleted: usize,
    /// tombstones still in their grace period
    pub tombstones_pending: usize,
}

/// The old files of a committed compaction, kept until `delete_after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    pub id: String,
    pub table: String,
    pub values: Vec<String>,
    pub old_location: String,
    pub new_location: String,
    /// lake keys
    pub keys: Vec<String>,
    pub created: DateTime<Utc>,
    pub delete_after: DateTime<Utc>,
}

impl Compaction {
    /// Deletes the old files of every tombstone whose grace period is over.
    pub async fn vacuum(self) -> Result<VacuumReport> {
        let _run = self.deps.lock.acquire(COMPACTION_LOCK).await?;
        self.vacuum_now().await
    }

    pub(crate) async fn put_tombstone(&self, job: &Job, keys: Vec<String>) -> Result<()> {
        let now = self.deps.clock.now();
        let grace = chrono::Duration::from_std(self.grace).unwrap_or(chrono::Duration::MAX);
        let t = Tombstone {
            id: job.id.clone(),
            table: job.table.clone(),
            values: job.values.clone(),
            old_location: job.old_location.clone(),
            new_location: job.new_location.clone(),
            keys,
            created: now,
            delete_after: now
                .checked_add_signed(grace)
                .unwrap_or(DateTime::<Utc>::MAX_UTC),
        };
        self.put_json(&format!("{TOMBSTONES_PREFIX}{}.json", job.id), &t)
            .await
    }

    pub(crate) async fn vacuum_now(&self) -> Result<VacuumReport> {
        let mut report = VacuumReport::default();
        let now = self.deps.clock.now();
        for obj in self.deps.state.list(TOMBSTONES_PREFIX).await? {
            let t: Tombstone = match self.deps.state.get(&obj.key).await {
                Ok(b) => serde_json::from_slice(&b.body).map_err(|e| {
                    LakeError::Pipeline(format!("tombstone {} is unreadable: {e}", obj.key))
                })?,
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if t.delete_after > now {
                report.tombstones_pending += 1;
                continue;
            }
            // never delete what a partition shows now
            let live = match self.location_of(&t.table, &t.values).await? {
                Some(l) => Some(self.key_of(&l)?),
                None => None,
            };
            for key in &t.keys {
                if live.as_ref().is_some_and(|l| key.starts_with(l.as_str())) {
                    warn!(
                        key,
                        "a tombstoned file is under its partition's current location; kept"
                    );
                    continue;
                }
                self.deps.lake.delete_all_versions(key).await?;
                report.files_deleted += 1;
            }
            self.deps.state.delete(&obj.key).await?;
            report.tombstones_done += 1;
        }
        Ok(report)
    }
}
