//! The Lambda handlers with real event JSON (S3 notifications in SQS batches, a malformed
//! message, redeliveries), end to end on moto (landed as API Gateway lands → validate → strip →
//! normalize → Parquet in the lake bucket, partitions in Glue, rows readable), and one binary
//! through a Lambda Runtime API.

mod common;

use bytes::Bytes;
use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tarn_aws::lambda::Functions;
use tarn_aws::lambda::pipeline::{FunctionConfig, NormalizeFunction, handoff_key};
use tarn_catalog::Catalog;
use tarn_core::document::{ingress_key, status_key};
use tarn_core::{DocumentRow, Metadata, ObjectStore, Status};

/// Lands a document as API Gateway's S3 proxy does.
async fn land(p: &Platform, table: &str, content_type: &str, body: &[u8]) -> String {
    land_as_apigw(p.ports.ingress.as_ref(), table, content_type, body).await
}

/// One SQS batch of the S3 notifications for the hand-offs of `ids` to `stage`.
fn handoffs(p: &Platform, stage: &str, ids: &[String]) -> aws_lambda_events::event::sqs::SqsEvent {
    event("tarn-lake", &state_keys(p, stage, ids), vec![])
}

fn parquet_rows(body: Bytes) -> (usize, Vec<String>) {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body).unwrap();
    let fields: Vec<String> = reader
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let n = reader.build().unwrap().map(|b| b.unwrap().num_rows()).sum();
    (n, fields)
}

fn state_keys(p: &Platform, stage: &str, ids: &[String]) -> Vec<String> {
    ids.iter()
        .map(|id| format!("{}{}", p.config.state_prefix, handoff_key(stage, id)))
        .collect()
}

/// API Gateway's proxy event for `GET /table/{name}/object/{id}{suffix}`, from a caller the
/// authorizer let through (its context as the authorizer sets it).
fn route_event(suffix: &str, table: &str, id: &str, user: &str, groups: &str) -> Value {
    // the authorizer passes the groups as a JSON array
    let groups: Vec<&str> = groups.split(',').filter(|g| !g.is_empty()).collect();
    let groups = serde_json::to_string(&groups).unwrap();
    json!({
        "resource": format!("/table/{{name}}/object/{{id}}{suffix}"),
        "path": format!("/table/{table}/object/{id}{suffix}"),
        "httpMethod": "GET",
        "headers": {"Authorization": "Bearer eyJ..."},
        "pathParameters": {"name": table, "id": id},
        "requestContext": {
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "stage": "v1",
            "authorizer": {"principalId": format!("sub-{user}"), "producer": user, "username": user, "sub": format!("sub-{user}"), "groups": groups, "integrationLatency": 12},
        },
        "body": null,
        "isBase64Encoded": false,
    })
}

async fn status(p: &Platform, id: &str) -> DocumentRow {
    serde_json::from_slice(&p.ports.state.get(&status_key(id)).await.unwrap().body).unwrap()
}

#[tokio::test]
async fn stages_run_end_to_end_on_moto_exactly_once() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = Functions::new(&p.ports).unwrap();
    let validate = f.stage("validate").unwrap();
    let strip = f.stage("strip").unwrap();
    let normalize = f.normalize();
    normalize.setup_catalog().await.unwrap();

    let good = land(&p, "events", "application/json", br#"[{"user_id":"u1","action":"login","occurred_at":"2024-03-05T10:00:00Z"},{"user_id":"u2","action":"signup","occurred_at":"2024-03-05T10:01:00Z","amount":3.5}]"#).await;
    let ndjson = land(
        &p,
        "events",
        "application/x-ndjson",
        b"{\"user_id\":\"u3\",\"action\":\"logout\",\"occurred_at\":\"2024-03-05T11:00:00Z\"}\n",
    )
    .await;
    let bad = land(
        &p,
        "events",
        "application/json",
        br#"{"user_id":"u4","action":"dance","occurred_at":"2024-03-05T10:00:00Z"}"#,
    )
    .await;
    let png = std::fs::read(repo_root().join("samples/diagram.png")).unwrap();
    let photo = land(&p, "photos", "image/png", &png).await;
    // an object with no metadata at all: unreadable, quarantined
    let broken = uuid::Uuid::new_v4().to_string();
    p.ports
        .ingress
        .put(
            &ingress_key(&broken),
            Bytes::from_static(b"???"),
            Metadata::new(),
        )
        .await
        .unwrap();
    let ids = vec![
        good.clone(),
        ndjson.clone(),
        bad.clone(),
        photo.clone(),
        broken.clone(),
    ];

    // landed, not processed: `received` for its producer, refused to anyone else
    let docs_fn = f.documents();
    let r = docs_fn
        .handle(route_event("", "photos", &photo, "alice", ""))
        .await;
    assert_eq!(r["statusCode"], 200, "{r}");
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["status"], "received");
    assert_eq!(body["data"]["content_type"], "image/png");
    let r = docs_fn
        .handle(route_event("", "photos", &photo, "bob", "tarn-writers"))
        .await;
    assert_eq!(r["statusCode"], 403, "{r}");

    // validate: one message per landed object, plus a malformed message and S3's test event
    let keys: Vec<String> = ids.iter().map(|id| ingress_key(id)).collect();
    let extra = vec![
        sqs_message("malformed", "this is not an S3 event".into()),
        sqs_message("test-event", json!({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2024-03-05T10:11:12.000Z", "Bucket": "tarn-ingress"}).to_string()),
    ];
    let r = validate
        .handle(event("tarn-ingress", &keys, extra.clone()))
        .await;
    assert_eq!(
        failures(&r),
        ["malformed"],
        "only the malformed message is retried"
    );
    // the JSON and binary documents go on to strip; the rejected and the unreadable straight to normalize
    for id in [&good, &ndjson, &photo] {
        assert!(
            p.ports
                .state
                .head(&handoff_key("strip", id))
                .await
                .unwrap()
                .is_some()
        );
    }
    for id in [&bad, &broken] {
        assert!(
            p.ports
                .state
                .head(&handoff_key("normalize", id))
                .await
                .unwrap()
                .is_some()
        );
    }
    // hand-offs are sealed: no plaintext in the state bucket
    let raw = p
        .ports
        .state
        .get(&handoff_key("strip", &good))
        .await
        .unwrap();
    assert!(tarn_core::envelope::is_sealed(&raw.body));
    assert!(!raw.body.windows(5).any(|w| w == b"login"));
    // redelivery of the validate batch: same hand-offs, nothing else
    let r = validate.handle(event("tarn-ingress", &keys, vec![])).await;
    assert!(failures(&r).is_empty());

    // strip, triggered by the hand-offs' notifications from the lake bucket (state/ prefix)
    let strip_ids = vec![good.clone(), ndjson.clone(), photo.clone()];
    let r = strip.handle(handoffs(&p, "strip", &strip_ids)).await;
    assert!(failures(&r).is_empty(), "{r:?}");
    for id in &strip_ids {
        assert!(
            p.ports
                .state
                .head(&handoff_key("strip", id))
                .await
                .unwrap()
                .is_none(),
            "the strip hand-off is consumed"
        );
        assert!(
            p.ports
                .state
                .head(&handoff_key("normalize", id))
                .await
                .unwrap()
                .is_some()
        );
    }

    // normalize: one batch; a message repeated inside the batch counts once
    let mut nkeys = state_keys(&p, "normalize", &ids);
    nkeys.push(nkeys[0].clone());
    let r = normalize.handle(event("tarn-lake", &nkeys, vec![])).await;
    assert!(failures(&r).is_empty(), "{r:?}");

    // statuses
    assert_eq!(status(&p, &good).await.status, Status::Stored);
    assert_eq!(status(&p, &good).await.records, Some(2));
    assert_eq!(status(&p, &ndjson).await.records, Some(1));
    let rb = status(&p, &bad).await;
    assert_eq!(rb.status, Status::Rejected);
    assert!(rb.reason.unwrap().contains("/action"));
    let rp = status(&p, &photo).await;
    assert_eq!(rp.status, Status::Stored);
    assert_eq!(
        rp.object_key.as_deref(),
        Some(format!("objects/photos/dt=2024-03-05/{photo}").as_str())
    );
    assert_eq!(status(&p, &broken).await.status, Status::Quarantined);
    // landed objects and hand-offs are gone; rejected/quarantined copies are in quarantine
    assert!(p.ports.ingress.list("id=").await.unwrap().is_empty());
    assert!(p.ports.state.list("work/").await.unwrap().is_empty());
    assert!(p.ports.state.list("claims/").await.unwrap().is_empty());
    assert!(p.ports.state.list("batches/").await.unwrap().is_empty());
    assert!(
        p.ports
            .quarantine
            .head(&format!("events/{bad}"))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        p.ports
            .quarantine
            .head(&format!("_unknown/{broken}"))
            .await
            .unwrap()
            .is_some()
    );

    // Parquet in the lake bucket, readable
    let files = p.ports.lake.list("tables/events/").await.unwrap();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0]
            .key
            .starts_with("tables/events/dt=2024-03-05/part-")
            && files[0].key.ends_with(".parquet")
    );
    let (n, fields) = parquet_rows(p.ports.lake.get(&files[0].key).await.unwrap().body);
    assert_eq!(n, 3);
    for c in ["user_id", "action", "_id", "_received_at", "_producer"] {
        assert!(fields.iter().any(|f| f == c), "{c} in {fields:?}");
    }
    let docs = p.ports.lake.list("tables/documents/").await.unwrap();
    let total: usize = {
        let mut t = 0;
        for d in &docs {
            t += parquet_rows(p.ports.lake.get(&d.key).await.unwrap().body).0;
        }
        t
    };
    assert_eq!(total, 5, "one documents row per document: {docs:?}");
    // the sanitized photo is kept as it is, SSE-KMS under the platform key (S3 encrypts at rest)
    let object_key = rp.object_key.clone().unwrap();
    let obj = p.ports.lake.get(&object_key).await.unwrap();
    assert!(!tarn_core::envelope::is_sealed(&obj.body));
    assert!(obj.body.starts_with(b"\x89PNG") && obj.body.len() < png.len());
    let head = s3(&m.url)
        .head_object()
        .bucket("tarn-lake")
        .key(&object_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.server_side_encryption().map(|s| s.as_str()),
        Some("aws:kms")
    );
    assert_eq!(head.ssekms_key_id(), Some(p.config.kms_key_id.as_str()));

    // the document routes: status for the producer and readers, content for readers only, as a
    // redirect to a presigned URL that lives five minutes and serves the sanitized bytes
    let r = docs_fn
        .handle(route_event("", "photos", &photo, "alice", ""))
        .await;
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["status"], "stored", "{r}");
    assert_eq!(body["data"]["object_key"], object_key.as_str());
    let r = docs_fn
        .handle(route_event("/content", "photos", &photo, "alice", ""))
        .await;
    assert_eq!(
        r["statusCode"], 403,
        "the producer alone may not read contents: {r}"
    );
    let r = docs_fn
        .handle(route_event(
            "/content",
            "photos",
            &photo,
            "rita",
            "tarn-readers-photos",
        ))
        .await;
    // no scan stage ran: the document is `skipped`, and its content refused unless the
    // deployment says to serve unscanned documents
    assert_eq!(r["statusCode"], 409, "{r}");
    let refused: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(refused["error"]["code"], "not_scanned", "{r}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("without a virus scan"),
        "{r}"
    );
    assert_eq!(
        status(&p, &photo).await.scan_result.as_deref(),
        Some("skipped")
    );
    let mut unscanned = f.clone();
    unscanned.config.serve_unscanned = true;
    let r = unscanned
        .documents()
        .handle(route_event(
            "/content",
            "photos",
            &photo,
            "rita",
            "tarn-readers-photos",
        ))
        .await;
    assert_eq!(r["statusCode"], 307, "{r}");
    let url = r["headers"]["Location"].as_str().unwrap().to_string();
    assert!(
        url.contains("X-Amz-Expires=300") && url.contains("X-Amz-Signature="),
        "{url}"
    );
    // S3 answers with the type and caching the URL asks for (moto ignores these overrides)
    assert!(
        url.contains("response-content-type=image%2Fpng")
            && url.contains("response-cache-control=no-store"),
        "{url}"
    );
    let got = reqwest::get(&url).await.unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.bytes().await.unwrap(), obj.body);
    // rejected: its status and reason; no content
    let r = docs_fn
        .handle(route_event("", "events", &bad, "rita", "tarn-readers"))
        .await;
    let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["data"]["status"], "rejected");
    assert!(body["data"]["reason"].as_str().unwrap().contains("/action"));
    let r = docs_fn
        .handle(route_event(
            "/content",
            "events",
            &bad,
            "rita",
            "tarn-readers",
        ))
        .await;
    assert_eq!(r["statusCode"], 409, "{r}");
    // under another table, an unknown table, or not a uuid: not found
    for (table, id, status, code) in [
        ("events", photo.as_str(), 404, "unknown_document"),
        ("nope", photo.as_str(), 404, "unknown_table"),
        ("photos", "id-1", 404, "unknown_document"),
        ("Bad-Name", photo.as_str(), 400, "invalid_table_name"),
    ] {
        let r = docs_fn
            .handle(route_event("", table, id, "rita", "tarn-readers"))
            .await;
        assert_eq!(r["statusCode"], status, "{table}/{id}: {r}");
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(body["error"]["code"], code, "{r}");
    }

    // partitions in Glue
    let parts = p
        .ports
        .catalog
        .get_partitions("tarn", "events")
        .await
        .unwrap();
    assert_eq!(parts.len(), 1);
    assert_eq!(parts[0].values, ["2024-03-05"]);
    assert_eq!(
        parts[0].location,
        "s3://tarn-lake/tables/events/dt=2024-03-05/"
    );
    let dparts: Vec<Vec<String>> = p
        .ports
        .catalog
        .get_partitions("tarn", "documents")
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.values)
        .collect();
    assert!(
        dparts.contains(&vec!["events".to_string(), "2024-03-05".to_string()]),
        "{dparts:?}"
    );
    assert!(
        dparts.contains(&vec!["photos".to_string(), "2024-03-05".to_string()]),
        "{dparts:?}"
    );

    // redeliveries write no second row: the whole batch, one message alone, every stage again
    let r = normalize.handle(handoffs(&p, "normalize", &ids)).await;
    assert!(failures(&r).is_empty());
    let r = normalize.handle(handoffs(&p, "normalize", &ids[..1])).await;
    assert!(failures(&r).is_empty());
    let r = validate.handle(event("tarn-ingress", &keys, vec![])).await;
    assert!(failures(&r).is_empty());
    let r = strip.handle(handoffs(&p, "strip", &strip_ids)).await;
    assert!(failures(&r).is_empty());
    assert!(
        p.ports.state.list("work/").await.unwrap().is_empty(),
        "no stage wrote a hand-off for a committed document"
    );
    assert_eq!(p.ports.lake.list("tables/events/").await.unwrap().len(), 1);
    assert_eq!(
        p.ports.lake.list("tables/documents/").await.unwrap().len(),
        docs.len()
    );
}

#[tokio::test]
async fn normalize_waits_for_a_live_claim_and_rolls_back_a_crashed_batch() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    let id = land(
        &p,
        "events",
        "application/json",
        br#"{"user_id":"u1","action":"login","occurred_at":"2024-03-05T10:00:00Z"}"#,
    )
    .await;
    let validate = f.stage("validate").unwrap();
    validate.process(&id).await.unwrap();
    f.stage("strip").unwrap().process(&id).await.unwrap();

    // another batch claimed the document and wrote a file, then (say) crashed before committing
    let stale_file = "tables/events/dt=2024-03-05/part-crashed.parquet";
    p.ports
        .lake
        .put(stale_file, Bytes::from_static(b"half"), Metadata::new())
        .await
        .unwrap();
    let manifest = json!({"batch": "crashed", "committed": false, "rows": [status_row(&id)], "files": [stale_file], "handoffs": []});
    p.ports
        .state
        .put(
            "batches/crashed.json",
            Bytes::from(manifest.to_string()),
            Metadata::new(),
        )
        .await
        .unwrap();
    p.ports
        .state
        .put(
            &format!("claims/{id}.json"),
            Bytes::from(json!({"batch": "crashed"}).to_string()),
            Metadata::new(),
        )
        .await
        .unwrap();

    // within the lease: the message is retried later, nothing is written
    let keys = state_keys(&p, "normalize", std::slice::from_ref(&id));
    let r = f
        .normalize()
        .handle(event("tarn-lake", &keys, vec![]))
        .await;
    assert_eq!(failures(&r).len(), 1);
    assert!(
        p.ports
            .state
            .head(&status_key(&id))
            .await
            .unwrap()
            .is_none()
    );

    // past the lease: the crashed batch is rolled back and the document committed once
    let expired = NormalizeFunction::new(
        f.lake.clone(),
        FunctionConfig {
            lease: Duration::ZERO,
            ..FunctionConfig::default()
        },
    );
    let r = expired.handle(event("tarn-lake", &keys, vec![])).await;
    assert!(failures(&r).is_empty(), "{r:?}");
    assert!(
        p.ports.lake.head(stale_file).await.unwrap().is_none(),
        "the crashed batch's file is gone"
    );
    assert!(
        p.ports
            .state
            .head("batches/crashed.json")
            .await
            .unwrap()
            .is_none()
    );
    let files = p.ports.lake.list("tables/events/").await.unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(
        parquet_rows(p.ports.lake.get(&files[0].key).await.unwrap().body).0,
        1
    );
    assert_eq!(status(&p, &id).await.status, Status::Stored);
}

fn status_row(id: &str) -> Value {
    json!({
        "id": id, "table_name": "events", "dt": "2024-03-05", "content_type": "application/json", "detected_type": null,
        "size_bytes": 1, "sha256": null, "producer": "alice", "received_at": "2024-03-05T10:11:12Z", "processed_at": "2024-03-05T10:11:12Z",
        "status": "stored", "reason": null, "scan_engine": null, "scan_result": null, "metadata_removed": [], "object_key": null, "records": 1
    })
}

/// A minimal Lambda Runtime API: hands out `events` one by one, collects the responses.
async fn runtime_api(
    events: Vec<Value>,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, String, Value)>,
) {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    use std::sync::{Arc, Mutex};
    #[derive(Clone)]
    struct S {
        queue: Arc<Mutex<Vec<Value>>>,
        tx: tokio::sync::mpsc::UnboundedSender<(String, String, Value)>,
        n: Arc<Mutex<u32>>,
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let s = S {
        queue: Arc::new(Mutex::new(events.into_iter().rev().collect())),
        tx,
        n: Arc::new(Mutex::new(0)),
    };
    async fn next(State(s): State<S>) -> axum::response::Response {
        use axum::response::IntoResponse;
        let ev = s.queue.lock().unwrap().pop();
        let Some(ev) = ev else {
            // no more work: the function waits, as on Lambda
            std::future::pending::<()>().await;
            unreachable!()
        };
        let n = {
            let mut n = s.n.lock().unwrap();
            *n += 1;
            *n
        };
        let deadline = (chrono::Utc::now().timestamp_millis() + 120_000).to_string();
        (
            [
                ("lambda-runtime-aws-request-id", format!("req-{n}")),
                ("lambda-runtime-deadline-ms", deadline),
                (
                    "lambda-runtime-invoked-function-arn",
                    format!("arn:aws:lambda:{REGION}:123456789012:function:tarn-validate"),
                ),
                (
                    "lambda-runtime-trace-id",
                    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"
                        .to_string(),
                ),
                ("content-type", "application/json".to_string()),
            ],
            ev.to_string(),
        )
            .into_response()
    }
    async fn respond(
        State(s): State<S>,
        Path((id, kind)): Path<(String, String)>,
        body: String,
    ) -> &'static str {
        let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
        let _ = s.tx.send((id, kind, v));
        "{}"
    }
    async fn init_error(State(s): State<S>, body: String) -> &'static str {
        let _ =
            s.tx.send(("init".into(), "error".into(), Value::String(body)));
        "{}"
    }
    let app = axum::Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route("/2018-06-01/runtime/invocation/{id}/{kind}", post(respond))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state(s);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

#[tokio::test]
async fn the_validate_binary_runs_through_a_lambda_runtime_api() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let id = land(
        &p,
        "events",
        "application/json",
        br#"{"user_id":"u1","action":"login","occurred_at":"2024-03-05T10:00:00Z"}"#,
    )
    .await;
    let ev = serde_json::to_value(event(
        "tarn-ingress",
        &[ingress_key(&id)],
        vec![sqs_message("malformed", "{}".into())],
    ))
    .unwrap();
    let (addr, mut rx) = runtime_api(vec![ev]).await;

    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_tarn-validate"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_LAMBDA_RUNTIME_API", &addr)
        .env("AWS_LAMBDA_FUNCTION_NAME", "tarn-validate")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/tarn-validate")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in lambda_env(&p) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let got = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("the function answered within 60 s")
        .unwrap();
    child.start_kill().unwrap();
    let out = child.wait_with_output().await.unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);
    assert_eq!(got.0, "req-1");
    assert_eq!(got.1, "response", "{got:?}\n{logs}");
    assert_eq!(
        got.2,
        json!({"batchItemFailures": [{"itemIdentifier": "malformed"}]})
    );
    assert!(
        p.ports
            .state
            .head(&handoff_key("strip", &id))
            .await
            .unwrap()
            .is_some(),
        "{logs}"
    );
    // structured logs carry the document id
    let line = logs
        .lines()
        .find(|l| l.contains("stage done"))
        .unwrap_or_else(|| panic!("no stage log in {logs}"));
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["span"]["id"], id, "{line}");
}

#[tokio::test]
async fn the_scan_function_quarantines_eicar_and_passes_clean_files_on() {
    let m = moto().await;
    let clamd = clamd_addr();
    let p = platform_with(
        &m.url,
        &[
            ("TARN_AWS_STAGES", "validate,scan,strip"),
            ("TARN_AWS_CLAMD_ADDR", &clamd),
        ],
    )
    .await;
    let f = Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    let eicar = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    let bad = land(&p, "files", "text/plain", eicar).await;
    let good = land(&p, "files", "text/plain", b"a,b\n1,2\n").await;
    let ids = vec![bad.clone(), good.clone()];

    let r = f
        .stage("validate")
        .unwrap()
        .handle(event(
            "tarn-ingress",
            &ids.iter().map(|i| ingress_key(i)).collect::<Vec<_>>(),
            vec![],
        ))
        .await;
    assert!(failures(&r).is_empty());
    let r = f
        .stage("scan")
        .unwrap()
        .handle(handoffs(&p, "scan", &ids))
        .await;
    assert!(failures(&r).is_empty(), "{r:?}");
    assert!(
        p.ports
            .state
            .head(&handoff_key("normalize", &bad))
            .await
            .unwrap()
            .is_some(),
        "the infected file skips strip"
    );
    assert!(
        p.ports
            .state
            .head(&handoff_key("strip", &good))
            .await
            .unwrap()
            .is_some()
    );
    let r = f
        .stage("strip")
        .unwrap()
        .handle(handoffs(&p, "strip", &ids[1..]))
        .await;
    assert!(failures(&r).is_empty());
    let r = f.normalize().handle(handoffs(&p, "normalize", &ids)).await;
    assert!(failures(&r).is_empty(), "{r:?}");

    let rb = status(&p, &bad).await;
    assert_eq!(rb.status, Status::Quarantined);
    assert!(
        rb.scan_result
            .as_deref()
            .unwrap_or_default()
            .contains("Eicar"),
        "{rb:?}"
    );
    assert!(
        p.ports
            .quarantine
            .head(&format!("files/{bad}"))
            .await
            .unwrap()
            .is_some()
    );
    let rg = status(&p, &good).await;
    assert_eq!(rg.status, Status::Stored);
    assert!(rg.scan_engine.is_some(), "{rg:?}");
}

/// The definitions mirror of the managed-clamd tests: tarn's test signatures (testdata/clamav)
/// under `clamav/` in a bucket of its own, with an updater state file that is not a database.
async fn definitions_mirror(url: &str) {
    create_bucket(url, "tarn-clamav").await;
    let s3 = s3(url);
    for name in ["tarn-test.hdb", "tarn-test.ndb"] {
        let body = std::fs::read(repo_root().join("testdata/clamav").join(name)).unwrap();
        s3.put_object()
            .bucket("tarn-clamav")
            .key(format!("clamav/{name}"))
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    s3.put_object()
        .bucket("tarn-clamav")
        .key("clamav/freshclam.dat")
        .body(b"not a database".to_vec().into())
        .send()
        .await
        .unwrap();
}

/// The table schemas plus `archives`, a binary table that accepts zip files.
fn schemas_with_archives() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(repo_root().join("schemas")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        dir.path().join("archives.json"),
        r#"{"title": "archives", "x-tarn": {"accept": ["application/zip"], "max_bytes": 10485760}}"#,
    )
    .unwrap();
    dir
}

/// The scan function with no clamd address: it fetches the definitions from the S3 mirror into
/// its directory, starts clamd on a unix socket there and keeps it warm; EICAR and EICAR in a
/// zip are quarantined, a clean file is stored and served, end to end through the handlers with
/// real SQS event JSON. Prints the cold start (fetch + clamd start) and a warm batch's time.
#[tokio::test]
async fn the_scan_function_runs_its_own_clamd_on_the_definitions_mirror() {
    use tarn_lake::scan::conformance::{eicar, stored_zip};
    let m = moto().await;
    definitions_mirror(&m.url).await;
    let schemas = schemas_with_archives();
    let p = platform_with(
        &m.url,
        &[
            ("TARN_AWS_STAGES", "validate,scan,strip"),
            ("TARN_AWS_CLAMAV_DEFINITIONS", "s3://tarn-clamav/clamav/"),
            ("TARN_AWS_SCHEMAS_DIR", schemas.path().to_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(p.config.clamd_addr, None);
    let work = tempfile::tempdir().unwrap();
    let mut f = Functions::new(&p.ports).unwrap();
    f.clamav_dir = work.path().join("clamav");
    f.normalize().setup_catalog().await.unwrap();
    let validate = f.stage("validate").unwrap();
    let scan = f.scan().unwrap();
    let clamd = scan.clamd.clone().expect("no clamd address: its own clamd");

    let virus = land(&p, "files", "text/plain", &eicar()).await;
    let zipped = land(
        &p,
        "archives",
        "application/zip",
        &stored_zip(&[("readme.txt", b"hello"), ("e.com", &eicar())]),
    )
    .await;
    let clean = land(&p, "files", "text/plain", b"a,b\n1,2\n").await;
    let ids = vec![virus.clone(), zipped.clone(), clean.clone()];
    let r = validate
        .handle(event(
            "tarn-ingress",
            &ids.iter().map(|i| ingress_key(i)).collect::<Vec<_>>(),
            vec![],
        ))
        .await;
    assert!(failures(&r).is_empty(), "{r:?}");

    // cold: the definitions come from the mirror, clamd starts
    assert!(
        clamd.cold_start().is_none(),
        "clamd starts on the first batch, not before"
    );
    let began = std::time::Instant::now();
    let r = scan.handle(handoffs(&p, "scan", &ids)).await;
    let cold_batch = began.elapsed();
    assert!(failures(&r).is_empty(), "{r:?}");
    let cold = clamd.cold_start().expect("clamd started");
    assert_eq!(
        (cold.fetched.files, cold.fetched.removed),
        (2, 0),
        "the two signature files, not freshclam.dat: {cold:?}"
    );
    let db = f.clamav_dir.join("db");
    assert!(db.join("tarn-test.hdb").exists() && !db.join("freshclam.dat").exists());
    let sock = f.clamav_dir.join("clamd/clamd.sock");
    assert!(
        sock.exists(),
        "clamd listens on its unix socket in its directory"
    );
    let conf = std::fs::read_to_string(f.clamav_dir.join("clamd/clamd.conf")).unwrap();
    assert!(
        conf.contains("AlertExceedsMax yes") && conf.contains("AlertEncrypted yes"),
        "{conf}"
    );

    // warm: the same clamd scans the next batch
    let more = land(&p, "files", "text/plain", b"x,y\n3,4\n").await;
    let r = validate
        .handle(event("tarn-ingress", &[ingress_key(&more)], vec![]))
        .await;
    assert!(failures(&r).is_empty());
    let began = std::time::Instant::now();
    let r = scan
        .handle(handoffs(&p, "scan", std::slice::from_ref(&more)))
        .await;
    let warm_batch = began.elapsed();
    assert!(failures(&r).is_empty(), "{r:?}");
    assert_eq!(
        clamd.cold_start(),
        Some(cold.clone()),
        "no second cold start"
    );
    eprintln!(
        "managed clamd: cold start {:?} (definitions fetch {:?}, {} files, {} bytes; clamd start {:?}); cold batch of 3 documents {:?}; warm batch of 1 document {:?}",
        cold.fetch + cold.start,
        cold.fetch,
        cold.fetched.files,
        cold.fetched.bytes,
        cold.start,
        cold_batch,
        warm_batch
    );

    // the infected two skip strip; the clean ones go on
    for id in [&virus, &zipped] {
        assert!(
            p.ports
                .state
                .head(&handoff_key("normalize", id))
                .await
                .unwrap()
                .is_some(),
            "{id} goes straight to normalize"
        );
    }
    let passed = vec![clean.clone(), more.clone()];
    let r = f
        .stage("strip")
        .unwrap()
        .handle(handoffs(&p, "strip", &passed))
        .await;
    assert!(failures(&r).is_empty());
    let all = vec![virus.clone(), zipped.clone(), clean.clone(), more.clone()];
    let r = f.normalize().handle(handoffs(&p, "normalize", &all)).await;
    assert!(failures(&r).is_empty(), "{r:?}");

    for (id, table) in [(&virus, "files"), (&zipped, "archives")] {
        let row = status(&p, id).await;
        assert_eq!(row.status, Status::Quarantined, "{row:?}");
        assert_eq!(
            row.scan_result.as_deref(),
            Some("Eicar-Test-Signature.UNOFFICIAL"),
            "{row:?}"
        );
        assert!(
            row.scan_engine
                .as_deref()
                .unwrap_or_default()
                .starts_with("clamav "),
            "{row:?}"
        );
        assert!(
            p.ports
                .quarantine
                .head(&format!("{table}/{id}"))
                .await
                .unwrap()
                .is_some(),
            "{table}/{id} is in quarantine"
        );
    }
    let row = status(&p, &clean).await;
    assert_eq!(row.status, Status::Stored, "{row:?}");
    assert_eq!(row.scan_result.as_deref(), Some("clean"));
    // scanned clean: its content is served
    let r = f
        .documents()
        .handle(route_event(
            "/content",
            "files",
            &clean,
            "rita",
            "tarn-readers",
        ))
        .await;
    assert_eq!(r["statusCode"], 307, "{r}");
}

/// Without definitions in the mirror the scan function's clamd cannot start: the whole batch
/// is reported failed (SQS delivers it again), nothing is handed on or quarantined.
#[tokio::test]
async fn the_scan_function_without_definitions_retries_the_whole_batch() {
    let m = moto().await;
    create_bucket(&m.url, "tarn-clamav").await;
    let p = platform_with(
        &m.url,
        &[
            ("TARN_AWS_STAGES", "validate,scan,strip"),
            ("TARN_AWS_CLAMAV_DEFINITIONS", "s3://tarn-clamav/clamav/"),
        ],
    )
    .await;
    let work = tempfile::tempdir().unwrap();
    let mut f = Functions::new(&p.ports).unwrap();
    f.clamav_dir = work.path().join("clamav");
    let id = land(&p, "files", "text/plain", b"a,b\n").await;
    let r = f
        .stage("validate")
        .unwrap()
        .handle(event("tarn-ingress", &[ingress_key(&id)], vec![]))
        .await;
    assert!(failures(&r).is_empty());
    let keys = state_keys(&p, "scan", std::slice::from_ref(&id));
    let ev = event("tarn-lake", &keys, vec![]);
    let expected: Vec<String> = ev
        .records
        .iter()
        .map(|m| m.message_id.clone().unwrap())
        .collect();
    let r = f.scan().unwrap().handle(ev).await;
    assert_eq!(failures(&r), expected);
    assert!(
        p.ports
            .state
            .head(&handoff_key("scan", &id))
            .await
            .unwrap()
            .is_some(),
        "the hand-off waits for the retry"
    );
    for next in ["strip", "normalize"] {
        assert!(
            p.ports
                .state
                .head(&handoff_key(next, &id))
                .await
                .unwrap()
                .is_none()
        );
    }
}

/// The updater on a moto mirror, with a stand-in freshclam (ClamAV's mirrors are not reachable
/// from tests): it starts from the mirror's databases and freshclam's state, writes back what
/// freshclam changed and deletes what it replaced; it does not run again within the minimum
/// interval; a failing freshclam leaves the mirror as it was.
#[tokio::test]
async fn the_updater_refreshes_the_mirror_with_freshclam() {
    let m = moto().await;
    create_bucket(&m.url, "tarn-clamav").await;
    let p = platform_with(
        &m.url,
        &[("TARN_AWS_CLAMAV_DEFINITIONS", "s3://tarn-clamav/clamav/")],
    )
    .await;
    let mirror = p.ports.lake.client().clone();
    let put = |key: &'static str, body: &'static str| {
        let mirror = mirror.clone();
        async move {
            mirror
                .put_object()
                .bucket("tarn-clamav")
                .key(format!("clamav/{key}"))
                .body(body.as_bytes().to_vec().into())
                .send()
                .await
                .unwrap();
        }
    };
    put("main.cvd", "ClamAV-VDB:d:62:1:90:main").await;
    put("daily.cvd", "ClamAV-VDB:d:100:1:90:daily").await;
    put("freshclam.dat", "state 1").await;
    let keys = || async {
        let mut k: Vec<String> = mirror
            .list_objects_v2()
            .bucket("tarn-clamav")
            .send()
            .await
            .unwrap()
            .contents()
            .iter()
            .map(|o| o.key().unwrap().trim_start_matches("clamav/").to_string())
            .collect();
        k.sort();
        k
    };

    let work = tempfile::tempdir().unwrap();
    let script = |name: &str, body: &str| {
        let path = work.path().join(name);
        std::fs::write(&path, format!("#!/bin/sh\nfor a in \"$@\"; do case $a in --datadir=*) d=${{a#--datadir=}};; --config-file=*) c=${{a#--config-file=}};; esac; done\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        path
    };
    // freshclam applies a diff: daily.cvd becomes a newer daily.cld, its state changes
    let applies_a_diff = script(
        "freshclam-diff",
        "grep -q '^ScriptedUpdates yes$' \"$c\" || exit 56\n\
         test -f \"$d/daily.cvd\" && test -f \"$d/main.cvd\" && grep -q 'state 1' \"$d/freshclam.dat\" || exit 57\n\
         printf 'ClamAV-VDB:d:101:1:90:daily' > \"$d/daily.cld\"; rm \"$d/daily.cvd\"; echo 'state 2' > \"$d/freshclam.dat\"\n\
         echo 'daily.cld updated (version: 101)'; exit 0",
    );
    let mut f = Functions::new(&p.ports).unwrap();
    f.clamav_dir = work.path().join("clamav");
    let mut updater = f.updater().unwrap();
    updater.freshclam = applies_a_diff;
    let r = updater.run().await.unwrap();
    assert!(r.ran);
    assert_eq!(r.freshclam_exit, Some(0));
    let mut uploaded = r.uploaded.clone();
    uploaded.sort();
    assert_eq!(
        uploaded,
        ["daily.cld", "freshclam.dat"],
        "main.cvd did not change"
    );
    assert_eq!(r.deleted, ["daily.cvd"]);
    assert_eq!(
        keys().await,
        ["daily.cld", "freshclam.dat", "main.cvd", "tarn-update.json"]
    );

    // within the minimum interval: freshclam does not run
    let r = updater.run().await.unwrap();
    assert!(!r.ran, "{r:?}");

    // up to date (exit 1): nothing written
    updater.min_interval = Duration::ZERO;
    updater.freshclam = script(
        "freshclam-current",
        "echo 'daily.cld database is up-to-date'; exit 1",
    );
    let r = updater.run().await.unwrap();
    assert!(
        r.ran && r.uploaded.is_empty() && r.deleted.is_empty(),
        "{r:?}"
    );

    // a failure (a mirror's cool-down, no network): an error, the mirror as it was
    updater.freshclam = script(
        "freshclam-fails",
        "rm -f \"$d\"/*.c?d; echo 'ERROR: cannot download daily.cvd from database.clamav.net'; exit 52",
    );
    let e = updater.run().await.unwrap_err();
    assert!(
        e.contains("freshclam failed") && e.contains("cannot download"),
        "{e}"
    );
    assert_eq!(
        keys().await,
        ["daily.cld", "freshclam.dat", "main.cvd", "tarn-update.json"]
    );
}

/// A warm scan function looks at the mirror again (here at once, the function waits 15
/// minutes) and, when the definitions changed, writes the new file and reloads clamd: content
/// clean before the update is infected after it, with no second cold start.
#[tokio::test]
async fn a_warm_scan_function_reloads_clamd_on_new_definitions() {
    use bytes::Bytes;
    use sha2::Digest;
    use tarn_aws::lambda::scan::MirroredClamd;
    use tarn_lake::scan::{ScanVerdict, Scanner};
    let root = tempfile::tempdir().unwrap();
    let mirror = std::sync::Arc::new(
        tarn_core::LocalObjectStore::open("tarn-clamav", root.path().join("mirror")).unwrap(),
    );
    for name in ["tarn-test.hdb", "tarn-test.ndb"] {
        let body = std::fs::read(repo_root().join("testdata/clamav").join(name)).unwrap();
        mirror
            .put(name, Bytes::from(body), Metadata::new())
            .await
            .unwrap();
    }
    let clamd =
        MirroredClamd::new(mirror.clone(), root.path().join("clamav")).with_refresh(Duration::ZERO);
    let probe = b"a document that a later signature names".to_vec();
    assert_eq!(clamd.scan(&probe).await.unwrap(), ScanVerdict::Clean);
    let cold = clamd.cold_start().unwrap();

    let sig = format!(
        "{}:{}:Tarn-Reload-Probe\n",
        hex::encode(sha2::Sha256::digest(&probe)),
        probe.len()
    );
    mirror
        .put("tarn-reload.hdb", Bytes::from(sig), Metadata::new())
        .await
        .unwrap();
    clamd.ensure_ready().await.unwrap();
    assert!(root.path().join("clamav/db/tarn-reload.hdb").exists());
    // clamd loads the new database beside the old one, then switches
    let began = std::time::Instant::now();
    loop {
        match clamd.scan(&probe).await.unwrap() {
            ScanVerdict::Infected(s) => {
                assert_eq!(s, "Tarn-Reload-Probe.UNOFFICIAL");
                break;
            }
            other => assert!(
                began.elapsed() < Duration::from_secs(60),
                "still {other:?} a minute after the reload"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(clamd.cold_start(), Some(cold), "reloaded, not restarted");
}
