//! Crash drill: `tarn serve` as a child process, SIGKILLed while documents are in flight, then
//! started again: every accepted document ends in `documents` exactly once and every JSON record
//! in its table exactly once.

mod common;

use common::*;
use serde_json::json;
use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tarn_catalog::LocalCatalog;
use tarn_ingress::DevIssuer;
use tarn_query::{LocalQueryEngine, QueryEngine};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(dir: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tarn"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir)
        .arg("--schemas")
        .arg(repo().join("schemas"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tarn serve starts")
}

async fn healthy(client: &reqwest::Client, base: &str) {
    tarn::platform::wait_healthy(client, base, Duration::from_secs(30))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_in_flight_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    // accepted id -> records it holds
    let mut accepted: BTreeMap<String, i64> = BTreeMap::new();

    for round in 0..3u64 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = serve(dir.path(), port);
        healthy(&client, &base).await;
        let token = DevIssuer::open_or_create(dir.path())
            .unwrap()
            .mint("crash", &["tarn-writers".into()], Duration::from_secs(600))
            .unwrap();

        // producers keep posting while the server is killed under them
        let posting = {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                let mut ok = Vec::new();
                for i in 0..10_000u64 {
                    let n = 1 + (i % 3) as usize;
                    let recs: Vec<_> = (0..n)
                        .map(|k| json!({"user_id": format!("r{round}-d{i}-k{k}"), "action": "login", "occurred_at": "2026-11-26T00:00:00Z"}))
                        .collect();
                    let resp = client
                        .post(format!("{base}/table/events/object"))
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .body(serde_json::to_vec(&recs).unwrap())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status().as_u16() == 200 => {
                            let v: serde_json::Value = r.json().await.unwrap();
                            ok.push((v["data"]["id"].as_str().unwrap().to_string(), n as i64));
                        }
                        Ok(r) => panic!("unexpected status {}", r.status()),
                        Err(_) => break, // the server died mid-request: that document was not accepted
                    }
                }
                ok
            })
        };
        // let it run a varying while, then kill it hard
        tokio::time::sleep(Duration::from_millis(400 + 350 * round)).await;
        child.kill().unwrap();
        child.wait().unwrap();
        let ok = posting.await.unwrap();
        assert!(!ok.is_empty(), "round {round} accepted nothing");
        accepted.extend(ok);
    }

    // a last start finishes everything, then stops cleanly on SIGTERM
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = serve(dir.path(), port);
    healthy(&client, &base).await;
    let token = DevIssuer::open_or_create(dir.path())
        .unwrap()
        .mint("crash", &["tarn-writers".into()], Duration::from_secs(600))
        .unwrap();
    for id in accepted.keys() {
        let st = wait_final(&client, &base, "events", id, &token).await;
        assert_eq!(st["status"], "stored", "{id}: {st}");
    }
    unsafe { libc_kill(child.id() as i32, 15) };
    let status = child.wait().unwrap();
    assert!(
        status.success(),
        "tarn serve exits 0 on SIGTERM: {status:?}"
    );

    let engine = LocalQueryEngine::new(
        Arc::new(LocalCatalog::open(dir.path().join("catalog")).unwrap()),
        "tarn",
    );
    let docs = engine
        .query("SELECT id, count(*) AS n FROM documents GROUP BY id")
        .await
        .unwrap();
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    for row in docs.rows {
        assert_eq!(row[1], 1, "document {} has {} rows", row[0], row[1]);
        seen.insert(row[0].as_str().unwrap().to_string(), 1);
    }
    for id in accepted.keys() {
        assert!(
            seen.contains_key(id),
            "accepted document {id} has no documents row"
        );
    }
    let recs = engine
        .query("SELECT _id, count(*) AS n, count(DISTINCT user_id) AS u FROM events GROUP BY _id")
        .await
        .unwrap();
    let mut rows = 0;
    for row in recs.rows {
        let id = row[0].as_str().unwrap();
        if let Some(n) = accepted.get(id) {
            assert_eq!(row[1], *n, "records of {id}");
            assert_eq!(row[2], *n, "distinct records of {id}");
            rows += 1;
        }
    }
    assert_eq!(
        rows,
        accepted.len(),
        "every accepted document's records are in events"
    );
    eprintln!(
        "crash drill: {} accepted documents over 3 kills, all exactly once",
        accepted.len()
    );
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}
