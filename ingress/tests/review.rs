//! What `GET .../content` serves once an operator's review moved a document on: a stored object
//! a rescan finds infected is refused at once (409 `not_stored`), a released one is served.
//! The rescan uses the shared test clamd (`TARN_CLAMD`, signatures of testdata/clamav).

mod common;

use common::*;
use std::sync::Arc;
use tarn_core::Status;
use tarn_lake::Stage;
use tarn_lake::review::testsuite::{self, StubScanner, drain, rerun, rescan_all};

fn clamd() -> Arc<dyn Stage> {
    testsuite::clamd(
        &std::env::var("TARN_CLAMD").expect(
            "TARN_CLAMD: the test clamd's address (source services.env or scripts/clamd.sh)",
        ),
    )
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
    drain(&lake, StubScanner::old().stage()).await;
    let reader = format!("Bearer {}", h.token("bob", &["tarn-readers"]));
    let r = h.get(&content(&marked), Some(&reader)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let report = rescan_all(&lake, clamd()).await;
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
    drain(&lake, StubScanner::down().stage()).await;
    let reader = format!("Bearer {}", h.token("bob", &["tarn-readers"]));
    h.get(&content(&id), Some(&reader))
        .await
        .expect(409, "not_stored");

    let out = rerun(&lake, StubScanner::down().stage())
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
    drain(&lake, clamd()).await;
    let e = rerun(&lake, clamd())
        .release(&eicar, "please")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("never released"), "{e}");
    h.get(&content(&eicar), Some(&reader))
        .await
        .expect(409, "not_stored");
}
