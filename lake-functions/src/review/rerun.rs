//! Replay and release: a quarantined (or rejected) document's quarantine copy through the
//! pipeline's stages again, committed as a revision of the document ([`crate::commit::Revision`]).
//!
//! - replay: the configured stages as the pipeline runs them; the document ends `stored`,
//!   `rejected` or `quarantined` again (with the new reason), exactly as a new upload would;
//! - release: an operator's override of a quarantine. The stages run in order; a stage that
//!   refuses the document is passed over (its refusal kept in the row's reason and the history),
//!   except that validation is never overridden and a scan that finds a signature refuses the
//!   release. A scan passed over leaves `scan_result` `released`, which the content route serves.
//!   Infected documents (a signature as `scan_result`) and rejected ones are refused.

use super::{AT_ONCE, Outcome, infected};
use crate::commit::revision::status_record;
use crate::commit::{BatchItem, Revision, StateKeys};
use crate::error::{LakeError, Result};
use crate::item::{self, Origin};
use crate::lake::Lake;
use crate::stage::{Document, RetryPolicy, Stage, Verdict, run_stage, run_stages};
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use tarn_core::document::{quarantine_key, scan_result};
use tarn_core::{DocumentRow, ErrorKind, GetResult, Status};

/// Documents committed per batch.
const PER_BATCH: usize = 32;

/// The stages to run again, how, and for whom.
#[derive(Debug, Clone)]
pub struct Rerun {
    pub lake: Lake,
    /// the configured stages, in order (normalize follows them)
    pub stages: Vec<Arc<dyn Stage>>,
    pub retry: RetryPolicy,
    /// who asks: recorded in each document's history
    pub operator: String,
}

/// A quarantined document ready to run again: its status record and quarantine copy.
struct Quarantined {
    previous: DocumentRow,
    copy: GetResult,
}

enum Found {
    Ready(Quarantined),
    /// nothing to do, and why
    Skip(Outcome),
}

impl Rerun {
    /// Replays each of `ids`. A document that is no longer rejected or quarantined (already
    /// replayed, say) is left as it is and said so; an id without a status record is refused.
    pub async fn replay(&self, ids: &[String]) -> Result<Vec<Outcome>> {
        // what an interrupted action committed is finished first, so it is not found undone
        self.lake.finish_committed().await?;
        let mut out = Vec::new();
        for chunk in ids.chunks(PER_BATCH) {
            let found: Vec<Found> = futures::stream::iter(chunk)
                .map(|id| self.find(id))
                .buffered(AT_ONCE)
                .try_collect()
                .await?;
            let mut items = Vec::new();
            for f in found {
                match f {
                    Found::Skip(o) => out.push(o),
                    Found::Ready(q) => items.push(q),
                }
            }
            let items: Vec<BatchItem> = futures::stream::iter(items)
                .map(|q| self.replayed(q))
                .buffered(AT_ONCE)
                .try_collect()
                .await?;
            out.extend(self.commit(items).await?);
        }
        Ok(out)
    }

    /// Releases quarantined document `id` with the operator's `reason` (see the module docs).
    pub async fn release(&self, id: &str, reason: &str) -> Result<Outcome> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(LakeError::Refused(
                "a release needs the operator's reason: pass --reason \"...\"".into(),
            ));
        }
        self.lake.finish_committed().await?;
        let q = match self.find(id).await? {
            Found::Skip(o) => return Ok(o),
            Found::Ready(q) => q,
        };
        let prev = &q.previous;
        if infected(prev.scan_result.as_deref()) {
            return Err(LakeError::Refused(format!(
                "document {id} is infected ({}): infected documents are never released",
                prev.scan_result.as_deref().unwrap_or_default()
            )));
        }
        if prev.status == Status::Rejected {
            return Err(LakeError::Refused(format!(
                "document {id} was rejected by validation ({}): a release only overrides a quarantine; fix the table's schema and replay it",
                prev.reason.as_deref().unwrap_or_default()
            )));
        }
        let now = self.lake.clock.now();
        let (mut doc, origin, verdict) =
            item::open_landed(self.lake.kms.as_ref(), id, &q.copy, now).await?;
        if let Some(Verdict::Quarantine(why)) = verdict {
            return Err(LakeError::Refused(format!(
                "document {id} cannot be released: its quarantine copy cannot be read ({why})"
            )));
        }
        let overridden = self.run_overriding(&mut doc).await?;
        let note = if overridden.is_empty() {
            reason.to_string()
        } else {
            format!("{reason} (passed over: {})", overridden.join("; "))
        };
        let mut it = self.item(q, doc, origin, Verdict::Continue, "release", Some(note));
        if it.row.status != Status::Stored {
            return Err(LakeError::Refused(format!(
                "document {id} cannot be released: {}",
                it.row.reason.as_deref().unwrap_or_default()
            )));
        }
        it.row.reason = Some(format!("released by {}: {reason}", self.operator));
        let mut outcomes = self.commit(vec![it]).await?;
        Ok(outcomes.remove(0))
    }

    /// Runs the stages on `doc`, passing over each refusal but validation's and an infection;
    /// returns the refusals passed over.
    async fn run_overriding(&self, doc: &mut Document) -> Result<Vec<String>> {
        let mut overridden = Vec::new();
        for stage in &self.stages {
            let why = match run_stage(stage.as_ref(), doc, self.retry).await {
                Verdict::Continue => continue,
                Verdict::Reject(why) | Verdict::Quarantine(why) => why,
            };
            if infected(doc.scan_result.as_deref()) {
                return Err(LakeError::Refused(format!(
                    "document {} is infected ({why}): infected documents are never released",
                    doc.id
                )));
            }
            if stage.name() == "validate" {
                return Err(LakeError::Refused(format!(
                    "document {} fails validation ({why}), which a release does not override: fix the table's schema and replay it",
                    doc.id
                )));
            }
            if stage.name() == "scan" {
                doc.scan_result = Some(scan_result::RELEASED.into());
            }
            overridden.push(why);
        }
        Ok(overridden)
    }

    /// Document `id`'s status record and quarantine copy, when it is rejected or quarantined.
    async fn find(&self, id: &str) -> Result<Found> {
        super::check_id(id)?;
        let previous = status_record(self.lake.state.as_ref(), id)
            .await?
            .ok_or_else(|| {
                LakeError::Refused(format!(
                    "no processed document {id}: check the id (tarn quarantine list shows the quarantined ones)"
                ))
            })?;
        if !matches!(previous.status, Status::Rejected | Status::Quarantined) {
            let why = format!("it is {}, not in quarantine", previous.status.as_str());
            return Ok(Found::Skip(Outcome::unchanged(&previous, why)));
        }
        let key = quarantine_key(&previous.table_name, id);
        match self.lake.quarantine.get(&key).await {
            Ok(copy) => Ok(Found::Ready(Quarantined { previous, copy })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Found::Skip(Outcome::unchanged(
                &previous,
                format!("its quarantine copy {key} is missing"),
            ))),
            Err(e) => Err(e.into()),
        }
    }

    /// What a replay makes of `q`: the stages as the pipeline runs them.
    async fn replayed(&self, q: Quarantined) -> Result<BatchItem> {
        let now = self.lake.clock.now();
        let (mut doc, origin, verdict) =
            item::open_landed(self.lake.kms.as_ref(), &q.previous.id, &q.copy, now).await?;
        let verdict = match verdict {
            Some(v) => v,
            None => run_stages(&self.stages, &mut doc, self.retry).await,
        };
        Ok(self.item(q, doc, origin, verdict, "replay", None))
    }

    /// The batch item of `doc` after `verdict`, as a revision of `q`.
    fn item(
        &self,
        q: Quarantined,
        doc: Document,
        origin: Origin,
        verdict: Verdict,
        action: &str,
        note: Option<String>,
    ) -> BatchItem {
        let now = self.lake.clock.now();
        let mut it = item::batch_item(&self.lake.layout, doc, origin, verdict, now);
        if it.needs_landed() {
            it.landed = Some(q.copy);
        }
        it.revision = Some(Revision {
            previous: q.previous,
            action: action.into(),
            operator: self.operator.clone(),
            note,
        });
        it
    }

    /// Commits `items` as one batch; an item the commit left out was moved on by someone else.
    async fn commit(&self, items: Vec<BatchItem>) -> Result<Vec<Outcome>> {
        commit_revisions(&self.lake, items).await
    }
}

/// Commits revision `items` as one batch and says what became of each: the committed rows, or
/// unchanged for a document whose status record moved on meanwhile.
pub(super) async fn commit_revisions(lake: &Lake, items: Vec<BatchItem>) -> Result<Vec<Outcome>> {
    if items.is_empty() {
        return Ok(vec![]);
    }
    let previous: Vec<DocumentRow> = items
        .iter()
        .filter_map(|it| it.revision.as_ref().map(|r| r.previous.clone()))
        .collect();
    let batch = format!(
        "{}{}",
        crate::commit::revision::BATCH_PREFIX,
        uuid::Uuid::new_v4()
    );
    let rows = lake.commit(&batch, items, StateKeys::default()).await?;
    Ok(previous
        .into_iter()
        .map(|p| match rows.iter().find(|r| r.id == p.id) {
            Some(r) => Outcome {
                id: p.id.clone(),
                table: r.table_name.clone(),
                before: p.status,
                after: Some(r.status),
                reason: r.reason.clone(),
            },
            None => Outcome::unchanged(&p, "it was moved on by another action meanwhile"),
        })
        .collect())
}
