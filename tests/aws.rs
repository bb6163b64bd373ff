//! `tarn serve --backend aws` end to end on moto: the `tarn` binary with the AWS ports (S3, KMS,
//! Glue, Cognito tokens), the same HTTP API as locally. A producer POSTs with a real Cognito
//! token, the pipeline runs in the process, Glue gets the partitions, a reader gets the sanitized
//! binary through a presigned S3 URL.

mod common;
#[path = "../aws/tests/common/mod.rs"]
mod moto;

use moto::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tarn_catalog::Catalog;
use tarn_core::ObjectStore;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_on_the_aws_backend_end_to_end() {
    let m = moto().await;
    let pool = pool(&m.url).await;
    let p = platform(&m.url).await;
    let (writer, _) = user_token(&m.url, &pool, "alice", &["tarn-writers"]).await;
    let (reader, _) = user_token(&m.url, &pool, "rita", &["tarn-readers"]).await;

    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut env = lambda_env(&p);
    env.retain(|(k, _)| !k.starts_with("TARN_AWS_COGNITO"));
    env.push(("TARN_AWS_COGNITO_POOL_ID".into(), pool.id.clone()));
    env.push(("TARN_AWS_COGNITO_CLIENT_IDS".into(), pool.client_id.clone()));
    env.push((
        "TARN_AWS_COGNITO_JWKS_URL".into(),
        format!("{}/{}/.well-known/jwks.json", m.url, pool.id),
    ));
    let child = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args([
            "serve",
            "--backend",
            "aws",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--schemas")
        .arg(repo_root().join("schemas"))
        .arg("--clamd")
        .arg(clamd_addr())
        .envs(env)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("tarn serve starts");
    let mut serve = Serve(child);
    let client = reqwest::Client::new();
    tarn::platform::wait_healthy(&client, &base, Duration::from_secs(60))
        .await
        .expect("tarn serve --backend aws answers /health");

    // a JSON document and a PNG with text chunks, with alice's Cognito ID token
    let json = br#"[{"user_id":"u-1","action":"login","occurred_at":"2026-11-26T09:00:00Z"}]"#;
    let png = std::fs::read(repo_root().join("samples/diagram.png")).unwrap();
    let mut ids = vec![];
    for (table, ct, body) in [
        ("events", "application/json", json.to_vec()),
        ("photos", "image/png", png.clone()),
    ] {
        let r = client
            .post(format!("{base}/table/{table}/object"))
            .bearer_auth(&writer)
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = r.json().await.unwrap();
        ids.push(v["data"]["id"].as_str().unwrap().to_string());
    }
    // a reader's token may not write
    let r = client
        .post(format!("{base}/table/events/object"))
        .bearer_auth(&reader)
        .header("content-type", "application/json")
        .body(json.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let ev = common::wait_final(&client, &base, "events", &ids[0], &writer).await;
    assert_eq!(ev["status"], "stored", "{ev}");
    assert_eq!(ev["records"], 1);
    let ph = common::wait_final(&client, &base, "photos", &ids[1], &writer).await;
    assert_eq!(ph["status"], "stored", "{ph}");
    assert!(
        ph["metadata_removed"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{ph}"
    );

    // Parquet in the lake bucket, partitions in Glue
    let files = p.ports.lake.list("tables/events/").await.unwrap();
    assert!(
        !files.is_empty() && files.iter().all(|f| f.key.ends_with(".parquet")),
        "{files:?}"
    );
    let parts = p
        .ports
        .catalog
        .get_partitions("tarn", "events")
        .await
        .unwrap();
    assert_eq!(parts.len(), 1, "{parts:?}");
    assert!(
        parts[0]
            .location
            .starts_with("s3://tarn-lake/tables/events/dt="),
        "{parts:?}"
    );

    // the sanitized PNG: the producer may not read contents; a reader is redirected to a
    // presigned URL that serves the stripped bytes
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let content = format!("{base}/table/photos/object/{}/content", ids[1]);
    let r = no_redirect
        .get(&content)
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = no_redirect
        .get(&content)
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 307);
    let url = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        url.starts_with(&m.url) && url.contains("X-Amz-Expires=300"),
        "{url}"
    );
    let stripped = reqwest::get(&url).await.unwrap().bytes().await.unwrap();
    assert!(stripped.starts_with(b"\x89PNG") && stripped.len() < png.len());
    let object_key = ph["object_key"].as_str().unwrap();
    assert_eq!(p.ports.lake.get(object_key).await.unwrap().body, stripped);
    assert!(!tarn_core::envelope::is_sealed(&stripped));

    // SIGTERM: a clean stop
    unsafe {
        libc::kill(serve.0.id() as i32, libc::SIGTERM);
    }
    let start = Instant::now();
    let code = loop {
        if let Some(s) = serve.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "tarn serve did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(code.success(), "exit status {code:?}");
}

/// `tarn erase --backend aws` on moto: a predicate's rows and a producer's documents go from S3
/// and Glue, and `--status` lists both erasures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_on_the_aws_backend() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = tarn_aws::lambda::Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    let body = |u: &str| {
        format!(
            r#"[{{"user_id":"{u}","action":"login","occurred_at":"2024-03-05T10:00:00Z"}},{{"user_id":"u-42","action":"logout","occurred_at":"2024-03-05T11:00:00Z"}}]"#
        )
    };
    let theirs = land_and_commit_events(&p, &f, "bob", &body("u-42")).await;
    let _ours = land_and_commit_events(&p, &f, "alice", &body("u-7")).await;
    let erase = |args: &[&str]| {
        let args = [&["erase", "--backend", "aws", "--format", "json"], args].concat();
        common::tarn_json_with(lambda_env(&p), &args)
    };
    let r = erase(&[
        "--table",
        "events",
        "--where",
        "user_id = 'u-42'",
        "--reason",
        "gdpr 42",
    ]);
    assert_eq!(r["rows"], 3, "{r}");
    assert_eq!(r["documents"], serde_json::json!([]), "{r}");
    let r = erase(&["--producer", "bob", "--reason", "gdpr 43"]);
    assert_eq!(r["documents"][0]["id"], serde_json::json!(theirs), "{r}");
    assert_eq!(r["rows"], 0, "its rows went with the predicate: {r}");
    let status: tarn_core::DocumentRow = serde_json::from_slice(
        &p.ports
            .state
            .get(&tarn_core::document::status_key(&theirs))
            .await
            .unwrap()
            .body,
    )
    .unwrap();
    assert_eq!(status.status, tarn_core::Status::Erased);
    let st = erase(&["--status"]);
    let states: Vec<&str> = st
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["selector"].as_str().unwrap())
        .collect();
    assert_eq!(states, ["events where user_id = 'u-42'", "producer=bob"]);
}
