//! [`StageFunction`]: one stage (validate, scan, strip) as a Lambda function.

use super::handoff::{self, Handoff, handoff_key};
use super::{FunctionConfig, Retry, per_message};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::sync::Arc;
use tarn_core::ErrorKind;
use tarn_core::document::{ingress_key, status_key};
use tarn_lake::item::{self, Origin};
use tarn_lake::stage::run_stage_measured;
use tarn_lake::{Lake, Stage, Verdict, landed};
use tracing::{info, warn};

/// One stage as a Lambda function: reads the landed object (the first stage) or its hand-off,
/// runs the stage, and hands the document on.
#[derive(Debug, Clone)]
pub struct StageFunction {
    lake: Lake,
    stage: Arc<dyn Stage>,
    /// reads landed objects from the ingress store (the first stage) or hand-offs
    first: bool,
    next: String,
    config: FunctionConfig,
    metrics: tarn_core::Metrics,
}

impl StageFunction {
    /// `next`: the stage whose hand-off this one writes (`normalize` after the last).
    pub fn new(
        lake: Lake,
        stage: Arc<dyn Stage>,
        first: bool,
        next: impl Into<String>,
        config: FunctionConfig,
    ) -> Self {
        Self {
            lake,
            stage,
            first,
            next: next.into(),
            config,
            metrics: tarn_core::Metrics::default(),
        }
    }

    /// Records the stage's time per document (and the scan stage's engine) to `metrics`.
    pub fn with_metrics(mut self, metrics: tarn_core::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn name(&self) -> &'static str {
        self.stage.name()
    }

    pub async fn handle(&self, event: SqsEvent) -> SqsBatchResponse {
        per_message(event, |id| async move { self.process(&id).await }).await
    }

    async fn hand_on(&self, stage: &str, h: &Handoff) -> Result<(), Retry> {
        handoff::put(self.lake.state.as_ref(), self.lake.kms.as_ref(), stage, h).await
    }

    /// Runs the stage on one document and hands it on. Safe to repeat.
    pub async fn process(&self, id: &str) -> Result<(), Retry> {
        if self.lake.state.head(&status_key(id)).await?.is_some() {
            info!(stage = self.name(), "already committed; nothing to do");
            return Ok(());
        }
        let (mut doc, origin) = if self.first {
            let key = ingress_key(id);
            let landed_obj = match self.lake.ingress.get(&key).await {
                Ok(o) => o,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    // no status and no landed object: it expired before this delivery
                    let reason = "the landed object was gone before the pipeline read it (a delivery later than the landing store keeps objects)".to_string();
                    warn!(stage = self.name(), %reason, "document lost");
                    let h = Handoff::lost(id, self.lake.clock.now(), reason);
                    return self.hand_on("normalize", &h).await;
                }
                Err(e) => return Err(e.into()),
            };
            match landed::decode(self.lake.kms.as_ref(), &key, &landed_obj).await {
                Ok(d) => {
                    let origin = Origin::of(&d.body);
                    (d, origin)
                }
                Err(e) if e.kind() == tarn_lake::error::ErrorKind::Transient => {
                    return Err(e.into());
                }
                Err(e) => {
                    warn!(stage = self.name(), reason = %e, "landed object is undecodable; quarantining");
                    let (doc, origin) = item::undecodable(id, &landed_obj, self.lake.clock.now());
                    let h = Handoff::new(&doc, &origin, Verdict::Quarantine(e.to_string()));
                    return self.hand_on("normalize", &h).await;
                }
            }
        } else {
            let Some(h) = handoff::get(
                self.lake.state.as_ref(),
                self.lake.kms.as_ref(),
                self.name(),
                id,
            )
            .await?
            else {
                info!(
                    stage = self.name(),
                    "no hand-off (already handed on); nothing to do"
                );
                return Ok(());
            };
            (h.document().map_err(Retry)?, h.origin())
        };
        let verdict = run_stage_measured(
            self.stage.as_ref(),
            &mut doc,
            self.config.retry,
            &self.metrics,
        )
        .await;
        let next = if verdict == Verdict::Continue {
            self.next.as_str()
        } else {
            "normalize"
        };
        info!(stage = self.name(), table = %doc.table, verdict = ?verdict, next, "stage done");
        self.hand_on(next, &Handoff::new(&doc, &origin, verdict))
            .await?;
        if !self.first {
            self.lake
                .state
                .delete(&handoff_key(self.name(), id))
                .await?;
        }
        Ok(())
    }
}
