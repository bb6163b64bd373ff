//! The access trail as a table: `cloudtrail_logs`, with the columns of the standard Athena
//! CloudTrail table, read from the audit store's log files at query time; and
//! `json_extract_scalar`, Trino's function, so the compliance queries (`queries/audit_*.sql`)
//! run unchanged on both engines.
//!
//! On Athena the same table is the one AWS documents for CloudTrail logs (Hive JSON SerDe over
//! `s3://<audit bucket>/AWSLogs/<account>/CloudTrail/`), e.g.:
//! ```sql
//! CREATE EXTERNAL TABLE cloudtrail_logs (
//!   eventversion STRING,
//!   useridentity STRUCT<type:STRING, principalid:STRING, arn:STRING, accountid:STRING,
//!     invokedby:STRING, accesskeyid:STRING, username:STRING,
//!     onbehalfof:STRUCT<userid:STRING, identitystorearn:STRING>,
//!     sessioncontext:STRUCT<attributes:STRUCT<mfaauthenticated:STRING, creationdate:STRING>,
//!       sessionissuer:STRUCT<type:STRING, principalid:STRING, arn:STRING, accountid:STRING, username:STRING>,
//!       ec2roledelivery:STRING,
//!       webidfederationdata:STRUCT<federatedprovider:STRING, attributes:MAP<STRING,STRING>>>>,
//!   eventtime STRING, eventsource STRING, eventname STRING, awsregion STRING,
//!   sourceipaddress STRING, useragent STRING, errorcode STRING, errormessage STRING,
//!   requestparameters STRING, responseelements STRING, additionaleventdata STRING,
//!   requestid STRING, eventid STRING,
//!   resources ARRAY<STRUCT<arn:STRING, accountid:STRING, type:STRING>>,
//!   eventtype STRING, apiversion STRING, readonly STRING, recipientaccountid STRING,
//!   serviceeventdetails STRING, sharedeventid STRING, vpcendpointid STRING,
//!   vpcendpointaccountid STRING, eventcategory STRING,
//!   addendum STRUCT<reason:STRING, updatedfields:STRING, originalrequestid:STRING, originaleventid:STRING>,
//!   sessioncredentialfromconsole STRING, edgedevicedetails STRING,
//!   tlsdetails STRUCT<tlsversion:STRING, ciphersuite:STRING, clientprovidedhostheader:STRING>)
//! PARTITIONED BY (region STRING, year STRING, month STRING, day STRING)
//! ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
//! STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
//! OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
//! LOCATION 's3://<audit bucket>/AWSLogs/<account>/CloudTrail/';
//! ```

use crate::error::{ErrorKind, QueryError, Result};
use datafusion::arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::SessionContext;
use serde_json::{Map, Value};
use std::sync::Arc;
use tarn_core::ObjectStore;
use tarn_core::audit::{TrailConfig, read_log_files};

/// The table's name, as on Athena.
pub const CLOUDTRAIL_TABLE: &str = "cloudtrail_logs";

fn s(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}

fn st(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// The columns of the standard Athena CloudTrail table (and its partition keys `region, year,
/// month, day`, from the log file's key).
pub fn cloudtrail_schema() -> SchemaRef {
    let map = DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("keys", DataType::Utf8, false),
                Field::new("values", DataType::Utf8, true),
            ])),
            false,
        )),
        false,
    );
    let useridentity = st(
        "useridentity",
        vec![
            s("type"),
            s("principalid"),
            s("arn"),
            s("accountid"),
            s("invokedby"),
            s("accesskeyid"),
            s("username"),
            st("onbehalfof", vec![s("userid"), s("identitystorearn")]),
            st(
                "sessioncontext",
                vec![
                    st("attributes", vec![s("mfaauthenticated"), s("creationdate")]),
                    st(
                        "sessionissuer",
                        vec![
                            s("type"),
                            s("principalid"),
                            s("arn"),
                            s("accountid"),
                            s("username"),
                        ],
                    ),
                    s("ec2roledelivery"),
                    st(
                        "webidfederationdata",
                        vec![s("federatedprovider"), Field::new("attributes", map, true)],
                    ),
                ],
            ),
        ],
    );
    let resource = DataType::Struct(Fields::from(vec![s("arn"), s("accountid"), s("type")]));
    Arc::new(Schema::new(vec![
        s("eventversion"),
        useridentity,
        s("eventtime"),
        s("eventsource"),
        s("eventname"),
        s("awsregion"),
        s("sourceipaddress"),
        s("useragent"),
        s("errorcode"),
        s("errormessage"),
        s("requestparameters"),
        s("responseelements"),
        s("additionaleventdata"),
        s("requestid"),
        s("eventid"),
        Field::new(
            "resources",
            DataType::List(Arc::new(Field::new("item", resource, true))),
            true,
        ),
        s("eventtype"),
        s("apiversion"),
        s("readonly"),
        s("recipientaccountid"),
        s("serviceeventdetails"),
        s("sharedeventid"),
        s("vpcendpointid"),
        s("vpcendpointaccountid"),
        s("eventcategory"),
        st(
            "addendum",
            vec![
                s("reason"),
                s("updatedfields"),
                s("originalrequestid"),
                s("originaleventid"),
            ],
        ),
        s("sessioncredentialfromconsole"),
        s("edgedevicedetails"),
        st(
            "tlsdetails",
            vec![
                s("tlsversion"),
                s("ciphersuite"),
                s("clientprovidedhostheader"),
            ],
        ),
        s("region"),
        s("year"),
        s("month"),
        s("day"),
    ]))
}

/// A JSON record shaped as the Hive JSON SerDe reads it into `fields`: keys matched
/// case-insensitively, string columns holding JSON values as their JSON text (`readonly`
/// `"true"`), structs recursively, maps with string values.
fn conform(value: &Value, fields: &Fields) -> Value {
    let Value::Object(obj) = value else {
        return Value::Null;
    };
    let mut out = Map::new();
    for f in fields {
        let Some(v) = obj
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(f.name()))
            .map(|(_, v)| v)
        else {
            continue;
        };
        if let Some(v) = conform_value(v, f.data_type()) {
            out.insert(f.name().clone(), v);
        }
    }
    Value::Object(out)
}

fn conform_value(v: &Value, ty: &DataType) -> Option<Value> {
    if v.is_null() {
        return None;
    }
    Some(match ty {
        DataType::Utf8 => match v {
            Value::String(s) => Value::String(s.clone()),
            other => Value::String(other.to_string()),
        },
        DataType::Struct(fields) => conform(v, fields),
        DataType::List(item) => match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| conform_value(i, item.data_type()).unwrap_or(Value::Null))
                    .collect(),
            ),
            _ => return None,
        },
        DataType::Map(_, _) => match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| {
                        let v = match v {
                            Value::String(s) => Value::String(s.clone()),
                            other => Value::String(other.to_string()),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            _ => return None,
        },
        _ => v.clone(),
    })
}

/// The partition values `region, year, month, day` of a log file key
/// `AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<file>`.
fn partitions(key: &str) -> [Option<String>; 4] {
    let parts: Vec<&str> = key.split('/').collect();
    let at = |i: usize| parts.get(i).map(|s| s.to_string());
    if parts.len() >= 8 && parts[2] == "CloudTrail" {
        [at(3), at(4), at(5), at(6)]
    } else {
        [None, None, None, None]
    }
}

/// Rows of `cloudtrail_logs` from raw CloudTrail records (each with its log file's key).
pub fn cloudtrail_batches(records: &[(String, Value)]) -> Result<Vec<RecordBatch>> {
    let schema = cloudtrail_schema();
    let mut decoder = datafusion::arrow::json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| QueryError::new(ErrorKind::Execution, format!("cloudtrail_logs: {e}")))?;
    let mut batches = Vec::new();
    for chunk in records.chunks(1024) {
        let rows: Vec<Value> = chunk
            .iter()
            .map(|(key, record)| {
                let mut row = conform(record, schema.fields());
                if let Value::Object(m) = &mut row {
                    for (name, v) in ["region", "year", "month", "day"]
                        .iter()
                        .zip(partitions(key))
                    {
                        m.insert(
                            (*name).to_string(),
                            v.map(Value::String).unwrap_or(Value::Null),
                        );
                    }
                }
                row
            })
            .collect();
        decoder
            .serialize(&rows)
            .map_err(|e| QueryError::new(ErrorKind::Execution, format!("cloudtrail_logs: {e}")))?;
        if let Some(batch) = decoder
            .flush()
            .map_err(|e| QueryError::new(ErrorKind::Execution, format!("cloudtrail_logs: {e}")))?
        {
            batches.push(batch);
        }
    }
    Ok(batches)
}

/// Registers `cloudtrail_logs` on `ctx`: every record of the trail's log files in `audit`,
/// read when a query scans the table (records still buffered in a running sink show up after
/// its next flush, within seconds). Queries that do not name the table read nothing.
pub async fn register_cloudtrail_table(
    ctx: &SessionContext,
    audit: Arc<dyn ObjectStore>,
    trail: &TrailConfig,
) -> Result<()> {
    let table = CloudTrailTable {
        store: audit,
        trail: trail.clone(),
        schema: cloudtrail_schema(),
    };
    ctx.register_table(
        datafusion::common::TableReference::bare(CLOUDTRAIL_TABLE),
        Arc::new(table),
    )?;
    Ok(())
}

/// Every record of the trail's log files, as `cloudtrail_logs` rows.
pub async fn read_cloudtrail_batches(
    audit: &dyn ObjectStore,
    trail: &TrailConfig,
) -> Result<Vec<RecordBatch>> {
    let files = read_log_files(audit, trail, None)
        .await
        .map_err(|e| QueryError::new(ErrorKind::Io, format!("reading the audit trail: {e}")))?;
    let mut records = Vec::new();
    for f in files {
        for r in f.records {
            let v = serde_json::to_value(&r)
                .map_err(|e| QueryError::new(ErrorKind::Execution, format!("audit record: {e}")))?;
            records.push((f.key.clone(), v));
        }
    }
    cloudtrail_batches(&records)
}

/// `cloudtrail_logs`, read from the audit store at scan time.
#[derive(Debug)]
struct CloudTrailTable {
    store: Arc<dyn ObjectStore>,
    trail: TrailConfig,
    schema: SchemaRef,
}

#[async_trait::async_trait]
impl datafusion::catalog::TableProvider for CloudTrailTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> datafusion::datasource::TableType {
        datafusion::datasource::TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        filters: &[datafusion::logical_expr::Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn datafusion::physical_plan::ExecutionPlan>> {
        let batches = read_cloudtrail_batches(self.store.as_ref(), &self.trail)
            .await
            .map_err(QueryError::into_datafusion)?;
        let table = MemTable::try_new(Arc::clone(&self.schema), vec![batches])?;
        datafusion::catalog::TableProvider::scan(&table, state, projection, filters, limit).await
    }
}

/// Trino's `json_extract_scalar(json, path)`: the scalar (string, number, boolean) at a simple
/// JSONPath (`$.a.b`, `$.a[0]`, `$["a-b"]`) as text; null for objects, arrays, missing paths
/// and text that is not JSON.
pub fn json_extract_scalar_udf() -> ScalarUDF {
    ScalarUDF::from(JsonExtractScalar {
        signature: Signature::string(2, Volatility::Immutable),
    })
}

/// Registers the Trino functions tarn's SQL relies on (`json_extract_scalar`).
pub fn register_functions(ctx: &SessionContext) {
    ctx.register_udf(json_extract_scalar_udf());
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct JsonExtractScalar {
    signature: Signature,
}

impl ScalarUDFImpl for JsonExtractScalar {
    fn name(&self) -> &str {
        "json_extract_scalar"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion::common::Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let n = args.number_rows;
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let as_utf8 = |a: &ArrayRef| -> datafusion::common::Result<ArrayRef> {
            Ok(datafusion::arrow::compute::cast(a, &DataType::Utf8)?)
        };
        let json = as_utf8(&arrays[0])?;
        let path = as_utf8(&arrays[1])?;
        let json = json
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to utf8");
        let path = path
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("cast to utf8");
        let mut out = StringBuilder::new();
        debug_assert_eq!(json.len(), n);
        for i in 0..json.len() {
            if json.is_null(i) || path.is_null(i) {
                out.append_null();
                continue;
            }
            match extract_scalar(json.value(i), path.value(i)) {
                Some(v) => out.append_value(v),
                None => out.append_null(),
            }
        }
        let result: ArrayRef = Arc::new(out.finish());
        Ok(ColumnarValue::Array(result))
    }
}

/// The scalar at `path` in `json`, as Trino's `json_extract_scalar` gives it.
pub fn extract_scalar(json: &str, path: &str) -> Option<String> {
    let root: Value = serde_json::from_str(json).ok()?;
    let mut v = &root;
    for step in parse_path(path)? {
        v = match step {
            Step::Key(k) => v.get(&k)?,
            Step::Index(i) => v.get(i)?,
        };
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

enum Step {
    Key(String),
    Index(usize),
}

fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut rest = path.trim().strip_prefix('$')?;
    let mut steps = Vec::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end == 0 {
                return None;
            }
            steps.push(Step::Key(r[..end].to_string()));
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']')?;
            let inner = r[..end].trim();
            if let Some(q) = inner
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| inner.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
            {
                steps.push(Step::Key(q.to_string()));
            } else {
                steps.push(Step::Index(inner.parse().ok()?));
            }
            rest = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(steps)
}

/// The rows `tarn audit` prints: one per record, the columns an auditor reads first.
pub fn trail_result(records: &[tarn_core::audit::CloudTrailRecord]) -> crate::QueryResult {
    let col = |n: &str| crate::ResultColumn {
        name: n.into(),
        data_type: "string".into(),
    };
    let opt = |v: Option<&str>| {
        v.map(|s| Value::String(s.to_string()))
            .unwrap_or(Value::Null)
    };
    crate::QueryResult {
        columns: [
            "eventtime",
            "who",
            "identity_type",
            "eventname",
            "bucket",
            "object_key",
            "table",
            "errorcode",
            "errormessage",
            "sourceipaddress",
            "useragent",
            "eventid",
        ]
        .iter()
        .map(|n| col(n))
        .collect(),
        rows: records
            .iter()
            .map(|r| {
                vec![
                    Value::String(r.event_time.clone()),
                    Value::String(r.who()),
                    Value::String(r.user_identity.kind.clone()),
                    Value::String(r.event_name.clone()),
                    opt(r.bucket()),
                    opt(r
                        .key()
                        .or_else(|| r.request_parameters.get("prefix").and_then(Value::as_str))),
                    opt(r.table().as_deref()),
                    opt(r.error_code.as_deref()),
                    opt(r.error_message.as_deref()),
                    Value::String(r.source_ip_address.clone()),
                    Value::String(r.user_agent.clone()),
                    Value::String(r.event_id.clone()),
                ]
            })
            .collect(),
    }
}

/// The rows `tarn audit verify` prints: one per problem.
pub fn verify_result(report: &tarn_core::audit::VerifyReport) -> crate::QueryResult {
    let col = |n: &str| crate::ResultColumn {
        name: n.into(),
        data_type: "string".into(),
    };
    crate::QueryResult {
        columns: vec![col("problem"), col("key"), col("detail")],
        rows: report
            .problems
            .iter()
            .map(|p| {
                vec![
                    Value::String(p.kind.as_str().to_string()),
                    Value::String(p.key.clone()),
                    Value::String(p.detail.clone()),
                ]
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths() {
        let j = r#"{"bucketName":"b","key":"id=1","n":3,"t":true,"o":{"a-b":["x","y"]}}"#;
        assert_eq!(extract_scalar(j, "$.key").as_deref(), Some("id=1"));
        assert_eq!(extract_scalar(j, "$.n").as_deref(), Some("3"));
        assert_eq!(extract_scalar(j, "$.t").as_deref(), Some("true"));
        assert_eq!(extract_scalar(j, "$.o[\"a-b\"][1]").as_deref(), Some("y"));
        assert_eq!(extract_scalar(j, "$.o"), None);
        assert_eq!(extract_scalar(j, "$.missing"), None);
        assert_eq!(extract_scalar("not json", "$.a"), None);
        assert_eq!(extract_scalar(j, "key"), None);
    }
}
