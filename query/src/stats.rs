//! What `tarn tables` shows: each table's columns and how much data its registered partitions
//! hold, counted from file listings and Parquet footers (no data is scanned).

use crate::error::{ErrorKind, QueryError, Result};
use crate::table::{list_parquet_files, list_tables, object_store_for};
use datafusion::datasource::listing::ListingTableUrl;
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::object_store::ObjectMeta;
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use tarn_catalog::{Catalog, Partition, TableDef};

/// How many footers are read at once.
const FOOTER_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableStats {
    pub name: String,
    /// the table's root URL
    pub location: String,
    /// data columns as (name, Hive type)
    pub columns: Vec<(String, String)>,
    /// partition keys as (name, Hive type)
    pub partition_keys: Vec<(String, String)>,
    /// registered partitions (0 for an unpartitioned table)
    pub partitions: usize,
    /// visible Parquet files under the registered partitions
    pub files: usize,
    /// rows in those files, from their footers
    pub rows: u64,
    /// bytes of those files
    pub bytes: u64,
}

/// The statistics of every table of `database`, sorted by name, reading `file://` locations.
/// A database that does not exist yet has no tables.
pub async fn table_stats(catalog: &dyn Catalog, database: &str) -> Result<Vec<TableStats>> {
    table_stats_with(catalog, database, &RuntimeEnv::default()).await
}

/// [`table_stats`] reading through the object stores registered in `runtime`.
pub async fn table_stats_with(
    catalog: &dyn Catalog,
    database: &str,
    runtime: &RuntimeEnv,
) -> Result<Vec<TableStats>> {
    let mut tables = list_tables(catalog, database).await?;
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = Vec::with_capacity(tables.len());
    for def in tables {
        out.push(one_table(catalog, database, runtime, def).await?);
    }
    Ok(out)
}

async fn one_table(
    catalog: &dyn Catalog,
    database: &str,
    runtime: &RuntimeEnv,
    def: TableDef,
) -> Result<TableStats> {
    let (partitions, locations) = if def.partition_keys.is_empty() {
        (0, vec![def.location.clone()])
    } else {
        let parts: Vec<Partition> = catalog.get_partitions(database, &def.name).await?;
        (parts.len(), parts.into_iter().map(|p| p.location).collect())
    };
    let mut files: Vec<(String, ObjectMeta)> = Vec::new();
    for location in locations {
        let (_, metas) = list_parquet_files(runtime, &location).await?;
        files.extend(metas.into_iter().map(|m| (location.clone(), m)));
    }
    let bytes = files.iter().map(|(_, m)| m.size).sum();
    let rows: Vec<u64> = futures::stream::iter(files.iter())
        .map(|(location, meta)| footer_rows(runtime, location, meta))
        .buffer_unordered(FOOTER_CONCURRENCY)
        .try_collect()
        .await?;
    let pairs = |cols: &[tarn_catalog::Column]| {
        cols.iter()
            .map(|c| (c.name.clone(), c.data_type.clone()))
            .collect()
    };
    Ok(TableStats {
        columns: pairs(&def.columns),
        partition_keys: pairs(&def.partition_keys),
        name: def.name,
        location: def.location,
        partitions,
        files: files.len(),
        rows: rows.iter().sum(),
        bytes,
    })
}

/// The row count a Parquet file's footer declares.
async fn footer_rows(runtime: &RuntimeEnv, location: &str, meta: &ObjectMeta) -> Result<u64> {
    let url = ListingTableUrl::parse(location)
        .map_err(|e| QueryError::new(ErrorKind::Io, e.to_string()))?;
    let store = object_store_for(runtime, &url.object_store())?;
    let metadata = DFParquetMetadata::new(store.as_ref(), meta)
        .with_file_metadata_cache(Some(runtime.cache_manager.get_file_metadata_cache()))
        .fetch_metadata()
        .await
        .map_err(|e| {
            QueryError::new(
                ErrorKind::Io,
                format!(
                    "reading the Parquet footer of {}{}: {e}",
                    url.object_store().as_str(),
                    meta.location
                ),
            )
        })?;
    Ok(u64::try_from(metadata.file_metadata().num_rows()).unwrap_or(0))
}
