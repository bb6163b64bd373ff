//! `tarn status --backend aws` on moto: the backlog from the ingress bucket, the small files from
//! Glue's partitions and S3, and the CloudTrail trail's state (moto's Athena answers the
//! `documents` queries with its canned results, so their counts are not checked here).

mod common;
#[path = "../aws/tests/common/mod.rs"]
mod moto;

use moto::*;
use serde_json::Value;
use tarn_lake::{Pipeline, PipelineConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_on_the_aws_backend() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let tables = tarn_catalog::load_schemas(&repo_root().join("schemas")).unwrap();
    let lake = p.ports.lake(tables.clone());
    let stages = tarn_lake::registry::build_stages(&["validate".into()], &tables, None).unwrap();
    let pipeline = Pipeline::new(lake, stages, PipelineConfig::default());
    pipeline.setup_catalog().await.unwrap();
    // one document committed, then one landed and left waiting
    let ingress = p.ports.ingress.as_ref();
    let event = br#"{"user_id":"u1","action":"login","occurred_at":"2024-03-05T10:00:00Z"}"#;
    land_as_apigw(ingress, "events", "application/json", event).await;
    assert_eq!(pipeline.drain().await.unwrap().stored, 1);
    land_as_apigw(ingress, "events", "application/json", event).await;

    let s = common::tarn_json_with(
        lambda_env(&p),
        &["status", "--backend", "aws", "--format", "json"],
    );
    assert_eq!(s["backlog"]["documents"], 1, "{s}");
    assert!(s["backlog"]["oldest_age_seconds"].is_i64(), "{s}");
    assert_eq!(s["small_files"]["events"]["small_files"], 1, "{s}");
    assert_eq!(s["small_files"]["documents"]["small_files"], 1, "{s}");
    assert_eq!(s["last_compaction"], Value::Null, "{s}");
    assert_eq!(s["serving_pid"], Value::Null, "{s}");
    // moto has no trail: the status says what is missing
    assert_eq!(s["audit"]["chain"], "incomplete", "{s}");
    assert!(
        !s["audit"]["problems"].as_array().unwrap().is_empty(),
        "{s}"
    );
}
