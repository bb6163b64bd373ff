//! A document as it flows through the stages, and the [`Stage`] trait.

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use tarn_core::Metrics;
use tracing::warn;

/// One landed document, decrypted, with what the stages learned about it.
#[derive(Debug, Clone)]
pub struct Document {
    pub id: String,
    pub table: String,
    /// the media type the producer declared (without parameters)
    pub content_type: String,
    pub producer: String,
    pub received_at: DateTime<Utc>,
    /// the document's bytes; a stage that rewrites them (strip) replaces them
    pub body: Bytes,
    /// set by validate: the type the bytes really are
    pub detected_type: Option<String>,
    /// set by validate for JSON tables: the records, each valid against the table's schema
    pub records: Option<Vec<Value>>,
    pub scan_engine: Option<String>,
    pub scan_result: Option<String>,
    pub metadata_removed: Vec<String>,
}

impl Document {
    /// A document as it arrives at the first stage: nothing learned about it yet.
    pub fn new(
        id: impl Into<String>,
        table: impl Into<String>,
        content_type: impl Into<String>,
        producer: impl Into<String>,
        received_at: DateTime<Utc>,
        body: Bytes,
    ) -> Self {
        Self {
            id: id.into(),
            table: table.into(),
            content_type: content_type.into(),
            producer: producer.into(),
            received_at,
            body,
            detected_type: None,
            records: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: Vec::new(),
        }
    }
}

/// What a stage decided. Serialized as `{"verdict": "reject", "reason": "..."}` where the Lambda
/// functions carry it from one stage to the next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "reason", rename_all = "lowercase")]
pub enum Verdict {
    /// go on to the next stage
    Continue,
    /// the document is bad (validation): it gets a `rejected` row and is kept in quarantine
    Reject(String),
    /// the document is dangerous or could not be made safe: `quarantined`, never in the lake
    Quarantine(String),
}

/// Why a stage could not decide; transient errors are retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("transient: {0}")]
    Transient(String),
    #[error("{0}")]
    Permanent(String),
}

/// One step of the pipeline. Stages are pure in effect: they read and change the [`Document`]
/// and decide; all storage is the runner's. A stage must be safe to run twice on one document
/// (a crash re-runs it).
#[async_trait]
pub trait Stage: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    async fn process(&self, doc: &mut Document) -> Result<Verdict, StageError>;
}

/// How a stage failing transiently is retried: `max_attempts` tries in all, the first retry after
/// `base`, each next one after twice the last (at most 10 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base: Duration::from_millis(50),
        }
    }
}

/// Runs `stage` on `doc` under `policy`: transient failures are retried with backoff, then the
/// document is quarantined; a permanent failure quarantines it at once. The one retry rule of
/// the local runner and the Lambda functions.
pub async fn run_stage(stage: &dyn Stage, doc: &mut Document, policy: RetryPolicy) -> Verdict {
    let mut delay = policy.base;
    let max = policy.max_attempts.max(1);
    let mut attempt = 1;
    loop {
        match stage.process(doc).await {
            Ok(v) => return v,
            Err(StageError::Permanent(reason)) => {
                return Verdict::Quarantine(format!("{}: {reason}", stage.name()));
            }
            Err(StageError::Transient(reason)) if attempt >= max => {
                return Verdict::Quarantine(format!(
                    "{} failed {attempt} times: {reason}",
                    stage.name()
                ));
            }
            Err(StageError::Transient(reason)) => {
                warn!(id = %doc.id, stage = stage.name(), attempt, %reason, "stage failed, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(10));
                attempt += 1;
            }
        }
    }
}

/// [`run_stage`], its time (retries included) observed in
/// [`STAGE_DURATION`](tarn_core::metrics::STAGE_DURATION), and the scan engine recorded when the
/// stage named the one that scanned the document.
pub async fn run_stage_measured(
    stage: &dyn Stage,
    doc: &mut Document,
    policy: RetryPolicy,
    metrics: &Metrics,
) -> Verdict {
    let started = std::time::Instant::now();
    let engine_before = doc.scan_engine.clone();
    let verdict = run_stage(stage, doc, policy).await;
    metrics.observe(
        &tarn_core::metrics::STAGE_DURATION,
        &[stage.name()],
        started.elapsed().as_secs_f64(),
    );
    if let Some(engine) = &doc.scan_engine
        && doc.scan_engine != engine_before
    {
        crate::metrics::record_engine(metrics, engine);
    }
    verdict
}

/// Runs `stages` in order until one decides other than [`Verdict::Continue`].
pub async fn run_stages(
    stages: &[std::sync::Arc<dyn Stage>],
    doc: &mut Document,
    policy: RetryPolicy,
) -> Verdict {
    run_stages_measured(stages, doc, policy, &Metrics::default()).await
}

/// [`run_stages`], each stage measured ([`run_stage_measured`]).
pub async fn run_stages_measured(
    stages: &[std::sync::Arc<dyn Stage>],
    doc: &mut Document,
    policy: RetryPolicy,
    metrics: &Metrics,
) -> Verdict {
    for stage in stages {
        let verdict = run_stage_measured(stage.as_ref(), doc, policy, metrics).await;
        if verdict != Verdict::Continue {
            return verdict;
        }
    }
    Verdict::Continue
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug)]
    struct Flaky {
        fails: u32,
        calls: AtomicU32,
        permanent: bool,
    }

    #[async_trait]
    impl Stage for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }
        async fn process(&self, _doc: &mut Document) -> Result<Verdict, StageError> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            if self.permanent {
                return Err(StageError::Permanent("broken".into()));
            }
            if n < self.fails {
                Err(StageError::Transient(format!("try {n}")))
            } else {
                Ok(Verdict::Continue)
            }
        }
    }

    fn doc() -> Document {
        Document::new("d", "t", "application/json", "p", Utc::now(), Bytes::new())
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base: Duration::from_millis(1),
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_then_quarantined() {
        let s = Flaky {
            fails: 2,
            calls: AtomicU32::new(0),
            permanent: false,
        };
        assert_eq!(
            run_stage(&s, &mut doc(), policy(3)).await,
            Verdict::Continue
        );
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);

        let s = Flaky {
            fails: 10,
            calls: AtomicU32::new(0),
            permanent: false,
        };
        assert_eq!(
            run_stage(&s, &mut doc(), policy(3)).await,
            Verdict::Quarantine("flaky failed 3 times: try 2".into())
        );
        assert_eq!(s.calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_permanent_failure_quarantines_at_once() {
        let s = Flaky {
            fails: 0,
            calls: AtomicU32::new(0),
            permanent: true,
        };
        assert_eq!(
            run_stage(&s, &mut doc(), policy(5)).await,
            Verdict::Quarantine("flaky: broken".into())
        );
        assert_eq!(s.calls.load(Ordering::SeqCst), 1);
    }

    #[derive(Debug)]
    struct Names;

    #[async_trait]
    impl Stage for Names {
        fn name(&self) -> &'static str {
            "scan"
        }
        async fn process(&self, doc: &mut Document) -> Result<Verdict, StageError> {
            doc.scan_engine = Some("clamav 1.4.2/27000".into());
            Ok(Verdict::Continue)
        }
    }

    #[tokio::test]
    async fn a_measured_stage_records_its_time_and_the_engine_it_named() {
        use tarn_core::metrics as m;
        let seen = std::sync::Arc::new(tarn_core::testing::CapturedMetrics::default());
        let metrics = Metrics::new(seen.clone());
        let mut d = doc();
        let v = run_stage_measured(&Names, &mut d, policy(1), &metrics).await;
        assert_eq!(v, Verdict::Continue);
        assert_eq!(seen.count(m::STAGE_DURATION.name, &["scan"]), 1);
        let engine = ["clamav", "1.4.2", "27000"];
        assert_eq!(seen.count(m::SCAN_ENGINE.name, &engine), 1);
        // a later stage that leaves the engine as it was records no engine again
        run_stage_measured(&Names, &mut d, policy(1), &metrics).await;
        assert_eq!(seen.count(m::SCAN_ENGINE.name, &engine), 1);
    }

    #[test]
    fn verdicts_keep_their_wire_form() {
        let v = serde_json::to_value(Verdict::Reject("bad".into())).unwrap();
        assert_eq!(v, serde_json::json!({"verdict": "reject", "reason": "bad"}));
        let c: Verdict =
            serde_json::from_value(serde_json::json!({"verdict": "continue"})).unwrap();
        assert_eq!(c, Verdict::Continue);
    }
}
