//! [`NormalizeFunction`]: hand-offs → the batch commit, exactly once per document id (see the
//! [module docs](super) for the claims).

use super::events_ids;
use super::handoff::{self, handoff_key};
use super::{FunctionConfig, Retry};
use crate::lambda::events::batch_response;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use std::collections::BTreeSet;
use std::time::Duration;
use tarn_core::document::{ingress_key, status_key};
use tarn_core::{ErrorKind, Metadata};
use tarn_lake::commit::{BatchItem, Manifest, StateKeys, manifest};
use tarn_lake::{Lake, item};
use tracing::{Instrument, error, info, info_span, warn};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claim {
    batch: String,
}

fn claim_key(id: &str) -> String {
    format!("claims/{id}.json")
}

/// The normalize function: turns hand-offs into `documents` rows, Parquet and sealed objects,
/// and commits them exactly once.
#[derive(Debug, Clone)]
pub struct NormalizeFunction {
    lake: Lake,
    config: FunctionConfig,
    metrics: tarn_core::Metrics,
}

impl NormalizeFunction {
    pub fn new(lake: Lake, config: FunctionConfig) -> Self {
        Self {
            lake,
            config,
            metrics: tarn_core::Metrics::default(),
        }
    }

    /// Records what each committed batch holds to `metrics` (the runner's measurements).
    pub fn with_metrics(mut self, metrics: tarn_core::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Registers the database and every table in the catalog (run once at deploy or cold start).
    pub async fn setup_catalog(&self) -> Result<(), Retry> {
        Ok(self.lake.setup_catalog().await?)
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        let (by_id, mut failed) = events_ids(&event);
        let ids: Vec<String> = by_id.keys().cloned().collect();
        for (id, reason) in self.commit(&ids).await {
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
            // 0. batches a crash cut short: finished if committed, rolled back past the lease
            if let Err(e) = self.lake.recover(self.config.lease).await {
                warn!(error = %e, "resolving interrupted batches failed; retried on the next delivery");
            }
            // 1. what is left to do, and claims
            let mut claimed = Vec::new();
            for id in ids {
                match self.claim(id, &batch).instrument(info_span!("document", id = %id)).await {
                    Ok(true) => claimed.push(id.clone()),
                    Ok(false) => {}
                    Err(e) => failed.push((id.clone(), e.0)),
                }
            }
            // 2. the items
            let mut items = Vec::new();
            for id in &claimed {
                match self.item(id).instrument(info_span!("document", id = %id)).await {
                    Ok(Some(it)) => items.push(it),
                    Ok(None) => self.release(id).await,
                    Err(e) => {
                        self.release(id).await;
                        failed.push((id.clone(), e.0));
                    }
                }
            }
            if items.is_empty() {
                return;
            }
            // 3. the commit
            let ids_in: Vec<String> = items.iter().map(|i| i.row.id.clone()).collect();
            let keys = StateKeys {
                inputs: ids_in.iter().map(|id| handoff_key("normalize", id)).collect(),
                claims: ids_in.iter().map(|id| claim_key(id)).collect(),
            };
            let started = std::time::Instant::now();
            match self.lake.commit(&batch, items, keys).await {
                Ok(rows) => {
                    tarn_lake::metrics::record_committed(
                        &self.metrics,
                        &self.lake.layout,
                        &rows,
                        started.elapsed().as_secs_f64(),
                    );
                    // an earlier, committed attempt of this batch id may have held other documents
                    let done: BTreeSet<&str> = rows.iter().map(|r| r.id.as_str()).collect();
                    for id in ids_in.iter().filter(|id| !done.contains(id.as_str())) {
                        match self.has_status(id).await {
                            // committed by another attempt meanwhile
                            Ok(true) => {}
                            _ => {
                                self.release(id).await;
                                failed.push((id.clone(), "its batch id was committed without it; retried in another batch".into()));
                            }
                        }
                    }
                }
                Err(e) => {
                    error!(error = %e, "batch commit failed; its documents will be retried");
                    // undo what is undoable now, so that a retry in any grouping can go ahead;
                    // what cannot be undone now is resolved through the claims on redelivery
                    match manifest::read(self.lake.state.as_ref(), &batch).await {
                        Ok(Some(m)) if !m.committed => {
                            if let Err(re) = self.lake.rollback(&m).await {
                                warn!(error = %re, "rolling back the failed batch failed; the lease will resolve it");
                            }
                        }
                        Ok(None) => {
                            for id in &ids_in {
                                self.release(id).await;
                            }
                        }
                        _ => {}
                    }
                    failed.extend(ids_in.into_iter().map(|id| (id, e.to_string())));
                }
            }
        }
        .instrument(span)
        .await;
        failed
    }

    /// Gives a claim up (best effort: a claim left behind is resolved through the lease).
    async fn release(&self, id: &str) {
        if let Err(e) = self.lake.state.delete(&claim_key(id)).await {
            warn!(id, error = %e, "releasing a claim failed; the lease will resolve it");
        }
    }

    async fn has_status(&self, id: &str) -> Result<bool, Retry> {
        Ok(self.lake.state.head(&status_key(id)).await?.is_some())
    }

    /// `Ok(true)`: the document is ours to process in `batch`; `Ok(false)`: it is done.
    async fn claim(&self, id: &str, batch: &str) -> Result<bool, Retry> {
        let state = self.lake.state.as_ref();
        for _ in 0..3 {
            if self.has_status(id).await? {
                info!("already committed; nothing to do");
                // a crash may have cut the cleanup short
                self.cleanup(id).await?;
                return Ok(false);
            }
            let body = serde_json::to_vec(&Claim {
                batch: batch.to_string(),
            })
            .expect("a claim serializes");
            if state
                .put_if_absent(&claim_key(id), body.into(), Metadata::new())
                .await?
            {
                return Ok(true);
            }
            // claimed before: by this same batch (a retry), by a live batch, or by a crashed one
            let existing = match state.get(&claim_key(id)).await {
                Ok(o) => o,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let claim: Claim = serde_json::from_slice(&existing.body)
                .map_err(|e| Retry(format!("unreadable claim: {e}")))?;
            match manifest::read(state, &claim.batch).await? {
                Some(m) if m.committed => {
                    info!(other_batch = %m.batch, "finishing the committed batch that holds this document");
                    self.lake.finish(&m).await?;
                    if !m.rows.iter().any(|r| r.id == id) {
                        // the committed batch did not hold it after all: its claim is stale
                        state.delete(&claim_key(id)).await?;
                    }
                    continue;
                }
                Some(m) => {
                    if claim.batch == batch {
                        // our own earlier attempt: the commit undoes and redoes it
                        return Ok(true);
                    }
                    let age = self.age(&manifest::manifest_key(&m.batch)).await?;
                    if age < self.config.lease {
                        return Err(Retry(format!(
                            "claimed by batch {} started {age:?} ago",
                            m.batch
                        )));
                    }
                    warn!(other_batch = %m.batch, "rolling back a batch that did not finish within the lease");
                    self.rollback_stale(&m).await?;
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
                    state.delete(&claim_key(id)).await?;
                }
            }
        }
        Err(Retry("could not claim the document".into()))
    }

    /// Rolls back another batch that outlived its lease, with the claims of all its documents
    /// (a manifest of an earlier version does not list them).
    async fn rollback_stale(&self, m: &Manifest) -> Result<(), Retry> {
        self.lake.rollback(m).await?;
        for r in &m.rows {
            self.lake.state.delete(&claim_key(&r.id)).await?;
        }
        Ok(())
    }

    async fn age(&self, key: &str) -> Result<Duration, Retry> {
        let info = self.lake.state.head(key).await?;
        Ok(info
            .map(|i| {
                (self.lake.clock.now() - i.last_modified)
                    .to_std()
                    .unwrap_or_default()
            })
            .unwrap_or(Duration::MAX))
    }

    async fn cleanup(&self, id: &str) -> Result<(), Retry> {
        self.lake.ingress.delete(&ingress_key(id)).await?;
        self.lake
            .state
            .delete(&handoff_key("normalize", id))
            .await?;
        self.lake.state.delete(&claim_key(id)).await?;
        Ok(())
    }

    /// What one hand-off becomes; `Ok(None)` when there is no hand-off.
    async fn item(&self, id: &str) -> Result<Option<BatchItem>, Retry> {
        let Some(h) = handoff::get(
            self.lake.state.as_ref(),
            self.lake.kms.as_ref(),
            "normalize",
            id,
        )
        .await?
        else {
            warn!("no hand-off for this document; nothing to do");
            return Ok(None);
        };
        let now = self.lake.clock.now();
        let layout = &self.lake.layout;
        if let Some(reason) = h.lost {
            return Ok(Some(item::lost(layout, id, &h.table, now, reason)));
        }
        let doc = h.document().map_err(Retry)?;
        let mut it = item::batch_item(layout, doc, h.origin(), h.verdict.clone(), now);
        if it.needs_landed() {
            match self.lake.ingress.get(&ingress_key(id)).await {
                Ok(o) => it.landed = Some(o),
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let reason = format!(
                        "the landed object was gone before its quarantine copy was made (it was {}: {})",
                        it.row.status.as_str(),
                        it.row.reason.as_deref().unwrap_or("")
                    );
                    warn!(%reason, "document lost");
                    return Ok(Some(item::lost(layout, id, &h.table, now, reason)));
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(it))
    }
}

/// A batch id that depends only on the batch's documents: the same message batch redelivered
/// has the same batch id, which is how a claim tells its own earlier attempt from another batch.
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
