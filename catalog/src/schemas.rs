//! Table definitions from `schemas/<table>.json`: a JSON Schema (draft 2020-12) whose `title` is
//! the table name, with an `x-tarn` block (`accept`, `max_bytes`, `partition`).

use crate::error::{CatalogError, Result};
use crate::model::{Column, TableDef};
use crate::types::{check_name, json_schema_to_hive};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The hard ceiling on a document's size, whatever a table says (API Gateway's payload limit).
pub const MAX_DOCUMENT_BYTES: u64 = 10 * 1024 * 1024;
pub const DEFAULT_MAX_BYTES: u64 = 1024 * 1024;
/// The metadata table every document gets a row in.
pub const DOCUMENTS_TABLE: &str = "documents";
/// Columns tarn adds to every JSON table.
pub const SYSTEM_COLUMNS: [(&str, &str); 3] = [
    ("_id", "string"),
    ("_received_at", "timestamp"),
    ("_producer", "string"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Hour,
    #[default]
    Day,
    Month,
}

impl Granularity {
    /// The `dt=` value of a received time.
    pub fn partition_value(self, at: DateTime<Utc>) -> String {
        match self {
            Granularity::Hour => at.format("%Y-%m-%d-%H").to_string(),
            Granularity::Day => at.format("%Y-%m-%d").to_string(),
            Granularity::Month => at.format("%Y-%m").to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TableKind {
    /// records validated against the schema and written to Parquet
    Json,
    /// files (images, PDFs) stored whole under `objects/`, described in `documents`
    Binary,
}

pub const JSON_TYPES: [&str; 2] = ["application/json", "application/x-ndjson"];

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub kind: TableKind,
    pub accept: Vec<String>,
    pub max_bytes: u64,
    pub partition: Granularity,
    /// the whole JSON Schema document
    pub schema: Value,
    /// the schema's own properties as columns (JSON tables), before the system columns
    pub columns: Vec<Column>,
    pub path: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XTarn {
    #[serde(default)]
    accept: Vec<String>,
    max_bytes: Option<u64>,
    #[serde(default)]
    partition: Granularity,
}

pub fn is_valid_table_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_')
}

impl TableSpec {
    pub fn from_value(path: &Path, schema: Value) -> Result<Self> {
        let bad = |reason: String| CatalogError::InvalidSchema {
            path: path.to_path_buf(),
            reason,
        };
        let name = schema
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("needs a \"title\": the table name".into()))?;
        if !is_valid_table_name(name) {
            return Err(bad(format!(
                "title {name:?} must match ^[a-z][a-z0-9_]{{0,62}}$"
            )));
        }
        if name == DOCUMENTS_TABLE {
            return Err(bad(
                "\"documents\" is tarn's own metadata table; pick another title".into(),
            ));
        }
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str())
            && stem != name
        {
            return Err(bad(format!(
                "title {name:?} must equal the file name {stem:?}"
            )));
        }
        let x: XTarn = match schema.get("x-tarn") {
            Some(v) => {
                serde_json::from_value(v.clone()).map_err(|e| bad(format!("x-tarn: {e}")))?
            }
            None => XTarn {
                accept: vec![],
                max_bytes: None,
                partition: Granularity::Day,
            },
        };
        let accept = if x.accept.is_empty() {
            vec!["application/json".to_string()]
        } else {
            x.accept
        };
        let max_bytes = x.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        if max_bytes == 0 || max_bytes > MAX_DOCUMENT_BYTES {
            return Err(bad(format!(
                "x-tarn.max_bytes must be between 1 and {MAX_DOCUMENT_BYTES} (10 MiB)"
            )));
        }
        let json_count = accept
            .iter()
            .filter(|a| JSON_TYPES.contains(&a.as_str()))
            .count();
        let kind = match json_count {
            0 => TableKind::Binary,
            n if n == accept.len() => TableKind::Json,
            _ => {
                return Err(bad(
                    "x-tarn.accept mixes JSON and binary types; use two tables".into(),
                ));
            }
        };
        let mut columns = Vec::new();
        if kind == TableKind::Json {
            if schema.get("type").and_then(Value::as_str) != Some("object") {
                return Err(bad(
                    "a JSON table's schema must have \"type\": \"object\"".into()
                ));
            }
            let props = schema
                .get("properties")
                .and_then(Value::as_object)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| bad("a JSON table's schema needs \"properties\"".into()))?;
            for (prop, sub) in props {
                check_name(prop).map_err(bad)?;
                if prop.starts_with('_') || prop == "dt" {
                    return Err(bad(format!(
                        "property {prop:?}: names starting with _ and \"dt\" are reserved"
                    )));
                }
                let ty =
                    json_schema_to_hive(sub).map_err(|e| bad(format!("property {prop:?}: {e}")))?;
                columns.push(Column::new(prop, ty));
            }
        }
        Ok(Self {
            name: name.to_string(),
            kind,
            accept,
            max_bytes,
            partition: x.partition,
            schema,
            columns,
            path: path.to_path_buf(),
        })
    }

    pub fn accepts(&self, content_type: &str) -> bool {
        self.accept
            .iter()
            .any(|a| a.eq_ignore_ascii_case(content_type))
    }

    /// The table's catalog definition, rooted at `lake_root` (a URL ending in `/`).
    /// `None` for binary tables: their rows live in `documents`.
    pub fn table_def(&self, lake_root: &str) -> Option<TableDef> {
        if self.kind != TableKind::Json {
            return None;
        }
        let mut columns = self.columns.clone();
        columns.extend(SYSTEM_COLUMNS.iter().map(|(n, t)| Column::new(*n, *t)));
        Some(TableDef {
            name: self.name.clone(),
            columns,
            partition_keys: vec![Column::new("dt", "string")],
            location: format!("{lake_root}tables/{}/", self.name),
            format: "parquet".into(),
            parameters: BTreeMap::from([
                ("classification".into(), "parquet".into()),
                (
                    "tarn.partition".into(),
                    format!("{:?}", self.partition).to_lowercase(),
                ),
            ]),
        })
    }
}

/// The `documents` table: one row per ingested document.
pub fn documents_table(lake_root: &str) -> TableDef {
    let cols = [
        ("id", "string"),
        ("content_type", "string"),
        ("detected_type", "string"),
        ("size_bytes", "bigint"),
        ("sha256", "string"),
        ("producer", "string"),
        ("received_at", "timestamp"),
        ("processed_at", "timestamp"),
        ("status", "string"),
        ("reason", "string"),
        ("scan_engine", "string"),
        ("scan_result", "string"),
        ("metadata_removed", "array<string>"),
        ("object_key", "string"),
        ("records", "bigint"),
    ];
    TableDef {
        name: DOCUMENTS_TABLE.into(),
        columns: cols.iter().map(|(n, t)| Column::new(*n, *t)).collect(),
        partition_keys: vec![
            Column::new("table_name", "string"),
            Column::new("dt", "string"),
        ],
        location: format!("{lake_root}tables/{DOCUMENTS_TABLE}/"),
        format: "parquet".into(),
        parameters: BTreeMap::from([("classification".into(), "parquet".into())]),
    }
}

/// Loads every `*.json` in `dir`, sorted by table name. Any invalid file fails the whole load,
/// naming the file and what to fix.
pub fn load_schemas(dir: &Path) -> Result<Vec<TableSpec>> {
    let entries =
        std::fs::read_dir(dir).map_err(CatalogError::io("reading the schemas directory", dir))?;
    let mut specs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(CatalogError::io("reading the schemas directory", dir))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read(&path).map_err(CatalogError::io("reading schema", &path))?;
        let value: Value =
            serde_json::from_slice(&text).map_err(|e| CatalogError::InvalidSchema {
                path: path.clone(),
                reason: format!("not JSON: {e}"),
            })?;
        specs.push(TableSpec::from_value(&path, value)?);
    }
    if specs.is_empty() {
        return Err(CatalogError::InvalidSchema {
            path: dir.to_path_buf(),
            reason: "no table schemas (*.json) found; pass --schemas DIR".into(),
        });
    }
    specs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(specs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Result<TableSpec> {
        TableSpec::from_value(Path::new("schemas/t.json"), v)
    }

    #[test]
    fn json_and_binary_tables() {
        let t =
            spec(json!({"title": "t", "type": "object", "properties": {"a": {"type": "string"}}}))
                .unwrap();
        assert_eq!(t.kind, TableKind::Json);
        assert_eq!(t.max_bytes, DEFAULT_MAX_BYTES);
        let def = t.table_def("file:///lake/").unwrap();
        assert_eq!(def.location, "file:///lake/tables/t/");
        assert_eq!(
            def.columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>(),
            ["a", "_id", "_received_at", "_producer"]
        );
        let b =
            spec(json!({"title": "t", "x-tarn": {"accept": ["image/png"], "partition": "month"}}))
                .unwrap();
        assert_eq!(b.kind, TableKind::Binary);
        assert_eq!(b.partition, Granularity::Month);
        assert!(b.table_def("file:///lake/").is_none());
    }

    #[test]
    fn bad_schemas_say_why() {
        let cases = [
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            json!({"title": "other", "type": "object", "properties": {"a": {"type": "string"}}}),
            json!({"title": "t", "type": "object", "properties": {"a": {"type": "string"}}, "x-tarn": {"max_bytes": 20000000}}),
            json!({"title": "t", "type": "object", "properties": {"A": {"type": "string"}}}),
            json!({"title": "t", "x-tarn": {"accept": ["application/json", "image/png"]}}),
            json!({"title": "t", "type": "object", "properties": {"_id": {"type": "string"}}}),
            json!({"title": "t", "x-tarn": {"acept": []}}),
        ];
        for c in cases {
            let err = spec(c.clone()).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidSchema, "{c}");
        }
    }

    #[test]
    fn partition_values() {
        let at: DateTime<Utc> = "2024-03-05T07:08:09Z".parse().unwrap();
        assert_eq!(Granularity::Hour.partition_value(at), "2024-03-05-07");
        assert_eq!(Granularity::Day.partition_value(at), "2024-03-05");
        assert_eq!(Granularity::Month.partition_value(at), "2024-03");
    }

    #[test]
    fn table_names() {
        for ok in ["a", "events", "a_1", &"a".repeat(63)] {
            assert!(is_valid_table_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "a/b",
            "%2e%2e",
            "Events",
            "1a",
            "_a",
            "é",
            &"a".repeat(64),
        ] {
            assert!(!is_valid_table_name(bad), "{bad}");
        }
    }
}
