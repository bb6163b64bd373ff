//! The pipeline's memory is bounded by bytes, not by document count: many maximum-size documents
//! go through with the process's peak RSS under a stated bound. (Its own test binary, so that no
//! other test's allocations count.)

use std::sync::Arc;
use tarn_catalog::{LocalCatalog, TableSpec};
use tarn_core::{LocalKms, LocalObjectStore, Status, SystemClock};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::validate::Validate;
use tarn_lake::{Lake, LakeParts, Pipeline, PipelineConfig};

/// The process's peak resident set (`VmHWM`), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_maximum_size_documents_go_through_in_bounded_memory() {
    const DOCS: usize = 96;
    const SIZE: usize = 4 << 20;
    // what the default pipeline may hold: 64 MiB landed in flight (each with its decoded and
    // sanitized copies), a 64 MiB batch, and the runtime; holding all documents at once would
    // take several times the 384 MiB they weigh
    const BOUND: u64 = 400 << 20;

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tables = vec![
        TableSpec::from_value(
            std::path::Path::new("photos.json"),
            serde_json::json!({"title": "photos", "x-tarn": {"accept": ["image/png"], "max_bytes": SIZE}}),
        )
        .unwrap(),
    ];
    let lake = Lake::new(LakeParts {
        tables: tables.clone(),
        ingress: Arc::new(LocalObjectStore::open("ingress", d.join("ingress")).unwrap()),
        lake: Arc::new(LocalObjectStore::open("lake", d.join("lake")).unwrap()),
        quarantine: Arc::new(LocalObjectStore::open("quarantine", d.join("quarantine")).unwrap()),
        state: Arc::new(LocalObjectStore::open("state", d.join("state")).unwrap()),
        kms: Arc::new(LocalKms::open_or_create(d.join("keys/master.key")).unwrap()),
        catalog: Arc::new(LocalCatalog::open(d.join("catalog")).unwrap()),
        database: "tarn".into(),
        clock: Arc::new(SystemClock),
        lock: Arc::new(LocalLakeLock::open(d.join("locks")).unwrap()),
    });
    lake.setup_catalog().await.unwrap();
    // a PNG signature, then bytes: validate's type check passes, nothing else parses them
    let mut body = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0".to_vec();
    body.resize(SIZE, 7);
    for _ in 0..DOCS {
        tarn_core::document::land(
            lake.ingress.as_ref(),
            lake.kms.as_ref(),
            "photos",
            "alice",
            "image/png",
            "2024-05-06T07:08:09.123Z",
            &body,
        )
        .await
        .unwrap();
    }
    drop(body);
    let stages: Vec<Arc<dyn tarn_lake::Stage>> = vec![Arc::new(Validate::new(&tables).unwrap())];
    let report = Pipeline::new(lake.clone(), stages, PipelineConfig::default())
        .drain()
        .await
        .unwrap();
    assert_eq!(report.stored, DOCS, "{report:?}");
    assert!(report.batches > 1, "bounded batches: {report:?}");
    let objects = lake.lake.list("objects/").await.unwrap();
    assert_eq!(objects.len(), DOCS);
    assert!(
        lake.ingress.list("id=").await.unwrap().is_empty(),
        "every landed object is processed"
    );
    let status: tarn_core::DocumentRow = serde_json::from_slice(
        &lake
            .state
            .get(&tarn_core::document::status_key(
                tarn_core::document::id_from_ingress_key(&format!(
                    "id={}",
                    objects[0].key.rsplit('/').next().unwrap()
                ))
                .unwrap(),
            ))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(status.status, Status::Stored);
    let peak = peak_rss();
    eprintln!(
        "peak RSS {} MiB for {DOCS} documents of {} MiB",
        peak >> 20,
        SIZE >> 20
    );
    assert!(
        peak < BOUND,
        "peak RSS {} MiB is over the bound of {} MiB",
        peak >> 20,
        BOUND >> 20
    );
}
