//! A local query's reads of the lake are in the access trail, as Athena's are in CloudTrail:
//! `GetObject` on each Parquet file it reads (only the partitions left after pruning),
//! `ListObjects` on each partition it lists, attributed to the person querying.

mod common;

use common::*;
use std::sync::Arc;
use tarn_core::audit::{
    Actor, AuditSink, LocalAuditSink, SigningKey, SinkSettings, TrailConfig, TrailFilter,
    read_trail,
};
use tarn_core::{LocalObjectStore, ObjectStore};
use tarn_query::QueryEngine;

#[tokio::test]
async fn a_query_leaves_its_reads_in_the_trail() {
    let lake = Lake::with_events().await;
    let dir = tempfile::tempdir().unwrap();
    let audit: Arc<dyn ObjectStore> =
        Arc::new(LocalObjectStore::open("tarn-audit", dir.path().join("audit")).unwrap());
    let key = SigningKey::open_or_create(dir.path().join("audit-signing.key")).unwrap();
    let sink = Arc::new(
        LocalAuditSink::open(
            audit.clone(),
            TrailConfig::default(),
            key,
            SinkSettings::default(),
        )
        .await
        .unwrap(),
    );
    let engine = lake.engine.clone().with_file_audit(
        sink.clone(),
        Actor::LocalUser("ana".into()),
        [(lake.root.clone(), "tarn-lake".to_string())],
    );

    // one partition of two survives the WHERE
    let r = engine
        .query("SELECT count(*) AS n FROM events WHERE dt = '2024-01-02'")
        .await
        .unwrap();
    assert_eq!(r.rows[0][0], serde_json::json!(2));
    sink.flush().await.unwrap();

    let records = read_trail(
        audit.as_ref(),
        &TrailConfig::default(),
        &TrailFilter::default(),
    )
    .await
    .unwrap();
    let gets: Vec<_> = records
        .iter()
        .filter(|r| r.event_name == "GetObject")
        .collect();
    assert!(!gets.is_empty(), "no GetObject in {records:#?}");
    for g in &gets {
        assert_eq!(g.bucket(), Some("tarn-lake"));
        assert_eq!(
            g.key(),
            Some("tables/events/dt=2024-01-02/part-0.parquet"),
            "pruned partitions are not read"
        );
        assert_eq!(g.user_identity.kind, "IAMUser");
        assert_eq!(g.user_identity.user_name.as_deref(), Some("ana"));
        assert_eq!(g.user_identity.invoked_by.as_deref(), Some("tarn-query"));
        assert_eq!(g.table().as_deref(), Some("events"));
        assert!(g.error_code.is_none());
    }
    let out: u64 = gets
        .iter()
        .map(|g| {
            g.additional_event_data["bytesTransferredOut"]
                .as_u64()
                .unwrap()
        })
        .sum();
    let size = std::fs::metadata(lake.path("tables/events/dt=2024-01-02/part-0.parquet"))
        .unwrap()
        .len();
    assert!(
        out > 0 && out <= 2 * size,
        "{out} bytes read of a {size}-byte file"
    );
    let lists: Vec<_> = records
        .iter()
        .filter(|r| r.event_name == "ListObjects")
        .collect();
    assert!(
        lists.iter().any(|l| l.request_parameters["prefix"]
            .as_str()
            .is_some_and(|p| p.starts_with("tables/events/dt=2024-01-02"))),
        "{lists:#?}"
    );
    // `tarn audit --user ana` finds them
    let mine = TrailFilter {
        user: Some("ana".into()),
        ..Default::default()
    };
    assert_eq!(
        read_trail(audit.as_ref(), &TrailConfig::default(), &mine)
            .await
            .unwrap()
            .len(),
        records.len()
    );
}
