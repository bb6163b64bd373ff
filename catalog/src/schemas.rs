//! Table definitions from `schemas/<table>.json`: a JSON Schema (draft 2020-12) whose `title` is
//! the table name, with an `x-tarn` block (`accept`, `max_bytes`, `partition`, `sort`, `bloom`, `retention`).

use crate::error::{CatalogError, Result};
use crate::model::{Column, TableDef};
use crate::types::{check_name, json_schema_to_hive};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The hard ceiling on a JSON table's documents, and on any document sent in one request (API
/// Gateway's payload limit): larger binary documents go up as multipart uploads.
pub const MAX_DOCUMENT_BYTES: u64 = 10 * 1024 * 1024;
/// The largest document any of `tables` takes (their largest `max_bytes`; one request's
/// [`MAX_DOCUMENT_BYTES`] when there is no table): what a scanner's size limits must admit.
pub fn largest_document<'a>(tables: impl IntoIterator<Item = &'a TableSpec>) -> u64 {
    tables
        .into_iter()
        .map(|t| t.max_bytes)
        .max()
        .unwrap_or(MAX_DOCUMENT_BYTES)
}

/// The hard ceiling on a binary table's documents (sent as multipart uploads above
/// [`MAX_DOCUMENT_BYTES`]).
pub const MAX_BINARY_DOCUMENT_BYTES: u64 = 1024 * 1024 * 1024;
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

/// The `dt=` value of the records of a table partitioned by a record field whose value is
/// missing, null, or outside the window around the received time ([`FIELD_WINDOW_DAYS_BEFORE`],
/// [`FIELD_WINDOW_DAYS_AFTER`]). Not Hive's `__HIVE_DEFAULT_PARTITION__`, which Hive and Athena
/// read as a null `dt`: this one is an ordinary string value, so `WHERE dt = '__default__'`
/// finds these records on every engine.
pub const DEFAULT_PARTITION: &str = "__default__";
/// A record field value more than this many days before its document's received time goes to
/// [`DEFAULT_PARTITION`].
pub const FIELD_WINDOW_DAYS_BEFORE: i64 = 30;
/// A record field value more than this many days after its document's received time goes to
/// [`DEFAULT_PARTITION`].
pub const FIELD_WINDOW_DAYS_AFTER: i64 = 1;

impl Granularity {
    /// The `dt=` value of a received time.
    pub fn partition_value(self, at: DateTime<Utc>) -> String {
        match self {
            Granularity::Hour => at.format("%Y-%m-%d-%H").to_string(),
            Granularity::Day => at.format("%Y-%m-%d").to_string(),
            Granularity::Month => at.format("%Y-%m").to_string(),
        }
    }

    /// The `dt=` value of a record whose partition field holds `value` (`None`: missing or
    /// null), in a document received at `received`: the value's own partition when it lies in
    /// the window around `received`, else [`DEFAULT_PARTITION`].
    pub fn field_partition_value(
        self,
        value: Option<DateTime<Utc>>,
        received: DateTime<Utc>,
    ) -> String {
        match value {
            Some(v)
                if v >= received - chrono::TimeDelta::days(FIELD_WINDOW_DAYS_BEFORE)
                    && v <= received + chrono::TimeDelta::days(FIELD_WINDOW_DAYS_AFTER) =>
            {
                self.partition_value(v)
            }
            _ => DEFAULT_PARTITION.to_string(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Granularity::Hour => "hour",
            Granularity::Day => "day",
            Granularity::Month => "month",
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
    /// the granularity of the `dt=` partition
    pub partition: Granularity,
    /// the record field (a `timestamp` or `date` column) whose value decides a record's
    /// partition; `None`: the document's received time does
    pub partition_field: Option<String>,
    /// the columns compaction sorts a partition's merged rows by, in order
    pub sort: Vec<String>,
    /// the columns whose Parquet files carry bloom filters (point lookups)
    pub bloom: Vec<String>,
    /// how long documents are kept, by received time (`x-tarn.retention`, e.g. `"400d"`);
    /// `None`: for ever
    pub retention: Option<std::time::Duration>,
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
    /// `"400d"`, checked by [`parse_retention`]
    retention: Option<String>,
    /// `"hour"`, `"day"`, `"month"` or `{"field": ..., "granularity": ...}`, checked by
    /// [`parse_partition`]
    partition: Option<Value>,
    #[serde(default)]
    sort: Vec<String>,
    #[serde(default)]
    bloom: Vec<String>,
}

/// `x-tarn.partition`: a granularity of the received time, or a record field and granularity.
fn parse_partition(
    v: Option<&Value>,
) -> std::result::Result<(Granularity, Option<String>), String> {
    let granularity = |g: &Value| {
        serde_json::from_value::<Granularity>(g.clone()).map_err(|_| {
            format!("x-tarn.partition granularity {g} must be \"hour\", \"day\" or \"month\"")
        })
    };
    match v {
        None => Ok((Granularity::Day, None)),
        Some(g @ Value::String(_)) => Ok((granularity(g)?, None)),
        Some(Value::Object(m)) => {
            if let Some(k) = m.keys().find(|k| *k != "field" && *k != "granularity") {
                return Err(format!(
                    "x-tarn.partition: unknown key {k:?}; use {{\"field\": \"<property>\", \"granularity\": \"day\"}}"
                ));
            }
            let field = m.get("field").and_then(Value::as_str).ok_or(
                "x-tarn.partition needs \"field\": the name of a date-time or date property",
            )?;
            let g = match m.get("granularity") {
                Some(g) => granularity(g)?,
                None => Granularity::Day,
            };
            Ok((g, Some(field.to_string())))
        }
        Some(other) => Err(format!(
            "x-tarn.partition {other} must be \"hour\", \"day\", \"month\" or {{\"field\": \"<property>\", \"granularity\": \"day\"}}"
        )),
    }
}

/// Parses `x-tarn.retention`: a whole number of hours, days or weeks (`"36h"`, `"400d"`,
/// `"8w"`), at least one hour.
pub fn parse_retention(s: &str) -> Result<std::time::Duration, String> {
    let bad = || {
        format!(
            "x-tarn.retention {s:?}: expected a number of hours, days or weeks, at least 1h, e.g. \"400d\""
        )
    };
    let t = s.trim();
    let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?);
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(bad()),
    };
    match n.checked_mul(secs) {
        Some(total) if n > 0 && total <= 100 * 366 * 86_400 => {
            Ok(std::time::Duration::from_secs(total))
        }
        _ => Err(bad()),
    }
}

/// Checks the columns `key` (`sort` or `bloom`) names: each a column of the table holding single
/// values (not a struct or an array), named once.
fn check_layout_columns(
    key: &str,
    names: &[String],
    columns: &[Column],
) -> std::result::Result<(), String> {
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            return Err(format!("x-tarn.{key} names {n:?} twice"));
        }
        let ty = columns
            .iter()
            .find(|c| &c.name == n)
            .map(|c| c.data_type.as_str())
            .or_else(|| SYSTEM_COLUMNS.iter().find(|(s, _)| s == n).map(|(_, t)| *t))
            .ok_or_else(|| format!("x-tarn.{key}: {n:?} is not a property of the table"))?;
        if ty.starts_with("struct<") || ty.starts_with("array<") {
            return Err(format!(
                "x-tarn.{key}: {n:?} is a {ty}; name a column of single values (string, number, date, ...)"
            ));
        }
    }
    Ok(())
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
                retention: None,
                partition: None,
                sort: vec![],
                bloom: vec![],
            },
        };
        let (partition, partition_field) = parse_partition(x.partition.as_ref()).map_err(bad)?;
        let accept = if x.accept.is_empty() {
            vec!["application/json".to_string()]
        } else {
            x.accept
        };
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
        let max_bytes = x.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);
        let ceiling = match kind {
            TableKind::Json => MAX_DOCUMENT_BYTES,
            TableKind::Binary => MAX_BINARY_DOCUMENT_BYTES,
        };
        if max_bytes == 0 || max_bytes > ceiling {
            return Err(bad(format!(
                "x-tarn.max_bytes must be between 1 and {ceiling} ({} MiB) for a {} table",
                ceiling >> 20,
                match kind {
                    TableKind::Json => "JSON",
                    TableKind::Binary => "binary",
                }
            )));
        }
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
        if kind == TableKind::Binary
            && (partition_field.is_some() || !x.sort.is_empty() || !x.bloom.is_empty())
        {
            return Err(bad(
                "a binary table has no record columns: x-tarn.partition can only be \"hour\", \"day\" or \"month\", and sort and bloom must be left out".into(),
            ));
        }
        if let Some(f) = &partition_field {
            match columns.iter().find(|c| &c.name == f) {
                Some(c) if c.data_type == "timestamp" || c.data_type == "date" => {}
                Some(c) => {
                    return Err(bad(format!(
                        "x-tarn.partition.field {f:?} is a {}; partition by a string property with \"format\": \"date-time\" or \"date\"",
                        c.data_type
                    )));
                }
                None => {
                    return Err(bad(format!(
                        "x-tarn.partition.field {f:?} is not a property of the table"
                    )));
                }
            }
        }
        check_layout_columns("sort", &x.sort, &columns).map_err(bad)?;
        check_layout_columns("bloom", &x.bloom, &columns).map_err(bad)?;
        let retention = x
            .retention
            .as_deref()
            .map(parse_retention)
            .transpose()
            .map_err(bad)?;
        Ok(Self {
            name: name.to_string(),
            kind,
            accept,
            max_bytes,
            partition,
            partition_field,
            sort: x.sort,
            bloom: x.bloom,
            retention,
            schema,
            columns,
            path: path.to_path_buf(),
        })
    }

    /// The `tarn.partition` table parameter: the granularity (`day`), and the field when a
    /// record field decides the partition (`day of taken_at`). A change of it is a change of
    /// partitioning ([`crate::evolution`]).
    pub fn partition_parameter(&self) -> String {
        match &self.partition_field {
            None => self.partition.name().to_string(),
            Some(f) => format!("{} of {f}", self.partition.name()),
        }
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
                ("tarn.partition".into(), self.partition_parameter()),
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
    fn retention_is_a_number_of_hours_days_or_weeks() {
        assert_eq!(parse_retention("400d").unwrap().as_secs(), 400 * 86_400);
        assert_eq!(parse_retention("36h").unwrap().as_secs(), 36 * 3600);
        assert_eq!(parse_retention("2w").unwrap().as_secs(), 14 * 86_400);
        for bad in ["", "d", "0d", "400", "1.5d", "10m", "-1d", "99999999999w"] {
            assert!(parse_retention(bad).is_err(), "{bad}");
        }
        let t = TableSpec::from_value(
            Path::new("t.json"),
            json!({"title": "t", "type": "object", "properties": {"a": {"type": "string"}},
                   "x-tarn": {"retention": "400d"}}),
        )
        .unwrap();
        assert_eq!(
            t.retention,
            Some(std::time::Duration::from_secs(400 * 86_400))
        );
        let err = TableSpec::from_value(
            Path::new("t.json"),
            json!({"title": "t", "type": "object", "properties": {"a": {"type": "string"}},
                   "x-tarn": {"retention": "soon"}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("x-tarn.retention"), "{err}");
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
    fn binary_tables_take_documents_up_to_1_gib() {
        let binary = |max: u64| {
            spec(json!({"title": "t", "x-tarn": {"accept": ["image/jpeg"], "max_bytes": max}}))
        };
        assert_eq!(
            binary(MAX_BINARY_DOCUMENT_BYTES).unwrap().max_bytes,
            1 << 30
        );
        let t = [binary(5).unwrap(), binary(1 << 30).unwrap()];
        assert_eq!(largest_document(&t), 1 << 30);
        assert_eq!(largest_document(&[]), MAX_DOCUMENT_BYTES);
        let e = binary(MAX_BINARY_DOCUMENT_BYTES + 1).unwrap_err();
        assert!(
            e.to_string().contains("1024 MiB) for a binary table"),
            "{e}"
        );
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

    fn sensors(x_tarn: Value) -> Result<TableSpec> {
        spec(json!({"title": "t", "type": "object", "properties": {
            "device_id": {"type": "string"}, "reading_id": {"type": "string"},
            "taken_at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"}, "n": {"type": "integer"},
            "ctx": {"type": "object", "properties": {"a": {"type": "string"}}}},
            "x-tarn": x_tarn}))
    }

    #[test]
    fn layout_declarations_parse() {
        let t = sensors(
            json!({"partition": {"field": "taken_at", "granularity": "hour"},
            "sort": ["device_id", "taken_at"], "bloom": ["reading_id", "_id"]}),
        )
        .unwrap();
        assert_eq!(t.partition, Granularity::Hour);
        assert_eq!(t.partition_field.as_deref(), Some("taken_at"));
        assert_eq!(t.sort, ["device_id", "taken_at"]);
        assert_eq!(t.bloom, ["reading_id", "_id"]);
        assert_eq!(t.partition_parameter(), "hour of taken_at");
        let def = t.table_def("file:///lake/").unwrap();
        assert_eq!(def.parameters["tarn.partition"], "hour of taken_at");
        assert_eq!(def.partition_keys, [Column::new("dt", "string")]);

        // the granularity defaults to day; a date property works too
        let t = sensors(json!({"partition": {"field": "day"}})).unwrap();
        assert_eq!(
            (t.partition, t.partition_field.as_deref()),
            (Granularity::Day, Some("day"))
        );
        // the string forms keep meaning the received time
        let t = sensors(json!({"partition": "month"})).unwrap();
        assert_eq!(
            (t.partition, t.partition_field.as_deref()),
            (Granularity::Month, None)
        );
        assert_eq!(t.partition_parameter(), "month");
        assert!(t.sort.is_empty() && t.bloom.is_empty());
        let t = sensors(json!({})).unwrap();
        assert_eq!(t.partition_parameter(), "day");
    }

    #[test]
    fn bad_layout_declarations_say_what_to_fix() {
        let cases = [
            (json!({"partition": {"field": "nosuch"}}), "not a property"),
            (json!({"partition": {"field": "n"}}), "is a bigint"),
            (
                json!({"partition": {"granularity": "day"}}),
                "needs \"field\"",
            ),
            (
                json!({"partition": {"field": "taken_at", "granularity": "week"}}),
                "\"week\" must be",
            ),
            (
                json!({"partition": {"field": "taken_at", "by": "x"}}),
                "unknown key \"by\"",
            ),
            (json!({"partition": "week"}), "must be \"hour\""),
            (json!({"partition": 3}), "must be \"hour\""),
            (
                json!({"sort": ["nosuch"]}),
                "x-tarn.sort: \"nosuch\" is not a property",
            ),
            (json!({"sort": ["n", "n"]}), "names \"n\" twice"),
            (
                json!({"bloom": ["ctx"]}),
                "x-tarn.bloom: \"ctx\" is a struct<a:string>",
            ),
            (json!({"bloom": "reading_id"}), "x-tarn"),
        ];
        for (x, want) in cases {
            let err = sensors(x.clone()).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::InvalidSchema, "{x}");
            assert!(err.to_string().contains(want), "{x}: {err}");
        }
        let err = spec(json!({"title": "t", "x-tarn": {"accept": ["image/png"],
            "partition": {"field": "taken_at"}}}))
        .unwrap_err();
        assert!(err.to_string().contains("binary table"), "{err}");
    }

    #[test]
    fn field_partition_values_and_the_window() {
        let received: DateTime<Utc> = "2024-05-06T07:08:09Z".parse().unwrap();
        let at = |s: &str| Some(s.parse::<DateTime<Utc>>().unwrap());
        let day = Granularity::Day;
        assert_eq!(
            day.field_partition_value(at("2024-05-01T23:00:00Z"), received),
            "2024-05-01"
        );
        // the window's edges are inside: 30 days before, 1 day after
        assert_eq!(
            day.field_partition_value(at("2024-04-06T07:08:09Z"), received),
            "2024-04-06"
        );
        assert_eq!(
            day.field_partition_value(at("2024-05-07T07:08:09Z"), received),
            "2024-05-07"
        );
        for outside in [
            "2024-04-06T07:08:08Z",
            "2024-05-07T07:08:10Z",
            "1970-01-01T00:00:00Z",
        ] {
            assert_eq!(
                day.field_partition_value(at(outside), received),
                DEFAULT_PARTITION,
                "{outside}"
            );
        }
        assert_eq!(day.field_partition_value(None, received), DEFAULT_PARTITION);
        assert_eq!(
            Granularity::Hour.field_partition_value(at("2024-05-06T01:59:59Z"), received),
            "2024-05-06-01"
        );
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
