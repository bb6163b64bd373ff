//! The whole embedded platform in-process on a temp dir and an ephemeral port: POST valid,
//! invalid and binary documents with real tokens, wait, and check what SQL, an independent
//! Parquet reader, the status API and the data dir show.

mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Duration;
use tarn::platform::wait_healthy;
use tarn_query::QueryEngine;

const JSON_MARKER: &str = "MARKER-JSON-7731";
const BIN_MARKER: &str = "MARKER-BIN-9912";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_validate_normalize_query() {
    let dir = tempfile::tempdir().unwrap();
    let p = platform(dir.path()).await;
    let running = p.start().await.unwrap();
    let base = running.url();
    let client = reqwest::Client::new();
    wait_healthy(&client, &base, Duration::from_secs(10))
        .await
        .unwrap();
    let writer = p
        .issuer
        .mint("alice", &["tarn-writers".into()], Duration::from_secs(600))
        .unwrap();
    let reader = p
        .issuer
        .mint("ana", &["tarn-readers".into()], Duration::from_secs(600))
        .unwrap();

    let events = json!([
        {"user_id": "u-1", "action": "signup", "occurred_at": "2026-01-02T03:04:05Z", "tags": ["a", JSON_MARKER], "context": {"ip": "192.0.2.1", "user_agent": "t"}},
        {"user_id": "u-2", "action": "purchase", "amount": 12.5, "occurred_at": "2026-01-02T03:04:06.250Z"}
    ]);
    let (s, v) = post(
        &client,
        &base,
        "events",
        &writer,
        "application/json",
        serde_json::to_vec(&events).unwrap(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["success"], true);
    let good = v["data"]["id"].as_str().unwrap().to_string();

    let nd =
        b"{\"user_id\":\"u-3\",\"action\":\"login\",\"occurred_at\":\"2026-01-03T00:00:00Z\"}\n"
            .to_vec();
    let (s, v) = post(
        &client,
        &base,
        "events",
        &writer,
        "application/x-ndjson",
        nd,
    )
    .await;
    assert_eq!(s, 200);
    let ndjson = v["data"]["id"].as_str().unwrap().to_string();

    let (s, v) = post(
        &client,
        &base,
        "events",
        &writer,
        "application/json",
        br#"[{"user_id":"u-9","action":"fly","occurred_at":"x"}]"#.to_vec(),
    )
    .await;
    assert_eq!(s, 200);
    let invalid = v["data"]["id"].as_str().unwrap().to_string();

    let text = format!("a plain file carrying {BIN_MARKER}\n").into_bytes();
    let (s, v) = post(&client, &base, "files", &writer, "text/plain", text.clone()).await;
    assert_eq!(s, 200);
    let binary = v["data"]["id"].as_str().unwrap().to_string();

    let (s, v) = post(
        &client,
        &base,
        "photos",
        &writer,
        "image/png",
        b"%PDF-1.4 this is not a png".to_vec(),
    )
    .await;
    assert_eq!(s, 200);
    let liar = v["data"]["id"].as_str().unwrap().to_string();

    // fates through the status API
    let st = wait_final(&client, &base, "events", &good, &writer).await;
    assert_eq!(
        (st["status"].as_str(), st["records"].as_i64()),
        (Some("stored"), Some(2))
    );
    assert_eq!(
        wait_final(&client, &base, "events", &ndjson, &writer).await["records"],
        1
    );
    let st = wait_final(&client, &base, "events", &invalid, &writer).await;
    assert_eq!(st["status"], "rejected");
    let reason = st["reason"].as_str().unwrap();
    assert!(
        reason.contains("record 0 at /action: fails enum")
            && reason.contains("record 0 at /occurred_at"),
        "{reason}"
    );
    let st = wait_final(&client, &base, "files", &binary, &writer).await;
    assert_eq!(st["status"], "stored");
    assert_eq!(st["detected_type"], "text/plain");
    let st = wait_final(&client, &base, "photos", &liar, &writer).await;
    assert_eq!(
        st["reason"],
        "declared image/png but the bytes are application/pdf"
    );

    // the stored binary comes back whole to a reader
    let r = client
        .get(format!("{base}/table/files/object/{binary}/content"))
        .header("authorization", format!("Bearer {reader}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &text[..]);

    // exact rows through SQL
    let engine = p.query_engine();
    let res = engine
        .query("SELECT user_id, action, amount, occurred_at, tags, context, _id, _producer, dt FROM events ORDER BY user_id")
        .await
        .unwrap();
    let rows: Vec<Value> = res.row_objects().into_iter().map(Value::Object).collect();
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(rows[0]["user_id"], "u-1");
    assert_eq!(rows[0]["tags"], json!(["a", JSON_MARKER]));
    assert_eq!(
        rows[0]["context"],
        json!({"ip": "192.0.2.1", "user_agent": "t"})
    );
    assert_eq!(rows[0]["occurred_at"], "2026-01-02T03:04:05Z");
    assert_eq!(rows[1]["amount"], 12.5);
    assert_eq!(rows[1]["occurred_at"], "2026-01-02T03:04:06.250Z");
    assert_eq!(rows[0]["amount"], Value::Null);
    assert_eq!(rows[2]["_id"], ndjson.as_str());
    assert!(
        rows.iter()
            .all(|r| r["_producer"] == "alice" && r["dt"] == today.as_str())
    );

    let res = engine.query("SELECT table_name, status, count(*) AS n FROM documents GROUP BY table_name, status ORDER BY table_name, status").await.unwrap();
    assert_eq!(
        res.rows,
        vec![
            vec![json!("events"), json!("rejected"), json!(1)],
            vec![json!("events"), json!("stored"), json!(2)],
            vec![json!("files"), json!("stored"), json!(1)],
            vec![json!("photos"), json!("rejected"), json!(1)],
        ]
    );
    // every analyst query runs and finds rows
    let queries: Vec<std::path::PathBuf> = std::fs::read_dir(repo().join("queries"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let is_audit = |p: &std::path::PathBuf| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("audit_")
    };
    for path in queries.iter().filter(|p| !is_audit(p)) {
        let sql = std::fs::read_to_string(path).unwrap();
        let res = engine
            .query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!res.rows.is_empty(), "{} returned nothing", path.display());
    }

    running.shutdown().await.unwrap();

    // the access trail (flushed at shutdown): the compliance queries run, the pipeline's deletes
    // of landed objects are there, and the producer's writes carry the producer's identity
    for path in queries.iter().filter(|p| is_audit(p)) {
        let sql = std::fs::read_to_string(path).unwrap();
        let res = engine
            .query(&sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if path.ends_with("audit_deletes.sql") {
            assert!(res.rows.len() >= 5, "{}: {:?}", path.display(), res.rows);
        }
    }
    let res = engine
        .query("SELECT count(*) AS n FROM cloudtrail_logs WHERE eventname = 'PutObject' AND useridentity.username = 'alice'")
        .await
        .unwrap();
    assert_eq!(res.rows[0][0], 5, "one PutObject per document by alice");

    // an independent reader: pyarrow reads the Parquet with the right types, DuckDB the rows
    let lake = dir.path().join("lake");
    let out = run_python(
        r#"
import sys, glob, json, pyarrow.parquet as pq, duckdb
root = sys.argv[1]
files = sorted(glob.glob(root + "/tables/events/dt=*/*.parquet"))
schema = pq.read_schema(files[0])
types = {f.name: str(f.type) for f in schema}
rows = duckdb.sql(f"SELECT count(*), count(DISTINCT _id), sum(amount) FROM read_parquet({files!r})").fetchall()[0]
docs = duckdb.sql(f"SELECT count(*) FROM read_parquet('{root}/tables/documents/*/*/*.parquet', hive_partitioning=true)").fetchall()[0]
print(json.dumps({"types": types, "rows": list(rows), "documents": docs[0]}))
"#,
        &[lake.to_str().unwrap()],
    );
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["types"]["user_id"], "string");
    assert_eq!(v["types"]["amount"], "double");
    assert_eq!(v["types"]["occurred_at"], "timestamp[us, tz=+00:00]");
    assert_eq!(v["types"]["tags"], "list<item: string>");
    assert_eq!(
        v["types"]["context"],
        "struct<ip: string, user_agent: string>"
    );
    assert_eq!(v["types"]["_received_at"], "timestamp[us, tz=+00:00]");
    assert_eq!(v["rows"], json!([3, 2, 12.5]));
    assert_eq!(v["documents"], 5);

    // no plaintext of either marker outside the Parquet tables
    for marker in [JSON_MARKER, BIN_MARKER] {
        let found = files_holding(dir.path(), marker.as_bytes());
        assert!(found.is_empty(), "{marker} in {found:?}");
    }
}
