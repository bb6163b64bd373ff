mod common;

use common::*;
use tarn_catalog::{Catalog, documents_table};
use tarn_query::{ErrorKind, table_stats};

fn size(lake: &Lake, key: &str) -> u64 {
    std::fs::metadata(lake.path(key)).unwrap().len()
}

#[tokio::test]
async fn table_stats_count_registered_partitions_files_and_footer_rows() {
    let lake = Lake::with_events().await;
    lake.catalog
        .upsert_table(DB, &documents_table(&lake.url()))
        .await
        .unwrap();
    let stats = table_stats(lake.catalog.as_ref(), DB).await.unwrap();
    assert_eq!(
        stats.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["documents", "events"]
    );

    let docs = &stats[0];
    assert_eq!(
        (docs.partitions, docs.files, docs.rows, docs.bytes),
        (0, 0, 0, 0)
    );
    assert_eq!(
        docs.partition_keys,
        [
            ("table_name".to_string(), "string".to_string()),
            ("dt".to_string(), "string".to_string())
        ]
    );

    let events = &stats[1];
    assert_eq!(events.partitions, 2);
    assert_eq!(
        events.files, 2,
        "hidden, non-Parquet and unregistered files are not counted"
    );
    assert_eq!(events.rows, 5);
    assert_eq!(
        events.bytes,
        size(&lake, "tables/events/dt=2024-01-01/part-0.parquet")
            + size(&lake, "tables/events/dt=2024-01-02/part-0.parquet")
    );
    assert_eq!(events.columns.len(), 7);
    assert_eq!(
        events.columns[3],
        ("at".to_string(), "timestamp".to_string())
    );
    assert_eq!(events.location, format!("{}tables/events/", lake.url()));

    // the engine's own method agrees; registering the third day adds its file and row
    lake.register("events", &["2024-01-03"], "tables/events/dt=2024-01-03/")
        .await;
    let again = lake.engine.table_stats().await.unwrap();
    assert_eq!(
        (again[1].partitions, again[1].files, again[1].rows),
        (3, 3, 6)
    );
}

#[tokio::test]
async fn a_corrupt_file_fails_the_stats_naming_it() {
    let lake = Lake::with_events().await;
    write_garbage(&lake.path("tables/events/dt=2024-01-01/part-bad.parquet"));
    let e = table_stats(lake.catalog.as_ref(), DB).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
    assert!(
        e.to_string().contains("dt=2024-01-01/part-bad.parquet"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unknown_database_has_no_tables() {
    let lake = Lake::empty().await;
    assert!(
        table_stats(lake.catalog.as_ref(), "nowhere")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        table_stats(lake.catalog.as_ref(), DB)
            .await
            .unwrap()
            .is_empty()
    );
}
