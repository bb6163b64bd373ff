//! What operators see: `tarn status` on the data dir `tarn demo` leaves; `GET /metrics` of a
//! running `tarn serve` (counters move as documents flow, and `promtool check metrics` passes
//! on the live exposition); the Grafana dashboard asks only for metrics the exposition has.

use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("tarn runs");
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(args: &[&str]) -> String {
    String::from_utf8(run(args).stdout).unwrap()
}

#[test]
fn status_shows_the_demo_at_a_glance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    run(&["demo", "--data-dir", d]);

    let text = stdout(&["status", "--data-dir", d, "--format", "json"]);
    let s: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(s["serving_pid"], Value::Null, "{s}");
    assert_eq!(s["backlog"]["documents"], 0, "{s}");
    let hour = &s["last_hour"];
    assert_eq!(
        (&hour["stored"], &hour["rejected"], &hour["quarantined"]),
        (&5.into(), &1.into(), &1.into()),
        "{s}"
    );
    // the demo's quarantined document is its EICAR test file
    assert_eq!(s["quarantine"], serde_json::json!({"infected": 1}), "{s}");
    assert!(s["scan"]["engine"].as_str().is_some(), "{s}");
    assert!(
        s["small_files"]["events"]["small_files"].as_u64() >= Some(1),
        "{s}"
    );
    assert_eq!(s["audit"]["chain"], "ok", "{s}");
    assert!(s["audit"]["digests"].as_u64() >= Some(1), "{s}");

    let text = stdout(&["status", "--data-dir", d]);
    for line in [
        "serving      no",
        "backlog      0 landed",
        "last hour    1 quarantined, 1 rejected, 5 stored",
        "quarantine   1 infected",
        "small files  ",
        "compaction   ",
        "audit        chain ok",
    ] {
        assert!(text.contains(line), "{line:?} in:\n{text}");
    }

    let before = chrono::Utc::now();
    run(&["compact", "--data-dir", d]);
    let s: Value =
        serde_json::from_str(&stdout(&["status", "--data-dir", d, "--format", "json"])).unwrap();
    let last: chrono::DateTime<chrono::Utc> =
        serde_json::from_value(s["last_compaction"]["finished_at"].clone()).unwrap();
    assert!(last >= before, "{s}");
    let text = stdout(&["status", "--data-dir", d]);
    assert!(text.contains("compaction   last run "), "{text}");
}

/// The samples of metric `name` with all of `labels` (`k="v"` pairs), summed.
fn sample(exposition: &str, name: &str, labels: &[&str]) -> f64 {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|kv| rest.contains(kv))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap())
        .sum()
}

fn promtool(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs: install Debian's prometheus package (apt-get install prometheus)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), said)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_counts_what_flows_through_it_at_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tarn"))
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
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    tarn::platform::wait_healthy(&client, &base, Duration::from_secs(60))
        .await
        .expect("tarn serve answers /health");
    let scrape = || async {
        let r = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        r.text().await.unwrap()
    };
    let before = scrape().await;
    assert_eq!(sample(&before, "tarn_pipeline_flushes_total", &[]), 0.0);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, br#"{"user_id": "u1"}"#).unwrap();
    let photo = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/photo.jpg");
    let photo_bytes = std::fs::metadata(&photo).unwrap().len() as f64;
    let mut ids = stdout(&[
        "ingest",
        "--data-dir",
        d,
        "--url",
        &base,
        "--table",
        "photos",
        photo.to_str().unwrap(),
    ]);
    ids += &stdout(&[
        "ingest",
        "--data-dir",
        d,
        "--url",
        &base,
        "--table",
        "events",
        bad.to_str().unwrap(),
    ]);
    let ids: Vec<&str> = ids
        .split_whitespace()
        .filter(|w| uuid::Uuid::parse_str(w).is_ok())
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");

    // the pipeline commits both, then the counters say so
    let start = Instant::now();
    let after = loop {
        let now = scrape().await;
        // and the runner's next look at the landing store finds nothing left
        if sample(&now, "tarn_pipeline_documents_total", &[]) >= 2.0
            && now.contains("tarn_pipeline_backlog_documents 0")
        {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not committed after 60 s:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let got = |name: &str, labels: &[&str]| sample(&after, name, labels);
    assert_eq!(
        got(
            "tarn_ingress_requests_total",
            &["route=\"upload\"", "table=\"photos\"", "code=\"202\""]
        ) + got(
            "tarn_ingress_requests_total",
            &["route=\"upload\"", "table=\"photos\"", "code=\"200\""]
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        got("tarn_ingress_received_bytes_total", &["table=\"photos\""]),
        photo_bytes
    );
    assert_eq!(
        got(
            "tarn_ingress_request_duration_seconds_count",
            &["route=\"upload\""]
        ),
        2.0
    );
    assert_eq!(
        got(
            "tarn_pipeline_documents_total",
            &["table=\"photos\"", "status=\"stored\""]
        ),
        1.0
    );
    assert_eq!(
        got(
            "tarn_pipeline_documents_total",
            &["table=\"events\"", "status=\"rejected\""]
        ),
        1.0
    );
    assert!(got("tarn_pipeline_flushes_total", &[]) >= 1.0, "{after}");
    for stage in ["validate", "scan", "strip"] {
        let label = format!("stage=\"{stage}\"");
        assert!(
            got("tarn_pipeline_stage_duration_seconds_count", &[&label]) >= 1.0,
            "{stage}: {after}"
        );
    }
    assert_eq!(got("tarn_pipeline_backlog_documents", &[]), 0.0, "{after}");
    assert!(after.contains("tarn_scan_engine_info{"), "{after}");
    // never a document id nor a user in a label
    let user = std::env::var("USER").unwrap_or_else(|_| "producer".into());
    assert!(!after.contains(&format!("\"{user}\"")), "{after}");
    for id in ids {
        assert!(!after.contains(id), "{after}");
    }

    let (ok, said) = promtool(&after);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\n{after}"
    );

    unsafe {
        libc::kill(server.id() as i32, libc::SIGTERM);
    }
    assert!(server.wait().unwrap().success());
}

/// Every metric name an expression asks for: `tarn_...` words, a histogram's series mapped to
/// their metric.
fn queried(expr: &str) -> Vec<String> {
    let mut out = vec![];
    let mut rest = expr;
    while let Some(i) = rest.find("tarn_") {
        let word: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + word.len()..];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| word.strip_suffix(s).filter(|b| b.ends_with("_seconds")))
            .map_or(word.clone(), str::to_string);
        out.push(base);
    }
    out
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_exposition_has() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/grafana.json");
    let board: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let known: BTreeSet<&str> = tarn_core::metrics::ALL.iter().map(|m| m.name).collect();
    let mut used = BTreeSet::new();
    let panels = board["panels"].as_array().expect("panels");
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a PromQL expr");
            let names = queried(expr);
            assert!(!names.is_empty(), "{expr} asks for no tarn metric");
            for n in names {
                assert!(
                    known.contains(n.as_str()),
                    "{} asks for {n}, which tarn does not expose",
                    panel["title"]
                );
                used.insert(n);
            }
        }
    }
    // and every measure is on the dashboard
    let unused: Vec<_> = known.iter().filter(|k| !used.contains(**k)).collect();
    assert!(unused.is_empty(), "not on the dashboard: {unused:?}");
    assert_eq!(
        queried("rate(tarn_x_seconds_bucket[5m]) / tarn_y_total"),
        ["tarn_x_seconds", "tarn_y_total"]
    );
}
