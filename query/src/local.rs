//! The embedded engine: DataFusion over the catalog's tables.

use crate::QueryEngine;
use crate::error::{ErrorKind, QueryError, Result};
use crate::result::QueryResult;
use crate::stats::{TableStats, table_stats_with};
use crate::table::{CatalogTable, list_tables};
use async_trait::async_trait;
use datafusion::execution::context::SQLOptions;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::object_store::ObjectStore;
use datafusion::prelude::{SessionConfig, SessionContext};
use std::sync::Arc;
use tarn_catalog::Catalog;

/// The name the embedded engine gives its catalog, as Athena calls Glue's: a query may name a
/// table `events`, `tarn.events` or `awsdatacatalog.tarn.events` (for database `tarn`).
pub const DEFAULT_CATALOG: &str = "awsdatacatalog";

/// Runs SQL with DataFusion, in process, on the tables of one catalog database.
///
/// Every query gets a fresh `SessionContext` holding the database's tables as they are in the
/// catalog at that moment (each a [`CatalogTable`]), registered unqualified in a default schema
/// named after the database. Only queries run: DDL (`CREATE`), DML (`INSERT`, `COPY`) and
/// statements (`SET`) are refused, and no file outside the catalog's locations can be named.
///
/// Object stores: `file://` locations are read from the local filesystem. Tables in any other
/// store (`s3://bucket/...`) need that store registered with [`Self::register_object_store`]
/// first; until then their queries fail with a message saying so.
#[derive(Debug, Clone)]
pub struct LocalQueryEngine {
    catalog: Arc<dyn Catalog>,
    database: String,
    runtime: Arc<RuntimeEnv>,
    /// the audit store and trail behind `cloudtrail_logs`, when opted in
    audit: Option<(
        Arc<dyn tarn_core::ObjectStore>,
        tarn_core::audit::TrailConfig,
    )>,
}

impl LocalQueryEngine {
    pub fn new(catalog: Arc<dyn Catalog>, database: impl Into<String>) -> Self {
        Self {
            catalog,
            database: database.into(),
            runtime: Arc::new(RuntimeEnv::default()),
            audit: None,
        }
    }

    /// The same engine with the access trail queryable as `cloudtrail_logs` (the Athena
    /// CloudTrail table's columns), read from the log files in `audit` at each query.
    pub fn with_audit_store(
        mut self,
        audit: Arc<dyn tarn_core::ObjectStore>,
        trail: tarn_core::audit::TrailConfig,
    ) -> Self {
        self.audit = Some((audit, trail));
        self
    }

    /// The same engine with every read of a local file recorded to `sink` as `actor`'s
    /// ([`crate::files::AuditedFiles`]); `roots` name the stores' directories and buckets.
    pub fn with_file_audit(
        self,
        sink: Arc<dyn tarn_core::audit::AuditSink>,
        actor: tarn_core::audit::Actor,
        roots: impl IntoIterator<Item = (std::path::PathBuf, String)>,
    ) -> Self {
        let files = crate::files::AuditedFiles::new(sink, actor, roots);
        self.runtime
            .register_object_store(ObjectStoreUrl::local_filesystem().as_ref(), Arc::new(files));
        self
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Serves the locations under `url` (scheme and authority, e.g. `s3://my-lake-bucket`) from
    /// `store`: the seam for reading a lake that is not on the local filesystem. Returns the
    /// store it replaces, if any.
    pub fn register_object_store(
        &self,
        url: &str,
        store: Arc<dyn ObjectStore>,
    ) -> Result<Option<Arc<dyn ObjectStore>>> {
        let url = ObjectStoreUrl::parse(url).map_err(|e| {
            QueryError::new(ErrorKind::Plan, format!("object store URL {url:?}: {e}"))
        })?;
        Ok(self.runtime.register_object_store(url.as_ref(), store))
    }

    /// A DataFusion context with the database's tables registered, as each query gets one: for
    /// `EXPLAIN`-style inspection and for callers that want DataFrames.
    pub async fn context(&self) -> Result<SessionContext> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(DEFAULT_CATALOG, &self.database)
            .with_information_schema(true);
        let ctx = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
        for def in list_tables(self.catalog.as_ref(), &self.database).await? {
            let name = def.name.clone();
            let table = CatalogTable::new(Arc::clone(&self.catalog), &self.database, def);
            ctx.register_table(
                datafusion::common::TableReference::bare(name),
                Arc::new(table),
            )?;
        }
        crate::audit::register_functions(&ctx);
        if let Some((store, trail)) = &self.audit {
            crate::audit::register_cloudtrail_table(&ctx, Arc::clone(store), trail).await?;
        }
        Ok(ctx)
    }

    /// [`crate::table_stats`] for this engine's database, through its object stores.
    pub async fn table_stats(&self) -> Result<Vec<TableStats>> {
        table_stats_with(self.catalog.as_ref(), &self.database, &self.runtime).await
    }
}

#[async_trait]
impl QueryEngine for LocalQueryEngine {
    async fn query(&self, sql: &str) -> Result<QueryResult> {
        let ctx = self.context().await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, options).await?;
        let schema = df.schema().as_arrow().clone();
        let batches = df.collect().await?;
        QueryResult::from_batches(&schema, &batches)
    }
}
