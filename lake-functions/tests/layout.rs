//! Files laid out for queries, through the real pipeline, compaction and the embedded engine: a
//! table partitioned by a record field (with the default partition), files with page indexes and
//! bloom filters, compaction sorting by the declared columns, and the same answers throughout.

use bytes::Bytes;
use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::PageIndexPolicy;
use serde_json::{Value, json};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::schemas::DEFAULT_PARTITION;
use tarn_catalog::{Catalog, LocalCatalog, TableSpec};
use tarn_core::{Kms, LocalKms, LocalObjectStore, ObjectStore, SystemClock};
use tarn_lake::compact::Compaction;
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::validate::Validate;
use tarn_lake::{Lake, LakeParts, Pipeline, PipelineConfig, RetryPolicy};
use tarn_query::{LocalQueryEngine, QueryEngine};

const DB: &str = "tarn";

struct Env {
    _dir: tempfile::TempDir,
    lake: Lake,
}

fn readings() -> TableSpec {
    TableSpec::from_value(
        Path::new("readings.json"),
        json!({"title": "readings", "type": "object", "properties": {
            "device_id": {"type": "string"}, "reading_id": {"type": "string"},
            "taken_at": {"type": "string", "format": "date-time"}, "value": {"type": "number"}},
            "x-tarn": {"partition": {"field": "taken_at", "granularity": "day"},
                "sort": ["device_id", "taken_at"], "bloom": ["reading_id"]}}),
    )
    .unwrap()
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let store = |name: &str| -> Arc<dyn ObjectStore> {
        Arc::new(LocalObjectStore::open(name, d.join(name)).unwrap())
    };
    let kms: Arc<dyn Kms> = Arc::new(LocalKms::open_or_create(d.join("keys/master.key")).unwrap());
    let catalog: Arc<dyn Catalog> = Arc::new(LocalCatalog::open(d.join("catalog")).unwrap());
    let lake = Lake::new(LakeParts {
        tables: vec![readings()],
        ingress: store("ingress"),
        lake: store("lake"),
        quarantine: store("quarantine"),
        state: store("state"),
        kms,
        catalog,
        database: DB.into(),
        clock: Arc::new(SystemClock),
        lock: Arc::new(LocalLakeLock::open(d.join("locks")).unwrap()),
    });
    Env { _dir: dir, lake }
}

fn pipeline(e: &Env) -> Pipeline {
    let tables = e.lake.tables();
    Pipeline::new(
        e.lake.clone(),
        vec![Arc::new(Validate::new(&tables).unwrap())],
        PipelineConfig {
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

async fn land(e: &Env, records: &Value) -> String {
    tarn_core::document::land(
        e.lake.ingress.as_ref(),
        e.lake.kms.as_ref(),
        "readings",
        "sensor",
        "application/json",
        "2024-05-06T07:08:09.123Z",
        &serde_json::to_vec(records).unwrap(),
    )
    .await
    .unwrap()
}

/// A reading id that sorts in no relation to its number, so min/max statistics cannot prune it.
fn reading_id(n: usize) -> String {
    format!("r{:08x}", (n as u32).wrapping_mul(2_654_435_761))
}

/// `rounds` drains of 4 documents, each with 10 records over 3 days, one without `taken_at`
/// and one taken a year before it was received.
async fn ingest(e: &Env, p: &Pipeline, rounds: usize) {
    let mut n = 0;
    for _ in 0..rounds {
        for _ in 0..4 {
            let records: Vec<Value> = (0..10)
                .map(|k| {
                    n += 1;
                    let device = format!("d{}", (n * 7) % 5);
                    match k {
                        0 => json!({"device_id": device, "reading_id": reading_id(n), "value": 0.5}),
                        1 => json!({"device_id": device, "reading_id": reading_id(n),
                            "taken_at": "2023-05-06T00:00:00Z", "value": 1.5}),
                        _ => json!({"device_id": device, "reading_id": reading_id(n),
                            "taken_at": format!("2024-05-0{}T{:02}:00:00Z", 4 + k % 3, (n * 5) % 24),
                            "value": n as f64}),
                    }
                })
                .collect();
            land(e, &Value::Array(records)).await;
        }
        p.drain().await.unwrap();
    }
}

fn engine(e: &Env) -> LocalQueryEngine {
    LocalQueryEngine::new(e.lake.catalog.clone(), DB)
}

async fn rows(q: &LocalQueryEngine, sql: &str) -> Vec<Vec<Value>> {
    q.query(sql).await.unwrap().rows
}

/// What a Parquet file carries, read back with the parquet crate.
struct FileFacts {
    row_groups: usize,
    /// every column chunk has a column index and an offset index
    page_indexes: bool,
    /// the columns with a bloom filter in every row group
    bloom: Vec<String>,
    batches: Vec<arrow::array::RecordBatch>,
}

fn facts(body: Bytes) -> FileFacts {
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
    let b = ParquetRecordBatchReaderBuilder::try_new_with_options(body, options).unwrap();
    let meta = b.metadata().clone();
    let row_groups = meta.num_row_groups();
    let page_indexes = match (meta.column_index(), meta.offset_index()) {
        (Some(ci), Some(oi)) => {
            ci.len() == row_groups
                && oi.len() == row_groups
                && ci.iter().zip(oi).all(|(c, o)| {
                    c.len() == meta.row_group(0).num_columns()
                        && o.iter().all(|o| !o.page_locations().is_empty())
                })
        }
        _ => false,
    };
    let schema = meta.file_metadata().schema_descr();
    let mut bloom = Vec::new();
    for c in 0..schema.num_columns() {
        let mut all = row_groups > 0;
        for rg in 0..row_groups {
            all &= b
                .get_row_group_column_bloom_filter(rg, c)
                .unwrap()
                .is_some();
        }
        if all {
            bloom.push(schema.column(c).path().string());
        }
    }
    let batches: Vec<_> = b.build().unwrap().map(|r| r.unwrap()).collect();
    FileFacts {
        row_groups,
        page_indexes,
        bloom,
        batches,
    }
}

async fn parquet_files(e: &Env, prefix: &str) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for o in e.lake.lake.list(prefix).await.unwrap() {
        if o.key.ends_with(".parquet") {
            let body = e.lake.lake.get(&o.key).await.unwrap().body;
            out.push((o.key, body));
        }
    }
    out
}

/// The compacted files of `readings` (the ones its partitions point at).
async fn visible_readings_files(e: &Env) -> Vec<(String, Bytes)> {
    let root = &e.lake.layout.lake_root;
    let mut out = Vec::new();
    for p in e.lake.catalog.get_partitions(DB, "readings").await.unwrap() {
        let prefix = p.location.strip_prefix(root.as_str()).unwrap();
        for (k, b) in parquet_files(e, prefix).await {
            let below = &k[prefix.len()..];
            if !below.split('/').any(|s| s.starts_with('_')) {
                out.push((k, b));
            }
        }
    }
    out
}

#[tokio::test]
async fn records_go_to_their_field_partitions_and_files_are_laid_out_for_queries() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    ingest(&e, &p, 3).await;
    let q = engine(&e);

    // partitions by taken_at, strays in the default partition; documents by the received day
    let mut values: Vec<String> = e
        .lake
        .catalog
        .get_partitions(DB, "readings")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.values[0].clone())
        .collect();
    values.sort();
    assert_eq!(
        values,
        ["2024-05-04", "2024-05-05", "2024-05-06", DEFAULT_PARTITION]
    );
    assert_eq!(
        rows(
            &q,
            "SELECT dt, count(*) FROM readings GROUP BY dt ORDER BY dt"
        )
        .await,
        [
            [json!("2024-05-04"), json!(36)],
            [json!("2024-05-05"), json!(24)],
            [json!("2024-05-06"), json!(36)],
            [json!(DEFAULT_PARTITION), json!(24)],
        ]
    );
    assert_eq!(
        rows(
            &q,
            "SELECT count(*), count(taken_at) FROM readings WHERE dt = '__default__'"
        )
        .await,
        [[json!(24), json!(12)]]
    );
    assert_eq!(
        rows(
            &q,
            "SELECT dt, count(*), sum(records) FROM documents GROUP BY dt"
        )
        .await,
        [[json!("2024-05-06"), json!(12), json!(120)]]
    );
    // a record's partition is its taken_at's day
    assert_eq!(
        rows(
            &q,
            "SELECT count(*) FROM readings WHERE dt <> '__default__' AND dt <> substr(CAST(taken_at AS VARCHAR), 1, 10)"
        )
        .await,
        [[json!(0)]]
    );

    // every file the batches wrote has page indexes, and bloom filters where declared
    for (key, body) in parquet_files(&e, "tables/").await {
        let f = facts(body);
        assert!(f.page_indexes, "{key} has no page index");
        let want = if key.starts_with("tables/documents/") {
            vec!["id".to_string()]
        } else {
            vec!["reading_id".to_string()]
        };
        assert_eq!(f.bloom, want, "{key}");
    }

    let sql = [
        "SELECT * FROM readings ORDER BY reading_id",
        "SELECT * FROM documents ORDER BY id",
        "SELECT device_id, dt, count(*), sum(value) FROM readings GROUP BY device_id, dt ORDER BY device_id, dt",
    ];
    let mut before = Vec::new();
    for s in sql {
        before.push(rows(&q, s).await);
    }

    let report = Compaction::new(e.lake.clone()).execute().await.unwrap();
    assert!(report.partitions_compacted >= 4, "{report:?}");

    // the answers are unchanged
    for (s, want) in sql.iter().zip(&before) {
        assert_eq!(&rows(&q, s).await, want, "{s}");
    }

    // the compacted files are sorted by (device_id, taken_at, nulls last), with page indexes
    // and bloom filters
    let files = visible_readings_files(&e).await;
    assert_eq!(files.len(), 4, "one merged file per partition");
    for (key, body) in files {
        let f = facts(body);
        assert!(f.page_indexes && f.row_groups >= 1, "{key}");
        assert_eq!(f.bloom, ["reading_id"], "{key}");
        let mut keys: Vec<(String, Option<i64>)> = Vec::new();
        for b in &f.batches {
            let device = b.column_by_name("device_id").unwrap();
            let device = device
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .unwrap();
            let taken = b.column_by_name("taken_at").unwrap();
            let taken = taken
                .as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .unwrap();
            for i in 0..b.num_rows() {
                let t = (!arrow::array::Array::is_null(taken, i)).then(|| taken.value(i));
                keys.push((device.value(i).to_string(), t));
            }
        }
        assert!(keys.len() > 1, "{key}");
        // nulls last: compare None as the greatest
        let order = |k: &(String, Option<i64>)| (k.0.clone(), k.1.is_none(), k.1);
        assert!(
            keys.windows(2).all(|w| order(&w[0]) <= order(&w[1])),
            "{key} is not sorted: {keys:?}"
        );
    }

    // a point lookup on a bloom column skips the row groups that cannot hold it
    let (r, m) = q
        .query_with_metrics(&format!(
            "SELECT device_id, value FROM readings WHERE reading_id = '{}'",
            reading_id(17)
        ))
        .await
        .unwrap();
    assert_eq!(r.rows.len(), 1);
    assert!(m.bytes_scanned > 0, "{m:?}");
    // four partitions of one row group each: the three without the id are skipped by their
    // bloom filters (min/max statistics cannot tell, the ids being scattered)
    assert_eq!(
        (
            m.row_groups_pruned_statistics,
            m.row_groups_pruned_bloom_filter
        ),
        (0, 3),
        "{m:?}"
    );
}
