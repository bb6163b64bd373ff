//! A batch's plan and its writes: which Parquet file each table partition gets (under the
//! partition's *current* catalog location, named after the batch and the attempt: a redo of a
//! batch deletes the earlier attempt's files first, so no name is ever written twice), and
//! writing the quarantine copies, sanitized objects, Parquet files and partitions. Every write is
//! idempotent.

use crate::error::Result;
use crate::lake::Lake;
use crate::normalize::{bloom_columns, documents_batch, write_parquet};
use arrow::array::RecordBatch;
use bytes::Bytes;
use std::collections::BTreeMap;
use tarn_catalog::Partition;
use tarn_catalog::schemas::DOCUMENTS_TABLE;
use tarn_core::document::{meta, quarantine_key};
use tarn_core::{DocumentRow, GetResult, Status, objects};
use tracing::warn;

/// What a batch writes for one document.
#[derive(Debug, Clone)]
pub struct BatchItem {
    /// its `documents` row (and status record)
    pub row: DocumentRow,
    /// JSON documents: their rows by the `dt=` value of their partition, for
    /// `tables/<table>/dt=<dt>/` (several when the table is partitioned by a record field)
    pub data: Vec<(String, RecordBatch)>,
    /// binary documents: the sanitized bytes, for `objects/<table>/dt=<dt>/<id>`
    pub object: Option<Bytes>,
    /// rejected or quarantined: the landed object, copied to quarantine as it is
    pub landed: Option<GetResult>,
    /// set when the item moves an already processed document on ([`super::revision`])
    pub revision: Option<super::Revision>,
}

impl BatchItem {
    /// Rejected or quarantined, without the landed object its quarantine copy is made of.
    pub fn needs_landed(&self) -> bool {
        matches!(self.row.status, Status::Rejected | Status::Quarantined) && self.landed.is_none()
    }
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

/// The lake key prefixes (ending in `/`) of a table's registered partitions' locations.
pub async fn partition_dirs(lake: &Lake, table: &str) -> Result<BTreeMap<Vec<String>, String>> {
    let root = &lake.layout.lake_root;
    let mut out = BTreeMap::new();
    for p in lake.catalog.get_partitions(&lake.database, table).await? {
        match p.location.strip_prefix(root.as_str()) {
            Some(dir) => {
                out.insert(p.values, dir.to_string());
            }
            None => {
                warn!(table, location = %p.location, lake = %root, "a partition is outside the lake; writing to its Hive directory")
            }
        }
    }
    Ok(out)
}

/// Plans an attempt at a batch, its files named `part-<stem>.parquet`: sorts `items` by id and
/// takes their rows' data into the plan. Called holding the lake's write lock, which keeps
/// partition locations where they are until the commit.
pub async fn plan(lake: &Lake, stem: &str, items: &mut [BatchItem]) -> Result<BatchPlan> {
    let defs = &lake.layout.defs;
    items.sort_by(|a, b| a.row.id.cmp(&b.row.id));
    let rows: Vec<DocumentRow> = items.iter().map(|i| i.row.clone()).collect();
    let file_name = format!("part-{stem}.parquet");
    let mut data: BTreeMap<(String, Vec<String>), Vec<RecordBatch>> = BTreeMap::new();
    for it in items.iter_mut() {
        for (dt, b) in std::mem::take(&mut it.data) {
            data.entry((it.row.table_name.clone(), vec![dt]))
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
            current.insert(table, partition_dirs(lake, table).await?);
        }
    }
    let key_in = |table: &str, values: &Vec<String>| -> String {
        match current.get(table).and_then(|m| m.get(values)) {
            Some(dir) => format!("{dir}{file_name}"),
            None => format!(
                "tables/{table}/{}/{file_name}",
                defs[table].0.partition_path(values)
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

/// Writes the items' quarantine copies and sanitized objects and the plan's Parquet files, then
/// registers the partitions. Idempotent.
pub async fn write(lake: &Lake, plan: &BatchPlan, items: &[BatchItem]) -> Result<()> {
    for it in items {
        let (table, id) = (&it.row.table_name, &it.row.id);
        if let Some(landed) = &it.landed {
            let mut m = landed.info.metadata.clone();
            m.insert(
                meta::REASON.into(),
                it.row.reason.clone().unwrap_or_default(),
            );
            lake.quarantine
                .put(&quarantine_key(table, id), landed.body.clone(), m)
                .await?;
        }
        if let (Some(body), Some(key)) = (&it.object, &it.row.object_key) {
            let content_type = it
                .row
                .detected_type
                .as_deref()
                .unwrap_or(&it.row.content_type);
            objects::put_sanitized(
                lake.lake.as_ref(),
                lake.kms.as_ref(),
                table,
                id,
                key,
                content_type,
                body,
            )
            .await?;
        }
    }
    let mut partitions: BTreeMap<&str, Vec<Partition>> = BTreeMap::new();
    for f in &plan.files {
        let (def, schema) = &lake.layout.defs[&f.table];
        let bloom = bloom_columns(lake.layout.specs.get(&f.table), &f.table);
        let body = if f.table == DOCUMENTS_TABLE {
            documents_batch(schema, &plan.doc_rows[&f.values])
                .and_then(|b| write_parquet(schema, &[b], &bloom))?
        } else {
            write_parquet(
                schema,
                &plan.data[&(f.table.clone(), f.values.clone())],
                &bloom,
            )?
        };
        lake.lake
            .put(&f.key, body.into(), Default::default())
            .await?;
        partitions.entry(&f.table).or_default().push(Partition {
            values: f.values.clone(),
            location: format!("{}{}/", def.location, def.partition_path(&f.values)),
        });
    }
    for (table, parts) in &partitions {
        lake.catalog
            .add_partitions(&lake.database, table, parts)
            .await?;
    }
    Ok(())
}
