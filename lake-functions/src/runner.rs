//! The local pipeline runner: finds landed documents, runs the configured stages on each, and
//! commits them in batches through [`crate::commit`] (many documents → one Parquet file per
//! partition per flush).
//!
//! Work is derived from storage, so a crash at any instant loses nothing and duplicates nothing:
//! pending = landed objects (`id=<uuid>` in the ingress store) that no buffered batch has
//! claimed; on start, [`Lake::recover`] finishes every committed batch and rolls back every
//! uncommitted one, whose documents, still landed, are processed again.
//!
//! Memory is bounded by bytes: documents being processed hold at most
//! [`PipelineConfig::in_flight_bytes`] of landed bytes between them, and a batch is committed as
//! soon as what it buffers reaches [`PipelineConfig::flush_bytes`] or
//! [`PipelineConfig::flush_records`], checked after every document. A batch commits on a task
//! of its own while the next one fills (one commit at a time), so two batches may be held.

use crate::commit::{BatchItem, StateKeys};
use crate::error::{ErrorKind, LakeError, Result};
use crate::item;
use crate::lake::Lake;
use crate::stage::{RetryPolicy, Stage, run_stages_measured};
use futures::StreamExt;
use serde::Serialize;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn_core::document::{id_from_ingress_key, ingress_key, status_key};
use tarn_core::{DocumentRow, Metrics, Status};
use tokio::sync::{Notify, Semaphore, watch};
use tracing::{debug, warn};

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
    /// landed bytes being processed at once (a larger document waits until it is alone)
    pub in_flight_bytes: usize,
    /// documents processed at once
    pub concurrency: usize,
    /// how a stage failing transiently is retried before the document is quarantined
    pub retry: RetryPolicy,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_millis(250),
            flush_interval: Duration::from_millis(1000),
            flush_records: 200_000,
            flush_bytes: 64 << 20,
            in_flight_bytes: 64 << 20,
            concurrency: 8,
            retry: RetryPolicy::default(),
        }
    }
}

/// Counts of what a drain or a run committed.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub stored: usize,
    pub rejected: usize,
    pub quarantined: usize,
    pub lost: usize,
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
                Status::Lost => self.lost += 1,
                Status::Received | Status::Erased => {}
            }
            self.records += r.records.unwrap_or(0) as usize;
        }
        self.batches += 1;
    }
    pub fn documents(&self) -> usize {
        self.stored + self.rejected + self.quarantined + self.lost
    }
}

/// Processed documents waiting for their batch, with what they hold.
#[derive(Debug, Default)]
struct Buffer {
    items: Vec<BatchItem>,
    bytes: usize,
    records: usize,
    oldest: Option<Instant>,
}

impl Buffer {
    fn push(&mut self, item: BatchItem, landed_bytes: u64) {
        let records = item.row.records.unwrap_or(0) as usize;
        self.bytes += (landed_bytes as usize).max(1) + records * 64;
        self.records += records.max(1);
        self.oldest.get_or_insert_with(Instant::now);
        self.items.push(item);
    }
    fn full(&self, config: &PipelineConfig) -> bool {
        self.records >= config.flush_records || self.bytes >= config.flush_bytes
    }
    fn take(&mut self) -> Vec<BatchItem> {
        let items = std::mem::take(&mut self.items);
        *self = Buffer::default();
        items
    }
}

/// Cheap to clone: every document is processed on a task of its own (the runtime's worker
/// threads share the CPU work of decoding, validating and normalizing), each with a clone.
#[derive(Clone)]
pub struct Pipeline {
    lake: Lake,
    stages: Arc<[Arc<dyn Stage>]>,
    config: PipelineConfig,
    /// KiB of landed bytes being processed
    in_flight: Arc<Semaphore>,
    metrics: Metrics,
}

/// A spawned task, aborted when dropped: what a fill started and no longer waits for stops.
struct Spawned<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for Spawned<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl<T> std::future::Future for Spawned<T> {
    type Output = std::result::Result<T, tokio::task::JoinError>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.get_mut().0).poll(cx)
    }
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("tables", &self.lake.layout.specs.keys().collect::<Vec<_>>())
            .field("stages", &self.stage_names())
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A runner over `lake` running `stages` (in order; normalize follows them) on every
    /// document. The lake's write lock is shared with compaction, so the two may run at once.
    pub fn new(lake: Lake, stages: Vec<Arc<dyn Stage>>, config: PipelineConfig) -> Self {
        let in_flight = Arc::new(Semaphore::new(kib(config.in_flight_bytes).max(1) as usize));
        Self {
            lake,
            stages: stages.into(),
            config,
            in_flight,
            metrics: Metrics::default(),
        }
    }

    /// Records what the runner does to `metrics` (see [`crate::metrics`]).
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    pub fn lake_root(&self) -> &str {
        &self.lake.layout.lake_root
    }

    /// The stages, in the order they run.
    pub fn stages(&self) -> &[Arc<dyn Stage>] {
        &self.stages
    }

    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// The stages' names in the order they run.
    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    /// Registers the database and every table in the catalog ([`Lake::setup_catalog`]).
    pub async fn setup_catalog(&self) -> Result<()> {
        self.lake.setup_catalog().await
    }

    /// Runs the stages on one landed object. `Ok(None)`: nothing to do (gone, or done before).
    async fn process(&self, key: &str, size: u64) -> Result<Option<BatchItem>> {
        let Some(id) = id_from_ingress_key(key) else {
            warn!(key, "ignoring an ingress object whose key is not id=<uuid>");
            return Ok(None);
        };
        // a document larger than the whole budget waits until it runs alone
        let want = kib(size as usize).clamp(1, kib(self.config.in_flight_bytes).max(1));
        let _permit = self
            .in_flight
            .acquire_many(want)
            .await
            .expect("the semaphore is never closed");
        if self.lake.state.head(&status_key(id)).await?.is_some() {
            // committed before a crash cut the cleanup short
            self.lake.ingress.delete(key).await?;
            return Ok(None);
        }
        let landed = match self.lake.ingress.get(key).await {
            Ok(o) => o,
            Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let now = self.lake.clock.now();
        let (mut doc, origin, verdict) =
            item::open_landed(self.lake.kms.as_ref(), id, &landed, now).await?;
        let verdict = match verdict {
            Some(v) => v,
            None => {
                run_stages_measured(&self.stages, &mut doc, self.config.retry, &self.metrics).await
            }
        };
        let mut it = item::batch_item(&self.lake.layout, doc, origin, verdict, now);
        if it.needs_landed() {
            it.landed = Some(landed);
        }
        Ok(Some(it))
    }

    /// Landed objects (key, size) not in `claimed`.
    async fn pending(&self, claimed: &HashSet<String>) -> Result<Vec<(String, u64)>> {
        let landed = self.lake.ingress.list("id=").await?;
        crate::metrics::record_backlog(&self.metrics, &landed, self.lake.clock.now());
        Ok(landed
            .into_iter()
            .filter(|o| !claimed.contains(&o.key))
            .map(|o| (o.key, o.size))
            .collect())
    }

    /// Processes `keys` with bounded concurrency into `buffer` until it is full; documents whose
    /// processing failed transiently, or that were not reached, stay pending for the next round.
    /// Returns whether it stopped because the buffer was full (so more may be waiting).
    async fn fill(
        &self,
        keys: Vec<(String, u64)>,
        buffer: &mut Buffer,
        claimed: &mut HashSet<String>,
    ) -> bool {
        if buffer.full(&self.config) {
            return !keys.is_empty();
        }
        let mut done = futures::stream::iter(keys)
            .map(|(key, size)| {
                let pipeline = self.clone();
                let task = Spawned(tokio::spawn(async move {
                    let processed = pipeline.process(&key, size).await;
                    (key, processed)
                }));
                async move {
                    match task.await {
                        Ok((_, Ok(p))) => p.map(|it| (it, size)),
                        Ok((key, Err(e))) => {
                            warn!(key, error = %e, "could not process a landed document; it stays pending");
                            None
                        }
                        Err(e) => {
                            warn!(error = %e, "processing a landed document failed; it stays pending");
                            None
                        }
                    }
                }
            })
            .buffer_unordered(self.config.concurrency.max(1));
        while let Some(p) = done.next().await {
            if let Some((it, size)) = p {
                claimed.insert(ingress_key(&it.row.id));
                buffer.push(it, size);
                if buffer.full(&self.config) {
                    // what is still being processed is dropped and listed again
                    return true;
                }
            }
        }
        false
    }

    /// Commits `items` as a new batch, retrying transient failures with backoff (same batch id:
    /// a retry finishes or redoes the earlier attempt). Gives up when shutting down: the
    /// manifest lets the next start resolve it.
    async fn flush(
        &self,
        items: Vec<BatchItem>,
        shutdown: Option<&watch::Receiver<bool>>,
    ) -> Result<Vec<DocumentRow>> {
        let batch = uuid::Uuid::new_v4().to_string();
        let started = Instant::now();
        let mut delay = Duration::from_millis(200);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self
                .lake
                .commit(&batch, items.clone(), StateKeys::default())
                .await
            {
                Ok(rows) => {
                    debug!(batch, documents = rows.len(), "batch committed");
                    crate::metrics::record_committed(
                        &self.metrics,
                        &self.lake.layout,
                        &rows,
                        started.elapsed().as_secs_f64(),
                    );
                    return Ok(rows);
                }
                // a lost lease stopped the batch before its commit: it can run again
                Err(e)
                    if matches!(e.kind(), ErrorKind::Transient | ErrorKind::LockLost)
                        && shutdown.is_some_and(|s| !(*s.borrow() && attempt >= 3)) =>
                {
                    warn!(batch, attempt, error = %e, "flush failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Finishes every batch a crash interrupted ([`Lake::recover`]; this runner is its lake's
    /// only committer). Run before anything else processes documents.
    pub async fn recover(&self) -> Result<Report> {
        let mut report = Report::default();
        for m in self.lake.recover(Duration::ZERO).await? {
            report.add(&m.rows);
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
            let mut claimed = HashSet::new();
            let mut buffer = Buffer::default();
            self.fill(keys, &mut buffer, &mut claimed).await;
            if buffer.items.is_empty() {
                // everything failed transiently: the caller sees it on the next call
                return Ok(report);
            }
            let rows = self.flush(buffer.take(), None).await?;
            report.add(&rows);
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
        // what is buffered or being committed stays claimed until committed; the rest (left
        // pending after a transient failure) is listed again next round
        let mut claimed: HashSet<String> = HashSet::new();
        let mut buffer = Buffer::default();
        // the batch committing in the background while the next one fills (one at a time)
        let mut committing: Option<Committing> = None;
        loop {
            let stopping = *shutdown.borrow();
            if committing.as_ref().is_some_and(|c| c.task.0.is_finished()) {
                let done = committing.take().expect("a batch is committing");
                done.reap(&mut report, &mut claimed).await?;
            }
            let keys = if stopping {
                vec![]
            } else {
                self.pending(&claimed).await.unwrap_or_else(|e| {
                    warn!(error = %e, "listing landed documents failed");
                    vec![]
                })
            };
            let found = !keys.is_empty();
            let more = self.fill(keys, &mut buffer, &mut claimed).await;
            let due = buffer
                .oldest
                .is_some_and(|t| t.elapsed() >= self.config.flush_interval)
                || buffer.full(&self.config)
                || (stopping && !buffer.items.is_empty());
            if due {
                if let Some(before) = committing.take() {
                    before.reap(&mut report, &mut claimed).await?;
                }
                let items = buffer.take();
                let keys: Vec<String> = items.iter().map(|p| ingress_key(&p.row.id)).collect();
                let (pipeline, stop) = (self.clone(), shutdown.clone());
                let task = Spawned(tokio::spawn(async move {
                    pipeline.flush(items, Some(&stop)).await
                }));
                committing = Some(Committing { task, keys });
            }
            if stopping && buffer.items.is_empty() {
                if let Some(last) = committing.take() {
                    last.reap(&mut report, &mut claimed).await?;
                }
                return Ok(report);
            }
            // more landed than one batch holds: go on at once
            if (found && !due) || more {
                continue;
            }
            // idle: the batch committing now is done before anything else
            if let Some(done) = committing.take() {
                done.reap(&mut report, &mut claimed).await?;
                continue;
            }
            let wait = match buffer.oldest {
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
}

/// A batch committing on a task of its own, and the landed keys it holds.
struct Committing {
    task: Spawned<Result<Vec<DocumentRow>>>,
    keys: Vec<String>,
}

impl Committing {
    /// Waits for the commit; its documents are then counted and no longer claimed.
    async fn reap(self, report: &mut Report, claimed: &mut HashSet<String>) -> Result<()> {
        let rows = match (&mut { self.task }).await {
            Ok(rows) => rows?,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => return Err(LakeError::Pipeline(format!("the commit task ended: {e}"))),
        };
        report.add(&rows);
        for k in self.keys {
            claimed.remove(&k);
        }
        Ok(())
    }
}

/// `bytes` in KiB, rounded up, as semaphore permits.
fn kib(bytes: usize) -> u32 {
    bytes.div_ceil(1024).min(u32::MAX as usize) as u32
}
