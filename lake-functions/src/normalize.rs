//! The normalize step: records to Arrow, typed by the table's catalog columns (which come from
//! its JSON Schema), plus tarn's system columns; document rows to Arrow; Arrow to Parquet.

use crate::error::Result;
use crate::stage::Document;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::json::ReaderBuilder;
use chrono::SecondsFormat;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde_json::Value;
use std::sync::Arc;
use tarn_catalog::TableDef;
use tarn_catalog::types::arrow_schema;
use tarn_core::DocumentRow;

/// The Arrow schema of a table's files: its columns, without the partition keys (those live in
/// the path, Hive style).
pub fn file_schema(def: &TableDef) -> SchemaRef {
    Arc::new(arrow_schema(&def.columns))
}

/// The lake bucket's root URL, ending in `/` (catalog locations hang off it).
pub fn lake_root(lake: &dyn tarn_core::ObjectStore) -> String {
    let mut root = lake.url("");
    if !root.ends_with('/') {
        root.push('/');
    }
    root
}

/// Every table the lake writes, by name, with its file schema: the JSON tables of `tables`
/// and `documents`.
pub fn table_defs(
    tables: &[tarn_catalog::TableSpec],
    lake_root: &str,
) -> std::collections::BTreeMap<String, (TableDef, SchemaRef)> {
    let mut defs = std::collections::BTreeMap::new();
    for def in tables
        .iter()
        .filter_map(|spec| spec.table_def(lake_root))
        .chain([tarn_catalog::documents_table(lake_root)])
    {
        let schema = file_schema(&def);
        defs.insert(def.name.clone(), (def, schema));
    }
    defs
}

/// One document's records as a batch of `schema`, with `_id`, `_received_at`, `_producer` set.
/// Errors (a value the schema allowed but the column type cannot hold) name the record.
pub fn records_batch(
    schema: &SchemaRef,
    doc: &Document,
    records: &[Value],
) -> Result<RecordBatch, String> {
    let received = doc.received_at.to_rfc3339_opts(SecondsFormat::Micros, true);
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(records.len().max(1))
        .build_decoder()
        .map_err(|e| e.to_string())?;
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Value::Object(m) = &mut r {
                m.insert("_id".into(), Value::String(doc.id.clone()));
                m.insert("_received_at".into(), Value::String(received.clone()));
                m.insert("_producer".into(), Value::String(doc.producer.clone()));
            }
            r
        })
        .collect();
    decoder
        .serialize(&rows)
        .map_err(|e| format!("records do not fit the table's column types: {e}"))?;
    let batch = decoder
        .flush()
        .map_err(|e| e.to_string())?
        .ok_or("no rows decoded")?;
    Ok(batch)
}

/// Document rows as a batch of the `documents` table's file schema.
pub fn documents_batch(schema: &SchemaRef, rows: &[DocumentRow]) -> Result<RecordBatch> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_batch_size(rows.len().max(1))
        .build_decoder()?;
    let values: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).expect("a row serializes");
            if let Value::Object(m) = &mut v {
                // timestamps with microseconds, as every other timestamp tarn writes
                m.insert(
                    "received_at".into(),
                    Value::String(r.received_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
                );
                m.insert(
                    "processed_at".into(),
                    Value::String(r.processed_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
                );
            }
            v
        })
        .collect();
    decoder.serialize(&values)?;
    Ok(decoder
        .flush()?
        .unwrap_or_else(|| RecordBatch::new_empty(schema.clone())))
}

/// The batches as one Parquet file (zstd).
pub fn write_parquet(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(1)?))
        .set_created_by("tarn".into())
        .build();
    let mut out = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{DataType, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::json;
    use std::path::Path;
    use tarn_catalog::TableSpec;

    fn events() -> TableDef {
        TableSpec::from_value(
            Path::new("events.json"),
            json!({"title": "events", "type": "object", "properties": {
                "user": {"type": "string"}, "n": {"type": "integer"}, "amount": {"type": "number"},
                "ok": {"type": "boolean"}, "at": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "ctx": {"type": "object", "properties": {"ip": {"type": "string"}, "port": {"type": "integer"}}}}}),
        )
        .unwrap()
        .table_def("file:///lake/")
        .unwrap()
    }

    #[test]
    fn records_become_typed_columns_and_parquet() {
        let def = events();
        let schema = file_schema(&def);
        let doc = Document {
            id: "11111111-1111-1111-1111-111111111111".into(),
            table: "events".into(),
            content_type: "application/json".into(),
            producer: "alice".into(),
            received_at: "2024-05-06T07:08:09.5Z".parse().unwrap(),
            body: Default::default(),
            detected_type: None,
            records: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
        };
        let records = vec![
            json!({"user": "a", "n": 1, "amount": 2.5, "ok": true, "at": "2024-01-01T00:00:00Z", "tags": ["x", "y"], "ctx": {"ip": "1.2.3.4", "port": 80}}),
            json!({"user": "b", "extra": "ignored"}),
        ];
        let batch = records_batch(&schema, &doc, &records).unwrap();
        assert_eq!(batch.num_rows(), 2);
        let col = |n: &str| batch.column(schema.index_of(n).unwrap()).clone();
        assert_eq!(col("n").data_type(), &DataType::Int64);
        assert_eq!(
            col("at").data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into()))
        );
        assert_eq!(col("_id").as_string::<i32>().value(1), doc.id);
        assert_eq!(col("_producer").as_string::<i32>().value(0), "alice");
        let received = col("_received_at");
        let ts = received.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(ts.value(0), doc.received_at.timestamp_micros());
        assert!(col("n").is_null(1));

        let bytes = write_parquet(&schema, std::slice::from_ref(&batch)).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let back: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(back[0], batch);
    }

    #[test]
    fn values_that_do_not_fit_are_reported() {
        let def = events();
        let schema = file_schema(&def);
        let doc = Document {
            id: "x".into(),
            table: "events".into(),
            content_type: "application/json".into(),
            producer: "p".into(),
            received_at: chrono::Utc::now(),
            body: Default::default(),
            detected_type: None,
            records: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
        };
        assert!(records_batch(&schema, &doc, &[json!({"n": "not a number"})]).is_err());
    }
}
