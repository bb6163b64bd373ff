//! Writing one batch of processed documents into the lake: the part of the commit protocol the
//! embedded runner ([`crate::runner`]) and the normalize Lambda share. Each keeps its own
//! manifest and claims around it; both call, under the lake's write lock:
//!
//! 1. [`BatchWriter::plan`]: the batch's Parquet files, each under its partition's *current*
//!    catalog location (compaction may have moved it), named after the batch, so a retry of the
//!    same batch rewrites the same keys;
//! 2. (the caller writes its manifest, naming the planned files);
//! 3. [`BatchWriter::write`]: quarantine copies of rejected and quarantined documents, sanitized
//!    objects, the Parquet files (the tables' rows and the `documents` rows), and the partitions
//!    registered in the catalog. Every step is idempotent: a crash anywhere is undone by deleting
//!    the manifest's files, or redone by writing them again.

use crate::error::Result;
use crate::normalize::{documents_batch, lake_root, table_defs, write_parquet};
use crate::runner::PipelineDeps;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use std::collections::BTreeMap;
use tarn_catalog::evolution::evolve_table;
use tarn_catalog::schemas::DOCUMENTS_TABLE;
use tarn_catalog::{Catalog, Granularity, Partition, TableDef, TableSpec};
use tarn_core::document::{meta, quarantine_key};
use tarn_core::{DocumentRow, GetResult, Kms, ObjectStore, objects};
use tracing::warn;

/// The lake as both committers see it: the tables' specs, their definitions and file schemas
/// (`documents` included), and the lake store's URL root.
#[derive(Debug, Clone)]
pub struct LakeLayout {
    pub specs: BTreeMap<String, TableSpec>,
    pub defs: BTreeMap<String, (TableDef, SchemaRef)>,
    pub lake_root: String,
}

impl LakeLayout {
    pub fn new(deps: &PipelineDeps) -> Self {
        let lake_root = lake_root(deps.lake.as_ref());
        Self {
            defs: table_defs(&deps.tables, &lake_root),
            specs: deps
                .tables
                .iter()
                .map(|s| (s.name.clone(), s.clone()))
                .collect(),
            lake_root,
        }
    }

    /// How a table is partitioned (`day` for an unknown one).
    pub fn granularity(&self, table: &str) -> Granularity {
        self.specs
            .get(table)
            .map(|s| s.partition)
            .unwrap_or_default()
    }

    /// Registers the database and every table (JSON tables and `documents`) in the catalog.
    /// A table already there is evolved ([`tarn_catalog::evolution`]): new optional columns are
    /// added; a change its existing files cannot be read with is refused, saying what to do.
    pub async fn setup_catalog(&self, catalog: &dyn Catalog, database: &str) -> Result<()> {
        catalog.ensure_database(database).await?;
        for (name, (def, _)) in &self.defs {
            evolve_table(catalog, database, def, self.specs.get(name)).await?;
        }
        Ok(())
    }

    /// The writer of batches into `deps`' stores with this layout.
    pub fn writer<'a>(&'a self, deps: &'a PipelineDeps) -> BatchWriter<'a> {
        BatchWriter {
            lake: deps.lake.as_ref(),
            quarantine: deps.quarantine.as_ref(),
            kms: deps.kms.as_ref(),
            catalog: deps.catalog.as_ref(),
            database: &deps.database,
            defs: &self.defs,
            lake_root: &self.lake_root,
        }
    }
}

/// What a batch writes for one document.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// its `documents` row (and status record)
    pub row: DocumentRow,
    /// JSON documents: their rows, for `tables/<table>/dt=<dt>/`
    pub data: Option<RecordBatch>,
    /// binary documents: the sanitized bytes, for `objects/<table>/dt=<dt>/<id>`
    pub object: Option<Bytes>,
    /// rejected or quarantined: the landed object, copied to quarantine as it is
    pub landed: Option<GetResult>,
}

/// One Parquet file of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub table: String,
    /// its lake key
    pub key: String,
    /// its partition's values
    pub values: Vec<String>,
}

/// A batch's plan: its rows (sorted by id) and files, with the data they hold.
#[derive(Debug)]
pub struct BatchPlan {
    pub rows: Vec<DocumentRow>,
    pub files: Vec<PlannedFile>,
    data: BTreeMap<(String, Vec<String>), Vec<RecordBatch>>,
    doc_rows: BTreeMap<Vec<String>, Vec<DocumentRow>>,
}

/// The stores, catalog and table definitions a batch is written with.
#[derive(Debug, Clone, Copy)]
pub struct BatchWriter<'a> {
    pub lake: &'a dyn ObjectStore,
    pub quarantine: &'a dyn ObjectStore,
    pub kms: &'a dyn Kms,
    pub catalog: &'a dyn Catalog,
    pub database: &'a str,
    /// every table's definition and file schema, `documents` included
    pub defs: &'a BTreeMap<String, (TableDef, SchemaRef)>,
    /// the lake store's URL root (`file:///.../lake/`, `s3://bucket/`)
    pub lake_root: &'a str,
}

impl BatchWriter<'_> {
    /// The lake key prefixes (ending in `/`) of a table's registered partitions' locations.
    pub async fn partition_dirs(&self, table: &str) -> Result<BTreeMap<Vec<String>, String>> {
        let mut out = BTreeMap::new();
        for p in self.catalog.get_partitions(self.database, table).await? {
            match p.location.strip_prefix(self.lake_root) {
                Some(dir) => {
                    out.insert(p.values, dir.to_string());
                }
                None => {
                    warn!(table, location = %p.location, lake = %self.lake_root, "a partition is outside the lake; writing to its Hive directory")
                }
            }
        }
        Ok(out)
    }

    /// Plans batch `batch`: sorts `items` by id and takes their rows' data into the plan. Call
    /// it holding the lake's write lock, which keeps partition locations where they are until
    /// the commit.
    pub async fn plan(&self, batch: &str, items: &mut [BatchItem]) -> Result<BatchPlan> {
        items.sort_by(|a, b| a.row.id.cmp(&b.row.id));
        let rows: Vec<DocumentRow> = items.iter().map(|i| i.row.clone()).collect();
        let file_name = format!("part-{batch}.parquet");
        let mut data: BTreeMap<(String, Vec<String>), Vec<RecordBatch>> = BTreeMap::new();
        for it in items.iter_mut() {
            if let Some(b) = it.data.take() {
                data.entry((it.row.table_name.clone(), vec![it.row.dt.clone()]))
                    .or_default()
                    .push(b);
            }
        }
        let mut doc_rows: BTreeMap<Vec<String>, Vec<DocumentRow>> = BTreeMap::new();
        for r in &rows {
            doc_rows
                .entry(vec![r.table_name.clone(), r.dt.clone()])
                .or_default()
                .push(r.clone());
        }
        let mut current: BTreeMap<&str, BTreeMap<Vec<String>, String>> = BTreeMap::new();
        for table in data
            .keys()
            .map(|(t, _)| t.as_str())
            .chain(doc_rows.keys().next().map(|_| DOCUMENTS_TABLE))
        {
            if !current.contains_key(table) {
                current.insert(table, self.partition_dirs(table).await?);
            }
        }
        let key_in = |table: &str, values: &Vec<String>| -> String {
            match current.get(table).and_then(|m| m.get(values)) {
                Some(dir) => format!("{dir}{file_name}"),
                None => format!(
                    "tables/{table}/{}/{file_name}",
                    self.defs[table].0.partition_path(values)
                ),
            }
        };
        let mut files = Vec::new();
        for (table, values) in data.keys() {
            files.push(PlannedFile {
                table: table.clone(),
                key: key_in(table, values),
                values: values.clone(),
            });
        }
        for values in doc_rows.keys() {
            files.push(PlannedFile {
                table: DOCUMENTS_TABLE.into(),
                key: key_in(DOCUMENTS_TABLE, values),
                values: values.clone(),
            });
        }
        Ok(BatchPlan {
            rows,
            files,
            data,
            doc_rows,
        })
    }

    /// Writes what `plan` holds and the items' quarantine copies and objects, then registers
    /// the partitions. Idempotent.
    pub async fn write(&self, plan: &BatchPlan, items: &[BatchItem]) -> Result<()> {
        for it in items {
            let (table, id) = (&it.row.table_name, &it.row.id);
            if let Some(landed) = &it.landed {
                let mut m = landed.info.metadata.clone();
                m.insert(
                    meta::REASON.into(),
                    it.row.reason.clone().unwrap_or_default(),
                );
                self.quarantine
                    .put(&quarantine_key(table, id), landed.body.clone(), m)
                    .await?;
            }
            if let (Some(body), Some(key)) = (&it.object, &it.row.object_key) {
                let content_type = it
                    .row
                    .detected_type
                    .as_deref()
                    .unwrap_or(&it.row.content_type);
                objects::put_sanitized(self.lake, self.kms, table, id, key, content_type, body)
                    .await?;
            }
        }
        let mut partitions: BTreeMap<&str, Vec<Partition>> = BTreeMap::new();
        for f in &plan.files {
            let (def, schema) = &self.defs[&f.table];
            let body = if f.table == DOCUMENTS_TABLE {
                documents_batch(schema, &plan.doc_rows[&f.values])
                    .and_then(|b| write_parquet(schema, &[b]))?
            } else {
                write_parquet(schema, &plan.data[&(f.table.clone(), f.values.clone())])?
            };
            self.lake
                .put(&f.key, body.into(), Default::default())
                .await?;
            partitions.entry(&f.table).or_default().push(Partition {
                values: f.values.clone(),
                location: format!("{}{}/", def.location, def.partition_path(&f.values)),
            });
        }
        for (table, parts) in &partitions {
            self.catalog
                .add_partitions(self.database, table, parts)
                .await?;
        }
        Ok(())
    }
}
