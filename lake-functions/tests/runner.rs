//! The pipeline runner against real local stores: outcomes, layout, and exactly-once commits
//! when a crash (every later storage call failing) interrupts a flush at any step.

use arrow::array::AsArray;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::Path;
use std::sync::Arc;

use tarn_catalog::{Catalog, LocalCatalog, TableSpec};
use tarn_core::document::status_key;
use tarn_core::{
    DocumentRow, EncryptionContext, Kms, LocalKms, LocalObjectStore, ObjectStore, Status,
    SystemClock, envelope,
};
use tarn_lake::commit::testsuite::{CrashDriver, crash_sweep};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::validate::Validate;
use tarn_lake::{Lake, LakeParts, Pipeline, PipelineConfig, RetryPolicy};

struct Env {
    dir: tempfile::TempDir,
    ingress: Arc<dyn ObjectStore>,
    lake: Arc<LocalObjectStore>,
    quarantine: Arc<dyn ObjectStore>,
    state: Arc<dyn ObjectStore>,
    kms: Arc<dyn Kms>,
    catalog: Arc<dyn Catalog>,
    tables: Vec<TableSpec>,
}

fn tables() -> Vec<TableSpec> {
    tarn_lake::commit::testsuite::schemas()
        .into_iter()
        .map(|s| {
            let file = format!("{}.json", s["title"].as_str().unwrap());
            TableSpec::from_value(Path::new(&file), s).unwrap()
        })
        .collect()
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    Env {
        ingress: Arc::new(LocalObjectStore::open("ingress", d.join("ingress")).unwrap()),
        lake: Arc::new(LocalObjectStore::open("lake", d.join("lake")).unwrap()),
        quarantine: Arc::new(LocalObjectStore::open("quarantine", d.join("quarantine")).unwrap()),
        state: Arc::new(LocalObjectStore::open("state", d.join("state")).unwrap()),
        kms: Arc::new(LocalKms::open_or_create(d.join("keys/master.key")).unwrap()),
        catalog: Arc::new(LocalCatalog::open(d.join("catalog")).unwrap()),
        tables: tables(),
        dir,
    }
}

fn pipeline(e: &Env, wrap: impl Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Pipeline {
    let lake = Lake::new(LakeParts {
        tables: e.tables.clone(),
        ingress: wrap(e.ingress.clone()),
        lake: wrap(e.lake.clone()),
        quarantine: wrap(e.quarantine.clone()),
        state: wrap(e.state.clone()),
        kms: e.kms.clone(),
        catalog: e.catalog.clone(),
        database: "tarn".into(),
        clock: Arc::new(SystemClock),
        lock: Arc::new(LocalLakeLock::open(e.dir.path().join("locks")).unwrap()),
    });
    Pipeline::new(
        lake,
        vec![Arc::new(Validate::new(&e.tables).unwrap())],
        PipelineConfig {
            retry: RetryPolicy {
                base: std::time::Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

/// Lands a document exactly as the ingress does.
async fn land(e: &Env, table: &str, content_type: &str, body: &[u8]) -> String {
    land_into(
        e.ingress.as_ref(),
        e.kms.as_ref(),
        table,
        content_type,
        body,
    )
    .await
}

async fn land_into(
    ingress: &dyn ObjectStore,
    kms: &dyn Kms,
    table: &str,
    content_type: &str,
    body: &[u8],
) -> String {
    let time = "2024-05-06T07:08:09.123Z";
    tarn_core::document::land(ingress, kms, table, "alice", content_type, time, body)
        .await
        .unwrap()
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

async fn status(e: &Env, id: &str) -> DocumentRow {
    serde_json::from_slice(&e.state.get(&status_key(id)).await.unwrap().body).unwrap()
}

/// Every `_id` in the events table's files, and every `id` in documents' files.
fn lake_ids(e: &Env) -> (Vec<String>, Vec<String>) {
    let mut events = Vec::new();
    let mut docs = Vec::new();
    for (dir, col, out) in [
        ("tables/events", "_id", &mut events),
        ("tables/documents", "id", &mut docs),
    ] {
        let root = e.lake.root().join(dir);
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in rd {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    let f = std::fs::File::open(&p).unwrap();
                    for b in ParquetRecordBatchReaderBuilder::try_new(f)
                        .unwrap()
                        .build()
                        .unwrap()
                    {
                        let b = b.unwrap();
                        let c = b
                            .column(b.schema().index_of(col).unwrap())
                            .as_string::<i32>()
                            .clone();
                        out.extend(c.iter().map(|v| v.unwrap().to_string()));
                    }
                }
            }
        }
    }
    events.sort();
    docs.sort();
    (events, docs)
}

/// The runner's measurements move as documents flow: documents by table and status, the
/// quarantined by reason class, records written, flushes, stage times and the backlog.
#[tokio::test]
async fn counters_move_as_documents_are_committed() {
    use tarn_core::metrics as m;
    let e = env();
    let seen = Arc::new(tarn_core::testing::CapturedMetrics::default());
    let p = pipeline(&e, |s| s).with_metrics(tarn_core::Metrics::new(seen.clone()));
    p.setup_catalog().await.unwrap();
    land(
        &e,
        "events",
        "application/json",
        br#"[{"user":"a"},{"user":"b"}]"#,
    )
    .await;
    land(&e, "events", "application/json", br#"{"n":"x"}"#).await;
    let garbage = format!("id={}", uuid::Uuid::new_v4());
    e.ingress
        .put(
            &garbage,
            "not base64 at all".into(),
            tarn_core::Metadata::new(),
        )
        .await
        .unwrap();
    p.drain().await.unwrap();

    let sum = |measure: &m::Measure, labels: &[&str]| seen.sum(measure.name, labels);
    assert_eq!(sum(&m::PIPELINE_DOCUMENTS, &["events", "stored"]), 1.0);
    assert_eq!(sum(&m::PIPELINE_DOCUMENTS, &["events", "rejected"]), 1.0);
    // an undecodable landed object has no table it can be trusted for
    assert_eq!(
        sum(&m::PIPELINE_DOCUMENTS, &["_unknown", "quarantined"]),
        1.0
    );
    assert_eq!(
        sum(&m::PIPELINE_QUARANTINED, &["_unknown", "undecodable"]),
        1.0
    );
    assert_eq!(sum(&m::ROWS_WRITTEN, &["events"]), 2.0);
    assert!(sum(&m::FLUSHES, &[]) >= 1.0);
    // validate ran on the two decodable documents
    assert_eq!(seen.count(m::STAGE_DURATION.name, &["validate"]), 2);
    // the backlog was measured: three landed at first, none at the end
    assert_eq!(seen.last(m::PIPELINE_BACKLOG.name), Some(0.0));
    assert_eq!(seen.last(m::PIPELINE_OLDEST_PENDING_AGE.name), Some(0.0));
    assert!(seen.count(m::PIPELINE_BACKLOG.name, &[]) >= 2);
}

#[tokio::test]
async fn drain_commits_every_document_with_its_fate() {
    let e = env();
    let p = pipeline(&e, |s| s);
    p.setup_catalog().await.unwrap();
    let good = land(
        &e,
        "events",
        "application/json",
        br#"[{"user":"a","n":1},{"user":"b","n":2}]"#,
    )
    .await;
    let nd = land(&e, "events", "application/x-ndjson", b"{\"user\":\"c\"}\n").await;
    let bad = land(&e, "events", "application/json", br#"{"n":"SECRET-VALUE"}"#).await;
    let png = land(&e, "photos", "image/png", PNG).await;
    let liar = land(&e, "photos", "image/png", b"%PDF-1.4 not a png").await;

    let report = p.drain().await.unwrap();
    assert_eq!(
        (
            report.stored,
            report.rejected,
            report.quarantined,
            report.records
        ),
        (3, 2, 0, 3)
    );

    let r = status(&e, &good).await;
    assert_eq!(
        (r.status, r.records, r.dt.as_str()),
        (Status::Stored, Some(2), "2024-05-06")
    );
    assert_eq!(status(&e, &nd).await.records, Some(1));
    let r = status(&e, &bad).await;
    assert_eq!(r.status, Status::Rejected);
    let reason = r.reason.unwrap();
    assert!(
        reason.contains("record 0 at /: fails required")
            && reason.contains("record 0 at /n: fails type"),
        "{reason}"
    );
    assert!(!reason.contains("SECRET"));
    let r = status(&e, &png).await;
    assert_eq!(r.status, Status::Stored);
    let key = r.object_key.unwrap();
    assert_eq!(key, format!("objects/photos/dt=2024-05-06/{png}"));
    // the stored object is sealed, and opens to the original bytes
    let stored = e.lake.get(&key).await.unwrap().body;
    assert!(envelope::is_sealed(&stored));
    let opened = envelope::open(
        e.kms.as_ref(),
        &EncryptionContext::document("photos", &png),
        &stored,
    )
    .await
    .unwrap();
    assert_eq!(opened, PNG);
    assert_eq!(
        status(&e, &liar).await.reason.as_deref(),
        Some("declared image/png but the bytes are application/pdf")
    );

    // rejected documents are kept in quarantine, still sealed, with their reason
    let q = e.quarantine.get(&format!("events/{bad}")).await.unwrap();
    assert!(envelope::is_sealed(&q.body));
    assert!(q.info.metadata["reason"].contains("fails type"));

    // nothing left landed, no manifest left
    assert!(e.ingress.list("id=").await.unwrap().is_empty());
    assert!(e.state.list("batches/").await.unwrap().is_empty());

    // rows, exactly once
    let (events, docs) = lake_ids(&e);
    assert_eq!(events, {
        let mut v = vec![good.clone(), good.clone(), nd.clone()];
        v.sort();
        v
    });
    assert_eq!(docs.len(), 5);

    // partitions registered
    let parts = e.catalog.get_partitions("tarn", "events").await.unwrap();
    assert_eq!(parts.len(), 1);
    assert!(parts[0].location.ends_with("/tables/events/dt=2024-05-06/"));
    let parts = e.catalog.get_partitions("tarn", "documents").await.unwrap();
    let values: Vec<Vec<String>> = parts.into_iter().map(|p| p.values).collect();
    assert_eq!(
        values,
        [vec!["events", "2024-05-06"], vec!["photos", "2024-05-06"]]
    );

    // the markers are nowhere outside Parquet files
    assert_no_plaintext(e.dir.path(), b"SECRET-VALUE");
}

fn assert_no_plaintext(root: &Path, marker: &[u8]) {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_none_or(|x| x != "parquet") {
                let b = std::fs::read(&p).unwrap();
                assert!(
                    !b.windows(marker.len()).any(|w| w == marker),
                    "{} holds the plaintext marker",
                    p.display()
                );
            }
        }
    }
}

/// The local runner as the commit's crash sweep drives it: a fresh data dir per lake, a restart
/// is a new pipeline draining what is landed.
struct LocalDriver {
    dirs: std::sync::Mutex<Vec<Env>>,
}

#[async_trait::async_trait]
impl CrashDriver for LocalDriver {
    async fn fresh(&self) -> Lake {
        let e = env();
        let lake = pipeline(&e, |s| s).lake().clone();
        lake.setup_catalog().await.unwrap();
        self.dirs.lock().unwrap().push(e);
        lake
    }
    async fn land(&self, lake: &Lake, table: &str, content_type: &str, body: &[u8]) -> String {
        land_into(
            lake.ingress.as_ref(),
            lake.kms.as_ref(),
            table,
            content_type,
            body,
        )
        .await
    }
    async fn run(&self, lake: &Lake, _ids: &[String]) -> Result<(), String> {
        let stages: Vec<Arc<dyn tarn_lake::Stage>> =
            vec![Arc::new(Validate::new(&lake.tables()).unwrap())];
        let config = PipelineConfig {
            retry: RetryPolicy {
                base: std::time::Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        };
        Pipeline::new(lake.clone(), stages, config)
            .drain()
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

impl tarn_lake::erase::testsuite::EraseDriver for LocalDriver {}

#[tokio::test]
async fn a_crash_at_any_step_of_an_erasure_ends_in_the_same_state() {
    let d = LocalDriver {
        dirs: Default::default(),
    };
    let points = tarn_lake::erase::testsuite::erase_crash_sweep(&d).await;
    assert!(points > 10, "{points}");
}

#[tokio::test]
async fn a_crash_at_any_step_of_a_flush_loses_and_duplicates_nothing() {
    let d = LocalDriver {
        dirs: Default::default(),
    };
    let points = crash_sweep(&d).await;
    assert!(points > 10, "{points}");
}
