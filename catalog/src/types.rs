//! Column types: JSON Schema → Hive type strings (what Glue stores) → Arrow (what DataFusion and
//! the Parquet writer use). One mapping, used by the writer and the query engine alike.

use arrow::datatypes::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::Value;
use std::sync::Arc;

/// The Arrow type of a Hive type string; `None` for a type tarn does not produce.
pub fn hive_to_arrow(hive: &str) -> Option<DataType> {
    let (ty, rest) = parse(hive.trim())?;
    rest.trim().is_empty().then_some(ty)
}

fn parse(s: &str) -> Option<(DataType, &str)> {
    let s = s.trim_start();
    let ident_end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    let (word, rest) = s.split_at(ident_end);
    let ty = match word.to_ascii_lowercase().as_str() {
        "string" | "varchar" | "char" => DataType::Utf8,
        "bigint" => DataType::Int64,
        "int" | "integer" => DataType::Int32,
        "double" => DataType::Float64,
        "float" => DataType::Float32,
        "boolean" => DataType::Boolean,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("+00:00".into())),
        "date" => DataType::Date32,
        "binary" => DataType::Binary,
        "array" => {
            let rest = rest.strip_prefix('<')?;
            let (inner, rest) = parse(rest)?;
            let rest = rest.trim_start().strip_prefix('>')?;
            return Some((
                DataType::List(Arc::new(Field::new("item", inner, true))),
                rest,
            ));
        }
        "struct" => {
            let mut rest = rest.strip_prefix('<')?;
            let mut fields = Vec::new();
            loop {
                let r = rest.trim_start();
                let colon = r.find(':')?;
                let name = r[..colon].trim().to_string();
                let (ty, r) = parse(&r[colon + 1..])?;
                fields.push(Field::new(name, ty, true));
                let r = r.trim_start();
                if let Some(r) = r.strip_prefix(',') {
                    rest = r;
                } else {
                    return Some((DataType::Struct(Fields::from(fields)), r.strip_prefix('>')?));
                }
            }
        }
        _ => return None,
    };
    Some((ty, rest))
}

/// The Hive type string of a JSON Schema property, or an error saying what is unsupported.
pub fn json_schema_to_hive(schema: &Value) -> Result<String, String> {
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => {
            // ["string", "null"]: nullable, which every column is
            let non_null: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            match non_null.as_slice() {
                [one] => *one,
                _ => {
                    return Err(format!(
                        "union types {ts:?} are not supported; use one type (and null)"
                    ));
                }
            }
        }
        None if schema.get("enum").is_some() || schema.get("const").is_some() => "string",
        _ => return Err("every property needs a \"type\"".into()),
    };
    Ok(match ty {
        "string" => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => "timestamp".into(),
            Some("date") => "date".into(),
            _ => "string".into(),
        },
        "integer" => "bigint".into(),
        "number" => "double".into(),
        "boolean" => "boolean".into(),
        "object" => {
            let props = schema
                .get("properties")
                .and_then(Value::as_object)
                .filter(|p| !p.is_empty())
                .ok_or("an object property needs \"properties\"")?;
            let mut parts = Vec::new();
            for (name, sub) in props {
                check_name(name)?;
                parts.push(format!(
                    "{name}:{}",
                    json_schema_to_hive(sub).map_err(|e| format!("{name}: {e}"))?
                ));
            }
            format!("struct<{}>", parts.join(","))
        }
        "array" => {
            let items = schema
                .get("items")
                .ok_or("an array property needs \"items\"")?;
            format!("array<{}>", json_schema_to_hive(items)?)
        }
        other => return Err(format!("type {other:?} is not supported")),
    })
}

/// Column and field names must be lowercase identifiers: Glue and Athena lowercase names.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "name {name:?} must match ^[a-z_][a-z0-9_]*$ (Glue and Athena lowercase names)"
        ))
    }
}

/// The Arrow schema of columns followed by partition keys.
pub fn arrow_schema(columns: &[crate::Column]) -> Schema {
    Schema::new(
        columns
            .iter()
            .map(|c| {
                Field::new(
                    &c.name,
                    hive_to_arrow(&c.data_type).unwrap_or(DataType::Utf8),
                    true,
                )
            })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_schema_maps_to_hive() {
        assert_eq!(
            json_schema_to_hive(&json!({"type": "string"})).unwrap(),
            "string"
        );
        assert_eq!(
            json_schema_to_hive(&json!({"type": ["integer", "null"]})).unwrap(),
            "bigint"
        );
        assert_eq!(
            json_schema_to_hive(&json!({"type": "string", "format": "date-time"})).unwrap(),
            "timestamp"
        );
        assert_eq!(
            json_schema_to_hive(&json!({"type": "object", "properties": {"b": {"type": "number"}, "a": {"type": "array", "items": {"type": "boolean"}}}}))
                .unwrap(),
            "struct<a:array<boolean>,b:double>"
        );
        assert!(json_schema_to_hive(&json!({"type": ["string", "integer"]})).is_err());
        assert!(
            json_schema_to_hive(
                &json!({"type": "object", "properties": {"Bad": {"type": "string"}}})
            )
            .is_err()
        );
    }

    #[test]
    fn hive_parses_to_arrow() {
        assert_eq!(hive_to_arrow("bigint"), Some(DataType::Int64));
        assert_eq!(
            hive_to_arrow("timestamp"),
            Some(DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("+00:00".into())
            ))
        );
        let nested = hive_to_arrow("struct<a:array<string>,b:struct<c:double>>").unwrap();
        let DataType::Struct(fields) = nested else {
            panic!("struct expected")
        };
        assert_eq!(fields.len(), 2);
        assert!(matches!(fields[0].data_type(), DataType::List(_)));
        assert!(hive_to_arrow("map<string,string>").is_none());
        assert!(hive_to_arrow("array<string").is_none());
    }
}
