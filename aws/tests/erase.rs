//! Erasure against S3, Glue and KMS on moto: the same protocol `tarn erase` runs locally, on
//! versioned buckets (no version of an erased object or a replaced file is left), and retention
//! as a function.

mod common;

use common::*;
use serde_json::json;
use std::time::Duration;
use tarn_aws::lambda::Functions;
use tarn_catalog::{Catalog, TableSpec};
use tarn_core::document::status_key;
use tarn_core::{DocumentRow, ObjectStore, Status};
use tarn_lake::compact::Compaction;
use tarn_lake::erase::{Erasure, Selector};

/// Lands an `events` document of `user`, by `user`, and runs it through the stages.
async fn land_and_commit(p: &Platform, f: &Functions, user: &str) -> String {
    let body =
        format!(r#"{{"user_id":"{user}","action":"login","occurred_at":"2024-03-05T10:00:00Z"}}"#);
    land_and_commit_events(p, f, user, &body).await
}

async fn versioned(url: &str, bucket: &str) {
    s3(url)
        .put_bucket_versioning()
        .bucket(bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Every key of `bucket` with a version or a delete marker.
async fn versions(url: &str, bucket: &str) -> Vec<String> {
    let out = s3(url)
        .list_object_versions()
        .bucket(bucket)
        .send()
        .await
        .unwrap();
    let mut keys: Vec<String> = out
        .versions()
        .iter()
        .filter_map(|v| v.key().map(String::from))
        .chain(
            out.delete_markers()
                .iter()
                .filter_map(|m| m.key().map(String::from)),
        )
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

async fn status(p: &Platform, id: &str) -> DocumentRow {
    serde_json::from_slice(&p.ports.state.get(&status_key(id)).await.unwrap().body).unwrap()
}

#[tokio::test]
async fn an_erasure_on_s3_and_glue_leaves_no_version_of_what_it_removed() {
    let m = moto().await;
    let p = platform(&m.url).await;
    versioned(&m.url, "tarn-lake").await;
    let f = Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    let gone = land_and_commit(&p, &f, "u-42").await;
    let kept = land_and_commit(&p, &f, "u-7").await;
    let before: Vec<String> = p
        .ports
        .lake
        .list("tables/events/dt=2024-03-05/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(before.len(), 2);

    let report = Erasure::new(f.lake.clone(), Selector::Id { id: gone.clone() })
        .reason("gdpr 42")
        .by("officer")
        .grace_period(Duration::ZERO)
        .execute()
        .await
        .unwrap();
    assert_eq!(report.rows, 1);
    assert_eq!(report.partitions, 2, "events and documents");
    let parts = p.ports.catalog.get_partitions("tarn", "events").await;
    let location = &parts.unwrap()[0].location;
    assert!(location.contains("/_compacted/"), "{location}");
    let row = status(&p, &gone).await;
    assert_eq!(row.status, Status::Erased);
    assert_eq!(row.reason.as_deref(), Some("erased by officer: gdpr 42"));
    assert_eq!(status(&p, &kept).await.status, Status::Stored);

    // the vacuum removes the replaced files with every version
    let v = Compaction::new(f.lake.clone()).vacuum().await.unwrap();
    assert_eq!(v.tombstones_done, 2);
    let left = versions(&m.url, "tarn-lake").await;
    for k in &before {
        assert!(!left.contains(k), "{k} has a version left: {left:?}");
    }
    let st = tarn_lake::erase::status(p.ports.state.as_ref())
        .await
        .unwrap();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, "gone");

    // once more: nothing to do
    let again = Erasure::new(f.lake.clone(), Selector::Id { id: gone })
        .execute()
        .await
        .unwrap();
    assert!(again.documents.is_empty() && again.id.is_none());
}

#[tokio::test]
async fn retention_runs_as_a_function() {
    let m = moto().await;
    let p = platform(&m.url).await;
    let f = Functions::new(&p.ports).unwrap();
    f.normalize().setup_catalog().await.unwrap();
    let old = land_and_commit(&p, &f, "u-1").await;
    let mut r = f.retention();
    r.grace = Duration::ZERO;
    // no table keeps documents for a limited time: nothing happens
    let none = r.handle(json!({})).await.unwrap();
    assert_eq!(none["erasures"], json!([]));
    r.tables = r
        .tables
        .iter()
        .map(|t| {
            let mut s = t.schema.clone();
            if t.name == "events" {
                s["x-tarn"]["retention"] = json!("30d");
            }
            TableSpec::from_value(&t.path, s).unwrap()
        })
        .collect();
    let event = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "detail": {}});
    let out = r.handle(event).await.unwrap();
    let reports = out["erasures"].as_array().unwrap();
    assert_eq!(reports.len(), 1, "{out}");
    assert_eq!(reports[0]["documents"][0]["id"], json!(old));
    assert_eq!(reports[0]["reason"], json!("retention"));
    assert_eq!(status(&p, &old).await.status, Status::Erased);
}
