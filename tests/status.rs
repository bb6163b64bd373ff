//! What operators see: `tarn status` on the data dir `tarn demo` leaves; `GET /metrics` of the
//! running platform (counters move as documents flow, and `promtool check metrics` passes on the
//! live exposition); the Grafana dashboard asks only for metrics the exposition has.

mod common;
#[path = "../ingress/tests/common/promtool.rs"]
mod promtool;

use common::{platform, post, wait_final};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs `tarn` with `args`; its stdout, once it succeeded.
fn stdout(args: &[&str]) -> String {
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
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn status_shows_the_demo_at_a_glance() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("d");
    let d = d.to_str().unwrap();
    stdout(&["demo", "--data-dir", d]);

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
    stdout(&["compact", "--data-dir", d]);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_counts_what_flows_through_it_at_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let running = p.start().await.unwrap();
    let base = running.url();
    let client = reqwest::Client::new();
    tarn::platform::wait_healthy(&client, &base, Duration::from_secs(10))
        .await
        .unwrap();
    let scrape = || async {
        let r = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let ct = r.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        r.text().await.unwrap()
    };
    let before = scrape().await;
    assert_eq!(sample(&before, "tarn_pipeline_flushes_total", &[]), 0.0);

    let writer = p
        .issuer
        .mint("alice", &["tarn-writers".into()], Duration::from_secs(600))
        .unwrap();
    let photo =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/photo.jpg")).unwrap();
    let (s, v) = post(
        &client,
        &base,
        "photos",
        &writer,
        "image/jpeg",
        photo.clone(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let stored = v["data"]["id"].as_str().unwrap().to_string();
    let bad = br#"{"user_id": "u1"}"#.to_vec();
    let (s, v) = post(&client, &base, "events", &writer, "application/json", bad).await;
    assert_eq!(s, 200, "{v}");
    let rejected = v["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        wait_final(&client, &base, "photos", &stored, &writer).await["status"],
        "stored"
    );
    assert_eq!(
        wait_final(&client, &base, "events", &rejected, &writer).await["status"],
        "rejected"
    );

    // the runner's next look at the landing store finds nothing left
    let start = Instant::now();
    let after = loop {
        let now = scrape().await;
        if now.contains("tarn_pipeline_backlog_documents 0") {
            break now;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "backlog not 0 after 60 s:\n{now}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let got = |name: &str, labels: &[&str]| sample(&after, name, labels);
    let upload = ["route=\"upload\"", "table=\"photos\"", "code=\"200\""];
    assert_eq!(got("tarn_ingress_requests_total", &upload), 1.0, "{after}");
    assert_eq!(
        got("tarn_ingress_received_bytes_total", &["table=\"photos\""]),
        photo.len() as f64
    );
    assert_eq!(
        got(
            "tarn_ingress_request_duration_seconds_count",
            &["route=\"upload\""]
        ),
        2.0
    );
    let docs = "tarn_pipeline_documents_total";
    assert_eq!(
        got(docs, &["table=\"photos\"", "status=\"stored\""]),
        1.0,
        "{after}"
    );
    assert_eq!(
        got(docs, &["table=\"events\"", "status=\"rejected\""]),
        1.0,
        "{after}"
    );
    assert!(got("tarn_pipeline_flushes_total", &[]) >= 1.0, "{after}");
    for stage in ["validate", "scan", "strip"] {
        let label = format!("stage=\"{stage}\"");
        let n = got("tarn_pipeline_stage_duration_seconds_count", &[&label]);
        assert!(n >= 1.0, "{stage}: {after}");
    }
    assert_eq!(
        got("tarn_pipeline_oldest_pending_age_seconds", &[]),
        0.0,
        "{after}"
    );
    assert!(after.contains("tarn_scan_engine_info{"), "{after}");
    // never a document id nor a user in a label
    for word in [stored.as_str(), rejected.as_str(), "alice"] {
        assert!(!after.contains(word), "{word} in:\n{after}");
    }

    let (ok, said) = promtool::check(&after);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics: {said}\n{after}"
    );
    running.shutdown().await.unwrap();
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
