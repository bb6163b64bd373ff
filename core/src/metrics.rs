//! The platform's measures, defined once, and the [`Recorder`] port every sink implements.
//!
//! Each [`Measure`] says its name (Prometheus conventions: `tarn_` prefix, the unit in the name,
//! `_total` on counters), kind, help text and label names. Label values are bounded by the
//! callers: table names are declared tables (`_unknown` otherwise), statuses, stage names,
//! reason classes, HTTP status codes; never a document id nor a user.
//!
//! Code records through a [`Metrics`] handle: `tarn serve` gives its parts one backed by the
//! Prometheus registry behind `GET /metrics` (tarn-ingress), the Lambda functions one writing
//! CloudWatch Embedded Metric Format lines (tarn-aws), and everything else the no-op
//! [`Metrics::default`].

use std::fmt;
use std::sync::Arc;

/// How a measure's values combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// only goes up: each value recorded is added
    Counter,
    /// a level: each value recorded replaces the last
    Gauge,
    /// a distribution: each value recorded is one observation
    Histogram,
}

/// The unit of a measure's values (named in the measure's name too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Seconds,
    Bytes,
}

impl Unit {
    /// The unit as CloudWatch names it.
    pub fn cloudwatch(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Seconds => "Seconds",
            Unit::Bytes => "Bytes",
        }
    }
}

/// One measure's definition.
#[derive(Debug, PartialEq)]
pub struct Measure {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub help: &'static str,
    /// the label names; values are given in this order
    pub labels: &'static [&'static str],
    /// a histogram's bucket upper bounds (empty for other kinds)
    pub buckets: &'static [f64],
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const WORK_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0,
];

const fn counter(
    name: &'static str,
    unit: Unit,
    help: &'static str,
    labels: &'static [&'static str],
) -> Measure {
    Measure {
        name,
        kind: Kind::Counter,
        unit,
        help,
        labels,
        buckets: &[],
    }
}

const fn gauge(
    name: &'static str,
    unit: Unit,
    help: &'static str,
    labels: &'static [&'static str],
) -> Measure {
    Measure {
        kind: Kind::Gauge,
        ..counter(name, unit, help, labels)
    }
}

/// Histograms measure time, in seconds.
const fn histogram(
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    buckets: &'static [f64],
) -> Measure {
    Measure {
        kind: Kind::Histogram,
        buckets,
        ..counter(name, Unit::Seconds, help, labels)
    }
}

pub const INGRESS_REQUESTS: Measure = counter(
    "tarn_ingress_requests_total",
    Unit::Count,
    "Ingress HTTP requests answered, by route, table and status code.",
    &["route", "table", "code"],
);

pub const INGRESS_REQUEST_DURATION: Measure = histogram(
    "tarn_ingress_request_duration_seconds",
    "Time from a request's head to its answer, by route.",
    &["route"],
    LATENCY_BUCKETS,
);

pub const INGRESS_RECEIVED_BYTES: Measure = counter(
    "tarn_ingress_received_bytes_total",
    Unit::Bytes,
    "Request body bytes read by the upload route, by table.",
    &["table"],
);

pub const PIPELINE_BACKLOG: Measure = gauge(
    "tarn_pipeline_backlog_documents",
    Unit::Count,
    "Landed documents the pipeline has not committed yet.",
    &[],
);

pub const PIPELINE_OLDEST_PENDING_AGE: Measure = gauge(
    "tarn_pipeline_oldest_pending_age_seconds",
    Unit::Seconds,
    "Age of the oldest landed document not committed yet (freshness lag; 0 when none).",
    &[],
);

pub const PIPELINE_DOCUMENTS: Measure = counter(
    "tarn_pipeline_documents_total",
    Unit::Count,
    "Documents committed, by table and final status.",
    &["table", "status"],
);

pub const PIPELINE_QUARANTINED: Measure = counter(
    "tarn_pipeline_quarantined_documents_total",
    Unit::Count,
    "Documents committed as quarantined, by table and reason class.",
    &["table", "reason"],
);

pub const STAGE_DURATION: Measure = histogram(
    "tarn_pipeline_stage_duration_seconds",
    "Time a stage took on one document, retries included, by stage.",
    &["stage"],
    WORK_BUCKETS,
);

pub const FLUSHES: Measure = counter(
    "tarn_pipeline_flushes_total",
    Unit::Count,
    "Batches committed to the lake.",
    &[],
);

pub const FLUSH_DURATION: Measure = histogram(
    "tarn_pipeline_flush_duration_seconds",
    "Time to commit one batch, retries included.",
    &[],
    WORK_BUCKETS,
);

pub const ROWS_WRITTEN: Measure = counter(
    "tarn_pipeline_rows_written_total",
    Unit::Count,
    "Records written to the lake's Parquet files, by table.",
    &["table"],
);

pub const SCAN_ENGINE: Measure = gauge(
    "tarn_scan_engine_info",
    Unit::Count,
    "The scan engine in use (value 1), by engine, version and definitions version.",
    &["engine", "version", "definitions"],
);

pub const SCAN_DEFINITIONS_AGE: Measure = gauge(
    "tarn_scan_definitions_age_seconds",
    Unit::Seconds,
    "Time since the newest loaded virus definitions were built.",
    &[],
);

pub const COMPACTION_RUNS: Measure = counter(
    "tarn_compaction_runs_total",
    Unit::Count,
    "Compaction runs, by result (ok or error).",
    &["result"],
);

pub const COMPACTION_LAST_RUN: Measure = gauge(
    "tarn_compaction_last_run_timestamp_seconds",
    Unit::Seconds,
    "When the last successful compaction run ended (Unix time).",
    &[],
);

pub const SMALL_FILES: Measure = gauge(
    "tarn_compaction_small_files",
    Unit::Count,
    "Parquet files below the compaction target size, by table, as the last run left them.",
    &["table"],
);

pub const AUDIT_DELIVERY_FAILURES: Measure = counter(
    "tarn_audit_delivery_failures_total",
    Unit::Count,
    "Failed attempts to write the audit trail (its records stay buffered and are retried).",
    &[],
);

/// Every measure, in the order expositions list them.
pub const ALL: &[&Measure] = &[
    &INGRESS_REQUESTS,
    &INGRESS_REQUEST_DURATION,
    &INGRESS_RECEIVED_BYTES,
    &PIPELINE_BACKLOG,
    &PIPELINE_OLDEST_PENDING_AGE,
    &PIPELINE_DOCUMENTS,
    &PIPELINE_QUARANTINED,
    &STAGE_DURATION,
    &FLUSHES,
    &FLUSH_DURATION,
    &ROWS_WRITTEN,
    &SCAN_ENGINE,
    &SCAN_DEFINITIONS_AGE,
    &COMPACTION_RUNS,
    &COMPACTION_LAST_RUN,
    &SMALL_FILES,
    &AUDIT_DELIVERY_FAILURES,
];

/// A sink for measurements. `labels` holds the values of `measure.labels`, in order.
pub trait Recorder: Send + Sync + fmt::Debug {
    /// Adds `value` to a counter, sets a gauge to it, or observes it in a histogram (by
    /// `measure.kind`).
    fn record(&self, measure: &'static Measure, labels: &[&str], value: f64);
}

/// Records nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopRecorder;

impl Recorder for NoopRecorder {
    fn record(&self, _: &'static Measure, _: &[&str], _: f64) {}
}

/// The handle code records through (cheap to clone). [`Default`] records nothing.
#[derive(Debug, Clone)]
pub struct Metrics(Arc<dyn Recorder>);

impl Default for Metrics {
    fn default() -> Self {
        Self(Arc::new(NoopRecorder))
    }
}

impl Metrics {
    pub fn new(recorder: Arc<dyn Recorder>) -> Self {
        Self(recorder)
    }

    /// Adds `value` to the counter `m`.
    pub fn add(&self, m: &'static Measure, labels: &[&str], value: f64) {
        debug_assert_eq!(m.kind, Kind::Counter, "{} is not a counter", m.name);
        self.record(m, labels, value);
    }

    /// Sets the gauge `m` to `value`.
    pub fn set(&self, m: &'static Measure, labels: &[&str], value: f64) {
        debug_assert_eq!(m.kind, Kind::Gauge, "{} is not a gauge", m.name);
        self.record(m, labels, value);
    }

    /// Observes `value` in the histogram `m`.
    pub fn observe(&self, m: &'static Measure, labels: &[&str], value: f64) {
        debug_assert_eq!(m.kind, Kind::Histogram, "{} is not a histogram", m.name);
        self.record(m, labels, value);
    }

    fn record(&self, m: &'static Measure, labels: &[&str], value: f64) {
        debug_assert_eq!(
            labels.len(),
            m.labels.len(),
            "{} takes labels {:?}",
            m.name,
            m.labels
        );
        self.0.record(m, labels, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn measures_follow_the_prometheus_conventions() {
        let mut names = HashSet::new();
        for m in ALL {
            assert!(names.insert(m.name), "{} defined twice", m.name);
            assert!(m.name.starts_with("tarn_"), "{}", m.name);
            assert!(
                m.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}",
                m.name
            );
            let unit = match m.unit {
                Unit::Seconds => "_seconds",
                Unit::Bytes => "_bytes",
                Unit::Count => "",
            };
            assert!(
                m.name.trim_end_matches("_total").ends_with(unit),
                "{} must name its unit",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Histogram,
                !m.buckets.is_empty(),
                "{}",
                m.name
            );
            assert!(m.buckets.windows(2).all(|w| w[0] < w[1]), "{}", m.name);
            for l in m.labels {
                assert!(
                    !["id", "user", "document", "producer"].contains(l),
                    "{}",
                    m.name
                );
            }
            assert!(m.help.ends_with('.'), "{}", m.name);
        }
    }
}
