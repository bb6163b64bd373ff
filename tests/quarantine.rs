//! `tarn quarantine` and `tarn rescan` as an operator runs them on a data dir: a document
//! rejected by a schema that is then fixed is replayed into its table once; a document stored
//! without a scan is found infected by `tarn rescan` (the test clamd, `TARN_CLAMD`) and its
//! content refused at once; the infected document cannot be released; every action is in the
//! access trail under the operator's name, and no output holds a document's content.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use tarn::config::{Config, Overrides};
use tarn::platform::{Platform, wait_healthy};

const MARKER: &str = concat!("TARN-TEST-", "MALWARE-MARKER");

fn write_schemas(dir: &Path, n_type: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let events = json!({"title": "events", "type": "object", "required": ["user"],
        "properties": {"user": {"type": "string"}, "n": {"type": n_type}}});
    let notes = json!({"title": "notes", "x-tarn": {"accept": ["text/plain"]}});
    std::fs::write(dir.join("events.json"), events.to_string()).unwrap();
    std::fs::write(dir.join("notes.json"), notes.to_string()).unwrap();
}

fn tarn(data: &Path, schemas: &Path, args: &[&str]) -> Output {
    let clamd = std::env::var("TARN_CLAMD")
        .expect("TARN_CLAMD: the test clamd's address (source services.env or scripts/clamd.sh)");
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(args)
        .args(["--data-dir", data.to_str().unwrap()])
        .args(["--schemas", schemas.to_str().unwrap()])
        .args(["--clamd", &clamd])
        .env("RUST_LOG", "warn")
        .env("USER", "olga")
        .output()
        .expect("tarn runs")
}

fn ok(data: &Path, schemas: &Path, args: &[&str]) -> String {
    let out = tarn(data, schemas, args);
    assert!(
        out.status.success(),
        "tarn {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        !text.contains(MARKER),
        "tarn {args:?} printed content: {text}"
    );
    text
}

fn json_rows(data: &Path, schemas: &Path, args: &[&str]) -> Vec<Value> {
    let text = ok(data, schemas, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("tarn {args:?}: {e}: {text}"))
}

/// `tarn query SQL`, as JSON rows.
fn query(data: &Path, schemas: &Path, sql: &str) -> Vec<Value> {
    json_rows(data, schemas, &["query", "--format", "json", sql])
}

/// `tarn quarantine list` with `filters`, as JSON rows.
fn listed(data: &Path, schemas: &Path, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["quarantine", "list", "--format", "json"];
    args.extend_from_slice(filters);
    json_rows(data, schemas, &args)
}

/// `tarn serve`'s platform without a scan stage: stores documents unscanned.
async fn platform(data: &Path, schemas: &Path) -> Platform {
    let mut config = Config::load(
        None,
        Overrides {
            data_dir: Some(data.to_path_buf()),
            listen: Some("127.0.0.1:0".parse().unwrap()),
            schemas: Some(schemas.to_path_buf()),
            clamd: None,
            backend: None,
        },
    )
    .unwrap();
    config.pipeline.stages = vec!["validate".into()];
    config.pipeline.flush_interval_ms = 200;
    config.pipeline.poll_interval_ms = 50;
    Platform::open(config).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_replays_after_a_schema_fix_and_rescans_with_new_definitions() {
    let dir = tempfile::tempdir().unwrap();
    let (data, schemas) = (dir.path().join("d"), dir.path().join("schemas"));
    write_schemas(&schemas, "integer");

    // the platform runs without a scan stage for a while
    let (rejected, marked, note, reader);
    {
        let p = platform(&data, &schemas).await;
        let running = p.start().await.unwrap();
        let base = running.url();
        let client = reqwest::Client::new();
        wait_healthy(&client, &base, Duration::from_secs(30))
            .await
            .unwrap();
        let token = |user: &str, group: &str| {
            p.issuer
                .mint(user, &[group.to_string()], Duration::from_secs(600))
                .unwrap()
        };
        let writer = token("alice", "tarn-writers");
        reader = token("rita", "tarn-readers");
        let id = |v: (u16, Value)| {
            assert_eq!(v.0, 200, "{}", v.1);
            v.1["data"]["id"].as_str().unwrap().to_string()
        };
        rejected = id(post(
            &client,
            &base,
            "events",
            &writer,
            "application/json",
            br#"{"user":"a","n":"five"}"#.to_vec(),
        )
        .await);
        marked = id(post(
            &client,
            &base,
            "notes",
            &writer,
            "text/plain",
            format!("note {MARKER}").into_bytes(),
        )
        .await);
        note = id(post(
            &client,
            &base,
            "notes",
            &writer,
            "text/plain",
            b"a plain note".to_vec(),
        )
        .await);
        assert_eq!(
            wait_final(&client, &base, "events", &rejected, &reader).await["status"],
            "rejected"
        );
        assert_eq!(
            wait_final(&client, &base, "notes", &marked, &reader).await["scan_result"],
            "skipped"
        );
        wait_final(&client, &base, "notes", &note, &reader).await;
        running.shutdown().await.unwrap();
    }

    for cmd in [
        &["quarantine", "list", "--help"][..],
        &["quarantine", "show", "--help"],
        &["quarantine", "replay", "--help"],
        &["quarantine", "release", "--help"],
        &["rescan", "--help"],
    ] {
        assert!(ok(&data, &schemas, cmd).contains("Usage: tarn"), "{cmd:?}");
    }

    // list and show: filters, no content
    let rows = listed(&data, &schemas, &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (rows[0]["id"].as_str(), rows[0]["status"].as_str()),
        (Some(rejected.as_str()), Some("rejected"))
    );
    assert!(
        rows[0]["reason"].as_str().unwrap().contains("/n"),
        "{rows:?}"
    );
    assert!(listed(&data, &schemas, &["--table", "notes"]).is_empty());
    assert!(listed(&data, &schemas, &["--reason", "infected"]).is_empty());
    assert!(listed(&data, &schemas, &["--since", "2099-01-01"]).is_empty());
    let csv = ok(
        &data,
        &schemas,
        &[
            "quarantine",
            "list",
            "--status",
            "rejected",
            "--format",
            "csv",
        ],
    );
    assert!(csv.starts_with("id,table,status,reason,"), "{csv}");
    let out = tarn(&data, &schemas, &["quarantine", "replay"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("name the documents to replay"));

    // the schema is fixed (the table has no data yet, so `n` may change type); replay by filter
    write_schemas(&schemas, "string");
    let out = json_rows(
        &data,
        &schemas,
        &[
            "quarantine",
            "replay",
            "--table",
            "events",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        (out[0]["before"].as_str(), out[0]["after"].as_str()),
        (Some("rejected"), Some("stored"))
    );
    let q = query(
        &data,
        &schemas,
        &format!("SELECT _id, n FROM events WHERE _id = '{rejected}'"),
    );
    assert_eq!(
        q,
        vec![json!({"_id": rejected, "n": "five"})],
        "the record once"
    );
    let q = query(
        &data,
        &schemas,
        &format!("SELECT status FROM documents WHERE id = '{rejected}' ORDER BY processed_at"),
    );
    assert_eq!(
        q,
        vec![json!({"status": "rejected"}), json!({"status": "stored"})]
    );
    // a second replay changes nothing
    let again = json_rows(
        &data,
        &schemas,
        &["quarantine", "replay", &rejected, "--format", "json"],
    );
    assert_eq!(again[0]["after"], Value::Null);

    // the definitions now know the marker: the stored note moves to quarantine
    let moved = json_rows(
        &data,
        &schemas,
        &["rescan", "--table", "notes", "--format", "json"],
    );
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!(moved[0]["id"].as_str(), Some(marked.as_str()));
    assert_eq!(moved[0]["after"].as_str(), Some("quarantined"));
    let summary = ok(&data, &schemas, &["rescan"]);
    assert!(
        summary.contains("1 objects scanned: 1 clean, 0 moved to quarantine"),
        "{summary}"
    );
    let listed = json_rows(
        &data,
        &schemas,
        &[
            "quarantine",
            "list",
            "--reason",
            "rescan",
            "--format",
            "json",
        ],
    );
    assert_eq!(listed.len(), 1);
    let shown = json_rows(
        &data,
        &schemas,
        &["quarantine", "show", &marked, "--format", "json"],
    );
    assert_eq!(
        shown.len(),
        2,
        "its stored outcome, then its quarantine: {shown:?}"
    );
    assert_eq!(
        (
            shown[0]["status"].as_str(),
            shown[0]["ended_by"].as_str(),
            shown[0]["operator"].as_str()
        ),
        (Some("stored"), Some("rescan"), Some("olga"))
    );
    assert_eq!(shown[1]["status"].as_str(), Some("quarantined"));
    assert_eq!(
        shown[1]["scan_result"].as_str(),
        Some("Tarn-Test-Malware-Marker.UNOFFICIAL")
    );
    assert!(shown[1]["quarantine_copy_bytes"].as_i64().unwrap() > 0);

    // infected: a release is refused, exit 1, one line on stderr
    let out = tarn(
        &data,
        &schemas,
        &[
            "quarantine",
            "release",
            &marked,
            "--reason",
            "the producer vouches",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("infected documents are never released"),
        "{err}"
    );
    let out = tarn(
        &data,
        &schemas,
        &["quarantine", "show", "../../keys/master"],
    );
    assert_eq!(out.status.code(), Some(1));

    // the content route refuses it (a serve started now reads the same status record)
    let running = platform(&data, &schemas).await.start().await.unwrap();
    let r = reqwest::Client::new()
        .get(format!(
            "{}/table/notes/object/{marked}/content",
            running.url()
        ))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "not_stored", "{v}");
    running.shutdown().await.unwrap();

    // the trail names the operator for every action's store calls
    let trail = json_rows(
        &data,
        &schemas,
        &["audit", "--user", "olga", "--format", "json"],
    );
    let put_status = |id: &str| {
        trail.iter().any(|r| {
            r["eventname"] == "PutObject"
                && r["object_key"].as_str() == Some(&format!("documents/{id}.json"))
        })
    };
    assert!(
        put_status(&rejected),
        "the replay's status write is the operator's"
    );
    assert!(
        put_status(&marked),
        "the rescan's status write is the operator's"
    );
}
