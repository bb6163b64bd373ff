//! Schema evolution: a table's definition from `schemas/` against the one in the catalog.
//!
//! Parquet files are read by column name (Athena and the embedded engine alike), so files
//! written before a column existed read it as null. Hence:
//! - adding an optional property adds a column: allowed;
//! - adding a field to a struct (also inside an array): allowed, older files read it as null;
//! - a new *required* property on a table that has data: refused (the existing rows lack it);
//! - a changed type, a removed column, a changed partitioning on a table that has data:
//!   refused, with what to do instead. On a table without data anything goes.

use crate::Catalog;
use crate::error::{CatalogError, Result};
use crate::model::{Column, TableDef};
use crate::schemas::TableSpec;
use serde::Serialize;

/// What a new definition changes, when it is allowed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Change {
    /// the table is not in the catalog yet
    pub created: bool,
    pub added: Vec<Column>,
    /// columns whose struct types gained fields: (name, old type, new type)
    pub widened: Vec<(String, String, String)>,
    /// only on a table without data
    pub removed: Vec<Column>,
    /// only on a table without data: (name, old type, new type)
    pub retyped: Vec<(String, String, String)>,
    /// anything else differs (location, parameters, partitioning of an empty table)
    pub other: bool,
}

impl Change {
    pub fn is_noop(&self) -> bool {
        *self == Change::default()
    }
}

/// Decides whether `new` may replace `old`. `new_spec` (absent for tarn's own tables) says
/// which properties are required; `has_data`: whether the table has any partition.
pub fn check_evolution(
    old: &TableDef,
    new: &TableDef,
    new_spec: Option<&TableSpec>,
    has_data: bool,
) -> Result<Change> {
    let refuse = |reason: String| {
        Err(CatalogError::Incompatible {
            table: new.name.clone(),
            reason,
        })
    };
    let mut change = Change::default();
    let required: Vec<&str> = new_spec
        .and_then(|s| s.schema.get("required"))
        .and_then(|r| r.as_array())
        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
        .unwrap_or_default();

    if old.partition_keys != new.partition_keys
        || old.parameters.get("tarn.partition") != new.parameters.get("tarn.partition")
    {
        if has_data {
            let show = |d: &TableDef| {
                let keys: Vec<&str> = d.partition_keys.iter().map(|k| k.name.as_str()).collect();
                match d.parameters.get("tarn.partition") {
                    Some(g) => format!("{} by {g}", keys.join(", ")),
                    None => keys.join(", "),
                }
            };
            return refuse(format!(
                "partitioning changed from {} to {}; existing partitions cannot be re-cut: create a new table (a new schema file with a new title) instead",
                show(old),
                show(new)
            ));
        }
        change.other = true;
    }

    for col in &new.columns {
        match old.columns.iter().find(|c| c.name == col.name) {
            None => {
                if has_data && required.contains(&col.name.as_str()) {
                    return refuse(format!(
                        "new property {} is required, but the table already has rows without it; make it optional (leave it out of \"required\"), or create a new table",
                        col.name
                    ));
                }
                change.added.push(col.clone());
            }
            Some(o) if o.data_type == col.data_type => {}
            Some(o) if widens(&o.data_type, &col.data_type) => {
                change
                    .widened
                    .push((col.name.clone(), o.data_type.clone(), col.data_type.clone()))
            }
            Some(o) if has_data => {
                return refuse(format!(
                    "column {} changed from {} to {}; existing files cannot be read as the new type: create a new table, or add a new column (a new property) instead",
                    col.name, o.data_type, col.data_type
                ));
            }
            Some(o) => {
                change
                    .retyped
                    .push((col.name.clone(), o.data_type.clone(), col.data_type.clone()))
            }
        }
    }
    for col in &old.columns {
        if !new.columns.iter().any(|c| c.name == col.name) {
            if has_data {
                return refuse(format!(
                    "column {} ({}) was removed; its data would be hidden and the name could not be reused safely: keep the property (producers may stop sending it), or create a new table",
                    col.name, col.data_type
                ));
            }
            change.removed.push(col.clone());
        }
    }
    if old.location != new.location || old.format != new.format || old.parameters != new.parameters
    {
        change.other = true;
    }
    Ok(change)
}

/// Whether Hive type `new` reads every value of `old`: equal, or structs (also inside arrays)
/// that only gained fields.
pub fn widens(old: &str, new: &str) -> bool {
    fn norm(s: &str) -> String {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    }
    let (old, new) = (norm(old), norm(new));
    if old == new {
        return true;
    }
    if let (Some(o), Some(n)) = (inner(&old, "array<"), inner(&new, "array<")) {
        return widens(o, n);
    }
    if let (Some(o), Some(n)) = (inner(&old, "struct<"), inner(&new, "struct<")) {
        let (Some(of), Some(nf)) = (struct_fields(o), struct_fields(n)) else {
            return false;
        };
        return of
            .iter()
            .all(|(name, ty)| nf.iter().any(|(n2, t2)| n2 == name && widens(ty, t2)));
    }
    false
}

fn inner<'a>(s: &'a str, open: &str) -> Option<&'a str> {
    s.strip_prefix(open)?.strip_suffix('>')
}

/// `a:string,b:struct<c:bigint>` → [(a, string), (b, struct<c:bigint>)], splitting at top-level commas.
fn struct_fields(s: &str) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    let bytes = s.as_bytes();
    for i in 0..=bytes.len() {
        let c = bytes.get(i).copied();
        match c {
            Some(b'<') => depth += 1,
            Some(b'>') => depth -= 1,
            Some(b',') | None if depth == 0 => {
                let part = &s[start..i];
                let (name, ty) = part.split_once(':')?;
                out.push((name, ty));
                start = i + 1;
            }
            _ => {}
        }
    }
    Some(out)
}

/// Brings the catalog's definition of `new` up to date: creates it, or checks the change with
/// [`check_evolution`] (a table "has data" when it has a partition) and replaces it. Refused
/// changes leave the catalog as it was.
pub async fn evolve_table(
    catalog: &dyn Catalog,
    database: &str,
    new: &TableDef,
    spec: Option<&TableSpec>,
) -> Result<Change> {
    let Some(old) = catalog.get_table(database, &new.name).await? else {
        catalog.upsert_table(database, new).await?;
        return Ok(Change {
            created: true,
            ..Default::default()
        });
    };
    if old == *new {
        return Ok(Change::default());
    }
    let has_data = !catalog
        .get_partitions(database, &new.name)
        .await?
        .is_empty();
    let change = check_evolution(&old, new, spec, has_data)?;
    if !change.added.is_empty() || !change.widened.is_empty() {
        tracing::info!(table = %new.name, added = ?change.added.iter().map(|c| &c.name).collect::<Vec<_>>(), widened = change.widened.len(), "table schema evolved");
    }
    catalog.upsert_table(database, new).await?;
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{LocalCatalog, Partition};
    use serde_json::{Value, json};
    use std::path::Path;

    fn spec(props: Value, required: &[&str]) -> TableSpec {
        TableSpec::from_value(
            Path::new("events.json"),
            json!({"title": "events", "type": "object", "properties": props, "required": required}),
        )
        .unwrap()
    }

    fn def(s: &TableSpec) -> TableDef {
        s.table_def("file:///lake/").unwrap()
    }

    #[test]
    fn adding_an_optional_property_adds_a_column() {
        let old = spec(json!({"amount": {"type": "integer"}}), &[]);
        let new = spec(
            json!({"amount": {"type": "integer"}, "note": {"type": "string"}}),
            &[],
        );
        let c = check_evolution(&def(&old), &def(&new), Some(&new), true).unwrap();
        assert_eq!(c.added, [Column::new("note", "string")]);
        assert!(c.removed.is_empty() && c.retyped.is_empty() && !c.other);
        assert!(
            check_evolution(&def(&old), &def(&old), Some(&old), true)
                .unwrap()
                .is_noop()
        );
    }

    #[test]
    fn incompatible_changes_on_a_table_with_data_say_what_to_do() {
        let old = spec(
            json!({"amount": {"type": "integer"}, "user": {"type": "string"}}),
            &[],
        );
        let cases = [
            (
                spec(
                    json!({"amount": {"type": "string"}, "user": {"type": "string"}}),
                    &[],
                ),
                "column amount changed from bigint to string; existing files cannot be read as the new type: create a new table, or add a new column",
            ),
            (
                spec(
                    json!({"amount": {"type": "integer"}, "user": {"type": "string"}, "id": {"type": "string"}}),
                    &["id"],
                ),
                "new property id is required",
            ),
            (
                spec(json!({"amount": {"type": "integer"}}), &[]),
                "column user (string) was removed",
            ),
            (
                spec(
                    json!({"amount": {"type": "number"}, "user": {"type": "string"}}),
                    &[],
                ),
                "column amount changed from bigint to double",
            ),
        ];
        for (new, expected) in cases {
            let err = check_evolution(&def(&old), &def(&new), Some(&new), true).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Incompatible);
            let msg = err.to_string();
            assert!(
                msg.starts_with("table events: ") && msg.contains(expected),
                "{msg}"
            );
            // without data, any change is fine
            assert!(check_evolution(&def(&old), &def(&new), Some(&new), false).is_ok());
        }
        let mut hourly = def(&old);
        hourly
            .parameters
            .insert("tarn.partition".into(), "hour".into());
        let msg = check_evolution(&def(&old), &hourly, None, true)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("partitioning changed from dt by day to dt by hour"),
            "{msg}"
        );
    }

    #[test]
    fn struct_fields_may_be_added_not_changed() {
        assert!(widens("struct<a:string>", "struct<a:string,b:bigint>"));
        assert!(widens(
            "array<struct<a:string>>",
            "array<struct<a:string,z:struct<q:double>>>"
        ));
        assert!(widens(
            "struct<a:struct<x:string>>",
            "struct<a:struct<w:bigint,x:string>>"
        ));
        assert!(!widens("struct<a:string,b:bigint>", "struct<a:string>"));
        assert!(!widens("struct<a:string>", "struct<a:bigint>"));
        assert!(!widens("bigint", "double"));
        assert!(!widens("array<string>", "string"));
        let old = spec(
            json!({"ctx": {"type": "object", "properties": {"ip": {"type": "string"}}}}),
            &[],
        );
        let new = spec(
            json!({"ctx": {"type": "object", "properties": {"ip": {"type": "string"}, "port": {"type": "integer"}}}}),
            &[],
        );
        let c = check_evolution(&def(&old), &def(&new), Some(&new), true).unwrap();
        assert_eq!(
            c.widened,
            [(
                "ctx".to_string(),
                "struct<ip:string>".to_string(),
                "struct<ip:string,port:bigint>".to_string()
            )]
        );
    }

    #[tokio::test]
    async fn evolve_table_updates_the_catalog_or_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let cat = LocalCatalog::open(dir.path()).unwrap();
        cat.ensure_database("db").await.unwrap();
        let v1 = spec(json!({"amount": {"type": "integer"}}), &[]);
        assert!(
            evolve_table(&cat, "db", &def(&v1), Some(&v1))
                .await
                .unwrap()
                .created
        );
        assert!(
            evolve_table(&cat, "db", &def(&v1), Some(&v1))
                .await
                .unwrap()
                .is_noop()
        );
        cat.add_partitions(
            "db",
            "events",
            &[Partition {
                values: vec!["2024-01-01".into()],
                location: "file:///lake/tables/events/dt=2024-01-01/".into(),
            }],
        )
        .await
        .unwrap();
        let v2 = spec(
            json!({"amount": {"type": "integer"}, "note": {"type": "string"}}),
            &[],
        );
        let c = evolve_table(&cat, "db", &def(&v2), Some(&v2))
            .await
            .unwrap();
        assert_eq!(c.added.len(), 1);
        assert_eq!(
            cat.get_table("db", "events").await.unwrap().unwrap(),
            def(&v2)
        );
        let bad = spec(
            json!({"amount": {"type": "string"}, "note": {"type": "string"}}),
            &[],
        );
        assert!(
            evolve_table(&cat, "db", &def(&bad), Some(&bad))
                .await
                .is_err()
        );
        assert_eq!(
            cat.get_table("db", "events").await.unwrap().unwrap(),
            def(&v2),
            "a refused change leaves the catalog alone"
        );
        // partitions are kept across the update
        assert_eq!(cat.get_partitions("db", "events").await.unwrap().len(), 1);
    }
}
