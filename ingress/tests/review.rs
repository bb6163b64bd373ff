//! What `GET .../content` serves once an operator's review moved a document on: a stored object
//! a rescan finds infected is refused at once (409 `not_stored`), a released one is served.
//! The rescan uses the shared test clamd (`TARN_CLAMD`, signatures of testdata/clamav).

mod common;

use common::*;
use std::sync::Arc;
use std::time::Duration;
use tarn_core::Status;
use tarn_lake::review::rerun::Rerun;
use tarn_lake::review::rescan::{RescanFilter, rescan};
use tarn_lake::review::testsuite::{StubScanner, pipeline, retry, stages};
use tarn_lake::scan::{ClamdScanner, ScanStage, Timeouts};
use tarn_lake::{Lake, Stage};

/// The lake under the harness's stores (what the pipeline works with).
fn lake(h: &Harness) -> Lake {
    let root = h.dir.path();
    let lake = Lake::new(tarn_lake::LakeParts {
        tables: specs(),
        ingress: h.ingress.clone(),
        lake: h.lake.clone(),
        quarantine: Arc::new(
            tarn_core::LocalObjectStore::open("tarn-quarantine", root.join("quarantine")).unwrap(),
        ),
        state: h.state.clone(),
        kms: h.kms.clone(),
        catalog: Arc::new(tarn_catalog::LocalCatalog::open(root.join("catalog")).unwrap()),
        database: "tarn".into(),
        clock: Arc::new(tarn_core::SystemClock),
        lock: Arc::new(tarn_lake::lock::LocalLakeLock::open(root.join("locks")).unwrap()),
    });
    lake
}

fn clamd() -> Arc<dyn Stage> {
    let addr = std::env::var("TARN_CLAMD")
        .expect("TARN_CLAMD: the test clamd's address (source services.env or scripts/clamd.sh)");
    let t = Timeouts {
        connect: Duration::from_secs(5),
        scan: Duration::from_secs(30),
    };
    Arc::new(ScanStage::new(Arc::new(
        ClamdScanner::connect(&addr, t).unwrap(),
    )))
}

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

async fn post_png(h: &Harness, body: Vec<u8>) -> String {
    let token = h.token("alice", &["tarn-writers"]);
    let r = h
        .post(BINARY_TABLE, Some(&token), Some("image/png"), body)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]["id"].as_str().unwrap().to_string()
}

fn content(id: &str) -> String {
    format!("/table/{BINARY_TABLE}/object/{id}/content")
}

#[tokio::test]
async fn a_rescan_that_finds_a_stored_object_infected_stops_its_content_at_once() {
    let h = Harness::start().await;
    let lake = lake(&h);
    lake.setup_catalog().await.unwrap();
    let marker = ["TARN-TEST-", "MALWARE-MARKER"].concat();
    let marked = post_png(&h, [PNG, marker.as_bytes()].concat()).await;
    let clean = post_png(&h, PNG.to_vec()).await;
    // stored under definitions that did not know the marker
    pipeline(&lake, StubScanner::old().stage())
        .drain()
        .await
        .unwrap();
    let reader = format!("Bearer {}", h.token("bob", &["tarn-readers"]));
    let r = h.get(&content(&marked), Some(&reader)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let report = rescan(
        &lake,
        clamd().as_ref(),
        retry(),
        &RescanFilter::default(),
        "olga",
    )
    .await
    .unwrap();
    assert_eq!((report.scanned, report.quarantined.len()), (2, 1));

    let r = h.get(&content(&marked), Some(&reader)).await;
    r.expect(409, "not_stored");
    assert!(r.message().contains("quarantined"), "{}", r.message());
    let s = h
        .get(
            &format!("/table/{BINARY_TABLE}/object/{marked}"),
            Some(&reader),
        )
        .await;
    assert_eq!(s.status, 200);
    let d = &s.json()["data"];
    assert_eq!(d["status"], "quarantined");
    assert_eq!(
        d["reason"],
        "infected: Tarn-Test-Malware-Marker.UNOFFICIAL (found by a rescan)"
    );
    assert_eq!(d["object_key"], serde_json::Value::Null);
    let r = h.get(&content(&clean), Some(&reader)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.as_slice(), PNG);
}

#[tokio::test]
async fn a_released_document_is_served_and_an_infected_one_never() {
    let h = Harness::start().await;
    let lake = lake(&h);
    lake.setup_catalog().await.unwrap();
    let id = post_png(&h, PNG.to_vec()).await;
    // the scanner is down: quarantined after its retries
    pipeline(&lake, StubScanner::down().stage())
        .drain()
        .await
        .unwrap();
    let reader = format!("Bearer {}", h.token("bob", &["tarn-readers"]));
    h.get(&content(&id), Some(&reader))
        .await
        .expect(409, "not_stored");

    let rerun = |scan: Arc<dyn Stage>| Rerun {
        lake: lake.clone(),
        stages: stages(&lake, scan),
        retry: retry(),
        operator: "olga".into(),
    };
    let out = rerun(StubScanner::down().stage())
        .release(&id, "scanner outage; checked by hand")
        .await
        .unwrap();
    assert_eq!(out.after, Some(Status::Stored));
    let r = h.get(&content(&id), Some(&reader)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body.as_slice(), PNG);

    // infected (the test clamd's body signature): quarantined by clamd, and a release is
    // refused; the content stays refused
    let marker = ["TARN-TEST-", "MALWARE-MARKER"].concat();
    let eicar = post_png(&h, [PNG, marker.as_bytes()].concat()).await;
    pipeline(&lake, clamd()).drain().await.unwrap();
    let e = rerun(clamd()).release(&eicar, "please").await.unwrap_err();
    assert!(e.to_string().contains("never released"), "{e}");
    h.get(&content(&eicar), Some(&reader))
        .await
        .expect(409, "not_stored");
}
