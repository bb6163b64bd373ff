//! tarn-query: the query-engine port, its embedded DataFusion implementation over tarn's
//! catalog, and the table statistics behind `tarn tables`.
//!
//! ```no_run
//! # async fn demo(catalog: std::sync::Arc<dyn tarn_catalog::Catalog>) -> tarn_query::Result<()> {
//! use tarn_query::{LocalQueryEngine, OutputFormat, QueryEngine};
//! let engine = LocalQueryEngine::new(catalog, "tarn");
//! let result = engine.query("SELECT dt, count(*) AS n FROM events GROUP BY dt ORDER BY dt").await?;
//! print!("{}", result.render(OutputFormat::Table));
//! # Ok(()) }
//! ```

pub mod audit;
pub mod error;
pub mod files;
pub mod local;
pub mod metrics;
pub mod predicate;
pub mod result;
pub mod stats;
pub mod table;

pub use error::{ErrorKind, QueryError, Result};
pub use local::{DEFAULT_CATALOG, LocalQueryEngine};
pub use metrics::ScanMetrics;
pub use predicate::SqlPredicate;
pub use result::{OutputFormat, QueryResult, ResultColumn, arrow_to_hive};
pub use stats::{TableStats, table_stats, table_stats_with};
pub use table::CatalogTable;

use async_trait::async_trait;

/// Runs SQL on the lake. Implementations: [`LocalQueryEngine`] (DataFusion, in process) and
/// Athena (`tarn_aws::AthenaQueryEngine`); both give the same [`QueryResult`] for the same SQL
/// and lake.
///
/// What a query sees is Athena's rule over Glue (docs/contract.md, What a reader sees):
/// - the tables are the catalog database's tables, named unqualified (`FROM events`), so one
///   SQL text runs on either engine with the database as the default;
/// - a table shows exactly the files under its *registered* partitions' locations: files in a
///   partition directory that is not registered (`dt=...` written but not yet added) are
///   invisible, and a partition whose location was swapped to a new prefix (compaction) shows
///   only the new prefix's files, never the old ones;
/// - a location is read recursively, but only `*.parquet` objects, and nothing under a name
///   starting with `.` or `_` (temporary and marker files);
/// - partition keys are ordinary columns after the data columns; a filter on them alone
///   (`WHERE dt = '2024-01-02'`, `WHERE table_name = 'events' AND dt >= '2024-01'`) is
///   evaluated against the registered partitions' values first, so the files of non-matching
///   partitions are not even listed;
/// - a file that lacks a column of the table (written before the column was added) reads it as
///   null.
///
/// Errors carry an [`ErrorKind`]: `Sql` for text that does not parse, `Plan` for a query that
/// cannot be planned (unknown table or column, refused statement), `Execution`, and `Io` for a
/// lake or catalog that cannot be read.
#[async_trait]
pub trait QueryEngine: Send + Sync + std::fmt::Debug {
    async fn query(&self, sql: &str) -> Result<QueryResult>;
}
