//! The Athena engine: polling, header skipping, type conversion and paging against moto's canned
//! results; FAILED/CANCELLED and multi-page results against a small Athena look-alike (moto's
//! Athena never fails a query and returns every result as one page).

mod common;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::post;
use common::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tarn_aws::{AthenaPolling, AthenaQueryEngine};
use tarn_query::{ErrorKind, OutputFormat, QueryEngine};

fn fast() -> AthenaPolling {
    AthenaPolling {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        timeout: Duration::from_secs(20),
        page_size: 1000,
    }
}

fn datum(v: Option<&str>) -> Value {
    match v {
        Some(s) => json!({"VarCharValue": s}),
        None => json!({}),
    }
}

fn row(vals: &[Option<&str>]) -> Value {
    json!({"Data": vals.iter().map(|v| datum(*v)).collect::<Vec<_>>()})
}

fn col(name: &str, t: &str) -> Value {
    json!({"CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name, "Label": name, "Type": t, "Precision": 0, "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": false})
}

#[tokio::test]
async fn athena_on_moto_polls_until_succeeded_and_converts_canned_results() {
    let m = moto().await;
    create_bucket(&m.url, "athena-results").await;
    let http = reqwest::Client::new();
    let canned = json!({
        "region": REGION,
        "results": [{
            "rows": [
                row(&[Some("action"), Some("n"), Some("avg_amount"), Some("ok"), Some("at")]),
                row(&[Some("login"), Some("3"), Some("1.5"), Some("true"), Some("2024-01-02 03:04:05.000")]),
                row(&[Some("signup"), None, Some("NaN"), Some("false"), None]),
            ],
            "column_info": [col("action", "varchar"), col("n", "bigint"), col("avg_amount", "double"), col("ok", "boolean"), col("at", "timestamp")],
        }]
    });
    let r = http
        .post(format!("{}/moto-api/static/athena/query-results", m.url))
        .json(&canned)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // the execution stays QUEUED for two polls, then RUNNING for two, then SUCCEEDED
    let t = json!({"model_name": "athena::execution", "transition": {"progression": "manual", "times": 2}});
    http.post(format!("{}/moto-api/state-manager/set-transition", m.url))
        .json(&t)
        .send()
        .await
        .unwrap();

    let engine = AthenaQueryEngine::new(
        aws_sdk_athena::Client::new(&sdk_config(&m.url)),
        "tarn",
        "primary",
        "s3://athena-results/q/",
    )
    .with_polling(fast());
    let result = engine
        .query("SELECT action, count(*) AS n FROM events GROUP BY action")
        .await;
    http.post(format!("{}/moto-api/state-manager/unset-transition", m.url))
        .json(&json!({"model_name": "athena::execution"}))
        .send()
        .await
        .unwrap();
    let result = result.unwrap();
    let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["action", "n", "avg_amount", "ok", "at"]);
    assert_eq!(result.columns[0].data_type, "string");
    assert_eq!(result.columns[1].data_type, "bigint");
    assert_eq!(result.rows.len(), 2, "the header row is skipped");
    assert_eq!(
        result.rows[0],
        vec![
            json!("login"),
            json!(3),
            json!(1.5),
            json!(true),
            json!("2024-01-02T03:04:05Z")
        ]
    );
    assert_eq!(
        result.rows[1],
        vec![
            json!("signup"),
            Value::Null,
            json!("NaN"),
            json!(false),
            Value::Null
        ]
    );
    let out = result.render(OutputFormat::Json);
    assert!(out.contains(r#""n":3"#), "{out}");

    // the execution was started in the workgroup with the database and output location
    let client = aws_sdk_athena::Client::new(&sdk_config(&m.url));
    let ids = client
        .list_query_executions()
        .work_group("primary")
        .send()
        .await
        .unwrap();
    let id = ids.query_execution_ids().last().unwrap().to_string();
    let q = client
        .get_query_execution()
        .query_execution_id(&id)
        .send()
        .await
        .unwrap();
    let q = q.query_execution().unwrap();
    assert_eq!(
        q.query_execution_context().and_then(|c| c.database()),
        Some("tarn")
    );
    assert!(
        q.result_configuration()
            .and_then(|c| c.output_location())
            .unwrap()
            .starts_with("s3://athena-results/q/")
    );
}

/// A tiny Athena: `fail` and `cancel` in the SQL pick the ending; results come in two pages.
async fn fake_athena() -> (String, Arc<AtomicUsize>) {
    let polls = Arc::new(AtomicUsize::new(0));
    let p = polls.clone();
    let handler = move |headers: HeaderMap, body: String| {
        let p = p.clone();
        async move {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let req: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let resp = match target.as_str() {
                "AmazonAthena.StartQueryExecution" => {
                    let sql = req["QueryString"].as_str().unwrap_or_default();
                    let id = if sql.contains("fail") {
                        "q-fail"
                    } else if sql.contains("cancel") {
                        "q-cancel"
                    } else {
                        "q-ok"
                    };
                    json!({"QueryExecutionId": id})
                }
                "AmazonAthena.GetQueryExecution" => {
                    let n = p.fetch_add(1, Ordering::SeqCst);
                    let id = req["QueryExecutionId"].as_str().unwrap_or_default();
                    let status = if n < 2 {
                        json!({"State": "RUNNING"})
                    } else {
                        match id {
                            "q-fail" => {
                                json!({"State": "FAILED", "StateChangeReason": "query failed", "AthenaError": {"ErrorCategory": 2, "ErrorType": 1006, "Retryable": false, "ErrorMessage": "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"}})
                            }
                            "q-cancel" => {
                                json!({"State": "CANCELLED", "StateChangeReason": "cancelled by user alice"})
                            }
                            _ => json!({"State": "SUCCEEDED"}),
                        }
                    };
                    json!({"QueryExecution": {"QueryExecutionId": id, "Status": status}})
                }
                "AmazonAthena.GetQueryResults" => {
                    let cols = json!([col("dt", "varchar"), col("n", "integer")]);
                    match req.get("NextToken").and_then(Value::as_str) {
                        None => {
                            json!({"ResultSet": {"Rows": [row(&[Some("dt"), Some("n")]), row(&[Some("2024-01-01"), Some("1")])], "ResultSetMetadata": {"ColumnInfo": cols}}, "NextToken": "page-2", "UpdateCount": 0})
                        }
                        Some("page-2") => {
                            json!({"ResultSet": {"Rows": [row(&[Some("2024-01-02"), Some("2")])], "ResultSetMetadata": {"ColumnInfo": cols}}, "UpdateCount": 0})
                        }
                        Some(other) => panic!("unexpected token {other}"),
                    }
                }
                "AmazonAthena.StopQueryExecution" => json!({}),
                other => panic!("unexpected call {other}"),
            };
            (
                [("content-type", "application/x-amz-json-1.1")],
                resp.to_string(),
            )
        }
    };
    let app = Router::new().route("/", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, polls)
}

#[tokio::test]
async fn athena_pages_results_and_surfaces_failed_and_cancelled_queries() {
    let (url, polls) = fake_athena().await;
    let engine = AthenaQueryEngine::new(
        aws_sdk_athena::Client::new(&sdk_config(&url)),
        "tarn",
        "primary",
        "s3://r/",
    )
    .with_polling(fast());

    let ok = engine
        .query("SELECT dt, count(*) AS n FROM events GROUP BY dt")
        .await
        .unwrap();
    assert_eq!(
        ok.rows,
        vec![
            vec![json!("2024-01-01"), json!(1)],
            vec![json!("2024-01-02"), json!(2)]
        ],
        "both pages, header skipped"
    );
    assert_eq!(ok.columns[1].data_type, "int");
    assert_eq!(polls.swap(0, Ordering::SeqCst), 3, "polled while RUNNING");

    let err = engine.query("SELECT nope FROM fail").await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("FAILED")
            && text.contains("COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"),
        "{text}"
    );
    assert_eq!(err.kind(), ErrorKind::Plan);
    polls.store(0, Ordering::SeqCst);

    let err = engine.query("SELECT 1 -- cancel").await.unwrap_err();
    assert!(
        err.to_string().contains("CANCELLED")
            && err.to_string().contains("cancelled by user alice"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::Execution);
}
