//! The review protocol over real local stores: the quarantine's listing, replay and release,
//! rescans, and a crash at every storage call of a replay and a rescan. Scans use the shared
//! test clamd (`TARN_CLAMD`, with the signatures of testdata/clamav) where a real engine matters.

use std::path::Path;
use std::sync::Arc;
use tarn_catalog::{LocalCatalog, TableSpec};
use tarn_core::{LocalKms, LocalObjectStore, Status, SystemClock};
use tarn_lake::commit::revision::{history, status_record};
use tarn_lake::lock::LocalLakeLock;
use tarn_lake::review::rescan::{RescanFilter, on_definitions_change};
use tarn_lake::review::testsuite::{
    self, StubScanner, drain, land, rerun, rescan_all, rescan_where, retry,
};
use tarn_lake::review::{self, Filter};
use tarn_lake::stage::Stage;
use tarn_lake::{Lake, LakeError, LakeParts};

async fn fresh_in(dir: &Path) -> Lake {
    let tables: Vec<TableSpec> = testsuite::schemas()
        .into_iter()
        .map(|s| {
            let file = format!("{}.json", s["title"].as_str().unwrap());
            TableSpec::from_value(Path::new(&file), s).unwrap()
        })
        .collect();
    let store = |n: &str| Arc::new(LocalObjectStore::open(n, dir.join(n)).unwrap());
    let lake = Lake::new(LakeParts {
        tables,
        ingress: store("ingress"),
        lake: store("lake"),
        quarantine: store("quarantine"),
        state: store("state"),
        kms: Arc::new(LocalKms::open_or_create(dir.join("keys/master.key")).unwrap()),
        catalog: Arc::new(LocalCatalog::open(dir.join("catalog")).unwrap()),
        database: "tarn".into(),
        clock: Arc::new(SystemClock),
        lock: Arc::new(LocalLakeLock::open(dir.join("locks")).unwrap()),
    });
    lake.setup_catalog().await.unwrap();
    lake
}

/// A fresh lake in a directory that lives as long as the test.
async fn fresh() -> (tempfile::TempDir, Lake) {
    let dir = tempfile::tempdir().unwrap();
    let lake = fresh_in(dir.path()).await;
    (dir, lake)
}

/// Lands a text document in `notes`.
async fn land_note(lake: &Lake, body: &[u8]) -> String {
    land(lake, "notes", "text/plain", body).await
}

/// Lands the sweep's PNG in `photos`.
async fn land_png(lake: &Lake) -> String {
    land(
        lake,
        "photos",
        "image/png",
        tarn_lake::commit::testsuite::PNG,
    )
    .await
}

/// Lands a JSON document in `events`.
async fn event(lake: &Lake, body: &[u8]) -> String {
    land(lake, "events", "application/json", body).await
}

/// The scan stage over the shared test clamd.
fn clamd() -> Arc<dyn Stage> {
    testsuite::clamd(
        &std::env::var("TARN_CLAMD").expect(
            "TARN_CLAMD: the test clamd's address (source services.env or scripts/clamd.sh)",
        ),
    )
}

/// A scanner that is down.
fn clamd_down() -> Arc<dyn Stage> {
    StubScanner::down().stage()
}

async fn row(lake: &Lake, id: &str) -> tarn_core::DocumentRow {
    status_record(lake.state.as_ref(), id)
        .await
        .unwrap()
        .unwrap()
}

fn eicar() -> Vec<u8> {
    tarn_lake::scan::conformance::eicar()
}

/// The test clamd's body signature (testdata/clamav/tarn-test.ndb).
fn clamd_marker() -> Vec<u8> {
    ["TARN-TEST-", "MALWARE-MARKER"].concat().into_bytes()
}

#[tokio::test]
async fn a_replay_after_a_clamd_outage_stores_the_document_once_and_keeps_its_history() {
    let (_dir, lake) = fresh().await;
    let json = event(&lake, br#"[{"user":"a","n":1}]"#).await;
    let png = land_png(&lake).await;
    drain(&lake, clamd_down()).await;

    let listed = review::list(&lake, &Filter::default()).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 2, "{listed:?}");
    assert!(ids.contains(&json.as_str()) && ids.contains(&png.as_str()));
    for r in &listed {
        assert_eq!(r.status, Status::Quarantined);
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .starts_with("scan failed 2 times"),
            "{:?}",
            r.reason
        );
    }
    let only_photos = Filter {
        table: Some("photos".into()),
        reason: Some("SCAN FAILED".into()),
        ..Default::default()
    };
    let l = review::list(&lake, &only_photos).await.unwrap();
    assert_eq!(l.iter().map(|r| &r.id).collect::<Vec<_>>(), vec![&png]);
    let infected_only = Filter {
        reason: Some("infected".into()),
        ..Default::default()
    };
    assert!(
        review::list(&lake, &infected_only)
            .await
            .unwrap()
            .is_empty()
    );
    let later = Filter {
        since: Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        ..Default::default()
    };
    assert!(review::list(&lake, &later).await.unwrap().is_empty());

    let out = rerun(&lake, clamd())
        .replay(&[json.clone(), png.clone()])
        .await
        .unwrap();
    assert_eq!(out.len(), 2);
    for o in &out {
        assert_eq!(
            (o.before, o.after),
            (Status::Quarantined, Some(Status::Stored)),
            "{o:?}"
        );
    }
    let r = row(&lake, &json).await;
    assert_eq!((r.status, r.records), (Status::Stored, Some(1)));
    assert_eq!(r.scan_result.as_deref(), Some("clean"));
    assert!(
        r.scan_engine.as_deref().unwrap().starts_with("clamav "),
        "{:?}",
        r.scan_engine
    );
    let p = row(&lake, &png).await;
    assert_eq!(p.status, Status::Stored);
    assert!(
        lake.lake
            .head(p.object_key.as_deref().unwrap())
            .await
            .unwrap()
            .is_some()
    );

    // the replayed record is in its table exactly once; each document has its earlier row too
    use tarn_lake::commit::testsuite::column;
    assert_eq!(
        column(lake.lake.as_ref(), "tables/events/", "_id").await,
        vec![json.clone()]
    );
    let mut docs = vec![json.clone(), json.clone(), png.clone(), png.clone()];
    docs.sort();
    assert_eq!(
        column(lake.lake.as_ref(), "tables/documents/", "id").await,
        docs
    );
    let statuses = column(lake.lake.as_ref(), "tables/documents/", "status").await;
    assert_eq!(statuses, ["quarantined", "quarantined", "stored", "stored"]);

    // out of quarantine: no copy, not listed; the history names the action and the operator
    assert!(lake.quarantine.list("").await.unwrap().is_empty());
    assert!(
        review::list(&lake, &Filter::default())
            .await
            .unwrap()
            .is_empty()
    );
    let d = review::show(&lake, &json).await.unwrap();
    assert_eq!(d.row.status, Status::Stored);
    assert_eq!(d.copy_bytes, None);
    assert_eq!(d.history.len(), 1);
    let h = &d.history[0];
    assert_eq!((h.action.as_str(), h.operator.as_str()), ("replay", "olga"));
    assert_eq!(h.row.status, Status::Quarantined);
    assert!(h.row.reason.as_deref().unwrap().starts_with("scan failed"));
    assert_eq!(h.superseded_at, d.row.processed_at);

    // a second replay changes nothing
    let again = rerun(&lake, clamd()).replay(&[json.clone()]).await.unwrap();
    assert_eq!(again[0].after, None);
    assert!(
        again[0]
            .reason
            .as_deref()
            .unwrap()
            .contains("stored, not in quarantine")
    );
    assert_eq!(
        column(lake.lake.as_ref(), "tables/events/", "_id").await,
        vec![json.clone()]
    );
    assert_eq!(history(lake.state.as_ref(), &json).await.unwrap().len(), 1);

    // an id nobody processed is refused
    let e = rerun(&lake, clamd())
        .replay(&[uuid::Uuid::new_v4().to_string()])
        .await
        .unwrap_err();
    assert!(matches!(e, LakeError::Refused(_)), "{e}");
}

#[tokio::test]
async fn a_replay_that_fails_again_keeps_the_document_in_quarantine_with_the_new_reason() {
    let (_dir, lake) = fresh().await;
    let id = land_note(&lake, &eicar()).await;
    drain(&lake, clamd_down()).await;
    let before = row(&lake, &id).await;
    let out = rerun(&lake, clamd()).replay(&[id.clone()]).await.unwrap();
    assert_eq!(out[0].after, Some(Status::Quarantined));
    let r = row(&lake, &id).await;
    assert_eq!(r.status, Status::Quarantined);
    assert!(
        r.reason.as_deref().unwrap().starts_with("infected: Eicar"),
        "{:?}",
        r.reason
    );
    assert!(r.processed_at > before.processed_at);
    let copy = lake
        .quarantine
        .head(&format!("notes/{id}"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(copy.metadata.get("reason"), r.reason.as_ref());
    assert_eq!(
        review::show(&lake, &id).await.unwrap().history[0].row,
        before
    );
}

#[tokio::test]
async fn release_is_refused_for_infected_documents_and_overrides_an_undecided_scan() {
    let (_dir, lake) = fresh().await;
    let bad = land_note(&lake, &eicar()).await;
    drain(&lake, clamd()).await;
    let infected = row(&lake, &bad).await;
    assert_eq!(infected.status, Status::Quarantined);

    let e = rerun(&lake, clamd())
        .release(&bad, "the producer says it is fine")
        .await
        .unwrap_err();
    assert!(matches!(e, LakeError::Refused(_)), "{e}");
    assert!(
        e.to_string()
            .contains("infected documents are never released"),
        "{e}"
    );
    assert_eq!(row(&lake, &bad).await, infected, "nothing changed");
    assert!(
        lake.quarantine
            .head(&format!("notes/{bad}"))
            .await
            .unwrap()
            .is_some()
    );

    // a document clamd could not look at: released past the scan, with the operator's reason
    let note = land_note(&lake, b"a harmless note").await;
    drain(&lake, clamd_down()).await;
    let e = rerun(&lake, clamd_down())
        .release(&note, "  ")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--reason"), "{e}");
    let out = rerun(&lake, clamd_down())
        .release(&note, "clamd is down for a day; checked by hand")
        .await
        .unwrap();
    assert_eq!(out.after, Some(Status::Stored));
    let r = row(&lake, &note).await;
    assert_eq!(r.status, Status::Stored);
    assert_eq!(r.scan_result.as_deref(), Some("released"));
    assert_eq!(
        r.reason.as_deref(),
        Some("released by olga: clamd is down for a day; checked by hand")
    );
    let h = history(lake.state.as_ref(), &note).await.unwrap();
    assert_eq!(
        (h[0].action.as_str(), h[0].operator.as_str()),
        ("release", "olga")
    );
    assert!(
        h[0].note
            .as_deref()
            .unwrap()
            .contains("passed over: scan failed 2 times"),
        "{:?}",
        h[0].note
    );
    assert!(
        lake.quarantine
            .head(&format!("notes/{note}"))
            .await
            .unwrap()
            .is_none()
    );

    // a release that meets the infection again on a fresh scan is refused too
    let sneaky = land_note(&lake, &eicar()).await;
    drain(&lake, clamd_down()).await;
    let e = rerun(&lake, clamd())
        .release(&sneaky, "trust me")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("infected"), "{e}");
    assert_eq!(row(&lake, &sneaky).await.status, Status::Quarantined);

    // a rejected document is replayed after a schema fix, not released
    let rejected = event(&lake, br#"{"user": 5}"#).await;
    drain(&lake, clamd()).await;
    let e = rerun(&lake, clamd())
        .release(&rejected, "fine")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("rejected by validation"), "{e}");
}

#[tokio::test]
async fn a_rescan_with_a_signature_that_now_matches_moves_the_object_to_quarantine() {
    let (_dir, lake) = fresh().await;
    let marked = land_note(&lake, &[b"note ".as_slice(), &clamd_marker()].concat()).await;
    let clean = land_note(&lake, b"an ordinary note").await;
    let png = land_png(&lake).await;
    // stored under definitions that did not know the marker
    drain(&lake, StubScanner::old().stage()).await;
    let before = row(&lake, &marked).await;
    assert_eq!(
        (before.status, before.scan_result.as_deref()),
        (Status::Stored, Some("clean"))
    );
    let object = before.object_key.clone().unwrap();

    // a filter leaves the others alone
    let only_photos = RescanFilter {
        table: Some("photos".into()),
        ..Default::default()
    };
    let r = rescan_where(&lake, clamd(), &only_photos).await;
    assert_eq!((r.scanned, r.clean, r.quarantined.len()), (1, 1, 0));
    let future = RescanFilter {
        since: Some(chrono::Utc::now()),
        ..Default::default()
    };
    let r = rescan_where(&lake, clamd(), &future).await;
    assert_eq!(r.scanned, 0);

    let r = rescan_all(&lake, clamd()).await;
    assert_eq!((r.scanned, r.clean, r.undecided), (3, 2, 0));
    assert_eq!(r.quarantined.len(), 1);
    assert_eq!(r.quarantined[0].id, marked);
    let after = row(&lake, &marked).await;
    assert_eq!(after.status, Status::Quarantined);
    assert_eq!(after.object_key, None);
    assert_eq!(
        after.scan_result.as_deref(),
        Some("Tarn-Test-Malware-Marker.UNOFFICIAL")
    );
    assert!(after.scan_engine.as_deref().unwrap().starts_with("clamav "));
    assert_eq!(
        after.reason.as_deref(),
        Some("infected: Tarn-Test-Malware-Marker.UNOFFICIAL (found by a rescan)")
    );
    assert!(
        lake.lake.head(&object).await.unwrap().is_none(),
        "the object left the lake"
    );
    assert_eq!(row(&lake, &clean).await.status, Status::Stored);
    assert_eq!(row(&lake, &png).await.status, Status::Stored);
    let h = history(lake.state.as_ref(), &marked).await.unwrap();
    assert_eq!((h[0].action.as_str(), &h[0].row), ("rescan", &before));
    let listed = review::list(
        &lake,
        &Filter {
            reason: Some("rescan".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        listed.iter().map(|r| &r.id).collect::<Vec<_>>(),
        vec![&marked]
    );

    // its quarantine copy is a landed document: a replay reads it (and finds it infected again)
    let out = rerun(&lake, clamd())
        .replay(&[marked.clone()])
        .await
        .unwrap();
    assert_eq!(out[0].after, Some(Status::Quarantined));
    assert!(
        row(&lake, &marked)
            .await
            .reason
            .unwrap()
            .starts_with("infected: Tarn-Test-Malware-Marker")
    );
    let e = rerun(&lake, clamd())
        .release(&marked, "no")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("never released"), "{e}");

    // a second rescan finds nothing new
    let r = rescan_all(&lake, clamd()).await;
    assert_eq!((r.scanned, r.quarantined.len()), (2, 0));
}

#[tokio::test]
async fn the_scheduled_rescan_runs_when_the_definitions_change() {
    let (_dir, lake) = fresh().await;
    let marked = land_note(&lake, testsuite::MARKER).await;
    drain(&lake, StubScanner::old().stage()).await;
    let newer = StubScanner::new_definitions().stage();
    // the first look only records the version
    let r = on_definitions_change(&lake, newer.as_ref(), retry(), "stub 1/1", "tarn-rescan")
        .await
        .unwrap();
    assert_eq!(r, None);
    let r = on_definitions_change(&lake, newer.as_ref(), retry(), "stub 1/1", "tarn-rescan")
        .await
        .unwrap();
    assert_eq!(r, None);
    assert_eq!(row(&lake, &marked).await.status, Status::Stored);
    let r = on_definitions_change(&lake, newer.as_ref(), retry(), "stub 1/2", "tarn-rescan")
        .await
        .unwrap();
    let r = r.expect("a new version rescans");
    assert_eq!(r.quarantined.len(), 1);
    assert_eq!(row(&lake, &marked).await.status, Status::Quarantined);
    let r = on_definitions_change(&lake, newer.as_ref(), retry(), "stub 1/2", "tarn-rescan")
        .await
        .unwrap();
    assert_eq!(r, None);
}

#[tokio::test]
async fn replay_and_rescan_survive_a_crash_at_every_storage_call() {
    let dirs = std::sync::Mutex::new(Vec::new());
    let tried = testsuite::crash_sweep(|| async {
        let dir = tempfile::tempdir().unwrap();
        let lake = fresh_in(dir.path()).await;
        dirs.lock().unwrap().push(dir);
        lake
    })
    .await;
    assert!(tried > 10);
    eprintln!("review crash sweep on local stores: {tried} crash points");
}

#[tokio::test]
async fn serve_s_schedule_rescans_once_the_scanner_reports_new_definitions() {
    use tarn_lake::review::rescan::spawn_watch;
    let (_dir, lake) = fresh().await;
    let marked = land_note(&lake, testsuite::MARKER).await;
    drain(&lake, StubScanner::old().stage()).await;
    // what the last check saw: the old definitions
    let old = StubScanner::old().stage();
    on_definitions_change(&lake, old.as_ref(), retry(), "stub 1/1", "tarn-rescan")
        .await
        .unwrap();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let newer = StubScanner::new_definitions();
    let task = spawn_watch(
        lake.clone(),
        Some(Arc::new(newer.clone())),
        &testsuite::stages(&lake, newer.stage()),
        retry(),
        1,
        rx,
    )
    .expect("a scan stage, a scanner and an interval start the watch");
    let start = std::time::Instant::now();
    while row(&lake, &marked).await.status != Status::Quarantined {
        assert!(start.elapsed().as_secs() < 60, "no rescan after 60 s");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    task.await.unwrap();
    let h = history(lake.state.as_ref(), &marked).await.unwrap();
    assert_eq!(
        (h[0].action.as_str(), h[0].operator.as_str()),
        ("rescan", "tarn-rescan")
    );
}

#[tokio::test]
async fn the_pipeline_s_recovery_leaves_an_operator_s_batch_in_flight_alone() {
    use tarn_lake::commit::manifest::{self, Manifest};
    let (_dir, lake) = fresh().await;
    let state = lake.state.as_ref();
    let uncommitted = |batch: &str| Manifest {
        batch: batch.into(),
        committed: false,
        rows: vec![],
        files: vec![format!("tables/events/dt=2024-05-06/part-{batch}.parquet")],
        inputs: vec![],
        claims: vec![],
        revisions: vec![],
    };
    // a `tarn quarantine replay` between its manifest and its commit point, and a dead batch of
    // the pipeline's own, when `tarn serve` starts
    manifest::put(state, &uncommitted("review-live"))
        .await
        .unwrap();
    manifest::put(state, &uncommitted("pipeline-dead"))
        .await
        .unwrap();
    lake.recover(std::time::Duration::ZERO).await.unwrap();
    assert!(
        manifest::read(state, "review-live")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        manifest::read(state, "pipeline-dead")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn an_erasure_removes_a_replayed_document_s_every_outcome_and_its_history() {
    use tarn_lake::commit::testsuite::column;
    use tarn_lake::erase::{Erasure, Selector};
    let (_dir, lake) = fresh().await;
    let json = event(&lake, br#"[{"user":"a","n":1}]"#).await;
    drain(&lake, clamd_down()).await;
    rerun(&lake, clamd()).replay(&[json.clone()]).await.unwrap();
    assert_eq!(history(lake.state.as_ref(), &json).await.unwrap().len(), 1);

    Erasure::new(lake.clone(), Selector::Id { id: json.clone() })
        .reason("gdpr request 7")
        .by("officer")
        .grace_period(std::time::Duration::ZERO)
        .execute()
        .await
        .unwrap();

    tarn_lake::compact::Compaction::new(lake.clone())
        .grace_period(std::time::Duration::ZERO)
        .vacuum()
        .await
        .unwrap();
    // both outcomes' rows give way to one erased row; the history goes with the document
    assert!(
        history(lake.state.as_ref(), &json)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        lake.state
            .list(&format!("history/{json}/"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        column(lake.lake.as_ref(), "tables/documents/", "id").await,
        vec![json.clone()]
    );
    assert_eq!(
        column(lake.lake.as_ref(), "tables/documents/", "status").await,
        ["erased"]
    );
    assert!(
        column(lake.lake.as_ref(), "tables/events/", "_id")
            .await
            .is_empty()
    );
    assert_eq!(row(&lake, &json).await.status, Status::Erased);
}
