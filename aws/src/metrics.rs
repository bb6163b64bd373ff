//! The CloudWatch sink of the platform's measures ([`tarn_core::metrics`]): each measurement is
//! one Embedded Metric Format line on stdout, which CloudWatch Logs turns into a metric of the
//! namespace [`namespace`] with the measure's labels as dimensions. The Lambda functions record
//! through it the same calls `tarn serve` records to Prometheus.

use serde_json::{Map, Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tarn_core::metrics::{Measure, Metrics, Recorder};

/// The namespace when `TARN_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "tarn";

/// The namespace the functions' metrics go to: `TARN_METRICS_NAMESPACE` (the templates set
/// `tarn/<stack name>`), else [`DEFAULT_NAMESPACE`].
pub fn namespace() -> String {
    std::env::var("TARN_METRICS_NAMESPACE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

/// Writes one EMF line per measurement.
pub struct EmfRecorder {
    namespace: String,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for EmfRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EmfRecorder({})", self.namespace)
    }
}

impl EmfRecorder {
    pub fn new(namespace: impl Into<String>, out: Box<dyn Write + Send>) -> Self {
        Self {
            namespace: namespace.into(),
            out: Mutex::new(out),
        }
    }

    /// Lines on stdout, in the namespace of [`namespace`]: what a Lambda function records to.
    pub fn stdout() -> Metrics {
        Metrics::new(Arc::new(Self::new(
            namespace(),
            Box::new(std::io::stdout()),
        )))
    }

    /// The EMF document of one measurement at `timestamp_ms`.
    pub fn document(
        &self,
        measure: &Measure,
        labels: &[&str],
        value: f64,
        timestamp_ms: i64,
    ) -> Value {
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [measure.labels],
                    "Metrics": [{"Name": measure.name, "Unit": measure.unit.cloudwatch()}],
                }],
            }),
        );
        for (k, v) in measure.labels.iter().zip(labels) {
            // CloudWatch drops a metric with an empty dimension value
            let v = if v.is_empty() { "-" } else { v };
            root.insert((*k).into(), json!(v));
        }
        root.insert(measure.name.into(), json!(value));
        Value::Object(root)
    }
}

impl Recorder for EmfRecorder {
    fn record(&self, measure: &'static Measure, labels: &[&str], value: f64) {
        let doc = self.document(
            measure,
            labels,
            value,
            chrono::Utc::now().timestamp_millis(),
        );
        let mut line = doc.to_string();
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        // one write per line, so lines of concurrent tasks never interleave
        let _ = out.write_all(line.as_bytes()).and_then(|_| out.flush());
    }
}
