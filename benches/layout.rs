//! Bytes a query reads, before and after files were laid out for queries (not a test: it prints).
//!
//!   cargo bench --bench layout                 (optimized)
//!   cargo bench --bench layout --profile dev   (unoptimized: slower, the same bytes)
//!
//! `BENCH_DIR` keeps the two lakes in that directory (default: a temp dir, removed);
//! `BENCH_RECORDS` sets the number of sensor records (300,000), sent as 100-record documents
//! received over 7 days, each record taken up to 2 days before its document was received.
//! The same documents go into two lakes, each committed by tarn's batch commit in batches of 100
//! documents and then compacted:
//! - before: the table partitioned by the received day, compaction unsorted, no bloom filters
//!   (the `documents` files are rewritten without their bloom filter, as tarn wrote them before);
//! - after: `"partition": {"field": "taken_at", "granularity": "day"}`,
//!   `"sort": ["device_id", "taken_at"]`, `"bloom": ["reading_id"]` (and `documents.id`).
//!
//! Each query runs on the embedded engine (DataFusion) on both lakes; the table prints what its
//! Parquet scans read (`bytes_scanned`: footers, indexes, bloom filters and column chunks) and
//! what they skipped, and checks both lakes give the same answer.

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;
use tarn_catalog::{Catalog, LocalCatalog, TableSpec};
use tarn_core::{Kms, LocalKms, LocalObjectStore, ManualClock, ObjectStore};
use tarn_lake::commit::StateKeys;
use tarn_lake::compact::Compaction;
use tarn_lake::item::{Origin, batch_item};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::{Document, Lake, LakeParts, Verdict};
use tarn_query::{LocalQueryEngine, ScanMetrics};

const DB: &str = "tarn";
const PER_DOC: usize = 100;
const DOCS_PER_BATCH: usize = 100;
const DAYS: i64 = 7;
const DEVICES: u64 = 1000;

/// splitmix64: deterministic, well spread.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn reading_id(n: u64) -> String {
    format!("{:016x}{:016x}", mix(n), mix(n ^ 0xabcdef))
}

fn doc_id(d: u64) -> String {
    let h = mix(d.wrapping_add(1 << 40));
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        h >> 32,
        (h >> 16) & 0xffff,
        h & 0xfff,
        (h >> 12) & 0xfff,
        mix(h) & 0xffff_ffff_ffff
    )
}

fn start() -> DateTime<Utc> {
    "2024-05-01T00:00:00Z".parse().unwrap()
}

/// Document `d`: when it was received and its records.
fn document(d: u64, docs: u64) -> (DateTime<Utc>, Vec<Value>) {
    let span = TimeDelta::days(DAYS).num_seconds() as u64;
    let received = start() + TimeDelta::seconds((d * span / docs) as i64);
    let records = (0..PER_DOC as u64)
        .map(|k| {
            let n = d * PER_DOC as u64 + k;
            let r = mix(n);
            let device = format!("dev-{:04}", r % DEVICES);
            let delay = TimeDelta::seconds(((r >> 20) % (2 * 86_400)) as i64);
            let taken = received - delay;
            // one record in a thousand without its time: the default partition
            let taken = (n % 1000 != 7).then(|| taken.to_rfc3339());
            json!({"device_id": device, "reading_id": reading_id(n), "taken_at": taken,
                "temperature": ((r >> 8) % 4000) as f64 / 100.0 - 10.0,
                "humidity": ((r >> 24) % 1000) as f64 / 10.0,
                "battery": ((r >> 40) % 100) as i64,
                "firmware": format!("fw-1.{}.{}", (r >> 48) % 4, (r >> 52) % 10)})
        })
        .collect();
    (received, records)
}

fn spec(x_tarn: Value) -> TableSpec {
    TableSpec::from_value(
        Path::new("readings.json"),
        json!({"title": "readings", "type": "object", "properties": {
            "device_id": {"type": "string"}, "reading_id": {"type": "string"},
            "taken_at": {"type": "string", "format": "date-time"},
            "temperature": {"type": "number"}, "humidity": {"type": "number"},
            "battery": {"type": "integer"}, "firmware": {"type": "string"}},
            "x-tarn": x_tarn}),
    )
    .expect("a valid table")
}

fn lake(dir: &Path, table: TableSpec) -> Result<Lake> {
    let store = |name: &str| -> Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(LocalObjectStore::open(name, dir.join(name))?))
    };
    let kms: Arc<dyn Kms> = Arc::new(LocalKms::open_or_create(dir.join("keys/master.key"))?);
    let catalog: Arc<dyn Catalog> = Arc::new(LocalCatalog::open(dir.join("catalog"))?);
    Ok(Lake::new(LakeParts {
        tables: vec![table],
        ingress: store("ingress")?,
        lake: store("lake")?,
        quarantine: store("quarantine")?,
        state: store("state")?,
        kms,
        catalog,
        database: DB.into(),
        // one processing time for both lakes, so their `documents` rows are equal
        clock: Arc::new(ManualClock::new(start() + TimeDelta::days(DAYS))),
        lock: Arc::new(LocalLakeLock::open(dir.join("locks"))?),
    }))
}

/// Commits every document through tarn's batch commit, then compacts.
async fn fill(lake: &Lake, docs: u64) -> Result<()> {
    lake.setup_catalog().await?;
    let mut batch = Vec::new();
    for d in 0..docs {
        let (received, records) = document(d, docs);
        let body = serde_json::to_vec(&records)?;
        let doc = Document {
            id: doc_id(d),
            table: "readings".into(),
            content_type: "application/json".into(),
            producer: "sensors".into(),
            received_at: received,
            body: Bytes::new(),
            detected_type: Some("application/json".into()),
            records: Some(records),
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
        };
        batch.push(batch_item(
            &lake.layout,
            doc,
            Origin::of(&body),
            Verdict::Continue,
            Utc::now(),
        ));
        if batch.len() == DOCS_PER_BATCH || d + 1 == docs {
            let rows = lake
                .commit(
                    &format!("b{d:08}"),
                    std::mem::take(&mut batch),
                    StateKeys::default(),
                )
                .await?;
            ensure!(rows.iter().all(|r| r.status == tarn_core::Status::Stored));
        }
    }
    Compaction::new(lake.clone()).execute().await?;
    Ok(())
}

/// Rewrites the `documents` files as tarn wrote them before bloom filters (zstd, page
/// statistics, nothing else), in place.
async fn strip_document_blooms(lake: &Lake) -> Result<()> {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::{Compression, ZstdLevel};
    use parquet::file::properties::WriterProperties;
    for o in lake.lake.list("tables/documents/").await? {
        if !o.key.ends_with(".parquet") {
            continue;
        }
        let body = lake.lake.get(&o.key).await?.body;
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)?;
        let schema = reader.schema().clone();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .build();
        let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props))?;
        for b in reader.build()? {
            w.write(&b?)?;
        }
        lake.lake
            .put(&o.key, Bytes::from(w.into_inner()?), Default::default())
            .await?;
    }
    Ok(())
}

struct Query {
    name: &'static str,
    before: String,
    after: String,
}

fn queries(docs: u64) -> Vec<Query> {
    let same = |name, sql: String| Query {
        name,
        before: sql.clone(),
        after: sql,
    };
    let rid = reading_id(docs * PER_DOC as u64 / 2 + 3);
    let day = "taken_at >= CAST('2024-05-04T00:00:00Z' AS TIMESTAMP) AND taken_at < CAST('2024-05-05T00:00:00Z' AS TIMESTAMP)";
    vec![
        same(
            "documents point: id = ...",
            format!("SELECT * FROM documents WHERE id = '{}'", doc_id(docs / 3)),
        ),
        same(
            "readings point: reading_id = ...",
            format!("SELECT * EXCLUDE (dt) FROM readings WHERE reading_id = '{rid}'"),
        ),
        same(
            "device: device_id = ...",
            "SELECT count(*), round(avg(temperature), 6) FROM readings WHERE device_id = 'dev-0042'"
                .into(),
        ),
        same(
            "one day, by taken_at",
            format!("SELECT count(*), round(avg(temperature), 6) FROM readings WHERE {day}"),
        ),
        Query {
            name: "one day, as an analyst writes it",
            before: format!("SELECT count(*), round(avg(temperature), 6) FROM readings WHERE {day}"),
            after: format!(
                "SELECT count(*), round(avg(temperature), 6) FROM readings WHERE dt = '2024-05-04' AND {day}"
            ),
        },
        same(
            "one day and one device",
            format!(
                "SELECT count(*), round(avg(temperature), 6) FROM readings WHERE device_id = 'dev-0042' AND {day}"
            ),
        ),
    ]
}

fn mib(b: u64) -> String {
    if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

fn pruned(m: &ScanMetrics) -> String {
    format!(
        "{}/{}/{}",
        m.row_groups_pruned_statistics, m.row_groups_pruned_bloom_filter, m.page_index_pages_pruned
    )
}

#[tokio::main]
async fn main() -> Result<()> {
    let records: u64 = std::env::var("BENCH_RECORDS")
        .ok()
        .map(|v| v.parse())
        .transpose()
        .context("BENCH_RECORDS must be a number")?
        .unwrap_or(300_000);
    let docs = (records / PER_DOC as u64).max(1);
    let tmp = tempfile::tempdir()?;
    let root = std::env::var_os("BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let before = lake(&root.join("before"), spec(json!({"partition": "day"})))?;
    let after = lake(
        &root.join("after"),
        spec(
            json!({"partition": {"field": "taken_at", "granularity": "day"},
            "sort": ["device_id", "taken_at"], "bloom": ["reading_id"]}),
        ),
    )?;
    println!(
        "{} records in {docs} documents of {PER_DOC}, received over {DAYS} days, committed in batches of {DOCS_PER_BATCH} and compacted",
        docs * PER_DOC as u64
    );
    for (name, l) in [("before", &before), ("after", &after)] {
        let t = Instant::now();
        fill(l, docs).await?;
        if name == "before" {
            strip_document_blooms(l).await?;
        }
        let took = t.elapsed();
        let stats = LocalQueryEngine::new(l.catalog.clone(), DB)
            .table_stats()
            .await?;
        let show = |table: &str| {
            stats
                .iter()
                .find(|s| s.name == table)
                .map(|s| {
                    format!(
                        "{} in {} files ({} partitions)",
                        mib(s.bytes),
                        s.files,
                        s.partitions
                    )
                })
                .unwrap_or_default()
        };
        println!(
            "{name:>6}: readings {}, documents {}; written and compacted in {took:.1?}",
            show("readings"),
            show("documents"),
        );
    }
    let qb = LocalQueryEngine::new(before.catalog.clone(), DB);
    let qa = LocalQueryEngine::new(after.catalog.clone(), DB);
    println!();
    println!(
        "{:<34} {:>12} {:>12} {:>8}   {:>16} {:>16}",
        "query", "before read", "after read", "after/b", "before pruned", "after pruned"
    );
    println!(
        "{:<34} {:>12} {:>12} {:>8}   {:>16} {:>16}",
        "", "", "", "", "rg stat/bloom/pages", ""
    );
    for q in queries(docs) {
        // the first run warms nothing that is counted: bytes_scanned counts reads from the store
        let (rb, mb) = qb.query_with_metrics(&q.before).await?;
        let (ra, ma) = qa.query_with_metrics(&q.after).await?;
        ensure!(
            rb.rows == ra.rows,
            "{}: the answers differ: {:?} and {:?}",
            q.name,
            rb.rows,
            ra.rows
        );
        ensure!(!ra.rows.is_empty(), "{}: no rows", q.name);
        println!(
            "{:<34} {:>12} {:>12} {:>7.1}%   {:>16} {:>16}",
            q.name,
            mib(mb.bytes_scanned),
            mib(ma.bytes_scanned),
            100.0 * ma.bytes_scanned as f64 / mb.bytes_scanned.max(1) as f64,
            pruned(&mb),
            pruned(&ma),
        );
    }
    println!("\nevery query gave the same rows on both lakes");
    Ok(())
}
