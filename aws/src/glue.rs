//! [`GlueCatalog`]: the catalog port on AWS Glue.
//!
//! Tables are external Parquet tables (`ParquetHiveSerDe`, `MapredParquetInputFormat` /
//! `MapredParquetOutputFormat`); partitions copy the table's storage descriptor with their own
//! location. `add_partitions` sends `BatchCreatePartition` in chunks of at most 100 and counts
//! `AlreadyExistsException` entries as "already there" (idempotent); any other per-entry error
//! fails the call naming the partition. `get_partitions` and `list_tables` page with `NextToken`.

use crate::s3::describe;
use async_trait::async_trait;
use aws_sdk_glue::Client;
use aws_sdk_glue::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, PartitionInput, SerDeInfo, StorageDescriptor, TableInput,
};
use tarn_catalog::{Catalog, CatalogError, Column, Partition, Result, TableDef};

pub const PARQUET_SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
pub const PARQUET_INPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const PARQUET_OUTPUT_FORMAT: &str =
    "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
/// Glue takes at most this many partitions per `BatchCreatePartition`.
pub const BATCH_CREATE_LIMIT: usize = 100;

#[derive(Clone)]
pub struct GlueCatalog {
    client: Client,
}

impl std::fmt::Debug for GlueCatalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlueCatalog").finish_non_exhaustive()
    }
}

fn code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<&str> {
    match e {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

fn svc<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    op: &str,
    what: &str,
    e: &SdkError<E, R>,
) -> CatalogError {
    CatalogError::Service(format!("glue {op} {what}: {}", describe(e)))
}

fn not_found(what: &'static str, name: impl Into<String>) -> CatalogError {
    CatalogError::NotFound {
        what,
        name: name.into(),
    }
}

fn glue_column(c: &Column) -> Result<GlueColumn> {
    GlueColumn::builder()
        .name(&c.name)
        .r#type(&c.data_type)
        .set_comment(c.comment.clone())
        .build()
        .map_err(|e| CatalogError::Service(format!("glue column {}: {e}", c.name)))
}

fn tarn_column(c: &GlueColumn) -> Column {
    Column {
        name: c.name().to_string(),
        data_type: c.r#type().unwrap_or("string").to_string(),
        comment: c.comment().map(String::from),
    }
}

fn storage(def: &TableDef, location: &str) -> Result<StorageDescriptor> {
    let columns = def
        .columns
        .iter()
        .map(glue_column)
        .collect::<Result<Vec<_>>>()?;
    let (input, output, serde) = match def.format.as_str() {
        "parquet" => (PARQUET_INPUT_FORMAT, PARQUET_OUTPUT_FORMAT, PARQUET_SERDE),
        other => {
            return Err(CatalogError::Incompatible {
                table: def.name.clone(),
                reason: format!("format {other:?} is not supported on Glue; use parquet"),
            });
        }
    };
    Ok(StorageDescriptor::builder()
        .set_columns(Some(columns))
        .location(location)
        .input_format(input)
        .output_format(output)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(serde)
                .parameters("serialization.format", "1")
                .build(),
        )
        .build())
}

fn format_of(sd: Option<&StorageDescriptor>) -> String {
    let input = sd.and_then(|s| s.input_format()).unwrap_or_default();
    let serde = sd
        .and_then(|s| s.serde_info())
        .and_then(|s| s.serialization_library())
        .unwrap_or_default();
    if input.contains("Parquet") || serde.contains("parquet") {
        "parquet".into()
    } else {
        input.to_string()
    }
}

fn table_def(t: &aws_sdk_glue::types::Table) -> TableDef {
    let sd = t.storage_descriptor();
    TableDef {
        name: t.name().to_string(),
        columns: sd
            .map(|s| s.columns().iter().map(tarn_column).collect())
            .unwrap_or_default(),
        partition_keys: t.partition_keys().iter().map(tarn_column).collect(),
        location: sd
            .and_then(|s| s.location())
            .unwrap_or_default()
            .to_string(),
        format: format_of(sd),
        parameters: t
            .parameters()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
    }
}

impl GlueCatalog {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn table_input(def: &TableDef) -> Result<TableInput> {
        TableInput::builder()
            .name(&def.name)
            .table_type("EXTERNAL_TABLE")
            .set_parameters(Some(def.parameters.clone().into_iter().collect()))
            .set_partition_keys(Some(
                def.partition_keys
                    .iter()
                    .map(glue_column)
                    .collect::<Result<Vec<_>>>()?,
            ))
            .storage_descriptor(storage(def, &def.location)?)
            .build()
            .map_err(|e| CatalogError::Service(format!("glue table {}: {e}", def.name)))
    }

    async fn table_or_not_found(&self, database: &str, table: &str) -> Result<TableDef> {
        self.get_table(database, table)
            .await?
            .ok_or_else(|| not_found("table", format!("{database}.{table}")))
    }
}

#[async_trait]
impl Catalog for GlueCatalog {
    async fn ensure_database(&self, database: &str) -> Result<()> {
        let input = DatabaseInput::builder()
            .name(database)
            .description("tarn's lake tables")
            .build()
            .map_err(|e| CatalogError::Service(format!("glue database {database}: {e}")))?;
        match self
            .client
            .create_database()
            .database_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("AlreadyExistsException") => Ok(()),
            Err(e) => Err(svc("CreateDatabase", database, &e)),
        }
    }

    async fn upsert_table(&self, database: &str, def: &TableDef) -> Result<()> {
        let input = Self::table_input(def)?;
        let what = format!("{database}.{}", def.name);
        if self.get_table(database, &def.name).await?.is_some() {
            return self
                .client
                .update_table()
                .database_name(database)
                .table_input(input)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| svc("UpdateTable", &what, &e));
        }
        match self
            .client
            .create_table()
            .database_name(database)
            .table_input(input.clone())
            .send()
            .await
        {
            Ok(_) => Ok(()),
            // created meanwhile by someone else: update it
            Err(e) if code(&e) == Some("AlreadyExistsException") => self
                .client
                .update_table()
                .database_name(database)
                .table_input(input)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| svc("UpdateTable", &what, &e)),
            Err(e) if code(&e) == Some("EntityNotFoundException") => {
                Err(not_found("database", database))
            }
            Err(e) => Err(svc("CreateTable", &what, &e)),
        }
    }

    async fn get_table(&self, database: &str, name: &str) -> Result<Option<TableDef>> {
        match self
            .client
            .get_table()
            .database_name(database)
            .name(name)
            .send()
            .await
        {
            Ok(out) => Ok(out.table().map(table_def)),
            Err(e) if code(&e) == Some("EntityNotFoundException") => Ok(None),
            Err(e) => Err(svc("GetTable", &format!("{database}.{name}"), &e)),
        }
    }

    async fn list_tables(&self, database: &str) -> Result<Vec<TableDef>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = match self
                .client
                .get_tables()
                .database_name(database)
                .set_next_token(token.take())
                .send()
                .await
            {
                Ok(p) => p,
                Err(e) if code(&e) == Some("EntityNotFoundException") => return Ok(vec![]),
                Err(e) => return Err(svc("GetTables", database, &e)),
            };
            out.extend(page.table_list().iter().map(table_def));
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    async fn add_partitions(
        &self,
        database: &str,
        table: &str,
        partitions: &[Partition],
    ) -> Result<usize> {
        let def = self.table_or_not_found(database, table).await?;
        let what = format!("{database}.{table}");
        let mut created = 0;
        for chunk in partitions.chunks(BATCH_CREATE_LIMIT) {
            let inputs = chunk
                .iter()
                .map(|p| {
                    Ok(PartitionInput::builder()
                        .set_values(Some(p.values.clone()))
                        .storage_descriptor(storage(&def, &p.location)?)
                        .build())
                })
                .collect::<Result<Vec<_>>>()?;
            let out = self
                .client
                .batch_create_partition()
                .database_name(database)
                .table_name(table)
                .set_partition_input_list(Some(inputs))
                .send()
                .await
                .map_err(|e| match code(&e) {
                    Some("EntityNotFoundException") => not_found("table", what.clone()),
                    _ => svc("BatchCreatePartition", &what, &e),
                })?;
            let mut existing = 0;
            for err in out.errors() {
                let detail = err.error_detail();
                match detail.and_then(|d| d.error_code()) {
                    Some("AlreadyExistsException") => existing += 1,
                    other => {
                        return Err(CatalogError::Service(format!(
                            "glue BatchCreatePartition {what}: partition {:?}: {}: {}",
                            err.partition_values(),
                            other.unwrap_or("error"),
                            detail
                                .and_then(|d| d.error_message())
                                .unwrap_or("(no message)")
                        )));
                    }
                }
            }
            created += chunk.len() - existing;
        }
        Ok(created)
    }

    async fn update_partition(
        &self,
        database: &str,
        table: &str,
        values: &[String],
        location: &str,
    ) -> Result<()> {
        let def = self.table_or_not_found(database, table).await?;
        let what = format!("{database}.{table} {values:?}");
        // UpdatePartition replaces the whole partition input; make sure it exists first, so a
        // missing partition is NotFound whatever the service does
        match self
            .client
            .get_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_values(Some(values.to_vec()))
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if code(&e) == Some("EntityNotFoundException") => {
                return Err(not_found("partition", what));
            }
            Err(e) => return Err(svc("GetPartition", &what, &e)),
        }
        let input = PartitionInput::builder()
            .set_values(Some(values.to_vec()))
            .storage_descriptor(storage(&def, location)?)
            .build();
        match self
            .client
            .update_partition()
            .database_name(database)
            .table_name(table)
            .set_partition_value_list(Some(values.to_vec()))
            .partition_input(input)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("EntityNotFoundException") => {
                Err(not_found("partition", what))
            }
            Err(e) => Err(svc("UpdatePartition", &what, &e)),
        }
    }

    async fn get_partitions(&self, database: &str, table: &str) -> Result<Vec<Partition>> {
        let what = format!("{database}.{table}");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .get_partitions()
                .database_name(database)
                .table_name(table)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| match code(&e) {
                    Some("EntityNotFoundException") => not_found("table", what.clone()),
                    _ => svc("GetPartitions", &what, &e),
                })?;
            for p in page.partitions() {
                out.push(Partition {
                    values: p.values().to_vec(),
                    location: p
                        .storage_descriptor()
                        .and_then(|s| s.location())
                        .unwrap_or_default()
                        .to_string(),
                });
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.values.cmp(&b.values));
        Ok(out)
    }
}
