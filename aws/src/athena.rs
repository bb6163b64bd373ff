//! [`AthenaQueryEngine`]: the query port on Amazon Athena over the Glue database.
//!
//! `StartQueryExecution` in the configured workgroup with the database as the default (so the
//! same SQL text runs on both engines), `GetQueryExecution` polled with exponential backoff,
//! `GetQueryResults` paged, and the rows converted to tarn's [`QueryResult`] by the column types
//! Athena reports (every Athena value arrives as text). A `FAILED` or `CANCELLED` query becomes an
//! error carrying Athena's state and message.

use crate::s3::describe;
use async_trait::async_trait;
use aws_sdk_athena::Client;
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use serde_json::{Number, Value};
use std::time::{Duration, Instant};
use tarn_query::{ErrorKind, QueryEngine, QueryError, QueryResult, Result, ResultColumn};
use tracing::debug;

/// How results are polled.
#[derive(Debug, Clone)]
pub struct AthenaPolling {
    /// the first wait between two `GetQueryExecution` calls; doubled each time
    pub initial: Duration,
    /// the longest wait between two calls
    pub max: Duration,
    /// the query is stopped (`StopQueryExecution`) and an error returned after this long
    pub timeout: Duration,
    /// rows asked per `GetQueryResults` page (at most 1000)
    pub page_size: i32,
}

impl Default for AthenaPolling {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
            timeout: Duration::from_secs(30 * 60),
            page_size: 1000,
        }
    }
}

#[derive(Clone)]
pub struct AthenaQueryEngine {
    client: Client,
    database: String,
    workgroup: String,
    output_location: String,
    polling: AthenaPolling,
}

impl std::fmt::Debug for AthenaQueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AthenaQueryEngine")
            .field("database", &self.database)
            .field("workgroup", &self.workgroup)
            .finish_non_exhaustive()
    }
}

impl AthenaQueryEngine {
    pub fn new(
        client: Client,
        database: impl Into<String>,
        workgroup: impl Into<String>,
        output_location: impl Into<String>,
    ) -> Self {
        Self {
            client,
            database: database.into(),
            workgroup: workgroup.into(),
            output_location: output_location.into(),
            polling: AthenaPolling::default(),
        }
    }

    pub fn with_polling(mut self, polling: AthenaPolling) -> Self {
        self.polling = polling;
        self
    }

    /// Starts the query; returns its execution id.
    pub async fn start(&self, sql: &str) -> Result<String> {
        let out = self
            .client
            .start_query_execution()
            .query_string(sql)
            .work_group(&self.workgroup)
            .query_execution_context(
                QueryExecutionContext::builder()
                    .database(&self.database)
                    .build(),
            )
            .result_configuration(
                ResultConfiguration::builder()
                    .output_location(&self.output_location)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| {
                let text = describe(&e);
                // Athena refuses unparsable SQL right at the start
                if text.contains("InvalidRequestException") {
                    QueryError::new(ErrorKind::Plan, format!("athena refused the query: {text}"))
                } else {
                    QueryError::new(ErrorKind::Io, format!("athena StartQueryExecution: {text}"))
                }
            })?;
        out.query_execution_id().map(String::from).ok_or_else(|| {
            QueryError::new(ErrorKind::Io, "athena StartQueryExecution returned no id")
        })
    }

    /// Polls until the query ends; an error for `FAILED` or `CANCELLED`, naming the state and
    /// Athena's message.
    pub async fn wait(&self, id: &str) -> Result<()> {
        let started = Instant::now();
        let mut delay = self.polling.initial;
        let mut polls = 0u32;
        loop {
            polls += 1;
            let out = self
                .client
                .get_query_execution()
                .query_execution_id(id)
                .send()
                .await
                .map_err(|e| {
                    QueryError::new(
                        ErrorKind::Io,
                        format!("athena GetQueryExecution {id}: {}", describe(&e)),
                    )
                })?;
            let status = out.query_execution().and_then(|q| q.status());
            let state = status.and_then(|s| s.state()).cloned();
            debug!(query_execution_id = id, state = ?state, polls, "athena query state");
            match state {
                Some(QueryExecutionState::Succeeded) => return Ok(()),
                Some(s @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                    let message = status
                        .and_then(|s| {
                            s.athena_error()
                                .and_then(|e| e.error_message())
                                .or(s.state_change_reason())
                        })
                        .unwrap_or("(athena gave no reason)");
                    let state = s.as_str().to_string();
                    let kind = if state == "CANCELLED" {
                        ErrorKind::Execution
                    } else if message.contains("SYNTAX_ERROR")
                        || message.contains("mismatched input")
                        || message.contains("line ")
                    {
                        ErrorKind::Plan
                    } else {
                        ErrorKind::Execution
                    };
                    return Err(QueryError::new(
                        kind,
                        format!("athena query {id} {state}: {message}"),
                    ));
                }
                _ => {}
            }
            if started.elapsed() >= self.polling.timeout {
                let _ = self
                    .client
                    .stop_query_execution()
                    .query_execution_id(id)
                    .send()
                    .await;
                return Err(QueryError::new(
                    ErrorKind::Execution,
                    format!(
                        "athena query {id} still running after {:?}; stopped",
                        self.polling.timeout
                    ),
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(self.polling.max);
        }
    }

    /// Reads every page of a finished query's results.
    pub async fn results(&self, id: &str) -> Result<QueryResult> {
        let mut columns: Vec<(ResultColumn, String)> = Vec::new();
        let mut rows = Vec::new();
        let mut token: Option<String> = None;
        let mut first_page = true;
        loop {
            let page = self
                .client
                .get_query_results()
                .query_execution_id(id)
                .max_results(self.polling.page_size)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| {
                    QueryError::new(
                        ErrorKind::Io,
                        format!("athena GetQueryResults {id}: {}", describe(&e)),
                    )
                })?;
            let Some(set) = page.result_set() else { break };
            if first_page {
                columns = set
                    .result_set_metadata()
                    .map(|m| {
                        m.column_info()
                            .iter()
                            .map(|c| {
                                (
                                    ResultColumn {
                                        name: c.name().to_string(),
                                        data_type: hive_type(c.r#type()),
                                    },
                                    c.r#type().to_ascii_lowercase(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
            }
            let mut page_rows = set
                .rows()
                .iter()
                .map(|r| {
                    r.data()
                        .iter()
                        .map(|d| d.var_char_value().map(String::from))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>();
            if first_page && !page_rows.is_empty() {
                // a SELECT's first row holds the column names
                let header: Vec<Option<String>> =
                    columns.iter().map(|(c, _)| Some(c.name.clone())).collect();
                if page_rows[0] == header {
                    page_rows.remove(0);
                }
            }
            for raw in page_rows {
                rows.push(
                    columns
                        .iter()
                        .enumerate()
                        .map(|(i, (_, t))| convert(raw.get(i).cloned().flatten(), t))
                        .collect(),
                );
            }
            first_page = false;
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(QueryResult {
            columns: columns.into_iter().map(|(c, _)| c).collect(),
            rows,
        })
    }
}

#[async_trait]
impl QueryEngine for AthenaQueryEngine {
    async fn query(&self, sql: &str) -> Result<QueryResult> {
        let id = self.start(sql).await?;
        self.wait(&id).await?;
        self.results(&id).await
    }
}

/// Athena's type name as the Hive type string tarn's results use.
pub fn hive_type(athena: &str) -> String {
    let t = athena.to_ascii_lowercase();
    match t.as_str() {
        "varchar" | "char" | "string" | "json" => "string".into(),
        "integer" => "int".into(),
        "real" => "float".into(),
        "varbinary" => "binary".into(),
        "timestamp with time zone" => "timestamp".into(),
        _ => t,
    }
}

/// One Athena value (text, or null) as JSON by its column's type.
pub fn convert(raw: Option<String>, athena_type: &str) -> Value {
    let Some(s) = raw else { return Value::Null };
    match athena_type {
        "bigint" | "integer" | "int" | "smallint" | "tinyint" => s
            .parse::<i64>()
            .map(Value::from)
            .unwrap_or(Value::String(s)),
        "double" | "float" | "real" => match s.as_str() {
            "NaN" => Value::String("NaN".into()),
            "Infinity" => Value::String("Infinity".into()),
            "-Infinity" => Value::String("-Infinity".into()),
            _ => s
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .unwrap_or(Value::String(s)),
        },
        "boolean" => match s.as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s),
        },
        "timestamp" | "timestamp with time zone" => Value::String(timestamp(&s).unwrap_or(s)),
        _ => Value::String(s),
    }
}

/// Athena's `2024-01-02 03:04:05.123` (UTC, or with a ` UTC` suffix) as RFC 3339 with `Z`, the
/// fraction only when not zero — as the embedded engine prints tarn's UTC timestamps.
fn timestamp(s: &str) -> Option<String> {
    let t = s.strip_suffix(" UTC").unwrap_or(s);
    let naive = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f").ok()?;
    let fmt = if naive.and_utc().timestamp_subsec_nanos() == 0 {
        naive.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        let frac = naive.format("%.f").to_string();
        format!(
            "{}{}Z",
            naive.format("%Y-%m-%dT%H:%M:%S"),
            frac.trim_end_matches('0')
        )
    };
    Some(fmt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_convert_by_type() {
        assert_eq!(convert(Some("42".into()), "bigint"), Value::from(42));
        assert_eq!(convert(Some("1.5".into()), "double"), Value::from(1.5));
        assert_eq!(convert(Some("NaN".into()), "double"), Value::from("NaN"));
        assert_eq!(convert(Some("true".into()), "boolean"), Value::Bool(true));
        assert_eq!(convert(None, "bigint"), Value::Null);
        assert_eq!(convert(Some("x".into()), "varchar"), Value::from("x"));
        assert_eq!(
            convert(Some("2024-01-02 03:04:05.120".into()), "timestamp"),
            Value::from("2024-01-02T03:04:05.12Z")
        );
        assert_eq!(
            convert(Some("2024-01-02 03:04:05.000".into()), "timestamp"),
            Value::from("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            convert(Some("2024-01-02".into()), "date"),
            Value::from("2024-01-02")
        );
        assert_eq!(hive_type("varchar"), "string");
        assert_eq!(hive_type("bigint"), "bigint");
    }
}
