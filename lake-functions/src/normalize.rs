//! The normalize step: records to Arrow, typed by the table's catalog columns (which come from
//! its JSON Schema), plus tarn's system columns; a document's records split by partition; document
//! rows to Arrow; Arrow to Parquet, with the statistics, page indexes and bloom filters readers
//! skip data with.

use crate::error::Result;
use crate::stage::Document;
use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{
    DataType, Date32Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;
use chrono::{DateTime, SecondsFormat, Utc};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tarn_catalog::schemas::{DOCUMENTS_TABLE, SYSTEM_COLUMNS};
use tarn_catalog::types::arrow_schema;
use tarn_catalog::{TableDef, TableSpec};
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
    let mut decoder = record_decoder(schema, records.len().max(1))?;
    decoder.serialize(records).map_err(not_fitting)?;
    with_system_columns(schema, decoder.flush().map_err(not_fitting)?, doc)
}

/// An NDJSON document's records (its body, each line an object the validate stage checked) as
/// a batch of `schema`, decoded by Arrow's JSON reader straight from the bytes, with `_id`,
/// `_received_at`, `_producer` set: what [`records_batch`] makes of the parsed lines.
pub fn ndjson_batch(
    schema: &SchemaRef,
    doc: &Document,
    body: &[u8],
) -> Result<RecordBatch, String> {
    // every record is on a line of its own: a batch of more rows than lines holds them all
    let lines = body.iter().filter(|b| **b == b'\n').count() + 1;
    let mut decoder = record_decoder(schema, lines + 1)?;
    let mut rest = body;
    while !rest.is_empty() {
        let read = decoder.decode(rest).map_err(not_fitting)?;
        if read == 0 {
            return Err(
                "records do not fit the table's column types: more records than lines".into(),
            );
        }
        rest = &rest[read..];
    }
    with_system_columns(schema, decoder.flush().map_err(not_fitting)?, doc)
}

fn not_fitting(e: arrow::error::ArrowError) -> String {
    format!("records do not fit the table's column types: {e}")
}

fn is_system_column(name: &str) -> bool {
    SYSTEM_COLUMNS.iter().any(|(n, _)| *n == name)
}

/// A decoder of up to `rows` records into the columns of `schema` that records hold
/// ([`record_schema`]).
fn record_decoder(schema: &SchemaRef, rows: usize) -> Result<Decoder, String> {
    ReaderBuilder::new(record_schema(schema))
        .with_batch_size(rows)
        .build_decoder()
        .map_err(|e| e.to_string())
}

/// `schema` without tarn's system columns: the columns records are decoded into.
fn record_schema(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .filter(|f| !is_system_column(f.name()))
        .cloned()
        .collect();
    Arc::new(Schema::new(fields))
}

/// The decoded records (`decoded`, of [`record_schema`]) as a batch of `schema`: the system
/// columns added as arrays holding the document's id, received time and producer on every row.
fn with_system_columns(
    schema: &SchemaRef,
    decoded: Option<RecordBatch>,
    doc: &Document,
) -> Result<RecordBatch, String> {
    let decoded = decoded.ok_or("no rows decoded")?;
    let rows = decoded.num_rows();
    let mut user = decoded.columns().iter();
    let columns = schema
        .fields()
        .iter()
        .map(|f| {
            let constant = match f.name().as_str() {
                "_id" => doc.id.as_str(),
                "_producer" => doc.producer.as_str(),
                "_received_at" => {
                    let DataType::Timestamp(TimeUnit::Microsecond, tz) = f.data_type() else {
                        return Err(format!(
                            "_received_at is {}, not a timestamp",
                            f.data_type()
                        ));
                    };
                    let at = TimestampMicrosecondArray::from_value(
                        doc.received_at.timestamp_micros(),
                        rows,
                    )
                    .with_timezone_opt(tz.clone());
                    return Ok(Arc::new(at) as ArrayRef);
                }
                _ => {
                    return user
                        .next()
                        .cloned()
                        .ok_or_else(|| "a column was not decoded".to_string());
                }
            };
            match f.data_type() {
                DataType::Utf8 => Ok(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    constant, rows,
                ))) as ArrayRef),
                other => Err(format!("{} is {other}, not a string", f.name())),
            }
        })
        .collect::<Result<Vec<_>, String>>()?;
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| e.to_string())
}

/// A document's records (`batch`, as [`records_batch`] made it) by the `dt=` value of their
/// partition, in value order: the one partition of `received` when the table is partitioned by
/// the received time, else each record's by its partition field
/// ([`tarn_catalog::Granularity::field_partition_value`]: missing, null or out-of-window values go
/// to the default partition).
pub fn split_by_partition(
    spec: &TableSpec,
    batch: RecordBatch,
    received: DateTime<Utc>,
) -> Result<Vec<(String, RecordBatch)>, String> {
    let Some(field) = &spec.partition_field else {
        return Ok(vec![(spec.partition.partition_value(received), batch)]);
    };
    let column = batch
        .column_by_name(field)
        .ok_or_else(|| format!("the partition field {field} is not a column of the batch"))?;
    let value_at = |i: usize| -> Option<DateTime<Utc>> {
        if column.is_null(i) {
            return None;
        }
        match column.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => DateTime::from_timestamp_micros(
                column.as_primitive::<TimestampMicrosecondType>().value(i),
            ),
            DataType::Date32 => DateTime::from_timestamp(
                i64::from(column.as_primitive::<Date32Type>().value(i)) * 86_400,
                0,
            ),
            _ => None,
        }
    };
    let mut rows: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for i in 0..batch.num_rows() {
        let dt = spec.partition.field_partition_value(value_at(i), received);
        rows.entry(dt).or_default().push(i as u32);
    }
    if rows.len() == 1 {
        let dt = rows.into_keys().next().expect("one partition");
        return Ok(vec![(dt, batch)]);
    }
    rows.into_iter()
        .map(|(dt, idx)| {
            arrow::compute::take_record_batch(&batch, &UInt32Array::from(idx))
                .map(|b| (dt, b))
                .map_err(|e| e.to_string())
        })
        .collect()
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

/// The false-positive probability of tarn's bloom filters: a point lookup reads about 1 in 100
/// row groups that do not hold its value. Each filter is sized for its row group's rows and folded
/// down to the smallest size that keeps this probability.
pub const BLOOM_FPP: f64 = 0.01;

/// The most rows in one data page: the unit a page index lets a reader skip. Small enough that a
/// lookup on a sorted column reads little more than its rows, big enough that page headers and
/// index entries stay a fraction of a percent of a file.
pub const PAGE_ROWS: usize = 8192;

/// The columns of `table` whose files carry bloom filters: `documents.id` always, a JSON table's
/// declared `bloom` columns.
pub fn bloom_columns(spec: Option<&TableSpec>, table: &str) -> Vec<String> {
    if table == DOCUMENTS_TABLE {
        return vec!["id".into()];
    }
    spec.map(|s| s.bloom.clone()).unwrap_or_default()
}

/// What every Parquet file tarn writes carries, for readers to skip what a query does not need:
/// min/max statistics per row group and per page (the page-level setting writes the column and
/// offset indexes) with pages of at most [`PAGE_ROWS`] rows, and bloom filters on the `bloom`
/// columns.
pub fn writer_properties(bloom: &[String]) -> WriterPropertiesBuilder {
    let mut b = WriterProperties::builder()
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_data_page_row_count_limit(PAGE_ROWS);
    for c in bloom {
        let path = ColumnPath::from(c.as_str());
        b = b
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path, BLOOM_FPP);
    }
    b
}

/// The batches as one Parquet file (zstd), with bloom filters on the `bloom` columns
/// ([`writer_properties`]).
pub fn write_parquet(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    bloom: &[String],
) -> Result<Vec<u8>> {
    let props = writer_properties(bloom)
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

        let bytes = write_parquet(&schema, std::slice::from_ref(&batch), &[]).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
            .unwrap()
            .build()
            .unwrap();
        let back: Vec<RecordBatch> = reader.collect::<std::result::Result<_, _>>().unwrap();
        assert_eq!(back[0], batch);
    }

    #[test]
    fn ndjson_bytes_decode_as_their_parsed_records_do() {
        let def = events();
        let schema = file_schema(&def);
        let doc = doc_at("2024-05-06T07:08:09.123456Z");
        let body = concat!(
            "{\"user\": \"a\", \"n\": 1, \"amount\": 2.5, \"ok\": true, \"at\": \"2024-01-01T00:00:00Z\", \"tags\": [\"x\"], \"ctx\": {\"ip\": \"1.2.3.4\", \"port\": 80}}\r\n",
            "\n",
            "{\"user\": \"b\", \"n\": 2.0, \"_id\": \"forged\", \"extra\": [1, {\"deep\": null}]}\n",
            "{\"n\": null}  "
        );
        let records: Vec<Value> = body
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let from_bytes = ndjson_batch(&schema, &doc, body.as_bytes()).unwrap();
        assert_eq!(from_bytes, records_batch(&schema, &doc, &records).unwrap());
        assert_eq!(from_bytes.num_rows(), 3);
        let ids = from_bytes.column_by_name("_id").unwrap();
        assert!((0..3).all(|i| ids.as_string::<i32>().value(i) == doc.id));
        let at = from_bytes.column_by_name("_received_at").unwrap();
        let at = at.as_primitive::<arrow::datatypes::TimestampMicrosecondType>();
        assert_eq!(at.value(2), doc.received_at.timestamp_micros());
        assert_eq!(
            from_bytes
                .column_by_name("n")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(1),
            2
        );
        let e = ndjson_batch(&schema, &doc, b"{\"n\": \"not a number\"}\n").unwrap_err();
        assert!(
            e.starts_with("records do not fit the table's column types"),
            "{e}"
        );
    }

    fn doc_at(received: &str) -> Document {
        Document {
            id: "22222222-2222-2222-2222-222222222222".into(),
            table: "t".into(),
            content_type: "application/json".into(),
            producer: "p".into(),
            received_at: received.parse().unwrap(),
            body: Default::default(),
            detected_type: None,
            records: None,
            scan_engine: None,
            scan_result: None,
            metadata_removed: vec![],
        }
    }

    #[test]
    fn records_split_by_a_date_field_and_by_the_received_time() {
        let spec = |x: Value| {
            TableSpec::from_value(
                Path::new("t.json"),
                json!({"title": "t", "type": "object", "properties": {
                    "day": {"type": "string", "format": "date"}, "n": {"type": "integer"}},
                    "x-tarn": x}),
            )
            .unwrap()
        };
        let by_day = spec(json!({"partition": {"field": "day", "granularity": "month"}}));
        let schema = file_schema(&by_day.table_def("file:///lake/").unwrap());
        let doc = doc_at("2024-05-06T07:08:09Z");
        let records = [
            json!({"day": "2024-04-30", "n": 1}),
            json!({"day": "2024-05-01", "n": 2}),
            json!({"day": "2024-03-01", "n": 3}),
            json!({"n": 4}),
        ];
        let batch = records_batch(&schema, &doc, &records).unwrap();
        let split = split_by_partition(&by_day, batch.clone(), doc.received_at).unwrap();
        let ns = |b: &RecordBatch| {
            b.column_by_name("n")
                .unwrap()
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        };
        let got: Vec<(&str, Vec<i64>)> = split.iter().map(|(d, b)| (d.as_str(), ns(b))).collect();
        assert_eq!(
            got,
            [
                ("2024-04", vec![1]),
                ("2024-05", vec![2]),
                ("__default__", vec![3, 4])
            ]
        );
        // the received time: one partition, the batch as it is
        let by_received = spec(json!({"partition": "hour"}));
        let split = split_by_partition(&by_received, batch.clone(), doc.received_at).unwrap();
        assert_eq!(split, [("2024-05-06-07".to_string(), batch)]);
    }

    #[test]
    fn files_carry_page_indexes_and_bloom_filters_on_the_named_columns() {
        use parquet::arrow::arrow_reader::ArrowReaderOptions;
        use parquet::file::metadata::PageIndexPolicy;
        let def = events();
        let schema = file_schema(&def);
        let records: Vec<Value> = (0..20_000)
            .map(|i| json!({"user": format!("u{i}"), "n": i}))
            .collect();
        let batch = records_batch(&schema, &doc_at("2024-05-06T07:08:09Z"), &records).unwrap();
        let bytes = write_parquet(&schema, &[batch], &["user".to_string()]).unwrap();
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Required);
        let b = ParquetRecordBatchReaderBuilder::try_new_with_options(
            bytes::Bytes::from(bytes),
            options,
        )
        .unwrap();
        let meta = b.metadata().clone();
        assert_eq!(meta.num_row_groups(), 1);
        let n = schema.index_of("n").unwrap();
        // page statistics: a column index per column chunk, pages of at most PAGE_ROWS rows
        let pages = &meta.offset_index().unwrap()[0][n];
        assert_eq!(
            pages.page_locations().len(),
            20_000usize.div_ceil(PAGE_ROWS)
        );
        assert!(meta.column_index().unwrap()[0].len() == meta.row_group(0).num_columns());
        let descr = meta.file_metadata().schema_descr();
        let user = (0..descr.num_columns())
            .find(|&c| descr.column(c).path().string() == "user")
            .unwrap();
        let sbbf = b
            .get_row_group_column_bloom_filter(0, user)
            .unwrap()
            .expect("a bloom filter on user");
        assert!(sbbf.check(&"u12345") && sbbf.check(&"u0"));
        let misses = (0..1000)
            .filter(|i| sbbf.check(&format!("absent-{i}").as_str()))
            .count();
        assert!(misses < 50, "{misses} false positives in 1000");
        for c in (0..descr.num_columns()).filter(|&c| c != user) {
            assert!(b.get_row_group_column_bloom_filter(0, c).unwrap().is_none());
        }
        assert_eq!(bloom_columns(None, DOCUMENTS_TABLE), ["id"]);
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
