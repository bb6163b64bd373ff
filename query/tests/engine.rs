mod common;

use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use tarn_catalog::{Catalog, Column, TableDef, documents_table};
use tarn_query::{ErrorKind, LocalQueryEngine, OutputFormat, QueryEngine, QueryResult};

async fn rows(engine: &LocalQueryEngine, sql: &str) -> Vec<Vec<Value>> {
    match engine.query(sql).await {
        Ok(r) => r.rows,
        Err(e) => panic!("{sql}: {e}"),
    }
}

#[tokio::test]
async fn counts_and_sums_per_partition() {
    let lake = Lake::with_events().await;
    let r = lake
        .engine
        .query("SELECT dt, count(*) AS n, sum(amount) AS total, min(id) AS first FROM events GROUP BY dt ORDER BY dt")
        .await
        .unwrap();
    let cols: Vec<(&str, &str)> = r
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect();
    assert_eq!(
        cols,
        [
            ("dt", "string"),
            ("n", "bigint"),
            ("total", "double"),
            ("first", "bigint")
        ]
    );
    assert_eq!(
        r.rows,
        vec![
            vec![json!("2024-01-01"), json!(3), json!(60.75), json!(1)],
            vec![json!("2024-01-02"), json!(2), json!(3.0), json!(4)]
        ]
    );
    assert_eq!(
        rows(&lake.engine, "SELECT count(*) FROM events").await,
        vec![vec![json!(5)]]
    );
    // partition columns alone, filters mixing them with data columns, limits, subqueries, joins
    assert_eq!(
        rows(&lake.engine, "SELECT DISTINCT dt FROM events ORDER BY dt").await,
        vec![vec![json!("2024-01-01")], vec![json!("2024-01-02")]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE dt = '2024-01-01' OR id = 4"
        )
        .await,
        vec![vec![json!(4)]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT id FROM events WHERE dt = '2024-01-02' LIMIT 1"
        )
        .await
        .len(),
        1
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE dt = (SELECT max(dt) FROM events)"
        )
        .await,
        vec![vec![json!(2)]]
    );
    assert_eq!(
        rows(&lake.engine, "SELECT e.id, p.id AS prev FROM events e JOIN events p ON e.id = p.id + 1 WHERE e.dt = '2024-01-02' ORDER BY e.id").await,
        vec![vec![json!(4), json!(3)], vec![json!(5), json!(4)]]
    );
}

#[tokio::test]
async fn a_partition_filter_reads_only_that_partition_and_never_lists_the_others() {
    let lake = Lake::with_events().await;
    // a registered partition holding a corrupt file: any query that reads it fails
    write_garbage(&lake.path("tables/events/dt=2024-01-09/part-0.parquet"));
    lake.register("events", &["2024-01-09"], "tables/events/dt=2024-01-09/")
        .await;
    let err = lake
        .engine
        .query("SELECT count(*) FROM events")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io, "{err}");

    assert_eq!(
        rows(
            &lake.engine,
            "SELECT id, dt FROM events WHERE dt = '2024-01-02' ORDER BY id"
        )
        .await,
        vec![
            vec![json!(4), json!("2024-01-02")],
            vec![json!(5), json!("2024-01-02")]
        ]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE dt IN ('2024-01-01', '2024-01-02') AND amount > 5"
        )
        .await,
        vec![vec![json!(3)]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE dt < '2024-01-05'"
        )
        .await,
        vec![vec![json!(5)]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE events.dt LIKE '2024-01-0_' AND dt <> '2024-01-09'"
        )
        .await,
        vec![vec![json!(5)]]
    );
    // a filter mixing partition and data columns cannot prune: it reads the corrupt file
    let err = lake
        .engine
        .query("SELECT count(*) FROM events WHERE dt = '2024-01-01' OR id = 4")
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
}

#[tokio::test]
async fn only_registered_partitions_are_visible() {
    let lake = Lake::with_events().await;
    assert_eq!(
        rows(&lake.engine, "SELECT count(*) FROM events WHERE id = 6").await,
        vec![vec![json!(0)]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE dt = '2024-01-03'"
        )
        .await,
        vec![vec![json!(0)]]
    );
    lake.register("events", &["2024-01-03"], "tables/events/dt=2024-01-03/")
        .await;
    assert_eq!(
        rows(&lake.engine, "SELECT name, dt FROM events WHERE id = 6").await,
        vec![vec![json!("frank"), json!("2024-01-03")]]
    );
    // a registered partition whose directory does not exist has no rows
    lake.register("events", &["2024-02-01"], "tables/events/dt=2024-02-01/")
        .await;
    assert_eq!(
        rows(&lake.engine, "SELECT count(*) FROM events").await,
        vec![vec![json!(6)]]
    );
}

#[tokio::test]
async fn a_swapped_partition_shows_only_its_new_files() {
    let lake = Lake::with_events().await;
    // compaction: day 1 rewritten as one file under a new prefix, then the location swapped
    let compacted = [
        ev(1, "alice", 10.5, "2024-01-01T10:00:00Z"),
        ev(3, "carol", 30.25, "2024-01-01T12:00:00Z"),
    ];
    write_parquet(
        &lake.path("tables/events/dt=2024-01-01.c1/part-0.parquet"),
        &events_batch(&compacted, true),
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE dt = '2024-01-01'"
        )
        .await,
        vec![vec![json!(3)]]
    );
    lake.catalog
        .update_partition(
            DB,
            "events",
            &["2024-01-01".to_string()],
            &format!("{}tables/events/dt=2024-01-01.c1/", lake.url()),
        )
        .await
        .unwrap();
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT id, dt FROM events WHERE dt = '2024-01-01' ORDER BY id"
        )
        .await,
        vec![
            vec![json!(1), json!("2024-01-01")],
            vec![json!(3), json!("2024-01-01")]
        ]
    );
    assert_eq!(
        rows(&lake.engine, "SELECT count(*) FROM events").await,
        vec![vec![json!(4)]]
    );
}

#[tokio::test]
async fn files_without_a_newer_column_read_it_as_null() {
    let lake = Lake::with_events().await;
    assert_eq!(
        rows(&lake.engine, "SELECT id, note FROM events ORDER BY id").await,
        vec![
            vec![json!(1), json!("first")],
            vec![json!(2), Value::Null],
            vec![json!(3), json!("third, \"quoted\"")],
            vec![json!(4), Value::Null],
            vec![json!(5), Value::Null],
        ]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE note IS NULL"
        )
        .await,
        vec![vec![json!(3)]]
    );
}

#[tokio::test]
async fn timestamps_structs_and_lists_come_back_as_json() {
    let lake = Lake::with_events().await;
    let r = lake
        .engine
        .query("SELECT id, at, tags, address FROM events WHERE dt = '2024-01-01' ORDER BY id")
        .await
        .unwrap();
    let types: Vec<&str> = r.columns.iter().map(|c| c.data_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "bigint",
            "timestamp",
            "array<string>",
            "struct<city:string,zip:string>"
        ]
    );
    assert_eq!(
        r.rows,
        vec![
            vec![
                json!(1),
                json!("2024-01-01T10:00:00Z"),
                json!(["a", "b"]),
                json!({"city": "Oslo", "zip": "0150"})
            ],
            vec![
                json!(2),
                json!("2024-01-01T11:30:00.500Z"),
                json!([]),
                json!({"city": "Bergen", "zip": null})
            ],
            vec![
                json!(3),
                json!("2024-01-01T12:00:00Z"),
                Value::Null,
                Value::Null
            ],
        ]
    );
    // timestamps compare with ISO strings, struct fields and list elements are reachable
    assert_eq!(
        rows(&lake.engine, "SELECT id, address['city'] AS city, tags[1] AS first_tag FROM events WHERE at > '2024-01-01T10:30:00Z' AND dt = '2024-01-01' ORDER BY id").await,
        vec![vec![json!(2), json!("Bergen"), Value::Null], vec![json!(3), Value::Null, Value::Null]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM events WHERE array_has(tags, 'b')"
        )
        .await,
        vec![vec![json!(1)]]
    );
    // a zone other than UTC keeps its offset; a timestamp without zone has none
    assert_eq!(
        rows(&lake.engine, "SELECT at AT TIME ZONE 'Europe/Oslo', CAST('2024-01-01T10:00:00' AS TIMESTAMP) FROM events WHERE id = 1").await,
        vec![vec![json!("2024-01-01T11:00:00+01:00"), json!("2024-01-01T10:00:00")]]
    );
}

#[tokio::test]
async fn each_renderer_prints_a_small_result_exactly() {
    let lake = Lake::with_events().await;
    let r = lake
        .engine
        .query("SELECT id, name, note, at, tags FROM events WHERE dt = '2024-01-01' ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        r.render(OutputFormat::Json),
        r#"[
{"id":1,"name":"alice","note":"first","at":"2024-01-01T10:00:00Z","tags":["a","b"]},
{"id":2,"name":"bob","note":null,"at":"2024-01-01T11:30:00.500Z","tags":[]},
{"id":3,"name":"carol","note":"third, \"quoted\"","at":"2024-01-01T12:00:00Z","tags":null}
]
"#
    );
    let parsed: Value = serde_json::from_str(&r.render(OutputFormat::Json)).unwrap();
    assert_eq!(parsed[2]["note"], "third, \"quoted\"");
    assert_eq!(
        r.render(OutputFormat::Csv),
        "id,name,note,at,tags\n\
         1,alice,first,2024-01-01T10:00:00Z,\"[\"\"a\"\",\"\"b\"\"]\"\n\
         2,bob,,2024-01-01T11:30:00.500Z,[]\n\
         3,carol,\"third, \"\"quoted\"\"\",2024-01-01T12:00:00Z,\n"
    );
    assert_eq!(
        r.render(OutputFormat::Table),
        "\
+----+-------+-----------------+--------------------------+-----------+
| id | name  | note            | at                       | tags      |
+----+-------+-----------------+--------------------------+-----------+
|  1 | alice | first           | 2024-01-01T10:00:00Z     | [\"a\",\"b\"] |
|  2 | bob   | NULL            | 2024-01-01T11:30:00.500Z | []        |
|  3 | carol | third, \"quoted\" | 2024-01-01T12:00:00Z     | NULL      |
+----+-------+-----------------+--------------------------+-----------+
"
    );
}

#[tokio::test]
async fn sql_mistakes_are_errors_of_a_matchable_kind_with_the_engine_message() {
    let lake = Lake::with_events().await;
    let e = lake.engine.query("SELEC id FROM events").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Sql, "{e}");
    let m = e.to_string();
    assert!(m.starts_with("sql syntax error: expected"), "{m}");
    assert!(m.contains("SELEC"), "{m}");
    assert!(!m.ends_with('.'), "{m}");

    let e = lake.engine.query("SELECT id FROM nope").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Plan, "{e}");
    assert!(
        e.to_string().contains("nope") && e.to_string().contains("not found"),
        "{e}"
    );

    let e = lake
        .engine
        .query("SELECT missing_column FROM events")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Plan, "{e}");
    assert!(e.to_string().contains("missing_column"), "{e}");
    assert!(!e.to_string().contains('\n'), "one line: {e}");

    let e = lake
        .engine
        .query("SELECT CAST('x' AS INT)")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Execution, "{e}");

    // no file outside the catalog can be named
    let e = lake
        .engine
        .query("SELECT * FROM 'file:///etc/hostname'")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Plan, "{e}");

    for refused in [
        "CREATE TABLE x (a INT)",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
        "INSERT INTO events (id) VALUES (1)",
        "COPY events TO '/tmp/out.csv'",
        "SET datafusion.execution.batch_size = 1",
        "SELECT 1; SELECT 2",
    ] {
        let e = lake.engine.query(refused).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Plan, "{refused}: {e}");
    }
}

#[tokio::test]
async fn names_resolve_as_athena_resolves_them() {
    let lake = Lake::with_events().await;
    for sql in [
        "SELECT count(*) FROM events;",
        "SELECT count(*) FROM tarn.events",
        "SELECT count(*) FROM awsdatacatalog.tarn.events",
        "select COUNT(*) from EVENTS",
    ] {
        assert_eq!(rows(&lake.engine, sql).await, vec![vec![json!(5)]], "{sql}");
    }
    let tables = rows(
        &lake.engine,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'tarn'",
    )
    .await;
    assert_eq!(tables, vec![vec![json!("events")]]);
}

#[tokio::test]
async fn the_documents_table_prunes_on_both_partition_keys() {
    let lake = Lake::empty().await;
    let docs = documents_table(&lake.url());
    lake.catalog.upsert_table(DB, &docs).await.unwrap();
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("status", arrow::datatypes::DataType::Utf8, true),
        arrow::datatypes::Field::new("size_bytes", arrow::datatypes::DataType::Int64, true),
    ]));
    let batch = |ids: &[&str], status: &str| {
        arrow::array::RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(arrow::array::StringArray::from(ids.to_vec())),
                Arc::new(arrow::array::StringArray::from(vec![status; ids.len()])),
                Arc::new(arrow::array::Int64Array::from(vec![100; ids.len()])),
            ],
        )
        .unwrap()
    };
    write_parquet(
        &lake.path("tables/documents/table_name=events/dt=2024-01-01/a.parquet"),
        &batch(&["d1", "d2"], "stored"),
    );
    write_parquet(
        &lake.path("tables/documents/table_name=events/dt=2024-01-02/a.parquet"),
        &batch(&["d3"], "rejected"),
    );
    write_garbage(&lake.path("tables/documents/table_name=photos/dt=2024-01-01/a.parquet"));
    lake.register(
        "documents",
        &["events", "2024-01-01"],
        "tables/documents/table_name=events/dt=2024-01-01/",
    )
    .await;
    lake.register(
        "documents",
        &["events", "2024-01-02"],
        "tables/documents/table_name=events/dt=2024-01-02/",
    )
    .await;
    lake.register(
        "documents",
        &["photos", "2024-01-01"],
        "tables/documents/table_name=photos/dt=2024-01-01/",
    )
    .await;

    assert_eq!(
        rows(&lake.engine, "SELECT table_name, dt, status, count(*) AS n, sum(size_bytes) AS bytes FROM documents WHERE table_name = 'events' GROUP BY 1, 2, 3 ORDER BY dt").await,
        vec![
            vec![json!("events"), json!("2024-01-01"), json!("stored"), json!(2), json!(200)],
            vec![json!("events"), json!("2024-01-02"), json!("rejected"), json!(1), json!(100)],
        ]
    );
    // columns the files lack (written by an older writer) are null
    assert_eq!(
        rows(&lake.engine, "SELECT id, sha256, metadata_removed FROM documents WHERE table_name = 'events' AND dt = '2024-01-02'").await,
        vec![vec![json!("d3"), Value::Null, Value::Null]]
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM documents WHERE dt = '2024-01-02'"
        )
        .await,
        vec![vec![json!(1)]]
    );
    let e = lake
        .engine
        .query("SELECT count(*) FROM documents WHERE dt = '2024-01-01'")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
}

#[tokio::test]
async fn a_partition_location_is_read_recursively_without_hidden_paths() {
    let lake = Lake::with_events().await;
    write_parquet(
        &lake.path("tables/events/dt=2024-01-02/late/part-1.parquet"),
        &events_batch(&[ev(7, "gus", 7.0, "2024-01-02T07:00:00Z")], true),
    );
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT id FROM events WHERE dt = '2024-01-02' ORDER BY id"
        )
        .await,
        vec![vec![json!(4)], vec![json!(5)], vec![json!(7)]]
    );
}

#[tokio::test]
async fn unpartitioned_tables_and_empty_databases() {
    let lake = Lake::empty().await;
    assert_eq!(
        rows(&lake.engine, "SELECT 1 + 1 AS two").await,
        vec![vec![json!(2)]]
    );
    let e = lake.engine.query("SELECT * FROM events").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Plan);

    let def = TableDef {
        partition_keys: vec![],
        location: format!("{}tables/flat/", lake.url()),
        name: "flat".into(),
        ..events_def(&lake.url())
    };
    lake.catalog.upsert_table(DB, &def).await.unwrap();
    assert_eq!(
        rows(&lake.engine, "SELECT count(*) FROM flat").await,
        vec![vec![json!(0)]]
    );
    write_parquet(
        &lake.path("tables/flat/part-0.parquet"),
        &events_batch(&[ev(1, "a", 1.0, "2024-01-01T00:00:00Z")], true),
    );
    assert_eq!(
        rows(&lake.engine, "SELECT id, name FROM flat").await,
        vec![vec![json!(1), json!("a")]]
    );

    // a database the catalog does not know has no tables, rather than failing every query
    let other = LocalQueryEngine::new(lake.catalog.clone(), "nowhere");
    assert_eq!(rows(&other, "SELECT 1 AS one").await, vec![vec![json!(1)]]);
}

#[tokio::test]
async fn a_location_in_an_unregistered_object_store_says_so() {
    let lake = Lake::empty().await;
    let def = TableDef {
        name: "remote".into(),
        columns: vec![Column::new("id", "bigint")],
        partition_keys: vec![Column::new("dt", "string")],
        location: "s3://some-bucket/tables/remote/".into(),
        format: "parquet".into(),
        parameters: Default::default(),
    };
    lake.catalog.upsert_table(DB, &def).await.unwrap();
    let p = tarn_catalog::Partition {
        values: vec!["2024-01-01".into()],
        location: "s3://some-bucket/tables/remote/dt=2024-01-01/".into(),
    };
    lake.catalog
        .add_partitions(DB, "remote", &[p])
        .await
        .unwrap();
    let e = lake
        .engine
        .query("SELECT count(*) FROM remote")
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string()
            .contains("no object store is registered for s3://some-bucket/"),
        "{e}"
    );
    // and pruned away, it is never asked for
    assert_eq!(
        rows(
            &lake.engine,
            "SELECT count(*) FROM remote WHERE dt = '2023-12-31'"
        )
        .await,
        vec![vec![json!(0)]]
    );

    // the seam: a store registered for the bucket serves it (here a local directory)
    let store =
        datafusion::object_store::local::LocalFileSystem::new_with_prefix(&lake.root).unwrap();
    lake.engine
        .register_object_store("s3://some-bucket", Arc::new(store))
        .unwrap();
    write_parquet(&lake.path("tables/remote/dt=2024-01-01/a.parquet"), &{
        let s = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, true),
        ]));
        arrow::array::RecordBatch::try_new(
            s,
            vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2]))],
        )
        .unwrap()
    });
    assert_eq!(
        rows(&lake.engine, "SELECT sum(id) FROM remote").await,
        vec![vec![json!(3)]]
    );
}

#[tokio::test]
async fn results_are_engine_neutral_values() {
    let r: QueryResult = Lake::empty()
        .await
        .engine
        .query("SELECT CAST(NULL AS BIGINT) AS n, 1.5 AS x, true AS b, 'x' AS s, DATE '2024-02-03' AS d, [1, 2] AS l, named_struct('k', 'v') AS st")
        .await
        .unwrap();
    assert_eq!(
        r.rows,
        vec![vec![
            Value::Null,
            json!(1.5),
            json!(true),
            json!("x"),
            json!("2024-02-03"),
            json!([1, 2]),
            json!({"k": "v"})
        ]]
    );
    let types: Vec<&str> = r.columns.iter().map(|c| c.data_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "bigint",
            "double",
            "boolean",
            "string",
            "date",
            "array<bigint>",
            "struct<k:string>"
        ]
    );
}

#[tokio::test]
async fn older_files_with_fewer_struct_fields_or_narrower_types_still_read() {
    use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, StructArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let lake = Lake::empty().await;
    lake.catalog
        .upsert_table(DB, &events_def(&lake.url()))
        .await
        .unwrap();
    // written before `address.zip` existed, with `amount` as a 32-bit integer
    let city = Arc::new(Field::new("city", DataType::Utf8, true));
    let cities: ArrayRef = Arc::new(StringArray::from(vec!["Oslo"]));
    let address: ArrayRef = Arc::new(StructArray::new(vec![city].into(), vec![cities], None));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount", DataType::Int32, true),
        Field::new("address", address.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1])),
            Arc::new(Int32Array::from(vec![7])),
            address,
        ],
    )
    .unwrap();
    write_parquet(&lake.path("tables/events/dt=2024-01-01/a.parquet"), &batch);
    lake.register("events", &["2024-01-01"], "tables/events/dt=2024-01-01/")
        .await;
    assert_eq!(
        rows(&lake.engine, "SELECT * FROM events").await,
        vec![vec![
            json!(1),
            Value::Null,
            json!(7.0),
            Value::Null,
            Value::Null,
            json!({"city": "Oslo", "zip": null}),
            Value::Null,
            json!("2024-01-01")
        ]]
    );
}
