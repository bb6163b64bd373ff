//! `tarn quarantine` and `tarn rescan` with `--backend aws`: the `tarn` binary against S3, Glue
//! and KMS on moto, driving the same protocol as locally (the scans by the test clamd,
//! `TARN_CLAMD`).

#[path = "../aws/tests/common/mod.rs"]
mod moto;

use moto::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use tarn_lake::review::testsuite::{StubScanner, drain, land};

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

    // stored under definitions that did not know the marker; then a JSON document quarantined
    // while the scanner is down
    let marked = land(
        &lake,
        "notes",
        "text/plain",
        format!("n {MARKER}").as_bytes(),
    )
    .await;
    drain(&lake, StubScanner::old().stage()).await;
    let json = land(&lake, "events", "application/json", br#"{"user":"a"}"#).await;
    drain(&lake, StubScanner::down().stage()).await;

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
