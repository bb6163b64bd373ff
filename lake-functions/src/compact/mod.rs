//! Compaction: many small Parquet files of a partition become few big ones, without a reader
//! ever seeing a row twice or missing one.
//!
//! ```no_run
//! # async fn example(deps: tarn_lake::Lake) -> tarn_lake::Result<()> {
//! use tarn_lake::compact::Compaction;
//! let report = Compaction::new(deps)
//!     .table("events")                // default: every table of the database
//!     .partition("dt=2024-05-06")?    // default: every partition
//!     .target_size(128 << 20)
//!     .with_progress(|p| eprintln!("{p:?}"))
//!     .execute()
//!     .await?;
//! println!("{}", serde_json::to_string(&report).unwrap());
//! # Ok(())
//! # }
//! ```
//!
//! ## Layout
//! A partition's files live under its catalog location. The pipeline first registers it at its
//! Hive directory `tables/<t>/<k=v>/`; compaction writes the new files under
//! `tables/<t>/<k=v>/_compacted/<job-uuid>/` and then points the partition there. Readers list a
//! location recursively but skip path segments starting with `_` or `.` *below* the location, so
//! the Hive directory never shows the compacted files, and each `_compacted/<job>/` location
//! shows exactly its own files. A later compaction writes a sibling `_compacted/<job2>/`.
//!
//! ## Steps of one partition (each crash point is covered by a test)
//! 1. list the visible files under the current location, [`plan::plan_partition`];
//! 2. record the job (`compaction/jobs/<job>.json` in the state store);
//! 3. stream the small files' rows, file by file, batch by batch, into an `ArrowWriter`, rolling
//!    to a new output once the bytes written reach the target; copy the big files as they are
//!    (the store's own copy: their bytes never pass through tarn, only their footers, read for
//!    their row counts);
//! 4. under the lake's write lock (which every pipeline flush holds too): check the location has
//!    not moved, list the old location again and copy files that arrived since step 1 ("late
//!    files"), swap the partition's location in the catalog — the commit —, write a tombstone
//!    (`compaction/tombstones/<job>.json`: the old files and the time after which they may go),
//!    remove the job record;
//! 5. [`Compaction::vacuum`] (also run at the end of every `execute`) deletes the old files of
//!    tombstones whose grace period is over, never a file under a partition's current location.
//!
//! A run holds the compaction lock throughout and begins by finishing what a crashed run left:
//! a job whose partition already points at its new location gets its tombstone; any other job's
//! outputs (never visible) are deleted.
//!
//! ## Ingestion during compaction
//! The pipeline writes each batch into the partition's *current catalog location* and holds the
//! write lock from its manifest to its commit (`Pipeline::with_lake_lock`). A file committed
//! before compaction's step 4 is under the old location and is copied as a late file; a file
//! committed after it goes to the new location. A batch that crashed before its commit (its
//! manifest still says uncommitted) makes compaction skip the partition until the pipeline's
//! recovery has finished it.
//!
//! ## Sorting
//! A table that declares `sort` columns gets its merged rows sorted by them (ascending, nulls
//! last) in runs of up to `writer::SORT_RUN_BYTES`, each run its own row groups; the files that
//! are carried over keep their order.
//!
//! ## Files
//! This module holds the [`Compaction`] builder and its run; [`plan`] decides what a partition
//! needs, [`adapt`] reads older files into the table's current schema, `writer` rolls the merged
//! output files, [`footer`] reads a carried file's metadata with ranged reads, `pending` finds the files of uncommitted batches, `vacuum` keeps and deletes the
//! replaced files ([`Tombstone`]), `schedule` runs compaction periodically
//! ([`run_every`]).

pub mod adapt;
mod debt;
pub mod footer;
mod pending;
pub mod plan;
mod schedule;
mod vacuum;
pub(crate) mod writer;

pub use debt::{LAST_RUN_KEY, LastRun, SmallFiles, last_run};
pub use plan::{DEFAULT_TARGET_SIZE, FileEntry, NoPlan, PartitionPlan, PlanConfig, plan_partition};
pub use schedule::{every, run_every};
pub use vacuum::{TOMBSTONES_PREFIX, Tombstone, VacuumReport};

use crate::error::{LakeError, Result};
use crate::lake::Lake;
use crate::lock::{COMPACTION_LOCK, WRITE_LOCK};
use crate::normalize::{bloom_columns, file_schema};
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use pending::pending_batch;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn_catalog::{ErrorKind as CatalogErrorKind, Partition, TableDef};
use tracing::{info, warn};
use writer::{FileLayout, Outputs, Written};

/// Where job records live in the state store.
pub const JOBS_PREFIX: &str = "compaction/jobs/";
/// The directory, under a partition's Hive directory, that holds compacted generations.
pub const COMPACTED_DIR: &str = "_compacted";
/// The default time old files are kept after a swap: longer than any query runs.
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(60 * 60);

/// Progress events, in order: one `Planned`, then per partition `PartitionStarted`, `FileDone`
/// per input file, and `PartitionCommitted` or `PartitionSkipped`. A progress bar's length is
/// `Planned.bytes`; each `FileDone.bytes` advances it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Planned {
        partitions: usize,
        files: usize,
        bytes: u64,
    },
    PartitionStarted {
        table: String,
        partition: String,
        files: usize,
        bytes: u64,
    },
    FileDone {
        table: String,
        partition: String,
        key: String,
        bytes: u64,
    },
    PartitionCommitted {
        table: String,
        partition: String,
        files_in: usize,
        files_out: usize,
    },
    PartitionSkipped {
        table: String,
        partition: String,
        reason: String,
    },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// One compacted partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionReport {
    pub table: String,
    /// `k=v/k=v`
    pub partition: String,
    pub old_location: String,
    pub new_location: String,
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub rows: u64,
    /// files committed by ingestion while the partition was being compacted
    pub late_files: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPartition {
    pub table: String,
    pub partition: String,
    pub reason: String,
}

/// The summary of one run (serializable for `--format json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CompactionReport {
    /// partitions looked at (after the table and partition filters)
    pub partitions_examined: usize,
    pub partitions_compacted: usize,
    pub files_in: usize,
    pub files_out: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// rows in the compacted partitions
    pub rows: u64,
    pub late_files: usize,
    pub partitions: Vec<PartitionReport>,
    /// partitions that needed compaction but were left alone, with why
    pub skipped: Vec<SkippedPartition>,
    /// jobs a crashed run had left, finished or cleaned up
    pub recovered_jobs: usize,
    pub vacuum: VacuumReport,
    pub elapsed_ms: u64,
}

/// A compaction job (also an erasure's rewrite of a partition), recorded before any output is
/// written.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Job {
    pub(crate) id: String,
    pub(crate) table: String,
    pub(crate) values: Vec<String>,
    pub(crate) old_location: String,
    pub(crate) new_location: String,
    pub(crate) started: DateTime<Utc>,
}

/// The builder of a compaction run.
pub struct Compaction {
    deps: Lake,
    table: Option<String>,
    partition: Vec<(String, String)>,
    plan: PlanConfig,
    grace: Duration,
    vacuum: bool,
    progress: Option<ProgressFn>,
    metrics: tarn_core::Metrics,
}

impl std::fmt::Debug for Compaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compaction")
            .field("table", &self.table)
            .field("partition", &self.partition)
            .field("plan", &self.plan)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// Parses `k=v/k=v` (as `tarn compact --partition` takes it).
pub fn parse_partition_filter(spec: &str) -> Result<Vec<(String, String)>> {
    spec.split('/')
        .filter(|s| !s.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(LakeError::Pipeline(format!(
                "partition {spec:?}: expected KEY=VALUE[/KEY=VALUE...], e.g. dt=2024-05-06"
            ))),
        })
        .collect()
}

impl Compaction {
    pub fn new(deps: Lake) -> Self {
        Self {
            deps,
            table: None,
            partition: vec![],
            plan: PlanConfig::default(),
            grace: DEFAULT_GRACE_PERIOD,
            vacuum: true,
            progress: None,
            metrics: tarn_core::Metrics::default(),
        }
    }

    /// Records runs, their result and the small files they leave to `metrics`.
    pub fn with_metrics(mut self, metrics: tarn_core::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Only this table.
    pub fn table(mut self, table: impl Into<String>) -> Self {
        self.table = Some(table.into());
        self
    }

    /// Only partitions with these values, `k=v/k=v` (any subset of the keys; a table without
    /// one of the keys has no matching partition).
    pub fn partition(mut self, spec: &str) -> Result<Self> {
        self.partition = parse_partition_filter(spec)?;
        Ok(self)
    }

    /// The size files are merged toward, in bytes (default 128 MiB).
    pub fn target_size(mut self, bytes: u64) -> Self {
        self.plan.target_size = bytes.max(1);
        self
    }

    /// A partition is compacted when at least this many of its files are below the target
    /// (default 2).
    pub fn min_small_files(mut self, n: usize) -> Self {
        self.plan.min_small_files = n.max(2);
        self
    }

    /// How long replaced files are kept for queries that may still read them (default 1 hour).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Whether `execute` ends with [`Self::vacuum`] (default true).
    pub fn with_vacuum(mut self, on: bool) -> Self {
        self.vacuum = on;
        self
    }

    pub fn with_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    fn emit(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }

    pub(crate) fn lake_root(&self) -> String {
        let mut root = self.deps.lake.url("");
        if !root.ends_with('/') {
            root.push('/');
        }
        root
    }

    pub(crate) fn key_of(&self, location: &str) -> Result<String> {
        let root = self.lake_root();
        let key = location.strip_prefix(&root).ok_or_else(|| {
            LakeError::Pipeline(format!("location {location} is not in the lake {root}"))
        })?;
        Ok(if key.is_empty() || key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        })
    }

    /// Recovers crashed jobs, compacts every selected partition that needs it, then vacuums.
    /// A successful run is recorded ([`last_run`]) and measured with the small files it left.
    pub async fn execute(self) -> Result<CompactionReport> {
        let result = self.run().await;
        self.after_run(&result).await;
        result
    }

    async fn run(&self) -> Result<CompactionReport> {
        let started = Instant::now();
        let _run = self.deps.lock.acquire(COMPACTION_LOCK).await?;
        let mut report = CompactionReport {
            recovered_jobs: self.recover().await?,
            ..Default::default()
        };

        // plan everything first, so the progress bar knows its length
        let mut todo: Vec<(TableDef, Partition, PartitionPlan)> = Vec::new();
        let uncommitted = self.deps.pending_files().await?;
        for def in self.tables().await? {
            for p in self.partitions(&def).await? {
                report.partitions_examined += 1;
                if let Err(e) = self.key_of(&p.location) {
                    self.skip(&mut report, &def, &p.values, e.to_string());
                    continue;
                }
                let files = self.visible_files(&p.location).await?;
                let Ok(plan) = plan_partition(&files, &self.plan) else {
                    continue;
                };
                if let Some(reason) = pending_batch(&files, &uncommitted) {
                    self.skip(&mut report, &def, &p.values, reason);
                    continue;
                }
                todo.push((def.clone(), p, plan));
            }
        }
        self.emit(Progress::Planned {
            partitions: todo.len(),
            files: todo.iter().map(|t| t.2.files_in()).sum(),
            bytes: todo.iter().map(|t| t.2.bytes_in()).sum(),
        });
        for (def, p, plan) in todo {
            match self.compact_partition(&def, &p, &plan).await? {
                Ok(r) => {
                    report.partitions_compacted += 1;
                    report.files_in += r.files_in;
                    report.files_out += r.files_out;
                    report.bytes_in += r.bytes_in;
                    report.bytes_out += r.bytes_out;
                    report.rows += r.rows;
                    report.late_files += r.late_files;
                    report.partitions.push(r);
                }
                Err(reason) => self.skip(&mut report, &def, &p.values, reason),
            }
        }
        if self.vacuum {
            report.vacuum = self.vacuum_now().await?;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        info!(
            partitions = report.partitions_compacted,
            files_in = report.files_in,
            files_out = report.files_out,
            skipped = report.skipped.len(),
            "compaction done"
        );
        self.record_run(&report).await?;
        Ok(report)
    }

    fn skip(
        &self,
        report: &mut CompactionReport,
        def: &TableDef,
        values: &[String],
        reason: String,
    ) {
        let partition = def.partition_path(values);
        warn!(table = %def.name, %partition, %reason, "partition not compacted");
        self.emit(Progress::PartitionSkipped {
            table: def.name.clone(),
            partition: partition.clone(),
            reason: reason.clone(),
        });
        report.skipped.push(SkippedPartition {
            table: def.name.clone(),
            partition,
            reason,
        });
    }

    /// The partitions of `def` the partition filter selects.
    async fn partitions(&self, def: &TableDef) -> Result<Vec<Partition>> {
        let parts = self
            .deps
            .catalog
            .get_partitions(&self.deps.database, &def.name)
            .await?;
        Ok(parts
            .into_iter()
            .filter(|p| self.selected(def, p))
            .collect())
    }

    pub(crate) async fn tables(&self) -> Result<Vec<TableDef>> {
        let db = &self.deps.database;
        match &self.table {
            Some(t) => match self.deps.catalog.get_table(db, t).await? {
                Some(def) => Ok(vec![def]),
                None => Err(LakeError::Catalog(tarn_catalog::CatalogError::NotFound {
                    what: "table",
                    name: format!("{db}.{t}"),
                })),
            },
            None => match self.deps.catalog.list_tables(db).await {
                Ok(mut defs) => {
                    defs.sort_by(|a, b| a.name.cmp(&b.name));
                    Ok(defs
                        .into_iter()
                        .filter(|d| !d.partition_keys.is_empty())
                        .collect())
                }
                Err(e) if e.kind() == CatalogErrorKind::NotFound => Ok(vec![]),
                Err(e) => Err(e.into()),
            },
        }
    }

    fn selected(&self, def: &TableDef, p: &Partition) -> bool {
        self.partition.iter().all(|(k, v)| {
            def.partition_keys
                .iter()
                .position(|c| &c.name == k)
                .is_some_and(|i| p.values.get(i) == Some(v))
        })
    }

    /// The files a reader sees under `location`: `.parquet`, not empty, no path segment below
    /// the location starting with `_` or `.` (the query engine's rule).
    pub(crate) async fn visible_files(&self, location: &str) -> Result<Vec<FileEntry>> {
        let prefix = self.key_of(location)?;
        let objects = self.deps.lake.list(&prefix).await?;
        Ok(objects
            .into_iter()
            .filter(|o| {
                let rel = &o.key[prefix.len()..];
                o.size > 0
                    && rel.ends_with(".parquet")
                    && rel
                        .split('/')
                        .all(|s| !(s.starts_with('_') || s.starts_with('.')))
            })
            .map(|o| FileEntry::new(o.key, o.size))
            .collect())
    }

    pub(crate) async fn put_json<T: Serialize>(&self, key: &str, value: &T) -> Result<()> {
        let body = serde_json::to_vec_pretty(value).expect("serializes");
        self.deps
            .state
            .put(key, body.into(), Default::default())
            .await?;
        Ok(())
    }

    pub(crate) async fn location_of(
        &self,
        table: &str,
        values: &[String],
    ) -> Result<Option<String>> {
        let parts = match self
            .deps
            .catalog
            .get_partitions(&self.deps.database, table)
            .await
        {
            Ok(p) => p,
            Err(e) if e.kind() == CatalogErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        Ok(parts
            .into_iter()
            .find(|p| p.values == values)
            .map(|p| p.location))
    }

    /// Finishes or undoes the jobs a crashed run left. Returns how many there were.
    pub(crate) async fn recover(&self) -> Result<usize> {
        let jobs = self.deps.state.list(JOBS_PREFIX).await?;
        for obj in &jobs {
            let job: Job = match self.deps.state.get(&obj.key).await {
                Ok(b) => serde_json::from_slice(&b.body).map_err(|e| {
                    LakeError::Pipeline(format!("compaction job {} is unreadable: {e}", obj.key))
                })?,
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let current = self.location_of(&job.table, &job.values).await?;
            if current.as_deref() == Some(job.new_location.as_str()) {
                // committed: the tombstone may be missing. Nothing writes to the old location
                // after the swap, so its visible files are exactly the replaced ones.
                let key = format!("{TOMBSTONES_PREFIX}{}.json", job.id);
                if self.deps.state.head(&key).await?.is_none() {
                    let keys = self
                        .visible_files(&job.old_location)
                        .await?
                        .into_iter()
                        .map(|f| f.key)
                        .collect();
                    self.put_tombstone(&job, keys).await?;
                }
                info!(job = %job.id, table = %job.table, "finished a committed compaction job");
            } else {
                // never committed: its outputs were never visible
                let prefix = self.key_of(&job.new_location)?;
                for o in self.deps.lake.list(&prefix).await? {
                    self.deps.lake.delete(&o.key).await?;
                }
                info!(job = %job.id, table = %job.table, "removed the outputs of an uncommitted compaction job");
            }
            self.deps.state.delete(&obj.key).await?;
        }
        Ok(jobs.len())
    }

    /// Compacts one partition. The outer error is a failure worth retrying (the job record
    /// lets the next run clean up); the inner one a reason to leave this partition alone.
    async fn compact_partition(
        &self,
        def: &TableDef,
        p: &Partition,
        plan: &PartitionPlan,
    ) -> Result<std::result::Result<PartitionReport, String>> {
        let partition = def.partition_path(&p.values);
        let (job, old_key, new_key) = self.new_job(def, p)?;
        let id = job.id.clone();
        self.emit(Progress::PartitionStarted {
            table: def.name.clone(),
            partition: partition.clone(),
            files: plan.files_in(),
            bytes: plan.bytes_in(),
        });
        self.put_json(&format!("{JOBS_PREFIX}{id}.json"), &job)
            .await?;

        match self
            .write_outputs(def, &partition, plan, &old_key, &new_key, &id)
            .await?
        {
            Ok(written) => {
                self.commit(def, &partition, plan, &job, &old_key, &new_key, written)
                    .await
            }
            Err(reason) => {
                self.abandon(&job, &new_key).await?;
                Ok(Err(reason))
            }
        }
    }

    /// A new job for partition `p` of `def`, with the keys of its old and new locations
    /// (`tables/<t>/<k=v>/_compacted/<job>/`).
    pub(crate) fn new_job(&self, def: &TableDef, p: &Partition) -> Result<(Job, String, String)> {
        let partition = def.partition_path(&p.values);
        let id = uuid::Uuid::new_v4().to_string();
        let base = format!("{}{partition}/", self.key_of(&def.location)?);
        let new_key = format!("{base}{COMPACTED_DIR}/{id}/");
        let old_key = self.key_of(&p.location)?;
        let job = Job {
            id,
            table: def.name.clone(),
            values: p.values.clone(),
            old_location: p.location.clone(),
            new_location: format!("{}{new_key}", self.lake_root()),
            started: self.deps.clock.now(),
        };
        Ok((job, old_key, new_key))
    }

    /// The commit of a job, under the write lock: the partition's location swapped to the new
    /// one, the replaced files (`old_keys`) tombstoned, the job record removed.
    pub(crate) async fn swap(&self, job: &Job, old_keys: Vec<String>) -> Result<()> {
        self.deps
            .catalog
            .update_partition(
                &self.deps.database,
                &job.table,
                &job.values,
                &job.new_location,
            )
            .await?;
        self.put_tombstone(job, old_keys).await?;
        self.deps
            .state
            .delete(&format!("{JOBS_PREFIX}{}.json", job.id))
            .await?;
        Ok(())
    }

    /// The rolling writer of a table's merged files, named `<stem>-00000.parquet`, ...: rows
    /// sorted by the table's `sort` columns, bloom filters on its `bloom` columns.
    pub(crate) fn outputs(&self, def: &TableDef, stem: &str) -> Outputs {
        let spec = self.deps.layout.specs.get(&def.name);
        let layout = FileLayout {
            sort: spec.map(|s| s.sort.clone()).unwrap_or_default(),
            bloom: bloom_columns(spec, &def.name),
        };
        Outputs::new(
            self.deps.lake.clone(),
            file_schema(def),
            self.plan.target_size,
            stem.to_string(),
            layout,
        )
    }

    /// Removes an uncommitted job's outputs and record.
    pub(crate) async fn abandon(&self, job: &Job, new_key: &str) -> Result<()> {
        for o in self.deps.lake.list(new_key).await? {
            self.deps.lake.delete(&o.key).await?;
        }
        self.deps
            .state
            .delete(&format!("{JOBS_PREFIX}{}.json", job.id))
            .await?;
        Ok(())
    }

    async fn write_outputs(
        &self,
        def: &TableDef,
        partition: &str,
        plan: &PartitionPlan,
        old_key: &str,
        new_key: &str,
        id: &str,
    ) -> Result<std::result::Result<Written, String>> {
        let schema = file_schema(def);
        let mut out = self.outputs(def, &format!("{new_key}c-{}", &id[..8]));
        for f in &plan.merge {
            let body = self.deps.lake.get(&f.key).await?.body;
            let reader = match ParquetRecordBatchReaderBuilder::try_new(body)
                .and_then(|b| b.with_batch_size(8192).build())
            {
                Ok(r) => r,
                Err(e) => return Ok(Err(format!("{} is not readable Parquet: {e}", f.key))),
            };
            for batch in reader {
                let batch = match batch {
                    Ok(b) => b,
                    Err(e) => return Ok(Err(format!("{} is not readable Parquet: {e}", f.key))),
                };
                let batch = match adapt::adapt_batch(&batch, &schema) {
                    Ok(b) => b,
                    Err(e) => return Ok(Err(format!("{}: {e}", f.key))),
                };
                out.write(&batch).await?;
            }
            self.emit(Progress::FileDone {
                table: def.name.clone(),
                partition: partition.to_string(),
                key: f.key.clone(),
                bytes: f.size,
            });
        }
        out.finish().await?;
        let mut written = Written {
            files: out.files,
            bytes: out.bytes,
            rows: out.rows,
            carried_rows: 0,
        };
        for f in &plan.carry {
            let rows = self.copy_into(f, old_key, new_key).await?;
            written.files += 1;
            written.bytes += f.size;
            written.carried_rows += rows;
            self.emit(Progress::FileDone {
                table: def.name.clone(),
                partition: partition.to_string(),
                key: f.key.clone(),
                bytes: f.size,
            });
        }
        Ok(Ok(written))
    }

    /// Copies a file from under the old location to the same relative path under the new one,
    /// with the store's own copy (S3 CopyObject, a hard link locally: body and metadata, never
    /// through tarn); returns its row count, from its footer (read with ranged reads).
    pub(crate) async fn copy_into(
        &self,
        f: &FileEntry,
        old_key: &str,
        new_key: &str,
    ) -> Result<u64> {
        let rel = f
            .key
            .strip_prefix(old_key)
            .ok_or_else(|| LakeError::Pipeline(format!("{} is not under {old_key}", f.key)))?;
        let rows = footer::read_metadata(self.deps.lake.as_ref(), &f.key, f.size)
            .await?
            .file_metadata()
            .num_rows() as u64;
        self.deps
            .lake
            .copy(&f.key, &format!("{new_key}{rel}"))
            .await?;
        Ok(rows)
    }

    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        def: &TableDef,
        partition: &str,
        plan: &PartitionPlan,
        job: &Job,
        old_key: &str,
        new_key: &str,
        written: Written,
    ) -> Result<std::result::Result<PartitionReport, String>> {
        let _write = self.deps.lock.acquire(WRITE_LOCK).await?;
        // under the lock no flush is running: what is uncommitted now crashed
        let current = self.location_of(&def.name, &job.values).await?;
        if current.as_deref() != Some(job.old_location.as_str()) {
            self.abandon(job, new_key).await?;
            return Ok(Err(
                "the partition's location changed while it was being compacted".into(),
            ));
        }
        let now_files = self.visible_files(&job.old_location).await?;
        let uncommitted = self.deps.pending_files().await?;
        if let Some(reason) = pending_batch(&now_files, &uncommitted) {
            self.abandon(job, new_key).await?;
            return Ok(Err(reason));
        }
        let planned: BTreeSet<&str> = plan
            .merge
            .iter()
            .chain(&plan.carry)
            .map(|f| f.key.as_str())
            .collect();
        let present: BTreeSet<&str> = now_files.iter().map(|f| f.key.as_str()).collect();
        if let Some(gone) = planned.iter().find(|k| !present.contains(*k)) {
            self.abandon(job, new_key).await?;
            return Ok(Err(format!(
                "{gone} disappeared while the partition was being compacted"
            )));
        }
        let late: Vec<&FileEntry> = now_files
            .iter()
            .filter(|f| !planned.contains(f.key.as_str()))
            .collect();
        let mut written = written;
        for f in &late {
            written.carried_rows += self.copy_into(f, old_key, new_key).await?;
            written.files += 1;
            written.bytes += f.size;
        }

        // the commit, only while the write lock is still ours (a lost lease stops here)
        _write.ensure_held().await?;
        let keys: Vec<String> = now_files.iter().map(|f| f.key.clone()).collect();
        self.swap(job, keys).await?;
        drop(_write);

        let r = PartitionReport {
            table: def.name.clone(),
            partition: partition.to_string(),
            old_location: job.old_location.clone(),
            new_location: job.new_location.clone(),
            files_in: now_files.len(),
            files_out: written.files,
            bytes_in: now_files.iter().map(|f| f.size).sum(),
            bytes_out: written.bytes,
            rows: written.rows + written.carried_rows,
            late_files: late.len(),
        };
        info!(table = %r.table, partition = %r.partition, files_in = r.files_in, files_out = r.files_out, late = r.late_files, "partition compacted");
        self.emit(Progress::PartitionCommitted {
            table: r.table.clone(),
            partition: r.partition.clone(),
            files_in: r.files_in,
            files_out: r.files_out,
        });
        Ok(Ok(r))
    }
}

/// Parses a size as `tarn compact --target-size` takes it: `134217728`, `128MiB`, `128M`,
/// `1GiB`, `512KiB`, `100MB` (powers of 1000 for KB/MB/GB, of 1024 for KiB/MiB/GiB and K/M/G).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || {
        LakeError::Pipeline(format!(
            "size {s:?}: expected a number with an optional unit, e.g. 128MiB"
        ))
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return Err(bad()),
    };
    let bytes = n * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("134217728").unwrap(), 128 << 20);
        assert_eq!(parse_size("128MiB").unwrap(), 128 << 20);
        assert_eq!(parse_size("128M").unwrap(), 128 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("0.5 KiB").unwrap(), 512);
        assert_eq!(parse_size("100MB").unwrap(), 100_000_000);
        for bad in ["", "MiB", "12 parsecs", "0", "-1", "1e99GB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn partition_filters_parse() {
        assert_eq!(
            parse_partition_filter("table_name=events/dt=2024-05-06").unwrap(),
            [
                ("table_name".to_string(), "events".to_string()),
                ("dt".to_string(), "2024-05-06".to_string())
            ]
        );
        assert!(parse_partition_filter("dt").is_err());
        assert!(parse_partition_filter("=x").is_err());
    }
}
