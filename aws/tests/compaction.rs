//! The S3 lease lock and compaction as a Lambda function on moto: small batches from normalize
//! are compacted, the partition's location swaps in Glue, and later batches land in the new
//! location.

mod common;

use bytes::Bytes;
use common::*;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tarn_aws::S3LakeLock;
use tarn_aws::lambda::Functions;
use tarn_catalog::Catalog;
use tarn_core::{Metadata, ObjectStore};
use tarn_lake::lock::LakeLock;

#[tokio::test]
async fn the_s3_lease_lock_is_exclusive_and_taken_over_when_expired() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let lock = Arc::new(S3LakeLock::new(p.ports.state.clone()).with_timing(
        Duration::from_secs(30),
        Duration::from_millis(50),
        Duration::from_secs(20),
    ));
    let inside = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (lock, inside, max) = (lock.clone(), inside.clone(), max.clone());
        tasks.push(tokio::spawn(async move {
            let g = lock.acquire("lake-write").await.unwrap();
            let n = inside.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            inside.fetch_sub(1, Ordering::SeqCst);
            drop(g);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(max.load(Ordering::SeqCst), 1, "never two holders at once");

    // a holder that died without releasing: its lease expires and is taken over
    let expired = json!({"owner": "crashed", "expires_at": "2020-01-01T00:00:00Z"});
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.ports
        .state
        .put(
            "locks/compaction.json",
            Bytes::from(expired.to_string()),
            Metadata::new(),
        )
        .await
        .unwrap();
    let g = tokio::time::timeout(Duration::from_secs(5), lock.acquire("compaction"))
        .await
        .expect("an expired lease is taken over")
        .unwrap();
    drop(g);
}

async fn land_and_commit(p: &Platform, f: &Functions, user: &str) -> String {
    let body =
        format!(r#"{{"user_id":"{user}","action":"login","occurred_at":"2024-03-05T10:00:00Z"}}"#);
    land_and_commit_body(p, f, &body).await
}

/// Lands `body` (an `events` document) as the ingress does and runs it through the stages.
async fn land_and_commit_body(p: &Platform, f: &Functions, body: &str) -> String {
    land_and_commit_events(p, f, "alice", body).await
}

async fn rows_under(p: &Platform, prefix: &str) -> usize {
    let mut n = 0;
    for o in p.ports.lake.list(prefix).await.unwrap() {
        let rel = &o.key[prefix.len()..];
        if !o.key.ends_with(".parquet")
            || rel
                .split('/')
                .any(|s| s.starts_with('_') || s.starts_with('.'))
        {
            continue;
        }
        let body = p.ports.lake.get(&o.key).await.unwrap().body;
        let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(body)
            .unwrap()
            .build()
            .unwrap();
        n += r.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    n
}

#[tokio::test]
async fn compaction_runs_as_a_function_and_later_batches_follow_the_swapped_location() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    for u in ["u1", "u2", "u3"] {
        land_and_commit(&p, &f, u).await;
    }
    assert_eq!(
        p.ports
            .lake
            .list("tables/events/dt=2024-03-05/")
            .await
            .unwrap()
            .len(),
        3,
        "three small files"
    );

    // an EventBridge scheduled event with the request in its detail
    let event = json!({
        "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "123456789012", "time": "2024-03-05T12:00:00Z", "region": REGION,
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/tarn-compact"], "detail": {"table": "events"}
    });
    let report = f.compaction().handle(event).await.unwrap();
    assert_eq!(report["partitions_compacted"], 1, "{report}");
    assert_eq!(report["files_in"], 3, "{report}");
    let part = p
        .ports
        .catalog
        .get_partitions("tarn", "events")
        .await
        .unwrap()
        .remove(0);
    assert!(
        part.location
            .starts_with("s3://tarn-lake/tables/events/dt=2024-03-05/_compacted/"),
        "{}",
        part.location
    );
    let dir = part
        .location
        .strip_prefix("s3://tarn-lake/")
        .unwrap()
        .to_string();
    assert_eq!(rows_under(&p, &dir).await, 3);

    // the next batch goes to the current location, so the table shows all four rows
    land_and_commit(&p, &f, "u4").await;
    assert_eq!(rows_under(&p, &dir).await, 4);
    assert!(
        p.ports.state.list("locks/").await.unwrap().is_empty() || {
            tokio::time::sleep(Duration::from_millis(500)).await;
            p.ports.state.list("locks/").await.unwrap().is_empty()
        },
        "locks are released"
    );
}

#[tokio::test]
async fn a_carried_file_is_copied_by_s3_and_stays_sse_kms_under_the_platform_key() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    // one big file (a document of 3,000 events), then two small ones
    let events: Vec<serde_json::Value> = (0..3000)
        .map(|_| {
            json!({"user_id": uuid::Uuid::new_v4().to_string(), "action": "purchase",
                   "occurred_at": "2024-03-05T10:00:00Z"})
        })
        .collect();
    land_and_commit_body(&p, &f, &serde_json::to_string(&events).unwrap()).await;
    for u in ["u1", "u2"] {
        land_and_commit(&p, &f, u).await;
    }
    let old_dir = "tables/events/dt=2024-03-05/";
    let files = p.ports.lake.list(old_dir).await.unwrap();
    assert_eq!(files.len(), 3, "{files:?}");
    let big = files.iter().max_by_key(|o| o.size).unwrap().clone();

    let report = f
        .compaction()
        .handle(json!({"table": "events", "target_size": big.size}))
        .await
        .unwrap();
    assert_eq!(report["partitions_compacted"], 1, "{report}");
    assert_eq!(report["files_in"], 3, "{report}");
    assert_eq!(
        report["files_out"], 2,
        "one merged file and the carried one: {report}"
    );
    assert_eq!(
        report["rows"], 3002,
        "the carried file's rows, from its footer: {report}"
    );
    let part = p
        .ports
        .catalog
        .get_partitions("tarn", "events")
        .await
        .unwrap()
        .remove(0);
    let new_dir = part.location.strip_prefix("s3://tarn-lake/").unwrap();
    let carried = format!("{new_dir}{}", big.key.rsplit('/').next().unwrap());
    let outputs = p.ports.lake.list(new_dir).await.unwrap();
    assert!(outputs.iter().any(|o| o.key == carried), "{outputs:?}");
    assert_eq!(rows_under(&p, new_dir).await, 3002);

    // the copy has the source's bytes and metadata
    let (src, copy) = (
        p.ports.lake.get(&big.key).await.unwrap(),
        p.ports.lake.get(&carried).await.unwrap(),
    );
    assert!(copy.body == src.body);
    assert_eq!(copy.info.metadata, src.info.metadata);
    // every file of the compacted partition, the carried one too, is SSE-KMS under the platform
    // key, as the files ingestion wrote
    for key in outputs.iter().map(|o| &o.key).chain([&big.key]) {
        assert_eq!(
            sse_kms_key(&m.url, "tarn-lake", key, key).await,
            p.config.kms_key_id,
            "{key}"
        );
    }
}
