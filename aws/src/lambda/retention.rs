//! Retention as a Lambda function (an EventBridge schedule): each table's `x-tarn.retention`
//! erases the documents received before now minus the retention, with the same
//! [`tarn_lake::erase::Erasure`] `tarn serve`'s schedule and `tarn erase` run. On AWS the access
//! trail is CloudTrail's: the erasure's record (`erasures/<id>.json` in the state store) and each
//! delete are S3 data events; the erasure's own event (who, selector, counts, objects) is logged
//! as one JSON line (`"erasure"`) to the function's log group.

use super::BoxError;
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::TableSpec;
use tarn_core::audit::{Actor, CloudTrailRecord, TrailConfig};
use tarn_lake::Lake;
use tarn_lake::erase::{ERASE_COMPONENT, EraseReport, Erasure, erasure_event, run_retention};

/// The retention function: the lake and its tables.
#[derive(Debug, Clone)]
pub struct RetentionFunction {
    pub lake: Lake,
    pub tables: Vec<TableSpec>,
    /// how long replaced files stay readable (the vacuum of the next compaction removes them)
    pub grace: Duration,
}

impl RetentionFunction {
    /// Runs the retention erasures due now; the answer is `{"erasures": [<report>...]}`.
    pub async fn handle(&self, _event: serde_json::Value) -> Result<serde_json::Value, BoxError> {
        let lake = self.lake.clone();
        let grace = self.grace;
        let make = move |s| {
            Erasure::new(lake.clone(), s)
                .reason("retention")
                .by(ERASE_COMPONENT)
                .grace_period(grace)
        };
        let bucket = self.lake.state.bucket().to_string();
        let trail = TrailConfig::default();
        let done = move |r: &EraseReport| {
            for f in &r.finished {
                let e = erasure_event(f, &bucket, Actor::Service(ERASE_COMPONENT.into()));
                let record = CloudTrailRecord::from_event(&trail, e);
                tracing::info!(erasure = %serde_json::to_string(&record).unwrap_or_default(), "erasure");
            }
        };
        let now = self.lake.clock.now();
        let reports = run_retention(&self.tables, now, &make, &done).await?;
        Ok(serde_json::json!({ "erasures": reports }))
    }
}

/// Runs the retention function under the Lambda runtime.
pub async fn run() -> Result<(), BoxError> {
    super::init_tracing();
    let f = Arc::new(super::Functions::connect().await?.retention());
    lambda_runtime::run(lambda_runtime::service_fn(
        move |ev: lambda_runtime::LambdaEvent<serde_json::Value>| {
            let f = f.clone();
            async move { f.handle(ev.payload).await }
        },
    ))
    .await
}
