//! The batch commit: how processed documents enter the lake exactly once. The local runner
//! ([`crate::runner`]) and the normalize Lambda are thin drivers of this module; compaction reads
//! what is still pending through it.
//!
//! [`Lake::commit`], under the lake's write lock:
//! 1. an earlier attempt of the same batch id is finished (committed) or its writes undone;
//! 2. the plan ([`plan::plan`]): one Parquet file per table partition, under the partition's
//!    *current* catalog location, named after the batch and this attempt;
//! 3. the manifest (`batches/<batch>.json`, [`manifest`]), uncommitted, naming the rows and files;
//! 4. quarantine copies, sanitized objects, Parquet files, partitions ([`plan::write`]);
//! 5. a fencing check: the write lock must still be held, or the batch stops here;
//! 6. the manifest marked committed — the commit point;
//!
//! then, without the lock, [`Lake::finish`]: each document's status record, its landed object
//! deleted, the batch's consumed inputs and claims deleted, the manifest deleted.
//!
//! An item may carry a [`Revision`] (a replay, release or rescan of a processed document): it is
//! committed only while the document's status record is still the one the revision replaces;
//! before that check, committed batches still unfinished are finished, so a committed revision
//! is never repeated, and interrupted revision batches (ids starting `review-`) are rolled back
//! (only there, under the lock: [`Lake::recover`] leaves them alone, since an operator's command
//! may be committing one beside the pipeline). Finishing a revision also writes its history
//! record and retires what the new outcome replaces (the quarantine copy of a document now
//! stored, the sanitized object of one now quarantined); rolling it back keeps a quarantine copy
//! that was there before.
//!
//! A crash anywhere leaves a manifest: [`Lake::recover`] (or a driver's own resolution, like the
//! Lambdas' claims) finishes a committed one and rolls back an uncommitted one
//! ([`Lake::rollback`]: its files, objects and quarantine copies deleted), after which its
//! documents, still landed, are processed again. [`Lake::pending_files`] lists what uncommitted
//! batches may still write, which compaction leaves alone.

pub mod manifest;
pub mod plan;
pub mod revision;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use manifest::Manifest;
pub use plan::{BatchItem, BatchPlan, PlannedFile};
pub use revision::{HistoryEntry, Revision};

use crate::error::{LakeError, Result};
use crate::lake::Lake;
use crate::lock::WRITE_LOCK;
use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeSet;
use std::time::Duration;
use tarn_core::document::{ingress_key, quarantine_key, status_key};
use tarn_core::{DocumentRow, Status};
use tracing::info;

/// How many deletes or status writes go to a store at once (the local store commits concurrent
/// writes together).
const AT_ONCE: usize = 512;

/// State keys a batch carries beside its documents (see [`Manifest`]).
#[derive(Debug, Clone, Default)]
pub struct StateKeys {
    /// consumed: removed once the batch is committed
    pub inputs: Vec<String>,
    /// held: removed once the batch is committed or rolled back
    pub claims: Vec<String>,
}

impl Lake {
    /// Commits `items` as batch `batch` (see the module docs) and returns the rows it committed.
    /// Retrying with the same batch id is safe: an uncommitted earlier attempt is undone and
    /// redone; a committed one is finished and *its* rows are returned. Items whose document
    /// already has a status record are left out. So a caller must treat an item whose row is not
    /// returned as committed elsewhere when its status record exists, else as not committed.
    pub async fn commit(
        &self,
        batch: &str,
        items: Vec<BatchItem>,
        keys: StateKeys,
    ) -> Result<Vec<DocumentRow>> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let state = self.state.as_ref();
        let guard = self.lock.acquire(WRITE_LOCK).await?;
        match manifest::read(state, batch).await? {
            Some(m) if m.committed => {
                drop(guard);
                self.finish(&m).await?;
                return Ok(m.rows);
            }
            Some(m) => self.undo_writes(&m).await?,
            None => {}
        }
        if items.iter().any(|it| it.revision.is_some()) {
            self.resolve_revisions(batch).await?;
        }
        // documents another attempt committed meanwhile (their status records are written) are
        // done: a batch never writes a document twice
        let items = self.not_committed(items).await?;
        if items.is_empty() {
            return Ok(vec![]);
        }
        let mut items = items;
        let now = self.clock.now();
        for it in &mut items {
            it.row.processed_at = now;
        }
        let attempt = uuid::Uuid::new_v4().simple().to_string();
        let stem = format!("{batch}-{}", &attempt[..8]);
        let plan = plan::plan(self, &stem, &mut items).await?;
        let mut m = Manifest {
            batch: batch.to_string(),
            committed: false,
            rows: plan.rows.clone(),
            files: plan.files.iter().map(|f| f.key.clone()).collect(),
            inputs: keys.inputs,
            claims: keys.claims,
            revisions: items.iter().filter_map(|it| it.revision.clone()).collect(),
        };
        manifest::put(state, &m).await?;
        plan::write(self, &plan, &items).await?;
        guard.ensure_held().await?;
        m.committed = true;
        manifest::put(state, &m).await?;
        drop(guard);
        self.finish(&m).await?;
        Ok(m.rows)
    }

    /// `items` without those whose document already has a status record, except revisions
    /// whose document's status record is still the one they replace.
    async fn not_committed(&self, items: Vec<BatchItem>) -> Result<Vec<BatchItem>> {
        let checked: Vec<(BatchItem, bool)> = futures::stream::iter(items)
            .map(|it| async move {
                let done = match &it.revision {
                    None => self.state.head(&status_key(&it.row.id)).await?.is_some(),
                    Some(r) => {
                        revision::status_record(self.state.as_ref(), &it.row.id).await?
                            != Some(r.previous.clone())
                    }
                };
                Ok::<_, LakeError>((it, done))
            })
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        Ok(checked
            .into_iter()
            .filter_map(|(it, done)| (!done).then_some(it))
            .collect())
    }

    /// A committed batch's last step: history records, status records, landed objects, what
    /// revisions retire, inputs, claims and the manifest. Idempotent.
    pub async fn finish(&self, m: &Manifest) -> Result<()> {
        let now_of = |id: &str| m.rows.iter().find(|r| r.id == id);
        for r in &m.revisions {
            let Some(row) = now_of(&r.previous.id) else {
                continue;
            };
            let entry = HistoryEntry {
                row: r.previous.clone(),
                action: r.action.clone(),
                operator: r.operator.clone(),
                note: r.note.clone(),
                superseded_at: row.processed_at,
            };
            let body = serde_json::to_vec(&entry).expect("a history entry serializes");
            self.state
                .put(
                    &revision::history_key(&entry),
                    body.into(),
                    Default::default(),
                )
                .await?;
        }
        futures::stream::iter(m.rows.iter().cloned())
            .map(|row| async move {
                let body = serde_json::to_vec(&row).expect("a row serializes");
                self.state
                    .put(&status_key(&row.id), body.into(), Default::default())
                    .await?;
                info!(id = %row.id, table = %row.table_name, status = row.status.as_str(), reason = row.reason.as_deref().unwrap_or(""), "document committed");
                Ok::<_, LakeError>(())
            })
            .buffer_unordered(AT_ONCE)
            .try_collect::<Vec<()>>()
            .await?;
        // landed objects go only once every status is durable
        let landed: Vec<String> = m.rows.iter().map(|r| ingress_key(&r.id)).collect();
        delete_all(self.ingress.as_ref(), landed).await?;
        for r in &m.revisions {
            let Some(row) = now_of(&r.previous.id) else {
                continue;
            };
            if r.had_copy() && row.status == Status::Stored {
                self.quarantine
                    .delete(&quarantine_key(&r.previous.table_name, &r.previous.id))
                    .await?;
            }
            if let Some(old) = &r.previous.object_key
                && row.object_key.as_ref() != Some(old)
            {
                self.lake.delete(old).await?;
            }
        }
        delete_all(
            self.state.as_ref(),
            m.inputs.iter().chain(&m.claims).cloned().collect(),
        )
        .await?;
        self.state.delete(&manifest::manifest_key(&m.batch)).await?;
        Ok(())
    }

    /// Finishes every committed batch whose finish a crash cut short (uncommitted ones are left
    /// to their committer). Safe beside live committers: finishing is idempotent.
    pub async fn finish_committed(&self) -> Result<()> {
        for (m, _) in manifest::list(self.state.as_ref()).await? {
            if m.committed {
                self.finish(&m).await?;
            }
        }
        Ok(())
    }

    /// Called holding the write lock before a batch of revisions: committed batches still
    /// unfinished are finished (else a revision they committed would look undone), and the
    /// uncommitted revision batches other than `batch` are rolled back (under the lock, an
    /// uncommitted manifest is an attempt that died before its commit point).
    async fn resolve_revisions(&self, batch: &str) -> Result<()> {
        for (m, _) in manifest::list(self.state.as_ref()).await? {
            if m.committed {
                self.finish(&m).await?;
            } else if m.batch != batch && m.batch.starts_with(revision::BATCH_PREFIX) {
                info!(batch = %m.batch, "rolling back an interrupted revision batch");
                self.rollback(&m).await?;
            }
        }
        Ok(())
    }

    /// Undoes an uncommitted batch: its writes, its claims and its manifest. Idempotent.
    pub async fn rollback(&self, m: &Manifest) -> Result<()> {
        self.undo_writes(m).await?;
        delete_all(self.state.as_ref(), m.claims.clone()).await?;
        self.state.delete(&manifest::manifest_key(&m.batch)).await?;
        Ok(())
    }

    /// Deletes what an uncommitted batch may have written: its Parquet files, sanitized objects
    /// and quarantine copies.
    async fn undo_writes(&self, m: &Manifest) -> Result<()> {
        if m.committed {
            return Err(LakeError::Pipeline(format!(
                "batch {} is committed and cannot be undone",
                m.batch
            )));
        }
        let mut lake_keys = m.files.clone();
        lake_keys.extend(m.rows.iter().filter_map(|r| r.object_key.clone()));
        delete_all(self.lake.as_ref(), lake_keys).await?;
        // a revised document's copy from before the batch stays
        let kept: BTreeSet<&str> = m
            .revisions
            .iter()
            .filter(|r| r.had_copy())
            .map(|r| r.previous.id.as_str())
            .collect();
        let copies = m
            .rows
            .iter()
            .filter(|r| matches!(r.status, Status::Rejected | Status::Quarantined))
            .filter(|r| !kept.contains(r.id.as_str()))
            .map(|r| quarantine_key(&r.table_name, &r.id))
            .collect();
        delete_all(self.quarantine.as_ref(), copies).await?;
        Ok(())
    }

    /// Resolves the batches a crash interrupted: committed ones are finished; uncommitted ones
    /// whose manifest is older than `lease` (the longest a live attempt takes) are rolled back,
    /// and their documents, still landed, are processed again. Uncommitted revision batches are
    /// left to the next revision batch, which rolls them back under the write lock. Returns the
    /// manifests it finished. A driver that is its lake's only pipeline committer (the local
    /// runner) passes zero; concurrent committers (the Lambdas) pass their timeout.
    pub async fn recover(&self, lease: Duration) -> Result<Vec<Manifest>> {
        let now = self.clock.now();
        let mut finished = Vec::new();
        for (m, written) in manifest::list(self.state.as_ref()).await? {
            if m.committed {
                info!(batch = %m.batch, documents = m.rows.len(), "finishing a committed batch");
                self.finish(&m).await?;
                finished.push(m);
            } else if m.batch.starts_with(revision::BATCH_PREFIX) {
                // an operator's command commits these beside the pipeline: only the next
                // revision batch, under the write lock, knows one is dead (see `commit`)
                continue;
            } else if (now - written).to_std().unwrap_or_default() >= lease {
                info!(batch = %m.batch, documents = m.rows.len(), "rolling back an interrupted batch");
                self.rollback(&m).await?;
            }
        }
        Ok(finished)
    }

    /// The lake keys uncommitted batches may still write: their partitions are not compacted
    /// until the batches are finished or rolled back.
    pub async fn pending_files(&self) -> Result<BTreeSet<String>> {
        Ok(manifest::list(self.state.as_ref())
            .await?
            .into_iter()
            .filter(|(m, _)| !m.committed)
            .flat_map(|(m, _)| m.files)
            .collect())
    }
}

async fn delete_all(store: &dyn tarn_core::ObjectStore, keys: Vec<String>) -> Result<()> {
    futures::stream::iter(keys)
        .map(|key| async move { store.delete(&key).await })
        .buffer_unordered(AT_ONCE)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
