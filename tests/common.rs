//! Helpers shared by the end-to-end tests (each test file includes this module).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `tarn ARGS` from the repository's root, with warnings-only logs.
pub fn tarn(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("tarn runs")
}

/// `tarn ARGS --schemas <repo>/schemas` with `env` (the moto-backed AWS configuration of the
/// AWS tests), its stdout parsed as JSON; panics with its stderr when it fails.
pub fn tarn_json_with(env: Vec<(String, String)>, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(args)
        .arg("--schemas")
        .arg(repo().join("schemas"))
        .envs(env)
        .env("RUST_LOG", "warn")
        .output()
        .expect("tarn runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The embedded platform on `dir`, listening on an ephemeral port, with the test clamd
/// (`TARN_CLAMD`) and a pipeline that flushes and polls often.
pub async fn platform(dir: &Path) -> tarn::Platform {
    let mut config = tarn::Config::load(
        None,
        tarn::config::Overrides {
            data_dir: Some(dir.to_path_buf()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            schemas: Some(repo().join("schemas")),
            clamd: std::env::var("TARN_CLAMD").ok(),
            backend: None,
        },
    )
    .unwrap();
    config.pipeline.flush_interval_ms = 200;
    config.pipeline.poll_interval_ms = 50;
    tarn::Platform::open(config).await.unwrap()
}

/// POSTs a document; returns (status, body).
pub async fn post(
    client: &reqwest::Client,
    base: &str,
    table: &str,
    token: &str,
    ct: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let r = client
        .post(format!("{base}/table/{table}/object"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .expect("the ingress answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Waits until the document's status is final; returns its status record.
pub async fn wait_final(
    client: &reqwest::Client,
    base: &str,
    table: &str,
    id: &str,
    token: &str,
) -> Value {
    let start = Instant::now();
    loop {
        let r = client
            .get(format!("{base}/table/{table}/object/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("the ingress answers");
        assert_eq!(r.status().as_u16(), 200, "status of {id}");
        let v: Value = r.json().await.unwrap();
        if v["data"]["status"] != "received" {
            return v["data"].clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{id} still received after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The Python with pyarrow and duckdb (scripts/test makes one in .venv and sets TARN_PYTHON).
pub fn python() -> String {
    let py = std::env::var("TARN_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&py)
        .args(["-c", "import pyarrow, duckdb"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{py} lacks pyarrow/duckdb: run ./scripts/test (it installs them) or set TARN_PYTHON"
    );
    py
}

/// Runs a Python script with arguments; returns its stdout.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Every file under `root` that holds `marker`, except Parquet files.
pub fn files_holding(root: &Path, marker: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.is_file() && p.extension().is_none_or(|x| x != "parquet") {
                let b = std::fs::read(&p).unwrap();
                if b.windows(marker.len()).any(|w| w == marker) {
                    found.push(p);
                }
            }
        }
    }
    found
}
