//! Idempotency keys over HTTP (docs/contract.md, Idempotency keys): concurrent retries of one key
//! land one document, producers are independent, bad keys are 400, and a key still finds its
//! document after the pipeline processed it (its landed object gone, its status record there).

mod common;

use common::*;
use serde_json::json;
use tarn_core::document::{ingress_key, meta, status_key};
use tarn_core::{EncryptionContext, ObjectStore, envelope};
use tarn_ingress::document_id;

/// `POST /table/{table}/object` as `user` (a writer) with `Idempotency-Key: key`.
async fn post_keyed(h: &Harness, user: &str, table: &str, key: &str, body: &str) -> Reply {
    let token = h.token(user, &["tarn-writers"]);
    let r = h
        .client
        .post(h.url(&format!("/table/{table}/object")))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    Reply::from_response(r).await
}

fn id_of(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"]["id"].as_str().unwrap().to_string()
}

fn replayed(r: &Reply) -> bool {
    let header = r.header("idempotency-replayed") == Some("true");
    let field = r.json()["data"]["replayed"] == true;
    assert_eq!(
        header,
        field,
        "the header and the field agree: {}",
        r.text()
    );
    header
}

#[tokio::test]
async fn concurrent_retries_of_one_key_land_one_document() {
    let h = Harness::start_with(Options {
        max_in_flight: 64,
        ..Options::default()
    })
    .await;
    let retries = (0..20).map(|_| post_keyed(&h, "alice", JSON_TABLE, "order-42", r#"{"n": 1}"#));
    let replies = futures::future::join_all(retries).await;
    let ids: std::collections::BTreeSet<String> = replies.iter().map(id_of).collect();
    assert_eq!(ids.len(), 1, "every retry gets the same id: {ids:?}");
    let id = ids.into_iter().next().unwrap();
    assert_eq!(id, document_id("alice", JSON_TABLE, "order-42"));
    let fresh = replies.iter().filter(|r| !replayed(r)).count();
    assert_eq!(fresh, 1, "exactly one retry landed the document");
    assert_eq!(h.landed().await, vec![ingress_key(&id)]);
    // the landed object is the document, sealed under its id, with its metadata
    let obj = h.ingress.get(&ingress_key(&id)).await.unwrap();
    assert_eq!(obj.info.metadata[meta::PRODUCER], "alice");
    assert_eq!(obj.info.metadata[meta::TABLE], JSON_TABLE);
    assert_eq!(obj.info.metadata[meta::CONTENT_TYPE], "application/json");
    let opened = envelope::open(
        h.kms.as_ref(),
        &EncryptionContext::document(JSON_TABLE, &id),
        &obj.body,
    )
    .await
    .unwrap();
    use base64::Engine;
    let doc = base64::engine::general_purpose::STANDARD
        .decode(&opened)
        .unwrap();
    assert_eq!(doc, br#"{"n": 1}"#);
    // a later repeat with another body is still a replay: bodies are not compared
    let r = post_keyed(&h, "alice", JSON_TABLE, "order-42", r#"{"n": 2}"#).await;
    assert_eq!(id_of(&r), id);
    assert!(replayed(&r));
    assert_eq!(h.landed().await, vec![ingress_key(&id)]);
    // the status route knows the document as received
    let token = h.token("alice", &["tarn-writers"]);
    let s = h
        .get(
            &format!("/table/{JSON_TABLE}/object/{id}"),
            Some(&format!("Bearer {token}")),
        )
        .await;
    assert_eq!(s.status, 200, "{}", s.text());
    assert_eq!(s.json()["data"]["status"], "received");
}

#[tokio::test]
async fn producers_tables_and_keys_are_independent() {
    let h = Harness::start().await;
    let a = post_keyed(&h, "alice", JSON_TABLE, "k", "{}").await;
    let b = post_keyed(&h, "bob", JSON_TABLE, "k", "{}").await;
    let c = post_keyed(&h, "alice", JSON_TABLE, "k2", "{}").await;
    for r in [&a, &b, &c] {
        assert!(!replayed(r), "{}", r.text());
    }
    let ids = [id_of(&a), id_of(&b), id_of(&c)];
    assert_eq!(ids[1], document_id("bob", JSON_TABLE, "k"));
    assert!(ids[0] != ids[1] && ids[0] != ids[2] && ids[1] != ids[2]);
    let mut landed = h.landed().await;
    landed.sort();
    let mut want: Vec<String> = ids.iter().map(|i| ingress_key(i)).collect();
    want.sort();
    assert_eq!(landed, want);
    // an upload without a key is a new document every time
    let token = h.token("alice", &["tarn-writers"]);
    let one = h
        .post(JSON_TABLE, Some(&token), Some("application/json"), "{}")
        .await;
    let two = h
        .post(JSON_TABLE, Some(&token), Some("application/json"), "{}")
        .await;
    assert_ne!(id_of(&one), id_of(&two));
    assert!(one.header("idempotency-replayed").is_none());
    assert_eq!(h.landed().await.len(), 5);
}

#[tokio::test]
async fn bad_keys_are_400_and_land_nothing() {
    let h = Harness::start().await;
    let long = "k".repeat(129);
    for key in [long.as_str()] {
        let r = post_keyed(&h, "alice", JSON_TABLE, key, "{}").await;
        r.expect(400, "invalid_idempotency_key");
        assert!(r.message().contains("idempotency-key"), "{}", r.message());
    }
    let token = h.token("alice", &["tarn-writers"]);
    for keys in [&[""][..], &["a", "b"]] {
        let mut req = h
            .client
            .post(h.url(&format!("/table/{JSON_TABLE}/object")))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body("{}");
        for k in keys {
            req = req.header("idempotency-key", *k);
        }
        let r = Reply::from_response(req.send().await.unwrap()).await;
        r.expect(400, "invalid_idempotency_key");
    }
    // a tab and a non-ascii letter are no printable ascii characters (sent raw: a client
    // library refuses them)
    for key in ["a\tb", "clé"] {
        let raw = format!(
            "POST /table/{JSON_TABLE}/object HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\nidempotency-key: {key}\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}"
        );
        h.raw(raw.as_bytes())
            .await
            .expect(400, "invalid_idempotency_key");
    }
    // 128 characters, spaces and punctuation inside, are fine
    let ok = format!("{} ~!", "k".repeat(125));
    assert!(!replayed(
        &post_keyed(&h, "alice", JSON_TABLE, &ok, "{}").await
    ));
    assert_eq!(h.landed().await.len(), 1);
}

#[tokio::test]
async fn a_key_finds_its_document_after_processing() {
    let h = Harness::start().await;
    let first = post_keyed(&h, "alice", JSON_TABLE, "batch-7", r#"{"n": 7}"#).await;
    let id = id_of(&first);
    assert!(!replayed(&first));
    // what the pipeline does once the document is committed: its status record is written,
    // then its landed object deleted
    let row = json!({
        "id": id, "table_name": JSON_TABLE, "dt": "2030-01-02", "content_type": "application/json",
        "detected_type": "application/json", "size_bytes": 8, "sha256": null, "producer": "alice",
        "received_at": "2030-01-02T03:04:05.678Z", "processed_at": "2030-01-02T03:04:06Z",
        "status": "stored", "reason": null, "scan_engine": null, "scan_result": null,
        "metadata_removed": [], "object_key": null, "records": 1,
    });
    h.state
        .put(
            &status_key(&id),
            serde_json::to_vec(&row).unwrap().into(),
            Default::default(),
        )
        .await
        .unwrap();
    h.ingress.delete(&ingress_key(&id)).await.unwrap();
    let again = post_keyed(&h, "alice", JSON_TABLE, "batch-7", r#"{"n": 7}"#).await;
    assert_eq!(id_of(&again), id);
    assert!(replayed(&again));
    assert!(h.landed().await.is_empty(), "nothing new landed");
    let token = h.token("alice", &["tarn-writers"]);
    let s = h
        .get(
            &format!("/table/{JSON_TABLE}/object/{id}"),
            Some(&format!("Bearer {token}")),
        )
        .await;
    assert_eq!(s.json()["data"]["status"], "stored", "{}", s.text());
    // another producer's same key is still a new document
    let bob = post_keyed(&h, "bob", JSON_TABLE, "batch-7", r#"{"n": 7}"#).await;
    assert!(!replayed(&bob));
    assert_eq!(h.landed().await, vec![ingress_key(&id_of(&bob))]);
}

#[tokio::test]
async fn concurrent_retries_drain_into_one_document_and_one_set_of_rows() {
    let h = Harness::start_with(Options {
        max_in_flight: 64,
        ..Options::default()
    })
    .await;
    let p = pipeline(&h, specs());
    p.setup_catalog().await.unwrap();
    let body = r#"[{"kind": "a", "n": 1}, {"kind": "b", "n": 2}]"#;
    let retries = (0..20).map(|_| post_keyed(&h, "alice", JSON_TABLE, "drain-1", body));
    let replies = futures::future::join_all(retries).await;
    let id = document_id("alice", JSON_TABLE, "drain-1");
    assert!(replies.iter().all(|r| id_of(r) == id));
    assert_eq!(replies.iter().filter(|r| !replayed(r)).count(), 1);
    let report = p.drain().await.unwrap();
    assert_eq!(
        (report.documents(), report.stored, report.records),
        (1, 1, 2)
    );
    assert!(
        h.landed().await.is_empty(),
        "the pipeline removed the landed object"
    );
    assert_eq!(rows(&h, "documents"), 1);
    assert_eq!(rows(&h, JSON_TABLE), 2);
    // a retry after processing: the same id, a replay, and nothing for the pipeline
    let late = post_keyed(&h, "alice", JSON_TABLE, "drain-1", body).await;
    assert_eq!(id_of(&late), id);
    assert!(replayed(&late));
    assert!(h.landed().await.is_empty());
    let again = p.drain().await.unwrap();
    assert_eq!(again.documents(), 0);
    assert_eq!(rows(&h, "documents"), 1);
    assert_eq!(rows(&h, JSON_TABLE), 2);
}
