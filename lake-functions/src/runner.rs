//! The local pipeline runner: finds landed documents, runs the configured stages on each, and
//! commits them in batches (many documents → one Parquet file per partition per flush).
//!
//! Work is derived from storage, so a crash at any instant loses nothing and duplicates nothing:
//! - pending = landed objects (`id=<uuid>` in the ingress store) that no batch has claimed;
//! - a flush first writes a manifest (`batches/<batch>.json` in the state store: the batch's
//!   document rows and the files it will write), then quarantine copies, sealed objects, Parquet
//!   files with names derived from the batch id, then registers partitions, then marks the
//!   manifest committed, then writes each document's status record and deletes its landed
//!   object, and finally deletes the manifest;
//! - on start, [`Pipeline::recover`] finishes every manifest: a committed one by redoing the
//!   (idempotent) status/delete step; an uncommitted one by processing its documents again
//!   (their landed objects still exist) and rewriting the same file names, removing any file of
//!   the old plan that the new plan does not have.
//!
//! Each Parquet file goes under its partition's *current* catalog location (the Hive directory
//! `tables/<t>/<k=v>/` for a new partition; a `_compacted/<job>/` directory once compaction has
//! moved it). Given a lake lock ([`Pipeline::with_lake_lock`]), a flush holds the write lock from
//! its manifest to its commit, so compaction's location swap never falls in the middle of one.

use crate::batch::{BatchItem, LakeLayout};
use crate::compact::lock::{LakeLock, WRITE_LOCK};
use crate::error::{ErrorKind, LakeError, Result};
use crate::landed;
use crate::normalize::records_batch;
use crate::stage::{Document, Stage, StageError, Verdict};
use arrow::array::RecordBatch;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn_catalog::{Catalog, Granularity, TableKind, TableSpec};
use tarn_core::document::{id_from_ingress_key, ingress_key, meta, status_key};
use tarn_core::{Clock, DocumentRow, GetResult, Kms, ObjectStore, Status};
use tokio::sync::{Notify, watch};
use tracing::{debug, info, warn};

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// how often the ingress store is listed when nothing wakes the runner
    pub poll_interval: Duration,
    /// the longest a processed document waits before its batch is committed
    pub flush_interval: Duration,
    /// a flush starts early once this many records are buffered
    pub flush_records: usize,
    /// or this many document bytes
    pub flush_bytes: usize,
    /// a stage failing transiently this many times sends the document to quarantine
    pub max_attempts: u32,
    /// documents processed at once
    pub concurrency: usize,
    /// the first retry's delay; doubled each time
    pub retry_base: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            flush_interval: Duration::from_millis(1000),
            flush_records: 200_000,
            flush_bytes: 64 << 20,
            max_attempts: 5,
            concurrency: 8,
            retry_base: Duration::from_millis(50),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PipelineDeps {
    pub tables: Vec<TableSpec>,
    pub ingress: Arc<dyn ObjectStore>,
    pub lake: Arc<dyn ObjectStore>,
    pub quarantine: Arc<dyn ObjectStore>,
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    pub catalog: Arc<dyn Catalog>,
    pub database: String,
    pub clock: Arc<dyn Clock>,
    /// run in this order on every document; normalize follows them
    pub stages: Vec<Arc<dyn Stage>>,
}

/// What happened to one document, waiting for its batch to commit.
#[derive(Debug, Clone)]
struct Processed {
    row: DocumentRow,
    /// JSON documents: their rows, for `tables/<table>/dt=<dt>/`
    data: Option<RecordBatch>,
    /// binary documents: the sanitized bytes, for `objects/<table>/dt=<dt>/<id>`
    object: Option<Bytes>,
    /// rejected or quarantined: the landed object, copied to quarantine as it is (still sealed)
    landed: Option<GetResult>,
    weight: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    batch: String,
    committed: bool,
    rows: Vec<DocumentRow>,
    /// lake keys of the Parquet files this batch writes
    files: Vec<String>,
}

/// Counts of what a drain or a run committed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub stored: usize,
    pub rejected: usize,
    pub quarantined: usize,
    pub records: usize,
    pub batches: usize,
}

impl Report {
    fn add(&mut self, rows: &[DocumentRow]) {
        for r in rows {
            match r.status {
                Status::Stored => self.stored += 1,
                Status::Rejected => self.rejected += 1,
                Status::Quarantined => self.quarantined += 1,
                Status::Received => {}
            }
            self.records += r.records.unwrap_or(0) as usize;
        }
        self.batches += 1;
    }
    pub fn documents(&self) -> usize {
        self.stored + self.rejected + self.quarantined
    }
}

pub struct Pipeline {
    deps: PipelineDeps,
    config: PipelineConfig,
    layout: LakeLayout,
    /// held by each flush from its manifest to its commit (see [`Pipeline::with_lake_lock`])
    lake_lock: Option<Arc<dyn LakeLock>>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("tables", &self.layout.specs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn batch_key(batch: &str) -> String {
    format!("batches/{batch}.json")
}

impl Pipeline {
    pub fn new(deps: PipelineDeps, config: PipelineConfig) -> Self {
        let layout = LakeLayout::new(&deps);
        Self {
            deps,
            config,
            layout,
            lake_lock: None,
        }
    }

    /// Shares the lake's write lock with compaction: each flush holds it from its manifest to
    /// its commit and writes into each partition's *current* catalog location, so a compaction
    /// (which swaps locations under the same lock) never loses a batch. Without it, compaction
    /// must not run while this pipeline does.
    pub fn with_lake_lock(mut self, lock: Arc<dyn LakeLock>) -> Self {
        self.lake_lock = Some(lock);
        self
    }

    pub fn lake_root(&self) -> &str {
        &self.layout.lake_root
    }

    /// The stages' names in the order they run.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.deps.stages.iter().map(|s| s.name()).collect()
    }

    /// Registers the database and every table (JSON tables and `documents`) in the catalog.
    /// A table already there is evolved ([`tarn_catalog::evolution`]): new optional columns are
    /// added; a change its existing files cannot be read with is refused, saying what to do.
    pub async fn setup_catalog(&self) -> Result<()> {
        self.layout
            .setup_catalog(self.deps.catalog.as_ref(), &self.deps.database)
            .await
    }

    fn granularity(&self, table: &str) -> Granularity {
        self.layout.granularity(table)
    }

    /// Runs the stages on one landed object. `Ok(None)`: nothing to do (gone, or done before).
    async fn process(&self, key: &str) -> Result<Option<Processed>> {
        let Some(id) = id_from_ingress_key(key) else {
            warn!(key, "ignoring an ingress object whose key is not id=<uuid>");
            return Ok(None);
        };
        if self.deps.state.head(&status_key(id)).await?.is_some() {
            // committed before a crash cut the cleanup short
            self.deps.ingress.delete(key).await?;
            return Ok(None);
        }
        let landed = match self.deps.ingress.get(key).await {
            Ok(o) => o,
            Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let now = self.deps.clock.now();
        let mut doc = match landed::decode(self.deps.kms.as_ref(), key, &landed).await {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::Transient => return Err(e),
            Err(e) => return Ok(Some(self.unreadable(id, landed, now, e.to_string()))),
        };
        let size = doc.body.len();
        let sha = hex::encode(sha2::Sha256::digest(&doc.body));
        let mut verdict = Verdict::Continue;
        for stage in &self.deps.stages {
            verdict = self.run_stage(stage.as_ref(), &mut doc).await;
            if verdict != Verdict::Continue {
                break;
            }
        }
        let dt = self
            .granularity(&doc.table)
            .partition_value(doc.received_at);
        let mut row = DocumentRow {
            id: doc.id.clone(),
            table_name: doc.table.clone(),
            dt: dt.clone(),
            content_type: doc.content_type.clone(),
            detected_type: doc.detected_type.clone(),
            size_bytes: size as i64,
            sha256: Some(sha),
            producer: doc.producer.clone(),
            received_at: doc.received_at,
            processed_at: now,
            status: Status::Stored,
            reason: None,
            scan_engine: doc.scan_engine.clone(),
            scan_result: doc.scan_result.clone(),
            metadata_removed: doc.metadata_removed.clone(),
            object_key: None,
            records: None,
        };
        let mut out = Processed {
            row: row.clone(),
            data: None,
            object: None,
            landed: None,
            weight: size.max(1),
        };
        if verdict == Verdict::Continue {
            verdict = match (
                self.layout.specs.get(&doc.table).map(|s| s.kind),
                doc.records.take(),
            ) {
                (Some(TableKind::Json), Some(records)) => {
                    let (_, schema) = &self.layout.defs[&doc.table];
                    match records_batch(schema, &doc, &records) {
                        Ok(batch) => {
                            row.records = Some(batch.num_rows() as i64);
                            out.data = Some(batch);
                            Verdict::Continue
                        }
                        Err(reason) => Verdict::Reject(reason),
                    }
                }
                (Some(TableKind::Binary), _) => {
                    row.object_key = Some(format!("objects/{}/dt={dt}/{}", doc.table, doc.id));
                    out.object = Some(doc.body.clone());
                    Verdict::Continue
                }
                _ => Verdict::Reject(
                    "the validate stage did not run, so the document cannot be normalized".into(),
                ),
            };
        }
        match verdict {
            Verdict::Continue => {}
            Verdict::Reject(reason) => {
                (row.status, row.reason, row.records, row.object_key) =
                    (Status::Rejected, Some(reason), None, None);
                (out.data, out.object, out.landed) = (None, None, Some(landed));
            }
            Verdict::Quarantine(reason) => {
                (row.status, row.reason, row.records, row.object_key) =
                    (Status::Quarantined, Some(reason), None, None);
                (out.data, out.object, out.landed) = (None, None, Some(landed));
            }
        }
        out.row = row;
        Ok(Some(out))
    }

    /// A landed object that cannot even be read (bad metadata, undecryptable): quarantined.
    fn unreadable(
        &self,
        id: &str,
        landed: GetResult,
        now: DateTime<Utc>,
        reason: String,
    ) -> Processed {
        let m = &landed.info.metadata;
        let table = m
            .get(meta::TABLE)
            .cloned()
            .unwrap_or_else(|| "unknown".into());
        let received_at = m
            .get(meta::REQUEST_TIME)
            .and_then(|t| landed::parse_request_time(t))
            .unwrap_or(now);
        let row = DocumentRow {
            id: id.to_string(),
            dt: self.granularity(&table).partition_value(received_at),
            table_name: table,
            content_type: m.get(meta::CONTENT_TYPE).cloned().unwrap_or_default(),
            detected_type: None,
            size_bytes: landed.info.size as i64,
            sha256: None,
            producer: m
                .get(meta::PRODUCER)
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            received_at,
            processed_at: now,
            status: Status::Quarantined,
            reason: Some(reason),
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
            object_key: None,
            records: None,
        };
        Processed {
            row,
            data: None,
            object: None,
            weight: landed.body.len().max(1),
            landed: Some(landed),
        }
    }

    async fn run_stage(&self, stage: &dyn Stage, doc: &mut Document) -> Verdict {
        let mut delay = self.config.retry_base;
        for attempt in 1..=self.config.max_attempts {
            match stage.process(doc).await {
                Ok(v) => return v,
                Err(StageError::Permanent(reason)) => {
                    return Verdict::Quarantine(format!("{}: {reason}", stage.name()));
                }
                Err(StageError::Transient(reason)) if attempt == self.config.max_attempts => {
                    return Verdict::Quarantine(format!(
                        "{} failed {attempt} times: {reason}",
                        stage.name()
                    ));
                }
                Err(StageError::Transient(reason)) => {
                    warn!(id = %doc.id, stage = stage.name(), attempt, %reason, "stage failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        unreachable!("max_attempts is at least 1")
    }

    /// Lists landed objects not in `claimed`.
    async fn pending(&self, claimed: &HashSet<String>) -> Result<Vec<String>> {
        Ok(self
            .deps
            .ingress
            .list("id=")
            .await?
            .into_iter()
            .map(|o| o.key)
            .filter(|k| !claimed.contains(k))
            .collect())
    }

    /// Processes `keys` with bounded concurrency; documents whose processing failed transiently
    /// are left for the next round.
    async fn process_all(&self, keys: Vec<String>) -> Vec<Processed> {
        futures::stream::iter(keys)
            .map(|key| async move {
                match self.process(&key).await {
                    Ok(p) => p,
                    Err(e) => {
                        warn!(key, error = %e, "could not process a landed document; it stays pending");
                        None
                    }
                }
            })
            .buffer_unordered(self.config.concurrency.max(1))
            .filter_map(|p| async move { p })
            .collect()
            .await
    }

    /// Commits processed documents as one batch (see the module docs for the protocol).
    async fn flush(
        &self,
        batch: &str,
        items: Vec<Processed>,
        previous_files: &[String],
    ) -> Result<Vec<DocumentRow>> {
        if items.is_empty() {
            return Ok(vec![]);
        }
        let now = self.deps.clock.now();
        let mut items: Vec<BatchItem> = items
            .into_iter()
            .map(|p| BatchItem {
                row: DocumentRow {
                    processed_at: now,
                    ..p.row
                },
                data: p.data,
                object: p.object,
                landed: p.landed,
            })
            .collect();
        let writer = self.layout.writer(&self.deps);
        // from here to the commit, compaction cannot swap a partition's location
        let _write_lock = match &self.lake_lock {
            Some(l) => Some(l.acquire(WRITE_LOCK).await?),
            None => None,
        };
        let plan = writer.plan(batch, &mut items).await?;
        let mut manifest = Manifest {
            batch: batch.to_string(),
            committed: false,
            rows: plan.rows.clone(),
            files: plan.files.iter().map(|f| f.key.clone()).collect(),
        };
        self.put_manifest(&manifest).await?;

        // files of an earlier attempt of this batch that this attempt does not write
        let planned: BTreeSet<&String> = manifest.files.iter().collect();
        for stale in previous_files.iter().filter(|f| !planned.contains(f)) {
            self.deps.lake.delete(stale).await?;
        }
        writer.write(&plan, &items).await?;

        manifest.committed = true;
        self.put_manifest(&manifest).await?;
        drop(_write_lock);
        self.finish(&manifest).await?;
        Ok(plan.rows)
    }

    async fn put_manifest(&self, m: &Manifest) -> Result<()> {
        let body = serde_json::to_vec(m).expect("a manifest serializes");
        self.deps
            .state
            .put(&batch_key(&m.batch), body.into(), Default::default())
            .await?;
        Ok(())
    }

    /// The committed batch's last step: status records, landed objects removed, manifest removed.
    async fn finish(&self, m: &Manifest) -> Result<()> {
        // many at once: the stores commit concurrent writes together (group commit)
        const AT_ONCE: usize = 512;
        futures::stream::iter(m.rows.iter().cloned())
            .map(|row| async move {
                let body = serde_json::to_vec(&row).expect("a row serializes");
                self.deps.state.put(&status_key(&row.id), body.into(), Default::default()).await?;
                info!(id = %row.id, table = %row.table_name, status = row.status.as_str(), reason = row.reason.as_deref().unwrap_or(""), "document committed");
                Ok::<_, LakeError>(())
            })
            .buffer_unordered(AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<Vec<()>>>()?;
        // landed objects go only once every status is durable
        // owned keys: a borrowing closure here makes `run`'s future fail the `Send` check
        let keys: Vec<String> = m.rows.iter().map(|row| ingress_key(&row.id)).collect();
        futures::stream::iter(keys)
            .map(|key| async move { self.deps.ingress.delete(&key).await })
            .buffer_unordered(AT_ONCE)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<tarn_core::Result<Vec<()>>>()?;
        self.deps.state.delete(&batch_key(&m.batch)).await?;
        Ok(())
    }

    /// Finishes every batch a crash interrupted. Run before anything else processes documents.
    pub async fn recover(&self) -> Result<Report> {
        let mut report = Report::default();
        for obj in self.deps.state.list("batches/").await? {
            let body = self.deps.state.get(&obj.key).await?.body;
            let m: Manifest = serde_json::from_slice(&body).map_err(|e| {
                LakeError::Pipeline(format!("manifest {} is unreadable: {e}", obj.key))
            })?;
            if m.committed {
                info!(batch = %m.batch, documents = m.rows.len(), "finishing a committed batch");
                self.finish(&m).await?;
                report.add(&m.rows);
            } else {
                info!(batch = %m.batch, documents = m.rows.len(), "redoing an interrupted batch");
                let keys: Vec<String> = m.rows.iter().map(|r| ingress_key(&r.id)).collect();
                let items = self.process_all(keys).await;
                if items.len() != m.rows.len() {
                    return Err(LakeError::Pipeline(format!(
                        "batch {} lists {} documents but only {} could be processed again; will retry",
                        m.batch,
                        m.rows.len(),
                        items.len()
                    )));
                }
                let rows = self.flush(&m.batch, items, &m.files).await?;
                report.add(&rows);
            }
        }
        Ok(report)
    }

    /// Processes everything landed now and commits it; repeats until nothing is pending.
    /// For tests, one-shot runs, and the demo.
    pub async fn drain(&self) -> Result<Report> {
        let mut report = self.recover().await?;
        loop {
            let keys = self.pending(&HashSet::new()).await?;
            if keys.is_empty() {
                return Ok(report);
            }
            for chunk in keys.chunks(4096) {
                let items = self.process_all(chunk.to_vec()).await;
                let rows = self
                    .flush(&uuid::Uuid::new_v4().to_string(), items, &[])
                    .await?;
                report.add(&rows);
            }
        }
    }

    /// Runs until `shutdown` turns true: recovers, then processes what lands (woken by `wake`
    /// or every poll interval), flushing by size or age. On shutdown it commits what it has
    /// processed and returns; what it had not started stays landed for the next start.
    pub async fn run(
        &self,
        wake: Arc<Notify>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<Report> {
        let mut report = loop {
            match self.recover().await {
                Ok(r) => break r,
                Err(e) if e.kind() == ErrorKind::Transient && !*shutdown.borrow() => {
                    warn!(error = %e, "recovery failed, retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        };
        let mut claimed: HashSet<String> = HashSet::new();
        let mut buffer: Vec<Processed> = Vec::new();
        let mut oldest: Option<Instant> = None;
        let mut weight = 0usize;
        loop {
            let stopping = *shutdown.borrow();
            let keys = if stopping {
                vec![]
            } else {
                self.pending(&claimed).await.unwrap_or_else(|e| {
                    warn!(error = %e, "listing landed documents failed");
                    vec![]
                })
            };
            let found = !keys.is_empty();
            for chunk in keys.chunks(256) {
                let items = self.process_all(chunk.to_vec()).await;
                // what is buffered stays claimed until committed; the rest (left pending after a
                // transient failure) is listed again next round
                claimed.extend(items.iter().map(|p| ingress_key(&p.row.id)));
                for p in items {
                    weight += p.weight + p.row.records.unwrap_or(0) as usize * 64;
                    oldest.get_or_insert_with(Instant::now);
                    buffer.push(p);
                }
                let records: usize = buffer
                    .iter()
                    .map(|p| p.row.records.unwrap_or(1) as usize)
                    .sum();
                if records >= self.config.flush_records || weight >= self.config.flush_bytes {
                    break;
                }
            }
            let records: usize = buffer
                .iter()
                .map(|p| p.row.records.unwrap_or(1) as usize)
                .sum();
            let due = oldest.is_some_and(|t| t.elapsed() >= self.config.flush_interval)
                || records >= self.config.flush_records
                || weight >= self.config.flush_bytes
                || (stopping && !buffer.is_empty());
            if due {
                let items = std::mem::take(&mut buffer);
                let ids: Vec<String> = items.iter().map(|p| ingress_key(&p.row.id)).collect();
                let batch = uuid::Uuid::new_v4().to_string();
                let rows = self.flush_retrying(&batch, items, &shutdown).await?;
                debug!(batch, documents = rows.len(), "batch committed");
                report.add(&rows);
                for k in ids {
                    claimed.remove(&k);
                }
                oldest = None;
                weight = 0;
            }
            if stopping && buffer.is_empty() {
                return Ok(report);
            }
            if found && !due {
                continue;
            }
            let wait = match oldest {
                Some(t) => self
                    .config
                    .flush_interval
                    .saturating_sub(t.elapsed())
                    .min(self.config.poll_interval),
                None => self.config.poll_interval,
            };
            tokio::select! {
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// Flushes, retrying transient failures with backoff (same batch id: the retry rewrites the
    /// same files). Gives up when shutting down: the manifest lets the next start redo it.
    async fn flush_retrying(
        &self,
        batch: &str,
        items: Vec<Processed>,
        shutdown: &watch::Receiver<bool>,
    ) -> Result<Vec<DocumentRow>> {
        // keep what a retry needs: the flush consumes the items
        let mut items = Some(items);
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let current = items.take().expect("items present");
            let keep = current.clone();
            match self.flush(batch, current, &[]).await {
                Ok(rows) => return Ok(rows),
                Err(e)
                    if e.kind() == ErrorKind::Transient
                        && !(*shutdown.borrow() && attempt >= 3) =>
                {
                    warn!(batch, attempt, error = %e, "flush failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                    items = Some(keep);
                }
                Err(e) => return Err(e),
            }
        }
    }
}
