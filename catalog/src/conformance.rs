//! The catalog conformance suite, run against every implementation (the local catalog in its
//! unit tests, Glue on moto).

use crate::Catalog;
use crate::model::{Column, Partition, TableDef};
use std::collections::BTreeMap;

pub fn sample_table(name: &str) -> TableDef {
    TableDef {
        name: name.into(),
        columns: vec![
            Column::new("a", "string"),
            Column::new("n", "bigint"),
            Column::new("s", "struct<x:double,y:array<string>>"),
        ],
        partition_keys: vec![Column::new("dt", "string")],
        location: format!("file:///lake/tables/{name}/"),
        format: "parquet".into(),
        parameters: BTreeMap::from([("classification".into(), "parquet".into())]),
    }
}

fn part(dt: &str) -> Partition {
    Partition {
        values: vec![dt.into()],
        location: format!("file:///lake/tables/t/dt={dt}/"),
    }
}

/// Every guarantee of [`Catalog`]; `db` should not exist yet.
pub async fn catalog(c: &dyn Catalog) {
    let db = "tarn_conformance";
    c.ensure_database(db).await.expect("ensure_database");
    c.ensure_database(db)
        .await
        .expect("ensure_database is idempotent");
    assert!(c.get_table(db, "t").await.unwrap().is_none());
    assert!(c.list_tables(db).await.unwrap().is_empty());

    let t = sample_table("t");
    c.upsert_table(db, &t).await.expect("create table");
    assert_eq!(
        c.get_table(db, "t").await.unwrap().as_ref(),
        Some(&t),
        "the definition round-trips"
    );

    // partitions: idempotent adds, sorted reads
    assert_eq!(
        c.add_partitions(db, "t", &[part("2024-01-02"), part("2024-01-01")])
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        c.add_partitions(db, "t", &[part("2024-01-01"), part("2024-01-03")])
            .await
            .unwrap(),
        1
    );
    let parts = c.get_partitions(db, "t").await.unwrap();
    let values: Vec<&str> = parts.iter().map(|p| p.values[0].as_str()).collect();
    assert_eq!(values, ["2024-01-01", "2024-01-02", "2024-01-03"]);

    // a table update keeps its partitions
    let mut t2 = t.clone();
    t2.columns.push(Column::new("added", "double"));
    c.upsert_table(db, &t2).await.expect("update table");
    assert_eq!(
        c.get_table(db, "t").await.unwrap().unwrap().columns.len(),
        4
    );
    assert_eq!(c.get_partitions(db, "t").await.unwrap().len(), 3);

    // location swap
    let v = vec!["2024-01-02".to_string()];
    c.update_partition(db, "t", &v, "file:///lake/tables/t/dt=2024-01-02/v2/")
        .await
        .expect("update_partition");
    let p = c
        .get_partitions(db, "t")
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.values == v)
        .unwrap();
    assert_eq!(p.location, "file:///lake/tables/t/dt=2024-01-02/v2/");

    // unknown things
    assert_eq!(
        c.add_partitions(db, "missing", &[part("2024-01-01")])
            .await
            .unwrap_err()
            .kind(),
        crate::ErrorKind::NotFound
    );
    assert_eq!(
        c.update_partition(db, "t", &["1999-01-01".to_string()], "file:///x/")
            .await
            .unwrap_err()
            .kind(),
        crate::ErrorKind::NotFound
    );

    let names: Vec<String> = {
        c.upsert_table(db, &sample_table("u")).await.unwrap();
        c.list_tables(db)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect()
    };
    assert_eq!(names, ["t", "u"]);
}
