//! CloudFormation generated from the table schemas, so that the deployment never drifts from
//! them: [`glue_tables_template`] renders `templates/glue-tables.yaml`, the nested stack with the
//! Glue database, the `documents` table and one table per JSON table in `schemas/`, exactly as
//! the normalize function registers them on a cold start (same columns, types, partition keys,
//! locations, SerDe and parameters), so that its `setup_catalog` finds nothing to change.
//!
//! Binary tables (`photos`, `files`, ...) have no Glue table of their own: their rows are in
//! `documents` (`table_name=<t>` partitions) and their sanitized objects under `objects/<t>/`.
//!
//! The output is deterministic (tables sorted by name, keys in a fixed order), so a test can
//! compare the committed file with a fresh rendering.

use crate::glue::{PARQUET_INPUT_FORMAT, PARQUET_OUTPUT_FORMAT, PARQUET_SERDE};
use serde_json::{Map, Value, json};
use tarn_catalog::{TableDef, TableKind, TableSpec, documents_table};

/// Where the committed output lives, relative to the workspace root.
pub const GLUE_TABLES_PATH: &str = "templates/glue-tables.yaml";

/// The lake root as the template writes it, inside `Fn::Sub`.
const LAKE_ROOT: &str = "s3://${LakeBucketName}/";

/// The CloudFormation logical id of a table's resource: `Table` + the name in CamelCase
/// (`events` → `TableEvents`, `web_clicks` → `TableWebClicks`).
pub fn table_logical_id(name: &str) -> String {
    let mut id = String::from("Table");
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            id.push(c.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

fn column(c: &tarn_catalog::Column) -> Value {
    let mut m = Map::new();
    m.insert("Name".into(), json!(c.name));
    m.insert("Type".into(), json!(c.data_type));
    if let Some(comment) = &c.comment {
        m.insert("Comment".into(), json!(comment));
    }
    Value::Object(m)
}

/// One `AWS::Glue::Table` resource for `def` (whose location starts with [`LAKE_ROOT`]).
fn table_resource(def: &TableDef, description: Option<&str>) -> Value {
    let mut input = Map::new();
    input.insert("Name".into(), json!(def.name));
    if let Some(d) = description {
        input.insert("Description".into(), json!(d));
    }
    input.insert("TableType".into(), json!("EXTERNAL_TABLE"));
    input.insert("Parameters".into(), json!(def.parameters));
    input.insert(
        "PartitionKeys".into(),
        Value::Array(def.partition_keys.iter().map(column).collect()),
    );
    input.insert(
        "StorageDescriptor".into(),
        json!({
            "Columns": def.columns.iter().map(column).collect::<Vec<_>>(),
            "Location": {"Fn::Sub": def.location},
            "InputFormat": PARQUET_INPUT_FORMAT,
            "OutputFormat": PARQUET_OUTPUT_FORMAT,
            "SerdeInfo": {
                "SerializationLibrary": PARQUET_SERDE,
                "Parameters": {"serialization.format": "1"},
            },
        }),
    );
    json!({
        "Type": "AWS::Glue::Table",
        "Properties": {
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseName": {"Ref": "Database"},
            "TableInput": Value::Object(input),
        },
    })
}

/// The nested stack's template as a JSON value (see [`glue_tables_template`]).
pub fn glue_tables_value(specs: &[TableSpec]) -> Value {
    let mut specs: Vec<&TableSpec> = specs.iter().collect();
    specs.sort_by(|a, b| a.name.cmp(&b.name));

    let mut resources = Map::new();
    resources.insert(
        "Database".into(),
        json!({
            "Type": "AWS::Glue::Database",
            "Properties": {
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseInput": {
                    "Name": {"Ref": "DatabaseName"},
                    "Description": "tarn: the lake's tables (generated from schemas/)",
                },
            },
        }),
    );
    let docs = documents_table(LAKE_ROOT);
    resources.insert(
        table_logical_id(&docs.name),
        table_resource(&docs, Some("one row per ingested document")),
    );
    let mut binary = Vec::new();
    for spec in &specs {
        match spec.table_def(LAKE_ROOT) {
            Some(def) => {
                let description = spec.schema.get("description").and_then(Value::as_str);
                resources.insert(
                    table_logical_id(&def.name),
                    table_resource(&def, description),
                );
            }
            None => {
                debug_assert_ne!(spec.kind, TableKind::Json);
                binary.push(spec.name.clone());
            }
        }
    }
    let mut outputs = Map::new();
    outputs.insert(
        "DatabaseName".into(),
        json!({"Description": "the Glue database", "Value": {"Ref": "Database"}}),
    );
    let mut tables = vec![docs.name.clone()];
    tables.extend(
        specs
            .iter()
            .filter(|s| s.kind == TableKind::Json)
            .map(|s| s.name.clone()),
    );
    outputs.insert(
        "TableNames".into(),
        json!({"Description": "the Glue tables of this stack", "Value": tables.join(",")}),
    );
    let all: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
    outputs.insert(
        "DeclaredTables".into(),
        json!({
            "Description": "every table declared in schemas/ (binary tables have their rows in documents)",
            "Value": all.join(","),
        }),
    );
    let description = if binary.is_empty() {
        "tarn Glue catalog, generated from schemas/ by `tarn templates` - do not edit".to_string()
    } else {
        format!(
            "tarn Glue catalog, generated from schemas/ by `tarn templates` - do not edit; binary tables ({}) have their rows in documents",
            binary.join(", ")
        )
    };
    json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Description": description,
        "Parameters": {
            "DatabaseName": {
                "Type": "String",
                "Description": "the Glue database",
                "AllowedPattern": "^[a-z][a-z0-9_]{0,254}$",
                "Default": "tarn",
            },
            "LakeBucketName": {
                "Type": "String",
                "Description": "the lake bucket (tables/<table>/ under it)",
                "AllowedPattern": "^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$",
            },
        },
        "Resources": Value::Object(resources),
        "Outputs": Value::Object(outputs),
    })
}

/// `templates/glue-tables.yaml`: a CloudFormation template (the root stack nests it) with the
/// Glue database (parameter `DatabaseName`), the `documents` table and one table per JSON table
/// of `specs`, located in the lake bucket (parameter `LakeBucketName`).
pub fn glue_tables_template(specs: &[TableSpec]) -> String {
    let mut out = String::from(
        "# GENERATED by `tarn templates` (tarn_aws::cfn::glue_tables_template) from schemas/.\n\
         # Do not edit: change the schemas and regenerate; a test fails when this file is stale.\n",
    );
    yaml(&glue_tables_value(specs), 0, &mut out);
    out
}

/// A key as a plain YAML scalar where that is unambiguous, quoted otherwise.
fn yaml_key(k: &str) -> String {
    let plain = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.:-".contains(c))
        && k.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && !k.ends_with(':');
    if plain {
        k.to_string()
    } else {
        Value::from(k).to_string()
    }
}

/// A scalar: strings as JSON strings (a JSON string is a valid YAML double-quoted scalar).
fn yaml_scalar(v: &Value) -> String {
    v.to_string()
}

/// Block-style YAML for `v` at `indent`, for values nested under a key or list item.
fn yaml(v: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, val) in m {
                out.push_str(&pad);
                out.push_str(&yaml_key(k));
                out.push(':');
                nested(val, indent, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for item in a {
                out.push_str(&pad);
                out.push('-');
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // the first key on the dash's line, the rest aligned under it
                        let mut first = true;
                        for (k, val) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&" ".repeat(indent + 2));
                            }
                            out.push_str(&yaml_key(k));
                            out.push(':');
                            nested(val, indent + 2, out);
                        }
                    }
                    other => nested(other, indent, out),
                }
            }
        }
        other => {
            out.push_str(&pad);
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

/// What follows `key:` or `-`: a scalar on the same line, or a block on the next ones.
fn nested(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            yaml(v, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            yaml(v, indent + 2, out);
        }
        Value::Object(_) => out.push_str(" {}\n"),
        Value::Array(_) => out.push_str(" []\n"),
        other => {
            out.push(' ');
            out.push_str(&yaml_scalar(other));
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids() {
        assert_eq!(table_logical_id("events"), "TableEvents");
        assert_eq!(table_logical_id("web_clicks"), "TableWebClicks");
        assert_eq!(table_logical_id("documents"), "TableDocuments");
    }

    #[test]
    fn yaml_shapes() {
        let mut out = String::new();
        yaml(
            &json!({"A": {"Fn::Sub": "s3://${X}/"}, "L": [{"Name": "a", "Type": "struct<b:string>"}, "x"], "E": {}}),
            0,
            &mut out,
        );
        assert_eq!(
            out,
            "A:\n  Fn::Sub: \"s3://${X}/\"\nE: {}\nL:\n  - Name: \"a\"\n    Type: \"struct<b:string>\"\n  - \"x\"\n"
        );
    }
}
