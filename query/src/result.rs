//! The engine-neutral result of a query, built from Arrow record batches (the embedded engine)
//! or from any other engine's rows (Athena), and its renderers: `table`, `json`, `csv`.

use crate::error::{QueryError, Result};
use chrono::Offset;
use datafusion::arrow::array::timezone::Tz;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Float16Type, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use std::fmt::Write as _;
use std::str::FromStr;

/// One column of a result: its name and its type as a Hive/Athena type string (`string`,
/// `bigint`, `double`, `boolean`, `timestamp`, `date`, `array<string>`, `struct<a:bigint>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultColumn {
    pub name: String,
    pub data_type: String,
}

/// A query's result, the same whichever engine ran it. Values are JSON:
/// - null as `null`; booleans and numbers as themselves (a non-finite float as the string
///   `"NaN"`, `"Infinity"` or `"-Infinity"`);
/// - strings as strings; binary as lowercase hex;
/// - timestamps as RFC 3339 strings: with a time zone (tarn's columns are UTC) with `Z`
///   (`2024-01-02T03:04:05.123456Z`, fraction only when not zero), or the zone's offset when it
///   is not UTC (`AT TIME ZONE 'Europe/Oslo'`: `...T04:04:05+01:00`); without a zone with no
///   offset;
///   dates as `YYYY-MM-DD`;
/// - lists as arrays, structs as objects, maps as objects keyed by the keys' text;
/// - anything else (decimals, intervals, durations, times) as its text.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct QueryResult {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<Value>>,
}

/// How `tarn query` prints a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// aligned text with a header, like a SQL shell
    #[default]
    Table,
    /// one JSON array of objects, one per row, keyed by column name
    Json,
    /// a header line, then one line per row, quoted as RFC 4180 says
    Csv,
}

impl FromStr for OutputFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "table" => Ok(OutputFormat::Table),
            "json" => Ok(OutputFormat::Json),
            "csv" => Ok(OutputFormat::Csv),
            other => Err(format!("unknown format {other:?}; use table, json or csv")),
        }
    }
}

impl std::fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputFormat::Table => "table",
            OutputFormat::Json => "json",
            OutputFormat::Csv => "csv",
        })
    }
}

impl QueryResult {
    /// Converts Arrow batches (all of `schema`) into rows of JSON values.
    pub fn from_batches(schema: &Schema, batches: &[RecordBatch]) -> Result<Self> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| ResultColumn {
                name: f.name().clone(),
                data_type: arrow_to_hive(f.data_type()),
            })
            .collect();
        let mut rows = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
        for batch in batches {
            let mut cols = batch
                .columns()
                .iter()
                .map(|c| array_values(c.as_ref()).map(Vec::into_iter))
                .collect::<Result<Vec<_>>>()?;
            for _ in 0..batch.num_rows() {
                rows.push(
                    cols.iter_mut()
                        .map(|c| c.next().unwrap_or(Value::Null))
                        .collect(),
                );
            }
        }
        Ok(QueryResult { columns, rows })
    }

    pub fn render(&self, format: OutputFormat) -> String {
        match format {
            OutputFormat::Table => self.to_table(),
            OutputFormat::Json => self.to_json(),
            OutputFormat::Csv => self.to_csv(),
        }
    }

    /// The rows as JSON objects keyed by column name. A name repeated in the result (`SELECT
    /// a.id, b.id`) gets a suffix from its second use on: `id`, `id_2`.
    pub fn row_objects(&self) -> Vec<Map<String, Value>> {
        let keys = self.unique_names();
        self.rows
            .iter()
            .map(|row| keys.iter().cloned().zip(row.iter().cloned()).collect())
            .collect()
    }

    fn unique_names(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        self.columns
            .iter()
            .map(|c| {
                let mut name = c.name.clone();
                let mut n = 1;
                while !seen.insert(name.clone()) {
                    n += 1;
                    name = format!("{}_{n}", c.name);
                }
                name
            })
            .collect()
    }

    /// One JSON array of objects, one per row, keys in column order, one row per line:
    /// `[\n{"a":1,"b":"x"},\n{"a":2,"b":null}\n]\n`; no rows: `[]\n`.
    pub fn to_json(&self) -> String {
        if self.rows.is_empty() {
            return "[]\n".to_string();
        }
        let keys: Vec<String> = self
            .unique_names()
            .iter()
            .map(|k| Value::String(k.clone()).to_string())
            .collect();
        let mut out = String::from("[\n");
        for (i, row) in self.rows.iter().enumerate() {
            out.push('{');
            for (j, (k, v)) in keys.iter().zip(row).enumerate() {
                if j > 0 {
                    out.push(',');
                }
                let _ = write!(out, "{k}:{v}");
            }
            out.push_str(if i + 1 < self.rows.len() {
                "},\n"
            } else {
                "}\n"
            });
        }
        out.push_str("]\n");
        out
    }

    /// A header line of column names, then one line per row, fields separated by `,` and quoted
    /// (`"`, with `"` doubled) when they hold `,`, `"`, CR or LF, as RFC 4180 says. Null is an
    /// empty field, an empty string is `""`; lists and structs are their JSON text. Lines end
    /// with `\n`.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| csv_field(&c.name)).collect();
        out.push_str(&header.join(","));
        out.push('\n');
        for row in &self.rows {
            let fields: Vec<String> = row
                .iter()
                .map(|v| match v {
                    Value::Null => String::new(),
                    Value::String(s) if s.is_empty() => "\"\"".to_string(),
                    Value::String(s) => csv_field(s),
                    other => csv_field(&other.to_string()),
                })
                .collect();
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        out
    }

    /// Aligned text with a header, like a SQL shell. Null shows as `NULL`; control characters
    /// in strings are escaped (`\n`) to keep the alignment; lists and structs are their JSON
    /// text; number columns are right-aligned.
    ///
    /// ```text
    /// +----+-------+
    /// | id | name  |
    /// +----+-------+
    /// |  1 | alice |
    /// +----+-------+
    /// ```
    pub fn to_table(&self) -> String {
        let header: Vec<String> = self
            .columns
            .iter()
            .map(|c| escape_control(&c.name))
            .collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(table_cell).collect())
            .collect();
        let numeric: Vec<bool> = (0..header.len())
            .map(|j| {
                self.rows
                    .iter()
                    .all(|r| matches!(r.get(j), Some(Value::Number(_) | Value::Null)))
                    && self
                        .rows
                        .iter()
                        .any(|r| matches!(r.get(j), Some(Value::Number(_))))
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|j| {
                cells
                    .iter()
                    .map(|r| r.get(j).map_or(0, |c| c.chars().count()))
                    .chain([header[j].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let border = {
            let mut b = String::from("+");
            for w in &widths {
                b.push_str(&"-".repeat(w + 2));
                b.push('+');
            }
            b.push('\n');
            b
        };
        let line = |values: &[String], right: &[bool]| {
            let mut l = String::from("|");
            for (j, w) in widths.iter().enumerate() {
                let v = values.get(j).map_or("", String::as_str);
                let pad = " ".repeat(w - v.chars().count());
                if right.get(j).copied().unwrap_or(false) {
                    let _ = write!(l, " {pad}{v} |");
                } else {
                    let _ = write!(l, " {v}{pad} |");
                }
            }
            l.push('\n');
            l
        };
        let mut out = border.clone();
        out.push_str(&line(&header, &[]));
        out.push_str(&border);
        if !cells.is_empty() {
            for row in &cells {
                out.push_str(&line(row, &numeric));
            }
            out.push_str(&border);
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn table_cell(v: &Value) -> String {
    match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => escape_control(s),
        other => escape_control(&other.to_string()),
    }
}

fn escape_control(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The Hive/Athena type string of an Arrow type: the inverse of
/// [`tarn_catalog::types::hive_to_arrow`] for the types tarn writes, and a close name for the
/// types queries compute.
pub fn arrow_to_hive(t: &DataType) -> String {
    match t {
        DataType::Null => "null".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 | DataType::UInt8 => "smallint".into(),
        DataType::Int32 | DataType::UInt16 => "int".into(),
        DataType::Int64 | DataType::UInt32 => "bigint".into(),
        DataType::UInt64 => "decimal(20,0)".into(),
        DataType::Float16 | DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "binary".into(),
        DataType::Timestamp(_, _) => "timestamp".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => format!("decimal({p},{s})"),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f) => {
            format!("array<{}>", arrow_to_hive(f.data_type()))
        }
        DataType::FixedSizeList(f, _) => format!("array<{}>", arrow_to_hive(f.data_type())),
        DataType::Struct(fields) => format!(
            "struct<{}>",
            fields
                .iter()
                .map(|f| format!("{}:{}", f.name(), arrow_to_hive(f.data_type())))
                .collect::<Vec<_>>()
                .join(",")
        ),
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(kv) if kv.len() == 2 => {
                format!(
                    "map<{},{}>",
                    arrow_to_hive(kv[0].data_type()),
                    arrow_to_hive(kv[1].data_type())
                )
            }
            _ => "map".into(),
        },
        DataType::Dictionary(_, v) => arrow_to_hive(v),
        DataType::RunEndEncoded(_, v) => arrow_to_hive(v.data_type()),
        other => other.to_string().to_lowercase(),
    }
}

/// The JSON values of every slot of an array, nulls included.
fn array_values(array: &dyn Array) -> Result<Vec<Value>> {
    let len = array.len();
    let nulls = array.logical_nulls();
    let is_null = |i: usize| nulls.as_ref().is_some_and(|n| n.is_null(i));
    let mut out = Vec::with_capacity(len);
    macro_rules! each {
        ($f:expr) => {{
            for i in 0..len {
                out.push(if is_null(i) { Value::Null } else { $f(i) });
            }
        }};
    }
    match array.data_type() {
        DataType::Null => out.resize(len, Value::Null),
        DataType::Boolean => {
            let a = array.as_boolean();
            each!(|i| Value::Bool(a.value(i)))
        }
        DataType::Int8 => {
            let a = array.as_primitive::<Int8Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::Int16 => {
            let a = array.as_primitive::<Int16Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::Int32 => {
            let a = array.as_primitive::<Int32Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::Int64 => {
            let a = array.as_primitive::<Int64Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::UInt8 => {
            let a = array.as_primitive::<UInt8Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::UInt16 => {
            let a = array.as_primitive::<UInt16Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::UInt32 => {
            let a = array.as_primitive::<UInt32Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::UInt64 => {
            let a = array.as_primitive::<UInt64Type>();
            each!(|i| Value::from(a.value(i)))
        }
        DataType::Float16 => {
            let a = array.as_primitive::<Float16Type>();
            each!(|i| float(f64::from(a.value(i))))
        }
        DataType::Float32 => {
            let a = array.as_primitive::<Float32Type>();
            each!(|i| float(f64::from(a.value(i))))
        }
        DataType::Float64 => {
            let a = array.as_primitive::<Float64Type>();
            each!(|i| float(a.value(i)))
        }
        DataType::Utf8 => {
            let a = array.as_string::<i32>();
            each!(|i| Value::String(a.value(i).to_string()))
        }
        DataType::LargeUtf8 => {
            let a = array.as_string::<i64>();
            each!(|i| Value::String(a.value(i).to_string()))
        }
        DataType::Utf8View => {
            let a = array.as_string_view();
            each!(|i| Value::String(a.value(i).to_string()))
        }
        DataType::Timestamp(unit, tz) => {
            // a zone other than UTC renders with its offset, when the zone is known
            let zone: Option<Option<Tz>> = tz.as_ref().map(|tz| tz.parse::<Tz>().ok());
            let nanos: Box<dyn Fn(usize) -> Option<i64>> = match unit {
                TimeUnit::Second => {
                    let a = array.as_primitive::<TimestampSecondType>();
                    Box::new(move |i| a.value(i).checked_mul(1_000_000_000))
                }
                TimeUnit::Millisecond => {
                    let a = array.as_primitive::<TimestampMillisecondType>();
                    Box::new(move |i| a.value(i).checked_mul(1_000_000))
                }
                TimeUnit::Microsecond => {
                    let a = array.as_primitive::<TimestampMicrosecondType>();
                    Box::new(move |i| a.value(i).checked_mul(1_000))
                }
                TimeUnit::Nanosecond => {
                    let a = array.as_primitive::<TimestampNanosecondType>();
                    Box::new(move |i| Some(a.value(i)))
                }
            };
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            each!(
                |i| match (nanos(i).map(chrono::DateTime::from_timestamp_nanos), &zone) {
                    (Some(t), Some(Some(tz))) => {
                        let local = t.with_timezone(tz);
                        if local.offset().fix().local_minus_utc() == 0 {
                            Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
                        } else {
                            Value::String(
                                local.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                            )
                        }
                    }
                    (Some(t), Some(None)) =>
                        Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
                    (Some(t), None) =>
                        Value::String(t.naive_utc().format("%Y-%m-%dT%H:%M:%S%.f").to_string()),
                    // out of the range nanoseconds cover: the engine's own text
                    (None, _) => Value::String(formatter.value(i).to_string()),
                }
            )
        }
        DataType::Date32 => {
            let a = array.as_primitive::<Date32Type>();
            each!(|i| match a.value_as_date(i) {
                Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                None => Value::Null,
            })
        }
        DataType::Date64 => {
            let a = array.as_primitive::<Date64Type>();
            each!(|i| match a.value_as_date(i) {
                Some(d) => Value::String(d.format("%Y-%m-%d").to_string()),
                None => Value::Null,
            })
        }
        DataType::List(_) => {
            let a = array.as_list::<i32>();
            let values = array_values(a.values().as_ref())?;
            let offsets = a.value_offsets();
            each!(|i: usize| Value::Array(
                values[offsets[i] as usize..offsets[i + 1] as usize].to_vec()
            ))
        }
        DataType::LargeList(_) => {
            let a = array.as_list::<i64>();
            let values = array_values(a.values().as_ref())?;
            let offsets = a.value_offsets();
            each!(|i: usize| Value::Array(
                values[offsets[i] as usize..offsets[i + 1] as usize].to_vec()
            ))
        }
        DataType::FixedSizeList(_, n) => {
            let a = array.as_fixed_size_list();
            let values = array_values(a.values().as_ref())?;
            let n = *n as usize;
            let start = a.offset();
            each!(|i: usize| Value::Array(values[(start + i) * n..(start + i + 1) * n].to_vec()))
        }
        DataType::Struct(fields) => {
            let a = array.as_struct();
            let children: Vec<Vec<Value>> = a
                .columns()
                .iter()
                .map(|c| array_values(c.as_ref()))
                .collect::<Result<_>>()?;
            each!(|i: usize| Value::Object(
                fields
                    .iter()
                    .zip(&children)
                    .map(|(f, c)| (f.name().clone(), c[i].clone()))
                    .collect()
            ))
        }
        DataType::Map(_, _) => {
            let a = array.as_map();
            let keys = array_values(a.keys().as_ref())?;
            let values = array_values(a.values().as_ref())?;
            let offsets = a.value_offsets();
            each!(|i: usize| Value::Object(
                (offsets[i] as usize..offsets[i + 1] as usize)
                    .map(|k| {
                        let key = match &keys[k] {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        (key, values[k].clone())
                    })
                    .collect()
            ))
        }
        DataType::Dictionary(_, value_type) => {
            let plain = cast(array, value_type)?;
            return array_values(plain.as_ref());
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => {
            let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())?;
            each!(|i| Value::String(formatter.value(i).to_string()))
        }
        _ => {
            // decimals, times, durations, intervals, views: their text
            let formatter =
                ArrayFormatter::try_new(array, &FormatOptions::default()).map_err(|e| {
                    QueryError::Execution(format!("cannot render {}: {e}", array.data_type()))
                })?;
            each!(|i| Value::String(formatter.value(i).to_string()))
        }
    }
    Ok(out)
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> QueryResult {
        QueryResult {
            columns: vec![
                ResultColumn {
                    name: "id".into(),
                    data_type: "bigint".into(),
                },
                ResultColumn {
                    name: "name".into(),
                    data_type: "string".into(),
                },
                ResultColumn {
                    name: "tags".into(),
                    data_type: "array<string>".into(),
                },
            ],
            rows: vec![
                vec![json!(1), json!("plain"), json!(["a", "b"])],
                vec![json!(22), json!("a, \"quoted\"\nline"), Value::Null],
                vec![Value::Null, json!(""), json!([])],
            ],
        }
    }

    #[test]
    fn json_is_one_array_of_objects_in_column_order() {
        let out = sample().to_json();
        assert_eq!(
            out,
            "[\n{\"id\":1,\"name\":\"plain\",\"tags\":[\"a\",\"b\"]},\n{\"id\":22,\"name\":\"a, \\\"quoted\\\"\\nline\",\"tags\":null},\n{\"id\":null,\"name\":\"\",\"tags\":[]}\n]\n"
        );
        let parsed: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(parsed.as_array().unwrap().len(), 3);
        assert_eq!(parsed[1]["name"], "a, \"quoted\"\nline");
        assert_eq!(
            QueryResult {
                columns: sample().columns,
                rows: vec![]
            }
            .to_json(),
            "[]\n"
        );
    }

    #[test]
    fn csv_quotes_as_rfc_4180_says() {
        assert_eq!(
            sample().to_csv(),
            "id,name,tags\n1,plain,\"[\"\"a\"\",\"\"b\"\"]\"\n22,\"a, \"\"quoted\"\"\nline\",\n,\"\",[]\n"
        );
    }

    #[test]
    fn table_is_aligned_with_a_header() {
        assert_eq!(
            sample().to_table(),
            "\
+------+-------------------+-----------+
| id   | name              | tags      |
+------+-------------------+-----------+
|    1 | plain             | [\"a\",\"b\"] |
|   22 | a, \"quoted\"\\nline | NULL      |
| NULL |                   | []        |
+------+-------------------+-----------+
"
        );
        let empty = QueryResult {
            columns: sample().columns,
            rows: vec![],
        };
        assert_eq!(
            empty.to_table(),
            "+----+------+------+\n| id | name | tags |\n+----+------+------+\n"
        );
    }

    #[test]
    fn repeated_names_get_a_suffix_in_objects() {
        let r = QueryResult {
            columns: vec![
                ResultColumn {
                    name: "id".into(),
                    data_type: "bigint".into(),
                },
                ResultColumn {
                    name: "id".into(),
                    data_type: "bigint".into(),
                },
            ],
            rows: vec![vec![json!(1), json!(2)]],
        };
        assert_eq!(r.to_json(), "[\n{\"id\":1,\"id_2\":2}\n]\n");
        assert_eq!(r.row_objects()[0]["id_2"], 2);
    }

    #[test]
    fn formats_parse() {
        assert_eq!("JSON".parse::<OutputFormat>().unwrap(), OutputFormat::Json);
        assert!("xml".parse::<OutputFormat>().is_err());
    }
}
