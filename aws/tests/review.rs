//! The review protocol (`tarn quarantine`, `tarn rescan`) on S3, Glue and KMS (moto): the same
//! crash sweep as on local stores, and replay, release and rescan with the test clamd
//! (`TARN_CLAMD`).

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tarn_aws::S3LakeLock;
use tarn_core::Status;
use tarn_lake::commit::revision::{history, status_record};
use tarn_lake::review::testsuite::{self, StubScanner, drain, land, rerun, rescan_all};
use tarn_lake::review::{self, Filter};
use tarn_lake::{Lake, Stage};

/// A fresh platform on moto with the sweep's tables, and its lake (a short lease lock).
async fn fresh(url: &str, schemas: &std::path::Path) -> Lake {
    reset(url).await;
    let dir = schemas.display().to_string();
    let p = platform_with(url, &[("TARN_AWS_SCHEMAS_DIR", &dir)]).await;
    let f = tarn_aws::lambda::Functions::new(&p.ports).unwrap();
    let lock = S3LakeLock::new(f.lake.state.clone()).with_timing(
        Duration::from_secs(2),
        Duration::from_millis(50),
        Duration::from_secs(60),
    );
    let lake = Lake {
        lock: Arc::new(lock),
        ..f.lake.clone()
    };
    lake.setup_catalog().await.unwrap();
    lake
}

fn schemas_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for s in testsuite::schemas() {
        let name = s["title"].as_str().unwrap();
        std::fs::write(dir.path().join(format!("{name}.json")), s.to_string()).unwrap();
    }
    dir
}

fn clamd() -> Arc<dyn Stage> {
    testsuite::clamd(&clamd_addr())
}

async fn row(lake: &Lake, id: &str) -> tarn_core::DocumentRow {
    status_record(lake.state.as_ref(), id)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn replay_and_rescan_on_s3_survive_a_crash_at_every_storage_call() {
    let m = moto().await;
    let schemas = schemas_dir();
    let points = testsuite::crash_sweep(|| fresh(&m.url, schemas.path())).await;
    assert!(points > 10, "{points}");
    eprintln!("review crash sweep on moto: {points} crash points");
}

#[tokio::test]
async fn replay_release_and_rescan_on_s3_with_clamd() {
    let m = moto().await;
    let schemas = schemas_dir();
    let lake = fresh(&m.url, schemas.path()).await;
    let marker = ["TARN-TEST-", "MALWARE-MARKER"].concat();

    // a scanner outage quarantines two documents; a replay with clamd stores them once
    let json = land(&lake, "events", "application/json", br#"{"user":"a"}"#).await;
    let note = land(&lake, "notes", "text/plain", b"a harmless note").await;
    drain(&lake, StubScanner::down().stage()).await;
    let listed = review::list(&lake, &Filter::default()).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    let notes_only = Filter {
        table: Some("notes".into()),
        ..Default::default()
    };
    let l = review::list(&lake, &notes_only).await.unwrap();
    assert_eq!(l.iter().map(|r| &r.id).collect::<Vec<_>>(), vec![&note]);
    let out = rerun(&lake, clamd()).replay(&[json.clone()]).await.unwrap();
    assert_eq!(out[0].after, Some(Status::Stored));
    let r = row(&lake, &json).await;
    assert_eq!(
        (r.status, r.scan_result.as_deref()),
        (Status::Stored, Some("clean"))
    );
    use tarn_lake::commit::testsuite::column;
    assert_eq!(
        column(lake.lake.as_ref(), "tables/events/", "_id").await,
        vec![json.clone()]
    );
    assert!(
        lake.quarantine
            .head(&format!("events/{json}"))
            .await
            .unwrap()
            .is_none()
    );
    let h = history(lake.state.as_ref(), &json).await.unwrap();
    assert_eq!(
        (h[0].action.as_str(), h[0].operator.as_str()),
        ("replay", "olga")
    );

    // a release past the scanner that is still down
    let out = rerun(&lake, StubScanner::down().stage())
        .release(&note, "checked by hand")
        .await
        .unwrap();
    assert_eq!(out.after, Some(Status::Stored));
    assert_eq!(
        row(&lake, &note).await.scan_result.as_deref(),
        Some("released")
    );

    // stored under old definitions, found by clamd's now: moved to quarantine, object gone
    let marked = land(&lake, "notes", "text/plain", marker.as_bytes()).await;
    drain(&lake, StubScanner::old().stage()).await;
    let object = row(&lake, &marked).await.object_key.unwrap();
    let report = rescan_all(&lake, clamd()).await;
    assert_eq!(report.scanned, 2, "{report:?}");
    assert_eq!(report.quarantined.len(), 1);
    let r = row(&lake, &marked).await;
    assert_eq!(r.status, Status::Quarantined);
    assert_eq!(
        r.scan_result.as_deref(),
        Some("Tarn-Test-Malware-Marker.UNOFFICIAL")
    );
    assert!(lake.lake.head(&object).await.unwrap().is_none());
    assert!(
        lake.quarantine
            .head(&format!("notes/{marked}"))
            .await
            .unwrap()
            .is_some()
    );

    // infected: never released; its copy replays (and is found again)
    let e = rerun(&lake, clamd())
        .release(&marked, "please")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("never released"), "{e}");
    let out = rerun(&lake, clamd())
        .replay(&[marked.clone()])
        .await
        .unwrap();
    assert_eq!(out[0].after, Some(Status::Quarantined));
}
