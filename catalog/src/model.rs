//! Glue's data model, as plain serializable structs.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// a Hive type string as Glue stores it: `string`, `bigint`, `double`, `boolean`,
    /// `timestamp`, `date`, `struct<a:string>`, `array<bigint>`
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Column {
    pub fn new(name: impl Into<String>, data_type: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            data_type: data_type.into(),
            comment: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    /// the table's root: `file:///.../tables/<name>/` or `s3://bucket/tables/<name>/`
    pub location: String,
    /// `parquet`
    pub format: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partition {
    /// one value per partition key, in order
    pub values: Vec<String>,
    /// the directory holding the partition's files, ending in `/`
    pub location: String,
}

impl TableDef {
    /// The Hive-style relative path of a partition: `k1=v1/k2=v2`.
    pub fn partition_path(&self, values: &[String]) -> String {
        self.partition_keys
            .iter()
            .zip(values)
            .map(|(k, v)| format!("{}={}", k.name, v))
            .collect::<Vec<_>>()
            .join("/")
    }
}
