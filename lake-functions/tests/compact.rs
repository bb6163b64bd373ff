//! Compaction against real local stores, the real pipeline and the embedded query engine: the
//! issue's invariants, each with its test.

use serde_json::{Value, json};
use sha2::Digest;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tarn_catalog::{Catalog, LocalCatalog, TableSpec};
use tarn_core::{
    GetResult, Kms, LocalKms, LocalObjectStore, ManualClock, Metadata, ObjectInfo, ObjectStore,
    SystemClock,
};
use tarn_lake::compact::footer::FOOTER_PREFETCH;
use tarn_lake::compact::{Compaction, CompactionReport, Progress, TOMBSTONES_PREFIX};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::validate::Validate;
use tarn_lake::{Lake, LakeParts, Pipeline, PipelineConfig, RetryPolicy};
use tarn_query::{LocalQueryEngine, QueryEngine};

const DB: &str = "tarn";

struct Env {
    _dir: tempfile::TempDir,
    ingress: Arc<dyn ObjectStore>,
    lake: Arc<LocalObjectStore>,
    quarantine: Arc<dyn ObjectStore>,
    state: Arc<dyn ObjectStore>,
    kms: Arc<dyn Kms>,
    catalog: Arc<dyn Catalog>,
    lock: Arc<LocalLakeLock>,
    clock: Arc<ManualClock>,
    tables: Vec<TableSpec>,
}

fn events_spec(props: Value) -> TableSpec {
    TableSpec::from_value(
        Path::new("events.json"),
        json!({"title": "events", "type": "object", "required": ["user"], "properties": props,
               "x-tarn": {"accept": ["application/json"]}}),
    )
    .unwrap()
}

fn v1() -> TableSpec {
    events_spec(json!({"user": {"type": "string"}, "n": {"type": "integer"}}))
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
        lock: Arc::new(LocalLakeLock::open(d.join("locks")).unwrap()),
        clock: Arc::new(ManualClock::new(chrono::Utc::now())),
        tables: vec![v1()],
        _dir: dir,
    }
}

type Wrap<'a> = &'a dyn Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>;

fn pipeline_with(e: &Env, tables: Vec<TableSpec>, wrap: Wrap) -> Pipeline {
    let stages: Vec<Arc<dyn tarn_lake::Stage>> = vec![Arc::new(Validate::new(&tables).unwrap())];
    let lake = Lake::new(LakeParts {
        tables,
        ingress: wrap(e.ingress.clone()),
        lake: wrap(e.lake.clone()),
        quarantine: wrap(e.quarantine.clone()),
        state: wrap(e.state.clone()),
        kms: e.kms.clone(),
        catalog: e.catalog.clone(),
        database: DB.into(),
        clock: Arc::new(SystemClock),
        lock: e.lock.clone(),
    });
    Pipeline::new(
        lake,
        stages,
        PipelineConfig {
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                ..Default::default()
            },
            ..Default::default()
        },
    )
}

fn pipeline(e: &Env) -> Pipeline {
    pipeline_with(e, e.tables.clone(), &|s| s)
}

fn deps_with(e: &Env, wrap: Wrap) -> Lake {
    Lake::new(LakeParts {
        tables: e.tables.clone(),
        ingress: wrap(e.ingress.clone()),
        lake: wrap(e.lake.clone()),
        quarantine: wrap(e.quarantine.clone()),
        state: wrap(e.state.clone()),
        kms: e.kms.clone(),
        catalog: e.catalog.clone(),
        database: DB.into(),
        clock: e.clock.clone(),
        lock: e.lock.clone(),
    })
}

fn deps(e: &Env) -> Lake {
    deps_with(e, &|s| s)
}

/// Lands a JSON document exactly as the ingress does, received on `day`.
async fn land(e: &Env, day: u32, records: Value) -> String {
    let body = serde_json::to_vec(&records).unwrap();
    let time = format!("2024-05-{day:02}T07:08:09.123Z");
    tarn_core::document::land(
        e.ingress.as_ref(),
        e.kms.as_ref(),
        "events",
        "alice",
        "application/json",
        &time,
        &body,
    )
    .await
    .unwrap()
}

/// `rounds` drains of `docs` documents (two records each) per day: one small file per round in
/// each `events` and `documents` partition.
async fn ingest(e: &Env, p: &Pipeline, days: &[u32], rounds: usize, docs: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for r in 0..rounds {
        for &day in days {
            for i in 0..docs {
                let n = (r * 1000 + i) as i64;
                ids.push(
                    land(
                        e,
                        day,
                        json!([{"user": format!("u{n}"), "n": n}, {"user": "x", "n": -n}]),
                    )
                    .await,
                );
            }
        }
        p.drain().await.unwrap();
    }
    ids
}

fn engine(e: &Env) -> LocalQueryEngine {
    LocalQueryEngine::new(e.catalog.clone(), DB)
}

/// Every row of both tables, each as its JSON text, sorted: the multiset of rows.
async fn snapshot(q: &LocalQueryEngine) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["events", "documents"] {
        let r = q.query(&format!("SELECT * FROM {table}")).await.unwrap();
        out.extend(
            r.rows
                .iter()
                .map(|row| format!("{table} {}", serde_json::to_string(row).unwrap())),
        );
    }
    out.sort();
    out
}

fn checksum(rows: &[String]) -> String {
    let mut h = sha2::Sha256::new();
    for r in rows {
        h.update(r.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Every object key in the lake, with its size.
async fn lake_objects(e: &Env) -> Vec<(String, u64)> {
    e.lake
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.key, o.size))
        .collect()
}

/// Every Parquet file in the lake is visible through some registered partition: nothing leaked.
async fn assert_no_orphans(e: &Env) {
    let stats = engine(e).table_stats().await.unwrap();
    let visible: usize = stats.iter().map(|s| s.files).sum();
    let on_disk = lake_objects(e)
        .await
        .iter()
        .filter(|(k, _)| k.ends_with(".parquet"))
        .count();
    assert_eq!(
        on_disk,
        visible,
        "Parquet files in the lake that no partition shows: {:?}",
        lake_objects(e).await
    );
}

fn files_of(stats: &[tarn_query::TableStats], table: &str) -> usize {
    stats.iter().find(|s| s.name == table).unwrap().files
}

#[tokio::test]
async fn compaction_keeps_every_row_and_a_second_run_changes_nothing() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    ingest(&e, &p, &[6], 6, 2).await;
    let q = engine(&e);
    let before = snapshot(&q).await;
    assert_eq!(before.len(), 6 * 2 * 2 + 6 * 2);
    let stats = q.table_stats().await.unwrap();
    assert_eq!(
        (files_of(&stats, "events"), files_of(&stats, "documents")),
        (6, 6)
    );

    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let report = Compaction::new(deps(&e))
        .with_progress(move |p| seen.lock().unwrap().push(p.clone()))
        .execute()
        .await
        .unwrap();

    // the multiset of rows is unchanged
    let after = snapshot(&q).await;
    assert_eq!(checksum(&after), checksum(&before));
    assert_eq!(after, before);
    let stats = q.table_stats().await.unwrap();
    assert_eq!(
        (files_of(&stats, "events"), files_of(&stats, "documents")),
        (1, 1)
    );

    // the report and the progress events
    assert_eq!(
        (report.partitions_examined, report.partitions_compacted),
        (2, 2)
    );
    assert_eq!(
        (report.files_in, report.files_out, report.late_files),
        (12, 2, 0)
    );
    assert_eq!(report.rows, 6 * 2 * 2 + 6 * 2);
    assert!(report.bytes_in > 0 && report.bytes_out > 0);
    assert!(report.skipped.is_empty());
    assert_eq!(report.vacuum.tombstones_pending, 2);
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["files_in"], 12);
    let events = events.lock().unwrap().clone();
    let Progress::Planned {
        partitions,
        files,
        bytes,
    } = &events[0]
    else {
        panic!("{events:?}")
    };
    assert_eq!((*partitions, *files, *bytes), (2, 12, report.bytes_in));
    let done: u64 = events
        .iter()
        .filter_map(|p| {
            if let Progress::FileDone { bytes, .. } = p {
                Some(*bytes)
            } else {
                None
            }
        })
        .sum();
    assert_eq!(done, *bytes, "the bar reaches its end");
    assert_eq!(
        events
            .iter()
            .filter(|p| matches!(p, Progress::PartitionCommitted { .. }))
            .count(),
        2
    );

    // the layout: the partition now points at a _compacted generation under its Hive directory
    for (table, values) in [
        ("events", vec!["2024-05-06"]),
        ("documents", vec!["events", "2024-05-06"]),
    ] {
        let parts = e.catalog.get_partitions(DB, table).await.unwrap();
        let part = parts.iter().find(|p| p.values == values).unwrap();
        let dir = if table == "events" {
            "tables/events/dt=2024-05-06/"
        } else {
            "tables/documents/table_name=events/dt=2024-05-06/"
        };
        let rest = part
            .location
            .strip_prefix(&format!("{}{dir}_compacted/", p.lake_root()))
            .unwrap_or_else(|| panic!("{}", part.location));
        assert!(
            rest.ends_with('/') && uuid::Uuid::parse_str(rest.trim_end_matches('/')).is_ok(),
            "{}",
            part.location
        );
    }

    // running it twice changes nothing
    let catalog_before = e.catalog.get_partitions(DB, "events").await.unwrap();
    let objects_before = lake_objects(&e).await;
    let again = Compaction::new(deps(&e)).execute().await.unwrap();
    assert_eq!(
        (
            again.partitions_examined,
            again.partitions_compacted,
            again.files_in
        ),
        (2, 0, 0)
    );
    assert_eq!(
        e.catalog.get_partitions(DB, "events").await.unwrap(),
        catalog_before
    );
    assert_eq!(lake_objects(&e).await, objects_before);
    assert_eq!(snapshot(&q).await, before);

    // documents ingested after the swap go to the new location, and stay after the vacuum
    let late = ingest(&e, &p, &[6], 1, 1).await;
    let with_late = snapshot(&q).await;
    assert_eq!(with_late.len(), before.len() + 3);
    assert!(with_late.iter().any(|r| r.contains(&late[0])));

    // old files stay through the grace period, then go
    let v = Compaction::new(deps(&e)).vacuum().await.unwrap();
    assert_eq!(
        (v.tombstones_done, v.files_deleted, v.tombstones_pending),
        (0, 0, 2)
    );
    e.clock.advance(chrono::Duration::hours(2));
    let v = Compaction::new(deps(&e)).vacuum().await.unwrap();
    assert_eq!(
        (v.tombstones_done, v.files_deleted, v.tombstones_pending),
        (2, 12, 0)
    );
    assert!(e.state.list(TOMBSTONES_PREFIX).await.unwrap().is_empty());
    assert_eq!(snapshot(&q).await, with_late);
    assert_no_orphans(&e).await;
}

/// A run records itself (for `tarn status`) and measures its result and the small files it
/// leaves; the small-file debt is there to read before and after.
#[tokio::test]
async fn a_run_records_itself_and_measures_the_small_files_it_leaves() {
    use tarn_core::metrics as m;
    // three drains of one document: three small files in one partition of each table
    let (e, _) = crash_env().await;
    let debt = Compaction::new(deps(&e)).small_files().await.unwrap();
    assert_eq!(
        (
            debt["events"].small_files,
            debt["events"].partitions_with_debt
        ),
        (3, 1)
    );
    assert_eq!(tarn_lake::compact::last_run(&deps(&e)).await.unwrap(), None);

    let seen = Arc::new(tarn_core::testing::CapturedMetrics::default());
    let report = Compaction::new(deps(&e))
        .with_metrics(tarn_core::Metrics::new(seen.clone()))
        .execute()
        .await
        .unwrap();
    let last = tarn_lake::compact::last_run(&deps(&e))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.partitions_compacted, last.files_in, last.files_out),
        (
            report.partitions_compacted,
            report.files_in,
            report.files_out
        )
    );
    assert_eq!(seen.sum(m::COMPACTION_RUNS.name, &["ok"]), 1.0);
    assert!(
        seen.last(m::COMPACTION_LAST_RUN.name)
            .is_some_and(|t| t >= last.finished_at.timestamp() as f64)
    );
    // one file per partition now, itself below the target: no more debt
    assert_eq!(seen.sum(m::SMALL_FILES.name, &["events"]), 1.0);
    let debt = Compaction::new(deps(&e)).small_files().await.unwrap();
    assert_eq!(
        (
            debt["events"].small_files,
            debt["events"].partitions_with_debt
        ),
        (1, 0)
    );
}

#[tokio::test]
async fn a_small_target_rolls_outputs_carries_big_files_and_settles() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    // one big file (many documents in one batch), then small ones
    ingest(&e, &p, &[6], 1, 250).await;
    ingest(&e, &p, &[6], 8, 3).await;
    let q = engine(&e);
    let before = snapshot(&q).await;
    let files: Vec<(String, u64)> = lake_objects(&e)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("tables/events/") && k.ends_with(".parquet"))
        .collect();
    let mut sizes: Vec<u64> = files.iter().map(|f| f.1).collect();
    sizes.sort();
    let (small, big) = (sizes[sizes.len() - 2], sizes[sizes.len() - 1]);
    assert!(big > small * 2, "{sizes:?}");
    // the big file is over the target; three small files fill it
    let target = (small * 3).min(big - 1);
    let report = Compaction::new(deps(&e))
        .table("events")
        .partition("dt=2024-05-06")
        .unwrap()
        .target_size(target)
        .execute()
        .await
        .unwrap();
    assert_eq!(report.partitions_compacted, 1);
    assert_eq!(report.partitions[0].files_in, 9);
    assert!(
        report.partitions[0].files_out >= 2 && report.partitions[0].files_out < 9,
        "{report:?}"
    );
    assert_eq!(snapshot(&q).await, before);

    // the big file was copied byte for byte
    let part = &e.catalog.get_partitions(DB, "events").await.unwrap()[0];
    let new_dir = part.location.strip_prefix(p.lake_root()).unwrap();
    let (big_key, _) = files.iter().find(|f| f.1 == big).unwrap();
    let name = big_key.rsplit('/').next().unwrap();
    assert_eq!(
        e.lake.get(&format!("{new_dir}{name}")).await.unwrap().body,
        e.lake.get(big_key).await.unwrap().body
    );

    // every output but the last reached the target, so nothing is left to do
    let again = Compaction::new(deps(&e))
        .table("events")
        .target_size(target)
        .execute()
        .await
        .unwrap();
    assert_eq!(again.partitions_compacted, 0, "{again:?}");
    // the documents table was not selected
    assert_eq!(files_of(&q.table_stats().await.unwrap(), "documents"), 9);
    // a partition outside the lake is left alone, saying why
    let elsewhere = tarn_catalog::Partition {
        values: vec!["2024-05-07".into()],
        location: "file:///elsewhere/dt=2024-05-07/".into(),
    };
    e.catalog
        .add_partitions(DB, "events", &[elsewhere])
        .await
        .unwrap();
    let r = Compaction::new(deps(&e))
        .table("events")
        .target_size(target)
        .execute()
        .await
        .unwrap();
    assert_eq!(r.skipped.len(), 1, "{r:?}");
    assert!(
        r.skipped[0].reason.contains("is not in the lake")
            && r.skipped[0].partition == "dt=2024-05-07",
        "{r:?}"
    );
    // an unknown table or a bad partition filter is an error, not a silent no-op
    assert!(
        Compaction::new(deps(&e))
            .table("nope")
            .execute()
            .await
            .is_err()
    );
    assert!(Compaction::new(deps(&e)).partition("dt").is_err());
}

/// What a store gave and took, per key: whole bodies read (`get`), bytes read in ranges
/// (`get_range`) and how many such reads, bodies written (`put*`), copies made (`copy`, by
/// target).
#[derive(Debug, Default)]
struct Traffic {
    got: BTreeMap<String, u64>,
    ranged: BTreeMap<String, (u64, usize)>,
    put: BTreeMap<String, u64>,
    copied_to: BTreeMap<String, String>,
}

/// A store that records its [`Traffic`] and passes every call through.
#[derive(Debug)]
struct Counting {
    inner: Arc<dyn ObjectStore>,
    traffic: Arc<Mutex<Traffic>>,
}

impl Counting {
    fn put_bytes(&self, key: &str, n: usize) {
        *self
            .traffic
            .lock()
            .unwrap()
            .put
            .entry(key.into())
            .or_default() += n as u64;
    }
}

#[async_trait::async_trait]
impl ObjectStore for Counting {
    fn bucket(&self) -> &str {
        self.inner.bucket()
    }
    fn url(&self, key: &str) -> String {
        self.inner.url(key)
    }
    async fn put(&self, key: &str, body: bytes::Bytes, m: Metadata) -> tarn_core::Result<()> {
        self.put_bytes(key, body.len());
        self.inner.put(key, body, m).await
    }
    async fn put_if_absent(
        &self,
        key: &str,
        body: bytes::Bytes,
        m: Metadata,
    ) -> tarn_core::Result<bool> {
        self.put_bytes(key, body.len());
        self.inner.put_if_absent(key, body, m).await
    }
    async fn put_if_match(
        &self,
        key: &str,
        body: bytes::Bytes,
        m: Metadata,
        etag: &str,
    ) -> tarn_core::Result<bool> {
        self.put_bytes(key, body.len());
        self.inner.put_if_match(key, body, m, etag).await
    }
    async fn get(&self, key: &str) -> tarn_core::Result<GetResult> {
        let r = self.inner.get(key).await;
        if let Ok(g) = &r {
            *self
                .traffic
                .lock()
                .unwrap()
                .got
                .entry(key.into())
                .or_default() += g.body.len() as u64;
        }
        r
    }
    async fn get_range(
        &self,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> tarn_core::Result<bytes::Bytes> {
        let r = self.inner.get_range(key, range).await;
        if let Ok(b) = &r {
            let mut t = self.traffic.lock().unwrap();
            let e = t.ranged.entry(key.into()).or_default();
            e.0 += b.len() as u64;
            e.1 += 1;
        }
        r
    }
    async fn head(&self, key: &str) -> tarn_core::Result<Option<ObjectInfo>> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> tarn_core::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> tarn_core::Result<()> {
        self.inner.delete(key).await
    }
    async fn delete_if_match(&self, key: &str, etag: &str) -> tarn_core::Result<bool> {
        self.inner.delete_if_match(key, etag).await
    }
    async fn copy(&self, from: &str, to: &str) -> tarn_core::Result<()> {
        self.traffic
            .lock()
            .unwrap()
            .copied_to
            .insert(to.into(), from.into());
        self.inner.copy(from, to).await
    }
}

#[tokio::test]
async fn a_carried_file_is_copied_by_the_store_and_only_its_footer_passes_through_tarn() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    // one big file: four documents of 2,000 records with distinct users, in one batch
    for d in 0..4 {
        let records: Vec<Value> = (0..2000)
            .map(|i| json!({"user": uuid::Uuid::new_v4().to_string(), "n": d * 10_000 + i}))
            .collect();
        land(&e, 6, Value::Array(records)).await;
    }
    p.drain().await.unwrap();
    // then three small ones
    ingest(&e, &p, &[6], 3, 1).await;
    let files: Vec<(String, u64)> = lake_objects(&e)
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("tables/events/") && k.ends_with(".parquet"))
        .collect();
    assert_eq!(files.len(), 4, "{files:?}");
    let (big_key, big) = files.iter().max_by_key(|f| f.1).cloned().unwrap();
    assert!(
        big > 10 * FOOTER_PREFETCH,
        "the carried file ({big} bytes) is much larger than a footer read"
    );
    let q = engine(&e);
    let before = snapshot(&q).await;

    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let t = traffic.clone();
    let wrap = move |inner: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
        Arc::new(Counting {
            inner,
            traffic: t.clone(),
        })
    };
    let report = Compaction::new(deps_with(&e, &wrap))
        .table("events")
        .target_size(big)
        .execute()
        .await
        .unwrap();
    let r = &report.partitions[0];
    assert_eq!((r.files_in, r.files_out), (4, 2), "{report:?}");
    assert_eq!(r.rows, 8000 + 3 * 2, "the carried file's rows are counted");
    assert_eq!(snapshot(&q).await, before);

    let part = &e.catalog.get_partitions(DB, "events").await.unwrap()[0];
    let new_dir = part.location.strip_prefix(p.lake_root()).unwrap();
    let carried = format!("{new_dir}{}", big_key.rsplit('/').next().unwrap());
    let t = traffic.lock().unwrap();
    // its body was never read nor written by tarn: the store copied it
    assert_eq!(t.got.get(&big_key), None, "the carried file was read whole");
    assert_eq!(t.put.get(&carried), None, "the carried file was uploaded");
    assert_eq!(t.copied_to.get(&carried), Some(&big_key));
    // one ranged read of its end gave its footer (tarn's metadata fits in the first read)
    let (ranged, reads) = t.ranged[&big_key];
    assert_eq!((ranged, reads), (FOOTER_PREFETCH, 1), "{:?}", t.ranged);
    // before the port had `copy` and `get_range`, compaction read and wrote the whole file
    println!(
        "carried file of {big} bytes: {ranged} read in {reads} ranged read, 0 written \
         (was {big} read, {big} written)"
    );
    // the merged files were read whole, as their rows are rewritten
    for (k, size) in files.iter().filter(|f| f.0 != big_key) {
        assert_eq!(t.got.get(k), Some(size), "{k}");
    }
    // the local store's copy is a hard link: one file, two names
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(e.lake.path_of(&carried)).unwrap().ino(),
        std::fs::metadata(e.lake.path_of(&big_key)).unwrap().ino()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_query_looping_during_compaction_never_sees_a_duplicate_or_a_missing_row() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    ingest(&e, &p, &[4, 5, 6], 4, 2).await;
    let q = engine(&e);
    let before = snapshot(&q).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let looper = {
        let (q, before, done) = (q.clone(), before.clone(), done.clone());
        tokio::spawn(async move {
            let mut n = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                assert_eq!(snapshot(&q).await, before, "query {n} during compaction");
                n += 1;
                if finished {
                    return n;
                }
            }
        })
    };
    // slow each file down a little, so the queries interleave with every step
    let report = Compaction::new(deps(&e))
        .with_progress(|p| {
            if matches!(p, Progress::FileDone { .. }) {
                std::thread::sleep(Duration::from_millis(15));
            }
        })
        .execute()
        .await
        .unwrap();
    done.store(true, Ordering::SeqCst);
    let queries = looper.await.unwrap();
    assert_eq!(report.partitions_compacted, 6);
    assert!(
        queries >= 5,
        "only {queries} queries ran during the compaction"
    );
    // and through the vacuum too (no grace: a query that had listed old files would fail, but
    // every query here starts after the swap)
    e.clock.advance(chrono::Duration::hours(2));
    Compaction::new(deps(&e)).vacuum().await.unwrap();
    assert_eq!(snapshot(&q).await, before);
    assert_no_orphans(&e).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn documents_ingested_into_the_partition_during_compaction_are_not_lost() {
    let e = env();
    let p = Arc::new(pipeline(&e));
    p.setup_catalog().await.unwrap();
    ingest(&e, &p, &[6], 4, 2).await;
    let q = engine(&e);
    let before = snapshot(&q).await;

    // compaction stops after reading its first input until the test has ingested more
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let reached = Mutex::new(Some(reached_tx));
    let go = Mutex::new(go_rx);
    let job = tokio::spawn(
        Compaction::new(deps(&e))
            .with_progress(move |p| {
                if matches!(p, Progress::FileDone { .. })
                    && let Some(tx) = reached.lock().unwrap().take()
                {
                    tx.send(()).unwrap();
                    go.lock().unwrap().recv().unwrap();
                }
            })
            .execute(),
    );
    reached_rx.await.unwrap();
    let during = ingest(&e, &p, &[6], 1, 3).await;
    go_tx.send(()).unwrap();
    let report = job.await.unwrap().unwrap();
    assert_eq!(report.partitions_compacted, 2);
    assert_eq!(
        report.late_files, 2,
        "the new events file and the new documents file"
    );

    let after = snapshot(&q).await;
    assert_eq!(after.len(), before.len() + 3 * 3);
    for id in &during {
        assert_eq!(
            after
                .iter()
                .filter(|r| r.starts_with("events") && r.contains(id.as_str()))
                .count(),
            2,
            "{id}"
        );
        assert_eq!(
            after
                .iter()
                .filter(|r| r.starts_with("documents") && r.contains(id.as_str()))
                .count(),
            1,
            "{id}"
        );
    }
    assert!(before.iter().all(|r| after.contains(r)));

    // a pipeline running freely while compactions run: every document exactly once
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let wake = Arc::new(tokio::sync::Notify::new());
    let runner = {
        let p = p.clone();
        let wake = wake.clone();
        tokio::spawn(async move { p.run(wake, stop_rx).await.unwrap() })
    };
    let mut ids = during.clone();
    for round in 0..6 {
        for i in 0..3 {
            ids.push(land(&e, 6, json!({"user": format!("r{round}-{i}"), "n": i})).await);
        }
        wake.notify_one();
        Compaction::new(deps(&e))
            .target_size(1 << 30)
            .execute()
            .await
            .unwrap();
    }
    // let the runner commit everything, then stop it
    for _ in 0..200 {
        // (a listing may fail while the runner deletes what it lists: the local store's race)
        if e.ingress.list("id=").await.is_ok_and(|l| l.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_tx.send(true).unwrap();
    runner.await.unwrap();
    Compaction::new(deps(&e)).execute().await.unwrap();
    let last = snapshot(&q).await;
    for id in &ids[during.len()..] {
        assert_eq!(
            last.iter()
                .filter(|r| r.starts_with("events") && r.contains(id.as_str()))
                .count(),
            1,
            "{id}"
        );
        assert_eq!(
            last.iter()
                .filter(|r| r.starts_with("documents") && r.contains(id.as_str()))
                .count(),
            1,
            "{id}"
        );
    }
    assert_eq!(last.len(), after.len() + 18 * 2);
    e.clock.advance(chrono::Duration::hours(2));
    Compaction::new(deps(&e)).vacuum().await.unwrap();
    assert_eq!(snapshot(&q).await, last);
    assert_no_orphans(&e).await;
}

use tarn_core::testing::DyingStore as Dying;

async fn crash_env() -> (Env, Vec<String>) {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    ingest(&e, &p, &[6], 3, 1).await;
    let before = snapshot(&engine(&e)).await;
    (e, before)
}

#[tokio::test]
async fn a_crash_at_any_step_and_a_rerun_lose_and_duplicate_nothing() {
    // count the mutating calls of an undisturbed run (vacuum included: no grace period)
    let total = {
        let (e, _) = crash_env().await;
        let budget = Arc::new(AtomicUsize::new(usize::MAX));
        let wrap = |s: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
            Arc::new(Dying {
                inner: s,
                budget: budget.clone(),
            })
        };
        let r = Compaction::new(deps_with(&e, &wrap))
            .grace_period(Duration::ZERO)
            .execute()
            .await
            .unwrap();
        assert_eq!((r.partitions_compacted, r.vacuum.files_deleted), (2, 6));
        usize::MAX - budget.load(Ordering::SeqCst)
    };
    assert!(total >= 10, "a compaction makes many calls: {total}");
    for crash_after in 0..total {
        let (e, before) = crash_env().await;
        let budget = Arc::new(AtomicUsize::new(crash_after));
        let wrap = |s: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
            Arc::new(Dying {
                inner: s,
                budget: budget.clone(),
            })
        };
        assert!(
            Compaction::new(deps_with(&e, &wrap))
                .grace_period(Duration::ZERO)
                .execute()
                .await
                .is_err(),
            "crash after {crash_after} calls"
        );
        let q = engine(&e);
        // whatever the crash left, readers see every row exactly once
        assert_eq!(
            snapshot(&q).await,
            before,
            "rows right after a crash at call {crash_after}"
        );

        // rerun
        let r: CompactionReport = Compaction::new(deps(&e))
            .grace_period(Duration::ZERO)
            .execute()
            .await
            .unwrap();
        assert_eq!(
            snapshot(&q).await,
            before,
            "rows after a crash at call {crash_after} and a rerun"
        );
        let stats = q.table_stats().await.unwrap();
        assert_eq!(
            (files_of(&stats, "events"), files_of(&stats, "documents")),
            (1, 1),
            "after a crash at call {crash_after}: {r:?}"
        );
        assert!(
            e.state.list("compaction/").await.unwrap().is_empty(),
            "jobs or tombstones left after a crash at call {crash_after}"
        );
        assert_no_orphans(&e).await;
        // and a third run changes nothing
        let objects = lake_objects(&e).await;
        assert_eq!(
            Compaction::new(deps(&e))
                .execute()
                .await
                .unwrap()
                .partitions_compacted,
            0
        );
        assert_eq!(lake_objects(&e).await, objects);
    }
}

#[tokio::test]
async fn a_partition_with_an_uncommitted_ingestion_batch_waits_for_the_pipelines_recovery() {
    // find a crash point of a pipeline flush that leaves an uncommitted batch with a file written
    for budget in 1..40 {
        let e = env();
        let p = pipeline(&e);
        p.setup_catalog().await.unwrap();
        ingest(&e, &p, &[6], 3, 1).await;
        let id = land(&e, 6, json!({"user": "crashed", "n": 1})).await;
        let left = Arc::new(AtomicUsize::new(budget));
        let wrap = |s: Arc<dyn ObjectStore>| -> Arc<dyn ObjectStore> {
            Arc::new(Dying {
                inner: s,
                budget: left.clone(),
            })
        };
        let dying = pipeline_with(&e, e.tables.clone(), &wrap);
        assert!(dying.drain().await.is_err());
        let manifests = e.state.list("batches/").await.unwrap();
        let Some(m) = manifests.first() else { continue };
        let m: Value = serde_json::from_slice(&e.state.get(&m.key).await.unwrap().body).unwrap();
        let written = m["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| e.lake.path_of(f.as_str().unwrap()).exists());
        if m["committed"] == json!(true) || !written {
            continue;
        }
        let report = Compaction::new(deps(&e)).execute().await.unwrap();
        assert!(!report.skipped.is_empty(), "{report:?}");
        assert!(
            report
                .skipped
                .iter()
                .all(|s| s.reason.contains("has not committed")),
            "{report:?}"
        );
        assert!(report.partitions.iter().all(|r| {
            !report
                .skipped
                .iter()
                .any(|s| s.table == r.table && s.partition == r.partition)
        }));

        // the pipeline recovers, then compaction goes ahead: the document's rows exactly once
        p.drain().await.unwrap();
        let report = Compaction::new(deps(&e)).execute().await.unwrap();
        assert!(report.skipped.is_empty(), "{report:?}");
        let rows = snapshot(&engine(&e)).await;
        assert_eq!(
            rows.iter()
                .filter(|r| r.starts_with("events") && r.contains(&id))
                .count(),
            1
        );
        assert_eq!(
            rows.iter()
                .filter(|r| r.starts_with("documents") && r.contains(&id))
                .count(),
            1
        );
        assert_eq!(rows.len(), 3 * 3 + 1 + 1);
        return;
    }
    panic!("no crash point left an uncommitted batch with a written file");
}

#[tokio::test]
async fn an_added_optional_property_reads_as_null_in_older_files_and_survives_compaction() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    let old = ingest(&e, &p, &[6], 2, 1).await;

    // v2 adds an optional property: the catalog gains the column
    let v2 = events_spec(
        json!({"user": {"type": "string"}, "n": {"type": "integer"}, "note": {"type": "string"}}),
    );
    let p2 = pipeline_with(&e, vec![v2.clone()], &|s| s);
    p2.setup_catalog().await.unwrap();
    let def = e.catalog.get_table(DB, "events").await.unwrap().unwrap();
    assert!(
        def.columns
            .iter()
            .any(|c| c.name == "note" && c.data_type == "string")
    );
    let new = land(&e, 6, json!({"user": "v2", "n": 7, "note": "hello"})).await;
    p2.drain().await.unwrap();

    let q = engine(&e);
    let notes = q
        .query("SELECT _id, note FROM events ORDER BY _id, note")
        .await
        .unwrap()
        .rows;
    for row in &notes {
        let expected = if row[0] == json!(new) {
            json!("hello")
        } else {
            Value::Null
        };
        assert_eq!(row[1], expected, "{row:?}");
    }
    assert_eq!(notes.len(), 2 * 2 + 1);
    assert!(notes.iter().any(|r| r[0] == json!(old[0])));

    // compaction merges files with and without the column
    let before = snapshot(&q).await;
    let r = Compaction::new(deps(&e))
        .table("events")
        .execute()
        .await
        .unwrap();
    assert_eq!((r.partitions_compacted, r.files_out), (1, 1), "{r:?}");
    assert_eq!(snapshot(&q).await, before);

    // an incompatible change is refused at start, saying what to do, and changes nothing
    let v3 = events_spec(
        json!({"user": {"type": "string"}, "n": {"type": "string"}, "note": {"type": "string"}}),
    );
    let err = pipeline_with(&e, vec![v3], &|s| s)
        .setup_catalog()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("column n changed from bigint to string")
            && err.contains("create a new table"),
        "{err}"
    );
    assert_eq!(
        e.catalog.get_table(DB, "events").await.unwrap().unwrap(),
        def
    );
    let v4 = events_spec(
        json!({"user": {"type": "string"}, "n": {"type": "integer"}, "note": {"type": "string"}, "must": {"type": "string"}}),
    );
    let mut v4_value = v4.schema.clone();
    v4_value["required"] = json!(["user", "must"]);
    let v4 = TableSpec::from_value(Path::new("events.json"), v4_value).unwrap();
    let err = pipeline_with(&e, vec![v4], &|s| s)
        .setup_catalog()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("new property must is required"), "{err}");
}

#[tokio::test]
async fn the_serve_schedule_compacts_until_shutdown() {
    let e = env();
    let p = pipeline(&e);
    p.setup_catalog().await.unwrap();
    ingest(&e, &p, &[6], 3, 1).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    let d = deps(&e);
    let schedule = tokio::spawn(async move {
        tarn_lake::compact::run_every(Duration::from_millis(20), rx, move || {
            Compaction::new(d.clone())
        })
        .await
    });
    let mut compacted = false;
    for _ in 0..6000 {
        let stats = engine(&e).table_stats().await.unwrap();
        if (files_of(&stats, "events"), files_of(&stats, "documents")) == (1, 1) {
            compacted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        compacted,
        "the schedule compacted the 3 files of events (and of documents) into 1"
    );
    tx.send(true).unwrap();
    // it stops; the run that compacted may be cut short after its commit (the shutdown wins the
    // race with its cleanup), so the count of finished runs may be 0
    tokio::time::timeout(Duration::from_secs(30), schedule)
        .await
        .expect("the schedule stops on shutdown")
        .unwrap();
    let stats = engine(&e).table_stats().await.unwrap();
    assert_eq!(
        (files_of(&stats, "events"), files_of(&stats, "documents")),
        (1, 1)
    );
}
