//! The crash sweep of the review actions, for every lake they run on: the local stores
//! (`lake-functions/tests/review.rs`) and S3 on moto (`aws/tests/review.rs`).
//!
//! A fresh lake gets a JSON document and a PNG quarantined by a scanner that is down, and a
//! stored text document a rescan finds infected. An undisturbed replay and rescan count the
//! storage calls that change something; then, for every possible number of calls, a fresh lake
//! runs the action over stores that die after that many calls, then the pipeline's recovery (as
//! a `tarn serve` starting then would), and a healthy run again. Every
//! run must end with each document moved on exactly once: one stored row of the JSON document in
//! its table, two `documents` rows per document (the earlier outcome and the new one), one
//! history record, and nothing left over (manifests, quarantine copies of stored documents, the
//! rescanned object).

use super::rerun::Rerun;
use super::rescan::{RescanFilter, rescan};
use crate::commit::revision::{history, status_record};
use crate::lake::Lake;
use crate::scan::{EngineVersion, ScanError, ScanStage, ScanVerdict, Scanner};
use crate::stage::{RetryPolicy, Stage};
use crate::validate::Validate;
use crate::{Pipeline, PipelineConfig};
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tarn_core::testing::DyingStore;
use tarn_core::{ObjectStore, Status};

/// A scanner standing for an engine with given definitions: `down` (every scan fails), or
/// finding `signature` wherever `marker` occurs (clean otherwise).
#[derive(Debug, Clone)]
pub struct StubScanner {
    pub down: bool,
    pub marker: Option<(&'static [u8], &'static str)>,
    pub database: &'static str,
}

impl StubScanner {
    pub fn down() -> Self {
        Self {
            down: true,
            marker: None,
            database: "1",
        }
    }
    /// Definitions that know no signature.
    pub fn old() -> Self {
        Self {
            down: false,
            marker: None,
            database: "1",
        }
    }
    /// Definitions that know [`MARKER`] as [`SIGNATURE`].
    pub fn new_definitions() -> Self {
        Self {
            down: false,
            marker: Some((MARKER, SIGNATURE)),
            database: "2",
        }
    }
    pub fn stage(self) -> Arc<dyn Stage> {
        Arc::new(ScanStage::new(Arc::new(self)).with_version_refresh(Duration::ZERO))
    }
}

/// The bytes [`StubScanner::new_definitions`] finds.
pub const MARKER: &[u8] = b"STUB-SIGNATURE-MARKER";
pub const SIGNATURE: &str = "Stub-Test-Signature";

#[async_trait]
impl Scanner for StubScanner {
    async fn scan(&self, body: &[u8]) -> Result<ScanVerdict, ScanError> {
        if self.down {
            return Err(ScanError::Closed);
        }
        Ok(match self.marker {
            Some((m, sig)) if body.windows(m.len()).any(|w| w == m) => {
                ScanVerdict::Infected(sig.into())
            }
            _ => ScanVerdict::Clean,
        })
    }
    async fn version(&self) -> Result<EngineVersion, ScanError> {
        Ok(EngineVersion {
            engine: "stub".into(),
            version: "1".into(),
            database: Some(self.database.into()),
        })
    }
    async fn ping(&self) -> Result<(), ScanError> {
        Ok(())
    }
}

/// The tables of the sweep: [`crate::commit::testsuite::schemas`] and `notes` (text/plain).
pub fn schemas() -> Vec<serde_json::Value> {
    let mut s = crate::commit::testsuite::schemas();
    s.push(serde_json::json!({"title": "notes", "x-tarn": {"accept": ["text/plain"]}}));
    s
}

/// Fast retries.
pub fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        base: Duration::from_millis(1),
    }
}

/// The local runner over `lake` with validation and `scan`.
pub fn pipeline(lake: &Lake, scan: Arc<dyn Stage>) -> Pipeline {
    Pipeline::new(
        lake.clone(),
        stages(lake, scan),
        PipelineConfig {
            retry: retry(),
            ..Default::default()
        },
    )
}

/// Processes what is landed in `lake` with validation and `scan`.
pub async fn drain(lake: &Lake, scan: Arc<dyn Stage>) {
    pipeline(lake, scan)
        .drain()
        .await
        .expect("the pipeline runs");
}

/// The scan stage over the clamd at `addr` (`tcp://...`, `unix://...`).
pub fn clamd(addr: &str) -> Arc<dyn Stage> {
    let timeouts = crate::scan::Timeouts {
        connect: Duration::from_secs(5),
        scan: Duration::from_secs(30),
    };
    let scanner = crate::scan::ClamdScanner::connect(addr, timeouts).expect("a clamd address");
    Arc::new(ScanStage::new(Arc::new(scanner)))
}

/// Replay and release over `lake` with validation and `scan`, as operator `olga`.
pub fn rerun(lake: &Lake, scan: Arc<dyn Stage>) -> Rerun {
    Rerun {
        lake: lake.clone(),
        stages: stages(lake, scan),
        retry: retry(),
        operator: "olga".into(),
    }
}

/// A rescan of the stored objects `filter` selects with `scan`, as operator `olga`.
pub async fn rescan_where(
    lake: &Lake,
    scan: Arc<dyn Stage>,
    filter: &RescanFilter,
) -> super::rescan::RescanReport {
    rescan(lake, scan.as_ref(), retry(), filter, "olga")
        .await
        .expect("the rescan runs")
}

/// A rescan of every stored object of `lake` with `scan`, as operator `olga`.
pub async fn rescan_all(lake: &Lake, scan: Arc<dyn Stage>) -> super::rescan::RescanReport {
    rescan_where(lake, scan, &RescanFilter::default()).await
}

/// Validation and `scan`, as a lake's tables need them.
pub fn stages(lake: &Lake, scan: Arc<dyn Stage>) -> Vec<Arc<dyn Stage>> {
    vec![
        Arc::new(Validate::new(&lake.tables()).expect("the tables validate")),
        scan,
    ]
}

/// What the sweep put in a fresh lake.
pub struct Setup {
    /// JSON, quarantined (scanner down)
    pub json: String,
    /// PNG, quarantined (scanner down)
    pub png: String,
    /// text holding [`MARKER`], stored (old definitions)
    pub note: String,
}

/// Lands a document in `lake` as its ingress does (sealed, or as API Gateway writes it to a
/// bucket that encrypts at rest); returns its id.
pub async fn land(lake: &Lake, table: &str, content_type: &str, body: &[u8]) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let (body, metadata) = tarn_core::document::landed_object(
        lake.kms.as_ref(),
        table,
        &id,
        "alice",
        content_type,
        "2024-05-06T07:08:09.123Z",
        body,
        !lake.ingress.encrypts_at_rest(),
    )
    .await
    .expect("sealing");
    lake.ingress
        .put(&tarn_core::document::ingress_key(&id), body, metadata)
        .await
        .expect("landing");
    id
}

/// Lands and processes the sweep's documents in `lake` (fresh, tables registered).
pub async fn setup(lake: &Lake) -> Setup {
    let land = |table: &'static str, ct: &'static str, body: Vec<u8>| async move {
        land(lake, table, ct, &body).await
    };
    let note = land(
        "notes",
        "text/plain",
        [b"a note ".as_slice(), MARKER].concat(),
    )
    .await;
    drain(lake, StubScanner::old().stage()).await;
    let json = land("events", "application/json", br#"{"user":"a"}"#.to_vec()).await;
    let png = land(
        "photos",
        "image/png",
        crate::commit::testsuite::PNG.to_vec(),
    )
    .await;
    drain(lake, StubScanner::down().stage()).await;
    for id in [&json, &png] {
        let row = status_record(lake.state.as_ref(), id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, Status::Quarantined, "{:?}", row.reason);
    }
    let row = status_record(lake.state.as_ref(), &note)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, Status::Stored);
    Setup { json, png, note }
}

/// The replay and the rescan, over `lake`; `Err` when either did not get through.
pub async fn act(lake: &Lake, s: &Setup) -> Result<(), String> {
    rerun(lake, StubScanner::old().stage())
        .replay(&[s.json.clone(), s.png.clone()])
        .await
        .map_err(|e| e.to_string())?;
    let scan = StubScanner::new_definitions().stage();
    rescan(
        lake,
        scan.as_ref(),
        retry(),
        &RescanFilter::default(),
        "olga",
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(())
}

fn dying(lake: &Lake, budget: &Arc<AtomicUsize>) -> Lake {
    lake.map_stores(|s| {
        Arc::new(DyingStore {
            inner: s,
            budget: budget.clone(),
        })
    })
}

async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    k.sort();
    k
}

/// Asserts the end state of [`act`] on [`setup`] (see the module docs).
pub async fn assert_moved_on_once(lake: &Lake, s: &Setup, context: &str) {
    use crate::commit::testsuite::column;
    assert_eq!(
        column(lake.lake.as_ref(), "tables/events/", "_id").await,
        vec![s.json.clone()],
        "events rows {context}"
    );
    let mut docs: Vec<String> = [&s.json, &s.png, &s.note]
        .iter()
        .flat_map(|i| [(*i).clone(), (*i).clone()])
        .collect();
    docs.sort();
    assert_eq!(
        column(lake.lake.as_ref(), "tables/documents/", "id").await,
        docs,
        "documents rows: the earlier outcome and the new one {context}"
    );
    let state = lake.state.as_ref();
    for (id, status) in [
        (&s.json, Status::Stored),
        (&s.png, Status::Stored),
        (&s.note, Status::Quarantined),
    ] {
        let row = status_record(state, id).await.unwrap().unwrap();
        assert_eq!(row.status, status, "{id} {context}: {:?}", row.reason);
        let h = history(state, id).await.unwrap();
        assert_eq!(h.len(), 1, "one history record of {id} {context}");
    }
    let png = status_record(state, &s.png).await.unwrap().unwrap();
    assert_eq!(
        keys(lake.lake.as_ref(), "objects/").await,
        vec![png.object_key.clone().unwrap()],
        "sanitized objects: the replayed PNG's, not the rescanned note's {context}"
    );
    let note = status_record(state, &s.note).await.unwrap().unwrap();
    assert_eq!(note.scan_result.as_deref(), Some(SIGNATURE), "{context}");
    assert_eq!(
        keys(lake.quarantine.as_ref(), "").await,
        vec![format!("notes/{}", s.note)],
        "quarantine copies: the rescanned note's only {context}"
    );
    for prefix in ["batches/", "claims/"] {
        assert_eq!(
            keys(state, prefix).await,
            Vec::<String>::new(),
            "{prefix} left over {context}"
        );
    }
}

/// Runs the sweep on lakes made by `fresh` (empty, tables from [`schemas`] registered); returns
/// how many crash points it tried.
pub async fn crash_sweep<F, Fut>(fresh: F) -> usize
where
    F: Fn() -> Fut,
    Fut: Future<Output = Lake>,
{
    let total = {
        let lake = fresh().await;
        let s = setup(&lake).await;
        let budget = Arc::new(AtomicUsize::new(usize::MAX));
        act(&dying(&lake, &budget), &s)
            .await
            .expect("an undisturbed run gets through");
        assert_moved_on_once(&lake, &s, "undisturbed").await;
        usize::MAX - budget.load(Ordering::SeqCst)
    };
    assert!(total > 10, "replay and rescan make many calls: {total}");
    for crash_after in 0..total {
        let lake = fresh().await;
        let s = setup(&lake).await;
        let budget = Arc::new(AtomicUsize::new(crash_after));
        assert!(
            act(&dying(&lake, &budget), &s).await.is_err(),
            "a crash after {crash_after} calls is noticed"
        );
        // the pipeline starting meanwhile (`tarn serve`) recovers what it finds
        lake.recover(Duration::ZERO)
            .await
            .expect("the pipeline's recovery");
        act(&lake, &s)
            .await
            .unwrap_or_else(|e| panic!("the run after a crash at call {crash_after}: {e}"));
        assert_moved_on_once(&lake, &s, &format!("after a crash at call {crash_after}")).await;
    }
    total
}
