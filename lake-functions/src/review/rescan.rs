//! Rescan: stored binary objects scanned again with the scanner's current engine and
//! definitions. A document now found infected moves to quarantine as a revision
//! ([`crate::commit::Revision`]): its status record says `quarantined` with the signature (so the
//! content route refuses it as soon as the batch commits), a new `documents` row is appended, its
//! sanitized object becomes its quarantine copy (sealed as a landed object is: the bytes as
//! stored, since the landed original is gone) and is removed from the lake.
//!
//! A document the scanner now cannot decide on (unscannable, or the scan fails) stays stored and
//! is counted; JSON documents are rows of their tables, not objects, and are not rescanned.

use super::{AT_ONCE, Outcome, infected};
use crate::commit::revision::status_record;
use crate::commit::{BatchItem, Revision};
use crate::error::{LakeError, Result};
use crate::lake::Lake;
use crate::scan::Scanner;
use crate::stage::{Document, RetryPolicy, Stage, Verdict, run_stage};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tarn_core::document::landed_object;
use tarn_core::objects::read_sanitized_bytes;
use tarn_core::{DocumentRow, ErrorKind, GetResult, ObjectInfo, Status};
use tokio::sync::watch;
use tracing::{info, warn};

/// The state-store key holding the definitions version the last full rescan used.
pub const DEFINITIONS_KEY: &str = "rescan/definitions.json";

/// Documents committed per batch.
const PER_BATCH: usize = 64;

/// Which stored objects to scan again.
#[derive(Debug, Clone, Default)]
pub struct RescanFilter {
    pub table: Option<String>,
    /// received at or after
    pub since: Option<DateTime<Utc>>,
}

/// What a rescan found.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RescanReport {
    /// objects scanned
    pub scanned: usize,
    pub clean: usize,
    /// stored objects the scan could not decide on now (left stored)
    pub undecided: usize,
    /// documents moved to quarantine
    pub quarantined: Vec<Outcome>,
}

/// Scans again, with `scan` (the scan stage), the stored binary objects `filter` selects; moves
/// the infected to quarantine on behalf of `operator`.
pub async fn rescan(
    lake: &Lake,
    scan: &dyn Stage,
    retry: RetryPolicy,
    filter: &RescanFilter,
    operator: &str,
) -> Result<RescanReport> {
    // what an interrupted rescan committed is finished first (its objects removed)
    lake.finish_committed().await?;
    let prefix = match &filter.table {
        Some(t) => format!("objects/{t}/"),
        None => "objects/".into(),
    };
    let keys: Vec<String> = lake
        .lake
        .list(&prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect();
    let mut report = RescanReport::default();
    for chunk in keys.chunks(PER_BATCH) {
        // futures collected first: a stream mapped by a closure over references is not `Send`
        // enough for `tokio::spawn` (rust-lang/rust#102211)
        let scans: Vec<_> = chunk
            .iter()
            .map(|key| scan_one(lake, scan, retry, filter, key))
            .collect();
        let found: Vec<Option<Found>> = futures::stream::iter(scans)
            .buffered(AT_ONCE)
            .try_collect()
            .await?;
        let mut items = Vec::new();
        for f in found.into_iter().flatten() {
            report.scanned += 1;
            match f {
                Found::Clean => report.clean += 1,
                Found::Undecided => report.undecided += 1,
                Found::Infected(doc, previous) => {
                    items.push(quarantined(lake, *doc, previous, operator).await?)
                }
            }
        }
        report
            .quarantined
            .extend(super::rerun::commit_revisions(lake, items).await?);
    }
    Ok(report)
}

enum Found {
    Clean,
    Undecided,
    /// the scanned document and its status record
    Infected(Box<Document>, DocumentRow),
}

/// Scans the object at `key` when it is a stored document `filter` selects.
async fn scan_one(
    lake: &Lake,
    scan: &dyn Stage,
    retry: RetryPolicy,
    filter: &RescanFilter,
    key: &str,
) -> Result<Option<Found>> {
    let Some((_, id)) = key.rsplit_once('/') else {
        return Ok(None);
    };
    let Some(row) = status_record(lake.state.as_ref(), id).await? else {
        return Ok(None);
    };
    if row.status != Status::Stored
        || row.object_key.as_deref() != Some(key)
        || filter.since.is_some_and(|t| row.received_at < t)
    {
        return Ok(None);
    }
    let table = &row.table_name;
    let body =
        match read_sanitized_bytes(lake.lake.as_ref(), lake.kms.as_ref(), table, id, key).await {
            Ok(b) => b,
            // moved on meanwhile
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
    let content_type = row.detected_type.as_deref().unwrap_or(&row.content_type);
    let mut doc = Document::new(
        id,
        table,
        content_type,
        &row.producer,
        row.received_at,
        body.into(),
    );
    Ok(Some(match run_stage(scan, &mut doc, retry).await {
        Verdict::Continue => Found::Clean,
        Verdict::Quarantine(_) | Verdict::Reject(_) if infected(doc.scan_result.as_deref()) => {
            info!(id, table = %table, signature = doc.scan_result.as_deref().unwrap_or_default(), "a rescan found a stored document infected");
            Found::Infected(Box::new(doc), row)
        }
        Verdict::Quarantine(why) | Verdict::Reject(why) => {
            warn!(id, table = %table, reason = %why, "a rescan could not decide on a stored document; it stays stored");
            Found::Undecided
        }
    }))
}

/// The revision moving `previous` (stored) to quarantine with what the scan found in `doc`.
async fn quarantined(
    lake: &Lake,
    doc: Document,
    previous: DocumentRow,
    operator: &str,
) -> Result<BatchItem> {
    let signature = doc.scan_result.clone().unwrap_or_default();
    let mut row = previous.clone();
    row.status = Status::Quarantined;
    row.reason = Some(format!("infected: {signature} (found by a rescan)"));
    row.scan_engine = doc.scan_engine.clone();
    row.scan_result = doc.scan_result.clone();
    row.object_key = None;
    let request_time = previous
        .received_at
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let (body, metadata) = landed_object(
        lake.kms.as_ref(),
        &previous.table_name,
        &previous.id,
        &previous.producer,
        &previous.content_type,
        &request_time,
        &doc.body,
        !lake.quarantine.encrypts_at_rest(),
    )
    .await?;
    let landed = GetResult {
        info: ObjectInfo {
            key: previous.object_key.clone().unwrap_or_default(),
            size: body.len() as u64,
            last_modified: lake.clock.now(),
            etag: String::new(),
            metadata,
        },
        body,
    };
    let note = format!(
        "{signature} found with {}",
        doc.scan_engine.as_deref().unwrap_or("the current engine")
    );
    Ok(BatchItem {
        row,
        data: vec![],
        object: None,
        landed: Some(landed),
        revision: Some(Revision {
            previous,
            action: "rescan".into(),
            operator: operator.into(),
            note: Some(note),
        }),
    })
}

/// The definitions version the last full rescan used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Definitions {
    engine: String,
    rescanned_at: DateTime<Utc>,
}

/// The scheduled rescan: when the scanner's `engine` (`clamav 1.4.2/27000`) differs from the one
/// the last full rescan used, rescans every stored object and then records `engine`. The first
/// call on a lake only records it (every stored object was scanned with it or an older one).
/// Returns the report of the rescan it ran, if any.
pub async fn on_definitions_change(
    lake: &Lake,
    scan: &dyn Stage,
    retry: RetryPolicy,
    engine: &str,
    operator: &str,
) -> Result<Option<RescanReport>> {
    let last: Option<Definitions> =
        match lake.state.get(DEFINITIONS_KEY).await {
            Ok(o) => Some(serde_json::from_slice(&o.body).map_err(|e| {
                LakeError::Pipeline(format!("{DEFINITIONS_KEY} is unreadable: {e}"))
            })?),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
    let report = match &last {
        Some(d) if d.engine == engine => return Ok(None),
        Some(d) => {
            info!(from = %d.engine, to = engine, "scanner definitions changed: rescanning stored objects");
            Some(rescan(lake, scan, retry, &RescanFilter::default(), operator).await?)
        }
        None => None,
    };
    let record = Definitions {
        engine: engine.to_string(),
        rescanned_at: lake.clock.now(),
    };
    let body = serde_json::to_vec(&record).expect("a definitions record serializes");
    lake.state
        .put(DEFINITIONS_KEY, body.into(), Default::default())
        .await?;
    Ok(report)
}

/// `tarn serve`'s schedule: every `every`, asks `scanner` its version and runs
/// [`on_definitions_change`] with `scan`, until `shutdown` turns true. Failures are logged and
/// tried again at the next tick.
pub async fn watch_definitions(
    lake: Lake,
    scanner: Arc<dyn Scanner>,
    scan: Arc<dyn Stage>,
    retry: RetryPolicy,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            return;
        }
        match scanner.version().await {
            Ok(v) => {
                let engine = v.to_string();
                match on_definitions_change(&lake, scan.as_ref(), retry, &engine, RESCAN).await {
                    Ok(Some(r)) => info!(
                        engine,
                        scanned = r.scanned,
                        quarantined = r.quarantined.len(),
                        undecided = r.undecided,
                        "rescan after a definitions update finished"
                    ),
                    Ok(None) => {}
                    Err(e) => {
                        warn!(error = %e, "the rescan after a definitions update failed; it runs again at the next check")
                    }
                }
            }
            Err(e) => warn!(error = %e, "asking the scanner its definitions version failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// Starts [`watch_definitions`] checking every `every_secs` with the scan stage among `stages`,
/// when there is one, a `scanner`, and `every_secs` is not zero (the schedule off).
pub fn spawn_watch(
    lake: Lake,
    scanner: Option<Arc<dyn Scanner>>,
    stages: &[Arc<dyn Stage>],
    retry: RetryPolicy,
    every_secs: u64,
    shutdown: watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    let scan = stages.iter().find(|s| s.name() == "scan")?.clone();
    let scanner = scanner?;
    (every_secs > 0).then(|| {
        tokio::spawn(watch_definitions(
            lake,
            scanner,
            scan,
            retry,
            Duration::from_secs(every_secs),
            shutdown,
        ))
    })
}

/// Who rescans on `tarn serve`'s schedule, as history records name it.
pub const RESCAN: &str = tarn_core::audit::component::RESCAN;
