//! Erasure: a document, a producer's documents, or the rows of a table matching a predicate,
//! removed from every place they live, crash-safely, with a record an auditor reads.
//!
//! ```no_run
//! # async fn example(lake: tarn_lake::Lake) -> tarn_lake::Result<()> {
//! use tarn_lake::erase::{Erasure, Selector};
//! let report = Erasure::new(lake, Selector::Id { id: "0b7c...".into() })
//!     .reason("gdpr request 42")
//!     .by("officer")
//!     .execute()
//!     .await?;
//! println!("{} rows, {} objects", report.rows, report.objects.len());
//! # Ok(()) }
//! ```
//!
//! ## Steps (a run holds the compaction lock throughout, so it never races a compaction)
//! 1. finish what a crashed compaction or erasure left: compaction's job recovery, then every
//!    erasure record not marked finished is applied again (step 4);
//! 2. the plan ([`plan`]): the documents the selector names (their status records and the
//!    landed objects not processed yet), the rows per Parquet file, the objects that exist.
//!    `dry_run` stops here; an empty plan changes nothing (a second run of the same erasure);
//! 3. the erasure record (`erasures/<id>.json` in the state store): the selector, who, why and
//!    the plan, written before anything changes;
//! 4. under the lake's write lock (which every ingestion commit holds; a batch that committed
//!    a named document is waited for until its status records are written):
//!    - each named document's status record becomes its erased row (the pipeline never
//!      commits a document that has one, so a landed copy in flight is dropped);
//!    - each table partition holding a matching row is rewritten through compaction's path:
//!      a job record, the files with matches rewritten without them, the other files copied,
//!      the location swap, the old files tombstoned ([`crate::compact`]); a `documents`
//!      partition gets the erased rows in place of the old ones;
//!    - the objects of the plan are deleted (landed object, sanitized object, quarantine copy,
//!      hand-offs);
//! 5. the record marked finished, with the time after which the vacuum has removed the old
//!    files ([`status`]).
//!
//! Every step is idempotent: a crash anywhere is finished by the next run (step 1), and a
//! rewrite finds nothing left to remove in a partition it already swapped.

mod audit;
mod filter;
pub mod plan;
mod record;
mod schedule;
#[cfg(any(test, feature = "testsuite"))]
pub mod testsuite;

pub use audit::{ERASE_COMPONENT, erasure_event};
pub use filter::{RowFilter, RowPredicate};
pub use plan::{
    ErasedDoc, ErasurePlan, FileMatch, LandedDoc, ObjectRef, Selector, StoreName,
    candidate_objects, erased_row, select_documents,
};
pub use record::{ERASURES_PREFIX, ErasureRecord, ErasureStatus, status};
pub use schedule::{retention_selectors, run_retention, run_retention_every};

use crate::commit::manifest;
use crate::commit::revision::history_prefix;
use crate::compact::{Compaction, FileEntry, JOBS_PREFIX, adapt};
use crate::error::{LakeError, Result};
use crate::lake::Lake;
use crate::lock::{COMPACTION_LOCK, LockGuard, WRITE_LOCK};
use crate::normalize::{documents_batch, file_schema};
use arrow::datatypes::SchemaRef;
use chrono::{DateTime, Utc};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tarn_catalog::schemas::DOCUMENTS_TABLE;
use tarn_catalog::{ErrorKind as CatalogErrorKind, Partition, TableDef};
use tarn_core::document::{id_from_ingress_key, meta, status_key};
use tarn_core::{DocumentRow, ObjectStore};
use tracing::info;

/// Compiles a SQL predicate for batches of a table's file schema (the embedded engine's, for
/// `tarn erase --where`).
pub type PredicateCompiler =
    Arc<dyn Fn(&str, &SchemaRef) -> std::result::Result<RowPredicate, String> + Send + Sync>;

/// Progress events: one `Planned`, then `FileDone` per file scanned for the rewrite and
/// `ObjectDeleted` per object. A progress bar's length is `Planned.steps`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Progress {
    Resumed {
        id: String,
    },
    Planned {
        documents: usize,
        files: usize,
        objects: usize,
        steps: usize,
    },
    FileDone {
        table: String,
        key: String,
    },
    ObjectDeleted {
        store: String,
        key: String,
    },
}

pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// What a run did (or, with `dry_run`, would do). Serializable for `--format json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EraseReport {
    /// the erasure record's id; `None` when nothing was changed (a dry run, an empty plan)
    pub id: Option<String>,
    pub dry_run: bool,
    pub selector: Selector,
    pub reason: String,
    pub by: String,
    pub documents: Vec<ErasedDoc>,
    /// the files holding rows that go, with how many
    pub files: Vec<FileMatch>,
    pub objects: Vec<ObjectRef>,
    /// table rows removed (`documents` rows are replaced, not counted)
    pub rows: u64,
    /// partitions rewritten and swapped
    pub partitions: usize,
    /// erasure records a crashed run had left, finished by this one
    pub resumed: Vec<String>,
    /// when the vacuum may remove the replaced files, and with them the last bytes
    pub bytes_gone_after: Option<DateTime<Utc>>,
    pub elapsed_ms: u64,
    /// the records this run finished (resumed ones first), for the trail ([`erasure_event`])
    #[serde(skip)]
    pub finished: Vec<ErasureRecord>,
}

/// The builder of an erasure run.
pub struct Erasure {
    lake: Lake,
    selector: Selector,
    reason: String,
    by: String,
    grace: Duration,
    dry_run: bool,
    compiler: Option<PredicateCompiler>,
    progress: Option<ProgressFn>,
    /// how long a committed batch holding a named document is waited for before its status
    /// records are written here (its process is taken for crashed)
    batch_wait: Duration,
}

impl std::fmt::Debug for Erasure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Erasure")
            .field("selector", &self.selector)
            .field("reason", &self.reason)
            .field("by", &self.by)
            .field("dry_run", &self.dry_run)
            .finish_non_exhaustive()
    }
}

/// A table partition an erasure rewrites, and how.
struct Target {
    def: TableDef,
    partition: Partition,
    /// rows that make the partition need a rewrite
    trigger: RowFilter,
    /// rows the rewrite removes
    remove: RowFilter,
    /// rows the rewrite adds (a `documents` partition's erased rows)
    extra: Vec<DocumentRow>,
}

impl Erasure {
    pub fn new(lake: Lake, selector: Selector) -> Self {
        Self {
            lake,
            selector,
            reason: String::new(),
            by: "unknown".into(),
            grace: crate::compact::DEFAULT_GRACE_PERIOD,
            dry_run: false,
            compiler: None,
            progress: None,
            batch_wait: Duration::from_secs(30),
        }
    }

    /// Why (the request's reference); kept in the record, the erased rows and the trail.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    /// Who asked.
    pub fn by(mut self, by: impl Into<String>) -> Self {
        self.by = by.into();
        self
    }

    /// How long the replaced files stay readable before the vacuum removes them (default 1 h).
    pub fn grace_period(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Plan only: nothing changes.
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// The compiler of `Where` predicates (needed to run or resume a `Where` erasure).
    pub fn with_predicates(mut self, compiler: PredicateCompiler) -> Self {
        self.compiler = Some(compiler);
        self
    }

    pub fn with_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    /// How long a committed batch holding a named document is waited for (default 30 s).
    pub fn batch_wait(mut self, wait: Duration) -> Self {
        self.batch_wait = wait;
        self
    }

    fn emit(&self, p: Progress) {
        if let Some(f) = &self.progress {
            f(&p);
        }
    }

    fn compaction(&self) -> Compaction {
        Compaction::new(self.lake.clone()).grace_period(self.grace)
    }

    /// Runs the erasure (see the module docs).
    pub async fn execute(self) -> Result<EraseReport> {
        let started = Instant::now();
        if let Selector::Where { table, .. } | Selector::ReceivedBefore { table, .. } =
            &self.selector
            && !self.lake.layout.specs.contains_key(table)
        {
            return Err(LakeError::Config(format!(
                "table {table} is not declared in schemas/; name a declared table"
            )));
        }
        let _run = self.lake.lock.acquire(COMPACTION_LOCK).await?;
        let c = self.compaction();
        let mut resumed = Vec::new();
        let mut finished = Vec::new();
        if !self.dry_run {
            c.recover().await?;
            for r in record::unfinished(self.lake.state.as_ref()).await? {
                self.emit(Progress::Resumed { id: r.id.clone() });
                info!(erasure = %r.id, selector = %r.selector.describe(), "finishing an interrupted erasure");
                resumed.push(r.id.clone());
                finished.push(self.apply_and_finish(&c, r).await?);
            }
        }
        let plan = self.plan(&c).await?;
        let mut report = EraseReport {
            id: None,
            dry_run: self.dry_run,
            selector: self.selector.clone(),
            reason: self.reason.clone(),
            by: self.by.clone(),
            rows: plan.rows(),
            documents: plan.documents.clone(),
            files: plan.files.clone(),
            objects: plan.objects.clone(),
            partitions: 0,
            resumed,
            bytes_gone_after: None,
            elapsed_ms: 0,
            finished,
        };
        let steps = plan.files.len() + plan.objects.len();
        self.emit(Progress::Planned {
            documents: plan.documents.len(),
            files: plan.files.len(),
            objects: plan.objects.len(),
            steps,
        });
        if !self.dry_run && !plan.is_empty() {
            let rec = ErasureRecord {
                id: uuid::Uuid::new_v4().to_string(),
                selector: self.selector.clone(),
                reason: self.reason.clone(),
                by: self.by.clone(),
                started: self.lake.clock.now(),
                finished: None,
                rows: plan.rows(),
                plan,
                partitions: 0,
                bytes_gone_after: None,
            };
            record::put(self.lake.state.as_ref(), &rec).await?;
            let done = self.apply_and_finish(&c, rec).await?;
            report.id = Some(done.id.clone());
            report.partitions = done.partitions;
            report.bytes_gone_after = done.bytes_gone_after;
            report.finished.push(done);
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    /// Applies a recorded erasure and marks its record finished.
    async fn apply_and_finish(
        &self,
        c: &Compaction,
        mut rec: ErasureRecord,
    ) -> Result<ErasureRecord> {
        rec.partitions = self.apply(c, &mut rec).await?;
        rec.finished = Some(self.lake.clock.now());
        rec.bytes_gone_after =
            Some(record::bytes_gone_after(self.lake.state.as_ref(), &rec).await?);
        record::put(self.lake.state.as_ref(), &rec).await?;
        info!(erasure = %rec.id, selector = %rec.selector.describe(), documents = rec.plan.documents.len(), rows = rec.rows, objects = rec.plan.objects.len(), "erasure done");
        Ok(rec)
    }

    /// The documents, rows and objects the selector names now.
    async fn plan(&self, c: &Compaction) -> Result<ErasurePlan> {
        let (rows, landed) = self.read_documents().await?;
        let documents = select_documents(&self.selector, &rows, &landed);
        let objects = self.existing_objects(&documents).await?;
        let mut files = Vec::new();
        let pending = self.lake.pending_files().await?;
        let now = self.lake.clock.now();
        for t in self
            .targets(&self.selector, &documents, (now, &self.by, &self.reason))
            .await?
        {
            for (f, rows, matched) in self.scan(c, &t, &pending).await? {
                if matched > 0 {
                    files.push(FileMatch {
                        table: t.def.name.clone(),
                        partition: t.def.partition_path(&t.partition.values),
                        key: f.key,
                        rows,
                        matched,
                    });
                }
            }
        }
        Ok(ErasurePlan {
            documents,
            files,
            objects,
        })
    }

    /// The objects of `docs` that exist ([`candidate_objects`]), and their history records.
    async fn existing_objects(&self, docs: &[ErasedDoc]) -> Result<Vec<ObjectRef>> {
        let work: Vec<String> = if docs.is_empty() {
            vec![]
        } else {
            keys(self.lake.state.as_ref(), "work/").await?
        };
        let mut objects = Vec::new();
        for o in candidate_objects(docs, &work) {
            if self.store(o.store).head(&o.key).await?.is_some() {
                objects.push(o);
            }
        }
        // the outcomes a replay, release or rescan replaced (`tarn quarantine show`)
        for d in docs {
            for key in keys(self.lake.state.as_ref(), &history_prefix(&d.id)).await? {
                objects.push(ObjectRef {
                    store: StoreName::State,
                    key,
                });
            }
        }
        Ok(objects)
    }

    fn store(&self, s: StoreName) -> &Arc<dyn ObjectStore> {
        match s {
            StoreName::Ingress => &self.lake.ingress,
            StoreName::Lake => &self.lake.lake,
            StoreName::Quarantine => &self.lake.quarantine,
            StoreName::State => &self.lake.state,
        }
    }

    /// The status records the selector may name and the landed objects not processed yet.
    async fn read_documents(&self) -> Result<(Vec<DocumentRow>, Vec<LandedDoc>)> {
        let (status_keys, landed_keys): (Vec<String>, Vec<String>) = match &self.selector {
            Selector::Where { .. } => return Ok((vec![], vec![])),
            Selector::Id { id } => (
                vec![status_key(id)],
                vec![tarn_core::document::ingress_key(id)],
            ),
            _ => (
                keys(self.lake.state.as_ref(), "documents/").await?,
                keys(self.lake.ingress.as_ref(), "id=").await?,
            ),
        };
        let mut rows = Vec::new();
        for k in status_keys {
            match self.lake.state.get(&k).await {
                Ok(b) => {
                    rows.push(serde_json::from_slice::<DocumentRow>(&b.body).map_err(|e| {
                        LakeError::Pipeline(format!("status record {k} is unreadable: {e}"))
                    })?)
                }
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        let mut landed = Vec::new();
        for k in landed_keys {
            let Some(id) = id_from_ingress_key(&k) else {
                continue;
            };
            if let Some(info) = self.lake.ingress.head(&k).await? {
                let m = &info.metadata;
                landed.push(LandedDoc {
                    id: id.to_string(),
                    table: m
                        .get(meta::TABLE)
                        .filter(|t| tarn_catalog::schemas::is_valid_table_name(t))
                        .cloned()
                        .unwrap_or_else(|| "_unknown".into()),
                    producer: m.get(meta::PRODUCER).cloned().unwrap_or_default(),
                    received_at: m
                        .get(meta::REQUEST_TIME)
                        .and_then(|t| crate::landed::parse_request_time(t)),
                });
            }
        }
        Ok((rows, landed))
    }

    /// The table partitions that may hold rows of `selector` and `docs`, with their filters.
    async fn targets(
        &self,
        selector: &Selector,
        docs: &[ErasedDoc],
        (at, by, reason): (DateTime<Utc>, &str, &str),
    ) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        if let Selector::Where { table, predicate } = selector {
            let Some(def) = self.table_def(table).await? else {
                return Err(LakeError::Config(format!(
                    "table {table} has no rows of its own (a binary table, or none registered yet): erase its documents with --id or --producer"
                )));
            };
            let compile = self.compiler.as_ref().ok_or_else(|| {
                LakeError::Config(
                    "a --where erasure needs the embedded query engine: run it with tarn erase"
                        .into(),
                )
            })?;
            let p = compile(predicate, &file_schema(&def)).map_err(|e| {
                LakeError::Config(format!("the predicate {predicate:?} of table {table}: {e}"))
            })?;
            return self.every_partition(&def, RowFilter::Predicate(p)).await;
        }
        // a JSON table's rows of the documents
        let mut by_table: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        for d in docs {
            by_table.entry(&d.table).or_default().insert(d.id.clone());
        }
        for (table, ids) in by_table {
            let Some(def) = self.table_def(table).await? else {
                continue; // a binary table (no table of its own) or an unknown one
            };
            let filter = RowFilter::Ids {
                column: "_id".into(),
                ids: Arc::new(ids),
                keep_erased: false,
            };
            out.extend(self.every_partition(&def, filter).await?);
        }
        // the documents' rows, replaced by their erased rows
        let mut by_partition: BTreeMap<Vec<String>, Vec<&ErasedDoc>> = BTreeMap::new();
        for d in docs {
            if let Some(dt) = &d.dt {
                by_partition
                    .entry(vec![d.table.clone(), dt.clone()])
                    .or_default()
                    .push(d);
            }
        }
        if by_partition.is_empty() {
            return Ok(out);
        }
        let Some(def) = self.table_def(DOCUMENTS_TABLE).await? else {
            return Ok(out);
        };
        let parts = self.partitions(&def).await?;
        for (values, docs) in by_partition {
            let Some(partition) = parts.iter().find(|p| p.values == values).cloned() else {
                continue;
            };
            let ids: Arc<BTreeSet<String>> = Arc::new(docs.iter().map(|d| d.id.clone()).collect());
            out.push(Target {
                def: def.clone(),
                partition,
                trigger: RowFilter::Ids {
                    column: "id".into(),
                    ids: ids.clone(),
                    keep_erased: true,
                },
                remove: RowFilter::Ids {
                    column: "id".into(),
                    ids,
                    keep_erased: false,
                },
                extra: docs.iter().map(|d| erased_row(d, at, by, reason)).collect(),
            });
        }
        Ok(out)
    }

    /// Every partition of `def`, its rows matching `filter` removed.
    async fn every_partition(&self, def: &TableDef, filter: RowFilter) -> Result<Vec<Target>> {
        Ok(self
            .partitions(def)
            .await?
            .into_iter()
            .map(|partition| Target {
                def: def.clone(),
                partition,
                trigger: filter.clone(),
                remove: filter.clone(),
                extra: vec![],
            })
            .collect())
    }

    async fn table_def(&self, table: &str) -> Result<Option<TableDef>> {
        match self
            .lake
            .catalog
            .get_table(&self.lake.database, table)
            .await
        {
            Ok(d) => Ok(d),
            Err(e) if e.kind() == CatalogErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn partitions(&self, def: &TableDef) -> Result<Vec<Partition>> {
        match self
            .lake
            .catalog
            .get_partitions(&self.lake.database, &def.name)
            .await
        {
            Ok(p) => Ok(p),
            Err(e) if e.kind() == CatalogErrorKind::NotFound => Ok(vec![]),
            Err(e) => Err(e.into()),
        }
    }

    /// The committed files of a target's partition, each with its rows and how many of them
    /// its trigger matches.
    async fn scan(
        &self,
        c: &Compaction,
        t: &Target,
        pending: &BTreeSet<String>,
    ) -> Result<Vec<(FileEntry, u64, u64)>> {
        let schema = file_schema(&t.def);
        let mut out = Vec::new();
        for f in c.visible_files(&t.partition.location).await? {
            if pending.contains(&f.key) {
                continue;
            }
            let (mut rows, mut matched) = (0, 0);
            for batch in self.read(&f.key, &schema).await? {
                rows += batch.num_rows() as u64;
                matched += t.trigger.matches(&batch)?.true_count() as u64;
            }
            out.push((f, rows, matched));
        }
        Ok(out)
    }

    /// A Parquet file's rows in the table's current file schema.
    async fn read(&self, key: &str, schema: &SchemaRef) -> Result<Vec<arrow::array::RecordBatch>> {
        let body = self.lake.lake.get(key).await?.body;
        let reader = ParquetRecordBatchReaderBuilder::try_new(body)?
            .with_batch_size(8192)
            .build()?;
        let mut out = Vec::new();
        for b in reader {
            out.push(
                adapt::adapt_batch(&b?, schema)
                    .map_err(|e| LakeError::Pipeline(format!("{key}: {e}")))?,
            );
        }
        Ok(out)
    }

    /// Step 4 of the module docs for `rec`; returns the partitions it swapped. A document the
    /// plan found landed may have been committed since: its row is read again under the lock
    /// (and the record updated) so that its `documents` row and objects go too.
    async fn apply(&self, c: &Compaction, rec: &mut ErasureRecord) -> Result<usize> {
        let write = self.write_lock(&rec.plan.documents).await?;
        if self.refresh(&mut rec.plan.documents).await? {
            record::put(self.lake.state.as_ref(), rec).await?;
        }
        let docs = &rec.plan.documents;
        let at = rec.started;
        // status records first: from now on the pipeline commits none of these documents
        for d in docs {
            let row = erased_row(d, at, &rec.by, &rec.reason);
            let body = serde_json::to_vec(&row).expect("a row serializes");
            self.lake
                .state
                .put(&status_key(&d.id), body.into(), Default::default())
                .await?;
        }
        let pending = self.lake.pending_files().await?;
        let mut swapped = 0;
        for t in self
            .targets(&rec.selector, docs, (at, &rec.by, &rec.reason))
            .await?
        {
            if self.rewrite(c, &t, &pending, &write).await? {
                swapped += 1;
            }
        }
        let objects = self.existing_objects(docs).await?;
        for o in &objects {
            match self.store(o.store).delete_all_versions(&o.key).await {
                Ok(()) => {}
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.emit(Progress::ObjectDeleted {
                store: o.store.as_str().into(),
                key: o.key.clone(),
            });
        }
        drop(write);
        rec.plan.objects.extend(objects);
        rec.plan.objects.sort();
        rec.plan.objects.dedup();
        Ok(swapped)
    }

    /// Replaces each document planned as landed whose status record now holds a row (not
    /// erased) by that row's document; `true` when any changed.
    async fn refresh(&self, docs: &mut [ErasedDoc]) -> Result<bool> {
        let mut changed = false;
        for d in docs.iter_mut().filter(|d| d.dt.is_none()) {
            let row: DocumentRow = match self.lake.state.get(&status_key(&d.id)).await {
                Ok(b) => serde_json::from_slice(&b.body).map_err(|e| {
                    LakeError::Pipeline(format!("status record of {} is unreadable: {e}", d.id))
                })?,
                Err(e) if e.kind() == tarn_core::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            if row.status == tarn_core::Status::Erased {
                continue;
            }
            if let Some(now) =
                select_documents(&Selector::Id { id: d.id.clone() }, &[row], &[]).pop()
            {
                *d = now;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// The write lock, once no committed batch still writes the status records of `docs`
    /// (waited for up to `batch_wait`, then finished here: its process is taken for crashed).
    async fn write_lock(&self, docs: &[ErasedDoc]) -> Result<LockGuard> {
        let ids: BTreeSet<&str> = docs.iter().map(|d| d.id.as_str()).collect();
        let deadline = Instant::now() + self.batch_wait;
        loop {
            let guard = self.lake.lock.acquire(WRITE_LOCK).await?;
            let finishing: Vec<manifest::Manifest> = manifest::list(self.lake.state.as_ref())
                .await?
                .into_iter()
                .map(|(m, _)| m)
                .filter(|m| m.committed && m.rows.iter().any(|r| ids.contains(r.id.as_str())))
                .collect();
            if finishing.is_empty() {
                return Ok(guard);
            }
            if Instant::now() >= deadline {
                for m in &finishing {
                    self.lake.finish(m).await?;
                }
                return Ok(guard);
            }
            drop(guard);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Rewrites one partition without the rows `t.remove` matches (and with `t.extra`) through
    /// compaction's job, swap and tombstone; `false` when no file holds a row `t.trigger`
    /// matches. Runs under the write lock `write`.
    async fn rewrite(
        &self,
        c: &Compaction,
        t: &Target,
        pending: &BTreeSet<String>,
        write: &LockGuard,
    ) -> Result<bool> {
        let files = self.scan(c, t, pending).await?;
        if files.iter().all(|(_, _, matched)| *matched == 0) {
            return Ok(false);
        }
        let (job, old_key, new_key) = c.new_job(&t.def, &t.partition)?;
        c.put_json(&format!("{JOBS_PREFIX}{}.json", job.id), &job)
            .await?;
        let schema = file_schema(&t.def);
        let mut out = c.outputs(&t.def, &format!("{new_key}e-{}", &job.id[..8]));
        for (f, _, matched) in &files {
            if *matched > 0 {
                for batch in self.read(&f.key, &schema).await? {
                    let (kept, _) = t.remove.keep(&batch)?;
                    out.write(&kept).await?;
                }
            } else {
                c.copy_into(f, &old_key, &new_key).await?;
            }
            self.emit(Progress::FileDone {
                table: t.def.name.clone(),
                key: f.key.clone(),
            });
        }
        if !t.extra.is_empty() {
            out.write(&documents_batch(&schema, &t.extra)?).await?;
        }
        out.finish().await?;
        write.ensure_held().await?;
        c.swap(&job, files.into_iter().map(|(f, _, _)| f.key).collect())
            .await?;
        info!(table = %t.def.name, partition = %t.def.partition_path(&t.partition.values), "partition rewritten without erased rows");
        Ok(true)
    }
}

async fn keys(store: &dyn ObjectStore, prefix: &str) -> Result<Vec<String>> {
    Ok(store
        .list(prefix)
        .await?
        .into_iter()
        .map(|o| o.key)
        .collect())
}
