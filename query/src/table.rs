//! A catalog table as a DataFusion `TableProvider`: the table shows exactly the Parquet files
//! under its registered partitions' locations, each row carrying its partition's values.

use crate::error::{ErrorKind, QueryError, Result};
use async_trait::async_trait;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column as DfColumn, DFSchema, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::helpers::expr_applicable_for_cols;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::datasource::table_schema::TableSchema;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::object_store::{ObjectMeta, ObjectStore};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;
use tarn_catalog::types::hive_to_arrow;
use tarn_catalog::{Catalog, ErrorKind as CatalogErrorKind, Partition, TableDef};
use tokio::sync::OnceCell;

/// How many partition locations are listed at once.
const LIST_CONCURRENCY: usize = 16;

/// The Hive marker for a null partition value.
const HIVE_NULL_PARTITION: &str = "__HIVE_DEFAULT_PARTITION__";

/// One catalog table, for one query. Its schema is the data columns followed by the partition
/// keys, typed by [`hive_to_arrow`]. Its partitions are read from the catalog once, at the first
/// scan, so a query sees one version of them however often it reads the table.
#[derive(Debug)]
pub struct CatalogTable {
    def: TableDef,
    database: String,
    catalog: Arc<dyn Catalog>,
    schema: SchemaRef,
    file_schema: SchemaRef,
    partition_fields: Vec<FieldRef>,
    /// a column whose type the engine cannot read, said at scan time rather than hiding the table
    unsupported: Option<String>,
    partitions: OnceCell<Arc<Vec<Partition>>>,
}

impl CatalogTable {
    pub fn new(catalog: Arc<dyn Catalog>, database: impl Into<String>, def: TableDef) -> Self {
        let mut unsupported = None;
        let mut field = |c: &tarn_catalog::Column| {
            let ty = hive_to_arrow(&c.data_type).unwrap_or_else(|| {
                unsupported.get_or_insert_with(|| {
                    format!(
                        "table {}: column {} has type {}, which tarn cannot read",
                        def.name, c.name, c.data_type
                    )
                });
                DataType::Utf8
            });
            Arc::new(Field::new(&c.name, ty, true))
        };
        let data_fields: Vec<FieldRef> = def.columns.iter().map(&mut field).collect();
        let partition_fields: Vec<FieldRef> = def.partition_keys.iter().map(&mut field).collect();
        let file_schema = Arc::new(Schema::new(data_fields.clone()));
        let schema = Arc::new(Schema::new(
            [data_fields, partition_fields.clone()].concat(),
        ));
        Self {
            def,
            database: database.into(),
            catalog,
            schema,
            file_schema,
            partition_fields,
            unsupported,
            partitions: OnceCell::new(),
        }
    }

    pub fn def(&self) -> &TableDef {
        &self.def
    }

    fn partition_names(&self) -> Vec<&str> {
        self.partition_fields
            .iter()
            .map(|f| f.name().as_str())
            .collect()
    }

    /// The registered partitions (for an unpartitioned table, the table's own location).
    async fn partitions(&self) -> Result<Arc<Vec<Partition>>> {
        self.partitions
            .get_or_try_init(|| async {
                if self.def.partition_keys.is_empty() {
                    return Ok(Arc::new(vec![Partition {
                        values: vec![],
                        location: self.def.location.clone(),
                    }]));
                }
                let parts = self
                    .catalog
                    .get_partitions(&self.database, &self.def.name)
                    .await?;
                Ok(Arc::new(parts))
            })
            .await
            .cloned()
    }

    /// The partitions whose values satisfy every filter (filters on partition columns only).
    fn prune(
        &self,
        state: &dyn Session,
        partitions: &[Partition],
        filters: &[Expr],
    ) -> Result<Vec<(Vec<ScalarValue>, String)>> {
        let typed = partitions
            .iter()
            .map(|p| {
                Ok((
                    partition_values(&self.def, &self.partition_fields, p)?,
                    p.location.clone(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let Some(filter) = conjunction(filters.iter().cloned().map(unqualify)) else {
            return Ok(typed);
        };
        if typed.is_empty() {
            return Ok(typed);
        }
        let part_schema = Arc::new(Schema::new(self.partition_fields.clone()));
        let columns = (0..self.partition_fields.len())
            .map(|j| ScalarValue::iter_to_array(typed.iter().map(|(v, _)| v[j].clone())))
            .collect::<datafusion::error::Result<Vec<ArrayRef>>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&part_schema), columns)?;
        let df_schema = DFSchema::try_from(part_schema)?;
        let predicate = state.create_physical_expr(filter, &df_schema)?;
        let matches = predicate.evaluate(&batch)?.into_array(batch.num_rows())?;
        let matches = matches
            .as_boolean_opt()
            .ok_or_else(|| {
                QueryError::new(
                    ErrorKind::Plan,
                    "a partition filter is not a boolean expression",
                )
            })?
            .clone();
        Ok(typed
            .into_iter()
            .enumerate()
            .filter(|(i, _)| matches.is_valid(*i) && matches.value(*i))
            .map(|(_, p)| p)
            .collect())
    }
}

/// Turns `events.dt` into `dt`: partition filters are evaluated against the partition columns
/// alone.
fn unqualify(e: Expr) -> Expr {
    e.transform(|e| {
        Ok(match e {
            Expr::Column(c) if c.relation.is_some() => {
                Transformed::yes(Expr::Column(DfColumn::new_unqualified(c.name)))
            }
            other => Transformed::no(other),
        })
    })
    .map(|t| t.data)
    .expect("the rewrite cannot fail")
}

/// A partition's values, typed as the table's partition keys.
fn partition_values(
    def: &TableDef,
    fields: &[FieldRef],
    p: &Partition,
) -> Result<Vec<ScalarValue>> {
    if p.values.len() != fields.len() {
        return Err(QueryError::new(
            ErrorKind::Io,
            format!(
                "table {}: partition {:?} has {} values for {} partition keys",
                def.name,
                p.values,
                p.values.len(),
                fields.len()
            ),
        ));
    }
    p.values
        .iter()
        .zip(fields)
        .map(|(v, f)| {
            if v == HIVE_NULL_PARTITION {
                return Ok(ScalarValue::try_from(f.data_type())?);
            }
            ScalarValue::try_from_string(v.clone(), f.data_type()).map_err(|e| {
                QueryError::new(
                    ErrorKind::Io,
                    format!(
                        "table {}: partition value {}={v:?} is not a {}: {e}",
                        def.name,
                        f.name(),
                        f.data_type()
                    ),
                )
            })
        })
        .collect()
}

#[async_trait]
impl TableProvider for CatalogTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters on partition columns alone are evaluated against the registered partitions'
    /// values before any file is listed, so they are exact; others go to the Parquet scan
    /// (row-group pruning) and are checked again above it.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        let names = self.partition_names();
        Ok(filters
            .iter()
            .map(|f| {
                if !names.is_empty() && expr_applicable_for_cols(&names, f) {
                    TableProviderFilterPushDown::Exact
                } else {
                    TableProviderFilterPushDown::Inexact
                }
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        self.plan_scan(state, projection, filters, limit)
            .await
            .map_err(QueryError::into_datafusion)
    }
}

impl CatalogTable {
    async fn plan_scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if let Some(why) = &self.unsupported {
            return Err(QueryError::new(ErrorKind::Plan, why));
        }
        let names = self.partition_names();
        let partition_filters: Vec<Expr> = filters
            .iter()
            .filter(|f| !names.is_empty() && expr_applicable_for_cols(&names, f))
            .cloned()
            .collect();
        let partitions = self.partitions().await?;
        let kept = self.prune(state, &partitions, &partition_filters)?;
        tracing::debug!(table = %self.def.name, registered = partitions.len(), kept = kept.len(), "partitions pruned");

        let runtime = Arc::clone(state.runtime_env());
        let listed: Vec<(ObjectStoreUrl, Vec<PartitionedFile>)> = futures::stream::iter(kept)
            .map(|(values, location)| {
                let runtime = Arc::clone(&runtime);
                async move {
                    let (store_url, metas) = list_parquet_files(&runtime, &location).await?;
                    let files = metas
                        .into_iter()
                        .map(|m| {
                            PartitionedFile::new_from_meta(m).with_partition_values(values.clone())
                        })
                        .collect();
                    Ok::<_, QueryError>((store_url, files))
                }
            })
            .buffered(LIST_CONCURRENCY)
            .try_collect()
            .await?;

        // one scan per object store (partitions of one table normally share one)
        let mut by_store: Vec<(ObjectStoreUrl, Vec<PartitionedFile>)> = Vec::new();
        for (url, files) in listed {
            if files.is_empty() {
                continue;
            }
            match by_store.iter_mut().find(|(u, _)| *u == url) {
                Some((_, all)) => all.extend(files),
                None => by_store.push((url, files)),
            }
        }
        if by_store.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }

        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let target_partitions = state.config().target_partitions().max(1);
        let mut plans = Vec::with_capacity(by_store.len());
        for (store_url, files) in by_store {
            let source = format.file_source(
                TableSchema::builder(Arc::clone(&self.file_schema))
                    .with_table_partition_cols(self.partition_fields.clone())
                    .build(),
            );
            let config = FileScanConfigBuilder::new(store_url, source)
                .with_file_groups(FileGroup::new(files).split_files(target_partitions))
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
                .build();
            plans.push(format.create_physical_plan(state, config).await?);
        }
        Ok(UnionExec::try_new(plans)?)
    }
}

/// The Parquet files under a location (a URL ending in `/`), recursively as Athena reads a
/// prefix: only names ending in `.parquet`, not empty, and nothing under a path segment that
/// starts with `.` or `_` (Hive's hidden files: temporary and marker files). Sorted by path.
pub(crate) async fn list_parquet_files(
    runtime: &RuntimeEnv,
    location: &str,
) -> Result<(ObjectStoreUrl, Vec<ObjectMeta>)> {
    let url = ListingTableUrl::parse(location).map_err(|e| {
        QueryError::new(
            ErrorKind::Io,
            format!("location {location:?} is not a URL: {e}"),
        )
    })?;
    let store_url = url.object_store();
    let store = object_store_for(runtime, &store_url)?;
    let prefix = url.prefix().clone();
    let mut metas: Vec<ObjectMeta> = store
        .list(Some(&prefix))
        .map_err(|e| QueryError::new(ErrorKind::Io, format!("listing {location}: {e}")))
        .try_filter(|m| {
            let visible = m.size > 0
                && m.location.as_ref().ends_with(".parquet")
                && m.location.prefix_match(&prefix).is_some_and(|mut parts| {
                    parts.all(|p| !(p.as_ref().starts_with('.') || p.as_ref().starts_with('_')))
                });
            futures::future::ready(visible)
        })
        .try_collect()
        .await?;
    metas.sort_by(|a, b| a.location.cmp(&b.location));
    Ok((store_url, metas))
}

/// The object store that serves a location's scheme and authority. `file://` is always there;
/// any other (`s3://bucket`) must have been registered on the engine first
/// (`LocalQueryEngine::register_object_store`).
pub(crate) fn object_store_for(
    runtime: &RuntimeEnv,
    url: &ObjectStoreUrl,
) -> Result<Arc<dyn ObjectStore>> {
    runtime.object_store(url).map_err(|_| {
        QueryError::new(
            ErrorKind::Io,
            format!(
                "no object store is registered for {}: the embedded engine reads file:// locations; register a store for this URL first",
                url.as_str()
            ),
        )
    })
}

/// The tables of a database; a database that does not exist yet has none.
pub(crate) async fn list_tables(catalog: &dyn Catalog, database: &str) -> Result<Vec<TableDef>> {
    match catalog.list_tables(database).await {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == CatalogErrorKind::NotFound => Ok(vec![]),
        Err(e) => Err(e.into()),
    }
}
