//! The pipeline's measurements, made by the same calls in the local runner and the Lambda
//! functions: what a committed batch says ([`record_committed`]), the landed backlog
//! ([`record_backlog`]), and the bounded class of a quarantine reason ([`quarantine_reason`]).
//! [`definitions`] reads how old a ClamAV signature database is.

pub mod definitions;

use crate::lake::LakeLayout;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use tarn_core::metrics::{self as m, Metrics};
use tarn_core::{DocumentRow, ObjectInfo, Status};

/// The table label of a document of `table`: the table when declared, else `_unknown`.
pub fn table_label<'a>(declared: impl Fn(&str) -> bool, table: &'a str) -> &'a str {
    if declared(table) { table } else { "_unknown" }
}

/// The bounded class of a quarantine reason, as a label: `infected`, `unscannable`,
/// `undecodable` (the landed object could not be read), `retries_exhausted` (a stage kept failing
/// transiently), `stage_error` (a stage failed for good), or `refused` (the strip stage would
/// not pass it: malformed, or a type it cannot clean).
pub fn quarantine_reason(reason: &str) -> &'static str {
    let stage_error = ["validate:", "scan:", "strip:", "normalize:"]
        .iter()
        .any(|p| reason.starts_with(p));
    if reason.starts_with("infected:") {
        "infected"
    } else if reason.starts_with("unscannable") {
        "unscannable"
    } else if reason.starts_with("landed object ") {
        "undecodable"
    } else if reason.contains(" failed ") && reason.contains(" times: ") {
        "retries_exhausted"
    } else if stage_error {
        "stage_error"
    } else {
        "refused"
    }
}

/// Records a committed batch of `layout`'s lake: one flush taking `seconds`, its documents by
/// table and status, the quarantined ones by reason class, and the records written.
pub fn record_committed(
    metrics: &Metrics,
    layout: &LakeLayout,
    rows: &[DocumentRow],
    seconds: f64,
) {
    let declared = |t: &str| layout.specs.contains_key(t);
    metrics.add(&m::FLUSHES, &[], 1.0);
    metrics.observe(&m::FLUSH_DURATION, &[], seconds);
    let mut documents: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut quarantined: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut records: BTreeMap<&str, i64> = BTreeMap::new();
    for row in rows {
        let table = table_label(&declared, &row.table_name);
        *documents.entry((table, row.status.as_str())).or_default() += 1;
        if row.status == Status::Quarantined {
            let reason = quarantine_reason(row.reason.as_deref().unwrap_or(""));
            *quarantined.entry((table, reason)).or_default() += 1;
        }
        if let Some(n) = row.records.filter(|n| *n > 0) {
            *records.entry(table).or_default() += n;
        }
    }
    for ((table, status), n) in documents {
        metrics.add(&m::PIPELINE_DOCUMENTS, &[table, status], n as f64);
    }
    for ((table, reason), n) in quarantined {
        metrics.add(&m::PIPELINE_QUARANTINED, &[table, reason], n as f64);
    }
    for (table, n) in records {
        metrics.add(&m::ROWS_WRITTEN, &[table], n as f64);
    }
}

/// Records the landed backlog from a listing of the landing store (`id=` objects not yet
/// committed): how many, and how long the oldest has waited at `now`.
pub fn record_backlog(metrics: &Metrics, landed: &[ObjectInfo], now: DateTime<Utc>) {
    metrics.set(&m::PIPELINE_BACKLOG, &[], landed.len() as f64);
    let oldest = landed.iter().map(|o| o.last_modified).min();
    let age = oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
    metrics.set(&m::PIPELINE_OLDEST_PENDING_AGE, &[], age);
}

/// An engine as documents name it (`clamav 1.4.2/27000`): its name, version and definitions
/// version (empty when not said).
pub fn engine_parts(engine: &str) -> (&str, &str, &str) {
    let (name, rest) = engine.split_once(' ').unwrap_or((engine, ""));
    let (version, definitions) = rest.split_once('/').unwrap_or((rest, ""));
    (name, version, definitions)
}

/// Records the scan engine in use (as documents name it).
pub fn record_engine(metrics: &Metrics, engine: &str) {
    let (name, version, definitions) = engine_parts(engine);
    metrics.set(&m::SCAN_ENGINE, &[name, version, definitions], 1.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_split_into_bounded_labels() {
        assert_eq!(
            engine_parts("clamav 1.4.2/27000"),
            ("clamav", "1.4.2", "27000")
        );
        assert_eq!(engine_parts("tarn-builtin 1"), ("tarn-builtin", "1", ""));
        assert_eq!(engine_parts("odd"), ("odd", "", ""));
    }

    #[test]
    fn quarantine_reasons_fall_into_few_classes() {
        let cases = [
            ("infected: Eicar-Test-Signature", "infected"),
            (
                "unscannable: the scan could not complete: a part is past the scanner's limits",
                "unscannable",
            ),
            (
                "landed object id=1: its table metadata is not a valid table name",
                "undecodable",
            ),
            (
                "scan failed 5 times: transient: scan did not complete: timeout",
                "retries_exhausted",
            ),
            ("strip: broken", "stage_error"),
            ("jpeg: malformed: a segment runs past the end", "refused"),
            (
                "no metadata stripper for image/tiff: refusing to pass it through",
                "refused",
            ),
        ];
        for (reason, class) in cases {
            assert_eq!(quarantine_reason(reason), class, "{reason}");
        }
    }
}
