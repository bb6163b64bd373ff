//! Erasure against real local stores, the real pipeline, compaction, the access trail and the
//! embedded engine: the proof that no byte of the erased records is left anywhere.

use base64::Engine;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::{LocalCatalog, TableSpec};
use tarn_core::audit::{
    Actor, AuditSink, AuditedStore, LocalAuditSink, SigningKey, SinkSettings, TrailConfig, gunzip,
};
use tarn_core::{EncryptionContext, Kms, LocalKms, LocalObjectStore, ObjectStore, SystemClock};
use tarn_lake::compact::Compaction;
use tarn_lake::erase::{ERASE_COMPONENT, Erasure, Selector, erasure_event, status};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::validate::Validate;
use tarn_lake::{Lake, LakeParts, Pipeline, PipelineConfig, RetryPolicy};
use tarn_query::{LocalQueryEngine, QueryEngine};

const DB: &str = "tarn";
const SUBJECT: &str = "subject";

struct Env {
    dir: tempfile::TempDir,
    stores: [Arc<LocalObjectStore>; 4],
    audit: Arc<LocalObjectStore>,
    sink: Arc<LocalAuditSink>,
    kms: Arc<dyn Kms>,
    catalog: Arc<LocalCatalog>,
    lock: Arc<LocalLakeLock>,
    tables: Vec<TableSpec>,
}

fn tables() -> Vec<TableSpec> {
    vec![
        TableSpec::from_value(
            Path::new("events.json"),
            json!({"title": "events", "type": "object", "required": ["user"],
                   "properties": {"user": {"type": "string"}, "note": {"type": "string"}},
                   "x-tarn": {"accept": ["application/json"]}}),
        )
        .unwrap(),
        TableSpec::from_value(
            Path::new("notes.json"),
            json!({"title": "notes", "x-tarn": {"accept": ["text/plain"]}}),
        )
        .unwrap(),
    ]
}

async fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = |n: &str| Arc::new(LocalObjectStore::open(n, d.join(n)).unwrap());
    let audit = store("audit");
    let sink = Arc::new(
        LocalAuditSink::open(
            audit.clone(),
            TrailConfig::default(),
            SigningKey::open_or_create(d.join("keys/audit-signing.key")).unwrap(),
            SinkSettings::default(),
        )
        .await
        .unwrap(),
    );
    Env {
        stores: [
            store("ingress"),
            store("lake"),
            store("quarantine"),
            store("state"),
        ],
        audit,
        sink,
        kms: Arc::new(LocalKms::open_or_create(d.join("keys/master.key")).unwrap()),
        catalog: Arc::new(LocalCatalog::open(d.join("catalog")).unwrap()),
        lock: Arc::new(LocalLakeLock::open(d.join("locks")).unwrap()),
        tables: tables(),
        dir,
    }
}

/// The lake as `component` works on it, every store call in the trail.
fn lake(e: &Env, component: &str, actor: Option<Actor>) -> Lake {
    let wrap = |s: &Arc<LocalObjectStore>| -> Arc<dyn ObjectStore> {
        let a = AuditedStore::new(s.clone(), e.sink.clone(), component);
        Arc::new(match &actor {
            Some(actor) => a.with_identity(actor.clone()),
            None => a,
        })
    };
    Lake::new(LakeParts {
        tables: e.tables.clone(),
        ingress: wrap(&e.stores[0]),
        lake: wrap(&e.stores[1]),
        quarantine: wrap(&e.stores[2]),
        state: wrap(&e.stores[3]),
        kms: e.kms.clone(),
        catalog: e.catalog.clone(),
        database: DB.into(),
        clock: Arc::new(SystemClock),
        lock: e.lock.clone(),
    })
}

fn pipeline(e: &Env) -> Pipeline {
    let l = lake(e, "tarn-pipeline", None);
    Pipeline::new(
        l,
        vec![Arc::new(Validate::new(&e.tables).unwrap())],
        PipelineConfig {
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

/// Lands a document as the ingress does; returns (id, table).
async fn land(e: &Env, table: &str, producer: &str, ct: &str, body: &[u8]) -> (String, String) {
    land_at(e, chrono::Utc::now(), table, producer, ct, body).await
}

async fn land_at(
    e: &Env,
    at: chrono::DateTime<chrono::Utc>,
    table: &str,
    producer: &str,
    ct: &str,
    body: &[u8],
) -> (String, String) {
    let id = tarn_core::document::land(
        e.stores[0].as_ref(),
        e.kms.as_ref(),
        table,
        producer,
        ct,
        &at.to_rfc3339(),
        body,
    )
    .await
    .unwrap();
    (id, table.to_string())
}

fn events(producer: &str, note: &str) -> Vec<u8> {
    serde_json::to_vec(&json!([{"user": producer, "note": note}, {"user": producer, "note": note}]))
        .unwrap()
}

/// Every file under `dir` (decrypted when sealed, gunzipped when gzip, every value of a Parquet
/// file) that holds `needle`, with where.
async fn holders(
    dir: &Path,
    needle: &str,
    docs: &[(String, String)],
    kms: &LocalKms,
) -> Vec<String> {
    let mut out = Vec::new();
    for entry in walk(dir) {
        let bytes = std::fs::read(&entry).unwrap();
        let mut texts: Vec<Vec<u8>> = vec![bytes.clone()];
        if tarn_core::envelope::is_sealed(&bytes) {
            let mut opened = None;
            for (id, table) in docs {
                let ctx = EncryptionContext::document(table, id);
                if let Ok(o) = tarn_core::envelope::open(kms, &ctx, &bytes).await {
                    opened = Some(o);
                    break;
                }
            }
            let opened =
                opened.unwrap_or_else(|| panic!("no document's key opens {}", entry.display()));
            if let Ok(decoded) =
                base64::engine::general_purpose::STANDARD.decode(opened.trim_ascii())
            {
                texts.push(decoded);
            }
            texts.push(opened);
        }
        if let Ok(plain) = gunzip(&bytes) {
            texts.push(plain);
        }
        if entry.extension().is_some_and(|x| x == "parquet") {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                bytes::Bytes::from(bytes.clone()),
            )
            .unwrap()
            .build()
            .unwrap();
            let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
            texts.push(
                arrow::util::pretty::pretty_format_batches(&batches)
                    .unwrap()
                    .to_string()
                    .into_bytes(),
            );
        }
        if texts
            .iter()
            .any(|t| t.windows(needle.len()).any(|w| w == needle.as_bytes()))
        {
            out.push(entry.display().to_string());
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erasure_under_ingestion_and_compaction_leaves_no_byte_of_the_erased_records() {
    let e = env().await;
    let admin = lake(&e, "tarn-pipeline", None);
    admin.setup_catalog().await.unwrap();
    let p = pipeline(&e);
    let secret = format!("SECRET-{}", uuid::Uuid::new_v4());
    let mut all: Vec<(String, String)> = Vec::new();
    let mut subject = Vec::new();
    // the subject's documents and others', in several batches (many small files)
    for round in 0..3 {
        let s = land(
            &e,
            "events",
            SUBJECT,
            "application/json",
            &events(SUBJECT, &secret),
        )
        .await;
        subject.push(s.0.clone());
        all.push(s);
        for i in 0..2 {
            all.push(
                land(
                    &e,
                    "events",
                    "other",
                    "application/json",
                    &events("other", &format!("kept {round} {i}")),
                )
                .await,
            );
        }
        p.drain().await.unwrap();
    }
    let note = land(
        &e,
        "notes",
        SUBJECT,
        "text/plain",
        format!("a note: {secret}").as_bytes(),
    )
    .await;
    let bad = land(
        &e,
        "events",
        SUBJECT,
        "application/json",
        format!("{{\"user\": 5, \"note\": \"{secret}\"}}").as_bytes(),
    )
    .await;
    subject.extend([note.0.clone(), bad.0.clone()]);
    all.extend([note, bad]);
    p.drain().await.unwrap();
    let kms = LocalKms::open(&e.dir.path().join("keys/master.key")).unwrap();
    let before = holders(e.dir.path(), &secret, &all, &kms).await;
    assert!(before.len() >= 5, "the secret is stored before: {before:?}");

    // the erasure while documents arrive and compaction runs
    let officer = Actor::LocalUser("officer".into());
    let ingest = async {
        let mut ids = Vec::new();
        for round in 0..6 {
            ids.push(
                land(
                    &e,
                    "events",
                    "other",
                    "application/json",
                    &events("other", &format!("late {round}")),
                )
                .await,
            );
            p.drain().await.unwrap();
        }
        ids
    };
    let compact = async {
        for _ in 0..3 {
            Compaction::new(lake(&e, "tarn-compaction", None))
                .grace_period(Duration::ZERO)
                .with_vacuum(false)
                .execute()
                .await
                .unwrap();
        }
    };
    let erase = async {
        Erasure::new(
            lake(&e, ERASE_COMPONENT, Some(officer.clone())),
            Selector::Producer {
                producer: SUBJECT.into(),
            },
        )
        .reason("gdpr request 42")
        .by("officer")
        .grace_period(Duration::ZERO)
        .execute()
        .await
        .unwrap()
    };
    let (late, (), report) = tokio::join!(ingest, compact, erase);
    all.extend(late.iter().cloned());
    let mut erased: Vec<String> = report.documents.iter().map(|d| d.id.clone()).collect();
    erased.sort();
    subject.sort();
    assert_eq!(erased, subject);
    assert_eq!(
        report.rows, 6,
        "two rows of each of the three JSON documents"
    );
    for r in &report.finished {
        e.sink
            .record(erasure_event(r, e.stores[3].bucket(), officer.clone()));
    }

    // the vacuum after the grace period, then every file of the data dir
    p.drain().await.unwrap();
    Compaction::new(lake(&e, "tarn-compaction", None))
        .grace_period(Duration::ZERO)
        .execute()
        .await
        .unwrap();
    e.sink.flush().await.unwrap();
    assert_eq!(
        holders(e.dir.path(), &secret, &all, &kms).await,
        Vec::<String>::new(),
        "no file holds a byte of the erased records"
    );
    let st = status(e.stores[3].as_ref()).await.unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, "gone", "{st:?}");

    // the lake: the others' rows all there, the subject's documents erased
    let engine = LocalQueryEngine::new(e.catalog.clone(), DB)
        .with_audit_store(e.audit.clone(), TrailConfig::default());
    let q = |sql: &'static str| {
        let engine = engine.clone();
        async move { engine.query(sql).await.unwrap().rows }
    };
    assert_eq!(
        q("SELECT count(*) FROM events WHERE _producer = 'other'").await,
        [[json!(2 * (6 + 6))]]
    );
    assert_eq!(
        q("SELECT count(*) FROM events WHERE _producer = 'subject'").await,
        [[json!(0)]]
    );
    assert_eq!(
        q("SELECT status, count(*) FROM documents GROUP BY status ORDER BY status").await,
        [[json!("erased"), json!(5)], [json!("stored"), json!(12)]]
    );
    // the auditor's query
    let r = engine
        .query(include_str!("../../queries/audit_erasures.sql"))
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 1, "{r:?}");
    let row: Vec<(String, Value)> = r
        .columns
        .iter()
        .map(|c| c.name.clone())
        .zip(r.rows[0].iter().cloned())
        .collect();
    let get = |n: &str| row.iter().find(|(c, _)| c == n).unwrap().1.clone();
    assert_eq!(get("who"), json!("officer"));
    assert_eq!(get("selector"), json!("producer=subject"));
    assert_eq!(get("reason"), json!("gdpr request 42"));
    assert_eq!(get("documents"), json!(5));
    assert_eq!(get("erased_rows"), json!(6));
}

#[tokio::test]
async fn retention_erases_the_documents_received_before_its_cutoff() {
    let mut e = env().await;
    let mut spec = e.tables[0].schema.clone();
    spec["x-tarn"]["retention"] = json!("30d");
    e.tables[0] = TableSpec::from_value(Path::new("events.json"), spec).unwrap();
    assert_eq!(
        e.tables[0].retention,
        Some(Duration::from_secs(30 * 86_400))
    );
    lake(&e, "tarn-pipeline", None)
        .setup_catalog()
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let ago = |days: i64, table: &'static str, body: Vec<u8>| {
        let e = &e;
        async move {
            let ct = if table == "notes" {
                "text/plain"
            } else {
                "application/json"
            };
            land_at(e, now - chrono::Duration::days(days), table, "a", ct, &body).await
        }
    };
    let old = ago(31, "events", events("a", "old")).await;
    let new = ago(29, "events", events("a", "new")).await;
    // a binary table without retention keeps its old documents
    let note = ago(400, "notes", b"old note".to_vec()).await;
    pipeline(&e).drain().await.unwrap();
    // a landed document past the cutoff goes too
    let landed = ago(40, "events", events("a", "landed")).await;

    let events_seen = std::sync::Mutex::new(Vec::new());
    let make = |s: Selector| {
        Erasure::new(lake(&e, ERASE_COMPONENT, None), s)
            .reason("retention")
            .by(ERASE_COMPONENT)
            .grace_period(Duration::ZERO)
    };
    let done = |r: &tarn_lake::erase::EraseReport| {
        for f in &r.finished {
            events_seen.lock().unwrap().push(erasure_event(
                f,
                "tarn-state",
                Actor::Service(ERASE_COMPONENT.into()),
            ));
        }
    };
    let reports = tarn_lake::erase::run_retention(&e.tables, now, &make, &done)
        .await
        .unwrap();
    assert_eq!(reports.len(), 1);
    let mut ids: Vec<&str> = reports[0].documents.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    let mut want = vec![old.0.as_str(), landed.0.as_str()];
    want.sort();
    assert_eq!(ids, want);
    assert_eq!(reports[0].rows, 2);
    assert_eq!(events_seen.lock().unwrap().len(), 1);
    let engine = LocalQueryEngine::new(e.catalog.clone(), DB);
    let r = engine
        .query("SELECT note FROM events ORDER BY note")
        .await
        .unwrap();
    assert_eq!(r.rows, [[json!("new")], [json!("new")]]);
    let r = engine
        .query("SELECT id, status FROM documents ORDER BY status, id")
        .await
        .unwrap();
    let mut kept = vec![new.0.clone(), note.0.clone()];
    kept.sort();
    assert_eq!(
        r.rows,
        [
            [json!(old.0), json!("erased")],
            [json!(kept[0]), json!("stored")],
            [json!(kept[1]), json!("stored")]
        ]
    );
    assert!(
        e.stores[0].list("").await.unwrap().is_empty(),
        "the landed document is gone"
    );
    // the next run finds nothing
    let again = tarn_lake::erase::run_retention(&e.tables, now, &make, &done)
        .await
        .unwrap();
    assert!(again[0].documents.is_empty() && again[0].finished.is_empty());
}
