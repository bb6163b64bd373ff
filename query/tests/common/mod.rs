//! A temporary lake with real Parquet files and a local catalog describing it.
#![allow(dead_code)]

use arrow::array::{
    ArrayRef, Float64Array, Int64Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    StructArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tarn_catalog::{Catalog, Column, LocalCatalog, Partition, TableDef};
use tarn_query::LocalQueryEngine;

pub const DB: &str = "tarn";

pub struct Lake {
    _dir: tempfile::TempDir,
    /// the lake bucket's directory
    pub root: PathBuf,
    pub catalog: Arc<LocalCatalog>,
    pub engine: LocalQueryEngine,
}

/// One `events` row: id, name, amount, at (µs since the epoch), tags, (city, zip), note.
pub struct Event {
    pub id: i64,
    pub name: &'static str,
    pub amount: f64,
    pub at: &'static str,
    pub tags: Option<Vec<&'static str>>,
    pub address: Option<(&'static str, Option<&'static str>)>,
    pub note: Option<&'static str>,
}

pub fn ev(id: i64, name: &'static str, amount: f64, at: &'static str) -> Event {
    Event {
        id,
        name,
        amount,
        at,
        tags: None,
        address: None,
        note: None,
    }
}

pub fn events_def(lake_url: &str) -> TableDef {
    TableDef {
        name: "events".into(),
        columns: vec![
            Column::new("id", "bigint"),
            Column::new("name", "string"),
            Column::new("amount", "double"),
            Column::new("at", "timestamp"),
            Column::new("tags", "array<string>"),
            Column::new("address", "struct<city:string,zip:string>"),
            Column::new("note", "string"),
        ],
        partition_keys: vec![Column::new("dt", "string")],
        location: format!("{lake_url}tables/events/"),
        format: "parquet".into(),
        parameters: Default::default(),
    }
}

/// A Parquet batch of events; `with_note: false` writes the schema from before `note` existed.
pub fn events_batch(rows: &[Event], with_note: bool) -> RecordBatch {
    let id: ArrayRef = Arc::new(Int64Array::from(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
    ));
    let name: ArrayRef = Arc::new(StringArray::from(
        rows.iter().map(|r| r.name).collect::<Vec<_>>(),
    ));
    let amount: ArrayRef = Arc::new(Float64Array::from(
        rows.iter().map(|r| r.amount).collect::<Vec<_>>(),
    ));
    let at: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from(
            rows.iter()
                .map(|r| {
                    chrono::DateTime::parse_from_rfc3339(r.at)
                        .unwrap()
                        .timestamp_micros()
                })
                .collect::<Vec<_>>(),
        )
        .with_timezone("UTC"),
    );
    let mut tags = ListBuilder::new(StringBuilder::new());
    for r in rows {
        match &r.tags {
            Some(t) => {
                for s in t {
                    tags.values().append_value(s);
                }
                tags.append(true);
            }
            None => tags.append(false),
        }
    }
    let tags: ArrayRef = Arc::new(tags.finish());
    let city_field = Arc::new(Field::new("city", DataType::Utf8, true));
    let zip_field = Arc::new(Field::new("zip", DataType::Utf8, true));
    let cities: ArrayRef = Arc::new(StringArray::from(
        rows.iter()
            .map(|r| r.address.map(|a| a.0))
            .collect::<Vec<_>>(),
    ));
    let zips: ArrayRef = Arc::new(StringArray::from(
        rows.iter()
            .map(|r| r.address.and_then(|a| a.1))
            .collect::<Vec<_>>(),
    ));
    let valid = arrow::buffer::NullBuffer::from(
        rows.iter().map(|r| r.address.is_some()).collect::<Vec<_>>(),
    );
    let address: ArrayRef = Arc::new(StructArray::new(
        vec![city_field.clone(), zip_field.clone()].into(),
        vec![cities, zips],
        Some(valid),
    ));
    let mut fields = vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("at", at.data_type().clone(), true),
        Field::new("tags", tags.data_type().clone(), true),
        Field::new("address", address.data_type().clone(), true),
    ];
    let mut columns = vec![id, name, amount, at, tags, address];
    if with_note {
        fields.push(Field::new("note", DataType::Utf8, true));
        columns.push(Arc::new(StringArray::from(
            rows.iter().map(|r| r.note).collect::<Vec<_>>(),
        )));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

pub fn write_parquet(path: &Path, batch: &RecordBatch) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

pub fn write_garbage(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, b"this is not a parquet file, whatever its name says").unwrap();
}

impl Lake {
    /// An empty lake and catalog (database created, no tables).
    pub async fn empty() -> Lake {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("lake");
        std::fs::create_dir_all(&root).unwrap();
        let root = root.canonicalize().unwrap();
        let catalog = Arc::new(LocalCatalog::open(dir.path().join("catalog")).unwrap());
        catalog.ensure_database(DB).await.unwrap();
        let engine = LocalQueryEngine::new(catalog.clone(), DB);
        Lake {
            _dir: dir,
            root,
            catalog,
            engine,
        }
    }

    /// `file:///.../lake/`
    pub fn url(&self) -> String {
        format!("file://{}/", self.root.display())
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    pub async fn register(&self, table: &str, values: &[&str], location_key: &str) {
        let p = Partition {
            values: values.iter().map(|v| v.to_string()).collect(),
            location: format!("{}{location_key}", self.url()),
        };
        self.catalog.add_partitions(DB, table, &[p]).await.unwrap();
    }

    /// The `events` table: dt=2024-01-01 (3 rows, with `note`), dt=2024-01-02 (2 rows, written
    /// before `note` existed), both registered; dt=2024-01-03 (1 row) written, not registered;
    /// hidden and non-Parquet files beside them that would fail the query if read.
    pub async fn with_events() -> Lake {
        let lake = Lake::empty().await;
        lake.catalog
            .upsert_table(DB, &events_def(&lake.url()))
            .await
            .unwrap();
        let day1 = [
            Event {
                tags: Some(vec!["a", "b"]),
                address: Some(("Oslo", Some("0150"))),
                note: Some("first"),
                ..ev(1, "alice", 10.5, "2024-01-01T10:00:00Z")
            },
            Event {
                tags: Some(vec![]),
                address: Some(("Bergen", None)),
                ..ev(2, "bob", 20.0, "2024-01-01T11:30:00.5Z")
            },
            Event {
                note: Some("third, \"quoted\""),
                ..ev(3, "carol", 30.25, "2024-01-01T12:00:00Z")
            },
        ];
        write_parquet(
            &lake.path("tables/events/dt=2024-01-01/part-0.parquet"),
            &events_batch(&day1, true),
        );
        let day2 = [
            ev(4, "dave", 1.0, "2024-01-02T00:00:00Z"),
            ev(5, "erin", 2.0, "2024-01-02T23:59:59Z"),
        ];
        write_parquet(
            &lake.path("tables/events/dt=2024-01-02/part-0.parquet"),
            &events_batch(&day2, false),
        );
        let day3 = [ev(6, "frank", 100.0, "2024-01-03T08:00:00Z")];
        write_parquet(
            &lake.path("tables/events/dt=2024-01-03/part-0.parquet"),
            &events_batch(&day3, true),
        );
        // never read: hidden names, hidden directories, other extensions
        write_garbage(&lake.path("tables/events/dt=2024-01-01/_tmp-part.parquet"));
        write_garbage(&lake.path("tables/events/dt=2024-01-01/.part-1.parquet.crc.parquet"));
        write_garbage(&lake.path("tables/events/dt=2024-01-01/_staging/part-9.parquet"));
        write_garbage(&lake.path("tables/events/dt=2024-01-01/.spark/part-9.parquet"));
        write_garbage(&lake.path("tables/events/dt=2024-01-02/notes.txt"));
        write_garbage(&lake.path("tables/events/dt=2024-01-02/_SUCCESS"));
        lake.register("events", &["2024-01-01"], "tables/events/dt=2024-01-01/")
            .await;
        lake.register("events", &["2024-01-02"], "tables/events/dt=2024-01-02/")
            .await;
        lake
    }
}
