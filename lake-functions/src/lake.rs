//! [`Lake`]: everything the lake's protocols work with, built once by each driver (`tarn serve`,
//! the one-shot commands, the Lambda functions) and shared by the pipeline, the batch commit and
//! compaction.

use crate::error::Result;
use crate::lock::LakeLock;
use crate::normalize::{lake_root, table_defs};
use arrow::datatypes::SchemaRef;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_catalog::evolution::evolve_table;
use tarn_catalog::{Catalog, Granularity, TableDef, TableSpec};
use tarn_core::{Clock, Kms, ObjectStore};

/// The ports the lake is made of, and its tables. Turned into a [`Lake`] with [`Lake::new`].
#[derive(Debug, Clone)]
pub struct LakeParts {
    /// the tables declared in `schemas/`
    pub tables: Vec<TableSpec>,
    /// landed documents (`id=<uuid>`)
    pub ingress: Arc<dyn ObjectStore>,
    /// Parquet files and sanitized objects
    pub lake: Arc<dyn ObjectStore>,
    /// copies of rejected and quarantined documents
    pub quarantine: Arc<dyn ObjectStore>,
    /// the pipeline's state: batch manifests, status records, claims, hand-offs, leases
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    pub catalog: Arc<dyn Catalog>,
    pub database: String,
    pub clock: Arc<dyn Clock>,
    /// the lake's named locks, shared by every writer of one lake (see [`crate::lock`])
    pub lock: Arc<dyn LakeLock>,
}

/// The lake: its ports, its tables' layout and its locks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Lake {
    pub ingress: Arc<dyn ObjectStore>,
    pub lake: Arc<dyn ObjectStore>,
    pub quarantine: Arc<dyn ObjectStore>,
    pub state: Arc<dyn ObjectStore>,
    pub kms: Arc<dyn Kms>,
    pub catalog: Arc<dyn Catalog>,
    pub database: String,
    pub clock: Arc<dyn Clock>,
    pub lock: Arc<dyn LakeLock>,
    pub layout: Arc<LakeLayout>,
}

impl Lake {
    pub fn new(parts: LakeParts) -> Self {
        let layout = Arc::new(LakeLayout::new(&parts.tables, parts.lake.as_ref()));
        Self {
            ingress: parts.ingress,
            lake: parts.lake,
            quarantine: parts.quarantine,
            state: parts.state,
            kms: parts.kms,
            catalog: parts.catalog,
            database: parts.database,
            clock: parts.clock,
            lock: parts.lock,
            layout,
        }
    }

    /// The same lake with each of its four stores replaced by `f(store)` (an auditing or a
    /// fault-injecting wrapper).
    pub fn map_stores(&self, f: impl Fn(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        Self {
            ingress: f(self.ingress.clone()),
            lake: f(self.lake.clone()),
            quarantine: f(self.quarantine.clone()),
            state: f(self.state.clone()),
            ..self.clone()
        }
    }

    /// The declared tables.
    pub fn tables(&self) -> Vec<TableSpec> {
        self.layout.specs.values().cloned().collect()
    }

    /// Registers the database and every table (JSON tables and `documents`) in the catalog.
    /// A table already there is evolved ([`tarn_catalog::evolution`]): new optional columns are
    /// added; a change its existing files cannot be read with is refused, saying what to do.
    pub async fn setup_catalog(&self) -> Result<()> {
        self.catalog.ensure_database(&self.database).await?;
        for (name, (def, _)) in &self.layout.defs {
            evolve_table(
                self.catalog.as_ref(),
                &self.database,
                def,
                self.layout.specs.get(name),
            )
            .await?;
        }
        Ok(())
    }
}

/// The lake's tables as the commit writes them: the specs, their definitions and file schemas
/// (`documents` included), and the lake store's URL root.
#[derive(Debug, Clone)]
pub struct LakeLayout {
    pub specs: BTreeMap<String, TableSpec>,
    pub defs: BTreeMap<String, (TableDef, SchemaRef)>,
    /// the lake store's URL root (`file:///.../lake/`, `s3://bucket/`), ending in `/`
    pub lake_root: String,
}

impl LakeLayout {
    pub fn new(tables: &[TableSpec], lake: &dyn ObjectStore) -> Self {
        let lake_root = lake_root(lake);
        Self {
            defs: table_defs(tables, &lake_root),
            specs: tables.iter().map(|s| (s.name.clone(), s.clone())).collect(),
            lake_root,
        }
    }

    /// How a table is partitioned (`day` for an undeclared one).
    pub fn granularity(&self, table: &str) -> Granularity {
        self.specs
            .get(table)
            .map(|s| s.partition)
            .unwrap_or_default()
    }
}
