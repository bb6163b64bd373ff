//! `tarn quarantine` and `tarn rescan` with `--backend aws`: the `tarn` binary against S3, Glue
//! and KMS on moto, driving the same protocol as locally (the scans by the test clamd,
//! `TARN_CLAMD`).

#[path = "../aws/tests/common/mod.rs"]
mod moto;

use moto::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;
use tarn_lake::scan::{ClamdScanner, Scanner, Timeouts};

const MARKER: &str = concat!("TARN-TEST-", "MALWARE-MARKER");

fn tarn(p: &Platform, schemas: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(args)
        .args(["--backend", "aws", "--clamd", &clamd_addr()])
        .arg("--schemas")
        .arg(schemas)
        .envs(lambda_env(p))
        .env("RUST_LOG", "warn")
        .env("USER", "olga")
        .output()
        .expect("tarn runs")
}

fn rows(p: &Platform, schemas: &Path, args: &[&str]) -> Vec<Value> {
    let out = tarn(p, schemas, args);
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(MARKER), "tarn {args:?} printed content");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("tarn {args:?}: {e}: {text}"))
}

/// Lands `body` as API Gateway's S3 proxy does (base64; the bucket encrypts).
async fn land(lake: &tarn_lake::Lake, table: &str, content_type: &str, body: &[u8]) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let (body, metadata) = tarn_core::document::landed_object(
        lake.kms.as_ref(),
        table,
        &id,
        "alice",
        content_type,
        "2024-05-06T07:08:09.123Z",
        body,
        false,
    )
    .await
    .unwrap();
    lake.ingress
        .put(&tarn_core::document::ingress_key(&id), body, metadata)
        .await
        .unwrap();
    id
}

/// Runs the pipeline with `stages` over what is landed.
async fn drain(lake: &tarn_lake::Lake, stages: &[&str], scanner: Arc<dyn Scanner>) {
    let names: Vec<String> = stages.iter().map(|s| s.to_string()).collect();
    let stages = tarn_lake::registry::build_stages(&names, &lake.tables(), Some(&scanner)).unwrap();
    let config = tarn_lake::PipelineConfig {
        retry: tarn_lake::RetryPolicy {
            max_attempts: 2,
            base: Duration::from_millis(1),
        },
        ..Default::default()
    };
    tarn_lake::Pipeline::new(lake.clone(), stages, config)
        .drain()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quarantine_and_rescan_commands_on_the_aws_backend() {
    let m = moto().await;
    let schemas = tempfile::tempdir().unwrap();
    let events = json!({"title": "events", "type": "object", "required": ["user"],
        "properties": {"user": {"type": "string"}}});
    let notes = json!({"title": "notes", "x-tarn": {"accept": ["text/plain"]}});
    std::fs::write(schemas.path().join("events.json"), events.to_string()).unwrap();
    std::fs::write(schemas.path().join("notes.json"), notes.to_string()).unwrap();
    let dir = schemas.path().display().to_string();
    let p = platform_with(&m.url, &[("TARN_AWS_SCHEMAS_DIR", &dir)]).await;
    let lake = tarn_aws::lambda::Functions::new(&p.ports).unwrap().lake;
    lake.setup_catalog().await.unwrap();

    // stored without a scan; then a JSON document quarantined while clamd is down
    let marked = land(
        &lake,
        "notes",
        "text/plain",
        format!("n {MARKER}").as_bytes(),
    )
    .await;
    let clamd: Arc<dyn Scanner> =
        Arc::new(ClamdScanner::connect(&clamd_addr(), Timeouts::default()).unwrap());
    drain(&lake, &["validate"], clamd.clone()).await;
    let json = land(&lake, "events", "application/json", br#"{"user":"a"}"#).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down: Arc<dyn Scanner> = Arc::new(
        ClamdScanner::connect(&format!("tcp://127.0.0.1:{port}"), Timeouts::default()).unwrap(),
    );
    drain(&lake, &["validate", "scan"], down).await;

    let s = schemas.path();
    let listed = rows(&p, s, &["quarantine", "list", "--format", "json"]);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"].as_str(), Some(json.as_str()));
    assert!(
        listed[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("scan failed")
    );

    let out = rows(
        &p,
        s,
        &[
            "quarantine",
            "replay",
            "--reason",
            "scan failed",
            "--format",
            "json",
        ],
    );
    assert_eq!(
        (out[0]["id"].as_str(), out[0]["after"].as_str()),
        (Some(json.as_str()), Some("stored"))
    );
    let shown = rows(&p, s, &["quarantine", "show", &json, "--format", "json"]);
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(
        (shown[0]["ended_by"].as_str(), shown[0]["operator"].as_str()),
        (Some("replay"), Some("olga"))
    );
    assert_eq!(shown[1]["status"].as_str(), Some("stored"));

    let moved = rows(&p, s, &["rescan", "--format", "json"]);
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(
        (moved[0]["id"].as_str(), moved[0]["after"].as_str()),
        (Some(marked.as_str()), Some("quarantined"))
    );
    assert!(
        lake.lake.list("objects/").await.unwrap().is_empty(),
        "the object left the lake"
    );

    let out = tarn(
        &p,
        s,
        &["quarantine", "release", &marked, "--reason", "please"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("never released"));
}
