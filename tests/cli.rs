//! The `tarn` command as a user runs it: `--help` on every command; `tarn demo` (the README's
//! first command), then `tarn query`, `tarn tables`, `tarn audit` and `tarn audit verify` on the
//! data dir it leaves, with `--format json`.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

mod common;

use common::tarn;

fn ok(args: &[&str]) -> String {
    let out = tarn(args);
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Vec<Value> {
    let text = ok(args);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("tarn {args:?}: not a JSON array ({e}): {text}"))
}

#[test]
fn every_command_has_help() {
    for cmd in [
        "demo",
        "serve",
        "token",
        "ingest",
        "tables",
        "query",
        "compact",
        "status",
        "erase",
        "templates",
        "audit",
    ] {
        let out = ok(&[cmd, "--help"]);
        assert!(out.contains("Usage: tarn"), "{cmd}: {out}");
    }
    assert!(ok(&["audit", "verify", "--help"]).contains("Usage: tarn audit verify"));
    // a mistake: one line on stderr that says what to do, and a non-zero exit
    let out = tarn(&["query", "--data-dir", "/nonexistent/tarn", "SELECT 1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/tarn"), "{err}");
}

#[test]
fn demo_then_query_tables_and_audit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    let out = ok(&["demo", "--data-dir", d]);
    for outcome in ["-> stored", "-> rejected", "-> quarantined", "-> refused"] {
        assert!(out.contains(outcome), "{outcome} in {out}");
    }
    assert!(Path::new(d).join("catalog").exists());

    let rows = json(&[
        "query",
        "--data-dir",
        d,
        "--format",
        "json",
        "SELECT status, count(*) AS n FROM documents GROUP BY status ORDER BY status",
    ]);
    let n = |s: &str| {
        rows.iter()
            .find(|r| r["status"] == s)
            .map(|r| r["n"].as_i64().unwrap())
    };
    assert_eq!(n("stored"), Some(5), "{rows:?}");
    assert_eq!(n("rejected"), Some(1), "{rows:?}");
    assert_eq!(n("quarantined"), Some(1), "{rows:?}");

    let tables = json(&["tables", "--data-dir", d, "--format", "json"]);
    let events = tables
        .iter()
        .find(|t| t["table"] == "events")
        .expect("events in tarn tables");
    assert_eq!(events["rows"], 5, "{events}");

    // the query's reads are in the trail, as the OS user's (an IAM user's, on AWS)
    let me = match tarn_core::audit::Actor::local_user() {
        tarn_core::audit::Actor::LocalUser(n) => n,
        other => panic!("{other:?}"),
    };
    let reads = json(&[
        "audit",
        "--data-dir",
        d,
        "--user",
        &me,
        "--event",
        "GetObject",
        "--format",
        "json",
    ]);
    assert!(
        reads.iter().any(|r| r["object_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("tables/documents/") && k.ends_with(".parquet"))),
        "{reads:#?}"
    );
    assert!(
        reads
            .iter()
            .all(|r| r["identity_type"] == "IAMUser" && r["bucket"] == "tarn-lake")
    );
    // queries side by side: each run's reads are in the trail, each covered by a digest
    let runs: Vec<std::process::Child> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_tarn"))
                .args(["query", "--data-dir", d, "SELECT count(*) FROM events"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut r in runs {
        assert!(r.wait().unwrap().success());
    }
    // nothing altered: no problem listed, exit 0 (the summary goes to stderr)
    assert!(json(&["audit", "verify", "--data-dir", d, "--format", "json"]).is_empty());
    let out = tarn(&["audit", "verify", "--data-dir", d]);
    assert!(out.status.success());
    let summary = String::from_utf8_lossy(&out.stderr);
    assert!(summary.contains("the audit trail verifies"), "{summary}");
    assert!(
        !summary.contains("not covered"),
        "every log file has its digest: {summary}"
    );
}

/// `tarn erase` on the demo's data dir: a dry run changes nothing, the erasure removes a
/// producer's documents and rows, a second run finds nothing, `--status` and the auditor's
/// query list it, and the trail still verifies.
#[test]
fn demo_then_erase_a_producer() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let d = data.to_str().unwrap();
    ok(&["demo", "--data-dir", d]);
    let count =
        |sql: &str| json(&["query", "--data-dir", d, "--format", "json", sql])[0]["n"].clone();
    let bobs = "SELECT count(*) AS n FROM events WHERE _producer = 'bob'";
    let before = count(bobs);
    assert!(before.as_i64().unwrap() > 0, "{before}");

    let erase = |extra: &[&str]| -> Value {
        let mut args = vec![
            "erase",
            "--data-dir",
            d,
            "--producer",
            "bob",
            "--format",
            "json",
        ];
        args.extend(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let dry = erase(&["--dry-run"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["documents"].as_array().unwrap().len(), 2, "{dry}");
    assert_eq!(count(bobs), before, "a dry run changes nothing");

    let done = erase(&["--reason", "gdpr 1"]);
    assert_eq!(done["rows"], before, "{done}");
    assert!(done["id"].is_string(), "{done}");
    assert_eq!(count(bobs), 0);
    assert_eq!(
        count("SELECT count(*) AS n FROM documents WHERE status = 'erased'"),
        2
    );
    let again = erase(&["--reason", "gdpr 1"]);
    assert_eq!(again["documents"], serde_json::json!([]), "{again}");
    assert!(again["id"].is_null());

    let st = json(&["erase", "--data-dir", d, "--status", "--format", "json"]);
    assert_eq!(st.len(), 1, "{st:?}");
    assert_eq!(st[0]["selector"], "producer=bob");
    assert_eq!(st[0]["state"], "pending_vacuum");
    let audit = json(&[
        "query",
        "--data-dir",
        d,
        "--format",
        "json",
        "--file",
        "queries/audit_erasures.sql",
    ]);
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["reason"], "gdpr 1");
    assert!(json(&["audit", "verify", "--data-dir", d, "--format", "json"]).is_empty());
    // a real run needs a reason
    let out = tarn(&["erase", "--data-dir", d, "--producer", "bob"]);
    assert_eq!(out.status.code(), Some(2));
}

/// `tarn serve`, then a producer with `tarn token` and `tarn ingest`, then a reader reading the
/// status and the sanitized content over HTTP; SIGTERM stops the server cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_token_ingest_and_read_back() {
    let (_dir, d) = fresh_data_dir();
    let d = d.as_str();
    let (server, base) = serve(d, &[]).await;
    let client = reqwest::Client::new();

    // the producer: a token on stdout alone, then one id per file
    let token = ok(&[
        "token",
        "--data-dir",
        d,
        "--user",
        "alice",
        "--groups",
        "tarn-writers",
    ]);
    let token = token.trim();
    assert_eq!(token.split('.').count(), 3, "a JWT: {token}");
    let id = ingest_photo(d, &base, &["--token", token]);

    // the reader
    let reader = ok(&[
        "token",
        "--data-dir",
        d,
        "--user",
        "rita",
        "--groups",
        "tarn-readers",
    ]);
    let start = std::time::Instant::now();
    let status = loop {
        assert!(
            start.elapsed().as_secs() < 60,
            "{id} still received after 60 s"
        );
        let v: Value = client
            .get(format!("{base}/table/photos/object/{id}"))
            .bearer_auth(reader.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if v["data"]["status"] != "received" {
            break v["data"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(status["status"], "stored", "{status}");
    assert!(
        status["metadata_removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m == "gps"),
        "{status}"
    );
    let r = client
        .get(format!("{base}/table/photos/object/{id}/content"))
        .bearer_auth(reader.trim())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let jpeg = r.bytes().await.unwrap();
    let original =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/photo.jpg")).unwrap();
    assert!(jpeg.starts_with(&[0xff, 0xd8]) && jpeg.len() < original.len());

    stop(server);
}

/// Two `tarn serve` started together on a fresh data dir: one serves, the other exits at once
/// with an error naming the first one's pid; so does one started while it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_the_same_data_dir_is_refused() {
    use std::process::{Child, ExitStatus, Stdio};
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    let free_port = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let serve = |port: u16, log: &str| -> Child {
        Command::new(env!("CARGO_BIN_EXE_tarn"))
            .args([
                "serve",
                "--data-dir",
                d,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join(log)).unwrap())
            .spawn()
            .unwrap()
    };
    // the first of `children` to exit, within a generous bound (a hang fails the test)
    let first_exit = |children: &mut [&mut Child]| -> (usize, ExitStatus) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for (i, c) in children.iter_mut().enumerate() {
                if let Some(status) = c.try_wait().unwrap() {
                    return (i, status);
                }
            }
            assert!(Instant::now() < deadline, "no second tarn serve exited");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let refusal = |log: &str, pid: u32| {
        let err = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(
            err.contains(&format!("is already being served by tarn process {pid}"))
                && err.contains("pass another --data-dir"),
            "{err}"
        );
    };

    let ports = [free_port(), free_port()];
    let mut a = serve(ports[0], "a.err");
    let mut b = serve(ports[1], "b.err");
    let (lost, status) = first_exit(&mut [&mut a, &mut b]);
    assert!(!status.success(), "the refused serve exits non-zero");
    let (mut winner, port, winner_log) = if lost == 0 {
        refusal("a.err", b.id());
        (b, ports[1], "b.err")
    } else {
        refusal("b.err", a.id());
        (a, ports[0], "a.err")
    };
    let base = format!("http://127.0.0.1:{port}");
    tarn::platform::wait_healthy(&reqwest::Client::new(), &base, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {}",
                std::fs::read_to_string(dir.path().join(winner_log)).unwrap()
            )
        });

    let mut late = serve(free_port(), "late.err");
    let (_, status) = first_exit(&mut [&mut late]);
    assert!(!status.success());
    refusal("late.err", winner.id());
    // the server it was refused for still serves
    let health = reqwest::get(format!("{base}/health")).await.unwrap();
    assert!(health.status().is_success());

    unsafe {
        libc::kill(winner.id() as i32, libc::SIGTERM);
    }
    assert!(winner.wait().unwrap().success());
}

/// `tarn ingest` of samples/photo.jpg into `photos` (`extra` flags added): the document's id.
fn ingest_photo(d: &str, base: &str, extra: &[&str]) -> String {
    let mut args = vec!["ingest", "--data-dir", d, "--url", base];
    args.extend_from_slice(extra);
    args.extend(["--table", "photos", "samples/photo.jpg"]);
    let out = ok(&args);
    out.split_whitespace()
        .find(|w| uuid::Uuid::parse_str(w).is_ok())
        .unwrap_or_else(|| panic!("no document id in {out}"))
        .to_string()
}

/// A temp dir and the path of a data dir inside it, not yet created.
fn fresh_data_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d").to_str().unwrap().to_string();
    (dir, d)
}

/// A started `tarn serve` on `d` (`extra` flags after `serve`), healthy, and its base URL.
async fn serve(d: &str, extra: &[&str]) -> (std::process::Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{port}");
    let server = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(["serve", "--data-dir", d, "--listen", &listen])
        .args(extra)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tarn::platform::wait_healthy(
        &reqwest::Client::new(),
        &base,
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("tarn serve answers /health");
    (server, base)
}

fn stop(mut server: std::process::Child) {
    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    assert!(
        server.wait().unwrap().success(),
        "tarn serve exits cleanly on SIGTERM"
    );
}

/// `tarn serve --no-pipeline` accepts documents and leaves them landed; the next `tarn serve`
/// processes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_the_pipeline_leaves_documents_landed() {
    let (_dir, d) = fresh_data_dir();
    let d = d.as_str();
    let (server, base) = serve(d, &["--no-pipeline"]).await;
    let id = ingest_photo(d, &base, &[]);
    let landed = Path::new(d).join("ingress").join(format!("id={id}"));
    // longer than the pipeline's poll and flush intervals together
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(landed.exists(), "{} still landed", landed.display());
    stop(server);
    assert!(landed.exists(), "a stop processes nothing either");

    let (server, _) = serve(d, &[]).await;
    let start = std::time::Instant::now();
    while landed.exists() {
        assert!(
            start.elapsed().as_secs() < 60,
            "{id} still landed after 60 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop(server);
    let rows = json(&[
        "query",
        "--data-dir",
        d,
        "--format",
        "json",
        &format!("SELECT status FROM documents WHERE id = '{id}'"),
    ]);
    assert_eq!(rows, [serde_json::json!({"status": "stored"})], "{rows:?}");
}
