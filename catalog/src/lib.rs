//! tarn-catalog: the catalog port, shaped after AWS Glue (database → tables with columns,
//! partition keys, location and format → partitions with values and locations), its local
//! implementation, and the table definitions tarn loads from `schemas/`.

#[cfg(any(test, feature = "testsuite"))]
pub mod conformance;
pub mod error;
pub mod evolution;
pub mod local;
pub mod model;
pub mod schemas;
pub mod types;

pub use error::{CatalogError, ErrorKind, Result};
pub use local::LocalCatalog;
pub use model::{Column, Partition, TableDef};
pub use schemas::{Granularity, TableKind, TableSpec, documents_table, load_schemas};

use async_trait::async_trait;

/// The catalog port. Guarantees (checked by `conformance::catalog`, a `testsuite` feature):
/// - every call that changes the catalog is atomic and durable when it returns: a reader (in
///   this or another process) sees the catalog before or after it, never half of it;
/// - `add_partitions` is idempotent: partitions whose values exist already are left unchanged;
/// - `update_partition` swaps one partition's location in one step (compaction relies on it);
/// - `get_partitions` returns every partition, sorted by values;
/// - table and database names are lowercase.
#[async_trait]
pub trait Catalog: Send + Sync + std::fmt::Debug {
    /// Creates the database when missing.
    async fn ensure_database(&self, database: &str) -> Result<()>;
    /// Creates the table, or replaces its definition keeping its partitions.
    async fn upsert_table(&self, database: &str, table: &TableDef) -> Result<()>;
    async fn get_table(&self, database: &str, name: &str) -> Result<Option<TableDef>>;
    async fn list_tables(&self, database: &str) -> Result<Vec<TableDef>>;
    /// Registers partitions; returns how many were new. `CatalogError::NotFound` for an unknown table.
    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> Result<usize>;
    /// Points an existing partition at a new location.
    async fn update_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
        location: &str,
    ) -> Result<()>;
    async fn get_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>>;
}
