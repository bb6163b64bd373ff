//! The pipeline as Lambda functions: one function per stage, then normalize, which commits.
//!
//! Each function is triggered by S3 notifications delivered through SQS and runs the same stage
//! code as the embedded runner ([`tarn_lake::Stage`], [`tarn_lake::landed::decode`],
//! [`tarn_lake::normalize`]). Documents move between functions as *hand-offs*: the document as
//! the stages left it, sealed with KMS envelope encryption under `{table, id}`, written to
//! `work/<next stage>/id=<uuid>` in the state store (whose notifications trigger the next
//! function). A stage that rejects or quarantines a document hands it straight to normalize with
//! its verdict, so every `documents` row is written by normalize alone.
//!
//! Exactly once (normalize), keyed on the document id:
//! - a document with a status record (`documents/<id>.json`) is done: a redelivery is
//!   acknowledged and writes nothing;
//! - before writing anything, normalize *claims* each document (`claims/<id>.json`, a conditional
//!   write naming the batch); a document claimed by a live batch is retried later (its message
//!   is reported as failed), so two deliveries of one message never both write rows;
//! - the batch then follows the embedded runner's commit protocol: a manifest
//!   (`batches/<batch>.json`), quarantine copies and sealed objects, Parquet files named after the
//!   batch (deterministic: the batch id is a hash of the batch's document ids), partitions
//!   registered, the manifest marked committed, status records written, landed objects and
//!   hand-offs deleted, the manifest and claims deleted;
//! - a claim whose batch crashed is resolved on redelivery: a committed manifest is finished
//!   (no new rows); an uncommitted one older than the lease is rolled back (its files deleted)
//!   and the document processed afresh.

use super::events::{Message, batch_response, messages};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::{Granularity, TableKind};
use tarn_core::document::{ingress_key, meta, status_key};
use tarn_core::{DocumentRow, EncryptionContext, ErrorKind, GetResult, Metadata, Status, envelope};
use tarn_lake::batch::{BatchItem, LakeLayout};
use tarn_lake::compact::{LakeLock, WRITE_LOCK};
use tarn_lake::normalize::records_batch;
use tarn_lake::{Document, PipelineDeps, Stage, StageError, Verdict, landed};
use tracing::{Instrument, error, info, info_span, warn};

/// A stage's decision as carried in a hand-off.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum HandoffVerdict {
    Continue,
    Reject(String),
    Quarantine(String),
}

impl From<Verdict> for HandoffVerdict {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Continue => HandoffVerdict::Continue,
            Verdict::Reject(r) => HandoffVerdict::Reject(r),
            Verdict::Quarantine(r) => HandoffVerdict::Quarantine(r),
        }
    }
}

/// A document between two functions.
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
    pub records: Option<Vec<serde_json::Value>>,
    pub scan_engine: Option<String>,
    pub scan_result: Option<String>,
    pub metadata_removed: Vec<String>,
    pub verdict: HandoffVerdict,
}

impl Handoff {
    fn from_document(
        doc: &Document,
        size_bytes: i64,
        sha256: Option<String>,
        verdict: HandoffVerdict,
    ) -> Self {
        Self {
            id: doc.id.clone(),
            table: doc.table.clone(),
            content_type: doc.content_type.clone(),
            producer: doc.producer.clone(),
            received_at: doc.received_at,
            body: B64.encode(&doc.body),
            size_bytes,
            sha256,
            detected_type: doc.detected_type.clone(),
            records: doc.records.clone(),
            scan_engine: doc.scan_engine.clone(),
            scan_result: doc.scan_result.clone(),
            metadata_removed: doc.metadata_removed.clone(),
            verdict,
        }
    }

    fn document(&self) -> Result<Document, String> {
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
            records: self.records.clone(),
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

fn claim_key(id: &str) -> String {
    format!("claims/{id}.json")
}

fn batch_key(batch: &str) -> String {
    format!("batches/{batch}.json")
}

/// Why one document could not be handled now (its message is retried).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Retry(pub String);

impl From<tarn_core::Error> for Retry {
    fn from(e: tarn_core::Error) -> Self {
        Retry(e.to_string())
    }
}
impl From<tarn_lake::LakeError> for Retry {
    fn from(e: tarn_lake::LakeError) -> Self {
        Retry(e.to_string())
    }
}
impl From<tarn_catalog::CatalogError> for Retry {
    fn from(e: tarn_catalog::CatalogError) -> Self {
        Retry(e.to_string())
    }
}

async fn put_handoff(deps: &PipelineDeps, stage: &str, h: &Handoff) -> Result<(), Retry> {
    let ctx = EncryptionContext::document(&h.table, &h.id);
    let plain = serde_json::to_vec(h).map_err(|e| Retry(e.to_string()))?;
    let sealed = envelope::seal(deps.kms.as_ref(), &ctx, &plain).await?;
    let m = Metadata::from([(meta::TABLE.to_string(), h.table.clone())]);
    deps.state
        .put(&handoff_key(stage, &h.id), sealed.into(), m)
        .await?;
    Ok(())
}

/// `Ok(None)` when there is no hand-off (already moved on).
async fn get_handoff(deps: &PipelineDeps, stage: &str, id: &str) -> Result<Option<Handoff>, Retry> {
    let obj = match deps.state.get(&handoff_key(stage, id)).await {
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
    let plain = envelope::open(
        deps.kms.as_ref(),
        &EncryptionContext::document(&table, id),
        &obj.body,
    )
    .await?;
    serde_json::from_slice(&plain).map(Some).map_err(|e| {
        Retry(format!(
            "hand-off {} is unreadable: {e}",
            handoff_key(stage, id)
        ))
    })
}

async fn has_status(deps: &PipelineDeps, id: &str) -> Result<bool, Retry> {
    Ok(deps.state.head(&status_key(id)).await?.is_some())
}

/// Runs `stage` with the embedded runner's retry rule: transient failures retried with backoff,
/// then quarantine; a permanent failure quarantines.
pub async fn run_stage(
    stage: &dyn Stage,
    doc: &mut Document,
    max_attempts: u32,
    retry_base: Duration,
) -> Verdict {
    let mut delay = retry_base;
    for attempt in 1..=max_attempts.max(1) {
        match stage.process(doc).await {
            Ok(v) => return v,
            Err(StageError::Permanent(reason)) => {
                return Verdict::Quarantine(format!("{}: {reason}", stage.name()));
            }
            Err(StageError::Transient(reason)) if attempt >= max_attempts => {
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
    unreachable!("at least one attempt")
}

/// Settings shared by the functions.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// a stage failing transiently this many times quarantines the document
    pub max_attempts: u32,
    pub retry_base: Duration,
    /// how long a batch may run (the function's timeout): an uncommitted batch older than this
    /// is taken as crashed and rolled back
    pub lease: Duration,
}

impl Default for FunctionConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            retry_base: Duration::from_millis(100),
            lease: Duration::from_secs(15 * 60),
        }
    }
}

/// Handles a batch: `work` per message; failed messages are reported for a retry alone.
async fn per_message<F, Fut>(event: SqsEvent, work: F) -> SqsBatchResponse
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), Retry>>,
{
    let mut failed = Vec::new();
    for Message { message_id, ids } in messages(&event) {
        match ids {
            Err(reason) => {
                error!(message_id, %reason, "malformed message; reported as failed");
                failed.push(message_id);
            }
            Ok(ids) => {
                let mut ok = true;
                for id in ids {
                    let span = info_span!("document", id = %id, message_id = %message_id);
                    if let Err(e) = work(id).instrument(span.clone()).await {
                        span.in_scope(|| warn!(error = %e, "document not handled; the message will be retried"));
                        ok = false;
                    }
                }
                if !ok {
                    failed.push(message_id);
                }
            }
        }
    }
    batch_response(failed)
}

/// One stage as a Lambda function (validate, scan, strip).
#[derive(Debug, Clone)]
pub struct StageFunction {
    deps: PipelineDeps,
    stage: Arc<dyn Stage>,
    /// reads landed objects from the ingress store (the first stage) or hand-offs
    first: bool,
    next: String,
    config: FunctionConfig,
}

impl StageFunction {
    /// `next`: the stage whose hand-off this one writes (`normalize` after the last).
    pub fn new(
        deps: PipelineDeps,
        stage: Arc<dyn Stage>,
        first: bool,
        next: impl Into<String>,
        config: FunctionConfig,
    ) -> Self {
        Self {
            deps,
            stage,
            first,
            next: next.into(),
            config,
        }
    }

    pub fn name(&self) -> &'static str {
        self.stage.name()
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        per_message(event, |id| async move { self.process(&id).await }).await
    }

    /// Runs the stage on one document and hands it on. Safe to repeat.
    pub async fn process(&self, id: &str) -> Result<(), Retry> {
        if has_status(&self.deps, id).await? {
            info!(stage = self.name(), "already committed; nothing to do");
            return Ok(());
        }
        let (mut doc, size, sha) = if self.first {
            let key = ingress_key(id);
            let landed_obj = match self.deps.ingress.get(&key).await {
                Ok(o) => o,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    info!(
                        stage = self.name(),
                        "no landed object (already processed); nothing to do"
                    );
                    return Ok(());
                }
                Err(e) => return Err(e.into()),
            };
            match landed::decode(self.deps.kms.as_ref(), &key, &landed_obj).await {
                Ok(d) => {
                    let size = d.body.len() as i64;
                    let sha = hex::encode(sha2::Sha256::digest(&d.body));
                    (d, size, Some(sha))
                }
                Err(e) if e.kind() == tarn_lake::error::ErrorKind::Transient => {
                    return Err(e.into());
                }
                Err(e) => {
                    // unreadable: straight to normalize, quarantined
                    let h =
                        unreadable_handoff(id, &landed_obj, self.deps.clock.now(), e.to_string());
                    warn!(stage = self.name(), reason = %e, "landed object is unreadable; quarantining");
                    return put_handoff(&self.deps, "normalize", &h).await;
                }
            }
        } else {
            let Some(h) = get_handoff(&self.deps, self.name(), id).await? else {
                info!(
                    stage = self.name(),
                    "no hand-off (already handed on); nothing to do"
                );
                return Ok(());
            };
            let doc = h.document().map_err(Retry)?;
            (doc, h.size_bytes, h.sha256.clone())
        };
        let verdict = run_stage(
            self.stage.as_ref(),
            &mut doc,
            self.config.max_attempts,
            self.config.retry_base,
        )
        .await;
        let next = if verdict == Verdict::Continue {
            self.next.as_str()
        } else {
            "normalize"
        };
        info!(stage = self.name(), table = %doc.table, verdict = ?verdict, next, "stage done");
        put_handoff(
            &self.deps,
            next,
            &Handoff::from_document(&doc, size, sha, verdict.into()),
        )
        .await?;
        if !self.first {
            self.deps
                .state
                .delete(&handoff_key(self.name(), id))
                .await?;
        }
        Ok(())
    }
}

fn unreadable_handoff(
    id: &str,
    landed_obj: &GetResult,
    now: DateTime<Utc>,
    reason: String,
) -> Handoff {
    let m = &landed_obj.info.metadata;
    Handoff {
        id: id.to_string(),
        table: m
            .get(meta::TABLE)
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        content_type: m.get(meta::CONTENT_TYPE).cloned().unwrap_or_default(),
        producer: m
            .get(meta::PRODUCER)
            .cloned()
            .unwrap_or_else(|| "unknown".into()),
        received_at: m
            .get(meta::REQUEST_TIME)
            .and_then(|t| landed::parse_request_time(t))
            .unwrap_or(now),
        body: String::new(),
        size_bytes: landed_obj.info.size as i64,
        sha256: None,
        detected_type: None,
        records: None,
        scan_engine: None,
        scan_result: None,
        metadata_removed: vec![],
        verdict: HandoffVerdict::Quarantine(reason),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    batch: String,
    committed: bool,
    rows: Vec<DocumentRow>,
    files: Vec<String>,
    #[serde(default)]
    handoffs: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    batch: String,
}

/// The normalize function: turns hand-offs into `documents` rows, Parquet and sealed objects,
/// and commits them exactly once (see the module docs).
#[derive(Debug, Clone)]
pub struct NormalizeFunction {
    deps: PipelineDeps,
    layout: LakeLayout,
    config: FunctionConfig,
    /// held from each batch's manifest to its commit, shared with compaction
    lock: Option<Arc<dyn LakeLock>>,
}

impl NormalizeFunction {
    pub fn new(deps: PipelineDeps, config: FunctionConfig) -> Self {
        let layout = LakeLayout::new(&deps);
        Self {
            deps,
            layout,
            config,
            lock: None,
        }
    }

    /// Shares the lake's write lock with compaction (see [`tarn_lake::compact`]): each batch
    /// holds it from its manifest to its commit and writes into each partition's *current*
    /// catalog location.
    pub fn with_lake_lock(mut self, lock: Arc<dyn LakeLock>) -> Self {
        self.lock = Some(lock);
        self
    }

    /// Registers the database and every table in the catalog (run once at deploy or cold start).
    pub async fn setup_catalog(&self) -> Result<(), Retry> {
        Ok(self
            .layout
            .setup_catalog(self.deps.catalog.as_ref(), &self.deps.database)
            .await?)
    }

    fn granularity(&self, table: &str) -> Granularity {
        self.layout.granularity(table)
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let msgs = messages(&event);
        let mut failed: BTreeSet<String> = BTreeSet::new();
        // document id → the messages naming it
        let mut by_id: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in &msgs {
            match &m.ids {
                Err(reason) => {
                    error!(message_id = %m.message_id, %reason, "malformed message; reported as failed");
                    failed.insert(m.message_id.clone());
                }
                Ok(ids) => {
                    for id in ids {
                        by_id
                            .entry(id.clone())
                            .or_default()
                            .push(m.message_id.clone());
                    }
                }
            }
        }
        let ids: Vec<String> = by_id.keys().cloned().collect();
        let failed_ids = self.commit(&ids).await;
        for (id, reason) in failed_ids {
            warn!(id = %id, %reason, "document not committed; its message will be retried");
            failed.extend(by_id.get(&id).cloned().unwrap_or_default());
        }
        batch_response(failed)
    }

    /// Commits the documents `ids` (one batch); returns those that failed, with why.
    pub async fn commit(&self, ids: &[String]) -> Vec<(String, String)> {
        let mut failed = Vec::new();
        if ids.is_empty() {
            return failed;
        }
        let batch = batch_id(ids);
        let span = info_span!("batch", batch = %batch);
        async {
            // 1. what is left to do, and claims
            let mut claimed = Vec::new();
            for id in ids {
                match self.claim(id, &batch).instrument(info_span!("document", id = %id)).await {
                    Ok(true) => claimed.push(id.clone()),
                    Ok(false) => {}
                    Err(e) => failed.push((id.clone(), e.0)),
                }
            }
            if claimed.is_empty() {
                return;
            }
            // 2. the items
            let mut items = Vec::new();
            for id in &claimed {
                match self.item(id).instrument(info_span!("document", id = %id)).await {
                    Ok(Some(it)) => items.push(it),
                    Ok(None) => {
                        let _ = self.deps.state.delete(&claim_key(id)).await;
                    }
                    Err(e) => {
                        let _ = self.deps.state.delete(&claim_key(id)).await;
                        failed.push((id.clone(), e.0));
                    }
                }
            }
            if items.is_empty() {
                return;
            }
            let ids_in: Vec<String> = items.iter().map(|i| i.row.id.clone()).collect();
            if let Err(e) = self.flush(&batch, items).await {
                error!(error = %e, "batch commit failed; its documents will be retried");
                // undo what is undoable now, so that a retry in any grouping can go ahead; what
                // cannot be undone now is resolved through the claims on redelivery
                match self.manifest(&batch).await {
                    Ok(Some(m)) if !m.committed => {
                        if let Err(re) = self.rollback(&m).await {
                            warn!(error = %re, "rolling back the failed batch failed; the lease will resolve it");
                        }
                    }
                    Ok(None) => {
                        for id in &ids_in {
                            let _ = self.deps.state.delete(&claim_key(id)).await;
                        }
                    }
                    _ => {}
                }
                failed.extend(ids_in.into_iter().map(|id| (id, e.0.clone())));
            }
        }
        .instrument(span)
        .await;
        failed
    }

    /// `Ok(true)`: the document is ours to process in `batch`; `Ok(false)`: it is done.
    async fn claim(&self, id: &str, batch: &str) -> Result<bool, Retry> {
        for _ in 0..3 {
            if has_status(&self.deps, id).await? {
                info!("already committed; nothing to do");
                // a crash may have cut the cleanup short
                self.cleanup(id).await?;
                return Ok(false);
            }
            let body = serde_json::to_vec(&Claim {
                batch: batch.to_string(),
            })
            .expect("a claim serializes");
            if self
                .deps
                .state
                .put_if_absent(&claim_key(id), body.into(), Metadata::new())
                .await?
            {
                return Ok(true);
            }
            // claimed before: by this same batch (a retry), by a live batch, or by a crashed one
            let existing = match self.deps.state.get(&claim_key(id)).await {
                Ok(o) => o,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let claim: Claim = serde_json::from_slice(&existing.body)
                .map_err(|e| Retry(format!("unreadable claim: {e}")))?;
            let manifest = self.manifest(&claim.batch).await?;
            match manifest {
                Some(m) if m.committed => {
                    info!(other_batch = %m.batch, "finishing the committed batch that holds this document");
                    self.finish(&m).await?;
                    return Ok(false);
                }
                Some(m) => {
                    if claim.batch == batch {
                        // our own earlier attempt: it rewrites the same files
                        return Ok(true);
                    }
                    let age = self.age(&batch_key(&m.batch)).await?;
                    if age < self.config.lease {
                        return Err(Retry(format!(
                            "claimed by batch {} started {age:?} ago",
                            m.batch
                        )));
                    }
                    warn!(other_batch = %m.batch, "rolling back a batch that did not finish within the lease");
                    self.rollback(&m).await?;
                }
                None => {
                    if claim.batch == batch {
                        return Ok(true);
                    }
                    let age = self.age(&claim_key(id)).await?;
                    if age < self.config.lease {
                        return Err(Retry(format!(
                            "claimed by batch {} {age:?} ago",
                            claim.batch
                        )));
                    }
                    self.deps.state.delete(&claim_key(id)).await?;
                }
            }
        }
        Err(Retry("could not claim the document".into()))
    }

    async fn age(&self, key: &str) -> Result<Duration, Retry> {
        let info = self.deps.state.head(key).await?;
        Ok(info
            .map(|i| {
                (self.deps.clock.now() - i.last_modified)
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or(Duration::MAX))
    }

    async fn manifest(&self, batch: &str) -> Result<Option<Manifest>, Retry> {
        match self.deps.state.get(&batch_key(batch)).await {
            Ok(o) => serde_json::from_slice(&o.body)
                .map(Some)
                .map_err(|e| Retry(format!("manifest {batch} is unreadable: {e}"))),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Undoes an uncommitted batch: its files, claims and manifest.
    async fn rollback(&self, m: &Manifest) -> Result<(), Retry> {
        for f in &m.files {
            self.deps.lake.delete(f).await?;
        }
        for r in &m.rows {
            if let Some(k) = &r.object_key {
                self.deps.lake.delete(k).await?;
            }
            self.deps.state.delete(&claim_key(&r.id)).await?;
        }
        self.deps.state.delete(&batch_key(&m.batch)).await?;
        Ok(())
    }

    async fn cleanup(&self, id: &str) -> Result<(), Retry> {
        self.deps.ingress.delete(&ingress_key(id)).await?;
        self.deps
            .state
            .delete(&handoff_key("normalize", id))
            .await?;
        self.deps.state.delete(&claim_key(id)).await?;
        Ok(())
    }

    /// Builds what one hand-off becomes; `Ok(None)` when there is no hand-off.
    async fn item(&self, id: &str) -> Result<Option<BatchItem>, Retry> {
        let Some(h) = get_handoff(&self.deps, "normalize", id).await? else {
            warn!("no hand-off for this document; nothing to do");
            return Ok(None);
        };
        let now = self.deps.clock.now();
        let doc = h.document().map_err(Retry)?;
        let dt = self.granularity(&h.table).partition_value(h.received_at);
        let mut row = DocumentRow {
            id: h.id.clone(),
            table_name: h.table.clone(),
            dt: dt.clone(),
            content_type: h.content_type.clone(),
            detected_type: h.detected_type.clone(),
            size_bytes: h.size_bytes,
            sha256: h.sha256.clone(),
            producer: h.producer.clone(),
            received_at: h.received_at,
            processed_at: now,
            status: Status::Stored,
            reason: None,
            scan_engine: h.scan_engine.clone(),
            scan_result: h.scan_result.clone(),
            metadata_removed: h.metadata_removed.clone(),
            object_key: None,
            records: None,
        };
        let mut item = BatchItem {
            row: row.clone(),
            data: None,
            object: None,
            landed: None,
        };
        let mut verdict = h.verdict.clone();
        if verdict == HandoffVerdict::Continue {
            verdict = match (
                self.layout.specs.get(&h.table).map(|s| s.kind),
                h.records.as_ref(),
            ) {
                (Some(TableKind::Json), Some(records)) => {
                    let (_, schema) = &self.layout.defs[&h.table];
                    match records_batch(schema, &doc, records) {
                        Ok(batch) => {
                            row.records = Some(batch.num_rows() as i64);
                            item.data = Some(batch);
                            HandoffVerdict::Continue
                        }
                        Err(reason) => HandoffVerdict::Reject(reason),
                    }
                }
                (Some(TableKind::Binary), _) => {
                    row.object_key = Some(format!("objects/{}/dt={dt}/{}", h.table, h.id));
                    item.object = Some(doc.body.clone());
                    HandoffVerdict::Continue
                }
                _ => HandoffVerdict::Reject(
                    "the validate stage did not run, so the document cannot be normalized".into(),
                ),
            };
        }
        let reason = match &verdict {
            HandoffVerdict::Continue => None,
            HandoffVerdict::Reject(r) => {
                row.status = Status::Rejected;
                Some(r.clone())
            }
            HandoffVerdict::Quarantine(r) => {
                row.status = Status::Quarantined;
                Some(r.clone())
            }
        };
        if let Some(reason) = reason {
            (row.reason, row.records, row.object_key) = (Some(reason), None, None);
            (item.data, item.object) = (None, None);
            item.landed = match self.deps.ingress.get(&ingress_key(id)).await {
                Ok(o) => Some(o),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e.into()),
            };
        }
        item.row = row;
        Ok(Some(item))
    }

    /// The embedded runner's commit protocol for one batch ([`tarn_lake::batch`]), with this
    /// function's manifest (which also names the hand-offs).
    async fn flush(&self, batch: &str, mut items: Vec<BatchItem>) -> Result<(), Retry> {
        let writer = self.layout.writer(&self.deps);
        // from here to the commit, compaction cannot swap a partition's location
        let write_lock = match &self.lock {
            Some(l) => Some(l.acquire(WRITE_LOCK).await?),
            None => None,
        };
        let plan = writer.plan(batch, &mut items).await?;
        let mut manifest = Manifest {
            batch: batch.to_string(),
            committed: false,
            rows: plan.rows.clone(),
            files: plan.files.iter().map(|f| f.key.clone()).collect(),
            handoffs: plan
                .rows
                .iter()
                .map(|r| handoff_key("normalize", &r.id))
                .collect(),
        };
        self.put_manifest(&manifest).await?;
        writer.write(&plan, &items).await?;
        manifest.committed = true;
        self.put_manifest(&manifest).await?;
        drop(write_lock);
        self.finish(&manifest).await
    }

    async fn put_manifest(&self, m: &Manifest) -> Result<(), Retry> {
        let body = serde_json::to_vec(m).expect("a manifest serializes");
        self.deps
            .state
            .put(&batch_key(&m.batch), body.into(), Metadata::new())
            .await?;
        Ok(())
    }

    /// A committed batch's last step: status records, landed objects and hand-offs removed,
    /// claims and the manifest removed. Idempotent.
    async fn finish(&self, m: &Manifest) -> Result<(), Retry> {
        for row in &m.rows {
            let body = serde_json::to_vec(row).expect("a row serializes");
            self.deps
                .state
                .put(&status_key(&row.id), body.into(), Metadata::new())
                .await?;
            self.cleanup(&row.id).await?;
            info!(id = %row.id, table = %row.table_name, status = row.status.as_str(), reason = row.reason.as_deref().unwrap_or(""), "document committed");
        }
        self.deps.state.delete(&batch_key(&m.batch)).await?;
        Ok(())
    }
}

/// A batch id that depends only on the batch's documents: the same message batch redelivered
/// rewrites the same file names.
pub fn batch_id(ids: &[String]) -> String {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    sorted.dedup();
    let mut h = sha2::Sha256::new();
    for id in sorted {
        h.update(id.as_bytes());
        h.update(b"\n");
    }
    let d = h.finalize();
    uuid::Builder::from_random_bytes(d[..16].try_into().expect("16 bytes"))
        .into_uuid()
        .to_string()
}

/// Messages' ids as a map, for tests and callers that want it.
pub fn ids_by_message(event: &SqsEvent) -> HashMap<String, Vec<String>> {
    messages(event)
        .into_iter()
        .filter_map(|m| m.ids.ok().map(|ids| (m.message_id, ids)))
        .collect()
}
