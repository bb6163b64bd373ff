//! The crash sweep every driver of the batch commit passes: the local runner
//! (`lake-functions/tests/runner.rs`) and the Lambda functions on moto (`aws/tests/commit.rs`).
//!
//! An undisturbed run counts the storage calls that change something; then, for every possible
//! number of calls, a fresh lake gets the same documents, the driver runs over stores that die
//! after that many calls (every later call fails, as if the process was killed there, leases
//! and claims included), and a healthy restart or redelivery runs again. Every run must end with
//! each document exactly once in the lake, its `documents` row and status, and nothing left over:
//! no landed object, manifest, claim or hand-off, no stray object or quarantine copy.

use crate::lake::Lake;
use arrow::array::AsArray;
use async_trait::async_trait;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tarn_core::document::status_key;
use tarn_core::testing::DyingStore;
use tarn_core::{DocumentRow, ObjectStore, Status};

/// A driver of the commit, as the sweep runs it.
#[async_trait]
pub trait CrashDriver: Send + Sync {
    /// A fresh, empty lake with its tables registered.
    async fn fresh(&self) -> Lake;
    /// Lands a document as this driver's ingress does; returns its id.
    async fn land(&self, lake: &Lake, table: &str, content_type: &str, body: &[u8]) -> String;
    /// Processes the landed documents `ids` over `lake` (whose stores may die) as a start, a
    /// restart or a redelivery does; `Err` when it did not get through.
    async fn run(&self, lake: &Lake, ids: &[String]) -> Result<(), String>;
}

/// The tables the sweep lands into, as `schemas/<title>.json` files hold them: `events` (JSON,
/// `user` a required string) and `photos` (PNG).
pub fn schemas() -> Vec<serde_json::Value> {
    vec![
        serde_json::json!({"title": "events", "type": "object", "required": ["user"],
               "properties": {"user": {"type": "string"}, "n": {"type": "integer"}},
               "x-tarn": {"accept": ["application/json", "application/x-ndjson"]}}),
        serde_json::json!({"title": "photos", "x-tarn": {"accept": ["image/png"]}}),
    ]
}

/// [`schemas`] written into `dir` as table files.
pub fn write_schemas(dir: &std::path::Path) {
    for s in schemas() {
        let name = s["title"].as_str().expect("a title");
        std::fs::write(dir.join(format!("{name}.json")), s.to_string()).expect("writing a schema");
    }
}

/// A PNG (with text chunks a strip stage removes).
pub const PNG: &[u8] = include_bytes!("../../../samples/diagram.png");

pub(crate) struct Landed {
    pub(crate) valid: Vec<String>,
    pub(crate) rejected: String,
    pub(crate) png: String,
}

impl Landed {
    pub(crate) fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = self.valid.clone();
        v.extend([self.rejected.clone(), self.png.clone()]);
        v.sort();
        v
    }
}

/// The `events` (JSON, `user` a string) and `photos` (PNG) tables the sweep lands into.
pub(crate) async fn land_all(d: &dyn CrashDriver, lake: &Lake) -> Landed {
    let mut valid = Vec::new();
    for _ in 0..3 {
        valid.push(
            d.land(
                lake,
                "events",
                "application/json",
                br#"[{"user":"a"},{"user":"b"}]"#,
            )
            .await,
        );
    }
    let rejected = d
        .land(lake, "events", "application/json", br#"{"user": 5}"#)
        .await;
    let png = d.land(lake, "photos", "image/png", PNG).await;
    Landed {
        valid,
        rejected,
        png,
    }
}

pub(crate) fn dying(lake: &Lake, budget: &Arc<AtomicUsize>) -> Lake {
    lake.map_stores(|s| {
        Arc::new(DyingStore {
            inner: s,
            budget: budget.clone(),
        })
    })
}

/// Every value of column `col` in the Parquet files under `prefix`, sorted.
pub async fn column(store: &dyn ObjectStore, prefix: &str, col: &str) -> Vec<String> {
    let mut out = Vec::new();
    for o in store.list(prefix).await.unwrap() {
        if !o.key.ends_with(".parquet") {
            continue;
        }
        let body = store.get(&o.key).await.unwrap().body;
        for b in ParquetRecordBatchReaderBuilder::try_new(body)
            .unwrap()
            .build()
            .unwrap()
        {
            let b = b.unwrap();
            let c = b
                .column(b.schema().index_of(col).unwrap())
                .as_string::<i32>();
            out.extend(c.iter().map(|v| v.unwrap().to_string()));
        }
    }
    out.sort();
    out
}

pub(crate) async fn keys(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    store
        .list(prefix)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect()
}

/// Asserts the end state after everything ran: each of `landed` has its one `documents` row and
/// status, the `events` table holds exactly the rows `events` (one `_id` per record), and
/// nothing is left over.
pub async fn assert_exactly_once(lake: &Lake, landed: &[String], events: &[String], context: &str) {
    let mut events = events.to_vec();
    events.sort();
    assert_eq!(
        column(lake.lake.as_ref(), "tables/events/", "_id").await,
        events,
        "events rows {context}"
    );
    let mut all = landed.to_vec();
    all.sort();
    assert_eq!(
        column(lake.lake.as_ref(), "tables/documents/", "id").await,
        all,
        "documents rows {context}"
    );
    for id in landed {
        assert!(
            lake.state.head(&status_key(id)).await.unwrap().is_some(),
            "{id} has a status record {context}"
        );
    }
    for (store, prefix) in [
        (&lake.ingress, "id="),
        (&lake.state, "batches/"),
        (&lake.state, "claims/"),
        (&lake.state, "work/"),
    ] {
        assert_eq!(
            keys(store.as_ref(), prefix).await,
            Vec::<String>::new(),
            "{prefix} left over {context}"
        );
    }
}

pub(crate) async fn status(lake: &Lake, id: &str) -> DocumentRow {
    serde_json::from_slice(&lake.state.get(&status_key(id)).await.unwrap().body).unwrap()
}

/// Runs the sweep (see the module docs) on `d`; returns how many crash points it tried.
pub async fn crash_sweep(d: &dyn CrashDriver) -> usize {
    let total = {
        let lake = d.fresh().await;
        let landed = land_all(d, &lake).await;
        let budget = Arc::new(AtomicUsize::new(usize::MAX));
        d.run(&dying(&lake, &budget), &landed.all())
            .await
            .expect("an undisturbed run gets through");
        usize::MAX - budget.load(Ordering::SeqCst)
    };
    assert!(total > 10, "a commit makes many calls: {total}");
    for crash_after in 0..total {
        let lake = d.fresh().await;
        let landed = land_all(d, &lake).await;
        let budget = Arc::new(AtomicUsize::new(crash_after));
        let ids = landed.all();
        assert!(
            d.run(&dying(&lake, &budget), &ids).await.is_err(),
            "a crash after {crash_after} calls is noticed"
        );
        // restart, or redelivery
        d.run(&lake, &ids)
            .await
            .unwrap_or_else(|e| panic!("the run after a crash at call {crash_after}: {e}"));
        let context = format!("after a crash at call {crash_after}");
        let events: Vec<String> = landed
            .valid
            .iter()
            .flat_map(|i| [i.clone(), i.clone()])
            .collect();
        assert_exactly_once(&lake, &ids, &events, &context).await;
        assert_eq!(
            status(&lake, &landed.rejected).await.status,
            Status::Rejected,
            "{context}"
        );
        let png = status(&lake, &landed.png).await;
        assert_eq!(png.status, Status::Stored, "{context}");
        assert_eq!(
            keys(lake.lake.as_ref(), "objects/").await,
            vec![png.object_key.clone().unwrap()],
            "sanitized objects {context}"
        );
        let copies = keys(lake.quarantine.as_ref(), "").await;
        assert_eq!(copies.len(), 1, "quarantine copies {context}: {copies:?}");
        assert!(
            copies[0].ends_with(&landed.rejected),
            "{context}: {copies:?}"
        );
    }
    total
}
